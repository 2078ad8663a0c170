//! The ephemeral-port budget of the calling thread's network namespace:
//! the local ports connect() may pick (`ip_local_port_range` less
//! `ip_local_reserved_ports`), and how many of them the sockets to each
//! remote endpoint hold, connected or in TIME_WAIT. A connect needs a local
//! port not already used with the same remote endpoint, so a budget runs
//! out per (local address, remote endpoint).

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
};

use netstat_common::{AF_INET, AF_INET6, tcp_state};

use crate::sock_diag;

/// The ports connect() picks from: `[low, high]` less the reserved ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
    /// Reserved ranges, inclusive.
    pub reserved: Vec<(u16, u16)>,
}

impl PortRange {
    /// The namespace's range, from /proc/sys/net/ipv4.
    pub fn read() -> io::Result<Self> {
        let sysctl = |name: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"));
        Self::parse(
            &sysctl("ip_local_port_range")?,
            &sysctl("ip_local_reserved_ports")?,
        )
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "ip_local_port_range"))
    }

    /// `range`: "LOW HIGH"; `reserved`: "P,P-Q,..." (empty for none).
    pub fn parse(range: &str, reserved: &str) -> Option<Self> {
        let mut bounds = range.split_whitespace().map(|p| p.parse::<u16>());
        let (low, high) = (bounds.next()?.ok()?, bounds.next()?.ok()?);
        let reserved = reserved
            .trim()
            .split(',')
            .filter(|r| !r.is_empty())
            .map(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?;
        (low <= high).then_some(Self {
            low,
            high,
            reserved,
        })
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
            && !self.reserved.iter().any(|&(a, b)| (a..=b).contains(&port))
    }

    /// How many ports connect() may pick.
    pub fn size(&self) -> u64 {
        let all = u64::from(self.high - self.low) + 1;
        let reserved: u64 = self
            .reserved
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.max(self.low), b.min(self.high));
                if a <= b { u64::from(b - a) + 1 } else { 0 }
            })
            .sum();
        all.saturating_sub(reserved)
    }
}

/// Local ports of the range held toward one remote endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortUse {
    /// Sockets holding one: connected (any state but LISTEN) or TIME_WAIT.
    pub in_use: u64,
    /// Of those, in TIME_WAIT.
    pub time_wait: u64,
}

/// The namespace's budget: its range, and the ports held by (local
/// address, remote endpoint).
pub type Budget = (PortRange, HashMap<(IpAddr, SocketAddr), PortUse>);

/// Reads the calling thread's namespace's budget (sock_diag dumps of every
/// TCP socket but listeners, both families).
pub fn budget() -> anyhow::Result<Budget> {
    let range = PortRange::read()?;
    let mut held: HashMap<(IpAddr, SocketAddr), PortUse> = HashMap::new();
    let not_listening = !(1u32 << tcp_state::LISTEN);
    for family in [AF_INET, AF_INET6] {
        for s in sock_diag::tcp_sockets_in(family, not_listening)? {
            if s.remote.port() == 0 || !range.contains(s.local.port()) {
                continue;
            }
            let entry = held.entry((s.local.ip(), s.remote)).or_default();
            entry.in_use += 1;
            entry.time_wait += u64::from(s.state == tcp_state::TIME_WAIT);
        }
    }
    Ok((range, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_less_its_reserved_ports_is_the_budget() {
        let r = PortRange::parse("32768\t60999\n", "\n").unwrap();
        assert_eq!(r.size(), 28_232);
        let r = PortRange::parse("40000 40099", "40010-40019,40050,1000-2000\n").unwrap();
        assert_eq!(r.size(), 89);
        assert!(r.contains(40000) && !r.contains(40015) && !r.contains(40050));
        assert!(!r.contains(39_999) && !r.contains(40_100));
        assert_eq!(PortRange::parse("5 4", ""), None);
        assert_eq!(PortRange::parse("x", ""), None);
    }
}
