//! Staff accounts from the command line: `vantus user create` makes the first owner on a new
//! database, stores only an argon2id hash, refuses weak passwords and second accounts for an
//! address, and audits the creation without the address.

use std::collections::HashMap;

use secrecy::SecretString;
use vantus::auth::password::Passwords;
use vantus::config::Argon2Settings;

use crate::both_engines;
use crate::support::staff::{self, form_token, page_as};
use crate::support::{
    Engine, ResponseExt, TestApp, TestDb, base_env, open_db, run_binary, run_binary_with_stdin,
};

const PASSWORD: &str = "correct horse battery staple";

/// The test database's settings, with cheap hashing (behaviour, not cost, is tested here).
fn env(db: &TestDb) -> HashMap<String, String> {
    let mut env = base_env(db);
    env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    env
}

fn create(
    env: &HashMap<String, String>,
    email: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    staff::create_user(env, email, role, password)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn the_first_owner_is_created_on_a_new_database(engine: Engine) {
    let db = TestDb::create(engine).await;
    let env = env(&db);
    let o = create(&env, "Ada@Example.COM", "owner", PASSWORD);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("created the owner account "), "{out}");
    assert!(!out.contains("ada@"), "the address is not printed: {out}");

    let pool = open_db(&db.url).await;
    let (id, email, hash): (uuid::Uuid, String, String) =
        vantus::on_db!(&pool, p => sqlx::query_as(
        "SELECT id, email, password_hash FROM users").fetch_one(p).await)
        .unwrap();
    assert_eq!(email, "ada@example.com", "stored lower-cased");
    assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    let cheap = Argon2Settings {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    };
    let passwords = Passwords::with_settings(cheap, 1).unwrap();
    assert!(
        passwords
            .verify(&SecretString::from(PASSWORD), Some(&hash))
            .await
    );
    let role: String = vantus::on_db!(&pool, p => sqlx::query_scalar(
        "SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1")
        .bind(id).fetch_one(p).await).unwrap();
    assert_eq!(role, "owner");
    let (resource, detail): (String, String) = vantus::on_db!(&pool, p => sqlx::query_as(
        "SELECT resource, detail FROM audit_log WHERE action = 'user.created'").fetch_one(p).await)
    .unwrap();
    assert_eq!(resource, format!("user:{id}"));
    assert!(
        detail.contains("owner") && !detail.to_lowercase().contains("ada"),
        "{detail}"
    );

    // One account per address, whatever its case.
    let again = create(&env, "ada@example.com", "viewer", "another good passphrase");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("--email: an account with this email address exists already"),
        "{}",
        stderr(&again)
    );
}

async fn bad_input_is_refused_with_a_reason_and_nothing_is_stored(engine: Engine) {
    let db = TestDb::create(engine).await;
    let env = env(&db);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "grace@example.com",
            "owner",
            "password1234",
            "the password: is one of the most common passwords",
        ),
        (
            "grace@example.com",
            "owner",
            "short",
            "the password: must be at least 12 characters",
        ),
        (
            "grace@example.com",
            "owner",
            "grace-and-more-words",
            "the password: must not contain your email address or name",
        ),
        (
            "grace@example.com",
            "superuser",
            PASSWORD,
            "--role: \"superuser\" is not a role; the roles are owner, admin, editor, sales, viewer",
        ),
        (
            "not-an-address",
            "owner",
            PASSWORD,
            "--email: must be an email address",
        ),
    ];
    for (email, role, password, expected) in cases {
        let o = create(&env, email, role, password);
        assert!(!o.status.success(), "{email} {role} {password}");
        assert!(
            stderr(&o).contains(expected),
            "expected {expected:?} in {}",
            stderr(&o)
        );
    }
    // Without a terminal and without --password-stdin/--password-file there is nobody to ask.
    let words = |line: &'static str| line.split(' ').collect::<Vec<_>>();
    let o = run_binary(
        &words("user create --email grace@example.com --role owner"),
        &env,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no password given"), "{}", stderr(&o));
    let o = run_binary_with_stdin(
        &words(
            "user create --email grace@example.com --role owner --tenant nowhere --password-stdin",
        ),
        &env,
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(
        stderr(&o).contains("--tenant: no tenant \"nowhere\""),
        "{}",
        stderr(&o)
    );

    let pool = open_db(&db.url).await;
    let users: i64 = vantus::on_db!(&pool, p => sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(p).await).unwrap();
    assert_eq!(users, 0, "nothing was stored");
}

/// The session cookie's `name=value` from a sign-in response.
fn session_cookie(res: &reqwest::Response) -> String {
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
async fn spawn_cheap(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
        env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    })
    .await
}

/// Whether `cookie` opens the dashboard; when not, it is sent to sign in.
async fn signed_in(app: &TestApp, cookie: &str) -> bool {
    let open = staff::signed_in(app, cookie).await;
    if !open {
        app.get("/admin")
            .header("cookie", cookie)
            .await
            .assert_redirect_to("/admin/login?next=%2Fadmin");
    }
    open
}

fn sign_in(app: &TestApp, email: &str, password: &str) -> crate::support::TestRequest {
    app.post_form(
        "/admin/login",
        &[("email", email), ("password", password), ("next", "/admin")],
    )
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action).fetch_one(p).await)
    .unwrap()
}

/// Sign-in: refused the same way for an unknown address and a wrong password; a session
/// whose token is stored only as a hash; the dashboard behind it; sign-out with its form
/// token, after which the cookie opens nothing.
async fn signing_in_and_out(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let o = create(&env(&app.db), "ada@example.com", "owner", PASSWORD);
    assert!(o.status.success(), "{}", stderr(&o));

    // Not signed in: pages go to sign-in and come back; JSON clients get 401.
    app.get("/admin")
        .await
        .assert_redirect_to("/admin/login?next=%2Fadmin");
    app.get("/admin")
        .header("accept", "application/json")
        .await
        .assert_status(401);
    let form = app
        .get("/admin/login?next=%2Fadmin")
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(
        form.contains(r#"autocomplete="current-password""#),
        "{form}"
    );

    // Refused: the same status and message whether the account exists or not.
    let wrong = sign_in(&app, "ada@example.com", "not the password at all")
        .await
        .assert_status(401)
        .html()
        .await;
    let unknown = sign_in(&app, "nobody@example.com", "not the password at all")
        .await
        .assert_status(401)
        .html()
        .await;
    assert!(wrong.contains("The email address or the password is not right."));
    assert_eq!(
        wrong.replace("ada@example.com", "EMAIL"),
        unknown.replace("nobody@example.com", "EMAIL"),
        "an unknown address is refused exactly like a wrong password"
    );
    assert_eq!(audit_count(&app, "login.failed").await, 2);

    let ok = sign_in(&app, "ADA@example.com", PASSWORD)
        .await
        .assert_redirect_to("/admin");
    let cookie = session_cookie(&ok);
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let db = app.server().app.store.primary();
    let ids: Vec<String> =
        vantus::on_db!(db, p => sqlx::query_scalar("SELECT id FROM sessions").fetch_all(p).await)
            .unwrap();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], token, "the token itself is not stored");
    assert_eq!(
        ids[0],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
    );

    let dashboard = page_as(&app, "/admin", &cookie).await;
    assert!(
        dashboard.contains("Signed in as Ada Lovelace (owner)"),
        "{dashboard}"
    );
    let csrf = form_token(&dashboard);

    // Signing out needs the session's form token.
    app.post_form("/admin/logout", &[("csrf_token", "forged")])
        .header("cookie", &cookie)
        .await
        .assert_status(403);
    let out = app
        .post_form("/admin/logout", &[("csrf_token", &csrf)])
        .header("cookie", &cookie)
        .await
        .assert_redirect_to("/admin/login");
    assert!(
        out.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(!signed_in(&app, &cookie).await, "cookie signed out");
    // A script may send the token as a header instead of a form field.
    let again = session_cookie(
        &sign_in(&app, "ada@example.com", PASSWORD)
            .await
            .assert_redirect_to("/admin"),
    );
    let page = page_as(&app, "/admin", &again).await;
    let csrf = form_token(&page);
    app.post_form("/admin/logout", &[])
        .header("cookie", &again)
        .header("x-csrf-token", &csrf)
        .await
        .assert_redirect_to("/admin/login");
    assert_eq!(audit_count(&app, "login.succeeded").await, 2);
    assert_eq!(audit_count(&app, "logout").await, 2);
    let details: Vec<String> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT actor || resource || detail FROM audit_log WHERE action LIKE 'log%'").fetch_all(p).await).unwrap();
    assert!(
        details.iter().all(|d| !d.contains("@example.com")),
        "no address in the audit log: {details:?}"
    );
}

/// Attempts on one account are limited from any client; over the limit, 429 with Retry-After.
async fn sign_in_attempts_are_limited_per_account(engine: Engine) {
    let app = TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_RATE_LIMIT_LOGIN_ACCOUNT".into(), "3/1m".into());
    })
    .await;
    for _ in 0..3 {
        sign_in(&app, "grace@example.com", "wrong password here")
            .await
            .assert_status(401);
    }
    let limited = sign_in(&app, "Grace@Example.com", "wrong password here")
        .await
        .assert_status(429);
    assert!(limited.headers().contains_key("retry-after"));
    // Another account is not affected.
    sign_in(&app, "other@example.com", "wrong password here")
        .await
        .assert_status(401);
}

async fn signed_in_as(app: &TestApp, email: &str, device: &str) -> String {
    signed_in_with(app, email, PASSWORD, device).await
}

async fn signed_in_with(app: &TestApp, email: &str, password: &str, device: &str) -> String {
    let res = app
        .post_form("/admin/login", &[("email", email), ("password", password)])
        .header("user-agent", device)
        .await
        .assert_redirect_to("/admin");
    session_cookie(&res)
}

/// The account page lists where the user is signed in; one session, or all the others, can
/// be ended there, and never another user's.
async fn sessions_are_listed_and_ended_from_the_account_page(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let env = env(&app.db);
    assert!(
        create(&env, "ada@example.com", "owner", PASSWORD)
            .status
            .success()
    );
    assert!(
        create(&env, "grace@example.com", "viewer", PASSWORD)
            .status
            .success()
    );
    let laptop = signed_in_as(&app, "ada@example.com", "Laptop browser").await;
    let phone = signed_in_as(&app, "ada@example.com", "Phone browser").await;
    let grace = signed_in_as(&app, "grace@example.com", "Grace's browser").await;

    let page = page_as(&app, "/admin/account", &laptop).await;
    assert!(
        page.contains("Laptop browser") && page.contains("Phone browser"),
        "{page}"
    );
    assert!(
        !page.contains("Grace"),
        "only one's own sessions are listed"
    );
    assert_eq!(page.matches("This session").count(), 1);
    let csrf = form_token(&page);
    let phone_id = page
        .split(r#"name="session" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let end = |session: String| {
        let (cookie, csrf) = (laptop.clone(), csrf.clone());
        let app = &app;
        async move {
            app.post_form(
                "/admin/account/sessions",
                &[("csrf_token", csrf.as_str()), ("session", session.as_str())],
            )
            .header("cookie", &cookie)
            .await
            .assert_redirect_to("/admin/account");
        }
    };
    end(phone_id).await;
    assert!(!signed_in(&app, &phone).await, "phone signed out");
    assert!(signed_in(&app, &laptop).await, "laptop still signed in");

    // Another user's session id, even known, is not ended.
    let db = app.server().app.store.primary();
    let graces: String = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'grace@example.com'")
        .fetch_one(p).await).unwrap();
    end(graces).await;
    assert!(signed_in(&app, &grace).await, "grace still signed in");

    // Everywhere else: every other session of this user ends, this one stays.
    let tablet = signed_in_as(&app, "ada@example.com", "Tablet browser").await;
    app.post_form(
        "/admin/account/sessions",
        &[("csrf_token", csrf.as_str()), ("all_others", "1")],
    )
    .header("cookie", &laptop)
    .await
    .assert_redirect_to("/admin/account");
    assert!(!signed_in(&app, &tablet).await, "tablet signed out");
    assert!(signed_in(&app, &laptop).await, "laptop still signed in");
    assert!(signed_in(&app, &grace).await, "grace still signed in");
    assert_eq!(audit_count(&app, "sessions.revoked").await, 3);
}

/// A password change needs the current password and a new one the policy accepts; it ends
/// every other session, continues this one under a new token, and the old password stops
/// working.
async fn a_password_change_ends_the_other_sessions(engine: Engine) {
    let app = spawn_cheap(engine).await;
    assert!(
        create(&env(&app.db), "ada@example.com", "owner", PASSWORD)
            .status
            .success()
    );
    let laptop = signed_in_as(&app, "ada@example.com", "Laptop browser").await;
    let phone = signed_in_as(&app, "ada@example.com", "Phone browser").await;
    let csrf = form_token(&page_as(&app, "/admin/account", &laptop).await);
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        let (cookie, csrf) = (laptop.clone(), csrf.clone());
        let app = &app;
        async move {
            app.post_form(
                "/admin/account/password",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("current_password", current),
                    ("new_password", new),
                    ("new_password_again", again),
                ],
            )
            .header("cookie", &cookie)
            .await
        }
    };
    const NEW: &str = "a brand new passphrase of mine";
    for (current, new, again, says) in [
        (
            "not my password",
            NEW,
            NEW,
            "The current password is not right.",
        ),
        (
            PASSWORD,
            NEW,
            "something else entirely",
            "The new password and its repetition differ.",
        ),
        (
            PASSWORD,
            "password1234",
            "password1234",
            "The new password is one of the most common passwords",
        ),
    ] {
        let page = change(current, new, again)
            .await
            .assert_status(422)
            .html()
            .await;
        assert!(page.contains(says), "{says} in {page}");
    }
    assert!(
        signed_in(&app, &phone).await,
        "a refused change ends nothing"
    );

    let done = change(PASSWORD, NEW, NEW)
        .await
        .assert_redirect_to("/admin/account");
    let renewed = session_cookie(&done);
    assert_ne!(renewed, laptop, "a new token after the change");
    assert!(signed_in(&app, &renewed).await);
    assert!(
        !signed_in(&app, &laptop).await,
        "the old token of this session ended"
    );
    assert!(!signed_in(&app, &phone).await, "the other session ended");
    sign_in(&app, "ada@example.com", PASSWORD)
        .await
        .assert_status(401);
    signed_in_with(&app, "ada@example.com", NEW, "Laptop browser").await;
    assert_eq!(audit_count(&app, "password.changed").await, 1);
}

both_engines!(
    a_password_change_ends_the_other_sessions,
    sessions_are_listed_and_ended_from_the_account_page,
    signing_in_and_out,
    sign_in_attempts_are_limited_per_account,
    the_first_owner_is_created_on_a_new_database,
    bad_input_is_refused_with_a_reason_and_nothing_is_stored,
);

/// Another site cannot make a browser change anything here: every state-changing route
/// refuses a cross-site request before its handler runs, the public form included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused_on_every_door() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for (path, body) in [
        (
            "/contact",
            "name=Mallory&email=m%40example.com&message=forged+from+elsewhere&consent=on",
        ),
        ("/admin/login", "email=ada%40example.com&password=guess"),
        ("/admin/logout", "csrf_token=x"),
        ("/api/leads", r#"{"name":"Mallory"}"#),
    ] {
        let res = app
            .post_form(path, &[])
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .header("accept", "application/json")
            .body(body)
            .await
            .assert_status(403)
            .json_value()
            .await;
        assert!(res.to_string().contains("other sites"), "{path}: {res}");
    }
    // The same form from this site is served as usual (here: refused for its fields).
    app.post_form(
        "/admin/login",
        &[("email", "ada@example.com"), ("password", "guess")],
    )
    .header("sec-fetch-site", "same-origin")
    .await
    .assert_status(401);
    let stored: i64 = vantus::on_db!(app.server().app.store.primary(), p =>
        sqlx::query_scalar("SELECT count(*) FROM leads").fetch_one(p).await)
    .unwrap();
    assert_eq!(stored, 0);
}
