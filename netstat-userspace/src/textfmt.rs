//! Allocation-free text helpers for the hot paths (a 40,000-socket listing
//! spends more time in `core::fmt` than in parsing otherwise).

/// `bytes` as text, each byte that is not part of valid UTF-8 replaced by
/// U+FFFD: an outside string (a program name, a socket path) keeps its
/// valid part, and each bad byte is seen (`from_utf8_lossy` folds a run).
pub fn lossy_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n('\u{fffd}', bad));
                bytes = &rest[bad..];
            }
        }
    }
}

/// A NUL-terminated byte string (a kernel command name) as text.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    lossy_utf8(&bytes[..end])
}

/// Appends a decimal number.
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    push_ascii(out, &buf[at..]);
}

/// Appends `v` in exactly `width` digits, zero-padded (`%06u`); `v` must fit.
pub fn push_zero_padded(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for digit in buf[..width].iter_mut().rev() {
        *digit = b'0' + (v % 10) as u8;
        v /= 10;
    }
    push_ascii(out, &buf[..width]);
}

/// Appends a few ASCII digits byte by byte: `push_str` of a short slice
/// is a call to `memcpy`, which was a tenth of -E's CPU in a storm.
fn push_ascii(out: &mut String, digits: &[u8]) {
    // SAFETY: the caller's bytes are ASCII digits, which are UTF-8.
    let bytes = unsafe { out.as_mut_vec() };
    bytes.reserve(digits.len());
    for &b in digits {
        bytes.push(b);
    }
}

/// Appends nanoseconds as milliseconds with three decimals (`12.345`), in
/// integer arithmetic: float formatting is a visible cost in a storm.
pub fn push_millis(out: &mut String, ns: u64) {
    let micros = ns / 1000;
    push_u64(out, micros / 1000);
    let fraction = micros % 1000;
    out.push('.');
    for digit in [fraction / 100, fraction / 10 % 10, fraction % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Appends a number right-aligned in `width` columns (`%6lu`).
pub fn push_right(out: &mut String, v: u64, width: usize) {
    let start = out.len();
    push_u64(out, v);
    right_align(out, start, width);
}

/// Right-aligns what was written since `start` in `width` columns.
pub fn right_align(out: &mut String, start: usize, width: usize) {
    let used = columns(&out[start..]);
    if used < width {
        let blanks = width - used;
        match BLANKS.get(..blanks) {
            Some(few) => out.insert_str(start, few),
            None => out.insert_str(start, &" ".repeat(blanks)),
        }
    }
}

/// Pads what was written since `start` with blanks to `width` columns
/// (`%-Ns`: longer text is left as it is).
pub fn pad_to(out: &mut String, start: usize, width: usize) {
    let used = columns(&out[start..]);
    let blanks = width.saturating_sub(used);
    match BLANKS.get(..blanks) {
        Some(few) => out.push_str(few),
        None => out.extend(std::iter::repeat_n(' ', blanks)),
    }
}

/// The columns `text` takes: one per character (ASCII, nearly always, by
/// its length).
pub fn columns(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

const BLANKS: &str = "                                ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_padding() {
        let mut s = String::new();
        push_zero_padded(&mut s, 42, 6);
        push_zero_padded(&mut s, 123_456_789, 9);
        assert_eq!(s, "000042123456789");
        let mut s = String::new();
        push_u64(&mut s, 0);
        push_u64(&mut s, u64::MAX);
        assert_eq!(s, "018446744073709551615");
        let mut s = String::from("x");
        push_right(&mut s, 42, 6);
        let at = s.len();
        s.push_str("ab");
        pad_to(&mut s, at, 4);
        s.push('|');
        assert_eq!(s, "x    42ab  |");
        let mut s = String::new();
        for ns in [0, 999_999, 12_345_678_901] {
            push_millis(&mut s, ns);
            s.push(' ');
        }
        assert_eq!(s, "0.000 0.999 12345.678 ");
        let mut s = String::from("\u{e9}t\u{e9}");
        pad_to(&mut s, 0, 5);
        right_align(&mut s, 0, 40);
        assert_eq!(s, format!("{}\u{e9}t\u{e9}  ", " ".repeat(35)));
    }

    #[test]
    fn invalid_utf8_is_replaced_byte_by_byte() {
        assert_eq!(lossy_utf8(b"tcpload"), "tcpload");
        // A cut-off euro sign: two bytes, two replacements.
        assert_eq!(lossy_utf8(b"ok\xe2\x82"), "ok\u{fffd}\u{fffd}");
        assert_eq!(lossy_utf8(b"a\xffb\xfe"), "a\u{fffd}b\u{fffd}");
        assert_eq!(lossy_utf8("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }
}
