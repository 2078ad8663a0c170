//! The TCP connection table of the live view and of `--replay`: loaded
//! from one snapshot of the sockets, then kept equal to the kernel's by
//! applying state-change events.
//!
//! A storm leaves most rows in TIME_WAIT, and the kernel's timewait socket
//! has no owner, queues or inode: those rows are kept apart, as packed
//! endpoints and the time the kernel frees them: a fraction of a full
//! row's memory (the live bench measures bytes per row).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

mod changes;
mod order;
mod queues;
mod rows;
mod slab;

pub use changes::{Changed, Drawn};
pub use order::Entry;
pub use rows::{TableRows, Which, compare_drawings, diff_in_table};
use slab::{ByTuple, Key, Slab};

use foldhash::{HashMap, HashSet};

use crate::{
    decoder::{EventKind, NetEvent, StateEntered},
    log_file::GroupRow,
    owners::{InodeOwners, Owner},
    procnet::sockets::InetSocket,
    tcp_state::TcpState,
};

/// How long the kernel keeps a socket in TIME_WAIT (TCP_TIMEWAIT_LEN), and
/// at most an orphan in FIN_WAIT2 (the namespace's tcp_fin_timeout).
pub const TIME_WAIT_NS: i128 = 60_000_000_000;

#[derive(Debug, Clone)]
pub struct Row {
    /// As /proc shows it; for sockets born after the snapshot, the queue,
    /// uid and inode fields are zero (events do not carry them).
    pub socket: InetSocket,
    pub owner: Option<Owner>,
    pub entered: StateEntered,
    /// The event stream's id for the socket; None for snapshot rows not yet
    /// seen in an event, and for TIME_WAIT rows (the kernel freed the socket
    /// and keeps a separate timewait object).
    id: Option<u64>,
    /// `socket.inode` is the kernel's (read from /proc or sock_diag), not a
    /// born row's placeholder 0.
    inode_read: bool,
}

impl Row {
    /// The owner as netstat shows it: none for a socket no file holds
    /// (inode 0: a child not yet accepted, a socket closed by its
    /// process), whoever the kernel side last saw act on it.
    pub fn shown_owner(&self) -> Option<&Owner> {
        match self.inode_read && self.socket.inode == 0 {
            true => None,
            false => self.owner.as_ref(),
        }
    }
}

type Tuple = (SocketAddr, SocketAddr);

/// A TIME_WAIT row's endpoints, packed: family flag, then each address as
/// 16 bytes (IPv4 ones mapped) and its port, big-endian, so that the bytes
/// sort as the rows are shown (IPv4 first, then by endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Packed([u8; 37]);

impl Packed {
    fn new((local, remote): &Tuple) -> Self {
        let mut b = [0u8; 37];
        b[0] = u8::from(local.is_ipv6());
        for (at, addr) in [(1, local), (19, remote)] {
            let ip = match addr.ip() {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            b[at..at + 16].copy_from_slice(&ip.octets());
            b[at + 16..at + 18].copy_from_slice(&addr.port().to_be_bytes());
        }
        Self(b)
    }

    pub fn tuple(&self) -> Tuple {
        let b = &self.0;
        let addr = |at: usize| {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&b[at..at + 16]).unwrap_or_default());
            let port = u16::from_be_bytes([b[at + 16], b[at + 17]]);
            match (b[0], ip.to_ipv4_mapped()) {
                (0, Some(v4)) => SocketAddr::new(IpAddr::V4(v4), port),
                _ => SocketAddr::new(IpAddr::V6(ip), port),
            }
        };
        (addr(1), addr(19))
    }
}

/// A row of the kernel's timewait socket: when the kernel lets it go (wall
/// ns), when it entered its state (0: before the snapshot, and shown as in
/// the state at least since then), and its state: TIME_WAIT, or FIN_WAIT2
/// for an orphan whose peer has not sent its FIN yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWait {
    ends_ns: i64,
    entered_ns: i64,
    state: u8,
}

impl TimeWait {
    /// Nanoseconds left before the kernel frees it.
    pub fn left(&self, now_ns: i128) -> i128 {
        i128::from(self.ends_ns) - now_ns
    }

    pub fn state(&self) -> TcpState {
        TcpState(self.state)
    }
}

/// Whether /proc or sock_diag shows `s` as a timewait socket (timer 3, the
/// timewait timer), whose state is TIME_WAIT or an orphan's FIN_WAIT2.
fn is_timewait_socket(s: &InetSocket) -> bool {
    s.state == TcpState::TIME_WAIT.0 || (s.state == TcpState::FIN_WAIT2.0 && s.timer == 3)
}

#[derive(Default)]
pub struct ConnTable {
    rows: Slab,
    by_id: HashMap<u64, Key>,
    /// Rows without an event id (snapshot rows not yet seen in an event, and
    /// TIME_WAIT rows) by (local, remote): the rows an event can only find by
    /// endpoints. Listeners sharing a port (SO_REUSEPORT) share an entry.
    by_tuple: ByTuple,
    /// Keys of the LISTEN rows: a sweep that has only listeners' queues to
    /// refresh touches these, not a large idle table.
    listening: HashSet<Key>,
    time_wait: HashMap<Packed, TimeWait>,
    /// Sockets in LAST_ACK (their FIN sent) by endpoints: an orphan of this
    /// host at the other end whose event comes after takes that FIN.
    fin_sent: HashSet<Packed>,
    /// A reset that reaches a TIME_WAIT socket kills it unless RFC 1337
    /// protection is on (sysctl net.ipv4.tcp_rfc1337).
    pub resets_kill_time_wait: bool,
    /// TIME_WAIT rows a reset was sent to, and when: the kernel kills one
    /// only if the reset's sequence number is in its window (a reset
    /// answering a stale packet is not), which no event says.
    doubted: Vec<(Packed, i128)>,
    /// When the snapshot the table started from was read.
    snapshot_ns: i128,
    /// How long an orphan stays in FIN_WAIT2 without its peer's FIN
    /// (sysctl net.ipv4.tcp_fin_timeout, at most `TIME_WAIT_NS`).
    pub fin_timeout_ns: i128,
    /// What changed since the last drawing, where kept (`track_changes`).
    changes: Option<changes::Changes>,
}

/// How long after a reset a TIME_WAIT row it was sent to is looked up: the
/// reset reaches a socket of this host within the softirq that sent it.
pub const RESET_SETTLE_NS: i128 = 20_000_000;

impl ConnTable {
    /// A table holding the TCP sockets of a /proc snapshot taken at `now_ns`.
    pub fn from_snapshot(sockets: Vec<InetSocket>, owners: &InodeOwners, now_ns: i128) -> Self {
        let rows = sockets.into_iter().map(|socket| {
            let owner = owners.by_inode.get(&socket.inode).cloned();
            (socket, owner)
        });
        Self::from_rows(rows, true, now_ns)
    }

    /// A table holding the sockets of a log's snapshot or resync group,
    /// read at `now_ns`, with the owners the log gives them.
    pub fn from_log(rows: Vec<GroupRow>, now_ns: i128) -> Self {
        let rows = rows.into_iter().map(|row| (row.socket, row.owner));
        Self::from_rows(rows, false, now_ns)
    }

    /// `inode_read`: the sockets' inodes are the kernel's (a /proc read),
    /// so inode 0 means no file holds the socket.
    fn from_rows(
        sockets: impl Iterator<Item = (InetSocket, Option<Owner>)>,
        inode_read: bool,
        now_ns: i128,
    ) -> Self {
        let mut table = Self {
            snapshot_ns: now_ns,
            fin_timeout_ns: TIME_WAIT_NS,
            ..Self::default()
        };
        // Sized once: a 200,000-row snapshot otherwise rehashes its way up.
        let (size, _) = sockets.size_hint();
        table.rows.reserve(size);
        table.by_tuple.reserve(size, &table.rows);
        for (socket, owner) in sockets {
            if is_timewait_socket(&socket) {
                // /proc's timer is in clock ticks (USER_HZ, 100 on Linux).
                let left = i128::from(socket.timer_ticks) * 10_000_000;
                table.time_wait.insert(
                    Packed::new(&(socket.local, socket.remote)),
                    TimeWait {
                        ends_ns: (now_ns + left) as i64,
                        entered_ns: 0,
                        state: socket.state,
                    },
                );
                continue;
            }
            table.insert(Row {
                socket,
                owner,
                entered: StateEntered::Bound(now_ns),
                id: None,
                inode_read,
            });
        }
        table
    }

    fn insert(&mut self, row: Row) {
        let (id, listening) = (row.id, row.socket.state == TcpState::LISTEN.0);
        self.touch(Packed::new(&(row.socket.local, row.socket.remote)));
        let key = self.rows.insert(row);
        match id {
            Some(id) => {
                self.by_id.insert(id, key);
            }
            None => self.by_tuple.insert(key, &self.rows),
        }
        if listening {
            self.listening.insert(key);
        }
        self.index_row(key);
    }

    fn remove(&mut self, key: Key) -> Option<Row> {
        let row = self.rows.get(key)?;
        let tuple = (row.socket.local, row.socket.remote);
        self.touch(Packed::new(&tuple));
        self.unindex_row(key, &tuple);
        let row = self.rows.remove(key)?;
        self.listening.remove(&key);
        match row.id {
            Some(id) => {
                self.by_id.remove(&id);
            }
            None => self
                .by_tuple
                .remove(key, &(row.socket.local, row.socket.remote)),
        }
        Some(row)
    }

    /// An id-less row with these endpoints.
    fn find_by_tuple(&self, tuple: &Tuple) -> Option<Key> {
        self.by_tuple.find(tuple, &self.rows)
    }

    /// Applies one event; returns whether the table changed.
    pub fn apply(&mut self, ev: &NetEvent) -> bool {
        let (old, new) = match ev.kind {
            EventKind::State { old, new } => (old, new),
            EventKind::ResetSent if self.resets_kill_time_wait => {
                self.doubt_time_wait(ev);
                return false;
            }
            _ => return false,
        };
        let tuple = (ev.local, ev.remote);
        // The row for this socket: by event id, else a snapshot row with the
        // same endpoints. A listener's new child starts out with the
        // listener's endpoints (LISTEN -> SYN_RECV) but is a new row.
        let child = old == TcpState::LISTEN && new != TcpState::CLOSE;
        let key = self
            .by_id
            .get(&ev.socket)
            .copied()
            .or_else(|| (!child).then(|| self.find_by_tuple(&tuple)).flatten());
        if old == TcpState::LAST_ACK {
            self.fin_sent.remove(&Packed::new(&tuple));
        }
        if new == TcpState::CLOSE {
            return key.and_then(|k| self.remove(k)).is_some();
        }
        let old_row = key.and_then(|k| self.remove(k));
        let entered_ns = match old_row.as_ref().map(|r| r.entered) {
            // An orphan handed to a timewait socket stays in FIN_WAIT2.
            Some(StateEntered::Exact(at)) if ev.peer_fin_pending => at as i64,
            Some(_) if ev.peer_fin_pending => 0,
            _ => ev.wall_ns as i64,
        };
        let mut row = old_row.unwrap_or(Row {
            socket: InetSocket::from_endpoints(ev.local, ev.remote, new.0),
            owner: None,
            entered: StateEntered::Exact(ev.wall_ns),
            id: None,
            inode_read: false,
        });
        // Only one connection has a given pair of endpoints: an id-less row
        // with this socket's endpoints is gone. It is a TIME_WAIT the kernel
        // killed for the new connection (a connect learns its port only after
        // SYN_SENT, a child its peer only after SYN_RECV), or, after a
        // resynchronisation, this very socket as the snapshot saw it.
        // Listeners and children in their first state share endpoints
        // with other listeners legitimately.
        if !child && new != TcpState::LISTEN {
            while let Some(stale) = self.find_by_tuple(&tuple) {
                self.remove(stale);
            }
            let packed = Packed::new(&tuple);
            if self.time_wait.contains_key(&packed) {
                self.touch(packed);
                self.time_wait.remove(&packed);
            }
        }
        if new == TcpState::LAST_ACK {
            self.fin_sent.insert(Packed::new(&tuple));
            self.peer_fin_sent(ev);
        }
        if new == TcpState::TIME_WAIT || ev.peer_fin_pending {
            self.enter_time_wait(ev, new, entered_ns);
            return true;
        }
        row.socket.state = new.0;
        // Endpoints are filled in as a socket binds and connects.
        row.socket.local = ev.local;
        row.socket.remote = ev.remote;
        row.socket.retransmits = u64::from(ev.retransmits);
        row.entered = StateEntered::Exact(ev.wall_ns);
        if ev.owner.is_some() {
            row.owner = ev.owner.clone();
        }
        row.id = Some(ev.socket);
        self.insert(row);
        true
    }

    /// A socket of this host sent its FIN (into LAST_ACK): an orphan of
    /// this host at the other end, waiting in FIN_WAIT2, gets it and enters
    /// TIME_WAIT, which no tracepoint reports.
    fn peer_fin_sent(&mut self, ev: &NetEvent) {
        let peer = Packed::new(&(ev.remote, ev.local));
        if self
            .time_wait
            .get(&peer)
            .is_some_and(|tw| tw.state == TcpState::FIN_WAIT2.0)
        {
            self.touch(peer);
            self.time_wait.insert(
                peer,
                TimeWait {
                    ends_ns: (ev.wall_ns + TIME_WAIT_NS) as i64,
                    entered_ns: ev.wall_ns as i64,
                    state: TcpState::TIME_WAIT.0,
                },
            );
        }
    }

    /// A reset sent to a TIME_WAIT socket of this host: the timewait socket
    /// may go without a state change the tracepoint would report.
    fn doubt_time_wait(&mut self, ev: &NetEvent) {
        let hit = Packed::new(&(ev.remote, ev.local));
        if self.time_wait.contains_key(&hit) {
            self.doubted.push((hit, ev.wall_ns));
        }
    }

    /// The kernel's timewait object for `ev`'s socket (no owner, queues or
    /// inode), in TIME_WAIT or, for an orphan, in FIN_WAIT2 (`new`).
    fn enter_time_wait(&mut self, ev: &NetEvent, new: TcpState, entered_ns: i64) {
        // Its peer on this host has sent its FIN already: the orphan takes
        // it at once, into TIME_WAIT.
        let fin_came =
            ev.peer_fin_pending && self.fin_sent.contains(&Packed::new(&(ev.remote, ev.local)));
        let entry = match (ev.peer_fin_pending, fin_came) {
            (true, false) => TimeWait {
                ends_ns: (ev.wall_ns + self.fin_timeout_ns) as i64,
                entered_ns,
                state: new.0,
            },
            (_, true) => TimeWait {
                ends_ns: (ev.wall_ns + TIME_WAIT_NS) as i64,
                entered_ns: ev.wall_ns as i64,
                state: TcpState::TIME_WAIT.0,
            },
            (false, false) => TimeWait {
                ends_ns: (ev.wall_ns + TIME_WAIT_NS) as i64,
                entered_ns,
                state: new.0,
            },
        };
        let packed = Packed::new(&(ev.local, ev.remote));
        self.touch(packed);
        self.time_wait.insert(packed, entry);
    }

    /// Settles the TIME_WAIT rows resets were sent to at least
    /// `RESET_SETTLE_NS` before `now_ns`: `kernel_has(local, remote)` says
    /// whether the kernel still holds that timewait socket (None: it cannot
    /// tell, and the reset is taken to have killed it). Returns whether any
    /// row went.
    pub fn settle_resets(
        &mut self,
        now_ns: i128,
        kernel_has: impl Fn(SocketAddr, SocketAddr) -> Option<bool>,
    ) -> bool {
        // Resets are doubted in the order they were sent: none due, nothing to do
        // (a replay asks at every record).
        if self
            .doubted
            .first()
            .is_none_or(|(_, sent)| now_ns - sent < RESET_SETTLE_NS)
        {
            return false;
        }
        let (due, later) = std::mem::take(&mut self.doubted)
            .into_iter()
            .partition(|(_, sent)| now_ns - sent >= RESET_SETTLE_NS);
        self.doubted = later;
        let mut changed = false;
        for (packed, _) in due {
            let (local, remote) = packed.tuple();
            if self.time_wait.contains_key(&packed) && kernel_has(local, remote) != Some(true) {
                self.touch(packed);
                self.time_wait.remove(&packed);
                changed = true;
            }
        }
        changed
    }

    /// Keeps only rows whose state satisfies `wanted`; returns whether any went.
    pub fn retain(&mut self, wanted: impl Fn(u8) -> bool) -> bool {
        let time_wait = self.retain_time_wait(|_, tw| wanted(tw.state));
        self.remove_where(|r| !wanted(r.socket.state)) || time_wait
    }

    /// Drops timewait rows the kernel has let go (60 s after entry into
    /// TIME_WAIT); returns whether any went.
    pub fn expire(&mut self, now_ns: i128) -> bool {
        self.retain_time_wait(|_, tw| tw.left(now_ns) > 0)
    }

    /// Keeps the timewait rows `keep` says to (it may change them too);
    /// returns whether any went or changed.
    fn retain_time_wait(&mut self, mut keep: impl FnMut(&Packed, &mut TimeWait) -> bool) -> bool {
        // Decided first, applied after each row is kept as it was drawn.
        let mut changed = Vec::new();
        for (packed, tw) in &self.time_wait {
            let mut after = *tw;
            let kept = keep(packed, &mut after);
            if !kept || after != *tw {
                changed.push((*packed, kept.then_some(after)));
            }
        }
        let any = !changed.is_empty();
        for (packed, after) in changed {
            self.touch(packed);
            match after {
                Some(tw) => self.time_wait.insert(packed, tw),
                None => self.time_wait.remove(&packed),
            };
        }
        any
    }

    /// Whether any row is an orphan in FIN_WAIT2: one the peer's FIN moves
    /// to TIME_WAIT, and a reset or its end frees, without an event.
    pub fn has_orphans(&self) -> bool {
        self.time_wait
            .values()
            .any(|tw| tw.state == TcpState::FIN_WAIT2.0)
    }

    /// Brings the orphans in FIN_WAIT2 up to date from `timewait`, the
    /// kernel's timewait sockets in FIN_WAIT2 and TIME_WAIT as sock_diag
    /// just listed them (and whatever else it listed). Returns whether any
    /// row changed.
    pub fn update_orphans(&mut self, now_ns: i128, timewait: &[InetSocket]) -> bool {
        let kernel: HashMap<Packed, &InetSocket> = timewait
            .iter()
            .map(|s| (Packed::new(&(s.local, s.remote)), s))
            .collect();
        self.retain_time_wait(|packed, tw| {
            if tw.state != TcpState::FIN_WAIT2.0 {
                return true;
            }
            match kernel.get(packed) {
                Some(s) if is_timewait_socket(s) => {
                    if s.state == TcpState::TIME_WAIT.0 {
                        // The kernel armed the timer for TIME_WAIT_NS as
                        // the peer's FIN came: that is when it entered.
                        let ends = now_ns + i128::from(s.timer_ticks) * 10_000_000;
                        *tw = TimeWait {
                            ends_ns: ends as i64,
                            entered_ns: (ends - TIME_WAIT_NS) as i64,
                            state: s.state,
                        };
                    }
                    true
                }
                // Gone (a reset, or its end), or a new connection has the
                // endpoints (its events bring its row).
                _ => false,
            }
        })
    }

    fn remove_where(&mut self, gone: impl Fn(&Row) -> bool) -> bool {
        let keys: Vec<Key> = self
            .rows
            .iter()
            .filter(|(_, r)| gone(r))
            .map(|(k, _)| k)
            .collect();
        for key in &keys {
            self.remove(*key);
        }
        !keys.is_empty()
    }

    /// How many rows there are.
    pub fn row_count(&self) -> usize {
        self.rows.len() + self.time_wait.len()
    }

    /// Since when a timewait row is in its state.
    pub fn time_wait_entered(&self, tw: &TimeWait) -> StateEntered {
        match tw.entered_ns {
            0 => StateEntered::Bound(self.snapshot_ns),
            at => StateEntered::Exact(i128::from(at)),
        }
    }
}

#[cfg(test)]
mod tests;
