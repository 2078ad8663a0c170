//! The kernel side's counters (`COUNTERS`: losses, filtered events) and
//! traffic counts (`STATS`), read by the modes and, from its own thread, by
//! the metrics server: the maps and program handles are owned here, apart
//! from the rest of the loaded object.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap},
    programs::ProgramFd,
};
use netstat_common::{NetnsStats, TRACEPOINTS, counter, maps, stat};

pub struct KernelCounts {
    stats: PerCpuArray<MapData, u64>,
    /// `STATS` by network namespace, where the programs keep them.
    netns_stats: PerCpuHashMap<MapData, u32, NetnsStats>,
    counters: PerCpuArray<MapData, u64>,
    /// Programs whose skipped runs are losses unless a second program made
    /// up for them: the first of each pair, and the fentry programs.
    firsts: Vec<ProgramFd>,
    /// `unrecovered()` when everything was attached.
    unrecovered_at_start: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Events that never reached the ring buffer: reservations that failed,
    /// runs the kernel skipped that no second program made up for, and gaps.
    pub lost: u64,
    /// Of those: the ring buffer was full.
    pub ring_full: u64,
    /// Of those: skipped runs no second program made up for.
    pub unrecovered: u64,
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

impl KernelCounts {
    /// Takes the two maps out of the loaded object, once everything is
    /// attached (`reset_programs`: the fentry programs attached).
    pub(super) fn take(ebpf: &mut Ebpf, reset_programs: &[&str]) -> Result<Self> {
        let array = |ebpf: &mut Ebpf, name: &str| -> Result<PerCpuArray<MapData, u64>> {
            let map = ebpf
                .take_map(name)
                .with_context(|| format!("{name} map missing"))?;
            Ok(PerCpuArray::try_from(map)?)
        };
        let names = TRACEPOINTS.iter().map(|t| t.name);
        let firsts = names
            .chain(reset_programs.iter().copied())
            .map(|name| {
                let program = ebpf.program(name).context("program missing")?;
                Ok(program.fd()?.try_clone()?)
            })
            .collect::<Result<_>>()?;
        let netns_stats = ebpf
            .take_map(maps::NETNS_STATS)
            .context("NETNS_STATS map missing")?;
        let mut counts = Self {
            stats: array(ebpf, maps::STATS)?,
            netns_stats: PerCpuHashMap::try_from(netns_stats)?,
            counters: array(ebpf, maps::COUNTERS)?,
            firsts,
            unrecovered_at_start: 0,
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
        let unrecovered = self
            .unrecovered()?
            .saturating_sub(self.unrecovered_at_start);
        let gaps = self.counter(counter::GAPS)?;
        Ok(Counters {
            lost: ring_full + unrecovered + gaps,
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

    /// `COUNTERS[index]` summed over CPUs.
    fn counter(&self, index: u32) -> Result<u64> {
        Ok(self.counters.get(&index, 0)?.iter().sum())
    }

    /// Runs of the first programs that the kernel skipped and no second
    /// program made up for.
    fn unrecovered(&self) -> Result<u64> {
        let mut skipped = 0;
        for program in &self.firsts {
            skipped += recursion_misses(program)?;
        }
        Ok(skipped.saturating_sub(self.counter(counter::RECOVERED)?))
    }
}

/// How often the kernel skipped a program because it was already running on
/// that CPU (`bpf_prog_info.recursion_misses`, 5.12+).
fn recursion_misses(program: &ProgramFd) -> Result<u64> {
    let fd = program.as_fd().as_raw_fd();
    // SAFETY: bpf_prog_info is plain data; zero is a valid value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = InfoByFd {
        bpf_fd: fd as u32,
        info_len: size_of_val(&info) as u32,
        info: (&raw mut info) as u64,
    };
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // SAFETY: attr points at a live, correctly sized info buffer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &raw mut attr,
            size_of::<InfoByFd>(),
        )
    };
    anyhow::ensure!(
        rc == 0,
        "BPF_OBJ_GET_INFO_BY_FD: {}",
        std::io::Error::last_os_error()
    );
    Ok(info.recursion_misses)
}
