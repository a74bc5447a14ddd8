//! Configuration problems reported all at once, and `doctor` on an invalid configuration.

use std::collections::HashMap;

use crate::support::{Engine, TestDb, base_env, run_binary};

const SECRET: &str = "5f2d8c1a9e4b7036d1c8f5a2e9b4d7c0";
const MFA_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn with(db: &TestDb, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = base_env(db);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

pub(crate) fn findings_of<'a>(
    report: &'a serde_json::Value,
    check: &str,
) -> Vec<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .expect("findings is a list")
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

/// Two bad settings: `serve` names both, one line each, and exits 78 without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_names_every_bad_setting_at_once() {
    let db = TestDb::create(Engine::Sqlite).await;
    let env = with(
        &db,
        &[
            ("VANTUS_BODY_LIMIT", "big"),
            ("VANTUS_REQUEST_TIMEOUT", "soon"),
        ],
    );
    let o = run_binary(&["serve"], &env);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(lines.len(), 2, "one line per problem: {err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("VANTUS_REQUEST_TIMEOUT") && l.contains("\"soon\"")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("VANTUS_BODY_LIMIT") && l.contains("\"big\"")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("vantus: configuration error: ")),
        "{err}"
    );
}

/// Production without a public URL and with a bad body limit: doctor still reports, each
/// problem is a critical `config` finding, the checks that do not need them run, exit 1.
async fn doctor_reports_an_invalid_configuration_and_checks_the_rest(engine: Engine) {
    let db = TestDb::create(engine).await;
    let valid = with(
        &db,
        &[
            ("VANTUS_ENV", "production"),
            ("VANTUS_SECRET_KEY", SECRET),
            ("VANTUS_MFA_KEY", MFA_KEY),
            ("VANTUS_PUBLIC_URL", "https://vantus.example.com"),
        ],
    );
    let o = run_binary(&["migrate"], &valid);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut env = valid.clone();
    env.remove("VANTUS_PUBLIC_URL");
    env.insert("VANTUS_BODY_LIMIT".into(), "huge".into());

    let o = run_binary(&["doctor", "--json"], &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(report["status"], "critical");
    assert_eq!(report["environment"], "production");
    let config = findings_of(&report, "config");
    assert_eq!(config.len(), 2, "{report:#}");
    for (finding, setting) in config
        .iter()
        .zip(["VANTUS_PUBLIC_URL", "VANTUS_BODY_LIMIT"])
    {
        assert_eq!(finding["severity"], "critical", "{finding}");
        assert!(
            finding["finding"].as_str().unwrap().starts_with(setting),
            "{finding}"
        );
        assert!(!finding["impact"].as_str().unwrap().is_empty(), "{finding}");
        assert!(
            finding["fix"].as_str().unwrap().contains(setting),
            "{finding}"
        );
    }
    assert!(
        config[0]["impact"].as_str().unwrap().contains("public-url"),
        "says which check it stopped: {}",
        config[0]
    );
    // The checks that do not need the broken settings ran.
    for check in ["environment", "secrets", "database", "migrations", "disk"] {
        assert!(
            !findings_of(&report, check).is_empty(),
            "{check} ran: {report:#}"
        );
    }
    assert_eq!(findings_of(&report, "database")[0]["severity"], "ok");
    assert_eq!(findings_of(&report, "migrations")[0]["severity"], "ok");
    assert!(
        findings_of(&report, "public-url").is_empty(),
        "skipped: its setting is broken"
    );

    // The human report lists both too.
    let o = run_binary(&["doctor"], &env);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    for setting in ["VANTUS_PUBLIC_URL", "VANTUS_BODY_LIMIT"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("[CRITICAL] config") && l.contains(setting)),
            "{text}"
        );
    }
}

crate::both_engines!(doctor_reports_an_invalid_configuration_and_checks_the_rest);

/// Production refuses to start without VANTUS_MFA_KEY (the key that seals TOTP secrets), by
/// name, and `doctor` reports it as a critical configuration finding.
async fn production_refuses_to_start_without_vantus_mfa_key(engine: Engine) {
    let db = TestDb::create(engine).await;
    let env = with(
        &db,
        &[
            ("VANTUS_ENV", "production"),
            ("VANTUS_SECRET_KEY", SECRET),
            ("VANTUS_PUBLIC_URL", "https://vantus.example.com"),
        ],
    );
    let o = run_binary(&["serve"], &env);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("configuration error: VANTUS_MFA_KEY: is required in production"),
        "{}",
        stderr(&o)
    );
    assert!(
        !db.data_dir().join("mfa.key").exists(),
        "production never generates the key"
    );
    let o = run_binary(&["doctor", "--json"], &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = findings_of(&report, "config");
    assert!(
        config.iter().any(|f| f["severity"] == "critical"
            && f["finding"].as_str().unwrap().starts_with("VANTUS_MFA_KEY")),
        "{report:#}"
    );
}

crate::both_engines!(production_refuses_to_start_without_vantus_mfa_key);

/// A broken DATABASE_URL stops the database checks: doctor never falls back to the default
/// SQLite file and creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_never_connects_to_a_stand_in_database() {
    let db = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&db);
    env.insert("DATABASE_URL".into(), "mysql://u:hunter2@h/db".into());
    let o = run_binary(&["doctor", "--json"], &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = findings_of(&report, "config");
    assert_eq!(config.len(), 1, "{report:#}");
    assert!(
        config[0]["finding"]
            .as_str()
            .unwrap()
            .starts_with("DATABASE_URL")
    );
    assert!(!report.to_string().contains("hunter2"), "{report}");
    assert!(
        config[0]["impact"].as_str().unwrap().contains("database"),
        "{}",
        config[0]
    );
    for check in ["database", "database-engine", "migrations"] {
        assert!(
            findings_of(&report, check).is_empty(),
            "{check} skipped: {report:#}"
        );
    }
    assert!(
        !db.data_dir().join("vantus.db").exists(),
        "no stand-in database was created"
    );
    assert!(
        !findings_of(&report, "disk").is_empty(),
        "the disk check still ran"
    );
}
