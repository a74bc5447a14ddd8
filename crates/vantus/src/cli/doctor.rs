use std::path::PathBuf;

use clap::Args;

use super::{CliError, command_telemetry, load_config};
use crate::ops::doctor;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config_file: &Option<PathBuf>, args: DoctorArgs) -> Result<(), CliError> {
    let config = load_config(config_file, None)?;
    let _logs = command_telemetry(&config);
    let report = doctor::run(&config).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        doctor::print(&report);
    }
    if report.has_critical() {
        return Err(CliError::Failed(
            "critical findings: this deployment is not production-ready".into(),
        ));
    }
    Ok(())
}
