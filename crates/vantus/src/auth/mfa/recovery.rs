//! Recovery codes: the way in when the authenticator is lost. Ten per user, each 80 random
//! bits written as 16 characters of Crockford-like base32 in four groups (`k7m2-9xqa-…`),
//! single use.
//!
//! Stored as the SHA-256 of the normalised code, not with argon2: a password needs a slow hash
//! because people choose guessable ones, but an 80-bit random code cannot be guessed by
//! hashing candidates (2^80 SHA-256 computations is out of reach), so a fast hash loses
//! nothing and keeps sign-in from spending an argon2 computation per stored code.

use sha2::{Digest, Sha256};

pub const CODES_PER_USER: usize = 10;
/// Bytes of randomness per code (80 bits; at least 64 are required).
const CODE_BYTES: usize = 10;
/// Lower-case base32 without the letters people confuse with digits (i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One new code, as shown to the user.
pub fn new_code() -> Result<String, sqlx::Error> {
    let mut bytes = [0u8; CODE_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| sqlx::Error::Protocol(format!("no randomness: {e}")))?;
    // 80 bits = 16 symbols of 5 bits.
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let symbols: Vec<u8> = (0..16)
        .rev()
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize])
        .collect();
    Ok(symbols
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-"))
}

/// A fresh set of codes.
pub fn new_codes() -> Result<Vec<String>, sqlx::Error> {
    (0..CODES_PER_USER).map(|_| new_code()).collect()
}

/// What a typed code is compared as: lower case, without spaces and hyphens, so `K7M2 9XQA…`
/// and `k7m2-9xqa-…` are the same code. `None` when it cannot be one.
pub fn normalise(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == 16 && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// The stored form of a normalised code.
pub fn hash(normalised: &str) -> String {
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_grouped_and_typed_loosely() {
        let codes = new_codes().unwrap();
        assert_eq!(codes.len(), 10);
        let mut distinct = codes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        let c = &codes[0];
        assert_eq!(c.len(), 19);
        assert_eq!(c.matches('-').count(), 3);
        let n = normalise(c).unwrap();
        assert_eq!(
            normalise(&c.to_uppercase().replace('-', " ")),
            Some(n.clone())
        );
        assert_eq!(hash(&n).len(), 64);
        assert_eq!(normalise("123456"), None);
        assert_eq!(normalise("iiii-iiii-iiii-iiii"), None);
    }
}
