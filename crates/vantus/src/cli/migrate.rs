use clap::Args;

use super::{CliError, load_config};
use crate::content::seed;
use crate::store;
use crate::store::migrate;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only report which migrations are applied and pending; change nothing.
    #[arg(long)]
    pub status: bool,
}

pub async fn run(
    config_file: &Option<std::path::PathBuf>,
    args: MigrateArgs,
) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = super::command_telemetry(&config);
    let db = store::connect(&config.database).await?;
    let failed = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());

    if args.status {
        let pending =
            with_conn!(&db, conn => migrate::pending(conn).await).map_err(|e| failed(&e))?;
        for (version, description) in migrate::known() {
            let state = if pending.iter().any(|(v, _)| *v == version) {
                "pending"
            } else {
                "applied"
            };
            crate::say!("{version:>6}  {state:<8} {description}");
        }
        db.close().await;
        return Ok(());
    }

    let before = with_conn!(&db, conn => migrate::pending(conn).await).map_err(|e| failed(&e))?;
    let (_, seeded) = seed::migrate_and_seed(&db, &config.site_tenant)
        .await
        .map_err(|e| failed(&e))?;
    db.close().await;
    crate::say!(
        "migrations: {} applied now, {} known; site content: {seeded} item(s) added ({})",
        before.len(),
        migrate::known().len(),
        config.database.url.redacted()
    );
    Ok(())
}
