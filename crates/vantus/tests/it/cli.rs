//! The `vantus` executable as operators meet it: help, exit codes, configuration errors,
//! the embedded default, logs, healthcheck and graceful shutdown.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use vantus::config::SETTINGS;

use crate::support::pg_cluster::is_root;
use crate::support::{
    Engine, ResponseExt, ServeProcess, TestDb, base_env, binary, eventually, pg_admin, run_binary,
};

const STRONG_SECRET: &str = "9c1e4b7a2f6d8e3051c9a7f2e4b6d8a1";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A configuration error is one line naming the setting, exit code 78, no panic.
fn assert_config_error(o: &std::process::Output, setting: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(78),
        "exit code for a configuration error; stderr: {err}"
    );
    assert!(err.contains(setting), "names {setting}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "no panic: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
}

#[test]
fn help_documents_every_command_and_setting() {
    let top = run_binary(&["--help"], &HashMap::new());
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for cmd in [
        "serve",
        "migrate",
        "healthcheck",
        "version",
        "backup",
        "restore",
        "db",
        "doctor",
        "outbox",
        "audit",
    ] {
        assert!(text.contains(cmd), "--help lists {cmd}");
        let o = run_binary(&[cmd, "--help"], &HashMap::new());
        assert!(o.status.success(), "{cmd} --help");
    }
    for cmd in [
        &["serve"][..],
        &["migrate"],
        &["backup"],
        &["restore"],
        &["doctor"],
        &["db", "copy"],
        &["db", "generate"],
        &["outbox", "status"],
        &["outbox", "retry"],
        &["audit", "verify"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = String::from_utf8_lossy(&run_binary(&args, &HashMap::new()).stdout).into_owned();
        for s in SETTINGS {
            assert!(help.contains(s.env), "`{cmd:?} --help` documents {}", s.env);
        }
    }
    let o = run_binary(&["frobnicate"], &HashMap::new());
    assert_eq!(
        o.status.code(),
        Some(2),
        "unknown subcommand is a usage error"
    );
}

#[test]
fn readme_documents_every_setting() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    for s in SETTINGS {
        assert!(
            readme.contains(&format!("`{}`", s.env)),
            "README's configuration table lists {}",
            s.env
        );
    }
}

#[test]
fn version_prints_text_and_json() {
    let o = run_binary(&["version"], &HashMap::new());
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .starts_with(&format!("vantus {}", env!("CARGO_PKG_VERSION")))
    );
    let o = run_binary(&["version", "--json"], &HashMap::new());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

/// A reader that stops early (`vantus routes | head -1`) ends a printing command quietly:
/// success, nothing on standard error, no panic. The pipe's read end is closed before the
/// command starts, so its first write fails every time.
#[test]
fn a_closed_pipe_ends_printing_commands_quietly() {
    for words in [
        &["routes"][..],
        &["routes", "--json"],
        &["version", "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(binary())
            .args(words)
            .stdout(writer)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{words:?}: {:?}\n{}",
            o.status,
            stderr(&o)
        );
        assert_eq!(stderr(&o), "", "{words:?}");
    }
}

const MFA_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Production refuses to start without each secret: VANTUS_SECRET_KEY, VANTUS_MFA_KEY.
#[test]
fn production_without_secrets_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let mut env = HashMap::from([
        ("VANTUS_ENV".to_owned(), "production".to_owned()),
        ("VANTUS_DATA_DIR".to_owned(), data),
        (
            "VANTUS_PUBLIC_URL".to_owned(),
            "https://vantus.example.com".to_owned(),
        ),
        ("VANTUS_MFA_KEY".to_owned(), MFA_KEY.to_owned()),
    ]);
    let o = run_binary(&["serve"], &env);
    assert_config_error(&o, "VANTUS_SECRET_KEY");
    env.insert("VANTUS_SECRET_KEY".into(), "short".into());
    assert_config_error(&run_binary(&["serve"], &env), "VANTUS_SECRET_KEY");
    env.insert("VANTUS_SECRET_KEY".into(), STRONG_SECRET.into());
    // The key that seals TOTP secrets is required too, and is never generated in production.
    env.remove("VANTUS_MFA_KEY");
    assert_config_error(&run_binary(&["serve"], &env), "VANTUS_MFA_KEY");
    env.insert("VANTUS_MFA_KEY".into(), "not a key".into());
    assert_config_error(&run_binary(&["serve"], &env), "VANTUS_MFA_KEY");
    env.insert("VANTUS_MFA_KEY".into(), MFA_KEY.into());
    env.remove("VANTUS_PUBLIC_URL");
    assert_config_error(&run_binary(&["serve"], &env), "VANTUS_PUBLIC_URL");
    assert!(
        !dir.path().join("secret.key").exists() && !dir.path().join("mfa.key").exists(),
        "production never generates a secret"
    );
}

#[test]
fn invalid_settings_are_named_without_echoing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let base = HashMap::from([(
        "VANTUS_DATA_DIR".to_owned(),
        dir.path().display().to_string(),
    )]);
    for (name, value) in [
        ("DATABASE_URL", "mysql://admin:hunter2@db/vantus"),
        ("DATABASE_URL", "this is not a url hunter2"),
        ("VANTUS_LISTEN", "localhost"),
        ("VANTUS_REQUEST_TIMEOUT", "forever"),
        ("RUST_LOG", "vantus=loud[["),
    ] {
        let mut env = base.clone();
        env.insert(name.into(), value.into());
        let o = run_binary(&["serve"], &env);
        assert_config_error(&o, name);
        assert!(
            !stderr(&o).contains("hunter2"),
            "the password is not echoed: {}",
            stderr(&o)
        );
    }
    let mut env = base.clone();
    env.insert(
        "VANTUS_SECRET_KEY_FILE".into(),
        "/nonexistent/secret".into(),
    );
    assert_config_error(&run_binary(&["serve"], &env), "VANTUS_SECRET_KEY");
}

#[test]
fn a_data_folder_that_cannot_be_written_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("readonly");
    std::fs::create_dir(&data).unwrap();
    let mut env = HashMap::from([("VANTUS_DATA_DIR".to_owned(), data.display().to_string())]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = if is_root() {
        // root ignores permissions: run as an unprivileged user, as a container would.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("vantus");
        std::fs::copy(binary(), &exe).unwrap();
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&exe)
            .arg("serve")
            .env_clear()
            .envs(&env)
            .output()
            .unwrap()
    } else {
        run_binary(&["serve"], &env)
    };
    assert_config_error(&output, "VANTUS_DATA_DIR");
    assert!(
        stderr(&output).contains("not writable"),
        "{}",
        stderr(&output)
    );

    // A file where the folder should be.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let env = HashMap::from([("VANTUS_DATA_DIR".to_owned(), file.display().to_string())]);
    assert_config_error(&run_binary(&["serve"], &env), "VANTUS_DATA_DIR");
}

/// No configuration at all: `./var` is created with the database and a private secret, and
/// a second start reuses both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_creates_and_reuses_its_data_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let env = HashMap::from([("VANTUS_LISTEN".to_owned(), "127.0.0.1:0".to_owned())]);
    let start = || {
        let mut cmd = Command::new(binary());
        cmd.current_dir(cwd.path());
        cmd
    };
    let mut first = ServeProcess::spawn_with(&env, start()).await;
    first.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(first.get("/").await.status(), 200);
    let var = cwd.path().join("var");
    assert!(var.join("vantus.db").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(var.join("secret.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(var.join("secret.key")).unwrap();
    first.terminate();
    assert_eq!(first.wait_exit(Duration::from_secs(20)).await, Some(0));
    let seeded = |p: &ServeProcess| {
        p.log_lines().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "database ready").then(|| v["seeded"].as_u64().unwrap())
        })
    };
    assert!(seeded(&first).unwrap() >= 14);

    let mut second = ServeProcess::spawn_with(&env, start()).await;
    second.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(seeded(&second), Some(0), "the second start adds nothing");
    assert_eq!(
        std::fs::read_to_string(var.join("secret.key")).unwrap(),
        secret,
        "the secret is kept"
    );
    second.terminate();
    assert_eq!(second.wait_exit(Duration::from_secs(20)).await, Some(0));
}

/// Logs are JSON lines with the request fields, and never contain the secret key or the
/// database password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_without_secrets() {
    let db = TestDb::create(Engine::Postgres).await;
    let mut env = base_env(&db);
    // Trust authentication ignores the password, so it can be any string we then look for.
    let with_password = db.url.replace("postgres@", "postgres:hunter2-pw@");
    env.insert("DATABASE_URL".into(), with_password);
    env.insert("VANTUS_SECRET_KEY".into(), STRONG_SECRET.into());
    env.insert("RUST_LOG".into(), "debug".into());
    let mut p = ServeProcess::start(&env).await;
    p.get("/work?email=someone@example.com")
        .header("x-request-id", "trace-me-1")
        .await;
    p.get("/nope").await;
    p.terminate();
    assert_eq!(p.wait_exit(Duration::from_secs(20)).await, Some(0));

    let lines = p.log_lines();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(!line.contains("hunter2-pw"), "password leaked: {line}");
        assert!(!line.contains(STRONG_SECRET), "secret leaked: {line}");
        assert!(
            !line.contains("someone@example.com"),
            "query strings are not logged: {line}"
        );
    }
    let request = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "request" && v["request_id"] == "trace-me-1")
        .expect("an access log line for the request");
    assert_eq!(request["method"], "GET");
    assert_eq!(request["path"], "/work");
    assert_eq!(request["status"], 200);
    assert!(request["latency_ms"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exit_codes() {
    let db = TestDb::create(Engine::Sqlite).await;
    let p = ServeProcess::start(&base_env(&db)).await;
    let ok = run_binary(
        &["healthcheck", "--url", &p.url("/readyz")],
        &HashMap::new(),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let env = HashMap::from([("VANTUS_LISTEN".to_owned(), p.addr.clone())]);
    assert!(
        run_binary(&["healthcheck"], &env).status.success(),
        "default URL from VANTUS_LISTEN"
    );
    drop(p);
    let down = run_binary(
        &[
            "healthcheck",
            "--url",
            "http://127.0.0.1:9/readyz",
            "--timeout",
            "1s",
        ],
        &HashMap::new(),
    );
    assert_eq!(down.status.code(), Some(1));
    assert!(stderr(&down).contains("did not answer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_applies_and_reports() {
    let db = TestDb::create(Engine::Postgres).await;
    let env = base_env(&db);
    let o = run_binary(&["migrate"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("site content"));
    let o = run_binary(&["migrate", "--status"], &env);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("applied") && !out.contains("pending"), "{out}");
}

/// SIGTERM while a request is in flight: the request completes, then the process exits 0.
/// The request is made slow for real: its query waits on a table lock the test holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    use sqlx::Connection;
    let db = TestDb::create(Engine::Postgres).await;
    let mut p = ServeProcess::start(&base_env(&db)).await;

    let mut blocker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE content_items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();

    let slow_request = p.get("/insights/graphql-at-scale");
    let slow =
        tokio::spawn(async move { slow_request.try_send().await.map(|r| r.status().as_u16()) });
    // Wait until the request's query is really waiting on the lock.
    let db_name = db.url.rsplit('/').next().unwrap().to_owned();
    eventually(
        Duration::from_secs(10),
        "the request to wait on the lock in the database",
        async || {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            )
            .bind(&db_name)
            .fetch_one(&mut blocker)
            .await
            .unwrap();
            waiting > 0
        },
    )
    .await;
    p.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the process waits for the in-flight request"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();

    assert_eq!(
        slow.await
            .unwrap()
            .expect("the in-flight request is answered"),
        200
    );
    assert_eq!(p.wait_exit(Duration::from_secs(20)).await, Some(0));
    assert!(
        p.log_lines().iter().any(|l| l.contains("\"drained\":true")),
        "drained cleanly"
    );
    drop(blocker);
    pg_admin("SELECT 1").await;
}

/// A SIGTERM sent the moment the server answers is not lost: start-up had its own signal
/// listener, and one that arrived before the next was installed left the process running
/// (about one cold start in 25 under bench load). Several starts, each stopped at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_start_stops_the_server() {
    let db = TestDb::create(Engine::Sqlite).await;
    for attempt in 1..=6 {
        let mut p = ServeProcess::start(&base_env(&db)).await;
        p.terminate();
        assert_eq!(
            p.wait_exit(Duration::from_secs(15)).await,
            Some(0),
            "start {attempt}: the process exits 0 after SIGTERM"
        );
    }
}

/// With VANTUS_SHUTDOWN_DELAY, SIGTERM first makes the process a lame duck: readiness fails at
/// once, so a load balancer takes it out, while new connections are still served; only after
/// the delay does it stop accepting, and it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_delay_fails_readiness_first_and_goes_on_serving() {
    let db = TestDb::create(Engine::Sqlite).await;
    let mut env = base_env(&db);
    env.insert("VANTUS_SHUTDOWN_DELAY".into(), "2s".into());
    let mut p = ServeProcess::start(&env).await;
    p.get("/readyz").await.assert_status(200);
    let signalled = std::time::Instant::now();
    p.terminate();
    eventually(
        Duration::from_secs(1),
        "readiness to fail after SIGTERM",
        async || {
            p.get("/readyz")
                .try_send()
                .await
                .is_ok_and(|r| r.status() == 503)
        },
    )
    .await;
    // A new connection (the client pools none across these) is still served.
    let fresh = crate::support::get_url(p.url("/")).await;
    assert_eq!(fresh.status(), 200, "served during the delay");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the check ran inside the delay"
    );
    assert_eq!(p.wait_exit(Duration::from_secs(20)).await, Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the process stayed up for the delay"
    );
}

/// A request slower than VANTUS_REQUEST_TIMEOUT is answered 504 naming the limit, and the
/// server carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_with_a_clear_error() {
    use sqlx::Connection;
    let db = TestDb::create(Engine::Postgres).await;
    let mut env = base_env(&db);
    env.insert("VANTUS_REQUEST_TIMEOUT".into(), "1s".into());
    let p = ServeProcess::start(&env).await;
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE content_items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let res = p.get("/work").await;
    assert_eq!(res.status(), 504);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1s limit"),
        "{body}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
    assert_eq!(p.get("/work").await.status(), 200);
}
