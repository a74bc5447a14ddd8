use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;

use super::{CliError, command_telemetry, load_config};
use crate::audit::Actor;
use crate::config::BackupLocation;
use crate::ops::backup::{self, BackupOptions, Journal};
use crate::ops::destination::Destination;
use crate::store;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Destination: a local folder or s3://bucket/prefix (overrides VANTUS_BACKUP_TO).
    #[arg(long, value_name = "LOCATION")]
    pub to: Option<String>,
    /// Also include uploaded media (the data folder's media/).
    #[arg(long)]
    pub with_media: bool,
    /// Afterwards, keep only the newest backup of each of the last N days (prunes only when
    /// --keep-daily or --keep-weekly is given).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Afterwards, also keep the newest backup of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Encrypt with the passphrase in this file (overrides VANTUS_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads a passphrase file (trailing newline ignored), naming the flag on failure.
pub(super) fn read_passphrase(file: &std::path::Path) -> Result<SecretString, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Failed(format!("--passphrase-file {}: {e}", file.display())))?;
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.chars().count() < 12 {
        return Err(CliError::Failed(format!(
            "--passphrase-file {}: the passphrase is shorter than 12 characters",
            file.display()
        )));
    }
    Ok(SecretString::from(text))
}

pub async fn run(config_file: &Option<PathBuf>, args: BackupArgs) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let location = match &args.to {
        Some(raw) => BackupLocation::parse("--to", raw)?,
        None => config.backup.to.clone().ok_or_else(|| {
            CliError::Failed(
                "no destination: pass --to PATH_OR_S3_URL or set VANTUS_BACKUP_TO".into(),
            )
        })?,
    };
    let passphrase = match &args.passphrase_file {
        Some(f) => Some(read_passphrase(f)?),
        None => config.backup.passphrase.clone(),
    };
    let destination = Destination::open(&location, &config.s3)?;
    let db = store::connect(&config.database).await?;
    let media = config.data_dir.join("media");
    // Media in S3 is read from the bucket; otherwise from the data folder.
    let remote_media = crate::media::MediaStore::remote_for_config(&config);
    let keep = (args.keep_daily.is_some() || args.keep_weekly.is_some())
        .then(|| (args.keep_daily.unwrap_or(0), args.keep_weekly.unwrap_or(0)));
    let scratch = crate::ops::scratch_dir(&config, "vantus-backup-")?;
    let result = backup::run_recorded(
        &db,
        BackupOptions {
            destination: &destination,
            scratch: scratch.path(),
            passphrase: passphrase.as_ref(),
            media_dir: (args.with_media && remote_media.is_none()).then_some(media.as_path()),
            media_store: remote_media.as_ref().filter(|_| args.with_media),
            keep,
            interactive: true,
        },
        &Actor::Cli,
        Journal::Here,
    )
    .await;
    db.close().await;
    let report = result?;
    if args.json {
        crate::say!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        crate::say!(
            "backup written: {}\n  {} bytes, {} tables, {} rows, {} media files, {:.1} s{}\n  sha256 {}",
            report.location,
            report.bytes,
            report.tables,
            report.rows,
            report.media_files,
            report.seconds,
            if passphrase.is_some() {
                ", encrypted"
            } else {
                ""
            },
            report.sha256
        );
        if let Some(head) = &report.audit_head {
            crate::say!("  audit chain head {head}");
        }
        for p in &report.pruned {
            crate::say!("  pruned {p}");
        }
    }
    Ok(())
}
