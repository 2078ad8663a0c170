//! Resets: `tcp/tcp_receive_reset`, `tcp/tcp_send_reset`, and before Linux
//! 6.10 fentry on `tcp_v4_send_reset` / `tcp_v6_send_reset`.

use aya_ebpf::{
    EbpfContext,
    macros::{btf_tracepoint, fentry},
    programs::{BtfTracePointContext, FEntryContext},
};
use netstat_common::{kind, tcp_state};

use crate::{
    config::{CONFIG, cfg},
    pair::{PairRun, Role, program_pair, tp},
    read::{netns_of, segment_is_reset, sock_state, tcp_sock, write_ends},
    report::{full_socket_event, on_socket_event},
    verdict::netns_verdict,
};

program_pair!(
    "tcp_receive_reset",
    tcp_receive_reset,
    tcp_receive_reset_second,
    receive_reset
);

/// Raw arguments: (struct sock *sk).
#[inline(always)]
pub(crate) fn receive_reset(ctx: &BtfTracePointContext, role: Role) -> i32 {
    full_socket_event(
        ctx,
        role,
        ctx.arg(0),
        (tp::RECEIVE_RESET, kind::RECEIVE_RESET),
        0,
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
pub(crate) fn send_reset(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let (sk, skb): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    // Read only where the tracepoint has it: the verifier drops the branch
    // on kernels without (CONFIG is read-only).
    let reason = if cfg(&CONFIG.reset_reason_arg) != 0 {
        (ctx.arg::<u64>(2) as u8).saturating_add(1)
    } else {
        0
    };
    let connection = sk != 0
        && !matches!(
            sock_state(sk),
            tcp_state::LISTEN | tcp_state::TIME_WAIT | tcp_state::NEW_SYN_RECV
        );
    if connection {
        return full_socket_event(ctx, role, sk, (tp::SEND_RESET, kind::SEND_RESET), reason);
    }
    reset_answering_packet(ctx, role, (sk, skb), tp::SEND_RESET, reason)
}

/// A reset sent by a listener, a timewait or request socket, or for no
/// socket (`sk` 0): its connection is the packet's, and with no socket the
/// packet marks the event.
#[inline(always)]
pub(crate) fn reset_answering_packet(
    ctx: &impl EbpfContext,
    role: Role,
    (sk, skb): (u64, u64),
    what: u64,
    reason: u8,
) -> i32 {
    let Some(run) = PairRun::begin(role, ctx, if sk != 0 { sk } else { skb }, what) else {
        return 0;
    };
    // Inlined, as in `set_state`: one frame costs less of 6.1's 512 bytes
    // than two.
    run.finish(
        netns_verdict(netns_of(sk, skb)),
        #[inline(always)]
        |netns, slot| {
            on_socket_event(sk, skb, (netns, slot), kind::SEND_RESET, None, |ev| {
                write_ends(tcp_sock(sk), ev);
                ev.reset_reason = reason;
            })
        },
    )
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
pub(crate) fn reset_without_full_socket(ctx: &FEntryContext, what: u64) -> i32 {
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
    reset_answering_packet(ctx, Role::Alone, (sk, skb), what, 0)
}
