//! The media library's domain: what is accepted ([`sniff`]), how it is cleaned and sized
//! ([`process`]), where it is kept ([`storage`]), its rows ([`queries`]), the background job
//! that makes responsive variants ([`variants`]), and the lookup the Markdown renderer uses to
//! give library images `srcset`, `width`/`height` and lazy loading ([`catalog`]).
//!
//! The admin pages live in `admin::media`; files are served at `/media/<file name>`.

pub mod catalog;
pub mod process;
pub mod queries;
pub mod sniff;
pub mod storage;
pub mod variants;

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use storage::MediaStore;

/// The processing limits of a configuration.
pub fn limits(config: &crate::config::Config) -> process::Limits {
    process::Limits {
        max_pixels: config.media.max_pixels,
    }
}

/// The server-made file name of an upload: its id and the extension of its (sniffed) type.
pub fn file_name(id: Uuid, kind: sniff::Kind) -> String {
    format!("{}.{}", id.simple(), kind.extension())
}

/// The file name of a variant of `original` (`<id>-w640.webp`).
pub fn variant_file_name(original: &str, width: u32) -> String {
    let stem = original.split('.').next().unwrap_or(original);
    format!("{stem}-w{width}.webp")
}

/// Where a file of `tenant` is kept in the media store.
pub fn object_key(tenant: Uuid, file_name: &str) -> String {
    format!("{}/{file_name}", tenant.simple())
}

/// A file name that could be ours: lowercase hex, a dash, digits, one dot, a known
/// extension. Anything else is a 404 before the database is asked.
pub fn is_file_name(name: &str) -> bool {
    let Some((stem, ext)) = name.split_once('.') else {
        return false;
    };
    matches!(ext, "jpg" | "png" | "webp" | "gif" | "pdf")
        && !stem.is_empty()
        && stem.len() <= 48
        && stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-' || b == b'w')
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The client's name for a file, made safe to show: its last path segment, control
/// characters removed, at most 200 characters.
pub fn display_label(client_name: Option<&str>) -> String {
    let name = client_name
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("");
    let clean: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() {
        "upload".to_owned()
    } else {
        clean.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_servers() {
        let id = Uuid::nil();
        let name = file_name(id, sniff::Kind::Jpeg);
        assert_eq!(name, "00000000000000000000000000000000.jpg");
        assert!(is_file_name(&name));
        assert!(is_file_name(&variant_file_name(&name, 640)));
        assert!(!is_file_name("../etc/passwd"));
        assert!(!is_file_name("x.svg"));
        assert_eq!(
            display_label(Some("C:\\Users\\me\\holiday.jpg")),
            "holiday.jpg"
        );
        assert_eq!(display_label(Some("../../a\u{0}b.png")), "ab.png");
        assert_eq!(display_label(None), "upload");
    }
}
