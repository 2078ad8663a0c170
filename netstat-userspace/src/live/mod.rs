//! `enetstat -c` on eBPF: one /proc snapshot, then the TCP rows follow the
//! kernel's state-change events (no re-read of /proc/net/tcp*), redrawn at
//! most once per `--interval`. UDP, raw and unix sockets, which the
//! tracepoints do not cover, are re-read from /proc at each redraw.
//!
//! kernel programs -> ring buffer -> decoder -> `conn_table::ConnTable` ->
//! socket_list (netstat's table, `conn_table::TableRows`) or a changes-only diff.

use std::{fmt::Write as _, time::Duration};

use anyhow::Result;
use netstat_common::{AF_INET, AF_INET6, Event, tcp_state};

use crate::{
    clock::{TimeFormat, WallClock},
    command::Live,
    conn_table::{self as table, ConnTable, Drawn, TableRows, Which},
    decoder::Decoder,
    filter::RowFilter,
    kernel::{self, Counters, Probe},
    names::Names,
    netns,
    output::{Output, Reader},
    owners::{InodeOwners, TcpOwners},
    plan::SocketPlan,
    procnet::{self, sockets::InetSocket},
    render::{live_diff, sockets::InetProto},
    session::{Attached, Flow, Sink},
    socket_list,
};

/// Starts the live view, or returns the reason eBPF is unavailable (the
/// caller then re-polls /proc like netstat -c).
/// Runs the live view on programs attached for it (`Needs::Events`), in
/// the namespace the command names.
pub fn run(live: &Live, attached: Attached) -> Result<()> {
    crate::session::block_on(view(live, attached))
}

async fn view(live: &Live, mut attached: Attached) -> Result<()> {
    let (plan, filter) = (&live.sockets, &live.fallback.filter);
    let own_netns = netns::own()?;
    let probe = &attached.probe;
    let clock = WallClock::new();
    // One read of /proc serves both: the decoder names the owners of events
    // on these sockets, the table starts from them.
    let (sockets, inodes) = read_tcp(plan, filter)?;
    crate::session::note_unread_owners(inodes.incomplete);
    // The table takes no time in state from events, only owners: without
    // owners to show or filter on, the decoder needs no snapshot.
    let snapshot = match shows_owners(plan, filter) {
        true => TcpOwners::new(&inodes, &sockets),
        false => TcpOwners::default(),
    };
    let decoder = Decoder::new(probe.attached_ns, own_netns, snapshot);
    let mut table = start_table(sockets, &inodes, &clock)?;
    track_diff(&mut table, live.diff, plan, Vec::new);
    crate::session::give_back_freed_memory();
    let at_start = probe.counters()?;
    let interval = live.interval;
    let mut view = LiveView {
        plan,
        filter,
        own_netns,
        names: Names::new(live.fallback.numeric),
        decoder,
        table,
        clock,
        read_since_ns: 0,
        at_start,
        lost: at_start.lost,
        notice: None,
        interval,
        // UDP, raw and unix rows change without events: redraw them each interval.
        redraw_always: plan.untracked() || (plan.timers && plan.tcp),
        dirty: true,
        last_draw: tokio::time::Instant::now() - interval,
        last_sweep: tokio::time::Instant::now() - interval,
        diff: live.diff.then(live_diff::Rows::new),
        ticks_per_second: socket_list::ticks_per_second(),
        text: String::new(),
        queues_stale: false,
        screen: Screen {
            out: Output::stdout(),
            first: true,
        },
    };
    let stop = crate::stop_request::requested(live.tracing.stop_after)?;
    crate::session::run(&mut attached.probe, stop, &mut view).await
}

/// The live view: a sink of the session. Events move the table's rows; the
/// table is drawn at most every interval, and only when something changed
/// (or when rows it does not follow are shown).
struct LiveView<'a> {
    plan: &'a SocketPlan,
    filter: &'a RowFilter,
    own_netns: u32,
    names: Names,
    decoder: Decoder,
    table: ConnTable,
    clock: WallClock,
    /// Events from before the last resynchronisation's /proc read began are
    /// dropped: that read shows them already.
    read_since_ns: u64,
    at_start: Counters,
    /// Events lost so far, as of the last resynchronisation.
    lost: u64,
    notice: Option<String>,
    interval: Duration,
    redraw_always: bool,
    dirty: bool,
    last_draw: tokio::time::Instant,
    /// When the table was last swept (queues, expiry, resets), drawn or not.
    last_sweep: tokio::time::Instant,
    /// With --diff: the rows of the last drawing.
    diff: Option<live_diff::Rows>,
    ticks_per_second: u64,
    /// The text of the last drawing, its buffer reused while small.
    text: String,
    /// Too many connections to read their queues at each drawing.
    queues_stale: bool,
    screen: Screen,
}

impl LiveView<'_> {
    /// Whatever the table missed, /proc has: start again from it.
    fn resynchronise(&mut self, counters: &Counters, now: i128) -> Result<()> {
        self.lost = counters.lost;
        // Applied after this read, an event from before it would take a row
        // back to an older state.
        self.read_since_ns = kernel::monotonic_ns();
        let (sockets, inodes) = read_tcp(self.plan, self.filter)?;
        let last = std::mem::replace(&mut self.table, start_table(sockets, &inodes, &self.clock)?);
        track_diff(&mut self.table, self.diff.is_some(), self.plan, || {
            last.into_drawn()
        });
        crate::session::give_back_freed_memory();
        let mut text = format!(
            "(enetstat: {} events lost in the kernel so far; last resynchronised from /proc at {}",
            self.lost - self.at_start.lost,
            local_time(now)
        );
        let gaps = counters.gaps - self.at_start.gaps;
        if gaps > 0 {
            text += &format!("; {gaps} of them gaps in sockets' histories, see README");
        }
        text.push(')');
        self.notice = Some(text);
        self.dirty = true;
        Ok(())
    }

    /// Draws the table, or with --diff the rows that changed since the last
    /// drawing.
    fn draw(&mut self, now: i128) -> Result<Reader> {
        // Sized for the table (a netstat line is under 100 bytes without
        // -p), not grown by doubling.
        let mut out = std::mem::take(&mut self.text);
        out.clear();
        out.reserve(self.table.row_count() * 100);
        let shown = self.draw_into(&mut out, now);
        // A small drawing's buffer is kept for the next; a large one (and
        // the sort's vectors) goes back to the system rather than be held
        // between drawings as 100 bytes per row.
        if out.capacity() <= KEEP_TEXT {
            self.text = out;
        } else {
            drop(out);
            crate::session::give_back_freed_memory();
        }
        shown
    }

    fn draw_into(&mut self, out: &mut String, now: i128) -> Result<Reader> {
        if let Some(previous) = &mut self.diff {
            // A notice is said once, as it comes.
            if let Some(n) = self.notice.take() {
                out.push_str(&n);
                out.push('\n');
            }
            let time = local_time(now);
            let own = [(self.own_netns, None)];
            let (plan, filter, names) = (self.plan, self.filter, &self.names);
            table::compare_drawings(
                &mut self.table,
                (now, self.ticks_per_second),
                previous,
                &|rows| socket_list::diff_rows(plan, filter, &own, rows),
                |before, current| live_diff::changes(before, current, &time, names, out),
            )?;
            return self.screen.write(out);
        }
        let rows = TableRows {
            table: &self.table,
            now,
            ticks_per_second: self.ticks_per_second,
            which: Which::All,
        };
        if let Some(n) = &self.notice {
            out.push_str(n);
            out.push('\n');
        }
        if self.queues_stale {
            let _ = writeln!(
                out,
                "(enetstat: over {QUEUE_LOOKUPS} connections: their Recv-Q and Send-Q are as first read, 0 for newer ones; listeners' are current)"
            );
        }
        socket_list::list(
            self.plan,
            self.filter,
            &[(self.own_netns, None)],
            &self.names,
            out,
            Some(&rows),
        )?;
        self.screen.show(out, now)
    }
}

impl Sink for LiveView<'_> {
    fn reads_events(&self) -> bool {
        true
    }

    fn event(&mut self, _: &Probe, raw: &Event) -> Result<Flow> {
        // An event from before the last resynchronisation's /proc read is
        // left out (it would take a row back to an older state), except a
        // reset sent: the read may have seen the TIME_WAIT socket it hit
        // alive an instant before the reset killed it, and the reset only
        // makes the table ask the kernel about that row again.
        if raw.ts_ns >= self.read_since_ns || raw.kind == netstat_common::kind::SEND_RESET {
            self.dirty |= self.table.apply(&self.decoder.decode(raw));
        }
        Ok(Flow::Go)
    }

    fn batch_done(&mut self, probe: &Probe) -> Result<Flow> {
        if self.last_draw.elapsed() < self.interval {
            return Ok(Flow::Go);
        }
        // Idle since a sweep that found nothing to draw: the next sweep is
        // an interval later (at every batch, a large idle table cost a
        // quarter of a core), unless an event changed a row meanwhile.
        if !self.dirty && self.last_sweep.elapsed() < self.interval {
            return Ok(Flow::Go);
        }
        self.last_sweep = tokio::time::Instant::now();
        // Sweeps over the whole table, so once per drawing, not per batch.
        if self.filter.terms.states != 0 {
            // Events leave a wanted state; the kernel sends none after, so
            // such rows would linger unseen.
            let filter = &self.filter.terms;
            self.dirty |= self.table.retain(|state| filter.state_matches(state));
        }
        let now = now_ns(&self.clock);
        self.dirty |= self.table.expire(now);
        // A kernel without TCP sock_diag answers "none", as for a killed
        // socket: the reset is then taken to have killed it.
        self.dirty |= self.table.settle_resets(now, |local, remote| {
            let found = crate::sock_diag::tcp_socket(local, remote).ok()?;
            Some(found.is_some_and(|s| s.state == tcp_state::TIME_WAIT))
        });
        if self.table.has_orphans()
            && let Some(timewait) = read_states(self.plan, TIMEWAIT_STATES)
        {
            self.dirty |= self.table.update_orphans(now, &timewait);
        }
        // Queues change without events: read them from the kernel at each
        // drawing, the listeners' in one dump, the connections' one by one
        // while few (a dump of a large idle table would cost what netstat's
        // re-read does).
        self.queues_stale = self.table.connections().nth(QUEUE_LOOKUPS).is_some();
        if let Some(mut fresh) = read_listeners(self.plan) {
            if !self.queues_stale {
                let lookup = |(local, remote)| crate::sock_diag::tcp_socket(local, remote).ok()?;
                fresh.extend(self.table.connections().filter_map(lookup));
            }
            self.dirty |= self.table.refresh_queues(&fresh);
        }
        // At most once per drawing, however long the loss goes on.
        let counters = probe.counters()?;
        if counters.lost > self.lost {
            self.resynchronise(&counters, now)?;
        }
        // On a terminal In-State advances at every interval.
        if !(self.dirty || self.redraw_always || self.screen.out.is_terminal()) {
            return Ok(Flow::Go);
        }
        if self.draw(now)?.is_gone() {
            return Ok(Flow::End);
        }
        self.dirty = false;
        self.last_draw = tokio::time::Instant::now();
        Ok(Flow::Go)
    }

    fn finish(&mut self, _: &Probe, _: bool) -> Result<()> {
        Ok(())
    }
}

/// The listening TCP sockets of the plan's families, from sock_diag; None
/// where the kernel offers no TCP sock_diag (queues then stay as read).
fn read_listeners(plan: &SocketPlan) -> Option<Vec<InetSocket>> {
    read_states(plan, 1 << tcp_state::LISTEN)
}

/// The states a timewait socket can be in: an orphan's FIN_WAIT2, TIME_WAIT.
const TIMEWAIT_STATES: u32 = 1 << tcp_state::FIN_WAIT2 | 1 << tcp_state::TIME_WAIT;

/// The TCP sockets of the plan's families in the states of the bit mask
/// `states`, from one sock_diag dump each; None where the kernel offers no
/// TCP sock_diag.
fn read_states(plan: &SocketPlan, states: u32) -> Option<Vec<InetSocket>> {
    let mut all = Vec::new();
    for (wanted, family) in [(plan.ipv4, AF_INET), (plan.ipv6, AF_INET6)] {
        if wanted {
            all.extend(crate::sock_diag::tcp_sockets_in(family, states).ok()?);
        }
    }
    Some(all)
}

/// The largest drawing buffer kept between drawings (bytes).
const KEEP_TEXT: usize = 1 << 20;

/// Connections whose queues a drawing reads one by one; above this many
/// they keep the queues they were read or born with, and the view says so.
const QUEUE_LOOKUPS: usize = 512;

/// The TCP sockets of the plan's families (as the listing reads them:
/// sock_diag where the columns allow) and, where shown or filtered on,
/// the socket owners, from /proc.
fn read_tcp(plan: &SocketPlan, filter: &RowFilter) -> Result<(Vec<InetSocket>, InodeOwners)> {
    let owners = match shows_owners(plan, filter) {
        true => InodeOwners::scan(),
        false => InodeOwners::default(),
    };
    let mut sockets = Vec::new();
    for (wanted, path) in [(plan.ipv4, "/proc/net/tcp"), (plan.ipv6, "/proc/net/tcp6")] {
        if let (true, Some(rows)) = (wanted, socket_list::read_inet(plan, InetProto::Tcp, path)?) {
            sockets.extend(
                rows.into_iter()
                    .filter(|s| filter.socket_matches(s, owners.pid_of(s.inode))),
            );
        }
    }
    Ok((sockets, owners))
}

/// Whether rows' owners are shown (-p) or filtered on: only then are they
/// read (at 200,000 sockets the scan of every process's fds was most of
/// the first table's time) and kept.
fn shows_owners(plan: &SocketPlan, filter: &RowFilter) -> bool {
    plan.programs || filter.by_owner()
}

/// Drawings that are diffs of TCP rows alone, all from the table, compare
/// only the rows that changed since the last: the table keeps track, from
/// `drawn`, the rows the last drawing showed.
fn track_diff(
    table: &mut ConnTable,
    diff: bool,
    plan: &SocketPlan,
    drawn: impl FnOnce() -> Vec<Drawn>,
) {
    if table::diff_in_table(diff, plan) {
        table.track_changes(drawn());
    }
}

/// The connection table for sockets just read from /proc.
fn start_table(
    sockets: Vec<InetSocket>,
    inodes: &InodeOwners,
    clock: &WallClock,
) -> Result<ConnTable> {
    let mut table = ConnTable::from_snapshot(sockets, inodes, now_ns(clock));
    table.resets_kill_time_wait = procnet::read_optional(RFC1337)?.is_none_or(|v| v.trim() == "0");
    if let Some(seconds) = procnet::read_optional(FIN_TIMEOUT)?
        .and_then(|v| v.trim().parse::<i128>().ok())
        .filter(|s| *s > 0)
    {
        table.fin_timeout_ns = (seconds * 1_000_000_000).min(table::TIME_WAIT_NS);
    }
    Ok(table)
}

/// Per network namespace: how long an orphan waits in FIN_WAIT2 (seconds).
const FIN_TIMEOUT: &str = "/proc/sys/net/ipv4/tcp_fin_timeout";

/// Per network namespace; 0 (the default) lets a reset kill TIME_WAIT.
const RFC1337: &str = "/proc/sys/net/ipv4/tcp_rfc1337";

struct Screen {
    out: Output,
    first: bool,
}

impl Screen {
    /// Shows one table: redrawn in place on a terminal, appended after a
    /// separator line on a pipe.
    fn show(&mut self, table: &str, now: i128) -> Result<Reader> {
        let reader = if self.out.is_terminal() {
            self.out.clear_screen(VIEW)?
        } else if !self.first {
            self.out
                .write(&format!("--- {}\n", local_time(now)), VIEW)?
        } else {
            Reader::Reading
        };
        reader.then(|| self.write(table))
    }

    fn write(&mut self, text: &str) -> Result<Reader> {
        self.first = false;
        self.out.write_whole(text, VIEW)
    }
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
