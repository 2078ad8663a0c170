//! The live-view benchmark: CPU time of `enetstat -c -tan` (events) against
//! net-tools `netstat -c -tan` (a /proc re-read every second) while a storm
//! runs beside idle sockets, per 1,000 storm connections.

use std::{fmt::Write as _, process::Stdio, time::Duration};

use anyhow::{Context as _, Result, bail};

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
Output to /dev/null; CPU (user + system) of the viewer from the storm's start until {} s after its end. {runs} runs per row; median (min-max).\n\n\
| viewer | storm conn/s | viewer CPU s | CPU ms per 1,000 connections |\n|---|---|---|---|\n",
        2 * IDLE_CONNECTIONS,
        SETTLE.as_secs()
    );
    let enetstat = release_bin("enetstat");
    let enetstat = enetstat.to_str().context("utf-8 path")?;
    let ns = Netns::new()?;
    let _holders = hold(&ns, IDLE_CONNECTIONS)?;
    for viewer in [enetstat, "netstat"] {
        let name = viewer.rsplit('/').next().unwrap_or(viewer);
        println!("bench: live view: {name} -c -tan");
        let (mut rates, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (rate, cpu) = sample(&ns, viewer)?;
            rates.push(rate);
            cpus.push(cpu);
        }
        writeln!(
            table,
            "| {name} -c -tan | {:.0} | {:.2} | {} |",
            median(&rates),
            median(&cpus),
            spread(&cpus, 1000.0 / (STORM as f64 / 1000.0)),
        )?;
    }
    table.push('\n');
    Ok(table)
}

/// One storm under one viewer: (storm conn/s, viewer CPU seconds).
fn sample(ns: &Netns, viewer: &str) -> Result<(f64, f64)> {
    let mut child = ns
        .command(viewer)
        .args(["-c", "-tan"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {viewer} -c"))?;
    // Past start-up (enetstat loads its programs and reads the idle sockets
    // once; netstat has drawn at least twice).
    std::thread::sleep(Duration::from_secs(3));
    if child.try_wait()?.is_some() {
        bail!("{viewer} -c exited early");
    }
    let before = cpu_seconds(child.id());
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
    let cpu = cpu_seconds(child.id()) - before;
    let _ = child.kill();
    let _ = child.wait();
    let rate = storm_rate(&out?)?;
    Ok((rate, cpu))
}
