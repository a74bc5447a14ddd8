//! The tamper-evident audit log, on SQLite and PostgreSQL: entries (one at a time and in a
//! multi-row batch) form a hash chain that `vantus audit verify` accepts; direct UPDATE and
//! DELETE are refused by the triggers; a change or a deletion made through the sanctioned
//! bypass is named by its seq; concurrent writers never fork the chain; a backup's manifest
//! carries the newest hash, and its restore (and a copy to the other engine) still verifies.

use std::collections::HashMap;

use vantus::audit::{self, Actor, AuditAction, ChainHead, TenantEvent, chain};
use vantus::store::{self, Db, Timestamp};
use vantus::tenancy;

use crate::both_engines;
use crate::support::{
    Engine, TestApp, TestDb, audit_maintenance, base_env, delete_audit_rows, open_db,
    read_manifest, run_binary,
};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn migrated(engine: Engine) -> (TestDb, Db) {
    let test_db = TestDb::create(engine).await;
    let db = open_db(&test_db.url).await;
    store::migrate::migrate_to(&db, None).await.unwrap();
    (test_db, db)
}

async fn head(db: &Db) -> Option<ChainHead> {
    vantus::with_conn!(db, conn => chain::head(conn).await).unwrap()
}

/// The id of the row at `seq`, as the text verify prints.
async fn id_at(db: &Db, seq: i64) -> String {
    let id = vantus::on_db!(db, p => sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM audit_log WHERE seq = $1").bind(seq).fetch_one(p).await)
    .unwrap();
    id.to_string()
}

/// `vantus audit verify` against `url`.
fn verify(url: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), url.to_owned()),
        (
            "VANTUS_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ]);
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    run_binary(&args, &env)
}

fn assert_intact(o: &std::process::Output, rows: u64, newest: &ChainHead) {
    assert!(o.status.success(), "verify failed: {}", stderr(o));
    let out = stdout(o);
    assert!(
        out.contains(&format!(
            "audit chain intact: {rows} rows checked, newest {newest}"
        )),
        "{out}"
    );
}

/// Verify exits 1 with one line naming the row at `seq` (and its id) and `problem`.
fn assert_broken_at(o: &std::process::Output, seq: i64, id: &str, problem: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "verify must fail: {err}");
    assert!(
        err.contains(&format!("row seq {seq} (id {id})")),
        "names seq {seq}: {err}"
    );
    assert!(err.contains(problem), "says {problem:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
}

/// Two single entries, then a batch of 40 large enough to take several multi-row statements.
async fn write_entries(db: &Db) {
    vantus::in_write_tx!(db, conn => {
        audit::record(conn, &Actor::Cli, AuditAction::BackupCreated, "backup/1",
            serde_json::json!({ "rows": 1, "note": "Zürich ✓ 🚚" })).await?;
        let scope = tenancy::ensure(conn, "chain", "Chain", None).await?;
        audit::record_for(conn, &scope, &Actor::Cli, AuditAction::LeadsExported, "leads",
            serde_json::json!({ "count": 0 })).await
    })
    .unwrap();
    let scope = vantus::with_conn!(db, conn => tenancy::ensure(conn, "chain", "Chain", None).await)
        .unwrap();
    let padding = "x".repeat(1500);
    let actor = Actor::Public;
    let events: Vec<TenantEvent<'_>> = (0..40)
        .map(|i| TenantEvent {
            scope: &scope,
            actor: &actor,
            action: AuditAction::LeadReceived,
            resource: format!("lead:{i}"),
            detail: serde_json::json!({ "source": "form", "padding": padding.as_str() }),
        })
        .collect();
    vantus::in_write_tx!(db, conn => audit::record_many_for(conn, &events).await).unwrap();
}

async fn a_written_chain_verifies_and_refuses_edits(engine: Engine) {
    let (test_db, db) = migrated(engine).await;
    let o = verify(&test_db.url, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the audit log is empty"),
        "{}",
        stdout(&o)
    );

    write_entries(&db).await;
    let newest = head(&db).await.expect("a head");
    assert_eq!(
        newest.seq, 42,
        "2 single entries and a batch of 40, seq without gaps"
    );
    assert_intact(&verify(&test_db.url, &[]), 42, &newest);

    // Direct changes are refused by the triggers, with a message that says why.
    for sql in [
        "UPDATE audit_log SET detail = '{}' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 42",
        "DELETE FROM audit_log",
    ] {
        let err = vantus::on_db!(&db, p => sqlx::query(sql).execute(p).await.map(|_| ()))
            .expect_err(sql)
            .to_string();
        assert!(err.contains("audit_log is append-only"), "{sql}: {err}");
    }
    if engine == Engine::Postgres {
        let err = vantus::on_db!(&db, p => sqlx::query("TRUNCATE audit_log").execute(p).await.map(|_| ()))
            .expect_err("TRUNCATE")
            .to_string();
        assert!(err.contains("audit_log is append-only"), "{err}");
    }
    assert_intact(&verify(&test_db.url, &[]), 42, &newest);

    // A changed field, through the bypass: named by its seq and id. Put back, it verifies.
    let id5 = id_at(&db, 5).await;
    let original = vantus::on_db!(&db, p => sqlx::query_scalar::<_, String>(
        "SELECT detail FROM audit_log WHERE seq = 5").fetch_one(p).await)
    .unwrap();
    audit_maintenance(
        &db,
        "UPDATE audit_log SET detail = '{\"source\":\"api\"}' WHERE seq = 5",
    )
    .await;
    assert_broken_at(&verify(&test_db.url, &[]), 5, &id5, "do not match its hash");
    let restore = format!(
        "UPDATE audit_log SET detail = '{}' WHERE seq = 5",
        original.replace('\'', "''")
    );
    assert_eq!(audit_maintenance(&db, &restore).await, 1);
    assert_intact(&verify(&test_db.url, &[]), 42, &newest);

    // A row written outside the chain (as an older release would): reported, then sealed.
    let stray = uuid::Uuid::now_v7();
    vantus::on_db!(&db, p => sqlx::query(
        "INSERT INTO audit_log (id, actor, action, resource, detail, created_at)
         VALUES ($1, 'cli', 'backup.created', 'old-release', '{}', $2)")
        .bind(stray).bind(Timestamp::now()).execute(p).await.map(|_| ()))
    .unwrap();
    let o = verify(&test_db.url, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("row id {stray} (no seq)")),
        "{}",
        stderr(&o)
    );
    assert_eq!(chain::seal_unchained(&db).await.unwrap(), 1);
    let sealed = head(&db).await.unwrap();
    assert_eq!(sealed.seq, 43);
    assert_intact(&verify(&test_db.url, &[]), 43, &sealed);

    // A middle row deleted through the bypass: the row after the gap is named.
    assert_eq!(delete_audit_rows(&db, "seq = 7").await, 1);
    let id8 = id_at(&db, 8).await;
    assert_broken_at(&verify(&test_db.url, &[]), 8, &id8, "seq 7 is missing");
    db.close().await;
}

async fn concurrent_writers_extend_one_chain(engine: Engine) {
    let (test_db, db) = migrated(engine).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    vantus::in_write_tx!(&db, conn => audit::record(conn, &Actor::Cli,
                        AuditAction::OutboxRequeued, &format!("outbox/{w}-{i}"),
                        serde_json::json!({ "writer": w })).await)
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let newest = head(&db).await.unwrap();
    assert_eq!(newest.seq, 80, "every append succeeded, none forked");
    assert_intact(&verify(&test_db.url, &[]), 80, &newest);
    db.close().await;
}

fn other(engine: Engine) -> Engine {
    match engine {
        Engine::Sqlite => Engine::Postgres,
        Engine::Postgres => Engine::Sqlite,
    }
}

async fn backups_anchor_the_head_and_restores_verify(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let db = app.server().app.store.primary().clone();
    write_entries(&db).await;
    let newest = head(&db).await.unwrap();
    let env = base_env(&app.db);

    // The manifest carries the newest hash, and the summary shows it.
    let backups = tempfile::tempdir().unwrap();
    let o = run_binary(&["backup", "--to", backups.path().to_str().unwrap()], &env);
    assert!(o.status.success(), "backup failed: {}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("audit chain head {newest}")),
        "{}",
        stdout(&o)
    );
    let archive = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "vbak"))
        .expect("an archive");
    assert_eq!(read_manifest(&archive).audit_head, Some(newest.clone()));
    let anchor = newest.to_string();

    // Restored on the other engine, the chain verifies and still holds the anchor.
    let target = TestDb::create(other(engine)).await;
    let o = run_binary(
        &["restore", archive.to_str().unwrap(), "--to", &target.url],
        &env,
    );
    assert!(o.status.success(), "restore failed: {}", stderr(&o));
    assert_intact(
        &verify(&target.url, &["--expect-head", &anchor]),
        newest.seq as u64,
        &newest,
    );

    // Removing the newest row leaves a whole but shorter chain: only the anchor tells.
    let restored = open_db(&target.url).await;
    delete_audit_rows(&restored, &format!("seq = {}", newest.seq)).await;
    restored.close().await;
    let o = verify(&target.url, &["--expect-head", &anchor]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("rows were removed from its end"),
        "{}",
        stderr(&o)
    );
    assert!(verify(&target.url, &[]).status.success());

    // Restore --force over the live database deletes the audit log through the bypass; the
    // chain verifies afterwards, continued by the entry the restore records.
    let o = run_binary(&["restore", archive.to_str().unwrap(), "--force"], &env);
    assert!(o.status.success(), "restore --force failed: {}", stderr(&o));
    let after = head(&db).await.unwrap();
    assert_eq!(after.seq, newest.seq + 1, "the restore recorded itself");
    assert_intact(
        &verify(&app.db.url, &["--expect-head", &anchor]),
        after.seq as u64,
        &after,
    );

    // A copy to the other engine verifies too.
    let copy = TestDb::create(other(engine)).await;
    let o = run_binary(
        &["db", "copy", "--from", &app.db.url, "--to", &copy.url],
        &env,
    );
    assert!(o.status.success(), "copy failed: {}", stderr(&o));
    let copied = open_db(&copy.url).await;
    let copied_head = head(&copied).await.unwrap();
    copied.close().await;
    assert_eq!(
        copied_head.seq,
        after.seq + 1,
        "the copy recorded itself in the target"
    );
    assert_intact(
        &verify(&copy.url, &[]),
        copied_head.seq as u64,
        &copied_head,
    );
}

both_engines!(
    a_written_chain_verifies_and_refuses_edits,
    concurrent_writers_extend_one_chain,
    backups_anchor_the_head_and_restores_verify,
);

#[test]
fn verify_refuses_a_malformed_anchor_in_one_sentence() {
    let o = verify(
        "sqlite:///nonexistent/vantus.db",
        &["--expect-head", "12:xyz"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("--expect-head") && err.contains("SEQ:HASH"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
