//! The live table's TCP rows as netstat's socket listing shows them, with
//! the extra `In-State` column.

use crate::{
    live::table::{ConnTable, Since},
    plan::Sockets,
    procnet::sockets::InetSocket,
    render::sockets::{InetProto, SocketTable},
    socket_list::{TcpRows, shown},
    tcp_state::TcpState,
};

/// The table at wall-clock time `now` (ns).
pub struct LiveRows<'a> {
    pub table: &'a ConnTable,
    pub now: i128,
}

impl TcpRows for LiveRows<'_> {
    fn write(
        &self,
        plan: &Sockets,
        table: &SocketTable,
        out: &mut String,
        wanted: &dyn Fn(&InetSocket, Option<u32>) -> bool,
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
                s.timer_ticks = (left * i128::from(table.ticks_per_second) / 1_000_000_000) as u64;
            }
            let age = match row.since {
                Since::Exact(t) => format!("{:.1}s", (now - t).max(0) as f64 / 1e9),
                Since::Before(t) => format!(">{:.1}s", (now - t).max(0) as f64 / 1e9),
            };
            table.inet_row_owned(out, InetProto::Tcp, &s, row.owner.as_ref(), Some(&age));
        }
    }
}
