//! `--replay` at scale: a storm logged by `enetstat -E --json --output`,
//! then the listing as of the log's last record, timed beside reading the
//! file with `cat` (both from the page cache, so the ratio is the replay's
//! own cost); peak memory from GNU time.

use std::{fmt::Write as _, fs, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};
use tests::Tracer;

use crate::{
    bench_kit::{Netns, check, storm_command},
    release_bin,
};

/// Storm sizes: the log grows about 5 KB per connection.
const STORMS: [u64; 2] = [50_000, 200_000];

pub fn table() -> Result<String> {
    let mut table = String::from(
        "\n## Replay: the listing as of a log's last record\n\n`enetstat --replay LOG -tan > /dev/null` after a storm logged by `enetstat -E -n --json --output LOG` (client close: every connection leaves a TIME_WAIT row); `cat LOG > /dev/null` reads the same file from the page cache. One run per row.\n\n| connections | log MB | replay s | replay MB/s | cat MB/s | replay peak RSS MB |\n|---|---|---|---|---|---|\n",
    );
    let log = std::env::temp_dir().join("enetstat-bench-replay.ndjson");
    let path = log.to_str().context("a UTF-8 path")?;
    for connections in STORMS {
        println!("bench: replay: logging a storm of {connections} connections");
        let _ = fs::remove_file(&log);
        let ns = Netns::new("bench-replay");
        let args = ["-E", "-n", "--json", "--output", path];
        let tracer = Tracer::start_program(&ns, &release_bin("enetstat"), &args);
        check(&mut storm_command(&ns, connections, false))?;
        wait_quiet(&log);
        tracer.stop();
        let mb = fs::metadata(&log)?.len() as f64 / 1e6;
        let read = timed(Command::new("cat").arg(&log))?;
        let started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(release_bin("enetstat"))
            .args(["--replay", path, "-tan"])
            .stdout(std::process::Stdio::null())
            .output()
            .context("running GNU time (apt install time)")?;
        let replay = started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("replay failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let peak_kb: f64 = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .context("GNU time's %M")?;
        writeln!(
            table,
            "| {connections} | {mb:.0} | {replay:.2} | {:.0} | {:.0} | {:.0} |",
            mb / replay,
            mb / read,
            peak_kb / 1e3
        )?;
    }
    let _ = fs::remove_file(&log);
    Ok(table)
}

/// Seconds `cmd` takes, its output discarded.
fn timed(cmd: &mut Command) -> Result<f64> {
    let started = Instant::now();
    let status = cmd.stdout(std::process::Stdio::null()).status()?;
    if !status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Until the log stops growing (the tracer has drained its ring).
fn wait_quiet(log: &std::path::Path) {
    let mut last = u64::MAX;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let len = fs::metadata(log).map_or(0, |m| m.len());
        if len == last {
            return;
        }
        last = len;
    }
}
