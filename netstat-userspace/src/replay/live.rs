//! `enetstat --replay LOG -c`: the live view played from a log, from
//! `--at` (or the log's first snapshot) on: a drawing per `--interval` of
//! the log's time in which a row changed, as fast as the log reads or at
//! `--speed X`; with `--diff`, only the rows that changed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::{Follower, begin, notice, outside};
use crate::{
    clock::TimeFormat,
    command::{Replay, ReplayLive},
    conn_table::{self, TableRows, Which},
    log_file::LogReader,
    names::Names,
    output::{Output, Reader},
    render::live_diff,
    socket_list,
};

/// Plays `log` until its end or until the reader goes away.
pub fn run(log: &mut LogReader, replay: &Replay, view: &ReplayLive) -> Result<()> {
    let (start, from) = begin(log, &replay.at)?;
    let step = (view.interval.as_nanos() as i128).max(1_000_000);
    let mut player = Player {
        replay,
        view,
        names: Names::new(replay.numeric),
        out: Output::stdout(),
        diff: view.diff.then(live_diff::Rows::new),
        first: None,
    };
    let mut follower = Follower {
        track_changes: conn_table::diff_in_table(view.diff, &replay.plan),
        ..Follower::default()
    };
    // The log time of the next drawing, once the first is done.
    let mut next: Option<i128> = None;
    let mut dirty = false;
    let mut last = start;
    while let Some(timed) = log.next()? {
        if next.is_none()
            && follower.synced
            && let Some(at) = from.filter(|&f| timed.wall_ns > f)
        {
            // The first drawing: the table as of --at.
            if player.draw(&mut follower, at)?.is_gone() {
                return Ok(());
            }
            (next, dirty) = (Some(at + step), false);
        }
        while let Some(due) = next.filter(|&d| timed.wall_ns > d) {
            dirty |= follower.settle(due);
            if dirty && player.draw(&mut follower, due)?.is_gone() {
                return Ok(());
            }
            // A quiet stretch of the log costs one step, not one per interval.
            let skip = if dirty {
                1
            } else {
                (timed.wall_ns - due) / step + 1
            };
            (next, dirty) = (Some(due + skip * step), false);
        }
        last = timed.wall_ns;
        dirty |= follower.take(&timed, log)?;
        // Without --at the view starts from the log's first snapshot.
        if next.is_none() && from.is_none() && follower.synced {
            if player.draw(&mut follower, last)?.is_gone() {
                return Ok(());
            }
            (next, dirty) = (Some(last + step), false);
        }
    }
    if let Some(from) = from.filter(|&f| f > last) {
        return Err(outside(log.name(), from, "after it ends at", last));
    }
    if !follower.synced {
        return Err(anyhow!(
            "{}: no snapshot of the sockets (a log of enetstat -E --json begins with one)",
            log.name()
        ));
    }
    // The rest of the log: what changed since the last drawing.
    if next.is_none() || dirty | follower.settle(last) {
        // The last drawing: a reader gone by now changes nothing.
        let _ = player.draw(&mut follower, last)?;
    }
    Ok(())
}

/// Draws the followed table, paced.
struct Player<'a> {
    replay: &'a Replay,
    view: &'a ReplayLive,
    names: Names,
    out: Output,
    /// With --diff: the rows of the last drawing.
    diff: Option<live_diff::Rows>,
    /// The log time and real time of the first drawing.
    first: Option<(i128, Instant)>,
}

impl Player<'_> {
    /// Draws the table as of log time `at` (at `--speed`, not before its
    /// time comes).
    fn draw(&mut self, follower: &mut Follower, at: i128) -> Result<Reader> {
        follower.settle(at);
        let (began_at, began) = *self.first.get_or_insert((at, Instant::now()));
        if let Some(speed) = self.view.speed {
            let due = Duration::from_secs_f64((at - began_at) as f64 / 1e9 / speed);
            std::thread::sleep(due.saturating_sub(began.elapsed()));
        }
        let ticks_per_second = socket_list::ticks_per_second();
        let mut time = String::new();
        TimeFormat::default().write_local(&mut time, at);
        let mut text = String::new();
        if let Some(previous) = &mut self.diff {
            let (plan, filter, names) = (&self.replay.plan, &self.replay.filter, &self.names);
            conn_table::compare_drawings(
                &mut follower.table,
                (at, ticks_per_second),
                previous,
                &|rows| socket_list::diff_rows(plan, filter, &[(0, None)], rows),
                |before, current| live_diff::changes(before, current, &time, names, &mut text),
            )?;
            return self.out.write_whole(&text, "the replayed view");
        }
        let rows = TableRows {
            table: &follower.table,
            now: at,
            ticks_per_second,
            which: Which::All,
        };
        if at == began_at {
            text.push_str(&notice(&self.replay.file, at, follower.lost_unsynced));
        } else if self.out.is_terminal() {
            if self.out.clear_screen("the replayed view")?.is_gone() {
                return Ok(Reader::Gone);
            }
        } else {
            text.push_str(&format!("--- {time}\n"));
        }
        socket_list::list(
            &self.replay.plan,
            &self.replay.filter,
            &[(0, None)],
            &self.names,
            &mut text,
            Some(&rows),
        )?;
        self.out.write_whole(&text, "the replayed view")
    }
}
