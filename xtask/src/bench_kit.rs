//! What the bench scenarios share: statistics, a namespace of their own, the
//! storm generator's command line and rate, and starting and stopping a
//! tracer.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::release_bin;

/// Client and server threads of every storm.
pub const WORKERS: u64 = 4;

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// "median (min-max)" of `values` times `scale`, as whole numbers.
pub fn spread(values: &[f64], scale: f64) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!(
        "{:.0} ({:.0}-{:.0})",
        median(values) * scale,
        min * scale,
        max * scale
    )
}

/// The test kit's namespace: one per scenario, removed on drop.
pub use tests::Netns;

pub fn check(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// enetstat with a filter that excludes the storm (port 7000).
pub const FILTERED_OUT: [&str; 5] = ["-E", "-n", "--stop-json", "--port", "9"];

/// `tcpload storm` of `connections` in `ns`, closing with resets when `rst`.
pub fn storm_command(ns: &Netns, connections: u64, rst: bool) -> Command {
    let mut cmd = ns.command(release_bin("tcpload"));
    cmd.args(["storm", "--listen", "127.0.0.1:7000", "--count"])
        .arg(connections.to_string())
        .args(["--workers", &WORKERS.to_string()]);
    if rst {
        cmd.arg("--rst");
    }
    cmd
}

/// A figure of the JSON stop object enetstat ends its stderr with
/// (`--stop-json`).
pub fn enetstat_stop_figure(stderr: &[String], field: &str) -> Result<u64> {
    stderr
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|stop| stop[field].as_u64())
        .with_context(|| format!("no '{field}' in enetstat's stop object: {stderr:?}"))
}

pub struct Running {
    pub child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    /// SIGINT (tcpstates stops on it; enetstat on either) and collect stderr.
    pub fn stop(&mut self) -> Result<Vec<String>> {
        // SAFETY: signalling our own child.
        unsafe { kill(self.child.id() as i32, 2) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("tracer did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(self.stderr.try_iter().collect())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

pub fn mount_tracefs() -> Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return Ok(());
    }
    check(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]))
}

/// Starts a tracer writing to `out` and waits until it is attached: enetstat
/// says so on stderr (`ready`); tcpstates says nothing unbuffered, so it gets
/// a fixed two seconds. (`ip netns exec` execs, so the pid is the tracer's.)
/// Starts `cmd` with stdout into `out`; with `ready`, waits (30 s at most,
/// else fails) for enetstat's ready record, otherwise gives it 2 s.
pub fn start_tracer(mut cmd: Command, out: &PathBuf, ready: bool) -> Result<Running> {
    let file = fs::File::create(out)?;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().context("stderr")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match ready {
        true => loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if tests::ready(&line) => break,
                Ok(_) => {}
                Err(_) => bail!("{what} gave no ready record within 30 s"),
            }
        },
        false => std::thread::sleep(Duration::from_secs(2)),
    }
    Ok(Running { child, stderr: rx })
}

/// Waits until the file at `path` stops growing; an error, not a silent
/// end, when it still grows after 50 s.
pub fn wait_quiet(path: &Path) -> Result<()> {
    let mut last = u64::MAX;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(250));
        let len = fs::metadata(path).map_or(0, |m| m.len());
        if len == last {
            return Ok(());
        }
        last = len;
    }
    bail!("{} still grows after 50 s", path.display())
}

/// The rate a finished `tcpload storm` reports.
pub fn storm_rate(out: &std::process::Output) -> Result<f64> {
    if !out.status.success() {
        bail!(
            "tcpload storm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // "storm N connections in S s: R conn/s"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .rev()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("unexpected storm output {text:?}"))
}

/// Time on CPU of all of `pid`'s threads, in ns (schedstat: finer than
/// `cpu_seconds`' clock ticks, for per-event figures).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name, starting with the state
    // (field 3); utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let field = |n: usize| -> f64 {
        after
            .split_whitespace()
            .nth(n - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0.0)
    };
    let ticks = field(14) + field(15);
    ticks / 100.0
}
