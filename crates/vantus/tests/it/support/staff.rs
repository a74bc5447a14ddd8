//! Staff in tests: accounts made with `vantus user create`, signed in over HTTP, and the form
//! token their pages carry. Password hashing is made cheap ([`cheap_hashing`]): these tests
//! are about behaviour, the cost is measured in `bench/`.

use std::collections::HashMap;

use super::{Engine, ResponseExt, TestApp, TestDb, TestRequest, base_env, run_binary_with_stdin};

/// The password every test account gets (passes the policy).
pub const PASSWORD: &str = "correct horse battery staple";

/// Argon2id at its cheapest allowed cost.
pub fn cheap_hashing(env: &mut HashMap<String, String>) {
    env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
}

/// The test database's settings, with cheap hashing (behaviour, not cost, is tested here).
pub fn env(db: &TestDb) -> HashMap<String, String> {
    let mut env = base_env(db);
    cheap_hashing(&mut env);
    env
}

/// The settings the app's command line needs to reach its database, with cheap hashing.
pub fn cli_env(app: &TestApp) -> HashMap<String, String> {
    env(&app.db)
}

/// `vantus user create` for "Ada Lovelace" as `role` in the site tenant, password on stdin.
pub fn create_user(
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

/// Creates the account and panics (with the command's error) if it cannot.
pub fn must_create_user(app: &TestApp, email: &str, role: &str) {
    let o = create_user(&cli_env(app), email, role, PASSWORD);
    assert!(
        o.status.success(),
        "user create {email}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The session cookie's `name=value` from a sign-in response.
pub fn session_cookie(res: &reqwest::Response) -> String {
    let set = res.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// Signs in with `password` from `device`; the session cookie.
pub async fn signed_in_with(app: &TestApp, email: &str, password: &str, device: &str) -> String {
    let res = app
        .post_form("/admin/login", &[("email", email), ("password", password)])
        .header("user-agent", device)
        .await
        .assert_redirect_to("/admin");
    session_cookie(&res)
}

/// The session's form token, as a portal page carries it.
pub fn form_token(page: &str) -> String {
    let after = page
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .expect("a form token");
    after.split('"').next().unwrap().to_owned()
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

/// A signed-in session of `email` and its form token (read from the account page).
pub struct Signed {
    pub cookie: String,
    pub token: String,
}

pub async fn sign_in_as(app: &TestApp, email: &str) -> Signed {
    let cookie = signed_in_with(app, email, PASSWORD, "test").await;
    let token = form_token(&page_as(app, "/admin/account", &cookie).await);
    Signed { cookie, token }
}

/// Whether `cookie` opens the dashboard (else it is sent away: to sign in, or to enrolment).
pub async fn signed_in(app: &TestApp, cookie: &str) -> bool {
    let res = app.get("/admin").header("cookie", cookie).await;
    match res.status().as_u16() {
        200 => true,
        303 => false,
        other => panic!("GET /admin answered {other}"),
    }
}

/// How many audit entries have `action`.
pub async fn audit_count(app: &TestApp, action: &str) -> i64 {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action).fetch_one(p).await)
    .unwrap()
}

/// A server whose password hashing is cheap.
pub async fn spawn_cheap(engine: Engine) -> TestApp {
    spawn_cheap_with(engine, |_| {}).await
}

/// [`spawn_cheap`], with more of the environment changed by `adjust`.
pub async fn spawn_cheap_with(
    engine: Engine,
    adjust: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    TestApp::spawn_with(engine, |env| {
        cheap_hashing(env);
        adjust(env);
    })
    .await
}

/// An account with [`PASSWORD`], a member of `scope` as `role`, made through the library
/// (faster than the CLI when a test needs several); returns its id.
pub async fn account(
    app: &TestApp,
    email: &str,
    name: &str,
    scope: &vantus::tenancy::TenantScope,
    role: vantus::auth::permission::Role,
) -> uuid::Uuid {
    use vantus::auth::users::{self, LoginEmail};
    let cheap = vantus::config::Argon2Settings {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    };
    let hash = vantus::auth::password::Passwords::with_settings(cheap, 1)
        .unwrap()
        .hash(&secrecy::SecretString::from(PASSWORD))
        .await
        .unwrap();
    let email = LoginEmail::parse(email).unwrap();
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => users::create(conn, &email, name, Some(&hash), scope, role).await)
        .unwrap()
}

/// A new tenant (no members yet).
pub async fn new_tenant(app: &TestApp, slug: &str, name: &str) -> vantus::tenancy::TenantScope {
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => vantus::tenancy::create(conn, slug, name).await).unwrap()
}

/// Makes `user` a member of `scope` as `role`.
pub async fn join(
    app: &TestApp,
    user: uuid::Uuid,
    scope: &vantus::tenancy::TenantScope,
    role: vantus::auth::permission::Role,
) {
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => vantus::auth::users::add_membership(conn, user, scope, role).await)
        .unwrap()
}

/// Signs in with [`PASSWORD`]; the session cookie.
pub async fn session_of(app: &TestApp, email: &str) -> String {
    signed_in_with(app, email, PASSWORD, "test").await
}

/// Signs in with [`PASSWORD`] from `device`; the session cookie.
pub async fn signed_in_as(app: &TestApp, email: &str, device: &str) -> String {
    signed_in_with(app, email, PASSWORD, device).await
}

/// The sign-in form posted, to check its answer.
pub fn sign_in(app: &TestApp, email: &str, password: &str) -> TestRequest {
    app.post_form(
        "/admin/login",
        &[("email", email), ("password", password), ("next", "/admin")],
    )
}

/// Posts a portal form as the holder of `cookie`, with the session's form token.
pub async fn post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = form_token(&page_as(app, "/admin", cookie).await);
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    app.post_form(path, &all).header("cookie", cookie).await
}
