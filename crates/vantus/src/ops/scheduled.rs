//! The jobs `vantus serve` runs on a schedule: backups, restore drills, the lead retention
//! sweep (spam and old idempotency keys), and the sweep of dead credentials (`auth::expired`).

use std::sync::Arc;

use crate::audit::Actor;
use crate::jobs::{self, JobFn, Scheduler};
use crate::state::App;

use super::backup::{self, BackupOptions, Journal};
use super::destination::Destination;
use super::restore::{self, RestoreOptions};

/// Registers the configured jobs.
pub fn register(scheduler: &mut Scheduler, app: &App, instance: &str) {
    if let Some(schedule) = app
        .config
        .backup
        .schedule
        .clone()
        .filter(|_| app.config.backup.run_in_serve)
    {
        let app = app.clone();
        let instance = instance.to_owned();
        let run: JobFn = Arc::new(move || {
            let app = app.clone();
            let instance = instance.clone();
            Box::pin(async move { scheduled_backup(&app, &instance).await.map(Into::into) })
        });
        scheduler.add(jobs::BACKUP, schedule, run);
    }
    if let Some(schedule) = app.config.backup.drill_schedule.clone() {
        let app = app.clone();
        let run: JobFn = Arc::new(move || {
            let app = app.clone();
            Box::pin(async move { restore_drill(&app).await.map(Into::into) })
        });
        scheduler.add(jobs::RESTORE_DRILL, schedule, run);
    }
    {
        let app = app.clone();
        let instance = instance.to_owned();
        let run: JobFn = Arc::new(move || {
            let app = app.clone();
            let instance = instance.clone();
            Box::pin(async move {
                let actor = Actor::Scheduler { instance };
                crate::leads::privacy::purge_expired(
                    app.store.primary(),
                    app.config.leads.spam_retention,
                    &actor,
                )
                .await
                .map(|p| {
                    jobs::Ran::counted(p.spam + p.idempotency_keys, || {
                        format!(
                            "{} spam submission(s), {} idempotency key(s) deleted",
                            p.spam, p.idempotency_keys
                        )
                    })
                })
                .map_err(|e| e.to_string())
            })
        });
        let hourly = crate::config::Schedule::parse("(lead retention)", "17 * * * *")
            .expect("the retention schedule is a valid cron expression");
        scheduler.add(jobs::LEAD_RETENTION, hourly, run);
    }
    {
        let app = app.clone();
        let run: JobFn = Arc::new(move || {
            let app = app.clone();
            Box::pin(async move {
                let idle = app.config.auth.session_idle;
                with_conn!(app.store.primary(), conn =>
                    crate::auth::expired::sweep(conn, crate::store::Timestamp::now(), idle).await)
                .map(|swept| jobs::Ran::counted(swept.total(), || swept.summary()))
                .map_err(|e| e.to_string())
            })
        });
        let hourly = crate::config::Schedule::parse("(credential sweep)", "47 * * * *")
            .expect("the credential sweep's schedule is a valid cron expression");
        scheduler.add(jobs::CREDENTIAL_SWEEP, hourly, run);
    }
}

/// Where scheduled backups go (and drills read from): `VANTUS_BACKUP_TO`.
fn configured_destination(app: &App) -> Result<Destination, String> {
    let location = app
        .config
        .backup
        .to
        .as_ref()
        .ok_or("VANTUS_BACKUP_TO is not set")?;
    Destination::open(location, &app.config.s3).map_err(|e| e.to_string())
}

async fn scheduled_backup(app: &App, instance: &str) -> Result<String, String> {
    let destination = configured_destination(app)?;
    let media = app.config.data_dir.join("media");
    let remote_media = app
        .media
        .local_folder()
        .is_none()
        .then(|| app.media.clone());
    let scratch = super::scratch_dir(&app.config, "vantus-backup-").map_err(|e| e.to_string())?;
    let actor = Actor::Scheduler {
        instance: instance.to_owned(),
    };
    let report = backup::run_recorded(
        app.store.primary(),
        BackupOptions {
            destination: &destination,
            scratch: scratch.path(),
            passphrase: app.config.backup.passphrase.as_ref(),
            media_dir: remote_media.is_none().then_some(media.as_path()),
            media_store: remote_media.as_ref(),
            keep: Some((app.config.backup.keep_daily, app.config.backup.keep_weekly)),
            interactive: false,
        },
        &actor,
        Journal::ClaimedByScheduler,
    )
    .await
    .map_err(|e| e.to_string())?;
    // The summary names the audit chain's head, as `vantus backup` prints it.
    let audit_head = report
        .audit_head
        .as_ref()
        .map(|h| format!(", audit chain head {h}"))
        .unwrap_or_default();
    Ok(format!(
        "{} ({} bytes, {} rows, {} pruned{audit_head})",
        report.location,
        report.bytes,
        report.rows,
        report.pruned.len()
    ))
}

/// Restores the newest backup into a scratch SQLite database and checks every table.
async fn restore_drill(app: &App) -> Result<String, String> {
    let destination = configured_destination(app)?;
    let newest = destination
        .list()
        .await
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or("there is no backup to drill")?;
    let scratch = super::scratch_dir(&app.config, "vantus-drill-").map_err(|e| e.to_string())?;
    let archive = destination
        .fetch(&newest, scratch.path())
        .await
        .map_err(|e| e.to_string())?;
    let mut cfg = app.config.database.clone();
    cfg.url = crate::config::DatabaseUrl::Sqlite {
        path: scratch.path().join("drill.db"),
    };
    cfg.replica_urls.clear();
    let db = crate::store::connect(&cfg)
        .await
        .map_err(|e| e.to_string())?;
    let report = restore::run(
        &archive,
        &db,
        RestoreOptions {
            force: false,
            passphrase: app.config.backup.passphrase.as_ref(),
            media_dir: None,
            media_store: None,
            interactive: false,
        },
    )
    .await
    .map_err(|e| e.to_string());
    db.close().await;
    let report = report?;
    Ok(format!(
        "{newest}: {} rows in {} tables verified in {:.1} s",
        report.rows,
        report.tables.len(),
        report.seconds
    ))
}
