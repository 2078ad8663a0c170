//! Who opens the connections (owners counted by cgroup and by process in
//! the kernel, named by their cgroup v2 path) and what breaks next
//! (CLOSE_WAIT leaks, the ephemeral-port budget).

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Netns, Proc, Tracer, cgroup::Cgroup, scrape, serve, tcpload_bin, wait_limit};

const LISTEN: &str = "127.0.0.1:7700";
const ENDPOINT: &str = "127.0.0.1:9979";

/// N connects from a process in a cgroup the test made, beside other
/// traffic from the test's own: `-S` names that cgroup and that process
/// first, with exactly N opened, so does the metric of that cgroup,
/// `--cgroup` of its path counts its N and nothing else (and lists its N
/// rows), and `-E --json` gives each of its connects the cgroup's path.
#[test]
fn a_cgroup_that_storms_is_named_first_with_its_exact_count() {
    const N: u32 = 300;
    let ns = Netns::new("owners");
    let cgroup = Cgroup::new("storm");
    // One interval, ended by the stop: every connect falls in it.
    let summary = Tracer::start(&ns, &["-S", "600", "--json", "--metrics", ENDPOINT]);
    let events = Tracer::start(&ns, &["-E", "-n", "--json"]);
    // --cgroup needs the hierarchy in view: run beside the namespace.
    let only = Tracer::start_beside(&ns, &["-S", "600", "--json", "--cgroup", &cgroup.path]);
    let mut listener = tests::listen(&ns, LISTEN, 1024);
    let mut other = tests::flood(&ns, LISTEN, 20);
    let count = N.to_string();
    let mut storm = Proc::spawn(cgroup.command(
        &ns,
        &tcpload_bin(),
        &["flood", "--to", LISTEN, "--count", &count],
    ));
    storm.expect("flooded");
    lists_only_its_rows(&ns, &cgroup, storm.pid(), N);
    events.wait_quiet();
    let metrics = scrape::scrape(&ns, ENDPOINT);
    let series = format!(
        "enetstat_cgroup_connections_opened_total{{cgroup=\"{}\"}}",
        cgroup.path
    );
    assert_eq!(scrape::sample(&metrics, &series), u64::from(N), "{metrics}");
    let summary = summary.stop();
    let only = only.stop();
    let events = events.stop();
    other.close();
    storm.close();
    listener.close();

    let block: Value = serde_json::from_str(summary.stdout.lines().last().expect("a block"))
        .expect("a JSON block");
    let first = &block["top_cgroups"][0];
    assert_eq!(first["cgroup"], cgroup.path.as_str(), "{block}");
    assert_eq!(first["opened"], N, "{block}");
    assert_eq!(first["failed"], 0, "{block}");
    // The test's own: the other flood's 20 and the scrape's connect.
    let second = &block["top_cgroups"][1];
    assert_eq!(second["opened"], 21, "{block}");
    let program = &block["top_programs"][0];
    assert_eq!(program["pid"], storm.pid(), "{block}");
    assert_eq!(program["program"], "tcpload", "{block}");
    assert_eq!(program["cgroup"], cgroup.path.as_str(), "{block}");
    assert_eq!(program["opened"], N, "{block}");

    // --cgroup: that cgroup's connects and nothing else.
    let block: Value =
        serde_json::from_str(only.stdout.lines().last().expect("a block")).expect("a JSON block");
    assert_eq!(block["new_active"], N, "{block}");
    assert_eq!(
        block["top_cgroups"].as_array().map(Vec::len),
        Some(1),
        "{block}"
    );
    assert_eq!(
        block["top_cgroups"][0]["cgroup"],
        cgroup.path.as_str(),
        "{block}"
    );

    let all = events.events();
    let mine: Vec<&Value> = all.iter().filter(|e| e["pid"] == storm.pid()).collect();
    let connects = mine.iter().filter(|e| e["new_state"] == "SYN_SENT").count();
    assert_eq!(connects, N as usize, "{}", events.stdout);
    let elsewhere: Vec<&Value> = mine
        .iter()
        .map(|e| &e["cgroup"])
        .filter(|c| **c != cgroup.path.as_str())
        .collect();
    assert_eq!(elsewhere, Vec::<&Value>::new());
}

/// The listing with `--cgroup` keeps the rows whose owner's
/// /proc/PID/cgroup is in it: the `n` of process `pid`.
fn lists_only_its_rows(ns: &Netns, cgroup: &Cgroup, pid: u32, n: u32) {
    let enetstat = tests::enetstat_bin();
    let listing = ns.exec_ok(&[
        enetstat.to_str().unwrap(),
        "-tanp",
        "--cgroup",
        &cgroup.path,
    ]);
    let rows: Vec<&str> = listing.lines().filter(|l| l.starts_with("tcp")).collect();
    assert_eq!(rows.len(), n as usize, "{listing}");
    let owner = format!("{pid}/tcpload");
    assert!(rows.iter().all(|r| r.contains(&owner)), "{listing}");
}

/// A server keeps 5 accepted sockets open after their peers close: once
/// they have been in CLOSE_WAIT longer than `--close-wait-age`, `-S` names
/// the server's pid with exactly 5.
#[test]
fn a_server_that_never_closes_its_sockets_is_named_with_its_leak() {
    let ns = Netns::new("close-wait");
    let summary = Tracer::start(
        &ns,
        &[
            "-S",
            "0.3",
            "--json",
            "--close-wait-age",
            "1",
            "--metrics",
            ENDPOINT,
        ],
    );
    let mut server = serve(&ns, "127.0.0.1:7710", &["--accept", "5", "--hold"]);
    let mut clients = tests::flood(&ns, "127.0.0.1:7710", 5);
    for _ in 0..5 {
        server.expect("accepted");
    }
    let closed = Instant::now();
    clients.close();
    // The 5 sockets enter CLOSE_WAIT a few milliseconds apart, so a block
    // may fall between them and name fewer; a later one names all 5.
    let deadline = Instant::now() + wait_limit();
    loop {
        let out = summary.output();
        let last: Option<Value> = out
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok());
        if let Some(leak) = last.as_ref().and_then(|b| b["close_wait"].get(0).cloned()) {
            // Listed only once the age has passed.
            assert!(closed.elapsed() >= Duration::from_secs(1));
            assert_eq!(leak["pid"], server.pid(), "{leak}");
            assert_eq!(leak["program"], "tcpload", "{leak}");
            assert!(leak["oldest_s"].as_f64().unwrap() >= 1.0, "{leak}");
            let count = leak["count"].as_u64().unwrap();
            assert!((1..=5).contains(&count), "{leak}");
            if count == 5 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no CLOSE_WAIT leak of 5 named:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The metric's age is 10 s.
    let series = "enetstat_close_wait_sockets{program=\"tcpload\"}";
    let deadline = closed + Duration::from_secs(10) + wait_limit();
    loop {
        let metrics = scrape::scrape(&ns, ENDPOINT);
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok());
        if held == Some(5u64) {
            assert!(closed.elapsed() >= Duration::from_secs(10), "{metrics}");
            break;
        }
        assert!(Instant::now() < deadline, "no {series} 5 in\n{metrics}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = summary.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    server.close();
}

/// In a namespace whose port range holds 100 ports: after 80 connections
/// to one remote endpoint, the ports still held toward it (timewait
/// sockets of the connections the client closed first) are counted as `ss`
/// shows them, of 100; 100 held toward a second endpoint use every port,
/// and a 101st connect there finds none: `no_port`.
#[test]
fn the_ports_held_toward_one_remote_are_counted_against_the_range() {
    let ns = Netns::new("ports");
    ns.sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    // No port of a timewait socket reused for a new connect to the same
    // endpoint (loopback allows it a second on): 80 connects, 80 ports.
    ns.sysctl("net.ipv4.tcp_tw_reuse", "0");
    let summary = Tracer::start(&ns, &["-S", "600", "--json", "--metrics", ENDPOINT]);
    let events = Tracer::start(&ns, &["-E", "-n", "--json"]);
    tests::storm(&ns, "127.0.0.1:7000", 80, &["--workers", "1"]);
    let mut listener = tests::listen(&ns, "127.0.0.1:7100", 256);
    let mut held = tests::flood(&ns, "127.0.0.1:7100", 100);
    let mut last = tests::connect(&ns, "127.0.0.1:7100", &[]);
    last.expect("failed AddrNotAvailable");
    events.wait_quiet();
    let metrics = scrape::scrape(&ns, ENDPOINT);
    let series = "enetstat_ephemeral_ports_in_use{remote=\"127.0.0.1:7100\"}";
    assert_eq!(scrape::sample(&metrics, series), 100, "{metrics}");
    let out = summary.stop();
    let events = events.stop();
    held.close();
    listener.close();

    let block: Value =
        serde_json::from_str(out.stdout.lines().last().expect("a block")).expect("a JSON block");
    let pairs = block["ephemeral_ports"]
        .as_array()
        .expect("ephemeral_ports");
    let toward = |remote: &str| {
        pairs
            .iter()
            .find(|p| p["remote"] == remote && p["local"] == "127.0.0.1")
            .unwrap_or_else(|| panic!("no {remote} in {block}"))
    };
    assert_eq!(pairs[0]["remote"], "127.0.0.1:7100", "{block}");
    assert_eq!(toward("127.0.0.1:7100")["in_use"], 100, "{block}");
    assert_eq!(toward("127.0.0.1:7100")["time_wait"], 0, "{block}");
    // A connection whose server closed first holds no client port after
    // it: how many the client closed first is the storm's timing, so the
    // kernel's own list is the measure.
    let ss = ns.exec_ok(&["ss", "-tanH", "dst", "127.0.0.1:7000"]);
    let held = ss
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            local.rsplit_once(':')?.1.parse::<u16>().ok()
        })
        .filter(|port| (40_000..=40_099).contains(port))
        .count();
    assert!(held >= 40, "{ss}");
    assert_eq!(toward("127.0.0.1:7000")["in_use"], held, "{block}\n{ss}");
    assert_eq!(toward("127.0.0.1:7000")["range"], 100, "{block}");

    let all = events.events();
    let verdicts: Vec<&Value> = all
        .iter()
        .filter(|e| e["pid"] == last.pid() && e["new_state"] == "CLOSE")
        .map(|e| &e["failure"])
        .collect();
    assert_eq!(verdicts, [&Value::from("no_port")], "{}", events.stdout);
}

/// A listener that overflows and closes within one interval keeps its
/// overflows: the kernel side reads its drops as it leaves LISTEN.
#[test]
fn a_listener_closed_within_an_interval_keeps_its_overflows() {
    let ns = Netns::new("closed-listener");
    let summary = Tracer::start(&ns, &["-S", "600", "--json"]);
    // Backlog 1: two connections fill the queue, the other SYNs are dropped.
    let mut listener = tests::listen(&ns, "127.0.0.1:7400", 1);
    let mut flood = tests::flood(&ns, "127.0.0.1:7400", 10);
    // The connects closed, no SYN is retransmitted (1 s on, later in a slow
    // guest): what ss shows now is all the listener will drop.
    flood.close();
    let ss = ns.exec_ok(&["ss", "-tlmnH", "sport = :7400"]);
    let drops: u64 = ss
        .split(['(', ','])
        .find_map(|field| {
            field
                .trim()
                .strip_prefix('d')?
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no drop count in {ss}"));
    assert!(drops >= 1, "{ss}");
    listener.close();
    let out = summary.stop();
    let block: Value =
        serde_json::from_str(out.stdout.lines().last().expect("a block")).expect("a JSON block");
    let closed = block["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .find(|l| l["local"] == "127.0.0.1:7400")
        .unwrap_or_else(|| panic!("no closed listener in {block}"));
    assert_eq!(closed["closed"], true, "{block}");
    assert_eq!(closed["overflows"], drops, "{block}\n{ss}");
}
