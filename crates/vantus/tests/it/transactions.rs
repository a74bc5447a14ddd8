//! Composable queries: query functions take a connection, so several of them (a tenant, its
//! content, the audit entry about it) share one transaction and stand or fall together, on
//! SQLite and PostgreSQL alike.

use vantus::audit::{self, Actor, AuditAction};
use vantus::content::{self, ContentKind, NewContent};
use vantus::store::{self, Conn, Db, Timestamp};
use vantus::tenancy;

use crate::both_engines;
use crate::support::{Engine, TestDb, open_db};

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

both_engines!(
    writes_in_one_transaction_roll_back_together,
    writes_in_one_transaction_commit_together,
);
