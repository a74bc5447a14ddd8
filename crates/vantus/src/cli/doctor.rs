use std::path::PathBuf;

use clap::Args;

use super::{CliError, command_telemetry, overrides};
use crate::config::Config;
use crate::ops::doctor;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config_file: &Option<PathBuf>, args: DoctorArgs) -> Result<(), CliError> {
    // An invalid configuration does not stop doctor: that is when its report is needed most.
    // Its problems become critical findings; broken settings hold their defaults meanwhile.
    let (config, problems) =
        Config::diagnose(&std::env::vars().collect(), &overrides(config_file, None));
    let _logs = command_telemetry(&config);
    let report = doctor::run(&config, &problems).await;
    if args.json {
        crate::say!(
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
