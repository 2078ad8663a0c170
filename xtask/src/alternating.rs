//! The filtered-out storm against nothing attached, within one long storm:
//! `enetstat -E --port 9` is attached and detached in turn, and the storm's
//! rate (its namespace's `Tcp: ActiveOpens`) is compared between each
//! attached phase and the detached phase after it.
//!
//! Separate storms here vary by about 6% in rate, and that noise stays
//! correlated for a few seconds; neighbouring phases of one storm share the
//! slow part of it, and the many phases give a standard error.

use std::{
    fs,
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tests::Tracer;

use crate::{bench_kit, release_bin};

/// How long each phase, attached or detached, is measured.
pub const PHASE: Duration = Duration::from_secs(12);
/// Left out at the start of a phase: the storm settling after a change.
const SETTLE: Duration = Duration::from_secs(1);

/// Attached over detached, phase pair by phase pair.
pub struct Ratio {
    pub attached_rate: f64,
    pub detached_rate: f64,
    pub mean: f64,
    pub standard_error: f64,
    pub pairs: usize,
}

/// `cycles` attached/detached pairs during one storm (reset close when
/// `rst`).
pub fn filtered_vs_nothing(rst: bool, cycles: usize) -> Result<Ratio> {
    let ns = bench_kit::Netns::new("bench");
    // More connections than the phases can use: the storm is stopped.
    let mut cmd = bench_kit::storm_command(&ns, 100_000_000, rst);
    cmd.stdout(Stdio::null());
    let storm = Storm(cmd.spawn().context("starting tcpload storm")?);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done) = (samples.clone(), done.clone());
        let snmp = format!("/proc/{}/net/snmp", storm.0.id());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(opens) = active_opens(&snmp) {
                    samples.lock().unwrap().push((Instant::now(), opens));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));

    let mut phases = Vec::new();
    for cycle in 0..cycles {
        println!(
            "bench: {} close, attached and detached in turn, cycle {}/{cycles}",
            if rst { "reset" } else { "normal" },
            cycle + 1
        );
        let tracer = Tracer::start_program(&ns, &release_bin("enetstat"), &bench_kit::FILTERED_OUT);
        let attached = (Instant::now() + SETTLE, Instant::now() + PHASE);
        std::thread::sleep(PHASE);
        tracer.stop();
        let detached = (Instant::now() + SETTLE, Instant::now() + PHASE);
        std::thread::sleep(PHASE);
        phases.push((attached, detached));
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    drop(storm);

    let samples = samples.lock().unwrap();
    let rate = |(from, to): (Instant, Instant)| -> Option<f64> {
        let first = samples.iter().find(|(at, _)| *at >= from)?;
        let last = samples.iter().rev().find(|(at, _)| *at <= to)?;
        let secs = last.0.checked_duration_since(first.0)?.as_secs_f64();
        (secs > 1.0).then(|| (last.1 - first.1) as f64 / secs)
    };
    let pairs: Vec<(f64, f64)> = phases
        .into_iter()
        .filter_map(|(on, off)| Some((rate(on)?, rate(off)?)))
        .collect();
    anyhow::ensure!(pairs.len() >= 2, "too few measured phases");
    let ratios: Vec<f64> = pairs.iter().map(|(on, off)| on / off).collect();
    let n = ratios.len() as f64;
    let mean = ratios.iter().sum::<f64>() / n;
    let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Ok(Ratio {
        attached_rate: pairs.iter().map(|p| p.0).sum::<f64>() / n,
        detached_rate: pairs.iter().map(|p| p.1).sum::<f64>() / n,
        mean,
        standard_error: (variance / n).sqrt(),
        pairs: pairs.len(),
    })
}

/// The storm, stopped when dropped.
struct Storm(Child);

impl Drop for Storm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `Tcp: ActiveOpens` from a /proc/<pid>/net/snmp (header line, then values).
fn active_opens(snmp: &str) -> Option<u64> {
    netstat_common::snmp_field(&fs::read_to_string(snmp).ok()?, "Tcp", "ActiveOpens")
}
