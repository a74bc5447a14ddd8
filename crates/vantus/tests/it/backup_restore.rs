//! Backup and restore, for real: data written through the app's own code paths plus a
//! generated bulk set, backed up, the database wiped, restored with the `vantus` binary, and
//! compared table by table; damaged and encrypted archives; `--force`; media; S3.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use vantus::audit::{self, Actor, AuditAction};
use vantus::content::{self, ContentKind};
use vantus::jobs::{self, Outcome};
use vantus::ops::archive::Manifest;
use vantus::ops::generate;
use vantus::store::{Timestamp, schema};

use crate::both_engines;
use crate::support::sinks::S3Emulator;
use crate::support::{
    Engine, TestApp, TestDb, base_env, delete_audit_rows, digest_all, open_db, raw_table_names,
    read_manifest, run_binary,
};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `vantus backup --to DIR` and returns the archive path.
fn backup_to(dir: &Path, env: &HashMap<String, String>, extra: &[&str]) -> PathBuf {
    let mut args = vec!["backup", "--to", dir.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = run_binary(&args, env);
    assert!(o.status.success(), "backup failed: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("backup --json");
    PathBuf::from(report["location"].as_str().unwrap())
}

/// Text of a page with the server's own address removed (a restored server listens elsewhere).
async fn page(app: &TestApp, path: &str) -> String {
    app.get(path)
        .await
        .text()
        .await
        .unwrap()
        .replace(&app.base, "BASE")
}

const PAGES: &[&str] = &[
    "/",
    "/work",
    "/work/shopify-erp-sync",
    "/insights",
    "/about",
    "/sitemap.xml",
];

async fn backup_wipe_restore_round_trip(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let state = app.server().site.clone();
    let db = state.store.primary().clone();
    // Rows through the app's own paths...
    vantus::with_conn!(&db, conn => {
        content::update_body(
            conn,
            &state.site,
            ContentKind::Page,
            "about",
            "About — Ünïcödé ✓",
            "Édité 東京 🚚",
        )
        .await
    })
    .unwrap();
    state.refresh_generation().await.unwrap();
    vantus::with_conn!(&db, conn => {
        audit::record(
            conn,
            &Actor::Cli,
            AuditAction::BackupCreated,
            "thing/1",
            serde_json::json!({"k": "v"}),
        )
        .await?;
        jobs::record_manual(
            conn,
            jobs::BACKUP,
            Timestamp::now(),
            Outcome::Succeeded,
            "earlier run",
        )
        .await
    })
    .unwrap();
    // ...and a generated bulk set.
    generate::run(&db, 120, 3_000).await.unwrap();

    let pages_before: Vec<String> =
        futures_util::future::join_all(PAGES.iter().map(|p| page(&app, p))).await;
    let before = digest_all(&db).await;
    let env = base_env(&app.db);
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &env, &[]);

    // Every table in the database is in the manifest, with its row count.
    let manifest = read_manifest(&archive);
    let in_manifest: Vec<String> = {
        let mut v: Vec<String> = manifest
            .tables
            .iter()
            .map(|t| t.table.name.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        in_manifest,
        raw_table_names(&db).await,
        "the manifest covers every table"
    );
    for t in &manifest.tables {
        assert_eq!(
            (t.rows, t.sha256.clone()),
            before[&t.table.name],
            "manifest figures for {}",
            t.table.name
        );
    }
    assert!(before["audit_log"].0 >= 3_001 && before["content_items"].0 >= 136);
    let sidecar = std::fs::read_to_string(archive.with_file_name(format!(
        "{}.sha256",
        archive.file_name().unwrap().to_str().unwrap()
    )))
    .unwrap();
    assert!(sidecar.ends_with(&format!(
        "  {}\n",
        archive.file_name().unwrap().to_str().unwrap()
    )));

    // The disk dies.
    let test_db = app.into_db().await;
    db.close().await;
    test_db.wipe().await;

    let o = run_binary(&["restore", archive.to_str().unwrap()], &env);
    assert!(o.status.success(), "restore failed: {}", stderr(&o));
    assert!(
        stdout(&o).contains("verdict: every table matches the manifest"),
        "{}",
        stdout(&o)
    );

    let restored = open_db(&test_db.url).await;
    // The restore records itself in the audit log after committing; take that one row out,
    // and everything else must be identical.
    let removed = delete_audit_rows(&restored, "action = 'restore.completed'").await;
    assert_eq!(removed, 1, "the restore was audited once");
    assert_eq!(
        digest_all(&restored).await,
        before,
        "identical row counts and checksums"
    );
    restored.close().await;

    // The restored site serves the same pages.
    let again = TestApp::spawn_on(test_db, |_| {}).await;
    for (path, expected) in PAGES.iter().zip(&pages_before) {
        assert_eq!(&page(&again, path).await, expected, "{path} after restore");
    }
    assert!(page(&again, "/about").await.contains("Édité 東京 🚚"));
}

async fn damaged_archives_are_refused_before_anything_is_written(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    generate::run(app.server().app.store.primary(), 20, 500)
        .await
        .unwrap();
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &base_env(&app.db), &[]);
    let bytes = std::fs::read(&archive).unwrap();
    app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let flipped = dir.path().join("flipped.vbak");
    let mut b = bytes.clone();
    let middle = b.len() / 2;
    b[middle] ^= 0x01;
    std::fs::write(&flipped, &b).unwrap();
    let truncated = dir.path().join("truncated.vbak");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let lying = dir.path().join("lying.vbak");
    rewrite_manifest(&archive, &lying, |m| m.tables[0].rows += 1);
    let not_ours = dir.path().join("notes.vbak");
    std::fs::write(&not_ours, b"these are not the bytes you are looking for").unwrap();

    for (bad, expect) in [
        (&flipped, "the archive is damaged"),
        (&truncated, "the archive is damaged"),
        (&lying, "does not match its manifest"),
        (&not_ours, "not a Vantus backup"),
    ] {
        let target = TestDb::create(engine).await;
        let o = run_binary(&["restore", bad.to_str().unwrap()], &base_env(&target));
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}: {}",
            bad.display(),
            stderr(&o)
        );
        let err = stderr(&o);
        assert!(err.contains(expect), "{} → {err}", bad.display());
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        // Nothing was written: the target was not even migrated.
        let db = open_db(&target.url).await;
        assert!(
            raw_table_names(&db).await.is_empty(),
            "{} touched the target",
            bad.display()
        );
        assert!(!migrations_table_exists(&db).await, "not even migrated");
        db.close().await;
    }
}

async fn migrations_table_exists(db: &vantus::store::Db) -> bool {
    match db {
        vantus::store::Db::Sqlite(p) => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = '_sqlx_migrations'",
            )
            .fetch_one(p)
            .await
            .unwrap()
                > 0
        }
        vantus::store::Db::Postgres(p) => {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(p)
                .await
                .unwrap()
        }
    }
}

/// Rewrites an archive with an edited manifest (a forged or buggy archive).
fn rewrite_manifest(src: &Path, dst: &Path, edit: impl Fn(&mut Manifest)) {
    let mut input = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(src).unwrap(),
    ));
    let out = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(out);
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "manifest.json" {
            let mut m: Manifest = serde_json::from_slice(&data).unwrap();
            edit(&mut m);
            data = serde_json::to_vec(&m).unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, &name, &data[..]).unwrap();
    }
    builder
        .into_inner()
        .unwrap()
        .finish()
        .unwrap()
        .flush()
        .unwrap();
}

async fn restore_refuses_a_non_empty_target_unless_forced(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let state = app.server().site.clone();
    let env = base_env(&app.db);
    let snapshot = digest_all(state.store.primary()).await;
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &env, &[]);
    // The backup command journals itself after writing the archive; that row is not in it.
    let mut snapshot = snapshot;
    snapshot.remove("job_runs");
    // Change the live data after the backup.
    vantus::with_conn!(state.store.primary(), conn => {
        content::update_body(
            conn,
            &state.site,
            ContentKind::Page,
            "about",
            "Changed",
            "changed after the backup",
        )
        .await
    })
    .unwrap();
    state.refresh_generation().await.unwrap();
    let generation_before = state.pages.generation();

    let o = run_binary(&["restore", archive.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not empty") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert!(
        page(&app, "/about")
            .await
            .contains("changed after the backup"),
        "nothing was touched"
    );

    let o = run_binary(&["restore", "--force", archive.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("replacing the previous contents"));
    // The live server notices (content generation moved past what it had seen), by its own
    // poll or this explicit check, whichever comes first.
    let _ = state.refresh_generation().await.unwrap();
    assert!(state.pages.generation() > generation_before);
    assert!(
        !page(&app, "/about")
            .await
            .contains("changed after the backup"),
        "the backup's content is back"
    );
    let mut after = digest_all(state.store.primary()).await;
    // The restore itself adds its audit entry and bumps the generation; the rest is identical.
    after.remove("job_runs");
    for t in ["audit_log", "site_state"] {
        after.remove(t);
    }
    let mut expected = snapshot;
    for t in ["audit_log", "site_state"] {
        expected.remove(t);
    }
    assert_eq!(after, expected);
}

both_engines!(
    backup_wipe_restore_round_trip,
    damaged_archives_are_refused_before_anything_is_written,
    restore_refuses_a_non_empty_target_unless_forced,
);

/// Encrypted at rest: the archive carries no readable data, and restoring needs the passphrase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backups_need_their_passphrase() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut env = base_env(&app.db);
    env.insert(
        "VANTUS_BACKUP_PASSPHRASE".into(),
        "correct horse battery staple".into(),
    );
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &env, &[]);
    let raw = std::fs::read(&archive).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(
        !raw.windows(13).any(|w| w == b"content_items"),
        "no plaintext in the archive"
    );
    app.stop().await;

    let target = TestDb::create(Engine::Sqlite).await;
    let mut plain = base_env(&target);
    let o = run_binary(
        &["restore", "--verify-only", archive.to_str().unwrap()],
        &plain,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("VANTUS_BACKUP_PASSPHRASE"),
        "{}",
        stderr(&o)
    );
    plain.insert(
        "VANTUS_BACKUP_PASSPHRASE".into(),
        "wrong horse battery staple".into(),
    );
    let o = run_binary(
        &["restore", "--verify-only", archive.to_str().unwrap()],
        &plain,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot decrypt"), "{}", stderr(&o));
    let pass_file = target.dir.path().join("pass");
    std::fs::write(&pass_file, "correct horse battery staple\n").unwrap();
    let o = run_binary(
        &[
            "restore",
            "--verify-only",
            "--passphrase-file",
            pass_file.to_str().unwrap(),
            archive.to_str().unwrap(),
        ],
        &plain,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("every table matches"));
}

/// `--with-media` carries uploaded files; a restore puts them back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_travels_with_the_backup() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let env = base_env(&app.db);
    let media = app.db.data_dir().join("media");
    std::fs::create_dir_all(media.join("2026/11")).unwrap();
    let image: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(media.join("2026/11/diagram.png"), &image).unwrap();
    std::fs::write(media.join("notes ü.txt"), "grüße").unwrap();
    let backups = tempfile::tempdir().unwrap();
    let archive = backup_to(backups.path(), &env, &["--with-media"]);
    assert_eq!(read_manifest(&archive).media.len(), 2);
    app.stop().await;

    let target = TestDb::create(Engine::Sqlite).await;
    let o = run_binary(&["restore", archive.to_str().unwrap()], &base_env(&target));
    assert!(o.status.success(), "{}", stderr(&o));
    let restored = target.data_dir().join("media");
    assert_eq!(
        std::fs::read(restored.join("2026/11/diagram.png")).unwrap(),
        image
    );
    assert_eq!(
        std::fs::read_to_string(restored.join("notes ü.txt")).unwrap(),
        "grüße"
    );
}

/// Backups to an S3-compatible bucket (moto's emulator, since no real S3 server installs
/// here), retention over S3, and a restore drill straight from an s3:// URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_drill_through_s3_emulator() {
    let s3 = S3Emulator::start().await;
    s3.create_bucket("vantus-backups").await;
    let app = TestApp::spawn(Engine::Postgres).await;
    let mut env = base_env(&app.db);
    env.extend(s3.env());
    let mut names = Vec::new();
    for _ in 0..3 {
        let o = run_binary(
            &[
                "backup",
                "--to",
                "s3://vantus-backups/nightly",
                "--json",
                "--keep-daily",
                "1",
            ],
            &env,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            r["location"]
                .as_str()
                .unwrap()
                .starts_with("s3://vantus-backups/nightly/vantus-")
        );
        names.push(r["name"].as_str().unwrap().to_owned());
    }
    let keys = s3.keys("vantus-backups", "nightly/").await;
    assert_eq!(
        keys,
        vec![format!("nightly/{}", names[2])],
        "retention kept the newest of the day"
    );

    let url = format!("s3://vantus-backups/nightly/{}", names[2]);
    let o = run_binary(&["restore", "--verify-only", &url], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("every table matches"));
    // The drill was recorded for doctor.
    let last = vantus::with_conn!(app.server().app.store.primary(), conn => {
        jobs::last_success(conn, jobs::RESTORE_DRILL).await
    })
    .unwrap();
    assert!(last.is_some());
}

/// The live schema and the tables a backup sees agree (guards the introspection itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_sees_every_table_on_both_engines() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let app = TestApp::spawn(engine).await;
        let db = app.server().app.store.primary().clone();
        let mut seen: Vec<String> = schema::tables(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        seen.sort();
        assert_eq!(seen, raw_table_names(&db).await, "{engine:?}");
    }
}
