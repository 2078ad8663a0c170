//! `enetstat -E`: the event pipeline, end to end.
//!
//! kernel programs (which apply the user's filter) -> ring buffer -> decoder
//! -> text/JSON writer.
//! Output is flushed per line when a pipe or terminal reads it, and per
//! drained batch when it goes to a regular file (so a storm costs one write
//! per batch, not per event).

use anyhow::Result;

use crate::{
    cli::Cli,
    decoder::{Decoder, NetEvent},
    fail,
    kernel::{self, Probe},
    names::Names,
    netns::Selection,
    output::Output,
    render::{event_json::JsonLog, event_text::TextLog, stop::StopSummary},
    session::{self, Attached, POLL, attach, block_on, watch},
};

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

pub fn run(cli: &Cli, namespaces: Selection) -> Result<()> {
    if let Some(secs) = cli.duration
        && !(secs.is_finite() && secs > 0.0)
    {
        return Err(fail::usage(format!(
            "invalid --duration {secs}: use a positive number of seconds"
        )));
    }
    block_on(stream(cli, namespaces))
}

async fn stream(cli: &Cli, namespaces: Selection) -> Result<()> {
    let mut attached = attach(cli, namespaces, false)?;
    let decoder = attached.decoder()?;
    eprintln!(
        "enetstat: tracing TCP in {} (stop with Ctrl-C)",
        namespaces.describe()
    );
    let mut ring = watch(attached.probe.take_events()?)?;
    let mut logger = watch(attached.probe.take_logger()?)?;

    let format = if cli.json {
        Format::Json(JsonLog::default())
    } else {
        let netns_column = attached.namespaces == Selection::All;
        Format::Text(TextLog::new(Names::new(cli.numeric()), netns_column))
    };
    let mut out = Output::stdout();
    // A write that fails ends the log, but the stop summary is still said
    // before the failure is.
    let mut failed = None;
    let mut open = true;
    if let Format::Text(log) = &format {
        let header = format!("{}\n", log.header());
        match out.write_whole(&header, LOG) {
            Ok(ok) => open = ok,
            Err(e) => failed = Some(e),
        }
    }

    let stop = crate::stop::requested(cli.duration)?;
    tokio::pin!(stop);

    let mut tally = Tally::default();
    let mut writer = EventWriter {
        out: &mut out,
        format,
        line: String::with_capacity(256),
        attached: &attached,
        limit: cli.count,
        failed,
    };
    // The kernel wakes us only when the ring holds 256 KiB; below that we
    // look every POLL (see netstat-ebpf's `submit`).
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    open &= writer.failed.is_none();
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
    if writer.failed.is_none() && writer.limit.is_none_or(|n| tally.written < n) {
        writer.drain(ring.get_mut(), &decoder, &mut tally)?;
    }
    let mut counters = attached.probe.counters()?;
    if let Selection::One(_) = attached.namespaces {
        let ends = ends_unseen(&attached.probe)?;
        counters.gaps += ends;
        counters.lost += ends;
    }
    log::info!("kernel counters: {counters:?}");
    let filtered =
        (attached.filter != netstat_common::Filter::default()).then_some(counters.filtered);
    let stop = StopSummary {
        events_seen: Some(tally.seen),
        owners_unknown: Some(tally.owners_unknown),
        filtered,
        ..session::stop_summary("events", &counters)
    };
    eprintln!("{}", stop.render(cli.json || cli.stop_json));
    match writer.failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Gaps not found yet: sockets the kernel side last saw in a state, since
/// before we asked sock_diag, that fewer sockets of the namespace are in. Their
/// later changes ran none of our programs, and their addresses were not
/// reused (which would have shown the gap). A lower bound: a socket we do
/// not remember (filtered out, older than us) can stand in for one we lost.
fn ends_unseen(probe: &Probe) -> Result<u64> {
    // sock_diag's view first: a socket that changes state while we read
    // then has a newer record than `asked`, and is left out.
    let asked = kernel::monotonic_ns();
    let mut live = [0u64; 16];
    for family in [netstat_common::AF_INET, netstat_common::AF_INET6] {
        match crate::sock_diag::tcp_sockets(family) {
            Ok(sockets) => sockets
                .iter()
                .for_each(|s| live[usize::from(s.state & 15)] += 1),
            Err(e) => {
                log::debug!("no sock_diag ({e}): unseen ends not counted");
                return Ok(0);
            }
        }
    }
    let remembered = probe.states_since_before(asked)?;
    let ends = surplus(&remembered, &live);
    if ends > 0 {
        log::info!("{ends} sockets' ends unseen, found at stop");
    }
    Ok(ends)
}

/// How many more sockets `remembered` has than `live`, state by state
/// (CLOSE, which remembered sockets keep until freed, and state 0 aside).
fn surplus(remembered: &[u64; 16], live: &[u64; 16]) -> u64 {
    (1..16)
        .filter(|&state| state != usize::from(netstat_common::tcp_state::CLOSE))
        .map(|state| remembered[state].saturating_sub(live[state]))
        .sum()
}

/// What errors call the output.
const LOG: &str = "the event log";

struct EventWriter<'a> {
    out: &'a mut Output,
    format: Format,
    /// Reused for every line, so formatting allocates nothing per event.
    line: String,
    attached: &'a Attached,
    limit: Option<u64>,
    /// Why writing stopped, when it failed.
    failed: Option<anyhow::Error>,
}

impl EventWriter<'_> {
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
            if !self.attached.owner_wanted(&ev) {
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
        // One write per batch into a file; a pipe was flushed per line.
        let flushed = self.out.flush(LOG);
        Ok(self.written(flushed) && open)
    }

    /// Returns false when the reader has gone away (EPIPE).
    fn write(&mut self, ev: &NetEvent) -> Result<bool> {
        self.line.clear();
        self.format.write_line(&mut self.line, ev);
        self.line.push('\n');
        let written = self.out.write(&self.line, LOG);
        Ok(self.written(written))
    }

    /// Whether the log goes on after a write: not when the reader went away
    /// or the write failed (kept for after the stop summary).
    fn written(&mut self, result: Result<bool>) -> bool {
        result.unwrap_or_else(|e| {
            self.failed = Some(e);
            false
        })
    }
}

#[cfg(test)]
mod tests {
    use netstat_common::tcp_state::{CLOSE, ESTABLISHED, FIN_WAIT1, LISTEN};

    #[test]
    fn unseen_ends_are_the_surplus_of_remembered_over_live_sockets() {
        let mut remembered = [0; 16];
        let mut live = [0; 16];
        // Two sockets remembered in FIN_WAIT1, one still there.
        remembered[usize::from(FIN_WAIT1)] = 2;
        live[usize::from(FIN_WAIT1)] = 1;
        // More live than remembered (older than us, filtered out): no gap.
        remembered[usize::from(ESTABLISHED)] = 1;
        live[usize::from(ESTABLISHED)] = 5;
        // Closed sockets stay remembered until freed; state 0 is unknown.
        remembered[usize::from(CLOSE)] = 7;
        remembered[0] = 3;
        live[usize::from(LISTEN)] = 1;
        assert_eq!(super::surplus(&remembered, &live), 1);
    }
}
