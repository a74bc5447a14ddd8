//! The portal shell over HTTP, on both engines: navigation by permission, switching tenants
//! (a new session token), the owners' tenants pages (hosts, members, the last owner kept),
//! the audit viewer (filters, keyset pages, tenant isolation) and its CSV and JSONL export,
//! and the IP and request id in an admin mutation's audit entry.

use uuid::Uuid;
use vantus::auth::permission::Role;
use vantus::tenancy::{self, TenantScope};

use crate::both_engines;
use crate::support::staff::{
    account, form_token as csrf, join, new_tenant, page_as as page, post, session_cookie,
    session_of, spawn_cheap,
};
use crate::support::{Engine, ResponseExt, TestApp};

/// A server with cheap password hashing, and the site's tenant.
async fn spawn(engine: Engine) -> (TestApp, TenantScope) {
    let app = spawn_cheap(engine).await;
    let site = app.server().app.site.clone();
    (app, site)
}

/// `(ip, request_id, detail)` of the newest entry with `action`.
async fn newest(
    app: &TestApp,
    action: &str,
) -> (Option<String>, Option<String>, serde_json::Value) {
    let db = app.server().app.store.primary();
    let (ip, rid, detail): (Option<String>, Option<String>, String) =
        vantus::on_db!(db, p => sqlx::query_as(
        "SELECT ip, request_id, detail FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1")
        .bind(action).fetch_one(p).await)
        .unwrap();
    (ip, rid, serde_json::from_str(&detail).unwrap())
}

fn nav_links(html: &str) -> Vec<String> {
    let nav = html.split(r#"<nav class="portal-nav""#).nth(1).unwrap();
    let nav = nav.split("</nav>").next().unwrap();
    nav.split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

/// Ada Lovelace, owner, and Grace Hopper, admin, of `site`, signed in: their cookies.
async fn owner_and_admin(app: &TestApp, site: &TenantScope) -> (String, String) {
    account(app, "ada@example.com", "Ada Lovelace", site, Role::Owner).await;
    account(app, "grace@example.com", "Grace Hopper", site, Role::Admin).await;
    (
        session_of(app, "ada@example.com").await,
        session_of(app, "grace@example.com").await,
    )
}

/// Each role sees the links it may follow and no others; the pages behind the others answer
/// 403; the page has no inline script or style; the dashboard lists recent activity by name.
async fn the_navigation_follows_the_role(engine: Engine) {
    let (app, site) = spawn(engine).await;
    let (owner, admin) = owner_and_admin(&app, &site).await;
    account(
        &app,
        "linus@example.com",
        "Linus Viewer",
        &site,
        Role::Viewer,
    )
    .await;
    let viewer = session_of(&app, "linus@example.com").await;

    let html = page(&app, "/admin", &owner).await;
    assert_eq!(
        nav_links(&html),
        [
            "/admin",
            "/admin/leads",
            "/admin/content",
            "/admin/media",
            "/admin/users",
            "/admin/tenants",
            "/admin/audit",
            "/admin/account"
        ]
    );
    assert!(
        html.contains(r#"<a href="/admin" aria-current="page">Dashboard</a>"#),
        "{html}"
    );
    assert!(html.contains(r##"class="skip-link" href="#main""##));
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "no inline script or style"
    );
    assert!(
        !html.contains(r#"action="/admin/tenant""#),
        "one tenant: no switcher"
    );
    assert!(html.contains(r#"action="/admin/logout""#));
    // Recent activity: the sign-ins, by name.
    let activity = html
        .split(r#"id="recent-activity""#)
        .nth(1)
        .expect("recent activity");
    assert!(
        activity.contains("login.succeeded") && activity.contains("Linus Viewer"),
        "{activity}"
    );

    let html = page(&app, "/admin", &viewer).await;
    assert_eq!(
        nav_links(&html),
        ["/admin", "/admin/content", "/admin/account"]
    );
    assert!(!html.contains("/admin/audit") && !html.contains("/admin/tenants"));
    let account_page = page(&app, "/admin/account", &viewer).await;
    assert!(account_page.contains(r#"<a href="/admin/account" aria-current="page">Account</a>"#));
    for path in [
        "/admin/tenants",
        "/admin/audit",
        "/admin/audit/export?format=csv",
    ] {
        app.get(path)
            .header("cookie", &viewer)
            .await
            .assert_status(403);
    }
    let html = page(&app, "/admin/audit", &admin).await;
    assert!(nav_links(&html).contains(&"/admin/audit".to_owned()));
    assert!(!nav_links(&html).contains(&"/admin/tenants".to_owned()));
    assert!(
        !html.contains("export-csv"),
        "admins read the log; owners export it"
    );
    app.get("/admin/tenants")
        .header("cookie", &admin)
        .await
        .assert_status(403);
    app.get("/admin/audit/export?format=csv")
        .header("cookie", &admin)
        .await
        .assert_status(403);
}

/// Switching to one's own other tenant starts a new session there (the old token is dead) and
/// is audited with the IP and the request id; another tenant is refused.
async fn switching_tenants_renews_the_session(engine: Engine) {
    let (app, site) = spawn(engine).await;
    let ada = account(&app, "ada@example.com", "Ada Lovelace", &site, Role::Owner).await;
    let other = new_tenant(&app, "acme", "Acme Ltd").await;
    let foreign = new_tenant(&app, "globex", "Globex").await;
    join(&app, ada, &other, Role::Viewer).await;
    let cookie = session_of(&app, "ada@example.com").await;
    let html = page(&app, "/admin", &cookie).await;
    assert!(
        html.contains(r#"action="/admin/tenant""#),
        "two tenants: a switcher"
    );
    assert!(html.contains("Acme Ltd (viewer)"), "{html}");
    let old_csrf = csrf(&html);

    app.post_form(
        "/admin/tenant",
        &[
            ("csrf_token", &old_csrf),
            ("tenant", &foreign.id().to_string()),
        ],
    )
    .header("cookie", &cookie)
    .await
    .assert_status(403);
    app.post_form(
        "/admin/tenant",
        &[("csrf_token", &old_csrf), ("tenant", "nonsense")],
    )
    .header("cookie", &cookie)
    .await
    .assert_status(400);
    let switched = app
        .post_form(
            "/admin/tenant",
            &[
                ("csrf_token", &old_csrf),
                ("tenant", &other.id().to_string()),
            ],
        )
        .header("cookie", &cookie)
        .header("x-request-id", "switch-req-42")
        .await
        .assert_redirect_to("/admin");
    let fresh = session_cookie(&switched);
    assert_ne!(fresh, cookie, "a new token");
    app.get("/admin")
        .header("cookie", &cookie)
        .await
        .assert_status(303);
    let html = page(&app, "/admin", &fresh).await;
    assert!(html.contains(r#"id="tenant-name">Acme Ltd<"#), "{html}");
    assert!(html.contains("(viewer)"));
    assert!(
        !nav_links(&html).contains(&"/admin/tenants".to_owned()),
        "a viewer here"
    );
    assert_ne!(csrf(&html), old_csrf, "a new form token");
    let db = app.server().app.store.primary();
    let ends: Vec<vantus::store::Timestamp> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT expires_at FROM sessions ORDER BY created_at").fetch_all(p).await)
    .unwrap();
    assert_eq!(ends.len(), 2);
    assert_eq!(
        ends[0], ends[1],
        "a switch does not stretch the session's absolute limit"
    );

    let (ip, rid, detail) = newest(&app, "tenant.switched").await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(rid.as_deref(), Some("switch-req-42"));
    assert_eq!(detail["before"]["tenant"], site.id().to_string());
    assert_eq!(detail["after"]["tenant"], other.id().to_string());
    assert_eq!(detail["after"]["role"], "viewer");
    // The IP and the request id are inside the hash chain: it still verifies, and a changed
    // address would break it.
    let verdict =
        vantus::with_conn!(db, conn => vantus::audit::chain::verify(conn, None, &mut |_| {}).await)
            .unwrap();
    assert!(
        matches!(verdict, vantus::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
    // Sign-out, converted to the audit context, records where it came from too.
    post(&app, "/admin/logout", &fresh, &[])
        .await
        .assert_redirect_to("/admin/login");
    let (ip, rid, _) = newest(&app, "logout").await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert!(rid.is_some());
}

fn tenant_id_of(res: &reqwest::Response) -> String {
    let location = res.headers()[reqwest::header::LOCATION].to_str().unwrap();
    location.strip_prefix("/admin/tenants/").unwrap().to_owned()
}

/// A form post refused for a field (422); the re-rendered page.
async fn unprocessable(app: &TestApp, path: &str, cookie: &str, fields: &[(&str, &str)]) -> String {
    refused(post(app, path, cookie, fields).await, 422).await
}

/// An error page's message (the JSON error body, or the re-rendered form).
async fn refused(res: reqwest::Response, status: u16) -> String {
    res.assert_status(status).text().await.unwrap()
}

/// Owners create tenants, rename them, give them hosts the public site follows at once, and
/// manage members; a tenant never loses its last owner; admins and other owners are refused.
async fn owners_manage_tenants(engine: Engine) {
    let (app, site) = spawn(engine).await;
    let (owner, admin) = owner_and_admin(&app, &site).await;

    post(
        &app,
        "/admin/tenants",
        &admin,
        &[("name", "Nope"), ("slug", "nope")],
    )
    .await
    .assert_status(403);
    let created = post(
        &app,
        "/admin/tenants",
        &owner,
        &[("name", "Acme Ltd"), ("slug", "acme")],
    )
    .await
    .assert_status(303);
    let acme = tenant_id_of(&created);
    let (_, _, detail) = newest(&app, "tenant.created").await;
    assert_eq!(detail["after"]["slug"], "acme");
    assert!(detail["before"].is_null());
    let list = page(&app, "/admin/tenants", &owner).await;
    assert!(list.contains("Acme Ltd") && list.contains(&format!("/admin/tenants/{acme}")));

    let dup = unprocessable(
        &app,
        "/admin/tenants",
        &owner,
        &[("name", "Again"), ("slug", "acme")],
    )
    .await;
    assert!(dup.contains("slug: another tenant has this slug"), "{dup}");
    let bad = unprocessable(
        &app,
        "/admin/tenants",
        &owner,
        &[("name", "Bad"), ("slug", "Not A Slug")],
    )
    .await;
    assert!(bad.contains(r#"data-field="slug""#), "{bad}");
    assert!(
        bad.contains(r#"aria-invalid="true" type="text" maxlength="64""#)
            && bad.contains(r#"aria-describedby="slug-hint form-error""#),
        "the slug field is marked: {bad}"
    );
    let unnamed = unprocessable(
        &app,
        "/admin/tenants",
        &owner,
        &[("name", " "), ("slug", "x")],
    )
    .await;
    assert!(unnamed.contains("name: must be"), "{unnamed}");

    let base = format!("/admin/tenants/{acme}");
    post(&app, &base, &owner, &[("name", "Acme Group")])
        .await
        .assert_redirect_to(&base);
    let (_, _, detail) = newest(&app, "tenant.updated").await;
    assert_eq!(detail["before"]["name"], "Acme Ltd");
    assert_eq!(detail["after"]["name"], "Acme Group");

    // Hosts: the public site's mapping follows at once.
    let hosts = format!("{base}/hosts");
    post(&app, &hosts, &owner, &[("host", "WWW.Acme.test")])
        .await
        .assert_redirect_to(&base);
    let server = &app.server().app;
    let found = server
        .hosts
        .find(server.store.primary(), "www.acme.test:443")
        .await
        .unwrap();
    assert_eq!(found.map(|s| s.slug().to_owned()).as_deref(), Some("acme"));
    for bad in ["not a host", "acme.test:8080", "-acme.test", "acme..test"] {
        let refused = unprocessable(&app, &hosts, &owner, &[("host", bad)]).await;
        assert!(
            refused.contains("host: is not a host name"),
            "{bad}: {refused}"
        );
    }
    // A host of another tenant is not taken over from here.
    let db = server.store.primary();
    vantus::in_write_tx!(db, conn => tenancy::add_host(conn, &site, "site.test").await).unwrap();
    let taken = unprocessable(&app, &hosts, &owner, &[("host", "site.test")]).await;
    assert!(
        taken.contains("host: selects another tenant already"),
        "{taken}"
    );
    post(
        &app,
        &format!("{hosts}/remove"),
        &owner,
        &[("host", "www.acme.test")],
    )
    .await
    .assert_redirect_to(&base);
    assert!(
        server
            .hosts
            .find(db, "www.acme.test")
            .await
            .unwrap()
            .is_none()
    );

    // Members.
    let members = format!("{base}/members");
    post(
        &app,
        &members,
        &owner,
        &[("email", "Grace@Example.com"), ("role", "editor")],
    )
    .await
    .assert_redirect_to(&base);
    let html = page(&app, &base, &owner).await;
    assert!(html.contains("Grace Hopper") && html.contains("grace@example.com"));
    let unknown = unprocessable(
        &app,
        &members,
        &owner,
        &[("email", "nobody@example.com"), ("role", "viewer")],
    )
    .await;
    assert!(
        unknown.contains("email: no account has this address"),
        "{unknown}"
    );
    let role = unprocessable(
        &app,
        &members,
        &owner,
        &[("email", "grace@example.com"), ("role", "boss")],
    )
    .await;
    assert!(role.contains("role: "), "{role}");

    let ada_id: Uuid = vantus::on_db!(db, p => sqlx::query_scalar("SELECT id FROM users WHERE name = 'Ada Lovelace'").fetch_one(p).await).unwrap();
    let grace_id: Uuid = vantus::on_db!(db, p => sqlx::query_scalar("SELECT id FROM users WHERE name = 'Grace Hopper'").fetch_one(p).await).unwrap();
    let ada_member = format!("{members}/{ada_id}");
    let grace_member = format!("{members}/{grace_id}");
    let last = unprocessable(&app, &ada_member, &owner, &[("role", "admin")]).await;
    assert!(last.contains("no owner left"), "{last}");
    let last = unprocessable(&app, &ada_member, &owner, &[("remove", "1")]).await;
    assert!(last.contains("no owner left"), "{last}");
    post(&app, &grace_member, &owner, &[("role", "owner")])
        .await
        .assert_redirect_to(&base);
    let (_, _, detail) = newest(&app, "membership.changed").await;
    assert_eq!(
        (
            detail["before"]["role"].as_str(),
            detail["after"]["role"].as_str()
        ),
        (Some("editor"), Some("owner"))
    );
    assert!(
        !detail.to_string().contains("grace@"),
        "no address in the audit log"
    );
    post(&app, &grace_member, &owner, &[("remove", "1")])
        .await
        .assert_redirect_to(&base);
    let (_, _, detail) = newest(&app, "membership.removed").await;
    assert_eq!(detail["before"]["role"], "owner");

    // An owner of another tenant only finds no such tenant here; a member who is not an
    // owner of it is refused, and told why.
    let olga_id = account(&app, "olga@example.com", "Olga Owner", &site, Role::Owner).await;
    let olga = session_of(&app, "olga@example.com").await;
    app.get(&base)
        .header("cookie", &olga)
        .await
        .assert_status(404);
    post(&app, &base, &olga, &[("name", "Hijacked")])
        .await
        .assert_status(404);
    let acme_scope =
        vantus::with_conn!(db, conn => tenancy::find_by_id(conn, acme.parse().unwrap()).await)
            .unwrap()
            .unwrap();
    join(&app, olga_id, &acme_scope, Role::Admin).await;
    let why = refused(post(&app, &base, &olga, &[("name", "Hijacked")]).await, 403).await;
    assert!(
        why.contains("Only an owner of that tenant may manage it."),
        "{why}"
    );
}

/// Adds `n` entries to `scope`'s log, with resources `{prefix}{i}`.
async fn entries(app: &TestApp, scope: &TenantScope, prefix: &str, n: usize) {
    let db = app.server().app.store.primary();
    vantus::in_write_tx!(db, conn => {
        for i in 0..n {
            vantus::audit::record_for(conn, scope, &vantus::audit::Actor::Public,
                vantus::audit::AuditAction::LeadReceived, &format!("{prefix}{i}"),
                serde_json::json!({ "n": i })).await?;
        }
        Ok::<_, sqlx::Error>(())
    })
    .unwrap();
}

fn seqs(html: &str) -> Vec<i64> {
    let Some(table) = html.split(r#"id="audit-entries""#).nth(1) else {
        return Vec::new();
    };
    table
        .split("<tr>\n      <td>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().parse().unwrap())
        .collect()
}

/// The viewer shows one tenant's entries in keyset pages, filtered; the export streams the
/// same selection as CSV (formulas neutralised) and JSONL, never another tenant's entries.
async fn the_audit_log_is_viewed_and_exported_per_tenant(engine: Engine) {
    let (app, site) = spawn(engine).await;
    account(&app, "ada@example.com", "Ada Lovelace", &site, Role::Owner).await;
    let other = new_tenant(&app, "globex", "Globex").await;
    entries(&app, &site, "lead:", 70).await;
    entries(&app, &other, "secret-of-b:", 5).await;
    entries(&app, &site, "=HYPERLINK(\"http://evil\")", 1).await;
    let owner = session_of(&app, "ada@example.com").await;

    let first = page(&app, "/admin/audit", &owner).await;
    let one = seqs(&first);
    assert_eq!(one.len(), 50);
    assert!(one.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(!first.contains("secret-of-b"));
    let older = first
        .split(r#"id="older" rel="next" href=""#)
        .nth(1)
        .expect("a next page");
    let older = older.split('"').next().unwrap().replace("&#38;", "&");
    assert!(older.contains("before="), "{older}");
    let second = page(&app, &older, &owner).await;
    let two = seqs(&second);
    // 70 + 1 + the sign-in = 72 in this tenant.
    assert_eq!(one.len() + two.len(), 72);
    assert!(
        two[0] < *one.last().unwrap(),
        "the next page continues, no overlap"
    );
    assert!(!second.contains(r#"id="older""#) && !second.contains("secret-of-b"));

    let filtered = page(
        &app,
        "/admin/audit?action=lead.received&resource=LEAD:6",
        &owner,
    )
    .await;
    assert_eq!(seqs(&filtered).len(), 11, "lead:6 and lead:60…69");
    let by_actor = page(&app, "/admin/audit?actor=public", &owner).await;
    assert_eq!(seqs(&by_actor).len(), 50);
    let by_login = page(&app, "/admin/audit?action=login.succeeded", &owner).await;
    assert!(by_login.contains("Ada Lovelace"), "actors by name");
    let future = page(&app, "/admin/audit?from=2999-01-01", &owner).await;
    assert!(seqs(&future).is_empty());
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let bounded = page(
        &app,
        &format!("/admin/audit?from={today}&to={today}&resource=lead:1"),
        &owner,
    )
    .await;
    assert_eq!(seqs(&bounded).len(), 11);
    let bad = app
        .get("/admin/audit?from=yesterday")
        .header("cookie", &owner)
        .await;
    let bad = refused(bad, 400).await;
    assert!(bad.contains("from: must be a date"), "{bad}");

    let csv = app
        .get("/admin/audit/export?format=csv&resource=HYPERLINK")
        .header("cookie", &owner)
        .await
        .assert_status(200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("seq,created_at,actor,action,resource,detail"),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains(r#","'=HYPERLINK(""http://evil"")0","#),
        "neutralised: {csv}"
    );

    // More than one page of the stream (500 entries a round trip).
    entries(&app, &site, "bulk:", 530).await;
    let jsonl = app
        .get("/admin/audit/export?format=jsonl")
        .header("cookie", &owner)
        .await
        .assert_status(200)
        .text()
        .await
        .unwrap();
    let objects: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every entry of this tenant: the 72, the 530, and both exports' own entries (each is
    // recorded before it streams).
    assert_eq!(objects.len(), 604);
    let seqs: Vec<i64> = objects.iter().map(|o| o["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    assert!(
        objects
            .iter()
            .all(|o| o.is_object() && o["action"].is_string())
    );
    assert!(
        !jsonl.contains("secret-of-b"),
        "never another tenant's entries"
    );
    assert_eq!(objects[0]["action"], "audit.exported");
    assert_eq!(objects[0]["detail"]["format"], "jsonl");
    let csv_export = objects
        .iter()
        .find(|o| o["action"] == "audit.exported" && o["detail"]["format"] == "csv")
        .expect("the first export, audited");
    assert_eq!(csv_export["detail"]["filter"]["resource"], "HYPERLINK");
    let bad = refused(
        app.get("/admin/audit/export?format=xlsx")
            .header("cookie", &owner)
            .await,
        400,
    )
    .await;
    assert!(bad.contains("format: must be csv or jsonl"), "{bad}");
}

both_engines!(
    the_navigation_follows_the_role,
    switching_tenants_renews_the_session,
    owners_manage_tenants,
    the_audit_log_is_viewed_and_exported_per_tenant,
);
