//! How loaded the namespace's TCP is, from two files: TIME_WAIT sockets
//! (/proc/net/sockstat) and accept-queue overflows (/proc/net/netstat).

use anyhow::{Context as _, Result};

use crate::procnet;

/// The calling thread's namespace: /proc/net is the main thread's, and the
/// metrics thread reads the namespaces of `--netns all` one by one.
const SOCKSTAT: &str = "/proc/thread-self/net/sockstat";
const NETSTAT: &str = "/proc/thread-self/net/netstat";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TcpPressure {
    /// Sockets in TIME_WAIT now.
    pub time_wait: u64,
    /// Since boot (TcpExt ListenOverflows, ListenDrops).
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

impl TcpPressure {
    /// Adds another namespace's figures to these.
    pub fn add(&mut self, other: &Self) {
        self.time_wait += other.time_wait;
        self.listen_overflows += other.listen_overflows;
        self.listen_drops += other.listen_drops;
    }

    /// The figures of the reading thread's network namespace.
    pub fn read() -> Result<Self> {
        let sockstat = procnet::read(SOCKSTAT).context("reading /proc/net/sockstat")?;
        let netstat = procnet::read(NETSTAT).context("reading /proc/net/netstat")?;
        let ext = |name| netstat_common::snmp_field(&netstat, "TcpExt", name).unwrap_or(0);
        Ok(Self {
            time_wait: time_wait_count(&sockstat),
            listen_overflows: ext("ListenOverflows"),
            listen_drops: ext("ListenDrops"),
        })
    }
}

/// The `tw` figure of /proc/net/sockstat's `TCP:` line.
fn time_wait_count(sockstat: &str) -> u64 {
    sockstat
        .lines()
        .find_map(|l| l.strip_prefix("TCP:"))
        .and_then(|fields| {
            let words: Vec<&str> = fields.split_whitespace().collect();
            words
                .windows(2)
                .find(|w| w[0] == "tw")
                .and_then(|w| w[1].parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_wait_from_sockstat() {
        let text =
            "sockets: used 5\nTCP: inuse 3 orphan 0 tw 1999 alloc 4 mem 1\nUDP: inuse 0 mem 0\n";
        assert_eq!(super::time_wait_count(text), 1999);
        assert_eq!(super::time_wait_count("garbage"), 0);
    }
}
