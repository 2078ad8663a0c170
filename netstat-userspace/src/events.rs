//! `enetstat -E`: the event pipeline, end to end.
//!
//! kernel programs -> ring buffer -> decoder -> filter -> text/JSON writer.
//! Output is flushed per line when a pipe or terminal reads it, and per
//! drained batch when it goes to a regular file (so a storm costs one write
//! per batch, not per event).

use std::{
    io::{self, Write},
    os::fd::AsRawFd as _,
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::io::unix::AsyncFd;

use crate::{
    cli::Cli,
    decoder::{Decoder, NetEvent},
    fail,
    filter::EventFilter,
    kernel::{self, Probe},
    names::Names,
    owners::TcpOwners,
    render::{
        event_json::JsonLog,
        event_text::{self, TextLog},
    },
};

/// How often the ring is read when the kernel has not woken us: the most an
/// event waits before it is printed.
pub const POLL: Duration = Duration::from_millis(20);

/// What the run saw, for the closing summary line.
#[derive(Debug, Default)]
struct Tally {
    seen: u64,
    written: u64,
    owners_unknown: u64,
}

enum Format {
    Text(TextLog),
    Json(JsonLog),
}

impl Format {
    fn write_line(&mut self, out: &mut String, ev: &NetEvent) {
        match self {
            Format::Text(log) => log.write_line(out, ev),
            Format::Json(log) => log.write_line(out, ev),
        }
    }
}

pub fn run(cli: &Cli) -> Result<()> {
    let filter = EventFilter::from_cli(cli)?;
    if let Some(bytes) = cli.ring_size
        && (!bytes.is_power_of_two() || bytes < 4096)
    {
        return Err(fail::usage(format!(
            "invalid --ring-size {bytes}: use a power of two of at least 4096 bytes"
        )));
    }
    if let Some(secs) = cli.duration
        && !(secs.is_finite() && secs > 0.0)
    {
        return Err(fail::usage(format!(
            "invalid --duration {secs}: use a positive number of seconds"
        )));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(stream(cli, filter))
}

/// Attaches the kernel programs to this network namespace (returned with
/// the probe) and raises our priority for the storms to come. Owner
/// snapshots are to be taken after this, so no socket falls between the two.
pub fn attach(ring_size: Option<u32>) -> Result<(Probe, u32)> {
    let own_netns = kernel::own_netns()?;
    let probe = Probe::load(&kernel::Options {
        netns: own_netns,
        ring_bytes: ring_size,
    })?;
    raise_priority();
    Ok((probe, own_netns))
}

async fn stream(cli: &Cli, filter: EventFilter) -> Result<()> {
    let (mut probe, own_netns) = attach(cli.ring_size)?;
    let decoder = Decoder::new(probe.attached_ns, own_netns, TcpOwners::scan());
    eprintln!("enetstat: tracing TCP in network namespace {own_netns} (stop with Ctrl-C)");
    let mut ring = watch(probe.take_events()?)?;
    let mut logger = watch(probe.take_logger()?)?;

    let format = if cli.json {
        Format::Json(JsonLog::default())
    } else {
        Format::Text(TextLog::new(Names::new(cli.numeric())))
    };
    let stdout = io::stdout();
    let per_line = !is_regular_file(stdout.as_raw_fd());
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if let Format::Text(_) = &format {
        writeln!(out, "{}", event_text::HEADER)?;
        out.flush()?;
    }

    let stop = crate::stop::requested(cli.duration)?;
    tokio::pin!(stop);

    let mut tally = Tally::default();
    let mut writer = EventWriter {
        out: &mut out,
        format,
        line: String::with_capacity(256),
        per_line,
        filter: &filter,
        limit: cli.count,
    };
    // The kernel wakes us only when the ring holds 256 KiB; below that we
    // look every POLL (see netstat-ebpf's `submit`).
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    while open {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                open = writer.drain(guard.get_inner_mut(), &decoder, &mut tally)?;
                guard.clear_ready();
            }
            _ = poll.tick() => {
                open = writer.drain(ring.get_mut(), &decoder, &mut tally)?;
            }
            guard = logger.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = &mut stop => open = false,
        }
    }
    // Events already in the ring when we were told to stop still count.
    if writer.limit.is_none_or(|n| tally.written < n) {
        writer.drain(ring.get_mut(), &decoder, &mut tally)?;
    }
    let counters = probe.counters()?;
    log::info!("kernel counters: {counters:?}");
    eprintln!(
        "enetstat: {} events seen, {} lost in the kernel, {} owners unknown{}",
        tally.seen,
        counters.lost,
        tally.owners_unknown,
        if counters.sock_map_full > 0 {
            format!(
                ", {} sockets not tracked (socket map full)",
                counters.sock_map_full
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

struct EventWriter<'a, W: Write> {
    out: &'a mut W,
    format: Format,
    /// Reused for every line, so formatting allocates nothing per event.
    line: String,
    per_line: bool,
    filter: &'a EventFilter,
    limit: Option<u64>,
}

impl<W: Write> EventWriter<'_, W> {
    /// Writes every event waiting in the ring. Returns false when the run
    /// should end (count reached, or the reader went away).
    fn drain(
        &mut self,
        ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
        decoder: &Decoder,
        tally: &mut Tally,
    ) -> Result<bool> {
        let mut open = true;
        while let Some(record) = ring.next() {
            let raw = kernel::decode_record(&record)?;
            drop(record);
            tally.seen += 1;
            let ev = decoder.decode(&raw);
            if !self.filter.matches(&ev) {
                continue;
            }
            tally.owners_unknown += u64::from(ev.owner.is_none());
            if !self.write(&ev)? {
                return Ok(false);
            }
            tally.written += 1;
            if self.limit.is_some_and(|n| tally.written >= n) {
                open = false;
                break;
            }
        }
        if !self.per_line && !flushed(self.out.flush())? {
            return Ok(false);
        }
        Ok(open)
    }

    /// Returns false when the reader has gone away (EPIPE).
    fn write(&mut self, ev: &NetEvent) -> Result<bool> {
        self.line.clear();
        self.format.write_line(&mut self.line, ev);
        self.line.push('\n');
        if !flushed(self.out.write_all(self.line.as_bytes()))? {
            return Ok(false);
        }
        if self.per_line {
            return flushed(self.out.flush());
        }
        Ok(true)
    }
}

/// A closed pipe (`enetstat -E | head`) ends the run quietly.
fn flushed(result: io::Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing events"),
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

fn is_regular_file(fd: i32) -> bool {
    // SAFETY: fstat only writes into the stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG }
}
