//! Kernel side of enetstat: one program per tracepoint, each turning the
//! tracepoint's record into a `netstat_common::Event` in the `EVENTS` ring buffer.
//!
//! The kernel side only gathers facts. It remembers, per socket, when the socket
//! entered its state and who owns it (captured in syscall context, where the
//! current task really is the owner), because userspace cannot learn either
//! after the fact. Everything else (names, TIME_WAIT inference, formatting) is
//! userspace's job.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{HashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use netstat_common::{
    AF_INET, AF_INET6, Config, Event, Filter, ListenKey, ListenOwner, NO_FIELD, RemoteKey,
    RemoteStats, SockInfo, TracepointFields, counter, effective_new_state, failure, flags, kind,
    stat, tcp_state,
};

/// Filled in by userspace before load (field offsets, namespace filter).
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

/// Per CPU: marks of the events our classic programs have handled and
/// whose raw twin has not run yet. The kernel runs no classic tracepoint
/// program nested inside another on the same CPU (one `bpf_prog_active`
/// guard for all), so a state change that a softirq makes while one runs is
/// skipped. Raw tracepoints have a guard per program: each classic program
/// has a raw twin on the same tracepoint, run after it, that reports the
/// event itself when it finds no mark. A mark (rather than an "inside" flag)
/// also covers the instants the kernel holds the guard before and after our
/// code runs.
///
/// Marks are a set, not a stack: a task may be preempted between the two
/// programs and another task's pairs run meanwhile. A twin can itself be
/// skipped, when its tracepoint fires inside a run of the same twin (an
/// interrupt); that run then drops the marks made since it started, so no
/// stale mark passes for a later event.
///
/// Classic programs are attached before their twins (a tracepoint calls its
/// probes in attach order, and the twin must come second), so marks made
/// just before a twin was attached are orphans. A twin's first run on a CPU
/// drops its tracepoint's orphans there: left alone, sixteen of them (every
/// TCP event on the machine makes a mark, in any namespace) would leave no
/// room for later marks, and every event would be reported twice.
#[map]
static HANDLED: PerCpuArray<Marks> = PerCpuArray::with_max_entries(1, 0);

const MARK_SLOTS: usize = 16;
/// Classic runs on a CPU after which a mark is stale: its event's twin ran
/// long ago without taking it (it fired right after that twin's clean-up).
/// A live mark waits only for the events nested before its twin, a few
/// hundred at most (one softirq's packets).
const MARK_LIFE: u64 = 4096;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Marks {
    /// Classic runs on this CPU so far; a mark's sequence number is its run's.
    next_seq: u64,
    /// Bit `tracepoint id` set once that twin has run on this CPU.
    twins_seen: u64,
    /// (socket, what, sequence number); socket 0 = free.
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

    pub fn set_state(old: u8, new: u8) -> u64 {
        SET_STATE | (old as u64) << 8 | new as u64
    }
}

/// A tracepoint's bit in `Marks::twins_seen`.
#[inline(always)]
fn twin_bit(what: u64) -> u64 {
    1 << ((what >> 16) & 63)
}

const IPPROTO_TCP: u16 = 6;

/// Reads a `CONFIG` field. Volatile, because the compiler would otherwise fold
/// the zero initialiser into the code before userspace gets to fill it in.
#[inline(always)]
fn cfg<T: Copy>(field: &T) -> T {
    unsafe { core::ptr::read_volatile(field) }
}

/// The user's filter, read in place (a copy would cost 32 bytes of the
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

/// Applies the user's filter to an event about to be sent; filtered events
/// are counted, not sent.
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

/// Whether the filter can never want this socket (by its endpoints): then
/// the event is counted as filtered and no per-socket state is kept.
#[inline(always)]
fn excluded(ev: &Event) -> bool {
    let out = !filter().endpoints_may_match(ev.family, &ev.saddr, ev.sport, &ev.daddr, ev.dport);
    if out {
        bump(counter::FILTERED);
    }
    out
}

#[inline(always)]
fn bump(index: u32) {
    if let Some(count) = COUNTERS.get_ptr_mut(index) {
        unsafe { *count += 1 };
    }
}

/// Ends a classic program: leaves the mark of the event it handled for its
/// raw twin. (With every slot taken, the twin reports the event again.)
#[inline(always)]
fn classic_done(sk: u64, what: u64) -> u32 {
    if let Some(marks) = HANDLED.get_ptr_mut(0) {
        let marks = unsafe { &mut *marks };
        let seq = marks.next_seq;
        marks.next_seq += 1;
        if sk != 0
            && let Some(slot) = marks
                .slots
                .iter_mut()
                .find(|(s, _, at)| *s == 0 || seq - *at > MARK_LIFE)
        {
            *slot = (sk, what, seq);
        }
    }
    0
}

/// A raw twin: runs `report` unless the classic program handled this event
/// (taking its mark); then drops the marks of classic runs nested in this
/// one (their twins were skipped: this program was running).
#[inline(always)]
fn twin(sk: u64, what: u64, report: impl FnOnce()) -> i32 {
    let Some(marks) = HANDLED.get_ptr_mut(0) else {
        report();
        return 0;
    };
    let marks = unsafe { &mut *marks };
    let started = marks.next_seq;
    let mut handled = false;
    for slot in marks.slots.iter_mut() {
        if slot.0 == sk && slot.1 == what && sk != 0 && started - slot.2 <= MARK_LIFE {
            slot.0 = 0;
            handled = true;
            break;
        }
    }
    if !handled {
        report();
    }
    let first_run = marks.twins_seen & twin_bit(what) == 0;
    marks.twins_seen |= twin_bit(what);
    for slot in marks.slots.iter_mut() {
        let orphan = first_run && slot.1 >> 16 == what >> 16;
        if slot.2 >= started || orphan {
            slot.0 = 0;
        }
    }
    0
}

/// Reads a field of the tracepoint record at an offset from the format file.
#[inline(always)]
fn field<T>(ctx: &TracePointContext, offset: u16) -> Option<T> {
    if offset == NO_FIELD {
        return None;
    }
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

#[inline(always)]
fn kread<T>(addr: u64) -> Option<T> {
    unsafe { bpf_probe_read_kernel(addr as *const T).ok() }
}

/// Inode of the network namespace behind a `struct net *`.
#[inline(always)]
fn net_inum(net: u64) -> u32 {
    if net == 0 {
        return 0;
    }
    kread::<u32>(net + cfg(&CONFIG.kernel.net_inum) as u64).unwrap_or(0)
}

/// Namespace of a socket, or failing that of the device an skb arrived on
/// (resets sent for no socket, e.g. a refused connect on the server side).
#[inline(always)]
fn netns_of(sk: u64, skb: u64) -> u32 {
    if sk != 0 {
        return net_inum(kread::<u64>(sk + cfg(&CONFIG.kernel.sock_net) as u64).unwrap_or(0));
    }
    if skb == 0 {
        return 0;
    }
    let dev = kread::<u64>(skb + cfg(&CONFIG.kernel.skb_dev) as u64).unwrap_or(0);
    if dev == 0 {
        return 0;
    }
    net_inum(kread::<u64>(dev + cfg(&CONFIG.kernel.netdev_net) as u64).unwrap_or(0))
}

/// Applies the namespace choice; other namespaces' events are counted, not
/// reported.
#[inline(always)]
fn wanted(netns: u32) -> bool {
    let only = cfg(&CONFIG.netns);
    if only != 0 && only != netns {
        bump(counter::OTHER_NETNS);
        return false;
    }
    true
}

/// Fills family, ports and addresses of `ev` from a tracepoint record.
#[inline(always)]
fn read_endpoints(ctx: &TracePointContext, f: &TracepointFields, ev: &mut Event) {
    if cfg(&f.addrs_are_sockaddr) != 0 {
        // struct sockaddr_in{,6}: family, port (network order), address.
        let (src, dst) = (cfg(&f.saddr), cfg(&f.daddr));
        let family = field::<u16>(ctx, src).unwrap_or(0) as u8;
        ev.family = family;
        ev.sport = u16::from_be(field::<u16>(ctx, src + 2).unwrap_or(0));
        ev.dport = u16::from_be(field::<u16>(ctx, dst + 2).unwrap_or(0));
        if family == AF_INET {
            ev.saddr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, src + 4).unwrap_or([0; 4]));
            ev.daddr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, dst + 4).unwrap_or([0; 4]));
        } else {
            ev.saddr = field(ctx, src + 8).unwrap_or([0; 16]);
            ev.daddr = field(ctx, dst + 8).unwrap_or([0; 16]);
        }
        return;
    }
    ev.family = field::<u16>(ctx, cfg(&f.family)).unwrap_or(0) as u8;
    ev.sport = field(ctx, cfg(&f.sport)).unwrap_or(0);
    ev.dport = field(ctx, cfg(&f.dport)).unwrap_or(0);
    if ev.family == AF_INET6 {
        ev.saddr = field(ctx, cfg(&f.saddr_v6)).unwrap_or([0; 16]);
        ev.daddr = field(ctx, cfg(&f.daddr_v6)).unwrap_or([0; 16]);
    } else {
        ev.saddr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, cfg(&f.saddr)).unwrap_or([0; 4]));
        ev.daddr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, cfg(&f.daddr)).unwrap_or([0; 4]));
    }
}

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

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let f = &CONFIG.set_state;
    let sk = field::<u64>(&ctx, cfg(&f.skaddr)).unwrap_or(0);
    let old = field::<i32>(&ctx, cfg(&f.oldstate)).unwrap_or(0) as u8;
    let new = field::<i32>(&ctx, cfg(&f.newstate)).unwrap_or(0) as u8;
    if field::<u16>(&ctx, cfg(&f.protocol)) == Some(IPPROTO_TCP) {
        on_transition(&ctx, sk, old, new, |ev| read_endpoints(&ctx, f, ev));
    }
    // Marked whatever the protocol: the twin then knows it was not skipped.
    classic_done(sk, tp::set_state(old, new))
}

/// Twin of `inet_sock_set_state` for the changes the kernel skipped it for.
/// Raw arguments: (struct sock *sk, int oldstate, int newstate).
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state_nested(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let (old, new) = (ctx.arg::<u64>(1) as u8, ctx.arg::<u64>(2) as u8);
    twin(sk, tp::set_state(old, new), || {
        bump(counter::RECOVERED);
        if kread::<u16>(sk + cfg(&CONFIG.kernel.sock_protocol) as u64) == Some(IPPROTO_TCP) {
            on_transition(&ctx, sk, old, new, |ev| endpoints_from_sock(sk, ev));
        }
    })
}

/// Reads a socket's endpoints from `struct sock` the way the tracepoint
/// records them (inet_sport/inet_saddr for the local side).
#[inline(always)]
fn endpoints_from_sock(sk: u64, ev: &mut Event) {
    let k = &CONFIG.kernel;
    let at = |offset: &u16| sk + cfg(offset) as u64;
    ev.family = kread::<u16>(at(&k.sock_family)).unwrap_or(0) as u8;
    ev.sport = u16::from_be(kread(at(&k.inet_sport)).unwrap_or(0));
    ev.dport = u16::from_be(kread(at(&k.sock_dport)).unwrap_or(0));
    if ev.family == AF_INET6 {
        ev.saddr = kread(at(&k.sock_v6_saddr)).unwrap_or([0; 16]);
        ev.daddr = kread(at(&k.sock_v6_daddr)).unwrap_or([0; 16]);
    } else {
        ev.saddr[..4].copy_from_slice(&kread::<[u8; 4]>(at(&k.inet_saddr)).unwrap_or([0; 4]));
        ev.daddr[..4].copy_from_slice(&kread::<[u8; 4]>(at(&k.sock_daddr)).unwrap_or([0; 4]));
    }
}

/// One TCP state change, whichever program saw it: report it with what the
/// kernel side knows of the socket, and remember the socket's new state.
#[inline(always)]
fn on_transition<C: EbpfContext>(
    ctx: &C,
    sk: u64,
    old: u8,
    new: u8,
    endpoints: impl FnOnce(&mut Event),
) {
    if old == new {
        // close() after shutdown() re-sets FIN_WAIT1/FIN_WAIT2: not a change.
        return;
    }
    let netns = netns_of(sk, 0);
    if !wanted(netns) {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let mut ev = Event {
        ts_ns: now,
        skaddr: sk,
        netns,
        kind: kind::STATE,
        oldstate: old,
        newstate: new,
        ..Event::default()
    };
    endpoints(&mut ev);
    // A listener's own changes always count: its children inherit its owner.
    let listener =
        new == tcp_state::LISTEN || (old == tcp_state::LISTEN && new == tcp_state::CLOSE);
    if !listener && excluded(&ev) {
        if old == tcp_state::SYN_SENT {
            // Kept at connect(), when the local port was not known yet and
            // might have been wanted; it is not, so no later change will
            // keep the entry up to date.
            let _ = SOCKS.remove(sk);
        }
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
            // Both programs of a pair reported this change (the classic
            // one found no free mark slot); the first report stands.
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
    copy_owner(&mut ev, &info);
    if gap {
        ev.flags |= flags::AFTER_GAP;
    }
    ev.failure = failure(old, new, info.flags, info.retransmits);
    // A connection's end (a listener has no totals).
    if new == tcp_state::CLOSE && old != tcp_state::LISTEN {
        add_totals(sk, &info, &mut ev);
    }
    let effective = effective_new_state(old, new, info.flags);
    if passes(&ev, filter().transition_matches(old, effective)) {
        count(stat::TRANSITIONS + (old as u32 & 15) * 16 + (effective as u32 & 15));
        if ev.failure != failure::NONE {
            count(stat::FAILURES + ev.failure as u32);
            if old == tcp_state::SYN_SENT {
                count_remote(&ev, |r| r.failed_connects += 1);
            }
        }
        submit(&ev);
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
#[inline(never)]
fn add_totals(sk: u64, info: &SockInfo, ev: &mut Event) {
    let k = &CONFIG.kernel;
    ev.born_ns = info.born_ns;
    ev.bytes_acked = kread(sk + cfg(&k.tcp_bytes_acked) as u64).unwrap_or(0);
    ev.bytes_received = kread(sk + cfg(&k.tcp_bytes_received) as u64).unwrap_or(0);
}

/// The socket is being freed: forget it. Emits nothing.
#[tracepoint]
pub fn tcp_destroy_sock(ctx: TracePointContext) -> u32 {
    let sk = field::<u64>(&ctx, cfg(&CONFIG.destroy_sock_skaddr)).unwrap_or(0);
    let _ = SOCKS.remove(sk);
    classic_done(sk, tp::DESTROY_SOCK)
}

/// Twin of `tcp_destroy_sock` for when the kernel skipped it (see `HANDLED`).
#[raw_tracepoint(tracepoint = "tcp_destroy_sock")]
pub fn tcp_destroy_sock_nested(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    twin(sk, tp::DESTROY_SOCK, || {
        let _ = SOCKS.remove(sk);
    })
}

/// Shared body of the retransmit and reset events: report the event with
/// what the kernel side knows about its socket, updating that knowledge.
/// `state` is None when the caller knows no better than the socket itself.
#[inline(always)]
fn on_socket_event(
    sk: u64,
    skb: u64,
    event_kind: u8,
    state: Option<u8>,
    endpoints: impl FnOnce(&mut Event),
) {
    let netns = netns_of(sk, skb);
    if !wanted(netns) {
        return;
    }
    let state = match state {
        Some(state) => state,
        None if sk != 0 => sock_state(sk),
        None => 0,
    };
    let mut ev = Event {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        skaddr: sk,
        netns,
        kind: event_kind,
        newstate: state,
        ..Event::default()
    };
    endpoints(&mut ev);
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
        endpoints_from_packet(skb, &mut ev);
    }
    if excluded(&ev) {
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
        copy_owner(&mut ev, &info);
        if SOCKS.insert(sk, info, 0).is_err() {
            bump(counter::SOCK_MAP_FULL);
        }
    } else if sk != 0
        && let Some(info) = SOCKS.get_ptr(sk)
    {
        copy_owner(&mut ev, unsafe { &*info });
    }
    if !passes(&ev, filter().state_matches(state)) {
        return;
    }
    match event_kind {
        kind::RETRANSMIT => {
            count(stat::RETRANSMITS);
            count_remote(&ev, |r| r.retransmits += 1);
        }
        kind::RETRANSMIT_SYNACK => {
            count(stat::SYNACK_RETRANSMITS);
            count_remote(&ev, |r| r.retransmits += 1);
        }
        kind::SEND_RESET => {
            count(stat::RESETS_SENT);
            count_remote(&ev, |r| r.resets += 1);
        }
        _ => {
            count(stat::RESETS_RECEIVED);
            count_remote(&ev, |r| r.resets += 1);
        }
    }
    submit(&ev);
}

#[inline(always)]
fn sock_state(sk: u64) -> u8 {
    kread::<u8>(sk + cfg(&CONFIG.kernel.sock_state) as u64).unwrap_or(0)
}

/// Classic path for the retransmit and reset tracepoints: everything comes
/// from the tracepoint's record.
#[inline(always)]
fn classic_socket_event(
    ctx: &TracePointContext,
    f: &TracepointFields,
    event_kind: u8,
    tracepoint: u64,
) -> u32 {
    let sk: u64 = field(ctx, cfg(&f.skaddr)).unwrap_or(0);
    let skb: u64 = field(ctx, cfg(&f.skbaddr)).unwrap_or(0);
    let state = if event_kind == kind::RETRANSMIT_SYNACK {
        // Reported on the listener, for a connection still in SYN_RECV.
        Some(tcp_state::SYN_RECV)
    } else {
        field::<i32>(ctx, cfg(&f.state)).map(|s| s as u8)
    };
    on_socket_event(sk, skb, event_kind, state, |ev| read_endpoints(ctx, f, ev));
    // A reset sent for no socket is marked by its packet.
    classic_done(if sk != 0 { sk } else { skb }, tracepoint)
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    classic_socket_event(
        &ctx,
        &CONFIG.retransmit_skb,
        kind::RETRANSMIT,
        tp::RETRANSMIT_SKB,
    )
}

#[tracepoint]
pub fn tcp_retransmit_synack(ctx: TracePointContext) -> u32 {
    classic_socket_event(
        &ctx,
        &CONFIG.retransmit_synack,
        kind::RETRANSMIT_SYNACK,
        tp::RETRANSMIT_SYNACK,
    )
}

#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    classic_socket_event(&ctx, &CONFIG.send_reset, kind::SEND_RESET, tp::SEND_RESET)
}

#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    classic_socket_event(
        &ctx,
        &CONFIG.receive_reset,
        kind::RECEIVE_RESET,
        tp::RECEIVE_RESET,
    )
}

// Raw twins of the four above (see `HANDLED`). Their arguments are the
// tracepoint's C arguments; the endpoints come from the socket itself.

/// Raw arguments: (const struct sock *sk, const struct sk_buff *skb).
#[raw_tracepoint(tracepoint = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb_nested(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    twin(sk, tp::RETRANSMIT_SKB, || {
        bump(counter::RECOVERED);
        on_socket_event(sk, 0, kind::RETRANSMIT, None, |ev| {
            endpoints_from_sock(sk, ev)
        });
    })
}

/// Raw arguments: (const struct sock *sk, const struct request_sock *req).
/// A request socket starts with a `sock_common` whose port fields hold the
/// connection's ports; the tracepoint reports those, not the listener's.
#[raw_tracepoint(tracepoint = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack_nested(ctx: RawTracePointContext) -> i32 {
    let (sk, req): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    twin(sk, tp::RETRANSMIT_SYNACK, || {
        bump(counter::RECOVERED);
        on_socket_event(
            sk,
            0,
            kind::RETRANSMIT_SYNACK,
            Some(tcp_state::SYN_RECV),
            |ev| endpoints_from_request(req, ev),
        );
    })
}

/// Raw arguments: (const struct sock *sk, const struct sk_buff *skb, reason).
/// A reset sent for a full socket is rebuilt from the socket; one sent for
/// no socket or a timewait one from the packet it answers, as the
/// tracepoint records it.
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset_nested(ctx: RawTracePointContext) -> i32 {
    let (sk, skb): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    twin(if sk != 0 { sk } else { skb }, tp::SEND_RESET, || {
        bump(counter::RECOVERED);
        on_socket_event(sk, skb, kind::SEND_RESET, None, |ev| {
            endpoints_from_sock(sk, ev)
        });
    })
}

/// Raw arguments: (struct sock *sk).
#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn tcp_receive_reset_nested(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    twin(sk, tp::RECEIVE_RESET, || {
        bump(counter::RECOVERED);
        on_socket_event(sk, 0, kind::RECEIVE_RESET, None, |ev| {
            endpoints_from_sock(sk, ev)
        });
    })
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
    let at = |offset: &u16| req + cfg(offset) as u64;
    ev.family = kread::<u16>(at(&k.sock_family)).unwrap_or(0) as u8;
    ev.sport = kread(at(&k.sock_num)).unwrap_or(0);
    ev.dport = u16::from_be(kread(at(&k.sock_dport)).unwrap_or(0));
    if ev.family == AF_INET6 {
        ev.saddr = kread(at(&k.sock_v6_saddr)).unwrap_or([0; 16]);
        ev.daddr = kread(at(&k.sock_v6_daddr)).unwrap_or([0; 16]);
    } else {
        ev.saddr[..4].copy_from_slice(&kread::<[u8; 4]>(at(&k.sock_rcv_saddr)).unwrap_or([0; 4]));
        ev.daddr[..4].copy_from_slice(&kread::<[u8; 4]>(at(&k.sock_daddr)).unwrap_or([0; 4]));
    }
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
