//! /proc/net/{tcp,tcp6,udp,udp6,udplite,udplite6,raw,raw6}: one socket per
//! line, in the same column layout for every protocol.

use std::net::{IpAddr, SocketAddr};

use super::{ParseError, Source, hex, ipv4_hex, ipv6_hex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's state number (TCP_ESTABLISHED = 1 ... TCP_CLOSING = 11).
    pub state: u8,
    pub tx_queue: u64,
    pub rx_queue: u64,
    /// Which timer runs: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 probe.
    pub timer: u8,
    /// Time left on that timer, in clock ticks (USER_HZ).
    pub timer_ticks: u64,
    pub retransmits: u64,
    pub uid: u32,
    pub timeouts: u64,
    pub inode: u64,
}

impl InetSocket {
    /// A socket known only by its endpoints and state (from an event):
    /// queues, timers, uid and inode zero.
    pub fn from_endpoints(local: SocketAddr, remote: SocketAddr, state: u8) -> Self {
        Self {
            local,
            remote,
            state,
            tx_queue: 0,
            rx_queue: 0,
            timer: 0,
            timer_ticks: 0,
            retransmits: 0,
            uid: 0,
            timeouts: 0,
            inode: 0,
        }
    }
}

/// Parses a whole file; the first line is the column header.
pub fn parse(text: &str, file: &str) -> Result<Vec<InetSocket>, ParseError> {
    let src = Source { file };
    let mut lines = text.lines().enumerate();
    if lines.next().is_none() {
        return Err(src.error(0, "empty file, expected a column header"));
    }
    lines
        .map(|(i, line)| parse_line(line).map_err(|why| src.error(i, why)))
        .collect()
}

fn parse_line(line: &str) -> Result<InetSocket, String> {
    let mut f = line.split_ascii_whitespace();
    let mut next = |what: &str| {
        f.next()
            .ok_or_else(|| format!("line ends before the {what} column"))
    };
    let slot = next("sl")?;
    if !slot.ends_with(':') {
        return Err(format!("expected `N:` in the sl column, found {slot:?}"));
    }
    let local = endpoint(next("local_address")?)?;
    let remote = endpoint(next("rem_address")?)?;
    let state = hex(next("st")?).ok_or("bad st column")?;
    let (tx_queue, rx_queue) = pair(next("tx_queue:rx_queue")?)?;
    let (timer, timer_ticks) = pair(next("tr:tm->when")?)?;
    let retransmits = hex(next("retrnsmt")?).ok_or("bad retrnsmt column")?;
    let uid = number(next("uid")?, "uid")?;
    let timeouts = number(next("timeout")?, "timeout")?;
    let inode = number(next("inode")?, "inode")?;
    let timer = u8::try_from(timer).map_err(|_| "bad tr column")?;
    Ok(InetSocket {
        local,
        remote,
        state,
        tx_queue,
        rx_queue,
        timer,
        timer_ticks,
        retransmits,
        uid,
        timeouts,
        inode,
    })
}

/// `0100007F:0016` (IPv4) or 32 hex digits and a port (IPv6).
fn endpoint(field: &str) -> Result<SocketAddr, String> {
    let bad = || format!("bad address {field:?}");
    let (addr, port) = field.split_once(':').ok_or_else(bad)?;
    let port = hex(port).ok_or_else(bad)?;
    let ip = match addr.len() {
        8 => ipv4_hex(addr).map(IpAddr::V4),
        _ => ipv6_hex(addr).map(IpAddr::V6),
    }
    .ok_or_else(bad)?;
    Ok(SocketAddr::new(ip, port))
}

/// `0000000A:00000001`, two hex numbers.
fn pair(field: &str) -> Result<(u64, u64), String> {
    field
        .split_once(':')
        .and_then(|(a, b)| Some((hex(a)?, hex(b)?)))
        .ok_or_else(|| format!("bad pair {field:?}"))
}

fn number<T: std::str::FromStr>(field: &str, what: &str) -> Result<T, String> {
    field
        .parse()
        .map_err(|_| format!("bad {what} column {field:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    #[test]
    fn reads_a_listening_and_an_established_socket() {
        let text = format!(
            "{HEADER}   0: 0100007F:0016 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0016 0100007F:C350 01 00000010:00000000 02:000AFE11 00000003  1000        2 5678 1 0000000000000000 20 4 30 10 -1\n"
        );
        let socks = parse(&text, "/proc/net/tcp").unwrap();
        assert_eq!(socks.len(), 2);
        assert_eq!(socks[0].local, "127.0.0.1:22".parse().unwrap());
        assert_eq!(socks[0].state, 0x0A);
        assert_eq!(socks[0].rx_queue, 2);
        assert_eq!(socks[1].remote, "127.0.0.1:50000".parse().unwrap());
        assert_eq!((socks[1].timer, socks[1].timer_ticks), (2, 0xAFE11));
        assert_eq!(
            (
                socks[1].retransmits,
                socks[1].uid,
                socks[1].timeouts,
                socks[1].inode
            ),
            (3, 1000, 2, 5678)
        );
    }

    #[test]
    fn reads_ipv6() {
        let text = format!(
            "{HEADER}   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1\n"
        );
        let socks = parse(&text, "/proc/net/tcp6").unwrap();
        assert_eq!(socks[0].local, "[::1]:22".parse().unwrap());
    }

    #[test]
    fn truncated_and_malformed_lines_name_file_and_line() {
        let cut = format!("{HEADER}   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:0000");
        let e = parse(&cut, "/proc/net/tcp").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("/proc/net/tcp", 2));
        assert!(e.reason.contains("retrnsmt"), "{e}");
        let bad = format!("{HEADER}   0: 0100007X:0016 00000000:0000 0A 0:0 0:0 0 0 0 1\n");
        assert_eq!(
            parse(&bad, "/proc/net/udp").unwrap_err().to_string(),
            "/proc/net/udp line 2: bad address \"0100007X:0016\""
        );
        let e = parse("", "/proc/net/raw").unwrap_err();
        assert_eq!(e.line, 1);
        let junk = format!("{HEADER}garbage\n");
        assert!(parse(&junk, "/proc/net/tcp").is_err());
        let binary =
            format!("{HEADER}   0: \u{fffd}\u{fffd}:0016 00000000:0000 0A 0:0 0:0 0 0 0 1\n");
        assert!(parse(&binary, "/proc/net/tcp").is_err());
    }
}
