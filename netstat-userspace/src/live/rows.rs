//! The live table's TCP rows as the socket listing takes them, with their
//! time in the current state.

use crate::{
    decoder::StateAge,
    live::table::{ConnTable, Since},
    plan::Sockets,
    procnet::sockets::InetSocket,
    render::sockets::{InetProto, InetRow},
    socket_list::{TcpRows, shown},
    tcp_state::TcpState,
};

/// The table at wall-clock time `now` (ns).
pub struct LiveRows<'a> {
    pub table: &'a ConnTable,
    pub now: i128,
    /// The unit of /proc's TCP timers, for TIME_WAIT rows' -o column.
    pub ticks_per_second: u64,
}

impl TcpRows for LiveRows<'_> {
    fn visit(
        &self,
        plan: &Sockets,
        wanted: &dyn Fn(&InetSocket, Option<u32>) -> bool,
        visit: &mut dyn FnMut(&InetRow),
    ) {
        let now = self.now;
        for row in self.table.rows() {
            let s = &row.socket;
            let family = if s.local.is_ipv6() {
                plan.ipv6
            } else {
                plan.ipv4
            };
            let owner = row.owner.as_ref().map(|o| o.pid);
            if !family || !shown(plan, InetProto::Tcp, s) || !wanted(s, owner) {
                continue;
            }
            let mut s = s.clone();
            if s.state == TcpState::TIME_WAIT.0 {
                // The timewait timer counts down from the entry into TIME_WAIT.
                s.timer = 3;
                let left = ConnTable::time_wait_left(row, now).max(0);
                s.timer_ticks = (left * i128::from(self.ticks_per_second) / 1_000_000_000) as u64;
            }
            let in_state = match row.since {
                Since::Exact(t) => StateAge::Exact((now - t).max(0) as u64),
                Since::Before(t) => StateAge::AtLeast((now - t).max(0) as u64),
            };
            visit(&InetRow {
                proto: InetProto::Tcp,
                socket: &s,
                owner: row.owner.as_ref(),
                in_state: Some(in_state),
                netns: None,
            });
        }
    }
}
