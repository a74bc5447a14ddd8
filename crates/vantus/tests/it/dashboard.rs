//! The portal's dashboard: lead figures, content awaiting review, recent activity and system
//! health, each shown only to the roles that may see it, and only the tenant's own figures.

use uuid::Uuid;
use vantus::auth::permission::Role;
use vantus::store::Timestamp;
use vantus::tenancy::TenantScope;

use crate::both_engines;
use crate::support::staff::{account, new_tenant, page_as, session_of, spawn_cheap};
use crate::support::{Engine, TestApp};

/// Leads of `scope`: one per stage given, plus `spam` caught as spam (never counted).
async fn seed_leads(app: &TestApp, scope: &TenantScope, stages: &[&str], spam: usize) {
    let db = app.server().app.store.primary();
    let rows = stages
        .iter()
        .map(|s| (*s, None))
        .chain((0..spam).map(|_| ("new", Some("honeypot"))));
    for (stage, spam_reason) in rows {
        vantus::on_db!(db, p => sqlx::query(
            "INSERT INTO leads (id, tenant_id, stage, spam_reason, source, name, email, budget,
                                message, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'form', 'Someone', 'someone@example.com', 'unknown',
                     'Hello there', $5, $5)")
            .bind(Uuid::now_v7()).bind(scope.id()).bind(stage).bind(spam_reason)
            .bind(Timestamp::now()).execute(p).await.map(|_| ()))
        .unwrap();
    }
}

async fn seed_drafts(app: &TestApp, scope: &TenantScope, titles: &[&str]) {
    let db = app.server().app.store.primary();
    for title in titles {
        vantus::on_db!(db, p => sqlx::query(
            "INSERT INTO content_items (id, tenant_id, kind, slug, title, summary, body_markdown,
                                        meta, status, created_at, updated_at)
             VALUES ($1, $2, 'insight', $3, $4, 's', 'b', '{}', 'draft', $5, $5)")
            .bind(Uuid::now_v7()).bind(scope.id()).bind(format!("draft-{}", Uuid::now_v7().simple()))
            .bind(*title)
            .bind(Timestamp::now()).execute(p).await.map(|_| ()))
        .unwrap();
    }
}

/// Outbox rows of `scope` that the worker leaves alone: dead ones, and pending ones not due
/// for a day.
async fn seed_outbox(app: &TestApp, scope: &TenantScope, pending: usize, dead: usize) {
    let db = app.server().app.store.primary();
    let later = Timestamp::now().plus(std::time::Duration::from_secs(86_400));
    let rows = std::iter::repeat_n("pending", pending).chain(std::iter::repeat_n("dead", dead));
    for status in rows {
        let id = Uuid::now_v7();
        vantus::on_db!(db, p => sqlx::query(
            "INSERT INTO outbox (id, tenant_id, channel, topic, destination, payload, message_id,
                                 status, attempts, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, 'email', 'lead.notify', 'x@example.com', '{}', $3, $4, 0, $5, $6, $6)")
            .bind(id).bind(scope.id()).bind(format!("msg_{}", id.simple())).bind(status)
            .bind(later).bind(Timestamp::now()).execute(p).await.map(|_| ()))
        .unwrap();
    }
}

/// The text of the element with `id` (its first text up to the next tag).
fn text_of(html: &str, id: &str) -> Option<String> {
    let after = html.split(&format!(r#"id="{id}""#)).nth(1)?;
    let after = after.split_once('>')?.1;
    Some(after.split('<').next()?.trim().to_owned())
}

fn stage_count(html: &str, stage: &str) -> Option<String> {
    let after = html.split(&format!(r#"data-stage="{stage}">"#)).nth(1)?;
    Some(after.split('<').next()?.to_owned())
}

async fn figures_match_the_seeded_data(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let site = app.server().app.site.clone();
    seed_leads(
        &app,
        &site,
        &["new", "new", "contacted", "qualified", "won", "lost"],
        3,
    )
    .await;
    seed_drafts(&app, &site, &["Draft about pricing", "Draft about hiring"]).await;
    seed_outbox(&app, &site, 2, 1).await;
    account(&app, "ada@example.com", "Ada Lovelace", &site, Role::Owner).await;
    let owner = session_of(&app, "ada@example.com").await;
    let html = page_as(&app, "/admin", &owner).await;

    assert_eq!(text_of(&html, "new-leads").as_deref(), Some("2"), "{html}");
    assert_eq!(text_of(&html, "open-leads").as_deref(), Some("4"));
    for (stage, n) in [
        ("new", "2"),
        ("contacted", "1"),
        ("qualified", "1"),
        ("won", "1"),
        ("lost", "1"),
    ] {
        assert_eq!(stage_count(&html, stage).as_deref(), Some(n), "{stage}");
    }
    let order: Vec<&str> = html
        .split(r#"data-stage=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(
        order,
        ["new", "contacted", "qualified", "won", "lost"],
        "pipeline order"
    );
    assert_eq!(text_of(&html, "awaiting-review").as_deref(), Some("2"));
    assert!(html.contains("Draft about pricing") && html.contains("Draft about hiring"));
    assert_eq!(text_of(&html, "scheduled-content").as_deref(), Some("0"));
    assert_eq!(text_of(&html, "outbox-pending").as_deref(), Some("2"));
    assert_eq!(text_of(&html, "outbox-dead").as_deref(), Some("1"));
    assert_eq!(text_of(&html, "last-backup").as_deref(), Some("never"));
    assert!(
        text_of(&html, "limiter")
            .unwrap()
            .contains("no Redis configured")
    );
    assert!(html.contains(r#"id="recent-activity""#) && html.contains("login.succeeded"));

    // The figure counts every draft, not only the few listed (nor the first 50 read).
    let many: Vec<String> = (0..53).map(|n| format!("Draft number {n}")).collect();
    let titles: Vec<&str> = many.iter().map(String::as_str).collect();
    seed_drafts(&app, &site, &titles).await;
    let html = page_as(&app, "/admin", &owner).await;
    assert_eq!(text_of(&html, "awaiting-review").as_deref(), Some("55"));
    let listed = html
        .split(r#"id="awaiting-review-items""#)
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .map_or(0, |list| list.matches("<li").count());
    assert!((1..=5).contains(&listed), "{listed} drafts listed");
}

async fn sections_are_hidden_by_role(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let site = app.server().app.site.clone();
    seed_leads(&app, &site, &["new"], 0).await;
    let sections = [
        "leads-summary",
        "content-awaiting",
        "activity",
        "system-health",
    ];
    for (email, role, visible) in [
        ("owner@example.com", Role::Owner, &sections[..]),
        ("admin@example.com", Role::Admin, &sections[..]),
        (
            "editor@example.com",
            Role::Editor,
            &["content-awaiting"][..],
        ),
        ("sales@example.com", Role::Sales, &["leads-summary"][..]),
        (
            "viewer@example.com",
            Role::Viewer,
            &["content-awaiting"][..],
        ),
    ] {
        account(&app, email, "Someone", &site, role).await;
        let html = page_as(&app, "/admin", &session_of(&app, email).await).await;
        for s in sections {
            assert_eq!(
                html.contains(&format!(r#"id="{s}""#)),
                visible.contains(&s),
                "{role:?} and section {s}"
            );
        }
        if !visible.contains(&"leads-summary") {
            assert!(!html.contains("new-leads"), "{role:?} sees no lead figure");
        }
    }
}

async fn figures_are_the_tenants_own(engine: Engine) {
    let app = spawn_cheap(engine).await;
    let site = app.server().app.site.clone();
    let other = new_tenant(&app, "other", "Other Ltd").await;
    seed_leads(&app, &site, &["new", "new", "new", "won"], 0).await;
    seed_drafts(&app, &site, &["Site draft"]).await;
    seed_outbox(&app, &site, 3, 2).await;
    seed_leads(&app, &other, &["contacted"], 1).await;
    account(&app, "ada@example.com", "Ada", &site, Role::Owner).await;
    account(&app, "otto@example.com", "Otto", &other, Role::Owner).await;

    let html = page_as(&app, "/admin", &session_of(&app, "otto@example.com").await).await;
    assert_eq!(text_of(&html, "new-leads").as_deref(), Some("0"), "{html}");
    assert_eq!(text_of(&html, "open-leads").as_deref(), Some("1"));
    assert_eq!(stage_count(&html, "contacted").as_deref(), Some("1"));
    assert_eq!(stage_count(&html, "new"), None);
    assert_eq!(text_of(&html, "awaiting-review").as_deref(), Some("0"));
    assert!(!html.contains("Site draft"));
    assert_eq!(text_of(&html, "outbox-pending").as_deref(), Some("0"));
    assert_eq!(text_of(&html, "outbox-dead").as_deref(), Some("0"));
    assert!(
        !html.contains("Ada"),
        "another tenant's activity is not listed"
    );

    let html = page_as(&app, "/admin", &session_of(&app, "ada@example.com").await).await;
    assert_eq!(text_of(&html, "new-leads").as_deref(), Some("3"));
    assert_eq!(text_of(&html, "open-leads").as_deref(), Some("3"));
    assert_eq!(text_of(&html, "outbox-pending").as_deref(), Some("3"));
    assert_eq!(text_of(&html, "outbox-dead").as_deref(), Some("2"));
}

both_engines!(
    figures_match_the_seeded_data,
    sections_are_hidden_by_role,
    figures_are_the_tenants_own,
);
