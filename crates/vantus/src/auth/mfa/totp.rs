//! RFC 6238 codes with `totp-rs`: SHA-1, 6 digits, 30-second steps, one step of skew either
//! way (what every authenticator app does). `totp-rs` does not prevent replay; the caller
//! stores the accepted step ([`super::accept_totp`]).

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes of a new secret: 160 bits, RFC 4226's recommendation.
pub const SECRET_LEN: usize = 20;
pub const STEP_SECONDS: u64 = 30;

/// The name authenticator apps show above the code.
pub const ISSUER: &str = "Vantus";

/// A fresh random secret.
pub fn new_secret() -> Result<Vec<u8>, sqlx::Error> {
    let mut bytes = vec![0u8; SECRET_LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| sqlx::Error::Protocol(format!("no randomness: {e}")))?;
    Ok(bytes)
}

fn totp(secret: &[u8], account: &str) -> Option<Totp> {
    // An account name with ':' is not allowed in the label; the issuer prefix says enough.
    let account: String = account.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .ok()
}

/// The time step `code` is valid for at `unix_seconds` (±1 step), if it is.
pub fn check(secret: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    totp(secret, "")?.check(code, unix_seconds)
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The secret as people type it into an app: base32, in groups of four.
pub fn manual_entry(secret: &[u8]) -> String {
    let text = Secret::from(secret.to_vec()).to_base32();
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URI an app scans.
pub fn uri(secret: &[u8], account: &str) -> Option<String> {
    totp(secret, account)?.to_url().ok()
}

/// The URI as an inline SVG QR code (no XML prologue, so it can sit in an HTML page; the
/// CSP allows it: no script, no style attribute).
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].replacen(
        "<svg ",
        r#"<svg role="img" aria-label="QR code for your authenticator app" "#,
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6238_with_one_step_of_skew() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits: 94287082 at T = 59.
        let secret = b"12345678901234567890";
        assert_eq!(check(secret, "287082", 59), Some(1));
        assert_eq!(check(secret, "287082", 59 + 30), Some(1), "a step late");
        assert_eq!(check(secret, "287082", 59 + 60), None, "two steps late");
        assert_eq!(check(secret, "28708", 59), None);
        assert_eq!(check(secret, "abcdef", 59), None);
    }

    #[test]
    fn the_secret_is_shown_in_base32_and_as_an_svg_qr_code() {
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 20);
        let manual = manual_entry(&secret);
        assert_eq!(manual.replace(' ', "").len(), 32);
        let uri = uri(&secret, "ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/Vantus:ada"), "{uri}");
        assert!(uri.contains(&manual.replace(' ', "")));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(!svg.contains("style") && !svg.contains("script"));
    }
}
