//! What an upload is, from its first bytes; the client's name and Content-Type are not asked.

/// The kinds of file the library accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    WebP,
    Gif,
    Pdf,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::WebP => "image/webp",
            Kind::Gif => "image/gif",
            Kind::Pdf => "application/pdf",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::WebP => "webp",
            Kind::Gif => "gif",
            Kind::Pdf => "pdf",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Jpeg => "JPEG",
            Kind::Png => "PNG",
            Kind::WebP => "WebP",
            Kind::Gif => "GIF",
            Kind::Pdf => "PDF",
        }
    }

    pub fn is_image(self) -> bool {
        self != Kind::Pdf
    }

    pub fn from_content_type(content_type: &str) -> Option<Self> {
        Some(match content_type {
            "image/jpeg" => Kind::Jpeg,
            "image/png" => Kind::Png,
            "image/webp" => Kind::WebP,
            "image/gif" => Kind::Gif,
            "application/pdf" => Kind::Pdf,
            _ => return None,
        })
    }
}

/// Why an upload's type is refused; the message is shown to the uploader.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAccepted {
    #[error(
        "SVG files are not accepted: they can carry scripts. Export the drawing as PNG or WebP."
    )]
    Svg,
    #[error(
        "AVIF images are not accepted yet (this build cannot decode them). Use JPEG, PNG or WebP."
    )]
    Avif,
    #[error("this type of file is not accepted; upload a JPEG, PNG, WebP or GIF image, or a PDF")]
    Unknown,
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The kind of `bytes`, by its magic number.
pub fn sniff(bytes: &[u8]) -> Result<Kind, NotAccepted> {
    if bytes.starts_with(b"\xFF\xD8\xFF") {
        return Ok(Kind::Jpeg);
    }
    if bytes.starts_with(PNG_SIGNATURE) {
        return Ok(Kind::Png);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Ok(Kind::Gif);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(Kind::WebP);
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(Kind::Pdf);
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" && matches!(&bytes[8..12], b"avif" | b"avis") {
        return Err(NotAccepted::Avif);
    }
    if looks_like_svg(bytes) {
        return Err(NotAccepted::Svg);
    }
    Err(NotAccepted::Unknown)
}

/// An SVG (or any XML holding one) near its start, whatever it is called: named so the
/// uploader learns why, not just that, it was refused.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    (text.starts_with('<')) && text.contains("<svg")
}

/// The data after a PNG's `IEND` chunk or a GIF's trailer: nothing an image needs, and the
/// usual place to hide a second file (HTML, a script, a ZIP) in a polyglot.
pub fn has_trailing_data(kind: Kind, bytes: &[u8]) -> bool {
    match kind {
        Kind::Png => !bytes.ends_with(b"IEND\xAE\x42\x60\x82"),
        Kind::Gif => bytes.last() != Some(&0x3B),
        _ => false,
    }
}

/// Whether a PDF is whole: `%%EOF` within its last KiB (incremental updates append more).
pub fn pdf_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    tail.windows(5).any(|w| w == b"%%EOF")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_magic_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Ok(Kind::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Ok(Kind::Png));
        assert_eq!(sniff(b"GIF89a..."), Ok(Kind::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(Kind::WebP));
        assert_eq!(sniff(b"%PDF-1.7\n"), Ok(Kind::Pdf));
        assert_eq!(sniff(b"\0\0\0\x1cftypavif"), Err(NotAccepted::Avif));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\">"),
            Err(NotAccepted::Svg)
        );
        assert_eq!(
            sniff(b"<html><script>alert(1)</script>"),
            Err(NotAccepted::Unknown)
        );
        assert_eq!(sniff(b""), Err(NotAccepted::Unknown));
    }

    #[test]
    fn trailing_data_after_an_image_is_seen() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(b"\0\0\0\0IEND\xAE\x42\x60\x82");
        assert!(!has_trailing_data(Kind::Png, &png));
        png.extend_from_slice(b"<script>alert(1)</script>");
        assert!(has_trailing_data(Kind::Png, &png));
    }
}
