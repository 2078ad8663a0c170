//! Who opens the connections: owners counted by cgroup and by process in
//! the kernel, named by their cgroup v2 path.

use serde_json::Value;
use tests::{Netns, Proc, Tracer, cgroup::Cgroup, tcpload_bin};

const LISTEN: &str = "127.0.0.1:7700";

/// N connects from a process in a cgroup the test made, beside other
/// traffic from the test's own: `-S` names that cgroup and that process
/// first, with exactly N opened, and `-E --json` gives each of its
/// connects the cgroup's path.
#[test]
fn a_cgroup_that_storms_is_named_first_with_its_exact_count() {
    const N: u32 = 300;
    let ns = Netns::new("owners");
    let cgroup = Cgroup::new("storm");
    // One interval, ended by the stop: every connect falls in it.
    let summary = Tracer::start(&ns, &["-S", "600", "--json"]);
    let events = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let mut listener = tests::listen(&ns, LISTEN, 1024);
    let mut other = tests::flood(&ns, LISTEN, 20);
    let count = N.to_string();
    let mut storm = Proc::spawn(cgroup.command(
        &ns,
        &tcpload_bin(),
        &["flood", "--to", LISTEN, "--count", &count],
    ));
    storm.expect("flooded");
    events.wait_quiet();
    let summary = summary.stop();
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
    let second = &block["top_cgroups"][1];
    assert_eq!(second["opened"], 20, "{block}");
    let program = &block["top_programs"][0];
    assert_eq!(program["pid"], storm.pid(), "{block}");
    assert_eq!(program["program"], "tcpload", "{block}");
    assert_eq!(program["cgroup"], cgroup.path.as_str(), "{block}");
    assert_eq!(program["opened"], N, "{block}");

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
