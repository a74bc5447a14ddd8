//! Typed settings, read once at start-up from the environment (12-factor) and an optional
//! TOML file, then validated as a whole.
//!
//! Precedence, highest first: command-line flag, environment variable, `NAME_FILE`
//! (a file holding the value, for Docker and Kubernetes secrets), the TOML file, the default.
//!
//! Every setting is listed once in [`SETTINGS`], with its default; `--help` and the README's
//! reference table are checked against that list, so a new setting cannot go undocumented.
//! Each section (one file each) parses its own settings; [`Config::load`] joins them.
//!
//! Errors name the setting and say what is wrong in one sentence, and a load reports every
//! problem at once, so an operator fixes them in one go. They never echo the value of a
//! secret setting (a database URL carries a password).
//!
//! This module imports nothing from the crate but leaf modules ([`crate::slug`]), so every
//! other module may depend on it.

mod auth;
mod backup;
mod content;
mod database;
mod http;
mod instance;
mod leads;
mod mail;
mod media;
mod settings;
mod source;
mod telemetry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

pub use auth::{Argon2Settings, AuthConfig, MfaKeySource, ROLE_NAMES, parse_mfa_key};
pub use backup::{BackupConfig, BackupLocation, S3Config, Schedule};
pub use content::ContentConfig;
pub use database::{DatabaseConfig, DatabaseUrl};
pub use http::{Cidr, HttpConfig};
pub use leads::{LeadsConfig, RateSetting};
pub use mail::{
    MIN_OUTBOX_LEASE, MailConfig, OutboxConfig, SmtpConfig, SmtpTls, WebhookConfig,
    webhook_secret_bytes,
};
pub use media::MediaConfig;
pub use settings::{SETTINGS, Setting};
pub use source::{format_byte_size, parse_byte_size};
pub use telemetry::{LogConfig, LogFormat, TelemetryConfig};

use source::Source;

/// A configuration problem: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }
}

/// Every problem one load found, in the order the settings are documented. Shown one line
/// per problem.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// True when `setting` has a problem.
    pub fn concerns(&self, setting: &str) -> bool {
        self.0.iter().any(|e| e.setting == setting)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "configuration error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

/// Where the signing secret comes from. In development without a configured key it is
/// generated on first start and kept in the data folder (see [`crate::secrets`]).
#[derive(Clone)]
pub enum SecretSource {
    Configured(SecretString),
    GeneratedInDataDir,
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Configured(_) => f.write_str("Configured(***)"),
            SecretSource::GeneratedInDataDir => f.write_str("GeneratedInDataDir"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub env: Environment,
    pub listen: SocketAddr,
    pub public_url: Url,
    /// True when VANTUS_PUBLIC_URL was not set and `public_url` was derived from the listen
    /// address; the server replaces it with the address actually bound (port 0 → real port).
    pub public_url_is_default: bool,
    pub data_dir: PathBuf,
    pub secret: SecretSource,
    pub database: DatabaseConfig,
    pub site_tenant: String,
    pub http: HttpConfig,
    pub leads: LeadsConfig,
    pub content: ContentConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub webhooks: WebhookConfig,
    pub outbox: OutboxConfig,
    pub log: LogConfig,
    pub backup: BackupConfig,
    pub s3: S3Config,
    pub media: MediaConfig,
    pub telemetry: TelemetryConfig,
    pub redis_url: Option<SecretString>,
    /// Problems that do not stop a development start; logged once telemetry is up.
    pub warnings: Vec<String>,
}

/// Values given on the command line; they win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
}

/// Minimum length of a secret key. 32 hex characters are 128 bits.
pub const MIN_SECRET_LEN: usize = 32;

impl Config {
    /// The public address of `path` (`/contact` → `https://example.com/contact`), for
    /// canonical links, feeds and sitemaps.
    pub fn public_url_of(&self, path: &str) -> String {
        self.public_url
            .join(path.trim_start_matches('/'))
            .map(|u| u.to_string())
            .unwrap_or_else(|_| path.to_owned())
    }

    /// Reads the process environment.
    pub fn from_env(overrides: &Overrides) -> Result<Self, ConfigErrors> {
        Self::load(&std::env::vars().collect(), overrides)
    }

    /// Reads settings from `env` (a snapshot of environment variables) and the TOML file it or
    /// `overrides` names. Separate from [`Config::from_env`] so tests never touch the
    /// process environment. Fails with every problem found.
    pub fn load(
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigErrors> {
        let (config, errors) = Self::diagnose(env, overrides);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Like [`Config::load`], but always returns a configuration: each setting with a problem
    /// holds its default instead. For `doctor`, which reports the problems and still runs the
    /// checks that do not depend on them; nothing may serve with such a configuration.
    pub fn diagnose(env: &HashMap<String, String>, overrides: &Overrides) -> (Self, ConfigErrors) {
        let toml_path = overrides
            .config_file
            .clone()
            .or_else(|| env.get("VANTUS_CONFIG").map(PathBuf::from));
        let src = Source::new(env, toml_path.as_deref());
        let config = Self::from_source(&src, overrides);
        (config, ConfigErrors(src.into_problems()))
    }

    fn from_source(src: &Source<'_>, overrides: &Overrides) -> Self {
        let env = instance::environment(src);
        let listen = instance::listen(src, overrides);
        let (public_url, public_url_is_default) = instance::public_url(src, env, listen);
        let data_dir = instance::data_dir(src);
        let (secret, weak_secret) = instance::secret(src, env);
        Config {
            env,
            listen,
            public_url,
            public_url_is_default,
            secret,
            site_tenant: instance::site_tenant(src),
            database: DatabaseConfig::parse(src, &data_dir),
            data_dir,
            http: HttpConfig::parse(src),
            leads: LeadsConfig::parse(src),
            content: ContentConfig::parse(src),
            auth: AuthConfig::parse(src, env),
            mail: MailConfig::parse(src),
            webhooks: WebhookConfig::parse(src),
            outbox: OutboxConfig::parse(src),
            backup: BackupConfig::parse(src),
            s3: S3Config::parse(src),
            media: MediaConfig::parse(src),
            telemetry: TelemetryConfig::parse(src),
            redis_url: instance::redis_url(src),
            log: LogConfig::parse(src),
            warnings: weak_secret.into_iter().collect(),
        }
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
}

/// `http://<listen>/`, with an unspecified address (0.0.0.0) replaced by loopback.
pub fn default_public_url(listen: SocketAddr) -> Url {
    let host = if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    };
    Url::parse(&format!("http://{host}/")).expect("a socket address forms a valid URL")
}

/// Says why a secret is too weak, or `Ok` when it will do.
pub fn check_secret_strength(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "is too short ({} characters; at least {MIN_SECRET_LEN} random characters are needed)",
            secret.len()
        ));
    }
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 10 {
        return Err(format!(
            "is too predictable (only {} distinct characters); generate one with `openssl rand -hex 32`",
            distinct.len()
        ));
    }
    Ok(())
}

/// Parses `host:port`; `example` shows the expected form in the error.
fn parse_socket_addr(raw: &str, example: &str) -> Result<SocketAddr, String> {
    raw.trim()
        .parse::<SocketAddr>()
        .map_err(|_| format!("\"{raw}\" is not an address and port such as {example}"))
}
