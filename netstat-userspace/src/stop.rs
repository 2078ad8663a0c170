//! When the long-running modes (-E, the live -c) stop: SIGINT, SIGTERM, or
//! the end of `--duration`.

use std::{future::Future, time::Duration};

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

/// A future that completes on the first stop request. The signal handlers
/// are installed now, so a signal from then on is never missed.
pub fn requested(duration: Option<f64>) -> Result<impl Future<Output = ()>> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let deadline = tokio::time::sleep(
        duration.map_or(Duration::from_secs(u64::MAX / 4), Duration::from_secs_f64),
    );
    Ok(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
            _ = deadline => {}
        }
    })
}
