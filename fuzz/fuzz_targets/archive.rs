//! The backup archive reader (`ops::archive::verify`, what restore reads first) on hostile
//! bytes, and the media-path rule restore joins paths with. Invariants: never a panic, and a
//! media path that is accepted stays inside the media folder.
#![no_main]

use std::io::Write;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use vantus::ops::archive;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(data).expect("written");
    let _ = archive::verify(file.path(), None);

    if let Ok(relative) = std::str::from_utf8(data) {
        if archive::check_media_path(relative).is_ok() {
            let joined = Path::new("/media-root").join(relative);
            assert!(joined.starts_with("/media-root"), "{relative:?} escapes");
            assert!(
                Path::new(relative).components().all(|c| matches!(c, Component::Normal(_))),
                "{relative:?} is not plain"
            );
        }
    }
});
