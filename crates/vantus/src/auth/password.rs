//! Staff passwords: the policy a new password must meet, and hashing with argon2id.
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU and 19 MiB by default), so it runs
//! on the blocking pool, behind a semaphore of `VANTUS_PASSWORD_HASHES_AT_ONCE` permits: a
//! burst of logins queues for a permit instead of occupying every runtime thread. Checking a
//! login for an account that does not exist hashes against a dummy, so the answer takes as long
//! as for one that does and does not reveal which addresses have accounts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};
use unicode_normalization::UnicodeNormalization;

use crate::config::{Argon2Settings, AuthConfig};

/// The shortest password accepted (NIST SP 800-63B asks for 8 at least; the issue for 12).
pub const MIN_CHARS: usize = 12;
/// The longest: far above what a password manager generates, low enough to bound hashing.
pub const MAX_CHARS: usize = 1024;

/// Why a new password is refused; the message is shown beside the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("must be at most {MAX_CHARS} characters long")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacters,
    #[error(
        "is one of the most common passwords (or one with digits or symbols added); choose another"
    )]
    Common,
    #[error("must not contain your email address or name")]
    Personal,
    #[error("needs more different characters")]
    Repetitive,
}

/// The form a password is compared in: NFKC-normalised (NIST SP 800-63B), so the same
/// password typed on two keyboards gives the same hash.
fn normalized(password: &str) -> String {
    password.nfkc().collect()
}

/// The common-password list, shipped in the binary, lower-cased.
fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Checks a new password against the policy. `personal` are the user's email address and
/// name, which the password must not contain.
pub fn check_policy(password: &str, personal: &[&str]) -> Result<(), PolicyError> {
    let password = normalized(password);
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PolicyError::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(PolicyError::ControlCharacters);
    }
    let lower = password.to_lowercase();
    let common = common_passwords();
    // "password2024!" is "password" with decorations: strip digits and symbols at either end.
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if common.contains(lower.as_str()) || (core.chars().count() >= 4 && common.contains(core)) {
        return Err(PolicyError::Common);
    }
    let pieces = personal.iter().flat_map(|p| {
        let p = p.to_lowercase();
        // The whole address, its local part, and each word of a name.
        let local = p.split('@').next().unwrap_or("").to_owned();
        let words: Vec<String> = p.split_whitespace().map(str::to_owned).collect();
        std::iter::once(p)
            .chain(std::iter::once(local))
            .chain(words)
    });
    if pieces
        .filter(|piece| piece.chars().count() >= 4)
        .any(|piece| lower.contains(&piece))
    {
        return Err(PolicyError::Personal);
    }
    let distinct: HashSet<char> = lower.chars().collect();
    if distinct.len() < 5 {
        return Err(PolicyError::Repetitive);
    }
    Ok(())
}

/// A failure of the hashing machinery itself (never the user's mistake).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the argon2 settings are unusable: {0}")]
    Settings(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords with argon2id, a few at a time (see the module comment).
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Argon2's working memory, one per permit, reused from hash to hash. Allocating 19 MiB
    /// per sign-in on whichever blocking thread ran it let the allocator keep a freed copy per
    /// thread: RSS reached 390 MB after a burst of 16 concurrent sign-ins (bench/results,
    /// 20261201T202234Z). Held here, the memory is `HASHES_AT_ONCE × m_cost`, allocated once.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A hash of a random password, verified against when an account does not exist.
    dummy: Arc<OnceCell<String>>,
}

impl Passwords {
    pub fn new(config: &AuthConfig) -> Result<Self, HashError> {
        Self::with_settings(config.argon2, config.hashes_at_once)
    }

    /// Like [`Passwords::new`], from the two settings it uses.
    pub fn with_settings(a: Argon2Settings, hashes_at_once: usize) -> Result<Self, HashError> {
        let params = Params::new(a.memory_kib, a.iterations, a.parallelism, None)
            .map_err(|e| HashError::Settings(e.to_string()))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            permits: Arc::new(Semaphore::new(hashes_at_once.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(OnceCell::new()),
        })
    }

    /// The PHC string of `password` (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) under a fresh
    /// random salt. Check the policy first: this hashes whatever it is given.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        let memory = self.memory.clone();
        let password = normalized(password.expose_secret());
        self.off_runtime(move || {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(hashing)?;
            let params = argon2.params().clone();
            let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
            let output = with_memory(&memory, params.block_count(), |blocks| {
                Output::init_with(len, |out| {
                    argon2
                        .hash_password_into_with_memory(password.as_bytes(), &salt, out, blocks)
                        .map_err(|_| argon2::password_hash::Error::Crypto)
                })
                .map_err(hashing)
            })?;
            let salt = SaltString::encode_b64(&salt).map_err(hashing)?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(hashing)?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(phc.to_string())
        })
        .await
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored hash (no such
    /// account) the same work is done against a dummy and the answer is `false`, so both
    /// cases take as long. A malformed stored hash is `false` and logged, never a panic.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> bool {
        let (stored, exists) = match stored {
            Some(s) => (s.to_owned(), true),
            None => match self.dummy_hash().await {
                Ok(d) => (d, false),
                Err(e) => {
                    tracing::error!(error = %e, "cannot make the dummy password hash");
                    return false;
                }
            },
        };
        let password = normalized(password.expose_secret());
        let memory = self.memory.clone();
        let matched = self
            .off_runtime(move || {
                let parsed = PasswordHash::new(&stored).map_err(hashing)?;
                // Verifying uses the parameters recorded in the hash, so hashes made before a
                // settings change still verify.
                let params = Params::try_from(&parsed).map_err(hashing)?;
                let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hashing)?;
                let version = parsed
                    .version
                    .map(Version::try_from)
                    .transpose()
                    .map_err(hashing)?
                    .unwrap_or_default();
                let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                    return Err(HashError::Hashing("the hash has no salt or output".into()));
                };
                let mut salt_bytes = [0u8; 64];
                let salt = salt.decode_b64(&mut salt_bytes).map_err(hashing)?;
                let argon2 = Argon2::new(algorithm, version, params.clone());
                let computed = with_memory(&memory, params.block_count(), |blocks| {
                    Output::init_with(expected.len(), |out| {
                        argon2
                            .hash_password_into_with_memory(password.as_bytes(), salt, out, blocks)
                            .map_err(|_| argon2::password_hash::Error::Crypto)
                    })
                    .map_err(hashing)
                })?;
                // `Output`'s equality is constant-time.
                Ok(computed == expected)
            })
            .await;
        match matched {
            Ok(matched) => matched && exists,
            Err(e) => {
                tracing::error!(error = %e, "a stored password hash cannot be read");
                false
            }
        }
    }

    /// Whether a stored hash was made with other parameters than the current ones (then it
    /// is worth re-hashing at the next successful login).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return true;
        };
        let current = self.argon2.params();
        let same = Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == current.m_cost()
                && p.t_cost() == current.t_cost()
                && p.p_cost() == current.p_cost()
        });
        parsed.algorithm.as_str() != "argon2id" || !same
    }

    async fn dummy_hash(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| async {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| HashError::Hashing(e.to_string()))?;
                self.hash(&SecretString::from(hex::encode(random))).await
            })
            .await
            .cloned()
    }

    /// Runs `work` on the blocking pool once a permit is free (so at most one working memory
    /// per permit is ever in use).
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError::Hashing(e.to_string()))?
    }
}

fn hashing(e: impl std::fmt::Display) -> HashError {
    HashError::Hashing(e.to_string())
}

/// Runs `work` with `blocks` blocks of argon2 memory from `pool` (reused; a larger one is
/// allocated for a hash made with more memory than today's settings, and kept).
fn with_memory<T>(
    pool: &Mutex<Vec<Vec<Block>>>,
    blocks: usize,
    work: impl FnOnce(&mut [Block]) -> Result<T, HashError>,
) -> Result<T, HashError> {
    let taken = pool
        .lock()
        .map_err(|_| HashError::Hashing("the hashing memory pool is poisoned".into()))?
        .pop();
    let mut memory = match taken {
        Some(m) if m.len() >= blocks => m,
        _ => vec![Block::default(); blocks],
    };
    let result = work(&mut memory[..blocks]);
    // Nothing derived from a password waits in memory for the next hash.
    memory[..blocks].fill(Block::default());
    if let Ok(mut pool) = pool.lock() {
        pool.push(memory);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests check behaviour, not cost.
    fn passwords(hashes_at_once: usize) -> Passwords {
        let cheap = Argon2Settings {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        };
        Passwords::with_settings(cheap, hashes_at_once).unwrap()
    }

    #[test]
    fn the_policy_names_what_is_wrong() {
        let me = ["ada.lovelace@example.com", "Ada Lovelace"];
        assert_eq!(check_policy("short", &me), Err(PolicyError::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(MAX_CHARS + 1), &me),
            Err(PolicyError::TooLong)
        );
        assert_eq!(
            check_policy("line\nbreak in here", &me),
            Err(PolicyError::ControlCharacters)
        );
        assert_eq!(check_policy("qwertyuiop123", &me), Err(PolicyError::Common));
        assert_eq!(
            check_policy("Password2024!!", &me),
            Err(PolicyError::Common),
            "a common word with digits and symbols"
        );
        assert_eq!(check_policy("1qaz2wsx3edc", &me), Err(PolicyError::Common));
        assert_eq!(
            check_policy("lovelace-rules-ok", &me),
            Err(PolicyError::Personal)
        );
        assert_eq!(
            check_policy("ada.lovelace@example.com", &me),
            Err(PolicyError::Personal)
        );
        assert_eq!(
            check_policy("abababababababab", &me),
            Err(PolicyError::Repetitive)
        );
        assert_eq!(check_policy("correct horse battery staple", &me), Ok(()));
        assert_eq!(
            check_policy(&"é".repeat(6).repeat(2), &[]),
            Err(PolicyError::Repetitive)
        );
        // Counted in characters, not bytes: 12 accented letters are long enough.
        assert_eq!(check_policy("éàüöñçåøßþðæ", &[]), Ok(()));
    }

    #[test]
    fn the_shipped_list_is_loaded_whole() {
        let list = common_passwords();
        assert!(list.len() > 29_000, "{}", list.len());
        assert!(list.contains("123456") && list.contains("password"));
        assert!(!list.iter().any(|p| p.starts_with('#')));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let p = passwords(2);
        let secret = SecretString::from("correct horse battery staple");
        let hash = p.hash(&secret).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{hash}");
        assert!(p.verify(&secret, Some(&hash)).await);
        assert!(
            !p.verify(
                &SecretString::from("correct horse battery stapler"),
                Some(&hash)
            )
            .await
        );
        // A fresh salt each time.
        assert_ne!(p.hash(&secret).await.unwrap(), hash);
        // NFKC: the ligature "ﬁ" and "fi" are the same password.
        let lig = p
            .hash(&SecretString::from("ﬁnal answer is 42"))
            .await
            .unwrap();
        assert!(
            p.verify(&SecretString::from("final answer is 42"), Some(&lig))
                .await
        );
        // No account, or a broken stored hash: false, never a panic.
        assert!(!p.verify(&secret, None).await);
        assert!(!p.verify(&secret, Some("not a hash")).await);
        assert!(!p.needs_rehash(&hash));
        let stronger = Passwords::with_settings(
            Argon2Settings {
                memory_kib: 16 * 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
        )
        .unwrap();
        assert!(stronger.needs_rehash(&hash));
        assert!(
            stronger.verify(&secret, Some(&hash)).await,
            "old parameters still verify"
        );
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_permitted() {
        let p = passwords(1);
        let secret = SecretString::from("correct horse battery staple");
        // Hold the only permit: a hash must wait for it.
        let held = p.permits.clone().acquire_owned().await.unwrap();
        let waiting = tokio::spawn({
            let p = p.clone();
            let secret = secret.clone();
            async move { p.hash(&secret).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "hashing started without a permit");
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
    }

    /// Hashes stored before the working memory was reused (argon2's own `hash_password`)
    /// verify, and ours verify with argon2's own verifier: the PHC strings are the same format.
    #[tokio::test]
    async fn hashes_are_interchangeable_with_the_reference_implementation() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let settings = Argon2Settings {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        };
        let ours = Passwords::with_settings(settings, 2).unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        );
        let secret = SecretString::from("correct horse battery staple");
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let theirs = reference
            .hash_password(normalized("correct horse battery staple").as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(ours.verify(&secret, Some(&theirs)).await);
        assert!(
            !ours
                .verify(
                    &SecretString::from("wrong horse battery staple"),
                    Some(&theirs)
                )
                .await
        );
        let mine = ours.hash(&secret).await.unwrap();
        assert!(mine.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{mine}");
        let parsed = PasswordHash::new(&mine).unwrap();
        assert!(
            Argon2::default()
                .verify_password(
                    normalized("correct horse battery staple").as_bytes(),
                    &parsed
                )
                .is_ok()
        );
        // A hash made with more memory than the pool's blocks still verifies.
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(16384, 1, 1, None).unwrap(),
        )
        .hash_password(normalized("correct horse battery staple").as_bytes(), &salt)
        .unwrap()
        .to_string();
        assert!(ours.verify(&secret, Some(&bigger)).await);
        assert!(
            ours.memory.lock().unwrap().len() <= 2,
            "one memory per permit at most"
        );
    }
}
