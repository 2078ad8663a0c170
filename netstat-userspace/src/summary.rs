//! `enetstat -S`: one block of counts per interval for a connection storm.
//!
//! kernel maps (STATS, REMOTES, SOCKS; counted by the programs, which send
//! no events in this mode) + /proc (TIME_WAIT count, listen overflows) ->
//! interval deltas (`Interval`, at each tick of the session) ->
//! render::summary (text or JSON).

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
    session::{self, Flow, Sink},
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
    let mut attached = session::attach(cli, namespaces, true)?;
    // The first block counts from here, so read before saying we trace:
    // whatever happens after that line is in the summary.
    let mut summary = Summary {
        every,
        last: Cumulative::read(&attached.probe)?,
        last_at: kernel::monotonic_ns(),
        clock: WallClock::new(),
        render: render::Writer::new(cli.json),
        out: Output::stdout(),
        closed: false,
        failed: None,
        stop_json: cli.json || cli.stop_json,
    };
    eprintln!(
        "enetstat: tracing TCP in {}, a summary every {:.1} s (stop with Ctrl-C)",
        namespaces.describe(),
        every.as_secs_f64()
    );
    session::run(&mut attached.probe, cli.duration, &mut summary).await
}

/// The summary: a sink of the session that writes one block per period.
struct Summary {
    every: Duration,
    last: Cumulative,
    /// When `last` was read (monotonic ns).
    last_at: u64,
    clock: WallClock,
    render: render::Writer,
    out: Output,
    /// The reader has gone away: the run ends quietly.
    closed: bool,
    /// Why writing failed; said after the stop summary.
    failed: Option<anyhow::Error>,
    stop_json: bool,
}

impl Summary {
    /// Writes the block of the interval that ends now.
    fn block(&mut self, probe: &Probe) -> Result<Flow> {
        let now = kernel::monotonic_ns();
        let totals = Cumulative::read(probe)?;
        let interval = totals.since(&self.last, probe, now, now - self.last_at)?;
        let block = self.render.render(self.clock.wall_ns(now), &interval);
        (self.last, self.last_at) = (totals, now);
        match self.out.write_whole(&block, "the summary") {
            Ok(true) => return Ok(Flow::Go),
            Ok(false) => self.closed = true,
            Err(e) => self.failed = Some(e),
        }
        Ok(Flow::End)
    }
}

impl Sink for Summary {
    fn reads_events(&self) -> bool {
        false
    }

    fn period(&self) -> Option<Duration> {
        Some(self.every)
    }

    fn tick(&mut self, probe: &Probe) -> Result<Flow> {
        self.block(probe)
    }

    fn finish(&mut self, probe: &Probe, stopped: bool) -> Result<()> {
        // A stop ends the interval under way with a block of its own.
        if stopped {
            self.block(probe)?;
        }
        if self.closed {
            return Ok(());
        }
        let counters = probe.counters()?;
        let stop = StopSummary {
            filtered: Some(counters.filtered),
            ..session::stop_summary("summary", &counters)
        };
        eprintln!("{}", stop.render(self.stop_json));
        self.failed.take().map_or(Ok(()), Err)
    }
}

/// Cumulative counts at one instant.
struct Cumulative {
    stats: Vec<u64>,
    remotes: HashMap<RemoteKey, RemoteStats>,
    time_wait: u64,
    listen_overflows: u64,
    listen_drops: u64,
    /// Kernel-side losses so far (`Counters::unrecovered + unseen`).
    missed: u64,
}

impl Cumulative {
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
