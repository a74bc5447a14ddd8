//! The in-process limit of lead capture: the transaction a contact-form submission commits
//! (idempotency key, lead, outbox notification, audit entry: `leads::submit::store`, exactly
//! what `POST /contact` calls) run in a loop without HTTP, from concurrent tasks on the same
//! runtime and pool settings the server uses. `bench/run --scenarios leads` runs it beside the
//! HTTP load and reports the ratio.
//!
//! ```text
//! lead_tx --engine sqlite|sqlite-full|postgres [--database-url URL] [--transactions N] [--concurrency C]
//! ```
//!
//! `sqlite` is the server's own setting (WAL, `synchronous=NORMAL`); `sqlite-full` is the same
//! with `synchronous=FULL`, for comparison. `DATABASE_MAX_CONNECTIONS` sizes the pool as it
//! does the server's. Prints one JSON line: transactions per second and
//! the p50/p99 of one `store` call. Checks that exactly N real leads were added.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqlitePoolOptions, SqliteSynchronous};
use vantus::config::{Config, Overrides};
use vantus::leads::Leads;
use vantus::leads::form::ContactForm;
use vantus::leads::idempotency::{IdempotencyKey, SavedResponse};
use vantus::leads::queries::LeadSource;
use vantus::leads::submit::{self, Stored, Submission};
use vantus::lifecycle::Lifecycle;
use vantus::state::App;
use vantus::store::{Db, Store};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    engine: String,
    database_url: Option<String>,
    transactions: usize,
    concurrency: usize,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        engine: "sqlite".to_owned(),
        database_url: None,
        transactions: 20_000,
        concurrency: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => args.engine = value()?,
            "--database-url" => args.database_url = Some(value()?),
            "--transactions" => args.transactions = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            // `cargo bench` passes --bench to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !matches!(args.engine.as_str(), "sqlite" | "sqlite-full" | "postgres") {
        return Err(format!("unknown engine {}", args.engine).into());
    }
    if (args.engine == "postgres") != args.database_url.is_some() {
        return Err("--database-url goes with --engine postgres, and only with it".into());
    }
    if args.transactions == 0 || args.concurrency == 0 {
        return Err("--transactions and --concurrency must be at least 1".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("lead_tx: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let args = parse_args()?;
    let data = tempfile::tempdir()?;
    let mut env = HashMap::from([(
        "VANTUS_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    if let Some(url) = &args.database_url {
        env.insert("DATABASE_URL".to_owned(), url.clone());
    }
    // The pool size the server would get from the same setting (default 10).
    if let Ok(n) = std::env::var("DATABASE_MAX_CONNECTIONS") {
        env.insert("DATABASE_MAX_CONNECTIONS".to_owned(), n);
    }
    let config = Config::load(&env, &Overrides::default())?;
    let secret = vantus::secrets::resolve(&config.secret, &config.data_dir)?;
    let mut db = vantus::store::connect(&config.database).await?;
    if args.engine == "sqlite-full" {
        db = with_full_sync(db, config.database.max_connections).await?;
    }
    let synchronous = sqlite_synchronous(&db).await?;
    let (scope, _) = vantus::content::seed::migrate_and_seed(&db, &config.site_tenant).await?;
    let app = App::new(
        config,
        Store::new(db, None),
        scope,
        Arc::new(Lifecycle::default()),
        secret,
    )?;
    // The slice's state, as the server builds it: one writer committing in batches.
    let app = Leads::new(app);

    // Warm the pool and the statement caches; not counted.
    run_tasks(&app, args.concurrency.min(200), args.concurrency).await?;
    let before = real_leads(&app).await?;
    let started = Instant::now();
    let mut latencies = run_tasks(&app, args.transactions, args.concurrency).await?;
    let seconds = started.elapsed().as_secs_f64();
    let added = real_leads(&app).await? - before;
    if added != args.transactions as i64 {
        return Err(format!("{} transactions added {added} leads", args.transactions).into());
    }
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() - 1) * p / 100].as_secs_f64() * 1000.0;
    vantus::say!(
        "{}",
        serde_json::json!({
            "kind": "lead_tx",
            "engine": args.engine,
            "transactions": args.transactions,
            "concurrency": args.concurrency,
            "sqlite_synchronous": synchronous,
            "max_connections": app.config.database.max_connections,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "tx_per_s": (args.transactions as f64 / seconds).round(),
            "p50_ms": (pct(50) * 1000.0).round() / 1000.0,
            "p99_ms": (pct(99) * 1000.0).round() / 1000.0,
        })
    );
    app.store.close().await;
    Ok(())
}

/// `total` submissions from `concurrency` tasks; the latency of each `store` call.
async fn run_tasks(app: &Leads, total: usize, concurrency: usize) -> Result<Vec<Duration>, Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let share = total / concurrency + usize::from(task < total % concurrency);
        let app = app.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let submission = submission()?;
                let started = Instant::now();
                let stored =
                    submit::store(&app.writer, &app.site, &submission, |_, _| SavedResponse {
                        status: 303,
                        location: Some("/contact/thanks".to_owned()),
                        body: String::new(),
                    })
                    .await?;
                latencies.push(started.elapsed());
                if !matches!(stored, Stored::New { .. }) {
                    return Err::<_, Error>("a fresh idempotency key was not stored as new".into());
                }
            }
            Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    Ok(all)
}

/// A valid submission, as the form posts it, under a fresh idempotency key.
fn submission() -> Result<Submission, Error> {
    let form = ContactForm {
        name: Some("Ada Lovelace".to_owned()),
        email: Some("ada@example.com".to_owned()),
        company: Some("Analytical Engines Ltd".to_owned()),
        role: Some("Head of product".to_owned()),
        budget: Some("25k-50k".to_owned()),
        website: Some("https://engines.example.com".to_owned()),
        message: Some("We need a new customer portal before the spring launch.".to_owned()),
        consent: Some("on".to_owned()),
    };
    let lead = form.parse().map_err(|e| format!("{e:?}"))?;
    let key = IdempotencyKey::new(
        &format!("form:{}", uuid::Uuid::new_v4()),
        &Submission::fingerprint(&lead),
    )?;
    Ok(Submission {
        lead,
        source: LeadSource::Form,
        spam_reason: None,
        key: Some(key),
    })
}

async fn real_leads(app: &App) -> Result<i64, sqlx::Error> {
    vantus::on_db!(app.store.primary(), pool => {
        sqlx::query_scalar("SELECT count(*) FROM leads WHERE spam_reason IS NULL")
            .fetch_one(pool)
            .await
    })
}

/// The server's SQLite pool (`store::connect`, every option as it sets them) reopened with
/// `synchronous=FULL`.
async fn with_full_sync(db: Db, max_connections: u32) -> Result<Db, Error> {
    let Db::Sqlite(pool) = db else {
        return Err("sqlite-full needs the SQLite default".into());
    };
    let options = (*pool.connect_options())
        .clone()
        .synchronous(SqliteSynchronous::Full);
    pool.close().await;
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await?;
    Ok(Db::Sqlite(pool))
}

/// `PRAGMA synchronous` as a pooled connection has it (1 NORMAL, 2 FULL); None on PostgreSQL.
async fn sqlite_synchronous(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => Ok(Some(
            sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await?,
        )),
        Db::Postgres(_) => Ok(None),
    }
}
