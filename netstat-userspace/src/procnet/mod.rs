//! Parsers for the /proc/net files netstat reads. Each takes the file's text
//! and its name, so a bad line becomes an error naming both, and so tests can
//! feed broken input. They know nothing about output.
//!
//! The `procfs` crate covers processes (see `owners`), but its /proc/net
//! entries drop columns netstat prints (socket timers, unix flags, IPv6
//! routes), so the socket tables are parsed here.

pub mod conntrack;
pub mod dev;
pub mod if_inet6;
pub mod igmp;
pub mod routes;
pub mod snmp;
pub mod sockets;
pub mod sockstat;
pub mod unix;

use std::{fmt, io, net::Ipv4Addr, net::Ipv6Addr};

/// A line of a /proc file that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    /// 1-based, as an editor shows it.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Builds `ParseError`s for one file.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub file: &'a str,
}

impl Source<'_> {
    pub fn error(&self, index: usize, reason: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: index + 1,
            reason: reason.into(),
        }
    }
}

/// Reads a /proc file; `Ok(None)` when the kernel does not have it
/// (netstat treats ENOENT and EACCES as "no support for this protocol").
pub fn read_optional(path: &str) -> io::Result<Option<String>> {
    match read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads a /proc file in 64 KiB chunks: seq_file files cost kernel time per
/// read call and per restart, and this size measured fastest for a large
/// /proc/net/tcp (std's growing reads reach several MiB per call).
pub fn read(path: &str) -> io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut buf = Vec::new();
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    // Unix socket paths in /proc/net/unix are whatever bytes their process chose.
    Ok(String::from_utf8(buf).unwrap_or_else(|e| crate::textfmt::lossy_utf8(e.as_bytes())))
}

/// Parses a hexadecimal field.
fn hex<T: TryFrom<u64>>(field: &str) -> Option<T> {
    u64::from_str_radix(field, 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
}

/// An IPv4 address as the kernel prints it: the in-memory (network order)
/// bytes read as one native-endian word, in hex.
fn ipv4_hex(field: &str) -> Option<Ipv4Addr> {
    (field.len() == 8)
        .then(|| hex::<u32>(field))
        .flatten()
        .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// An IPv6 address as the kernel prints it: four native-endian words.
fn ipv6_hex(field: &str) -> Option<Ipv6Addr> {
    if field.len() != 32 || !field.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word: u32 = hex(&field[i * 8..i * 8 + 8])?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_in_kernel_order() {
        assert_eq!(ipv4_hex("0100007F"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(ipv4_hex("0100007"), None);
        assert_eq!(ipv4_hex("0100007G"), None);
        assert_eq!(
            ipv6_hex("00000000000000000000000001000000"),
            Some(Ipv6Addr::LOCALHOST)
        );
        assert_eq!(ipv6_hex("0000000000000000000000000100000"), None);
    }
}
