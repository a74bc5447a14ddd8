//! Staff accounts: how passwords are hashed.

use std::time::Duration;

use super::leads::RateSetting;
use super::source::Source;

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
    pub(super) fn parse(src: &Source<'_>) -> Self {
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
        }
    }
}
