use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, command_telemetry, load_config};
use crate::audit::{self, Actor, AuditAction};
use crate::config::DatabaseUrl;
use crate::ops::{copy, print_checks};
use crate::store;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table between SQLite and PostgreSQL (either direction), verifying per-table
    /// row counts and checksums; re-run the same command to resume after an interruption.
    #[command(after_long_help = super::settings_help())]
    Copy(CopyArgs),
    /// Add a generated data set (content items for a `generated` tenant, audit-log rows) to
    /// the configured database: for benchmarks and restore drills, never for production.
    #[command(after_long_help = super::settings_help())]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Content items to add.
    #[arg(long, default_value_t = 1000)]
    pub content_items: u64,
    /// Audit-log rows to add.
    #[arg(long, default_value_t = 100_000)]
    pub audit_rows: u64,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source database URL (sqlite://… or postgres://…).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target database URL; must be empty (or hold an unfinished copy of the same source).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Show what would be copied and the target's state; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config_file: &Option<PathBuf>, cmd: DbCommand) -> Result<(), CliError> {
    let args = match cmd {
        DbCommand::Copy(args) => args,
        DbCommand::Generate(args) => return generate(config_file, args).await,
    };
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let mut from_cfg = config.database.clone();
    from_cfg.url = DatabaseUrl::parse("--from", &args.from)?;
    from_cfg.replica_urls.clear();
    let mut to_cfg = from_cfg.clone();
    to_cfg.url = DatabaseUrl::parse("--to", &args.to)?;
    if from_cfg.url.redacted() == to_cfg.url.redacted() {
        return Err(CliError::Failed(
            "--from and --to name the same database".into(),
        ));
    }
    let source = store::connect_existing("--from", &from_cfg).await?;
    let target = store::connect(&to_cfg).await?;
    let label = from_cfg.url.redacted();
    let result = copy::run(&source, &label, &target, args.dry_run, true).await;
    if let Ok(r) = &result
        && r.verified()
    {
        let detail = serde_json::json!({
            "rows": r.copied_rows, "from": r.source_engine, "to": r.target_engine
        });
        // A write transaction: the audit entry joins the hash chain under its lock.
        let _ = in_write_tx!(&target, conn => {
            audit::record(conn, &Actor::Cli, AuditAction::DbCopied, &label, detail).await
        });
    }
    source.close().await;
    target.close().await;
    let report = result?;
    if args.json {
        crate::say!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else if report.dry_run {
        crate::say!(
            "dry run: {} → {} (target is {})",
            report.source_engine,
            report.target_engine,
            report.target_state
        );
        for (table, rows) in &report.plan {
            crate::say!("  {table:<24} {rows:>10} rows");
        }
    } else {
        crate::say!(
            "copied {} rows {} → {}{} in {:.1} s",
            report.copied_rows,
            report.source_engine,
            report.target_engine,
            if report.target_state == "resuming" {
                " (resumed)"
            } else {
                ""
            },
            report.seconds
        );
        print_checks(&report.tables);
    }
    if !report.dry_run && !report.verified() {
        return Err(CliError::Failed(
            "verification failed: the target does not match the source".into(),
        ));
    }
    Ok(())
}

async fn generate(config_file: &Option<PathBuf>, args: GenerateArgs) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    if config.is_production() {
        return Err(CliError::Failed(
            "refusing to generate sample data in production".into(),
        ));
    }
    let db = store::connect(&config.database).await?;
    store::migrate::migrate_to(&db, None)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let generated = crate::ops::generate::run(&db, args.content_items, args.audit_rows).await?;
    db.close().await;
    crate::say!(
        "generated {} content items and {} audit rows",
        generated.content_items,
        generated.audit_rows
    );
    Ok(())
}
