//! TOTP secrets at rest: XChaCha20-Poly1305 under `VANTUS_MFA_KEY`.
//!
//! Each sealing draws a fresh 192-bit random nonce (XChaCha's nonce is large enough that random
//! nonces never collide in practice), and binds the user id as associated data: a sealed secret
//! copied onto another user's row does not open. Stored as base64 of `nonce || ciphertext`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use uuid::Uuid;

use crate::secrets::MfaKey;

const NONCE_LEN: usize = 24;

/// Why a stored secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the operating system's random source failed")]
    Random,
    /// Wrong key (VANTUS_MFA_KEY changed), another user's row, or damaged data.
    #[error("the stored TOTP secret does not open with VANTUS_MFA_KEY")]
    Open,
}

impl From<SealError> for sqlx::Error {
    fn from(e: SealError) -> Self {
        sqlx::Error::Protocol(e.to_string())
    }
}

pub fn seal(key: &MfaKey, user: Uuid, secret: &[u8]) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: secret,
                aad: user.as_bytes(),
            },
        )
        .map_err(|_| SealError::Random)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

pub fn open(key: &MfaKey, user: Uuid, stored: &str) -> Result<Vec<u8>, SealError> {
    let bytes = STANDARD.decode(stored).map_err(|_| SealError::Open)?;
    if bytes.len() <= NONCE_LEN {
        return Err(SealError::Open);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Open)?;
    XChaCha20Poly1305::new(key.expose().into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: sealed,
                aad: user.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MfaKey {
        MfaKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_secret_opens_only_with_its_key_and_its_user() {
        let (ada, grace) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = seal(&key(1), ada, b"twenty bytes secret!").unwrap();
        assert_eq!(
            open(&key(1), ada, &sealed).unwrap(),
            b"twenty bytes secret!"
        );
        assert!(open(&key(2), ada, &sealed).is_err(), "another key");
        assert!(open(&key(1), grace, &sealed).is_err(), "another user's row");
        assert_ne!(
            sealed,
            seal(&key(1), ada, b"twenty bytes secret!").unwrap(),
            "a fresh nonce each time"
        );
        assert!(open(&key(1), ada, "AAAA").is_err());
    }
}
