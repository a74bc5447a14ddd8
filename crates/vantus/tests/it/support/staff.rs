//! Staff in tests: accounts made with `vantus user create`, signing in, the session cookie,
//! portal pages as a signed-in member, and their form tokens.

use std::collections::HashMap;

use super::{Engine, ResponseExt, TestApp, TestDb, TestRequest, base_env, run_binary_with_stdin};

/// A password the policy accepts.
pub const PASSWORD: &str = "correct horse battery staple";

/// The test database's settings, with cheap hashing (behaviour, not cost, is tested here).
pub fn env(db: &TestDb) -> HashMap<String, String> {
    let mut env = base_env(db);
    env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    env
}

/// `vantus user create` for "Ada Lovelace", the password on stdin.
pub fn create(
    env: &HashMap<String, String>,
    email: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    create_named(env, email, "Ada Lovelace", role, password)
}

/// `vantus user create` with a name, the password on stdin.
pub fn create_named(
    env: &HashMap<String, String>,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    run_binary_with_stdin(
        &[
            "user",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--name",
            name,
            "--password-stdin",
        ],
        env,
        format!("{password}\n").as_bytes(),
    )
}

/// The session cookie's `name=value` from a sign-in response.
pub fn session_cookie(res: &reqwest::Response) -> String {
    let set = res.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// A server whose password hashing is cheap (behaviour, not cost, is tested here).
pub async fn spawn_cheap(engine: Engine) -> TestApp {
    spawn_cheap_with(engine, |_| {}).await
}

/// [`spawn_cheap`], with more of the environment changed by `adjust`.
pub async fn spawn_cheap_with(
    engine: Engine,
    adjust: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
        env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
        adjust(env);
    })
    .await
}

/// Whether `cookie` opens the dashboard (else it is sent to sign in).
pub async fn signed_in(app: &TestApp, cookie: &str) -> bool {
    let res = app.get("/admin").header("cookie", cookie).await;
    match res.status().as_u16() {
        200 => true,
        303 => {
            res.assert_redirect_to("/admin/login?next=%2Fadmin");
            false
        }
        other => panic!("GET /admin answered {other}"),
    }
}

/// A portal page as the holder of `cookie` sees it (it must answer 200).
pub async fn page_as(app: &TestApp, path: &str, cookie: &str) -> String {
    app.get(path)
        .header("cookie", cookie)
        .await
        .assert_status(200)
        .html()
        .await
}

/// The session's form token, as a portal page carries it.
pub fn form_token(page: &str) -> String {
    let after = page
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .expect("a form token");
    after.split('"').next().unwrap().to_owned()
}

pub fn sign_in(app: &TestApp, email: &str, password: &str) -> TestRequest {
    app.post_form(
        "/admin/login",
        &[("email", email), ("password", password), ("next", "/admin")],
    )
}

pub async fn audit_count(app: &TestApp, action: &str) -> i64 {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action).fetch_one(p).await)
    .unwrap()
}

pub async fn signed_in_as(app: &TestApp, email: &str, device: &str) -> String {
    signed_in_with(app, email, PASSWORD, device).await
}

pub async fn signed_in_with(app: &TestApp, email: &str, password: &str, device: &str) -> String {
    let res = app
        .post_form("/admin/login", &[("email", email), ("password", password)])
        .header("user-agent", device)
        .await
        .assert_redirect_to("/admin");
    session_cookie(&res)
}
