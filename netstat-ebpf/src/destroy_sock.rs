//! `tcp/tcp_destroy_sock`: a socket is freed, so is its record.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::{
    maps::forget_sock,
    pair::{PairRun, Role, Verdict, program_pair, tp},
};

// ---- tcp/tcp_destroy_sock: (struct sock *sk) -------------------------------

program_pair!(
    "tcp_destroy_sock",
    tcp_destroy_sock,
    tcp_destroy_sock_second,
    destroy_sock
);

/// The socket is being freed: forget it. Emits nothing (the second
/// program frees the entry only where the first was skipped).
#[inline(always)]
pub(crate) fn destroy_sock(ctx: &BtfTracePointContext, role: Role) -> i32 {
    let sk: u64 = ctx.arg(0);
    let Some(run) = PairRun::begin(role, ctx, sk, tp::DESTROY_SOCK) else {
        return 0;
    };
    forget_sock(sk);
    run.finish(Verdict::Ignore, |_, _| {})
}
