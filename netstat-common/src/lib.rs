//! Types shared by the kernel programs (`netstat-ebpf`) and userspace.
//!
//! Everything here crosses the kernel/user boundary, so every type is
//! `#[repr(C)]`, plain old data, and defined exactly once.
#![no_std]

/// Kinds of kernel event (the `kind` field of [`Event`]).
pub mod kind {
    /// `sock/inet_sock_set_state`: a TCP socket changed state.
    pub const STATE: u8 = 1;
    /// `tcp/tcp_retransmit_skb`: a segment was retransmitted.
    pub const RETRANSMIT: u8 = 2;
    /// `tcp/tcp_retransmit_synack`: a SYN-ACK was retransmitted.
    pub const RETRANSMIT_SYNACK: u8 = 3;
    /// `tcp/tcp_send_reset`: this host sent a reset.
    pub const SEND_RESET: u8 = 4;
    /// `tcp/tcp_receive_reset`: this host received a reset.
    pub const RECEIVE_RESET: u8 = 5;
    /// `skb:kfree_skb`: the kernel dropped a TCP packet (`-E --drops`).
    pub const DROP: u8 = 6;
}

/// Bits of [`Event::flags`] and [`SockInfo::flags`].
pub mod flags {
    /// The socket received a reset before this event; a FIN_WAIT2/CLOSING -> CLOSE
    /// transition then means "killed by the peer", not "entered TIME_WAIT".
    pub const RESET_RECEIVED: u8 = 1;
    /// The owner (tgid, comm) was captured in syscall context or inherited from
    /// the listener, so it names the socket's owner rather than whatever task the
    /// softirq happened to interrupt.
    pub const OWNER_KNOWN: u8 = 2;
    /// (Events only.) The kernel ran none of our programs for the change
    /// that put the socket in its old state, so the time spent there is
    /// not known.
    pub const AFTER_GAP: u8 = 4;
    /// (Events only.) At FIN_WAIT2 -> CLOSE: the peer's FIN had not arrived
    /// (`SOCK_DONE` clear), so the kernel hands the orphaned connection to a
    /// timewait socket that stays in FIN_WAIT2, not TIME_WAIT.
    pub const PEER_FIN_PENDING: u8 = 8;
    /// (Socket records only.) A change of this socket was not sent (the
    /// ring was full): its next event carries `AFTER_GAP`.
    pub const UNREPORTED: u8 = 16;
    /// The peer opened the connection: this end was accepted from a
    /// listener (LISTEN -> SYN_RECV seen); the event is a listener's or a
    /// request socket's; or it is a reset for no socket, or a drop, of a
    /// SYN. The peer's port is then an ephemeral one, so the summary counts
    /// such a peer by its address alone.
    pub const INBOUND: u8 = 32;
}

/// Indices of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Ring-buffer reservations that failed: events lost in the kernel.
    pub const LOST: u32 = 0;
    /// Sockets whose owner could not be remembered because `SOCKS` was full.
    pub const SOCK_MAP_FULL: u32 = 1;
    /// Events of other network namespaces, dropped in the kernel.
    pub const OTHER_NETNS: u32 = 2;
    /// Events the kernel skipped a tracepoint's first program for (it fired
    /// while that program ran on the same CPU) that the second program
    /// handled instead.
    pub const RECOVERED: u32 = 3;
    /// Events the user's `Filter` dropped in the kernel.
    pub const FILTERED: u32 = 4;
    /// Gaps in a socket's history: a change whose old state is not the new
    /// state we last saw, or a new socket at the address of one whose end we
    /// never saw. Each hides at least one state change that the kernel ran
    /// none of our programs for, and counted nowhere else. Also each SYN
    /// retransmit an unanswered connect's `tcp_sock.total_retrans` counts
    /// beyond the retransmit events seen for it.
    pub const GAPS: u32 = 5;
    /// Entries made in `SOCKS` and `LISTENERS` and entries removed from
    /// them. Both are LRU maps: what a full map evicted is added - removed -
    /// the entries still there.
    pub const SOCKS_ADDED: u32 = 6;
    pub const SOCKS_REMOVED: u32 = 7;
    pub const LISTENERS_ADDED: u32 = 8;
    pub const LISTENERS_REMOVED: u32 = 9;
    /// Per CPU, events lost (`LOST`) that no `LossMark` has announced yet;
    /// the kernel side zeroes it when it writes one.
    pub const LOST_UNMARKED: u32 = 10;
    pub const COUNT: u32 = 11;
}

/// Names of the maps, as the kernel object spells them (the kernel side's
/// `#[map]` statics carry these names; a userspace unit test checks the
/// built object against them).
pub mod maps {
    pub const EVENTS: &str = "EVENTS";
    pub const SOCKS: &str = "SOCKS";
    pub const LISTENERS: &str = "LISTENERS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const STATS: &str = "STATS";
    pub const REMOTES: &str = "REMOTES";
    pub const CGROUPS: &str = "CGROUPS";
    pub const PROGRAMS: &str = "PROGRAMS";
    pub const CGROUP_FILTER: &str = "CGROUP_FILTER";
    pub const CLOSED_LISTENERS: &str = "CLOSED_LISTENERS";
    pub const HANDLED: &str = "HANDLED";
    pub const SCRATCH: &str = "SCRATCH";
    pub const NESTING: &str = "NESTING";
    pub const NETNS_STATS: &str = "NETNS_STATS";
    pub const ZERO_STATS: &str = "ZERO_STATS";
    /// The read-only global userspace fills in before load.
    pub const CONFIG: &str = "CONFIG";
    /// `SOCKS`'s size unless `--max-sockets` says otherwise; `LISTENERS`
    /// holds an eighth as many.
    pub const SOCKS_ENTRIES: u32 = 131_072;
    pub const LISTENERS_PER_SOCKS: u32 = 8;
}

/// A tracepoint the kernel programs sit on: its pair of programs (the
/// first named after the tracepoint, the second reporting what the kernel
/// skipped the first for) and the leading raw arguments they read, as the
/// kernel's BTF spells them.
#[derive(Clone, Copy, Debug)]
pub struct Tracepoint {
    pub category: &'static str,
    pub name: &'static str,
    pub second: &'static str,
    pub args: &'static [&'static str],
}

pub const TRACEPOINTS: [Tracepoint; 6] = [
    Tracepoint {
        category: "sock",
        name: "inet_sock_set_state",
        second: "inet_sock_set_state_second",
        args: &["struct sock *", "int", "int"],
    },
    Tracepoint {
        category: "tcp",
        name: "tcp_retransmit_skb",
        second: "tcp_retransmit_skb_second",
        args: &["struct sock *", "struct sk_buff *"],
    },
    Tracepoint {
        category: "tcp",
        name: "tcp_retransmit_synack",
        second: "tcp_retransmit_synack_second",
        args: &["struct sock *", "struct request_sock *"],
    },
    Tracepoint {
        category: "tcp",
        name: "tcp_send_reset",
        second: "tcp_send_reset_second",
        args: &["struct sock *", "struct sk_buff *"],
    },
    Tracepoint {
        category: "tcp",
        name: "tcp_receive_reset",
        second: "tcp_receive_reset_second",
        args: &["struct sock *"],
    },
    // Emits nothing: frees the kernel side's per-socket entry.
    Tracepoint {
        category: "tcp",
        name: "tcp_destroy_sock",
        second: "tcp_destroy_sock_second",
        args: &["struct sock *"],
    },
];

/// Kernel functions whose fentry programs (named after them) report the
/// resets that `tcp_send_reset` misses before Linux 6.10: for no socket,
/// and by TIME_WAIT and SYN_RECV sockets.
pub const RESET_FUNCTIONS: [&str; 2] = ["tcp_v4_send_reset", "tcp_v6_send_reset"];

/// The program on `skb:kfree_skb` (raw arguments `skb, location, reason` on
/// every kernel of the matrix) that counts TCP packets dropped, by reason;
/// attached for `--summary` only (it runs for every packet freed as dropped).
pub const DROP_PROGRAM: &str = "kfree_skb";

mod snmp;
pub mod stat;
mod tallies;
pub use snmp::snmp_field;
pub use tallies::{EndpointKey, OwnerStats, ProgramKey, RemoteStats, owners};
mod verdict;
pub use verdict::{SocketEnd, errno, failure};

/// The kernel swaps a closing socket for a timewait socket without a
/// tracepoint: what it reports as FIN_WAIT2/CLOSING -> CLOSE is really the
/// entry into TIME_WAIT, unless a reset killed the connection. An orphaned
/// FIN_WAIT2 socket whose peer has not sent its FIN yet (`PEER_FIN_PENDING`)
/// goes on as a timewait socket in FIN_WAIT2: no change of state at all.
#[inline(always)]
pub fn effective_new_state(old: u8, new: u8, event_flags: u8) -> u8 {
    let graceful = event_flags & flags::RESET_RECEIVED == 0;
    if new != tcp_state::CLOSE || !graceful {
        return new;
    }
    match old {
        tcp_state::FIN_WAIT2 if event_flags & flags::PEER_FIN_PENDING != 0 => tcp_state::FIN_WAIT2,
        tcp_state::FIN_WAIT2 | tcp_state::CLOSING => tcp_state::TIME_WAIT,
        _ => new,
    }
}

/// Whether the change `old` -> `effective` (as `effective_new_state` gives
/// it) ends a connection's full socket: a close (a listener's aside), the
/// entry into TIME_WAIT, or an orphan handed to a timewait socket in
/// FIN_WAIT2.
#[inline(always)]
pub fn ends_connection(old: u8, effective: u8) -> bool {
    (effective == tcp_state::CLOSE && old != tcp_state::LISTEN)
        || effective == tcp_state::TIME_WAIT
        || (old == tcp_state::FIN_WAIT2 && effective == tcp_state::FIN_WAIT2)
}

mod filter;
pub use filter::Filter;

/// Value of the `NETNS_STATS` map: `STATS` of one network namespace (per
/// CPU; userspace sums), kept when every namespace is watched.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetnsStats {
    /// `STATS`' indices, in a power of two of slots so that the kernel side
    /// can bound an index by masking it (the verifier follows a mask where
    /// it loses a compiler-moved comparison).
    pub counts: [u64; NetnsStats::SLOTS],
}

impl NetnsStats {
    pub const SLOTS: usize = (stat::COUNT as usize).next_power_of_two();
}

/// Linux TCP states as the kernel numbers them (`include/net/tcp_states.h`).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    pub const NEW_SYN_RECV: u8 = 12;
}

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const TASK_COMM_LEN: usize = 16;

/// One record in the `EVENTS` ring buffer.
///
/// Addresses are raw network-order bytes (IPv4 in the first 4 bytes); ports are
/// host order. For non-state events `oldstate` is 0 and `newstate` is the state
/// the socket was in when the event hit it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event fired.
    pub ts_ns: u64,
    /// When this socket last changed state, if the kernel side saw it; 0 = unknown
    /// (the socket predates the tool).
    pub prev_ts_ns: u64,
    /// Kernel address of the socket: stable for the socket's life, only useful as a key.
    pub skaddr: u64,
    /// Inode of the socket's network namespace (0 = unknown).
    pub netns: u32,
    /// Owner's process id, valid when `flags` has `OWNER_KNOWN`.
    pub tgid: u32,
    /// Retransmissions seen on this socket so far.
    pub retransmits: u32,
    pub sport: u16,
    pub dport: u16,
    pub kind: u8,
    pub family: u8,
    pub oldstate: u8,
    pub newstate: u8,
    pub flags: u8,
    /// For a change to CLOSE: how the connection failed (`failure::*`).
    pub failure: u8,
    /// For a reset sent: the kernel's `enum sk_rst_reason` plus one; 0 where
    /// the kernel gives none (before Linux 6.10).
    pub reset_reason: u8,
    /// For a drop: the kernel's `enum skb_drop_reason` (below 128).
    pub drop_reason: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Owner's command name, valid when `flags` has `OWNER_KNOWN`.
    pub comm: [u8; TASK_COMM_LEN],
    // Per-connection totals, set on changes to CLOSE (and TIME_WAIT).
    /// When the socket was made (connect or accept); 0 = before the tool.
    pub born_ns: u64,
    /// `tcp_sock.bytes_acked`: bytes the peer acknowledged (as `ss -i`).
    pub bytes_acked: u64,
    /// `tcp_sock.bytes_received`: bytes received in order (as `ss -i`).
    pub bytes_received: u64,
    /// `tcp_sock.srtt_us` as the kernel keeps it: 8 times the smoothed
    /// round-trip time in us (`ss -i`'s rtt); 0: no RTT was ever sampled.
    pub srtt_us_x8: u32,
    /// `tcp_sock.total_retrans`: every retransmission of the connection.
    pub total_retrans: u32,
    /// The owner's cgroup v2 id, valid when `flags` has `OWNER_KNOWN`.
    pub cgroup: u64,
}

/// A ring record of its own kind, told from an [`Event`] by its size: events
/// were lost on this CPU (the ring was full) before the records that follow
/// it, so a reader sees where the stream has its hole.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossMark {
    /// `bpf_ktime_get_ns()` when the mark was written (the first record
    /// after the loss that fitted).
    pub ts_ns: u64,
    /// Events lost on this CPU since its last mark.
    pub lost: u64,
}

/// Sentinel offset for a kernel struct member this kernel does not have.
pub const NO_FIELD: u16 = u16::MAX;

/// Offsets into kernel structs, read from the kernel's BTF by userspace: the
/// kernel programs get only the tracepoints' raw arguments (socket and packet
/// pointers) and read everything else through these, so that a kernel that
/// moves a member still works.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct sock` -> `__sk_common.skc_net.net` (a `struct net *`).
    pub sock_net: u16,
    /// `struct sk_buff` -> `dev` (a `struct net_device *`).
    pub skb_dev: u16,
    /// `struct net_device` -> `nd_net.net` (a `struct net *`).
    pub netdev_net: u16,
    /// `struct net` -> `ns.inum`.
    pub net_inum: u16,
    /// `struct sock` -> `__sk_common.skc_state`, for tracepoints without a state field.
    pub sock_state: u16,
    /// `struct sock` -> `__sk_common.skc_family`.
    pub sock_family: u16,
    /// `struct sock` -> `__sk_common.skc_dport` (network order).
    pub sock_dport: u16,
    /// `struct sock` -> `__sk_common.skc_daddr`.
    pub sock_daddr: u16,
    /// `struct sock` -> `__sk_common.skc_v6_daddr`.
    pub sock_v6_daddr: u16,
    /// `struct sock` -> `__sk_common.skc_v6_rcv_saddr`.
    pub sock_v6_saddr: u16,
    /// `struct inet_sock` -> `inet_sport` (network order).
    pub inet_sport: u16,
    /// `struct inet_sock` -> `inet_saddr`.
    pub inet_saddr: u16,
    /// `struct sock` -> `__sk_common.skc_num` (host order; a request socket's local port).
    pub sock_num: u16,
    /// `struct sock` -> `__sk_common.skc_rcv_saddr` (a request socket's local address).
    pub sock_rcv_saddr: u16,
    // A reset a listener sends names the listener in the tracepoint, not the
    // peer it hits; the peer comes from the packet being answered.
    /// `struct sk_buff` -> `head` (start of the buffer).
    pub skb_head: u16,
    /// `struct sk_buff` -> `network_header` (offset from `head`).
    pub skb_network_header: u16,
    /// `struct sk_buff` -> `transport_header` (offset from `head`).
    pub skb_transport_header: u16,
    /// `struct tcp_sock` -> `bytes_acked` (u64).
    pub tcp_bytes_acked: u16,
    /// `struct tcp_sock` -> `bytes_received` (u64).
    pub tcp_bytes_received: u16,
    /// `struct tcp_sock` -> `srtt_us` (u32, the smoothed RTT << 3).
    pub tcp_srtt_us: u16,
    /// `struct tcp_sock` -> `total_retrans` (u32).
    pub tcp_total_retrans: u16,
    /// `struct net` -> `ipv4.ip_local_ports.range` (u32: low | high << 16),
    /// the ports connect() picks from; `NO_FIELD` where the kernel keeps
    /// them otherwise (any port may then be picked).
    pub net_port_range: u16,
    /// `struct sock` -> `__sk_common.skc_flags` (`sk_flags`: an unsigned long of `enum sock_flags` bits).
    pub sock_flags: u16,
    /// The bit of `SOCK_DONE` in `sk_flags`: set when the peer's FIN arrived.
    pub sock_done_bit: u16,
    /// `struct sock` -> `sk_err` (int): the error a socket ended with.
    pub sock_err: u16,
    /// `struct sock` -> `sk_err_soft` (int): an ICMP error seen meanwhile.
    pub sock_err_soft: u16,
    /// `struct tcp_sock` -> `segs_out` (u32): segments sent, the SYN included.
    pub tcp_segs_out: u16,
    /// `struct sock` -> `sk_drops` (atomic_t): what a listener dropped.
    pub sock_drops: u16,
}

/// Everything the kernel programs are told at load time (a read-only global).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Only report sockets in this network namespace (inode); 0 = all.
    pub netns: u32,
    pub kernel: KernelOffsets,
    pub filter: Filter,
    /// Count (`STATS`) but send no events: `--summary`, `--metrics` alone.
    pub counts_only: u8,
    /// Fill `REMOTES` (`--summary` reads it).
    pub count_remotes: u8,
    /// Count per owner (`owners::*`): nothing, connects by cgroup
    /// (`--metrics`), or everything `--summary` lists.
    pub count_owners: u8,
    /// Fill `NETNS_STATS` (`--metrics --netns all` reads it).
    pub count_per_netns: u8,
    /// `tcp_send_reset` has a third argument, the reset's reason (6.10+).
    pub reset_reason_arg: u8,
    /// Send an event for each TCP packet dropped (`-E --drops`).
    pub log_drops: u8,
    pub _pad3: [u8; 2],
}

impl Config {
    pub const ZERO: Self = Self {
        netns: 0,
        kernel: KernelOffsets {
            sock_net: 0,
            skb_dev: 0,
            netdev_net: 0,
            net_inum: 0,
            sock_state: 0,
            sock_family: 0,
            sock_dport: 0,
            sock_daddr: 0,
            sock_v6_daddr: 0,
            sock_v6_saddr: 0,
            inet_sport: 0,
            inet_saddr: 0,
            sock_num: 0,
            sock_rcv_saddr: 0,
            skb_head: 0,
            skb_network_header: 0,
            skb_transport_header: 0,
            tcp_bytes_acked: 0,
            tcp_bytes_received: 0,
            tcp_srtt_us: 0,
            tcp_total_retrans: 0,
            net_port_range: NO_FIELD,
            sock_flags: 0,
            sock_done_bit: 0,
            sock_err: 0,
            sock_err_soft: 0,
            tcp_segs_out: 0,
            sock_drops: 0,
        },
        filter: Filter {
            addr: [0; 16],
            addr_mask: [0; 16],
            pid: 0,
            port: 0,
            sport: 0,
            dport: 0,
            states: 0,
            addr_family: 0,
            by_cgroup: 0,
            families: 0,
        },
        counts_only: 0,
        count_remotes: 0,
        count_per_netns: 0,
        reset_reason_arg: 0,
        log_drops: 0,
        count_owners: 0,
        _pad3: [0; 2],
    };
}

/// Value of the `SOCKS` map (key: socket address): what the kernel remembers
/// about a live socket between its events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    /// When the socket entered its current state.
    pub ts_ns: u64,
    pub tgid: u32,
    pub retransmits: u32,
    pub flags: u8,
    /// The state the socket is in (for the summary's SYN_SENT ages).
    pub state: u8,
    /// The state it left for `state`: with `state`, names the last change
    /// reported, so that a second report of it is recognised.
    pub prev_state: u8,
    pub _pad: [u8; 5],
    pub comm: [u8; TASK_COMM_LEN],
    /// When the socket was made, if the kernel side saw it; 0 = unknown.
    pub born_ns: u64,
    /// The owner's cgroup v2 id, valid with `OWNER_KNOWN`.
    pub cgroup: u64,
}

/// Key of the `LISTENERS` map: a listening port in a namespace. Children of a
/// listener inherit its owner through this map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenKey {
    pub netns: u32,
    pub port: u16,
    pub _pad: u16,
}

/// Value of the `LISTENERS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenOwner {
    /// The listening socket, so that only its own close removes the entry.
    pub skaddr: u64,
    pub tgid: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
    pub cgroup: u64,
}

// The kernel and userspace must agree on these sizes; no implicit padding.
const _: () = assert!(size_of::<Event>() == 136);
const _: () = assert!(size_of::<Filter>() == 48);
const _: () = assert!(size_of::<ListenKey>() == 8);
const _: () = assert!(size_of::<EndpointKey>() == 24);
const _: () = assert!(size_of::<ListenOwner>() == 40);
const _: () = assert!(size_of::<SockInfo>() == 56);
const _: () = assert!(size_of::<ProgramKey>() == 32);
const _: () = assert!(size_of::<OwnerStats>() == 24);
const _: () = assert!(size_of::<Config>() == 4 + 56 + 48 + 8);
const _: () = assert!(size_of::<LossMark>() == 16);

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `#[repr(C)]` data with no padding holes the kernel
    // could leak into (sizes asserted above); so are the four below.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EndpointKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RemoteStats {}
    // SAFETY: an array of u64.
    unsafe impl aya::Pod for super::NetnsStats {}
    // SAFETY: as for Event (sizes asserted above).
    unsafe impl aya::Pod for super::ListenKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ListenOwner {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LossMark {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProgramKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::OwnerStats {}
}
