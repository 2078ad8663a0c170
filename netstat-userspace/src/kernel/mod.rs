//! The BPF side, seen from userspace: checks that this kernel and this process
//! can run the programs, fills in their configuration, loads and attaches them,
//! and hands out the ring buffer and counters. Knows nothing about output.

pub(crate) mod btf;
mod counts;
mod self_cost;

pub use counts::{Counters, Evicted, KernelCounts, Owners, close_wait_leaks};

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuHashMap, RingBuf},
    programs::{BtfTracePoint, FEntry, ProgramError},
};
use netstat_common::{
    Config, DROP_PROGRAM, EndpointKey, Event, Filter, ListenKey, ListenOwner, LossMark,
    RESET_FUNCTIONS, RemoteStats, SockInfo, TRACEPOINTS, maps,
};

use crate::{capabilities, cost::Cost, fail};

/// The compiled kernel programs (built by build.rs through aya-build).
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netstat"));

#[derive(Default)]
pub struct Options {
    /// Report only this network namespace (inode); 0 = all.
    pub netns: u32,
    pub filter: Filter,
    /// Count only, send no events (`--summary`, `--metrics` alone).
    pub counts_only: bool,
    /// Count per remote endpoint (`--summary`).
    pub count_remotes: bool,
    /// What to count per owner (`netstat_common::owners`).
    pub count_owners: u8,
    /// Count per network namespace (`--metrics --netns all`).
    pub count_per_netns: bool,
    /// Count TCP packets dropped, by reason (`--summary`).
    pub count_drops: bool,
    /// Send an event for each TCP packet dropped (`-E --drops`).
    pub log_drops: bool,
    /// Ring buffer size in bytes (a power of two multiple of the page size); None = default.
    pub ring_bytes: Option<u32>,
    /// Size of the socket map (the listener map gets an eighth).
    pub max_sockets: u32,
    /// Turn on the kernel's run statistics of our programs (`--self-cost`).
    pub self_cost: bool,
}

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Probe {
    ebpf: Ebpf,
    /// CLOCK_MONOTONIC when the programs were attached: events after this are
    /// complete; sockets older than this have an unknown past.
    pub attached_ns: u64,
    /// The counters and traffic counts, shared with the metrics server.
    counts: Arc<KernelCounts>,
    /// What this kernel cannot report or count, for the user: one line each.
    pub notes: Vec<String>,
    /// The names of the kernel's reset reasons, by value; None where
    /// `tcp_send_reset` gives none (before Linux 6.10).
    pub reset_reasons: Option<&'static [String]>,
    /// The names of the kernel's drop reasons, by value, where drops are
    /// counted (`Options::count_drops` and a `kfree_skb` to attach to).
    pub drop_reasons: Option<&'static [String]>,
    /// The programs attached, by name.
    pub programs: Vec<&'static str>,
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut BtfTracePoint> {
    Ok(ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?)
}

/// The kernel side's configuration for `opts` on this kernel, and the names
/// of the kernel's reset reasons where `tcp_send_reset` gives one.
fn configure(
    opts: &Options,
    kernel_btf: &btf_rs::Btf,
) -> Result<(Config, Option<&'static [String]>)> {
    let mut config = build_config(kernel_btf, opts.netns)?;
    config.filter = opts.filter;
    config.counts_only = u8::from(opts.counts_only);
    config.count_remotes = u8::from(opts.count_remotes);
    config.count_owners = opts.count_owners;
    config.count_per_netns = u8::from(opts.count_per_netns);
    config.log_drops = u8::from(opts.log_drops);
    // Read once per run and kept for its whole length.
    let reset_reasons: Option<&'static [String]> =
        btf::tracepoint_args(kernel_btf, "tcp_send_reset")
            .is_some_and(|args| args.len() >= 3)
            .then(|| btf::reset_reasons(kernel_btf))
            .flatten()
            .map(|names| &*Box::leak(names.into_boxed_slice()));
    config.reset_reason_arg = u8::from(reset_reasons.is_some());
    Ok((config, reset_reasons))
}

/// The object, with its maps sized for `opts` and `config` in place.
fn load_object(opts: &Options, config: &Config) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader.override_global(maps::CONFIG, config, true);
    if let Some(bytes) = opts.ring_bytes {
        loader.map_max_entries(maps::EVENTS, bytes);
    }
    loader.map_max_entries(maps::SOCKS, opts.max_sockets);
    let listeners = opts.max_sockets / maps::LISTENERS_PER_SOCKS;
    loader.map_max_entries(maps::LISTENERS, listeners);
    loader.load(PROGRAMS).map_err(explain_load_error)
}

/// Verifies every tracepoint program, then attaches them.
fn attach_tracepoints(ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<()> {
    // Everything is verified (seconds under load) before anything is
    // attached, so that the first programs run without their seconds
    // for as short a time as possible.
    for t in &TRACEPOINTS {
        for name in [t.name, t.second] {
            let program = program(ebpf, name)?;
            program
                .load(t.name, btf)
                .map_err(|e| explain_program_error(name, e))?;
            // The verifier's work, which decides the load time on a slow machine.
            if let Some(count) = program
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count())
            {
                log::debug!("{name}: the verifier went through {count} instructions");
            }
        }
    }
    // A tracepoint calls its probes in attach order: every first
    // program before any second.
    let firsts = TRACEPOINTS.iter().map(|t| t.name);
    let seconds = TRACEPOINTS.iter().map(|t| t.second);
    for name in firsts.chain(seconds) {
        program(ebpf, name)?
            .attach()
            .map_err(|e| explain_program_error(name, e))?;
    }
    Ok(())
}

/// Turns on the kernel's run statistics for the `attached` programs.
fn enable_self_cost(ebpf: &Ebpf, attached: &[&'static str]) -> Result<self_cost::SelfCost> {
    let programs = attached
        .iter()
        .map(|&name| {
            let program = ebpf.program(name).context("program missing")?;
            Ok((name, program.fd()?.try_clone()?))
        })
        .collect::<Result<_>>()?;
    self_cost::SelfCost::enable(programs)
}

impl Probe {
    pub fn load(opts: &Options) -> Result<Self> {
        check_privileges()?;
        let kernel_btf = btf::load()?;
        let (config, reset_reasons) = configure(opts, &kernel_btf)?;
        raise_memlock_limit(&kernel_btf)?;
        let mut ebpf = load_object(opts, &config)?;
        let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF")?;
        attach_tracepoints(&mut ebpf, &btf)?;
        let mut notes = Vec::new();
        let reset_programs = if btf::send_reset_covers_all_sockets(&kernel_btf) {
            Vec::new()
        } else {
            match attach_reset_functions(&mut ebpf, &btf) {
                Ok(()) => RESET_FUNCTIONS.to_vec(),
                Err(e) => {
                    notes.push(format!(
                        "this kernel's tcp_send_reset tracepoint misses resets sent for no socket or by TIME_WAIT and SYN_RECV sockets, and fentry on tcp_v4_send_reset failed ({e}): those resets are not reported"
                    ));
                    Vec::new()
                }
            }
        };
        let drop_reasons = match opts.count_drops || opts.log_drops {
            true => attach_drop_counter(&mut ebpf, &btf, &kernel_btf)
                .map_err(|note| notes.push(note))
                .ok(),
            false => None,
        };
        let counts_skips = btf::skipped_runs_counted(&kernel_btf)
            .map_err(|note| notes.push(note))
            .is_ok();
        let attached: Vec<&'static str> = TRACEPOINTS
            .iter()
            .flat_map(|t| [t.name, t.second])
            .chain(reset_programs.iter().copied())
            .chain(drop_reasons.map(|_| DROP_PROGRAM))
            .collect();
        let self_cost = match opts.self_cost {
            true => Some(enable_self_cost(&ebpf, &attached)?),
            false => None,
        };
        let counts = Arc::new(KernelCounts::take(
            &mut ebpf,
            &reset_programs,
            counts_skips,
            self_cost,
        )?);
        Ok(Self {
            ebpf,
            attached_ns: monotonic_ns(),
            counts,
            notes,
            reset_reasons,
            drop_reasons,
            programs: attached,
        })
    }

    /// Kernel-side counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        self.counts.counters()
    }

    /// The traffic counts of `netstat_common::stat`, summed over CPUs.
    pub fn stats(&self) -> Result<Vec<u64>> {
        self.counts.stats()
    }

    /// What the tracer has cost so far, with `--self-cost` (None without).
    pub fn cost(&self) -> Result<Option<Cost>> {
        self.counts.cost()
    }

    /// The counts, for a reader on another thread.
    pub fn shared_counts(&self) -> Arc<KernelCounts> {
        Arc::clone(&self.counts)
    }

    /// Takes the ring buffer of `netstat_common::Event` records (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(maps::EVENTS)
            .context("EVENTS map missing")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Starts forwarding kernel-side log lines (aya-log) to the `log` crate.
    pub fn take_logger(&mut self) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>> {
        Ok(aya_log::EbpfLogger::init(&mut self.ebpf)?)
    }

    /// Per remote endpoint: failures, resets and retransmits so far, summed
    /// over CPUs.
    pub fn remotes(&self) -> Result<Vec<(EndpointKey, RemoteStats)>> {
        let remotes: PerCpuHashMap<_, EndpointKey, RemoteStats> =
            PerCpuHashMap::try_from(self.map(maps::REMOTES)?)?;
        let mut all = Vec::new();
        for entry in remotes.iter() {
            let (key, per_cpu) = entry?;
            let mut total = RemoteStats::default();
            for cpu in per_cpu.iter() {
                total.failed_connects += cpu.failed_connects;
                total.drops += cpu.drops;
                total.resets += cpu.resets;
                total.retransmits += cpu.retransmits;
            }
            all.push((key, total));
        }
        Ok(all)
    }

    /// Each listening endpoint's drops counted as its listeners closed,
    /// summed since start (`CLOSED_LISTENERS`).
    pub fn closed_listeners(&self) -> Result<Vec<(EndpointKey, u64)>> {
        let map: BpfHashMap<_, EndpointKey, u64> =
            BpfHashMap::try_from(self.map(maps::CLOSED_LISTENERS)?)?;
        Ok(map.iter().filter_map(|e| e.ok()).collect())
    }

    /// Per owner's cgroup and per owning process: what their sockets did.
    pub fn owners(&self) -> Result<Owners> {
        self.counts.owners()
    }

    /// What the full LRU maps evicted so far: entries added, less those
    /// removed and those still there.
    pub fn evicted(&self, c: &Counters) -> Result<Evicted> {
        let listeners =
            BpfHashMap::<_, ListenKey, ListenOwner>::try_from(self.map(maps::LISTENERS)?)?;
        let held = (
            self.counts.remembered_count(),
            listeners.keys().count() as u64,
        );
        Ok(Evicted {
            sockets: c.socks_added.saturating_sub(c.socks_removed + held.0),
            listeners: c
                .listeners_added
                .saturating_sub(c.listeners_removed + held.1),
        })
    }

    /// One of the loaded object's maps, by name.
    fn map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .with_context(|| format!("{name} map missing"))
    }

    /// Fills `CGROUP_FILTER` with the ids of the cgroup at `dir` and those
    /// below it, and keeps adding those made later (a thread re-reads the
    /// hierarchy every second) for as long as enetstat runs.
    pub fn keep_cgroups(&mut self, dir: PathBuf) -> Result<()> {
        let map = self
            .ebpf
            .take_map(maps::CGROUP_FILTER)
            .context("CGROUP_FILTER map missing")?;
        let mut kept: BpfHashMap<MapData, u64, u8> = BpfHashMap::try_from(map)?;
        let add = move |kept: &mut BpfHashMap<MapData, u64, u8>| -> Result<()> {
            for id in crate::cgroups::ids_below(&dir) {
                if kept.get(&id, 0).is_err() {
                    kept.insert(id, 1, 0)?;
                }
            }
            Ok(())
        };
        add(&mut kept)?;
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if let Err(e) = add(&mut kept) {
                    log::warn!("--cgroup: cgroups made since start not followed: {e}");
                    return;
                }
            }
        });
        Ok(())
    }

    /// Every socket the kernel side remembers (`SOCKS`): its owner, state
    /// and when it entered it.
    pub fn remembered(&self) -> Result<Vec<SockInfo>> {
        Ok(self.counts.remembered())
    }
}

/// Remembered sockets by the state they have been in since before
/// `before_ns` (CLOCK_MONOTONIC), indexed by state number.
pub fn states_since_before(socks: &[SockInfo], before_ns: u64) -> [u64; 16] {
    let mut by_state = [0; 16];
    for info in socks.iter().filter(|i| i.ts_ns < before_ns) {
        by_state[usize::from(info.state & 15)] += 1;
    }
    by_state
}

/// One ring-buffer record: an event, or the mark of events lost before
/// the records that follow.
pub enum Record {
    Event(Event),
    Lost(LossMark),
}

/// Decodes one ring-buffer record, told apart by size. Records are written
/// by our own programs, so another size means a build mix-up, reported
/// rather than misread.
pub fn decode_record(bytes: &[u8]) -> Result<Record> {
    // The ring buffer only guarantees 8-byte alignment: read unaligned.
    match bytes.len() {
        n if n == size_of::<Event>() => {
            // SAFETY: Event is plain old data and the slice is its size.
            let ev = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) };
            Ok(Record::Event(ev))
        }
        n if n == size_of::<LossMark>() => {
            // SAFETY: LossMark is plain old data and the slice is its size.
            let mark = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<LossMark>()) };
            Ok(Record::Lost(mark))
        }
        n => anyhow::bail!(
            "ring buffer record of {n} bytes, expected {} or {}: kernel and user programs are from different builds",
            size_of::<Event>(),
            size_of::<LossMark>()
        ),
    }
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Loads and attaches the drop counter on `skb:kfree_skb`: the names of
/// the drop reasons it counts, or why drops are not counted.
fn attach_drop_counter(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    kernel_btf: &btf_rs::Btf,
) -> Result<&'static [String], String> {
    let expected = ["struct sk_buff *", "void *", "enum skb_drop_reason"];
    let args = btf::tracepoint_args(kernel_btf, DROP_PROGRAM).unwrap_or_default();
    let names = btf::drop_reasons(kernel_btf);
    let (true, Some(names)) = (args.starts_with(&expected.map(String::from)), names) else {
        return Err(format!(
            "drops are not counted: this kernel's skb:kfree_skb takes ({})",
            args.join(", ")
        ));
    };
    let attached = program(ebpf, DROP_PROGRAM).and_then(|p| {
        Ok(p.load(DROP_PROGRAM, btf)
            .and_then(|()| p.attach().map(|_| ()))?)
    });
    match attached {
        Ok(()) => Ok(&*Box::leak(names.into_boxed_slice())),
        Err(e) => Err(format!(
            "drops are not counted: attaching to skb:kfree_skb failed ({e:#})"
        )),
    }
}

/// Loads and attaches the fentry programs of `RESET_FUNCTIONS`.
fn attach_reset_functions(ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<()> {
    for name in RESET_FUNCTIONS {
        let program: &mut FEntry = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        program.load(name, btf)?;
        program.attach()?;
    }
    Ok(())
}

fn build_config(btf: &btf_rs::Btf, netns: u32) -> Result<Config> {
    btf::require_facilities(btf)?;
    for t in &TRACEPOINTS {
        let Some(args) = btf::tracepoint_args(btf, t.name) else {
            return Err(fail::no_ebpf(format!(
                "this kernel has no tracepoint {}/{}",
                t.category, t.name
            )));
        };
        if !args.starts_with(&t.args.iter().map(|a| a.to_string()).collect::<Vec<_>>()) {
            return Err(fail::no_ebpf(format!(
                "tracepoint {}/{} takes ({}) on this kernel where enetstat reads ({}): this kernel is not supported",
                t.category,
                t.name,
                args.join(", "),
                t.args.join(", ")
            )));
        }
    }
    let mut config = Config::ZERO;
    config.kernel = btf::kernel_offsets(btf)?;
    config.netns = netns;
    Ok(config)
}

/// Capabilities needed to load tracing programs: CAP_BPF + CAP_PERFMON, or
/// CAP_SYS_ADMIN (which implies both on older kernels).
fn check_privileges() -> Result<()> {
    let needed = [capabilities::BPF, capabilities::PERFMON];
    capabilities::require("loading the eBPF programs", &needed)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, whose usual
/// limit holds none of ours: lift it, which takes CAP_SYS_RESOURCE unless
/// it is unlimited already. Newer kernels charge memory cgroups instead.
fn raise_memlock_limit(kernel_btf: &btf_rs::Btf) -> Result<()> {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to a rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 {
        return Ok(());
    }
    let mut now = unlimited;
    // SAFETY: valid pointer to a rlimit.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) } == 0;
    if !btf::charges_memlock(kernel_btf) || (read && now.rlim_cur == libc::RLIM_INFINITY) {
        return Ok(());
    }
    Err(capabilities::refuse(
        "lifting the locked-memory limit that Linux before 5.11 charges BPF maps to",
        &[capabilities::SYS_RESOURCE],
    ))
}

fn explain_load_error(e: EbpfError) -> anyhow::Error {
    let text = format!("{e:#}");
    let ring = matches!(&e, EbpfError::MapError(MapError::CreateError { name, .. }) if name == maps::EVENTS);
    if ring {
        return fail::no_ebpf(format!(
            "the kernel refused the BPF ring buffer ({text}); enetstat needs Linux 5.8 or later, and --ring-size must be a power of two multiple of the page size"
        ));
    }
    anyhow::Error::new(e).context("loading the eBPF programs")
}

fn explain_program_error(name: &str, e: ProgramError) -> anyhow::Error {
    let text = format!("{e}");
    if let ProgramError::LoadError { io_error, .. } = &e
        && io_error.raw_os_error() == Some(libc::EPERM)
    {
        return fail::no_ebpf(format!(
            "the kernel refused to load {name} (EPERM): run enetstat as root, and check kernel.unprivileged_bpf_disabled and lockdown"
        ));
    }
    anyhow::Error::new(e).context(format!("loading or attaching {name}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names netstat-common gives the maps and programs are the ones
    /// the built kernel object has.
    #[test]
    fn the_object_has_every_agreed_name() {
        let object = aya_obj::Object::parse(PROGRAMS).expect("the built kernel object parses");
        for map in [
            maps::EVENTS,
            maps::SOCKS,
            maps::LISTENERS,
            maps::COUNTERS,
            maps::STATS,
            maps::REMOTES,
            maps::CGROUPS,
            maps::PROGRAMS,
            maps::HANDLED,
            maps::SCRATCH,
            maps::NESTING,
            maps::NETNS_STATS,
            maps::ZERO_STATS,
        ] {
            assert!(object.maps.contains_key(map), "no map {map}");
        }
        let programs = TRACEPOINTS
            .iter()
            .flat_map(|t| [t.name, t.second])
            .chain(RESET_FUNCTIONS)
            .chain([DROP_PROGRAM]);
        for program in programs {
            assert!(
                object.programs.contains_key(program),
                "no program {program}"
            );
        }
    }
}
