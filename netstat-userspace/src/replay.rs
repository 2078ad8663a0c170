//! `enetstat --replay LOG --at TIME`: the TCP listing as of a past moment,
//! from enetstat's own event log instead of the kernel.
//!
//! log file -> `log_file` records -> `conn_table::ConnTable` (started from
//! each snapshot or resync group, moved by state changes) -> socket_list
//! (netstat's table, `conn_table::TableRows`) at that moment.

use std::mem;

use anyhow::{Result, anyhow};

use crate::{
    clock::{self, TimeFormat},
    command::{At, Replay},
    conn_table::{ConnTable, RESET_SETTLE_NS, TableRows},
    log_file::{GroupRow, LogReader, Record},
    names::Names,
    output::Output,
    socket_list,
};

/// Prints the listing as of `--at` (or the log's end).
pub fn run(replay: &Replay) -> Result<()> {
    let mut log = LogReader::open(&replay.file)?;
    let state = table_at(&mut log, &replay.at)?;
    let mut out = String::new();
    out.push_str(&state.notice(log.name()));
    let rows = TableRows {
        table: &state.table,
        now: state.at,
        ticks_per_second: socket_list::ticks_per_second(),
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

/// The table as of a moment of the log.
struct TableAt {
    table: ConnTable,
    at: i128,
    /// Events lost before `at` with no resync after them.
    lost_unsynced: bool,
}

impl TableAt {
    /// What the listing cannot show, said above it.
    fn notice(&self, name: &str) -> String {
        let mut time = String::new();
        TimeFormat::default().write_utc(&mut time, self.at);
        let mut text = format!(
            "(enetstat: replayed from {name} as of {time}; the log holds no queues or timers but TIME_WAIT's: Recv-Q and Send-Q show 0)\n"
        );
        if self.lost_unsynced {
            text.push_str("(enetstat: events were lost before this moment and no resync followed: rows may be missing or stale)\n");
        }
        text
    }
}

/// Reads `log` up to `at`: the table as its last group left it, moved by
/// every state change after that group's read.
fn table_at(log: &mut LogReader, at: &At) -> Result<TableAt> {
    let first = log
        .next()?
        .ok_or_else(|| anyhow!("{} is empty: not an enetstat log", log.name()))?;
    let start = first.wall_ns;
    let until = match at {
        At::End => None,
        At::Exact(ns) => Some(*ns),
        At::TimeOfDay(text) => Some(
            clock::parse_local_time_of_day(text, start)
                .ok_or_else(|| anyhow!("invalid --at {text}"))?,
        ),
    };
    if let Some(until) = until.filter(|&u| u < start) {
        return Err(outside(log.name(), until, "before it begins at", start));
    }
    let mut table = ConnTable::default();
    let mut group: Vec<GroupRow> = Vec::new();
    // Events dated before the group's read are in it already.
    let mut table_since = i128::MIN;
    let mut synced = false;
    let mut lost_unsynced = false;
    let mut last = start;
    while let Some(timed) = log.next()? {
        if let Some(u) = until.filter(|&u| timed.wall_ns > u) {
            last = u;
            break;
        }
        last = last.max(timed.wall_ns);
        table.settle_resets(timed.wall_ns, |_, _| None);
        match timed.record {
            Record::Row(row) => group.push(row),
            Record::GroupEnd { rows, .. } => {
                if rows != group.len() as u64 {
                    return Err(anyhow!(
                        "{}:{}: the group's end counts {rows} sockets, but {} precede it",
                        log.name(),
                        log.line_no(),
                        group.len()
                    ));
                }
                table = ConnTable::from_log(mem::take(&mut group), timed.wall_ns);
                // As by default (sysctl tcp_rfc1337 0), which the log does not record.
                table.resets_kill_time_wait = true;
                table_since = timed.wall_ns;
                (synced, lost_unsynced) = (true, false);
            }
            Record::Event(ev) if ev.wall_ns >= table_since => {
                table.apply(&ev);
            }
            Record::Lost => lost_unsynced = true,
            // A rotated file's successor concatenated after it starts again.
            Record::Header | Record::OtherFormat(_) | Record::Event(_) | Record::Other => {}
        }
    }
    if let Some(u) = until.filter(|&u| u > last) {
        return Err(outside(log.name(), u, "after it ends at", last));
    }
    if !synced {
        return Err(anyhow!(
            "{}: no snapshot of the sockets before that moment (a log of enetstat -E --json begins with one)",
            log.name()
        ));
    }
    // The kernel has let go of the timewait sockets whose time is up, and
    // of those a reset reached (within the softirq that sent it).
    table.expire(last);
    table.settle_resets(last + RESET_SETTLE_NS, |_, _| None);
    Ok(TableAt {
        table,
        at: last,
        lost_unsynced,
    })
}

/// The error for a moment outside the log.
fn outside(name: &str, at: i128, relation: &str, edge: i128) -> anyhow::Error {
    let mut format = TimeFormat::default();
    let (mut wanted, mut bound) = (String::new(), String::new());
    format.write_utc(&mut wanted, at);
    format.write_utc(&mut bound, edge);
    anyhow!("--at {wanted} is outside {name}: {relation} {bound}")
}
