//! What enetstat shows must be what the kernel has: states it cannot see
//! in an event (an orphan left in FIN_WAIT2), and events it could not
//! deliver (marked where they are missing).

use std::time::{Duration, Instant};

use tests::{Netns, Tracer, TracerOutput, last_table, scrape, wait_limit};

const LISTEN: &str = "127.0.0.1:7600";
const ENDPOINT: &str = "127.0.0.1:9978";

/// `ss -tan`'s rows of connections to or from `port`, as (local, remote,
/// state) in netstat's spelling of the state, sorted.
fn ss_rows(ns: &Netns, port: &str) -> Vec<(String, String, String)> {
    let out = ns.exec_ok(&["ss", "-tanH"]);
    let mut rows: Vec<_> = out
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let state = match *w.first()? {
                "ESTAB" => "ESTABLISHED".to_string(),
                // FIN-WAIT-2 is netstat's FIN_WAIT2.
                s => s.replace('-', "_").replace("FIN_WAIT_", "FIN_WAIT"),
            };
            (w.len() >= 5 && state != "LISTEN" && (w[3].ends_with(port) || w[4].ends_with(port)))
                .then(|| (w[3].to_string(), w[4].to_string(), state))
        })
        .collect();
    rows.sort();
    rows
}

/// The same rows from a netstat-format table (enetstat -c's last drawing).
fn table_rows(table: &str, port: &str) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = table
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 6
                && w[0] == "tcp"
                && w[5] != "LISTEN"
                && (w[3].ends_with(port) || w[4].ends_with(port)))
            .then(|| (w[3].to_string(), w[4].to_string(), w[5].to_string()))
        })
        .collect();
    rows.sort();
    rows
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait_limit();
    while !done() {
        assert!(
            Instant::now() < deadline,
            "no {what} within {:?}",
            wait_limit()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three clients close while the server keeps its ends unaccepted: the
/// kernel hands each client's end to a timewait socket that stays in
/// FIN_WAIT2 (the peer never sent its FIN). `-E`, `-c`, `-S` and the
/// metric must say FIN_WAIT2 as `ss` does, never TIME_WAIT.
#[test]
fn an_orphan_whose_peer_has_not_closed_is_fin_wait2_everywhere() {
    let ns = Netns::new("orphan");
    let events = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let summary = Tracer::start(
        &ns,
        &[
            "-S",
            "0.3",
            "--json",
            "--metrics",
            ENDPOINT,
            "--port",
            "7600",
        ],
    );
    let view = Tracer::start_live(&ns, &["-tan", "--interval", "100"]);
    let mut listener = tests::listen(&ns, LISTEN, 16);
    let mut clients = tests::flood(&ns, LISTEN, 3);
    clients.close();
    wait_until("three FIN-WAIT-2 sockets in ss", || {
        ss_rows(&ns, ":7600")
            .iter()
            .filter(|r| r.2 == "FIN_WAIT2")
            .count()
            == 3
    });
    let kernel = ss_rows(&ns, ":7600");
    assert_eq!(
        kernel.iter().filter(|r| r.2 == "CLOSE_WAIT").count(),
        3,
        "{kernel:?}"
    );

    // The live view: row for row what ss shows.
    wait_until("the live view to agree with ss", || {
        table_rows(last_table(&view.output()), ":7600") == kernel
    });

    // -S: no TIME_WAIT counted or entered; the orphans are no transition.
    let intervals_now = |t: &Tracer| t.output().lines().count();
    let seen = intervals_now(&summary);
    wait_until("two more -S intervals", || {
        intervals_now(&summary) >= seen + 2
    });
    let out = summary.output();
    let last: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("an interval")).expect("JSON interval");
    assert_eq!(last["time_wait"], 0, "{last}");
    // Before the scrape below, whose own connection is the namespace's only
    // other one.
    let metrics = scrape::scrape(&ns, ENDPOINT);
    assert_eq!(
        scrape::sample(&metrics, "enetstat_time_wait_sockets"),
        0,
        "{metrics}"
    );

    // -E, stopped while the server still holds its ends: each client's
    // close, with the orphan's hand-over to a timewait socket as no change.
    // A client whose ACK was handled while it held its socket's lock stays
    // a full FIN_WAIT2 socket for now (the FIN_WAIT2 timer hands it over
    // later): no hand-over yet, as ss shows it.
    let out_events = events.stop();
    listener.close();
    client_closes_match_ss(&out_events, &kernel);
    no_interval_enters_time_wait(summary.stop());
    // The server's close resets the orphans: the view asks the kernel and
    // drops them as ss does.
    wait_until("the live view to drop the reset orphans", || {
        table_rows(last_table(&view.output()), ":7600") == ss_rows(&ns, ":7600")
    });
    let out = view.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
}

/// Each client the kernel shows in FIN_WAIT2 closed, in `-E`'s log, up to
/// the hand-over of its orphan (or not yet), and no connection of the
/// listener entered TIME_WAIT.
fn client_closes_match_ss(out_events: &TracerOutput, kernel: &[(String, String, String)]) {
    let lines = out_events.events();
    for (local, remote, _) in kernel.iter().filter(|r| r.2 == "FIN_WAIT2") {
        let changes: Vec<(String, String, bool)> = lines
            .iter()
            .filter(|e| e["event"] == "state" && e["local"] == *local && e["remote"] == *remote)
            .map(|e| {
                (
                    e["old_state"].as_str().unwrap().to_string(),
                    e["new_state"].as_str().unwrap().to_string(),
                    e["peer_fin_pending"].as_bool().unwrap(),
                )
            })
            .collect();
        let want = [
            ("SYN_SENT", "ESTABLISHED", false),
            ("ESTABLISHED", "FIN_WAIT1", false),
            ("FIN_WAIT1", "FIN_WAIT2", false),
            ("FIN_WAIT2", "FIN_WAIT2", true),
        ]
        .map(|(o, n, p)| (o.to_string(), n.to_string(), p));
        let handed_over = changes == want;
        let not_yet = changes == want[..3];
        assert!(handed_over || not_yet, "{local} -> {remote}: {changes:?}");
    }
    // (The scrape's own connection may end in TIME_WAIT.)
    let to_listener = |e: &serde_json::Value| {
        [&e["local"], &e["remote"]]
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.ends_with(":7600")))
    };
    assert!(
        !lines
            .iter()
            .any(|e| to_listener(e) && e["new_state"] == "TIME_WAIT"),
        "{}",
        out_events.stdout
    );
}

/// No `-S` interval counted a transition into TIME_WAIT.
fn no_interval_enters_time_wait(summary: TracerOutput) {
    assert!(summary.status.success(), "{:?}", summary.stderr);
    for line in summary.stdout.lines() {
        let interval: serde_json::Value = serde_json::from_str(line).expect("JSON interval");
        let transitions = interval["transitions"].as_object().expect("transitions");
        assert!(
            transitions.keys().all(|k| !k.ends_with("TIME_WAIT")),
            "{interval}"
        );
    }
}

/// A reader too slow for a small ring: the log marks each place events are
/// missing with their count, the marks add up to the loss the stop object
/// reports, and a socket's first change after a hole says `after_gap`.
#[test]
fn lost_events_are_marked_in_the_stream_where_they_are_missing() {
    let ns = Netns::new("lossmark");
    // About 480 records: the 50 connections' 200 changes fit.
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json", "--ring-size", "65536"]);
    let signal = |sig| {
        // SAFETY: signalling the tracer, our own child.
        assert_eq!(unsafe { libc::kill(tracer.pid() as i32, sig) }, 0);
    };
    // 50 connections wait in a listener's queue, seen. The reader stops; a
    // storm fills the ring, and the clients close into the full ring.
    // Once it reads again, the server's ends close after that hole.
    let mut listener = tests::listen(&ns, "127.0.0.1:7700", 64);
    let mut clients = tests::flood(&ns, "127.0.0.1:7700", 50);
    tracer.wait_quiet();
    signal(libc::SIGSTOP);
    tests::storm(&ns, "127.0.0.1:7701", 300, &[]);
    clients.close();
    signal(libc::SIGCONT);
    tracer.wait_quiet();
    listener.close();
    tracer.wait_quiet();
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let lines = out.events();
    let marked: u64 = lines
        .iter()
        .filter(|e| e["event"] == "lost")
        .map(|e| e["lost"].as_u64().expect("a count"))
        .sum();
    let stop = out.stop_object();
    assert!(marked > 0, "{stop}");
    assert_eq!(Some(marked), stop["lost_ring_full"].as_u64(), "{stop}");
    assert_eq!(
        stop["events_seen"].as_u64(),
        Some(lines.iter().filter(|e| e["event"] != "lost").count() as u64),
        "{stop}"
    );
    // Per socket, a change whose old state is not the last new state seen
    // follows a hole, and must say so. A new socket (from CLOSE, or a
    // listener's child) starts its history again.
    let mut last = std::collections::HashMap::new();
    let mut holes = 0;
    for e in lines.iter().filter(|e| e["event"] == "state") {
        let (old, new) = (&e["old_state"], &e["new_state"]);
        let born = old == "CLOSE" || (old == "LISTEN" && new == "SYN_RECV");
        if let Some(before) = last.insert(e["socket"].to_string(), new.clone())
            && !born
            && before != *old
        {
            holes += 1;
            assert_eq!(e["after_gap"], true, "after {before}: {e}");
        }
    }
    assert!(holes > 0, "no change followed a hole; {marked} lost");
}

/// Children waiting in a listener's accept queue belong to no process yet,
/// and a connection closed by its process to none any more: `-c -p` shows
/// `-` for them, as netstat does, not the listener's or closer's pid.
#[test]
fn sockets_no_file_holds_have_no_owner_in_the_live_view() {
    let ns = Netns::new("owners");
    let view = Tracer::start_live(&ns, &["-tanp", "--interval", "100"]);
    let mut listener = tests::listen(&ns, "127.0.0.1:7601", 16);
    let mut clients = tests::flood(&ns, "127.0.0.1:7601", 2);
    let rows = |table: &str, live: bool| -> Vec<String> {
        tests::tcp_rows(table, live)
            .into_iter()
            .filter(|r| r.contains(":7601"))
            .collect()
    };
    let netstat = rows(&ns.exec_ok(&["netstat", "-tanp"]), false);
    assert_eq!(netstat.len(), 5, "{netstat:?}");
    assert_eq!(
        netstat.iter().filter(|r| r.ends_with(" -")).count(),
        2,
        "{netstat:?}"
    );
    wait_until("the view's owners to be netstat's", || {
        rows(last_table(&view.output()), true) == netstat
    });
    // The clients close: their ends go on without a file.
    clients.close();
    wait_until("two FIN-WAIT-2 sockets in ss", || {
        ss_rows(&ns, ":7601")
            .iter()
            .filter(|r| r.2 == "FIN_WAIT2")
            .count()
            == 2
    });
    let netstat = rows(&ns.exec_ok(&["netstat", "-tanp"]), false);
    wait_until("the view's owners after the close", || {
        rows(last_table(&view.output()), true) == netstat
    });
    listener.close();
    let out = view.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
}

/// Sockets the kernel side's map evicted (`--max-sockets`) have an unknown
/// time in their state, never a lower bound such as enetstat's uptime: only
/// a socket older than enetstat may have one, and none is here.
#[test]
fn an_evicted_socket_has_no_age_rather_than_a_false_one() {
    let ns = Netns::new("evicted");
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json", "--max-sockets", "512"]);
    let mut listener = tests::listen(&ns, "127.0.0.1:7602", 1024);
    let mut clients = tests::flood(&ns, "127.0.0.1:7602", 600);
    clients.close();
    listener.close();
    tracer.wait_quiet();
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let stop = out.stop_object();
    assert!(stop["sockets_evicted"].as_u64() > Some(0), "{stop}");
    let events = out.events();
    let states: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "state").collect();
    assert!(
        states.iter().all(|e| e["prev_state_ms_at_least"].is_null()),
        "a lower bound for a socket born after start-up"
    );
    // The evicted ones' closes: no time at all in ESTABLISHED.
    let unknown = states
        .iter()
        .filter(|e| e["old_state"] == "ESTABLISHED" && e["prev_state_ms"].is_null())
        .count();
    assert!(unknown > 0, "no evicted socket's change seen");
}
