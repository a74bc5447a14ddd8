//! The application's signing secret, and the data folder that may hold it.
//!
//! There is no built-in secret anywhere: production must configure one (config refuses to start
//! otherwise), and development generates a random one on first start, kept in the data folder
//! with mode 0600 so sessions survive restarts.

use std::fs;
use std::io::Write;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, SecretSource};
// Moved to a leaf module; re-exported so existing callers keep their paths.
pub use crate::fsutil::{create_private_dir_all, private_new_file};

/// File name of the generated development secret inside the data folder.
pub const SECRET_FILE: &str = "secret.key";

/// File name of the generated development MFA key (`VANTUS_MFA_KEY`) inside the data folder.
pub const MFA_KEY_FILE: &str = "mfa.key";

/// The key that encrypts TOTP secrets at rest. Never printed; see [`crate::auth::mfa`].
#[derive(Clone)]
pub struct MfaKey(std::sync::Arc<secrecy::SecretBox<[u8; 32]>>);

impl MfaKey {
    /// A key from its bytes (tests, tools); servers get theirs from [`resolve_mfa_key`].
    pub fn from_bytes(key: [u8; 32]) -> Self {
        MfaKey(std::sync::Arc::new(secrecy::SecretBox::new(Box::new(key))))
    }

    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaKey(***)")
    }
}

/// Resolves `VANTUS_MFA_KEY`, or in development loads (first: generates) `mfa.key` in the data
/// folder, exactly like the signing secret: no key is ever built in.
pub fn resolve_mfa_key(
    source: &crate::config::MfaKeySource,
    data_dir: &Path,
) -> Result<MfaKey, ConfigError> {
    use crate::config::MfaKeySource;
    match source {
        MfaKeySource::Configured(k) => Ok(MfaKey(k.clone())),
        MfaKeySource::GeneratedInDataDir => {
            let text = load_or_generate_file(data_dir, MFA_KEY_FILE, "VANTUS_MFA_KEY", |k| {
                crate::config::parse_mfa_key(k).is_ok()
            })?;
            let key = crate::config::parse_mfa_key(&text)
                .map_err(|why| ConfigError::new("VANTUS_MFA_KEY", why))?;
            Ok(MfaKey::from_bytes(key))
        }
    }
}

/// The resolved secret. Wrapped so it can never reach a log line or a `Debug` print.
#[derive(Clone)]
pub struct SecretKey(SecretString);

impl SecretKey {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// Creates the data folder if needed and proves it is writable, so a read-only volume is
/// reported at start-up, by name, instead of as a failed write much later.
pub fn ensure_data_dir(dir: &Path) -> Result<(), ConfigError> {
    crate::fsutil::ensure_writable_dir(dir).map_err(|why| ConfigError::new("VANTUS_DATA_DIR", why))
}

/// Resolves the configured secret, or in development loads (first: generates) the key file.
pub fn resolve(source: &SecretSource, data_dir: &Path) -> Result<SecretKey, ConfigError> {
    match source {
        SecretSource::Configured(s) => Ok(SecretKey(s.clone())),
        SecretSource::GeneratedInDataDir => {
            load_or_generate_file(data_dir, SECRET_FILE, "VANTUS_SECRET_KEY", |k| {
                crate::config::check_secret_strength(k).is_ok()
            })
            .map(|k| SecretKey(SecretString::from(k)))
        }
    }
}

/// Loads the key file `file` in the data folder, or first generates it: 32 random bytes, hex,
/// mode 0600. `valid` says whether a file found is intact; errors name `setting`.
fn load_or_generate_file(
    data_dir: &Path,
    file: &str,
    setting: &'static str,
    valid: fn(&str) -> bool,
) -> Result<String, ConfigError> {
    // Check the folder first: a read-only or misplaced data folder is the real problem to
    // report, not the key file inside it.
    ensure_data_dir(data_dir)?;
    let path = data_dir.join(file);
    let err = |what: &str, e: std::io::Error| {
        ConfigError::new(setting, format!("{what} {}: {e}", path.display()))
    };
    match fs::read_to_string(&path) {
        Ok(existing) => {
            let key = existing.trim().to_owned();
            if !valid(&key) {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "the generated key file {} is damaged; delete it to generate a new one",
                        path.display()
                    ),
                ));
            }
            restrict_permissions(&path).map_err(|e| err("cannot restrict permissions of", e))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| {
                ConfigError::new(
                    setting,
                    format!("the operating system's random source failed: {e}"),
                )
            })?;
            let key = hex::encode(bytes);
            write_private(&path, key.as_bytes()).map_err(|e| err("cannot write", e))?;
            Ok(key)
        }
        Err(e) => Err(err("cannot read", e)),
    }
}

/// Writes a file that only the owner can read, atomically (create-new, then rename), so a
/// crash never leaves a half-written key behind.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = private_new_file().open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_secret_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("var");
        let first = resolve(&SecretSource::GeneratedInDataDir, &data).unwrap();
        let second = resolve(&SecretSource::GeneratedInDataDir, &data).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert_eq!(first.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let third = resolve(&SecretSource::GeneratedInDataDir, other.path()).unwrap();
        assert_ne!(
            first.expose(),
            third.expose(),
            "every install gets its own key"
        );
        assert_eq!(format!("{first:?}"), "SecretKey(***)");
    }

    #[test]
    fn a_file_where_the_data_folder_should_be_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        let e = ensure_data_dir(&file).unwrap_err();
        assert_eq!(e.setting, "VANTUS_DATA_DIR");
        assert!(e.problem.contains("not a folder"));
    }
}
