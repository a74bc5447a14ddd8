//! Waiting for conditions: one polling loop for the whole suite, so every wait is bounded and
//! every timeout says what was awaited and what was last seen.
//!
//! ```ignore
//! let body = eventually(Duration::from_secs(15), "readyz to report the outage", async || {
//!     let res = app.get("/readyz").await;
//!     (res.status() == 503).then_some(res)
//! })
//! .await;
//! ```

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a condition is checked unless the caller says otherwise: short enough not to slow
/// tests down, long enough not to hammer a database.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// What a check returns: ready with a value, or not yet (with what it saw, for the timeout
/// message).
pub trait Check {
    type Value;
    fn into_ready(self) -> Result<Self::Value, String>;
}

impl<T> Check for Option<T> {
    type Value = T;
    fn into_ready(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_owned())
    }
}

/// `Err` carries what was seen: it ends up in the timeout message.
impl<T, E: Display> Check for Result<T, E> {
    type Value = T;
    fn into_ready(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

impl Check for bool {
    type Value = ();
    fn into_ready(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".to_owned())
        }
    }
}

/// Checks every [`POLL_EVERY`] until `check` is ready (`Some`, `Ok` or `true`) and returns its
/// value; panics naming `what` (and the last thing seen) once `within` has passed. A panic
/// inside `check` fails at once: conditions that must hold while waiting are asserted there.
pub async fn eventually<C: Check>(
    within: Duration,
    what: &str,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    eventually_every(within, POLL_EVERY, what, check).await
}

/// [`eventually`] with another interval, for states that exist only briefly.
pub async fn eventually_every<C: Check>(
    within: Duration,
    every: Duration,
    what: &str,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    match poll(within, every, check).await {
        Ok(value) => value,
        Err(last) => panic!("timed out after {within:?} waiting for {what} (last seen: {last})"),
    }
}

/// The loop under [`eventually`], for callers that handle the timeout themselves: `Err` holds
/// the last thing seen. `check` runs at least once, and once more at the deadline.
pub async fn poll<C: Check>(
    within: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> Result<C::Value, String> {
    let deadline = Instant::now() + within;
    loop {
        let past_deadline = Instant::now() >= deadline;
        match check().await.into_ready() {
            Ok(value) => return Ok(value),
            Err(last) if past_deadline => return Err(last),
            Err(_) => {}
        }
        tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
