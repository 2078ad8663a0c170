//! A connection's failure verdict at its end, from the kernel's own record
//! of the socket: one mapping for the kernel side's counts and the log.

use crate::{flags, tcp_state};

/// Why a connection failed (see [`failure`]).
pub mod failure {
    pub const NONE: u8 = 0;
    /// A connect answered by a reset (or an ICMP port unreachable): nobody
    /// listens at the port.
    pub const REFUSED: u8 = 1;
    /// The kernel gave up retrying: a connect's SYNs or a connection's data
    /// went unanswered (`ETIMEDOUT`).
    pub const TIMEOUT: u8 = 2;
    /// A connection past its handshake reset by the peer.
    pub const RESET: u8 = 3;
    /// The application closed a connect before it was established.
    pub const ABORTED: u8 = 4;
    /// An ICMP error from the network ended it (host or network
    /// unreachable, prohibited, ...).
    pub const UNREACHABLE: u8 = 5;
    /// No local port was free: the connect never sent a SYN.
    pub const NO_PORT: u8 = 6;
    /// Verdicts by value, as every output names them (index 0: none).
    pub const NAMES: [&str; 7] = [
        "",
        "refused",
        "timeout",
        "reset",
        "aborted",
        "unreachable",
        "no_port",
    ];
    /// `STATS` slots reserved for verdicts (room to grow).
    pub const SLOTS: u32 = 8;
}

/// The errno values the kernel leaves in `sk_err` that tell verdicts apart
/// (the same on every Linux architecture enetstat supports).
pub mod errno {
    pub const EPIPE: i32 = 32;
    pub const ECONNRESET: i32 = 104;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
}

/// What the kernel recorded in a socket that reaches CLOSE.
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketEnd {
    /// `sk_err`: set by `tcp_reset`, `tcp_write_err` and ICMP errors before
    /// `tcp_done`.
    pub err: i32,
    /// `sk_err_soft`: an ICMP error that came while the owner held the
    /// socket (the owner may read it, and close).
    pub err_soft: i32,
    /// `tcp_sock.segs_out`: 0 when no SYN ever left.
    pub segs_out: u32,
}

/// The verdict on a change to CLOSE, from the kernel's own record of the
/// socket and the flags the kernel side keeps (a reset received).
#[inline(always)]
pub fn failure(old: u8, new: u8, sock_flags: u8, end: SocketEnd) -> u8 {
    if new != tcp_state::CLOSE || old == tcp_state::LISTEN {
        return failure::NONE;
    }
    let reset = sock_flags & flags::RESET_RECEIVED != 0;
    let connecting = old == tcp_state::SYN_SENT;
    match end.err {
        errno::ECONNREFUSED => failure::REFUSED,
        errno::ETIMEDOUT => failure::TIMEOUT,
        errno::ECONNRESET | errno::EPIPE => failure::RESET,
        0 if reset && connecting => failure::REFUSED,
        0 if reset => failure::RESET,
        // The owner read the ICMP error (SO_ERROR) and closed.
        0 if connecting && end.err_soft != 0 => failure::UNREACHABLE,
        0 if connecting && end.segs_out == 0 => failure::NO_PORT,
        0 if connecting => failure::ABORTED,
        0 => failure::NONE,
        // The errno of an ICMP error (EHOSTUNREACH, ENETUNREACH, EACCES,
        // EPROTO, ...), directly or as `sk_err_soft` at a timeout.
        _ => failure::UNREACHABLE,
    }
}

#[cfg(test)]
mod failure_tests {
    use super::{SocketEnd, errno, failure};
    use crate::{flags, tcp_state::*};

    #[test]
    fn each_verdict_comes_from_the_kernels_record() {
        let reset = flags::RESET_RECEIVED;
        // (old, flags, sk_err, sk_err_soft, segs_out) -> verdict
        let cases = [
            (SYN_SENT, reset, errno::ECONNREFUSED, 0, 1, failure::REFUSED),
            (SYN_SENT, 0, errno::ECONNREFUSED, 0, 1, failure::REFUSED),
            (SYN_SENT, 0, errno::ETIMEDOUT, 0, 7, failure::TIMEOUT),
            (SYN_SENT, 0, 113, 113, 3, failure::UNREACHABLE),
            (SYN_SENT, 0, 0, 113, 1, failure::UNREACHABLE),
            (ESTABLISHED, 0, 113, 0, 9, failure::UNREACHABLE),
            (SYN_SENT, 0, 0, 0, 4, failure::ABORTED),
            (SYN_SENT, 0, 0, 0, 0, failure::NO_PORT),
            (ESTABLISHED, reset, errno::ECONNRESET, 0, 9, failure::RESET),
            (CLOSE_WAIT, reset, errno::EPIPE, 0, 9, failure::RESET),
            (ESTABLISHED, 0, errno::ETIMEDOUT, 0, 9, failure::TIMEOUT),
            (SYN_RECV, reset, 0, 0, 1, failure::RESET),
            (LAST_ACK, 0, 0, 0, 9, failure::NONE),
            (ESTABLISHED, 0, 0, 113, 9, failure::NONE),
            (LISTEN, 0, 0, 0, 0, failure::NONE),
        ];
        for (old, f, err, err_soft, segs_out, want) in cases {
            let end = SocketEnd {
                err,
                err_soft,
                segs_out,
            };
            assert_eq!(
                failure::NAMES[usize::from(super::failure(old, CLOSE, f, end))],
                failure::NAMES[usize::from(want)],
                "{old} {f} {end:?}"
            );
        }
        let end = SocketEnd::default();
        assert_eq!(super::failure(SYN_SENT, ESTABLISHED, 0, end), failure::NONE);
    }
}
