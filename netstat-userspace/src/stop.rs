//! When the long-running modes (-E, the live -c) stop: SIGINT, SIGTERM, or
//! the end of `--duration`.

use std::{future::Future, time::Duration};

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

/// A future that completes on the first stop request. The signal handlers
/// are installed now, so a signal from then on is never missed.
pub fn requested(duration: Option<f64>) -> Result<impl Future<Output = ()>> {
    let run_for = match duration {
        None => Duration::from_secs(u64::MAX / 4),
        Some(seconds) => crate::fail::seconds("--duration", seconds, 0.0)?,
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let deadline = tokio::time::sleep(run_for);
    Ok(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
            _ = deadline => {}
        }
    })
}
