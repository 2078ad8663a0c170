//! The tracer-cost scenario: one storm per enetstat mode and way of
//! closing, with `--self-cost` (the kernel's program statistics, on while
//! enetstat runs). Kernel cost per program comes from those statistics as
//! bpftool lists them; the tracer's own CPU from its threads' schedstat.
//! Statistics add two clock reads to every run, so these storms are apart
//! from the rate table's.

use std::{collections::HashMap, fmt::Write as _, process::Command};

use anyhow::{Context as _, Result};
use netstat_common::{DROP_PROGRAM, RESET_FUNCTIONS, TRACEPOINTS};
use tests::Tracer;

use crate::{
    bench_kit::{Netns, WORKERS, cpu_ns, storm_command, storm_rate},
    release_bin,
};

/// The modes measured, with their flags (`--self-cost` added).
const MODES: [(&str, &[&str]); 5] = [
    ("-E > file", &["-E", "-n"]),
    ("-E --json > file", &["-E", "-n", "--json"]),
    ("-S", &["-S", "1"]),
    ("--metrics", &["--metrics", "127.0.0.1:9977"]),
    ("-c -tan > file", &["-c", "-tan"]),
];

/// Runs and run time of each of our programs (by name), as bpftool shows.
fn program_stats() -> Result<HashMap<String, (u64, u64)>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .context("running bpftool")?;
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ours: Vec<&str> = TRACEPOINTS
        .iter()
        .flat_map(|t| [t.name, t.second])
        .chain(RESET_FUNCTIONS)
        .chain([DROP_PROGRAM])
        .collect();
    let mut stats = HashMap::new();
    for p in listing.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        if ours.contains(&name) {
            let entry = stats.entry(name.to_string()).or_insert((0, 0));
            entry.0 += p["run_cnt"].as_u64().unwrap_or(0);
            entry.1 += p["run_time_ns"].as_u64().unwrap_or(0);
        }
    }
    Ok(stats)
}

/// One mode's cost in one storm.
struct Cost {
    /// Per program: runs per connection, ns per run.
    programs: Vec<(String, f64, f64)>,
    kernel_us_per_connection: f64,
    user_ns_per_event: f64,
    rate: f64,
}

fn measure(flags: &[&str], connections: u64, rst: bool) -> Result<Cost> {
    let ns = Netns::new("bench");
    let mut args = flags.to_vec();
    args.push("--self-cost");
    let enetstat = release_bin("enetstat");
    // The live view's first table says it is attached; the others' ready
    // record does.
    let tracer = match flags[0] {
        "-c" => Tracer::start_live_program(&ns, &enetstat, &args[1..], "Proto"),
        _ => Tracer::start_program(&ns, &enetstat, &args),
    };
    let pid = tracer.pid();
    let (before, cpu_before) = (program_stats()?, cpu_ns(pid));
    let rate = storm_rate(
        &storm_command(&ns, connections, rst)
            .output()
            .context("running tcpload storm")?,
    )?;
    if flags[0] == "-E" {
        tracer.wait_quiet();
    } else {
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let (after, cpu_after) = (program_stats()?, cpu_ns(pid));
    tracer.stop();
    let n = connections as f64;
    let mut programs: Vec<(String, f64, f64)> = after
        .iter()
        .filter_map(|(name, &(runs, ns))| {
            let (runs0, ns0) = before.get(name).copied().unwrap_or((0, 0));
            let runs = runs.saturating_sub(runs0);
            (runs > 0).then(|| {
                let ns = ns.saturating_sub(ns0);
                (name.clone(), runs as f64 / n, ns as f64 / runs as f64)
            })
        })
        .collect();
    programs.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
    let kernel_ns: f64 = programs.iter().map(|(_, runs, ns)| runs * ns * n).sum();
    // The storm's events, as the kernel side reports them: per connection
    // 5 client + 5 server state changes on a normal close; with a reset,
    // 3 + 3 and the reset sent and received (the storm table's count).
    let events = n * if rst { 8.0 } else { 10.0 };
    Ok(Cost {
        programs,
        kernel_us_per_connection: kernel_ns / n / 1000.0,
        user_ns_per_event: cpu_after.saturating_sub(cpu_before) as f64 / events,
        rate,
    })
}

/// The cost section of bench/RESULTS.md.
pub fn table(connections: u64) -> Result<String> {
    let mut s = format!(
        "## Tracer cost: {connections} connections per storm, {WORKERS} client + {WORKERS} server threads, with --self-cost\n\n\
Kernel: the kernel's statistics of enetstat's programs (`kernel.bpf_stats_enabled`, as bpftool shows them), over the storm; \
they add two clock reads per run. Userspace: the tracer's CPU time (`/proc/PID/task/*/schedstat`) per event of the storm (10 per connection on a normal close, 8 with a reset: 6 state changes and 2 resets). One storm per row.\n\n\
| close | mode | conn/s | programs: runs per connection × ns per run | kernel µs/connection | userspace ns/event |\n|---|---|---|---|---|---|\n"
    );
    for rst in [false, true] {
        for (label, flags) in MODES {
            println!(
                "bench: cost, {} close, {label}",
                if rst { "reset" } else { "normal" }
            );
            let c = measure(flags, connections, rst)?;
            let programs: Vec<String> = c
                .programs
                .iter()
                .map(|(name, runs, ns)| format!("{name} {runs:.2} × {ns:.0}"))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {label} | {:.0} | {} | {:.2} | {:.0} |",
                if rst { "reset" } else { "normal" },
                c.rate,
                programs.join("; "),
                c.kernel_us_per_connection,
                c.user_ns_per_event
            );
        }
    }
    s.push_str("\nTargets: at most 300 ns per run of each program that runs on every connection, at most 3 µs per connection in all; userspace at most 300 ns per event for `-E`, 500 for `--json`.\n\n");
    Ok(s)
}
