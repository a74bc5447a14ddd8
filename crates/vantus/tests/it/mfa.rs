//! Two-factor sign-in over HTTP: TOTP enrolment confirmed only by a right code, recovery codes
//! shown once and usable once, the second sign-in step (TOTP or recovery code, a used time step
//! refused), roles that must enrol kept on the enrolment page, fresh authentication for MFA
//! changes, other sessions ended by every change, and the email that tells the user.

use std::collections::HashMap;
use std::time::Duration;

use crate::both_engines;
use crate::support::staff::{create_user, form_token, page_as, signed_in};
use crate::support::{Engine, ResponseExt, TestApp, TestRequest, base_env};

const PASSWORD: &str = "correct horse battery staple";

/// Cheap hashing (behaviour, not cost, is tested here), plus `extra`.
async fn spawn(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TestApp::spawn_with(engine, move |env| {
        env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
        env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
        // Many sign-ins from one client; the limits themselves are tested in accounts.rs.
        env.insert("VANTUS_RATE_LIMIT_LOGIN".into(), "1000/1m".into());
        env.insert("VANTUS_RATE_LIMIT_LOGIN_ACCOUNT".into(), "1000/1m".into());
        for (k, v) in extra {
            env.insert(k, v);
        }
    })
    .await
}

fn create(app: &TestApp, email: &str, role: &str) {
    let mut env: HashMap<String, String> = base_env(&app.db);
    env.insert("VANTUS_ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("VANTUS_ARGON2_ITERATIONS".into(), "1".into());
    let o = create_user(&env, email, role, PASSWORD);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The `name=value` of the cookie called `name` (either prefix) that `res` sets, if any.
fn cookie_named(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
}

fn session_of(res: &reqwest::Response) -> String {
    cookie_named(res, "vantus_session").expect("a session cookie")
}

fn sign_in(app: &TestApp, email: &str, device: &str) -> TestRequest {
    app.post_form(
        "/admin/login",
        &[("email", email), ("password", PASSWORD), ("next", "/admin")],
    )
    .header("user-agent", device)
}

/// The manual-entry key the enrolment page shows, as bytes.
fn secret_on(page: &str) -> Vec<u8> {
    let key = page
        .split(r#"<code id="manual-secret">"#)
        .nth(1)
        .expect("the manual-entry key")
        .split('<')
        .next()
        .unwrap()
        .replace(' ', "");
    totp_rs::Secret::try_from_base32(&key)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator app shows `ahead` steps from now (the server accepts one step
/// of skew, so the next step's code is accepted now, after the current one was used).
fn code(secret: &[u8], ahead: u64) -> String {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .build()
        .unwrap()
        .generate(now() + 30 * ahead)
        .to_string()
}

fn codes_on(page: &str) -> Vec<String> {
    page.split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(p).await).unwrap()
}

async fn audited(app: &TestApp, action: &str) -> i64 {
    count(
        app,
        &format!("SELECT count(*) FROM audit_log WHERE action = '{action}'"),
    )
    .await
}

/// What enrolling gave.
struct Enrolled {
    secret: Vec<u8>,
    /// The code that confirmed it (its time step is used).
    used: String,
    codes: Vec<String>,
    /// The renewed session.
    cookie: String,
}

/// Enrols the holder of `cookie`.
async fn enrol(app: &TestApp, cookie: &str) -> Enrolled {
    let page = page_as(app, "/admin/account/mfa", cookie).await;
    assert!(
        page.contains("<svg role=\"img\""),
        "an inline QR code: {page}"
    );
    let secret = secret_on(&page);
    let csrf = form_token(&page);
    let right = code(&secret, 0);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    let refused = app
        .post_form(
            "/admin/account/mfa",
            &[("csrf_token", &csrf), ("code", wrong)],
        )
        .header("cookie", cookie)
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(refused.contains(r#"id="code-error""#), "{refused}");
    assert_eq!(secret_on(&refused), secret, "the same pending secret");
    let res = app
        .post_form(
            "/admin/account/mfa",
            &[("csrf_token", &csrf), ("code", &right)],
        )
        .header("cookie", cookie)
        .await
        .assert_status(200);
    let renewed = session_of(&res);
    let shown = res.html().await;
    assert!(shown.contains("Two-factor sign-in is on."), "{shown}");
    let codes = codes_on(&shown);
    assert_eq!(codes.len(), 10, "{shown}");
    assert!(
        !shown.contains("manual-secret"),
        "the secret is not shown again"
    );
    Enrolled {
        secret,
        used: right,
        codes,
        cookie: renewed,
    }
}

/// Signs in with the password, then answers the second step with `code`.
async fn second_step(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    let res = sign_in(app, email, "Laptop")
        .await
        .assert_redirect_to("/admin/login/mfa");
    assert!(
        cookie_named(&res, "vantus_session").is_none(),
        "no session before the second factor"
    );
    let challenge = cookie_named(&res, "vantus_mfa_challenge").expect("a challenge cookie");
    let form = page_as(app, "/admin/login/mfa", &challenge).await;
    assert!(form.contains(r#"autocomplete="one-time-code""#), "{form}");
    app.post_form("/admin/login/mfa", &[("code", code)])
        .header("cookie", &challenge)
        .await
}

async fn sign_out(app: &TestApp, cookie: &str) {
    let csrf = form_token(&page_as(app, "/admin", cookie).await);
    app.post_form("/admin/logout", &[("csrf_token", &csrf)])
        .header("cookie", cookie)
        .await
        .assert_redirect_to("/admin/login");
}

/// Enrolment, then sign-in with a TOTP code and with a recovery code; a used step and a used
/// recovery code are refused; each change emails the user, without a code in it.
async fn totp_enrolment_and_the_second_sign_in_step(engine: Engine) {
    let app = spawn(engine, &[]).await;
    create(&app, "ada@example.com", "owner");
    let first = session_of(
        &sign_in(&app, "ada@example.com", "Laptop")
            .await
            .assert_redirect_to("/admin"),
    );
    let Enrolled {
        secret,
        used,
        codes,
        cookie,
    } = enrol(&app, &first).await;
    assert!(
        !signed_in(&app, &first).await,
        "the old token ended with the change"
    );
    assert!(signed_in(&app, &cookie).await);
    assert_eq!(audited(&app, "mfa.totp_enabled").await, 1);
    let stored: Vec<String> = {
        let db = app.server().app.store.primary();
        vantus::on_db!(db, p => sqlx::query_scalar("SELECT secret_sealed FROM mfa_totp").fetch_all(p).await).unwrap()
    };
    let base32 = totp_rs::Secret::from(secret.clone()).to_base32();
    assert!(!stored[0].contains(&base32), "the secret is stored sealed");
    sign_out(&app, &cookie).await;

    // The code of the step that confirmed enrolment cannot be used again.
    let replay = second_step(&app, "ada@example.com", &used)
        .await
        .assert_status(401)
        .html()
        .await;
    assert!(
        replay.contains(r#"id="code-error""#) && replay.contains("The code is not right"),
        "{replay}"
    );
    let wrong = second_step(&app, "ada@example.com", "not-a-code")
        .await
        .assert_status(401);
    assert!(wrong.html().await.contains(r#"name="code""#));
    assert_eq!(audited(&app, "login.mfa_failed").await, 2);

    // The next step's code signs in; the same code again does not.
    let next = code(&secret, 1);
    let ok = second_step(&app, "ada@example.com", &next)
        .await
        .assert_redirect_to("/admin");
    let totp_session = session_of(&ok);
    assert!(signed_in(&app, &totp_session).await);
    second_step(&app, "ada@example.com", &next)
        .await
        .assert_status(401);

    // A recovery code signs in once, typed loosely.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let ok = second_step(&app, "ada@example.com", &typed)
        .await
        .assert_redirect_to("/admin");
    assert!(signed_in(&app, &session_of(&ok)).await);
    second_step(&app, "ada@example.com", &codes[3])
        .await
        .assert_status(401);
    assert_eq!(audited(&app, "mfa.recovery_code_used").await, 1);

    // A challenge allows a few attempts only.
    let res = sign_in(&app, "ada@example.com", "Laptop").await;
    let challenge = cookie_named(&res, "vantus_mfa_challenge").unwrap();
    for _ in 0..5 {
        app.post_form("/admin/login/mfa", &[("code", "000000")])
            .header("cookie", &challenge)
            .await
            .assert_status(401);
    }
    app.post_form("/admin/login/mfa", &[("code", &codes[4])])
        .header("cookie", &challenge)
        .await
        .assert_redirect_to("/admin/login");

    // Finished challenges do not pile up: a new one clears the user's used and exhausted ones.
    sign_in(&app, "ada@example.com", "Laptop")
        .await
        .assert_status(303);
    let finished =
        "SELECT count(*) FROM login_challenges WHERE consumed_at IS NOT NULL OR attempts >= 5";
    assert_eq!(count(&app, finished).await, 0);

    // The user was told about enrolment and the used recovery code; no secret in the mails.
    let db = app.server().app.store.primary();
    let mails: Vec<(String, String)> = vantus::on_db!(db, p => sqlx::query_as(
        "SELECT destination, payload FROM outbox WHERE topic = 'account.credential_changed' ORDER BY created_at")
        .fetch_all(p).await).unwrap();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().all(|(to, _)| to == "ada@example.com"));
    assert!(mails[0].1.contains("totp_enabled") && mails[1].1.contains("recovery_code_used"));
    for (_, payload) in &mails {
        assert!(!payload.contains(&base32) && codes.iter().all(|c| !payload.contains(c.as_str())));
    }
}

/// An owner (MFA required by default) goes to enrolment right after the password and reaches
/// nothing else until enrolled; a viewer is not asked.
async fn a_role_that_requires_mfa_is_kept_on_enrolment(engine: Engine) {
    let app = spawn(engine, &[("VANTUS_MFA_REQUIRED_ROLES", "owner,admin")]).await;
    create(&app, "ada@example.com", "owner");
    create(&app, "grace@example.com", "viewer");
    let viewer = session_of(
        &sign_in(&app, "grace@example.com", "Phone")
            .await
            .assert_redirect_to("/admin"),
    );
    assert!(signed_in(&app, &viewer).await);

    let res = sign_in(&app, "ada@example.com", "Laptop")
        .await
        .assert_redirect_to("/admin/account/mfa");
    let owner = session_of(&res);
    for path in ["/admin", "/admin/account"] {
        app.get(path)
            .header("cookie", &owner)
            .await
            .assert_redirect_to("/admin/account/mfa");
    }
    let json = app
        .get("/admin")
        .header("cookie", &owner)
        .header("accept", "application/json")
        .await
        .assert_status(403)
        .json_value()
        .await;
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/admin/account/mfa"),
        "{json}"
    );
    let page = page_as(&app, "/admin/account/mfa", &owner).await;
    assert!(page.contains(r#"id="must-enrol""#), "{page}");
    // A state-changing route elsewhere is refused too.
    app.post_form(
        "/admin/account/sessions",
        &[("csrf_token", &form_token(&page)), ("all_others", "1")],
    )
    .header("cookie", &owner)
    .await
    .assert_redirect_to("/admin/account/mfa");

    let enrolled = enrol(&app, &owner).await;
    assert!(
        signed_in(&app, &enrolled.cookie).await,
        "enrolled: the portal opens"
    );
}

/// MFA changes need a recent proof of the factors; re-authenticating gives one. Every change
/// ends the user's other sessions.
async fn mfa_changes_need_fresh_authentication_and_end_other_sessions(engine: Engine) {
    let app = spawn(engine, &[("VANTUS_REAUTH_WINDOW", "3s")]).await;
    create(&app, "ada@example.com", "owner");
    let laptop = session_of(
        &sign_in(&app, "ada@example.com", "Laptop")
            .await
            .assert_redirect_to("/admin"),
    );
    let phone = session_of(
        &sign_in(&app, "ada@example.com", "Phone")
            .await
            .assert_redirect_to("/admin"),
    );
    let Enrolled {
        secret,
        codes: old_codes,
        cookie: laptop,
        ..
    } = enrol(&app, &laptop).await;
    assert!(
        !signed_in(&app, &phone).await,
        "other sessions end with the change"
    );

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let page = page_as(&app, "/admin/account/mfa", &laptop).await;
    assert!(
        page.contains(r#"action="/admin/account/mfa/reauth""#),
        "{page}"
    );
    let csrf = form_token(&page);
    let stale = app
        .post_form(
            "/admin/account/mfa/recovery-codes",
            &[("csrf_token", &csrf)],
        )
        .header("cookie", &laptop)
        .await
        .assert_status(403)
        .html()
        .await;
    assert!(stale.contains(r#"id="password-error""#), "{stale}");
    app.post_form("/admin/account/mfa/disable", &[("csrf_token", &csrf)])
        .header("cookie", &laptop)
        .await
        .assert_status(403);

    // Re-authentication: the password, then a code too.
    let wrong = app
        .post_form(
            "/admin/account/mfa/reauth",
            &[
                ("csrf_token", &csrf),
                ("password", "not the password"),
                ("code", &code(&secret, 1)),
            ],
        )
        .header("cookie", &laptop)
        .await
        .assert_status(401)
        .html()
        .await;
    assert!(wrong.contains(r#"id="password-error""#), "{wrong}");
    app.post_form(
        "/admin/account/mfa/reauth",
        &[
            ("csrf_token", &csrf),
            ("password", PASSWORD),
            ("code", "000000"),
        ],
    )
    .header("cookie", &laptop)
    .await
    .assert_status(401);
    app.post_form(
        "/admin/account/mfa/reauth",
        &[
            ("csrf_token", &csrf),
            ("password", PASSWORD),
            ("code", &code(&secret, 1)),
        ],
    )
    .header("cookie", &laptop)
    .await
    .assert_redirect_to("/admin/account/mfa");

    // Fresh again: new recovery codes, the old ones gone.
    let res = app
        .post_form(
            "/admin/account/mfa/recovery-codes",
            &[("csrf_token", &csrf)],
        )
        .header("cookie", &laptop)
        .await
        .assert_status(200);
    let laptop = session_of(&res);
    let new_codes = codes_on(&res.html().await);
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|c| !old_codes.contains(c)));
    assert_eq!(
        count(&app, "SELECT count(*) FROM mfa_recovery_codes").await,
        10,
        "the old codes were deleted"
    );
    second_step(&app, "ada@example.com", &old_codes[0])
        .await
        .assert_status(401);

    // Turning TOTP off: sign-in asks for no code afterwards.
    let csrf = form_token(&page_as(&app, "/admin/account/mfa", &laptop).await);
    let res = app
        .post_form("/admin/account/mfa/disable", &[("csrf_token", &csrf)])
        .header("cookie", &laptop)
        .await
        .assert_redirect_to("/admin/account/mfa");
    assert!(signed_in(&app, &session_of(&res)).await);
    sign_in(&app, "ada@example.com", "Laptop")
        .await
        .assert_redirect_to("/admin");
    for action in [
        "mfa.totp_enabled",
        "mfa.recovery_codes_regenerated",
        "mfa.totp_disabled",
        "reauth.succeeded",
    ] {
        assert_eq!(audited(&app, action).await, 1, "{action}");
    }
    assert_eq!(audited(&app, "reauth.failed").await, 2);
    let mails = count(
        &app,
        "SELECT count(*) FROM outbox WHERE topic = 'account.credential_changed'",
    )
    .await;
    assert_eq!(mails, 3, "enabled, regenerated, disabled");
}

/// The password change also tells the user by email.
async fn a_password_change_is_emailed(engine: Engine) {
    let app = spawn(engine, &[]).await;
    create(&app, "ada@example.com", "owner");
    let cookie = session_of(
        &sign_in(&app, "ada@example.com", "Laptop")
            .await
            .assert_redirect_to("/admin"),
    );
    let csrf = form_token(&page_as(&app, "/admin/account", &cookie).await);
    app.post_form(
        "/admin/account/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", PASSWORD),
            ("new_password", "an even better passphrase"),
            ("new_password_again", "an even better passphrase"),
        ],
    )
    .header("cookie", &cookie)
    .await
    .assert_redirect_to("/admin/account");
    let db = app.server().app.store.primary();
    let payload: String = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE topic = 'account.credential_changed'").fetch_one(p).await)
    .unwrap();
    assert!(
        payload.contains("password_changed") && !payload.contains("better passphrase"),
        "{payload}"
    );
}

both_engines!(
    totp_enrolment_and_the_second_sign_in_step,
    a_role_that_requires_mfa_is_kept_on_enrolment,
    mfa_changes_need_fresh_authentication_and_end_other_sessions,
    a_password_change_is_emailed,
);
