//! Staff user management over HTTP: the users page of a tenant, invitations by email (a link
//! that works once and expires), role changes and disabling under the owner rules, an owner
//! signing someone out everywhere, password reset by email, and tenant isolation.

use std::time::Duration;

use crate::both_engines;
use crate::support::staff::{
    PASSWORD, audit_count, create_named, create_user, env, form_token, page_as, sign_in, signed_in,
    signed_in_as, spawn_cheap, spawn_cheap_with,
};
use crate::support::{Engine, ResponseExt, TestApp, eventually};

const NEW: &str = "a brand new passphrase of mine";

fn must(o: std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Ada, the owner; Alan, an admin; Grace, an editor.
fn three_members(app: &TestApp) {
    let env = env(&app.db);
    must(create_user(&env, "ada@example.com", "owner", PASSWORD));
    for (email, name, role) in [
        ("alan@example.com", "Alan Turing", "admin"),
        ("grace@example.com", "Grace Hopper", "editor"),
    ] {
        must(create_named(&env, email, name, role, PASSWORD));
    }
}

/// A second tenant, "beta", whose only member is Bob (as `role`).
async fn bob_in_beta(app: &TestApp, role: &str) {
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => vantus::tenancy::ensure(conn, "beta", "Beta", None).await)
        .unwrap();
    let words = [
        "user",
        "create",
        "--email",
        "bob@example.com",
        "--role",
        role,
        "--name",
        "Bob Beta",
        "--tenant",
        "beta",
        "--password-stdin",
    ];
    let stdin = format!("{PASSWORD}\n");
    must(crate::support::run_binary_with_stdin(
        &words,
        &env(&app.db),
        stdin.as_bytes(),
    ));
}

/// The users page as `cookie` sees it, and its form token.
async fn users_page(app: &TestApp, cookie: &str) -> (String, String) {
    let page = page_as(app, "/admin/users", cookie).await;
    let csrf = form_token(&page);
    (page, csrf)
}

/// A form posted with a session and its token.
async fn post_as(
    app: &TestApp,
    path: &str,
    cookie: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut all = vec![("csrf_token", csrf)];
    all.extend_from_slice(fields);
    app.post_form(path, &all).header("cookie", cookie).await
}

async fn user_id(app: &TestApp, email: &str) -> String {
    let db = app.server().app.store.primary();
    let id: uuid::Uuid = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT id FROM users WHERE email = $1").bind(email).fetch_one(p).await)
    .unwrap();
    id.to_string()
}

/// The newest queued email of `topic` to `to`: its payload, as JSON.
async fn queued(app: &TestApp, topic: &str, to: &str) -> Option<serde_json::Value> {
    let db = app.server().app.store.primary();
    let payload: Option<String> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE topic = $1 AND destination = $2 AND channel = 'email'
         ORDER BY created_at DESC, id DESC LIMIT 1")
        .bind(topic).bind(to).fetch_optional(p).await)
    .unwrap();
    payload.map(|p| serde_json::from_str(&p).unwrap())
}

/// The server's public URL without a trailing slash: what links in emails start with.
fn public_url(app: &TestApp) -> String {
    let url = app.server().app.config.public_url.as_str();
    url.trim_end_matches('/').to_owned()
}

/// The path of the link in the newest email of `topic` to `to`, checked to start with the
/// server's public URL.
async fn link_path(app: &TestApp, topic: &str, to: &str) -> String {
    let payload = queued(app, topic, to).await.expect("an email was queued");
    let link = payload["link"].as_str().unwrap().to_owned();
    let public = public_url(app);
    link.strip_prefix(&public)
        .unwrap_or_else(|| panic!("{link} starts with {public}"))
        .to_owned()
}

async fn invite(app: &TestApp, cookie: &str, email: &str, role: &str) -> reqwest::Response {
    let (_, csrf) = users_page(app, cookie).await;
    post_as(
        app,
        "/admin/users/invitations",
        cookie,
        &csrf,
        &[("email", email), ("role", role)],
    )
    .await
}

async fn audit_details(app: &TestApp, action: &str) -> Vec<String> {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = $1 ORDER BY seq").bind(action).fetch_all(p).await)
    .unwrap()
}

/// An owner invites an editor: the email is queued with a working link (its token stored
/// only as a hash), the link is accepted once and refused after, the invitee signs in with
/// the role given (and is refused the users page); expired, withdrawn and unknown links are
/// refused without a 500; an admin cannot invite an owner.
async fn invitations_work_once_and_expire(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let env = env(&app.db);
    must(create_user(&env, "ada@example.com", "owner", PASSWORD));
    must(create_named(
        &env,
        "alan@example.com",
        "Alan Turing",
        "admin",
        PASSWORD,
    ));
    let ada = signed_in_as(&app, "ada@example.com", "Laptop").await;

    let (page, _) = users_page(&app, &ada).await;
    assert!(
        page.contains("ada@example.com") && page.contains("alan@example.com"),
        "{page}"
    );
    assert!(page.contains("never") || page.contains("UTC"), "{page}");

    // Bad input names the field and stores nothing.
    let bad = invite(&app, &ada, "not-an-address", "editor")
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(bad.contains("Email address:"), "{bad}");
    let bad = invite(&app, &ada, "grace@example.com", "superuser")
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(bad.contains("Role:"), "{bad}");
    invite(&app, &ada, "alan@example.com", "viewer")
        .await
        .assert_status(409);

    invite(&app, &ada, "Grace@Example.com", "editor")
        .await
        .assert_redirect_to("/admin/users?done=invited");
    let path = link_path(&app, "user.invited", "grace@example.com").await;
    let token = path.strip_prefix("/admin/invitations/").unwrap().to_owned();
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64: {token}");
    let db = app.server().app.store.primary();
    let stored: String = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT token_hash FROM invitations WHERE email = 'grace@example.com'").fetch_one(p).await)
    .unwrap();
    assert_eq!(
        stored,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
    );
    let details = audit_details(&app, "invitation.sent").await;
    assert_eq!(details.len(), 1);
    assert!(
        !details[0].contains('@') && details[0].contains("editor"),
        "{details:?}"
    );
    let (page, _) = users_page(&app, &ada).await;
    assert!(
        page.contains("grace@example.com"),
        "the pending invitation is listed: {page}"
    );

    // The link opens a form; bad input names the field.
    let form = app.get(&path).await.assert_status(200).html().await;
    assert!(
        form.contains("grace@example.com") && form.contains("editor"),
        "{form}"
    );
    let accept = |name: &'static str, password: &'static str, again: &'static str| {
        app.post_form(
            &path,
            &[
                ("name", name),
                ("new_password", password),
                ("new_password_again", again),
            ],
        )
    };
    let refused = accept("Grace Hopper", NEW, "something else")
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(refused.contains("New password:"), "{refused}");
    let refused = accept("Grace Hopper", "password1234", "password1234")
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(refused.contains("most common"), "{refused}");
    let refused = accept("", NEW, NEW).await.assert_status(422).html().await;
    assert!(refused.contains("Name:"), "{refused}");

    let done = accept("Grace Hopper", NEW, NEW)
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(
        done.contains("/admin/login"),
        "sent to sign in, not signed in: {done}"
    );
    // Once only.
    app.get(&path).await.assert_status(410);
    accept("Grace Hopper", NEW, NEW).await.assert_status(410);
    assert_eq!(audit_count(&app, "invitation.accepted").await, 1);

    // The invitee signs in with the role given, and may not manage users.
    let grace =
        crate::support::staff::signed_in_with(&app, "grace@example.com", NEW, "Phone").await;
    let dashboard = page_as(&app, "/admin", &grace).await;
    assert!(dashboard.contains("Grace Hopper (editor)"), "{dashboard}");
    app.get("/admin/users")
        .header("cookie", &grace)
        .await
        .assert_status(403);

    // Unknown and malformed tokens: 404.
    app.get(&format!("/admin/invitations/{}", "A".repeat(43)))
        .await
        .assert_status(404);
    app.get("/admin/invitations/short").await.assert_status(404);
    app.post_form("/admin/invitations/short", &[("name", "x")])
        .await
        .assert_status(404);

    // Expired: refused, page and form alike.
    invite(&app, &ada, "linus@example.com", "sales")
        .await
        .assert_status(303);
    let expired = link_path(&app, "user.invited", "linus@example.com").await;
    vantus::on_db!(db, p => sqlx::query(
        "UPDATE invitations SET expires_at = created_at WHERE email = 'linus@example.com'").execute(p).await.map(|_| ()))
    .unwrap();
    let gone = app.get_html(&expired).await.assert_status(410).html().await;
    assert!(gone.contains("expired"), "{gone}");
    app.post_form(
        &expired,
        &[
            ("name", "Linus"),
            ("new_password", NEW),
            ("new_password_again", NEW),
        ],
    )
    .await
    .assert_status(410);

    // Withdrawn from the users page: refused.
    invite(&app, &ada, "ken@example.com", "viewer")
        .await
        .assert_status(303);
    let withdrawn = link_path(&app, "user.invited", "ken@example.com").await;
    let id: uuid::Uuid = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT id FROM invitations WHERE email = 'ken@example.com'").fetch_one(p).await)
    .unwrap();
    let (_, csrf) = users_page(&app, &ada).await;
    post_as(
        &app,
        &format!("/admin/users/invitations/{id}/revoke"),
        &ada,
        &csrf,
        &[],
    )
    .await
    .assert_redirect_to("/admin/users?done=withdrawn");
    app.get(&withdrawn).await.assert_status(410);
    assert_eq!(audit_count(&app, "invitation.revoked").await, 1);

    // An admin invites, but never an owner.
    let alan = signed_in_as(&app, "alan@example.com", "Desk").await;
    invite(&app, &alan, "eve@example.com", "owner")
        .await
        .assert_status(403);
    assert!(
        queued(&app, "user.invited", "eve@example.com")
            .await
            .is_none()
    );
    invite(&app, &alan, "eve@example.com", "viewer")
        .await
        .assert_status(303);
}

/// Role changes follow the rules (admins leave owners alone and never grant owner; the last
/// active owner stays) and end the member's sessions; each is audited with before and after.
async fn roles_change_under_the_owner_rules(engine: Engine) {
    let app = spawn_cheap(engine).await;
    three_members(&app);
    let ada_id = user_id(&app, "ada@example.com").await;
    let grace_id = user_id(&app, "grace@example.com").await;
    let ada = signed_in_as(&app, "ada@example.com", "Laptop").await;
    let alan = signed_in_as(&app, "alan@example.com", "Desk").await;
    let grace = signed_in_as(&app, "grace@example.com", "Phone").await;
    let (_, ada_csrf) = users_page(&app, &ada).await;
    let (_, alan_csrf) = users_page(&app, &alan).await;
    let role = |who: &str, csrf: &str, id: &str, role: &'static str| {
        let (who, csrf, path) = (
            who.to_owned(),
            csrf.to_owned(),
            format!("/admin/users/{id}/role"),
        );
        let app = &app;
        async move { post_as(app, &path, &who, &csrf, &[("role", role)]).await }
    };

    // An admin cannot touch an owner, nor grant owner.
    role(&alan, &alan_csrf, &ada_id, "viewer")
        .await
        .assert_status(403);
    role(&alan, &alan_csrf, &grace_id, "owner")
        .await
        .assert_status(403);
    // The last active owner is not demoted, not even by themselves, nor disabled.
    role(&ada, &ada_csrf, &ada_id, "admin")
        .await
        .assert_status(409);
    post_as(
        &app,
        &format!("/admin/users/{ada_id}/disable"),
        &ada,
        &ada_csrf,
        &[],
    )
    .await
    .assert_status(409);
    role(&ada, &ada_csrf, &grace_id, "nonsense")
        .await
        .assert_status(400);
    assert!(
        signed_in(&app, &grace).await,
        "nothing refused changed anything"
    );

    // An admin changes an editor; the editor's session ends (a privilege change).
    role(&alan, &alan_csrf, &grace_id, "sales")
        .await
        .assert_redirect_to("/admin/users?done=role");
    assert!(!signed_in(&app, &grace).await, "the member signs in again");
    let details = audit_details(&app, "member.role_changed").await;
    let detail: serde_json::Value = serde_json::from_str(&details[0]).unwrap();
    assert_eq!(detail["before"]["role"], "editor");
    assert_eq!(detail["after"]["role"], "sales");
    assert!(!details[0].contains('@'), "{details:?}");
    let grace = signed_in_as(&app, "grace@example.com", "Phone").await;
    let page = page_as(&app, "/admin", &grace).await;
    assert!(page.contains("(sales)"), "{page}");

    // With a second owner, the first may step down.
    role(&ada, &ada_csrf, &grace_id, "owner")
        .await
        .assert_status(303);
    role(&ada, &ada_csrf, &ada_id, "admin")
        .await
        .assert_status(303);
    assert!(
        !signed_in(&app, &ada).await,
        "stepping down ends one's own sessions too"
    );
}

/// Disabling ends every session of the member and refuses their sign-in until enabled again;
/// nobody disables themselves; an owner signs any member out everywhere, an admin may not.
async fn disabling_and_signing_out_members(engine: Engine) {
    let app = spawn_cheap(engine).await;
    three_members(&app);
    let grace_id = user_id(&app, "grace@example.com").await;
    let alan_id = user_id(&app, "alan@example.com").await;
    let ada = signed_in_as(&app, "ada@example.com", "Laptop").await;
    let alan = signed_in_as(&app, "alan@example.com", "Desk").await;
    let phone = signed_in_as(&app, "grace@example.com", "Phone").await;
    let tablet = signed_in_as(&app, "grace@example.com", "Tablet").await;
    let (_, ada_csrf) = users_page(&app, &ada).await;
    let (_, alan_csrf) = users_page(&app, &alan).await;

    post_as(
        &app,
        &format!("/admin/users/{alan_id}/disable"),
        &alan,
        &alan_csrf,
        &[],
    )
    .await
    .assert_status(409);
    post_as(
        &app,
        &format!("/admin/users/{grace_id}/disable"),
        &alan,
        &alan_csrf,
        &[],
    )
    .await
    .assert_redirect_to("/admin/users?done=disabled");
    assert!(!signed_in(&app, &phone).await && !signed_in(&app, &tablet).await);
    sign_in(&app, "grace@example.com", PASSWORD)
        .await
        .assert_status(401);
    let (page, _) = users_page(&app, &ada).await;
    assert!(page.contains("disabled"), "{page}");
    let detail: serde_json::Value =
        serde_json::from_str(&audit_details(&app, "user.disabled").await[0]).unwrap();
    assert_eq!(detail["after"]["status"], "disabled");
    assert_eq!(detail["sessions_ended"], 2);

    post_as(
        &app,
        &format!("/admin/users/{grace_id}/enable"),
        &alan,
        &alan_csrf,
        &[],
    )
    .await
    .assert_redirect_to("/admin/users?done=enabled");
    let grace = signed_in_as(&app, "grace@example.com", "Phone").await;

    // Signing someone out everywhere is an owner's.
    post_as(
        &app,
        &format!("/admin/users/{grace_id}/sessions"),
        &alan,
        &alan_csrf,
        &[],
    )
    .await
    .assert_status(403);
    assert!(signed_in(&app, &grace).await);
    post_as(
        &app,
        &format!("/admin/users/{grace_id}/sessions"),
        &ada,
        &ada_csrf,
        &[],
    )
    .await
    .assert_redirect_to("/admin/users?done=sessions");
    assert!(!signed_in(&app, &grace).await, "signed out by the owner");
    assert!(signed_in(&app, &alan).await && signed_in(&app, &ada).await);
    assert_eq!(audit_count(&app, "sessions.revoked").await, 1);
}

/// Password reset: the same answer for an unknown and a known address; a link by email that
/// works once, ends every session, voids the other links, tells the owner of the account,
/// and signs nobody in; an expired link is refused; requests are limited per address.
async fn passwords_are_reset_by_email(engine: Engine) {
    let app = spawn_cheap_with(engine, |env| {
        env.insert(
            "VANTUS_RATE_LIMIT_PASSWORD_RESET_ACCOUNT".into(),
            "2/1m".into(),
        );
    })
    .await;
    must(create_user(
        &env(&app.db),
        "ada@example.com",
        "owner",
        PASSWORD,
    ));
    let laptop = signed_in_as(&app, "ada@example.com", "Laptop").await;
    let phone = signed_in_as(&app, "ada@example.com", "Phone").await;

    let login = app
        .get("/admin/login")
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(login.contains(r#"href="/admin/password-reset""#), "{login}");
    app.get("/admin/password-reset").await.assert_status(200);
    let ask = |email: &'static str| app.post_form("/admin/password-reset", &[("email", email)]);
    let known = ask("ADA@example.com").await.assert_status(200).html().await;
    let unknown = ask("nobody@example.com")
        .await
        .assert_status(200)
        .html()
        .await;
    assert_eq!(known, unknown, "the same answer whether the account exists");
    assert!(known.contains("If an account exists"), "{known}");
    ask("not an address").await.assert_status(422);

    let first = eventually(
        Duration::from_secs(10),
        "the reset email to be queued",
        async || queued(&app, "password.reset_link", "ada@example.com").await,
    )
    .await;
    let first = first["link"].as_str().unwrap().to_owned();
    let first_path = format!(
        "/admin/password-reset/{}",
        first.rsplit('/').next().unwrap()
    );
    // A newer link voids the older.
    ask("ada@example.com").await.assert_status(200);
    let second_path = eventually(
        Duration::from_secs(10),
        "a second reset email",
        async || {
            let p = link_path(&app, "password.reset_link", "ada@example.com").await;
            (p != first_path).then_some(p)
        },
    )
    .await;
    app.get(&first_path).await.assert_status(410);
    // The address's limit (2 a minute) is reached: more get 429, known or not.
    ask("ada@example.com").await.assert_status(429);
    assert!(
        queued(&app, "password.reset_link", "nobody@example.com")
            .await
            .is_none()
    );
    assert!(signed_in(&app, &laptop).await, "asking changes nothing yet");

    app.get(&second_path).await.assert_status(200);
    let set = |new: &'static str, again: &'static str| {
        app.post_form(
            &second_path,
            &[("new_password", new), ("new_password_again", again)],
        )
    };
    let refused = set(NEW, "something else")
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(refused.contains("New password:"), "{refused}");
    let done = set(NEW, NEW).await.assert_status(200);
    assert!(
        done.headers().get("set-cookie").is_none(),
        "nobody is signed in"
    );
    assert!(!signed_in(&app, &laptop).await && !signed_in(&app, &phone).await);
    set(NEW, NEW).await.assert_status(410);
    app.get(&second_path).await.assert_status(410);
    sign_in(&app, "ada@example.com", PASSWORD)
        .await
        .assert_status(401);
    crate::support::staff::signed_in_with(&app, "ada@example.com", NEW, "Laptop").await;
    let told = queued(&app, "password.was_reset", "ada@example.com").await;
    assert!(told.is_some(), "the owner of the account is told");
    assert_eq!(audit_count(&app, "password.reset").await, 1);
    assert_eq!(audit_count(&app, "password.reset_requested").await, 2);
}

/// A reset link that expired is refused (its own test: the address limit above is spent).
async fn an_expired_reset_link_is_refused(engine: Engine) {
    let app = spawn_cheap(engine).await;
    must(create_user(
        &env(&app.db),
        "ada@example.com",
        "owner",
        PASSWORD,
    ));
    // From a browser that is signed in already: the form carries the session's token, which
    // the portal's form-token layer asks of every post of a signed-in browser.
    let cookie = signed_in_as(&app, "ada@example.com", "Laptop").await;
    let csrf = form_token(&page_as(&app, "/admin/password-reset", &cookie).await);
    post_as(
        &app,
        "/admin/password-reset",
        &cookie,
        &csrf,
        &[("email", "ada@example.com")],
    )
    .await
    .assert_status(200);
    let path = eventually(
        Duration::from_secs(10),
        "the reset email to be queued",
        async || match queued(&app, "password.reset_link", "ada@example.com").await {
            Some(_) => Some(link_path(&app, "password.reset_link", "ada@example.com").await),
            None => None,
        },
    )
    .await;
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query(
        "UPDATE password_resets SET expires_at = created_at").execute(p).await.map(|_| ()))
    .unwrap();
    app.get(&path).await.assert_status(410);
    app.post_form(&path, &[("new_password", NEW), ("new_password_again", NEW)])
        .await
        .assert_status(410);
    sign_in(&app, "ada@example.com", PASSWORD)
        .await
        .assert_status(303);
}

/// The users page of one tenant neither lists nor changes a member of only another: their
/// id is simply not found.
async fn members_of_another_tenant_are_not_found(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let env = env(&app.db);
    must(create_user(&env, "ada@example.com", "owner", PASSWORD));
    let db = app.server().app.store.primary();
    bob_in_beta(&app, "editor").await;
    let bob_id = user_id(&app, "bob@example.com").await;
    let bob = signed_in_as(&app, "bob@example.com", "Beta laptop").await;

    let ada = signed_in_as(&app, "ada@example.com", "Laptop").await;
    let (page, csrf) = users_page(&app, &ada).await;
    assert!(
        !page.contains("bob@example.com") && !page.contains("Bob Beta"),
        "{page}"
    );
    for (path, fields) in [
        (
            format!("/admin/users/{bob_id}/role"),
            vec![("role", "viewer")],
        ),
        (format!("/admin/users/{bob_id}/disable"), vec![]),
        (format!("/admin/users/{bob_id}/enable"), vec![]),
        (format!("/admin/users/{bob_id}/sessions"), vec![]),
        ("/admin/users/not-an-id/disable".to_owned(), vec![]),
    ] {
        post_as(&app, &path, &ada, &csrf, &fields)
            .await
            .assert_status(404);
    }
    assert!(signed_in(&app, &bob).await, "untouched");
    // Nor can one tenant withdraw another's invitation.
    let invitation: uuid::Uuid = {
        let bob_page = page_as(&app, "/admin", &bob).await;
        assert!(bob_page.contains("Beta"), "{bob_page}");
        // Bob is an editor: make an invitation for Beta directly.
        let scope =
            vantus::with_conn!(db, conn => vantus::tenancy::find_by_slug(conn, "beta").await)
                .unwrap()
                .unwrap();
        let email = vantus::auth::users::LoginEmail::parse("carol@example.com").unwrap();
        let bob_uuid: uuid::Uuid = bob_id.parse().unwrap();
        vantus::in_write_tx!(db, conn => vantus::auth::invitations::create(
            conn, &scope, &email, vantus::auth::permission::Role::Viewer, bob_uuid,
            Duration::from_secs(3600)).await)
        .unwrap()
        .id
    };
    post_as(
        &app,
        &format!("/admin/users/invitations/{invitation}/revoke"),
        &ada,
        &csrf,
        &[],
    )
    .await
    .assert_status(404);
}

/// Through a real SMTP server: the invitation arrives with its subject and a link that opens
/// the invitation, and once it is sent the outbox no longer holds the link.
async fn the_invitation_email_is_delivered_and_its_link_forgotten(engine: Engine) {
    let smtp = crate::support::smtp::SmtpServer::start();
    let app = spawn_cheap_with(engine, |env| {
        env.insert("SMTP_URL".into(), smtp.url());
        env.insert("SMTP_FROM".into(), "Vantus <noreply@vantus.test>".into());
    })
    .await;
    must(create_user(
        &env(&app.db),
        "ada@example.com",
        "owner",
        PASSWORD,
    ));
    let ada = signed_in_as(&app, "ada@example.com", "Laptop").await;
    invite(&app, &ada, "grace@example.com", "viewer")
        .await
        .assert_status(303);
    let mail = eventually(
        Duration::from_secs(20),
        "the invitation email",
        async || smtp.messages().into_iter().next(),
    )
    .await;
    assert_eq!(mail.header("to"), "grace@example.com");
    assert!(
        mail.header("subject").contains("Ada Lovelace invited you"),
        "{mail:?}"
    );
    let text = mail.text.clone().unwrap();
    let public = public_url(&app);
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{public}/admin/invitations/")))
        .unwrap_or_else(|| panic!("a link in {text}"));
    app.get(link.strip_prefix(&public).unwrap())
        .await
        .assert_status(200);
    assert!(
        mail.html.unwrap().contains(link),
        "the HTML part has the same link"
    );
    eventually(
        Duration::from_secs(10),
        "the sent payload to be blanked",
        async || {
            queued(&app, "user.invited", "grace@example.com").await == Some(serde_json::json!({}))
        },
    )
    .await;
}

/// An address that has an account already (here: in another tenant) joins with that
/// account: the link asks for its password (a wrong one is refused), adds the membership,
/// and the account then works in both tenants' member lists.
async fn an_existing_account_joins_with_its_own_password(engine: Engine) {
    let app = spawn_cheap(engine).await;
    must(create_user(
        &env(&app.db),
        "ada@example.com",
        "owner",
        PASSWORD,
    ));
    bob_in_beta(&app, "owner").await;
    let ada = signed_in_as(&app, "ada@example.com", "Laptop").await;
    invite(&app, &ada, "bob@example.com", "sales")
        .await
        .assert_status(303);
    let path = link_path(&app, "user.invited", "bob@example.com").await;
    let form = app.get(&path).await.assert_status(200).html().await;
    assert!(
        form.contains("has an account already") && !form.contains("new_password"),
        "{form}"
    );
    let wrong = app
        .post_form(&path, &[("password", "not the password at all")])
        .await
        .assert_status(422)
        .html()
        .await;
    assert!(wrong.contains("Password:"), "{wrong}");
    app.post_form(&path, &[("password", PASSWORD)])
        .await
        .assert_status(200);
    app.get(&path).await.assert_status(410);
    let (page, _) = users_page(&app, &ada).await;
    assert!(
        page.contains("Bob Beta") && page.contains("sales"),
        "{page}"
    );
    let details = audit_details(&app, "invitation.accepted").await;
    assert!(
        details[0].contains(r#""account_created":false"#),
        "{details:?}"
    );
    assert_eq!(
        audit_count(&app, "user.created").await,
        2,
        "only the two accounts made on the command line"
    );
    // Bob still signs in (in his first tenant) with his one password.
    let bob = signed_in_as(&app, "bob@example.com", "Desk").await;
    assert!(page_as(&app, "/admin", &bob).await.contains("Beta"));
}

/// A member who lost their phone and recovery codes: an admin removes their second factors;
/// they are signed out, told by email, and sign in with the password again (then enrol). An
/// admin may not reset an owner's, and nobody resets their own here.
async fn a_members_second_factor_is_reset(engine: Engine) {
    let app = spawn_cheap(engine).await;
    three_members(&app);
    let grace_id = user_id(&app, "grace@example.com").await;
    let ada_id = user_id(&app, "ada@example.com").await;
    let alan_id = user_id(&app, "alan@example.com").await;
    let phone = signed_in_as(&app, "grace@example.com", "Phone").await;
    let grace = uuid::Uuid::parse_str(&grace_id).unwrap();
    // Grace's TOTP and codes, as enrolment leaves them (their content does not matter here).
    let now = vantus::store::Timestamp::now();
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query(
        "INSERT INTO mfa_totp (user_id, secret_sealed, confirmed_at, created_at, updated_at)
         VALUES ($1, 'sealed', $2, $2, $2)").bind(grace).bind(now).execute(p).await.map(|_| ()))
    .unwrap();
    vantus::on_db!(db, p => sqlx::query(
        "INSERT INTO mfa_recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, 'h', $3)")
        .bind(uuid::Uuid::now_v7()).bind(grace).bind(now).execute(p).await.map(|_| ()))
    .unwrap();
    let alan = signed_in_as(&app, "alan@example.com", "Desk").await;
    let (page, alan_csrf) = users_page(&app, &alan).await;
    assert!(
        page.contains(&format!("/admin/users/{grace_id}/mfa")),
        "{page}"
    );
    for (target, status) in [(ada_id, 403), (alan_id, 409)] {
        post_as(
            &app,
            &format!("/admin/users/{target}/mfa"),
            &alan,
            &alan_csrf,
            &[],
        )
        .await
        .assert_status(status);
    }
    post_as(
        &app,
        &format!("/admin/users/{grace_id}/mfa"),
        &alan,
        &alan_csrf,
        &[],
    )
    .await
    .assert_redirect_to("/admin/users?done=mfa");
    assert!(!signed_in(&app, &phone).await, "signed out everywhere");
    let left: i64 = vantus::on_db!(app.server().app.store.primary(), p =>
        sqlx::query_scalar("SELECT (SELECT count(*) FROM mfa_totp WHERE user_id = $1)
                                 + (SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1)")
            .bind(grace).fetch_one(p).await)
    .unwrap();
    assert_eq!(left, 0, "TOTP and recovery codes are gone");
    let detail: serde_json::Value =
        serde_json::from_str(&audit_details(&app, "mfa.reset").await[0]).unwrap();
    assert_eq!(detail["totp_removed"], true, "{detail}");
    assert_eq!(detail["sessions_ended"], 1, "{detail}");
    let told: Vec<String> = vantus::on_db!(app.server().app.store.primary(), p =>
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = 'account.credential_changed'")
            .fetch_all(p).await)
    .unwrap();
    assert!(told.iter().any(|p| p.contains("mfa_reset")), "{told:?}");
    // The password alone signs her in again (editors need no second factor by default).
    signed_in_as(&app, "grace@example.com", "Phone").await;
}

/// The hourly credential sweep deletes what stopped working more than 30 days ago (each
/// account's newest session, accepted invitations and recent or live links stay), and a second
/// sweep finds nothing.
async fn dead_credentials_are_swept_after_thirty_days(engine: Engine) {
    use vantus::store::Timestamp;
    let app = spawn_cheap(engine).await;
    three_members(&app);
    let old_ada = signed_in_as(&app, "ada@example.com", "old laptop").await;
    let ada = signed_in_as(&app, "ada@example.com", "laptop").await;
    signed_in_as(&app, "grace@example.com", "laptop").await;
    let db = app.server().app.store.primary();
    let now = Timestamp::now();
    let day = Duration::from_secs(24 * 3600);
    let long_ago = now.minus(60 * day);
    let lately = now.minus(3 * day);
    // Every session but Ada's newest began and was last seen 60 days ago (Ada's first one and
    // Grace's only one); Grace's is still her newest, so it stays as her last sign-in.
    let ada_id = user_id(&app, "ada@example.com").await;
    let ada_id: uuid::Uuid = ada_id.parse().unwrap();
    vantus::on_db!(db, p => sqlx::query(
        "UPDATE sessions SET created_at = $1, last_seen_at = $1
         WHERE user_id <> $2
            OR id = (SELECT id FROM sessions AS s WHERE s.user_id = $2 ORDER BY created_at LIMIT 1)"
    ).bind(long_ago).bind(ada_id).execute(p).await.map(|_| ()))
    .unwrap();
    let tenant: uuid::Uuid = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT tenant_id FROM memberships WHERE user_id = $1"
    ).bind(ada_id).fetch_one(p).await.unwrap());
    // Invitations: pending and expired long ago (swept), expired lately (kept), accepted long
    // ago (kept).
    for (email, expires, accepted) in [
        ("gone@example.com", long_ago, None),
        ("late@example.com", lately, None),
        ("joined@example.com", long_ago, Some(ada_id)),
    ] {
        vantus::on_db!(db, p => sqlx::query(
            "INSERT INTO invitations (id, tenant_id, email, role, token_hash, created_at, expires_at,
                                      accepted_at, accepted_by)
             VALUES ($1, $2, $3, 'editor', $4, $5, $6, $7, $8)"
        ).bind(uuid::Uuid::now_v7()).bind(tenant).bind(email).bind(format!("hash-{email}"))
            .bind(expires.minus(day)).bind(expires).bind(accepted.map(|_| expires)).bind(accepted)
            .execute(p).await.map(|_| ())).unwrap();
    }
    // Reset links: expired long ago (swept), expired lately and live (kept).
    for (id, expires) in [
        ("reset-old", long_ago),
        ("reset-late", lately),
        ("reset-live", now.plus(day)),
    ] {
        vantus::on_db!(db, p => sqlx::query(
            "INSERT INTO password_resets (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)"
        ).bind(id).bind(ada_id).bind(expires.minus(day)).bind(expires).execute(p).await.map(|_| ()))
        .unwrap();
    }
    let idle = app.server().app.config.auth.session_idle;
    let swept = vantus::with_conn!(db, conn => vantus::auth::expired::sweep(conn, Timestamp::now(), idle).await)
        .unwrap();
    assert_eq!(
        (swept.sessions, swept.invitations, swept.password_resets),
        (1, 1, 1),
        "{swept:?}"
    );
    let invited: Vec<String> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT email FROM invitations ORDER BY email"
    ).fetch_all(p).await.unwrap());
    assert_eq!(invited, ["joined@example.com", "late@example.com"]);
    let resets: Vec<String> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT id FROM password_resets ORDER BY id"
    ).fetch_all(p).await.unwrap());
    assert_eq!(resets, ["reset-late", "reset-live"]);
    let sessions: i64 = vantus::on_db!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(p).await.unwrap());
    assert_eq!(
        sessions, 2,
        "Ada's newest session and Grace's only one stay"
    );
    assert!(
        signed_in(&app, &ada).await,
        "a live session survives the sweep"
    );
    assert!(!signed_in(&app, &old_ada).await);
    let again = vantus::with_conn!(db, conn => vantus::auth::expired::sweep(conn, Timestamp::now(), idle).await)
        .unwrap();
    assert_eq!(again.total(), 0, "{again:?}");
}

both_engines!(
    dead_credentials_are_swept_after_thirty_days,
    a_members_second_factor_is_reset,
    an_existing_account_joins_with_its_own_password,
    the_invitation_email_is_delivered_and_its_link_forgotten,
    invitations_work_once_and_expire,
    roles_change_under_the_owner_rules,
    disabling_and_signing_out_members,
    passwords_are_reset_by_email,
    an_expired_reset_link_is_refused,
    members_of_another_tenant_are_not_found,
);
