//! `vantus doctor`: the production-readiness audit, executable.
//!
//! Each check looks at the live configuration and environment and reports a severity
//! (critical, high, medium, ok), what it found, why it matters, and how to fix it. The command
//! exits non-zero when anything is critical, so deploy pipelines can gate on it.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{BackupLocation, Config, DatabaseUrl, SecretSource, check_secret_strength};
use crate::jobs;
use crate::store::{self, Db, ReplicaSet, ReplicaState};

use super::destination::Destination;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub finding: String,
    pub impact: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub status: Severity,
    pub environment: &'static str,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn has_critical(&self) -> bool {
        self.status == Severity::Critical
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(
        &mut self,
        check: &'static str,
        severity: Severity,
        finding: impl Into<String>,
        impact: &str,
        fix: &str,
    ) {
        self.0.push(Finding {
            check,
            severity,
            finding: finding.into(),
            impact: impact.to_owned(),
            fix: fix.to_owned(),
        });
    }

    fn ok(&mut self, check: &'static str, finding: impl Into<String>) {
        self.add(check, Severity::Ok, finding, "", "");
    }
}

/// Filesystem types that are network or FUSE mounts (statfs f_type), where SQLite's locking
/// is not reliable.
const NETWORK_FILESYSTEMS: &[(i64, &str)] = &[
    (0x6969, "NFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x517B, "SMB"),
    (0x6573_5546, "FUSE"),
    (0x0102_1997, "9P"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x00C3_6400, "CephFS"),
];

fn filesystem_kind(path: &Path) -> Option<&'static str> {
    let probe = existing_ancestor(path)?;
    let st = rustix::fs::statfs(probe).ok()?;
    let kind = st.f_type as i64;
    NETWORK_FILESYSTEMS
        .iter()
        .find(|(magic, _)| *magic == kind)
        .map(|(_, name)| *name)
}

fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(existing_ancestor(path)?)
        .ok()
        .map(|m| m.dev())
}

/// Runs every check. Never fails: an unreachable dependency is a finding, not an error.
pub async fn run(config: &Config) -> Report {
    let mut f = Findings(Vec::new());
    let production = config.is_production();

    // Environment.
    if production {
        f.ok("environment", "VANTUS_ENV=production");
    } else {
        f.add("environment", Severity::Medium, "running in development mode",
            "Development mode generates its own secret and skips HSTS; it is not meant for visitors.",
            "Set VANTUS_ENV=production with VANTUS_SECRET_KEY and VANTUS_PUBLIC_URL.");
    }
    if production && config.public_url.scheme() != "https" {
        f.add(
            "public-url",
            Severity::High,
            format!("VANTUS_PUBLIC_URL is {}", config.public_url),
            "Visitors' data and sessions travel unencrypted; HSTS cannot protect them.",
            "Serve behind TLS and set VANTUS_PUBLIC_URL=https://…",
        );
    }

    // Secrets.
    match &config.secret {
        SecretSource::Configured(s) => {
            match check_secret_strength(secrecy::ExposeSecret::expose_secret(s)) {
                Ok(()) => f.ok("secrets", "VANTUS_SECRET_KEY is set and strong"),
                Err(why) => f.add(
                    "secrets",
                    if production {
                        Severity::Critical
                    } else {
                        Severity::Medium
                    },
                    format!("VANTUS_SECRET_KEY {why}"),
                    "A guessable key lets anyone forge sessions and tokens.",
                    "Generate one with `openssl rand -hex 32` and store it as a secret.",
                ),
            }
        }
        SecretSource::GeneratedInDataDir if production => f.add(
            "secrets",
            Severity::Critical,
            "no VANTUS_SECRET_KEY",
            "Production cannot start without it.",
            "Set VANTUS_SECRET_KEY.",
        ),
        SecretSource::GeneratedInDataDir => {
            f.ok("secrets", "development key generated in the data folder")
        }
    }

    // Database engine and location.
    match &config.database.url {
        DatabaseUrl::Sqlite { path } => {
            if production {
                f.add("database-engine", Severity::Critical, "production runs on SQLite",
                    "One file on one disk: no replicas, no failover, and a dead disk means dead data (the audit's second finding).",
                    "Move to PostgreSQL: `vantus db copy --from sqlite://… --to postgres://…`, then set DATABASE_URL.");
            } else {
                f.ok("database-engine", "SQLite (fine for development)");
            }
            if let Some(fs) = filesystem_kind(path) {
                f.add("database-filesystem", Severity::Critical, format!("the SQLite file is on a {fs} filesystem"),
                    "SQLite's locking is unreliable on network filesystems; concurrent writers can corrupt the database.",
                    "Keep the SQLite file on a local disk, or use PostgreSQL.");
            }
        }
        DatabaseUrl::Postgres { .. } => f.ok("database-engine", "PostgreSQL"),
    }

    // Connectivity, migrations, clock, jobs.
    let db = match tokio::time::timeout(Duration::from_secs(5), store::connect(&config.database))
        .await
    {
        Ok(Ok(db)) => Some(db),
        Ok(Err(e)) => {
            f.add(
                "database",
                Severity::Critical,
                format!("cannot connect: {e}"),
                "Nothing can be served or saved.",
                "Check DATABASE_URL, the network and the database server.",
            );
            None
        }
        Err(_) => {
            f.add(
                "database",
                Severity::Critical,
                "no answer within 5 s",
                "Nothing can be served or saved.",
                "Check DATABASE_URL, the network and the database server.",
            );
            None
        }
    };
    if let Some(db) = &db {
        f.ok(
            "database",
            format!("{} answers", config.database.url.redacted()),
        );
        migrations_check(&mut f, db).await;
        clock_check(&mut f, db).await;
        backup_checks(&mut f, config, db).await;
    }
    replica_checks(&mut f, config).await;
    backup_location_checks(&mut f, config).await;

    // Observability.
    let ships_logs =
        config.telemetry.log_shipping.is_some() || config.telemetry.otlp_endpoint.is_some();
    if ships_logs {
        f.ok(
            "log-shipping",
            match (
                &config.telemetry.log_shipping,
                &config.telemetry.otlp_endpoint,
            ) {
                (Some(p), _) => format!("logs shipped by {p}"),
                (None, Some(_)) => "logs and traces exported over OTLP".to_owned(),
                _ => unreachable!(),
            },
        );
    } else {
        f.add("log-shipping", if production { Severity::High } else { Severity::Medium },
            "no log shipping or OTLP endpoint declared",
            "Logs stay on each host; with several replicas an incident means logging into each box (the audit's fourth finding).",
            "Ship stdout with Vector or Fluent Bit (docs/operations/logging-and-dashboards.md) and set VANTUS_LOG_SHIPPING, or set OTEL_EXPORTER_OTLP_ENDPOINT.");
    }
    if config.telemetry.sentry_dsn.is_some() {
        f.ok("error-reporting", "Sentry configured");
    } else {
        f.add(
            "error-reporting",
            if production {
                Severity::Medium
            } else {
                Severity::Ok
            },
            "no error reporting (SENTRY_DSN unset)",
            "Crashes and 500s are only in logs; nobody is told.",
            "Set SENTRY_DSN.",
        );
    }
    if production
        && config.telemetry.metrics_listen.is_none()
        && config.telemetry.metrics_token.is_none()
    {
        f.add(
            "metrics",
            Severity::Medium,
            "metrics are not exposed",
            "No dashboards or alerts on latency, errors or backups.",
            "Set VANTUS_METRICS_LISTEN=0.0.0.0:9090 (private network) or VANTUS_METRICS_TOKEN.",
        );
    }

    // Redis.
    if let Some(url) = &config.redis_url {
        match redis_ping(secrecy::ExposeSecret::expose_secret(url)).await {
            Ok(()) => f.ok("redis", "REDIS_URL answers PING"),
            Err(e) => f.add("redis", Severity::High, format!("REDIS_URL is configured but unreachable: {e}"),
                "Replicas fall back to per-process limits and sessions: limits multiply by the replica count.",
                "Check REDIS_URL and that Redis is running and reachable."),
        }
    }

    // Object storage for media.
    if let Some(bucket) = &config.s3.bucket {
        match super::destination::s3_store(&config.s3, bucket) {
            Ok(store) => {
                let d = Destination::S3 {
                    store,
                    bucket: bucket.clone(),
                    prefix: String::new(),
                };
                match tokio::time::timeout(Duration::from_secs(5), d.probe()).await {
                    Ok(Ok(())) => f.ok("object-storage", format!("s3://{bucket} answers")),
                    Ok(Err(e)) => f.add(
                        "object-storage",
                        Severity::Critical,
                        format!("s3://{bucket} is unreachable: {e}"),
                        "Uploads and media fail.",
                        "Check S3_ENDPOINT, the bucket and the credentials.",
                    ),
                    Err(_) => f.add(
                        "object-storage",
                        Severity::Critical,
                        format!("s3://{bucket}: no answer within 5 s"),
                        "Uploads and media fail.",
                        "Check S3_ENDPOINT and the network.",
                    ),
                }
            }
            Err(e) => f.add(
                "object-storage",
                Severity::Critical,
                e.to_string(),
                "Uploads and media fail.",
                "Fix the S3_* settings.",
            ),
        }
    }

    // Proxy trust.
    if config
        .http
        .trusted_proxies
        .iter()
        .any(|c| c.is_everything())
    {
        f.add(
            "trusted-proxies",
            Severity::High,
            "VANTUS_TRUSTED_PROXIES trusts every address",
            "Any client can forge X-Forwarded-For: rate limits and audit IPs become meaningless.",
            "List only your load balancers' ranges, e.g. 10.0.0.0/8.",
        );
    }

    // Disk.
    disk_check(&mut f, &config.data_dir);

    if let Some(db) = db {
        db.close().await;
    }
    let status = f.0.iter().map(|x| x.severity).max().unwrap_or(Severity::Ok);
    Report {
        status,
        environment: config.env.as_str(),
        findings: f.0,
    }
}

async fn migrations_check(f: &mut Findings, db: &Db) {
    match with_conn!(db, conn => store::migrate::pending(conn).await) {
        Ok(p) if p.is_empty() => f.ok("migrations", "all applied"),
        Ok(p) => f.add(
            "migrations",
            Severity::High,
            format!("{} migration(s) pending", p.len()),
            "The running code may expect tables or columns that do not exist yet.",
            "Run `vantus migrate` (the Kubernetes migration Job does this before a rollout).",
        ),
        Err(e) => f.add(
            "migrations",
            Severity::High,
            format!("cannot read the migration ledger: {e}"),
            "Unknown schema state.",
            "Run `vantus migrate --status`.",
        ),
    }
}

async fn clock_check(f: &mut Findings, db: &Db) {
    let Db::Postgres(pool) = db else { return };
    let Ok(server) =
        sqlx::query_scalar::<_, f64>("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
            .fetch_one(pool)
            .await
    else {
        return;
    };
    let local = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
    let skew = (local - server).abs();
    if skew > 30.0 {
        f.add(
            "clock",
            Severity::High,
            format!("this host's clock is {skew:.1} s away from the database's"),
            "Schedules fire at the wrong time, TOTP codes fail, audit timestamps disagree.",
            "Run NTP (chrony/systemd-timesyncd) on every host.",
        );
    } else if skew > 2.0 {
        f.add(
            "clock",
            Severity::Medium,
            format!("clock skew of {skew:.1} s with the database"),
            "TOTP and schedule drift.",
            "Run NTP on every host.",
        );
    } else {
        f.ok("clock", format!("within {skew:.2} s of the database"));
    }
}

/// Expected interval between runs of a schedule (the gap between its next two firings).
fn interval(schedule: &crate::config::Schedule) -> Option<Duration> {
    let mut up = schedule.cron.upcoming(chrono::Utc);
    let a = up.next()?;
    let b = up.next()?;
    (b - a).to_std().ok()
}

async fn backup_checks(f: &mut Findings, config: &Config, db: &Db) {
    let production = config.is_production();
    if config.backup.to.is_none() {
        f.add("backups", if production { Severity::Critical } else { Severity::Medium },
            "no backup destination (VANTUS_BACKUP_TO unset)",
            "If the disk or database dies, the data is gone.",
            "Set VANTUS_BACKUP_TO (off-host: s3://…) and VANTUS_BACKUP_SCHEDULE, e.g. \"0 3 * * *\".");
        return;
    }
    let last = with_conn!(db, conn => jobs::last_success(conn, jobs::BACKUP).await)
        .ok()
        .flatten();
    let age = last.map(|t| (time::OffsetDateTime::now_utc() - t.as_datetime()).unsigned_abs());
    let installed_age = installed_at(db)
        .await
        .map(|t| (time::OffsetDateTime::now_utc() - t).unsigned_abs());
    match (&config.backup.schedule, age) {
        (None, _) => f.add(
            "backup-schedule",
            Severity::High,
            "backups are not scheduled (VANTUS_BACKUP_SCHEDULE unset)",
            "Backups happen only when someone remembers.",
            "Set VANTUS_BACKUP_SCHEDULE, e.g. \"0 3 * * *\".",
        ),
        // A new installation whose first scheduled backup is still ahead is not in danger yet.
        (Some(s), None)
            if installed_age.is_some_and(|a| {
                a < interval(s)
                    .unwrap_or(Duration::from_secs(86_400))
                    .mul_f64(1.5)
            }) =>
        {
            f.add(
                "backups",
                Severity::Medium,
                "no backup yet: this installation is newer than its backup interval",
                "Until the first scheduled run, a lost disk loses everything.",
                "Run `vantus backup` now rather than waiting for the schedule.",
            )
        }
        (Some(_), None) => f.add(
            "backups",
            if production {
                Severity::Critical
            } else {
                Severity::High
            },
            "no successful backup has been recorded",
            "There is nothing to restore from.",
            "Run `vantus backup` now and check the scheduled job's logs.",
        ),
        (Some(s), Some(age)) => {
            let allowed = interval(s)
                .unwrap_or(Duration::from_secs(86_400))
                .mul_f64(1.5);
            if age > allowed {
                f.add("backups", Severity::Critical, format!("the last good backup is {} old; the schedule expects one every {}",
                    humantime::format_duration(Duration::from_secs(age.as_secs())), humantime::format_duration(allowed.div_f64(1.5))),
                    "Recent data would be lost.", "Check the backup job's logs (`vantus_job_runs_total{job=\"backup\",outcome=\"failed\"}`).");
            } else {
                f.ok(
                    "backups",
                    format!(
                        "last good backup {} ago",
                        humantime::format_duration(Duration::from_secs(age.as_secs()))
                    ),
                );
            }
        }
    }
    let drill = with_conn!(db, conn => jobs::last_success(conn, jobs::RESTORE_DRILL).await)
        .ok()
        .flatten();
    match (&config.backup.drill_schedule, drill) {
        (None, None) => f.add("restore-drill", Severity::High, "no restore drill has ever passed and none is scheduled",
            "A backup that has never been restored is a hope, not a backup.",
            "Set VANTUS_RESTORE_DRILL_SCHEDULE (e.g. \"30 4 * * 0\") or run `vantus restore --verify-only <archive>`."),
        (Some(_), None) => f.add("restore-drill", Severity::High, "no restore drill has passed yet",
            "Backups are unproven.", "Run `vantus restore --verify-only <archive>`; check the drill job's logs."),
        (schedule, Some(t)) => {
            let age = (time::OffsetDateTime::now_utc() - t.as_datetime()).unsigned_abs();
            let allowed = schedule.as_ref().and_then(interval).unwrap_or(Duration::from_secs(7 * 86_400)).mul_f64(1.5);
            if age > allowed {
                f.add("restore-drill", Severity::High, format!("the last passed restore drill is {} old",
                    humantime::format_duration(Duration::from_secs(age.as_secs()))),
                    "Backups made since then are unproven.", "Check the restore drill job.");
            } else {
                f.ok("restore-drill", format!("last drill passed {} ago", humantime::format_duration(Duration::from_secs(age.as_secs()))));
            }
        }
    }
}

/// When the first migration was applied: the installation's age.
async fn installed_at(db: &Db) -> Option<time::OffsetDateTime> {
    match db {
        Db::Postgres(p) => sqlx::query_scalar::<_, Option<time::OffsetDateTime>>(
            "SELECT MIN(installed_on) FROM _sqlx_migrations",
        )
        .fetch_one(p)
        .await
        .ok()
        .flatten(),
        Db::Sqlite(p) => {
            let text: Option<String> =
                sqlx::query_scalar("SELECT MIN(installed_on) FROM _sqlx_migrations")
                    .fetch_one(p)
                    .await
                    .ok()
                    .flatten();
            text.and_then(|t| {
                time::PrimitiveDateTime::parse(
                    &t,
                    time::macros::format_description!(
                        "[year]-[month]-[day] [hour]:[minute]:[second]"
                    ),
                )
                .ok()
                .map(|p| p.assume_utc())
            })
        }
    }
}

async fn backup_location_checks(f: &mut Findings, config: &Config) {
    let Some(location) = &config.backup.to else {
        return;
    };
    match location {
        BackupLocation::Local(dir) => {
            let data = match &config.database.url {
                DatabaseUrl::Sqlite { path } => path.clone(),
                DatabaseUrl::Postgres { .. } => config.data_dir.clone(),
            };
            if config.database.url.is_postgres() {
                // The database is elsewhere; only the media folder can share the disk.
            } else if device_of(dir).is_some() && device_of(dir) == device_of(&data) {
                f.add(
                    "backup-location",
                    Severity::High,
                    format!(
                        "backups ({}) are on the same disk as the database",
                        dir.display()
                    ),
                    "One disk failure destroys the data and its backups together.",
                    "Send backups off the host: VANTUS_BACKUP_TO=s3://bucket/prefix.",
                );
            } else {
                f.ok(
                    "backup-location",
                    format!("{} is on another device than the database", dir.display()),
                );
            }
        }
        BackupLocation::S3 { .. } => match Destination::open(location, &config.s3) {
            Ok(d) => match tokio::time::timeout(Duration::from_secs(5), d.probe()).await {
                Ok(Ok(())) => f.ok(
                    "backup-location",
                    format!("{} answers", location.describe()),
                ),
                Ok(Err(e)) => f.add(
                    "backup-location",
                    Severity::Critical,
                    format!("{} is unreachable: {e}", location.describe()),
                    "Scheduled backups fail.",
                    "Check S3_ENDPOINT, the bucket and the credentials.",
                ),
                Err(_) => f.add(
                    "backup-location",
                    Severity::Critical,
                    format!("{}: no answer within 5 s", location.describe()),
                    "Scheduled backups fail.",
                    "Check S3_ENDPOINT and the network.",
                ),
            },
            Err(e) => f.add(
                "backup-location",
                Severity::Critical,
                e.to_string(),
                "Backups cannot be stored.",
                "Fix the S3_* settings.",
            ),
        },
    }
}

async fn replica_checks(f: &mut Findings, config: &Config) {
    if config.database.replica_urls.is_empty() {
        return;
    }
    let set = match ReplicaSet::new(
        &config.database.replica_urls,
        1,
        config.database.replica_max_lag,
    ) {
        Ok(s) => s,
        Err(e) => {
            f.add(
                "replicas",
                Severity::High,
                e.to_string(),
                "Reads fall back to the primary.",
                "Fix DATABASE_REPLICA_URLS.",
            );
            return;
        }
    };
    set.probe_all().await;
    for r in set.replicas() {
        match r.state() {
            ReplicaState::Healthy => f.ok(
                "replicas",
                format!("{}: lag {} ms", r.name(), r.lag().as_millis()),
            ),
            ReplicaState::Lagging => f.add(
                "replicas",
                Severity::Medium,
                format!(
                    "{} lags {} s (limit {} s)",
                    r.name(),
                    r.lag().as_secs(),
                    config.database.replica_max_lag.as_secs()
                ),
                "Page reads go to the primary until it catches up.",
                "Check the replica's replay and network.",
            ),
            _ => f.add(
                "replicas",
                Severity::High,
                format!("{} is unreachable", r.name()),
                "Page reads all go to the primary.",
                "Check the replica server and DATABASE_REPLICA_URLS.",
            ),
        }
    }
    set.close().await;
}

fn disk_check(f: &mut Findings, data_dir: &Path) {
    let Some(dir) = existing_ancestor(data_dir) else {
        return;
    };
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return;
    };
    let total = st.f_blocks.saturating_mul(st.f_frsize);
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if total == 0 {
        return;
    }
    let pct = free as f64 * 100.0 / total as f64;
    let gib = free as f64 / (1u64 << 30) as f64;
    let msg = format!("{gib:.1} GiB free ({pct:.0}%) under {}", dir.display());
    if pct < 5.0 || gib < 1.0 {
        f.add(
            "disk",
            Severity::Critical,
            msg,
            "Writes, backups and SQLite checkpoints will fail soon.",
            "Free space or grow the volume.",
        );
    } else if pct < 15.0 {
        f.add(
            "disk",
            Severity::Medium,
            msg,
            "Little headroom for growth and backups.",
            "Plan more space.",
        );
    } else {
        f.ok("disk", msg);
    }
}

async fn redis_ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let fut = async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(3), fut).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

/// Prints the report for people.
pub fn print(report: &Report) {
    println!("vantus doctor ({} mode)\n", report.environment);
    for f in &report.findings {
        println!(
            "[{:<8}] {:<20} {}",
            f.severity.label().to_uppercase(),
            f.check,
            f.finding
        );
        if f.severity != Severity::Ok {
            if !f.impact.is_empty() {
                println!("{:32}impact: {}", "", f.impact);
            }
            if !f.fix.is_empty() {
                println!("{:32}fix:    {}", "", f.fix);
            }
        }
    }
    let count = |s| report.findings.iter().filter(|f| f.severity == s).count();
    println!(
        "\n{} critical, {} high, {} medium, {} ok: overall {}",
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Ok),
        report.status.label()
    );
}
