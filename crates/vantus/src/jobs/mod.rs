//! Scheduled jobs inside `vantus serve`, and the journal of every job run.
//!
//! Each job has a cron schedule. With several replicas on one PostgreSQL database, one replica
//! leads each job: it holds a session-level advisory lock (`pg_try_advisory_lock`) on a
//! dedicated connection. When the leader dies its session ends, the lock is released, and the
//! next replica to try at a tick takes over. As a second guard, a run is claimed by inserting
//! `(job, scheduled_for)` into `job_runs`, which is unique: a tick runs at most once even if
//! two replicas believed they led at the same moment. On SQLite there is one process.
//!
//! Later features register their own jobs (session cleanup, spam purge) with [`Scheduler::add`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Schedule;
use crate::store::{Conn, Db, Timestamp, on_conn};

pub type JobFuture = Pin<Box<dyn Future<Output = Result<Ran, String>> + Send>>;
pub type JobFn = Arc<dyn Fn() -> JobFuture + Send + Sync>;

/// What a successful run did. A frequent sweep that found nothing to do is `Idle`: its claim is
/// taken back instead of journalled, so a 30-second tick does not add 2,880 rows a day to
/// `job_runs` (which keeps every run that did something, or failed, for the operator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ran {
    Worked(String),
    Idle,
}

impl Ran {
    /// `Worked(detail)` when `count` things were done, else `Idle`.
    pub fn counted(count: u64, detail: impl FnOnce() -> String) -> Self {
        if count == 0 {
            Ran::Idle
        } else {
            Ran::Worked(detail())
        }
    }
}

impl From<String> for Ran {
    fn from(detail: String) -> Self {
        Ran::Worked(detail)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// Claims the run of `job` for `scheduled_for`. Returns its id, or `None` when another
/// instance claimed it first.
pub async fn claim(
    conn: &mut Conn<'_>,
    job: &str,
    scheduled_for: Timestamp,
    instance: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let id = Uuid::now_v7();
    let inserted = on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO job_runs (id, job, scheduled_for, instance, started_at, outcome)
         VALUES ($1, $2, $3, $4, $5, 'running')
         ON CONFLICT (job, scheduled_for) DO NOTHING"
    )
    .bind(id).bind(job).bind(scheduled_for).bind(instance).bind(Timestamp::now())
    .execute(c).await.map(|r| r.rows_affected()))?;
    Ok((inserted == 1).then_some(id))
}

/// Records how a claimed run ended.
pub async fn finish(
    conn: &mut Conn<'_>,
    id: Uuid,
    outcome: Outcome,
    detail: &str,
) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE job_runs SET finished_at = $2, outcome = $3, detail = $4 WHERE id = $1"
    )
    .bind(id).bind(Timestamp::now()).bind(outcome.as_str()).bind(detail)
    .execute(c).await.map(|_| ()))
}

/// Takes back the claim of a run that found nothing to do (see [`Ran::Idle`]). The tick has
/// passed, so no other replica claims it again.
pub async fn forget(conn: &mut Conn<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query("DELETE FROM job_runs WHERE id = $1")
        .bind(id).execute(c).await.map(|_| ()))
}

/// Records a run started by hand (a CLI command) from start to end.
pub async fn record_manual(
    conn: &mut Conn<'_>,
    job: &str,
    started: Timestamp,
    outcome: Outcome,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let id = Uuid::now_v7();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO job_runs (id, job, scheduled_for, instance, started_at, finished_at, outcome, detail)
         VALUES ($1, $2, $3, 'cli', $3, $4, $5, $6)"
    )
    .bind(id).bind(job).bind(started).bind(Timestamp::now()).bind(outcome.as_str()).bind(detail)
    .execute(c).await.map(|_| ()))
}

/// When `job` last succeeded, if ever.
pub async fn last_success(
    conn: &mut Conn<'_>,
    job: &str,
) -> Result<Option<Timestamp>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT MAX(finished_at) FROM job_runs WHERE job = $1 AND outcome = 'succeeded'"
    ).bind(job).fetch_one(c).await)
}

/// Names of well-known jobs.
pub const BACKUP: &str = "backup";
pub const RESTORE_DRILL: &str = "restore-drill";
/// Deletes spam past `VANTUS_SPAM_RETENTION` and idempotency keys past a day; hourly.
pub const LEAD_RETENTION: &str = "lead-retention";
/// Deletes dead credentials (ended sessions, used or expired reset links and invitations,
/// expired sign-in challenges and passkey ceremonies; `auth::expired`); hourly.
pub const CREDENTIAL_SWEEP: &str = "credential-sweep";

struct Job {
    name: &'static str,
    schedule: Schedule,
    run: JobFn,
}

pub struct Scheduler {
    db: Db,
    instance: String,
    jobs: Vec<Job>,
}

impl Scheduler {
    pub fn new(db: Db, instance: String) -> Self {
        Self {
            db,
            instance,
            jobs: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &'static str, schedule: Schedule, run: JobFn) {
        self.jobs.push(Job {
            name,
            schedule,
            run,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Starts one task per job; they stop when `stop` fires.
    pub fn spawn(self, stop: CancellationToken) {
        for job in self.jobs {
            let db = self.db.clone();
            let instance = self.instance.clone();
            let stop = stop.clone();
            tokio::spawn(async move { run_job_loop(db, instance, job, stop).await });
        }
    }
}

/// Runs one job body as its own task, so a panic in it ends that run, not the job's loop:
/// the run is recorded as failed (with the panic's message) and the next tick runs again.
/// `None` for a successful run that had nothing to do.
async fn run_contained(job: &Job) -> (Outcome, Option<String>) {
    match tokio::spawn((job.run)()).await {
        Ok(Ok(Ran::Worked(detail))) => (Outcome::Succeeded, Some(detail)),
        Ok(Ok(Ran::Idle)) => (Outcome::Succeeded, None),
        Ok(Err(detail)) => (Outcome::Failed, Some(detail)),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            (
                Outcome::Failed,
                Some(format!("the job panicked: {message}")),
            )
        }
        Err(_) => (Outcome::Failed, Some("the job was cancelled".to_owned())),
    }
}

/// A stable 64-bit advisory-lock key per job name.
fn lock_key(job: &str) -> i64 {
    let digest = Sha256::digest(format!("vantus:job:{job}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Holds (or tries to take) the leadership of one job.
struct Leadership {
    /// Detached from the pool: dropping it closes the session, which releases the lock.
    conn: Option<sqlx::PgConnection>,
    key: i64,
}

impl Leadership {
    /// Whether this instance leads now. On PostgreSQL: keeps the lock's session open, and
    /// tries to take the lock when it does not hold it.
    async fn lead(&mut self, db: &Db, job: &str, instance: &str) -> bool {
        let Db::Postgres(pool) = db else {
            return true;
        };
        if let Some(conn) = &mut self.conn {
            // Still holding: prove the session is alive.
            if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                return true;
            }
            tracing::warn!(job, instance, "lost the job's leadership session");
            self.conn = None;
        }
        let Ok(mut conn) = pool.acquire().await else {
            return false;
        };
        match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
            .bind(self.key)
            .fetch_one(&mut *conn)
            .await
        {
            Ok(true) => {
                tracing::info!(job, instance, "leading the job");
                // This session now carries the lock; it must never go back to the pool.
                self.conn = Some(conn.detach());
                true
            }
            _ => false,
        }
    }
}

async fn run_job_loop(db: Db, instance: String, job: Job, stop: CancellationToken) {
    let mut leadership = Leadership {
        conn: None,
        key: lock_key(job.name),
    };
    let upcoming = job.schedule.cron.upcoming(Utc);
    tracing::info!(job = job.name, schedule = %job.schedule.expression, "job scheduled");
    for next in upcoming {
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => break,
        }
        if !leadership.lead(&db, job.name, &instance).await {
            continue;
        }
        let Some(scheduled_for) = Timestamp::from_unix_micros(next.timestamp_micros()) else {
            continue;
        };
        let claimed = with_conn!(&db, conn => {
            claim(conn, job.name, scheduled_for, &instance).await
        });
        let id = match claimed {
            Ok(Some(id)) => id,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(job = job.name, error = %e, "cannot claim the job run");
                continue;
            }
        };
        let started = std::time::Instant::now();
        let (outcome, detail) = run_contained(&job).await;
        metrics::counter!("vantus_job_runs_total", "job" => job.name, "outcome" => outcome.as_str()).increment(1);
        metrics::histogram!("vantus_job_duration_seconds", "job" => job.name)
            .record(started.elapsed().as_secs_f64());
        let recorded = match (outcome, detail) {
            (_, None) => {
                tracing::debug!(job = job.name, "job had nothing to do");
                with_conn!(&db, conn => forget(conn, id).await)
            }
            (Outcome::Succeeded, Some(detail)) => {
                tracing::info!(job = job.name, %detail, ms = started.elapsed().as_millis() as u64, "job succeeded");
                with_conn!(&db, conn => finish(conn, id, outcome, &detail).await)
            }
            (Outcome::Failed, Some(detail)) => {
                tracing::error!(job = job.name, %detail, "job failed");
                with_conn!(&db, conn => finish(conn, id, outcome, &detail).await)
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(job = job.name, error = %e, "cannot record the job's outcome");
        }
    }
    // Dropping the leadership connection releases the lock for the other replicas.
    drop(leadership);
    tracing::info!(job = job.name, "job stopped");
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_keys_differ_per_job() {
        assert_ne!(super::lock_key("backup"), super::lock_key("restore-drill"));
        assert_eq!(super::lock_key("backup"), super::lock_key("backup"));
    }
}
