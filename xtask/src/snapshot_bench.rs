//! The snapshot benchmark: N established loopback connections (2N sockets)
//! held by several processes in a fresh namespace, listed by `enetstat`,
//! net-tools `netstat` and iproute2 `ss` with `-tan` and `-tanp`.
//!
//! Times are wall clock for the whole command (including `ip netns exec`,
//! the same for all three tools), output to /dev/null.

use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bench_kit::{Netns, median, spread},
    release_bin,
};

/// Connections per holder process: 2 fds each, under the 20,000 fd limit.
const PER_HOLDER: usize = 5_000;
const SIZES: [usize; 2] = [10_000, 40_000];

pub fn table(runs: usize) -> Result<String> {
    let mut table = format!(
        "## Snapshot: N established loopback connections (2N sockets), {PER_HOLDER} per holder process\n\n\
{runs} runs per row; median (min-max) wall-clock ms.\n\n\
| N | command | ms | vs ss (same flags) |\n|---|---|---|---|\n"
    );
    let enetstat = release_bin("enetstat");
    let enetstat = enetstat.to_str().context("utf-8 path")?;
    for n in SIZES {
        let ns = Netns::new("bench");
        let _holders = hold(&ns, n)?;
        for flags in ["-tan", "-tanp"] {
            let mut rows = Vec::new();
            for tool in [enetstat, "netstat", "ss"] {
                println!("bench: snapshot N={n}: {tool} {flags}");
                let mut times = Vec::new();
                for _ in 0..runs {
                    times.push(time_ms(&ns, tool, flags)?);
                }
                rows.push((tool, times));
            }
            let ss = median(&rows[2].1);
            for (tool, times) in rows {
                let name = tool.rsplit('/').next().unwrap_or(tool);
                writeln!(
                    table,
                    "| {n} | {name} {flags} | {} | {:.2}x |",
                    spread(&times, 1.0),
                    median(&times) / ss
                )?;
            }
        }
    }
    // Which path enetstat takes (sock_diag or /proc) is the code's rule,
    // docs/PERFORMANCE.md; the bench reads no log to tell.
    writeln!(table)?;
    Ok(table)
}

/// Starts holder processes with `n` connections in total; they exit when
/// their stdin closes (the returned children are dropped).
pub fn hold(ns: &Netns, n: usize) -> Result<Vec<Holder>> {
    let mut holders = Vec::new();
    for (i, start) in (0..n).step_by(PER_HOLDER).enumerate() {
        let count = PER_HOLDER.min(n - start);
        let mut child = ns
            .command(release_bin("sockholder"))
            .args([
                "pairs",
                "--listen",
                &format!("127.0.0.1:{}", 9000 + i),
                "--count",
                &count.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting sockholder")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("sockholder did not get ready: {line:?}");
        }
        holders.push(Holder(child));
    }
    Ok(holders)
}

pub struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn time_ms(ns: &Netns, tool: &str, flags: &str) -> Result<f64> {
    let start = Instant::now();
    let status = ns
        .command(tool)
        .arg(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {tool}"))?;
    if !status.success() {
        bail!("{tool} {flags} failed: {status}");
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}
