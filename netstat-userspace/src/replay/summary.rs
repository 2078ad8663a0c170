//! `enetstat --replay LOG -S [SECONDS]`: the blocks live `-S` prints, from
//! what the log's events determine, one per SECONDS of the log's time.
//!
//! Counts go into the kernel's `STATS` layout (`netstat_common::stat`) and
//! are decoded by the same `traffic::Traffic` as live `-S`'s, so a field
//! means the same in both; TIME_WAIT, SYN_SENT and CLOSE_WAIT come from
//! the followed table. What a log does not hold (listen overflows and
//! drops, reasons, listeners, ephemeral ports, the tracer's cost) is null.

use std::{collections::HashMap, net::SocketAddr, rc::Rc};

use anyhow::Result;
use netstat_common::{stat, tcp_state as s};

use super::Follower;
use crate::{
    command::ReplaySummary,
    conn_table::Entry,
    decoder::{EventKind, NetEvent, StateAge, Timing},
    log_file::{LogReader, Record},
    output::Output,
    owners::Owner,
    render::summary::{CgroupCount, CloseWait, Interval, ProgramCount, Remote, Writer},
    tcp_state::TcpState,
    traffic::Traffic,
};

/// Writes a block per interval of the log's time, the last one up to its
/// last record.
pub fn run(log: &mut LogReader, every: &ReplaySummary) -> Result<()> {
    let step = every.every.as_nanos() as i128;
    let mut follower = Follower::default();
    let mut counts = Counts::new();
    let mut writer = Writer::new(every.json);
    let mut out = Output::stdout();
    let mut block_start = None;
    let mut last = 0;
    let mut time_wait = 0;
    while let Some(timed) = log.next()? {
        let start = block_start.get_or_insert(timed.wall_ns);
        while timed.wall_ns >= *start + step {
            *start += step;
            let block = counts.block(&mut follower, *start, step, &mut time_wait, every);
            if out
                .write_whole(&writer.render(*start, &block), "the summary")?
                .is_gone()
            {
                return Ok(());
            }
        }
        last = timed.wall_ns;
        if let Record::Event(ev) = &timed.record {
            counts.add(ev);
        }
        if let Record::Lost(n) = timed.record {
            counts.missed += n;
        }
        follower.take(&timed, log)?;
    }
    if let Some(start) = block_start.filter(|&s| last > s) {
        let block = counts.block(&mut follower, last, last - start, &mut time_wait, every);
        let _ = out.write_whole(&writer.render(last, &block), "the summary")?;
    }
    Ok(())
}

/// What one interval's events add up to.
struct Counts {
    /// In the kernel's `STATS` layout.
    stats: Vec<u64>,
    missed: u64,
    remotes: HashMap<(u32, SocketAddr), Remote>,
    cgroups: HashMap<Rc<str>, CgroupCount>,
    programs: HashMap<(u32, Rc<str>), ProgramCount>,
}

impl Counts {
    fn new() -> Self {
        Self {
            stats: vec![0; stat::COUNT as usize],
            missed: 0,
            remotes: HashMap::new(),
            cgroups: HashMap::new(),
            programs: HashMap::new(),
        }
    }

    fn add(&mut self, ev: &NetEvent) {
        let mut add = |at: u32| self.stats[at as usize] += 1;
        match ev.kind {
            EventKind::State { old, new } => {
                add(stat::transition(old.0, new.0));
                if let Some(f) = ev.failure {
                    add(stat::FAILURES + failure_value(f.name()));
                }
                self.durations(ev, old, new);
            }
            EventKind::Retransmit if ev.state.0 == s::SYN_SENT => add(stat::SYN_RETRANSMITS),
            EventKind::Retransmit => add(stat::RETRANSMITS),
            EventKind::RetransmitSynack => add(stat::SYNACK_RETRANSMITS),
            EventKind::ResetSent => add(stat::RESETS_SENT),
            EventKind::ResetReceived => add(stat::RESETS_RECEIVED),
            EventKind::Drop => {}
        }
        self.by_remote(ev);
        self.by_owner(ev);
    }

    /// The handshake and lifetime histograms, as the kernel side fills them.
    fn durations(&mut self, ev: &NetEvent, old: TcpState, new: TcpState) {
        let mut add = |histogram: u32, ns: u64| {
            self.stats[(histogram + stat::duration_bucket(ns)) as usize] += 1;
            self.stats[(histogram + stat::HISTOGRAM_BUCKETS) as usize] += ns;
        };
        if let (s::ESTABLISHED, Some(StateAge::Exact(ns))) = (new.0, ev.age) {
            match old.0 {
                s::SYN_SENT => add(stat::CONNECT_DURATION, ns),
                s::SYN_RECV => add(stat::ACCEPT_DURATION, ns),
                _ => {}
            }
        }
        if netstat_common::ends_connection(old.0, new.0)
            && let Some(ns) = ev.totals.and_then(|t| t.lifetime_ns)
        {
            add(stat::LIFETIME, ns);
        }
    }

    fn by_remote(&mut self, ev: &NetEvent) {
        let (failed, reset, retransmit, drop) = match ev.kind {
            EventKind::State { old, .. } => (
                old.0 == s::SYN_SENT && ev.failure.is_some(),
                false,
                false,
                false,
            ),
            EventKind::ResetSent | EventKind::ResetReceived => (false, true, false, false),
            EventKind::Retransmit | EventKind::RetransmitSynack => (false, false, true, false),
            EventKind::Drop => (false, false, false, true),
        };
        if !(failed || reset || retransmit || drop) {
            return;
        }
        // As the kernel side counts: an inbound peer by its address alone.
        let mut endpoint = ev.remote;
        if ev.inbound {
            endpoint.set_port(0);
        }
        let r = self.remotes.entry((ev.netns, endpoint)).or_insert(Remote {
            netns: ev.netns,
            endpoint,
            failed_connects: 0,
            drops: 0,
            resets: 0,
            retransmits: 0,
        });
        r.failed_connects += u64::from(failed);
        r.resets += u64::from(reset);
        r.retransmits += u64::from(retransmit);
        r.drops += u64::from(drop);
    }

    /// Connects begun, failures and resets by the owner and its cgroup.
    fn by_owner(&mut self, ev: &NetEvent) {
        let Some(owner) = &ev.owner else { return };
        let opened = matches!(ev.kind, EventKind::State { old, new }
            if old.0 == s::CLOSE && new.0 == s::SYN_SENT);
        let failed = ev.failure.is_some();
        let reset = matches!(ev.kind, EventKind::ResetSent | EventKind::ResetReceived);
        if !(opened || failed || reset) {
            return;
        }
        let cgroup: Rc<str> = ev.cgroup.clone().unwrap_or_else(|| Rc::from(""));
        let p = self
            .programs
            .entry((owner.pid, owner.program.clone()))
            .or_insert(ProgramCount {
                pid: owner.pid,
                program: owner.program.to_string(),
                cgroup: cgroup.clone(),
                opened: 0,
                failed: 0,
            });
        p.opened += u64::from(opened);
        p.failed += u64::from(failed);
        if ev.cgroup.is_some() {
            let c = self.cgroups.entry(cgroup.clone()).or_insert(CgroupCount {
                cgroup,
                name: None,
                opened: 0,
                failed: 0,
                resets: 0,
            });
            c.opened += u64::from(opened);
            c.failed += u64::from(failed);
            c.resets += u64::from(reset);
        }
    }

    /// The interval that ends at `end` and lasted `length` ns; the counts
    /// start again.
    fn block(
        &mut self,
        follower: &mut Follower,
        end: i128,
        length: i128,
        time_wait_before: &mut u64,
        every: &ReplaySummary,
    ) -> Interval {
        let counts = std::mem::replace(self, Self::new());
        let stats = counts.stats;
        follower.settle(end);
        let table = Table::read(follower, end, every.close_wait_age.as_nanos() as i128);
        let time_wait_growth = table.time_wait as i64 - *time_wait_before as i64;
        *time_wait_before = table.time_wait;
        let mut remotes: Vec<Remote> = counts.remotes.into_values().collect();
        remotes.sort_by_key(|r| (std::cmp::Reverse(r.total()), r.endpoint, r.netns));
        remotes.truncate(5);
        let mut programs: Vec<ProgramCount> = counts.programs.into_values().collect();
        programs.sort_by(|a, b| (b.opened, b.failed, a.pid).cmp(&(a.opened, a.failed, b.pid)));
        programs.truncate(5);
        let mut cgroups: Vec<CgroupCount> = counts.cgroups.into_values().collect();
        cgroups.sort_by(|a, b| {
            (b.opened, b.failed, b.resets, &a.cgroup)
                .cmp(&(a.opened, a.failed, a.resets, &b.cgroup))
        });
        cgroups.truncate(5);
        Interval {
            seconds: length as f64 / 1e9,
            traffic: Traffic::from_stats(&stats),
            time_wait: table.time_wait,
            time_wait_growth,
            syn_sent_over_1s: table.syn_sent_over_1s,
            listen_overflows: None,
            listen_drops: None,
            missed: counts.missed,
            resets_by_reason: None,
            drops: None,
            remotes,
            cgroups,
            programs,
            close_wait: table.close_wait,
            close_wait_age_s: every.close_wait_age.as_secs_f64(),
            ephemeral_ports: None,
            listeners: None,
            cost: None,
        }
    }
}

/// `failure::NAMES`' index of a verdict's name.
fn failure_value(name: &str) -> u32 {
    netstat_common::failure::NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or(0) as u32
}

/// What the followed table says at an interval's end.
struct Table {
    time_wait: u64,
    syn_sent_over_1s: u64,
    close_wait: Vec<CloseWait>,
}

impl Table {
    fn read(follower: &Follower, end: i128, leak_ns: i128) -> Self {
        let mut table = Self {
            time_wait: 0,
            syn_sent_over_1s: 0,
            close_wait: Vec::new(),
        };
        // By owner (pid, program): how many, and the oldest's ns.
        let mut leaks: HashMap<Option<Owner>, (u64, i128)> = HashMap::new();
        for entry in follower.table.entries() {
            let row = match entry {
                Entry::TimeWait(_, tw) => {
                    table.time_wait += u64::from(tw.state().0 == s::TIME_WAIT);
                    continue;
                }
                Entry::Row(row) => row,
            };
            let since = match row.entered {
                Timing::Exact(at) | Timing::Bound(at) => at,
            };
            match row.socket.state {
                s::SYN_SENT if end - since > 1_000_000_000 => table.syn_sent_over_1s += 1,
                s::CLOSE_WAIT if end - since >= leak_ns => {
                    let leak = leaks.entry(row.owner.clone()).or_default();
                    (leak.0, leak.1) = (leak.0 + 1, leak.1.max(end - since));
                }
                _ => {}
            }
        }
        table.close_wait = leaks
            .into_iter()
            .map(|(owner, (count, oldest))| CloseWait {
                pid: owner.as_ref().map(|o| o.pid),
                program: owner.map(|o| o.program.to_string()),
                cgroup: None,
                count,
                oldest_s: oldest as f64 / 1e9,
            })
            .collect();
        table
            .close_wait
            .sort_by(|a, b| (b.count, a.pid).cmp(&(a.count, b.pid)));
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_file::{Record, parse};

    fn reset_received(remote: &str, inbound: bool) -> NetEvent {
        let line = format!(
            r#"{{"time":"2026-12-07T03:00:00Z","event":"receive_reset","proto":"tcp","local":"127.0.0.1:7000","remote":"{remote}","state":"ESTABLISHED","inbound":{inbound},"socket":"1"}}"#
        );
        match parse(&line).unwrap().record {
            Record::Event(ev) => *ev,
            _ => panic!("an event"),
        }
    }

    /// As the kernel side counts: an inbound peer by its address, a peer
    /// this end connected to by its endpoint.
    #[test]
    fn inbound_peers_are_counted_by_address() {
        let mut counts = Counts::new();
        for remote in ["10.0.0.2:40001", "10.0.0.2:40002"] {
            counts.add(&reset_received(remote, true));
        }
        counts.add(&reset_received("10.0.0.2:5432", false));
        let mut got: Vec<(String, u64)> = counts
            .remotes
            .values()
            .map(|r| (r.endpoint.to_string(), r.resets))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("10.0.0.2:0".to_string(), 2),
                ("10.0.0.2:5432".to_string(), 1)
            ]
        );
    }
}
