use std::path::PathBuf;

use clap::Args;

use super::backup::read_passphrase;
use super::{CliError, command_telemetry, load_config};
use crate::audit::{self, Actor, AuditAction};
use crate::config::DatabaseUrl;
use crate::jobs::{self, Outcome};
use crate::ops::restore::{self, RestoreOptions, RestoreReport};
use crate::ops::{destination, print_checks};
use crate::store::{self, Timestamp};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive: a local file or s3://bucket/path/vantus-<time>.vbak.
    pub archive: String,
    /// Replace the contents of a non-empty target (in one transaction, verified before commit).
    /// Not with --verify-only: a drill never replaces a database.
    #[arg(long, conflicts_with = "verify_only")]
    pub force: bool,
    /// The restore drill: restore into a scratch database, verify, report; touch nothing else.
    #[arg(long)]
    pub verify_only: bool,
    /// Scratch database for --verify-only (default: a temporary SQLite file); it must be empty.
    #[arg(long, value_name = "URL", requires = "verify_only")]
    pub scratch_url: Option<String>,
    /// Target database (default: DATABASE_URL).
    #[arg(long, value_name = "URL", conflicts_with = "verify_only")]
    pub to: Option<String>,
    /// Passphrase file for an encrypted archive (overrides VANTUS_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config_file: &Option<PathBuf>, args: RestoreArgs) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let passphrase = match &args.passphrase_file {
        Some(f) => Some(read_passphrase(f)?),
        None => config.backup.passphrase.clone(),
    };
    let scratch = crate::ops::scratch_dir(&config, "vantus-restore-")?;
    let archive = destination::fetch_archive(&args.archive, &config.s3, scratch.path()).await?;

    let mut target_cfg = config.database.clone();
    if args.verify_only {
        target_cfg.url = match &args.scratch_url {
            Some(u) => DatabaseUrl::parse("--scratch-url", u)?,
            None => DatabaseUrl::Sqlite {
                path: scratch.path().join("drill.db"),
            },
        };
    } else if let Some(u) = &args.to {
        target_cfg.url = DatabaseUrl::parse("--to", u)?;
    }
    target_cfg.replica_urls.clear();
    let target = store::connect(&target_cfg).await?;
    if args.verify_only
        && let Err(e) = restore::ensure_empty_database(&target, "the scratch database").await
    {
        target.close().await;
        return Err(e.into());
    }
    let media = config.data_dir.join("media");
    let remote_media = crate::media::MediaStore::remote_for_config(&config);
    let started = Timestamp::now();
    let result = restore::run(
        &archive,
        &target,
        RestoreOptions {
            force: args.force,
            passphrase: passphrase.as_ref(),
            media_dir: (!args.verify_only).then_some(media.as_path()),
            media_store: remote_media.as_ref().filter(|_| !args.verify_only),
            interactive: true,
        },
    )
    .await;
    target.close().await;

    // Record the outcome in the application's database (best effort: for a drill it may be
    // elsewhere or down, and the drill's verdict is what matters).
    let summary = match &result {
        Ok(r) => format!("{}: {} rows verified", args.archive, r.rows),
        Err(e) => e.to_string(),
    };
    if let Ok(app_db) = store::connect(&config.database).await {
        let outcome = if result.is_ok() {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        };
        if args.verify_only {
            let _ = with_conn!(&app_db, conn => {
                jobs::record_manual(conn, jobs::RESTORE_DRILL, started, outcome, &summary).await
            });
        } else if result.is_ok() {
            let detail = serde_json::json!({ "summary": summary });
            // A write transaction: the audit entry joins the hash chain under its lock.
            let _ = in_write_tx!(&app_db, conn => {
                let action = AuditAction::RestoreCompleted;
                audit::record(conn, &Actor::Cli, action, &args.archive, detail).await
            });
        }
        app_db.close().await;
    }

    let report = result?;
    print_report(&report, &args);
    Ok(())
}

fn print_report(report: &RestoreReport, args: &RestoreArgs) {
    if args.json {
        crate::say!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        );
        return;
    }
    crate::say!(
        "{} {} (made {} on {}, schema {}) into {}: {} rows in {:.1} s{}",
        if args.verify_only {
            "restore drill of"
        } else {
            "restored"
        },
        args.archive,
        report.archive_created_at,
        report.archive_engine,
        report.schema_version,
        report.target_engine,
        report.rows,
        report.seconds,
        if report.replaced_existing {
            ", replacing the previous contents"
        } else {
            ""
        }
    );
    print_checks(&report.tables);
    if let Some(head) = &report.audit_head {
        crate::say!("audit chain head in the archive: {head}");
    }
    crate::say!(
        "verdict: {}",
        if report.verified() {
            "every table matches the manifest"
        } else {
            "MISMATCH"
        }
    );
}
