//! Reading the kernel's structs: typed loads through BTF pointers, at the
//! offsets userspace took from the kernel's BTF (`CONFIG.kernel`).

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_skc_to_tcp_sock};
use netstat_common::{AF_INET, AF_INET6, Event, NO_FIELD};

use crate::config::{CONFIG, cfg};

// ---- Reading the kernel's structs ------------------------------------------

/// Reads kernel memory the verifier knows nothing about (packet bytes).
#[inline(always)]
pub(crate) fn kread<T>(addr: u64) -> Option<T> {
    // SAFETY: the helper checks the address; a bad one fails, never faults.
    unsafe { bpf_probe_read_kernel(addr as *const T).ok() }
}

/// A member of a kernel object the tracepoint handed over, or of one
/// reached through such an object's pointer members: a plain load that the
/// verifier checks against the kernel's BTF (and that reads 0 where the
/// memory is gone), far cheaper than a bpf_probe_read_kernel call.
#[inline(always)]
pub(crate) fn load<T: Copy>(object: u64, offset: usize) -> T {
    // SAFETY: the verifier checks this load against the BTF type of
    // `object` and makes a faulting one read 0.
    unsafe { core::ptr::read_volatile((object as *const u8).add(offset) as *const T) }
}

/// A member at an offset of `CONFIG.kernel`.
#[inline(always)]
pub(crate) fn member<T: Copy>(object: u64, offset: &u16) -> T {
    load(object, cfg(offset) as usize)
}

/// 16 address bytes (an `in6_addr`) at an offset of `CONFIG.kernel`.
#[inline(always)]
pub(crate) fn address16(object: u64, offset: &u16) -> [u8; 16] {
    let at = cfg(offset) as usize;
    let (high, low): (u64, u64) = (load(object, at), load(object, at + 8));
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&high.to_ne_bytes());
    bytes[8..].copy_from_slice(&low.to_ne_bytes());
    bytes
}

/// `sk` typed as a `struct tcp_sock *` (same address), through which its
/// inet and TCP members may be loaded, when it is a full TCP socket.
#[inline(always)]
pub(crate) fn tcp_sock(sk: u64) -> Option<u64> {
    // The helper takes only a socket-typed pointer, never a plain 0.
    if sk == 0 {
        return None;
    }
    // SAFETY: the helper checks the socket's type and returns 0 for others.
    let tsk = unsafe { bpf_skc_to_tcp_sock(sk as *mut core::ffi::c_void) } as u64;
    (tsk != 0).then_some(tsk)
}

/// Inode of the network namespace behind a `struct net *`.
#[inline(always)]
pub(crate) fn net_inum(net: u64) -> u32 {
    if net == 0 {
        return 0;
    }
    member(net, &CONFIG.kernel.net_inum)
}

#[inline(always)]
pub(crate) fn sock_net(sk: u64) -> u64 {
    member(sk, &CONFIG.kernel.sock_net)
}

/// Namespace of a socket, or failing that of the device an skb arrived on
/// (resets sent for no socket, e.g. a refused connect on the server side).
#[inline(always)]
pub(crate) fn netns_of(sk: u64, skb: u64) -> u32 {
    if sk != 0 {
        return net_inum(sock_net(sk));
    }
    if skb == 0 {
        return 0;
    }
    // Rare path; `sk_buff.dev` shares a union the verifier cannot type.
    let k = &CONFIG.kernel;
    let dev = kread::<u64>(skb + cfg(&k.skb_dev) as u64).unwrap_or(0);
    if dev == 0 {
        return 0;
    }
    let net = kread::<u64>(dev + cfg(&k.netdev_net) as u64).unwrap_or(0);
    if net == 0 {
        return 0;
    }
    kread::<u32>(net + cfg(&k.net_inum) as u64).unwrap_or(0)
}

#[inline(always)]
pub(crate) fn sock_state(sk: u64) -> u8 {
    member(sk, &CONFIG.kernel.sock_state)
}

/// The local ports connect() may pick in the socket's namespace.
#[inline(always)]
pub(crate) fn ephemeral_ports(sk: u64) -> (u16, u16) {
    let at = cfg(&CONFIG.kernel.net_port_range);
    if at == NO_FIELD {
        return (0, u16::MAX);
    }
    let net = sock_net(sk);
    if net == 0 {
        return (0, u16::MAX);
    }
    let range: u32 = load(net, at as usize);
    (range as u16, (range >> 16) as u16)
}

/// A connection's endpoints (addresses as in `Event`).
#[derive(Clone, Copy)]
pub(crate) struct Endpoints {
    pub(crate) family: u8,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) saddr: [u8; 16],
    pub(crate) daddr: [u8; 16],
}

impl Endpoints {
    #[inline(always)]
    pub(crate) fn write_to(&self, ev: &mut Event) {
        ev.family = self.family;
        ev.sport = self.sport;
        ev.dport = self.dport;
        ev.saddr = self.saddr;
        ev.daddr = self.daddr;
    }
}

/// Reads the endpoints of TCP socket `tsk` (see `tcp_sock`) the way the
/// kernel's own tracepoint records show them (inet_sport/inet_saddr for the
/// local side: `skc_num` is cleared when a closing socket gives up its
/// port). Addresses only `with_addresses` (they stay zero otherwise).
#[inline(always)]
pub(crate) fn sock_ends(tsk: u64, with_addresses: bool) -> Endpoints {
    let k = &CONFIG.kernel;
    let (dport, family) = port_and_family(tsk);
    let mut ends = Endpoints {
        family,
        sport: u16::from_be(member(tsk, &k.inet_sport)),
        dport,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    if !with_addresses {
        return ends;
    }
    if ends.family == AF_INET6 {
        ends.saddr = address16(tsk, &k.sock_v6_saddr);
        ends.daddr = address16(tsk, &k.sock_v6_daddr);
    } else {
        ends.saddr[..4].copy_from_slice(&member::<u32>(tsk, &k.inet_saddr).to_ne_bytes());
        ends.daddr[..4].copy_from_slice(&member::<u32>(tsk, &k.sock_daddr).to_ne_bytes());
    }
    ends
}

/// The endpoints of TCP socket `tsk` (see `tcp_sock`), when there is one,
/// into `ev`.
#[inline(always)]
pub(crate) fn write_ends(tsk: Option<u64>, ev: &mut Event) {
    if let Some(tsk) = tsk {
        sock_ends(tsk, true).write_to(ev)
    }
}

/// `skc_dport` (host order) and `skc_family` of a socket or request socket.
#[inline(always)]
pub(crate) fn port_and_family(sk: u64) -> (u16, u8) {
    let k = &CONFIG.kernel;
    let dport: u16 = member(sk, &k.sock_dport);
    (u16::from_be(dport), member::<u16>(sk, &k.sock_family) as u8)
}

/// Whether `skb` holds an IPv4 or IPv6 packet whose next header is TCP
/// (IPv6 extension headers are not followed).
#[inline(always)]
pub(crate) fn is_tcp_packet(skb: u64) -> bool {
    let k = &CONFIG.kernel;
    let Some(head) = kread::<u64>(skb + cfg(&k.skb_head) as u64) else {
        return false;
    };
    let network = head + kread::<u16>(skb + cfg(&k.skb_network_header) as u64).unwrap_or(0) as u64;
    let protocol = match kread::<u8>(network).map(|b| b >> 4) {
        Some(4) => kread::<u8>(network + 9),
        Some(6) => kread::<u8>(network + 6),
        _ => None,
    };
    protocol == Some(6)
}

/// Endpoints of the connection a reply to `skb` (an incoming TCP segment)
/// belongs to: local is the packet's destination, remote its source.
#[inline(always)]
pub(crate) fn endpoints_from_packet(skb: u64, ev: &mut Event) {
    let k = &CONFIG.kernel;
    let Some(head) = kread::<u64>(skb + cfg(&k.skb_head) as u64) else {
        return;
    };
    let network = head + kread::<u16>(skb + cfg(&k.skb_network_header) as u64).unwrap_or(0) as u64;
    let transport =
        head + kread::<u16>(skb + cfg(&k.skb_transport_header) as u64).unwrap_or(0) as u64;
    // TCP header: source port, destination port (network order).
    let Some(ports) = kread::<[u16; 2]>(transport) else {
        return;
    };
    match kread::<u8>(network).map(|b| b >> 4) {
        Some(4) => {
            // IPv4 header: source address at 12, destination at 16.
            let addrs = kread::<[[u8; 4]; 2]>(network + 12).unwrap_or_default();
            ev.family = AF_INET;
            ev.saddr = [0; 16];
            ev.daddr = [0; 16];
            ev.daddr[..4].copy_from_slice(&addrs[0]);
            ev.saddr[..4].copy_from_slice(&addrs[1]);
        }
        Some(6) => {
            // IPv6 header: source address at 8, destination at 24.
            let addrs = kread::<[[u8; 16]; 2]>(network + 8).unwrap_or_default();
            ev.family = AF_INET6;
            ev.daddr = addrs[0];
            ev.saddr = addrs[1];
        }
        _ => return,
    }
    ev.dport = u16::from_be(ports[0]);
    ev.sport = u16::from_be(ports[1]);
}

/// Endpoints of a request socket: `sock_common` only (local port in
/// `skc_num`, host order), as the synack tracepoint records them.
#[inline(always)]
pub(crate) fn endpoints_from_request(req: u64, ev: &mut Event) {
    let k = &CONFIG.kernel;
    (ev.dport, ev.family) = port_and_family(req);
    ev.sport = member(req, &k.sock_num);
    if ev.family == AF_INET6 {
        ev.saddr = address16(req, &k.sock_v6_saddr);
        ev.daddr = address16(req, &k.sock_v6_daddr);
    } else {
        ev.saddr[..4].copy_from_slice(&member::<u32>(req, &k.sock_rcv_saddr).to_ne_bytes());
        ev.daddr[..4].copy_from_slice(&member::<u32>(req, &k.sock_daddr).to_ne_bytes());
    }
}

/// Whether the TCP segment in `skb` has its RST flag set.
#[inline(always)]
pub(crate) fn segment_is_reset(skb: u64) -> bool {
    segment_flags(skb) & RST != 0
}

/// Whether the TCP segment in `skb` opens a connection (SYN without ACK).
#[inline(always)]
pub(crate) fn segment_is_syn(skb: u64) -> bool {
    segment_flags(skb) & (SYN | ACK) == SYN
}

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Byte 13 of the TCP header in `skb`: its flags (0 if unreadable).
#[inline(always)]
fn segment_flags(skb: u64) -> u8 {
    let k = &CONFIG.kernel;
    let Some(head) = kread::<u64>(skb + cfg(&k.skb_head) as u64) else {
        return 0;
    };
    let transport =
        head + kread::<u16>(skb + cfg(&k.skb_transport_header) as u64).unwrap_or(0) as u64;
    kread::<u8>(transport + 13).unwrap_or(0)
}
