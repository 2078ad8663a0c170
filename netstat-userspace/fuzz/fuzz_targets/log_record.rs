#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netstat_userspace::fuzzing::log_record(data));
