//! `enetstat -E`: the event pipeline, end to end.
//!
//! kernel programs (which apply the user's filter) -> ring buffer (the
//! session) -> decoder -> text/JSON writer (`EventLog`, the session's sink).
//! Output is flushed per line when a pipe or terminal reads it, and per
//! drained batch when it goes to a regular file (so a storm costs one write
//! per batch, not per event).

use anyhow::Result;
use netstat_common::{Event, LossMark};

use crate::{
    command::Events,
    decoder::{Decoder, Lost, NetEvent},
    kernel::{self, Probe},
    names::Names,
    netns::Selection,
    output::{Output, Reader},
    render::{event_json::JsonLog, event_text::TextLog, stop::StopSummary},
    session::{self, Attached, Flow, Sink, block_on},
};

/// What the run saw, for the closing summary line.
#[derive(Debug, Default)]
struct LogCounts {
    seen: u64,
    state_changes: u64,
    written: u64,
    owners_unknown: u64,
    no_socket: u64,
    /// Events the loss marks in the log account for.
    marked_lost: u64,
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

    fn write_lost(&mut self, out: &mut String, lost: &Lost) {
        match self {
            Format::Text(log) => log.write_lost(out, lost),
            Format::Json(log) => log.write_lost(out, lost),
        }
    }
}

/// Runs the event log on programs attached for it (`Needs::Events`).
pub fn run(events: &Events, attached: Attached) -> Result<()> {
    block_on(stream(events, attached))
}

async fn stream(events: &Events, mut attached: Attached) -> Result<()> {
    // Cgroups are named in JSON, and checked for --cgroup.
    let decoder = match events.json || events.tracing.cgroup.is_some() {
        true => attached.decoder()?.with_cgroups(),
        false => attached.decoder()?,
    };
    let namespaces = attached.namespaces;
    let english = format!("tracing TCP in {}", namespaces.describe());
    let stop = attached.announce("events", &english, events.tracing.stop_after)?;
    let format = if events.json {
        Format::Json(JsonLog::default())
    } else {
        let netns_column = namespaces == Selection::All;
        Format::Text(TextLog::new(Names::new(events.numeric), netns_column))
    };
    let mut log = EventLog {
        out: Output::stdout(),
        format,
        line: String::with_capacity(256),
        decoder,
        filter: attached.filter,
        cgroup: events.tracing.cgroup.as_ref().map(|c| c.0.clone()),
        namespaces,
        limit: events.count,
        counts: LogCounts::default(),
        open: true,
        closed: false,
        failed: None,
        stop_json: attached.json_records,
    };
    if let Format::Text(text) = &log.format {
        let header = format!("{}\n", text.header());
        let written = log.out.write_whole(&header, LOG);
        log.open = log.written(written);
    }
    if !log.open {
        return log.finish(&attached.probe, false);
    }
    session::run(&mut attached.probe, stop, &mut log).await
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
    let remembered = kernel::states_since_before(&probe.remembered()?, asked);
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

/// The event log: a sink of the session that writes each event as a line.
struct EventLog {
    out: Output,
    format: Format,
    /// Reused for every line, so formatting allocates nothing per event.
    line: String,
    decoder: Decoder,
    filter: netstat_common::Filter,
    /// `--cgroup`: the path whose sockets (and those below it) are kept.
    cgroup: Option<String>,
    namespaces: Selection,
    limit: Option<u64>,
    counts: LogCounts,
    /// False once the count is reached or the reader has gone away.
    open: bool,
    /// The reader has gone away: the run ends quietly, as `-S` does.
    closed: bool,
    /// Why writing stopped, when it failed; said after the stop summary.
    failed: Option<anyhow::Error>,
    stop_json: bool,
}

impl EventLog {
    /// Whether the log goes on after a write: not when the reader went away
    /// or the write failed (kept for after the stop summary).
    /// Whether the log is still open after a write that gave `result`.
    fn written(&mut self, result: Result<Reader>) -> bool {
        match result {
            Ok(reader) => {
                self.closed |= reader.is_gone();
                !reader.is_gone()
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// Whether `--cgroup` keeps a socket of an owner in `cgroup` (the
    /// kernel has checked those whose owner it saw act; this catches the
    /// older ones).
    fn cgroup_matches(&self, cgroup: Option<&str>) -> bool {
        let Some(wanted) = &self.cgroup else {
            return true;
        };
        cgroup.is_some_and(|c| {
            c.strip_prefix(wanted.trim_end_matches('/'))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    fn flow(&self) -> Flow {
        if self.open { Flow::Go } else { Flow::End }
    }

    /// Writes `line` and a newline.
    fn write_record(&mut self) {
        self.line.push('\n');
        let written = self.out.write(&self.line, LOG);
        self.open = self.written(written);
    }

    fn write_lost(&mut self, lost: Lost) {
        self.counts.marked_lost += lost.count;
        self.line.clear();
        self.format.write_lost(&mut self.line, &lost);
        self.write_record();
    }
}

impl Sink for EventLog {
    fn reads_events(&self) -> bool {
        true
    }

    fn event(&mut self, _: &Probe, raw: &Event) -> Result<Flow> {
        if !self.open {
            return Ok(Flow::End);
        }
        self.counts.seen += 1;
        self.counts.state_changes += u64::from(raw.kind == netstat_common::kind::STATE);
        let ev = self.decoder.decode(raw);
        // Events from the kernel can leave the owner to userspace (sockets
        // older than the programs); those are held to `--pid` and
        // `--cgroup` here.
        if !self
            .filter
            .pid_matches(Some(ev.owner.as_ref().map_or(0, |o| o.pid)))
            || (raw.flags & netstat_common::flags::OWNER_KNOWN == 0
                && !self.cgroup_matches(ev.cgroup.as_deref()))
        {
            return Ok(Flow::Go);
        }
        // An event of no socket (a reset sent for none) has no owner to find.
        match ev.socket {
            0 => self.counts.no_socket += 1,
            _ => self.counts.owners_unknown += u64::from(ev.owner.is_none()),
        }
        self.line.clear();
        self.format.write_line(&mut self.line, &ev);
        self.write_record();
        if self.open {
            self.counts.written += 1;
            self.open = self.limit.is_none_or(|n| self.counts.written < n);
        }
        Ok(self.flow())
    }

    fn lost(&mut self, _: &Probe, mark: &LossMark) -> Result<Flow> {
        if self.open {
            self.write_lost(self.decoder.lost(mark));
        }
        Ok(self.flow())
    }

    fn batch_done(&mut self, _: &Probe) -> Result<Flow> {
        // One write per batch into a file; a pipe was flushed per line.
        if self.failed.is_none() {
            let flushed = self.out.flush(LOG);
            self.open &= self.written(flushed);
        }
        Ok(self.flow())
    }

    fn finish(&mut self, probe: &Probe, _stopped: bool) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut counters = probe.counters()?;
        // Losses after the last record that fitted have no mark in the
        // stream yet: the log ends with theirs.
        let unmarked = counters.ring_full.saturating_sub(self.counts.marked_lost);
        if unmarked > 0 && self.open {
            let mark = LossMark {
                ts_ns: kernel::monotonic_ns(),
                lost: unmarked,
            };
            self.write_lost(self.decoder.lost(&mark));
            let flushed = self.out.flush(LOG);
            self.written(flushed);
        }
        if let Selection::One(_) = self.namespaces {
            let ends = ends_unseen(probe)?;
            counters.gaps += ends;
            counters.lost += ends;
        }
        log::info!("kernel counters: {counters:?}");
        let filtered =
            (self.filter != netstat_common::Filter::default()).then_some(counters.filtered);
        let stop = StopSummary {
            events_seen: Some(self.counts.seen),
            state_changes: Some(self.counts.state_changes),
            owners_unknown: Some(self.counts.owners_unknown),
            no_socket: Some(self.counts.no_socket),
            filtered,
            ..session::stop_summary("events", probe, &counters)
        };
        eprintln!("{}", stop.render(self.stop_json));
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
