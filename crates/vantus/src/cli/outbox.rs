use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use super::{CliError, command_telemetry, load_config};
use crate::audit::{self, Actor, AuditAction};
use crate::outbox::{self, Requeue};
use crate::store::{self, Db};

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Count the notifications in each state and list the undelivered ones (id, channel,
    /// topic, attempts, next attempt, last error; never an address or a message).
    #[command(after_long_help = super::settings_help())]
    Status(StatusArgs),
    /// Requeue one undelivered notification (ID), or every dead-lettered one (--dead), for
    /// delivery now; attempts start again at 0.
    #[command(after_long_help = super::settings_help())]
    Retry(RetryArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// List at most this many undelivered messages, oldest first.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: u32,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "dead"])))]
pub struct RetryArgs {
    /// The message's id as `vantus outbox status` shows it (a UUID, or its msg_… form).
    pub id: Option<String>,
    /// Requeue every dead-lettered message instead.
    #[arg(long, conflicts_with = "id")]
    pub dead: bool,
}

pub async fn run(config_file: &Option<PathBuf>, cmd: OutboxCommand) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let db = store::connect(&config.database).await?;
    let result = match cmd {
        OutboxCommand::Status(args) => status(&db, &args).await,
        OutboxCommand::Retry(args) => retry(&db, &args).await,
    };
    db.close().await;
    result
}

fn failed(what: &str, e: sqlx::Error) -> CliError {
    CliError::Failed(format!("cannot {what} the outbox: {e}"))
}

async fn status(db: &Db, args: &StatusArgs) -> Result<(), CliError> {
    let (counts, entries) = with_conn!(db, conn => {
        let counts = outbox::status_counts(conn).await?;
        let entries = outbox::list(conn, i64::from(args.limit)).await?;
        Ok::<_, sqlx::Error>((counts, entries))
    })
    .map_err(|e| failed("read", e))?;
    if args.json {
        let report = serde_json::json!({ "counts": counts, "messages": entries });
        crate::say!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string())
        );
        return Ok(());
    }
    crate::say!(
        "outbox: {} pending, {} retrying, {} dead, {} sent",
        counts.pending,
        counts.retrying,
        counts.dead,
        counts.sent
    );
    if entries.is_empty() {
        return Ok(());
    }
    crate::say!(
        "\n{:<36}  {:<12}  {:<7}  {:<12}  {:<8}  {:>8}  {:<27}  LAST ERROR",
        "ID",
        "TENANT",
        "CHANNEL",
        "TOPIC",
        "STATE",
        "ATTEMPTS",
        "NEXT ATTEMPT"
    );
    for e in &entries {
        crate::say!(
            "{:<36}  {:<12}  {:<7}  {:<12}  {:<8}  {:>8}  {:<27}  {}",
            e.id,
            e.tenant,
            e.channel,
            e.topic,
            e.state.as_str(),
            e.attempts,
            if e.state == outbox::State::Dead {
                "-".to_owned()
            } else {
                e.next_attempt_at.to_rfc3339_seconds()
            },
            e.last_error.as_deref().unwrap_or("-")
        );
    }
    let undelivered = counts.pending + counts.retrying + counts.dead;
    if undelivered > entries.len() as i64 {
        crate::say!(
            "(the oldest {} of {undelivered} undelivered; --limit shows more)",
            entries.len()
        );
    }
    Ok(())
}

async fn retry(db: &Db, args: &RetryArgs) -> Result<(), CliError> {
    if args.dead {
        let n = in_write_tx!(db, conn => {
            let n = outbox::retry_dead(conn).await?;
            if n > 0 {
                audit::record(conn, &Actor::Cli, AuditAction::OutboxRequeued, "outbox/dead",
                    serde_json::json!({ "messages": n })).await?;
            }
            Ok::<_, sqlx::Error>(n)
        })
        .map_err(|e| failed("requeue in", e))?;
        crate::say!("requeued {n} dead message(s) for delivery now");
        return Ok(());
    }
    let raw = args.id.as_deref().unwrap_or_default();
    let id = outbox::parse_id(raw).ok_or_else(|| {
        CliError::Failed(format!(
            "\"{raw}\" is not an outbox id: give a UUID or msg_… as `vantus outbox status` shows"
        ))
    })?;
    let done = in_write_tx!(db, conn => {
        let done = outbox::retry(conn, id).await?;
        if done == Requeue::Requeued {
            audit::record(conn, &Actor::Cli, AuditAction::OutboxRequeued, &format!("outbox/{id}"),
                serde_json::json!({ "messages": 1 })).await?;
        }
        Ok::<_, sqlx::Error>(done)
    })
    .map_err(|e| failed("requeue in", e))?;
    match done {
        Requeue::Requeued => {
            crate::say!("requeued {id} for delivery now");
            Ok(())
        }
        Requeue::NotFound => Err(CliError::Failed(format!(
            "no outbox message has the id {id}"
        ))),
        Requeue::AlreadySent => Err(CliError::Failed(format!(
            "outbox message {id} was delivered already; there is nothing to retry"
        ))),
    }
}
