use clap::Args;

use super::CliError;

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print JSON instead of one line.
    #[arg(long)]
    pub json: bool,
}

/// The commit is stamped by the release build (`VANTUS_GIT_SHA`); local builds say "dev".
pub const GIT_SHA: &str = match option_env!("VANTUS_GIT_SHA") {
    Some(sha) => sha,
    None => "dev",
};

pub fn run(args: VersionArgs) -> Result<(), CliError> {
    let version = env!("CARGO_PKG_VERSION");
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "name": "vantus",
                "version": version,
                "commit": GIT_SHA,
                "migrations": crate::store::migrate::known().len(),
            })
        );
    } else {
        println!("vantus {version} ({GIT_SHA})");
    }
    Ok(())
}
