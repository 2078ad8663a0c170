//! The connection table's unit tests: events applied to rows.
use std::rc::Rc;

use super::*;
use crate::decoder::StateAge;

fn ev(socket: u64, old: u8, new: u8, local: &str, remote: &str, at: i128) -> NetEvent {
    NetEvent {
        wall_ns: at,
        kind: EventKind::State {
            old: TcpState(old),
            new: TcpState(new),
        },
        state: TcpState(new),
        ipv6: false,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        owner: Some(Owner {
            pid: 7,
            program: Rc::from("x"),
        }),
        cgroup: None,
        age: Some(StateAge::Exact(1)),
        after_gap: false,
        peer_fin_pending: false,
        inbound: false,
        retransmits: 0,
        failure: None,
        reset_reason: None,
        drop_reason: None,
        totals: None,
        netns: 1,
        socket,
    }
}

fn states(t: &ConnTable) -> Vec<(String, u8)> {
    t.entries()
        .iter()
        .map(|e| match e {
            Entry::Row(r) => (r.socket.local.to_string(), r.socket.state),
            Entry::TimeWait(packed, tw) => (packed.tuple().0.to_string(), tw.state),
        })
        .collect()
}

/// The connections' rows (TIME_WAIT ones apart).
fn rows(t: &ConnTable) -> Vec<&Row> {
    let mut rows: Vec<&Row> = t.rows.values().collect();
    rows.sort_by_key(|r| (r.socket.local, r.socket.remote));
    rows
}

const L: &str = "127.0.0.1:80";
const C: &str = "127.0.0.1:5000";

#[test]
fn a_connection_lives_and_leaves_time_wait_behind() {
    let mut t = ConnTable::default();
    assert!(t.apply(&ev(1, 7, 10, L, "0.0.0.0:0", 0))); // listen
    t.apply(&ev(2, 7, 2, C, L, 1)); // connect
    t.apply(&ev(2, 2, 1, C, L, 2));
    t.apply(&ev(3, 10, 3, L, C, 2)); // child
    t.apply(&ev(3, 3, 1, L, C, 3));
    assert_eq!(t.entries().len(), 3);
    t.apply(&ev(2, 1, 4, C, L, 4));
    t.apply(&ev(3, 1, 8, L, C, 4));
    t.apply(&ev(2, 4, 5, C, L, 5));
    t.apply(&ev(3, 8, 9, L, C, 6));
    t.apply(&ev(3, 9, 7, L, C, 7));
    t.apply(&ev(2, 5, 6, C, L, 7)); // decoder's TIME_WAIT
    assert_eq!(states(&t), vec![(L.to_string(), 10), (C.to_string(), 6)]);
    assert!(!t.expire(7 + TIME_WAIT_NS - 1));
    assert!(t.expire(7 + TIME_WAIT_NS));
    assert_eq!(states(&t), vec![(L.to_string(), 10)]);
}

#[test]
fn time_wait_rows_are_shown_in_order_among_the_others() {
    let mut t = ConnTable::default();
    t.apply(&ev(1, 2, 1, "127.0.0.1:5000", L, 1));
    t.apply(&ev(2, 5, 6, "127.0.0.1:4000", L, 1));
    t.apply(&ev(3, 5, 6, "127.0.0.1:6000", L, 1));
    t.apply(&ev(4, 5, 6, "[::1]:3000", "[::1]:80", 1));
    t.apply(&ev(
        5,
        2,
        1,
        "[::ffff:127.0.0.1]:7000",
        "[::ffff:127.0.0.1]:80",
        1,
    ));
    t.apply(&ev(
        6,
        5,
        6,
        "[::ffff:127.0.0.1]:6500",
        "[::ffff:127.0.0.1]:80",
        1,
    ));
    let shown: Vec<(String, u8)> = states(&t);
    assert_eq!(
        shown,
        vec![
            ("127.0.0.1:4000".into(), 6),
            ("127.0.0.1:5000".into(), 1),
            ("127.0.0.1:6000".into(), 6),
            ("[::1]:3000".into(), 6),
            ("[::ffff:127.0.0.1]:6500".into(), 6),
            ("[::ffff:127.0.0.1]:7000".into(), 1),
        ]
    );
}

fn snapshot_row(local: &str, remote: &str, state: u8) -> InetSocket {
    InetSocket {
        tx_queue: 5,
        inode: 44,
        ..InetSocket::from_endpoints(local.parse().unwrap(), remote.parse().unwrap(), state)
    }
}

#[test]
fn a_connect_that_learns_its_port_late_still_replaces_time_wait() {
    let mut t = ConnTable::default();
    t.apply(&ev(2, 5, 6, C, L, 1));
    // tcp_v4_connect enters SYN_SENT before it picks the port.
    t.apply(&ev(9, 7, 2, "127.0.0.1:0", L, 2));
    t.apply(&ev(9, 2, 1, C, L, 3));
    assert_eq!(states(&t), vec![(C.to_string(), 1)]);
    t.apply(&ev(9, 1, 7, C, L, 4)); // reset
    assert!(t.entries().is_empty());
}

#[test]
fn queues_come_from_the_kernels_sockets_by_endpoints() {
    let mut t = ConnTable::default();
    t.apply(&ev(1, 7, 10, L, "0.0.0.0:0", 1)); // listener
    t.apply(&ev(2, 2, 1, C, L, 2)); // a connection
    t.apply(&ev(3, 5, 6, "127.0.0.1:9", C, 3)); // TIME_WAIT: none to set
    let fresh = [
        queued(L, "0.0.0.0:0", 10, 3, 128),
        queued(C, L, 1, 100, 7),
        queued("127.0.0.1:9", C, 1, 9, 9),
    ];
    assert!(t.refresh_queues(&fresh));
    assert_eq!(queues(&t), [(10, 3, 128), (1, 100, 7)]);
    assert_eq!(t.entries().len(), 3);
    assert!(!t.refresh_queues(&fresh));
}

#[test]
fn a_sweep_with_only_listeners_read_sets_the_listeners_alone() {
    let mut t = ConnTable::default();
    t.apply(&ev(1, 7, 10, L, "0.0.0.0:0", 1)); // listener
    t.apply(&ev(4, 7, 10, "127.0.0.1:81", "0.0.0.0:0", 2)); // one that closes
    t.apply(&ev(4, 10, 7, "127.0.0.1:81", "0.0.0.0:0", 3));
    t.apply(&ev(2, 2, 1, C, L, 4)); // a connection: its queues as born
    let fresh = [
        queued(L, "0.0.0.0:0", 10, 3, 128),
        queued("127.0.0.1:81", "0.0.0.0:0", 10, 5, 5),
    ];
    assert!(t.refresh_queues(&fresh));
    assert_eq!(queues(&t), [(10, 3, 128), (1, 0, 0)]);
}

/// Each connection's (state, Recv-Q, Send-Q).
fn queues(t: &ConnTable) -> Vec<(u8, u64, u64)> {
    rows(t)
        .into_iter()
        .map(|r| (r.socket.state, r.socket.rx_queue, r.socket.tx_queue))
        .collect()
}

fn queued(local: &str, remote: &str, state: u8, rx: u64, tx: u64) -> InetSocket {
    InetSocket {
        rx_queue: rx,
        tx_queue: tx,
        ..snapshot_row(local, remote, state)
    }
}

#[test]
fn a_reset_sent_to_time_wait_kills_it_if_the_kernel_says_so() {
    // (RFC 1337 on, the kernel's answer, rows left after settling)
    let cases = [
        (false, Some(false), 0),
        (false, None, 0),
        (false, Some(true), 1),
        (true, Some(false), 1),
    ];
    for (rfc1337, kernel_has, left) in cases {
        let mut t = ConnTable {
            resets_kill_time_wait: !rfc1337,
            ..ConnTable::default()
        };
        t.apply(&ev(2, 5, 6, L, C, 1));
        let mut reset = ev(0, 0, 0, C, L, 2);
        reset.kind = EventKind::ResetSent;
        assert!(!t.apply(&reset));
        // Too soon: the reset may not have arrived yet.
        assert!(!t.settle_resets(2 + RESET_SETTLE_NS - 1, |_, _| Some(false)));
        let asked = std::cell::Cell::new(None);
        let settled = t.settle_resets(2 + RESET_SETTLE_NS, |local, remote| {
            asked.set(Some((local.to_string(), remote.to_string())));
            kernel_has
        });
        assert_eq!(settled, left == 0);
        assert_eq!(t.entries().len(), left);
        if !rfc1337 {
            assert_eq!(asked.take(), Some((L.to_string(), C.to_string())));
        }
    }
}

#[test]
fn a_child_of_a_snapshot_listener_leaves_the_listener_alone() {
    let listener = snapshot_row(L, "0.0.0.0:0", 10);
    let mut t = ConnTable::from_snapshot(vec![listener], &InodeOwners::default(), 0);
    // inet_csk_clone_lock reports the child with the listener's endpoints.
    t.apply(&ev(3, 10, 3, L, "0.0.0.0:0", 1));
    t.apply(&ev(3, 3, 1, L, C, 2));
    assert_eq!(states(&t), vec![(L.to_string(), 10), (L.to_string(), 1)]);
    t.apply(&ev(1, 10, 7, L, "0.0.0.0:0", 3)); // the listener closes
    assert_eq!(states(&t), vec![(L.to_string(), 1)]);
}

#[test]
fn an_event_from_before_a_resynchronisation_does_not_duplicate_its_row() {
    let established = snapshot_row(C, L, 1);
    let mut t = ConnTable::from_snapshot(vec![established], &InodeOwners::default(), 0);
    t.apply(&ev(9, 7, 2, "127.0.0.1:0", L, 1));
    t.apply(&ev(9, 2, 1, C, L, 2));
    assert_eq!(states(&t), vec![(C.to_string(), 1)]);
}

#[test]
fn reuse_replaces_time_wait_and_snapshot_rows_are_adopted() {
    let mut t = ConnTable::default();
    t.apply(&ev(2, 5, 6, C, L, 1));
    t.apply(&ev(9, 7, 2, C, L, 2));
    assert_eq!(states(&t), vec![(C.to_string(), 2)]);
    let snap = snapshot_row(L, "127.0.0.1:6000", 1);
    let mut t = ConnTable::from_snapshot(vec![snap], &InodeOwners::default(), 0);
    t.apply(&ev(5, 1, 8, L, "127.0.0.1:6000", 3));
    let rows = rows(&t);
    assert_eq!(
        (rows.len(), rows[0].socket.state, rows[0].socket.tx_queue),
        (1, 8, 5)
    );
    t.apply(&ev(5, 8, 7, L, "127.0.0.1:6000", 4));
    assert!(t.entries().is_empty());
}

/// An orphan handed to a timewait socket stays FIN_WAIT2 with no owner,
/// until the kernel's timewait sockets say it is in TIME_WAIT or gone.
#[test]
fn an_orphan_stays_fin_wait2_until_the_kernel_says_otherwise() {
    use netstat_common::tcp_state::{ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT};
    let (a, b, peer) = ("127.0.0.1:40000", "127.0.0.1:40001", "127.0.0.1:80");
    let mut t = ConnTable {
        fin_timeout_ns: TIME_WAIT_NS,
        ..ConnTable::default()
    };
    for (id, local) in [(1, a), (2, b)] {
        t.apply(&ev(id, ESTABLISHED, FIN_WAIT1, local, peer, 10));
        t.apply(&ev(id, FIN_WAIT1, FIN_WAIT2, local, peer, 20));
        let mut handed = ev(id, FIN_WAIT2, FIN_WAIT2, local, peer, 30);
        handed.peer_fin_pending = true;
        assert!(t.apply(&handed));
    }
    assert!(t.has_orphans());
    assert_eq!(
        states(&t),
        [(a.to_string(), FIN_WAIT2), (b.to_string(), FIN_WAIT2)]
    );
    // Entered FIN_WAIT2 at 20, when FIN_WAIT1 -> FIN_WAIT2 was seen.
    match t.entries()[0] {
        Entry::TimeWait(_, tw) => assert_eq!(t.time_wait_entered(tw), StateEntered::Exact(20)),
        Entry::Row(_) => panic!("a timewait row"),
    }
    // The kernel: `a` got its peer's FIN (TIME_WAIT, 59 s left), `b` is gone.
    let kernel = InetSocket {
        timer: 3,
        timer_ticks: 5900,
        ..InetSocket::from_endpoints(a.parse().unwrap(), peer.parse().unwrap(), TIME_WAIT)
    };
    assert!(t.update_orphans(1_000, &[kernel]));
    assert_eq!(states(&t), [(a.to_string(), TIME_WAIT)]);
    assert!(!t.has_orphans());
    match t.entries()[0] {
        Entry::TimeWait(_, tw) => {
            assert_eq!(tw.left(1_000), 59_000_000_000);
            // In TIME_WAIT since the kernel armed its 60 s: 1 s ago.
            assert_eq!(
                t.time_wait_entered(tw),
                StateEntered::Exact(1_000 - 1_000_000_000)
            );
        }
        Entry::Row(_) => panic!("a timewait row"),
    }
}

/// An orphan in FIN_WAIT2 whose peer on this host sends its FIN (into
/// LAST_ACK) enters TIME_WAIT then, whichever of the two events comes
/// first; one whose peer has not stays FIN_WAIT2.
#[test]
fn an_orphan_takes_the_fin_its_peer_here_sends() {
    use netstat_common::tcp_state::{CLOSE_WAIT, FIN_WAIT2, LAST_ACK, TIME_WAIT};
    let (server, quiet) = ("127.0.0.1:80", "127.0.0.1:81");
    let orphan = |t: &mut ConnTable, id, local: &str, remote: &str, at| {
        let mut handed = ev(id, FIN_WAIT2, FIN_WAIT2, local, remote, at);
        handed.peer_fin_pending = true;
        t.apply(&handed);
    };
    let mut t = ConnTable {
        fin_timeout_ns: TIME_WAIT_NS,
        ..ConnTable::default()
    };
    // The orphan first, then its peer's FIN.
    orphan(&mut t, 1, "127.0.0.1:40000", server, 10);
    t.apply(&ev(2, CLOSE_WAIT, LAST_ACK, server, "127.0.0.1:40000", 20));
    // The peer's FIN first (its event ahead in the ring), then the orphan.
    t.apply(&ev(3, CLOSE_WAIT, LAST_ACK, server, "127.0.0.1:40001", 30));
    orphan(&mut t, 4, "127.0.0.1:40001", server, 31);
    // A peer that has not closed: the orphan waits.
    orphan(&mut t, 5, "127.0.0.1:40002", quiet, 40);
    let time_waits: Vec<(String, u8)> = states(&t)
        .into_iter()
        .filter(|(local, _)| local.starts_with("127.0.0.1:4000"))
        .collect();
    assert_eq!(
        time_waits,
        [
            ("127.0.0.1:40000".to_string(), TIME_WAIT),
            ("127.0.0.1:40001".to_string(), TIME_WAIT),
            ("127.0.0.1:40002".to_string(), FIN_WAIT2)
        ]
    );
    let entered: Vec<StateEntered> = t
        .entries()
        .iter()
        .filter_map(|e| match e {
            Entry::TimeWait(_, tw) => Some(t.time_wait_entered(tw)),
            Entry::Row(_) => None,
        })
        .collect();
    assert_eq!(
        entered,
        [
            StateEntered::Exact(20),
            StateEntered::Exact(31),
            StateEntered::Exact(40)
        ]
    );
}

/// The states a drawing shows by endpoints (the last of rows sharing
/// endpoints wins, as in `live_diff::Rows`).
fn by_endpoints(entries: &[Entry]) -> std::collections::BTreeMap<Tuple, u8> {
    entries
        .iter()
        .map(|e| {
            let (_, local, remote, state) = e.order();
            ((local, remote), state)
        })
        .collect()
}

/// Checks the rows the table kept as the last drawing showed them against
/// `mirror`, that drawing's states, then brings `mirror` up to date from
/// the rows that changed and checks it against the whole table.
fn follow_changes(t: &mut ConnTable, mirror: &mut std::collections::BTreeMap<Tuple, u8>) {
    let changed = t.take_changed().expect("the table keeps its changes");
    let before = by_endpoints(&changed.before());
    match &changed {
        Changed::Whole(_) => {
            assert_eq!(before, *mirror);
            *mirror = by_endpoints(&t.entries());
        }
        Changed::Some(by) => {
            let keys: Vec<Tuple> = by.keys().map(Packed::tuple).collect();
            let mut drawn = mirror.clone();
            drawn.retain(|tuple, _| keys.contains(tuple));
            assert_eq!(before, drawn);
            mirror.retain(|tuple, _| !keys.contains(tuple));
            mirror.extend(by_endpoints(&t.entries_of(by.keys())));
        }
    }
    assert_eq!(*mirror, by_endpoints(&t.entries()));
}

/// One thing done to the table.
type Step<'a> = Box<dyn Fn(&mut ConnTable) + 'a>;

/// A new table from /proc, told what the one it replaces last drew.
fn resync(t: &mut ConnTable) {
    use netstat_common::tcp_state::{ESTABLISHED, LISTEN};
    let rows = vec![
        snapshot_row(L, "0.0.0.0:0", LISTEN),
        snapshot_row(C, L, ESTABLISHED),
    ];
    let last = std::mem::take(t);
    *t = ConnTable::from_snapshot(rows, &InodeOwners::default(), 80);
    t.track_changes(last.into_drawn());
}

/// Every way a row comes, goes or changes state keeps the rows of its
/// endpoints as drawn, so that --diff comparing only those sees what a
/// whole comparison of two drawings sees, drawn after every step or after
/// every second or third, across resynchronisations too.
#[test]
fn every_change_of_a_row_is_kept_for_the_diff() {
    use netstat_common::tcp_state::{
        CLOSE, CLOSE_WAIT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, LAST_ACK, LISTEN, SYN_SENT, TIME_WAIT,
    };
    let (old_client, reused, peer) = ("127.0.0.1:5001", "127.0.0.1:6000", "127.0.0.1:9");
    let time_wait = InetSocket {
        timer: 3,
        timer_ticks: 100,
        ..snapshot_row(reused, L, TIME_WAIT)
    };
    let snapshot = vec![
        snapshot_row(L, "0.0.0.0:0", LISTEN),
        snapshot_row(old_client, L, ESTABLISHED),
        time_wait,
    ];
    let orphan = |id, local: &str, remote: &str, at| {
        let mut handed = ev(id, FIN_WAIT2, FIN_WAIT2, local, remote, at);
        handed.peer_fin_pending = true;
        handed
    };
    let mut reset = ev(0, 0, 0, L, C, 70);
    reset.kind = EventKind::ResetSent;
    let steps: Vec<Step> = vec![
        Box::new(|_| {}),
        // A new connection; the snapshot's one closes into TIME_WAIT.
        Box::new(|t| _ = t.apply(&ev(2, CLOSE, SYN_SENT, C, L, 10))),
        Box::new(|t| _ = t.apply(&ev(2, SYN_SENT, ESTABLISHED, C, L, 11))),
        Box::new(|t| _ = t.apply(&ev(9, ESTABLISHED, FIN_WAIT1, old_client, L, 12))),
        Box::new(|t| _ = t.apply(&ev(9, FIN_WAIT1, FIN_WAIT2, old_client, L, 13))),
        Box::new(|t| _ = t.apply(&ev(9, FIN_WAIT2, TIME_WAIT, old_client, L, 14))),
        // A connection takes a TIME_WAIT row's endpoints.
        Box::new(|t| _ = t.apply(&ev(3, CLOSE, SYN_SENT, reused, L, 20))),
        // Orphans: one takes its peer's FIN here, one the kernel frees.
        Box::new(|t| _ = t.apply(&orphan(4, "127.0.0.1:7000", peer, 30))),
        Box::new(|t| _ = t.apply(&ev(5, CLOSE_WAIT, LAST_ACK, peer, "127.0.0.1:7000", 31))),
        Box::new(|t| _ = t.apply(&orphan(6, "127.0.0.1:7001", peer, 40))),
        Box::new(|t| _ = t.update_orphans(50, &[])),
        // The connection's end, and a reset that kills its TIME_WAIT.
        Box::new(|t| _ = t.apply(&ev(2, ESTABLISHED, FIN_WAIT1, C, L, 60))),
        Box::new(|t| _ = t.apply(&ev(2, FIN_WAIT1, TIME_WAIT, C, L, 61))),
        Box::new(|t| _ = t.apply(&reset)),
        Box::new(|t| _ = t.settle_resets(70 + RESET_SETTLE_NS, |_, _| Some(false))),
        // A file now holds the listener; --state keeps listeners only;
        // the TIME_WAIT rows expire.
        Box::new(|t| _ = t.refresh_queues(&[queued(L, "0.0.0.0:0", LISTEN, 0, 128)])),
        Box::new(|t| _ = t.retain(|state| state != SYN_SENT && state != LAST_ACK)),
        Box::new(|t| _ = t.expire(TIME_WAIT_NS * 2)),
        // Two resynchronisations, then the connection ends again.
        Box::new(resync),
        Box::new(resync),
        Box::new(|t| _ = t.apply(&ev(7, ESTABLISHED, FIN_WAIT1, C, L, 90))),
    ];
    for every in 1..=3 {
        let mut t = ConnTable::from_snapshot(snapshot.clone(), &InodeOwners::default(), 0);
        t.resets_kill_time_wait = true;
        t.track_changes(Vec::new());
        let mut mirror = std::collections::BTreeMap::new();
        for (n, step) in steps.iter().enumerate() {
            step(&mut t);
            if n % every == 0 {
                follow_changes(&mut t, &mut mirror);
            }
            assert!(n > 0 || mirror.len() == 3, "{mirror:?}");
        }
        follow_changes(&mut t, &mut mirror);
        assert_eq!(
            by_endpoints(&t.entries()).into_values().collect::<Vec<_>>(),
            [LISTEN, FIN_WAIT1],
            "drawn every {every} steps"
        );
    }
}

/// A row whose owner stops showing (no file holds it any more) is kept as
/// drawn: a --diff filtering on owners sees it go.
#[test]
fn a_row_whose_owner_stops_showing_is_kept_for_the_diff() {
    use netstat_common::tcp_state::{CLOSE, ESTABLISHED, SYN_SENT};
    let mut t = ConnTable::default();
    t.track_changes(Vec::new());
    t.apply(&ev(2, CLOSE, SYN_SENT, C, L, 1));
    t.apply(&ev(2, SYN_SENT, ESTABLISHED, C, L, 2));
    assert!(matches!(t.take_changed(), Some(Changed::Whole(_))));
    let closed = InetSocket {
        inode: 0,
        ..queued(C, L, ESTABLISHED, 0, 0)
    };
    assert!(t.refresh_queues(&[closed]));
    let changed = t.take_changed().expect("the table keeps its changes");
    let Changed::Some(by) = &changed else {
        panic!("not a change of some rows");
    };
    let pids = |entries: Vec<Entry>| -> Vec<Option<u32>> {
        let row = |e: &Entry| match e {
            Entry::Row(row) => row.shown_owner().map(|o| o.pid),
            Entry::TimeWait(..) => None,
        };
        entries.iter().map(row).collect()
    };
    assert_eq!(pids(changed.before()), [Some(7)]);
    assert_eq!(pids(t.entries_of(by.keys())), [None]);
}
