//! Slug rules, shared by configuration (`VANTUS_SITE_TENANT`), tenancy and content seeding.
//!
//! A leaf module: it imports nothing from the crate, so `config` can use it without depending
//! on `tenancy` (which depends on `store`, which depends on `config`).

/// Lowercase ASCII letters, digits and single inner hyphens; 1 to 64 characters.
pub fn is_valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::is_valid_slug;

    #[test]
    fn slugs() {
        for ok in ["default", "acme-2", "a"] {
            assert!(is_valid_slug(ok), "{ok}");
        }
        for bad in ["", "Acme", "a b", "-a", "a-", "a--b", "ü", &"x".repeat(65)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }
}
