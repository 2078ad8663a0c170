//! The kernel side's counters (`COUNTERS`: losses, filtered events) and
//! traffic counts (`STATS`), read by the modes and, from its own thread, by
//! the metrics server: the maps and program handles are owned here, apart
//! from the rest of the loaded object.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap},
    programs::ProgramFd,
};
use netstat_common::{
    NetnsStats, OwnerStats, ProgramKey, SockInfo, TRACEPOINTS, counter, flags, maps, stat,
    tcp_state,
};

use super::self_cost::SelfCost;
use crate::cost::Cost;

pub struct KernelCounts {
    stats: PerCpuArray<MapData, u64>,
    /// `STATS` by network namespace, where the programs keep them.
    netns_stats: PerCpuHashMap<MapData, u32, NetnsStats>,
    /// What each owner's cgroup (`CGROUPS`, by cgroup v2 id) and each
    /// owning process (`PROGRAMS`) did.
    cgroups: PerCpuHashMap<MapData, u64, OwnerStats>,
    programs: PerCpuHashMap<MapData, ProgramKey, OwnerStats>,
    /// The sockets the kernel side remembers (`SOCKS`).
    socks: HashMap<MapData, u64, SockInfo>,
    counters: PerCpuArray<MapData, u64>,
    /// Programs whose skipped runs are losses unless a second program made
    /// up for them: the first of each pair, and the fentry programs. Empty
    /// where the kernel does not count skipped runs (before 5.12).
    firsts: Vec<ProgramFd>,
    /// `unrecovered()` when everything was attached (None: not counted).
    unrecovered_at_start: Option<u64>,
    /// The programs' run statistics, with `--self-cost`.
    self_cost: Option<SelfCost>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Events that never reached the ring buffer: reservations that failed,
    /// runs the kernel skipped that no second program made up for (where
    /// counted), and gaps.
    pub lost: u64,
    /// Of those: the ring buffer was full.
    pub ring_full: u64,
    /// Of those: skipped runs no second program made up for; None where
    /// the kernel does not count skipped runs (before Linux 5.12; such a
    /// kernel never skips a run, it nests it, and a change it still failed
    /// to report shows as a gap).
    pub unrecovered: Option<u64>,
    /// Of those: gaps found later in a socket's history, each hiding at
    /// least one state change that the kernel ran no program of ours for.
    /// A skipped run no second program made up for leaves a gap too, so the two can
    /// overlap, and `lost` then counts that change twice.
    pub gaps: u64,
    pub sock_map_full: u64,
    /// Events of other network namespaces.
    pub other_netns: u64,
    /// Events the user's filter dropped in the kernel.
    pub filtered: u64,
    /// Events the first program was skipped for that the second handled.
    pub recovered: u64,
    /// Entries made in and removed from the socket and listener maps.
    pub socks_added: u64,
    pub socks_removed: u64,
    pub listeners_added: u64,
    pub listeners_removed: u64,
}

/// Entries the socket and listener maps evicted, full (`Probe::evicted`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    pub sockets: u64,
    pub listeners: u64,
}

/// A socket's owner as the kernel side records it: pid, command, cgroup.
pub type OwnerId = (u32, [u8; 16], u64);

/// Sockets in CLOSE_WAIT since before monotonic `since`, by owner (None:
/// never seen act): how many, and since when the oldest; most first.
pub fn close_wait_leaks(socks: &[SockInfo], since: u64) -> Vec<(Option<OwnerId>, u64, u64)> {
    let mut by_owner: std::collections::HashMap<Option<OwnerId>, (u64, u64)> =
        std::collections::HashMap::new();
    for info in socks
        .iter()
        .filter(|i| i.state == tcp_state::CLOSE_WAIT && i.ts_ns < since)
    {
        let owner =
            (info.flags & flags::OWNER_KNOWN != 0).then_some((info.tgid, info.comm, info.cgroup));
        let (count, oldest) = by_owner.entry(owner).or_insert((0, u64::MAX));
        *count += 1;
        *oldest = (*oldest).min(info.ts_ns);
    }
    let mut leaks: Vec<_> = by_owner
        .into_iter()
        .map(|(owner, (count, oldest))| (owner, count, oldest))
        .collect();
    leaks.sort_by_key(|&(owner, count, oldest)| (std::cmp::Reverse(count), oldest, owner));
    leaks
}

/// The kernel side's counts per owner (`KernelCounts::owners`).
#[derive(Debug, Default)]
pub struct Owners {
    pub cgroups: Vec<(u64, OwnerStats)>,
    pub programs: Vec<(ProgramKey, OwnerStats)>,
}

/// Each entry of a per-CPU map of owner counts, summed over CPUs.
fn summed<K: aya::Pod>(
    map: &PerCpuHashMap<MapData, K, OwnerStats>,
) -> Result<Vec<(K, OwnerStats)>> {
    let mut all = Vec::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry?;
        let mut total = OwnerStats::default();
        per_cpu.iter().for_each(|cpu| total.add(cpu));
        all.push((key, total));
    }
    Ok(all)
}

impl KernelCounts {
    /// Takes the two maps out of the loaded object, once everything is
    /// attached (`reset_programs`: the fentry programs attached;
    /// `counts_skips`: the kernel counts skipped runs; `self_cost`: the
    /// programs' statistics, with `--self-cost`).
    pub(super) fn take(
        ebpf: &mut Ebpf,
        reset_programs: &[&str],
        counts_skips: bool,
        self_cost: Option<SelfCost>,
    ) -> Result<Self> {
        let array = |ebpf: &mut Ebpf, name: &str| -> Result<PerCpuArray<MapData, u64>> {
            let map = ebpf
                .take_map(name)
                .with_context(|| format!("{name} map missing"))?;
            Ok(PerCpuArray::try_from(map)?)
        };
        let names = TRACEPOINTS.iter().map(|t| t.name);
        let firsts = names
            .chain(reset_programs.iter().copied())
            .filter(|_| counts_skips)
            .map(|name| {
                let program = ebpf.program(name).context("program missing")?;
                Ok(program.fd()?.try_clone()?)
            })
            .collect::<Result<_>>()?;
        let hash = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("{name} map missing"))
        };
        let netns_stats = hash(ebpf, maps::NETNS_STATS)?;
        let cgroups = hash(ebpf, maps::CGROUPS)?;
        let programs = hash(ebpf, maps::PROGRAMS)?;
        let socks = hash(ebpf, maps::SOCKS)?;
        let mut counts = Self {
            stats: array(ebpf, maps::STATS)?,
            netns_stats: PerCpuHashMap::try_from(netns_stats)?,
            cgroups: PerCpuHashMap::try_from(cgroups)?,
            programs: PerCpuHashMap::try_from(programs)?,
            socks: HashMap::try_from(socks)?,
            counters: array(ebpf, maps::COUNTERS)?,
            firsts,
            unrecovered_at_start: None,
            self_cost,
        };
        // Skips before the second programs were all attached are of events
        // from before we report anything.
        counts.unrecovered_at_start = counts.unrecovered()?;
        Ok(counts)
    }

    /// Kernel-side counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let ring_full = self.counter(counter::LOST)?;
        // Every skipped run of a first program since we were ready is a
        // lost event, unless the second made up for it.
        let unrecovered = match self.unrecovered_at_start {
            Some(at_start) => self.unrecovered()?.map(|n| n.saturating_sub(at_start)),
            None => None,
        };
        let gaps = self.counter(counter::GAPS)?;
        Ok(Counters {
            lost: ring_full + unrecovered.unwrap_or(0) + gaps,
            ring_full,
            unrecovered,
            gaps,
            sock_map_full: self.counter(counter::SOCK_MAP_FULL)?,
            other_netns: self.counter(counter::OTHER_NETNS)?,
            filtered: self.counter(counter::FILTERED)?,
            recovered: self.counter(counter::RECOVERED)?,
            socks_added: self.counter(counter::SOCKS_ADDED)?,
            socks_removed: self.counter(counter::SOCKS_REMOVED)?,
            listeners_added: self.counter(counter::LISTENERS_ADDED)?,
            listeners_removed: self.counter(counter::LISTENERS_REMOVED)?,
        })
    }

    /// What the tracer has cost so far, with `--self-cost` (None without).
    pub fn cost(&self) -> Result<Option<Cost>> {
        self.self_cost.as_ref().map(SelfCost::read).transpose()
    }

    /// The traffic counts of `netstat_common::stat`, summed over CPUs.
    pub fn stats(&self) -> Result<Vec<u64>> {
        (0..stat::COUNT)
            .map(|i| Ok(self.stats.get(&i, 0)?.iter().sum()))
            .collect()
    }

    /// `stats()` by network namespace (inode), where the programs were
    /// asked to keep them (`Options::count_per_netns`).
    pub fn stats_by_netns(&self) -> Result<Vec<(u32, Vec<u64>)>> {
        let mut all = Vec::new();
        for entry in self.netns_stats.iter() {
            let (netns, per_cpu) = entry?;
            let mut sum = vec![0u64; stat::COUNT as usize];
            for cpu in per_cpu.iter() {
                sum.iter_mut().zip(cpu.counts).for_each(|(s, c)| *s += c);
            }
            all.push((netns, sum));
        }
        Ok(all)
    }

    /// Every socket the kernel side remembers: its owner, state and when
    /// it entered it.
    pub fn remembered(&self) -> Vec<SockInfo> {
        // An entry may go between listing its key and reading it.
        self.socks
            .iter()
            .filter_map(|e| e.ok())
            .map(|(_, info)| info)
            .collect()
    }

    /// How many sockets the kernel side remembers.
    pub fn remembered_count(&self) -> u64 {
        self.socks.keys().count() as u64
    }

    /// Per owner's cgroup (v2 id) and per owning process: connections
    /// opened and failed, resets, so far, summed over CPUs.
    pub fn owners(&self) -> Result<Owners> {
        Ok(Owners {
            cgroups: summed(&self.cgroups)?,
            programs: summed(&self.programs)?,
        })
    }

    /// `COUNTERS[index]` summed over CPUs.
    fn counter(&self, index: u32) -> Result<u64> {
        Ok(self.counters.get(&index, 0)?.iter().sum())
    }

    /// Runs of the first programs that the kernel skipped and no second
    /// program made up for (None: the kernel does not count them).
    fn unrecovered(&self) -> Result<Option<u64>> {
        if self.firsts.is_empty() {
            return Ok(None);
        }
        let mut skipped = 0;
        for program in &self.firsts {
            skipped += recursion_misses(program)?;
        }
        Ok(Some(
            skipped.saturating_sub(self.counter(counter::RECOVERED)?),
        ))
    }
}

/// How often the kernel skipped a program because it was already running on
/// that CPU (`bpf_prog_info.recursion_misses`, 5.12+).
fn recursion_misses(program: &ProgramFd) -> Result<u64> {
    Ok(super::self_cost::program_info(program)?.recursion_misses)
}
