//! `--self-cost`: what enetstat reports its programs cost is what the
//! kernel's own statistics say (bpftool). Alone in its binary: the
//! programs run for every TCP event on the machine, so another test's
//! traffic would run them between the two readings.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use tests::{Netns, Tracer, sh, storm};

/// Connections in the storm.
const CONNECTIONS: u64 = 2000;

/// Runs of each program (by id) as bpftool shows them.
fn bpftool_runs() -> HashMap<u64, u64> {
    let listing: Value = serde_json::from_str(&sh("bpftool", &["prog", "show", "-j"])).unwrap();
    listing
        .as_array()
        .expect("a list of programs")
        .iter()
        .map(|p| {
            let id = p["id"].as_u64().unwrap();
            (id, p["run_cnt"].as_u64().unwrap_or(0))
        })
        .collect()
}

#[test]
fn the_summary_reports_the_program_runs_bpftool_counts() {
    let ns = Netns::new("self-cost");
    let tracer = Tracer::start(&ns, &["-S", "1", "--json", "--self-cost", "-n"]);
    let before = bpftool_runs();
    storm(&ns, "127.0.0.1:7000", CONNECTIONS, &[]);
    // The storm's last changes (server sides closing) and a block after them.
    std::thread::sleep(tests::slowed(Duration::from_secs(2)));
    let after = bpftool_runs();
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);

    // Runs per program over every block, by program id.
    let mut reported: HashMap<u64, (String, u64)> = HashMap::new();
    let mut opened = 0;
    for block in out.events() {
        opened += block["new_active"].as_u64().unwrap() + block["new_passive"].as_u64().unwrap();
        let cost = &block["self_cost"];
        for p in cost["programs"].as_array().expect("self_cost.programs") {
            let id = p["id"].as_u64().unwrap();
            let entry = reported
                .entry(id)
                .or_insert((p["program"].as_str().unwrap().to_string(), 0));
            entry.1 += p["runs"].as_u64().unwrap();
        }
    }
    assert_eq!(opened, 2 * CONNECTIONS, "{}", out.stdout);
    let set_state = reported
        .iter()
        .find(|(_, (name, _))| name == "inet_sock_set_state")
        .map(|(id, _)| *id)
        .expect("inet_sock_set_state reported");
    for (id, (name, runs)) in &reported {
        let counted = after[id] - before.get(id).copied().unwrap_or(0);
        // The blocks also hold the runs between start-up and `before` and
        // between `after` and the stop: none in a quiet namespace, a few
        // where the machine itself has TCP traffic.
        let slack = 20 + counted / 200;
        assert!(
            runs.abs_diff(counted) <= slack,
            "{name} (id {id}): enetstat says {runs} runs, bpftool {counted}"
        );
    }
    // A connection's two ends change state 10 times in all, each change
    // run by the first program or, where the kernel skipped it, the second.
    let per_connection = reported[&set_state].1 as f64 / CONNECTIONS as f64;
    assert!(
        (9.0..=10.5).contains(&per_connection),
        "{per_connection} runs per connection"
    );
    // The stop object carries the totals.
    let stop = out.stop_object();
    let total: u64 = stop["self_cost"]["programs"]
        .as_array()
        .expect("the stop object's self_cost")
        .iter()
        .map(|p| p["runs"].as_u64().unwrap())
        .sum();
    let blocks: u64 = reported.values().map(|(_, runs)| runs).sum();
    assert!(total >= blocks, "stop {total} < blocks {blocks}");
    assert!(
        stop["self_cost"]["kernel_ns"].as_u64().unwrap() > 0,
        "{stop}"
    );
}

/// Without the flag nothing is measured and nothing is shown.
#[test]
fn without_the_flag_nothing_is_measured() {
    let ns = Netns::new("no-self-cost");
    let tracer = Tracer::start(&ns, &["-S", "0.2", "--json", "-n"]);
    std::thread::sleep(tests::slowed(Duration::from_millis(500)));
    let out = tracer.stop();
    assert!(out.events().iter().all(|b| b["self_cost"].is_null()));
    assert!(out.stop_object()["self_cost"].is_null());
}
