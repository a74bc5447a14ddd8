//! Restore hardening (issue 8): crafted archives are refused before anything is written, with
//! bounded memory, by `restore --force` and by the restore drill alike; the drill never wipes
//! a database; a panicking scheduled job is recorded and runs again.
//!
//! The archives are real backups rewritten with `tar` + `flate2`, the way an attacker (or a
//! buggy tool) would. Peak memory is the `VmHWM` of the `vantus` child process.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vantus::ops::archive::Manifest;
use vantus::ops::generate;
use vantus::store::rows::TableDigest;
use vantus::store::schema::ColumnType;

use crate::both_engines;
use crate::support::{Engine, TestApp, TestDb, base_env, binary, digest_all, eventually, open_db};

/// What a restore of a crafted 1-2 MB archive may use at most.
const MEMORY_LIMIT_KIB: u64 = 100 * 1024;
/// Decompressed size of each bomb: far above the memory limit, quick to generate.
const BOMB_BYTES: u64 = 512 << 20;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `vantus <args>` with exactly `env` and returns its output and its peak resident memory
/// (KiB). The peak is `VmHWM` (the kernel's high-water mark) polled every few milliseconds
/// until the process exits: it only grows, so a read after a spike still sees it.
///
/// The peak is `None` when the process was gone before its status could be read once (a usage
/// error exits within a millisecond). Nothing else can stand in for it: `wait4`'s `ru_maxrss`
/// also counts the memory of the test process that spawned it, which it inherits until `exec`.
fn run_measured(
    args: &[&str],
    env: &HashMap<String, String>,
) -> (std::process::Output, Option<u64>) {
    let mut child = Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vantus runs");
    let status_file = format!("/proc/{}/status", child.id());
    let high_water_mark = || {
        std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    };
    // Read once before anything else, to shorten the window a brief process can slip through.
    let mut peak = high_water_mark();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        peak = peak.max(high_water_mark());
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(3));
    };
    let output = std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, peak)
}

/// Asserts a measured peak is under [`MEMORY_LIMIT_KIB`]. A process too brief to be measured
/// (see [`run_measured`]) had no time to allocate anything near the limit.
fn assert_peak_under_limit(peak_kib: Option<u64>, what: &str) {
    match peak_kib {
        Some(kib) => assert!(kib < MEMORY_LIMIT_KIB, "{what}: peak {kib} KiB"),
        None => eprintln!("{what}: exited before its memory could be read"),
    }
}

fn mib(peak_kib: Option<u64>) -> String {
    peak_kib.map_or_else(
        || "unmeasured".to_owned(),
        |kib| format!("{} MiB", kib / 1024),
    )
}

fn backup_to(dir: &Path, env: &HashMap<String, String>, extra: &[&str]) -> PathBuf {
    let mut args = vec!["backup", "--to", dir.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = crate::support::run_binary(&args, env);
    assert!(o.status.success(), "backup failed: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("backup --json");
    PathBuf::from(report["location"].as_str().unwrap())
}

/// One entry of a rewritten archive. A bomb is generated while it is written, so the test
/// itself never holds it in memory.
enum Body {
    Bytes(Vec<u8>),
    Bomb { prefix: Vec<u8>, fill: u8, len: u64 },
}

struct Entry {
    name: String,
    body: Body,
}

fn entries_of(archive: &Path) -> Vec<Entry> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive).unwrap(),
    ));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Entry {
                name,
                body: Body::Bytes(data),
            }
        })
        .collect()
}

/// Writes entries as a gzip'd tar. Names are put into the header verbatim (the `tar` crate
/// refuses to write `..`, which is exactly what a crafted archive contains).
fn write_archive(dst: &Path, entries: &[Entry]) {
    let out = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(out);
    for e in entries {
        let (size, reader): (u64, Box<dyn Read + '_>) = match &e.body {
            Body::Bytes(b) => (b.len() as u64, Box::new(&b[..])),
            Body::Bomb { prefix, fill, len } => (
                prefix.len() as u64 + len,
                Box::new((&prefix[..]).chain(std::io::repeat(*fill).take(*len))),
            ),
        };
        let mut header = tar::Header::new_gnu();
        let name = e.name.as_bytes();
        assert!(name.len() < 100, "short names only");
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, reader).unwrap();
    }
    builder
        .into_inner()
        .unwrap()
        .finish()
        .unwrap()
        .flush()
        .unwrap();
}

fn manifest_of(entries: &[Entry]) -> Manifest {
    let e = entries.iter().find(|e| e.name == "manifest.json").unwrap();
    let Body::Bytes(b) = &e.body else {
        unreachable!()
    };
    serde_json::from_slice(b).unwrap()
}

fn set_manifest(entries: &mut [Entry], m: &Manifest) {
    let e = entries
        .iter_mut()
        .find(|e| e.name == "manifest.json")
        .unwrap();
    e.body = Body::Bytes(serde_json::to_vec(m).unwrap());
}

/// The entries of `real` with the first one `pick` chooses replaced by a bomb.
fn with_bomb(real: &Path, pick: impl Fn(&str) -> bool, prefix: &[u8], fill: u8) -> Vec<Entry> {
    let mut entries = entries_of(real);
    let target = entries.iter_mut().find(|e| pick(&e.name)).unwrap();
    target.body = Body::Bomb {
        prefix: prefix.to_vec(),
        fill,
        len: BOMB_BYTES,
    };
    entries
}

fn sha256_of_fill(fill: u8, len: u64) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut std::io::repeat(fill).take(len), &mut h).unwrap();
    hex::encode(h.finalize())
}

/// A populated database (with a media file) and a backup of it, taken before the database
/// was changed again: a restore that replaced the rows would show.
struct Populated {
    db: TestDb,
    archive: PathBuf,
    _backups: tempfile::TempDir,
}

async fn populated(engine: Engine) -> Populated {
    let app = TestApp::spawn(engine).await;
    let db = app.server().app.store.primary().clone();
    generate::run(&db, 10, 200).await.unwrap();
    let media = app.db.data_dir().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("photo.bin"), b"a small picture").unwrap();
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &base_env(&app.db), &["--with-media"]);
    // Changed after the backup.
    generate::run(&db, 3, 50).await.unwrap();
    let test_db = app.into_db().await;
    db.close().await;
    Populated {
        db: test_db,
        archive,
        _backups: backups,
    }
}

/// Every table's rows and checksum, without the job journal (a drill journals itself in the
/// application's database, which is the point of it).
async fn rows_of(url: &str) -> BTreeMap<String, (u64, String)> {
    let db = open_db(url).await;
    let mut d = digest_all(&db).await;
    db.close().await;
    d.remove("job_runs");
    d
}

/// The crafted archives, each with a fragment of the error it must be refused with.
fn crafted_archives(real: &Path, dir: &Path) -> Vec<(&'static str, PathBuf, &'static str)> {
    let mut out = Vec::new();
    let mut add = |label: &'static str, expect: &'static str, entries: Vec<Entry>| {
        let path = dir.join(format!("{label}.vbak"));
        write_archive(&path, &entries);
        out.push((label, path, expect));
    };

    // No tables at all, and a manifest that agrees.
    let mut entries = entries_of(real);
    entries.retain(|e| !e.name.starts_with("tables/"));
    let mut m = manifest_of(&entries);
    m.tables.clear();
    set_manifest(&mut entries, &m);
    add("empty-tables", "does not cover every table", entries);

    // One table line of half a gigabyte.
    let entries = with_bomb(real, |n| n.starts_with("tables/"), b"[\"", b'a');
    add("table-line-bomb", "MiB", entries);

    // A manifest of half a gigabyte.
    let entries = with_bomb(real, |n| n == "manifest.json", b"{\"format\": \"", b'a');
    add("manifest-bomb", "MiB", entries);

    // A media file swapped for half a gigabyte of zeros (the manifest still lists the old one).
    let entries = with_bomb(real, |n| n.starts_with("media/"), b"", 0);
    add("media-bomb-mismatch", "differs from the manifest", entries);

    // A media path that climbs out of the media folder, listed in the manifest.
    let mut entries = entries_of(real);
    let pos = entries
        .iter()
        .position(|e| e.name == "manifest.json")
        .unwrap();
    entries.insert(
        pos,
        Entry {
            name: "media/../x".into(),
            body: Body::Bytes(b"escape".to_vec()),
        },
    );
    let mut m = manifest_of(&entries);
    m.media.push(vantus::ops::archive::MediaEntry {
        path: "../x".into(),
        bytes: 6,
        sha256: hex::encode(Sha256::digest(b"escape")),
    });
    set_manifest(&mut entries, &m);
    add("media-dotdot", "media path", entries);

    // A timestamp beyond year 9999 once converted to UTC, with checksums that agree.
    let mut entries = entries_of(real);
    let mut m = manifest_of(&entries);
    let (t, col) = m
        .tables
        .iter_mut()
        .filter(|t| t.rows > 0)
        .find_map(|t| {
            let col = t
                .table
                .columns
                .iter()
                .position(|c| c.ty == ColumnType::Timestamp && !c.nullable)?;
            Some((t, col))
        })
        .expect("a table with a timestamp column and rows");
    let name = format!("tables/{}.ndjson", t.table.name);
    let entry = entries.iter_mut().find(|e| e.name == name).unwrap();
    let Body::Bytes(data) = &entry.body else {
        unreachable!()
    };
    let mut digest = TableDigest::default();
    let mut rewritten = Vec::new();
    for (i, line) in data.split_inclusive(|b| *b == b'\n').enumerate() {
        let mut row: Vec<serde_json::Value> = serde_json::from_slice(line).unwrap();
        if i == 0 {
            row[col] = "9999-12-31T23:59:59.000000-23:59".into();
        }
        let line = digest.add(&row);
        rewritten.extend_from_slice(line.as_bytes());
    }
    entry.body = Body::Bytes(rewritten);
    t.rows = digest.rows;
    t.sha256 = digest.sha256();
    set_manifest(&mut entries, &m);
    add("timestamp-out-of-range", "RFC 3339", entries);

    out
}

async fn crafted_archives_are_refused_before_anything_is_written(engine: Engine) {
    let p = populated(engine).await;
    let work = tempfile::tempdir().unwrap();
    let env = base_env(&p.db);
    for (label, archive, expect) in crafted_archives(&p.archive, work.path()) {
        let size = std::fs::metadata(&archive).unwrap().len();
        assert!(size < 4 << 20, "{label} is a small file ({size} bytes)");
        let before = rows_of(&p.db.url).await;
        for mode in [["restore", "--force"], ["restore", "--verify-only"]] {
            let started = Instant::now();
            let (o, peak_kib) = run_measured(&[mode[0], mode[1], archive.to_str().unwrap()], &env);
            let err = stderr(&o);
            eprintln!(
                "{engine:?} {label} {}: exit {:?}, peak {}, {:.1} s",
                mode[1],
                o.status.code(),
                mib(peak_kib),
                started.elapsed().as_secs_f64()
            );
            assert_eq!(o.status.code(), Some(1), "{label} {}: {err}", mode[1]);
            assert!(err.contains(expect), "{label} {}: {err}", mode[1]);
            assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert_peak_under_limit(peak_kib, &format!("{label} {}", mode[1]));
            assert_eq!(
                rows_of(&p.db.url).await,
                before,
                "{label} {} changed the database",
                mode[1]
            );
        }
        assert!(
            !p.db.data_dir().join("x").exists(),
            "nothing escaped the media folder"
        );
    }
}

/// A genuinely large media file (consistent with its manifest) is streamed: memory stays
/// flat in the drill, which skips media, and in a restore, which writes it to disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_media_file_is_streamed_with_flat_memory() {
    let p = populated(Engine::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let mut entries = with_bomb(&p.archive, |n| n.starts_with("media/"), b"", 0);
    let mut m = manifest_of(&entries);
    m.media[0].bytes = BOMB_BYTES;
    m.media[0].sha256 = sha256_of_fill(0, BOMB_BYTES);
    set_manifest(&mut entries, &m);
    let archive = work.path().join("large-media.vbak");
    write_archive(&archive, &entries);
    let env = base_env(&p.db);

    for mode in ["--verify-only", "--force"] {
        let (o, peak_kib) = run_measured(&["restore", mode, archive.to_str().unwrap()], &env);
        eprintln!("large media {mode}: peak {}", mib(peak_kib));
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        assert!(
            peak_kib.is_some(),
            "streaming 512 MiB takes long enough to be measured"
        );
        assert_peak_under_limit(peak_kib, mode);
    }
    let restored = p.db.data_dir().join("media").join(&m.media[0].path);
    assert_eq!(std::fs::metadata(&restored).unwrap().len(), BOMB_BYTES);
}

/// An age header asking for scrypt work factor 2^20 (1 GiB of memory) is refused before any
/// key derivation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_with_a_high_scrypt_work_factor_is_refused_quickly() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut env = base_env(&app.db);
    env.insert("VANTUS_BACKUP_PASSPHRASE".into(), "correct horse".into());
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &env, &[]);
    app.stop().await;

    let raw = std::fs::read(&archive).unwrap();
    // "-> scrypt <salt> <log N>\n" is the second header line.
    let stanza_start = raw.iter().position(|b| *b == b'\n').unwrap() + 1;
    let stanza_end = stanza_start
        + raw[stanza_start..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap();
    let stanza = std::str::from_utf8(&raw[stanza_start..stanza_end]).unwrap();
    let parts: Vec<&str> = stanza.split(' ').collect();
    assert_eq!(parts[..2], ["->", "scrypt"], "{stanza}");
    let crafted_stanza = format!("-> scrypt {} 20", parts[2]);
    let mut crafted = raw[..stanza_start].to_vec();
    crafted.extend_from_slice(crafted_stanza.as_bytes());
    crafted.extend_from_slice(&raw[stanza_end..]);
    let path = backups.path().join("crafted.vbak");
    std::fs::write(&path, crafted).unwrap();

    let target = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&target);
    env.insert("VANTUS_BACKUP_PASSPHRASE".into(), "correct horse".into());
    let started = Instant::now();
    let (o, peak_kib) = run_measured(&["restore", "--verify-only", path.to_str().unwrap()], &env);
    let elapsed = started.elapsed();
    eprintln!(
        "scrypt 2^20: exit {:?}, peak {}, {:.2} s",
        o.status.code(),
        mib(peak_kib),
        elapsed.as_secs_f64()
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("work factor"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert_peak_under_limit(peak_kib, "scrypt 2^20");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    // Our own archives stay decryptable under the cap.
    let (o, _) = run_measured(
        &["restore", "--verify-only", archive.to_str().unwrap()],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The drill restores only into an empty database: `--force` is a usage error with
/// `--verify-only`, and a `--scratch-url` database with anything in it is refused untouched.
async fn the_drill_never_writes_to_a_database_that_is_not_empty(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let env = base_env(&app.db);
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &env, &[]);
    app.stop().await;

    let scratch = TestDb::create(engine).await;
    let precious = open_db(&scratch.url).await;
    vantus::on_db!(&precious, pool => {
        sqlx::query("CREATE TABLE precious (id BIGINT PRIMARY KEY)").execute(pool).await.unwrap();
        sqlx::query("INSERT INTO precious (id) VALUES (7)").execute(pool).await.unwrap();
    });
    precious.close().await;

    let target = TestDb::create(engine).await;
    let env = base_env(&target);
    let (o, _) = run_measured(
        &[
            "restore",
            "--verify-only",
            "--force",
            "--scratch-url",
            &scratch.url,
            archive.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));

    let (o, _) = run_measured(
        &[
            "restore",
            "--verify-only",
            "--scratch-url",
            &scratch.url,
            archive.to_str().unwrap(),
        ],
        &env,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    let db = open_db(&scratch.url).await;
    assert_eq!(
        crate::support::raw_table_names(&db).await,
        vec!["precious".to_owned()],
        "the scratch database was not migrated or written"
    );
    let kept: i64 = vantus::on_db!(&db, pool => sqlx::query_scalar("SELECT id FROM precious").fetch_one(pool).await.unwrap());
    assert_eq!(kept, 7);
    db.close().await;

    // An empty scratch database is what the drill is for.
    let empty = TestDb::create(engine).await;
    let (o, _) = run_measured(
        &[
            "restore",
            "--verify-only",
            "--scratch-url",
            &empty.url,
            archive.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

both_engines!(
    crafted_archives_are_refused_before_anything_is_written,
    the_drill_never_writes_to_a_database_that_is_not_empty,
);

/// A job that panics on its first run: the run is journalled as failed with the panic's
/// message, and the next tick runs it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_recorded_as_failed_and_runs_again() {
    let test_db = TestDb::create(Engine::Sqlite).await;
    let db = open_db(&test_db.url).await;
    vantus::store::migrate::migrate_to(&db, None).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut scheduler = vantus::jobs::Scheduler::new(db.clone(), "test-instance".into());
    let counter = calls.clone();
    let run: vantus::jobs::JobFn = Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n == 0 {
                panic!("first run goes wrong");
            }
            Ok(format!("run {n} fine").into())
        })
    });
    scheduler.add(
        "panicky",
        vantus::config::Schedule::parse("TEST_SCHEDULE", "* * * * * *").unwrap(),
        run,
    );
    let stop = tokio_util::sync::CancellationToken::new();
    scheduler.spawn(stop.clone());

    let runs = eventually(
        Duration::from_secs(20),
        "a successful run after the panic",
        async || {
            let runs: Vec<(String, Option<String>)> = vantus::on_db!(&db, pool => sqlx::query_as(
                "SELECT outcome, detail FROM job_runs WHERE job = 'panicky' ORDER BY scheduled_for"
            ).fetch_all(pool).await.unwrap());
            if runs.iter().any(|r| r.0 == "succeeded") {
                Ok(runs)
            } else {
                Err(format!("{runs:?}"))
            }
        },
    )
    .await;
    stop.cancel();
    // The next tick may already be running; look at the runs up to the first success.
    let first_success = runs.iter().position(|r| r.0 == "succeeded").unwrap();
    let runs = &runs[..=first_success];
    assert_eq!(runs[0].0, "failed", "{runs:?}");
    assert!(
        runs[0]
            .1
            .as_deref()
            .unwrap_or("")
            .contains("first run goes wrong"),
        "{runs:?}"
    );
    assert!(
        runs[..first_success].iter().all(|r| r.0 == "failed"),
        "no run left running: {runs:?}"
    );
    assert!(calls.load(Ordering::SeqCst) >= 2);
    db.close().await;
}
