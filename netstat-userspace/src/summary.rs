//! `enetstat -S`: one block of counts per interval for a connection storm.
//!
//! kernel maps (STATS, REMOTES, CGROUPS, PROGRAMS, SOCKS; counted by the
//! programs, which send no events in this mode) + /proc (TIME_WAIT count, listen overflows) +
//! sock_diag (each listener's queue and drop counter) ->
//! interval deltas (`Interval`, at each tick of the session) ->
//! render::summary (text or JSON).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::Result;
use netstat_common::{EndpointKey, OwnerStats, ProgramKey, RemoteStats, SockInfo};

use crate::{
    cgroups::{self, CgroupNames},
    clock::WallClock,
    command,
    cost::Cost,
    decoder,
    kernel::{self, Probe},
    netns::{self, Selection},
    output::{Output, Reader},
    ports::{self, PortUse},
    procnet::sockstat::TcpPressure,
    render::{
        stop::StopSummary,
        summary::{
            self as render, CgroupCount, CloseWait, EphemeralPorts, Interval, Listener,
            ProgramCount, Remote,
        },
    },
    session::{self, Attached, Flow, Sink},
    sock_diag::{self, ListenerLoad},
    traffic::Traffic,
};

/// Runs the summary on programs attached for it (`Needs::CountsByRemote`).
pub fn run(asked: &command::Summary, attached: Attached) -> Result<()> {
    session::block_on(summarise(asked, attached))
}

async fn summarise(asked: &command::Summary, mut attached: Attached) -> Result<()> {
    let (namespaces, every) = (attached.namespaces, asked.every);
    // The first block counts from here, so read before saying we trace:
    // whatever happens after that line is in the summary.
    let mut summary = Summary {
        every,
        namespaces,
        last: Cumulative::read(&attached.probe, namespaces)?,
        last_at: kernel::monotonic_ns(),
        clock: WallClock::new(),
        render: render::Writer::new(asked.json),
        out: Output::stdout(),
        closed: false,
        failed: None,
        stop_json: attached.json_records,
        blocks_left: asked.count,
        filtered: attached.filter != netstat_common::Filter::default(),
        cgroups: CgroupNames::new(),
        close_wait_age: asked.close_wait_age,
    };
    let english = format!(
        "tracing TCP in {}, a summary every {:.1} s",
        namespaces.describe(),
        every.as_secs_f64()
    );
    let stop = attached.announce("summary", &english, asked.tracing.stop_after)?;
    session::run(&mut attached.probe, stop, &mut summary).await
}

/// The summary: a sink of the session that writes one block per period.
struct Summary {
    every: Duration,
    namespaces: Selection,
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
    /// Blocks still to write (`--count`); None: until stopped.
    blocks_left: Option<u64>,
    /// A filter was given: the stop summary says what it left out.
    filtered: bool,
    cgroups: CgroupNames,
    close_wait_age: Duration,
}

impl Summary {
    /// Writes the block of the interval that ends now.
    fn block(&mut self, probe: &Probe) -> Result<Flow> {
        let now = kernel::monotonic_ns();
        let totals = Cumulative::read(probe, self.namespaces)?;
        let socks = probe.remembered()?;
        let mut interval = totals.since(&self.last, probe, &socks, (now, now - self.last_at))?;
        (interval.cgroups, interval.programs) = totals.owners_since(&self.last, &mut self.cgroups);
        interval.close_wait = self.close_wait_leaks(&socks, now);
        interval.close_wait_age_s = self.close_wait_age.as_secs_f64();
        let block = self.render.render(self.clock.wall_ns(now), &interval);
        (self.last, self.last_at) = (totals, now);
        match self.out.write_whole(&block, "the summary") {
            Ok(Reader::Reading) => {}
            Ok(Reader::Gone) => {
                self.closed = true;
                return Ok(Flow::End);
            }
            Err(e) => {
                self.failed = Some(e);
                return Ok(Flow::End);
            }
        }
        self.blocks_left = self.blocks_left.map(|n| n.saturating_sub(1));
        Ok(match self.blocks_left {
            Some(0) => Flow::End,
            _ => Flow::Go,
        })
    }
}

impl Summary {
    /// The owners of sockets in CLOSE_WAIT for longer than the leak age
    /// at monotonic `now`: most such sockets first.
    fn close_wait_leaks(&mut self, socks: &[SockInfo], now: u64) -> Vec<CloseWait> {
        let since = now.saturating_sub(self.close_wait_age.as_nanos() as u64);
        kernel::close_wait_leaks(socks, since)
            .into_iter()
            .take(CLOSE_WAIT_OWNERS)
            .map(|(owner, count, oldest)| CloseWait {
                pid: owner.map(|o| o.0),
                program: owner.map(|o| crate::textfmt::c_string(&o.1)),
                cgroup: owner.map(|o| self.cgroups.path(o.2, o.0)),
                count,
                oldest_s: now.saturating_sub(oldest) as f64 / 1e9,
            })
            .collect()
    }
}

/// Ephemeral ports held, by (netns, local address, remote endpoint).
type PortsHeld = HashMap<(u32, IpAddr, SocketAddr), PortUse>;

/// Owners listed with CLOSE_WAIT leaks (JSON; the text shows five).
const CLOSE_WAIT_OWNERS: usize = 20;

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
        // A stop ends the interval under way with a block of its own
        // (unless --count's blocks are all written).
        if stopped && self.blocks_left != Some(0) {
            self.block(probe)?;
        }
        if self.closed {
            return Ok(());
        }
        let counters = probe.counters()?;
        let stop = StopSummary {
            filtered: self.filtered.then_some(counters.filtered),
            ..session::stop_summary("summary", probe, &counters)
        };
        eprintln!("{}", stop.render(self.stop_json));
        self.failed.take().map_or(Ok(()), Err)
    }
}

/// Cumulative counts at one instant.
struct Cumulative {
    stats: Vec<u64>,
    remotes: HashMap<EndpointKey, RemoteStats>,
    cgroups: HashMap<u64, OwnerStats>,
    programs: HashMap<ProgramKey, OwnerStats>,
    /// Summed over the watched namespaces.
    pressure: TcpPressure,
    /// Listeners by (netns, local address, inode); None without sock_diag.
    listeners: Option<HashMap<(u32, SocketAddr, u64), ListenerLoad>>,
    /// Drops of the listeners that closed, by endpoint, summed since start.
    closed_listeners: HashMap<EndpointKey, u64>,
    /// Ephemeral ports held by (netns, local address, remote endpoint),
    /// and each namespace's budget; None without sock_diag.
    ports: Option<(PortsHeld, HashMap<u32, u64>)>,
    /// Kernel-side losses so far (`Counters::unrecovered + unseen`).
    missed: u64,
    /// What the tracer has cost so far (`--self-cost`).
    cost: Option<Cost>,
}

impl Cumulative {
    fn read(probe: &Probe, namespaces: Selection) -> Result<Self> {
        let counters = probe.counters()?;
        let mut pressure = TcpPressure::default();
        let mut listeners = Some(HashMap::new());
        let mut ports = Some((HashMap::new(), HashMap::new()));
        for (inode, path) in namespaces.members() {
            match (netns::inside(path.as_deref(), ports::budget), &mut ports) {
                (Ok(Some((range, held))), Some((all, sizes))) => {
                    sizes.insert(inode, range.size());
                    all.extend(held.into_iter().map(|((l, r), u)| ((inode, l, r), u)));
                }
                (Ok(None), _) => {}
                (Err(e), _) => {
                    log::debug!("no ephemeral-port budget: {e}");
                    ports = None;
                }
                (_, None) => {}
            }
            // A namespace gone since it was listed has nothing left to count.
            let Some((p, found)) = netns::inside(path.as_deref(), sock_diag::namespace_load)?
            else {
                continue;
            };
            pressure.add(&p);
            match (found, &mut listeners) {
                (Some(found), Some(all)) => {
                    all.extend(found.into_iter().map(|l| ((inode, l.local, l.inode), l)));
                }
                _ => listeners = None,
            }
        }
        let owners = probe.owners()?;
        Ok(Self {
            cgroups: owners.cgroups.into_iter().collect(),
            programs: owners.programs.into_iter().collect(),
            cost: probe.cost()?,
            missed: counters.unrecovered.unwrap_or(0) + counters.gaps,
            stats: probe.stats()?,
            remotes: probe.remotes()?.into_iter().collect(),
            pressure,
            listeners,
            closed_listeners: probe.closed_listeners()?.into_iter().collect(),
            ports,
        })
    }

    /// Each listener's overflows since `before` (all of its drops for one
    /// born since), and its queue now; most overflows first.
    fn listeners_since(&self, before: &Self) -> Option<Vec<Listener>> {
        let mut listeners: Vec<Listener> = self
            .listeners
            .as_ref()?
            .iter()
            .map(|(key, now)| {
                let was = before.listeners.as_ref().and_then(|b| b.get(key));
                Listener {
                    netns: key.0,
                    local: now.local,
                    overflows: now.drops.saturating_sub(was.map_or(0, |w| w.drops)),
                    accept_queue: now.accept_queue,
                    accept_queue_max: now.accept_queue_max,
                    closed: false,
                }
            })
            .collect();
        listeners.extend(self.closed_since(before));
        listeners.sort_by_key(|l| {
            (
                std::cmp::Reverse(l.overflows),
                std::cmp::Reverse(l.accept_queue),
                l.netns,
                l.local,
            )
        });
        Some(listeners)
    }

    /// The listeners that closed since `before`, by endpoint: the drops the
    /// kernel side read as they closed, less what `before` had read of
    /// them (a listener gone since then).
    fn closed_since(&self, before: &Self) -> Vec<Listener> {
        let (now_open, was_open) = (self.listeners.as_ref(), before.listeners.as_ref());
        self.closed_listeners
            .iter()
            .filter_map(|(key, &total)| {
                let closed =
                    total.saturating_sub(before.closed_listeners.get(key).copied().unwrap_or(0));
                let local = endpoint(key);
                let read_before: u64 = was_open
                    .into_iter()
                    .flatten()
                    .filter(|((netns, addr, _), _)| *netns == key.netns && *addr == local)
                    .filter(|(k, _)| now_open.is_none_or(|n| !n.contains_key(k)))
                    .map(|(_, l)| l.drops)
                    .sum();
                (closed > 0).then(|| Listener {
                    netns: key.netns,
                    local,
                    overflows: closed.saturating_sub(read_before),
                    accept_queue: 0,
                    accept_queue_max: 0,
                    closed: true,
                })
            })
            .collect()
    }

    /// The 5 cgroups and the 5 processes whose sockets opened most since
    /// `before` (then failed most), their cgroups named by `names`.
    fn owners_since(
        &self,
        before: &Self,
        names: &mut CgroupNames,
    ) -> (Vec<CgroupCount>, Vec<ProgramCount>) {
        // A member of each cgroup, to name it by where the hierarchy is not
        // in view.
        let pids = cgroups::members(self.programs.keys());
        let mut cgroups: Vec<(u64, OwnerStats)> = since_each(&self.cgroups, &before.cgroups);
        cgroups.sort_by_key(|(id, o)| rank(*id, o));
        let cgroups = cgroups
            .into_iter()
            .take(5)
            .map(|(id, o)| {
                let cgroup = names.path(id, pids.get(&id).copied().unwrap_or(0));
                CgroupCount {
                    name: cgroups::short_name(&cgroup),
                    cgroup,
                    opened: o.opened,
                    failed: o.failed,
                    resets: o.resets,
                }
            })
            .collect();
        let mut programs = since_each(&self.programs, &before.programs);
        programs.sort_by_key(|(key, o)| rank((key.tgid, key.comm), o));
        let programs = programs
            .into_iter()
            .take(5)
            .map(|(key, o)| ProgramCount {
                pid: key.tgid,
                program: crate::textfmt::c_string(&key.comm),
                cgroup: names.path(key.cgroup, key.tgid),
                opened: o.opened,
                failed: o.failed,
            })
            .collect();
        (cgroups, programs)
    }

    /// The 5 (local address, remote endpoint) pairs holding most of their
    /// namespace's ephemeral ports, with the time left at the interval's
    /// growth; None without sock_diag.
    fn ports_since(&self, before: &Self, seconds: f64) -> Option<Vec<EphemeralPorts>> {
        let (held, sizes) = self.ports.as_ref()?;
        let was = before.ports.as_ref().map(|p| &p.0);
        let mut top: Vec<_> = held.iter().collect();
        top.sort_by_key(|(key, u)| (std::cmp::Reverse(u.in_use), **key));
        let rows = top
            .into_iter()
            .take(5)
            .map(|(&(netns, local, remote), u)| {
                let range = sizes.get(&netns).copied().unwrap_or(0);
                let before = was.and_then(|w| w.get(&(netns, local, remote)));
                let growth = u.in_use as f64 - before.map_or(0, |b| b.in_use) as f64;
                EphemeralPorts {
                    netns,
                    local,
                    remote,
                    in_use: u.in_use,
                    time_wait: u.time_wait,
                    range,
                    exhausted_in_s: (growth > 0.0 && seconds > 0.0)
                        .then(|| range.saturating_sub(u.in_use) as f64 / (growth / seconds)),
                }
            })
            .collect();
        Some(rows)
    }

    /// What happened between `before` and now, `elapsed_ns` apart.
    /// `socks`: the kernel side's sockets, read at monotonic `now`,
    /// `elapsed_ns` after `before`.
    fn since(
        &self,
        before: &Self,
        probe: &Probe,
        socks: &[SockInfo],
        (now, elapsed_ns): (u64, u64),
    ) -> Result<Interval> {
        let (now_p, was_p) = (&self.pressure, &before.pressure);
        let traffic = Traffic::since(&self.stats, &before.stats);
        use netstat_common::tcp_state as s;
        let mut remotes: Vec<Remote> = self
            .remotes
            .iter()
            .filter_map(|(key, now)| {
                let was = before.remotes.get(key).copied().unwrap_or_default();
                let r = Remote {
                    netns: key.netns,
                    endpoint: endpoint(key),
                    failed_connects: now.failed_connects.saturating_sub(was.failed_connects),
                    resets: now.resets.saturating_sub(was.resets),
                    retransmits: now.retransmits.saturating_sub(was.retransmits),
                    drops: now.drops.saturating_sub(was.drops),
                };
                (r.total() > 0).then_some(r)
            })
            .collect();
        remotes.sort_by_key(|r| (std::cmp::Reverse(r.total()), r.endpoint, r.netns));
        remotes.truncate(5);
        Ok(Interval {
            seconds: elapsed_ns as f64 / 1e9,
            resets_by_reason: probe
                .reset_reasons
                .map(|names| named(names, &traffic.reset_reasons)),
            drops: probe.drop_reasons.map(|names| named(names, &traffic.drops)),
            traffic,
            time_wait: now_p.time_wait,
            time_wait_growth: now_p.time_wait as i64 - was_p.time_wait as i64,
            syn_sent_over_1s: kernel::states_since_before(socks, now.saturating_sub(1_000_000_000))
                [usize::from(s::SYN_SENT)],
            listen_overflows: Some(
                now_p
                    .listen_overflows
                    .saturating_sub(was_p.listen_overflows),
            ),
            listen_drops: Some(now_p.listen_drops.saturating_sub(was_p.listen_drops)),
            missed: self.missed.saturating_sub(before.missed),
            remotes,
            cgroups: Vec::new(),
            programs: Vec::new(),
            close_wait: Vec::new(),
            close_wait_age_s: 0.0,
            listeners: self.listeners_since(before),
            ephemeral_ports: self.ports_since(before, elapsed_ns as f64 / 1e9),
            cost: self
                .cost
                .as_ref()
                .map(|now| now.since(before.cost.as_ref().unwrap_or(&Cost::default()))),
        })
    }
}

/// Each owner's counts since `before`, where any grew.
fn since_each<K: Copy + Eq + std::hash::Hash>(
    now: &HashMap<K, OwnerStats>,
    before: &HashMap<K, OwnerStats>,
) -> Vec<(K, OwnerStats)> {
    now.iter()
        .filter_map(|(key, now)| {
            let was = before.get(key).copied().unwrap_or_default();
            let o = OwnerStats {
                opened: now.opened.saturating_sub(was.opened),
                failed: now.failed.saturating_sub(was.failed),
                resets: now.resets.saturating_sub(was.resets),
            };
            (o != OwnerStats::default()).then_some((*key, o))
        })
        .collect()
}

/// Most opened first, then most failed, then most resets; ties by key.
fn rank<K: Ord>(key: K, o: &OwnerStats) -> impl Ord + use<K> {
    use std::cmp::Reverse;
    (Reverse(o.opened), Reverse(o.failed), Reverse(o.resets), key)
}

/// Counts by a kernel enum's value, with the kernel's names for them.
fn named(names: &'static [String], counts: &[(u8, u64)]) -> Vec<(&'static str, u64)> {
    counts
        .iter()
        .map(|&(r, n)| (names.get(usize::from(r)).map_or("?", String::as_str), n))
        .collect()
}

fn endpoint(key: &EndpointKey) -> SocketAddr {
    decoder::socket_addr(key.family == netstat_common::AF_INET6, &key.addr, key.port)
}
