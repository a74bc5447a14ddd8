//! `DATABASE_*`: the primary, its read replicas and their pools.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::ConfigError;
use super::source::Source;

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

impl DatabaseConfig {
    /// `data_dir` holds the embedded SQLite database when DATABASE_URL is unset.
    pub(super) fn parse(src: &Source<'_>, data_dir: &Path) -> Self {
        let database_url =
            |setting| move |raw: &str| DatabaseUrl::parse(setting, raw).map_err(|e| e.problem);
        let url = src
            .optional("DATABASE_URL", database_url("DATABASE_URL"))
            .unwrap_or_else(|| DatabaseUrl::Sqlite {
                path: data_dir.join("vantus.db"),
            });
        let mut replica_urls = src.list(
            "DATABASE_REPLICA_URLS",
            database_url("DATABASE_REPLICA_URLS"),
        );
        if !replica_urls.is_empty() && !src.is_broken("DATABASE_URL") {
            let problem = if !url.is_postgres() {
                Some("read replicas need a PostgreSQL DATABASE_URL")
            } else if replica_urls.iter().any(|r| !r.is_postgres()) {
                Some("every replica must be a postgres:// URL")
            } else {
                None
            };
            if let Some(problem) = problem {
                src.problem("DATABASE_REPLICA_URLS", problem);
                replica_urls.clear();
            }
        }
        Self {
            url,
            replica_urls,
            max_connections: src.number("DATABASE_MAX_CONNECTIONS", 1, 1000) as u32,
            replica_max_lag: src.duration("DATABASE_REPLICA_MAX_LAG"),
            connect_timeout: src.duration("DATABASE_CONNECT_TIMEOUT"),
        }
    }
}
