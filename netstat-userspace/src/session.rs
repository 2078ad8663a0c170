//! The event session the kernel-side modes share (`-E`, `-S`, `-c`): one
//! single-threaded runtime, the programs attached with the user's
//! namespace and filter, and the stop summary from the kernel's counters.
//! The modes consume what it attaches; it knows nothing of their output.

use std::{io, time::Duration};

use anyhow::{Context as _, Result};
use tokio::io::unix::AsyncFd;

use crate::{
    cli::Cli,
    decoder::{Decoder, NetEvent},
    fail, filter,
    kernel::{self, Counters, Probe},
    netns::{self, Selection},
    owners::TcpOwners,
    render::stop::StopSummary,
};

/// How often the ring is read when the kernel has not woken us: the most an
/// event waits before it is printed.
pub const POLL: Duration = Duration::from_millis(20);

/// Runs one of the event-driven modes (-E, -S, -c) on a single-threaded
/// runtime: the ring buffer, timers and signals all wait in one loop.
pub fn block_on<T>(mode: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(mode)
}

fn check_ring_size(cli: &Cli) -> Result<()> {
    if let Some(bytes) = cli.ring_size
        && (!bytes.is_power_of_two() || bytes < 4096)
    {
        return Err(fail::usage(format!(
            "invalid --ring-size {bytes}: use a power of two of at least 4096 bytes"
        )));
    }
    Ok(())
}

/// What the kernel programs were attached for.
pub struct Attached {
    pub probe: Probe,
    pub namespaces: Selection,
    pub filter: netstat_common::Filter,
}

/// Raises our priority for the storms to come (start-up included: loading
/// under a storm at an ordinary share took over 10 s) and attaches the
/// kernel programs with the user's namespace choice and filter (`counts_only`:
/// count only, for --summary). Owner snapshots are to be taken after this,
/// so no socket falls between the two.
pub fn attach(cli: &Cli, namespaces: Selection, counts_only: bool) -> Result<Attached> {
    check_ring_size(cli)?;
    let filter = filter::from_cli(cli)?;
    raise_priority();
    let probe = Probe::load(&kernel::Options {
        netns: namespaces.kernel_filter(),
        filter,
        counts_only,
        ring_bytes: cli.ring_size,
    })?;
    if let Some(blind_spot) = &probe.blind_spot {
        eprintln!("enetstat: note: {blind_spot}");
    }
    Ok(Attached {
        probe,
        namespaces,
        filter,
    })
}

impl Attached {
    /// A decoder that knows the owners of the sockets in our namespace that
    /// predate us.
    pub fn decoder(&self) -> Result<Decoder> {
        Ok(Decoder::new(
            self.probe.attached_ns,
            netns::own()?,
            TcpOwners::scan(),
        ))
    }

    /// Events from the kernel can leave the owner to userspace (sockets older
    /// than the programs); those are held to `--pid` here.
    pub fn owner_wanted(&self, ev: &NetEvent) -> bool {
        self.filter
            .pid_matches(Some(ev.owner.as_ref().map_or(0, |o| o.pid)))
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
pub fn watch<T: std::os::fd::AsRawFd>(inner: T) -> Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its fd and keeps it open for as long as the AsyncFd
    // holds `inner`.
    unsafe { AsyncFd::register(inner) }
        .map_err(|e| anyhow::anyhow!("watching a BPF map for readiness: {e}"))
}

/// The loss figures of a stop summary, from the kernel side's counters.
pub fn stop_summary(mode: &'static str, c: &Counters) -> StopSummary {
    StopSummary {
        mode,
        lost: c.lost,
        lost_ring_full: c.ring_full,
        lost_skipped: c.unrecovered,
        gaps: c.gaps,
        sockets_untracked: c.sock_map_full,
        ..StopSummary::default()
    }
}
