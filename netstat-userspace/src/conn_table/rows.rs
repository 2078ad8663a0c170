//! The connection table's TCP rows as the socket listing takes them, with their
//! time in the current state.

use anyhow::Result;

use crate::{
    conn_table::{Changed, ConnTable, Entry},
    plan::SocketPlan,
    procnet::sockets::InetSocket,
    render::{
        live_diff,
        sockets::{InetProto, InetRow},
    },
    socket_list::{TcpRows, shown},
};

/// The table at wall-clock time `now` (ns).
pub struct TableRows<'a> {
    pub table: &'a ConnTable,
    pub now: i128,
    /// The unit of /proc's TCP timers, for TIME_WAIT rows' -o column.
    pub ticks_per_second: u64,
    pub which: Which<'a>,
}

/// Which rows: the table's, or of what changed (`ConnTable::take_changed`)
/// as they are now or as the last drawing showed them.
#[derive(Clone, Copy)]
pub enum Which<'a> {
    All,
    Now(&'a Changed),
    Before(&'a Changed),
}

impl TcpRows for TableRows<'_> {
    fn visit(
        &self,
        plan: &SocketPlan,
        wanted: &dyn Fn(&InetSocket, Option<u32>) -> bool,
        visit: &mut dyn FnMut(&InetRow),
    ) {
        let now = self.now;
        let entries = match self.which {
            Which::All | Which::Now(Changed::Whole(_)) => self.table.entries(),
            Which::Now(Changed::Some(by)) => self.table.entries_of(by.keys()),
            Which::Before(changed) => changed.before(),
        };
        for entry in entries {
            let (socket, owner, entered);
            let time_wait_socket;
            match entry {
                Entry::Row(row) => {
                    (socket, owner, entered) = (&row.socket, row.shown_owner(), row.entered)
                }
                Entry::TimeWait(packed, tw) => {
                    let (local, remote) = packed.tuple();
                    // The timewait timer counts down to the kernel's end of it.
                    let left = tw.left(now).max(0);
                    time_wait_socket = InetSocket {
                        timer: 3,
                        timer_ticks: (left * i128::from(self.ticks_per_second) / 1_000_000_000)
                            as u64,
                        ..InetSocket::from_endpoints(local, remote, tw.state().0)
                    };
                    (socket, owner, entered) =
                        (&time_wait_socket, None, self.table.time_wait_entered(tw));
                }
            }
            let family = if socket.local.is_ipv6() {
                plan.ipv6
            } else {
                plan.ipv4
            };
            if !family
                || !shown(plan, InetProto::Tcp, socket)
                || !wanted(socket, owner.map(|o| o.pid))
            {
                continue;
            }
            visit(&InetRow {
                proto: InetProto::Tcp,
                socket,
                owner,
                in_state: Some(entered.age_at(now)),
                netns: None,
            });
        }
    }
}

/// Whether a `-c --diff` view of `plan` compares only what changed: its
/// rows are TCP alone, all from the table, which then keeps its changes
/// (`ConnTable::track_changes`); else `compare_drawings` compares whole
/// drawings.
pub fn diff_in_table(diff: bool, plan: &SocketPlan) -> bool {
    diff && !plan.untracked()
}

/// The two drawings a `-c --diff` drawing tells apart, as `collect` gathers
/// each from TCP rows, handed to `compare` (last, current). Where the table
/// keeps its changes, only the rows that changed; else all of them, the
/// last drawing's from `previous`, which keeps the current one.
pub fn compare_drawings(
    table: &mut ConnTable,
    (now, ticks_per_second): (i128, u64),
    previous: &mut live_diff::Rows,
    collect: &dyn Fn(&dyn TcpRows) -> Result<live_diff::Rows>,
    compare: impl FnOnce(&live_diff::Rows, &live_diff::Rows),
) -> Result<()> {
    let changed = table.take_changed();
    let rows = |which| TableRows {
        table,
        now,
        ticks_per_second,
        which,
    };
    match &changed {
        Some(changed) => {
            let before = collect(&rows(Which::Before(changed)))?;
            compare(&before, &collect(&rows(Which::Now(changed)))?);
        }
        None => {
            let current = collect(&rows(Which::All))?;
            compare(previous, &current);
            *previous = current;
        }
    }
    Ok(())
}
