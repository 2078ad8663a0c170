//! Kernel timestamps (CLOCK_MONOTONIC) to wall-clock time, and its formats.

use std::fmt::Write as _;

use crate::kernel::monotonic_ns;

/// Converts `bpf_ktime_get_ns()` values to nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// realtime - monotonic, sampled once at start-up.
    offset_ns: i128,
}

impl WallClock {
    pub fn new() -> Self {
        let mono = monotonic_ns() as i128;
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            offset_ns: real - mono,
        }
    }

    pub fn wall_ns(&self, monotonic_ns: u64) -> i128 {
        monotonic_ns as i128 + self.offset_ns
    }
}

fn broken_down(secs: i64, local: bool) -> libc::tm {
    let secs = secs as libc::time_t;
    // SAFETY: tm is plain data; the *_r functions only write into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm of ours.
    unsafe {
        if local {
            libc::localtime_r(&secs, &mut tm);
        } else {
            libc::gmtime_r(&secs, &mut tm);
        }
    }
    tm
}

/// Formats event times. Events come in bursts within the same second, so the
/// calendar part is computed once per second and reused.
#[derive(Debug, Default)]
pub struct TimeFormat {
    local_second: Option<(i64, String)>,
    utc_second: Option<(i64, String)>,
}

impl TimeFormat {
    /// Appends local time of day with microseconds, e.g. `05:48:21.123456`.
    pub fn write_local(&mut self, out: &mut String, epoch_ns: i128) {
        let (secs, nanos) = split(epoch_ns);
        let prefix = cached(
            &mut self.local_second,
            secs,
            |tm| format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
            true,
        );
        out.push_str(prefix);
        let _ = write!(out, ".{:06}", nanos / 1000);
    }

    /// Appends RFC 3339 UTC with nanoseconds, e.g. `2026-11-24T05:48:21.123456789Z`.
    pub fn write_utc(&mut self, out: &mut String, epoch_ns: i128) {
        let (secs, nanos) = split(epoch_ns);
        let prefix = cached(
            &mut self.utc_second,
            secs,
            |tm| {
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    tm.tm_year + 1900,
                    tm.tm_mon + 1,
                    tm.tm_mday,
                    tm.tm_hour,
                    tm.tm_min,
                    tm.tm_sec
                )
            },
            false,
        );
        out.push_str(prefix);
        let _ = write!(out, ".{nanos:09}Z");
    }
}

fn split(epoch_ns: i128) -> (i64, u32) {
    (
        epoch_ns.div_euclid(1_000_000_000) as i64,
        epoch_ns.rem_euclid(1_000_000_000) as u32,
    )
}

fn cached(
    slot: &mut Option<(i64, String)>,
    secs: i64,
    render: impl Fn(&libc::tm) -> String,
    local: bool,
) -> &str {
    if slot.as_ref().is_none_or(|(s, _)| *s != secs) {
        *slot = Some((secs, render(&broken_down(secs, local))));
    }
    slot.as_ref().map_or("", |(_, text)| text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        // 2026-11-24T05:48:21.000000123Z
        let ns = 1_795_499_301_000_000_123i128;
        let mut f = TimeFormat::default();
        let mut s = String::new();
        f.write_utc(&mut s, ns);
        assert_eq!(s, "2026-11-24T05:48:21.000000123Z");
        s.clear();
        f.write_utc(&mut s, ns + 1_000_000_000);
        assert_eq!(s, "2026-11-24T05:48:22.000000123Z");
    }
}
