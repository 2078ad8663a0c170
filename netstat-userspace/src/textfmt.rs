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
    // The bytes are ASCII digits.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or("?"));
}

/// Appends a number right-aligned in `width` columns (`%6lu`).
pub fn push_right(out: &mut String, v: u64, width: usize) {
    let start = out.len();
    push_u64(out, v);
    let used = out.len() - start;
    if used < width {
        out.insert_str(start, &" ".repeat(width - used));
    }
}

/// Pads what was written since `start` with blanks to `width` columns
/// (`%-Ns`: longer text is left as it is).
pub fn pad_to(out: &mut String, start: usize, width: usize) {
    let used = out[start..].chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_padding() {
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
