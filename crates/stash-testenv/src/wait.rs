//! Waiting with a deadline whose failure says what was awaited.

use std::future::Future;
use std::time::{Duration, Instant};

pub use kube::runtime::wait::{Condition, await_condition, conditions};

/// Polls `check` every 200 ms until it returns `Some`, and returns that value.
/// Panics after `timeout` with "timed out after … waiting for {what}" and the
/// last state `check` described through `last`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
