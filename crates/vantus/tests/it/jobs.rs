//! Scheduled jobs with two `vantus serve` processes on one PostgreSQL database: each tick runs
//! exactly once, on the leader; killing the leader hands the job to the other process.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{Engine, ServeProcess, TestDb, base_env, eventually, get_url, open_db};

async fn runs(db: &vantus::store::Db) -> Vec<(String, String, String)> {
    let vantus::store::Db::Postgres(p) = db else {
        unreachable!()
    };
    sqlx::query_as::<_, (String, String, String)>(
        "SELECT scheduled_for::text, instance, outcome FROM job_runs WHERE job = 'backup' AND instance <> 'cli' ORDER BY scheduled_for",
    )
    .fetch_all(p)
    .await
    .unwrap()
}

async fn wait_for_runs(
    db: &vantus::store::Db,
    at_least: usize,
    pred: impl Fn(&(String, String, String)) -> bool,
) -> Vec<(String, String, String)> {
    eventually(
        Duration::from_secs(60),
        &format!("{at_least} matching job runs"),
        async || {
            let all = runs(db).await;
            if all.iter().filter(|r| pred(r)).count() >= at_least {
                Ok(all)
            } else {
                Err(format!("{all:?}"))
            }
        },
    )
    .await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_runs_once_per_tick_and_fails_over() {
    let db = TestDb::create(Engine::Postgres).await;
    let backups = tempfile::tempdir().unwrap();
    let env_for = |metrics_port: u16| -> HashMap<String, String> {
        let mut env = base_env(&db);
        env.insert(
            "VANTUS_BACKUP_TO".into(),
            backups.path().display().to_string(),
        );
        // Every two seconds: many ticks in a short test.
        env.insert("VANTUS_BACKUP_SCHEDULE".into(), "*/2 * * * * *".into());
        env.insert(
            "VANTUS_METRICS_LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        );
        env
    };
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = ServeProcess::start(&env_for(port_a)).await;
    let mut b = ServeProcess::start(&env_for(port_b)).await;
    let pg = open_db(&db.url).await;

    let first = wait_for_runs(&pg, 4, |r| r.2 == "succeeded").await;
    let mut ticks: Vec<&String> = first.iter().map(|r| &r.0).collect();
    ticks.dedup();
    assert_eq!(
        ticks.len(),
        first.len(),
        "each tick ran exactly once: {first:?}"
    );
    let leaders: std::collections::BTreeSet<&String> = first.iter().map(|r| &r.1).collect();
    assert_eq!(leaders.len(), 1, "one leader ran every tick: {first:?}");
    let leader = (*leaders.iter().next().unwrap()).clone();

    // The metrics show the runs.
    let (leader_proc, other_proc, leader_port) = if leader.ends_with(&format!("-{}", a.child.id()))
    {
        (&mut a, &mut b, port_a)
    } else {
        assert!(
            leader.ends_with(&format!("-{}", b.child.id())),
            "leader {leader} is one of ours"
        );
        (&mut b, &mut a, port_b)
    };
    let metrics = get_url(format!("http://127.0.0.1:{leader_port}/metrics"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vantus_job_runs_total{job=\"backup\",outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vantus_backup_last_success_timestamp_seconds"),
        "{metrics}"
    );

    // Kill the leader without warning; the other process takes over.
    leader_proc.child.kill().unwrap();
    leader_proc.child.wait().unwrap();
    let other = format!("-{}", other_proc.child.id());
    let after = wait_for_runs(&pg, 3, |r| r.1.ends_with(&other) && r.2 == "succeeded").await;
    let mut ticks: Vec<&String> = after.iter().map(|r| &r.0).collect();
    ticks.dedup();
    assert_eq!(
        ticks.len(),
        after.len(),
        "still exactly once per tick after the failover: {after:?}"
    );
    pg.close().await;
}

/// A run that had nothing to do (`Ran::Idle`) takes its claim back: only the runs that did
/// something stay in `job_runs`, so a frequent sweep does not grow the journal every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_runs_are_not_journalled() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use vantus::jobs::Ran;

    let test_db = TestDb::create(Engine::Sqlite).await;
    let db = open_db(&test_db.url).await;
    vantus::store::migrate::migrate_to(&db, None).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let run: vantus::jobs::JobFn = Arc::new(move || {
        // Every third run finds work; the others are idle.
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(if n % 3 == 2 {
                Ran::Worked(format!("run {n} did work"))
            } else {
                Ran::Idle
            })
        })
    });
    let mut scheduler = vantus::jobs::Scheduler::new(db.clone(), "test-instance".into());
    scheduler.add(
        "sometimes-idle",
        vantus::config::Schedule::parse("TEST_SCHEDULE", "* * * * * *").unwrap(),
        run,
    );
    let stop = tokio_util::sync::CancellationToken::new();
    scheduler.spawn(stop.clone());
    let journal = eventually(Duration::from_secs(30), "two runs that did work", async || {
        let rows: Vec<(String, Option<String>)> = vantus::on_db!(&db, pool => sqlx::query_as(
            "SELECT outcome, detail FROM job_runs WHERE job = 'sometimes-idle' ORDER BY scheduled_for"
        ).fetch_all(pool).await.unwrap());
        if rows.iter().filter(|r| r.0 == "succeeded").count() >= 2 {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    stop.cancel();
    assert!(
        calls.load(Ordering::SeqCst) >= 6,
        "the job ran on every tick"
    );
    // A run in flight holds its claim ('running') until it ends; the finished ones are checked.
    for (_, detail) in journal.iter().filter(|r| r.0 != "running") {
        assert!(
            detail.as_deref().is_some_and(|d| d.ends_with("did work")),
            "an idle run was journalled: {journal:?}"
        );
    }
    db.close().await;
}
