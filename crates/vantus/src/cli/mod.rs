//! Command-line interface: parsing and dispatch only. Each subcommand lives in its own file
//! and calls into the library.

mod audit;
mod backup;
mod db;
mod doctor;
mod healthcheck;
mod leads;
mod migrate;
mod outbox;
mod restore;
mod routes;
mod serve;
mod user;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, ConfigErrors, Overrides, SETTINGS};

#[derive(Debug, Parser)]
#[command(
    name = "vantus",
    version,
    about = "Vantus Systems' site, lead capture and admin portal, in one binary.",
    long_about = "Vantus serves the public site and the admin portal, and operates itself: \
migrations, backups, restores, engine copies, the notification outbox, a tamper-evident audit \
log and a readiness doctor.\n\n\
With no configuration it runs on SQLite in ./var and listens on 127.0.0.1:8080. \
Configuration comes from environment variables (listed under each command's --help) and an \
optional TOML file.",
    after_long_help = "Exit codes: 0 success, 1 failure, 2 usage error, 78 configuration error."
)]
pub struct Cli {
    /// TOML file with settings; environment variables override it.
    #[arg(long, global = true, env = "VANTUS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the public site and the admin portal until SIGTERM or SIGINT.
    #[command(after_long_help = settings_help())]
    Serve(serve::ServeArgs),
    /// Apply pending database migrations and seed the site tenant, then exit.
    #[command(after_long_help = settings_help())]
    Migrate(migrate::MigrateArgs),
    /// Probe /readyz of a running server; exit 0 when ready, 1 otherwise (for container
    /// HEALTHCHECKs without curl).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Write a verified, compressed (optionally encrypted) backup of every table, and media.
    #[command(after_long_help = settings_help())]
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty database (or check it: --verify-only).
    #[command(after_long_help = settings_help())]
    Restore(restore::RestoreArgs),
    /// Database engine tools: `db copy` between SQLite and PostgreSQL.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Data-protection requests: `leads export|erase --email ADDRESS`.
    #[command(subcommand)]
    Leads(leads::LeadsCommand),
    /// The notification outbox: `outbox status` to see what waits, `outbox retry` to
    /// requeue.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// The tamper-evident audit log: `audit verify` recomputes its hash chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Staff accounts: `user create --email ADDRESS --role owner` makes the first owner.
    #[command(subcommand)]
    User(user::UserCommand),
    /// The portal's routes, each with who may call it (public, or the permission it needs).
    Routes(routes::RoutesArgs),
    /// Audit this deployment's production readiness; exit 1 if anything is critical.
    #[command(after_long_help = settings_help())]
    Doctor(doctor::DoctorArgs),
    /// Print the version and build information.
    Version(version::VersionArgs),
}

/// The environment-variable reference, generated from [`SETTINGS`] so it cannot drift.
pub fn settings_help() -> String {
    let mut out = String::from("Environment variables (secret ones also accept NAME_FILE):\n");
    for s in SETTINGS {
        out.push_str(&format!(
            "  {}\n      {} [default: {}]\n",
            s.env, s.help, s.default
        ));
    }
    out
}

/// How a command failed: configuration errors get their own exit code (78, EX_CONFIG).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// Every problem of a configuration load, one line each.
    #[error("{0}")]
    Settings(#[from] ConfigErrors),
    #[error("{0}")]
    Failed(String),
}

impl From<sqlx::Error> for CliError {
    fn from(e: sqlx::Error) -> Self {
        CliError::Failed(format!("database: {e}"))
    }
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) | CliError::Settings(_) => ExitCode::from(78),
            CliError::Failed(_) => ExitCode::FAILURE,
        }
    }
}

impl From<crate::ops::OpsError> for CliError {
    fn from(e: crate::ops::OpsError) -> Self {
        match e {
            crate::ops::OpsError::Config(c) => CliError::Config(c),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<crate::store::ConnectError> for CliError {
    fn from(e: crate::store::ConnectError) -> Self {
        match e {
            crate::store::ConnectError::Config(c) => CliError::Config(c),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// Starts logging for a command: JSON on stderr (stdout carries the command's own output).
fn command_telemetry(config: &Config) -> crate::telemetry::TelemetryGuard {
    crate::telemetry::init(
        &config.log,
        &config.telemetry,
        config.env,
        crate::telemetry::LogTarget::Stderr,
    )
}

fn overrides(cli_config: &Option<PathBuf>, listen: Option<String>) -> Overrides {
    Overrides {
        config_file: cli_config.clone(),
        listen,
    }
}

/// Loads and validates the configuration; the CLI's one entry to settings.
fn load_config(cli_config: &Option<PathBuf>, listen: Option<String>) -> Result<Config, CliError> {
    Ok(Config::from_env(&overrides(cli_config, listen))?)
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    crate::telemetry::install_crypto_provider();
    match cli.command {
        Command::Serve(args) => serve::run(&cli.config, args).await,
        Command::Migrate(args) => migrate::run(&cli.config, args).await,
        Command::Healthcheck(args) => healthcheck::run(args).await,
        Command::Backup(args) => backup::run(&cli.config, args).await,
        Command::Restore(args) => restore::run(&cli.config, args).await,
        Command::Db(cmd) => db::run(&cli.config, cmd).await,
        Command::Leads(cmd) => leads::run(&cli.config, cmd).await,
        Command::User(cmd) => user::run(&cli.config, cmd).await,
        Command::Outbox(cmd) => outbox::run(&cli.config, cmd).await,
        Command::Audit(cmd) => audit::run(&cli.config, cmd).await,
        Command::Doctor(args) => doctor::run(&cli.config, args).await,
        Command::Routes(args) => routes::run(args),
        Command::Version(args) => version::run(args),
    }
}
