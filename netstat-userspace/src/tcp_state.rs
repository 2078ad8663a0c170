//! TCP states as netstat names them.

use netstat_common::tcp_state as k;

/// A kernel TCP state number (`include/net/tcp_states.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpState(pub u8);

impl TcpState {
    pub const SYN_RECV: Self = Self(k::SYN_RECV);
    pub const FIN_WAIT2: Self = Self(k::FIN_WAIT2);
    pub const TIME_WAIT: Self = Self(k::TIME_WAIT);
    pub const CLOSE: Self = Self(k::CLOSE);
    pub const LISTEN: Self = Self(k::LISTEN);
    pub const LAST_ACK: Self = Self(k::LAST_ACK);

    /// netstat's spelling (net-tools `tcp_state[]`).
    pub fn name(self) -> &'static str {
        match self.0 {
            k::ESTABLISHED => "ESTABLISHED",
            k::SYN_SENT => "SYN_SENT",
            k::SYN_RECV => "SYN_RECV",
            k::FIN_WAIT1 => "FIN_WAIT1",
            k::FIN_WAIT2 => "FIN_WAIT2",
            k::TIME_WAIT => "TIME_WAIT",
            k::CLOSE => "CLOSE",
            k::CLOSE_WAIT => "CLOSE_WAIT",
            k::LAST_ACK => "LAST_ACK",
            k::LISTEN => "LISTEN",
            k::CLOSING => "CLOSING",
            k::NEW_SYN_RECV => "NEW_SYN_RECV",
            _ => "UNKNOWN",
        }
    }

    /// The state netstat spells `name`; None for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        (1..=k::NEW_SYN_RECV)
            .map(Self)
            .find(|state| state.name() == name)
    }
}
