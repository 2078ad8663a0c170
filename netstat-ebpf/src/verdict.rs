//! Which events to report: the namespace asked for, then the user's
//! filter, decided from as few reads as possible.

use netstat_common::{Event, counter, flags};

use crate::pair::Verdict;

use crate::{
    config::{CONFIG, cfg, filter},
    maps::{CGROUP_FILTER, add_counter},
    read::{ephemeral_ports, netns_of, sock_ends},
};

/// Applies the namespace choice.
#[inline(always)]
pub(crate) fn netns_verdict(netns: u32) -> Verdict {
    let only = cfg(&CONFIG.netns);
    if only != 0 && only != netns {
        Verdict::OtherNetns
    } else {
        Verdict::Report { netns }
    }
}

// ---- Filtering -----------------------------------------------------------

/// The early verdict on an event of TCP socket `tsk` (see `tcp_sock`): its
/// namespace, then its endpoints when the filter looks at them. `always`: a
/// listener's own changes, which count whatever the filter (its children
/// inherit its owner).
#[inline(always)]
pub(crate) fn sock_verdict(tsk: u64, always: bool) -> Verdict {
    let verdict = netns_verdict(netns_of(tsk, 0));
    let f = filter();
    if always || !f.has_endpoint_terms() || verdict == Verdict::OtherNetns {
        return verdict;
    }
    let e = sock_ends(tsk, f.addr_family != 0);
    // Read whether or not the local port is known: computed only where it
    // is 0, the compiler left it unwritten on the other path and then read
    // it on a path the verifier cannot rule out, which 5.10's verifier
    // refuses ("invalid read from stack").
    let ephemeral = ephemeral_ports(tsk);
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
pub(crate) fn excluded(ev: &Event) -> bool {
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
        add_counter(counter::FILTERED);
    }
    out
}

/// Applies the user's whole filter to an event about to be sent; filtered
/// events are counted, not sent.
#[inline(always)]
pub(crate) fn passes(ev: &Event, states_match: bool) -> bool {
    let filter = filter();
    let owner = (ev.flags & flags::OWNER_KNOWN != 0).then_some(ev.tgid);
    let pass = states_match
        && filter.pid_matches(owner)
        && (filter.by_cgroup == 0
            || owner.is_none()
            // SAFETY: the value is not read.
            || unsafe { CGROUP_FILTER.get(&ev.cgroup) }.is_some())
        && filter.endpoints_match(ev.family, &ev.saddr, ev.sport, &ev.daddr, ev.dport);
    if !pass {
        add_counter(counter::FILTERED);
    }
    pass
}
