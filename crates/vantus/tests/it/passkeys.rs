//! Passkeys over real HTTP with a software authenticator: registered from the account page,
//! then the whole sign-in; ceremonies kept in the database (finished on another replica, once,
//! before they expire); forged answers (wrong origin, a counter that went back, another
//! account's credential), disabled accounts and removed passkeys refused; and the
//! second-factor functions the MFA step uses.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use vantus::auth::passkeys::{self, Refusal, RelyingParty};
use vantus::store::Timestamp;

use crate::both_engines;
use crate::support::soft_authenticator::SoftAuthenticator;
use crate::support::staff::{
    PASSWORD, audit_count, cli_env, create_user, form_token, page_as, session_cookie, signed_in,
    signed_in_with,
};
use crate::support::{Engine, ResponseExt, TestApp};

/// The public URL of the test servers: WebAuthn needs a domain, and localhost is one (and a
/// secure context for browsers). The authenticator writes it into clientDataJSON.
const ORIGIN: &str = "http://localhost";

fn passkey_env(env: &mut HashMap<String, String>) {
    env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    env.insert("VANTUS_PUBLIC_URL".into(), ORIGIN.into());
}

async fn spawn(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, passkey_env).await
}

/// Creates an account with the CLI and signs it in with its password; the session cookie.
async fn account(app: &TestApp, email: &str, role: &str, device: &str) -> String {
    let o = create_user(&cli_env(app), email, role, PASSWORD);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    signed_in_with(app, email, PASSWORD, device).await
}

/// Runs the registration ceremony for the holder of `cookie`; the finish response.
async fn register(
    app: &TestApp,
    cookie: &str,
    authenticator: &mut SoftAuthenticator,
    name: &str,
) -> reqwest::Response {
    let csrf = form_token(&page_as(app, "/admin/account", cookie).await);
    let started = app
        .post_json("/admin/account/passkeys/register/start", &json!({}))
        .header("cookie", cookie)
        .header("x-csrf-token", &csrf)
        .await
        .assert_status(200)
        .json_value()
        .await;
    let selection = &started["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{started}");
    assert_eq!(selection["userVerification"], "required", "{started}");
    let credential = authenticator.register(&started["options"]);
    app.post_json(
        "/admin/account/passkeys/register/finish",
        &json!({ "ceremony": started["ceremony"], "name": name, "credential": credential }),
    )
    .header("cookie", cookie)
    .header("x-csrf-token", &csrf)
    .await
}

/// `POST /admin/login/passkey/start` on the server at `base`: `{ceremony, options}`.
async fn sign_in_start(client: &reqwest::Client, base: &str) -> Value {
    let res = client
        .post(format!("{base}/admin/login/passkey/start"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .assert_status(200)
        .json_value()
        .await;
    let pk = &res["options"]["publicKey"];
    assert_eq!(pk["userVerification"], "required", "{res}");
    assert!(
        pk["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "a passwordless sign-in names no account: {res}"
    );
    res
}

/// `POST /admin/login/passkey/finish` on the server at `base`.
async fn sign_in_finish(
    client: &reqwest::Client,
    base: &str,
    started: &Value,
    credential: &Value,
) -> reqwest::Response {
    client
        .post(format!("{base}/admin/login/passkey/finish"))
        .json(&json!({ "ceremony": started["ceremony"], "credential": credential, "next": "/admin/account" }))
        .send()
        .await
        .unwrap()
}

/// A whole passwordless sign-in with `authenticator`; the finish response.
async fn sign_in(app: &TestApp, authenticator: &mut SoftAuthenticator) -> reqwest::Response {
    let started = sign_in_start(&app.client, &app.base).await;
    let credential = authenticator.assert(&started["options"]);
    sign_in_finish(&app.client, &app.base, &started, &credential).await
}

/// A server with an owner (ada@example.com) signed in by password who registered a passkey:
/// the server, the session cookie, the authenticator.
async fn owner_with_passkey(engine: Engine) -> (TestApp, String, SoftAuthenticator) {
    let app = spawn(engine).await;
    let cookie = account(&app, "ada@example.com", "owner", "Laptop browser").await;
    let mut key = SoftAuthenticator::new(ORIGIN);
    register(&app, &cookie, &mut key, "Key")
        .await
        .assert_status(200);
    (app, cookie, key)
}

#[track_caller]
fn refused(res: reqwest::Response) {
    res.assert_status(401);
}

async fn passkey_count(app: &TestApp, user: uuid::Uuid) -> i64 {
    vantus::with_conn!(app.server().app.store.primary(), conn => passkeys::count_for(conn, user).await)
        .unwrap()
}

async fn user_id(app: &TestApp, email: &str) -> uuid::Uuid {
    vantus::on_db!(app.server().app.store.primary(), p =>
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1").bind(email).fetch_one(p).await)
    .unwrap()
}

/// Registered on the account page (which ends the other sessions), then the passkey alone
/// signs in: a session like the password's, audited with the method; the login page offers it.
async fn a_registered_passkey_is_the_whole_sign_in(engine: Engine) {
    let app = spawn(engine).await;
    let laptop = account(&app, "ada@example.com", "owner", "Laptop browser").await;
    let phone = signed_in_with(&app, "ada@example.com", PASSWORD, "Phone browser").await;
    let page = page_as(&app, "/admin/account", &laptop).await;
    assert!(page.contains("You have no passkey yet."), "{page}");
    assert!(page.contains("data-passkey-register"), "{page}");
    assert!(page.contains("Adding a passkey needs JavaScript"), "{page}");

    // Not signed in: 401 for the script; signed in without the form token: 403.
    app.post_json("/admin/account/passkeys/register/start", &json!({}))
        .header("accept", "application/json")
        .await
        .assert_status(401);
    app.post_json("/admin/account/passkeys/register/start", &json!({}))
        .header("cookie", &laptop)
        .header("x-csrf-token", "forged")
        .await
        .assert_status(403);

    let mut key = SoftAuthenticator::new(ORIGIN);
    let done = register(&app, &laptop, &mut key, "Work laptop")
        .await
        .assert_status(200)
        .json_value()
        .await;
    assert_eq!(done["redirect"], "/admin/account");
    assert_eq!(audit_count(&app, "passkey.registered").await, 1);
    assert!(signed_in(&app, &laptop).await, "this session continues");
    assert!(!signed_in(&app, &phone).await, "the other session ended");
    let ada = user_id(&app, "ada@example.com").await;
    assert_eq!(passkey_count(&app, ada).await, 1);
    let page = page_as(&app, "/admin/account", &laptop).await;
    assert!(
        page.contains("Work laptop") && page.contains("never"),
        "{page}"
    );

    let login = app
        .get_html("/admin/login")
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(login.contains("Sign in with a passkey"), "{login}");
    let script = login
        .split(r#"<script src=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the passkey script")
        .to_owned();
    let js = app.get(&script).await.assert_status(200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let started = sign_in_start(&app.client, &app.base).await;
    let credential = key.assert(&started["options"]);
    let res = sign_in_finish(&app.client, &app.base, &started, &credential)
        .await
        .assert_status(200);
    let cookie = session_cookie(&res);
    assert_eq!(res.json_value().await["redirect"], "/admin/account");
    assert!(signed_in(&app, &cookie).await);
    let detail: String = vantus::on_db!(app.server().app.store.primary(), p => sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'login.succeeded' ORDER BY seq DESC LIMIT 1")
        .fetch_one(p).await)
    .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["method"], "passkey", "{detail}");
    let page = page_as(&app, "/admin/account", &cookie).await;
    assert!(
        !page.contains("<td>never</td>"),
        "last use recorded: {page}"
    );

    // The same answer again: the ceremony was used up.
    refused(sign_in_finish(&app.client, &app.base, &started, &credential).await);
    // Nonsense is a 400 naming the body, not a 500.
    app.post_json("/admin/login/passkey/finish", &json!({ "ceremony": 1 }))
        .await
        .assert_status(400);
}

/// Ceremony state lives in the database: a second server finishes what the first started,
/// once; an expired ceremony is refused and swept.
async fn ceremonies_are_shared_used_once_and_expire(engine: Engine) {
    let (app, cookie, mut key) = owner_with_passkey(engine).await;
    let replica = app.spawn_replica(passkey_env).await;

    let started = sign_in_start(&app.client, &app.base).await;
    let credential = key.assert(&started["options"]);
    let res = sign_in_finish(&replica.client, &replica.base, &started, &credential).await;
    res.assert_status(200);
    refused(sign_in_finish(&app.client, &app.base, &started, &credential).await);

    // A registration too: started here, finished there.
    let csrf = form_token(&page_as(&app, "/admin/account", &cookie).await);
    let started = app
        .post_json("/admin/account/passkeys/register/start", &json!({}))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .await
        .assert_status(200)
        .json_value()
        .await;
    let mut second = SoftAuthenticator::new(ORIGIN);
    let credential = second.register(&started["options"]);
    replica
        .post_json(
            "/admin/account/passkeys/register/finish",
            &json!({ "ceremony": started["ceremony"], "name": "Second", "credential": credential }),
        )
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .await
        .assert_status(200);
    sign_in(&app, &mut second).await.assert_status(200);

    let db = app.server().app.store.primary();
    let started = sign_in_start(&replica.client, &replica.base).await;
    let past = Timestamp::now().minus(Duration::from_secs(1));
    vantus::on_db!(db, p => sqlx::query("UPDATE webauthn_ceremonies SET expires_at = $1")
        .bind(past).execute(p).await.map(|_| ()))
    .unwrap();
    let credential = key.assert(&started["options"]);
    refused(sign_in_finish(&app.client, &app.base, &started, &credential).await);
    let left: i64 =
        vantus::on_db!(db, p => sqlx::query_scalar("SELECT count(*) FROM webauthn_ceremonies")
        .fetch_one(p).await)
        .unwrap();
    assert_eq!(left, 0, "a taken ceremony is deleted, expired or not");

    // Started and never finished: swept once expired, not before.
    sign_in_start(&app.client, &app.base).await;
    sign_in_start(&app.client, &app.base).await;
    let purge = || async {
        vantus::with_conn!(db, conn => passkeys::purge_expired_ceremonies(conn).await).unwrap()
    };
    assert_eq!(purge().await, 0);
    vantus::on_db!(db, p => sqlx::query("UPDATE webauthn_ceremonies SET expires_at = $1")
        .bind(past).execute(p).await.map(|_| ()))
    .unwrap();
    assert_eq!(purge().await, 2);
}

/// An answer made for another site, or by a clone whose counter went back, does not sign in;
/// nor does a registration for another origin.
async fn forged_answers_are_refused(engine: Engine) {
    let app = spawn(engine).await;
    let cookie = account(&app, "ada@example.com", "owner", "Laptop browser").await;
    let mut phished = SoftAuthenticator::new(ORIGIN);
    phished.origin = "http://localhost.evil.example".into();
    let res = register(&app, &cookie, &mut phished, "Phished").await;
    let body = res.assert_status(400).json_value().await;
    assert!(body.to_string().contains("credential"), "{body}");

    let mut key = SoftAuthenticator::new(ORIGIN);
    register(&app, &cookie, &mut key, "Key")
        .await
        .assert_status(200);
    key.origin = "http://evil.example".into();
    refused(sign_in(&app, &mut key).await);
    key.origin = ORIGIN.into();

    key.counter = 10;
    sign_in(&app, &mut key).await.assert_status(200);
    key.counter = 5;
    refused(sign_in(&app, &mut key).await);
    key.counter = 10;
    refused(sign_in(&app, &mut key).await);
    key.counter = 11;
    sign_in(&app, &mut key).await.assert_status(200);
    assert!(audit_count(&app, "login.failed").await >= 3);
}

/// A disabled account cannot sign in with its passkey; a removed passkey signs in nobody.
async fn disabled_accounts_and_removed_passkeys_are_refused(engine: Engine) {
    let (app, cookie, mut key) = owner_with_passkey(engine).await;
    let db = app.server().app.store.primary();
    let set_disabled = |at: Option<Timestamp>| async move {
        vantus::on_db!(db, p => sqlx::query("UPDATE users SET disabled_at = $1").bind(at)
            .execute(p).await.map(|_| ()))
        .unwrap();
    };
    set_disabled(Some(Timestamp::now())).await;
    refused(sign_in(&app, &mut key).await);
    set_disabled(None).await;
    let fresh = session_cookie(&sign_in(&app, &mut key).await.assert_status(200));

    let page = page_as(&app, "/admin/account", &fresh).await;
    let csrf = form_token(&page);
    let id = page
        .split(r#"name="passkey" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a passkey to remove")
        .to_owned();
    for (bad, status) in [
        ("nonsense", 400),
        ("00000000-0000-0000-0000-000000000000", 404),
    ] {
        app.post_form(
            "/admin/account/passkeys/remove",
            &[("csrf_token", csrf.as_str()), ("passkey", bad)],
        )
        .header("cookie", &fresh)
        .await
        .assert_status(status);
    }
    app.post_form(
        "/admin/account/passkeys/remove",
        &[("csrf_token", "forged"), ("passkey", id.as_str())],
    )
    .header("cookie", &fresh)
    .await
    .assert_status(403);
    app.post_form(
        "/admin/account/passkeys/remove",
        &[("csrf_token", csrf.as_str()), ("passkey", id.as_str())],
    )
    .header("cookie", &fresh)
    .await
    .assert_redirect_to("/admin/account");
    assert_eq!(audit_count(&app, "passkey.removed").await, 1);
    assert!(!signed_in(&app, &cookie).await, "the other session ended");
    refused(sign_in(&app, &mut key).await);
}

/// One account's passkey cannot finish a ceremony as another account: not by claiming the
/// other's user handle, not as the other's second factor.
async fn one_accounts_passkey_never_signs_in_another(engine: Engine) {
    let app = spawn(engine).await;
    let ada_cookie = account(&app, "ada@example.com", "owner", "Laptop").await;
    let grace_cookie = account(&app, "grace@example.com", "viewer", "Laptop").await;
    let mut ada_key = SoftAuthenticator::new(ORIGIN);
    let mut grace_key = SoftAuthenticator::new(ORIGIN);
    register(&app, &ada_cookie, &mut ada_key, "Ada's")
        .await
        .assert_status(200);
    register(&app, &grace_cookie, &mut grace_key, "Grace's")
        .await
        .assert_status(200);
    let grace = user_id(&app, "grace@example.com").await;
    let ada = user_id(&app, "ada@example.com").await;

    let started = sign_in_start(&app.client, &app.base).await;
    let forged = ada_key.assert_as(&started["options"], grace.as_bytes());
    refused(sign_in_finish(&app.client, &app.base, &started, &forged).await);

    // The second factor after a password, as the MFA step calls it.
    let rp = RelyingParty::for_public_url(&app.server().app.config.public_url).unwrap();
    let db = app.server().app.store.primary();
    let start = |user| {
        let rp = &rp;
        async move {
            vantus::with_conn!(db, conn => passkeys::start_second_factor(conn, rp, user).await)
                .unwrap()
                .expect("the user has a passkey")
        }
    };
    let verify = |user, ceremony: String, credential: Value| {
        let rp = &rp;
        async move {
            let credential = serde_json::from_value(credential).unwrap();
            vantus::with_conn!(db, conn =>
                passkeys::verify_second_factor(conn, rp, user, &ceremony, &credential).await)
            .unwrap()
        }
    };
    let (options, ceremony) = start(grace).await;
    let options = serde_json::to_value(options).unwrap();
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "only grace's passkey: {options}");
    let ada_answer = ada_key.assert(&options);
    assert_eq!(
        verify(grace, ceremony, ada_answer).await,
        Err(Refusal::UnknownCredential)
    );
    let (options, ceremony) = start(grace).await;
    let options = serde_json::to_value(options).unwrap();
    let answer = grace_key.assert(&options);
    assert_eq!(
        verify(ada, ceremony.clone(), answer.clone()).await,
        Err(Refusal::NoCeremony),
        "a ceremony started for grace is not ada's"
    );
    let (options, ceremony) = start(grace).await;
    let options = serde_json::to_value(options).unwrap();
    let answer = grace_key.assert(&options);
    let verified = verify(grace, ceremony, answer)
        .await
        .expect("grace's own passkey");
    assert_eq!(verified.user_id, grace);
}

/// A passkey is also the second factor after a password: the password alone no longer opens
/// a session, the second step offers the passkey, and its assertion (for this account only)
/// starts the session; the challenge is then used up.
async fn a_passkey_is_the_second_factor_after_a_password(engine: Engine) {
    let (app, _cookie, mut key) = owner_with_passkey(engine).await;
    // The owner was told about the new passkey.
    let told: Vec<String> = vantus::on_db!(app.server().app.store.primary(), p =>
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = 'account.credential_changed'")
            .fetch_all(p).await)
    .unwrap();
    assert!(
        told.iter().any(|p| p.contains("passkey_added")),
        "a credential-change email is queued: {told:?}"
    );
    let res = app
        .post_form(
            "/admin/login",
            &[("email", "ada@example.com"), ("password", PASSWORD)],
        )
        .await
        .assert_redirect_to("/admin/login/mfa");
    let challenge = session_cookie_named(&res, "vantus_mfa_challenge");
    let page = app
        .get("/admin/login/mfa")
        .header("cookie", &challenge)
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(page.contains("/admin/login/mfa/passkey/start"), "{page}");
    // Without the challenge there is nothing to prove.
    app.post_json("/admin/login/mfa/passkey/start", &json!({}))
        .await
        .assert_status(401);
    let started = app
        .post_json("/admin/login/mfa/passkey/start", &json!({}))
        .header("cookie", &challenge)
        .await
        .assert_status(200)
        .json_value()
        .await;
    let allowed = started["options"]["publicKey"]["allowCredentials"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        allowed, 1,
        "the account's own passkey is asked for: {started}"
    );
    let credential = key.assert(&started["options"]);
    let done = app
        .post_json(
            "/admin/login/mfa/passkey/finish",
            &json!({ "ceremony": started["ceremony"], "credential": credential }),
        )
        .header("cookie", &challenge)
        .await
        .assert_status(200);
    let cookie = session_cookie(&done);
    assert!(signed_in(&app, &cookie).await);
    assert_eq!(
        audit_count(&app, "login.succeeded").await,
        2,
        "the first sign-in and this one"
    );
    // The challenge is used up: a second finish is refused.
    let again = app
        .post_json("/admin/login/mfa/passkey/start", &json!({}))
        .header("cookie", &challenge)
        .await;
    again.assert_status(401);
}

/// Adding or removing a passkey needs a recent proof of the user's factors: past
/// `VANTUS_REAUTH_WINDOW` both are refused with 403 until the user re-authenticates.
async fn passkey_changes_need_a_fresh_authentication(engine: Engine) {
    let app = TestApp::spawn_with(engine, |env| {
        passkey_env(env);
        env.insert("VANTUS_REAUTH_WINDOW".into(), "1s".into());
    })
    .await;
    let cookie = account(&app, "ada@example.com", "owner", "Laptop browser").await;
    let mut key = SoftAuthenticator::new(ORIGIN);
    register(&app, &cookie, &mut key, "Key")
        .await
        .assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let csrf = form_token(&page_as(&app, "/admin/account", &cookie).await);
    app.post_json("/admin/account/passkeys/register/start", &json!({}))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .await
        .assert_status(403);
    let id = user_id(&app, "ada@example.com").await;
    let passkey: uuid::Uuid = vantus::on_db!(app.server().app.store.primary(), p =>
        sqlx::query_scalar("SELECT id FROM passkeys WHERE user_id = $1").bind(id).fetch_one(p).await)
    .unwrap();
    let passkey = passkey.to_string();
    app.post_form(
        "/admin/account/passkeys/remove",
        &[("csrf_token", csrf.as_str()), ("passkey", passkey.as_str())],
    )
    .header("cookie", &cookie)
    .await
    .assert_status(403);
    assert_eq!(passkey_count(&app, id).await, 1, "nothing was removed");
}

/// The `name=value` of the cookie called `name` (or ending in it) among a response's cookies.
fn session_cookie_named(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .find(|kv| kv.split('=').next().is_some_and(|k| k.ends_with(name)))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

both_engines!(
    passkey_changes_need_a_fresh_authentication,
    a_passkey_is_the_second_factor_after_a_password,
    a_registered_passkey_is_the_whole_sign_in,
    ceremonies_are_shared_used_once_and_expire,
    forged_answers_are_refused,
    disabled_accounts_and_removed_passkeys_are_refused,
    one_accounts_passkey_never_signs_in_another,
);

/// A public URL on an IP address leaves the server without passkeys: the doctor says so
/// (the development default, 127.0.0.1, is expected and not reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_reports_a_public_url_passkeys_cannot_use() {
    let db = crate::support::TestDb::create(Engine::Sqlite).await;
    let report = |public_url: Option<&str>| {
        let mut env = crate::support::base_env(&db);
        if let Some(url) = public_url {
            env.insert("VANTUS_PUBLIC_URL".into(), url.into());
        }
        let o = crate::support::run_binary(&["doctor", "--json"], &env);
        serde_json::from_slice::<Value>(&o.stdout).expect("doctor --json prints JSON")
    };
    let ip = report(Some("http://192.0.2.10:8080"));
    let found = crate::config_doctor::findings_of(&ip, "passkeys");
    assert_eq!(found.len(), 1, "{ip:#}");
    assert_eq!(found[0]["severity"], "medium");
    assert!(
        found[0]["finding"]
            .as_str()
            .unwrap()
            .contains("VANTUS_PUBLIC_URL"),
        "{}",
        found[0]
    );
    for fine in [None, Some("http://localhost:8080")] {
        let r = report(fine);
        assert!(
            crate::config_doctor::findings_of(&r, "passkeys").is_empty(),
            "{fine:?}: {r:#}"
        );
    }
}
