//! The backup archive: a format Vantus owns, readable with standard tools.
//!
//! A `.vbak` file is a tar stream, gzip-compressed, optionally encrypted with age (passphrase
//! mode) as the outermost layer. Inside:
//! * `tables/<name>.ndjson`: one JSON array per row in primary-key order, in the engine-neutral
//!   encoding of [`crate::store::rows`], tables in dependency order;
//! * `media/<path>`: uploaded files, when asked for;
//! * `manifest.json`, last: format version, app and schema version, engine, creation time, the
//!   audit chain's head, and per table its columns, row count and SHA-256 (per media file its
//!   size and SHA-256).
//!
//! So an operator without Vantus can still `tar xzf` an unencrypted archive and read the data
//! with `jq`. Tables are spooled to a temporary file while they are read (the tar header needs
//! the size first), so memory stays flat however large the data set.
//!
//! Reading is bounded too, whatever a (possibly crafted) archive holds: the manifest, a row
//! line and an entry name each have a size limit, media bodies are streamed, and only the
//! entries a backup writes are accepted (see [`verify`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::ChainHead;
use crate::store::rows::{self, Row, TableDigest};
use crate::store::schema::{self, Table};

pub const FORMAT: &str = "vantus-backup";
pub const FORMAT_VERSION: u32 = 1;
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Largest `manifest.json` read. It lists every table (columns, row count, checksum) and every
/// media file (about 120 bytes of JSON each): 16 MiB describes well over 100 000 media files.
/// A larger one is refused before it is read.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Longest row line (one JSON array, newline included) written or read. The largest
/// legitimate rows are content bodies (Markdown pages; edits through the site are capped by
/// the 64 KiB request body limit) and audit details (small JSON objects): kilobytes. 16 MiB
/// leaves room for any page imported by hand, and bounds what a crafted line can make a
/// restore hold.
pub const MAX_ROW_LINE_BYTES: usize = 16 << 20;

/// Longest entry name (a GNU long-name record is read into memory).
const MAX_ENTRY_NAME_BYTES: u64 = 4096;

/// Most entries an archive may hold: every table and media file has its own entry in the
/// manifest, of at least 100 bytes, so a manifest within its limit cannot list more.
const MAX_ENTRIES: usize = (MAX_MANIFEST_BYTES / 100) as usize;

/// Lines per batch of rows handed to a restore, in bytes (besides `rows::batch_size` rows):
/// a thousand rows of the largest size would otherwise be gigabytes.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// scrypt work factor (log2 N) of the archives we write: 2^18 uses 256 MiB and about a second,
/// age's usual choice. Pinned, so every archive we write stays under [`MAX_SCRYPT_WORK_FACTOR`].
pub const SCRYPT_WORK_FACTOR: u8 = 18;

/// Highest scrypt work factor accepted when decrypting: 2^19, 512 MiB. The factor is in the
/// (unauthenticated) age header, and scrypt needs 1 KiB of memory per unit of N, so a crafted
/// header could otherwise ask for many gigabytes before the passphrase is even checked.
pub const MAX_SCRYPT_WORK_FACTOR: u8 = SCRYPT_WORK_FACTOR + 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub app_version: String,
    pub created_at: String,
    pub engine: String,
    /// Highest migration applied to the source; a restore target is migrated to match.
    pub schema_version: i64,
    /// The newest row of the audit log's hash chain when the backup was taken (none for an
    /// empty chain, or an archive older than the chain): an anchor outside the database, so
    /// rows removed from the end of the chain later are noticed (docs/operations/audit-log.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<ChainHead>,
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
    #[error(
        "refusing to decrypt the archive: its scrypt work factor 2^{required} is above the limit of 2^{MAX_SCRYPT_WORK_FACTOR} (Vantus writes 2^{SCRYPT_WORK_FACTOR}; a crafted or foreign file)"
    )]
    WorkFactor { required: u8 },
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
    /// Appends a row. A row too long for a restore to read back is refused here, so no
    /// backup is written that could not be restored.
    pub fn push(&mut self, row: &Row) -> io::Result<()> {
        // On error the backup is abandoned, so the digest having counted the row is moot.
        let line = self.digest.add(row);
        if line.len() > MAX_ROW_LINE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a row of {} MiB is longer than the {} MiB a restore reads",
                    line.len() >> 20,
                    MAX_ROW_LINE_BYTES >> 20
                ),
            ));
        }
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
                let mut recipient = age::scrypt::Recipient::new(age::secrecy::SecretString::from(
                    p.expose_secret().to_owned(),
                ));
                recipient.set_work_factor(SCRYPT_WORK_FACTOR);
                let enc = age::Encryptor::with_recipients(std::iter::once(
                    &recipient as &dyn age::Recipient,
                ))
                .map_err(|e| ArchiveError::Io {
                    path: path.display().to_string(),
                    source: io::Error::other(e.to_string()),
                })?;
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
        let mut identity = age::scrypt::Identity::new(age::secrecy::SecretString::from(
            p.expose_secret().to_owned(),
        ));
        // age's own cap follows this machine's speed (2^22 and more: gigabytes of memory);
        // the header is attacker-controlled, so the cap is ours.
        identity.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
        let reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::ExcessiveWork { required, .. } => {
                    ArchiveError::WorkFactor { required }
                }
                other => ArchiveError::Decrypt(other.to_string()),
            })?;
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

fn mismatch(problem: impl Into<String>) -> ArchiveError {
    ArchiveError::Mismatch(problem.into())
}

/// What an entry's name says it is. Nothing else may be in an archive.
enum EntryKind {
    Manifest,
    Table(String),
    Media(String),
}

fn classify(name: &[u8]) -> Result<EntryKind, ArchiveError> {
    let Ok(name) = std::str::from_utf8(name) else {
        return Err(mismatch(format!(
            "unexpected entry {:?} (not UTF-8)",
            String::from_utf8_lossy(name)
        )));
    };
    if name == "manifest.json" {
        return Ok(EntryKind::Manifest);
    }
    if let Some(table) = name.strip_prefix("tables/") {
        // Table names become SQL identifiers: only the plain ones a backup can produce.
        if let Some(table) = table.strip_suffix(".ndjson")
            && schema::is_identifier(table)
        {
            return Ok(EntryKind::Table(table.to_owned()));
        }
    } else if let Some(media) = name.strip_prefix("media/") {
        check_media_path(media)?;
        return Ok(EntryKind::Media(media.to_owned()));
    }
    Err(mismatch(format!("unexpected entry {name:?}")))
}

/// A media path is joined to the media folder on restore: it must stay inside it.
pub fn check_media_path(relative: &str) -> Result<(), ArchiveError> {
    let plain = !relative.contains('\0')
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if plain {
        Ok(())
    } else {
        Err(mismatch(format!(
            "media path {relative:?} is not a plain relative path"
        )))
    }
}

/// Visits every file entry in order, with memory bounded whatever the stream holds.
///
/// The tar crate reads GNU long names and PAX headers whole into memory, so entries are read
/// raw and long names taken here, within [`MAX_ENTRY_NAME_BYTES`]. Links, directories,
/// devices and extension headers are nothing a backup writes: they are refused. Entries the
/// visitor does not read are skipped. Returns the stream, positioned after the tar end marker.
fn walk<R: Read, E: From<ArchiveError>>(
    reader: R,
    mut visit: impl FnMut(EntryKind, u64, &mut dyn Read) -> Result<(), E>,
) -> Result<R, E> {
    let mut archive = tar::Archive::new(reader);
    let mut long_name: Option<Vec<u8>> = None;
    let mut files = 0usize;
    for entry in archive.entries().map_err(damaged)?.raw(true) {
        let mut entry = entry.map_err(damaged)?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() {
            if long_name.is_some() || entry.size() > MAX_ENTRY_NAME_BYTES {
                return Err(mismatch(format!(
                    "an entry name is longer than the {MAX_ENTRY_NAME_BYTES}-byte limit"
                ))
                .into());
            }
            let mut name = Vec::new();
            entry.read_to_end(&mut name).map_err(damaged)?;
            while name.last() == Some(&0) {
                name.pop();
            }
            long_name = Some(name);
            continue;
        }
        let name = long_name
            .take()
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        if !kind.is_file() {
            return Err(mismatch(format!(
                "unexpected entry {:?} (not a regular file)",
                String::from_utf8_lossy(&name)
            ))
            .into());
        }
        files += 1;
        if files > MAX_ENTRIES {
            return Err(mismatch(format!(
                "more than {MAX_ENTRIES} entries, more than any manifest within its limit lists"
            ))
            .into());
        }
        let what = classify(&name)?;
        let size = entry.size();
        visit(what, size, &mut entry)?;
    }
    Ok(archive.into_inner())
}

fn read_manifest(size: u64, body: &mut dyn Read) -> Result<Manifest, ArchiveError> {
    let too_large = || {
        mismatch(format!(
            "manifest.json is larger than the {} MiB limit",
            MAX_MANIFEST_BYTES >> 20
        ))
    };
    if size > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let mut json = Vec::new();
    body.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(damaged)?;
    if json.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    serde_json::from_slice(&json)
        .map_err(|e| mismatch(format!("manifest.json is not readable: {e}")))
}

/// Hands every line of a table entry (with its newline) to `each`; a line longer than
/// [`MAX_ROW_LINE_BYTES`] is refused before more of it than that is held.
fn for_each_line<E: From<ArchiveError>>(
    table: &str,
    body: &mut dyn Read,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut lines = BufReader::with_capacity(1 << 16, body);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_ROW_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(damaged)?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_ROW_LINE_BYTES {
            return Err(row_too_long(table).into());
        }
        each(&line)?;
    }
}

fn row_too_long(table: &str) -> ArchiveError {
    mismatch(format!(
        "table {table}: a row is longer than the {} MiB limit",
        MAX_ROW_LINE_BYTES >> 20
    ))
}

/// Reads the whole archive once, checking every checksum against the manifest, and returns
/// the manifest. Nothing is written anywhere: this is the check that runs before a restore
/// touches a database, so every entry name and media path is checked here too.
pub fn verify(path: &Path, passphrase: Option<&SecretString>) -> Result<Manifest, ArchiveError> {
    let reader = open(path, passphrase)?;
    let mut scan = Scan {
        manifest: None,
        tables: Vec::new(),
        media: Vec::new(),
    };
    let mut rest = walk(reader, |kind, size, body| {
        if scan.manifest.is_some() {
            return Err(mismatch("manifest.json is not the last entry"));
        }
        match kind {
            EntryKind::Manifest => scan.manifest = Some(read_manifest(size, body)?),
            EntryKind::Table(table) => {
                let mut digest = TableDigest::default();
                for_each_line(&table, body, |line| {
                    digest.add_line(line);
                    Ok::<_, ArchiveError>(())
                })?;
                scan.tables.push((table, digest));
            }
            EntryKind::Media(media) => {
                let mut h = Sha256::new();
                let n = io::copy(body, &mut h).map_err(damaged)?;
                scan.media.push((media, n, hex::encode(h.finalize())));
            }
        }
        Ok(())
    })?;
    // Read past the tar end marker to the end of the stream, so gzip checks its CRC and
    // length trailer (and age its final authentication tag).
    io::copy(&mut rest, &mut io::sink()).map_err(damaged)?;
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

/// Rows of one table, in archive order.
pub struct RowBatch {
    pub table: String,
    pub rows: Vec<Row>,
}

/// Reads the rows of a verified archive, handing batches to `each`; media bodies are skipped
/// unread. A batch holds at most `rows::batch_size` rows and about [`MAX_BATCH_BYTES`] of
/// lines, and each row at most as many values as its table has columns in the manifest.
/// Blocking: call from a blocking thread.
pub fn read_rows<E: From<ArchiveError>>(
    path: &Path,
    passphrase: Option<&SecretString>,
    manifest: &Manifest,
    mut each: impl FnMut(RowBatch) -> Result<(), E>,
) -> Result<(), E> {
    let reader = open(path, passphrase)?;
    walk(reader, |kind, _, body| {
        let EntryKind::Table(table) = kind else {
            return Ok(());
        };
        let entry = manifest
            .tables
            .iter()
            .find(|t| t.table.name == table)
            .ok_or_else(|| mismatch(format!("table {table} is not in the manifest")))?;
        let columns = entry.table.columns.len();
        let size = rows::batch_size(columns);
        let mut batch = Vec::with_capacity(size);
        let mut batch_bytes = 0;
        for_each_line(&table, body, |line| {
            batch.push(parse_row(&table, line, columns)?);
            batch_bytes += line.len();
            if batch.len() == size || batch_bytes >= MAX_BATCH_BYTES {
                batch_bytes = 0;
                each(RowBatch {
                    table: table.clone(),
                    rows: std::mem::take(&mut batch),
                })?;
            }
            Ok::<(), E>(())
        })?;
        each(RowBatch {
            table: table.clone(),
            rows: batch,
        })
    })?;
    Ok(())
}

/// Reads the media files of a verified archive in order, handing each (relative path, size,
/// body) to `each` to stream wherever it goes; tables are skipped. Blocking.
pub fn read_media<E: From<ArchiveError>>(
    path: &Path,
    passphrase: Option<&SecretString>,
    mut each: impl FnMut(&str, u64, &mut dyn Read) -> Result<(), E>,
) -> Result<(), E> {
    let reader = open(path, passphrase)?;
    walk(reader, |kind, size, body| match kind {
        EntryKind::Media(media) => each(&media, size, body),
        _ => Ok(()),
    })?;
    Ok(())
}

/// Parses one row line. Row values are scalars (see [`crate::store::rows`]), at most one per
/// column: refusing anything else while parsing keeps a crafted line of small values from
/// growing into far more memory than its bytes as a JSON tree.
fn parse_row(table: &str, line: &[u8], columns: usize) -> Result<Row, ArchiveError> {
    use serde::de::DeserializeSeed;
    let unreadable = |e: serde_json::Error| mismatch(format!("table {table}: unreadable row: {e}"));
    let mut de = serde_json::Deserializer::from_slice(line);
    let row = RowSeed { columns }
        .deserialize(&mut de)
        .map_err(unreadable)?;
    de.end().map_err(unreadable)?;
    Ok(row)
}

struct RowSeed {
    columns: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed {
    type Value = Row;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed {
    type Value = Row;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of at most {} values", self.columns)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
        let mut row = Vec::with_capacity(self.columns);
        while let Some(Scalar(v)) = seq.next_element()? {
            if row.len() == self.columns {
                return Err(serde::de::Error::custom(format!(
                    "more values than the table's {} columns",
                    self.columns
                )));
            }
            row.push(v);
        }
        Ok(row)
    }
}

/// A JSON null, boolean, number or string; arrays and objects are refused.
struct Scalar(serde_json::Value);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl serde::de::Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("null, a boolean, a number or a string")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar(serde_json::Value::Null))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar(v.into()))
    }
}
