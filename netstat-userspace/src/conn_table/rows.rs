//! The connection table's TCP rows as the socket listing takes them, with their
//! time in the current state.

use foldhash::HashSet;

use crate::{
    conn_table::{ConnTable, Entry, Packed},
    plan::SocketPlan,
    procnet::sockets::InetSocket,
    render::sockets::{InetProto, InetRow},
    socket_list::{TcpRows, shown},
};

/// The table at wall-clock time `now` (ns).
pub struct TableRows<'a> {
    pub table: &'a ConnTable,
    pub now: i128,
    /// The unit of /proc's TCP timers, for TIME_WAIT rows' -o column.
    pub ticks_per_second: u64,
    /// Only the rows with these endpoints (`ConnTable::take_changed`).
    pub only: Option<&'a HashSet<Packed>>,
}

impl TcpRows for TableRows<'_> {
    fn visit(
        &self,
        plan: &SocketPlan,
        wanted: &dyn Fn(&InetSocket, Option<u32>) -> bool,
        visit: &mut dyn FnMut(&InetRow),
    ) {
        let now = self.now;
        let entries = match self.only {
            Some(endpoints) => self.table.entries_of(endpoints),
            None => self.table.entries(),
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
