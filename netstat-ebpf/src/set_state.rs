//! `sock/inet_sock_set_state`: every TCP state change.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use aya_log_ebpf::warn;
use netstat_common::{
    EndpointKey, Event, ListenKey, ListenOwner, SockInfo, SocketEnd, counter, effective_new_state,
    ends_connection, failure, flags, kind, stat, tcp_state,
};

use crate::{
    config::{CONFIG, cfg, filter},
    maps::{
        CLOSED_LISTENERS, LISTENERS, SOCKS, add_counter, add_duration, add_stat, add_to_counter,
        forget_sock, remember_sock,
    },
    mem,
    pair::{PairRun, Role, Verdict, program_pair, tp},
    read::{member, sock_ends, tcp_sock},
    report::{OwnerCount, copy_owner, count_owner, count_remote, new_event, submit},
    verdict::{excluded, passes, sock_verdict},
};

// ---- sock/inet_sock_set_state: (struct sock *sk, int oldstate, int newstate)

program_pair!(
    "inet_sock_set_state",
    inet_sock_set_state,
    inet_sock_set_state_second,
    set_state
);

#[inline(always)]
pub(crate) fn set_state(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let sk: u64 = ctx.arg(0);
    let (old, new) = (ctx.arg::<u64>(1) as u8, ctx.arg::<u64>(2) as u8);
    let Some(run) = PairRun::begin(role, ctx, sk, tp::set_state(old, new)) else {
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
    // Inlined: as a function of its own, its frame would add to the
    // program's against 6.1's 512-byte limit over the call chain.
    run.finish(
        verdict,
        #[inline(always)]
        |netns, slot| {
            // A report follows only a TCP socket's verdict.
            if let Some(tsk) = tcp {
                on_transition(ctx, (sk, tsk), old, new, netns, slot)
            }
        },
    )
}

/// The bit of a state number that tells LISTEN from CLOSE, and its shift
/// to `flags::INBOUND`.
const ACCEPTED_BIT: u8 = 8;
const INBOUND_SHIFT: u8 = 2;
const _: () = assert!(
    tcp_state::LISTEN & ACCEPTED_BIT != 0
        && tcp_state::CLOSE & ACCEPTED_BIT == 0
        && ACCEPTED_BIT << INBOUND_SHIFT == flags::INBOUND
);

/// Transitions that only happen inside a system call made by the socket's owner:
/// connect(), listen() and close(). Everything else may run in softirq context.
#[inline(always)]
pub(crate) fn in_owner_syscall(old: u8, new: u8) -> bool {
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
pub(crate) fn forget_connect(sk: u64, old: u8) {
    if old == tcp_state::SYN_SENT {
        forget_sock(sk);
    }
}

/// One TCP state change of socket `sk` (`tsk`: the same, typed as a
/// `tcp_sock`): report it with what the kernel side knows of the socket,
/// and remember the socket's new state.
#[inline(always)]
pub(crate) fn on_transition<C: EbpfContext>(
    ctx: &C,
    (sk, tsk): (u64, u64),
    old: u8,
    new: u8,
    netns: u32,
    slot: u32,
) {
    let Some(ev) = new_event(slot) else {
        return;
    };
    // SAFETY: no arguments, no memory touched.
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

    let known = SOCKS.get_ptr_mut(sk);
    let Some((mut info, gap)) = history(known, old, new, now, ev) else {
        return;
    };
    let listen_key = ListenKey {
        netns,
        port: ev.sport,
        _pad: 0,
    };
    take_owner(&mut info, old, new, &listen_key);
    copy_owner(ev, &info);
    if gap {
        ev.flags |= flags::AFTER_GAP;
    }
    if old == tcp_state::FIN_WAIT2 && new == tcp_state::CLOSE && !peer_fin_received(sk) {
        ev.flags |= flags::PEER_FIN_PENDING;
    }
    // A connection's end (a listener has no totals).
    if new == tcp_state::CLOSE && old != tcp_state::LISTEN {
        record_end(tsk, &info, ev);
    }
    count_and_report(ev, &mut info, now);
    track_listener(sk, old, new, &listen_key, &info);
    if old == tcp_state::LISTEN && new == tcp_state::CLOSE {
        record_closed_listener(sk, ev);
    }

    // Kept through CLOSE: a closed socket may still send a reset or connect
    // again. `tcp_destroy_sock` frees the entry.
    info.ts_ns = now;
    info.state = new;
    info.prev_state = old;
    if let Some(known) = known {
        // In place: an LRU map's update allocates a new element and frees
        // the old one, under the map's locks, at every change.
        // SAFETY: the map value found above, valid while we run (if another
        // CPU removed it since, the write reaches memory the map no longer
        // uses).
        mem::copy(unsafe { &mut *known }, &info);
    } else if !remember_sock(sk, &info) {
        add_counter(counter::SOCK_MAP_FULL);
        warn!(
            ctx,
            "SOCKS refused an entry: owner of a socket not remembered"
        );
    }
}

/// What the kernel side knew of the socket before this change (`known`: its
/// `SOCKS` entry), started afresh for a new socket, and whether changes were
/// missed before this one. `None`: the other program of the pair already
/// reported this change.
#[inline(always)]
fn history(
    known: Option<*mut SockInfo>,
    old: u8,
    new: u8,
    now: u64,
    ev: &mut Event,
) -> Option<(SockInfo, bool)> {
    let born = (old == tcp_state::CLOSE && new == tcp_state::SYN_SENT)
        || (old == tcp_state::LISTEN && new == tcp_state::SYN_RECV);
    let mut info = match known {
        // SAFETY: a map value, copied at once.
        Some(known) => unsafe { *known },
        None => SockInfo::default(),
    };
    // A change of this socket did not fit in the ring.
    let mut gap = info.flags & flags::UNREPORTED != 0 && !born;
    info.flags &= !flags::UNREPORTED;
    // State 0: an entry made by a retransmit or reset, history unknown.
    if info.state != 0 {
        if info.state == new && info.prev_state == old {
            // Both programs of a pair reported this change (the second
            // found the first's mark overwritten); the first report stands.
            return None;
        }
        if info.state != old {
            // See README, "Known limits": the kernel ran none of our
            // programs for the changes in between.
            add_counter(counter::GAPS);
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
        // Accepted (born from LISTEN, not CLOSE): INBOUND, without a branch,
        // which would split the verifier's states for the rest of the run.
        info.flags = (old & ACCEPTED_BIT) << INBOUND_SHIFT;
    }
    ev.prev_ts_ns = info.ts_ns;
    Some((info, gap))
}

/// The socket's owner: the process in whose system call the change happens,
/// or, for a child cloned from a listener, whoever listens.
#[inline(always)]
fn take_owner(info: &mut SockInfo, old: u8, new: u8, listen_key: &ListenKey) {
    if in_owner_syscall(old, new) {
        info.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        info.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        // SAFETY: no arguments, no memory touched.
        info.cgroup = unsafe { bpf_get_current_cgroup_id() };
        info.flags |= flags::OWNER_KNOWN;
    } else if old == tcp_state::LISTEN
        && new == tcp_state::SYN_RECV
        && info.flags & flags::OWNER_KNOWN == 0
    {
        // SAFETY: the value is read at once, before any update of the map.
        if let Some(parent) = unsafe { LISTENERS.get(listen_key) } {
            info.tgid = parent.tgid;
            info.comm = parent.comm;
            info.cgroup = parent.cgroup;
            info.flags |= flags::OWNER_KNOWN;
        }
    }
}

/// Counts the change and sends `ev` to userspace if the filter keeps it;
/// a report that did not fit marks the socket `UNREPORTED`.
#[inline(always)]
fn count_and_report(ev: &mut Event, info: &mut SockInfo, now: u64) {
    let (old, new, netns) = (ev.oldstate, ev.newstate, ev.netns);
    let effective = effective_new_state(old, new, ev.flags);
    if !passes(ev, filter().transition_matches(old, effective)) {
        return;
    }
    // An orphan handed to a timewait socket in FIN_WAIT2 counts as
    // FIN_WAIT2 -> FIN_WAIT2: the application's socket ended there.
    add_stat(netns, stat::transition(old, effective), 1);
    let entered = if info.state == old { info.ts_ns } else { 0 };
    let change = u32::from(old) << 8 | u32::from(effective);
    add_durations(netns, change, now, entered, info.born_ns);
    if old == tcp_state::CLOSE && effective == tcp_state::SYN_SENT {
        count_owner(ev, OwnerCount::Opened);
    }
    if ev.failure != failure::NONE {
        count_owner(ev, OwnerCount::Failed);
        add_stat(netns, stat::FAILURES + u32::from(ev.failure), 1);
        if old == tcp_state::SYN_SENT {
            count_remote(ev, |r| r.failed_connects += 1);
        }
    }
    if !submit(ev) {
        info.flags |= flags::UNREPORTED;
    }
}

/// Keeps `LISTENERS` in step: a socket that starts listening owns the port's
/// entry; the entry's own socket leaving LISTEN removes it.
#[inline(always)]
fn track_listener(sk: u64, old: u8, new: u8, listen_key: &ListenKey, info: &SockInfo) {
    if new == tcp_state::LISTEN {
        let owner = ListenOwner {
            skaddr: sk,
            tgid: info.tgid,
            _pad: 0,
            comm: info.comm,
            cgroup: info.cgroup,
        };
        // Another listener on the port (SO_REUSEPORT) already has the entry.
        let fresh = LISTENERS.get_ptr(listen_key).is_none();
        if LISTENERS.insert(listen_key, &owner, 0).is_ok() && fresh {
            add_counter(counter::LISTENERS_ADDED);
        }
    } else if old == tcp_state::LISTEN
        // SAFETY: the value is read at once, before the remove below.
        && unsafe { LISTENERS.get(listen_key) }.is_some_and(|l| l.skaddr == sk)
        && LISTENERS.remove(listen_key).is_ok()
    {
        add_counter(counter::LISTENERS_REMOVED);
    }
}

/// A listener's drops as it closes, added to its endpoint's entry in
/// `CLOSED_LISTENERS` (only `--summary` reads it). Not inlined, as
/// `count_remote`.
#[inline(never)]
fn record_closed_listener(sk: u64, ev: &Event) {
    if cfg(&CONFIG.count_remotes) == 0 {
        return;
    }
    let drops = u64::from(member::<u32>(sk, &CONFIG.kernel.sock_drops));
    let key = EndpointKey {
        addr: ev.saddr,
        port: ev.sport,
        family: ev.family,
        _pad: 0,
        netns: ev.netns,
    };
    let total = match CLOSED_LISTENERS.get_ptr(&key) {
        // SAFETY: a map value, read at once.
        Some(before) => drops + unsafe { *before },
        None => drops,
    };
    let _ = CLOSED_LISTENERS.insert(&key, &total, 0);
}

/// Whether the peer's FIN reached `sk`: `tcp_fin` sets `SOCK_DONE` before
/// a FIN_WAIT2 socket enters TIME_WAIT, while an orphan whose FIN was
/// acknowledged enters the timewait socket's FIN_WAIT2 without it.
#[inline(always)]
fn peer_fin_received(sk: u64) -> bool {
    let k = &CONFIG.kernel;
    let sk_flags: u64 = member(sk, &k.sock_flags);
    (sk_flags >> (cfg(&k.sock_done_bit) & 63)) & 1 != 0
}

/// The handshake's duration when a connect or an accept succeeds, and the connection's
/// lifetime when it ends, where the kernel side saw them begin (`change`:
/// old << 8 | new; `entered`: when the socket entered `old`, `born`: when
/// it was made; 0 = unknown).
/// Not inlined, with plain arguments: in `on_transition` its locals
/// would push the stack past 6.1's limit of 512 bytes over the call chain.
#[inline(never)]
fn add_durations(netns: u32, change: u32, now: u64, entered: u64, born: u64) {
    // BPF calls take at most five arguments: (old, new) come packed.
    let (old, effective) = ((change >> 8) as u8, change as u8);
    if effective == tcp_state::ESTABLISHED && entered != 0 {
        let histogram = match old {
            tcp_state::SYN_SENT => stat::CONNECT_DURATION,
            tcp_state::SYN_RECV => stat::ACCEPT_DURATION,
            _ => return,
        };
        add_duration(netns, histogram, now.saturating_sub(entered));
    }
    if ends_connection(old, effective) && born != 0 {
        add_duration(netns, stat::LIFETIME, now.saturating_sub(born));
    }
}

/// A connection's end as the kernel recorded it in `struct tcp_sock`: the
/// verdict (from `sk_err`, `sk_err_soft` and `segs_out`), lifetime, the byte counters, the
/// smoothed RTT and the retransmissions.
#[inline(always)]
fn record_end(tsk: u64, info: &SockInfo, ev: &mut Event) {
    let k = &CONFIG.kernel;
    let end = SocketEnd {
        err: member(tsk, &k.sock_err),
        err_soft: member(tsk, &k.sock_err_soft),
        segs_out: member(tsk, &k.tcp_segs_out),
    };
    ev.failure = failure(ev.oldstate, ev.newstate, info.flags, end);
    ev.born_ns = info.born_ns;
    ev.bytes_acked = member(tsk, &k.tcp_bytes_acked);
    ev.bytes_received = member(tsk, &k.tcp_bytes_received);
    ev.srtt_us_x8 = member(tsk, &k.tcp_srtt_us);
    ev.total_retrans = member(tsk, &k.tcp_total_retrans);
    // A connect that got no answer retransmitted its SYN alone, one segment
    // each time: a kernel count above ours, since the socket was born, is
    // retransmits none of our programs ran for (README, Known limits).
    if ev.oldstate == tcp_state::SYN_SENT && info.born_ns != 0 {
        let unseen = ev.total_retrans.saturating_sub(info.retransmits);
        add_to_counter(counter::GAPS, u64::from(unseen));
    }
}
