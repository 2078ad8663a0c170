//! `enetstat -E` against real traffic in a namespace of the test's own:
//! exact per-socket transition sequences, owners, and counts.

use std::collections::BTreeMap;

use serde_json::Value;
use tests::{
    Netns, Proc, STORM_ATTEMPTS, Tracer, connect,
    kernel::rewrite_socket_records,
    sequences::{
        assert_graceful, client_end, connect_accept_close, graceful_sequences, lifetimes,
        netstat_endpoint, per_socket, seq, sorted, step,
    },
    serve, storm, tcpload_bin, unanswered_connect,
};

fn graceful_close(tag: &str, addr: &str) {
    let ns = Netns::new(tag);
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let owners = connect_accept_close(&ns, addr, false);
    tracer.wait_quiet();
    assert_graceful(&ns, &tracer.stop(), owners);
}

#[test]
fn a_flood_past_the_socket_map_leaves_later_connections_exact() {
    let ns = Netns::new("map-flood");
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json", "--max-sockets", "1024"]);
    // An unprivileged user's listener that never accepts, and 700 connects
    // to it: 1,400 sockets for a map of 1,024.
    let as_nobody = |args: &[&str]| {
        let mut cmd = ns.command("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(tcpload_bin())
            .args(args);
        Proc::spawn(cmd)
    };
    let mut listener = as_nobody(&["listen", "--listen", "127.0.0.1:7700", "--backlog", "1024"]);
    listener.expect("listening");
    let mut flood = as_nobody(&["flood", "--to", "127.0.0.1:7700", "--count", "700"]);
    flood.expect("flooded");
    let (server, client) = connect_accept_close(&ns, "127.0.0.1:8080", false);
    tracer.wait_quiet();
    let out = tracer.stop();
    flood.close();
    listener.close();
    assert!(out.status.success(), "{:?}", out.stderr);
    let on_8080: Vec<Value> = out
        .events()
        .into_iter()
        .filter(|e| {
            [&e["local"], &e["remote"]]
                .iter()
                .any(|a| a.as_str().is_some_and(|a| a.ends_with(":8080")))
        })
        .collect();
    assert_eq!(
        sorted(per_socket(&on_8080)),
        graceful_sequences(server, client, client_end(&on_8080)),
        "{}",
        out.stdout
    );
    // Added: the flood's 1,401 sockets and our 3; removed: our 3 (freed);
    // held: at most 1,024.
    let stop = out.stop_object();
    let evicted = stop["sockets_evicted"].as_u64().unwrap();
    assert!(evicted >= 1_401 - 1_024, "{stop}");
    assert!(evicted <= 1_401, "{stop}");
    assert_eq!(stop["sockets_untracked"], 0, "{stop}");
    assert_eq!(stop["listeners_evicted"], 0, "{stop}");
}

#[test]
fn ipv4_connect_accept_close() {
    graceful_close("v4", "127.0.0.1:8080");
}

#[test]
fn ipv6_connect_accept_close() {
    graceful_close("v6", "[::1]:8080");
}

/// Every TCP event on the machine passes our programs, whatever its
/// namespace: attaching while another namespace storms must not leave the
/// two programs of each tracepoint out of step (each change reported once,
/// none twice).
#[test]
fn attached_during_a_storm_elsewhere_reports_each_change_once() {
    let busy = Netns::new("busy");
    let mut cmd = busy.command(tcpload_bin());
    cmd.args(["storm", "--listen", "127.0.0.1:7000", "--count", "1000000"]);
    // Killed on drop, when this test ends.
    let _storm = Proc::spawn(cmd);
    std::thread::sleep(std::time::Duration::from_millis(300));
    graceful_close("v4-busy", "127.0.0.1:8080");
}

#[test]
fn reset_close_reports_the_reset() {
    let ns = Netns::new("rst");
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let (server, client) = connect_accept_close(&ns, "127.0.0.1:8081", true);
    tracer.wait_quiet();
    let out = tracer.stop();
    let expected = vec![
        seq(server, &["CLOSE->LISTEN", "LISTEN->CLOSE"]),
        seq(
            client,
            &[
                "CLOSE->SYN_SENT",
                "SYN_SENT->ESTABLISHED",
                "ESTABLISHED->CLOSE",
                "send_reset:CLOSE",
            ],
        ),
        seq(
            server,
            &[
                "LISTEN->SYN_RECV",
                "SYN_RECV->ESTABLISHED",
                "receive_reset:ESTABLISHED",
                "ESTABLISHED->CLOSE",
            ],
        ),
    ];
    assert_eq!(
        sorted(per_socket(&out.events())),
        sorted(expected),
        "{}",
        out.stdout
    );
    // The accepted socket's events are inbound; the listener's own and the
    // client's are not.
    assert_eq!(
        inbound_steps(&out.events()),
        [
            "ESTABLISHED->CLOSE",
            "LISTEN->SYN_RECV",
            "SYN_RECV->ESTABLISHED",
            "receive_reset:ESTABLISHED"
        ],
        "{}",
        out.stdout
    );
}

/// The steps of the events marked `inbound`, sorted.
fn inbound_steps(events: &[Value]) -> Vec<String> {
    let mut steps: Vec<String> = events
        .iter()
        .filter(|e| e["inbound"].as_bool().unwrap())
        .map(|e| step(e).0)
        .collect();
    steps.sort();
    steps
}

#[test]
fn refused_connect() {
    let ns = Netns::new("refused");
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let mut client = connect(&ns, "127.0.0.1:9", &[]);
    client.expect("failed ConnectionRefused");
    assert!(client.wait().success());
    tracer.wait_quiet();
    let out = tracer.stop();
    let pid = client.pid();
    let expected = vec![
        // The reset this host sends for the closed port belongs to no socket.
        vec![("send_reset:UNKNOWN".to_string(), None)],
        seq(
            pid,
            &[
                "CLOSE->SYN_SENT",
                "receive_reset:SYN_SENT",
                "SYN_SENT->CLOSE",
            ],
        ),
    ];
    assert_eq!(
        sorted(per_socket(&out.events())),
        sorted(expected),
        "{}",
        out.stdout
    );
    // The reset for no socket has no owner by nature: it is counted apart,
    // not as an owner enetstat failed to find.
    let stop = out.stop_object();
    let counted = (stop["owners_unknown"].as_u64(), stop["no_socket"].as_u64());
    assert_eq!(counted, (Some(0), Some(1)), "{stop}");
    // That reset refuses a connect made to this host: inbound.
    assert_eq!(
        inbound_steps(&out.events()),
        ["send_reset:UNKNOWN"],
        "{}",
        out.stdout
    );
}

/// A reset sent by a listener (here for an ACK of no connection) names the
/// peer it goes to, not the listener's own wildcard endpoints: the live view
/// needs the peer to drop the TIME_WAIT such a reset kills.
#[test]
fn a_listener_reset_names_its_peer() {
    let ns = Netns::new("stray-ack");
    let _server = serve(&ns, "127.0.0.1:7000", &[]);
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let mut stray = ns.command(tcpload_bin());
    stray.args([
        "stray-ack",
        "--from",
        "127.0.0.1:40000",
        "--to",
        "127.0.0.1:7000",
    ]);
    let mut stray = Proc::spawn(stray);
    stray.expect("sent");
    assert!(stray.wait().success());
    tracer.wait_quiet();
    let out = tracer.stop();
    let resets: Vec<(String, String, String)> = out
        .events()
        .iter()
        .filter(|e| e["event"] == "send_reset")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("local"), s("remote"), s("state"))
        })
        .collect();
    assert_eq!(
        resets,
        [(
            "127.0.0.1:7000".to_string(),
            "127.0.0.1:40000".to_string(),
            "LISTEN".to_string()
        )],
        "{}",
        out.stdout
    );
}

#[test]
fn dropped_syn_is_retransmitted() {
    for attempt in 1..=STORM_ATTEMPTS {
        let ns = Netns::new("syndrop");
        let (out, client) = unanswered_connect(&ns, 9999, || ());
        // How many SYNs the kernel retransmitted depends on its timeout policy
        // (linear SYN timeouts in 6.x); its own counter says how many it sent.
        let retransmits = ns.tcp_ext("TCPSynRetrans");
        assert!(retransmits >= 2, "kernel retransmitted {retransmits} SYNs");
        let mut steps = vec!["CLOSE->SYN_SENT"];
        steps.extend(std::iter::repeat_n(
            "retransmit:SYN_SENT",
            retransmits as usize,
        ));
        steps.push("SYN_SENT->CLOSE");
        let expected = vec![seq(client, &steps)];
        let got = per_socket(&out.events());
        let reported = got
            .iter()
            .flatten()
            .filter(|s| s.0.starts_with("retransmit:"))
            .count();
        // The development machine's blind spot (README, Known limits) may
        // hide a retransmit; enetstat must then count it as a gap.
        if got != expected && out.gaps() > 0 && attempt < STORM_ATTEMPTS {
            assert_eq!(out.gaps(), retransmits - reported as u64, "{}", out.stdout);
            eprintln!(
                "attempt {attempt}: {} retransmits unseen and counted; again",
                out.gaps()
            );
            continue;
        }
        assert_eq!(got, expected, "{}", out.stdout);
        assert_eq!(out.gaps(), 0, "{:?}", out.stderr);
        return;
    }
}

/// SYN retransmits the kernel counts for a connect (`total_retrans`) but
/// no event reports are counted as gaps. Here they are retransmits an
/// output rule refuses, which 6.1 and 6.12 count without running the
/// tracepoint (5.10 and 6.18 run it: no gap).
#[test]
fn unreported_syn_retransmits_the_kernel_counted_are_gaps() {
    let ns = Netns::new("synrefused");
    let (out, _) = unanswered_connect(&ns, 9998, || ns.drop_outgoing_syns_to(9998));
    let events = out.events();
    let close = events
        .iter()
        .find(|e| e["event"] == "state" && e["new_state"] == "CLOSE")
        .unwrap_or_else(|| panic!("no close in {}", out.stdout));
    let counted = close["total_retransmits"]
        .as_u64()
        .expect("total_retransmits");
    assert_eq!(counted, ns.tcp_ext("TCPSynRetrans"), "{close}");
    let reported = events.iter().filter(|e| e["event"] == "retransmit").count() as u64;
    eprintln!("retransmits: {counted} counted by the kernel, {reported} reported");
    assert!(counted > 0, "the kernel retransmitted no SYN");
    assert_eq!(out.gaps(), counted - reported, "{}", out.stdout);
}

#[test]
fn json_and_text_carry_the_same_facts() {
    let ns = Netns::new("jsontext");
    let json = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let text = Tracer::start(&ns, &["-E", "-n"]);
    connect_accept_close(&ns, "127.0.0.1:8082", false);
    json.wait_quiet();
    text.wait_quiet();
    let (json, text) = (json.stop(), text.stop());
    let events = json.events();
    let mut lines = text.stdout.lines();
    assert!(lines.next().unwrap().starts_with("Time "), "header first");
    let lines: Vec<&str> = lines.collect();
    assert_eq!(events.len(), lines.len());
    assert_eq!(events.len(), 12);
    for (ev, line) in events.iter().zip(&lines) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let owner = format!("{}/{}", ev["pid"], ev["program"].as_str().unwrap());
        assert_eq!(cols[1], owner, "{line}");
        assert_eq!(cols[2], ev["proto"], "{line}");
        // netstat writes IPv4 endpoints as host:port, like JSON does.
        assert_eq!(cols[3], netstat_endpoint(&ev["local"]), "{line}");
        assert_eq!(cols[4], netstat_endpoint(&ev["remote"]), "{line}");
        assert_eq!(
            format!("{} {} {}", cols[5], cols[6], cols[7]),
            format!(
                "{} -> {}",
                ev["old_state"].as_str().unwrap(),
                ev["new_state"].as_str().unwrap()
            ),
            "{line}"
        );
        // Each tracer's kernel program stamps its own clock reads, so the two
        // runs' milliseconds differ slightly; the kind of value must agree.
        match (&ev["prev_state_ms"], &ev["prev_state_ms_at_least"]) {
            (Value::Number(_), Value::Null) => assert!(cols[8].parse::<f64>().is_ok(), "{line}"),
            (Value::Null, Value::Number(_)) => assert!(cols[8].starts_with('>'), "{line}"),
            _ => assert_eq!(cols[8], "-", "{line}"),
        }
        assert_eq!(cols[9], ev["retransmits"].to_string(), "{line}");
    }
}

#[test]
fn storm_of_20000_connections_loses_nothing() {
    const N: u64 = 20_000;
    for attempt in 1..=STORM_ATTEMPTS {
        let ns = Netns::new("storm");
        let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
        storm(&ns, "127.0.0.1:7000", N, &["--workers", "4"]);
        tracer.wait_quiet();
        let out = tracer.stop();
        let events = out.events();
        // Per connection: 5 client transitions (through TIME_WAIT) and 5 for
        // the accepted child (through LAST_ACK -> CLOSE); plus the
        // listener's 2.
        let mut steps = BTreeMap::new();
        for e in events.iter().filter(|e| e["event"] == "state") {
            *steps.entry(step(e).0).or_insert(0) += 1;
        }
        // Losses the kernel side counted (a full ring, skipped runs, gaps in
        // a socket's history) come first: they explain any shortfall below.
        let (seen, lost, _) = out.summary();
        let gaps = out.gaps();
        if lost > 0 && lost == gaps && attempt < STORM_ATTEMPTS {
            // Even then nothing is reported twice.
            assert!(steps.values().all(|&n| n <= N), "{steps:?}");
            eprintln!(
                "storm {attempt}: {gaps} gaps counted ({:?}); again",
                out.stderr
            );
            continue;
        }
        assert_eq!(lost, 0, "{:?}", out.stderr);
        lives_are_one_of_each_shape(&events, &steps, N);
        assert_eq!(seen, events.len() as u64);
        return;
    }
}

/// Each socket's life in a storm of `n` connections, start to CLOSE or
/// TIME_WAIT, as a sequence of states: every client and every accepted
/// child lived exactly one of these, the listener its own; and the changes
/// add up.
fn lives_are_one_of_each_shape(events: &[Value], steps: &BTreeMap<String, u64>, n: u64) {
    // Each socket's life, start to CLOSE or TIME_WAIT, as a sequence of
    // states: every client and every accepted child lived exactly one of
    // these, the listener its own.
    // A client ends in TIME_WAIT, or handed over as an orphan in
    // FIN_WAIT2 before the server's FIN (see `client_end`).
    let client = |end| {
        [
            "CLOSE",
            "SYN_SENT",
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            end,
        ]
    };
    let child = [
        "LISTEN",
        "SYN_RECV",
        "ESTABLISHED",
        "CLOSE_WAIT",
        "LAST_ACK",
        "CLOSE",
    ];
    // A handshake's last ACK and the client's FIN, handled on two CPUs
    // at once, can both turn the request into a child; the kernel keeps
    // one and closes the other (6.1 does this here). The loser has the
    // winner's endpoints and no other state.
    let raced = ["LISTEN", "SYN_RECV", "CLOSE"];
    let lives = lifetimes(events);
    let count = |states: &[&str]| lives.iter().filter(|(s, _)| s == states).count() as u64;
    let clients = count(&client("TIME_WAIT")) + count(&client("FIN_WAIT2"));
    let (children, raced_children) = (count(&child), count(&raced));
    assert_eq!((clients, children), (n, n), "{steps:?}");
    assert_eq!(count(&["CLOSE", "LISTEN", "CLOSE"]), 1);
    assert_eq!(
        clients + children + raced_children + 1,
        lives.len() as u64,
        "lives of other shapes: {steps:?}"
    );
    let winners: std::collections::HashSet<&(String, String)> = lives
        .iter()
        .filter(|(s, _)| s == &child)
        .map(|(_, tuple)| tuple)
        .collect();
    for (_, tuple) in lives.iter().filter(|(s, _)| s == &raced) {
        assert!(
            winners.contains(tuple),
            "a raced child {tuple:?} with no winner"
        );
    }
    let states: u64 = steps.values().sum();
    assert_eq!(states, 10 * n + 2 + 2 * raced_children, "{steps:?}");
}

#[test]
fn a_rewritten_socket_record_makes_a_gap_or_a_duplicate() {
    let ns = Netns::new("rewrite");
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let mut server = serve(&ns, "127.0.0.1:7200", &[]);
    let mut client = connect(&ns, "127.0.0.1:7200", &[]);
    client.expect("connected");
    server.expect("accepted");
    tracer.wait_quiet();

    // Behind the kernel side's back: the client "was last seen" in
    // SYN_SENT, so its next change (ESTABLISHED -> FIN_WAIT1) follows a gap;
    // the accepted child "was last seen" going ESTABLISHED -> CLOSE_WAIT,
    // so that change, when it comes, looks like a second report of it.
    let (client_pid, server_pid) = (client.pid(), server.pid());
    let rewritten = rewrite_socket_records(tracer.pid(), |tgid, last_seen| match last_seen {
        (1, 2) if tgid == client_pid => Some((2, 7)),
        (1, 3) if tgid == server_pid => Some((8, 1)),
        _ => None,
    });
    assert_eq!(rewritten, 2);

    client.close();
    server.expect("closed");
    tracer.wait_quiet();
    let out = tracer.stop();
    let (_, lost, _) = out.summary();
    assert_eq!((lost, out.gaps()), (1, 1), "{:?}", out.stderr);
    let events = out.events();
    let after_rewrite: Vec<(String, bool)> = events
        .iter()
        .filter(|e| e["event"] == "state")
        .skip_while(|e| e["new_state"] != "ESTABLISHED" || e["old_state"] != "SYN_RECV")
        .skip(1)
        .map(|e| (step(e).0, e["after_gap"].as_bool().unwrap()))
        .collect();
    let side = |of: &dyn Fn(&str) -> bool| -> Vec<(String, bool)> {
        after_rewrite
            .iter()
            .filter(|(s, _)| of(s))
            .cloned()
            .collect()
    };
    assert_eq!(
        side(&|s| s.contains("FIN_WAIT") || s.ends_with("TIME_WAIT")),
        [
            ("ESTABLISHED->FIN_WAIT1".to_string(), true),
            ("FIN_WAIT1->FIN_WAIT2".to_string(), false),
            (client_end(&events).to_string(), false),
        ],
        "{}",
        out.stdout
    );
    assert_eq!(
        side(&|s| s.contains("CLOSE_WAIT") || s.starts_with("LAST_ACK")),
        [
            ("CLOSE_WAIT->LAST_ACK".to_string(), false),
            ("LAST_ACK->CLOSE".to_string(), false),
        ],
        "{}",
        out.stdout
    );
    let gap = events.iter().find(|e| e["after_gap"] == true).unwrap();
    assert_eq!(gap["prev_state_ms"], Value::Null, "{gap}");
    assert_eq!(gap["prev_state_ms_at_least"], Value::Null, "{gap}");
}

#[test]
fn a_reset_sent_for_no_socket_carries_the_kernels_reason() {
    let ns = Netns::new("reset-reason");
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let mut refused = connect(&ns, "127.0.0.1:9", &[]);
    refused.expect("failed ConnectionRefused");
    tracer.wait_quiet();
    let out = tracer.stop();
    let events = out.events();
    let reset = events
        .iter()
        .find(|e| e["event"] == "send_reset" && e["local"] == "127.0.0.1:9")
        .unwrap_or_else(|| panic!("no reset sent from port 9 in\n{}", out.stdout));
    let named = tests::kernel::names_reset_reasons();
    let want = if named {
        "no_socket".into()
    } else {
        Value::Null
    };
    assert_eq!(reset["reset_reason"], want, "{reset}");
    assert_eq!(out.stop_object()["reset_reasons"], named);
    // No other event claims a reason.
    assert!(
        events
            .iter()
            .filter(|e| e["event"] != "send_reset")
            .all(|e| e["reset_reason"].is_null())
    );
}

#[test]
fn with_drops_the_log_names_the_dropped_syn_by_the_kernels_reason() {
    let ns = Netns::new("drops");
    ns.drop_first_syn_to(7600);
    let tracer = Tracer::start(&ns, &["-E", "-n", "--json", "--drops", "--port", "7600"]);
    let mut server = serve(&ns, "127.0.0.1:7600", &[]);
    let mut client = connect(&ns, "127.0.0.1:7600", &[]);
    client.expect("connected");
    server.expect("accepted");
    client.close();
    server.expect("closed");
    tracer.wait_quiet();
    let out = tracer.stop();
    let events = out.events();
    if !tests::kernel::names_drop_reasons() {
        // Before 5.17 the kernel says no reason: no drop is logged, and
        // the note says why.
        assert!(
            events.iter().all(|e| e["event"] != "drop"),
            "{}",
            out.stdout
        );
        let note = "enetstat: note: drops are not counted: this kernel's skb:kfree_skb takes (struct sk_buff *, void *)";
        assert!(out.stderr.iter().any(|l| l == note), "{:?}", out.stderr);
        return;
    }
    let dropped: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "drop" && e["drop_reason"] == "netfilter_drop")
        .collect();
    assert_eq!(dropped.len(), 1, "{}", out.stdout);
    // The dropped SYN is the client's: from its port, to the listener.
    let connected = events
        .iter()
        .find(|e| e["old_state"] == "SYN_SENT" && e["new_state"] == "ESTABLISHED")
        .expect("the connect");
    assert_eq!(dropped[0]["local"], "127.0.0.1:7600", "{}", dropped[0]);
    assert_eq!(dropped[0]["remote"], connected["local"], "{}", dropped[0]);
}
