//! `enetstat -c` on eBPF: one /proc snapshot, then the TCP rows follow the
//! kernel's state-change events (no re-read of /proc/net/tcp*), redrawn at
//! most once per `--interval`. UDP, raw and unix sockets, which the
//! tracepoints do not cover, are re-read from /proc at each redraw.
//!
//! kernel programs -> ring buffer -> decoder -> `table::ConnTable` ->
//! socket_list (netstat's table, `rows::LiveRows`) or a changes-only diff.

mod rows;
pub mod table;

use std::{collections::BTreeMap, time::Duration};

use anyhow::Result;
use netstat_common::Filter;

use crate::{
    cli::Cli,
    clock::{TimeFormat, WallClock},
    decoder::Decoder,
    kernel,
    names::Names,
    netns::{self, Selection},
    output::Output,
    owners::{InodeOwners, TcpOwners},
    plan::Sockets,
    procnet::{self, sockets::InetSocket},
    socket_list,
};
use table::ConnTable;

/// Starts the live view, or returns the reason eBPF is unavailable (the
/// caller then re-polls /proc like netstat -c).
pub fn run(cli: &Cli, plan: &Sockets, filter: &Filter) -> Result<()> {
    crate::session::block_on(view(cli, plan, filter))
}

async fn view(cli: &Cli, plan: &Sockets, filter: &Filter) -> Result<()> {
    let own_netns = netns::own()?;
    let attached = crate::session::attach(cli, Selection::One(own_netns), false)?;
    let mut probe = attached.probe;
    let clock = WallClock::new();
    let names = Names::new(cli.numeric());
    let mut ring = probe.take_events()?;
    // One read of /proc serves both: the decoder names the owners of events
    // on these sockets, the table starts from them.
    let (sockets, inodes) = read_tcp(plan, filter)?;
    let decoder = Decoder::new(
        probe.attached_ns,
        own_netns,
        TcpOwners::new(&inodes, &sockets),
    );
    let mut table = start_table(sockets, &inodes, &clock)?;
    // Events from before the last resynchronisation's /proc read began are
    // dropped: that read shows them already.
    let mut read_since_ns = 0;
    let at_start = probe.counters()?;
    let mut lost = at_start.lost;
    let mut notice: Option<String> = None;

    let interval = Duration::from_millis(cli.interval);
    let mut screen = Screen {
        out: Output::stdout(),
        first: true,
        previous: BTreeMap::new(),
    };
    // UDP, raw and unix rows change without events: redraw them each interval.
    let untracked = plan.untracked();
    let mut dirty = true;
    let stop = crate::stop::requested(cli.duration)?;
    tokio::pin!(stop);
    // Events are read every POLL; the table is drawn at most every interval.
    let mut poll = tokio::time::interval(crate::session::POLL);
    let mut last_draw = tokio::time::Instant::now() - interval;
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = &mut stop => return Ok(()),
        }
        while let Some(record) = ring.next() {
            let raw = kernel::decode_record(&record)?;
            drop(record);
            if raw.ts_ns >= read_since_ns {
                dirty |= table.apply(&decoder.decode(&raw));
            }
        }
        if last_draw.elapsed() < interval {
            continue;
        }
        // Sweeps over the whole table, so once per drawing, not per poll.
        if filter.states != 0 {
            // Events leave a wanted state; the kernel sends none after, so
            // such rows would linger unseen.
            dirty |= table.retain(|state| filter.state_matches(state));
        }
        let now = now_ns(&clock);
        dirty |= table.expire(now);
        // Whatever the table missed, /proc has: before drawing, start again
        // from it (at most once per drawing, however long the loss goes on).
        let counters = probe.counters()?;
        if counters.lost > lost {
            lost = counters.lost;
            // Applied after this read, an event from before it would take
            // a row back to an older state.
            read_since_ns = kernel::monotonic_ns();
            while ring.next().is_some() {}
            let (sockets, inodes) = read_tcp(plan, filter)?;
            table = start_table(sockets, &inodes, &clock)?;
            let mut text = format!(
                "(enetstat: {} events lost in the kernel so far; last resynchronised from /proc at {}",
                lost - at_start.lost,
                local_time(now)
            );
            let gaps = counters.gaps - at_start.gaps;
            if gaps > 0 {
                text += &format!("; {gaps} of them gaps in sockets' histories, see README");
            }
            text.push(')');
            notice = Some(text);
            dirty = true;
        }
        if dirty || untracked || (plan.timers && plan.tcp) {
            let mut out = String::new();
            if let Some(n) = &notice {
                out.push_str(n);
                out.push('\n');
            }
            let rows = rows::LiveRows { table: &table, now };
            socket_list::list(
                plan,
                filter,
                &[(own_netns, None)],
                &names,
                &mut out,
                Some(&rows),
            )?;
            if !screen.show(&out, cli.diff, now)? {
                return Ok(());
            }
            dirty = false;
            last_draw = tokio::time::Instant::now();
        }
    }
}

/// The TCP sockets of the plan's families and the socket owners, from /proc.
fn read_tcp(plan: &Sockets, filter: &Filter) -> Result<(Vec<InetSocket>, InodeOwners)> {
    let owners = InodeOwners::scan();
    let mut sockets = Vec::new();
    for (wanted, path) in [(plan.ipv4, "/proc/net/tcp"), (plan.ipv6, "/proc/net/tcp6")] {
        if let (true, Some(text)) = (wanted, procnet::read_optional(path)?) {
            sockets.extend(
                procnet::sockets::parse(&text, path)?
                    .into_iter()
                    .filter(|s| crate::filter::socket_matches(filter, s, owners.pid_of(s.inode))),
            );
        }
    }
    Ok((sockets, owners))
}

/// The connection table for sockets just read from /proc.
fn start_table(
    sockets: Vec<InetSocket>,
    inodes: &InodeOwners,
    clock: &WallClock,
) -> Result<ConnTable> {
    let mut table = ConnTable::from_snapshot(sockets, inodes, now_ns(clock));
    table.resets_kill_time_wait = procnet::read_optional(RFC1337)?.is_none_or(|v| v.trim() == "0");
    Ok(table)
}

/// Per network namespace; 0 (the default) lets a reset kill TIME_WAIT.
const RFC1337: &str = "/proc/sys/net/ipv4/tcp_rfc1337";

struct Screen {
    out: Output,
    first: bool,
    /// For --diff: (proto, local, foreign) -> state, of the last drawing.
    previous: Rows,
}

impl Screen {
    /// Shows one table: redrawn in place on a terminal, appended after a
    /// separator line on a pipe, or as changed rows only (--diff). Returns
    /// false when the reader has gone away.
    fn show(&mut self, table: &str, diff: bool, now: i128) -> Result<bool> {
        let mut text = String::new();
        let time = local_time(now);
        if diff {
            let current = internet_rows(table);
            changes(&self.previous, &current, &time, &mut text);
            self.previous = current;
        } else if self.out.is_terminal() {
            text.push_str("\x1b[H\x1b[2J");
            text.push_str(table);
        } else {
            if !self.first {
                text.push_str(&format!("--- {time}\n"));
            }
            text.push_str(table);
        }
        self.first = false;
        self.out.write_whole(&text, VIEW)
    }
}

type Rows = BTreeMap<(String, String, String), String>;

/// --diff: one line per row that appeared (+), changed state (~) or
/// vanished (-) between two drawings.
fn changes(previous: &Rows, current: &Rows, time: &str, out: &mut String) {
    use std::fmt::Write as _;
    for ((proto, local, remote), state) in current {
        let key = (proto.clone(), local.clone(), remote.clone());
        match previous.get(&key) {
            None => _ = writeln!(out, "{time} + {proto} {local} {remote} {state}"),
            Some(old) if old != state => {
                _ = writeln!(out, "{time} ~ {proto} {local} {remote} {old} -> {state}");
            }
            Some(_) => {}
        }
    }
    for ((proto, local, remote), state) in previous {
        if !current.contains_key(&(proto.clone(), local.clone(), remote.clone())) {
            _ = writeln!(out, "{time} - {proto} {local} {remote} {state}");
        }
    }
}

/// The Internet rows of a drawn table, keyed by protocol and endpoints.
fn internet_rows(table: &str) -> Rows {
    table
        .lines()
        .filter(|l| ["tcp", "udp", "raw"].iter().any(|p| l.starts_with(p)))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let state = match f.get(5) {
                // UDP rows without a state end at the foreign address.
                Some(s)
                    if !s.contains('/')
                        && *s != "-"
                        && s.chars().any(|c| c.is_ascii_uppercase()) =>
                {
                    s.to_string()
                }
                _ => String::new(),
            };
            Some((
                (
                    f.first()?.to_string(),
                    f.get(3)?.to_string(),
                    f.get(4)?.to_string(),
                ),
                state,
            ))
        })
        .collect()
}

fn now_ns(clock: &WallClock) -> i128 {
    clock.wall_ns(kernel::monotonic_ns())
}

/// Local time of day with microseconds.
fn local_time(epoch_ns: i128) -> String {
    let mut s = String::new();
    TimeFormat::default().write_local(&mut s, epoch_ns);
    s
}

/// What errors call the output.
const VIEW: &str = "the live view";

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
Proto Recv-Q Send-Q Local Address           Foreign Address         State       In-State
tcp        0      0 127.0.0.1:80            0.0.0.0:*               LISTEN      >3.0s
tcp        0      0 127.0.0.1:80            127.0.0.1:5000          ESTABLISHED 1.2s
udp        0      0 0.0.0.0:68              0.0.0.0:*                           -
";
    const AFTER: &str = "\
tcp        0      0 127.0.0.1:80            0.0.0.0:*               LISTEN      >4.0s
tcp        0      0 127.0.0.1:80            127.0.0.1:5000          FIN_WAIT1   0.1s
tcp        0      0 127.0.0.1:80            127.0.0.1:5002          SYN_RECV    0.0s
";

    #[test]
    fn diff_lists_appeared_changed_and_vanished_rows() {
        let mut out = String::new();
        changes(&internet_rows(BEFORE), &internet_rows(AFTER), "T", &mut out);
        assert_eq!(
            out,
            "T ~ tcp 127.0.0.1:80 127.0.0.1:5000 ESTABLISHED -> FIN_WAIT1\n\
             T + tcp 127.0.0.1:80 127.0.0.1:5002 SYN_RECV\n\
             T - udp 0.0.0.0:68 0.0.0.0:* \n"
        );
    }
}
