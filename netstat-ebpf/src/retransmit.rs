//! `tcp/tcp_retransmit_skb` and `tcp/tcp_retransmit_synack`.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use netstat_common::{kind, tcp_state};

use crate::{
    pair::{PairRun, Role, program_pair, tp},
    read::{endpoints_from_request, netns_of},
    report::{full_socket_event, on_socket_event},
    verdict::netns_verdict,
};

program_pair!(
    "tcp_retransmit_skb",
    tcp_retransmit_skb,
    tcp_retransmit_skb_second,
    retransmit_skb
);

/// Raw arguments: (const struct sock *sk, const struct sk_buff *skb).
#[inline(always)]
pub(crate) fn retransmit_skb(ctx: &BtfTracePointContext, role: Role) -> i32 {
    full_socket_event(
        ctx,
        role,
        ctx.arg(0),
        (tp::RETRANSMIT_SKB, kind::RETRANSMIT),
        0,
    )
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
pub(crate) fn retransmit_synack(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let (sk, req): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    let Some(run) = PairRun::begin(role, ctx, sk, tp::RETRANSMIT_SYNACK) else {
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
