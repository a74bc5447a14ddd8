use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, command_telemetry, load_config};
use crate::audit::chain::{self, ChainHead, Verdict};
use crate::store::{self, migrate};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain from its first row to its newest; exit 0 when
    /// every row is intact, 1 naming the first row that was changed, removed or added outside
    /// the chain (see docs/operations/audit-log.md).
    #[command(after_long_help = super::settings_help())]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also require the chain to contain this row, as a backup records it (`vantus backup`
    /// prints "audit chain head SEQ:HASH"; the manifest holds it as `audit_head`): detects
    /// rows removed from the end of the chain since that backup.
    #[arg(long, value_name = "SEQ:HASH")]
    pub expect_head: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config_file: &Option<PathBuf>, cmd: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::Verify(args) = cmd;
    let anchor = args.expect_head.as_deref().map(parse_head).transpose()?;
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    // An audit never creates the database it is asked to check.
    let db = store::connect_existing("DATABASE_URL", &config.database).await?;
    let verdict = with_conn!(&db, conn => {
        let pending = migrate::pending(conn).await?;
        if pending.iter().any(|(v, _)| *v <= store::append_only::AUDIT_CHAIN_MIGRATION) {
            Ok(None)
        } else {
            chain::verify(conn, anchor.as_ref(), &mut |n: u64| {
                eprintln!("audit verify: {n} rows checked");
            })
            .await
            .map(Some)
        }
    });
    db.close().await;
    let verdict = verdict
        .map_err(|e: sqlx::Error| CliError::Failed(format!("cannot read the audit log: {e}")))?
        .ok_or_else(|| {
            CliError::Failed(
                "the database has no audit chain yet; run `vantus migrate` first".into(),
            )
        })?;
    if args.json {
        crate::say!("{}", verdict_json(&verdict));
    }
    match verdict {
        Verdict::Intact { rows, head } => {
            if !args.json {
                match head {
                    Some(h) => crate::say!("audit chain intact: {rows} rows checked, newest {h}"),
                    None => crate::say!("audit chain intact: the audit log is empty"),
                }
            }
            Ok(())
        }
        Verdict::Broken { checked, at } => Err(CliError::Failed(format!(
            "audit chain broken at {at}; the {checked} rows before it are intact"
        ))),
        Verdict::Truncated {
            rows,
            head,
            expected,
        } => Err(CliError::Failed(format!(
            "audit chain ends at seq {} but seq {} was recorded ({rows} rows intact): rows were removed from its end",
            head.map_or(0, |h| h.seq),
            expected.seq
        ))),
    }
}

/// `SEQ:HASH` as `vantus backup` prints the head.
fn parse_head(raw: &str) -> Result<ChainHead, CliError> {
    let bad = || {
        CliError::Failed(format!(
            "--expect-head {raw:?} is not SEQ:HASH (a number, a colon, 64 lowercase hex digits)"
        ))
    };
    let (seq, hash) = raw.split_once(':').ok_or_else(bad)?;
    let seq: i64 = seq.trim().parse().map_err(|_| bad())?;
    let hash = hash.trim();
    let is_hex = hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if seq < 1 || !is_hex {
        return Err(bad());
    }
    Ok(ChainHead {
        seq,
        hash: hash.to_owned(),
    })
}

fn verdict_json(v: &Verdict) -> String {
    let value = match v {
        Verdict::Intact { rows, head } => serde_json::json!({
            "intact": true, "rows": rows, "head": head,
        }),
        Verdict::Broken { checked, at } => serde_json::json!({
            "intact": false, "rows": checked,
            "broken": { "seq": at.seq, "id": at.id, "problem": at.problem },
        }),
        Verdict::Truncated {
            rows,
            head,
            expected,
        } => serde_json::json!({
            "intact": false, "rows": rows, "head": head, "expected_head": expected,
        }),
    };
    value.to_string()
}
