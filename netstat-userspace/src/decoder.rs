//! Raw kernel records -> connection events in netstat's terms.
//!
//! This is where kernel facts become meaning: addresses become socket
//! addresses, monotonic stamps become wall-clock time, an unknown owner is
//! looked up in the start-up snapshot, and a FIN_WAIT2/CLOSING -> CLOSE
//! transition without a reset becomes the TIME_WAIT entry the tracepoint
//! never reports (`netstat_common::effective_new_state`, which the kernel's
//! summary counts use too).

use std::{
    cell::RefCell,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    rc::Rc,
};

use foldhash::HashMap;
use netstat_common::{AF_INET6, Event, LossMark, failure, flags, kind};

use crate::{
    cgroups::CgroupNames,
    clock::WallClock,
    owners::{Owner, TcpOwners},
    tcp_state::TcpState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The socket moved from `old` to `new`.
    State {
        old: TcpState,
        new: TcpState,
    },
    Retransmit,
    RetransmitSynack,
    ResetSent,
    ResetReceived,
    /// The kernel dropped a TCP packet of the connection (`-E --drops`).
    Drop,
}

impl EventKind {
    /// Stable name used in JSON (`event`) and in filters.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::State { .. } => "state",
            EventKind::Retransmit => "retransmit",
            EventKind::RetransmitSynack => "retransmit_synack",
            EventKind::ResetSent => "send_reset",
            EventKind::ResetReceived => "receive_reset",
            EventKind::Drop => "drop",
        }
    }
}

/// How a connection failed, on its change to CLOSE: a value of
/// `netstat_common::failure`, never `NONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure(u8);

impl Failure {
    /// The verdict of a raw `failure` value; None for none or an unknown one.
    pub fn of(value: u8) -> Option<Self> {
        (value != failure::NONE && usize::from(value) < failure::NAMES.len()).then_some(Self(value))
    }

    pub fn name(self) -> &'static str {
        failure::NAMES[usize::from(self.0)]
    }
}

/// A connection's totals, reported as it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseTotals {
    /// Since connect or accept; None for connections older than the tool.
    pub lifetime_ns: Option<u64>,
    /// Bytes the peer acknowledged and bytes received in order, as the
    /// kernel counts them for `ss -i` (bytes_acked, bytes_received).
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// Smoothed round-trip time (ns; None: the kernel never sampled one)
    /// and every retransmission, as the kernel counts them for `ss -i`
    /// (rtt, retrans).
    pub srtt_ns: Option<u64>,
    pub total_retransmits: u32,
}

/// A time the tool saw (`Exact`), or one it knows only as a bound because
/// the socket was already in its state when the tool started (`Bound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing<T> {
    Exact(T),
    Bound(T),
}

/// How long a socket spent in a state (ns); `Bound`: at least this long.
pub type StateAge = Timing<u64>;

/// When a socket entered its state (wall-clock ns); `Bound`: at or before then.
pub type StateEntered = Timing<i128>;

impl StateEntered {
    /// The socket's age in its state at wall-clock time `now_ns`.
    pub fn age_at(self, now_ns: i128) -> StateAge {
        match self {
            Timing::Exact(t) => Timing::Exact((now_ns - t).max(0) as u64),
            Timing::Bound(t) => Timing::Bound((now_ns - t).max(0) as u64),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetEvent {
    /// Nanoseconds since the Unix epoch.
    pub wall_ns: i128,
    pub kind: EventKind,
    /// The state the event left the socket in (for state changes, `new`).
    pub state: TcpState,
    pub ipv6: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub owner: Option<Owner>,
    /// The owner's cgroup v2 path, where the owner is known.
    pub cgroup: Option<Rc<str>>,
    /// For state changes: time in the old state.
    pub age: Option<StateAge>,
    /// For state changes: the kernel side never saw the socket enter its
    /// old state (a gap in its history; README, Known limits).
    pub after_gap: bool,
    /// For FIN_WAIT2 -> FIN_WAIT2: the application has closed, the peer has
    /// not sent its FIN, and the kernel now holds the connection as a
    /// timewait socket in FIN_WAIT2 (an orphan, as `ss` shows it).
    pub peer_fin_pending: bool,
    /// The peer opened the connection, as far as the kernel side saw
    /// (`netstat_common::flags::INBOUND`).
    pub inbound: bool,
    pub retransmits: u32,
    pub failure: Option<Failure>,
    /// For a reset sent: the kernel's reason for it, where it gives one.
    pub reset_reason: Option<&'static str>,
    /// For a drop: the kernel's reason for it.
    pub drop_reason: Option<&'static str>,
    /// For changes to CLOSE and TIME_WAIT: the connection's totals.
    pub totals: Option<CloseTotals>,
    pub netns: u32,
    /// Opaque socket id, stable for the socket's life within one run: the
    /// kernel address scrambled with a per-run secret, so logs do not print
    /// kernel pointers.
    pub socket: u64,
}

/// Events lost in the kernel (the ring was full) just before this point of
/// the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    /// Nanoseconds since the Unix epoch.
    pub wall_ns: i128,
    pub count: u64,
}

pub struct Decoder {
    clock: WallClock,
    attached_ns: u64,
    own_netns: u32,
    snapshot: TcpOwners,
    /// Secret for socket ids; see `NetEvent::socket`.
    socket_key: u64,
    /// Owners by (pid, comm): events repeat a few owners many times.
    owners: RefCell<HashMap<OwnerKey, Owner>>,
    /// The last owner looked up: a storm's events come from one owner in
    /// long runs, and hashing the key was a tenth of -E's CPU.
    last_owner: RefCell<Option<(OwnerKey, Owner)>>,
    /// The kernel's reset and drop reasons by value (empty: none named).
    reset_reasons: &'static [String],
    drop_reasons: &'static [String],
    /// Names the owners' cgroups (`NetEvent::cgroup`) where asked to
    /// (`with_cgroups`): a per-event lookup the text log and -c skip.
    cgroups: Option<RefCell<CgroupNames>>,
}

/// An owner as the kernel side names it: (pid, comm).
type OwnerKey = (u32, [u8; 16]);

/// Bound on the owner cache; a storm from many short-lived processes clears it.
const OWNER_CACHE: usize = 4096;

impl Decoder {
    /// `attached_ns`: when the programs were attached (CLOCK_MONOTONIC);
    /// `snapshot`: owners of the sockets in `own_netns` at start-up.
    pub fn new(attached_ns: u64, own_netns: u32, snapshot: TcpOwners) -> Self {
        Self {
            clock: WallClock::new(),
            attached_ns,
            own_netns,
            snapshot,
            socket_key: random_odd(),
            owners: RefCell::new(HashMap::default()),
            last_owner: RefCell::new(None),
            reset_reasons: &[],
            drop_reasons: &[],
            cgroups: None,
        }
    }

    /// Names reset and drop reasons from the kernel's tables
    /// (`Probe::reset_reasons`, `Probe::drop_reasons`).
    /// Names each event's owner's cgroup (`NetEvent::cgroup`).
    pub fn with_cgroups(self) -> Self {
        Self {
            cgroups: Some(RefCell::new(CgroupNames::new())),
            ..self
        }
    }

    pub fn with_reasons(self, resets: &'static [String], drops: &'static [String]) -> Self {
        Self {
            reset_reasons: resets,
            drop_reasons: drops,
            ..self
        }
    }

    pub fn decode(&self, raw: &Event) -> NetEvent {
        let ipv6 = raw.family == AF_INET6;
        let local = socket_addr(ipv6, &raw.saddr, raw.sport);
        let remote = socket_addr(ipv6, &raw.daddr, raw.dport);
        let kind = event_kind(raw);
        let state = match kind {
            EventKind::State { new, .. } => new,
            _ => TcpState(raw.newstate),
        };
        let after_gap = raw.kind == kind::STATE && raw.flags & flags::AFTER_GAP != 0;
        let peer_fin_pending = kind
            == (EventKind::State {
                old: TcpState::FIN_WAIT2,
                new: TcpState::FIN_WAIT2,
            });
        let known = raw.flags & flags::OWNER_KNOWN != 0;
        let owner = if known {
            Some(self.owner(raw.tgid, raw.comm))
        } else if raw.netns == self.own_netns {
            self.snapshot.lookup(local, remote).cloned()
        } else {
            None
        };
        let cgroup = match (&owner, &self.cgroups) {
            (Some(_), Some(names)) if known => Some(names.borrow_mut().path(raw.cgroup, raw.tgid)),
            (Some(o), Some(names)) => names.borrow_mut().of_process(o.pid),
            _ => None,
        };
        NetEvent {
            wall_ns: self.clock.wall_ns(raw.ts_ns),
            kind,
            state,
            ipv6,
            local,
            remote,
            owner,
            cgroup,
            age: self.age(raw, kind, after_gap, (local, remote)),
            after_gap,
            peer_fin_pending,
            inbound: raw.flags & flags::INBOUND != 0,
            retransmits: raw.retransmits,
            failure: Failure::of(raw.failure),
            totals: close_totals(raw),
            netns: raw.netns,
            socket: raw.skaddr.wrapping_mul(self.socket_key),
            reset_reason: raw
                .reset_reason
                .checked_sub(1)
                .and_then(|r| self.reset_reasons.get(usize::from(r)))
                .map(String::as_str),
            drop_reason: (raw.kind == kind::DROP)
                .then(|| self.drop_reasons.get(usize::from(raw.drop_reason)))
                .flatten()
                .map(String::as_str),
        }
    }

    /// How long the socket was in the state a change leaves, where known.
    fn age(
        &self,
        raw: &Event,
        kind: EventKind,
        after_gap: bool,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Option<StateAge> {
        let EventKind::State { old, new } = kind else {
            return None;
        };
        // A socket leaving CLOSE was just made, and a child leaving LISTEN
        // was just cloned from its listener: no earlier state to time.
        // After a gap, we never saw the socket enter its old state.
        if old == TcpState::CLOSE
            || (old == TcpState::LISTEN && new == TcpState::SYN_RECV)
            || after_gap
        {
            return None;
        }
        if raw.prev_ts_ns != 0 {
            return Some(StateAge::Exact(raw.ts_ns.saturating_sub(raw.prev_ts_ns)));
        }
        // The kernel side has no record: a socket the start-up snapshot
        // saw in its old state has been there at least since we attached;
        // of any other (evicted, or of another namespace), nothing is known.
        (raw.netns == self.own_netns && self.snapshot.was_in(local, remote, old.0))
            .then(|| StateAge::Bound(raw.ts_ns.saturating_sub(self.attached_ns)))
    }
}

/// What a raw record reports: a state change (with the state the socket
/// effectively entered) or one of the other kinds.
fn event_kind(raw: &Event) -> EventKind {
    match raw.kind {
        kind::STATE => EventKind::State {
            old: TcpState(raw.oldstate),
            new: TcpState(netstat_common::effective_new_state(
                raw.oldstate,
                raw.newstate,
                raw.flags,
            )),
        },
        kind::RETRANSMIT => EventKind::Retransmit,
        kind::RETRANSMIT_SYNACK => EventKind::RetransmitSynack,
        kind::SEND_RESET => EventKind::ResetSent,
        kind::DROP => EventKind::Drop,
        _ => EventKind::ResetReceived,
    }
}

/// A connection's totals, on the change that ends it (a listener has none).
fn close_totals(raw: &Event) -> Option<CloseTotals> {
    (raw.kind == kind::STATE
        && raw.newstate == TcpState::CLOSE.0
        && raw.oldstate != TcpState::LISTEN.0)
        .then(|| CloseTotals {
            lifetime_ns: (raw.born_ns != 0).then(|| raw.ts_ns.saturating_sub(raw.born_ns)),
            bytes_acked: raw.bytes_acked,
            bytes_received: raw.bytes_received,
            // 8 times the RTT in us: 125 ns a unit.
            srtt_ns: (raw.srtt_us_x8 != 0).then(|| u64::from(raw.srtt_us_x8) * 125),
            total_retransmits: raw.total_retrans,
        })
}

impl Decoder {
    /// A loss mark's wall-clock time and count.
    pub fn lost(&self, mark: &LossMark) -> Lost {
        Lost {
            wall_ns: self.clock.wall_ns(mark.ts_ns),
            count: mark.lost,
        }
    }

    fn owner(&self, pid: u32, comm: [u8; 16]) -> Owner {
        let key = (pid, comm);
        let mut last = self.last_owner.borrow_mut();
        if let Some((k, owner)) = &*last
            && *k == key
        {
            return owner.clone();
        }
        let mut cache = self.owners.borrow_mut();
        if cache.len() >= OWNER_CACHE {
            cache.clear();
        }
        let owner = cache
            .entry(key)
            .or_insert_with(|| Owner {
                pid,
                program: Rc::from(crate::textfmt::c_string(&comm)),
            })
            .clone();
        *last = Some((key, owner.clone()));
        owner
    }
}

/// An odd 64-bit secret from the kernel's random pool (odd, so multiplying by
/// it is a bijection and two sockets never share an id within a run).
fn random_odd() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: writes at most 8 bytes into `bytes`.
    unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    u64::from_ne_bytes(bytes) | 1
}

pub fn socket_addr(ipv6: bool, bytes: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if ipv6 {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    };
    SocketAddr::new(ip, port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netstat_common::{AF_INET, tcp_state};

    fn raw(old: u8, new: u8, flags: u8) -> Event {
        let mut ev = Event {
            ts_ns: 5_000_000,
            prev_ts_ns: 2_000_000,
            kind: kind::STATE,
            family: AF_INET,
            oldstate: old,
            newstate: new,
            flags,
            tgid: 42,
            sport: 40000,
            dport: 80,
            netns: 7,
            ..Event::default()
        };
        ev.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        ev.daddr[..4].copy_from_slice(&[127, 0, 0, 2]);
        ev.comm[..4].copy_from_slice(b"curl");
        ev
    }

    fn decoder() -> Decoder {
        Decoder::new(1_000_000, 7, TcpOwners::default())
    }

    #[test]
    fn graceful_close_from_fin_wait2_enters_time_wait() {
        let ev = decoder().decode(&raw(
            tcp_state::FIN_WAIT2,
            tcp_state::CLOSE,
            flags::OWNER_KNOWN,
        ));
        assert_eq!(
            ev.kind,
            EventKind::State {
                old: TcpState(tcp_state::FIN_WAIT2),
                new: TcpState::TIME_WAIT
            }
        );
        let ev = decoder().decode(&raw(tcp_state::CLOSING, tcp_state::CLOSE, 0));
        assert_eq!(ev.state, TcpState::TIME_WAIT);
    }

    #[test]
    fn reset_close_stays_close() {
        let ev = decoder().decode(&raw(
            tcp_state::FIN_WAIT2,
            tcp_state::CLOSE,
            flags::RESET_RECEIVED,
        ));
        assert_eq!(ev.state, TcpState::CLOSE);
        let ev = decoder().decode(&raw(tcp_state::LAST_ACK, tcp_state::CLOSE, 0));
        assert_eq!(ev.state, TcpState::CLOSE);
    }

    #[test]
    fn addresses_owner_and_age() {
        let ev = decoder().decode(&raw(
            tcp_state::SYN_SENT,
            tcp_state::ESTABLISHED,
            flags::OWNER_KNOWN,
        ));
        assert_eq!(ev.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(ev.remote, "127.0.0.2:80".parse().unwrap());
        assert_eq!(
            ev.owner,
            Some(Owner {
                pid: 42,
                program: "curl".into()
            })
        );
        assert_eq!(ev.age, Some(StateAge::Exact(3_000_000)));
    }

    #[test]
    fn unknown_past_is_a_lower_bound_only_for_a_socket_older_than_us() {
        let mut r = raw(tcp_state::ESTABLISHED, tcp_state::CLOSE_WAIT, 0);
        r.prev_ts_ns = 0;
        // Not in the start-up snapshot: evicted from the kernel side's map
        // (or never seen there), so its age is unknown, not our uptime.
        let ev = decoder().decode(&r);
        assert_eq!(ev.age, None);
        assert_eq!(ev.owner, None);
        // In the snapshot, in the state it now leaves: at least since we
        // attached. In another state: its change since was not seen.
        let started_with = |state| {
            let older = crate::procnet::sockets::InetSocket::from_endpoints(
                "127.0.0.1:40000".parse().unwrap(),
                "127.0.0.2:80".parse().unwrap(),
                state,
            );
            let owners = crate::owners::InodeOwners::default();
            Decoder::new(1_000_000, 7, TcpOwners::new(&owners, &[older]))
        };
        let ev = started_with(tcp_state::ESTABLISHED).decode(&r);
        assert_eq!(ev.age, Some(StateAge::Bound(4_000_000)));
        let ev = started_with(tcp_state::SYN_SENT).decode(&r);
        assert_eq!(ev.age, None);
    }

    #[test]
    fn an_orphan_handed_to_timewait_before_the_peers_fin_stays_in_fin_wait2() {
        let ev = decoder().decode(&raw(
            tcp_state::FIN_WAIT2,
            tcp_state::CLOSE,
            flags::OWNER_KNOWN | flags::PEER_FIN_PENDING,
        ));
        assert_eq!(
            ev.kind,
            EventKind::State {
                old: TcpState(tcp_state::FIN_WAIT2),
                new: TcpState(tcp_state::FIN_WAIT2)
            }
        );
        assert!(ev.peer_fin_pending);
        // The full socket's totals still come with it.
        assert!(ev.totals.is_some());
    }

    #[test]
    fn after_a_gap_the_time_in_the_old_state_is_not_claimed() {
        // The kernel side kept the time of the last change it saw, which
        // is not when the socket entered FIN_WAIT2.
        let ev = decoder().decode(&raw(
            tcp_state::FIN_WAIT2,
            tcp_state::CLOSE,
            flags::OWNER_KNOWN | flags::AFTER_GAP,
        ));
        assert_eq!(ev.state, TcpState::TIME_WAIT);
        assert_eq!(ev.age, None);
        assert!(ev.after_gap);
        assert!(
            !decoder()
                .decode(&raw(tcp_state::FIN_WAIT2, tcp_state::CLOSE, 0))
                .after_gap
        );
    }

    #[test]
    fn ipv6_addresses() {
        let mut r = raw(tcp_state::CLOSE, tcp_state::SYN_SENT, 0);
        r.family = AF_INET6;
        r.saddr = Ipv6Addr::LOCALHOST.octets();
        r.daddr = Ipv6Addr::LOCALHOST.octets();
        let ev = decoder().decode(&r);
        assert!(ev.ipv6);
        assert_eq!(ev.local, "[::1]:40000".parse().unwrap());
    }
}
