//! Typed settings, read once at start-up from the environment (12-factor) and an optional
//! TOML file, then validated as a whole.
//!
//! Precedence, highest first: command-line flag, environment variable, `NAME_FILE`
//! (a file holding the value, for Docker and Kubernetes secrets), the TOML file, the default.
//!
//! Every setting is listed once in [`SETTINGS`]; `--help` and the README's reference table are
//! checked against that list, so a new setting cannot go undocumented.
//!
//! Errors name the setting and say what is wrong in one sentence. They never echo the value of a
//! secret setting (a database URL carries a password).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// One documented setting.
pub struct Setting {
    pub env: &'static str,
    /// Dotted key in the TOML file (`database.url` is `[database] url = ...`).
    pub toml: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Secret values are never printed and may also come from `NAME_FILE`.
    pub secret: bool,
}

macro_rules! settings {
    ($( $env:literal, $toml:literal, $default:literal, $secret:literal, $help:literal; )*) => {
        /// All settings Vantus reads, in the order the docs present them.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { env: $env, toml: $toml, default: $default, help: $help, secret: $secret }, )*
        ];
    };
}

settings! {
    "VANTUS_CONFIG", "", "(none)", false,
        "Path to an optional TOML file with any of these settings; environment variables win over it.";
    "VANTUS_ENV", "env", "development", false,
        "`development` or `production`. Production refuses to start without strong secrets and a public URL.";
    "VANTUS_LISTEN", "listen", "127.0.0.1:8080", false,
        "Address and port the HTTP server binds, e.g. 0.0.0.0:8080 in a container.";
    "VANTUS_PUBLIC_URL", "public_url", "http://<VANTUS_LISTEN>", false,
        "Absolute URL visitors use; canonical links, sitemap and feed are built from it. Required in production.";
    "VANTUS_DATA_DIR", "data_dir", "./var", false,
        "Folder for the embedded SQLite database, the generated development secret and local media.";
    "VANTUS_SECRET_KEY", "secret_key", "(generated in development)", true,
        "At least 32 random characters (e.g. `openssl rand -hex 32`). Required in production; in development a random key is kept in the data folder.";
    "DATABASE_URL", "database.url", "sqlite://<VANTUS_DATA_DIR>/vantus.db", true,
        "`sqlite://path` or `postgres://user:password@host/db`.";
    "DATABASE_REPLICA_URLS", "database.replica_urls", "(none)", true,
        "Comma-separated PostgreSQL read replicas. Public page reads go there and fall back to the primary.";
    "DATABASE_MAX_CONNECTIONS", "database.max_connections", "10", false,
        "Connections per pool (primary, and each replica).";
    "DATABASE_REPLICA_MAX_LAG", "database.replica_max_lag", "10s", false,
        "A replica further behind than this is skipped until it catches up.";
    "DATABASE_CONNECT_TIMEOUT", "database.connect_timeout", "30s", false,
        "How long `serve` keeps retrying an unreachable database at start-up before giving up.";
    "VANTUS_SITE_TENANT", "site_tenant", "default", false,
        "Slug of the tenant whose content the public site shows.";
    "VANTUS_REQUEST_TIMEOUT", "http.request_timeout", "15s", false,
        "Longest time a request may take before it is answered with 504.";
    "VANTUS_DRAIN_TIMEOUT", "http.drain_timeout", "25s", false,
        "On SIGTERM, how long in-flight requests may take to finish before the process exits.";
    "VANTUS_HEADER_READ_TIMEOUT", "http.header_read_timeout", "10s", false,
        "A request's headers must arrive within this time of the connection being ready for it (opened, or the previous response sent); slower connections are closed.";
    "VANTUS_KEEP_ALIVE_TIMEOUT", "http.keep_alive_timeout", "5s", false,
        "Connections with no request in flight that stay silent this long are closed. Keep a load balancer's idle timeout below it.";
    "VANTUS_MAX_CONNECTIONS", "http.max_connections", "4096", false,
        "Most client connections served at once (lowered to fit the open-file limit); more wait in the listen backlog.";
    "VANTUS_BODY_LIMIT", "http.body_limit", "64KiB", false,
        "Largest accepted request body (B, KiB, MiB).";
    "VANTUS_TRUSTED_PROXIES", "http.trusted_proxies", "(none)", false,
        "Comma-separated CIDRs of load balancers whose X-Forwarded-For is believed, e.g. 10.0.0.0/8.";
    "VANTUS_BACKUP_TO", "backup.to", "(none)", false,
        "Where backups go: a local folder or s3://bucket/prefix. Used by `vantus backup` and the schedule.";
    "VANTUS_BACKUP_SCHEDULE", "backup.schedule", "(none)", false,
        "Cron expression for backups made by `serve`, e.g. `0 3 * * *` (UTC). One replica runs each.";
    "VANTUS_BACKUP_RUNNER", "backup.runner", "serve", false,
        "`serve` runs VANTUS_BACKUP_SCHEDULE itself; `external` when a CronJob or systemd timer runs `vantus backup` on that schedule (doctor still checks freshness against it).";
    "VANTUS_BACKUP_KEEP_DAILY", "backup.keep_daily", "7", false,
        "Scheduled backups keep the newest backup of each of this many days.";
    "VANTUS_BACKUP_KEEP_WEEKLY", "backup.keep_weekly", "4", false,
        "...and of each of this many ISO weeks.";
    "VANTUS_BACKUP_PASSPHRASE", "backup.passphrase", "(none)", true,
        "Encrypts backups at rest (age, scrypt). Needed again to restore: keep it outside the backups.";
    "VANTUS_RESTORE_DRILL_SCHEDULE", "backup.drill_schedule", "(none)", false,
        "Cron expression for restore drills: the newest backup is restored into a scratch database and checked.";
    "S3_ENDPOINT", "s3.endpoint", "(AWS)", false,
        "S3-compatible endpoint URL, e.g. http://seaweedfs:8333. Unset means AWS S3.";
    "S3_REGION", "s3.region", "us-east-1", false,
        "Region for S3 request signing.";
    "S3_BUCKET", "s3.bucket", "(none)", false,
        "Bucket for media; backups name theirs in VANTUS_BACKUP_TO.";
    "S3_ACCESS_KEY_ID", "s3.access_key_id", "(none)", true,
        "S3 access key id.";
    "S3_SECRET_ACCESS_KEY", "s3.secret_access_key", "(none)", true,
        "S3 secret access key.";
    "REDIS_URL", "redis.url", "(none)", true,
        "redis://host:6379/0 for shared rate limits and sessions across replicas.";
    "VANTUS_METRICS_LISTEN", "metrics.listen", "(none)", false,
        "Serve Prometheus /metrics on this separate address, e.g. 0.0.0.0:9090.";
    "VANTUS_METRICS_TOKEN", "metrics.token", "(none)", true,
        "Instead (or as well): serve /metrics on the main port to requests bearing this token.";
    "OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint", "(none)", false,
        "OTLP/HTTP collector base URL, e.g. http://otel-collector:4318; traces are exported there.";
    "OTEL_SERVICE_NAME", "telemetry.service_name", "vantus", false,
        "Service name on exported traces.";
    "SENTRY_DSN", "telemetry.sentry_dsn", "(none)", true,
        "Report errors and panics to Sentry (no personal data is sent).";
    "VANTUS_LOG_SHIPPING", "log.shipping", "(none)", false,
        "Names the pipeline that ships stdout logs off the host (e.g. vector, fluent-bit, journald); doctor checks it is declared.";
    "RUST_LOG", "log.filter", "info", false,
        "Log filter, e.g. `info` or `vantus=debug,sqlx=warn`.";
    "VANTUS_LOG_FORMAT", "log.format", "json", false,
        "`json` (one object per line on stdout) or `pretty` for a terminal.";
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A database location. The URL may hold a password, so it is kept secret and only
/// [`DatabaseUrl::redacted`] is ever shown.
#[derive(Clone)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf },
    Postgres { url: SecretString },
}

impl DatabaseUrl {
    /// Parses a `sqlite:` or `postgres:` URL. `setting` names the source for errors.
    pub fn parse(setting: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(ConfigError::new(
                    setting,
                    "a SQLite URL needs a file path, e.g. sqlite://var/vantus.db",
                ));
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        let parsed = Url::parse(raw).map_err(|e| {
            ConfigError::new(
                setting,
                format!("is not a valid URL ({e}); expected sqlite://path or postgres://user:password@host/db"),
            )
        })?;
        match parsed.scheme() {
            "postgres" | "postgresql" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(ConfigError::new(setting, "the PostgreSQL URL has no host"));
                }
                Ok(DatabaseUrl::Postgres {
                    url: SecretString::from(raw.to_owned()),
                })
            }
            other => Err(ConfigError::new(
                setting,
                format!("unsupported scheme \"{other}\"; expected sqlite:// or postgres://"),
            )),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres { .. })
    }

    /// The URL without its password: safe for logs and reports.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => match Url::parse(url.expose_secret()) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.set_query(None);
                    u.to_string()
                }
                Err(_) => "postgres://(unparseable)".to_owned(),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub replica_urls: Vec<DatabaseUrl>,
    pub max_connections: u32,
    pub replica_max_lag: Duration,
    pub connect_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    pub drain_timeout: Duration,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub body_limit: usize,
    pub trusted_proxies: Vec<Cidr>,
}

/// An address range such as `10.0.0.0/8` or `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// `0.0.0.0/0` or `::/0`: every address.
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }
}

/// Where backups are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl BackupLocation {
    pub fn parse(setting: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ConfigError::new(
                    setting,
                    "an s3:// location needs a bucket, e.g. s3://backups/vantus",
                ));
            }
            return Ok(BackupLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if raw.contains("://") {
            return Err(ConfigError::new(
                setting,
                format!("\"{raw}\" is neither a local path nor an s3:// URL"),
            ));
        }
        if raw.is_empty() {
            return Err(ConfigError::new(setting, "must not be empty"));
        }
        Ok(BackupLocation::Local(PathBuf::from(raw)))
    }

    pub fn describe(&self) -> String {
        match self {
            BackupLocation::Local(p) => p.display().to_string(),
            BackupLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            BackupLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// A cron schedule with the text it was written as.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub expression: String,
    pub cron: cron::Schedule,
}

impl Schedule {
    /// Accepts the usual five fields (minute hour day month weekday) or six with seconds first.
    pub fn parse(setting: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let expression = raw.trim().to_owned();
        let fields = expression.split_whitespace().count();
        let full = match fields {
            5 => {
                let parts: Vec<&str> = expression.split_whitespace().collect();
                let dow = standard_weekdays(parts[4]).map_err(|why| {
                    ConfigError::new(setting, format!("\"{expression}\": day of week {why}"))
                })?;
                format!(
                    "0 {} {} {} {} {dow}",
                    parts[0], parts[1], parts[2], parts[3]
                )
            }
            6 | 7 => expression.clone(),
            _ => {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "\"{expression}\" is not a cron expression (five fields: minute hour day month weekday, e.g. \"0 3 * * *\")"
                    ),
                ));
            }
        };
        let cron = full.parse::<cron::Schedule>().map_err(|e| {
            ConfigError::new(
                setting,
                format!("\"{expression}\" is not a valid cron expression: {e}"),
            )
        })?;
        Ok(Self { expression, cron })
    }
}

/// Translates a standard cron day-of-week field (0–7, Sunday = 0 or 7) into the numbering of
/// the `cron` crate (1–7, Sunday = 1). Names (MON, SUN-THU) and `*` pass through unchanged.
fn standard_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" || field.chars().any(|c| c.is_ascii_alphabetic()) {
        return Ok(field.to_owned());
    }
    let mut days = std::collections::BTreeSet::new();
    for part in field.split(',') {
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (
                b,
                s.parse::<u8>()
                    .map_err(|_| format!("has a bad step in \"{part}\""))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("has a zero step in \"{part}\""));
        }
        let (from, to) = match base {
            "*" => (0, 6),
            b => match b.split_once('-') {
                Some((a, z)) => (num(a)?, num(z)?),
                None if part.contains('/') => (num(b)?, 6),
                None => (num(b)?, num(b)?),
            },
        };
        if from > to {
            return Err(format!("has a backwards range \"{part}\""));
        }
        for d in (from..=to).step_by(step as usize) {
            days.insert(d % 7 + 1);
        }
    }
    fn num(s: &str) -> Result<u8, String> {
        match s.parse::<u8>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(format!("\"{s}\" is not 0–7 (Sunday is 0 or 7)")),
        }
    }
    Ok(days.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
}

#[derive(Clone, Debug)]
pub struct BackupConfig {
    pub to: Option<BackupLocation>,
    pub schedule: Option<Schedule>,
    /// False when something outside `serve` (a CronJob, a systemd timer) runs the schedule.
    pub run_in_serve: bool,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub passphrase: Option<SecretString>,
    pub drill_schedule: Option<Schedule>,
}

#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: Option<String>,
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
}

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<SecretString>,
    pub otlp_endpoint: Option<Url>,
    pub service_name: String,
    pub sentry_dsn: Option<SecretString>,
    pub log_shipping: Option<String>,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub filter: String,
    pub format: LogFormat,
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
    pub log: LogConfig,
    pub backup: BackupConfig,
    pub s3: S3Config,
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
    /// Reads the process environment.
    pub fn from_env(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load(&std::env::vars().collect(), overrides)
    }

    /// Reads settings from `env` (a snapshot of environment variables) and the TOML file it or
    /// `overrides` names. Separate from [`Config::from_env`] so tests never touch the
    /// process environment.
    pub fn load(env: &HashMap<String, String>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match overrides
            .config_file
            .clone()
            .or_else(|| env.get("VANTUS_CONFIG").map(PathBuf::from))
        {
            Some(path) => load_toml(&path)?,
            None => HashMap::new(),
        };
        let src = Source {
            env,
            file: &file,
            from_files: Default::default(),
        };
        Self::load_from(&src, overrides).map_err(|e| src.scrub(e))
    }

    fn load_from(src: &Source<'_>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let env_mode = match src.get("VANTUS_ENV")?.as_deref().unwrap_or("development") {
            "development" | "dev" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => {
                return Err(ConfigError::new(
                    "VANTUS_ENV",
                    format!("\"{other}\" is not an environment; use development or production"),
                ));
            }
        };
        let production = env_mode == Environment::Production;
        let mut warnings = Vec::new();

        let listen_raw = match &overrides.listen {
            Some(v) => Some(v.clone()),
            None => src.get("VANTUS_LISTEN")?,
        };
        let listen = match listen_raw {
            Some(raw) => raw.trim().parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "VANTUS_LISTEN",
                    format!("\"{raw}\" is not an address and port such as 127.0.0.1:8080"),
                )
            })?,
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        };

        let configured_public_url = src.get("VANTUS_PUBLIC_URL")?;
        let public_url_is_default = configured_public_url.is_none();
        let public_url = match configured_public_url {
            Some(raw) => parse_public_url(&raw)?,
            None if production => {
                return Err(ConfigError::new(
                    "VANTUS_PUBLIC_URL",
                    "is required in production: the absolute URL visitors use, e.g. https://vantus.example.com",
                ));
            }
            None => default_public_url(listen),
        };

        let data_dir = PathBuf::from(
            src.get("VANTUS_DATA_DIR")?
                .unwrap_or_else(|| "./var".into()),
        );
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("VANTUS_DATA_DIR", "must not be empty"));
        }

        let secret = match src.get("VANTUS_SECRET_KEY")? {
            Some(key) => {
                if let Err(why) = check_secret_strength(&key) {
                    if production {
                        return Err(ConfigError::new("VANTUS_SECRET_KEY", why));
                    }
                    // Development tolerates a weak key, but says so: doctor reports it too.
                    warnings.push(format!("VANTUS_SECRET_KEY {why}"));
                }
                SecretSource::Configured(SecretString::from(key))
            }
            None if production => {
                return Err(ConfigError::new(
                    "VANTUS_SECRET_KEY",
                    "is required in production (or VANTUS_SECRET_KEY_FILE); generate one with `openssl rand -hex 32`",
                ));
            }
            None => SecretSource::GeneratedInDataDir,
        };

        let url = match src.get("DATABASE_URL")? {
            Some(raw) => DatabaseUrl::parse("DATABASE_URL", &raw)?,
            None => DatabaseUrl::Sqlite {
                path: data_dir.join("vantus.db"),
            },
        };
        let replica_urls = match src.get("DATABASE_REPLICA_URLS")? {
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| DatabaseUrl::parse("DATABASE_REPLICA_URLS", s))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        if !replica_urls.is_empty() && !url.is_postgres() {
            return Err(ConfigError::new(
                "DATABASE_REPLICA_URLS",
                "read replicas need a PostgreSQL DATABASE_URL",
            ));
        }
        if replica_urls.iter().any(|r| !r.is_postgres()) {
            return Err(ConfigError::new(
                "DATABASE_REPLICA_URLS",
                "every replica must be a postgres:// URL",
            ));
        }
        let max_connections = parse_number(src, "DATABASE_MAX_CONNECTIONS", 10, 1, 1000)? as u32;
        let replica_max_lag = parse_duration(src, "DATABASE_REPLICA_MAX_LAG", "10s")?;
        let connect_timeout = parse_duration(src, "DATABASE_CONNECT_TIMEOUT", "30s")?;

        let site_tenant = src
            .get("VANTUS_SITE_TENANT")?
            .unwrap_or_else(|| "default".into());
        if !crate::tenancy::is_valid_slug(&site_tenant) {
            return Err(ConfigError::new(
                "VANTUS_SITE_TENANT",
                format!("\"{site_tenant}\" is not a slug (lowercase letters, digits and hyphens)"),
            ));
        }

        let trusted_proxies = match src.get("VANTUS_TRUSTED_PROXIES")? {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s == "*" {
                        return Ok(Cidr {
                            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            prefix: 0,
                        });
                    }
                    Cidr::parse(s).ok_or_else(|| {
                        ConfigError::new(
                            "VANTUS_TRUSTED_PROXIES",
                            format!("\"{s}\" is not an address range such as 10.0.0.0/8"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let http = HttpConfig {
            request_timeout: parse_duration(src, "VANTUS_REQUEST_TIMEOUT", "15s")?,
            drain_timeout: parse_duration(src, "VANTUS_DRAIN_TIMEOUT", "25s")?,
            header_read_timeout: parse_duration(src, "VANTUS_HEADER_READ_TIMEOUT", "10s")?,
            keep_alive_timeout: parse_duration(src, "VANTUS_KEEP_ALIVE_TIMEOUT", "5s")?,
            max_connections: parse_number(src, "VANTUS_MAX_CONNECTIONS", 4096, 1, 1_000_000)?
                as usize,
            body_limit: parse_size(src, "VANTUS_BODY_LIMIT", "64KiB")?,
            trusted_proxies,
        };

        let schedule = |name: &'static str| -> Result<Option<Schedule>, ConfigError> {
            src.get(name)?
                .map(|raw| Schedule::parse(name, &raw))
                .transpose()
        };
        let backup = BackupConfig {
            to: src
                .get("VANTUS_BACKUP_TO")?
                .map(|raw| BackupLocation::parse("VANTUS_BACKUP_TO", &raw))
                .transpose()?,
            schedule: schedule("VANTUS_BACKUP_SCHEDULE")?,
            run_in_serve: match src
                .get("VANTUS_BACKUP_RUNNER")?
                .as_deref()
                .unwrap_or("serve")
            {
                "serve" => true,
                "external" => false,
                other => {
                    return Err(ConfigError::new(
                        "VANTUS_BACKUP_RUNNER",
                        format!("\"{other}\" is not a runner; use serve or external"),
                    ));
                }
            },
            keep_daily: parse_number(src, "VANTUS_BACKUP_KEEP_DAILY", 7, 0, 3650)? as u32,
            keep_weekly: parse_number(src, "VANTUS_BACKUP_KEEP_WEEKLY", 4, 0, 520)? as u32,
            passphrase: src.get("VANTUS_BACKUP_PASSPHRASE")?.map(SecretString::from),
            drill_schedule: schedule("VANTUS_RESTORE_DRILL_SCHEDULE")?,
        };
        if backup.schedule.is_some() && backup.to.is_none() {
            return Err(ConfigError::new(
                "VANTUS_BACKUP_TO",
                "is required when VANTUS_BACKUP_SCHEDULE is set: say where scheduled backups go",
            ));
        }
        if let Some(p) = &backup.passphrase
            && p.expose_secret().chars().count() < 12
        {
            return Err(ConfigError::new(
                "VANTUS_BACKUP_PASSPHRASE",
                "is too short (at least 12 characters; a generated one is better)",
            ));
        }
        let s3 = S3Config {
            endpoint: src.get("S3_ENDPOINT")?,
            region: src.get("S3_REGION")?.unwrap_or_else(|| "us-east-1".into()),
            bucket: src.get("S3_BUCKET")?,
            access_key_id: src.get("S3_ACCESS_KEY_ID")?.map(SecretString::from),
            secret_access_key: src.get("S3_SECRET_ACCESS_KEY")?.map(SecretString::from),
        };
        if let Some(endpoint) = &s3.endpoint
            && Url::parse(endpoint).is_err()
        {
            return Err(ConfigError::new(
                "S3_ENDPOINT",
                format!("\"{endpoint}\" is not a URL"),
            ));
        }
        let telemetry = TelemetryConfig {
            metrics_listen: src
                .get("VANTUS_METRICS_LISTEN")?
                .map(|raw| {
                    raw.trim().parse::<SocketAddr>().map_err(|_| {
                        ConfigError::new(
                            "VANTUS_METRICS_LISTEN",
                            format!("\"{raw}\" is not an address and port such as 0.0.0.0:9090"),
                        )
                    })
                })
                .transpose()?,
            metrics_token: match src.get("VANTUS_METRICS_TOKEN")? {
                Some(t) if t.len() < 16 => {
                    return Err(ConfigError::new(
                        "VANTUS_METRICS_TOKEN",
                        "is too short (at least 16 characters)",
                    ));
                }
                other => other.map(SecretString::from),
            },
            otlp_endpoint: src
                .get("OTEL_EXPORTER_OTLP_ENDPOINT")?
                .map(|raw| {
                    Url::parse(raw.trim()).map_err(|e| {
                        ConfigError::new(
                            "OTEL_EXPORTER_OTLP_ENDPOINT",
                            format!("\"{raw}\" is not a URL ({e})"),
                        )
                    })
                })
                .transpose()?,
            service_name: src
                .get("OTEL_SERVICE_NAME")?
                .unwrap_or_else(|| "vantus".into()),
            sentry_dsn: match src.get("SENTRY_DSN")? {
                Some(dsn) => {
                    if dsn.parse::<sentry::types::Dsn>().is_err() {
                        return Err(ConfigError::new(
                            "SENTRY_DSN",
                            "is not a Sentry DSN (https://<key>@<host>/<project>)",
                        ));
                    }
                    Some(SecretString::from(dsn))
                }
                None => None,
            },
            log_shipping: src.get("VANTUS_LOG_SHIPPING")?,
        };
        let redis_url = match src.get("REDIS_URL")? {
            Some(raw) => {
                if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
                    return Err(ConfigError::new(
                        "REDIS_URL",
                        "must start with redis:// or rediss://",
                    ));
                }
                Some(SecretString::from(raw))
            }
            None => None,
        };

        let filter = src.get("RUST_LOG")?.unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&filter) {
            return Err(ConfigError::new(
                "RUST_LOG",
                format!("\"{filter}\" is not a log filter ({e})"),
            ));
        }
        let format = match src.get("VANTUS_LOG_FORMAT")?.as_deref().unwrap_or("json") {
            "json" => LogFormat::Json,
            "pretty" | "text" => LogFormat::Pretty,
            other => {
                return Err(ConfigError::new(
                    "VANTUS_LOG_FORMAT",
                    format!("\"{other}\" is not a log format; use json or pretty"),
                ));
            }
        };

        Ok(Config {
            env: env_mode,
            listen,
            public_url,
            public_url_is_default,
            data_dir,
            secret,
            database: DatabaseConfig {
                url,
                replica_urls,
                max_connections,
                replica_max_lag,
                connect_timeout,
            },
            site_tenant,
            http,
            log: LogConfig { filter, format },
            backup,
            s3,
            telemetry,
            redis_url,
            warnings,
        })
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

/// The merged view of environment and file for one lookup.
struct Source<'a> {
    env: &'a HashMap<String, String>,
    file: &'a HashMap<String, String>,
    /// Values read from `NAME_FILE`, by setting, so errors never echo a file's contents (the
    /// file may be anything the process can read).
    from_files: std::cell::RefCell<Vec<(&'static str, String, String)>>,
}

/// `NAME_FILE` holds one value; a larger file is certainly the wrong one.
const MAX_SETTING_FILE: u64 = 64 * 1024;

impl Source<'_> {
    /// Looks a setting up by its environment name: `NAME`, then `NAME_FILE`, then the TOML key.
    /// An empty environment value counts as unset, as most tools treat it.
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        if let Some(v) = self.env.get(name).filter(|v| !v.is_empty()) {
            return Ok(Some(v.clone()));
        }
        let file_var = format!("{name}_FILE");
        if let Some(path) = self.env.get(&file_var).filter(|v| !v.is_empty()) {
            let value = read_setting_file(path).map_err(|e| {
                ConfigError::new(name, format!("cannot read {file_var}={path}: {e}"))
            })?;
            let value = value.trim_end_matches(['\n', '\r']).to_owned();
            if value.is_empty() {
                return Err(ConfigError::new(
                    name,
                    format!("{file_var}={path} is empty"),
                ));
            }
            self.from_files
                .borrow_mut()
                .push((name, file_var, value.clone()));
            return Ok(Some(value));
        }
        let key = SETTINGS
            .iter()
            .find(|s| s.env == name)
            .map(|s| s.toml)
            .unwrap_or_default();
        Ok(self.file.get(key).cloned())
    }

    /// Replaces a value that came from `NAME_FILE` in an error message by a pointer to the
    /// file.
    fn scrub(&self, mut error: ConfigError) -> ConfigError {
        for (name, file_var, value) in self.from_files.borrow().iter() {
            if *name == error.setting && error.problem.contains(value.as_str()) {
                error.problem = error
                    .problem
                    .replace(value.as_str(), &format!("(the contents of {file_var})"));
            }
        }
        error
    }
}

fn read_setting_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SETTING_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SETTING_FILE {
        return Err(format!("larger than {} KiB", MAX_SETTING_FILE / 1024));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

fn load_toml(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "VANTUS_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_owned();
        ConfigError::new(
            "VANTUS_CONFIG",
            format!("{} is not valid TOML: {msg}", path.display()),
        )
    })?;
    let mut flat = HashMap::new();
    flatten_toml("", &table, &mut flat);
    for key in flat.keys() {
        if !SETTINGS.iter().any(|s| !s.toml.is_empty() && s.toml == key) {
            return Err(ConfigError::new(
                "VANTUS_CONFIG",
                format!("{}: unknown setting \"{key}\"", path.display()),
            ));
        }
    }
    Ok(flat)
}

fn flatten_toml(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten_toml(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Array(items) => {
                let joined: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.insert(key, joined.join(","));
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        ConfigError::new(
            "VANTUS_PUBLIC_URL",
            format!("\"{raw}\" is not an absolute URL ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            "VANTUS_PUBLIC_URL",
            format!("\"{raw}\" must start with https:// or http://"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the value: it holds a credential, and the URL is published in links.
        return Err(ConfigError::new(
            "VANTUS_PUBLIC_URL",
            "must not contain a user name or password (it is published in links, the sitemap and robots.txt)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "VANTUS_PUBLIC_URL",
            format!("\"{raw}\" must not carry a query or fragment"),
        ));
    }
    let mut url = url;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn parse_number(
    src: &Source<'_>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = src.get(name)? else {
        return Ok(default);
    };
    let n: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, format!("\"{raw}\" is not a whole number")))?;
    if n < min || n > max {
        return Err(ConfigError::new(
            name,
            format!("{n} is out of range ({min} to {max})"),
        ));
    }
    Ok(n)
}

/// No setting needs longer; the cap keeps deadlines (`Instant + duration`) from overflowing.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn parse_duration(
    src: &Source<'_>,
    name: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let raw = src.get(name)?.unwrap_or_else(|| default.to_owned());
    let d = humantime::parse_duration(raw.trim()).map_err(|_| {
        ConfigError::new(
            name,
            format!("\"{raw}\" is not a duration such as 500ms, 15s or 2m"),
        )
    })?;
    if d.is_zero() {
        return Err(ConfigError::new(name, "must be longer than zero"));
    }
    if d > MAX_DURATION {
        return Err(ConfigError::new(
            name,
            format!("\"{raw}\" is too long (at most 365 days)"),
        ));
    }
    Ok(d)
}

/// Parses `65536`, `64KiB`, `1MiB`, `10MB`.
pub fn parse_byte_size(raw: &str) -> Option<usize> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: usize = digits.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Formats a byte count the way people read limits: `64 KiB`.
pub fn format_byte_size(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn parse_size(src: &Source<'_>, name: &'static str, default: &str) -> Result<usize, ConfigError> {
    let raw = src.get(name)?.unwrap_or_else(|| default.to_owned());
    match parse_byte_size(&raw) {
        Some(0) | None => Err(ConfigError::new(
            name,
            format!("\"{raw}\" is not a size such as 64KiB or 1MiB"),
        )),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&env, &Overrides::default())
    }

    const STRONG: &str = "4f1c9a7e2b6d8035c1e9f47a2d6b8c03";

    #[test]
    fn defaults_are_embedded_development() {
        let c = load(&[]).unwrap();
        assert_eq!(c.env, Environment::Development);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(
            matches!(c.database.url, DatabaseUrl::Sqlite { ref path } if path.ends_with("var/vantus.db"))
        );
        assert!(matches!(c.secret, SecretSource::GeneratedInDataDir));
        assert_eq!(c.http.body_limit, 64 * 1024);
    }

    #[test]
    fn durations_too_long_to_be_deadlines_are_refused() {
        // Once a panic at start-up: `Instant::now() + timeout` overflowed.
        let e = load(&[("DATABASE_CONNECT_TIMEOUT", "584542046090y")]).unwrap_err();
        assert_eq!(e.setting, "DATABASE_CONNECT_TIMEOUT");
        assert!(e.problem.contains("at most 365 days"), "{}", e.problem);
        assert!(load(&[("DATABASE_CONNECT_TIMEOUT", "300d")]).is_ok());
    }

    #[test]
    fn a_public_url_with_credentials_is_refused_without_echoing_them() {
        let e = load(&[("VANTUS_PUBLIC_URL", "https://admin:hunter2hunter2@x.test/")]).unwrap_err();
        assert_eq!(e.setting, "VANTUS_PUBLIC_URL");
        assert!(!e.problem.contains("hunter2"), "{}", e.problem);
        assert!(load(&[("VANTUS_PUBLIC_URL", "https://admin@x.test/")]).is_err());
    }

    #[test]
    fn errors_never_echo_what_a_setting_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("listen");
        std::fs::write(&file, "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
        let e = load(&[("VANTUS_LISTEN_FILE", file.to_str().unwrap())]).unwrap_err();
        assert_eq!(e.setting, "VANTUS_LISTEN");
        assert!(!e.problem.contains("secret-hash"), "{}", e.problem);
        assert!(e.problem.contains("VANTUS_LISTEN_FILE"), "{}", e.problem);
        // A file far larger than any value is refused unread.
        std::fs::write(&file, vec![b'a'; 200 * 1024]).unwrap();
        let e = load(&[("VANTUS_LISTEN_FILE", file.to_str().unwrap())]).unwrap_err();
        assert!(e.problem.contains("larger than 64 KiB"), "{}", e.problem);
    }

    #[test]
    fn production_without_secret_names_the_variable() {
        let e = load(&[
            ("VANTUS_ENV", "production"),
            ("VANTUS_PUBLIC_URL", "https://x.test"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "VANTUS_SECRET_KEY");
    }

    #[test]
    fn production_rejects_weak_secret_and_missing_public_url() {
        let e = load(&[
            ("VANTUS_ENV", "production"),
            ("VANTUS_PUBLIC_URL", "https://x.test"),
            ("VANTUS_SECRET_KEY", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "VANTUS_SECRET_KEY");
        assert!(e.problem.contains("predictable"), "{e}");
        let e = load(&[("VANTUS_ENV", "production"), ("VANTUS_SECRET_KEY", STRONG)]).unwrap_err();
        assert_eq!(e.setting, "VANTUS_PUBLIC_URL");
        let ok = load(&[
            ("VANTUS_ENV", "production"),
            ("VANTUS_SECRET_KEY", STRONG),
            ("VANTUS_PUBLIC_URL", "https://vantus.example.com"),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn database_url_errors_never_echo_the_password() {
        let e = load(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]).unwrap_err();
        assert_eq!(e.setting, "DATABASE_URL");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = load(&[("DATABASE_URL", "not a url hunter2")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let ok = load(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert_eq!(ok.database.url.redacted(), "postgres://u:***@h/db");
    }

    #[test]
    fn replicas_need_postgres() {
        let e = load(&[("DATABASE_REPLICA_URLS", "postgres://h/db")]).unwrap_err();
        assert_eq!(e.setting, "DATABASE_REPLICA_URLS");
        let c = load(&[
            ("DATABASE_URL", "postgres://p/db"),
            (
                "DATABASE_REPLICA_URLS",
                "postgres://r1/db, postgres://r2/db",
            ),
        ])
        .unwrap();
        assert_eq!(c.database.replica_urls.len(), 2);
    }

    #[test]
    fn malformed_values_name_their_setting() {
        for (k, v) in [
            ("VANTUS_LISTEN", "localhost"),
            ("VANTUS_ENV", "staging"),
            ("VANTUS_REQUEST_TIMEOUT", "soon"),
            ("VANTUS_BODY_LIMIT", "big"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("VANTUS_LOG_FORMAT", "xml"),
            ("VANTUS_SITE_TENANT", "Not A Slug"),
            ("VANTUS_PUBLIC_URL", "ftp://x"),
            ("VANTUS_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("VANTUS_BACKUP_SCHEDULE", "every night"),
            ("VANTUS_BACKUP_TO", "ftp://host/x"),
            ("VANTUS_BACKUP_PASSPHRASE", "short"),
            ("VANTUS_METRICS_LISTEN", "9090"),
            ("SENTRY_DSN", "not-a-dsn"),
            ("REDIS_URL", "localhost:6379"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector"),
        ] {
            let e = load(&[(k, v)]).unwrap_err();
            assert_eq!(e.setting, k, "{e}");
        }
    }

    #[test]
    fn file_variants_and_toml_file_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, format!("{STRONG}\n")).unwrap();
        let toml_file = dir.path().join("vantus.toml");
        std::fs::write(
            &toml_file,
            "listen = \"0.0.0.0:9000\"\n[http]\nbody_limit = \"1MiB\"\n",
        )
        .unwrap();
        let c = load(&[
            ("VANTUS_SECRET_KEY_FILE", key_file.to_str().unwrap()),
            ("VANTUS_CONFIG", toml_file.to_str().unwrap()),
            ("VANTUS_BODY_LIMIT", "2MiB"),
        ])
        .unwrap();
        assert!(matches!(c.secret, SecretSource::Configured(ref s) if s.expose_secret() == STRONG));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(c.http.body_limit, 2 * 1024 * 1024, "env wins over the file");

        std::fs::write(&toml_file, "lisen = \"x\"\n").unwrap();
        let e = load(&[("VANTUS_CONFIG", toml_file.to_str().unwrap())]).unwrap_err();
        assert!(e.problem.contains("unknown setting \"lisen\""), "{e}");
    }

    #[test]
    fn cidrs_and_schedules() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().is_everything());
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(Schedule::parse("X", "0 3 * * *").is_ok());
        assert!(Schedule::parse("X", "*/2 * * * * *").is_ok());
        assert_eq!(standard_weekdays("0").unwrap(), "1", "Sunday");
        assert_eq!(standard_weekdays("7").unwrap(), "1", "Sunday too");
        assert_eq!(standard_weekdays("1-5").unwrap(), "2,3,4,5,6", "weekdays");
        assert_eq!(
            standard_weekdays("5-7").unwrap(),
            "1,6,7",
            "Friday to Sunday"
        );
        assert!(standard_weekdays("8").is_err());
        let sunday = Schedule::parse("X", "30 4 * * 0").unwrap();
        let next = sunday.cron.upcoming(chrono::Utc).next().unwrap();
        assert_eq!(chrono::Datelike::weekday(&next), chrono::Weekday::Sun);
        let e = load(&[("VANTUS_BACKUP_SCHEDULE", "0 3 * * *")]).unwrap_err();
        assert_eq!(
            e.setting, "VANTUS_BACKUP_TO",
            "a schedule needs a destination"
        );
        let c = load(&[("VANTUS_BACKUP_TO", "s3://bucket/nightly/")]).unwrap();
        assert_eq!(
            c.backup.to,
            Some(BackupLocation::S3 {
                bucket: "bucket".into(),
                prefix: "nightly".into()
            })
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("64KiB"), Some(65536));
        assert_eq!(parse_byte_size("10 MB"), Some(10_000_000));
        assert_eq!(parse_byte_size("12"), Some(12));
        assert_eq!(parse_byte_size("12 parsecs"), None);
        assert_eq!(format_byte_size(65536), "64 KiB");
    }
}
