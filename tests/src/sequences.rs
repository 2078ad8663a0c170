//! Event logs as the tests compare them: per socket, in order, as
//! `OLD->NEW` steps with their owner.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Netns, TracerOutput, connect, serve};

/// One event as the tests compare it: `OLD->NEW` for state changes,
/// `event:STATE` for retransmits and resets; plus the reported pid.
pub fn step(ev: &Value) -> (String, Option<u64>) {
    let what = match ev["event"].as_str().unwrap() {
        "state" => format!(
            "{}->{}",
            ev["old_state"].as_str().unwrap(),
            ev["new_state"].as_str().unwrap()
        ),
        other => format!("{other}:{}", ev["state"].as_str().unwrap()),
    };
    (what, ev["pid"].as_u64())
}

/// Events grouped per socket, in the order each socket's first event came.
pub fn per_socket(events: &[Value]) -> Vec<Vec<(String, Option<u64>)>> {
    let mut order = Vec::new();
    let mut by_socket: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for ev in events {
        let id = ev["socket"].as_str().unwrap().to_string();
        if !by_socket.contains_key(&id) {
            order.push(id.clone());
        }
        by_socket.entry(id).or_default().push(step(ev));
    }
    order
        .into_iter()
        .map(|id| by_socket.remove(&id).unwrap())
        .collect()
}

/// Every socket life in `events`: the states it went through, from its
/// first state to its end (CLOSE, TIME_WAIT, or handed over in FIN_WAIT2),
/// and its last (local, remote).
pub fn lifetimes(events: &[Value]) -> Vec<(Vec<String>, (String, String))> {
    let mut open: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut lives = Vec::new();
    for ev in events.iter().filter(|e| e["event"] == "state") {
        let states = open.entry(ev["socket"].as_str().unwrap()).or_default();
        if states.is_empty() {
            states.push(ev["old_state"].as_str().unwrap().to_string());
        }
        let new = ev["new_state"].as_str().unwrap();
        states.push(new.to_string());
        if new == "CLOSE" || new == "TIME_WAIT" || new == ev["old_state"] {
            let tuple = (ev["local"].to_string(), ev["remote"].to_string());
            lives.push((std::mem::take(states), tuple));
        }
    }
    lives
}

pub fn seq(pid: u32, steps: &[&str]) -> Vec<(String, Option<u64>)> {
    steps
        .iter()
        .map(|s| (s.to_string(), Some(u64::from(pid))))
        .collect()
}

pub fn sorted(mut v: Vec<Vec<(String, Option<u64>)>>) -> Vec<Vec<(String, Option<u64>)>> {
    v.sort();
    v
}

/// How a closing client's FIN_WAIT2 ended in `events` (there must be one
/// such end): TIME_WAIT when the peer's FIN came with or before the ACK of
/// ours, else the kernel's hand-over of the orphan to a timewait socket
/// still in FIN_WAIT2 (the peer's FIN comes later, unseen by any event).
pub fn client_end(events: &[Value]) -> &'static str {
    let ends: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "state" && e["old_state"] == "FIN_WAIT2")
        .map(|e| step(e).0)
        .collect();
    match ends.as_slice() {
        [end] if end == "FIN_WAIT2->TIME_WAIT" => "FIN_WAIT2->TIME_WAIT",
        [end] if end == "FIN_WAIT2->FIN_WAIT2" => "FIN_WAIT2->FIN_WAIT2",
        _ => panic!("not one end of FIN_WAIT2: {ends:?}"),
    }
}

/// JSON endpoints are `ip:port`; netstat's text writes port 0 as `*`.
pub fn netstat_endpoint(json: &Value) -> String {
    let s = json.as_str().unwrap();
    match s.strip_suffix(":0") {
        Some(host) => format!("{host}:*"),
        None => s.to_string(),
    }
}

/// Client connects, server accepts, client closes (with a reset if asked),
/// server reads to EOF and closes. Returns (server pid, client pid).
pub fn connect_accept_close(ns: &Netns, addr: &str, client_rst: bool) -> (u32, u32) {
    let mut server = serve(ns, addr, &[]);
    let mut client = connect(ns, addr, if client_rst { &["--rst"] } else { &[] });
    client.expect("connected");
    server.expect("accepted");
    client.close();
    server.expect("closed");
    assert!(client.wait().success());
    assert!(server.wait().success());
    (server.pid(), client.pid())
}

/// What `-E --json` logged of one `connect_accept_close` without a reset
/// in `ns`, and nothing else: its 12 state changes exactly, with their
/// owners (`server`, `client`).
pub fn assert_graceful(ns: &Netns, out: &TracerOutput, (server, client): (u32, u32)) {
    assert!(out.status.success(), "{:?}", out.stderr);
    let events = out.events();
    let of_kind = |kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    };
    let changes = of_kind("state");
    assert_eq!(
        sorted(per_socket(&changes)),
        graceful_sequences(server, client, client_end(&changes)),
        "{}",
        out.stdout
    );
    // A slow guest may retransmit the server's FIN (seen on 6.1 emulated),
    // or answer a late segment after the server's socket is gone with a
    // reset for no socket (seen on 6.1 emulated): those are compared with
    // the kernel's own counts, and nothing else may appear.
    let (retransmits, resets) = (of_kind("retransmit"), of_kind("send_reset"));
    let counted = (retransmits.len() as u64, resets.len() as u64);
    let kernel = (ns.tcp("RetransSegs"), ns.tcp("OutRsts"));
    assert_eq!(counted, kernel, "{}", out.stdout);
    let others = events.len() - changes.len() - retransmits.len() - resets.len();
    assert_eq!(others, 0, "{}", out.stdout);
    let stop = out.stop_object();
    let stopped =
        ["events_seen", "state_changes", "lost", "owners_unknown"].map(|k| stop[k].as_u64());
    let expected = [events.len() as u64, 12, 0, 0].map(Some);
    assert_eq!(stopped, expected, "{stop}");
}

/// The 12 state changes of `connect_accept_close` without a reset, each
/// socket's in order with its owner, sorted; the client's FIN_WAIT2 ends
/// as `client_end` says.
pub fn graceful_sequences(
    server: u32,
    client: u32,
    client_end: &str,
) -> Vec<Vec<(String, Option<u64>)>> {
    let expected = vec![
        seq(server, &["CLOSE->LISTEN", "LISTEN->CLOSE"]),
        seq(
            client,
            &[
                "CLOSE->SYN_SENT",
                "SYN_SENT->ESTABLISHED",
                "ESTABLISHED->FIN_WAIT1",
                "FIN_WAIT1->FIN_WAIT2",
                client_end,
            ],
        ),
        seq(
            server,
            &[
                "LISTEN->SYN_RECV",
                "SYN_RECV->ESTABLISHED",
                "ESTABLISHED->CLOSE_WAIT",
                "CLOSE_WAIT->LAST_ACK",
                "LAST_ACK->CLOSE",
            ],
        ),
    ];
    sorted(expected)
}
