//! Kernel timestamps (CLOCK_MONOTONIC) to wall-clock time, and its formats.

use crate::{kernel::monotonic_ns, textfmt::push_zero_padded};

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
        out.push('.');
        push_zero_padded(out, u64::from(nanos / 1000), 6);
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
        out.push('.');
        push_zero_padded(out, u64::from(nanos), 9);
        out.push('Z');
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

/// Nanoseconds since the Unix epoch of an RFC 3339 time
/// (`2026-11-24T05:48:21.123Z`, `2026-11-24 05:48:21+01:00`): the log's
/// own times and `--at`. None for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if b.len() < 20
        || separators.iter().any(|&(at, c)| b[at] != c)
        || !matches!(b[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let (nanos, rest) = fraction(&text[19..])?;
    let offset_s = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let minutes = two(*h1, *h2)? * 60 + two(*m1, *m2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// `.frac` at the start of `text` as nanoseconds (0 without one), and the rest.
fn fraction(text: &str) -> Option<(u32, &str)> {
    let Some(frac) = text.strip_prefix('.') else {
        return Some((0, text));
    };
    let len = frac.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 || len > 9 {
        return None;
    }
    let nanos = frac[..len]
        .bytes()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Some((nanos * 10u32.pow(9 - len as u32), &frac[len..]))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `HH:MM:SS[.frac]` in local time on the local day of `day_of` (ns since
/// the epoch), as ns since the epoch; None for anything else.
pub fn parse_local_time_of_day(text: &str, day_of: i128) -> Option<i128> {
    let b = text.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let two = |at: usize| -> Option<i32> { text.get(at..at + 2)?.parse().ok() };
    let (hour, minute, second) = (two(0)?, two(3)?, two(6)?);
    if !text[..8]
        .bytes()
        .enumerate()
        .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let (nanos, rest) = fraction(&text[8..])?;
    if !rest.is_empty() {
        return None;
    }
    let mut tm = broken_down(split(day_of).0, true);
    (tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_isdst) = (hour, minute, second, -1);
    // SAFETY: mktime only reads and normalises our tm.
    let secs = unsafe { libc::mktime(&mut tm) };
    (secs != -1).then(|| i128::from(secs) * 1_000_000_000 + i128::from(nanos))
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

    #[test]
    fn parses_what_it_writes_and_rfc3339_offsets() {
        let ns = 1_795_499_301_000_000_123i128;
        let mut s = String::new();
        TimeFormat::default().write_utc(&mut s, ns);
        assert_eq!(parse_rfc3339(&s), Some(ns));
        assert_eq!(
            parse_rfc3339("2026-11-24T06:48:21.5+01:00"),
            Some(1_795_499_301_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29 00:00:00Z"),
            Some(951_782_400_000_000_000)
        );
        for bad in [
            "2026-11-24T05:48:21",
            "2026-13-01T00:00:00Z",
            "05:48:21",
            "2026-11-24T05:48:21.Z",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_time_of_day_is_taken_on_the_local_day_given() {
        let day = 1_795_499_301_000_000_000i128;
        let at = parse_local_time_of_day("00:00:00.25", day).unwrap();
        let next = parse_local_time_of_day("23:59:59", day).unwrap();
        assert_eq!(next - at, 86_398_750_000_000);
        assert!(at <= day && day < next + 1_000_000_000);
        for bad in ["24:00:00", "1:00:00", "12:00", "12:00:00x", "12:0a:00"] {
            assert_eq!(parse_local_time_of_day(bad, day), None, "{bad}");
        }
    }
}
