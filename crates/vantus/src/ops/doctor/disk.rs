//! The data folder's disk: free space, and whether it is a network filesystem.

use std::path::Path;

use super::{Doctor, Finding};

/// Filesystem types that are network or FUSE mounts (statfs f_type), where SQLite's locking
/// is not reliable.
const NETWORK_FILESYSTEMS: &[(i64, &str)] = &[
    (0x6969, "NFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x517B, "SMB"),
    (0x6573_5546, "FUSE"),
    (0x0102_1997, "9P"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x00C3_6400, "CephFS"),
];

pub(super) fn filesystem_kind(path: &Path) -> Option<&'static str> {
    let probe = existing_ancestor(path)?;
    let st = rustix::fs::statfs(probe).ok()?;
    let kind = st.f_type as i64;
    NETWORK_FILESYSTEMS
        .iter()
        .find(|(magic, _)| *magic == kind)
        .map(|(_, name)| *name)
}

fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

pub(super) fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(existing_ancestor(path)?)
        .ok()
        .map(|m| m.dev())
}

pub(super) fn check(d: &mut Doctor<'_>) {
    if !d.can_run("disk", &["VANTUS_DATA_DIR"]) {
        return;
    }
    let Some(dir) = existing_ancestor(&d.config.data_dir) else {
        return;
    };
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return;
    };
    let total = st.f_blocks.saturating_mul(st.f_frsize);
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if total == 0 {
        return;
    }
    let pct = free as f64 * 100.0 / total as f64;
    let gib = free as f64 / (1u64 << 30) as f64;
    let msg = format!("{gib:.1} GiB free ({pct:.0}%) under {}", dir.display());
    let finding = if pct < 5.0 || gib < 1.0 {
        Finding::critical("disk", msg)
            .impact("Writes, backups and SQLite checkpoints will fail soon.")
            .fix("Free space or grow the volume.")
    } else if pct < 15.0 {
        Finding::medium("disk", msg)
            .impact("Little headroom for growth and backups.")
            .fix("Plan more space.")
    } else {
        Finding::ok("disk", msg)
    };
    d.push(finding);
}
