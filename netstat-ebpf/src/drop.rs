//! `skb:kfree_skb`: TCP packets the kernel drops, counted by the kernel's
//! drop reason (`enum skb_drop_reason`) in `STATS[DROPS + reason]`, for the
//! summary. Raw arguments: (struct sk_buff *skb, void *location, enum
//! skb_drop_reason reason) from 5.17 (6.12 adds a fourth); before that
//! it has no reason and this program is not attached.
//! It runs for every packet freed as dropped, TCP or not: it gives up after
//! as few reads as it can. With `-E --drops` it also sends each drop that
//! passes the filter as an event.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::btf_tracepoint, programs::BtfTracePointContext};
use netstat_common::{flags, kind, stat};

use crate::{
    config::{CONFIG, cfg},
    maps::add_stat,
    pair::{Verdict, tp},
    read::{endpoints_from_packet, is_tcp_packet, netns_of, segment_is_syn},
    report::{count_remote, new_event, submit},
    verdict::{excluded, netns_verdict},
};

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let reason = ctx.arg::<u64>(2);
    // Reasons of other subsystems carry high bits; they are not TCP's.
    if reason >= u64::from(stat::DROP_REASON_SLOTS) || !is_tcp_packet(skb) {
        return 0;
    }
    let Verdict::Report { netns } = netns_verdict(netns_of(0, skb)) else {
        return 0;
    };
    // The user's filter, on the packet's endpoints (as an incoming one's).
    let Some(ev) = new_event((tp::KFREE_SKB >> 16) as u32 * 2) else {
        return 0;
    };
    endpoints_from_packet(skb, ev);
    if excluded(ev) {
        return 0;
    }
    add_stat(netns, stat::DROPS + reason as u32, 1);
    // As an incoming packet's: the remote end is the packet's source, and
    // a SYN's source an inbound peer.
    ev.netns = netns;
    if segment_is_syn(skb) {
        ev.flags |= flags::INBOUND;
    }
    count_remote(ev, |r| r.drops += 1);
    if cfg(&CONFIG.log_drops) != 0 {
        // SAFETY: no arguments, no memory touched.
        ev.ts_ns = unsafe { bpf_ktime_get_ns() };
        ev.kind = kind::DROP;
        ev.drop_reason = reason as u8;
        submit(ev);
    }
    0
}
