//! PostgreSQL read replicas: health, lag, and round-robin choice with primary fallback.
//!
//! A monitor task probes every replica on an interval and records whether it answers and how
//! far its replay is behind. Reads pick among healthy replicas only; a replica that fails a
//! read is marked down at once (the next probe brings it back), so a dead replica costs one
//! failed attempt, not one per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

use super::{ConnectError, Db};
use crate::config::DatabaseUrl;

/// How long a read may wait for a replica connection before the primary is used instead.
/// Short on purpose: a fallback answers in milliseconds, a wait holds the visitor.
const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(750);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    /// Not probed yet: not used until the first probe passes.
    Unknown = 0,
    Healthy = 1,
    Lagging = 2,
    Down = 3,
}

impl ReplicaState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ReplicaState::Healthy,
            2 => ReplicaState::Lagging,
            3 => ReplicaState::Down,
            _ => ReplicaState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Unknown => "unknown",
            ReplicaState::Healthy => "healthy",
            ReplicaState::Lagging => "lagging",
            ReplicaState::Down => "down",
        }
    }
}

/// Why a read went to the primary although replicas are configured.
#[derive(Clone, Copy, Debug)]
pub enum FallbackReason {
    NoneHealthy,
    Stale,
    Unreachable,
}

#[derive(Debug)]
pub struct Replica {
    name: String,
    db: Db,
    state: AtomicU8,
    lag_millis: AtomicU64,
    reads: AtomicU64,
}

impl Replica {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn state(&self) -> ReplicaState {
        ReplicaState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn lag(&self) -> Duration {
        Duration::from_millis(self.lag_millis.load(Ordering::Relaxed))
    }

    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    pub(super) fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn mark_down(&self, error: &sqlx::Error) {
        let previous = self.state.swap(ReplicaState::Down as u8, Ordering::Relaxed);
        if previous != ReplicaState::Down as u8 {
            tracing::warn!(replica = %self.name, error = %error, "read replica unreachable; reading from the primary");
        }
    }

    fn set_state(&self, state: ReplicaState, lag: Duration) {
        self.lag_millis.store(
            lag.as_millis().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
        let previous = ReplicaState::from_u8(self.state.swap(state as u8, Ordering::Relaxed));
        if previous != state {
            match state {
                ReplicaState::Healthy => {
                    tracing::info!(replica = %self.name, lag_ms = lag.as_millis() as u64, "read replica healthy")
                }
                _ => {
                    tracing::warn!(replica = %self.name, state = state.as_str(), lag_ms = lag.as_millis() as u64, "read replica not used")
                }
            }
        }
    }

    /// One probe: does it answer, and how many seconds of replay is it behind?
    async fn probe(&self, max_lag: Duration) {
        let Db::Postgres(pool) = &self.db else {
            return;
        };
        // When receive and replay positions match, the replica has applied everything it has
        // been sent: lag 0 even if the primary has been idle for hours. Otherwise the lag is
        // the age of the last replayed transaction.
        let query = sqlx::query_scalar::<_, f64>(
            "SELECT CASE
                 WHEN NOT pg_is_in_recovery() THEN 0
                 WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                 ELSE COALESCE(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())), 0)
             END::float8",
        )
        .fetch_one(pool);
        match tokio::time::timeout(PROBE_TIMEOUT, query).await {
            Ok(Ok(seconds)) => {
                let lag = Duration::from_secs_f64(seconds.max(0.0));
                let state = if lag > max_lag {
                    ReplicaState::Lagging
                } else {
                    ReplicaState::Healthy
                };
                self.set_state(state, lag);
            }
            Ok(Err(e)) => {
                if self.state() != ReplicaState::Down {
                    tracing::warn!(replica = %self.name, error = %e, "read replica probe failed");
                }
                self.set_state(ReplicaState::Down, Duration::ZERO);
            }
            Err(_) => self.set_state(ReplicaState::Down, Duration::ZERO),
        }
    }
}

#[derive(Debug)]
pub struct ReplicaSet {
    replicas: Vec<Arc<Replica>>,
    next: AtomicUsize,
    max_lag: Duration,
    primary_reads: AtomicU64,
    fallbacks: AtomicU64,
}

impl ReplicaSet {
    /// Creates lazy pools: a replica that is down at start-up does not stop the server.
    pub fn new(
        urls: &[DatabaseUrl],
        max_connections: u32,
        max_lag: Duration,
    ) -> Result<Self, ConnectError> {
        let replicas = urls
            .iter()
            .map(|url| {
                let options = super::pg_options("DATABASE_REPLICA_URLS", url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(REPLICA_ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options);
                Ok(Arc::new(Replica {
                    name: url.redacted(),
                    db: Db::Postgres(pool),
                    state: AtomicU8::new(ReplicaState::Unknown as u8),
                    lag_millis: AtomicU64::new(0),
                    reads: AtomicU64::new(0),
                }))
            })
            .collect::<Result<Vec<_>, ConnectError>>()?;
        Ok(Self {
            replicas,
            next: AtomicUsize::new(0),
            max_lag,
            primary_reads: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    pub fn replicas(&self) -> &[Arc<Replica>] {
        &self.replicas
    }

    /// Round-robin over healthy replicas.
    pub fn pick(&self) -> Option<&Arc<Replica>> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .find(|r| r.state() == ReplicaState::Healthy)
    }

    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    pub fn primary_reads(&self) -> u64 {
        self.primary_reads.load(Ordering::Relaxed)
    }

    pub(super) fn count_fallback(&self, reason: FallbackReason) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reason = ?reason, "page read served by the primary");
    }

    pub(super) fn count_primary_read(&self) {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Probes every replica once, concurrently.
    pub async fn probe_all(&self) {
        let probes = self.replicas.iter().map(|r| r.probe(self.max_lag));
        futures_util::future::join_all(probes).await;
    }

    /// Probes on `interval` until `stop` fires.
    pub async fn monitor(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        loop {
            self.probe_all().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    pub async fn close(&self) {
        for r in &self.replicas {
            r.db.close().await;
        }
    }
}
