//! `--metrics`: the Prometheus endpoint, scraped by a real Prometheus server
//! and by hand, in a namespace of the test's own. The storms go to
//! 127.0.0.2, and enetstat watches only that address, so that the scrapes'
//! own connections (127.0.0.1) are not counted.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tests::{
    Netns, STORM_ATTEMPTS, Tracer,
    scrape::{Prometheus, prometheus_counts_a_mixed_storm, sample},
    storm, wait_limit,
};

const STORM: &str = "127.0.0.2:7000";
const WATCHED: &str = "127.0.0.2/32";
const ENDPOINT: &str = "127.0.0.1:9977";

/// One HTTP exchange with the endpoint from inside `ns`.
fn exchange(ns: &Netns, request: &[u8]) -> String {
    tests::scrape::exchange(ns, ENDPOINT, request)
}

/// The body of `GET /metrics`, checked for 200.
fn scrape(ns: &Netns) -> String {
    tests::scrape::scrape(ns, ENDPOINT)
}

/// `enetstat --metrics` alone in `ns`, watching the storms' address.
fn serve_metrics(ns: &Netns) -> Tracer {
    Tracer::start(
        ns,
        &["--metrics", ENDPOINT, "--addr", WATCHED, "--stop-json"],
    )
}

#[test]
fn a_scrape_during_a_storm_counts_it_exactly_and_passes_promtool() {
    for attempt in 1..=STORM_ATTEMPTS {
        let ns = Netns::new("metrics-curl");
        let tracer = serve_metrics(&ns);
        let (opened, after) = scrape_a_storm(&ns);
        // A handshake's last ACK and the client's FIN on two CPUs at once
        // can make two children of one request; the kernel closes the
        // loser (seen on 6.1), a socket that ended too.
        let raced = after
            .lines()
            .find_map(|l| {
                l.strip_prefix("enetstat_tcp_transitions_total{old=\"SYN_RECV\",new=\"CLOSE\"} ")
            })
            .map_or(0, |n| n.parse::<u64>().expect("a count"));
        let counted = (
            opened,
            sample(&after, "enetstat_connections_closed_total") - raced,
            sample(&after, "enetstat_connect_duration_seconds_count"),
        );
        let gaps = sample(&after, "enetstat_events_lost_total{cause=\"gap\"}");
        // Changes no program saw (README, Known limits) are counted as
        // gaps: only such a run may fall short, and is run again.
        if counted != (2_000, 4_000, 2_000) && gaps > 0 && attempt < STORM_ATTEMPTS {
            eprintln!("storm {attempt}: {counted:?} counted, {gaps} gaps; again");
            continue;
        }
        assert_eq!(counted, (2_000, 4_000, 2_000), "{after}");
        check_with_promtool(&after);
        let out = tracer.stop();
        assert!(out.status.success(), "{:?}", out.stderr);
        assert_eq!(out.stop_object()["stop"], "metrics");
        return;
    }
}

/// A 2,000-connection storm in `ns`: the connects counted during it, and
/// the scrape once its 4,000 closes are in (or the wait is up).
fn scrape_a_storm(ns: &Netns) -> (u64, String) {
    let active = "enetstat_connections_opened_total{direction=\"active\"}";
    let before = sample(&scrape(ns), active);
    storm(ns, STORM, 2_000, &[]);
    let mut after = scrape(ns);
    let opened = sample(&after, active) - before;
    // The storm's last server sockets may still be closing as it returns.
    let closed = "enetstat_connections_closed_total";
    let deadline = Instant::now() + wait_limit();
    while sample(&after, closed) < 4_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = scrape(ns);
    }
    (opened, after)
}

/// `promtool check metrics` accepts the scrape.
fn check_with_promtool(after: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(after.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn bad_requests_get_their_answer_and_the_next_scrape_still_works() {
    let ns = Netns::new("metrics-bad");
    let tracer = serve_metrics(&ns);
    let status = |answer: &str| answer.lines().next().unwrap_or_default().to_string();
    let wrong_path = exchange(&ns, b"GET /other HTTP/1.1\r\n\r\n");
    assert_eq!(status(&wrong_path), "HTTP/1.1 404 Not Found");
    let wrong_method = exchange(&ns, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status(&wrong_method), "HTTP/1.1 405 Method Not Allowed");
    assert!(
        wrong_method.contains("\r\nAllow: GET\r\n"),
        "{wrong_method}"
    );
    // 1 MB without a line end: refused after the first 8 KiB.
    let garbage = exchange(&ns, &vec![b'x'; 1 << 20]);
    assert!(
        garbage.is_empty() || status(&garbage) == "HTTP/1.1 400 Bad Request",
        "{garbage}"
    );
    scrape(&ns);

    // A client that never finishes its request neither blocks a scrape nor
    // stays connected for long.
    ns.inside(|| {
        let mut slow = TcpStream::connect(ENDPOINT).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        slow.set_read_timeout(Some(wait_limit())).unwrap();
        let mut other = TcpStream::connect(ENDPOINT).unwrap();
        other.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        other.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        let mut rest = Vec::new();
        let closed = slow.read_to_end(&mut rest);
        assert!(
            closed.is_ok() && rest.is_empty(),
            "slow client: {closed:?} {rest:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited < wait_limit(),
            "dropped after {waited:?}"
        );
    });
    scrape(&ns);
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
}

#[test]
fn beside_the_event_log_the_same_programs_feed_both() {
    let ns = Netns::new("metrics-beside");
    let tracer = Tracer::start(
        &ns,
        &["-E", "--json", "--metrics", ENDPOINT, "--addr", WATCHED],
    );
    storm(&ns, STORM, 100, &[]);
    tracer.wait_quiet();
    let counted = sample(
        &scrape(&ns),
        "enetstat_tcp_transitions_total{old=\"CLOSE\",new=\"SYN_SENT\"}",
    );
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let logged = tracer_connects(&out.stdout);
    assert_eq!((counted, logged), (100, 100));
}

/// CLOSE -> SYN_SENT lines of an NDJSON event log.
fn tracer_connects(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["old_state"] == "CLOSE" && v["new_state"] == "SYN_SENT")
        .count() as u64
}

#[test]
fn a_real_prometheus_counts_a_storm_of_known_size_exactly() {
    let ns = Netns::new("metrics-prom");
    let tracer = serve_metrics(&ns);
    let prometheus = Prometheus::start(&ns, ENDPOINT, "");
    let result = prometheus_counts_a_mixed_storm(&ns, &prometheus);
    drop(prometheus);
    let out = tracer.stop();
    assert_eq!(result, Ok(()));
    assert!(out.status.success(), "{:?}", out.stderr);
    assert_eq!(out.stop_object()["lost"], 0);
}

#[test]
fn with_every_namespace_watched_each_gets_its_own_netns_label() {
    let (a, b) = (Netns::new("metrics-all-a"), Netns::new("metrics-all-b"));
    // The endpoint listens in `a`; the programs watch every namespace.
    let tracer = Tracer::start(
        &a,
        &["--netns", "all", "--metrics", ENDPOINT, "--addr", WATCHED],
    );
    storm(&a, STORM, 100, &[]);
    storm(&b, STORM, 50, &[]);
    let text = scrape(&a);
    for (ns, connections) in [(&a, 100), (&b, 50)] {
        let netns = format!("netns=\"{}\"", ns.inode());
        let series = |rest: &str| format!("{{{netns}{rest}}}");
        assert_eq!(
            sample(
                &text,
                &format!(
                    "enetstat_connections_opened_total{}",
                    series(",direction=\"active\"")
                )
            ),
            connections
        );
        assert_eq!(
            sample(
                &text,
                &format!("enetstat_connect_duration_seconds_count{}", series(""))
            ),
            connections
        );
        // TIME_WAIT is read from the namespace's own /proc (a client port
        // may be reused from TIME_WAIT on loopback, so up to one per connection).
        let time_wait = sample(&text, &format!("enetstat_time_wait_sockets{}", series("")));
        assert!((1..=connections).contains(&time_wait), "{time_wait}");
    }
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
}
