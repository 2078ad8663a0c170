//! The event session the kernel-side modes share (`-E`, `-S`, `-c`): one
//! single-threaded runtime, the programs attached with the user's
//! namespace and filter, and the stop summary from the kernel's counters.
//! The modes consume what it attaches; it knows nothing of their output.

use std::{io, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use netstat_common::{Event, LossMark};
use tokio::{
    io::unix::{AsyncFd, AsyncFdReadyMutGuard},
    time::{Instant, Interval, MissedTickBehavior},
};

use crate::{
    capabilities,
    command::Tracing,
    decoder::Decoder,
    kernel::{self, Counters, Probe, Record},
    netns::{self, Selection},
    owners::TcpOwners,
    render::stop::StopSummary,
};

/// How often the ring is read when the kernel has not woken us: the most an
/// event waits before it is printed.
pub const POLL: Duration = Duration::from_millis(20);

/// Runs one of the event-driven modes (-E, -S, -c) on a single-threaded
/// runtime: the ring buffer, timers and signals all wait in `run`.
pub fn block_on<T>(mode: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(mode)
}

/// What the kernel programs were attached for.
pub struct Attached {
    pub probe: Probe,
    pub filter: netstat_common::Filter,
    pub namespaces: Selection,
    /// The ready record and the stop object as JSON (`--json`, `--stop-json`).
    pub json_records: bool,
}

/// What a mode needs from the kernel programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Every event, in the ring buffer (-E, -c).
    Events,
    /// Counts only (--metrics alone).
    Counts,
    /// Counts, and counts per remote endpoint (-S).
    CountsByRemote,
}

/// Raises our priority for the storms to come (start-up included: loading
/// under a storm at an ordinary share took over 10 s) and attaches the
/// kernel programs with the user's namespace choice and filter. Owner
/// snapshots are to be taken after this, so no socket falls between the
/// two.
pub fn attach(tracing: &Tracing, needs: Needs) -> Result<Attached> {
    // -S and the metrics read each namespace's sockets from inside it.
    let enters = needs != Needs::Events || tracing.metrics.is_some();
    if tracing.namespaces == Selection::All && enters {
        let what = "--netns all with -S or --metrics (entering each namespace)";
        capabilities::require(what, &[capabilities::SYS_ADMIN])?;
    }
    raise_priority();
    let mut probe = Probe::load(&kernel::Options {
        netns: tracing.namespaces.kernel_filter(),
        filter: tracing.filter,
        counts_only: needs != Needs::Events,
        count_remotes: needs == Needs::CountsByRemote,
        // -S lists owners; the metrics (alone or beside a mode) count
        // connects by cgroup.
        count_owners: match needs {
            Needs::CountsByRemote => netstat_common::owners::ALL,
            _ if tracing.metrics.is_some() => netstat_common::owners::CGROUP_CONNECTS,
            _ => netstat_common::owners::NONE,
        },
        count_per_netns: tracing.metrics.is_some() && tracing.namespaces == Selection::All,
        count_drops: needs == Needs::CountsByRemote,
        log_drops: tracing.drops && needs == Needs::Events,
        ring_bytes: tracing.ring_bytes,
        max_sockets: tracing.max_sockets,
        self_cost: tracing.self_cost,
    })?;
    if let Some((_, dir)) = &tracing.cgroup {
        probe.keep_cgroups(dir.clone())?;
    }
    // Loading parsed the kernel's whole BTF (tens of MB, freed since).
    give_back_freed_memory();
    for note in &probe.notes {
        eprintln!("enetstat: note: {note}");
    }
    Ok(Attached {
        probe,
        filter: tracing.filter,
        namespaces: tracing.namespaces,
        json_records: tracing.json_records,
    })
}

impl Attached {
    /// A decoder that knows the owners of the sockets in our namespace that
    /// predate us.
    pub fn decoder(&self) -> Result<Decoder> {
        let owners = TcpOwners::scan();
        note_unread_owners(owners.incomplete);
        let decoder = Decoder::new(self.probe.attached_ns, netns::own()?, owners);
        Ok(decoder.with_reasons(
            self.probe.reset_reasons.unwrap_or_default(),
            self.probe.drop_reasons.unwrap_or_default(),
        ))
    }
}

impl Attached {
    /// Says that tracing has begun: `english` for people and, with `--json`
    /// or `--stop-json`, the ready record for scripts (`render::ready`).
    /// Returns the stop request for `run`: its signal handlers are in place
    /// first, so a Ctrl-C from the moment the announcement is read stops
    /// the mode cleanly.
    pub fn announce(
        &self,
        mode: &str,
        english: &str,
        stop_after: Option<Duration>,
    ) -> Result<impl Future<Output = ()> + use<>> {
        let stop = crate::stop_request::requested(stop_after)?;
        eprintln!("enetstat: {english} (stop with Ctrl-C)");
        if self.json_records {
            let netns = match self.namespaces {
                Selection::One(inode) => Some(inode),
                Selection::All => None,
            };
            eprintln!(
                "{}",
                crate::render::ready::json(mode, netns, &self.probe.programs)
            );
        }
        Ok(stop)
    }
}

/// Says once that the owners of sockets older than this run are partly
/// unknown: without these capabilities /proc/PID/fd of another user's
/// process cannot be read. The kernel side names the owners of the rest.
pub fn note_unread_owners(incomplete: bool) {
    if incomplete {
        eprintln!(
            "enetstat: note: some owners of sockets opened before this run are unknown: reading other processes' /proc/PID/fd needs {} and {}",
            capabilities::DAC_READ_SEARCH.name(),
            capabilities::SYS_PTRACE.name()
        );
    }
}

/// A storm keeps every core busy, and a consumer with an ordinary share of
/// CPU falls behind until the ring buffer overflows. Reading events is the
/// one job that must not wait, so ask for nice -10 (root only; best effort).
fn raise_priority() {
    const NICE: libc::c_int = -10;
    // SAFETY: plain syscalls on our own process.
    unsafe {
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, 0);
        if current > NICE && libc::setpriority(libc::PRIO_PROCESS, 0, NICE) != 0 {
            log::info!("could not raise priority: {}", io::Error::last_os_error());
        }
    }
}

/// Registers a map's fd with the runtime so we sleep until the kernel writes.
fn watch<T: std::os::fd::AsRawFd>(inner: T) -> Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its fd and keeps it open for as long as the AsyncFd
    // holds `inner`.
    unsafe { AsyncFd::register(inner) }
        .map_err(|e| anyhow::anyhow!("watching a BPF map for readiness: {e}"))
}

/// Whether the session goes on after a sink's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    End,
}

/// What a mode plugs into the session: it is handed the ring's events, its
/// own clock's ticks and the end; the session owns the waiting.
pub trait Sink {
    /// Whether the mode reads events (false: the kernel only counts, -S).
    fn reads_events(&self) -> bool;
    /// One event of the ring buffer.
    fn event(&mut self, _probe: &Probe, _raw: &Event) -> Result<Flow> {
        Ok(Flow::Go)
    }
    /// Events were lost here (the ring was full): the records that follow
    /// come after the hole.
    fn lost(&mut self, _probe: &Probe, _mark: &LossMark) -> Result<Flow> {
        Ok(Flow::Go)
    }
    /// After each read of the ring (at least every `POLL`): a batch ends.
    fn batch_done(&mut self, _probe: &Probe) -> Result<Flow> {
        Ok(Flow::Go)
    }
    /// How often `tick` is due, if the mode keeps time of its own.
    fn period(&self) -> Option<Duration> {
        None
    }
    fn tick(&mut self, _probe: &Probe) -> Result<Flow> {
        Ok(Flow::Go)
    }
    /// Once, after the last events were read; `stopped`: by a signal or
    /// `--duration` rather than by the sink itself.
    fn finish(&mut self, probe: &Probe, stopped: bool) -> Result<()>;
}

/// The one event loop of -E, -S and -c: the ring buffer (woken by the kernel
/// or looked at every `POLL`), the kernel side's log, the sink's clock and
/// the stop request all wait here.
pub async fn run(
    probe: &mut Probe,
    stop: impl Future<Output = ()>,
    sink: &mut impl Sink,
) -> Result<()> {
    let mut ring = match sink.reads_events() {
        true => Some(watch(probe.take_events()?)?),
        false => None,
    };
    let mut logger = watch(probe.take_logger()?)?;
    tokio::pin!(stop);
    // The kernel wakes us only when the ring holds 256 KiB; below that we
    // look every POLL (see netstat-ebpf's `submit`).
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut clock = sink.period().map(|every| {
        let mut clock = tokio::time::interval_at(Instant::now() + every, every);
        clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
        clock
    });
    let probe = &*probe;
    let mut stopped = false;
    loop {
        let flow = tokio::select! {
            guard = readable(&mut ring) => {
                let mut guard = guard?;
                let flow = drain(guard.get_inner_mut(), probe, sink)?;
                guard.clear_ready();
                flow
            }
            _ = poll.tick(), if ring.is_some() => match &mut ring {
                Some(ring) => drain(ring.get_mut(), probe, sink)?,
                None => Flow::Go,
            },
            guard = logger.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
                Flow::Go
            }
            _ = next_tick(&mut clock) => sink.tick(probe)?,
            _ = &mut stop => {
                stopped = true;
                Flow::End
            }
        };
        if flow == Flow::End {
            break;
        }
    }
    // Events already in the ring when we were told to stop still count.
    if let (true, Some(ring)) = (stopped, &mut ring) {
        drain(ring.get_mut(), probe, sink)?;
    }
    sink.finish(probe, stopped)
}

/// Hands the sink every record waiting in the ring, then the end of the batch.
fn drain(ring: &mut RingBuf<MapData>, probe: &Probe, sink: &mut impl Sink) -> Result<Flow> {
    let mut flow = Flow::Go;
    while let Some(record) = ring.next() {
        let raw = kernel::decode_record(&record)?;
        drop(record);
        flow = match raw {
            Record::Event(ev) => sink.event(probe, &ev)?,
            Record::Lost(mark) => sink.lost(probe, &mark)?,
        };
        if flow == Flow::End {
            break;
        }
    }
    match sink.batch_done(probe)? {
        Flow::Go => Ok(flow),
        Flow::End => Ok(Flow::End),
    }
}

async fn readable(
    ring: &mut Option<AsyncFd<RingBuf<MapData>>>,
) -> io::Result<AsyncFdReadyMutGuard<'_, RingBuf<MapData>>> {
    match ring {
        Some(ring) => ring.readable_mut().await,
        None => std::future::pending().await,
    }
}

async fn next_tick(clock: &mut Option<Interval>) {
    match clock {
        Some(clock) => _ = clock.tick().await,
        None => std::future::pending().await,
    }
}

/// Returns the heap's free pages to the system after a large parse (the
/// kernel's BTF, a big /proc table), so that a long-running mode's memory
/// is its own data's.
pub fn give_back_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe { libc::malloc_trim(0) };
}

/// The loss figures of a stop summary, from the kernel side's counters.
pub fn stop_summary(mode: &'static str, probe: &Probe, c: &Counters) -> StopSummary {
    let evicted = probe.evicted(c).ok();
    StopSummary {
        no_reset_reasons: probe.reset_reasons.is_none(),
        mode,
        lost: c.lost,
        lost_ring_full: c.ring_full,
        lost_skipped: c.unrecovered,
        gaps: c.gaps,
        sockets_untracked: c.sock_map_full,
        // Counting what the maps hold walks them: only at the end.
        sockets_evicted: evicted.map(|e| e.sockets),
        listeners_evicted: evicted.map(|e| e.listeners),
        self_cost: probe.cost().ok().flatten(),
        ..StopSummary::default()
    }
}
