//! `vantus leads export|erase --email ADDRESS`: a person's subject-access and right-to-erasure
//! requests.

use clap::{Args, Subcommand};

use super::{CliError, command_telemetry, load_config};
use crate::audit::Actor;
use crate::leads::privacy;
use crate::mail::address::Email;
use crate::store;

#[derive(Debug, Subcommand)]
pub enum LeadsCommand {
    /// Print everything stored about the person with this address, as JSON (a
    /// subject-access request). Recorded in the audit log without the address.
    Export(PersonArgs),
    /// Delete the person's submissions and their queued notifications in every tenant (a
    /// right-to-erasure request). Recorded in the audit log without the address. Backups keep
    /// older copies until they are rotated out.
    Erase(PersonArgs),
}

#[derive(Debug, Args)]
pub struct PersonArgs {
    /// The person's email address.
    #[arg(long, value_name = "ADDRESS")]
    pub email: String,
}

pub async fn run(
    config_file: &Option<std::path::PathBuf>,
    cmd: LeadsCommand,
) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let raw = match &cmd {
        LeadsCommand::Export(a) | LeadsCommand::Erase(a) => &a.email,
    };
    let email = Email::parse(raw).map_err(|why| CliError::Failed(format!("--email {why}")))?;
    let db = store::connect_existing("DATABASE_URL", &config.database).await?;
    let failed = |e: sqlx::Error| CliError::Failed(format!("database: {e}"));
    let outcome = match cmd {
        LeadsCommand::Export(_) => {
            let export = privacy::export(&db, &email, &Actor::Cli)
                .await
                .map_err(failed);
            export.map(|e| {
                crate::say!(
                    "{}",
                    serde_json::to_string_pretty(&e).expect("an export serializes")
                )
            })
        }
        LeadsCommand::Erase(_) => privacy::erase(&db, &email, &Actor::Cli)
            .await
            .map_err(failed)
            .map(|e| {
                crate::say!(
                    "erased {} submission(s) and {} queued notification(s) in {} tenant(s)",
                    e.submissions,
                    e.messages,
                    e.tenants
                )
            }),
    };
    db.close().await;
    outcome
}
