//! Mode, public URL, signing secret and proxy trust.

use super::{Doctor, ENV, Finding, Severity};
use crate::config::{SecretSource, check_secret_strength};

pub(super) fn environment(d: &mut Doctor<'_>) {
    let production = d.production();
    if d.can_run("environment", &[ENV]) {
        if production {
            d.ok("environment", "VANTUS_ENV=production");
        } else {
            d.push(Finding::medium("environment", "running in development mode")
                .impact("Development mode generates its own secret and skips HSTS; it is not meant for visitors.")
                .fix("Set VANTUS_ENV=production with VANTUS_SECRET_KEY and VANTUS_PUBLIC_URL."));
        }
    }
    if d.can_run("public-url", &[ENV, "VANTUS_PUBLIC_URL"])
        && production
        && d.config.public_url.scheme() != "https"
    {
        d.push(
            Finding::high(
                "public-url",
                format!("VANTUS_PUBLIC_URL is {}", d.config.public_url),
            )
            .impact("Visitors' data and sessions travel unencrypted; HSTS cannot protect them.")
            .fix("Serve behind TLS and set VANTUS_PUBLIC_URL=https://…"),
        );
    }
    // The default public URL (development, 127.0.0.1) is expected to have no passkeys.
    if d.can_run("passkeys", &["VANTUS_PUBLIC_URL"])
        && !d.config.public_url_is_default
        && let Err(why) = crate::auth::passkeys::RelyingParty::for_public_url(&d.config.public_url)
    {
        d.push(
            Finding::medium("passkeys", why)
                .impact("Staff cannot add or use passkeys; only passwords sign in.")
                .fix("Set VANTUS_PUBLIC_URL to the portal's address with its domain name."),
        );
    }
    if d.can_run("secrets", &[ENV, "VANTUS_SECRET_KEY"]) {
        secret(d, production);
    }
}

fn secret(d: &mut Doctor<'_>, production: bool) {
    let finding = match &d.config.secret {
        SecretSource::Configured(s) => {
            match check_secret_strength(secrecy::ExposeSecret::expose_secret(s)) {
                Ok(()) => Finding::ok("secrets", "VANTUS_SECRET_KEY is set and strong"),
                Err(why) => Finding::new(
                    "secrets",
                    if production {
                        Severity::Critical
                    } else {
                        Severity::Medium
                    },
                    format!("VANTUS_SECRET_KEY {why}"),
                )
                .impact("A guessable key lets anyone forge sessions and tokens.")
                .fix("Generate one with `openssl rand -hex 32` and store it as a secret."),
            }
        }
        SecretSource::GeneratedInDataDir if production => {
            Finding::critical("secrets", "no VANTUS_SECRET_KEY")
                .impact("Production cannot start without it.")
                .fix("Set VANTUS_SECRET_KEY.")
        }
        SecretSource::GeneratedInDataDir => {
            Finding::ok("secrets", "development key generated in the data folder")
        }
    };
    d.push(finding);
}

pub(super) fn trusted_proxies(d: &mut Doctor<'_>) {
    if d.can_run("trusted-proxies", &["VANTUS_TRUSTED_PROXIES"])
        && d.config
            .http
            .trusted_proxies
            .iter()
            .any(|c| c.is_everything())
    {
        d.push(
            Finding::high("trusted-proxies", "VANTUS_TRUSTED_PROXIES trusts every address")
                .impact("Any client can forge X-Forwarded-For: rate limits and audit IPs become meaningless.")
                .fix("List only your load balancers' ranges, e.g. 10.0.0.0/8."),
        );
    }
}
