//! The kernel's traffic counts (`STATS`, indices in `netstat_common::stat`)
//! decoded into what they mean: connections opened and closed, failures,
//! retransmits, resets, every transition, and two duration histograms.
//! Since start-up (`from_stats`) or over an interval (`since`).

use netstat_common::{
    failure,
    stat::{self, HISTOGRAM_BUCKETS},
    tcp_state as s,
};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    /// Connects begun (CLOSE -> SYN_SENT).
    pub opened_active: u64,
    /// Handshakes completed on a listener (SYN_RECV -> ESTABLISHED).
    pub opened_passive: u64,
    /// Connections whose socket ended: closed, entered TIME_WAIT, or handed
    /// to a timewait socket in FIN_WAIT2 (`ends_connection`; listeners excepted).
    pub closed: u64,
    /// Connections ended by each verdict, by `failure` value (index 0,
    /// no failure, stays 0); see `failures`.
    pub failures: [u64; failure::NAMES.len()],
    /// Retransmitted data segments, SYNs and SYN-ACKs, counted apart.
    pub retransmits: u64,
    pub syn_retransmits: u64,
    pub synack_retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// (old, new, count), TIME_WAIT entries shown as such.
    pub transitions: Vec<(u8, u8, u64)>,
    /// SYN_SENT -> ESTABLISHED.
    pub connect_duration: Histogram,
    /// From connect or accept to the end.
    pub lifetime: Histogram,
    /// SYN_RECV -> ESTABLISHED.
    pub accept_duration: Histogram,
    /// Resets sent by the kernel's reason (`enum sk_rst_reason` value,
    /// count), where counted; kernels before 6.10 give none.
    pub reset_reasons: Vec<(u8, u64)>,
    /// TCP packets dropped by the kernel's reason (`enum skb_drop_reason`
    /// value, count), where drops are counted.
    pub drops: Vec<(u8, u64)>,
}

/// Durations by power of two of microseconds (`stat::duration_bucket`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `buckets[b]`: durations under 2^b us (the last: any longer).
    pub buckets: Vec<u64>,
    pub sum_ns: u64,
}

impl Histogram {
    fn from_stats(stats: &[u64], at: u32) -> Self {
        let at = at as usize;
        let end = at + HISTOGRAM_BUCKETS as usize;
        Self {
            buckets: stats[at..end].to_vec(),
            sum_ns: stats[end],
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The duration under which a share `q` (0..=1) of the samples fall, in
    /// seconds: the upper bound of the bucket where that share is reached
    /// (None without samples; infinite in the open last bucket).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.buckets.iter().enumerate().find_map(|(b, n)| {
            seen += n;
            (seen >= rank).then(|| Self::upper_bound_seconds(b))
        })
    }

    /// The upper bound of bucket `b` in seconds; infinite for the last.
    pub fn upper_bound_seconds(b: usize) -> f64 {
        if b + 1 >= HISTOGRAM_BUCKETS as usize {
            f64::INFINITY
        } else {
            (1u64 << b) as f64 / 1e6
        }
    }
}

/// The nonzero counts of a block of `STATS` indexed by a kernel enum.
fn by_reason(stats: &[u64], at: u32, slots: u32) -> Vec<(u8, u64)> {
    (0..slots as u8)
        .map(|r| (r, stats[(at + u32::from(r)) as usize]))
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl Traffic {
    /// `stats` as `KernelCounts::stats` reads them.
    pub fn from_stats(stats: &[u64]) -> Self {
        let at = |i: u32| stats[i as usize];
        let transition = |old: u8, new: u8| at(stat::transition(old, new));
        let mut transitions = Vec::new();
        let mut closed = 0;
        for old in 0..16u8 {
            for new in 0..16u8 {
                let n = transition(old, new);
                if n == 0 {
                    continue;
                }
                transitions.push((old, new, n));
                if netstat_common::ends_connection(old, new) {
                    closed += n;
                }
            }
        }
        Self {
            opened_active: transition(s::CLOSE, s::SYN_SENT),
            opened_passive: transition(s::SYN_RECV, s::ESTABLISHED),
            closed,
            failures: std::array::from_fn(|v| match v {
                0 => 0,
                v => at(stat::FAILURES + v as u32),
            }),
            retransmits: at(stat::RETRANSMITS),
            syn_retransmits: at(stat::SYN_RETRANSMITS),
            synack_retransmits: at(stat::SYNACK_RETRANSMITS),
            resets_sent: at(stat::RESETS_SENT),
            resets_received: at(stat::RESETS_RECEIVED),
            transitions,
            connect_duration: Histogram::from_stats(stats, stat::CONNECT_DURATION),
            lifetime: Histogram::from_stats(stats, stat::LIFETIME),
            accept_duration: Histogram::from_stats(stats, stat::ACCEPT_DURATION),
            reset_reasons: by_reason(stats, stat::RESET_REASONS, stat::RESET_REASON_SLOTS),
            drops: by_reason(stats, stat::DROPS, stat::DROP_REASON_SLOTS),
        }
    }

    /// (verdict name, connections) for every verdict, in `failure` order.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        (1..failure::NAMES.len()).map(|v| (failure::NAMES[v], self.failures[v]))
    }

    /// What was counted between two readings.
    pub fn since(now: &[u64], before: &[u64]) -> Self {
        let delta: Vec<u64> = now
            .iter()
            .zip(before)
            .map(|(n, b)| n.saturating_sub(*b))
            .collect();
        Self::from_stats(&delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_decoded_by_meaning() {
        let mut stats = vec![0; stat::COUNT as usize];
        stats[stat::transition(s::CLOSE, s::SYN_SENT) as usize] = 5;
        stats[stat::transition(s::SYN_SENT, s::ESTABLISHED) as usize] = 3;
        stats[stat::transition(s::SYN_SENT, s::CLOSE) as usize] = 2;
        stats[stat::transition(s::FIN_WAIT2, s::TIME_WAIT) as usize] = 3;
        stats[stat::transition(s::LISTEN, s::CLOSE) as usize] = 1;
        stats[(stat::FAILURES + u32::from(failure::REFUSED)) as usize] = 2;
        stats[(stat::CONNECT_DURATION + 7) as usize] = 3;
        stats[(stat::CONNECT_DURATION + HISTOGRAM_BUCKETS) as usize] = 300_000;
        let t = Traffic::from_stats(&stats);
        assert_eq!((t.opened_active, t.closed), (5, 5));
        assert_eq!(t.failures().next(), Some(("refused", 2)));
        assert_eq!(t.failures().count(), 6);
        assert_eq!(t.transitions.len(), 5);
        assert_eq!(t.connect_duration.count(), 3);
        assert_eq!(t.connect_duration.buckets[7], 3);
        assert_eq!(t.connect_duration.sum_ns, 300_000);
        assert_eq!(t.lifetime.count(), 0);
        assert_eq!(Histogram::upper_bound_seconds(7), 128e-6);
        assert!(Histogram::upper_bound_seconds(HISTOGRAM_BUCKETS as usize - 1).is_infinite());

        let mut later = stats.clone();
        later[stat::transition(s::CLOSE, s::SYN_SENT) as usize] = 9;
        assert_eq!(Traffic::since(&later, &stats).opened_active, 4);
        assert_eq!(Traffic::since(&later, &stats).closed, 0);
    }
}
