//! This instance: its environment, address, public URL, data folder, secret, site tenant and
//! the Redis it shares state through.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use super::source::Source;
use super::{
    Environment, Overrides, SecretSource, check_secret_strength, default_public_url,
    parse_socket_addr,
};

const LISTEN_EXAMPLE: &str = "127.0.0.1:8080";

pub(super) fn environment(src: &Source<'_>) -> Environment {
    src.choice(
        "VANTUS_ENV",
        &[
            ("development", Environment::Development),
            ("dev", Environment::Development),
            ("production", Environment::Production),
            ("prod", Environment::Production),
        ],
        "an environment",
        "development or production",
    )
}

/// The command line's `--listen` wins over VANTUS_LISTEN.
pub(super) fn listen(src: &Source<'_>, overrides: &Overrides) -> SocketAddr {
    match &overrides.listen {
        Some(raw) => parse_socket_addr(raw, LISTEN_EXAMPLE).unwrap_or_else(|why| {
            src.problem("VANTUS_LISTEN", why);
            default_listen(src)
        }),
        None => default_listen(src),
    }
}

/// The public URL, and whether it was derived from `listen` (not configured).
pub(super) fn public_url(src: &Source<'_>, env: Environment, listen: SocketAddr) -> (Url, bool) {
    let configured = src.optional("VANTUS_PUBLIC_URL", parse_public_url);
    if configured.is_none() && env == Environment::Production && !src.is_broken("VANTUS_PUBLIC_URL")
    {
        src.problem(
            "VANTUS_PUBLIC_URL",
            "is required in production: the absolute URL visitors use, e.g. https://vantus.example.com",
        );
    }
    match configured {
        Some(url) => (url, false),
        None => (default_public_url(listen), true),
    }
}

pub(super) fn data_dir(src: &Source<'_>) -> PathBuf {
    src.or_default("VANTUS_DATA_DIR", |raw| {
        if raw.is_empty() {
            return Err("must not be empty".to_owned());
        }
        Ok(PathBuf::from(raw))
    })
}

/// The signing secret, and a warning when development runs with a weak one.
pub(super) fn secret(src: &Source<'_>, env: Environment) -> (SecretSource, Option<String>) {
    let production = env == Environment::Production;
    match src.raw("VANTUS_SECRET_KEY") {
        Some(key) => {
            let mut warning = None;
            if let Err(why) = check_secret_strength(&key) {
                if production {
                    src.problem("VANTUS_SECRET_KEY", why);
                } else {
                    // Development tolerates a weak key, but says so: doctor reports it too.
                    warning = Some(format!("VANTUS_SECRET_KEY {why}"));
                }
            }
            (SecretSource::Configured(SecretString::from(key)), warning)
        }
        None => {
            if production && !src.is_broken("VANTUS_SECRET_KEY") {
                src.problem(
                    "VANTUS_SECRET_KEY",
                    "is required in production (or VANTUS_SECRET_KEY_FILE); generate one with `openssl rand -hex 32`",
                );
            }
            (SecretSource::GeneratedInDataDir, None)
        }
    }
}

pub(super) fn site_tenant(src: &Source<'_>) -> String {
    src.or_default("VANTUS_SITE_TENANT", |slug| {
        if crate::slug::is_valid_slug(slug) {
            Ok(slug.to_owned())
        } else {
            Err(format!(
                "\"{slug}\" is not a slug (lowercase letters, digits and hyphens)"
            ))
        }
    })
}

fn default_listen(src: &Source<'_>) -> SocketAddr {
    src.or_default("VANTUS_LISTEN", |raw| {
        parse_socket_addr(raw, LISTEN_EXAMPLE)
    })
}

pub(super) fn redis_url(src: &Source<'_>) -> Option<SecretString> {
    src.optional("REDIS_URL", |raw| {
        if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
            return Err("must start with redis:// or rediss://".to_owned());
        }
        Ok(SecretString::from(raw.to_owned()))
    })
}

fn parse_public_url(raw: &str) -> Result<Url, String> {
    let url =
        Url::parse(raw.trim()).map_err(|e| format!("\"{raw}\" is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("\"{raw}\" must start with https:// or http://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the value: it holds a credential, and the URL is published in links.
        return Err(
            "must not contain a user name or password (it is published in links, the sitemap and robots.txt)"
                .to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("\"{raw}\" must not carry a query or fragment"));
    }
    let mut url = url;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}
