//! `enetstat -S`: one block of counts per interval for a connection storm.
//!
//! kernel maps (STATS, REMOTES, SOCKS; counted by the programs, which send
//! no events in this mode) + /proc (TIME_WAIT count, listen overflows) ->
//! interval deltas (`Interval`) -> render::summary (text or JSON).

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result};
use netstat_common::{RemoteKey, RemoteStats, stat};

use crate::{
    cli::Cli,
    clock::WallClock,
    decoder, fail,
    kernel::{self, Probe},
    netns::Selection,
    output::Output,
    procnet,
    render::{
        stop::StopSummary,
        summary::{self as render, Interval, Remote},
    },
    session,
};

pub fn run(cli: &Cli, namespaces: Selection, seconds: f64) -> Result<()> {
    if !(seconds.is_finite() && seconds >= 0.1) {
        return Err(fail::usage(format!(
            "invalid --summary interval {seconds}: use at least 0.1 seconds"
        )));
    }
    session::block_on(summarise(cli, namespaces, Duration::from_secs_f64(seconds)))
}

async fn summarise(cli: &Cli, namespaces: Selection, every: Duration) -> Result<()> {
    let attached = session::attach(cli, namespaces, true)?;
    let probe = &attached.probe;
    let clock = WallClock::new();
    // The first block counts from here, so read before saying we trace:
    // whatever happens after that line is in the summary.
    let mut last = Totals::read(probe)?;
    let mut last_at = kernel::monotonic_ns();
    eprintln!(
        "enetstat: tracing TCP in {}, a summary every {:.1} s (stop with Ctrl-C)",
        namespaces.describe(),
        every.as_secs_f64()
    );
    let mut render = render::Writer::new(cli.json);
    let mut out = Output::stdout();
    let stop = crate::stop::requested(cli.duration)?;
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut stop => true,
        };
        let now = kernel::monotonic_ns();
        let totals = Totals::read(probe)?;
        let interval = totals.since(&last, probe, now, now - last_at)?;
        let wall = clock.wall_ns(now);
        let block = render.render(wall, &interval);
        let written = out.write_whole(&block, "the summary");
        (last, last_at) = (totals, now);
        // A failed write ends the run like a stop, and is told after the
        // stop summary.
        match written {
            Ok(true) if !stopping => continue,
            Ok(false) => return Ok(()),
            _ => {}
        }
        let counters = probe.counters()?;
        let stop = StopSummary {
            filtered: Some(counters.filtered),
            ..session::stop_summary("summary", &counters)
        };
        eprintln!("{}", stop.render(cli.json || cli.stop_json));
        return written.map(|_| ());
    }
}

/// Cumulative counts at one instant.
struct Totals {
    stats: Vec<u64>,
    remotes: HashMap<RemoteKey, RemoteStats>,
    time_wait: u64,
    listen_overflows: u64,
    listen_drops: u64,
    /// Kernel-side losses so far (`Counters::unrecovered + unseen`).
    missed: u64,
}

impl Totals {
    fn read(probe: &Probe) -> Result<Self> {
        let sockstat = procnet::read("/proc/net/sockstat").context("reading /proc/net/sockstat")?;
        let netstat = procnet::read("/proc/net/netstat").context("reading /proc/net/netstat")?;
        let tcp_ext = procnet::snmp::parse_tables(&netstat, "/proc/net/netstat")?
            .into_iter()
            .find(|t| t.name == "TcpExt")
            .map(|t| t.fields)
            .unwrap_or_default();
        let ext = |name: &str| tcp_ext.iter().find(|(n, _)| n == name).map_or(0, |f| f.1);
        let counters = probe.counters()?;
        Ok(Self {
            missed: counters.unrecovered + counters.gaps,
            stats: probe.stats()?,
            remotes: probe.remotes()?.into_iter().collect(),
            time_wait: time_wait_count(&sockstat),
            listen_overflows: ext("ListenOverflows"),
            listen_drops: ext("ListenDrops"),
        })
    }

    /// What happened between `before` and now, `elapsed_ns` apart.
    fn since(&self, before: &Self, probe: &Probe, now: u64, elapsed_ns: u64) -> Result<Interval> {
        let d = |i: u32| self.stats[i as usize].saturating_sub(before.stats[i as usize]);
        let transition = |old: u8, new: u8| d(stat::transition(old, new));
        use netstat_common::{failure, tcp_state as s};
        let mut transitions = Vec::new();
        let mut closed = 0;
        for old in 0..16u8 {
            for new in 0..16u8 {
                let n = transition(old, new);
                if n == 0 {
                    continue;
                }
                transitions.push((old, new, n));
                if (new == s::CLOSE && old != s::LISTEN) || new == s::TIME_WAIT {
                    closed += n;
                }
            }
        }
        let mut remotes: Vec<Remote> = self
            .remotes
            .iter()
            .filter_map(|(key, now)| {
                let was = before.remotes.get(key).copied().unwrap_or_default();
                let r = Remote {
                    endpoint: endpoint(key),
                    failed_connects: now.failed_connects.saturating_sub(was.failed_connects),
                    resets: now.resets.saturating_sub(was.resets),
                    retransmits: now.retransmits.saturating_sub(was.retransmits),
                };
                (r.failed_connects + r.resets + r.retransmits > 0).then_some(r)
            })
            .collect();
        remotes.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.failed_connects + r.resets + r.retransmits),
                r.endpoint,
            )
        });
        remotes.truncate(5);
        Ok(Interval {
            seconds: elapsed_ns as f64 / 1e9,
            new_active: transition(s::CLOSE, s::SYN_SENT),
            new_passive: transition(s::SYN_RECV, s::ESTABLISHED),
            closed,
            refused: d(stat::FAILURES + u32::from(failure::REFUSED)),
            timeout: d(stat::FAILURES + u32::from(failure::TIMEOUT)),
            reset: d(stat::FAILURES + u32::from(failure::RESET)),
            retransmits: d(stat::RETRANSMITS),
            synack_retransmits: d(stat::SYNACK_RETRANSMITS),
            resets_sent: d(stat::RESETS_SENT),
            resets_received: d(stat::RESETS_RECEIVED),
            time_wait: self.time_wait,
            time_wait_growth: self.time_wait as i64 - before.time_wait as i64,
            syn_sent_over_1s: probe.states_since_before(now.saturating_sub(1_000_000_000))?
                [usize::from(s::SYN_SENT)],
            listen_overflows: self
                .listen_overflows
                .saturating_sub(before.listen_overflows),
            listen_drops: self.listen_drops.saturating_sub(before.listen_drops),
            missed: self.missed.saturating_sub(before.missed),
            transitions,
            remotes,
        })
    }
}

fn endpoint(key: &RemoteKey) -> SocketAddr {
    decoder::socket_addr(key.family == netstat_common::AF_INET6, &key.addr, key.port)
}

/// The `tw` figure of /proc/net/sockstat's `TCP:` line (our namespace).
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
