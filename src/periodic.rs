//! Work that repeats until the server shuts down.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `work` every `period`, the first time at once, until `stop` is cancelled. A run that
/// overruns its period delays the next one rather than bunching them up.
pub async fn every<Work: Future<Output = ()>>(
    period: Duration,
    stop: &CancellationToken,
    mut work: impl FnMut() -> Work,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        work().await;
    }
}
