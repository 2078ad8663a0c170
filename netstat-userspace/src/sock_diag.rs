//! TCP sockets from the kernel's sock_diag netlink interface: the listing's
//! fast path. Reading /proc/net/tcp makes the kernel format every socket as
//! text (most of `netstat -tan`'s time); sock_diag hands over fixed binary
//! records from the same hash-table walk, in the same order.
//!
//! The records carry what netstat prints without `-e` and `-o` (endpoints,
//! state, queues, inode), so the listing uses this path only then: for a
//! SYN_RECV socket /proc gives the listener's uid where sock_diag gives 0,
//! and /proc's timer column holds retransmits and keepalive probes where
//! sock_diag holds one of the two.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use netstat_common::{AF_INET6, tcp_state};

use crate::procnet::sockets::InetSocket;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `struct nlmsghdr`.
const NLMSG_HEADER: usize = 16;
/// `struct inet_diag_req_v2`.
const REQUEST: usize = 56;
/// `struct inet_diag_msg`, which each record starts with (attributes follow).
const RECORD: usize = 72;

/// Every TCP socket of `family` (AF_INET or AF_INET6) in the calling
/// thread's network namespace, as /proc/net/tcp{,6} would list them (timer
/// and uid columns excepted, see the module notes). An error means this
/// kernel offers no TCP sock_diag (e.g. `tcp_diag` not loaded).
pub fn tcp_sockets(family: u8) -> io::Result<Vec<InetSocket>> {
    tcp_sockets_in(family, u32::MAX)
}

/// As `tcp_sockets`, for the states in the bit mask `states` only (bit
/// `1 << state`): the kernel leaves the others out.
pub fn tcp_sockets_in(family: u8, states: u32) -> io::Result<Vec<InetSocket>> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let request = dump_request(family, states);
    // SAFETY: sending our own buffer to the kernel (nl_pid 0) on our socket.
    let sent = unsafe {
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut sockets = Vec::new();
    // The kernel fills each read with as many records as fit.
    let mut buf = vec![0u8; 1 << 17];
    loop {
        // SAFETY: reading into our own buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if parse_batch(&buf[..n as usize], &mut sockets)? {
            return Ok(sockets);
        }
    }
}

/// SOCK_DIAG_BY_FAMILY dump of the TCP sockets of `family` in `states`.
fn dump_request(family: u8, states: u32) -> [u8; NLMSG_HEADER + REQUEST] {
    let mut req = [0u8; NLMSG_HEADER + REQUEST];
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[0..4].copy_from_slice(&((NLMSG_HEADER + REQUEST) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    // idiag_states (all: request sockets, NEW_SYN_RECV, included).
    req[20..24].copy_from_slice(&states.to_ne_bytes());
    req
}

/// Appends the records of one read to `out`; true once the dump is done.
fn parse_batch(mut batch: &[u8], out: &mut Vec<InetSocket>) -> io::Result<bool> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {why}"));
    while batch.len() >= NLMSG_HEADER {
        let len = u32::from_ne_bytes(batch[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(batch[4..6].try_into().unwrap());
        if len < NLMSG_HEADER || len > batch.len() {
            return Err(bad("truncated message"));
        }
        let body = &batch[NLMSG_HEADER..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = body
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                    .ok_or_else(|| bad("short error message"))?;
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY => out.push(record(body).ok_or_else(|| bad("short record"))?),
            _ => {}
        }
        // Messages are 4-byte aligned.
        batch = &batch[len.next_multiple_of(4).min(batch.len())..];
    }
    Ok(false)
}

/// One `struct inet_diag_msg`, as the /proc/net/tcp row it stands for.
fn record(body: &[u8]) -> Option<InetSocket> {
    let r = body.get(..RECORD)?;
    let u32_at = |at: usize| u32::from_ne_bytes(r[at..at + 4].try_into().unwrap());
    let port_at = |at: usize| u16::from_be_bytes([r[at], r[at + 1]]);
    let addr_at = |at: usize| -> IpAddr {
        if r[0] == AF_INET6 {
            let bytes: [u8; 16] = r[at..at + 16].try_into().unwrap();
            IpAddr::V6(Ipv6Addr::from(bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(r[at], r[at + 1], r[at + 2], r[at + 3]))
        }
    };
    let state = r[1];
    Some(InetSocket {
        local: SocketAddr::new(addr_at(8), port_at(4)),
        remote: SocketAddr::new(addr_at(24), port_at(6)),
        state,
        // A listener's "write queue" here is its backlog limit; /proc
        // prints its (empty) send queue.
        tx_queue: if state == tcp_state::LISTEN {
            0
        } else {
            u64::from(u32_at(60))
        },
        rx_queue: u64::from(u32_at(56)),
        timer: r[2],
        // Milliseconds to clock ticks (USER_HZ).
        timer_ticks: u64::from(u32_at(52)) / 10,
        retransmits: u64::from(r[3]),
        uid: u32_at(64),
        timeouts: 0,
        inode: u64::from(u32_at(68)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` around `body`, padded to 4 bytes.
    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HEADER + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    fn diag_record(family: u8, state: u8, local: &[u8], remote: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; RECORD];
        (r[0], r[1]) = (family, state);
        r[4..6].copy_from_slice(&8080u16.to_be_bytes());
        r[6..8].copy_from_slice(&40000u16.to_be_bytes());
        r[8..8 + local.len()].copy_from_slice(local);
        r[24..24 + remote.len()].copy_from_slice(remote);
        r[56..60].copy_from_slice(&3u32.to_ne_bytes()); // rqueue
        r[60..64].copy_from_slice(&128u32.to_ne_bytes()); // wqueue
        r[68..72].copy_from_slice(&4242u32.to_ne_bytes()); // inode
        // An attribute after the record, which the parser skips.
        r.extend_from_slice(&[5, 0, 8, 0, 1, 0, 0, 0]);
        r
    }

    #[test]
    fn records_become_proc_rows_until_done() {
        let mut batch = message(
            SOCK_DIAG_BY_FAMILY,
            &diag_record(2, tcp_state::ESTABLISHED, &[127, 0, 0, 1], &[127, 0, 0, 2]),
        );
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        batch.extend(message(
            SOCK_DIAG_BY_FAMILY,
            &diag_record(AF_INET6, tcp_state::LISTEN, &v6, &[0; 16]),
        ));
        let mut out = Vec::new();
        assert!(!parse_batch(&batch, &mut out).unwrap());
        assert!(parse_batch(&message(NLMSG_DONE, &[0; 4]), &mut out).unwrap());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(out[0].remote, "127.0.0.2:40000".parse().unwrap());
        assert_eq!(
            (out[0].rx_queue, out[0].tx_queue, out[0].inode),
            (3, 128, 4242)
        );
        assert_eq!(out[1].local, "[::1]:8080".parse().unwrap());
        // A listener's send queue, as /proc shows it.
        assert_eq!((out[1].state, out[1].tx_queue), (tcp_state::LISTEN, 0));
    }

    #[test]
    fn errors_and_truncation_are_errors() {
        let mut out = Vec::new();
        let enoent = message(NLMSG_ERROR, &(-libc::ENOENT).to_ne_bytes());
        let err = parse_batch(&enoent, &mut out).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let mut cut = message(SOCK_DIAG_BY_FAMILY, &[0; RECORD]);
        cut.truncate(40);
        assert!(parse_batch(&cut, &mut out).is_err());
        let short = message(SOCK_DIAG_BY_FAMILY, &[0; 20]);
        assert!(parse_batch(&short, &mut out).is_err());
    }
}
