//! Liveness and readiness.
//!
//! `/healthz` answers as long as the process can run a handler: it calls nothing, so a slow
//! database never gets a healthy process killed. `/readyz` says whether this instance should
//! receive traffic: it checks the database, migrations and replicas, and reports each check as
//! pass, warn or fail (503 on any fail). Both answer from the first moment the port is open.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::lifecycle::{Lifecycle, Phase};
use crate::state::App;
use crate::store::{ReplicaState, migrate};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health handlers can see: the lifecycle always, the app once it is ready.
#[derive(Clone)]
pub struct HealthState {
    pub lifecycle: Arc<Lifecycle>,
    pub app: Arc<OnceLock<App>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaReport>,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<Option<String>>) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            latency_ms: None,
            replicas: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReplicaReport {
    pub name: String,
    pub state: &'static str,
    pub lag_ms: u64,
    pub reads: u64,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: Status,
    pub phase: &'static str,
    pub version: &'static str,
    pub checks: Vec<Check>,
}

pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "pass" })).into_response()
}

pub async fn readyz(State(state): State<HealthState>) -> Response {
    let report = readiness(&state).await;
    let code = if report.status == Status::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(report)).into_response()
}

pub async fn readiness(state: &HealthState) -> Readiness {
    let phase = state.lifecycle.phase();
    let mut checks = Vec::new();
    match (phase, state.app.get()) {
        (Phase::Ready, Some(app)) => {
            checks.push(database_check(app).await);
            checks.push(migrations_check(app).await);
            if let Some(check) = replicas_check(app) {
                checks.push(check);
            }
            checks.push(rate_limiter_check(app));
        }
        (phase, _) => checks.push(Check::new(
            "lifecycle",
            Status::Fail,
            Some(match phase {
                Phase::Starting => "connecting to the database".to_owned(),
                Phase::Migrating => "applying migrations".to_owned(),
                Phase::Draining => "shutting down".to_owned(),
                Phase::Ready => "starting".to_owned(),
            }),
        )),
    }
    Readiness {
        status: checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass),
        phase: phase.as_str(),
        version: crate::build::VERSION,
        checks,
    }
}

async fn database_check(app: &App) -> Check {
    let started = Instant::now();
    let db = app.store.primary();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, db.ping()).await;
    let latency = started.elapsed().as_secs_f64() * 1000.0;
    let (in_use, idle) = db.pool_usage();
    let mut check = match outcome {
        Ok(Ok(())) => Check::new(
            "database",
            Status::Pass,
            format!(
                "{} primary; {in_use} connections open, {idle} idle",
                db.engine().as_str()
            ),
        ),
        Ok(Err(e)) => Check::new("database", Status::Fail, format!("query failed: {e}")),
        Err(_) => Check::new(
            "database",
            Status::Fail,
            format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
        ),
    };
    check.latency_ms = Some((latency * 100.0).round() / 100.0);
    check
}

async fn migrations_check(app: &App) -> Check {
    let pending = async { with_conn!(app.store.primary(), conn => migrate::pending(conn).await) };
    match tokio::time::timeout(CHECK_TIMEOUT, pending).await {
        Ok(Ok(pending)) if pending.is_empty() => Check::new(
            "migrations",
            Status::Pass,
            format!("{} applied", migrate::known().len()),
        ),
        Ok(Ok(pending)) => Check::new(
            "migrations",
            Status::Fail,
            format!(
                "{} pending (first: {} {})",
                pending.len(),
                pending[0].0,
                pending[0].1
            ),
        ),
        Ok(Err(e)) => Check::new("migrations", Status::Fail, format!("cannot read: {e}")),
        Err(_) => Check::new("migrations", Status::Fail, "timed out".to_owned()),
    }
}

/// The limiter only warns: on its per-process fallback it still limits (never fails open),
/// but each replica then grants its own allowance.
fn rate_limiter_check(app: &App) -> Check {
    use crate::http::rate_limit::Backend;
    match app.limiter.backend() {
        Backend::Shared => Check::new(
            "rate_limiter",
            Status::Pass,
            "shared through Redis".to_owned(),
        ),
        Backend::Local if !app.config.is_production() => Check::new(
            "rate_limiter",
            Status::Pass,
            "per process (REDIS_URL is not set)".to_owned(),
        ),
        Backend::Local => Check::new(
            "rate_limiter",
            Status::Warn,
            "per process (REDIS_URL is not set): each replica grants its own allowance".to_owned(),
        ),
        Backend::Fallback => Check::new(
            "rate_limiter",
            Status::Warn,
            "Redis is unreachable or slow: limiting per process until it answers".to_owned(),
        ),
    }
}

/// Replicas only warn: reads fall back to the primary, so the instance can still serve.
fn replicas_check(app: &App) -> Option<Check> {
    let set = app.store.replicas()?;
    let reports: Vec<ReplicaReport> = set
        .replicas()
        .iter()
        .enumerate()
        .map(|(i, r)| ReplicaReport {
            // By index, as the metrics name them: /readyz is public, and a replica's URL
            // carries its user, host and database names (the logs have those).
            name: format!("replica{i}"),
            state: r.state().as_str(),
            lag_ms: r.lag().as_millis() as u64,
            reads: r.reads(),
        })
        .collect();
    let healthy = set
        .replicas()
        .iter()
        .filter(|r| r.state() == ReplicaState::Healthy)
        .count();
    let total = reports.len();
    let status = if healthy == total {
        Status::Pass
    } else {
        Status::Warn
    };
    let mut check = Check::new(
        "replicas",
        status,
        format!(
            "{healthy} of {total} healthy; {} reads fell back to the primary",
            set.fallbacks()
        ),
    );
    check.replicas = reports;
    Some(check)
}
