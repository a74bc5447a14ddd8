//! The media library: where uploads are stored and how large they may be.
//!
//! Storage is the data folder's `media/` by default; with `S3_BUCKET` set (and the other
//! `S3_*` settings, see [`super::S3Config`]) uploads go to that bucket instead.

use super::source::Source;

/// Largest upload size that may be configured: the file is held in memory while it is checked
/// and re-encoded, so this bounds a request's memory as well.
const MAX_UPLOAD_LIMIT: usize = 256 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Largest accepted upload, in bytes (`VANTUS_MEDIA_MAX_BYTES`).
    pub max_bytes: usize,
    /// Most pixels (width × height) an image may declare (`VANTUS_MEDIA_MAX_PIXELS`); larger
    /// ones are refused before anything is decoded.
    pub max_pixels: u64,
}

impl MediaConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        let max_bytes = src.size("VANTUS_MEDIA_MAX_BYTES");
        if max_bytes > MAX_UPLOAD_LIMIT {
            src.problem(
                "VANTUS_MEDIA_MAX_BYTES",
                format!(
                    "is too large (at most {}; uploads are held in memory while they are checked)",
                    super::format_byte_size(MAX_UPLOAD_LIMIT)
                ),
            );
        }
        Self {
            max_bytes: max_bytes.min(MAX_UPLOAD_LIMIT),
            max_pixels: src.number("VANTUS_MEDIA_MAX_PIXELS", 1_000_000, 200_000_000),
        }
    }
}
