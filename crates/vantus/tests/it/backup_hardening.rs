//! Issue 8, the writing side: backups stage their plaintext privately and clean up after a
//! killed run, everything Vantus creates is owner-only whatever the umask, a planted sidecar
//! symlink is not followed, and `db copy` refuses a target holding anybody's data.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vantus::ops::generate;

use crate::both_engines;
use crate::support::{
    Engine, ServeProcess, TestDb, base_env, binary, eventually_every, open_db, raw_table_names,
    run_binary,
};

const PASSPHRASE: &str = "correct horse battery staple";
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A migrated test database holding a generated data set large enough that a backup takes a
/// while (so it can be caught, and killed, mid-way).
async fn populated(engine: Engine, audit_rows: u64) -> TestDb {
    let db = TestDb::create(engine).await;
    let pool = open_db(&db.url).await;
    vantus::store::migrate::migrate_to(&pool, None)
        .await
        .unwrap();
    generate::run(&pool, 100, audit_rows).await.unwrap();
    pool.close().await;
    db
}

/// Every regular file under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// A file a backup stages in plaintext: a table spool or the SQLite snapshot.
fn is_plaintext_staging(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name.ends_with(".ndjson") || name.starts_with("snapshot.db")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `vantus <args>` as a child process under umask 022 (what cron and shells use), whatever the
/// test runner's own umask.
fn under_umask_022(args: &[&str], env: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env);
    cmd
}

fn spawn_backup(dest: &Path, env: &HashMap<String, String>) -> Child {
    Command::new(binary())
        .args(["backup", "--to", dest.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls until `found` holds, failing if the child exits first or a minute passes. Every
/// 5 ms: the states watched for last only while the backup runs.
async fn wait_while_running(child: &mut Child, what: &str, mut found: impl FnMut() -> bool) {
    eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(5),
        what,
        async || {
            if found() {
                return true;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the backup finished while waiting for {what}"
            );
            false
        },
    )
    .await
}

/// SIGKILL in the middle of an encrypted backup: the destination holds nothing readable, the
/// plaintext staging is confined to the private scratch folder, and the next backup removes
/// every leftover.
async fn a_killed_encrypted_backup_leaves_no_plaintext_behind(engine: Engine) {
    let db = populated(engine, 150_000).await;
    let mut env = base_env(&db);
    env.insert("VANTUS_BACKUP_PASSPHRASE".into(), PASSPHRASE.into());
    let dest = db.dir.path().join("backups");
    let scratch_root = db.data_dir().join("tmp");
    let watched = [dest.clone(), db.data_dir()];

    let mut child = spawn_backup(&dest, &env);
    wait_while_running(&mut child, "plaintext staging to appear", || {
        watched.iter().any(|d| {
            files_under(d)
                .iter()
                .any(|f| is_plaintext_staging(f) && f.metadata().is_ok_and(|m| m.len() > 0))
        })
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    for file in files_under(&dest) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("vantus-") && name.ends_with(".vbak.partial"),
            "only the encrypted partial archive may be in the destination, found {}",
            file.display()
        );
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            bytes.is_empty() || bytes.starts_with(AGE_MAGIC),
            "{} is not encrypted",
            file.display()
        );
    }
    let staged: Vec<PathBuf> = files_under(&scratch_root)
        .into_iter()
        .filter(|f| is_plaintext_staging(f))
        .collect();
    assert!(!staged.is_empty(), "the kill left the staging in place");
    for file in &staged {
        let scratch = file
            .strip_prefix(&scratch_root)
            .unwrap()
            .components()
            .next()
            .unwrap();
        assert!(
            scratch
                .as_os_str()
                .to_string_lossy()
                .starts_with("vantus-backup-"),
            "{} is outside a backup scratch folder",
            file.display()
        );
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert_eq!(mode(&scratch_root.join(scratch)), 0o700);
    }

    // The next backup sweeps the dead run's scratch folder and partial archive. A partial
    // still empty (nothing flushed yet) is only swept after a few seconds' grace, which covers
    // the instant between a live writer creating it and locking it.
    for file in files_under(&dest) {
        while file
            .metadata()
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap_or_default()
            < Duration::from_secs(6)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let o = run_binary(&["backup", "--to", dest.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        files_under(&scratch_root),
        Vec::<PathBuf>::new(),
        "no staging survives the next backup"
    );
    assert_eq!(
        std::fs::read_dir(&scratch_root).unwrap().count(),
        0,
        "no scratch folder survives the next backup"
    );
    let left: Vec<String> = files_under(&dest)
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "one archive and its sidecar: {left:?}");
    assert!(
        left.iter()
            .all(|n| n.ends_with(".vbak") || n.ends_with(".vbak.sha256"))
    );
}

both_engines!(a_killed_encrypted_backup_leaves_no_plaintext_behind);

/// Under umask 022: the SQLite database and its -wal/-shm, the generated secret, the data
/// folder, the backup folder, the archive and its sidecar are all owner-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_vantus_creates_is_owner_only_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let db_file = root.path().join("db").join("vantus.db");
    let data = root.path().join("var");
    let mut env: HashMap<String, String> = HashMap::from([
        ("VANTUS_LISTEN".into(), "127.0.0.1:0".into()),
        (
            "DATABASE_URL".into(),
            format!("sqlite://{}", db_file.display()),
        ),
        ("VANTUS_DATA_DIR".into(), data.display().to_string()),
        ("DATABASE_CONNECT_TIMEOUT".into(), "5s".into()),
        ("VANTUS_DRAIN_TIMEOUT".into(), "10s".into()),
        ("RUST_LOG".into(), "warn".into()),
    ]);

    // `serve` creates the database (migrating it), the data folder and the secret.
    let mut serve = ServeProcess::spawn_with(&env, under_umask_022(&[], &env)).await;
    serve.wait_ready(Duration::from_secs(30)).await;
    let wal = db_file.with_file_name("vantus.db-wal");
    let shm = db_file.with_file_name("vantus.db-shm");
    for file in [&db_file, &wal, &shm, &data.join("secret.key")] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    for dir in [db_file.parent().unwrap(), &data] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    serve.terminate();
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0));

    let dest = root.path().join("backups").join("nightly");
    let o = under_umask_022(&["backup", "--to", dest.to_str().unwrap(), "--json"], &env)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let archive = PathBuf::from(report["location"].as_str().unwrap());
    let sidecar = PathBuf::from(format!("{}.sha256", archive.display()));
    assert_eq!(mode(&archive), 0o600);
    assert_eq!(mode(&sidecar), 0o600);
    for dir in [dest.parent().unwrap(), &dest, &data.join("tmp")] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }

    // An encrypted backup too (its own writer path), into the folder that now exists.
    env.insert("VANTUS_BACKUP_PASSPHRASE".into(), PASSPHRASE.into());
    let o = under_umask_022(&["backup", "--to", dest.to_str().unwrap(), "--json"], &env)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(mode(Path::new(report["location"].as_str().unwrap())), 0o600);
}

/// A symlink planted under the sidecar's name (`<archive>.sha256`) is replaced by a regular
/// file; the file it pointed to is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_sidecar_symlink_is_not_followed() {
    let db = populated(Engine::Sqlite, 150_000).await;
    let env = base_env(&db);
    let dest = db.dir.path().join("backups");
    std::fs::create_dir_all(&dest).unwrap();
    let victim = db.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();

    // The archive's name carries its start time; learn it from the `.partial` and plant the
    // link while the (large) backup is still being written.
    let mut child = spawn_backup(&dest, &env);
    let mut partial = None;
    wait_while_running(&mut child, "the partial archive to appear", || {
        partial = std::fs::read_dir(&dest).unwrap().flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".partial").map(str::to_owned)
        });
        partial.is_some()
    })
    .await;
    let name = partial.unwrap();
    let sidecar = dest.join(format!("{name}.sha256"));
    std::os::unix::fs::symlink(&victim, &sidecar).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the backup completes");

    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(&sidecar).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the sidecar is a regular file now"
    );
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&sidecar).unwrap();
    assert!(text.ends_with(&format!("  {name}\n")), "{text}");
    assert_eq!(text.split_whitespace().next().unwrap().len(), 64);
}

/// `db copy` into a database holding another application's table (with rows, no Vantus
/// tables at all) is refused by name, and that database is left exactly as it was.
async fn db_copy_refuses_a_target_with_unrelated_data(engine: Engine) {
    let source = populated(Engine::Sqlite, 50).await;
    let target = TestDb::create(engine).await;
    let target_db = open_db(&target.url).await;
    vantus::on_db!(&target_db, p => sqlx::raw_sql(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');"
    ).execute(p).await.map(|_| ()))
    .unwrap();
    let env = base_env(&target);

    let o = run_binary(
        &[
            "db",
            "copy",
            "--from",
            &source.url,
            "--to",
            &target.url,
            "--dry-run",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("target is not empty"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    let o = run_binary(
        &["db", "copy", "--from", &source.url, "--to", &target.url],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let message = stderr(&o);
    assert!(
        message.contains("already holds data") && message.contains("customers (3 rows)"),
        "{message}"
    );

    let tables: Vec<String> = match &target_db {
        vantus::store::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(p)
                .await
                .unwrap()
        }
        vantus::store::Db::Postgres(p) => sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
        )
        .fetch_all(p)
        .await
        .unwrap(),
    };
    assert_eq!(tables, ["customers"], "no Vantus table was added");
    assert_eq!(raw_table_names(&target_db).await, ["customers"]);
    let names: Vec<String> = vantus::on_db!(&target_db, p => sqlx::query_scalar(
        "SELECT name FROM customers ORDER BY id"
    ).fetch_all(p).await)
    .unwrap();
    assert_eq!(names, ["Ada", "Grace", "Edsger"]);
    target_db.close().await;
}

both_engines!(db_copy_refuses_a_target_with_unrelated_data);
