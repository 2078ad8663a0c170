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

use netstat_common::{AF_INET, AF_INET6, tcp_state};

use crate::procnet::{sockets::InetSocket, sockstat::TcpPressure};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `struct nlmsghdr`.
const NLMSG_HEADER: usize = 16;
/// `struct inet_diag_req_v2`.
const REQUEST: usize = 56;
/// `struct inet_diag_msg`, which each record starts with (attributes follow).
const RECORD: usize = 72;
/// The attribute holding `sk_meminfo`'s u32 array, and the array's drop slot.
const INET_DIAG_SKMEMINFO: u16 = 7;
const SK_MEMINFO_DROPS: usize = 8;

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
    let mut sockets = Vec::new();
    exchange(&dump_request(family, states), |batch| {
        parse_batch(batch, &mut sockets, record)
    })?;
    Ok(sockets)
}

/// A listening socket's accept queue and what the kernel dropped for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLoad {
    pub local: SocketAddr,
    pub inode: u64,
    /// Connections waiting to be accepted, and the most it holds (the backlog).
    pub accept_queue: u64,
    pub accept_queue_max: u64,
    /// Its drop counter (`sk_drops`) since it was created: tcp_listendrop
    /// adds one for each SYN or handshake refused because its accept queue
    /// or SYN queue was full, the namespace's ListenDrops counting the same.
    pub drops: u64,
}

/// Every listening TCP socket (IPv4 and IPv6) in the calling thread's
/// network namespace, with its queue and drop counter (errors as
/// `tcp_sockets`).
pub fn tcp_listeners() -> io::Result<Vec<ListenerLoad>> {
    let mut all = tcp_listeners_of(AF_INET)?;
    all.extend(tcp_listeners_of(AF_INET6)?);
    Ok(all)
}

/// What `-S` and `--metrics` read of the calling thread's namespace: its
/// TCP pressure (/proc) and its listeners (None without TCP sock_diag).
pub fn namespace_load() -> anyhow::Result<(TcpPressure, Option<Vec<ListenerLoad>>)> {
    let mut pressure = TcpPressure::read()?;
    // sockstat's `tw` counts every timewait socket, orphans still in
    // FIN_WAIT2 among them: TIME_WAIT is the rest.
    // (No timewait socket at all: nothing to dump.)
    if pressure.time_wait > 0
        && let Ok(orphans) = timewait_fin_wait2()
    {
        pressure.time_wait = pressure.time_wait.saturating_sub(orphans);
    }
    Ok((pressure, tcp_listeners().ok()))
}

/// Timewait sockets still in FIN_WAIT2 (orphans whose peer has not sent its
/// FIN), which sock_diag shows with the timewait timer (3).
fn timewait_fin_wait2() -> io::Result<u64> {
    let mut count = 0;
    for family in [AF_INET, AF_INET6] {
        let fin_wait2 = tcp_sockets_in(family, 1 << tcp_state::FIN_WAIT2)?;
        count += fin_wait2.iter().filter(|s| s.timer == 3).count() as u64;
    }
    Ok(count)
}

fn tcp_listeners_of(family: u8) -> io::Result<Vec<ListenerLoad>> {
    let mut req = request(family, 1 << tcp_state::LISTEN, libc::NLM_F_DUMP);
    // idiag_ext: ask for INET_DIAG_SKMEMINFO, which holds sk_drops.
    req[NLMSG_HEADER + 2] = 1u8 << (INET_DIAG_SKMEMINFO - 1);
    let mut listeners = Vec::new();
    exchange(&req, |batch| parse_batch(batch, &mut listeners, listener))?;
    Ok(listeners)
}

/// The TCP socket with exactly these endpoints, TIME_WAIT ones included,
/// in the calling thread's network namespace; None when the kernel holds
/// none. Only meaningful where `tcp_sockets_in` works: a kernel without TCP
/// sock_diag answers "none" too.
pub fn tcp_socket(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<InetSocket>> {
    let mut found = None;
    let asked = exchange(&lookup_request(local, remote), |batch| {
        let mut records = Vec::new();
        parse_batch(batch, &mut records, record)?;
        found = records.pop();
        // A lookup's answer is one message, with no end-of-dump after it.
        Ok(true)
    });
    match asked {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        other => other.map(|()| found),
    }
}

/// Sends `request` on a new sock_diag socket and hands each read to
/// `batch` until it returns true.
fn exchange(request: &[u8], mut batch: impl FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()> {
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
        if batch(&buf[..n as usize])? {
            return Ok(());
        }
    }
}

/// SOCK_DIAG_BY_FAMILY dump of the TCP sockets of `family` in `states`.
fn dump_request(family: u8, states: u32) -> [u8; NLMSG_HEADER + REQUEST] {
    // idiag_states (all: request sockets, NEW_SYN_RECV, included).
    request(family, states, libc::NLM_F_DUMP)
}

/// SOCK_DIAG_BY_FAMILY lookup of the one TCP socket `local` -> `remote`.
fn lookup_request(local: SocketAddr, remote: SocketAddr) -> [u8; NLMSG_HEADER + REQUEST] {
    let both_v4 = local.is_ipv4() && remote.is_ipv4();
    let family = if both_v4 { AF_INET } else { AF_INET6 };
    let mut req = request(family, u32::MAX, 0);
    // struct inet_diag_sockid: ports big-endian, addresses in network order.
    let id = NLMSG_HEADER + 8;
    req[id..id + 2].copy_from_slice(&local.port().to_be_bytes());
    req[id + 2..id + 4].copy_from_slice(&remote.port().to_be_bytes());
    for (at, addr) in [(id + 4, local.ip()), (id + 20, remote.ip())] {
        match addr {
            IpAddr::V4(a) if both_v4 => req[at..at + 4].copy_from_slice(&a.octets()),
            a => req[at..at + 16].copy_from_slice(&ipv6(a).octets()),
        }
    }
    // idiag_cookie: INET_DIAG_NOCOOKIE, any socket with these endpoints.
    req[id + 40..id + 48].fill(0xff);
    req
}

/// An address as IPv6 (IPv4 ones mapped), as the IPv6 tables hold them.
fn ipv6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// A SOCK_DIAG_BY_FAMILY request for TCP sockets of `family` in `states`,
/// its socket id zero (filled in by lookups).
fn request(family: u8, states: u32, flags: i32) -> [u8; NLMSG_HEADER + REQUEST] {
    let mut req = [0u8; NLMSG_HEADER + REQUEST];
    let flags = (libc::NLM_F_REQUEST | flags) as u16;
    req[0..4].copy_from_slice(&((NLMSG_HEADER + REQUEST) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&states.to_ne_bytes());
    req
}

/// Appends the records of one read to `out`; true once the dump is done.
pub(crate) fn parse_batch<T>(
    mut batch: &[u8],
    out: &mut Vec<T>,
    record: impl Fn(&[u8]) -> Option<T>,
) -> io::Result<bool> {
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
                // The kernel sends -errno; a hostile or broken peer may
                // send i32::MIN, whose negation overflows.
                return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
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
pub(crate) fn record(body: &[u8]) -> Option<InetSocket> {
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

/// One listener's record and its INET_DIAG_SKMEMINFO attribute.
pub(crate) fn listener(body: &[u8]) -> Option<ListenerLoad> {
    let socket = record(body)?;
    let r = &body[..RECORD];
    let mut attrs = &body[RECORD..];
    let mut drops = None;
    // struct rtattr: u16 length (header included), u16 type, 4-byte aligned.
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 {
            return None;
        }
        let value = attrs.get(4..len)?;
        if kind == INET_DIAG_SKMEMINFO {
            let at = 4 * SK_MEMINFO_DROPS;
            drops = Some(u32::from_ne_bytes(value.get(at..at + 4)?.try_into().ok()?));
        }
        attrs = attrs.get(len.next_multiple_of(4).min(attrs.len())..)?;
    }
    Some(ListenerLoad {
        local: socket.local,
        inode: socket.inode,
        accept_queue: socket.rx_queue,
        // For a listener the kernel's "write queue" is its backlog limit.
        accept_queue_max: u64::from(u32::from_ne_bytes(r[60..64].try_into().ok()?)),
        drops: u64::from(drops?),
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
        assert!(!parse_batch(&batch, &mut out, record).unwrap());
        assert!(parse_batch(&message(NLMSG_DONE, &[0; 4]), &mut out, record).unwrap());
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
    fn a_listeners_record_gives_its_queue_and_drops() {
        let mut body = diag_record(2, tcp_state::LISTEN, &[127, 0, 0, 1], &[0; 4]);
        let mut meminfo = vec![0u8; 4 * 9];
        meminfo[4 * SK_MEMINFO_DROPS..].copy_from_slice(&57u32.to_ne_bytes());
        body.extend_from_slice(&((4 + meminfo.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&INET_DIAG_SKMEMINFO.to_ne_bytes());
        body.extend_from_slice(&meminfo);
        let l = listener(&body).unwrap();
        assert_eq!(l.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((l.accept_queue, l.accept_queue_max, l.drops), (3, 128, 57));
        // Without the attribute, or with a broken one, there is no figure.
        assert!(listener(&body[..RECORD + 8]).is_none());
        let mut broken = body.clone();
        broken[RECORD + 8..RECORD + 10].copy_from_slice(&2u16.to_ne_bytes());
        assert!(listener(&broken).is_none());
    }

    #[test]
    fn errors_and_truncation_are_errors() {
        let mut out = Vec::new();
        let enoent = message(NLMSG_ERROR, &(-libc::ENOENT).to_ne_bytes());
        let err = parse_batch(&enoent, &mut out, record).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let mut cut = message(SOCK_DIAG_BY_FAMILY, &[0; RECORD]);
        cut.truncate(40);
        assert!(parse_batch(&cut, &mut out, record).is_err());
        // Found by the sock_diag fuzz target: a negation that overflowed.
        let min = message(NLMSG_ERROR, &i32::MIN.to_ne_bytes());
        assert!(parse_batch(&min, &mut out, record).is_err());
        let short = message(SOCK_DIAG_BY_FAMILY, &[0; 20]);
        assert!(parse_batch(&short, &mut out, record).is_err());
    }
}
