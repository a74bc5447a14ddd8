//! Where the process is in its life, for readiness and for the request path.
//!
//! The listener is bound before migrations run, so load balancers and orchestrators can see
//! the process is alive (`/healthz` 200) but not ready (`/readyz` 503) while it migrates, and
//! again while it drains on shutdown.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connecting to the database.
    Starting = 0,
    /// Applying migrations and seeding.
    Migrating = 1,
    Ready = 2,
    /// Shutting down: finishing in-flight requests, taking no new work.
    Draining = 3,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Migrating => "migrating",
            Phase::Ready => "ready",
            Phase::Draining => "draining",
        }
    }
}

#[derive(Debug)]
pub struct Lifecycle(AtomicU8);

impl Default for Lifecycle {
    fn default() -> Self {
        Self(AtomicU8::new(Phase::Starting as u8))
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Migrating,
            2 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
        tracing::info!(phase = phase.as_str(), "lifecycle");
    }
}
