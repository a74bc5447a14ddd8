//! Signed preview links: `/preview/{token}` shows one revision of an item, rendered by the
//! public page's own renderer, to whoever holds the link until it expires (a reviewer without
//! an account, say).
//!
//! The token is `tenant.item.revision.expires.signature`: the ids as plain hex, the expiry in
//! Unix seconds, and an HMAC-SHA256 over all four with the server's secret key
//! (`VANTUS_SECRET_KEY`; there is no fallback key). A token that does not verify is refused
//! before anything is read; one that verifies but expired is refused with when it expired.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::secrets::SecretKey;
use crate::store::Timestamp;

/// Keeps these MACs apart from any other use of the same secret.
const DOMAIN: &[u8] = b"vantus:content-preview:v1";

/// What a verified token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviewTarget {
    pub tenant: Uuid,
    pub item: Uuid,
    pub revision: Uuid,
    pub expires: i64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Malformed, or signed with another key, or altered.
    Invalid,
    /// Genuine, but past its expiry (Unix seconds).
    Expired(i64),
}

fn mac(secret: &SecretKey, t: &PreviewTarget) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(DOMAIN);
    for part in [
        t.tenant.simple().to_string(),
        t.item.simple().to_string(),
        t.revision.simple().to_string(),
        t.expires.to_string(),
    ] {
        mac.update(b"\n");
        mac.update(part.as_bytes());
    }
    mac
}

/// A token for `target`.
pub fn sign(secret: &SecretKey, target: &PreviewTarget) -> String {
    let signature = hex::encode(mac(secret, target).finalize().into_bytes());
    format!(
        "{}.{}.{}.{}.{signature}",
        target.tenant.simple(),
        target.item.simple(),
        target.revision.simple(),
        target.expires
    )
}

/// Checks a token's signature, then its expiry against `now`.
pub fn verify(secret: &SecretKey, token: &str, now: Timestamp) -> Result<PreviewTarget, Refused> {
    let parts: Vec<&str> = token.split('.').collect();
    let [tenant, item, revision, expires, signature] = parts[..] else {
        return Err(Refused::Invalid);
    };
    let id = |s: &str| {
        (s.len() == 32)
            .then(|| Uuid::try_parse(s).ok())
            .flatten()
            .ok_or(Refused::Invalid)
    };
    let target = PreviewTarget {
        tenant: id(tenant)?,
        item: id(item)?,
        revision: id(revision)?,
        expires: expires.parse().map_err(|_| Refused::Invalid)?,
    };
    let signature = hex::decode(signature).map_err(|_| Refused::Invalid)?;
    // Constant-time comparison.
    mac(secret, &target)
        .verify_slice(&signature)
        .map_err(|_| Refused::Invalid)?;
    if now.unix_micros() / 1_000_000 >= target.expires {
        return Err(Refused::Expired(target.expires));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretKey {
        let source = crate::config::SecretSource::Configured(s.to_owned().into());
        crate::secrets::resolve(&source, std::path::Path::new("/nonexistent")).unwrap()
    }

    #[test]
    fn a_token_verifies_until_it_expires_and_not_once_altered() {
        let k = key("0123456789abcdef0123456789abcdef");
        let now = Timestamp::now();
        let t = PreviewTarget {
            tenant: Uuid::now_v7(),
            item: Uuid::now_v7(),
            revision: Uuid::now_v7(),
            expires: now.unix_micros() / 1_000_000 + 60,
        };
        let token = sign(&k, &t);
        assert_eq!(verify(&k, &token, now), Ok(t));
        let later = now.plus(std::time::Duration::from_secs(61));
        assert_eq!(verify(&k, &token, later), Err(Refused::Expired(t.expires)));
        let other = key("fedcba9876543210fedcba9876543210");
        assert_eq!(verify(&other, &token, now), Err(Refused::Invalid));
        // A later expiry with the old signature.
        let stretched = token.replacen(
            &format!(".{}.", t.expires),
            &format!(".{}.", t.expires + 3600),
            1,
        );
        assert_eq!(verify(&k, &stretched, now), Err(Refused::Invalid));
        for junk in ["", "a.b.c.d.e", "x", &format!("{token}.x")] {
            assert_eq!(verify(&k, junk, now), Err(Refused::Invalid), "{junk}");
        }
    }
}
