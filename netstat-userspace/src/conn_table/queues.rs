//! Queues change without events: a drawing sets them, and whether a file
//! holds a connection (its inode), from a fresh read of the kernel's sockets.

use std::net::SocketAddr;

use foldhash::HashMap;

use super::{ConnTable, Packed, Row, Tuple};
use crate::{procnet::sockets::InetSocket, tcp_state::TcpState};

impl ConnTable {
    /// Sets the queues of listeners (accept queue and its limit) and of
    /// connections, and connections' inodes (whether a file holds them),
    /// from a fresh read of the kernel's sockets (`sockets`, as sock_diag
    /// gives them); returns whether any row changed. TIME_WAIT and SYN_RECV
    /// rows have no queues to refresh.
    pub fn refresh_queues(&mut self, sockets: &[InetSocket]) -> bool {
        let mut listeners: HashMap<SocketAddr, Vec<(u64, u64)>> = HashMap::default();
        let mut connections: HashMap<Tuple, (u64, u64)> = HashMap::default();
        let mut inodes: HashMap<Tuple, u64> = HashMap::default();
        for s in sockets {
            let queues = (s.rx_queue, s.tx_queue);
            if s.state == TcpState::LISTEN.0 {
                listeners.entry(s.local).or_default().push(queues);
            } else {
                connections.insert((s.local, s.remote), queues);
                inodes.insert((s.local, s.remote), s.inode);
            }
        }
        // Whether a file holds a row decides whether its owner shows: a
        // row whose inode changes is kept as drawn first.
        let new_inode = |row: &Row| {
            let s = &row.socket;
            let inode = inodes.get(&(s.local, s.remote)).copied();
            inode.filter(|&inode| s.inode != inode || !row.inode_read)
        };
        // An idle sweep reads listeners only: it must not walk every row.
        if !inodes.is_empty() {
            let reowned: Vec<Packed> = self
                .rows
                .values()
                .filter(|row| new_inode(row).is_some())
                .map(|row| Packed::new(&(row.socket.local, row.socket.remote)))
                .collect();
            for packed in reowned {
                self.touch(packed);
            }
        }
        let mut refresh = |row: &mut Row| {
            let inode = new_inode(row);
            let s = &mut row.socket;
            let fresh = if s.state == TcpState::LISTEN.0 {
                // Listeners sharing an address (SO_REUSEPORT) take theirs in turn.
                listeners.get_mut(&s.local).and_then(Vec::pop)
            } else if s.state == TcpState::SYN_RECV.0 {
                None
            } else {
                connections.get(&(s.local, s.remote)).copied()
            };
            let mut changed = false;
            if let Some(queues) = fresh {
                changed |= (s.rx_queue, s.tx_queue) != queues;
                (s.rx_queue, s.tx_queue) = queues;
            }
            if let Some(inode) = inode {
                (s.inode, row.inode_read) = (inode, true);
                changed = true;
            }
            changed
        };
        let mut changed = false;
        if connections.is_empty() {
            for key in &self.listening {
                changed |= self.rows.get_mut(*key).is_some_and(&mut refresh);
            }
        } else {
            for row in self.rows.values_mut() {
                changed |= refresh(row);
            }
        }
        changed
    }

    /// The endpoints of the rows with queues to refresh: not listeners (one
    /// dump reads those), not SYN_RECV children, not TIME_WAIT.
    pub fn connections(&self) -> impl Iterator<Item = Tuple> + '_ {
        let no_queue = [TcpState::LISTEN.0, TcpState::SYN_RECV.0];
        self.rows
            .values()
            .filter(move |r| !no_queue.contains(&r.socket.state))
            .map(|r| (r.socket.local, r.socket.remote))
    }
}
