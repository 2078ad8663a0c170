//! When the long-running modes (-E, the live -c) stop: SIGINT, SIGTERM, or
//! the end of `--duration`.

use std::{future::Future, time::Duration};

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

/// A future that completes on the first stop request. The signal handlers
/// are installed now, so a signal from then on is never missed.
pub fn requested(stop_after: Option<Duration>) -> Result<impl Future<Output = ()>> {
    // About 31 years stands for never (a far Instant overflows).
    let run_for = stop_after.unwrap_or(Duration::from_secs(1 << 30));
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
