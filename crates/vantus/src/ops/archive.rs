//! The backup archive: a format Vantus owns, readable with standard tools.
//!
//! A `.vbak` file is a tar stream, gzip-compressed, optionally encrypted with age (passphrase
//! mode) as the outermost layer. Inside:
//! * `tables/<name>.ndjson`: one JSON array per row in primary-key order, in the engine-neutral
//!   encoding of [`crate::store::rows`], tables in dependency order;
//! * `media/<path>`: uploaded files, when asked for;
//! * `manifest.json`, last: format version, app and schema version, engine, creation time, and
//!   per table its columns, row count and SHA-256 (per media file its size and SHA-256).
//!
//! So an operator without Vantus can still `tar xzf` an unencrypted archive and read the data
//! with `jq`. Tables are spooled to a temporary file while they are read (the tar header needs
//! the size first), so memory stays flat however large the data set.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::rows::{Row, TableDigest};
use crate::store::schema::Table;

pub const FORMAT: &str = "vantus-backup";
pub const FORMAT_VERSION: u32 = 1;
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub app_version: String,
    pub created_at: String,
    pub engine: String,
    /// Highest migration applied to the source; a restore target is migrated to match.
    pub schema_version: i64,
    pub tables: Vec<TableEntry>,
    #[serde(default)]
    pub media: Vec<MediaEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    #[serde(flatten)]
    pub table: Table,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the archive is encrypted: set VANTUS_BACKUP_PASSPHRASE (or VANTUS_BACKUP_PASSPHRASE_FILE)"
    )]
    PassphraseNeeded,
    #[error("cannot decrypt the archive: {0} (wrong passphrase, or not a Vantus backup)")]
    Decrypt(String),
    #[error("not a Vantus backup: {0}")]
    NotAnArchive(String),
    #[error("the archive is damaged (corrupted or truncated): {0}")]
    Damaged(String),
    #[error("the archive does not match its manifest: {0}")]
    Mismatch(String),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Streams a new archive to a file.
pub struct ArchiveWriter {
    path: PathBuf,
    tar: tar::Builder<Sink>,
    spool_dir: tempfile::TempDir,
    tables: Vec<TableEntry>,
    media: Vec<MediaEntry>,
}

/// gzip over a buffered file, or gzip over age over a buffered file.
enum Sink {
    Plain(flate2::write::GzEncoder<BufWriter<File>>),
    Encrypted(flate2::write::GzEncoder<age::stream::StreamWriter<BufWriter<File>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Encrypted(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Encrypted(w) => w.flush(),
        }
    }
}

impl Sink {
    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Plain(gz) => gz
                .finish()?
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all(),
            Sink::Encrypted(gz) => gz
                .finish()?
                .finish()?
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all(),
        }
    }
}

/// A table being written: lines go to a temporary file while their checksum is taken.
pub struct TableSpool {
    file: BufWriter<File>,
    path: PathBuf,
    digest: TableDigest,
}

impl TableSpool {
    pub fn push(&mut self, row: &Row) -> io::Result<()> {
        let line = self.digest.add(row);
        self.file.write_all(line.as_bytes())
    }

    pub fn rows(&self) -> u64 {
        self.digest.rows
    }
}

impl ArchiveWriter {
    /// Creates `path` owner-only (failing if it exists, symlinks included: backups are never
    /// overwritten). Tables are spooled in plaintext under `spool_in`: a private folder, never
    /// the destination.
    pub fn create(
        path: &Path,
        passphrase: Option<&SecretString>,
        spool_in: &Path,
    ) -> Result<Self, ArchiveError> {
        let file = crate::secrets::private_new_file()
            .open(path)
            .map_err(io_err(path))?;
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let level = flate2::Compression::new(6);
        let sink = match passphrase {
            None => Sink::Plain(flate2::write::GzEncoder::new(buffered, level)),
            Some(p) => {
                let enc = age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(
                    p.expose_secret().to_owned(),
                ));
                let stream = enc.wrap_output(buffered).map_err(io_err(path))?;
                Sink::Encrypted(flate2::write::GzEncoder::new(stream, level))
            }
        };
        let spool_dir = tempfile::Builder::new()
            .prefix("spool-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(spool_in)
            .map_err(io_err(spool_in))?;
        let mut tar = tar::Builder::new(sink);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(Self {
            path: path.to_owned(),
            tar,
            spool_dir,
            tables: Vec::new(),
            media: Vec::new(),
        })
    }

    pub fn spool(&self, table: &Table) -> Result<TableSpool, ArchiveError> {
        let path = self.spool_dir.path().join(format!("{}.ndjson", table.name));
        let file = crate::secrets::private_new_file()
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(TableSpool {
            file: BufWriter::with_capacity(1 << 20, file),
            path,
            digest: TableDigest::default(),
        })
    }

    /// Appends a finished table spool.
    pub fn add_table(&mut self, table: Table, spool: TableSpool) -> Result<(), ArchiveError> {
        let TableSpool { file, path, digest } = spool;
        file.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(io_err(&path))?;
        let name = format!("tables/{}.ndjson", table.name);
        self.append_file(&name, &path)?;
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        self.tables.push(TableEntry {
            table,
            rows: digest.rows,
            sha256: digest.sha256(),
        });
        Ok(())
    }

    /// Appends a media file under `media/<relative>`.
    pub fn add_media(&mut self, relative: &str, file: &Path) -> Result<(), ArchiveError> {
        let (bytes, sha256) = hash_file(file)?;
        self.append_file(&format!("media/{relative}"), file)?;
        self.media.push(MediaEntry {
            path: relative.to_owned(),
            bytes,
            sha256,
        });
        Ok(())
    }

    fn append_file(&mut self, name: &str, file: &Path) -> Result<(), ArchiveError> {
        let mut f = File::open(file).map_err(io_err(file))?;
        self.tar
            .append_file(name, &mut f)
            .map_err(io_err(&self.path))
    }

    /// Writes the manifest, closes every layer and syncs the file. Returns the manifest.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, ArchiveError> {
        manifest.tables = std::mem::take(&mut self.tables);
        manifest.media = std::mem::take(&mut self.media);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        self.tar
            .append_data(&mut header, "manifest.json", &json[..])
            .map_err(io_err(&self.path))?;
        // gzip and age both need an explicit finish to write their trailers.
        let sink = self.tar.into_inner().map_err(io_err(&self.path))?;
        sink.finish().map_err(io_err(&self.path))?;
        Ok(manifest)
    }
}

fn hash_file(path: &Path) -> Result<(u64, String), ArchiveError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let n = io::copy(&mut f, &mut h).map_err(io_err(path))?;
    Ok((n, hex::encode(h.finalize())))
}

/// Opens an archive for reading: detects encryption, decrypts, decompresses.
pub fn open(
    path: &Path,
    passphrase: Option<&SecretString>,
) -> Result<Box<dyn Read + Send>, ArchiveError> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(path))?);
    let head = file.fill_buf().map_err(io_err(path))?.to_vec();
    if head.starts_with(AGE_MAGIC) {
        let Some(p) = passphrase else {
            return Err(ArchiveError::PassphraseNeeded);
        };
        let decryptor =
            age::Decryptor::new_buffered(file).map_err(|e| ArchiveError::Decrypt(e.to_string()))?;
        let identity = age::scrypt::Identity::new(age::secrecy::SecretString::from(
            p.expose_secret().to_owned(),
        ));
        let reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| ArchiveError::Decrypt(e.to_string()))?;
        Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(
            reader,
        ))))
    } else if head.starts_with(GZIP_MAGIC) {
        Ok(Box::new(flate2::read::GzDecoder::new(file)))
    } else if head.is_empty() {
        Err(ArchiveError::NotAnArchive(format!(
            "{} is empty",
            path.display()
        )))
    } else {
        Err(ArchiveError::NotAnArchive(format!(
            "{} is neither a gzip nor an age-encrypted file",
            path.display()
        )))
    }
}

/// What one pass over an archive found.
struct Scan {
    manifest: Option<Manifest>,
    tables: Vec<(String, TableDigest)>,
    media: Vec<(String, u64, String)>,
}

fn damaged(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Damaged(e.to_string())
}

/// Reads the whole archive once, checking every checksum against the manifest, and returns
/// the manifest. Nothing is written anywhere: this is the check that runs before a restore
/// touches a database.
pub fn verify(path: &Path, passphrase: Option<&SecretString>) -> Result<Manifest, ArchiveError> {
    let reader = open(path, passphrase)?;
    let mut scan = Scan {
        manifest: None,
        tables: Vec::new(),
        media: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let name = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        if name == "manifest.json" {
            let mut json = Vec::new();
            entry.read_to_end(&mut json).map_err(damaged)?;
            let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| {
                ArchiveError::Mismatch(format!("manifest.json is not readable: {e}"))
            })?;
            scan.manifest = Some(manifest);
        } else if let Some(table) = name
            .strip_prefix("tables/")
            .and_then(|n| n.strip_suffix(".ndjson"))
        {
            let mut digest = TableDigest::default();
            let mut lines = BufReader::with_capacity(1 << 16, &mut entry);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = lines.read_until(b'\n', &mut line).map_err(damaged)?;
                if n == 0 {
                    break;
                }
                digest.add_line(&line);
            }
            scan.tables.push((table.to_owned(), digest));
        } else if let Some(media) = name.strip_prefix("media/") {
            let mut h = Sha256::new();
            let n = io::copy(&mut entry, &mut h).map_err(damaged)?;
            scan.media
                .push((media.to_owned(), n, hex::encode(h.finalize())));
        } else {
            return Err(ArchiveError::Mismatch(format!("unexpected entry {name}")));
        }
    }
    // Read past the tar end marker to the end of the stream, so gzip checks its CRC and
    // length trailer (and age its final authentication tag).
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(damaged)?;
    check_against_manifest(scan)
}

fn check_against_manifest(scan: Scan) -> Result<Manifest, ArchiveError> {
    let manifest = scan.manifest.ok_or_else(|| {
        ArchiveError::Damaged("manifest.json is missing (the archive is incomplete)".into())
    })?;
    if manifest.format != FORMAT {
        return Err(ArchiveError::NotAnArchive(format!(
            "format is {:?}",
            manifest.format
        )));
    }
    if manifest.format_version > FORMAT_VERSION {
        return Err(ArchiveError::Mismatch(format!(
            "format version {} is newer than this release reads ({FORMAT_VERSION}); use a newer vantus",
            manifest.format_version
        )));
    }
    if scan.tables.len() != manifest.tables.len() {
        return Err(ArchiveError::Mismatch(format!(
            "{} tables in the archive, {} in the manifest",
            scan.tables.len(),
            manifest.tables.len()
        )));
    }
    for (entry, (name, digest)) in manifest.tables.iter().zip(&scan.tables) {
        if &entry.table.name != name {
            return Err(ArchiveError::Mismatch(format!(
                "table {name} found where the manifest lists {}",
                entry.table.name
            )));
        }
        if entry.rows != digest.rows {
            return Err(ArchiveError::Mismatch(format!(
                "table {name}: {} rows, the manifest says {}",
                digest.rows, entry.rows
            )));
        }
        if entry.sha256 != digest.sha256() {
            return Err(ArchiveError::Mismatch(format!(
                "table {name}: checksum {} differs from the manifest's {}",
                digest.sha256(),
                entry.sha256
            )));
        }
    }
    if scan.media.len() != manifest.media.len() {
        return Err(ArchiveError::Mismatch(format!(
            "{} media files in the archive, {} in the manifest",
            scan.media.len(),
            manifest.media.len()
        )));
    }
    for (entry, (path, bytes, sha)) in manifest.media.iter().zip(&scan.media) {
        if &entry.path != path || entry.bytes != *bytes || &entry.sha256 != sha {
            return Err(ArchiveError::Mismatch(format!(
                "media file {path} differs from the manifest"
            )));
        }
    }
    Ok(manifest)
}

/// One item of a sequential read of a verified archive.
pub enum Item {
    /// Rows of `table`, at most `batch` at a time, in archive order.
    Rows {
        table: String,
        rows: Vec<Row>,
    },
    Media {
        path: String,
        bytes: Vec<u8>,
    },
}

/// Reads the archive's tables (and media) in order, handing batches of parsed rows to `each`.
/// Blocking: call from a blocking thread.
pub fn read_items(
    path: &Path,
    passphrase: Option<&SecretString>,
    batch: impl Fn(&str) -> usize,
    mut each: impl FnMut(Item) -> Result<(), String>,
) -> Result<(), ArchiveError> {
    let reader = open(path, passphrase)?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let name = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        if let Some(table) = name
            .strip_prefix("tables/")
            .and_then(|n| n.strip_suffix(".ndjson"))
        {
            let size = batch(table).max(1);
            let mut rows = Vec::with_capacity(size);
            for line in BufReader::with_capacity(1 << 16, &mut entry).lines() {
                let line = line.map_err(damaged)?;
                let row: Row = serde_json::from_str(&line).map_err(|e| {
                    ArchiveError::Mismatch(format!("table {table}: unreadable row: {e}"))
                })?;
                rows.push(row);
                if rows.len() == size {
                    each(Item::Rows {
                        table: table.to_owned(),
                        rows: std::mem::take(&mut rows),
                    })
                    .map_err(ArchiveError::Mismatch)?;
                }
            }
            each(Item::Rows {
                table: table.to_owned(),
                rows,
            })
            .map_err(ArchiveError::Mismatch)?;
        } else if let Some(media) = name.strip_prefix("media/") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(damaged)?;
            each(Item::Media {
                path: media.to_owned(),
                bytes,
            })
            .map_err(ArchiveError::Mismatch)?;
        }
    }
    Ok(())
}
