//! Lead capture over real HTTP, on SQLite and PostgreSQL: a valid submission (form and API) is
//! stored once with its notification and audit entry; each invalid field is reported and
//! nothing is stored; caught spam gets the normal thank-you page and is stored as spam; an
//! idempotency key replays the first response; the request host picks the tenant; no lead
//! query crosses tenants; a hostile-input corpus always gets a clear 4xx.

use vantus::audit::Actor;
use vantus::leads::form::Email;
use vantus::leads::privacy;
use vantus::leads::queries::{self, Inbox, LeadSource};
use vantus::leads::spam::FormToken;
use vantus::store::{Db, Timestamp};
use vantus::tenancy::{self, TenantScope};

use crate::both_engines;
use crate::support::{Engine, ResponseExt, TestApp};

async fn count(db: &Db, sql: &'static str) -> i64 {
    vantus::on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

async fn leads(app: &TestApp) -> i64 {
    count(
        app.server().app.store.primary(),
        "SELECT count(*) FROM leads",
    )
    .await
}

/// The (spam_reason) of every stored submission, oldest first.
async fn spam_reasons(app: &TestApp) -> Vec<Option<String>> {
    let db = app.server().app.store.primary();
    vantus::on_db!(db, p => sqlx::query_scalar::<_, Option<String>>(
        "SELECT spam_reason FROM leads ORDER BY created_at, id").fetch_all(p).await)
    .unwrap()
}

/// A form token as the server would have issued it `age` seconds ago: past the minimum fill
/// time, so the test need not sleep like a person typing.
fn token_aged(app: &TestApp, age: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    FormToken::issue(app.server().app.secret.expose().as_bytes(), now - age)
}

/// The value of a hidden input in a rendered form.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in the form"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

const VALID: &[(&str, &str)] = &[
    ("name", "Ada Lovelace"),
    ("email", "ada@Example.COM"),
    ("company", "Analytical Engines"),
    ("role", "CTO"),
    ("budget", "25k-50k"),
    ("website", "https://example.com"),
    (
        "message",
        "We need an integration that never loses an order.",
    ),
    ("consent", "on"),
];

/// The valid fields with `overrides` applied (an empty value removes the field).
fn fields<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = VALID
        .iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .copied()
        .collect();
    out.extend(overrides.iter().filter(|(_, v)| !v.is_empty()).copied());
    out
}

fn valid_json() -> serde_json::Value {
    serde_json::json!({
        "name": "Grace Hopper", "email": "grace@example.org", "company": "Navy",
        "budget": "over-100k", "message": "A compiler for business data processing.",
        "consent": true
    })
}

async fn form_submission_is_stored_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let page = app.get_html("/contact").await.assert_status(200);
    assert_eq!(
        page.headers()["cache-control"],
        "no-store",
        "each rendering carries its own token and key"
    );
    let html = page.html().await;
    for field in [
        "name", "email", "company", "role", "budget", "website", "message", "consent",
    ] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "the form has {field}"
        );
    }
    assert!(html.contains(r#"<div class="hp-field" aria-hidden="true">"#));
    assert!(html.contains(r#"name="leave_blank" type="text" tabindex="-1""#));
    let key = hidden(&html, "idempotency_key");
    let token = token_aged(&app, 30);
    let mut body = fields(&[]);
    body.push(("form_token", &token));
    body.push(("idempotency_key", &key));

    // A double click: the same form twice. One lead, the same answer twice.
    for _ in 0..2 {
        app.post_form("/contact", &body)
            .header("accept", "text/html")
            .await
            .assert_redirect_to("/contact/thanks");
    }
    assert_eq!(leads(&app).await, 1);
    let thanks = app
        .get_html("/contact/thanks")
        .await
        .assert_status(200)
        .html()
        .await;
    assert!(thanks.contains("Thank you"));

    let scope = app.server().app.site.clone();
    let stored = with_conn(&app, async |conn| {
        queries::list(conn, &scope, Inbox::Leads, 10, 0).await
    })
    .await;
    let lead = &stored[0];
    assert_eq!(lead.email, "ada@example.com", "the domain is normalised");
    assert_eq!(
        (lead.source.as_str(), lead.spam_reason.as_deref()),
        ("form", None)
    );
    assert_eq!(lead.budget, "25k-50k");
    let db = app.server().app.store.primary();
    // Its notification and its audit entry were written with it, and name it by id only.
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM outbox WHERE channel = 'email' AND lead_id IS NOT NULL"
        )
        .await,
        1
    );
    let detail: String = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT detail || ' ' || resource FROM audit_log WHERE action = 'lead.received'").fetch_one(p).await).unwrap();
    assert!(detail.contains(&lead.id.to_string()), "{detail}");
    assert!(
        !detail.contains("ada@") && !detail.contains("Ada"),
        "no personal data in the audit log: {detail}"
    );
}

async fn with_conn<T>(
    app: &TestApp,
    f: impl AsyncFnOnce(&mut vantus::store::Conn<'_>) -> Result<T, sqlx::Error>,
) -> T {
    let db = app.server().app.store.primary();
    let mut pooled = db.acquire().await.unwrap();
    let mut conn = pooled.conn();
    f(&mut conn).await.unwrap()
}

async fn api_submission_is_idempotent(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let first = app
        .post_json("/api/leads", &valid_json())
        .header("idempotency-key", "retry-1")
        .await
        .assert_status(202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.json_value().await;
    let again = app
        .post_json("/api/leads", &valid_json())
        .header("idempotency-key", "retry-1")
        .await
        .assert_status(202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json_value().await,
        first,
        "a retry gets the first response"
    );
    assert_eq!(leads(&app).await, 1);

    // The same key for a different enquiry is refused, naming the header.
    let mut other = valid_json();
    other["message"] = "A different enquiry altogether.".into();
    let conflict = app
        .post_json("/api/leads", &other)
        .header("idempotency-key", "retry-1")
        .await
        .assert_status(422)
        .json_value()
        .await;
    assert!(
        conflict["error"]["fields"]["Idempotency-Key"].is_string(),
        "{conflict}"
    );
    // Without a key, each request is its own enquiry.
    for _ in 0..2 {
        app.post_json("/api/leads", &valid_json())
            .await
            .assert_status(202);
    }
    assert_eq!(leads(&app).await, 3);
    let id = first["id"].as_str().unwrap();
    let scope = app.server().app.site.clone();
    let lead = with_conn(&app, async |conn| {
        queries::get(conn, &scope, id.parse().unwrap()).await
    })
    .await
    .unwrap();
    assert_eq!(
        (lead.source.as_str(), lead.name.as_str()),
        (LeadSource::Api.as_str(), "Grace Hopper")
    );
}

/// (field, value, what the message must say); the form and the API both refuse each.
const INVALID: &[(&str, &str, &str)] = &[
    ("name", "", "is required"),
    ("name", "Ada\u{7}Lovelace", "control characters"),
    ("name", "<b>Ada</b>", "< or >"),
    ("email", "ada@example", "email address"),
    ("email", "", "is required"),
    (
        "company",
        "a very long company name that goes on and on and on and on and on and on and on and on and on and on and on and on and on",
        "at most 120",
    ),
    ("budget", "a million", "listed ranges"),
    ("website", "javascript:alert(1)", "https://"),
    ("message", "too short", "at least 10"),
    ("consent", "", "must be given"),
];

async fn each_invalid_field_is_reported_and_nothing_is_stored(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let token = token_aged(&app, 30);
    for (field, value, expected) in INVALID {
        // The form: 422, the form again with that field marked and explained, input kept.
        let mut body = fields(&[(field, value)]);
        body.push(("form_token", &token));
        body.push(("idempotency_key", "k-invalid"));
        let html = app
            .post_form("/contact", &body)
            .header("accept", "text/html")
            .await
            .assert_status(422)
            .html()
            .await
            .replace("&#60;", "<")
            .replace("&#62;", ">");
        let error_id = format!("{field}-error");
        assert!(
            html.contains(&format!("aria-describedby=\"{error_id}\""))
                || html.contains(&format!("{error_id}\"")),
            "{field}: no aria-describedby to its error"
        );
        assert!(html.contains(&format!("id=\"{field}\"")), "{field}");
        let at = html
            .find(&format!("id=\"{error_id}\""))
            .unwrap_or_else(|| panic!("{field}: no error element"));
        assert!(
            html[at..at + 300].contains(expected),
            "{field}: {}",
            &html[at..at + 300]
        );
        assert!(html.contains("aria-invalid=\"true\""), "{field}");
        assert!(
            html.contains("Analytical Engines") || *field == "company",
            "{field}: input kept"
        );
        assert!(html.contains("role=\"alert\""), "{field}: error summary");

        // The API: 422 with the field in the map.
        let mut json = valid_json();
        match *field {
            "consent" => json["consent"] = false.into(),
            _ if value.is_empty() => {
                json.as_object_mut().unwrap().remove(*field);
            }
            _ => json[*field] = (*value).into(),
        }
        let body = app
            .post_json("/api/leads", &json)
            .await
            .assert_status(422)
            .json_value()
            .await;
        let message = body["error"]["fields"][field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {body}"));
        assert!(message.contains(expected), "{field}: {message}");
    }
    assert_eq!(leads(&app).await, 0, "nothing invalid is stored");
}

async fn caught_spam_gets_the_thank_you_page_and_is_stored_as_spam(engine: Engine) {
    let app = TestApp::spawn_with(engine, |env| {
        env.insert("VANTUS_SPAM_BLOCKED_DOMAINS".into(), "spam.example".into());
        env.insert("VANTUS_SPAM_MAX_LINKS".into(), "2".into());
    })
    .await;
    let html = app.get_html("/contact").await.html().await;
    let just_rendered = hidden(&html, "form_token");
    let good = token_aged(&app, 30);
    let expired = token_aged(&app, 3 * 24 * 3600);
    // The signature's last hex digit changed (to another digit, whatever it was).
    let last = if good.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &good[..good.len() - 1]);
    let links = "See https://a.example https://b.example https://c.example now";
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "honeypot",
            vec![("leave_blank", "bot"), ("form_token", &good)],
        ),
        ("too-fast", vec![("form_token", &just_rendered)]),
        ("token-expired", vec![("form_token", &expired)]),
        ("token-forged", vec![("form_token", &forged)]),
        ("token-missing", vec![]),
        (
            "too-many-links",
            vec![("form_token", &good), ("message", links)],
        ),
        (
            "blocked-domain",
            vec![("form_token", &good), ("email", "x@mail.spam.example")],
        ),
    ];
    for (_, extra) in &cases {
        let mut body = fields(
            &extra
                .iter()
                .filter(|(k, _)| VALID.iter().any(|(v, _)| v == k))
                .copied()
                .collect::<Vec<_>>(),
        );
        body.extend(
            extra
                .iter()
                .filter(|(k, _)| !VALID.iter().any(|(v, _)| v == k))
                .copied(),
        );
        app.post_form("/contact", &body)
            .header("accept", "text/html")
            .await
            .assert_redirect_to("/contact/thanks");
    }
    let reasons: Vec<Option<String>> = spam_reasons(&app).await;
    let expected: Vec<Option<String>> = cases.iter().map(|(r, _)| Some((*r).to_owned())).collect();
    assert_eq!(reasons, expected);
    let db = app.server().app.store.primary();
    assert_eq!(
        count(db, "SELECT count(*) FROM outbox").await,
        0,
        "spam notifies nobody"
    );

    // Staff can rescue a false positive: it becomes a lead.
    let scope = app.server().app.site.clone();
    let spam = with_conn(&app, async |conn| {
        queries::list(conn, &scope, Inbox::Spam, 100, 0).await
    })
    .await;
    assert_eq!(spam.len(), cases.len());
    assert!(
        with_conn(&app, async |conn| queries::mark_not_spam(
            conn, &scope, spam[0].id
        )
        .await)
        .await
    );
    assert_eq!(
        with_conn(&app, async |conn| queries::count(
            conn,
            &scope,
            Inbox::Leads
        )
        .await)
        .await,
        1
    );

    // The retention sweep deletes spam older than the setting, and nothing else.
    let purged = privacy::purge_expired(db, std::time::Duration::from_secs(3600), &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(purged.spam, 0, "fresh spam is kept");
    vantus::on_db!(db, p => sqlx::query("UPDATE leads SET created_at = $1")
        .bind(Timestamp::from_datetime(time::OffsetDateTime::now_utc() - time::Duration::days(2)))
        .execute(p).await.map(|_| ()))
    .unwrap();
    let purged = privacy::purge_expired(db, std::time::Duration::from_secs(24 * 3600), &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(purged.spam, cases.len() as u64 - 1);
    assert_eq!(leads(&app).await, 1, "the rescued lead stays");
}

/// A second tenant "beta", selected by the host beta.example.
async fn second_tenant(app: &TestApp) -> TestScopes {
    let a = app.server().app.site.clone();
    let b = with_conn(app, async |conn| {
        let b = tenancy::ensure(conn, "beta", "Beta", None).await?;
        tenancy::add_host(conn, &b, "Beta.Example:443").await?;
        Ok(b)
    })
    .await;
    TestScopes { a, b }
}

struct TestScopes {
    a: TenantScope,
    b: TenantScope,
}

async fn the_host_picks_the_tenant_and_no_query_crosses_tenants(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let TestScopes { a, b } = second_tenant(&app).await;
    let mut beta = valid_json();
    beta["email"] = "shared@example.com".into();
    app.post_json("/api/leads", &beta)
        .header("host", "BETA.example:8080")
        .await
        .assert_status(202);
    let mut alpha = valid_json();
    alpha["email"] = "shared@example.com".into();
    alpha["name"] = "Alpha Person".into();
    app.post_json("/api/leads", &alpha)
        .header("host", "unknown.example")
        .await
        .assert_status(202);

    let in_b = with_conn(&app, async |conn| {
        queries::list(conn, &b, Inbox::Leads, 10, 0).await
    })
    .await;
    let in_a = with_conn(&app, async |conn| {
        queries::list(conn, &a, Inbox::Leads, 10, 0).await
    })
    .await;
    assert_eq!(in_b.len(), 1, "beta.example's lead went to beta");
    assert_eq!(
        in_a.len(),
        1,
        "an unknown host falls back to the site tenant"
    );
    assert_eq!(in_a[0].name, "Alpha Person");
    let b_id = in_b[0].id;
    let email = Email::parse("shared@example.com").unwrap();

    // Tenant A's scope can neither read, count, change, export nor delete B's lead.
    with_conn(&app, async |conn| {
        assert_eq!(queries::get(conn, &a, b_id).await?, None);
        assert_eq!(queries::count(conn, &a, Inbox::Leads).await?, 1);
        assert!(!queries::set_stage(conn, &a, b_id, "won").await?);
        assert!(!queries::mark_not_spam(conn, &a, b_id).await?);
        let exported = queries::by_email(conn, &a, &email).await?;
        assert!(exported.iter().all(|l| l.id != b_id));
        assert_eq!(exported.len(), 1);
        let (erased, _) = queries::erase_by_email(conn, &a, &email).await?;
        assert_eq!(erased, 1, "A's own lead only");
        assert_eq!(queries::purge_spam(conn, &a, Timestamp::now()).await?, 0);
        Ok(())
    })
    .await;
    let still = with_conn(&app, async |conn| queries::get(conn, &b, b_id).await)
        .await
        .unwrap();
    assert_eq!(still.stage, "new", "B's lead is untouched");
    assert_eq!(
        with_conn(&app, async |conn| queries::count(conn, &b, Inbox::Leads)
            .await)
        .await,
        1
    );
}

async fn export_and_erase_a_person(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    second_tenant(&app).await;
    let mut person = valid_json();
    person["email"] = "Erase.Me@Example.com".into();
    app.post_json("/api/leads", &person)
        .await
        .assert_status(202);
    app.post_json("/api/leads", &person)
        .header("host", "beta.example")
        .await
        .assert_status(202);
    app.post_json("/api/leads", &valid_json())
        .await
        .assert_status(202);
    let db = app.server().app.store.primary();
    let email = Email::parse("erase.me@example.com").unwrap();

    let export = privacy::export(db, &email, &Actor::Cli).await.unwrap();
    assert_eq!(export.tenants.len(), 2);
    let json = serde_json::to_value(&export).unwrap();
    assert!(json.to_string().contains("Erase.Me@example.com"), "{json}");

    let erased = privacy::erase(db, &email, &Actor::Cli).await.unwrap();
    assert_eq!((erased.submissions, erased.tenants), (2, 2));
    assert_eq!(leads(&app).await, 1, "the other person's lead stays");
    assert_eq!(
        count(db, "SELECT count(*) FROM outbox WHERE lead_id IS NOT NULL").await,
        1
    );
    let audit: Vec<String> = vantus::on_db!(db, p => sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action IN ('leads.erased', 'leads.exported')").fetch_all(p).await).unwrap();
    assert_eq!(audit.len(), 4, "export and erasure recorded per tenant");
    assert!(
        audit.iter().all(|d| !d.to_lowercase().contains("erase.me")),
        "{audit:?}"
    );
}

/// A burst of simultaneous submissions is committed in shared transactions (group commit):
/// each key still stores one lead, its repeats get its response, and every lead has its
/// notification and audit entry.
async fn a_burst_is_stored_once_per_key_with_everything_it_owes(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    const KEYS: usize = 12;
    const REPEATS: usize = 3;
    const UNKEYED: usize = 12;
    let body = |i: usize| {
        let mut lead = valid_json();
        lead["email"] = format!("burst{i}@example.com").into();
        lead
    };
    let keyed = (0..KEYS * REPEATS).map(|n| {
        let (i, app) = (n % KEYS, &app);
        async move {
            let res = app
                .post_json("/api/leads", &body(i))
                .header("idempotency-key", format!("burst-{i}"))
                .await
                .assert_status(202);
            let replayed = res.headers().get("idempotent-replayed").is_some();
            (i, replayed, res.json_value().await)
        }
    });
    let unkeyed = (0..UNKEYED).map(|n| {
        let app = &app;
        async move {
            app.post_json("/api/leads", &body(100 + n))
                .await
                .assert_status(202);
        }
    });
    let (answers, _) = futures_util::future::join(
        futures_util::future::join_all(keyed),
        futures_util::future::join_all(unkeyed),
    )
    .await;

    for i in 0..KEYS {
        let mine: Vec<_> = answers.iter().filter(|(k, _, _)| *k == i).collect();
        let first: Vec<_> = mine.iter().filter(|(_, replayed, _)| !replayed).collect();
        assert_eq!(
            first.len(),
            1,
            "key {i}: one first answer, the rest replays"
        );
        assert!(
            mine.iter().all(|(_, _, body)| body == &first[0].2),
            "key {i}: every answer is the first one"
        );
    }
    let db = app.server().app.store.primary();
    assert_eq!(leads(&app).await, (KEYS + UNKEYED) as i64);
    assert_eq!(
        count(db, "SELECT count(DISTINCT email) FROM leads").await,
        (KEYS + UNKEYED) as i64
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM audit_log WHERE action = 'lead.received'"
        )
        .await,
        (KEYS + UNKEYED) as i64
    );
    // Notifications exactly when the site tenant has somewhere to send them.
    let outbox = count(db, "SELECT count(*) FROM outbox").await;
    let per_lead = count(
        db,
        "SELECT count(*) FROM outbox WHERE lead_id IN (SELECT id FROM leads)",
    )
    .await;
    assert_eq!(outbox, per_lead, "every message belongs to a stored lead");
    assert!(
        outbox == 0 || outbox == (KEYS + UNKEYED) as i64,
        "one message per lead, or none for all: {outbox}"
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM idempotency_keys").await,
        KEYS as i64
    );
}

/// A submission that cannot be stored (its tenant vanished) fails alone: the submissions
/// committed beside it are stored, each once.
async fn a_submission_that_cannot_be_stored_fails_alone(engine: Engine) {
    use vantus::leads::form::ContactForm;
    use vantus::leads::idempotency::SavedResponse;
    use vantus::leads::submit::{self, Stored, Submission};

    let app = TestApp::spawn(engine).await;
    let server = app.server();
    let ghost = with_conn(&app, async |conn| {
        tenancy::ensure(conn, "ghost", "Ghost", None).await
    })
    .await;
    for sql in [
        "DELETE FROM site_state WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'ghost')",
        "DELETE FROM tenants WHERE slug = 'ghost'",
    ] {
        vantus::on_db!(server.app.store.primary(), p => sqlx::query(sql).execute(p).await.map(|_| ()))
            .unwrap();
    }
    let form = ContactForm {
        name: Some("Grace Hopper".into()),
        email: Some("grace@example.org".into()),
        budget: Some("over-100k".into()),
        message: Some("A compiler for business data processing.".into()),
        consent: Some("on".into()),
        ..ContactForm::default()
    };
    let submission = Submission {
        lead: form.parse().unwrap(),
        source: LeadSource::Api,
        spam_reason: None,
        key: None,
    };
    let respond = |_, _| SavedResponse {
        status: 202,
        location: None,
        body: String::new(),
    };
    const GOOD: usize = 20;
    let site = server.app.site.clone();
    let writer = submit::Writer::new(&server.app);
    let outcomes = futures_util::future::join_all((0..=GOOD).map(|n| {
        let scope = if n == GOOD / 2 { &ghost } else { &site };
        submit::store(&writer, scope, &submission, respond)
    }))
    .await;
    for (n, outcome) in outcomes.iter().enumerate() {
        if n == GOOD / 2 {
            assert!(
                outcome.is_err(),
                "the ghost tenant's lead is refused: {outcome:?}"
            );
        } else {
            assert!(
                matches!(outcome, Ok(Stored::New { .. })),
                "submission {n}: {outcome:?}"
            );
        }
    }
    assert_eq!(leads(&app).await, GOOD as i64);
    assert_eq!(
        count(
            server.app.store.primary(),
            "SELECT count(*) FROM audit_log WHERE action = 'lead.received'"
        )
        .await,
        GOOD as i64
    );
}

both_engines!(
    a_burst_is_stored_once_per_key_with_everything_it_owes,
    a_submission_that_cannot_be_stored_fails_alone,
    form_submission_is_stored_once,
    api_submission_is_idempotent,
    each_invalid_field_is_reported_and_nothing_is_stored,
    caught_spam_gets_the_thank_you_page_and_is_stored_as_spam,
    the_host_picks_the_tenant_and_no_query_crosses_tenants,
    export_and_erase_a_person,
);

/// A request body and its Content-Type.
type Body<'a> = (&'a str, Vec<u8>);

/// Hostile input: every request gets a 4xx with a message (never a 500), and nothing is
/// stored. Markup in a message is not refused (it is text, escaped wherever it is shown);
/// here it is sent in the fields where it is invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_input_corpus_gets_clear_4xx_answers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let json = |body: String| ("application/json", body.into_bytes());
    let form = |body: &str| {
        (
            "application/x-www-form-urlencoded",
            body.as_bytes().to_vec(),
        )
    };
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(200 * 1024));
    let with = |k: &str, v: serde_json::Value| {
        let mut j = valid_json();
        j[k] = v;
        j.to_string()
    };
    let corpus: Vec<(&str, &str, Body, u16)> = vec![
        ("oversized JSON", "/api/leads", json(big.clone()), 413),
        (
            "oversized form",
            "/contact",
            form(&format!("message={}", "x".repeat(200 * 1024))),
            413,
        ),
        (
            "invalid UTF-8 in JSON",
            "/api/leads",
            ("application/json", b"{\"name\":\"\xff\xfe\"}".to_vec()),
            400,
        ),
        (
            "invalid UTF-8 in a form",
            "/contact",
            form("name=%FF%FE&email=a%40b.co"),
            400,
        ),
        (
            "NUL in a JSON name",
            "/api/leads",
            json(with("name", "Ada\u{0}".into())),
            422,
        ),
        (
            "NUL in a form name",
            "/contact",
            form("name=Ada%00&email=a%40b.co&message=long+enough+text&consent=on"),
            422,
        ),
        (
            "SQL in the email",
            "/api/leads",
            json(with("email", "' OR 1=1 --@example.com".into())),
            422,
        ),
        (
            "SQL in the budget",
            "/contact",
            form(
                "name=A&email=a%40b.co&budget=x%27%3B+DROP+TABLE+leads%3B--&message=long+enough+text&consent=on",
            ),
            422,
        ),
        (
            "script in the name",
            "/api/leads",
            json(with("name", "<script>alert(1)</script>".into())),
            422,
        ),
        (
            "script URL as website",
            "/api/leads",
            json(with("website", "javascript:alert(document.cookie)".into())),
            422,
        ),
        (
            "CRLF in the name",
            "/api/leads",
            json(with("name", "Ada\r\nBcc: victim@example.com".into())),
            422,
        ),
        (
            "CRLF in the email",
            "/api/leads",
            json(with(
                "email",
                "ada@example.com\r\nBcc: victim@example.com".into(),
            )),
            422,
        ),
        (
            "CRLF in a form email",
            "/contact",
            form(
                "name=Ada&email=ada%40example.com%0D%0ABcc%3A+v%40e.com&message=long+enough+text&consent=on",
            ),
            422,
        ),
        (
            "wrong Content-Type for the API",
            "/api/leads",
            ("text/plain", valid_json().to_string().into_bytes()),
            415,
        ),
        (
            "JSON to the form",
            "/contact",
            json(valid_json().to_string()),
            415,
        ),
        ("deeply nested JSON", "/api/leads", json(nested), 400),
        (
            "JSON that is not an object",
            "/api/leads",
            json("\"just a string\"".into()),
            400,
        ),
        (
            "a field of the wrong type",
            "/api/leads",
            json(with("name", 42.into())),
            400,
        ),
        ("broken JSON", "/api/leads", json("{\"name\": ".into()), 400),
    ];
    for (what, path, (content_type, body), status) in corpus {
        // Raw HTTP: a server may answer 413 and close before reading a body that is too
        // large, which an HTTP client reports as a failed send rather than the answer.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let answer = send_raw(&app, &[head.as_bytes(), &body].concat()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {}",
            answer.lines().next().unwrap_or("")
        );
        let text = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        assert!(
            text.contains("\"message\":") || text.contains("error-"),
            "{what}: no message in {text:?}"
        );
    }
    // An absurd Content-Length (nothing behind it) is refused before any body is read.
    let raw = send_raw(
        &app,
        b"POST /api/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999\r\n\r\n{}",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    // A header-injection attempt in the Idempotency-Key header, and an oversized key.
    let res = app
        .post_json("/api/leads", &valid_json())
        .header("idempotency-key", "k".repeat(300))
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Idempotency-Key"));
    assert_eq!(leads(&app).await, 0, "nothing hostile was stored");
}

/// Writes `request` on a fresh connection and returns what the server answers, up to when it
/// closes the connection (or 64 KiB). A write the server cut short is not an error: the
/// answer is what counts.
async fn send_raw(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(app.server().addr)
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let request = request.to_vec();
    // The write half stays open until the answer is read: hyper treats a client's half-close
    // as the end of the connection.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        std::future::pending::<()>().await;
        drop(write);
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 8192];
    let deadline = std::time::Duration::from_secs(10);
    while answer.len() < 64 * 1024 {
        match tokio::time::timeout(deadline, read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The API is described by an OpenAPI 3.1 document, and the document matches the routes:
/// every documented operation exists (a request to it is not 404/405), and what the router
/// serves under /api is documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let doc = app
        .get("/api/openapi.json")
        .await
        .assert_status(200)
        .json_value()
        .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let served = serde_json::to_value(vantus::leads::api::document()).unwrap();
    assert_eq!(doc, served, "the served document is the generated one");
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .request(method.clone(), path)
                .header("content-type", "application/json")
                .body("{}")
                .await;
            assert!(
                ![404, 405].contains(&res.status().as_u16()),
                "{method} {path} is documented but not routed ({})",
                res.status()
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 1, "POST /api/leads");
    // And nothing undocumented answers under /api (besides the document itself).
    for (method, path) in [
        ("GET", "/api/leads"),
        ("PUT", "/api/leads"),
        ("POST", "/api/lead"),
        ("POST", "/api/leads/x"),
    ] {
        let res = app
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                path,
            )
            .await;
        assert!(
            [404, 405].contains(&res.status().as_u16()),
            "{method} {path} answers {} but is not documented",
            res.status()
        );
    }
}
