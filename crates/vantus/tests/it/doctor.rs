//! `vantus doctor`: the audit's findings, executable.

use crate::support::{Engine, TestDb, base_env, run_binary};

const SECRET: &str = "5f2d8c1a9e4b7036d1c8f5a2e9b4d7c0";
const MFA_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A production configuration on `db` (strong secret, https public URL), plus `extra`.
fn production_env(
    db: &TestDb,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let mut env = base_env(db);
    for (k, v) in [
        ("VANTUS_ENV", "production"),
        ("VANTUS_SECRET_KEY", SECRET),
        ("VANTUS_MFA_KEY", MFA_KEY),
        ("VANTUS_PUBLIC_URL", "https://vantus.example.com"),
    ]
    .iter()
    .chain(extra)
    {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

fn findings(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn severity_of(report: &serde_json::Value, check: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| f["severity"].as_str().unwrap().to_owned())
        .collect()
}

/// Production on SQLite with no backups: the audit's findings, as critical, and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_on_sqlite_without_backups_is_critical() {
    let db = TestDb::create(Engine::Sqlite).await;
    let env = production_env(
        &db,
        &[
            ("REDIS_URL", "redis://127.0.0.1:9/0"),
            ("VANTUS_TRUSTED_PROXIES", "0.0.0.0/0"),
        ],
    );
    assert!(run_binary(&["migrate"], &env).status.success());
    let o = run_binary(&["doctor", "--json"], &env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "critical findings fail the command"
    );
    let report = findings(&o);
    assert_eq!(report["status"], "critical");
    assert_eq!(severity_of(&report, "database-engine"), ["critical"]);
    assert_eq!(severity_of(&report, "backups"), ["critical"]);
    assert_eq!(severity_of(&report, "log-shipping"), ["high"]);
    assert_eq!(
        severity_of(&report, "redis"),
        ["high"],
        "Redis configured but unreachable"
    );
    assert_eq!(severity_of(&report, "trusted-proxies"), ["high"]);
    assert_eq!(severity_of(&report, "error-reporting"), ["medium"]);
    for f in report["findings"].as_array().unwrap() {
        if f["severity"] != "ok" {
            assert!(
                !f["impact"].as_str().unwrap().is_empty() && !f["fix"].as_str().unwrap().is_empty(),
                "{f}"
            );
        }
    }
    // The human report says the same.
    let o = run_binary(&["doctor"], &env);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("[CRITICAL] database-engine") && text.contains("fix:"),
        "{text}"
    );
}

/// PostgreSQL, scheduled off-disk backups with a fresh backup and a passed drill, logs shipped,
/// errors reported: nothing critical, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_postgres_deployment_has_no_critical_finding() {
    let db = TestDb::create(Engine::Postgres).await;
    let backups = tempfile::tempdir().unwrap();
    let redis = std::env::var("VANTUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let env = production_env(
        &db,
        &[
            ("VANTUS_BACKUP_TO", backups.path().to_str().unwrap()),
            ("VANTUS_BACKUP_SCHEDULE", "0 3 * * *"),
            ("VANTUS_RESTORE_DRILL_SCHEDULE", "30 4 * * 0"),
            ("VANTUS_LOG_SHIPPING", "vector"),
            ("SENTRY_DSN", "https://public@sentry.example.com/42"),
            ("VANTUS_METRICS_LISTEN", "127.0.0.1:9"),
            ("REDIS_URL", &redis),
        ],
    );
    assert!(run_binary(&["migrate"], &env).status.success());
    let o = run_binary(&["backup", "--json"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let archive: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = run_binary(
        &[
            "restore",
            "--verify-only",
            archive["location"].as_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = run_binary(&["doctor", "--json"], &env);
    let report = findings(&o);
    assert_eq!(o.status.code(), Some(0), "{report:#}");
    assert_ne!(report["status"], "critical");
    for check in [
        "database-engine",
        "secrets",
        "database",
        "migrations",
        "backups",
        "restore-drill",
        "log-shipping",
        "error-reporting",
        "clock",
        "redis",
    ] {
        assert_eq!(severity_of(&report, check), ["ok"], "{check}: {report:#}");
    }
}

/// Backups in a folder on the same disk as the SQLite database are flagged: one failure would
/// take both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_on_the_database_disk_are_flagged() {
    let db = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&db);
    env.insert(
        "VANTUS_BACKUP_TO".into(),
        db.dir.path().join("backups").display().to_string(),
    );
    assert!(run_binary(&["migrate"], &env).status.success());
    let report = findings(&run_binary(&["doctor", "--json"], &env));
    assert_eq!(
        severity_of(&report, "backup-location"),
        ["high"],
        "{report:#}"
    );
    assert_eq!(severity_of(&report, "backup-schedule"), ["high"]);
}

/// A fresh installation whose first scheduled backup is still ahead is warned, not failed: a
/// first deploy's smoke test must be able to pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_installation_waits_for_its_first_scheduled_backup() {
    let db = TestDb::create(Engine::Postgres).await;
    let backups = tempfile::tempdir().unwrap();
    let env = production_env(
        &db,
        &[
            ("VANTUS_BACKUP_TO", backups.path().to_str().unwrap()),
            ("VANTUS_BACKUP_SCHEDULE", "0 3 * * *"),
            ("VANTUS_BACKUP_RUNNER", "external"),
        ],
    );
    assert!(run_binary(&["migrate"], &env).status.success());
    let report = findings(&run_binary(&["doctor", "--json"], &env));
    assert_eq!(severity_of(&report, "backups"), ["medium"], "{report:#}");
    assert!(
        severity_of(&report, "backup-schedule").is_empty(),
        "an external runner is a schedule"
    );
}
