#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netstat_userspace::fuzzing::sock_diag(data));
