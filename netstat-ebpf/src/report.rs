//! Putting an event together and sending it: the ring buffer, the owner a
//! socket's record holds, the per-endpoint and per-owner counts of
//! `--summary`.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_ns,
    maps::LruPerCpuHashMap,
};
use netstat_common::{
    EndpointKey, Event, LossMark, OwnerStats, ProgramKey, RemoteStats, SockInfo, counter, flags,
    kind, owners, stat, tcp_state,
};

use crate::{
    config::{CONFIG, cfg, filter},
    maps::{
        CGROUPS, COUNTERS, EVENTS, PROGRAMS, REMOTES, SCRATCH, SOCKS, add_counter, add_stat,
        remember_sock,
    },
    mem,
    pair::{PairRun, Role, Verdict},
    read::{endpoints_from_packet, segment_is_syn, sock_state, tcp_sock, write_ends},
    verdict::{excluded, passes, sock_verdict},
};
use aya_ebpf::programs::BtfTracePointContext;

// ---- Reporting -----------------------------------------------------------

/// Unread bytes in the ring at which we wake the reader. Below it the reader
/// polls on a short timer (events::POLL): a wakeup per event costs the
/// reader a context switch per event in a storm.
pub(crate) const WAKEUP_BYTES: u64 = 256 * 1024;

/// An event's room in the ring: the record and its 8-byte header.
const RECORD_BYTES: u64 = size_of::<Event>() as u64 + 8;

/// Sends `ev`; false when the ring had no room (the loss is counted, and
/// announced by a `LossMark` before the next record that fits).
#[inline(always)]
pub(crate) fn submit(ev: &Event) -> bool {
    if cfg(&CONFIG.counts_only) != 0 {
        return true;
    }
    // Wake the reader once each time the unread bytes cross a multiple of
    // WAKEUP_BYTES: a wakeup per event while the reader is behind cost an
    // inter-processor interrupt per event, a third of a state change's
    // cost. A crossing two CPUs step over together is caught at the next.
    let unread = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let after = unread + RECORD_BYTES;
    let wake = if unread / WAKEUP_BYTES != after / WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    mark_losses(ev.ts_ns);
    // bpf_ringbuf_output copies in the kernel; a reserved slot would be
    // filled by a byte loop the verifier walks byte by byte.
    if EVENTS.output::<Event>(ev, wake as u64).is_err() {
        add_counter(counter::LOST);
        add_counter(counter::LOST_UNMARKED);
        return false;
    }
    true
}

/// Writes a `LossMark` for this CPU's events lost since its last one, so the
/// stream shows where it has a hole; kept for later if it does not fit.
#[inline(always)]
fn mark_losses(now: u64) {
    let Some(unmarked) = COUNTERS.get_ptr_mut(counter::LOST_UNMARKED) else {
        return;
    };
    // SAFETY: this CPU's value of a per-CPU array, valid while we run.
    let unmarked = unsafe { &mut *unmarked };
    if *unmarked == 0 {
        return;
    }
    let mark = LossMark {
        ts_ns: now,
        lost: *unmarked,
    };
    if EVENTS.output::<LossMark>(&mark, 0).is_ok() {
        *unmarked = 0;
    }
}

#[inline(always)]
pub(crate) fn copy_owner(ev: &mut Event, info: &SockInfo) {
    ev.tgid = info.tgid;
    ev.comm = info.comm;
    ev.cgroup = info.cgroup;
    ev.retransmits = info.retransmits;
    ev.flags = info.flags & !flags::UNREPORTED;
}

/// Adds to the remote endpoint's entry in `REMOTES`. Not inlined: its
/// locals would not fit in the callers' stack frames.
#[inline(never)]
pub(crate) fn count_remote(ev: &Event, add: impl FnOnce(&mut RemoteStats)) {
    // Only `--summary` reads the map, and a server's remotes are new at
    // every connection: an LRU insert and eviction per event otherwise.
    if cfg(&CONFIG.count_remotes) == 0 {
        return;
    }
    let key = EndpointKey {
        addr: ev.daddr,
        // An inbound peer's port is ephemeral: one entry per connection
        // would say nothing of who storms, and cost an LRU insert each.
        // Masked rather than branched on, for the verifier.
        port: ev.dport & u16::from(ev.flags & flags::INBOUND == 0).wrapping_neg(),
        family: ev.family,
        _pad: 0,
        netns: ev.netns,
    };
    if let Some(entry) = REMOTES.get_ptr_mut(&key) {
        // SAFETY: this CPU's value of a per-CPU map, valid while we run.
        add(unsafe { &mut *entry });
    } else {
        let mut entry = RemoteStats::default();
        add(&mut entry);
        let _ = REMOTES.insert(&key, &entry, 0);
    }
}

/// What `count_owner` adds one to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerCount {
    Opened,
    Failed,
    Resets,
}

/// Adds one to the entries of the event's owner in `CGROUPS` and
/// `PROGRAMS`, if the owner is known and the mode reads it (the metrics:
/// only the cgroups' connects). Not inlined, as `count_remote`; one
/// function for every count, so that the verifier walks one body.
#[inline(never)]
pub(crate) fn count_owner(ev: &Event, what: OwnerCount) {
    let level = cfg(&CONFIG.count_owners);
    if level == owners::NONE || ev.flags & flags::OWNER_KNOWN == 0 {
        return;
    }
    if level != owners::ALL && what != OwnerCount::Opened {
        return;
    }
    add_owner_stats(&CGROUPS, &ev.cgroup, what);
    if level != owners::ALL {
        return;
    }
    let key = ProgramKey {
        cgroup: ev.cgroup,
        tgid: ev.tgid,
        _pad: 0,
        comm: ev.comm,
    };
    add_owner_stats(&PROGRAMS, &key, what);
}

#[inline(always)]
fn add_owner_stats<K>(map: &LruPerCpuHashMap<K, OwnerStats>, key: &K, what: OwnerCount) {
    let add = |s: &mut OwnerStats| match what {
        OwnerCount::Opened => s.opened += 1,
        OwnerCount::Failed => s.failed += 1,
        OwnerCount::Resets => s.resets += 1,
    };
    if let Some(entry) = map.get_ptr_mut(key) {
        // SAFETY: this CPU's value of a per-CPU map, valid while we run.
        add(unsafe { &mut *entry });
    } else {
        let mut entry = OwnerStats::default();
        add(&mut entry);
        let _ = map.insert(key, &entry, 0);
    }
}

/// The zeroed event of the program in `slot` of `SCRATCH`.
#[inline(always)]
pub(crate) fn new_event(slot: u32) -> Option<&'static mut Event> {
    let ev = SCRATCH.get_ptr_mut(slot)?;
    // SAFETY: this CPU's slot of the running program at its nesting level
    // (`PairRun::slot`); no other reference to it is alive.
    let ev = unsafe { &mut *ev };
    mem::zero(ev);
    Some(ev)
}

// ---- Retransmits and resets ------------------------------------------------

/// Shared report of the retransmit and reset events: the event with what the
/// kernel side knows about its socket, updating that knowledge. `state` is
/// None when the caller knows no better than the socket itself.
#[inline(always)]
pub(crate) fn on_socket_event(
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
    // SAFETY: no arguments, no memory touched.
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

    remember_event(sk, event_kind, ev);
    // After the owner's flags: a listener's own record is not inbound. A
    // reset for no socket that answers a SYN refuses an inbound connect.
    if matches!(state, tcp_state::LISTEN | tcp_state::NEW_SYN_RECV)
        || event_kind == kind::RETRANSMIT_SYNACK
        || (sk == 0 && skb != 0 && segment_is_syn(skb))
    {
        ev.flags |= flags::INBOUND;
    }
    if !passes(ev, filter().state_matches(state)) {
        return;
    }
    count_event(netns, event_kind, state, ev);
    // A retransmit or reset that did not fit changes no state: the loss
    // mark is all a reader needs.
    submit(ev);
}

/// Adds a retransmit or reset to what `SOCKS` knows of socket `sk`, and
/// gives `ev` the socket's owner.
#[inline(always)]
fn remember_event(sk: u64, event_kind: u8, ev: &mut Event) {
    if sk == 0 {
        return;
    }
    // Only full sockets are remembered (they are sure to be destroyed, which
    // frees the entry); a reset may be sent for a timewait socket.
    if event_kind != kind::RETRANSMIT && event_kind != kind::RECEIVE_RESET {
        if let Some(info) = SOCKS.get_ptr(sk) {
            // SAFETY: a map value, read at once.
            copy_owner(ev, unsafe { &*info });
        }
        return;
    }
    let known = SOCKS.get_ptr_mut(sk);
    let mut info = match known {
        // SAFETY: a map value, copied at once.
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
    match known {
        // In place, as `set_state` does: no LRU update per event.
        // SAFETY: the map value found above, valid while we run.
        Some(known) => mem::copy(unsafe { &mut *known }, &info),
        None => {
            if !remember_sock(sk, &info) {
                add_counter(counter::SOCK_MAP_FULL);
            }
        }
    }
}

/// The per-namespace counters of a retransmit or reset in state `state`.
#[inline(always)]
fn count_event(netns: u32, event_kind: u8, state: u8, ev: &Event) {
    match event_kind {
        kind::RETRANSMIT => {
            let what = match state {
                tcp_state::SYN_SENT => stat::SYN_RETRANSMITS,
                _ => stat::RETRANSMITS,
            };
            add_stat(netns, what, 1);
            count_remote(ev, |r| r.retransmits += 1);
        }
        kind::RETRANSMIT_SYNACK => {
            add_stat(netns, stat::SYNACK_RETRANSMITS, 1);
            count_remote(ev, |r| r.retransmits += 1);
        }
        kind::SEND_RESET => {
            count_owner(ev, OwnerCount::Resets);
            add_stat(netns, stat::RESETS_SENT, 1);
            if ev.reset_reason != 0 && u32::from(ev.reset_reason) <= stat::RESET_REASON_SLOTS {
                add_stat(
                    netns,
                    stat::RESET_REASONS + u32::from(ev.reset_reason) - 1,
                    1,
                );
            }
            count_remote(ev, |r| r.resets += 1);
        }
        _ => {
            count_owner(ev, OwnerCount::Resets);
            add_stat(netns, stat::RESETS_RECEIVED, 1);
            count_remote(ev, |r| r.resets += 1);
        }
    }
}

/// The retransmit and reset events of a full TCP socket `sk`, whose
/// endpoints the event reports.
#[inline(always)]
pub(crate) fn full_socket_event(
    ctx: &BtfTracePointContext,
    role: Role,
    sk: u64,
    (what, event_kind): (u64, u8),
    reset_reason: u8,
) -> i32 {
    let Some(run) = PairRun::begin(role, ctx, sk, what) else {
        return 0;
    };
    let tsk = tcp_sock(sk);
    let verdict = match tsk {
        Some(tsk) => sock_verdict(tsk, false),
        None => Verdict::Ignore,
    };
    // Inlined, as in `set_state`: one frame costs less of 6.1's 512 bytes
    // over the call chain than two.
    run.finish(
        verdict,
        #[inline(always)]
        |netns, slot| {
            on_socket_event(sk, 0, (netns, slot), event_kind, None, |ev| {
                write_ends(tsk, ev);
                ev.reset_reason = reset_reason;
            })
        },
    )
}
