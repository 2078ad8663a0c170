//! Kernel side of enetstat: a pair of BTF-tracepoint programs per tracepoint,
//! turning each TCP event into a `netstat_common::Event` in the `EVENTS` ring
//! buffer.
//!
//! The kernel side only gathers facts. It remembers, per socket, when the socket
//! entered its state and who owns it (captured in syscall context, where the
//! current task really is the owner), because userspace cannot learn either
//! after the fact. Everything else (names, TIME_WAIT inference, formatting) is
//! userspace's job.
//!
//! BTF tracepoints (`tp_btf`), not classic ones: a classic tracepoint formats
//! its whole record before any program can look at it, which alone cost more
//! of a connection storm than the 5% a filtered-out storm may cost. These
//! hand over the C arguments (socket and packet pointers) typed by the
//! kernel's BTF, so that their members are plain loads the verifier checks,
//! at offsets userspace takes from that same BTF.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_skc_to_tcp_sock,
    },
    macros::{btf_tracepoint, fentry, map},
    maps::{HashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, FEntryContext},
};
use aya_log_ebpf::warn;
use netstat_common::{
    AF_INET, AF_INET6, Config, Event, Filter, ListenKey, ListenOwner, NO_FIELD, RemoteKey,
    RemoteStats, SockInfo, counter, effective_new_state, failure, flags, kind, stat, tcp_state,
};

/// Filled in by userspace before load (struct offsets, filter, namespace).
#[unsafe(no_mangle)]
static CONFIG: Config = Config::ZERO;

/// Default 16 MiB (~160k events, a 16k-connection burst the consumer has not
/// caught up with yet); userspace may resize it with `--ring-size`.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Live sockets the kernel side has seen, keyed by socket address. Bounded: a
/// failed insert is counted in `COUNTERS[SOCK_MAP_FULL]`, never silent.
#[map]
static SOCKS: HashMap<u64, SockInfo> = HashMap::with_max_entries(131_072, 0);

/// Owners of listening ports, so that accepted children inherit them.
#[map]
static LISTENERS: HashMap<ListenKey, ListenOwner> = HashMap::with_max_entries(16_384, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Traffic counts for `--summary` (indices in `netstat_common::stat`).
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Failures, resets and retransmits per remote endpoint, for the summary's
/// top lists; least recently used endpoints make room for new ones.
#[map]
static REMOTES: LruPerCpuHashMap<RemoteKey, RemoteStats> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// Per CPU: marks of the events the first program of a pair has handled,
/// for the second to take.
///
/// The kernel skips a BTF-tracepoint program whose tracepoint fires while
/// that same program runs on the CPU (a softirq interrupting a system
/// call's state change: 1,000-2,000 times in a 100,000-connection
/// normal-close storm here, never in a reset storm), and the event would
/// be lost. So each tracepoint has two programs
/// running the same code, the first attached before the second (a
/// tracepoint calls its probes in attach order). An event nested in the
/// first program's run still reaches the second, which finds no mark and
/// acts on it; one nested in the second's run reaches the first. A mark
/// (rather than an "inside" flag) also covers the instants the kernel holds
/// its guard before and after our code runs.
///
/// A mark names the event (socket, what) and the invocation: the address of
/// the argument array, which the kernel builds at the same stack address
/// for both programs of one invocation and elsewhere for nested ones. So a
/// mark left by a nested first program whose second was skipped (nested in
/// the second's own run) is not taken for a later event of the same socket,
/// and the slots are a ring: such leftovers, and those of the moment before
/// the second programs were attached, are overwritten by later marks
/// instead of filling the slots. A mark is only overwritten before its
/// second program runs if sixteen other events come between the two
/// programs of one invocation; the second then acts on the event again.
#[map]
static HANDLED: PerCpuArray<Marks> = PerCpuArray::with_max_entries(1, 0);

const MARK_SLOTS: usize = 16;

/// Per CPU, one slot per program: the event that program is putting
/// together. On the stack it would take 120 of the 512 bytes that a whole
/// call chain may use on 6.1's verifier. A program never runs nested in
/// itself on a CPU (the kernel skips such a run, see `HANDLED`), so while it
/// runs its slot is its own.
#[map]
static SCRATCH: PerCpuArray<Event> = PerCpuArray::with_max_entries(tp::PROGRAMS, 0);

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Marks {
    /// Marks made on this CPU so far; the next goes to `next % MARK_SLOTS`.
    next: u64,
    /// (socket, what, invocation); socket 0 = free.
    slots: [(u64, u64, u64); MARK_SLOTS],
}

/// What a mark names: tracepoint id << 16 | old state << 8 | new state
/// (states for inet_sock_set_state only).
mod tp {
    pub const SET_STATE: u64 = 1 << 16;
    pub const DESTROY_SOCK: u64 = 2 << 16;
    pub const RETRANSMIT_SKB: u64 = 3 << 16;
    pub const RETRANSMIT_SYNACK: u64 = 4 << 16;
    pub const SEND_RESET: u64 = 5 << 16;
    pub const RECEIVE_RESET: u64 = 6 << 16;
    /// The fentry programs on tcp_v4_send_reset and tcp_v6_send_reset.
    pub const SEND_RESET_V4: u64 = 7 << 16;
    pub const SEND_RESET_V6: u64 = 8 << 16;
    /// Slots of `SCRATCH`: two per id (`Run::slot`).
    pub const PROGRAMS: u32 = 2 * 9;

    pub fn set_state(old: u8, new: u8) -> u64 {
        SET_STATE | (old as u64) << 8 | new as u64
    }
}

/// Reads a `CONFIG` field. Volatile, because the compiler would otherwise fold
/// the zero initialiser into the code before userspace gets to fill it in.
#[inline(always)]
fn cfg<T: Copy>(field: &T) -> T {
    unsafe { core::ptr::read_volatile(field) }
}

/// The user's filter, read in place (a copy would cost 48 bytes of the
/// 512-byte stack); the volatile pointer read keeps the compiler from folding
/// the zero initialiser, as in `cfg`.
#[inline(always)]
fn filter() -> &'static Filter {
    let at: *const Filter = &CONFIG.filter;
    unsafe { &*core::ptr::read_volatile(&at) }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(n) = STATS.get_ptr_mut(index) {
        unsafe { *n += 1 };
    }
}

#[inline(always)]
fn bump(index: u32) {
    if let Some(count) = COUNTERS.get_ptr_mut(index) {
        unsafe { *count += 1 };
    }
}

// ---- The program pairs -------------------------------------------------

/// Which program of a tracepoint's pair is running (see `HANDLED`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    First,
    Second,
    /// A program without a second: it neither leaves nor takes marks.
    Alone,
}

/// What becomes of an event, decided from as few reads as possible before
/// the full report is put together.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Not an event we report at all (not TCP, not a change).
    Ignore,
    /// Of a network namespace other than the one asked for.
    OtherNetns,
    /// The user's filter can never want it.
    Filtered,
    /// Report it; the socket is in this network namespace.
    Report { netns: u32 },
}

/// One program's run on one event. The first program acts on every event
/// and marks it; the second acts only on events the first did not mark,
/// because the kernel skipped the first for them. A run decides from as few
/// reads as it can (`Verdict`), and its report applies the whole filter
/// again to the finished event.
struct Run {
    role: Role,
    /// (socket, what, invocation): see `HANDLED`.
    mark: (u64, u64, u64),
}

/// The zeroed event of the program in `slot` of `SCRATCH`.
#[inline(always)]
fn new_event(slot: u32) -> Option<&'static mut Event> {
    let ev = SCRATCH.get_ptr_mut(slot)?;
    // SAFETY: this CPU's slot of the running program, which the kernel never
    // runs nested in itself; no other reference to it is alive.
    let ev = unsafe { &mut *ev };
    *ev = Event::default();
    Some(ev)
}

impl Run {
    /// Starts a run, or None where there is nothing to do: the second
    /// program took the first's mark.
    #[inline(always)]
    fn begin(role: Role, ctx: &impl EbpfContext, key: u64, what: u64) -> Option<Run> {
        let run = Run {
            role,
            mark: (key, what, ctx.as_ptr() as u64),
        };
        if role == Role::Second {
            if run.take_mark() {
                return None;
            }
            bump(counter::RECOVERED);
        }
        Some(run)
    }

    /// This program's slot in `SCRATCH`.
    #[inline(always)]
    fn slot(&self) -> u32 {
        (self.mark.1 >> 16) as u32 * 2 + (self.role == Role::Second) as u32
    }

    /// Acts on the verdict and ends the run; `report` gets the namespace and
    /// the program's event slot.
    #[inline(always)]
    fn finish(self, verdict: Verdict, report: impl FnOnce(u32, u32)) -> i32 {
        match verdict {
            Verdict::Report { netns } => report(netns, self.slot()),
            Verdict::Filtered => bump(counter::FILTERED),
            Verdict::OtherNetns => bump(counter::OTHER_NETNS),
            Verdict::Ignore => {}
        }
        if self.role == Role::First {
            self.leave_mark();
        }
        0
    }

    /// Ends the first program's run: leaves its mark for the second.
    #[inline(always)]
    fn leave_mark(&self) {
        if self.mark.0 == 0 {
            return;
        }
        if let Some(marks) = HANDLED.get_ptr_mut(0) {
            let marks = unsafe { &mut *marks };
            let at = marks.next as usize % MARK_SLOTS;
            marks.next = marks.next.wrapping_add(1);
            marks.slots[at] = self.mark;
        }
    }

    /// Takes the first program's mark of this event, if it left one.
    #[inline(always)]
    fn take_mark(&self) -> bool {
        if self.mark.0 == 0 {
            return false;
        }
        let Some(marks) = HANDLED.get_ptr_mut(0) else {
            return false;
        };
        let marks = unsafe { &mut *marks };
        for slot in marks.slots.iter_mut() {
            if *slot == self.mark {
                slot.0 = 0;
                return true;
            }
        }
        false
    }
}

/// Defines a tracepoint's two programs, `$first` and `$second`, both
/// running `$body(&ctx, role)`.
macro_rules! program_pair {
    ($tracepoint:literal, $first:ident, $second:ident, $body:ident) => {
        #[btf_tracepoint(function = $tracepoint)]
        pub fn $first(ctx: BtfTracePointContext) -> i32 {
            $body(&ctx, Role::First)
        }

        #[btf_tracepoint(function = $tracepoint)]
        pub fn $second(ctx: BtfTracePointContext) -> i32 {
            $body(&ctx, Role::Second)
        }
    };
}

// ---- Reading the kernel's structs ------------------------------------------

/// Reads kernel memory the verifier knows nothing about (packet bytes).
#[inline(always)]
fn kread<T>(addr: u64) -> Option<T> {
    unsafe { bpf_probe_read_kernel(addr as *const T).ok() }
}

/// A member of a kernel object the tracepoint handed over, or of one
/// reached through such an object's pointer members: a plain load that the
/// verifier checks against the kernel's BTF (and that reads 0 where the
/// memory is gone), far cheaper than a bpf_probe_read_kernel call.
#[inline(always)]
fn load<T: Copy>(object: u64, offset: usize) -> T {
    unsafe { core::ptr::read_volatile((object as *const u8).add(offset) as *const T) }
}

/// A member at an offset of `CONFIG.kernel`.
#[inline(always)]
fn member<T: Copy>(object: u64, offset: &u16) -> T {
    load(object, cfg(offset) as usize)
}

/// 16 address bytes (an `in6_addr`) at an offset of `CONFIG.kernel`.
#[inline(always)]
fn address16(object: u64, offset: &u16) -> [u8; 16] {
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
fn tcp_sock(sk: u64) -> Option<u64> {
    // The helper takes only a socket-typed pointer, never a plain 0.
    if sk == 0 {
        return None;
    }
    let tsk = unsafe { bpf_skc_to_tcp_sock(sk as *mut core::ffi::c_void) } as u64;
    (tsk != 0).then_some(tsk)
}

/// Inode of the network namespace behind a `struct net *`.
#[inline(always)]
fn net_inum(net: u64) -> u32 {
    if net == 0 {
        return 0;
    }
    member(net, &CONFIG.kernel.net_inum)
}

#[inline(always)]
fn sock_net(sk: u64) -> u64 {
    member(sk, &CONFIG.kernel.sock_net)
}

/// Namespace of a socket, or failing that of the device an skb arrived on
/// (resets sent for no socket, e.g. a refused connect on the server side).
#[inline(always)]
fn netns_of(sk: u64, skb: u64) -> u32 {
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

/// Applies the namespace choice.
#[inline(always)]
fn netns_verdict(netns: u32) -> Verdict {
    let only = cfg(&CONFIG.netns);
    if only != 0 && only != netns {
        Verdict::OtherNetns
    } else {
        Verdict::Report { netns }
    }
}

#[inline(always)]
fn sock_state(sk: u64) -> u8 {
    member(sk, &CONFIG.kernel.sock_state)
}

/// The local ports connect() may pick in the socket's namespace.
#[inline(always)]
fn ephemeral_ports(sk: u64) -> (u16, u16) {
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
struct Ends {
    family: u8,
    sport: u16,
    dport: u16,
    saddr: [u8; 16],
    daddr: [u8; 16],
}

impl Ends {
    #[inline(always)]
    fn write_to(&self, ev: &mut Event) {
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
fn sock_ends(tsk: u64, with_addresses: bool) -> Ends {
    let k = &CONFIG.kernel;
    let (dport, family) = port_and_family(tsk);
    let mut ends = Ends {
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
fn write_ends(tsk: Option<u64>, ev: &mut Event) {
    if let Some(tsk) = tsk {
        sock_ends(tsk, true).write_to(ev)
    }
}

/// `skc_dport` (host order) and `skc_family` of a socket or request socket.
#[inline(always)]
fn port_and_family(sk: u64) -> (u16, u8) {
    let k = &CONFIG.kernel;
    let dport: u16 = member(sk, &k.sock_dport);
    (u16::from_be(dport), member::<u16>(sk, &k.sock_family) as u8)
}

/// Endpoints of the connection a reply to `skb` (an incoming TCP segment)
/// belongs to: local is the packet's destination, remote its source.
#[inline(always)]
fn endpoints_from_packet(skb: u64, ev: &mut Event) {
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
fn endpoints_from_request(req: u64, ev: &mut Event) {
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

// ---- Filtering -----------------------------------------------------------

/// The early verdict on an event of TCP socket `tsk` (see `tcp_sock`): its
/// namespace, then its endpoints when the filter looks at them. `always`: a
/// listener's own changes, which count whatever the filter (its children
/// inherit its owner).
#[inline(always)]
fn sock_verdict(tsk: u64, always: bool) -> Verdict {
    let verdict = netns_verdict(netns_of(tsk, 0));
    let f = filter();
    if always || !f.has_endpoint_terms() || verdict == Verdict::OtherNetns {
        return verdict;
    }
    let e = sock_ends(tsk, f.addr_family != 0);
    let ephemeral = if e.sport == 0 {
        ephemeral_ports(tsk)
    } else {
        (0, 0)
    };
    if f.endpoints_may_match(e.family, &e.saddr, e.sport, &e.daddr, e.dport, ephemeral) {
        verdict
    } else {
        Verdict::Filtered
    }
}

/// Whether the filter can never want the finished event's connection (by
/// its endpoints): then it is counted as filtered and no per-socket state is
/// kept.
#[inline(always)]
fn excluded(ev: &Event) -> bool {
    let f = filter();
    let out = !f.endpoints_may_match(
        ev.family,
        &ev.saddr,
        ev.sport,
        &ev.daddr,
        ev.dport,
        (0, u16::MAX),
    );
    if out {
        bump(counter::FILTERED);
    }
    out
}

/// Applies the user's whole filter to an event about to be sent; filtered
/// events are counted, not sent.
#[inline(always)]
fn passes(ev: &Event, states_match: bool) -> bool {
    let filter = filter();
    let owner = (ev.flags & flags::OWNER_KNOWN != 0).then_some(ev.tgid);
    let pass = states_match
        && filter.pid_matches(owner)
        && filter.endpoints_match(ev.family, &ev.saddr, ev.sport, &ev.daddr, ev.dport);
    if !pass {
        bump(counter::FILTERED);
    }
    pass
}

// ---- Reporting -----------------------------------------------------------

/// Unread bytes in the ring at which we wake the reader. Below it the reader
/// polls on a short timer (events::POLL): a wakeup per event costs the
/// reader a context switch per event in a storm.
const WAKEUP_BYTES: u64 = 256 * 1024;

#[inline(always)]
fn submit(ev: &Event) {
    if cfg(&CONFIG.quiet) != 0 {
        return;
    }
    let wake = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    // bpf_ringbuf_output copies in the kernel; a reserved slot would be
    // filled by a byte loop the verifier walks byte by byte.
    if EVENTS.output::<Event>(ev, wake as u64).is_err() {
        bump(counter::LOST);
    }
}

#[inline(always)]
fn copy_owner(ev: &mut Event, info: &SockInfo) {
    ev.tgid = info.tgid;
    ev.comm = info.comm;
    ev.retransmits = info.retransmits;
    ev.flags = info.flags;
}

/// Adds to the remote endpoint's entry in `REMOTES`. Not inlined: its
/// locals would not fit in the callers' stack frames.
#[inline(never)]
fn count_remote(ev: &Event, add: impl FnOnce(&mut RemoteStats)) {
    // Only `--summary` reads the map, and a server's remotes are new at
    // every connection: an LRU insert and eviction per event otherwise.
    if cfg(&CONFIG.quiet) == 0 {
        return;
    }
    let key = RemoteKey {
        addr: ev.daddr,
        port: ev.dport,
        family: ev.family,
        _pad: 0,
    };
    if let Some(entry) = REMOTES.get_ptr_mut(&key) {
        add(unsafe { &mut *entry });
    } else {
        let mut entry = RemoteStats::default();
        add(&mut entry);
        let _ = REMOTES.insert(&key, &entry, 0);
    }
}

// ---- sock/inet_sock_set_state: (struct sock *sk, int oldstate, int newstate)

program_pair!(
    "inet_sock_set_state",
    inet_sock_set_state,
    inet_sock_set_state_second,
    set_state
);

#[inline(always)]
fn set_state(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let sk: u64 = ctx.arg(0);
    let (old, new) = (ctx.arg::<u64>(1) as u8, ctx.arg::<u64>(2) as u8);
    let Some(run) = Run::begin(role, ctx, sk, tp::set_state(old, new)) else {
        return 0;
    };
    // close() after shutdown() re-sets FIN_WAIT1/FIN_WAIT2: not a change.
    let tcp = if old == new { None } else { tcp_sock(sk) };
    let verdict = match tcp {
        Some(tsk) => {
            let listener =
                new == tcp_state::LISTEN || (old == tcp_state::LISTEN && new == tcp_state::CLOSE);
            sock_verdict(tsk, listener)
        }
        None => Verdict::Ignore,
    };
    if verdict == Verdict::Filtered {
        forget_connect(sk, old);
    }
    run.finish(verdict, |netns, slot| {
        on_transition(ctx, sk, old, new, netns, slot)
    })
}

/// Transitions that only happen inside a system call made by the socket's owner:
/// connect(), listen() and close(). Everything else may run in softirq context.
#[inline(always)]
fn in_owner_syscall(old: u8, new: u8) -> bool {
    matches!(
        (old, new),
        (tcp_state::CLOSE, tcp_state::SYN_SENT)
            | (tcp_state::CLOSE, tcp_state::LISTEN)
            | (tcp_state::ESTABLISHED, tcp_state::FIN_WAIT1)
            | (tcp_state::CLOSE_WAIT, tcp_state::LAST_ACK)
    )
}

/// A connect()ed socket's record, kept since CLOSE->SYN_SENT when its local
/// port was not known yet and might have been wanted: once a change out of
/// SYN_SENT shows the filter excludes it, no later change will keep the
/// record up to date.
#[inline(always)]
fn forget_connect(sk: u64, old: u8) {
    if old == tcp_state::SYN_SENT && SOCKS.get_ptr(sk).is_some() {
        let _ = SOCKS.remove(sk);
    }
}

/// One TCP state change: report it with what the kernel side knows of the
/// socket, and remember the socket's new state.
#[inline(always)]
fn on_transition<C: EbpfContext>(ctx: &C, sk: u64, old: u8, new: u8, netns: u32, slot: u32) {
    let Some(tsk) = tcp_sock(sk) else {
        return;
    };
    let Some(ev) = new_event(slot) else {
        return;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    ev.ts_ns = now;
    ev.skaddr = sk;
    ev.netns = netns;
    ev.kind = kind::STATE;
    ev.oldstate = old;
    ev.newstate = new;
    sock_ends(tsk, true).write_to(ev);
    // A listener's own changes always count: its children inherit its owner.
    let listener =
        new == tcp_state::LISTEN || (old == tcp_state::LISTEN && new == tcp_state::CLOSE);
    if !listener && excluded(ev) {
        forget_connect(sk, old);
        return;
    }

    let born = (old == tcp_state::CLOSE && new == tcp_state::SYN_SENT)
        || (old == tcp_state::LISTEN && new == tcp_state::SYN_RECV);
    let mut info = match SOCKS.get_ptr(sk) {
        Some(known) => unsafe { *known },
        None => SockInfo::default(),
    };
    let mut gap = false;
    // State 0: an entry made by a retransmit or reset, history unknown.
    if info.state != 0 {
        if info.state == new && info.prev_state == old {
            // Both programs of a pair reported this change (the second
            // found the first's mark overwritten); the first report stands.
            return;
        }
        if info.state != old {
            // See README, "Known limits": the kernel ran none of our
            // programs for the changes in between.
            bump(counter::UNSEEN);
            gap = !born;
        }
    }
    if born {
        // A new socket, or a new attempt of a closed one: nothing of an
        // earlier one at this address (its owner, resets, retransmits)
        // carries over.
        info = SockInfo {
            born_ns: now,
            ..SockInfo::default()
        };
    }
    ev.prev_ts_ns = info.ts_ns;

    if in_owner_syscall(old, new) {
        info.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        info.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        info.flags |= flags::OWNER_KNOWN;
    }
    let listen_key = ListenKey {
        netns,
        port: ev.sport,
        _pad: 0,
    };
    if old == tcp_state::LISTEN
        && new == tcp_state::SYN_RECV
        && info.flags & flags::OWNER_KNOWN == 0
    {
        // A child cloned from a listener: it belongs to whoever listens.
        if let Some(parent) = unsafe { LISTENERS.get(&listen_key) } {
            info.tgid = parent.tgid;
            info.comm = parent.comm;
            info.flags |= flags::OWNER_KNOWN;
        }
    }
    copy_owner(ev, &info);
    if gap {
        ev.flags |= flags::AFTER_GAP;
    }
    ev.failure = failure(old, new, info.flags, info.retransmits);
    // A connection's end (a listener has no totals).
    if new == tcp_state::CLOSE && old != tcp_state::LISTEN {
        add_totals(tsk, &info, ev);
    }
    let effective = effective_new_state(old, new, info.flags);
    if passes(ev, filter().transition_matches(old, effective)) {
        count(stat::TRANSITIONS + (old as u32 & 15) * 16 + (effective as u32 & 15));
        if ev.failure != failure::NONE {
            count(stat::FAILURES + ev.failure as u32);
            if old == tcp_state::SYN_SENT {
                count_remote(ev, |r| r.failed_connects += 1);
            }
        }
        submit(ev);
    }

    if new == tcp_state::LISTEN {
        let owner = ListenOwner {
            skaddr: sk,
            tgid: info.tgid,
            _pad: 0,
            comm: info.comm,
        };
        let _ = LISTENERS.insert(&listen_key, &owner, 0);
    } else if old == tcp_state::LISTEN
        && unsafe { LISTENERS.get(&listen_key) }.is_some_and(|l| l.skaddr == sk)
    {
        let _ = LISTENERS.remove(&listen_key);
    }

    // Kept through CLOSE: a closed socket may still send a reset or connect
    // again. `tcp_destroy_sock` frees the entry.
    info.ts_ns = now;
    info.state = new;
    info.prev_state = old;
    if SOCKS.insert(sk, info, 0).is_err() {
        bump(counter::SOCK_MAP_FULL);
        warn!(ctx, "SOCKS map full: owner of a socket not remembered");
    }
}

/// A connection's totals as it closes: lifetime and the byte counters of
/// `struct tcp_sock`.
#[inline(always)]
fn add_totals(tsk: u64, info: &SockInfo, ev: &mut Event) {
    let k = &CONFIG.kernel;
    ev.born_ns = info.born_ns;
    ev.bytes_acked = member(tsk, &k.tcp_bytes_acked);
    ev.bytes_received = member(tsk, &k.tcp_bytes_received);
}

// ---- tcp/tcp_destroy_sock: (struct sock *sk) -------------------------------

program_pair!(
    "tcp_destroy_sock",
    tcp_destroy_sock,
    tcp_destroy_sock_second,
    destroy_sock
);

/// The socket is being freed: forget it. Emits nothing (the second
/// program frees the entry only where the first was skipped). Most sockets
/// of a filtered-out storm never had an entry, and a lookup costs less than
/// a failed delete.
#[inline(always)]
fn destroy_sock(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let sk: u64 = ctx.arg(0);
    let Some(run) = Run::begin(role, ctx, sk, tp::DESTROY_SOCK) else {
        return 0;
    };
    if SOCKS.get_ptr(sk).is_some() {
        let _ = SOCKS.remove(sk);
    }
    run.finish(Verdict::Ignore, |_, _| {})
}

// ---- Retransmits and resets ------------------------------------------------

/// Shared report of the retransmit and reset events: the event with what the
/// kernel side knows about its socket, updating that knowledge. `state` is
/// None when the caller knows no better than the socket itself.
#[inline(always)]
fn on_socket_event(
    sk: u64,
    skb: u64,
    (netns, slot): (u32, u32),
    event_kind: u8,
    state: Option<u8>,
    endpoints: impl FnOnce(&mut Event),
) {
    let state = match state {
        Some(state) => state,
        None if sk != 0 => sock_state(sk),
        None => 0,
    };
    let Some(ev) = new_event(slot) else {
        return;
    };
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.skaddr = sk;
    ev.netns = netns;
    ev.kind = event_kind;
    ev.newstate = state;
    endpoints(ev);
    if event_kind == kind::SEND_RESET
        && skb != 0
        && (sk == 0
            || matches!(
                state,
                tcp_state::LISTEN | tcp_state::TIME_WAIT | tcp_state::NEW_SYN_RECV
            ))
    {
        // A reset answering a packet for a listener, a timewait socket or
        // no socket: the connection's endpoints are the packet's.
        endpoints_from_packet(skb, ev);
    }
    if excluded(ev) {
        return;
    }

    // Only full sockets are remembered (they are sure to be destroyed, which
    // frees the entry); a reset may be sent for a timewait socket.
    if sk != 0 && (event_kind == kind::RETRANSMIT || event_kind == kind::RECEIVE_RESET) {
        let mut info = match SOCKS.get_ptr(sk) {
            Some(known) => unsafe { *known },
            None => SockInfo::default(),
        };
        if event_kind == kind::RETRANSMIT {
            info.retransmits += 1;
        } else {
            info.flags |= flags::RESET_RECEIVED;
        }
        ev.prev_ts_ns = info.ts_ns;
        copy_owner(ev, &info);
        if SOCKS.insert(sk, info, 0).is_err() {
            bump(counter::SOCK_MAP_FULL);
        }
    } else if sk != 0
        && let Some(info) = SOCKS.get_ptr(sk)
    {
        copy_owner(ev, unsafe { &*info });
    }
    if !passes(ev, filter().state_matches(state)) {
        return;
    }
    match event_kind {
        kind::RETRANSMIT => {
            count(stat::RETRANSMITS);
            count_remote(ev, |r| r.retransmits += 1);
        }
        kind::RETRANSMIT_SYNACK => {
            count(stat::SYNACK_RETRANSMITS);
            count_remote(ev, |r| r.retransmits += 1);
        }
        kind::SEND_RESET => {
            count(stat::RESETS_SENT);
            count_remote(ev, |r| r.resets += 1);
        }
        _ => {
            count(stat::RESETS_RECEIVED);
            count_remote(ev, |r| r.resets += 1);
        }
    }
    submit(ev);
}

/// The retransmit and reset events of a full TCP socket `sk`, whose
/// endpoints the event reports.
#[inline(always)]
fn full_socket_event(
    ctx: &BtfTracePointContext,
    role: Role,
    sk: u64,
    what: u64,
    event_kind: u8,
) -> i32 {
    let Some(run) = Run::begin(role, ctx, sk, what) else {
        return 0;
    };
    let tsk = tcp_sock(sk);
    let verdict = match tsk {
        Some(tsk) => sock_verdict(tsk, false),
        None => Verdict::Ignore,
    };
    run.finish(verdict, |netns, slot| {
        on_socket_event(sk, 0, (netns, slot), event_kind, None, |ev| {
            write_ends(tsk, ev)
        })
    })
}

program_pair!(
    "tcp_retransmit_skb",
    tcp_retransmit_skb,
    tcp_retransmit_skb_second,
    retransmit_skb
);

/// Raw arguments: (const struct sock *sk, const struct sk_buff *skb).
#[inline(always)]
fn retransmit_skb(ctx: &BtfTracePointContext, role: Role) -> i32 {
    full_socket_event(ctx, role, ctx.arg(0), tp::RETRANSMIT_SKB, kind::RETRANSMIT)
}

program_pair!(
    "tcp_receive_reset",
    tcp_receive_reset,
    tcp_receive_reset_second,
    receive_reset
);

/// Raw arguments: (struct sock *sk).
#[inline(always)]
fn receive_reset(ctx: &BtfTracePointContext, role: Role) -> i32 {
    full_socket_event(
        ctx,
        role,
        ctx.arg(0),
        tp::RECEIVE_RESET,
        kind::RECEIVE_RESET,
    )
}

program_pair!(
    "tcp_send_reset",
    tcp_send_reset,
    tcp_send_reset_second,
    send_reset
);

/// Raw arguments: (const struct sock *sk, const struct sk_buff *skb, reason).
/// A reset sent for a full socket names that socket; one sent for no socket
/// or a timewait or request one is told by the packet it answers, and
/// marked by that packet when there is no socket.
#[inline(always)]
fn send_reset(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let (sk, skb): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    let connection = sk != 0
        && !matches!(
            sock_state(sk),
            tcp_state::LISTEN | tcp_state::TIME_WAIT | tcp_state::NEW_SYN_RECV
        );
    if connection {
        return full_socket_event(ctx, role, sk, tp::SEND_RESET, kind::SEND_RESET);
    }
    reset_answering_packet(ctx, role, sk, skb, tp::SEND_RESET)
}

/// A reset sent by a listener, a timewait or request socket, or for no
/// socket (`sk` 0): its connection is the packet's, and with no socket the
/// packet marks the event.
#[inline(always)]
fn reset_answering_packet(ctx: &impl EbpfContext, role: Role, sk: u64, skb: u64, what: u64) -> i32 {
    let Some(run) = Run::begin(role, ctx, if sk != 0 { sk } else { skb }, what) else {
        return 0;
    };
    run.finish(netns_verdict(netns_of(sk, skb)), |netns, slot| {
        on_socket_event(sk, skb, (netns, slot), kind::SEND_RESET, None, |ev| {
            write_ends(tcp_sock(sk), ev)
        })
    })
}

program_pair!(
    "tcp_retransmit_synack",
    tcp_retransmit_synack,
    tcp_retransmit_synack_second,
    retransmit_synack
);

/// Raw arguments: (const struct sock *sk, const struct request_sock *req).
/// Reported on the listener, for a connection still in SYN_RECV. A request
/// socket starts with a `sock_common` whose port fields hold the
/// connection's ports; the event reports those, not the listener's.
#[inline(always)]
fn retransmit_synack(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let (sk, req): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    let Some(run) = Run::begin(role, ctx, sk, tp::RETRANSMIT_SYNACK) else {
        return 0;
    };
    run.finish(netns_verdict(netns_of(sk, 0)), |netns, slot| {
        on_socket_event(
            sk,
            0,
            (netns, slot),
            kind::RETRANSMIT_SYNACK,
            Some(tcp_state::SYN_RECV),
            |ev| endpoints_from_request(req, ev),
        )
    })
}

// ---- fentry tcp_v4_send_reset / tcp_v6_send_reset: (const struct sock *sk,
// struct sk_buff *skb, ...) --------------------------------------------------

// Before Linux 6.10 the tcp_send_reset tracepoint fires for full sockets
// only, so resets sent for no socket (a refused connect) or by a TIME_WAIT
// or SYN_RECV request socket go unreported. Userspace loads these two
// programs on such kernels only; they report exactly those resets, as the
// tracepoint does on later kernels. One program each, no second: they run
// in packet receive (softirq), and a rare run the kernel skips because a
// softirq interrupted the program's run on a full socket's backlog is
// counted as lost like any unrecovered skip.

#[fentry(function = "tcp_v4_send_reset")]
pub fn tcp_v4_send_reset(ctx: FEntryContext) -> i32 {
    reset_without_full_socket(&ctx, tp::SEND_RESET_V4)
}

#[fentry(function = "tcp_v6_send_reset")]
pub fn tcp_v6_send_reset(ctx: FEntryContext) -> i32 {
    reset_without_full_socket(&ctx, tp::SEND_RESET_V6)
}

#[inline(always)]
fn reset_without_full_socket(ctx: &FEntryContext, what: u64) -> i32 {
    let (sk, skb): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    // A full socket's reset reaches the tracepoint; the kernel never
    // answers a reset with a reset (the function returns first).
    let full = sk != 0
        && !matches!(
            sock_state(sk),
            tcp_state::TIME_WAIT | tcp_state::NEW_SYN_RECV
        );
    if full || skb == 0 || segment_is_reset(skb) {
        return 0;
    }
    reset_answering_packet(ctx, Role::Alone, sk, skb, what)
}

/// Whether the TCP segment in `skb` has its RST flag set.
#[inline(always)]
fn segment_is_reset(skb: u64) -> bool {
    let k = &CONFIG.kernel;
    let Some(head) = kread::<u64>(skb + cfg(&k.skb_head) as u64) else {
        return false;
    };
    let transport =
        head + kread::<u16>(skb + cfg(&k.skb_transport_header) as u64).unwrap_or(0) as u64;
    // Byte 13 of the TCP header holds the flags; RST is 0x04.
    kread::<u8>(transport + 13).is_some_and(|flags| flags & 0x04 != 0)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_kernel is only offered to GPL-compatible programs.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
