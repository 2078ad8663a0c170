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
    clock::WallClock,
    command::{Events, Rotate},
    decoder::{Decoder, Lost, NetEvent},
    filter::RowFilter,
    kernel::{self, Probe},
    log_file::Group,
    names::Names,
    netns::Selection,
    output::{Output, Reader},
    plan::SocketPlan,
    render::{event_json::JsonLog, event_text::TextLog, stop::StopSummary},
    session::{self, Attached, Flow, Sink, block_on},
    socket_list,
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
    // A JSON log starts from the sockets present, so a reader can rebuild
    // the table from it alone.
    let sockets = events.json.then(|| Sockets {
        plan: SocketPlan {
            tcp: true,
            all: true,
            programs: true,
            ipv4: events.tracing.filter.families & (1 << netstat_common::AF_INET) != 0
                || events.tracing.filter.families == 0,
            ipv6: events.tracing.filter.families & (1 << netstat_common::AF_INET6) != 0
                || events.tracing.filter.families == 0,
            ..SocketPlan::default()
        },
        filter: RowFilter::new(
            events.tracing.filter,
            events.tracing.cgroup.as_ref().map(|c| c.0.clone()),
        ),
        namespaces,
        clock: WallClock::new(),
        lost: 0,
        checked: std::time::Instant::now(),
    });
    let out = match &events.output {
        Some(file) => Output::file(&file.path)?,
        None => Output::stdout(),
    };
    let mut log = EventLog {
        out,
        rotate: events.output.as_ref().and_then(|o| o.rotate),
        in_file: 0,
        sockets,
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
    log.begin_file(&attached.probe)?;
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

/// Where a JSON log's snapshot and resync groups read the sockets from.
struct Sockets {
    plan: SocketPlan,
    filter: RowFilter,
    namespaces: Selection,
    clock: WallClock,
    /// Events lost (and gaps) as of the last group.
    lost: u64,
    /// When the loss count was last looked at.
    checked: std::time::Instant,
}

/// The wall-clock time now, on the clock events are dated with.
fn kernel_now(sockets: &Option<Sockets>) -> i128 {
    let clock = sockets.as_ref().map_or_else(WallClock::new, |s| s.clock);
    clock.wall_ns(kernel::monotonic_ns())
}

/// How often a JSON log looks for losses to resynchronise after: a loss
/// that goes on costs one read of the sockets per second, not per batch.
const RESYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The event log: a sink of the session that writes each event as a line.
struct EventLog {
    out: Output,
    /// `--rotate-size`: when and how the file of `--output` is rotated.
    rotate: Option<Rotate>,
    /// Records written since the last snapshot or resync group: a file
    /// whose snapshot alone passes the size still takes the events after it.
    in_file: u64,
    /// JSON only: where the snapshot and resync groups come from.
    sockets: Option<Sockets>,
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
        self.in_file += 1;
        self.line.push('\n');
        let written = self.out.write(&self.line, LOG);
        self.open = self.written(written);
    }

    /// What every file of the log begins with: the text header, or the
    /// JSON header and the snapshot of the sockets present.
    fn begin_file(&mut self, probe: &Probe) -> Result<()> {
        self.in_file = 0;
        match &mut self.format {
            Format::Text(text) => {
                let header = format!("{}\n", text.header());
                let written = self.out.write_whole(&header, LOG);
                self.open = self.written(written);
            }
            Format::Json(json) => {
                self.line.clear();
                json.write_header(&mut self.line, kernel_now(&self.sockets));
                self.write_record();
                if let (true, Some(sockets)) = (self.open, &mut self.sockets) {
                    sockets.lost = probe.counters()?.lost;
                    self.write_group(Group::Snapshot)?;
                }
            }
        }
        Ok(())
    }

    /// At `--rotate-size`: the file moves aside and a new one begins,
    /// self-contained. The events since stay in the ring meanwhile.
    fn rotate_if_full(&mut self, probe: &Probe) -> Result<()> {
        let Some(rotate) = self.rotate else {
            return Ok(());
        };
        if self.out.size() < rotate.size || self.in_file == 0 {
            return Ok(());
        }
        // The file covers the time up to its rotation, quiet or not.
        if let Format::Json(json) = &mut self.format {
            self.line.clear();
            json.write_rotated(&mut self.line, kernel_now(&self.sockets));
            self.write_record();
        }
        match self.out.rotate(rotate.keep) {
            Ok(()) => self.begin_file(probe),
            Err(e) => {
                (self.failed, self.open) = (Some(e), false);
                Ok(())
            }
        }
    }

    /// Writes the sockets present now as a `group`, closed by its end
    /// record. Events dated before the read began are already in it; a
    /// reader skips them.
    fn write_group(&mut self, group: Group) -> Result<()> {
        let (Some(sockets), Format::Json(json)) = (&self.sockets, &mut self.format) else {
            return Ok(());
        };
        let at = kernel_now(&self.sockets);
        let own = match sockets.namespaces {
            Selection::One(inode) => inode,
            Selection::All => 0,
        };
        let mut rows = 0u64;
        let mut text = String::new();
        let mut written = Ok(Reader::Reading);
        socket_list::internet_rows(
            &sockets.plan,
            &sockets.filter,
            &sockets.namespaces.members(),
            None,
            &mut |row| {
                json.write_row(&mut text, group, at, row, own);
                text.push('\n');
                rows += 1;
                // Written as it grows: a large table is not held whole.
                if text.len() > 1 << 16 && written.as_ref().is_ok_and(|r| !r.is_gone()) {
                    written = self.out.write(&text, LOG);
                    text.clear();
                }
            },
        )?;
        json.write_group_end(&mut text, group, at, rows);
        self.in_file = 0;
        text.push('\n');
        let written = written.and_then(|r| r.then(|| self.out.write_whole(&text, LOG)));
        self.open = self.written(written);
        Ok(())
    }

    /// After a loss (or a gap), at most once per `RESYNC_EVERY`: a resync
    /// group, from which a reader is right again.
    fn resync_if_lost(&mut self, probe: &Probe) -> Result<()> {
        let Some(sockets) = &mut self.sockets else {
            return Ok(());
        };
        if sockets.checked.elapsed() < RESYNC_EVERY {
            return Ok(());
        }
        sockets.checked = std::time::Instant::now();
        let lost = probe.counters()?.lost;
        if lost > sockets.lost {
            sockets.lost = lost;
            self.write_group(Group::Resync)?;
        }
        Ok(())
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

    fn batch_done(&mut self, probe: &Probe) -> Result<Flow> {
        if self.open {
            self.resync_if_lost(probe)?;
        }
        // One write per batch into a file; a pipe was flushed per line.
        if self.failed.is_none() {
            let flushed = self.out.flush(LOG);
            self.open &= self.written(flushed);
        }
        if self.open {
            self.rotate_if_full(probe)?;
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
