//! What `-S` costs its own process per interval as the host holds more
//! connections: each interval reads the kernel side's maps and one
//! sock_diag dump of the namespace's TCP sockets (the ephemeral-port
//! budget). Idle connections are held open; `enetstat -S 1` runs beside
//! them, and its CPU time (its threads' schedstat) is divided by its
//! intervals. Both rows come from one run, so their ratio holds.

use std::{fmt::Write as _, time::Duration};

use anyhow::{Context as _, Result};
use tests::Tracer;

use crate::{
    bench_kit::{Netns, cpu_ns},
    release_bin,
    snapshot_bench::hold,
};

/// Connections held open in the larger row (two sockets each).
const HELD: usize = 20_000;
/// Intervals measured per row.
const INTERVALS: u64 = 10;

pub fn table() -> Result<String> {
    let mut table = format!(
        "\n## -S at scale: its own CPU per interval\n\n`enetstat -S 1 --json` for {INTERVALS} intervals beside idle connections held open (one run; the rows' ratio is what holds). Each interval reads the kernel side's maps and dumps the namespace's TCP sockets once (ephemeral ports).\n\n| connections held | sockets | ms of CPU per interval | ephemeral ports counted (top pair) |\n|---|---|---|---|\n"
    );
    for held in [0, HELD] {
        println!("bench: -S at scale: {held} connections held");
        let ns = Netns::new("bench-summary");
        let _holders = hold(&ns, held)?;
        let summary = Tracer::start_program(&ns, &release_bin("enetstat"), &["-S", "1", "--json"]);
        let before = cpu_ns(summary.pid());
        std::thread::sleep(Duration::from_secs(INTERVALS) + Duration::from_millis(500));
        let cpu = cpu_ns(summary.pid()) - before;
        let out = summary.stop();
        let last: serde_json::Value = out
            .stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .context("no -S block")?;
        let top = last["ephemeral_ports"][0]["in_use"].as_u64().unwrap_or(0);
        writeln!(
            table,
            "| {held} | {} | {:.2} | {top} |",
            2 * held,
            cpu as f64 / 1e6 / INTERVALS as f64
        )?;
    }
    Ok(table)
}
