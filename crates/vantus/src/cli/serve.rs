use clap::Args;

use super::{CliError, load_config};
use crate::server::{self, StartError};
use crate::telemetry::{self, LogTarget};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to bind, e.g. 0.0.0.0:8080 (overrides VANTUS_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub async fn run(
    config_file: &Option<std::path::PathBuf>,
    args: ServeArgs,
) -> Result<(), CliError> {
    let config = load_config(config_file, args.listen)?;
    let _logs = telemetry::init(
        &config.log,
        &config.telemetry,
        config.env,
        LogTarget::Stdout,
    );
    match server::run(config).await {
        Ok(()) | Err(StartError::Interrupted) => Ok(()),
        Err(StartError::Config(e)) => Err(CliError::Config(e)),
        Err(StartError::Connect(crate::store::ConnectError::Config(e))) => Err(CliError::Config(e)),
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            Err(CliError::Failed(e.to_string()))
        }
    }
}
