//! `enetstat --replay LOG`: the past, from enetstat's own event log instead
//! of the kernel: the TCP listing as of `--at`, or with `-S` the summaries
//! the log's events determine.
//!
//! log file -> `log_file` records -> `Follower` (a `conn_table::ConnTable`
//! started from each snapshot or resync group, moved by state changes) ->
//! socket_list (netstat's table, `conn_table::TableRows`) at that moment,
//! or `summary` (counts per interval of log time).

mod live;
mod summary;

use std::mem;

use anyhow::{Result, anyhow};

use crate::{
    clock::{self, TimeFormat},
    command::{At, Replay},
    conn_table::{ConnTable, RESET_SETTLE_NS, TableRows, Which},
    log_file::{GroupRow, LogReader, Record, Timed},
    names::Names,
    output::Output,
    socket_list,
};

/// Prints the listing as of `--at` (or the log's end), or with `-S` the
/// log's intervals.
pub fn run(replay: &Replay) -> Result<()> {
    let mut log = LogReader::open(&replay.file)?;
    if let Some(every) = &replay.summary {
        return summary::run(&mut log, every);
    }
    if let Some(view) = &replay.live {
        return live::run(&mut log, replay, view);
    }
    let state = table_at(&mut log, &replay.at)?;
    let mut out = String::new();
    out.push_str(&notice(log.name(), state.at, state.follower.lost_unsynced));
    let rows = TableRows {
        table: &state.follower.table,
        now: state.at,
        ticks_per_second: socket_list::ticks_per_second(),
        which: Which::All,
    };
    socket_list::list(
        &replay.plan,
        &replay.filter,
        &[(0, None)],
        &Names::new(replay.numeric),
        &mut out,
        Some(&rows),
    )?;
    // A closed pipe is a reader with enough: nothing to say.
    let _ = Output::stdout().write_whole(&out, "the replayed listing")?;
    Ok(())
}

/// The connection table as a log moves it, record by record.
#[derive(Default)]
struct Follower {
    table: ConnTable,
    /// The socket records of the group being read.
    group: Vec<GroupRow>,
    /// When the table's group was read: events dated before are in it.
    since: i128,
    /// A group has been read.
    synced: bool,
    /// Events were lost after the last group.
    lost_unsynced: bool,
    /// The table keeps what changes, for `-c --diff`
    /// (`ConnTable::track_changes`).
    track_changes: bool,
}

impl Follower {
    /// Moves the table by one record; `log` names the place in errors.
    /// Returns whether a row changed.
    fn take(&mut self, timed: &Timed, log: &LogReader) -> Result<bool> {
        let mut changed = self.table.settle_resets(timed.wall_ns, |_, _| None);
        match &timed.record {
            Record::Row(row) => self.group.push(row.clone()),
            Record::GroupEnd { rows } => {
                if *rows != self.group.len() as u64 {
                    return Err(anyhow!(
                        "{}:{}: the group's end counts {rows} sockets, but {} precede it",
                        log.name(),
                        log.line_no(),
                        self.group.len()
                    ));
                }
                let table = ConnTable::from_log(mem::take(&mut self.group), timed.wall_ns);
                let last = mem::replace(&mut self.table, table);
                if self.track_changes {
                    // The next drawing tells the new table from what the last showed.
                    self.table.track_changes(last.into_drawn());
                }
                // As by default (sysctl tcp_rfc1337 0), which the log does not record.
                self.table.resets_kill_time_wait = true;
                self.since = timed.wall_ns;
                (self.synced, self.lost_unsynced) = (true, false);
                changed = true;
            }
            Record::Event(ev) if ev.wall_ns >= self.since => changed |= self.table.apply(ev),
            Record::Lost(_) => self.lost_unsynced = true,
            // A rotated file's successor concatenated after it starts again.
            Record::Header | Record::OtherFormat(_) | Record::Event(_) | Record::Rotated => {}
        }
        Ok(changed)
    }

    /// The table as the kernel holds it at `at`: the timewait sockets
    /// whose time is up, and those a reset reached, are gone. Returns
    /// whether a row went.
    fn settle(&mut self, at: i128) -> bool {
        self.table.expire(at) | self.table.settle_resets(at + RESET_SETTLE_NS, |_, _| None)
    }
}

/// The table as of a moment of the log.
struct TableAt {
    follower: Follower,
    at: i128,
}

/// What a replayed table cannot show, said above it: `name`'s table as
/// of `at`, and whether events were lost with no resync after them.
fn notice(name: &str, at: i128, lost_unsynced: bool) -> String {
    let mut time = String::new();
    TimeFormat::default().write_utc(&mut time, at);
    let mut text = format!(
        "(enetstat: replayed from {name} as of {time}; the log holds no queues or timers but TIME_WAIT's: Recv-Q and Send-Q show 0)\n"
    );
    if lost_unsynced {
        text.push_str("(enetstat: events were lost before this moment and no resync followed: rows may be missing or stale)\n");
    }
    text
}

/// Reads the log's first record: when the log begins, and the moment `at`
/// asks for in it (None: its end), refused if before the beginning.
fn begin(log: &mut LogReader, at: &At) -> Result<(i128, Option<i128>)> {
    let first = log
        .next()?
        .ok_or_else(|| anyhow!("{} is empty: not an enetstat log", log.name()))?;
    let start = first.wall_ns;
    let moment = match at {
        At::End => None,
        At::Exact(ns) => Some(*ns),
        At::TimeOfDay(text) => Some(
            clock::parse_local_time_of_day(text, start)
                .ok_or_else(|| anyhow!("invalid --at {text}"))?,
        ),
    };
    match moment.filter(|&m| m < start) {
        Some(m) => Err(outside(log.name(), m, "before it begins at", start)),
        None => Ok((start, moment)),
    }
}

/// Reads `log` up to `at`: the table as its last group left it, moved by
/// every state change after that group's read.
fn table_at(log: &mut LogReader, at: &At) -> Result<TableAt> {
    let (start, until) = begin(log, at)?;
    let mut follower = Follower::default();
    let mut last = start;
    while let Some(timed) = log.next()? {
        if let Some(u) = until.filter(|&u| timed.wall_ns > u) {
            last = u;
            break;
        }
        last = last.max(timed.wall_ns);
        follower.take(&timed, log)?;
    }
    if let Some(u) = until.filter(|&u| u > last) {
        return Err(outside(log.name(), u, "after it ends at", last));
    }
    if !follower.synced {
        return Err(anyhow!(
            "{}: no snapshot of the sockets before that moment (a log of enetstat -E --json begins with one)",
            log.name()
        ));
    }
    follower.settle(last);
    Ok(TableAt { follower, at: last })
}

/// The error for a moment outside the log.
fn outside(name: &str, at: i128, relation: &str, edge: i128) -> anyhow::Error {
    let mut format = TimeFormat::default();
    let (mut wanted, mut bound) = (String::new(), String::new());
    format.write_utc(&mut wanted, at);
    format.write_utc(&mut bound, edge);
    anyhow!("--at {wanted} is outside {name}: {relation} {bound}")
}
