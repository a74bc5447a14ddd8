//! Composable queries: query functions take a connection, so several of them (a tenant, its
//! content, the audit entry about it) share one transaction and stand or fall together, on
//! SQLite and PostgreSQL alike. And each operation is recorded once, the same way, whoever
//! runs it: a backup from the command line and one from the scheduler leave one journal row
//! and one audit entry each, with the same details.

use std::time::{Duration, Instant};

use vantus::audit::{self, Actor, AuditAction};
use vantus::content::{self, ContentKind, NewContent};
use vantus::store::{self, Conn, Db, Timestamp};
use vantus::tenancy;

use crate::both_engines;
use crate::support::{Engine, TestApp, TestDb, base_env, open_db, run_binary};

const SLUG: &str = "tx-tenant";
const RESOURCE: &str = "tenant/tx-tenant";

async fn migrated(engine: Engine) -> (TestDb, Db) {
    let test_db = TestDb::create(engine).await;
    let db = open_db(&test_db.url).await;
    store::migrate::migrate_to(&db, None).await.unwrap();
    (test_db, db)
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    vantus::on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

/// How many of the three rows the transaction writes exist: (tenant, content item, audit).
async fn written(db: &Db) -> (i64, i64, i64) {
    (
        count(db, "SELECT COUNT(*) FROM tenants WHERE slug = 'tx-tenant'").await,
        count(
            db,
            "SELECT COUNT(*) FROM content_items WHERE slug = 'tx-article'",
        )
        .await,
        count(
            db,
            "SELECT COUNT(*) FROM audit_log WHERE resource = 'tenant/tx-tenant'",
        )
        .await,
    )
}

fn article() -> NewContent {
    NewContent {
        kind: ContentKind::Insight,
        slug: "tx-article".into(),
        title: "Written in a transaction".into(),
        summary: "Stands or falls with its tenant.".into(),
        body_markdown: "Body".into(),
        meta_json: "{}".into(),
        published_at: Timestamp::now(),
    }
}

/// The tenant, its article and the audit entry, all through `conn`.
async fn write_three(conn: &mut Conn<'_>) -> Result<(), sqlx::Error> {
    let scope = tenancy::ensure(conn, SLUG, "Tx Tenant", Some("ops@tx.test")).await?;
    let added = content::insert_missing(conn, &scope, &[article()]).await?;
    assert_eq!(added, 1);
    audit::record_for(
        conn,
        &scope,
        &Actor::Cli,
        AuditAction::BackupCreated,
        RESOURCE,
        serde_json::json!({ "why": "transaction test" }),
    )
    .await
}

/// A caller's own error type: anything that can take a database error.
#[derive(Debug)]
enum Refusal {
    Database(#[allow(dead_code)] sqlx::Error),
    ChangedMyMind,
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Database(e)
    }
}

async fn writes_in_one_transaction_roll_back_together(engine: Engine) {
    let (_test_db, db) = migrated(engine).await;

    // 1. The caller decides against it after all three writes: none of them is kept.
    let out = vantus::in_write_tx!(&db, conn => {
        write_three(conn).await?;
        assert_eq!(written(&db).await, (0, 0, 0), "nothing is visible before the commit");
        Err::<(), _>(Refusal::ChangedMyMind)
    });
    assert!(matches!(out, Err(Refusal::ChangedMyMind)), "{out:?}");
    assert_eq!(
        written(&db).await,
        (0, 0, 0),
        "a refused transaction leaves nothing"
    );

    // 2. A statement fails after the three writes (and `?` leaves the block early): none is kept.
    let out = vantus::in_write_tx!(&db, conn => {
        write_three(conn).await?;
        match conn {
            Conn::Sqlite(c) => sqlx::query("INSERT INTO no_such_table VALUES (1)").execute(&mut **c).await.map(|_| ())?,
            Conn::Postgres(c) => sqlx::query("INSERT INTO no_such_table VALUES (1)").execute(&mut **c).await.map(|_| ())?,
        };
        Ok::<_, sqlx::Error>(())
    });
    assert!(out.is_err(), "the failing statement is reported");
    assert_eq!(
        written(&db).await,
        (0, 0, 0),
        "a failed transaction leaves nothing"
    );

    // 3. A transaction taken by hand and dropped without a commit: nothing is kept either.
    {
        let mut tx = db.begin_write().await.unwrap();
        write_three(&mut tx.conn()).await.unwrap();
    }
    assert_eq!(
        written(&db).await,
        (0, 0, 0),
        "an abandoned transaction leaves nothing"
    );

    // The database is left usable: the same three writes now commit, all together.
    let out = vantus::in_write_tx!(&db, conn => write_three(conn).await);
    out.unwrap();
    assert_eq!(
        written(&db).await,
        (1, 1, 1),
        "a committed transaction keeps all three"
    );
    db.close().await;
}

async fn writes_in_one_transaction_commit_together(engine: Engine) {
    let (_test_db, db) = migrated(engine).await;
    let mut tx = db.begin_write().await.unwrap();
    write_three(&mut tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written(&db).await, (1, 1, 1));
    // The tenant's site state came with it, in the same transaction.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM site_state s JOIN tenants t ON t.id = s.tenant_id WHERE t.slug = 'tx-tenant'"
        )
        .await,
        1
    );
    db.close().await;
}

/// `in_write_tx!` ends with its body's value however the body ends: an early `return Ok`
/// commits what was written, an early `return Err` rolls it back (a `return` once skipped the
/// commit and silently discarded the writes).
async fn an_early_return_in_a_transaction_body_commits_or_rolls_back(engine: Engine) {
    let (_test_db, db) = migrated(engine).await;
    let kept: Result<&str, sqlx::Error> = vantus::in_write_tx!(&db, conn => {
        write_three(conn).await?;
        if written(&db).await.0 == 0 {
            return Ok("returned early");
        }
        Ok("fell through")
    });
    assert_eq!(kept.unwrap(), "returned early");
    assert_eq!(written(&db).await, (1, 1, 1));
    let undone: Result<(), sqlx::Error> = vantus::in_write_tx!(&db, conn => {
        audit::record(conn, &Actor::Cli, AuditAction::BackupCreated, RESOURCE, serde_json::json!({})).await?;
        if written(&db).await.0 == 1 {
            return Err(sqlx::Error::RowNotFound);
        }
        Ok(())
    });
    assert!(undone.is_err());
    assert_eq!(
        written(&db).await,
        (1, 1, 1),
        "the second body's entry was rolled back"
    );
    db.close().await;
}

/// A cron expression (with seconds) that fires once, a few seconds from now.
fn once_soon() -> String {
    let at = chrono::Utc::now() + chrono::Duration::seconds(4);
    use chrono::Timelike;
    format!("{} {} {} * * *", at.second(), at.minute(), at.hour())
}

/// `(actor, detail)` of every backup audit entry, and the number of backup journal rows.
async fn backup_records(db: &Db) -> (Vec<(String, serde_json::Value)>, i64) {
    let audits: Vec<(String, String)> = vantus::on_db!(db, p => sqlx::query_as(
        "SELECT actor, detail FROM audit_log WHERE action = 'backup.created' ORDER BY created_at"
    ).fetch_all(p).await)
    .unwrap();
    let journal = count(
        db,
        "SELECT COUNT(*) FROM job_runs WHERE job = 'backup' AND outcome = 'succeeded'",
    )
    .await;
    let audits = audits
        .into_iter()
        .map(|(actor, detail)| (actor, serde_json::from_str(&detail).unwrap()))
        .collect();
    (audits, journal)
}

fn keys(detail: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = detail.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn a_backup_is_recorded_the_same_way_from_the_cli_and_the_scheduler(engine: Engine) {
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().display().to_string();
    let schedule = once_soon();
    let app = TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_BACKUP_TO".into(), to.clone());
        env.insert("VANTUS_BACKUP_SCHEDULE".into(), schedule.clone());
    })
    .await;
    let db = app.server().app.store.primary().clone();
    // The scheduled run: wait until its journal row says it finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    while backup_records(&db).await.1 < 1 {
        assert!(Instant::now() < deadline, "the scheduled backup never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The command-line run.
    let mut env = base_env(&app.db);
    env.insert("VANTUS_BACKUP_TO".into(), to.clone());
    let o = run_binary(&["backup"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (audits, journal) = backup_records(&db).await;
    assert_eq!(journal, 2, "each backup has one journal row");
    assert_eq!(
        audits.len(),
        2,
        "each backup has one audit entry: {audits:?}"
    );
    assert!(audits[0].0.starts_with("scheduler:"), "{audits:?}");
    assert_eq!(audits[1].0, "cli");
    assert_eq!(
        keys(&audits[0].1),
        keys(&audits[1].1),
        "the same details whoever ran it"
    );
    for (_, detail) in &audits {
        assert_eq!(detail["encrypted"], false);
        assert_eq!(detail["pruned"], 0);
        assert!(detail["rows"].as_u64().unwrap() > 0);
    }
    app.stop().await;
}

both_engines!(
    an_early_return_in_a_transaction_body_commits_or_rolls_back,
    writes_in_one_transaction_roll_back_together,
    writes_in_one_transaction_commit_together,
    a_backup_is_recorded_the_same_way_from_the_cli_and_the_scheduler,
);
