//! Backups: destination, schedule, freshness, restore drills, and where they are kept.

use std::time::Duration;

use super::{Doctor, Finding, Severity, database, disk, services};
use crate::config::{BackupLocation, DatabaseUrl, Schedule};
use crate::jobs;
use crate::ops::destination::Destination;
use crate::store::Db;

/// Expected interval between runs of a schedule (the gap between its next two firings).
fn interval(schedule: &Schedule) -> Option<Duration> {
    let mut up = schedule.cron.upcoming(chrono::Utc);
    let a = up.next()?;
    let b = up.next()?;
    (b - a).to_std().ok()
}

/// How long ago `t` was, in whole seconds, as people read it.
fn ago(age: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(age.as_secs()))
}

fn age_of(t: time::OffsetDateTime) -> Duration {
    (time::OffsetDateTime::now_utc() - t).unsigned_abs()
}

/// Whether backups and restore drills happen on time, from the job ledger in `db`.
pub(super) async fn freshness(d: &mut Doctor<'_>, db: &Db) {
    let mut needs = database::NEEDS.to_vec();
    needs.extend([
        "VANTUS_BACKUP_TO",
        "VANTUS_BACKUP_SCHEDULE",
        "VANTUS_RESTORE_DRILL_SCHEDULE",
    ]);
    if !d.can_run("backups", &needs) {
        return;
    }
    let production = d.production();
    let backup = &d.config.backup;
    if backup.to.is_none() {
        d.push(Finding::new("backups", if production { Severity::Critical } else { Severity::Medium },
            "no backup destination (VANTUS_BACKUP_TO unset)")
            .impact("If the disk or database dies, the data is gone.")
            .fix("Set VANTUS_BACKUP_TO (off-host: s3://…) and VANTUS_BACKUP_SCHEDULE, e.g. \"0 3 * * *\"."));
        return;
    }
    let last = with_conn!(db, conn => jobs::last_success(conn, jobs::BACKUP).await)
        .ok()
        .flatten();
    let age = last.map(|t| age_of(t.as_datetime()));
    let installed_age = installed_at(db).await.map(age_of);
    let expected = |s: &Schedule| {
        interval(s)
            .unwrap_or(Duration::from_secs(86_400))
            .mul_f64(1.5)
    };
    let finding = match (&backup.schedule, age) {
        (None, _) => Finding::high(
            "backup-schedule",
            "backups are not scheduled (VANTUS_BACKUP_SCHEDULE unset)",
        )
        .impact("Backups happen only when someone remembers.")
        .fix("Set VANTUS_BACKUP_SCHEDULE, e.g. \"0 3 * * *\"."),
        // A new installation whose first scheduled backup is still ahead is not in danger yet.
        (Some(s), None) if installed_age.is_some_and(|a| a < expected(s)) => Finding::medium(
            "backups",
            "no backup yet: this installation is newer than its backup interval",
        )
        .impact("Until the first scheduled run, a lost disk loses everything.")
        .fix("Run `vantus backup` now rather than waiting for the schedule."),
        (Some(_), None) => Finding::new(
            "backups",
            if production {
                Severity::Critical
            } else {
                Severity::High
            },
            "no successful backup has been recorded",
        )
        .impact("There is nothing to restore from.")
        .fix("Run `vantus backup` now and check the scheduled job's logs."),
        (Some(s), Some(age)) => {
            let allowed = expected(s);
            if age > allowed {
                Finding::critical("backups", format!("the last good backup is {} old; the schedule expects one every {}",
                    ago(age), humantime::format_duration(allowed.div_f64(1.5))))
                    .impact("Recent data would be lost.")
                    .fix("Check the backup job's logs (`vantus_job_runs_total{job=\"backup\",outcome=\"failed\"}`).")
            } else {
                Finding::ok("backups", format!("last good backup {} ago", ago(age)))
            }
        }
    };
    d.push(finding);
    restore_drill(d, db).await;
}

async fn restore_drill(d: &mut Doctor<'_>, db: &Db) {
    let drill = with_conn!(db, conn => jobs::last_success(conn, jobs::RESTORE_DRILL).await)
        .ok()
        .flatten();
    let finding = match (&d.config.backup.drill_schedule, drill) {
        (None, None) => Finding::high("restore-drill", "no restore drill has ever passed and none is scheduled")
            .impact("A backup that has never been restored is a hope, not a backup.")
            .fix("Set VANTUS_RESTORE_DRILL_SCHEDULE (e.g. \"30 4 * * 0\") or run `vantus restore --verify-only <archive>`."),
        (Some(_), None) => Finding::high("restore-drill", "no restore drill has passed yet")
            .impact("Backups are unproven.")
            .fix("Run `vantus restore --verify-only <archive>`; check the drill job's logs."),
        (schedule, Some(t)) => {
            let age = age_of(t.as_datetime());
            let allowed = schedule
                .as_ref()
                .and_then(interval)
                .unwrap_or(Duration::from_secs(7 * 86_400))
                .mul_f64(1.5);
            if age > allowed {
                Finding::high(
                    "restore-drill",
                    format!("the last passed restore drill is {} old", ago(age)),
                )
                .impact("Backups made since then are unproven.")
                .fix("Check the restore drill job.")
            } else {
                Finding::ok("restore-drill", format!("last drill passed {} ago", ago(age)))
            }
        }
    };
    d.push(finding);
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

/// Where backups are kept: off the database's disk, and reachable.
pub(super) async fn location(d: &mut Doctor<'_>) {
    let config = d.config;
    let Some(location) = &config.backup.to else {
        return;
    };
    if !d.can_run(
        "backup-location",
        &[
            "VANTUS_BACKUP_TO",
            "DATABASE_URL",
            "VANTUS_DATA_DIR",
            "S3_ENDPOINT",
            "S3_REGION",
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
        ],
    ) {
        return;
    }
    let finding = match location {
        BackupLocation::Local(dir) => {
            let DatabaseUrl::Sqlite { path: data } = &config.database.url else {
                // The database is elsewhere; only the media folder can share the disk.
                return;
            };
            if device_of_both(dir, data) {
                Finding::high(
                    "backup-location",
                    format!(
                        "backups ({}) are on the same disk as the database",
                        dir.display()
                    ),
                )
                .impact("One disk failure destroys the data and its backups together.")
                .fix("Send backups off the host: VANTUS_BACKUP_TO=s3://bucket/prefix.")
            } else {
                Finding::ok(
                    "backup-location",
                    format!("{} is on another device than the database", dir.display()),
                )
            }
        }
        BackupLocation::S3 { .. } => match Destination::open(location, &config.s3) {
            Ok(dest) => {
                services::probe(
                    "backup-location",
                    &dest,
                    &location.describe(),
                    "Scheduled backups fail.",
                )
                .await
            }
            Err(e) => Finding::critical("backup-location", e.to_string())
                .impact("Backups cannot be stored.")
                .fix("Fix the S3_* settings."),
        },
    };
    d.push(finding);
}

/// True when both paths are known to be on the same device.
fn device_of_both(a: &std::path::Path, b: &std::path::Path) -> bool {
    disk::device_of(a).is_some() && disk::device_of(a) == disk::device_of(b)
}
