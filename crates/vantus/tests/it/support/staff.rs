//! Staff in HTTP tests: a server with cheap password hashing, accounts made through the
//! library (no CLI round trip), signing in, reading portal pages and posting their forms
//! with the session's form token.

use secrecy::SecretString;
use uuid::Uuid;
use vantus::auth::password::Passwords;
use vantus::auth::permission::Role;
use vantus::auth::users::{self, LoginEmail};
use vantus::config::Argon2Settings;
use vantus::tenancy::{self, TenantScope};

use super::{Engine, ResponseExt, TestApp};

/// The password of every account [`account`] makes.
pub const PASSWORD: &str = "correct horse battery staple";

/// A server whose password hashing is cheap (behaviour, not cost, is tested here).
pub async fn spawn_cheap(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
        env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    })
    .await
}

/// An account with [`PASSWORD`], a member of `scope` as `role`; returns its id.
pub async fn account(
    app: &TestApp,
    email: &str,
    name: &str,
    scope: &TenantScope,
    role: Role,
) -> Uuid {
    let cheap = Argon2Settings {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    };
    let hash = Passwords::with_settings(cheap, 1)
        .unwrap()
        .hash(&SecretString::from(PASSWORD))
        .await
        .unwrap();
    let email = LoginEmail::parse(email).unwrap();
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => users::create(conn, &email, name, Some(&hash), scope, role).await)
        .unwrap()
}

pub async fn new_tenant(app: &TestApp, slug: &str, name: &str) -> TenantScope {
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => tenancy::create(conn, slug, name).await).unwrap()
}

/// Makes `user` a member of `scope` as `role`.
pub async fn join(app: &TestApp, user: Uuid, scope: &TenantScope, role: Role) {
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => users::add_membership(conn, user, scope, role).await).unwrap()
}

/// Signs in with [`PASSWORD`]; returns the session cookie (`name=value`).
pub async fn sign_in(app: &TestApp, email: &str) -> String {
    let res = app
        .post_form("/admin/login", &[("email", email), ("password", PASSWORD)])
        .await
        .assert_redirect_to("/admin");
    cookie_of(&res)
}

/// The `name=value` of the cookie a response sets.
pub fn cookie_of(res: &reqwest::Response) -> String {
    let set = res.headers()[reqwest::header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
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
