//! The media sniffer and the decoder with its limits (`media::process::ingest`, what every
//! upload goes through) on hostile bytes. Invariants: never a panic; a file accepted as an
//! image is stored as the type it was sniffed as, within the pixel limit, and with no EXIF
//! block left in it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantus::media::process::{self, Limits};
use vantus::media::sniff;

/// Small, so a crafted header cannot make one run allocate much.
const LIMITS: Limits = Limits {
    max_pixels: 1_000_000,
};

fuzz_target!(|data: &[u8]| {
    let Ok(processed) = process::ingest(data, LIMITS) else {
        return;
    };
    assert_eq!(
        sniff::sniff(data).ok(),
        Some(processed.kind),
        "accepted as the type it was sniffed as"
    );
    if let Some((width, height)) = processed.size {
        assert!(
            u64::from(width) * u64::from(height) <= LIMITS.max_pixels,
            "within the limit"
        );
        assert_eq!(
            sniff::sniff(&processed.bytes).ok(),
            Some(processed.kind),
            "stored as the same type"
        );
        assert!(
            !processed.bytes.windows(6).any(|w| w == b"Exif\0\0"),
            "no EXIF block in a stored image"
        );
    }
});
