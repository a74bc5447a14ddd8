//! What this binary is: version and commit. A leaf module, so every layer can name itself
//! (the version command, the build-info metric, start-up logs, backup manifests).

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit is stamped by the release build (`VANTUS_GIT_SHA`); local builds say "dev".
pub const GIT_SHA: &str = match option_env!("VANTUS_GIT_SHA") {
    Some(sha) => sha,
    None => "dev",
};
