//! `vantus db copy`: SQLite → PostgreSQL → SQLite with identical checksums, dry runs, refusal
//! of occupied targets, and an interrupted copy (killed halfway) re-run to a correct result.

use std::process::{Command, Stdio};
use std::time::Duration;

use vantus::ops::generate;

use crate::support::{
    Engine, TestApp, TestDb, base_env, binary, delete_audit_rows, digest_all, eventually, open_db,
    raw_table_names, run_binary,
};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A stopped SQLite server's database with a generated data set: (its files, its URL, its
/// digest).
async fn generated_source(
    content_items: u64,
    audit_rows: u64,
) -> (
    TestDb,
    String,
    std::collections::BTreeMap<String, (u64, String)>,
) {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let source = app.server().app.store.primary().clone();
    generate::run(&source, content_items, audit_rows)
        .await
        .unwrap();
    // Digested once the server has stopped: its scheduled jobs (the content schedule's tick
    // journals a run in job_runs) must not change the source after the digest.
    let db = app.into_db().await;
    let url = db.url.clone();
    let at_rest = open_db(&url).await;
    let original = digest_all(&at_rest).await;
    at_rest.close().await;
    (db, url, original)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_is_identical() {
    let (_keep_source, source_url, original) = generated_source(150, 4_000).await;

    let pg = TestDb::create(Engine::Postgres).await;
    let env = base_env(&pg);

    // A dry run reports and writes nothing.
    let o = run_binary(
        &[
            "db",
            "copy",
            "--from",
            &source_url,
            "--to",
            &pg.url,
            "--dry-run",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("target is empty") && out.contains("audit_log"),
        "{out}"
    );
    assert!(
        raw_table_names(&open_db(&pg.url).await).await.is_empty(),
        "dry run wrote nothing"
    );

    let o = run_binary(
        &["db", "copy", "--from", &source_url, "--to", &pg.url],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let pg_db = open_db(&pg.url).await;
    let mut on_pg = digest_all(&pg_db).await;
    // The copy audits itself in the target after verifying; everything else is identical.
    let audited = vantus::on_db!(&pg_db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE action = 'db.copied'").fetch_one(p).await).unwrap();
    assert_eq!(audited, 1);
    delete_audit_rows(&pg_db, "action = 'db.copied'").await;
    on_pg = {
        let _ = on_pg;
        digest_all(&pg_db).await
    };
    assert_eq!(
        on_pg, original,
        "SQLite → PostgreSQL keeps every row exactly"
    );

    // Copying into a database that holds other data is refused.
    let o = run_binary(
        &["db", "copy", "--from", &source_url, "--to", &pg.url],
        &env,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already holds data"), "{}", stderr(&o));

    // ...and back to a new SQLite file.
    let back = tempfile::tempdir().unwrap();
    let back_url = format!("sqlite://{}", back.path().join("back.db").display());
    let o = run_binary(&["db", "copy", "--from", &pg.url, "--to", &back_url], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let back_db = open_db(&back_url).await;
    delete_audit_rows(&back_db, "action = 'db.copied'").await;
    assert_eq!(
        digest_all(&back_db).await,
        original,
        "and PostgreSQL → SQLite brings it back identical"
    );
    pg_db.close().await;
    back_db.close().await;
}

/// Kill -9 a copy halfway; the same command afterwards resumes and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_resumes_to_a_correct_result() {
    let (_keep_source, source_url, original) = generated_source(50, 60_000).await;

    let pg = TestDb::create(Engine::Postgres).await;
    let env = base_env(&pg);
    let mut child = Command::new(binary())
        .args(["db", "copy", "--from", &source_url, "--to", &pg.url])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pg_db = open_db(&pg.url).await;
    eventually(
        Duration::from_secs(120),
        "the copy to get going (5 000 rows)",
        async || {
            let copied: i64 = match &pg_db {
                vantus::store::Db::Postgres(p) => {
                    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
                        .fetch_one(p)
                        .await
                        .unwrap_or(0)
                }
                _ => unreachable!(),
            };
            if copied > 5_000 {
                return true;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the copy finished before it could be interrupted"
            );
            false
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let partial: i64 = match &pg_db {
        vantus::store::Db::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(p)
            .await
            .unwrap(),
        _ => unreachable!(),
    };
    assert!(partial < 60_000, "interrupted halfway ({partial} rows)");

    let o = run_binary(
        &["db", "copy", "--from", &source_url, "--to", &pg.url],
        &env,
    );
    assert!(o.status.success(), "re-run failed: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(resumed)"));
    delete_audit_rows(&pg_db, "action = 'db.copied'").await;
    assert_eq!(
        digest_all(&pg_db).await,
        original,
        "the resumed copy is exact: no gaps, no duplicates"
    );
    pg_db.close().await;
}
