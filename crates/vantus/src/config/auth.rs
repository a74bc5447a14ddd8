//! Staff accounts: how passwords are hashed, sessions last, and who needs a second factor.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretBox;

use super::Environment;
use super::leads::RateSetting;
use super::source::Source;

/// The role names `VANTUS_MFA_REQUIRED_ROLES` may list: `auth::permission::Role`'s (config sits
/// below auth, so it cannot name the type; a test in `auth::permission` keeps the two equal).
pub const ROLE_NAMES: &[&str] = &["owner", "admin", "editor", "sales", "viewer"];

/// Where the key that encrypts TOTP secrets comes from. Like the signing secret: configured
/// (required in production), or in development generated once into the data folder.
#[derive(Clone)]
pub enum MfaKeySource {
    Configured(Arc<SecretBox<[u8; 32]>>),
    GeneratedInDataDir,
}

impl std::fmt::Debug for MfaKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MfaKeySource::Configured(_) => f.write_str("Configured(***)"),
            MfaKeySource::GeneratedInDataDir => f.write_str("GeneratedInDataDir"),
        }
    }
}

/// Reads a 32-byte key given as 64 hex characters or as base64 (standard or URL-safe, padded
/// or not). The error never repeats the value.
pub fn parse_mfa_key(raw: &str) -> Result<[u8; 32], String> {
    let raw = raw.trim();
    let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(raw).ok()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE;
        let unpadded = raw.trim_end_matches('=');
        b64.decode(raw)
            .or_else(|_| url.decode(raw))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
            .ok()
    };
    match bytes.map(<[u8; 32]>::try_from) {
        Some(Ok(key)) => Ok(key),
        Some(Err(v)) => Err(format!(
            "must be 32 bytes, not {}; generate one with `openssl rand -hex 32`",
            v.len()
        )),
        None => Err(
            "is neither 64 hex characters nor base64; generate one with `openssl rand -hex 32`"
                .to_owned(),
        ),
    }
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub argon2: Argon2Settings,
    /// Password hashes computed at once; more logins wait their turn.
    pub hashes_at_once: usize,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_max_age: Duration,
    /// Sign-in attempts per client (IP, IPv6 /64).
    pub login_rate: RateSetting,
    /// Sign-in attempts per account, from anywhere (slows a distributed guess at one account).
    pub login_account_rate: RateSetting,
    /// How long an invitation link stays usable.
    pub invitation_ttl: Duration,
    /// How long a password-reset link stays usable.
    pub password_reset_ttl: Duration,
    /// Password-reset requests per client.
    pub password_reset_rate: RateSetting,
    /// Password-reset requests per address typed, from anywhere (bounds the emails one
    /// address can be sent).
    pub password_reset_account_rate: RateSetting,
    /// The key that encrypts TOTP secrets (`VANTUS_MFA_KEY`).
    pub mfa_key: MfaKeySource,
    /// Roles whose members must have a second factor (names from [`ROLE_NAMES`]).
    pub mfa_required_roles: Vec<String>,
    /// How recent the last proof of a factor must be for an MFA change.
    pub reauth_window: Duration,
}

/// Argon2id's cost parameters (RFC 9106). The defaults are OWASP's current recommendation:
/// 19 MiB, 2 passes, 1 lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl AuthConfig {
    pub(super) fn parse(src: &Source<'_>, env: Environment) -> Self {
        Self {
            argon2: Argon2Settings {
                // Below 8 MiB argon2id is weaker than the guidance allows; above 1 GiB one
                // login would take the server's memory.
                memory_kib: src.number("VANTUS_ARGON2_MEMORY_KIB", 8 * 1024, 1024 * 1024) as u32,
                iterations: src.number("VANTUS_ARGON2_ITERATIONS", 1, 20) as u32,
                parallelism: src.number("VANTUS_ARGON2_PARALLELISM", 1, 16) as u32,
            },
            hashes_at_once: src.number("VANTUS_PASSWORD_HASHES_AT_ONCE", 1, 64) as usize,
            session_idle: src.duration("VANTUS_SESSION_IDLE_TIMEOUT"),
            session_max_age: src.duration("VANTUS_SESSION_MAX_AGE"),
            login_rate: src.or_default("VANTUS_RATE_LIMIT_LOGIN", RateSetting::parse),
            login_account_rate: src
                .or_default("VANTUS_RATE_LIMIT_LOGIN_ACCOUNT", RateSetting::parse),
            invitation_ttl: src.duration("VANTUS_INVITATION_TTL"),
            password_reset_ttl: src.duration("VANTUS_PASSWORD_RESET_TTL"),
            password_reset_rate: src
                .or_default("VANTUS_RATE_LIMIT_PASSWORD_RESET", RateSetting::parse),
            password_reset_account_rate: src.or_default(
                "VANTUS_RATE_LIMIT_PASSWORD_RESET_ACCOUNT",
                RateSetting::parse,
            ),
            mfa_key: mfa_key(src, env),
            mfa_required_roles: required_roles(src),
            reauth_window: src.duration("VANTUS_REAUTH_WINDOW"),
        }
    }
}

fn mfa_key(src: &Source<'_>, env: Environment) -> MfaKeySource {
    match src.optional("VANTUS_MFA_KEY", parse_mfa_key) {
        Some(key) => MfaKeySource::Configured(Arc::new(SecretBox::new(Box::new(key)))),
        None => {
            if env == Environment::Production && !src.is_broken("VANTUS_MFA_KEY") {
                src.problem(
                    "VANTUS_MFA_KEY",
                    "is required in production (or VANTUS_MFA_KEY_FILE): 32 random bytes as 64 hex characters, e.g. `openssl rand -hex 32`; it encrypts the staff's TOTP secrets",
                );
            }
            MfaKeySource::GeneratedInDataDir
        }
    }
}

fn required_roles(src: &Source<'_>) -> Vec<String> {
    let name = "VANTUS_MFA_REQUIRED_ROLES";
    let parse = |raw: &str| -> Result<Vec<String>, String> {
        if raw.trim().eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        raw.split(',')
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty())
            .map(|r| {
                if ROLE_NAMES.contains(&r.as_str()) {
                    Ok(r)
                } else {
                    Err(format!(
                        "\"{r}\" is not a role; the roles are {}",
                        ROLE_NAMES.join(", ")
                    ))
                }
            })
            .collect()
    };
    match src.raw_or_empty(name) {
        Some(raw) => parse(&raw).unwrap_or_else(|why| {
            src.problem(name, why);
            parse(super::settings::default_of(name)).unwrap_or_default()
        }),
        None => parse(super::settings::default_of(name)).unwrap_or_default(),
    }
}
