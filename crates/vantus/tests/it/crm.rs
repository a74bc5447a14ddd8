//! The leads CRM over HTTP, on SQLite and PostgreSQL: the list (full-text search, filters,
//! the spam inbox, keyset pages that stay stable while leads arrive), a lead's page, the
//! pipeline with its lost reason, notes, assignment and the timeline, bulk actions, spam
//! rescue (its notification queued), the CSV export (neutralised formulas, a round trip
//! through Python's csv module), permissions, tenant isolation and the audit entry of every
//! change.

use std::collections::HashSet;
use std::time::Duration;

use uuid::Uuid;
use vantus::auth::permission::Role;
use vantus::store::{Db, Timestamp};
use vantus::tenancy::TenantScope;

use crate::both_engines;
use crate::support::staff::{
    account, audit_count, new_tenant, page_as, post, session_of, spawn_cheap_with,
};
use crate::support::{Engine, TestApp};

/// A server that notifies sales@example.com of new leads, its site tenant, and a signed-in
/// sales member (Sam Sales): the cookie and the account's id.
async fn spawn(engine: Engine) -> (TestApp, TenantScope, String, Uuid) {
    let app = spawn_cheap_with(engine, |env| {
        env.insert("VANTUS_LEADS_NOTIFY".into(), "sales@example.com".into());
    })
    .await;
    let site = app.server().app.site.clone();
    let sam = account(&app, "sam@example.com", "Sam Sales", &site, Role::Sales).await;
    let cookie = session_of(&app, "sam@example.com").await;
    (app, site, cookie, sam)
}

fn db(app: &TestApp) -> &Db {
    app.server().app.store.primary()
}

/// A lead of `scope` stored directly (as the capture path would), arriving at `at`.
async fn lead_at(
    app: &TestApp,
    scope: &TenantScope,
    name: &str,
    message: &str,
    spam: Option<&str>,
    at: Timestamp,
) -> Uuid {
    let id = Uuid::now_v7();
    vantus::on_db!(db(app), p => sqlx::query(
        "INSERT INTO leads (id, tenant_id, stage, spam_reason, source, name, email, company, role,
                            budget, website, message, created_at, updated_at)
         VALUES ($1, $2, 'new', $3, 'form', $4, $5, $6, NULL, '25k-50k', NULL, $7, $8, $8)")
        .bind(id).bind(scope.id()).bind(spam).bind(name)
        .bind(format!("{}@example.org", id.simple())).bind("Analytical Engines")
        .bind(message).bind(at).execute(p).await.map(|_| ()))
    .unwrap();
    id
}

async fn lead(app: &TestApp, scope: &TenantScope, name: &str, message: &str) -> Uuid {
    lead_at(app, scope, name, message, None, Timestamp::now()).await
}

/// `(stage, lost_reason, assignee_id, spam_reason)` of a lead.
async fn state(app: &TestApp, id: Uuid) -> (String, Option<String>, Option<Uuid>, Option<String>) {
    vantus::on_db!(db(app), p => sqlx::query_as(
        "SELECT stage, lost_reason, assignee_id, spam_reason FROM leads WHERE id = $1")
        .bind(id).fetch_one(p).await)
    .unwrap()
}

/// The ids of the leads a list page shows, in order.
fn listed(html: &str) -> Vec<Uuid> {
    html.split("data-lead=\"")
        .skip(1)
        .map(|s| s[..36].parse().unwrap())
        .collect()
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.get_html(path).header("cookie", cookie).await
}

async fn search_filters_and_the_lead_page(engine: Engine) {
    let (app, site, sam, _) = spawn(engine).await;
    let ada = lead(
        &app,
        &site,
        "Ada Lovelace",
        "We need quantum teleportation pricing, soon.",
    )
    .await;
    let grace = lead(&app, &site, "Grace Hopper", "A compiler for business data.").await;
    let spam = lead_at(
        &app,
        &site,
        "Cheap Pills",
        "buy now",
        Some("honeypot"),
        Timestamp::now(),
    )
    .await;

    let html = page_as(&app, "/admin/leads", &sam).await;
    let shown = listed(&html);
    assert_eq!(shown, [grace, ada], "newest first, spam left out: {html}");

    // A word of the message, a prefix of one, and a word of the name: found on both engines.
    for q in ["teleportation", "TELEPORT", "pricing quantum", "lovelace"] {
        let html = page_as(&app, &format!("/admin/leads?q={q}"), &sam).await;
        assert_eq!(listed(&html), [ada], "search {q}");
    }
    let html = page_as(&app, "/admin/leads?q=nowhere-to-be-found", &sam).await;
    assert!(listed(&html).is_empty() && html.contains("No leads match"));
    // Search syntax in the query is only text.
    let html = page_as(&app, "/admin/leads?q=%22quantum%22+OR+*+%26+%21", &sam).await;
    assert_eq!(listed(&html), [ada]);

    let html = page_as(&app, "/admin/leads?inbox=spam", &sam).await;
    assert_eq!(listed(&html), [spam]);
    assert!(html.contains("honeypot"));
    let html = page_as(&app, "/admin/leads?stage=won", &sam).await;
    assert!(listed(&html).is_empty());
    let html = page_as(&app, "/admin/leads?stage=new&source=form&owner=none", &sam).await;
    assert_eq!(listed(&html).len(), 2);
    let html = page_as(&app, "/admin/leads?source=api", &sam).await;
    assert!(listed(&html).is_empty());
    let today = Timestamp::now().to_iso_date();
    let html = page_as(&app, &format!("/admin/leads?from={today}&to={today}"), &sam).await;
    assert_eq!(listed(&html).len(), 2);
    let html = page_as(&app, "/admin/leads?to=2000-01-01", &sam).await;
    assert!(listed(&html).is_empty());

    for (query, field) in [
        ("stage=closed", "stage"),
        ("source=fax", "source"),
        ("owner=someone", "owner"),
        ("from=yesterday", "from"),
        ("after=garbage", "after"),
    ] {
        let res = get(&app, &format!("/admin/leads?{query}"), &sam).await;
        assert_eq!(res.status(), 400, "{query}");
        assert!(
            res.text().await.unwrap().contains(field),
            "{query} names {field}"
        );
    }

    let html = page_as(&app, &format!("/admin/leads/{ada}"), &sam).await;
    for text in [
        "Ada Lovelace",
        "quantum teleportation pricing",
        "Analytical Engines",
        "€25,000 – €50,000",
        "contact form",
    ] {
        assert!(html.contains(text), "{text} on the lead's page");
    }
    let res = get(&app, "/admin/leads/not-a-uuid", &sam).await;
    assert_eq!(res.status(), 404);
}

async fn the_pipeline_notes_assignment_and_timeline(engine: Engine) {
    let (app, site, sam, sam_id) = spawn(engine).await;
    let id = lead(&app, &site, "Ada Lovelace", "An engine.").await;
    let path = |action: &str| format!("/admin/leads/{id}/{action}");

    let res = post(&app, &path("stage"), &sam, &[("stage", "contacted")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(state(&app, id).await.0, "contacted");
    let res = post(&app, &path("stage"), &sam, &[("stage", "proposal")]).await;
    assert_eq!(res.status(), 303, "proposal is a stage now");
    assert_eq!(audit_count(&app, "lead.stage_changed").await, 2);

    // Bad input: 422 naming the field, nothing changed, nothing audited.
    for (fields, field) in [
        (vec![("stage", "closed")], "stage"),
        (vec![("stage", "lost")], "lost_reason"),
        (
            vec![("stage", "lost"), ("lost_reason", "   ")],
            "lost_reason",
        ),
    ] {
        let res = post(&app, &path("stage"), &sam, &fields).await;
        assert_eq!(res.status(), 422, "{fields:?}");
        let body = res.text().await.unwrap();
        assert!(
            body.contains(&format!("id=\"error-field\">{field}<")),
            "{body}"
        );
    }
    assert_eq!(state(&app, id).await.0, "proposal");
    assert_eq!(audit_count(&app, "lead.stage_changed").await, 2);

    let res = post(
        &app,
        &path("stage"),
        &sam,
        &[("stage", "lost"), ("lost_reason", "Went with a competitor")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let (stage, reason, ..) = state(&app, id).await;
    assert_eq!(
        (stage.as_str(), reason.as_deref()),
        ("lost", Some("Went with a competitor"))
    );

    // Notes.
    let res = post(
        &app,
        &path("notes"),
        &sam,
        &[("note", "Called, left a message.")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = post(&app, &path("notes"), &sam, &[("note", "  ")]).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("id=\"error-field\">note<")
    );
    assert_eq!(audit_count(&app, "lead.note_added").await, 1);

    // Assignment: to a member; not to someone of another tenant.
    let other = new_tenant(&app, "other", "Other Co").await;
    let outsider = account(
        &app,
        "out@example.com",
        "Olga Outsider",
        &other,
        Role::Sales,
    )
    .await;
    let res = post(
        &app,
        &path("assign"),
        &sam,
        &[("assignee", &outsider.to_string())],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("id=\"error-field\">assignee<")
    );
    let res = post(
        &app,
        &path("assign"),
        &sam,
        &[("assignee", &sam_id.to_string())],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(state(&app, id).await.2, Some(sam_id));
    assert_eq!(audit_count(&app, "lead.assigned").await, 1);
    let html = page_as(&app, &format!("/admin/leads?owner={sam_id}"), &sam).await;
    assert_eq!(listed(&html), [id]);
    let res = post(&app, &path("assign"), &sam, &[("assignee", "")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(state(&app, id).await.2, None);

    let html = page_as(&app, &format!("/admin/leads/{id}"), &sam).await;
    let timeline = html.split("id=\"timeline\"").nth(1).unwrap();
    let order = [
        "Arrived through the contact form",
        "Moved to Contacted",
        "Moved to Proposal",
        "Moved to Lost: Went with a competitor",
        "Called, left a message.",
        "Assigned to Sam Sales",
        "Unassigned",
    ];
    let mut at = 0;
    for text in order {
        let found = timeline[at..]
            .find(text)
            .unwrap_or_else(|| panic!("{text} in order: {timeline}"));
        at += found;
    }
    assert!(timeline.contains("Sam Sales"), "who did it");
    // The audit entry names the change.
    let detail: String = vantus::on_db!(db(&app), p => sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'lead.stage_changed' ORDER BY seq DESC LIMIT 1")
        .fetch_one(p).await).unwrap();
    assert!(
        detail.contains("Went with a competitor") && detail.contains("proposal"),
        "{detail}"
    );
}

async fn outbox_rows(app: &TestApp, lead: Uuid) -> Vec<(String, String, String)> {
    vantus::on_db!(db(app), p => sqlx::query_as(
        "SELECT channel, topic, destination FROM outbox WHERE lead_id = $1 ORDER BY channel")
        .bind(lead).fetch_all(p).await)
    .unwrap()
}

async fn rescuing_spam_makes_a_lead_and_notifies(engine: Engine) {
    let (app, site, sam, _) = spawn(engine).await;
    let id = lead_at(
        &app,
        &site,
        "Real Person",
        "Not spam at all.",
        Some("too fast"),
        Timestamp::now(),
    )
    .await;
    assert!(outbox_rows(&app, id).await.is_empty());

    let res = post(&app, &format!("/admin/leads/{id}/not-spam"), &sam, &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(state(&app, id).await.3, None, "a lead now");
    let rows = outbox_rows(&app, id).await;
    assert_eq!(
        rows,
        [(
            "email".to_owned(),
            "lead.created".to_owned(),
            "sales@example.com".to_owned()
        )]
    );
    let payload: String = vantus::on_db!(db(&app), p => sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE lead_id = $1").bind(id).fetch_one(p).await)
    .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["lead"]["name"], "Real Person");
    assert_eq!(payload["lead"]["spam"], false);
    assert_eq!(audit_count(&app, "lead.rescued").await, 1);
    let html = page_as(&app, "/admin/leads", &sam).await;
    assert_eq!(listed(&html), [id]);
    let html = page_as(&app, &format!("/admin/leads/{id}"), &sam).await;
    assert!(
        html.contains("Email lead.created"),
        "the email is on the timeline: {html}"
    );

    // Rescuing again changes nothing and sends nothing more.
    let res = post(&app, &format!("/admin/leads/{id}/not-spam"), &sam, &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(outbox_rows(&app, id).await.len(), 1);
    assert_eq!(audit_count(&app, "lead.rescued").await, 1);

    // Marking it spam again files it in the spam inbox.
    let res = post(&app, &format!("/admin/leads/{id}/spam"), &sam, &[]).await;
    assert_eq!(res.status(), 303);
    assert!(state(&app, id).await.3.is_some());
    assert_eq!(audit_count(&app, "lead.marked_spam").await, 1);
}

async fn bulk_actions_change_every_selected_lead(engine: Engine) {
    let (app, site, sam, sam_id) = spawn(engine).await;
    let a = lead(&app, &site, "Lead A", "one").await;
    let b = lead(&app, &site, "Lead B", "two").await;
    let c = lead(&app, &site, "Lead C", "three").await;
    let other = new_tenant(&app, "other", "Other Co").await;
    let foreign = lead(&app, &other, "Foreign", "not ours").await;
    let (sa, sb, sf) = (a.to_string(), b.to_string(), foreign.to_string());

    let res = post(
        &app,
        "/admin/leads/bulk",
        &sam,
        &[
            ("action", "stage"),
            ("stage", "qualified"),
            ("lead", &sa),
            ("lead", &sb),
            ("lead", &sf),
            ("return_to", "/admin/leads?stage=new"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/admin/leads?stage=new&done=bulk"
    );
    assert_eq!(state(&app, a).await.0, "qualified");
    assert_eq!(state(&app, b).await.0, "qualified");
    assert_eq!(state(&app, c).await.0, "new", "not selected");
    assert_eq!(
        state(&app, foreign).await.0,
        "new",
        "another tenant's lead is untouched"
    );
    assert_eq!(audit_count(&app, "lead.stage_changed").await, 2);

    let res = post(
        &app,
        "/admin/leads/bulk",
        &sam,
        &[
            ("action", "assign"),
            ("assignee", &sam_id.to_string()),
            ("lead", &sa),
            ("lead", &sb),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(state(&app, b).await.2, Some(sam_id));
    assert_eq!(audit_count(&app, "lead.assigned").await, 2);

    let res = post(
        &app,
        "/admin/leads/bulk",
        &sam,
        &[("action", "spam"), ("lead", &sa), ("lead", &sb)],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(state(&app, a).await.3.is_some());
    let html = page_as(&app, "/admin/leads?inbox=spam", &sam).await;
    assert_eq!(listed(&html), [b, a]);

    let res = post(
        &app,
        "/admin/leads/bulk",
        &sam,
        &[("action", "not_spam"), ("lead", &sa), ("lead", &sb)],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(state(&app, a).await.3.is_none() && state(&app, b).await.3.is_none());
    assert_eq!(
        outbox_rows(&app, a).await.len(),
        1,
        "each rescued lead is notified"
    );
    assert_eq!(outbox_rows(&app, b).await.len(), 1);
    assert_eq!(audit_count(&app, "lead.marked_spam").await, 2);
    assert_eq!(audit_count(&app, "lead.rescued").await, 2);

    for (fields, field) in [
        (vec![("action", "stage"), ("stage", "qualified")], "lead"),
        (
            vec![
                ("action", "stage"),
                ("stage", "nope"),
                ("lead", sa.as_str()),
            ],
            "stage",
        ),
        (
            vec![
                ("action", "stage"),
                ("stage", "lost"),
                ("lead", sa.as_str()),
            ],
            "lost_reason",
        ),
        (
            vec![("action", "teleport"), ("lead", sa.as_str())],
            "action",
        ),
        (vec![("action", "spam"), ("lead", "x")], "lead"),
        (
            vec![
                ("action", "assign"),
                ("assignee", "0190c6a4-0000-7000-8000-000000000000"),
                ("lead", sa.as_str()),
            ],
            "assignee",
        ),
    ] {
        let res = post(&app, "/admin/leads/bulk", &sam, &fields).await;
        assert_eq!(res.status(), 422, "{fields:?}");
        assert!(
            res.text()
                .await
                .unwrap()
                .contains(&format!("id=\"error-field\">{field}<")),
            "{fields:?}"
        );
    }
    assert_eq!(state(&app, a).await.0, "qualified");
}

async fn permissions_and_tenant_isolation(engine: Engine) {
    let (app, site, sam, _) = spawn(engine).await;
    let id = lead(&app, &site, "Ada Lovelace", "An engine.").await;
    for (email, role) in [
        ("vera@example.com", Role::Viewer),
        ("ed@example.com", Role::Editor),
    ] {
        account(&app, email, "Someone", &site, role).await;
        let cookie = session_of(&app, email).await;
        for path in [
            "/admin/leads".to_owned(),
            format!("/admin/leads/{id}"),
            "/admin/leads/export".into(),
        ] {
            assert_eq!(
                get(&app, &path, &cookie).await.status(),
                403,
                "{role} {path}"
            );
        }
        let res = post(
            &app,
            &format!("/admin/leads/{id}/stage"),
            &cookie,
            &[("stage", "won")],
        )
        .await;
        assert_eq!(res.status(), 403, "{role} may not change a lead");
    }
    assert_eq!(
        get(&app, "/admin/leads/export", &sam).await.status(),
        403,
        "sales may not export"
    );
    account(&app, "olive@example.com", "Olive Owner", &site, Role::Owner).await;
    let owner = session_of(&app, "olive@example.com").await;
    assert_eq!(get(&app, "/admin/leads/export", &owner).await.status(), 200);

    // Another tenant's lead: not found, for reading and for changing.
    let other = new_tenant(&app, "other", "Other Co").await;
    let theirs = lead(&app, &other, "Their Lead", "secret plans").await;
    assert_eq!(
        get(&app, &format!("/admin/leads/{theirs}"), &sam)
            .await
            .status(),
        404
    );
    for (action, fields) in [
        ("stage", vec![("stage", "won")]),
        ("notes", vec![("note", "hello")]),
        ("assign", vec![("assignee", "")]),
        ("spam", vec![]),
        ("not-spam", vec![]),
    ] {
        let res = post(
            &app,
            &format!("/admin/leads/{theirs}/{action}"),
            &sam,
            &fields,
        )
        .await;
        assert_eq!(res.status(), 404, "{action}");
    }
    assert_eq!(state(&app, theirs).await.0, "new");
    let html = page_as(&app, "/admin/leads?q=secret", &sam).await;
    assert!(listed(&html).is_empty(), "search stays in the tenant");
    let csv = get(&app, "/admin/leads/export", &owner)
        .await
        .text()
        .await
        .unwrap();
    assert!(!csv.contains("Their Lead"));
}

/// Parses CSV with Python's csv module; the rows.
fn python_csv(text: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, io, json, sys; print(json.dumps(list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8', newline='')))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn the_csv_export_is_spreadsheet_safe_and_round_trips(engine: Engine) {
    let (app, site, _, _) = spawn(engine).await;
    account(&app, "olive@example.com", "Olive Owner", &site, Role::Owner).await;
    let owner = session_of(&app, "olive@example.com").await;
    let message = "Budget: \"tight\", timeline: soon.\nSecond line; -- dashes inside";
    let evil = lead(&app, &site, "=HYPERLINK(\"http://x\")", message).await;
    let plain = lead(&app, &site, "Grace Hopper", "+31 20 123 4567 call me").await;

    let res = get(&app, "/admin/leads/export", &owner).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("leads.csv")
    );
    let rows = python_csv(&res.text().await.unwrap());
    assert_eq!(rows[0][..4], ["id", "created_at", "stage", "name"]);
    assert_eq!(rows.len(), 3);
    let row = |id: Uuid| {
        rows.iter()
            .find(|r| r[0] == id.to_string())
            .unwrap()
            .clone()
    };
    let e = row(evil);
    assert_eq!(e[3], "'=HYPERLINK(\"http://x\")", "neutralised");
    assert_eq!(e[2], "new");
    assert_eq!(e[4], format!("{}@example.org", evil.simple()));
    assert_eq!(e[5], "Analytical Engines");
    assert_eq!(e[7], "25k-50k");
    assert_eq!(e[9], message, "the rest comes back unchanged");
    assert_eq!(e[10], "form");
    assert_eq!(row(plain)[9], "'+31 20 123 4567 call me");
    assert_eq!(audit_count(&app, "leads.exported").await, 1);

    // The export follows the filter.
    let res = get(&app, "/admin/leads/export?q=hopper", &owner).await;
    let rows = python_csv(&res.text().await.unwrap());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][3], "Grace Hopper");
    assert_eq!(audit_count(&app, "leads.exported").await, 2);
    let res = get(&app, "/admin/leads/export?stage=bogus", &owner).await;
    assert_eq!(res.status(), 400);
}

async fn keyset_pages_are_stable_while_leads_arrive(engine: Engine) {
    let (app, site, sam, _) = spawn(engine).await;
    // 120 leads a second apart in the past, and 10 sharing one instant (ties broken by id).
    let start = Timestamp::now().minus(Duration::from_secs(3600));
    let mut seeded = HashSet::new();
    for n in 0..120u64 {
        seeded.insert(
            lead_at(
                &app,
                &site,
                &format!("Seeded {n}"),
                "seed",
                None,
                start.plus(Duration::from_secs(n)),
            )
            .await,
        );
    }
    let tie = start.minus(Duration::from_secs(10));
    for n in 0..10 {
        seeded.insert(lead_at(&app, &site, &format!("Tied {n}"), "seed", None, tie).await);
    }
    // Leads keep arriving while someone pages through.
    let inserter = {
        let db = db(&app).clone();
        let scope = site.clone();
        tokio::spawn(async move {
            for n in 0..40 {
                let id = Uuid::now_v7();
                vantus::on_db!(&db, p => sqlx::query(
                    "INSERT INTO leads (id, tenant_id, stage, source, name, email, budget, message, created_at, updated_at)
                     VALUES ($1, $2, 'new', 'api', $3, 'x@example.org', 'not-sure', 'late', $4, $4)")
                    .bind(id).bind(scope.id()).bind(format!("Late {n}")).bind(Timestamp::now())
                    .execute(p).await.map(|_| ())).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut path = "/admin/leads?q=seed".to_owned();
    for pages in 1.. {
        assert!(pages <= 4, "130 leads are 3 pages: {path} {seen:?}");
        let html = page_as(&app, &path, &sam).await;
        seen.extend(listed(&html));
        let Some(next) = html.split("id=\"next-page\" rel=\"next\" href=\"").nth(1) else {
            break;
        };
        path = next
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
            .replace("&#38;", "&");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inserter.await.unwrap();
    assert_eq!(seen.len(), 130, "every lead once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 130, "none twice");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), seeded);

    // Without a search too: the late arrivals only ever appear above the first page.
    let first = listed(&page_as(&app, "/admin/leads", &sam).await);
    assert_eq!(first.len(), 50);
}

async fn dashboard_figures(engine: Engine) {
    use vantus::leads::crm::{self, Stage};
    let (app, site, sam, _) = spawn(engine).await;
    let a = lead(&app, &site, "A", "x").await;
    lead(&app, &site, "B", "x").await;
    lead_at(&app, &site, "S", "x", Some("spam"), Timestamp::now()).await;
    post(
        &app,
        &format!("/admin/leads/{a}/stage"),
        &sam,
        &[("stage", "won")],
    )
    .await;
    let mut pooled = db(&app).acquire().await.unwrap();
    let mut conn = pooled.conn();
    let counts = crm::stage_counts(&mut conn, &site).await.unwrap();
    assert_eq!(counts.len(), 6);
    assert_eq!(counts[0], (Stage::New, 1));
    assert_eq!(counts[4], (Stage::Won, 1));
    assert_eq!(crm::open_count(&mut conn, &site).await.unwrap(), 1);
}

/// `leads` (time, id, message) stored in `scope` in this order, in one transaction (2,700
/// commits would dominate a test's time on PostgreSQL).
async fn insert_leads(app: &TestApp, scope: &TenantScope, leads: &[(Timestamp, Uuid, &str)]) {
    vantus::on_db!(db(app), p => async {
        let mut tx = p.begin().await?;
        for (at, id, message) in leads {
            sqlx::query(
                "INSERT INTO leads (id, tenant_id, stage, source, name, email, budget, message,
                                    created_at, updated_at)
                 VALUES ($1, $2, 'new', 'form', 'Bench', $3, '25k-50k', $4, $5, $5)")
                .bind(id).bind(scope.id()).bind(format!("{}@example.org", id.simple()))
                .bind(*message).bind(at).execute(&mut *tx).await?;
        }
        tx.commit().await
    }.await)
    .unwrap();
}

/// A broad search (more matches than the narrow plan takes) and a narrow one list exactly the
/// leads that match, newest first (ties by id), across keyset pages: the two plans the search
/// picks between (`store::search::lead_condition`) agree with a plain reading of the data.
async fn broad_and_narrow_searches_page_through_every_match_in_order(engine: Engine) {
    use vantus::leads::crm::{self, Cursor, Filter};
    let (app, site, _, _) = spawn(engine).await;
    let start = Timestamp::now().unix_micros() - 10_000_000_000;
    // 2,160 leads say "common": more than the narrow plan takes (500 on SQLite, 2,000 on
    // PostgreSQL); 270 say "narrowword", fewer than either.
    let inserted: Vec<(Timestamp, Uuid, &str)> = (0..2_700i64)
        .map(|i| {
            let message = match i % 10 {
                3 => "a narrowword and common words",
                0 | 5 => "plain text",
                _ => "common words only",
            };
            // Every 50th pair shares its instant: the order falls back to the id.
            let micros = start + (i - i64::from(i % 50 == 1)) * 1_000_000;
            (
                Timestamp::from_unix_micros(micros).unwrap(),
                Uuid::now_v7(),
                message,
            )
        })
        .collect();
    insert_leads(&app, &site, &inserted).await;
    // Then 60 leads inserted late with earlier times (an import, a restore in another order):
    // their rowids are the highest, their places all over the list, so the newest-first read
    // of the FTS index is out of the list's order and must notice.
    let late: Vec<(Timestamp, Uuid, &str)> = (0..60i64)
        .map(|i| {
            let micros = start + ((i * 1_361) % 2_700) * 1_000_000 + 500_000;
            let message = if i % 3 == 0 {
                "a narrowword and common words"
            } else {
                "common words only"
            };
            (
                Timestamp::from_unix_micros(micros).unwrap(),
                Uuid::now_v7(),
                message,
            )
        })
        .collect();
    insert_leads(&app, &site, &late).await;
    let mut inserted = inserted;
    inserted.extend(late);
    inserted.sort_by_key(|l| std::cmp::Reverse((l.0, l.1)));
    for word in ["common", "narrowword", "plain"] {
        let expected: Vec<Uuid> = inserted
            .iter()
            .filter(|(_, _, m)| m.split(' ').any(|w| w == word))
            .map(|(_, id, _)| *id)
            .collect();
        let filter = Filter {
            words: vec![word.to_owned()],
            ..Filter::default()
        };
        for size in [51, 250] {
            let mut listed = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let page = vantus::with_conn!(db(&app), conn =>
                    crm::page(conn, &site, &filter, after.as_ref(), size).await)
                .unwrap();
                let Some(last) = page.last() else { break };
                after = Some(Cursor::of(last));
                listed.extend(page.iter().map(|l| l.id));
            }
            assert_eq!(
                listed.len(),
                expected.len(),
                "{word} by {size}: every match once"
            );
            assert!(
                listed == expected,
                "{word} by {size}: listed newest first, ties by id"
            );
        }
    }
}

/// A SQLite index made by an earlier version (no prefix index) is made again, full, when the
/// server migrates: searches keep finding every lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_without_prefixes_is_rebuilt_on_migrate() {
    use vantus::leads::crm::{self, Filter};
    let (app, site, _, _) = spawn(Engine::Sqlite).await;
    let ada = lead(&app, &site, "Ada", "We need a zeppelin booking portal").await;
    vantus::on_db!(db(&app), p => async {
        sqlx::query("DROP TABLE _leads_fts").execute(p).await?;
        sqlx::query(
            "CREATE VIRTUAL TABLE _leads_fts USING fts5(
                 lead_id UNINDEXED, name, email, company, message,
                 tokenize = 'unicode61 remove_diacritics 2')").execute(p).await?;
        Ok::<_, sqlx::Error>(())
    }.await)
    .unwrap();
    vantus::store::migrate::migrate_to(db(&app), None)
        .await
        .unwrap();
    let definition: String = vantus::on_db!(db(&app), p => sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE name = '_leads_fts'").fetch_one(p).await)
    .unwrap();
    assert!(definition.contains("prefix"), "{definition}");
    for word in ["zeppelin", "zep", "booking"] {
        let filter = Filter {
            words: vantus::store::search::words(word),
            ..Filter::default()
        };
        let found =
            vantus::with_conn!(db(&app), conn => crm::page(conn, &site, &filter, None, 10).await)
                .unwrap();
        assert_eq!(
            found.iter().map(|l| l.id).collect::<Vec<_>>(),
            [ada],
            "{word}"
        );
    }
}

both_engines!(
    search_filters_and_the_lead_page,
    broad_and_narrow_searches_page_through_every_match_in_order,
    the_pipeline_notes_assignment_and_timeline,
    rescuing_spam_makes_a_lead_and_notifies,
    bulk_actions_change_every_selected_lead,
    permissions_and_tenant_isolation,
    the_csv_export_is_spreadsheet_safe_and_round_trips,
    keyset_pages_are_stable_while_leads_arrive,
    dashboard_figures,
);
