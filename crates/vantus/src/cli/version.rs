use clap::Args;

use super::CliError;
use crate::build::{GIT_SHA, VERSION};

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print JSON instead of one line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VersionArgs) -> Result<(), CliError> {
    let version = VERSION;
    if args.json {
        crate::say!(
            "{}",
            serde_json::json!({
                "name": "vantus",
                "version": version,
                "commit": GIT_SHA,
                "migrations": crate::store::migrate::known().len(),
            })
        );
    } else {
        crate::say!("vantus {version} ({GIT_SHA})");
    }
    Ok(())
}
