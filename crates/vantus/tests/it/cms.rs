//! Content management at `/admin/content`: every action over HTTP on both engines, drafts
//! that leave the public page alone, revisions and their restore, redirects from old slugs,
//! signed previews, the stored-XSS corpus through the preview and the public page, scheduled
//! publish and unpublish (and exactly once with two servers on one PostgreSQL), permissions,
//! tenant isolation and the audit entries.

use std::time::Duration;

use uuid::Uuid;
use vantus::auth::permission::Role;

use crate::both_engines;
use crate::support::staff::{
    Signed, account, audit_count, must_create_user, new_tenant, sign_in_as, spawn_cheap_with,
};
use crate::support::{Engine, ResponseExt, TestApp, eventually};

async fn spawn(engine: Engine) -> TestApp {
    spawn_cheap_with(engine, |env| {
        env.insert("VANTUS_CONTENT_SCHEDULE_TICK".into(), "1s".into());
    })
    .await
}

async fn editor(app: &TestApp) -> Signed {
    must_create_user(app, "editor@example.com", "editor");
    sign_in_as(app, "editor@example.com").await
}

/// Posts a portal form with the session's token.
async fn post(
    app: &TestApp,
    who: &Signed,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut all = vec![("csrf_token", who.token.as_str())];
    all.extend_from_slice(fields);
    app.post_form(path, &all)
        .header("cookie", &who.cookie)
        .await
}

async fn get_as(app: &TestApp, who: &Signed, path: &str) -> reqwest::Response {
    app.get(path).header("cookie", &who.cookie).await
}

async fn item_id(app: &TestApp, kind: &str, slug: &str) -> Uuid {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM content_items WHERE kind = $1 AND slug = $2")
        .bind(kind).bind(slug).fetch_one(p).await)
    .unwrap()
}

/// The site's own cache notices content changes within a second; tests ask at once.
async fn fresh(app: &TestApp) {
    app.server().site.refresh_generation().await.unwrap();
}

async fn public(app: &TestApp, path: &str) -> (u16, String) {
    fresh(app).await;
    let res = app.get(path).await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

fn insight_fields<'a>(slug: &'a str, title: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("kind", "insight"),
        ("slug", slug),
        ("title", title),
        ("summary", "A summary."),
        ("body", body),
        ("meta", "{\"author\": \"Ada\", \"tags\": [\"ops\"]}"),
        ("seo_description", ""),
        ("seo_image", ""),
        ("seo_canonical", ""),
    ]
}

/// Creates an insight through the portal; its id.
async fn create(app: &TestApp, who: &Signed, slug: &str, title: &str, body: &str) -> Uuid {
    let res = post(
        app,
        who,
        "/admin/content",
        &insight_fields(slug, title, body),
    )
    .await;
    assert_eq!(res.status(), 303, "create {slug}");
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    let id = to
        .trim_start_matches("/admin/content/")
        .split('?')
        .next()
        .unwrap();
    Uuid::parse_str(id).unwrap()
}

async fn publish(app: &TestApp, who: &Signed, id: Uuid) {
    post(app, who, &format!("/admin/content/{id}/publish"), &[])
        .await
        .assert_redirect_to(&format!("/admin/content/{id}?done=published"));
}

async fn every_action_works_and_is_audited(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = create(
        &app,
        &ed,
        "fresh-thoughts",
        "Fresh thoughts",
        "First **words**.",
    )
    .await;
    assert_eq!(audit_count(&app, "content.created").await, 1);
    // A draft is not on the site.
    assert_eq!(public(&app, "/insights/fresh-thoughts").await.0, 404);
    let page = get_as(&app, &ed, &format!("/admin/content/{id}"))
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(
        page.contains("Fresh thoughts") && page.contains("status: <strong>draft</strong>"),
        "{page}"
    );
    let list = get_as(&app, &ed, "/admin/content?kind=insight")
        .await
        .html()
        .await;
    assert!(
        list.contains("Fresh thoughts") && list.contains("draft pending"),
        "{list}"
    );

    // The editor's preview: the unsaved fields through the public page's renderer.
    let res = post(
        &app,
        &ed,
        "/admin/content/preview",
        &[
            ("id", &id.to_string()),
            ("kind", "insight"),
            ("slug", "fresh-thoughts"),
            ("title", "Unsaved title"),
            ("summary", "S"),
            ("body", "Unsaved *body*"),
            ("meta", "{}"),
        ],
    )
    .await
    .assert_status(200);
    assert_eq!(res.headers()["x-robots-tag"], "noindex");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<em>body</em>") && html.contains("Unsaved title"),
        "{html}"
    );
    assert!(html.contains(r#"<meta name="robots" content="noindex">"#));
    let fragment = post(
        &app,
        &ed,
        "/admin/content/preview",
        &[("body", "*x*"), ("fragment", "1")],
    )
    .await
    .assert_status(200)
    .text()
    .await
    .unwrap();
    assert_eq!(fragment.trim(), "<p><em>x</em></p>");

    publish(&app, &ed, id).await;
    let (status, html) = public(&app, "/insights/fresh-thoughts").await;
    assert_eq!(status, 200);
    assert!(html.contains("<strong>words</strong>"), "{html}");
    assert_eq!(audit_count(&app, "content.published").await, 1);
    // Publishing again with nothing pending changes nothing.
    post(&app, &ed, &format!("/admin/content/{id}/publish"), &[])
        .await
        .assert_redirect_to(&format!("/admin/content/{id}?done=nothing"));
    assert_eq!(audit_count(&app, "content.published").await, 1);

    post(&app, &ed, &format!("/admin/content/{id}/unpublish"), &[])
        .await
        .assert_redirect_to(&format!("/admin/content/{id}?done=unpublished"));
    assert_eq!(public(&app, "/insights/fresh-thoughts").await.0, 404);
    assert_eq!(audit_count(&app, "content.unpublished").await, 1);

    publish(&app, &ed, id).await;
    post(&app, &ed, &format!("/admin/content/{id}/delete"), &[])
        .await
        .assert_redirect_to(&format!("/admin/content/{id}?done=deleted"));
    assert_eq!(public(&app, "/insights/fresh-thoughts").await.0, 404);
    let bin = get_as(&app, &ed, "/admin/content?bin=1").await.html().await;
    assert!(bin.contains("Fresh thoughts"), "{bin}");
    let live = get_as(&app, &ed, "/admin/content").await.html().await;
    assert!(!live.contains("Fresh thoughts"));
    // Publishing from the bin is not possible.
    post(&app, &ed, &format!("/admin/content/{id}/publish"), &[])
        .await
        .assert_status(404);
    post(&app, &ed, &format!("/admin/content/{id}/restore"), &[])
        .await
        .assert_redirect_to(&format!("/admin/content/{id}?done=restored"));
    assert_eq!(
        public(&app, "/insights/fresh-thoughts").await.0,
        404,
        "restored unpublished"
    );
    publish(&app, &ed, id).await;
    assert_eq!(public(&app, "/insights/fresh-thoughts").await.0, 200);
    assert_eq!(audit_count(&app, "content.deleted").await, 1);
    assert_eq!(audit_count(&app, "content.restored").await, 1);
    assert_eq!(audit_count(&app, "content.published").await, 3);

    // The audit entries name the editor.
    let db = app.server().app.store.primary();
    let actors: Vec<String> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT DISTINCT actor FROM audit_log WHERE action LIKE 'content.%'").fetch_all(p).await)
    .unwrap();
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert!(actors[0].starts_with("user:"), "{actors:?}");
}

async fn a_draft_leaves_the_public_page_alone_until_published_and_revisions_restore(
    engine: Engine,
) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = item_id(&app, "insight", "graphql-at-scale").await;
    let (_, before) = public(&app, "/insights/graphql-at-scale").await;
    assert!(!before.contains("Rewritten intro"));
    let page = get_as(&app, &ed, &format!("/admin/content/{id}"))
        .await
        .html()
        .await;
    assert!(
        page.contains("GraphQL at scale"),
        "the editor shows the seeded item"
    );

    let mut fields = insight_fields("graphql-at-scale", "GraphQL, rewritten", "Rewritten intro.");
    fields.retain(|(k, _)| *k != "meta");
    fields.push(("meta", "{}"));
    post(&app, &ed, &format!("/admin/content/{id}"), &fields)
        .await
        .assert_redirect_to(&format!("/admin/content/{id}?done=saved"));
    assert_eq!(audit_count(&app, "content.saved").await, 1);
    let (status, during) = public(&app, "/insights/graphql-at-scale").await;
    assert_eq!(status, 200);
    assert_eq!(
        during, before,
        "a saved draft does not change the public page"
    );
    // The editor shows the draft.
    let page = get_as(&app, &ed, &format!("/admin/content/{id}"))
        .await
        .html()
        .await;
    assert!(
        page.contains("Rewritten intro") && page.contains("a draft is waiting"),
        "{page}"
    );

    publish(&app, &ed, id).await;
    let (_, after) = public(&app, "/insights/graphql-at-scale").await;
    assert!(
        after.contains("Rewritten intro") && after.contains("GraphQL, rewritten"),
        "{after}"
    );

    // A second save, then the history: who, when, and a diff.
    let fields2 = insight_fields("graphql-at-scale", "GraphQL, third take", "Third intro.");
    post(&app, &ed, &format!("/admin/content/{id}"), &fields2)
        .await
        .assert_status(303);
    let revs: Vec<(Uuid, i64)> = {
        let db = app.server().app.store.primary();
        vantus::on_db!(db, p => sqlx::query_as(
            "SELECT id, number FROM content_revisions WHERE item_id = $1 ORDER BY number")
            .bind(id).fetch_all(p).await)
        .unwrap()
    };
    assert_eq!(revs.len(), 2);
    let history = get_as(
        &app,
        &ed,
        &format!(
            "/admin/content/{id}/revisions?from={}&to={}",
            revs[0].0, revs[1].0
        ),
    )
    .await
    .assert_status(200)
    .html()
    .await;
    assert!(
        history.contains("Ada Lovelace"),
        "the author is named: {history}"
    );
    assert!(
        history.contains("<del>- Rewritten intro.</del>"),
        "{history}"
    );
    assert!(history.contains("<ins>+ Third intro.</ins>"), "{history}");
    assert!(history.contains(r#"data-field="title""#));

    // Restore revision 1: a new draft (revision 3) with its content; the site keeps revision 1
    // as published until then (it is what was published).
    post(
        &app,
        &ed,
        &format!("/admin/content/{id}/revisions/{}/restore", revs[0].0),
        &[],
    )
    .await
    .assert_redirect_to(&format!("/admin/content/{id}?done=revision"));
    assert_eq!(audit_count(&app, "content.revision_restored").await, 1);
    let page = get_as(&app, &ed, &format!("/admin/content/{id}"))
        .await
        .html()
        .await;
    assert!(
        page.contains("Rewritten intro") && !page.contains("Third intro"),
        "{page}"
    );
    let history = get_as(&app, &ed, &format!("/admin/content/{id}/revisions"))
        .await
        .html()
        .await;
    assert!(history.contains("restored from revision 1"), "{history}");
    publish(&app, &ed, id).await;
    let (_, restored) = public(&app, "/insights/graphql-at-scale").await;
    assert!(
        restored.contains("GraphQL, rewritten") && !restored.contains("Third"),
        "{restored}"
    );

    // The seed runs at every start and never overwrites the portal's edits.
    let state = &app.server().app;
    vantus::in_write_tx!(state.store.primary(), conn =>
        vantus::content::seed::seed_site_tenant(conn, state.site.slug()).await)
    .unwrap();
    let (_, reseeded) = public(&app, "/insights/graphql-at-scale").await;
    assert!(
        reseeded.contains("GraphQL, rewritten"),
        "the seed left the edit alone"
    );
}

async fn an_old_slug_answers_301_and_seo_fields_reach_the_head(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = item_id(&app, "insight", "restore-drills").await;
    let mut fields = insight_fields("restore-drills-in-practice", "Restore drills", "Moved.");
    for (k, v) in fields.iter_mut() {
        match *k {
            "seo_description" => *v = "Drills, described for search engines.",
            "seo_image" => *v = "/media/drill.webp",
            "seo_canonical" => *v = "https://canonical.example/drills",
            _ => {}
        }
    }
    post(&app, &ed, &format!("/admin/content/{id}"), &fields)
        .await
        .assert_status(303);
    // Until published, the old address is the page.
    assert_eq!(public(&app, "/insights/restore-drills").await.0, 200);
    publish(&app, &ed, id).await;
    fresh(&app).await;
    app.get("/insights/restore-drills")
        .await
        .assert_status(301)
        .assert_redirect_to("/insights/restore-drills-in-practice");
    let (status, html) = public(&app, "/insights/restore-drills-in-practice").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            r#"<meta name="description" content="Drills, described for search engines.">"#
        ),
        "{html}"
    );
    assert!(
        html.contains(r#"<link rel="canonical" href="https://canonical.example/drills">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<meta property="og:image" content="http://"#)
            && html.contains("/media/drill.webp\">"),
        "{html}"
    );
    assert!(!html.contains("noindex"));
    // An unknown slug is still a 404.
    assert_eq!(public(&app, "/insights/never-was").await.0, 404);

    // A page made in the portal lives at /<slug>, and its renamed address redirects too.
    let res = post(
        &app,
        &ed,
        "/admin/content",
        &[
            ("kind", "page"),
            ("slug", "careers"),
            ("title", "Careers"),
            ("summary", "Join us."),
            ("body", "We are hiring."),
            ("meta", "{}"),
        ],
    )
    .await
    .assert_status(303);
    let page_id = Uuid::parse_str(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .trim_start_matches("/admin/content/")
            .split('?')
            .next()
            .unwrap(),
    )
    .unwrap();
    publish(&app, &ed, page_id).await;
    let (status, html) = public(&app, "/careers").await;
    assert_eq!(status, 200);
    assert!(html.contains("We are hiring."));
    post(
        &app,
        &ed,
        &format!("/admin/content/{page_id}"),
        &[
            ("slug", "jobs"),
            ("title", "Careers"),
            ("summary", "Join us."),
            ("body", "We are hiring."),
            ("meta", "{}"),
        ],
    )
    .await
    .assert_status(303);
    publish(&app, &ed, page_id).await;
    fresh(&app).await;
    app.get("/careers").await.assert_redirect_to("/jobs");
    assert_eq!(
        app.post_form("/careers", &[]).await.status(),
        404,
        "only GET finds pages"
    );
}

async fn bad_input_is_a_422_naming_the_field(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = create(&app, &ed, "valid-one", "Valid", "Body").await;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("title", "", "title: must not be empty"),
        ("slug", "Not A Slug", "slug: use lowercase"),
        (
            "slug",
            "graphql-at-scale",
            "slug: \"graphql-at-scale\" is taken",
        ),
        (
            "seo_canonical",
            "http://example.com/x",
            "seo_canonical: must be an absolute https",
        ),
        (
            "seo_canonical",
            "/relative",
            "seo_canonical: must be an absolute https",
        ),
        ("meta", "{not json", "meta: is not valid JSON"),
    ];
    for (field, value, message) in cases {
        let mut fields = insight_fields("valid-one", "Valid", "Body");
        for (k, v) in fields.iter_mut() {
            if *k == field {
                *v = value;
            }
        }
        let res = post(&app, &ed, &format!("/admin/content/{id}"), &fields).await;
        assert_eq!(res.status(), 422, "{field}={value}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&message.replace('"', "&#34;")) || html.contains(message),
            "{field}={value}: {html}"
        );
        assert!(
            html.contains(&format!("href=\"#field-{field}\"")),
            "{field}: the summary links the field"
        );
    }
    // A new item with a bad field is refused the same way, and nothing is stored.
    let res = post(
        &app,
        &ed,
        "/admin/content",
        &insight_fields("Bad Slug", "T", "B"),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(audit_count(&app, "content.created").await, 1);
    assert_eq!(audit_count(&app, "content.saved").await, 0);

    let sched = format!("/admin/content/{id}/schedule");
    let past = vantus::store::Timestamp::now()
        .minus(Duration::from_secs(60))
        .to_rfc3339_seconds();
    let soon = vantus::store::Timestamp::now()
        .plus(Duration::from_secs(3600))
        .to_rfc3339_seconds();
    let sooner = vantus::store::Timestamp::now()
        .plus(Duration::from_secs(1800))
        .to_rfc3339_seconds();
    for (fields, message) in [
        (
            vec![("publish_at", past.as_str())],
            "publish_at: is in the past",
        ),
        (
            vec![("publish_at", "next tuesday")],
            "publish_at: &#34;next tuesday&#34; is not a date",
        ),
        (
            vec![
                ("publish_at", soon.as_str()),
                ("unpublish_at", sooner.as_str()),
            ],
            "unpublish_at: is before the scheduled publish",
        ),
        (
            vec![("unpublish_at", soon.as_str())],
            "unpublish_at: the item is not published",
        ),
        (vec![], "publish_at: give a time"),
    ] {
        let res = post(&app, &ed, &sched, &fields).await;
        assert_eq!(res.status(), 422, "{fields:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains(message), "{fields:?}: {html}");
    }
    // A publish scheduled, then an unpublish before it: refused too.
    post(&app, &ed, &sched, &[("publish_at", soon.as_str())])
        .await
        .assert_status(303);
    let res = post(&app, &ed, &sched, &[("unpublish_at", sooner.as_str())]).await;
    assert_eq!(res.status(), 422);
    assert_eq!(audit_count(&app, "content.scheduled").await, 1);
    // A fixed page keeps its address.
    let about = item_id(&app, "page", "about").await;
    let res = post(
        &app,
        &ed,
        &format!("/admin/content/{about}"),
        &[
            ("slug", "about-us"),
            ("title", "About"),
            ("summary", "S"),
            ("body", "B"),
            ("meta", "{}"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("slug: the address"));
}

/// The rendered body of an insight page (what the Markdown became).
fn prose_of(html: &str) -> &str {
    let start = html
        .find(r#"<div class="wrap narrow prose">"#)
        .expect("a prose body")
        + 31;
    let end = html[start..].find("</div>\n  </section>").expect("its end") + start;
    &html[start..end]
}

async fn the_xss_corpus_renders_inert_in_previews_and_on_the_public_page(engine: Engine) {
    use vantus::content::xss_corpus::{XSS_CORPUS, active_content};
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let body = XSS_CORPUS.join("\n\n");
    let id = create(&app, &ed, "hostile", "Hostile", &body).await;
    // The live preview's fragment, for each entry alone.
    for source in XSS_CORPUS {
        let fragment = post(
            &app,
            &ed,
            "/admin/content/preview",
            &[("body", source), ("fragment", "1")],
        )
        .await
        .assert_status(200)
        .text()
        .await
        .unwrap();
        if let Some(found) = active_content(&fragment) {
            panic!("{source:?} previewed with {found}: {fragment}");
        }
    }
    // The full-page preview, the signed preview link and the published page.
    let mut fields = insight_fields("hostile", "Hostile", &body);
    fields.push(("id", ""));
    let full = post(&app, &ed, "/admin/content/preview", &fields)
        .await
        .assert_status(200)
        .text()
        .await
        .unwrap();
    let page = get_as(&app, &ed, &format!("/admin/content/{id}"))
        .await
        .html()
        .await;
    let link = page
        .split("Preview link")
        .nth(1)
        .unwrap()
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let signed = app
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .assert_status(200)
        .text()
        .await
        .unwrap();
    publish(&app, &ed, id).await;
    let (status, published) = public(&app, "/insights/hostile").await;
    assert_eq!(status, 200);
    for (what, html) in [
        ("preview", &full),
        ("signed preview", &signed),
        ("public page", &published),
    ] {
        assert!(!html.contains("<script"), "{what} has a script");
        let prose = prose_of(html);
        if let Some(found) = active_content(prose) {
            panic!("{what} rendered {found}");
        }
        assert!(
            prose.contains("&lt;script&gt;"),
            "{what}: raw HTML shows as text"
        );
    }
}

async fn signed_preview_links_show_the_draft_and_refuse_forgeries_and_expiry(engine: Engine) {
    let app = spawn_cheap_with(engine, |env| {
        env.insert("VANTUS_CONTENT_PREVIEW_TTL".into(), "2s".into());
    })
    .await;
    let ed = editor(&app).await;
    let id = item_id(&app, "insight", "engineering-rigor").await;
    let mut fields = insight_fields(
        "engineering-rigor",
        "Rigor, drafted",
        "Draft body for review.",
    );
    fields.retain(|(k, _)| *k != "meta");
    fields.push(("meta", "{}"));
    post(&app, &ed, &format!("/admin/content/{id}"), &fields)
        .await
        .assert_status(303);
    let page = get_as(&app, &ed, &format!("/admin/content/{id}"))
        .await
        .html()
        .await;
    let link = page
        .split("Preview link")
        .nth(1)
        .unwrap()
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    // Anyone with the link (no session) sees the draft, marked noindex and not cached.
    let res = app
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .assert_status(200);
    assert_eq!(res.headers()["x-robots-tag"], "noindex");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("Draft body for review.") && html.contains("Rigor, drafted"));
    // The public page is still the published one.
    let (_, live) = public(&app, "/insights/engineering-rigor").await;
    assert!(!live.contains("Draft body for review."));
    // Altered: a 404 that says why.
    let mut tampered = link.clone();
    tampered.pop();
    tampered.push(if link.ends_with('0') { '1' } else { '0' });
    let unsigned = link.rsplit_once('.').unwrap().0.to_owned();
    for bad in [tampered, unsigned, format!("{link}x")] {
        let res = app
            .client
            .get(&bad)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{bad}");
        assert_eq!(res.headers()["x-robots-tag"], "noindex");
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("This preview link is not valid")
        );
    }
    // Expired: a 403 that says so.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = app
        .client
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("This preview link expired")
    );
}

async fn roles_and_tenants_are_kept_apart(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = create(&app, &ed, "members-only", "Members only", "Body").await;
    must_create_user(&app, "viewer@example.com", "viewer");
    must_create_user(&app, "sales@example.com", "sales");
    let viewer = sign_in_as(&app, "viewer@example.com").await;
    let sales = sign_in_as(&app, "sales@example.com").await;
    // A viewer reads the list, the editor page and the history, and changes nothing.
    get_as(&app, &viewer, "/admin/content")
        .await
        .assert_status(200);
    let page = get_as(&app, &viewer, &format!("/admin/content/{id}"))
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(
        !page.contains("Save draft") && !page.contains("/publish\""),
        "{page}"
    );
    get_as(&app, &viewer, &format!("/admin/content/{id}/revisions"))
        .await
        .assert_status(200);
    let fields = insight_fields("members-only", "Changed", "Changed");
    for who in [&viewer, &sales] {
        post(&app, who, &format!("/admin/content/{id}"), &fields)
            .await
            .assert_status(403);
        post(&app, who, &format!("/admin/content/{id}/publish"), &[])
            .await
            .assert_status(403);
        post(&app, who, "/admin/content", &fields)
            .await
            .assert_status(403);
    }
    get_as(&app, &sales, "/admin/content")
        .await
        .assert_status(403);
    assert_eq!(audit_count(&app, "content.saved").await, 0);

    // An editor of another tenant cannot reach this tenant's item: 404 everywhere.
    let other = new_tenant(&app, "other", "Other Co").await;
    account(&app, "elsewhere@example.com", "Eve", &other, Role::Editor).await;
    let eve = sign_in_as(&app, "elsewhere@example.com").await;
    get_as(&app, &eve, &format!("/admin/content/{id}"))
        .await
        .assert_status(404);
    get_as(&app, &eve, &format!("/admin/content/{id}/revisions"))
        .await
        .assert_status(404);
    post(&app, &eve, &format!("/admin/content/{id}"), &fields)
        .await
        .assert_status(404);
    post(&app, &eve, &format!("/admin/content/{id}/publish"), &[])
        .await
        .assert_status(404);
    post(&app, &eve, &format!("/admin/content/{id}/delete"), &[])
        .await
        .assert_status(404);
    let list = get_as(&app, &eve, "/admin/content").await.html().await;
    assert!(
        !list.contains("Members only") && !list.contains("GraphQL"),
        "{list}"
    );
    // Eve's own item with the same slug is hers alone.
    let hers = create(&app, &eve, "members-only", "Hers", "Hers").await;
    assert_ne!(hers, id);
    get_as(&app, &ed, &format!("/admin/content/{hers}"))
        .await
        .assert_status(404);
}

/// When the schedule row is done, and what it says.
async fn schedule_outcomes(app: &TestApp, item: Uuid) -> Vec<(String, Option<String>)> {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_as(
        "SELECT action, outcome FROM content_schedules WHERE item_id = $1 ORDER BY run_at")
        .bind(item).fetch_all(p).await)
    .unwrap()
}

async fn scheduled_publish_and_unpublish_happen_on_time(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = create(&app, &ed, "timed", "Timed", "On time.").await;
    let now = vantus::store::Timestamp::now();
    let publish_at = now.plus(Duration::from_secs(2)).to_rfc3339_seconds();
    let unpublish_at = now.plus(Duration::from_secs(5)).to_rfc3339_seconds();
    post(
        &app,
        &ed,
        &format!("/admin/content/{id}/schedule"),
        &[
            ("publish_at", publish_at.as_str()),
            ("unpublish_at", unpublish_at.as_str()),
        ],
    )
    .await
    .assert_redirect_to(&format!("/admin/content/{id}?done=scheduled"));
    assert_eq!(audit_count(&app, "content.scheduled").await, 2);
    assert_eq!(public(&app, "/insights/timed").await.0, 404);
    eventually(
        Duration::from_secs(10),
        "the scheduled publish",
        async || public(&app, "/insights/timed").await.0 == 200,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the scheduled unpublish",
        async || public(&app, "/insights/timed").await.0 == 404,
    )
    .await;
    assert_eq!(
        schedule_outcomes(&app, id).await,
        [
            ("publish".into(), Some("done".into())),
            ("unpublish".into(), Some("done".into()))
        ]
    );
    // Carried out as the user who scheduled them.
    let db = app.server().app.store.primary();
    let rows: Vec<(String, String, String)> = vantus::on_db!(db, p => sqlx::query_as(
        "SELECT action, actor, detail FROM audit_log WHERE action IN ('content.published', 'content.unpublished') ORDER BY seq")
        .fetch_all(p).await).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let creator: String = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'content.created'").fetch_one(p).await)
    .unwrap();
    for (_, actor, detail) in &rows {
        assert_eq!(actor, &creator);
        assert!(detail.contains("\"scheduled\":true"), "{detail}");
    }
    // The dashboard's list is empty again.
    let pending = vantus::with_conn!(db, conn =>
        vantus::content::editing::awaiting(conn, &app.server().app.site, 50).await)
    .unwrap();
    assert!(pending.iter().all(|a| a.item_id != id), "{pending:?}");

    // A cancelled schedule never runs.
    let later = vantus::store::Timestamp::now()
        .plus(Duration::from_secs(2))
        .to_rfc3339_seconds();
    post(
        &app,
        &ed,
        &format!("/admin/content/{id}/schedule"),
        &[("publish_at", later.as_str())],
    )
    .await
    .assert_status(303);
    let pending = vantus::with_conn!(db, conn =>
        vantus::content::editing::awaiting(conn, &app.server().app.site, 50).await)
    .unwrap();
    assert!(
        pending
            .iter()
            .any(|a| a.item_id == id && a.what == "publish"),
        "{pending:?}"
    );
    let sid: Uuid = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT id FROM content_schedules WHERE item_id = $1 AND done_at IS NULL").bind(id).fetch_one(p).await).unwrap();
    post(
        &app,
        &ed,
        &format!("/admin/content/{id}/schedule/{sid}/cancel"),
        &[],
    )
    .await
    .assert_redirect_to(&format!("/admin/content/{id}?done=cancelled"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(public(&app, "/insights/timed").await.0, 404);
    assert_eq!(audit_count(&app, "content.schedule_cancelled").await, 1);
}

/// A scheduled publish publishes the draft it was scheduled for: an edit saved in between
/// stays a draft (the portal still shows it pending) and never reaches the public page unseen.
async fn a_scheduled_publish_publishes_the_draft_it_was_scheduled_for(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let id = create(&app, &ed, "pinned", "Pinned", "Reviewed text.").await;
    let publish_at = vantus::store::Timestamp::now()
        .plus(Duration::from_secs(3))
        .to_rfc3339_seconds();
    post(
        &app,
        &ed,
        &format!("/admin/content/{id}/schedule"),
        &[("publish_at", publish_at.as_str())],
    )
    .await
    .assert_redirect_to(&format!("/admin/content/{id}?done=scheduled"));
    // Edited after scheduling, before the schedule runs.
    post(
        &app,
        &ed,
        &format!("/admin/content/{id}"),
        &insight_fields("pinned", "Pinned", "Unreviewed edit."),
    )
    .await
    .assert_redirect_to(&format!("/admin/content/{id}?done=saved"));
    eventually(
        Duration::from_secs(10),
        "the scheduled publish",
        async || public(&app, "/insights/pinned").await.0 == 200,
    )
    .await;
    let (_, page) = public(&app, "/insights/pinned").await;
    assert!(page.contains("Reviewed text."), "{page}");
    assert!(!page.contains("Unreviewed edit."));
    assert_eq!(
        schedule_outcomes(&app, id).await,
        [("publish".into(), Some("done".into()))]
    );
    // The later edit is still the pending draft, and publishing it by hand publishes it.
    let db = app.server().app.store.primary();
    let pending = vantus::with_conn!(db, conn =>
        vantus::content::editing::awaiting(conn, &app.server().app.site, 50).await)
    .unwrap();
    assert!(
        pending.iter().any(|a| a.item_id == id && a.what == "draft"),
        "{pending:?}"
    );
    publish(&app, &ed, id).await;
    let (_, page) = public(&app, "/insights/pinned").await;
    assert!(page.contains("Unreviewed edit."), "{page}");
}

/// Restoring a revision whose slug another item has taken since is a 409 naming the slug, and
/// changes nothing.
async fn restoring_a_revision_whose_slug_was_taken_is_a_conflict(engine: Engine) {
    let app = spawn(engine).await;
    let ed = editor(&app).await;
    let a = create(&app, &ed, "alpha-notes", "Alpha", "First body.").await;
    post(
        &app,
        &ed,
        &format!("/admin/content/{a}"),
        &insight_fields("beta-notes", "Alpha", "Second body."),
    )
    .await
    .assert_redirect_to(&format!("/admin/content/{a}?done=saved"));
    publish(&app, &ed, a).await;
    let first: Uuid = vantus::on_db!(app.server().app.store.primary(), p => sqlx::query_scalar(
        "SELECT id FROM content_revisions WHERE item_id = $1 AND number = 1")
        .bind(a).fetch_one(p).await)
    .unwrap();
    let _b = create(&app, &ed, "alpha-notes", "Another alpha", "Its own body.").await;
    let revisions = || async {
        vantus::on_db!(app.server().app.store.primary(), p => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM content_revisions WHERE item_id = $1")
            .bind(a).fetch_one(p).await)
        .unwrap()
    };
    let before = revisions().await;
    let res = post(
        &app,
        &ed,
        &format!("/admin/content/{a}/revisions/{first}/restore"),
        &[],
    )
    .await;
    assert_eq!(res.status(), 409);
    let body = res.text().await.unwrap();
    assert!(body.contains("slug"), "the answer names the slug: {body}");
    assert_eq!(revisions().await, before, "no draft was made");
}

both_engines!(
    every_action_works_and_is_audited,
    restoring_a_revision_whose_slug_was_taken_is_a_conflict,
    a_draft_leaves_the_public_page_alone_until_published_and_revisions_restore,
    an_old_slug_answers_301_and_seo_fields_reach_the_head,
    bad_input_is_a_422_naming_the_field,
    the_xss_corpus_renders_inert_in_previews_and_on_the_public_page,
    signed_preview_links_show_the_draft_and_refuse_forgeries_and_expiry,
    roles_and_tenants_are_kept_apart,
    scheduled_publish_and_unpublish_happen_on_time,
    a_scheduled_publish_publishes_the_draft_it_was_scheduled_for,
);

/// Two servers on one PostgreSQL: each scheduled change happens once, on whichever leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_changes_happen_exactly_once_with_two_servers() {
    let app = spawn(Engine::Postgres).await;
    let replica = app
        .spawn_replica(|env| {
            crate::support::staff::cheap_hashing(env);
            env.insert("VANTUS_CONTENT_SCHEDULE_TICK".into(), "1s".into());
        })
        .await;
    let ed = editor(&app).await;
    let mut ids = Vec::new();
    let now = vantus::store::Timestamp::now();
    for (i, slug) in ["twice-a", "twice-b", "twice-c"].into_iter().enumerate() {
        let id = create(&app, &ed, slug, "Twice", "Body").await;
        let publish_at = now
            .plus(Duration::from_secs(2 + i as u64))
            .to_rfc3339_seconds();
        let unpublish_at = now
            .plus(Duration::from_secs(5 + i as u64))
            .to_rfc3339_seconds();
        post(
            &app,
            &ed,
            &format!("/admin/content/{id}/schedule"),
            &[
                ("publish_at", publish_at.as_str()),
                ("unpublish_at", unpublish_at.as_str()),
            ],
        )
        .await
        .assert_status(303);
        ids.push(id);
    }
    eventually(Duration::from_secs(15), "every schedule done", async || {
        let mut all = Vec::new();
        for id in &ids {
            all.extend(schedule_outcomes(&app, *id).await);
        }
        all.iter().all(|(_, o)| o.is_some())
    })
    .await;
    assert_eq!(
        audit_count(&app, "content.published").await,
        3,
        "each publish once"
    );
    assert_eq!(
        audit_count(&app, "content.unpublished").await,
        3,
        "each unpublish once"
    );
    let db = app.server().app.store.primary();
    let revisions: i64 = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT count(*) FROM content_revisions").fetch_one(p).await)
    .unwrap();
    assert_eq!(revisions, 3, "running a schedule writes no revision");
    drop(replica);
}
