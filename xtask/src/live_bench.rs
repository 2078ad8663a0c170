//! The live-view benchmark: CPU time of `enetstat -c -tan` (events) against
//! net-tools `netstat -c -tan` (a /proc re-read every second) while a storm
//! runs beside idle sockets, per 1,000 storm connections; the memory each
//! TIME_WAIT row the storm leaves costs the viewer; and a large idle table:
//! the first drawing, memory per row, CPU while nothing changes, and the
//! CPU of the redraw after one change.

use std::{
    fmt::Write as _,
    fs::File,
    io::{Read as _, Seek as _, SeekFrom},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tests::Tracer;

use crate::{
    bench_kit::{Netns, cpu_seconds, median, spread, storm_rate},
    release_bin,
    snapshot_bench::hold,
};

/// Idle connections held open (two sockets each).
const IDLE_CONNECTIONS: usize = 20_000;
const STORM: u64 = 20_000;
/// Both tools draw at most once a second; this lets each draw the end state.
const SETTLE: Duration = Duration::from_secs(2);

pub fn table(runs: usize) -> Result<String> {
    let mut table = format!(
        "## Live view: CPU during a {STORM}-connection storm beside {} idle sockets\n\n\
Output to /dev/null; CPU (user + system) of the viewer from the storm's start until {} s after its end; memory: the growth of the viewer's resident memory outside the kernel's ring buffer mapping, over the storm, per TIME_WAIT socket at its end (netstat keeps no table). {runs} runs per row; median (min-max).\n\n\
| viewer | storm conn/s | viewer CPU s | CPU ms per 1,000 connections | bytes per TIME_WAIT row |\n|---|---|---|---|---|\n",
        2 * IDLE_CONNECTIONS,
        SETTLE.as_secs()
    );
    let enetstat = release_bin("enetstat");
    let enetstat = enetstat.to_str().context("utf-8 path")?;
    let ns = Netns::new("bench");
    let _holders = hold(&ns, IDLE_CONNECTIONS)?;
    for viewer in [enetstat, "netstat"] {
        let name = viewer.rsplit('/').next().unwrap_or(viewer);
        println!("bench: live view: {name} -c -tan");
        let (mut rates, mut cpus, mut per_row) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let run = sample(&ns, viewer)?;
            rates.push(run.rate);
            cpus.push(run.cpu);
            per_row.push(run.bytes_per_time_wait);
        }
        let memory = match viewer == enetstat {
            true => spread(&per_row, 1.0),
            false => "-".to_string(),
        };
        writeln!(
            table,
            "| {name} -c -tan | {:.0} | {:.2} | {} | {memory} |",
            median(&rates),
            median(&cpus),
            spread(&cpus, 1000.0 / (STORM as f64 / 1000.0)),
        )?;
    }
    table.push('\n');
    Ok(table)
}

/// Idle connections of the large-table case (two sockets each).
const AT_SCALE: usize = 100_000;
/// How long the idle CPU is measured.
const IDLE: Duration = Duration::from_secs(10);

/// The large idle table: `enetstat -c -tan` beside `AT_SCALE` idle
/// connections, against `netstat -c -tan`.
pub fn at_scale_table() -> Result<String> {
    let mut table = format!(
        "## Live view at scale: {} established sockets, nothing changing

Output to a file. First table: from start to the first drawing. Memory: resident bytes outside the ring buffer mapping, per row, once drawn. Idle CPU: over {} s with no change, % of a core. One change: CPU from one loopback connection (ten changes, its two ends) to 2 s later, less the idle rate. One run.

| viewer | first table s | bytes per row | idle CPU % | one change ms |\n|---|---|---|---|---|\n",
        2 * AT_SCALE,
        IDLE.as_secs()
    );
    let ns = Netns::new("bench");
    println!("bench: live view at scale: holding {AT_SCALE} connections");
    let _holders = hold(&ns, AT_SCALE)?;
    let enetstat = release_bin("enetstat");
    let enetstat = enetstat.to_str().context("utf-8 path")?;
    // --diff: a drawing of what changed, which need not cost the table.
    let viewers = [
        (enetstat, &TAN[..]),
        (enetstat, &[TAN[0], TAN[1], "--diff"]),
        ("netstat", &TAN),
    ];
    for (viewer, args) in viewers {
        let name = viewer.rsplit('/').next().unwrap_or(viewer);
        let label = format!("{name} {}", args.join(" "));
        println!("bench: live view at scale: {label}");
        let started = Instant::now();
        let view = viewer_command(&ns, viewer, args, name);
        // The first drawing ends where the idle sockets' rows do; looked
        // at every 10 ms, reading only what was added since.
        let rows = 2 * AT_SCALE;
        let (mut seen, mut read) = (0, 0);
        while seen < rows {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("{viewer} -c drew no full table within 120 s");
            }
            std::thread::sleep(Duration::from_millis(10));
            seen += count_appended(view.output_path(), &mut read, "ESTABLISHED");
        }
        let first = started.elapsed().as_secs_f64();
        // One drawing period, so that a re-reading viewer is past its first.
        std::thread::sleep(Duration::from_secs(2));
        let pid = view.pid();
        let memory = resident_outside_maps(pid) as f64 / rows as f64;
        let before = cpu_seconds(pid);
        std::thread::sleep(IDLE);
        let idle = (cpu_seconds(pid) - before) / IDLE.as_secs_f64();
        let before = cpu_seconds(pid);
        ns.command(release_bin("tcpload"))
            .args(["storm", "--listen", "127.0.0.1:7000", "--count", "1"])
            .output()
            .context("running tcpload storm")?;
        std::thread::sleep(Duration::from_secs(2));
        let change = (cpu_seconds(pid) - before - 2.0 * idle).max(0.0);
        drop(view);
        let memory = match name {
            "netstat" => "-".to_string(),
            _ => format!("{memory:.0}"),
        };
        writeln!(
            table,
            "| {label} | {first:.1} | {memory} | {:.1} | {:.1} |",
            idle * 100.0,
            change * 1000.0
        )?;
    }
    table.push('\n');
    Ok(table)
}

/// How often `word` occurs in the complete lines `path` gained since byte
/// `*read`, which moves past them.
fn count_appended(path: &Path, read: &mut u64, word: &str) -> usize {
    let Ok(mut file) = File::open(path) else {
        return 0;
    };
    let mut added = Vec::new();
    if file.seek(SeekFrom::Start(*read)).is_err() || file.read_to_end(&mut added).is_err() {
        return 0;
    }
    let complete = added
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    *read += complete as u64;
    String::from_utf8_lossy(&added[..complete])
        .matches(word)
        .count()
}

/// The live views compared: TCP, all, numeric.
const TAN: [&str; 2] = ["-c", "-tan"];

/// `viewer ARGS` running in `ns`, its output in a file; stopped on drop.
fn viewer_command(ns: &Netns, viewer: &str, args: &[&str], tag: &str) -> Tracer {
    let mut cmd = ns.command(viewer);
    cmd.args(args);
    Tracer::start_other(cmd, tag, Duration::ZERO)
}

/// One storm under one viewer.
struct Sample {
    rate: f64,
    cpu: f64,
    bytes_per_time_wait: f64,
}

fn sample(ns: &Netns, viewer: &str) -> Result<Sample> {
    // Past start-up (enetstat loads its programs and reads the idle sockets
    // once; netstat has drawn at least twice).
    let view = viewer_command(ns, viewer, &TAN, "sample");
    std::thread::sleep(Duration::from_secs(3));
    let pid = view.pid();
    let before = cpu_seconds(pid);
    let memory_before = resident_outside_maps(pid);
    let out = ns
        .command(release_bin("tcpload"))
        .args([
            "storm",
            "--listen",
            "127.0.0.1:7000",
            "--count",
            &STORM.to_string(),
        ])
        .output()
        .context("running tcpload storm");
    std::thread::sleep(SETTLE);
    let cpu = cpu_seconds(pid) - before;
    let grown = resident_outside_maps(pid).saturating_sub(memory_before);
    let time_waits = ns
        .command("ss")
        .args(["-Htan", "state", "time-wait"])
        .output()
        .map(|o| {
            o.stdout
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        })
        .unwrap_or(0);
    drop(view);
    Ok(Sample {
        rate: storm_rate(&out?)?,
        cpu,
        bytes_per_time_wait: grown as f64 / time_waits.max(1) as f64,
    })
}

/// Resident bytes of `pid` outside BPF map mappings (the ring buffer's
/// pages are the kernel's, mapped twice), from /proc/PID/smaps.
fn resident_outside_maps(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut bpf = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some(rss) = line.strip_prefix("Rss:") {
            if !bpf {
                let rss = rss.trim().trim_end_matches("kB").trim();
                kib += rss.parse::<u64>().unwrap_or(0);
            }
        } else if !first.ends_with(':') {
            // A mapping's header line: "START-END PERMS OFFSET DEV INODE NAME".
            bpf = line.contains("bpf");
        }
    }
    kib * 1024
}
