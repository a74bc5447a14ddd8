//! Where backups live: a local folder or an S3-compatible bucket.
//!
//! Archives are always produced as a local file first (in the folder itself, or in a temporary
//! folder for S3) and uploaded when complete, so a half-written archive is never visible under
//! its final name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::OpsError;
use crate::config::{BackupLocation, S3Config};

/// Backups are named `vantus-<UTC timestamp to the millisecond>.vbak`; names sort by time.
pub const PREFIX: &str = "vantus-";
pub const SUFFIX: &str = ".vbak";

pub fn archive_name(at: time::OffsetDateTime) -> String {
    let stamp = at
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .expect("UTC time formats");
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// The time a backup name carries, if it is one of ours.
pub fn time_of(name: &str) -> Option<time::PrimitiveDateTime> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    time::PrimitiveDateTime::parse(
        stamp,
        time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ),
    )
    .or_else(|_| {
        time::PrimitiveDateTime::parse(
            stamp,
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
        )
    })
    .ok()
}

pub enum Destination {
    Local(PathBuf),
    S3 {
        store: Arc<dyn ObjectStore>,
        bucket: String,
        prefix: String,
    },
}

/// Builds an S3 client from the `S3_*` settings (see [`crate::media::storage::s3_client`]).
pub fn s3_store(cfg: &S3Config, bucket: &str) -> Result<Arc<dyn ObjectStore>, OpsError> {
    crate::media::storage::s3_client(cfg, bucket).map_err(OpsError::Config)
}

impl Destination {
    pub fn open(location: &BackupLocation, s3: &S3Config) -> Result<Self, OpsError> {
        Ok(match location {
            BackupLocation::Local(p) => Destination::Local(p.clone()),
            BackupLocation::S3 { bucket, prefix } => Destination::S3 {
                store: s3_store(s3, bucket)?,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        })
    }

    pub fn describe(&self, name: &str) -> String {
        match self {
            Destination::Local(dir) => dir.join(name).display().to_string(),
            Destination::S3 { bucket, prefix, .. } => {
                format!("s3://{bucket}/{}", object_key(prefix, name))
            }
        }
    }

    /// The folder to write the archive into before it is stored: the destination folder
    /// itself, or (for S3) the caller's scratch folder.
    pub fn staging_dir(&self, scratch: &Path) -> Result<PathBuf, OpsError> {
        match self {
            Destination::Local(dir) => {
                crate::secrets::create_private_dir_all(dir).map_err(|e| OpsError::io(dir, e))?;
                Ok(dir.clone())
            }
            Destination::S3 { .. } => Ok(scratch.to_owned()),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Destination::Local(_))
    }

    /// Moves a finished archive to its final place.
    pub async fn store(&self, local: &Path, name: &str) -> Result<(), OpsError> {
        match self {
            Destination::Local(_) => Ok(()),
            Destination::S3 { store, prefix, .. } => {
                let key = ObjectPath::from(object_key(prefix, name));
                let upload = store
                    .put_multipart(&key)
                    .await
                    .map_err(|e| OpsError::Storage(format!("{}: {e}", self.describe(name))))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
                let mut file = tokio::fs::File::open(local)
                    .await
                    .map_err(|e| OpsError::io(local, e))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file
                        .read(&mut buf)
                        .await
                        .map_err(|e| OpsError::io(local, e))?;
                    if n == 0 {
                        break;
                    }
                    writer
                        .wait_for_capacity(4)
                        .await
                        .map_err(|e| OpsError::Storage(e.to_string()))?;
                    writer.write(&buf[..n]);
                }
                writer
                    .finish()
                    .await
                    .map_err(|e| OpsError::Storage(format!("{}: {e}", self.describe(name))))?;
                Ok(())
            }
        }
    }

    /// Names of the backups present, oldest first.
    pub async fn list(&self) -> Result<Vec<String>, OpsError> {
        let mut names = match self {
            Destination::Local(dir) => match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(OpsError::io(dir, e)),
            },
            Destination::S3 { store, prefix, .. } => {
                let p = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                store
                    .list(p.as_ref())
                    .map_ok(|m| m.location.filename().unwrap_or_default().to_owned())
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| OpsError::Storage(e.to_string()))?
            }
        };
        names.retain(|n| time_of(n).is_some());
        names.sort();
        Ok(names)
    }

    pub async fn delete(&self, name: &str) -> Result<(), OpsError> {
        match self {
            Destination::Local(dir) => {
                let path = dir.join(name);
                std::fs::remove_file(&path).map_err(|e| OpsError::io(&path, e))?;
                let _ = std::fs::remove_file(dir.join(format!("{name}.sha256")));
                Ok(())
            }
            Destination::S3 { store, prefix, .. } => store
                .delete(&ObjectPath::from(object_key(prefix, name)))
                .await
                .map_err(|e| OpsError::Storage(e.to_string())),
        }
    }

    /// A local path for `name`: the file itself, or a download into `scratch`.
    pub async fn fetch(&self, name: &str, scratch: &Path) -> Result<PathBuf, OpsError> {
        match self {
            Destination::Local(dir) => Ok(dir.join(name)),
            Destination::S3 { store, prefix, .. } => {
                let key = ObjectPath::from(object_key(prefix, name));
                let target = scratch.join(name);
                download(store.as_ref(), &key, &target).await?;
                Ok(target)
            }
        }
    }

    /// Proves the destination answers (doctor, start-up checks).
    pub async fn probe(&self) -> Result<(), OpsError> {
        match self {
            Destination::Local(dir) => {
                if dir.exists() && !dir.is_dir() {
                    return Err(OpsError::Storage(format!(
                        "{} is not a folder",
                        dir.display()
                    )));
                }
                Ok(())
            }
            Destination::S3 { store, prefix, .. } => {
                let p = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let mut stream = store.list(p.as_ref());
                match stream.next().await {
                    None | Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(OpsError::Storage(e.to_string())),
                }
            }
        }
    }
}

fn object_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

async fn download(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    target: &Path,
) -> Result<(), OpsError> {
    let result = store
        .get(key)
        .await
        .map_err(|e| OpsError::Storage(format!("{key}: {e}")))?;
    let mut stream = result.into_stream();
    // A downloaded archive may be unencrypted: owner-only, like every file Vantus writes.
    let mut file = tokio::fs::OpenOptions::from(crate::secrets::private_new_file())
        .open(target)
        .await
        .map_err(|e| OpsError::io(target, e))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| OpsError::Storage(e.to_string()))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| OpsError::io(target, e))?;
    }
    file.sync_all().await.map_err(|e| OpsError::io(target, e))?;
    Ok(())
}

/// Resolves a restore argument: a local file, or `s3://bucket/key` (downloaded into `scratch`).
pub async fn fetch_archive(arg: &str, s3: &S3Config, scratch: &Path) -> Result<PathBuf, OpsError> {
    if let Some(rest) = arg.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').ok_or_else(|| {
            OpsError::Usage(format!(
                "{arg} names no object; use s3://bucket/path/vantus-<time>.vbak"
            ))
        })?;
        let store = s3_store(s3, bucket)?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let target = scratch.join(name);
        download(store.as_ref(), &ObjectPath::from(key), &target).await?;
        return Ok(target);
    }
    let path = PathBuf::from(arg);
    if !path.is_file() {
        return Err(OpsError::Usage(format!("{arg} is not a file")));
    }
    Ok(path)
}
