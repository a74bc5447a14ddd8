//! The transactional outbox against real peers: an SMTP server (`aiosmtpd`, which this file
//! starts, stops and restarts on its own port) and webhook receivers (axum servers inside the
//! test), on SQLite and PostgreSQL. Waits are bounded by `eventually`; assertions are on data
//! (rows, delivered messages, received calls), never on timing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;
use vantus::outbox::{self, Channel, LeadCreated, LeadData, NewMessage, TenantData, Topic};
use vantus::server::RunningServer;
use vantus::store::Db;

use crate::both_engines;
use crate::support::smtp::SmtpServer;
use crate::support::{Engine, ResponseExt, TestApp, base_env, eventually, run_binary};

const FROM: &str = "Vantus Leads <noreply@vantus.test>";
const RECIPIENTS: &str = "sales@vantus.test, cto@vantus.test";
/// The secret of the Standard Webhooks reference examples (24 bytes).
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(60);

fn payload(name: &str, message: &str) -> LeadCreated {
    LeadCreated {
        lead: LeadData {
            id: Uuid::now_v7(),
            name: name.into(),
            email: "ada@example.com".into(),
            company: Some("Analytical Engines".into()),
            role: None,
            budget: "25k-50k".into(),
            budget_label: "€25k–50k".into(),
            website: None,
            message: message.into(),
            source: "api".into(),
            created_at: "2026-11-26T09:30:00Z".into(),
            spam: false,
        },
        tenant: TenantData {
            slug: "default".into(),
            name: "Vantus".into(),
        },
    }
}

/// Queues a message the way the lead slice does, in a write transaction, for the site tenant.
async fn enqueue(
    server: &RunningServer,
    channel: Channel,
    destination: &str,
    p: &LeadCreated,
) -> Uuid {
    let message = NewMessage {
        channel,
        topic: Topic::LeadCreated,
        destination: destination.to_owned(),
        lead_id: None,
        payload: p.to_json(),
    };
    vantus::in_write_tx!(server.app.store.primary(), conn => {
        let id = outbox::enqueue(conn, &server.app.site, &message).await?;
        Ok::<_, sqlx::Error>(id)
    })
    .expect("enqueue")
}

/// (status, attempts, last_error) of one row.
async fn row(db: &Db, id: Uuid) -> (String, i64, Option<String>) {
    vantus::on_db!(db, p => sqlx::query_as::<_, (String, i64, Option<String>)>(
        "SELECT status, attempts, last_error FROM outbox WHERE id = $1"
    ).bind(id).fetch_one(p).await)
    .expect("the outbox row")
}

async fn wait_status(db: &Db, id: Uuid, status: &str) -> (String, i64, Option<String>) {
    eventually(
        WAIT,
        &format!("outbox row {id} to be {status}"),
        async || {
            let r = row(db, id).await;
            if r.0 == status {
                Ok(r)
            } else {
                Err(format!("{r:?}"))
            }
        },
    )
    .await
}

fn msg_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// Fast retries, so a test sees several attempts.
fn fast_retries(env: &mut std::collections::HashMap<String, String>, max_attempts: u32) {
    env.insert("VANTUS_OUTBOX_RETRY_BASE".into(), "200ms".into());
    env.insert("VANTUS_OUTBOX_RETRY_MAX".into(), "1s".into());
    env.insert(
        "VANTUS_OUTBOX_MAX_ATTEMPTS".into(),
        max_attempts.to_string(),
    );
}

fn with_webhooks(env: &mut std::collections::HashMap<String, String>, url: &str) {
    env.insert("VANTUS_WEBHOOK_URLS".into(), url.to_owned());
    env.insert("VANTUS_WEBHOOK_SECRET".into(), WHSEC.into());
}

fn with_smtp(env: &mut std::collections::HashMap<String, String>, smtp: &SmtpServer) {
    env.insert("SMTP_URL".into(), smtp.url());
    env.insert("SMTP_FROM".into(), FROM.into());
}

async fn a_new_lead_is_emailed_with_its_html_escaped(engine: Engine) {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn_with(engine, |env| {
        with_smtp(env, &smtp);
        env.insert("VANTUS_LEADS_NOTIFY".into(), RECIPIENTS.into());
        env.insert(
            "VANTUS_PUBLIC_URL".into(),
            "https://vantus.example.com/".into(),
        );
    })
    .await;
    let lead = serde_json::json!({
        "name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines",
        "role": "CTO", "budget": "25k-50k", "consent": true,
        "message": "Please <script>alert('x')</script> & <b>bold</b> stays text.\nSecond line.",
    });
    let accepted = app
        .post_json("/api/leads", &lead)
        .await
        .assert_status(202)
        .json_value()
        .await;
    let lead_id = accepted["id"].as_str().expect("the lead's id").to_owned();
    let db = app.server().app.store.primary().clone();
    let (outbox_id,): (Uuid,) = eventually(WAIT, "the lead's email row", async || {
        vantus::on_db!(&db, p => sqlx::query_as("SELECT id FROM outbox WHERE channel = 'email'")
            .fetch_optional(p).await)
        .unwrap()
    })
    .await;
    let (status, attempts, error) = wait_status(&db, outbox_id, "sent").await;
    assert_eq!((status.as_str(), attempts, error), ("sent", 1, None));

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(
        m.header("subject"),
        "New lead: Ada Lovelace (Analytical Engines)"
    );
    assert_eq!(m.header("from"), FROM);
    assert_eq!(m.header("to"), "sales@vantus.test, cto@vantus.test");
    assert_eq!(m.header("reply-to"), "Ada Lovelace <ada@example.com>");
    assert_eq!(
        m.header("message-id"),
        format!("<{}@vantus.example.com>", msg_id(outbox_id))
    );
    let recipients = m.header("x-rcptto");
    assert!(
        recipients.contains("sales@vantus.test") && recipients.contains("cto@vantus.test"),
        "{recipients}"
    );
    let text = m
        .text
        .as_deref()
        .expect("a plain-text part")
        .replace("\r\n", "\n");
    assert!(
        text.contains("Please <script>alert('x')</script> & <b>bold</b> stays text.\nSecond line."),
        "{text}"
    );
    assert!(
        text.contains("Budget:   €25,000 – €50,000") && text.contains("Role:     CTO"),
        "{text}"
    );
    assert!(text.contains(&lead_id), "{text}");
    let html = m
        .html
        .as_deref()
        .expect("an HTML part")
        .replace("\r\n", "\n");
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "markup is escaped: {html}"
    );
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Analytical Engines") && html.contains(&lead_id),
        "{html}"
    );
}

async fn an_smtp_outage_delays_mail_and_two_servers_then_deliver_each_once(engine: Engine) {
    let mut smtp = SmtpServer::not_started();
    let settings = |env: &mut std::collections::HashMap<String, String>| {
        with_smtp(env, &smtp);
        fast_retries(env, 100);
    };
    let a = TestApp::spawn_with(engine, settings).await;
    let b = a.spawn_replica(settings).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        // Half through each server: both take leads, both run a worker.
        let server = if i % 2 == 0 { a.server() } else { b.server() };
        ids.push(
            enqueue(
                server,
                Channel::Email,
                RECIPIENTS,
                &payload(&format!("Lead {i}"), "Hello"),
            )
            .await,
        );
    }
    let db = a.server().app.store.primary().clone();
    // The mail server is down: every message stays pending, with its attempts and last error.
    for id in &ids {
        let (status, attempts, error) = eventually(WAIT, "a failed attempt", async || {
            let r = row(&db, *id).await;
            if r.1 >= 2 {
                Ok(r)
            } else {
                Err(format!("{r:?}"))
            }
        })
        .await;
        assert_eq!(status, "pending");
        assert!(attempts >= 2);
        let error = error.expect("the last error is kept");
        assert!(error.contains("cannot reach the SMTP server"), "{error}");
        assert!(
            !error.contains("vantus.test") && !error.contains("Lead "),
            "no personal data: {error}"
        );
    }
    assert!(smtp.messages().is_empty());

    smtp.resume();
    for id in &ids {
        wait_status(&db, *id, "sent").await;
    }
    let counts = smtp.count_by_message_id();
    assert_eq!(counts.len(), ids.len(), "{counts:?}");
    for id in &ids {
        let key = format!("<{}@127.0.0.1>", msg_id(*id));
        assert_eq!(
            counts.get(&key),
            Some(&1),
            "{key} delivered exactly once: {counts:?}"
        );
    }
    drop(b);
}

async fn a_dead_letter_is_requeued_by_the_cli_and_then_delivered(engine: Engine) {
    let mut smtp = SmtpServer::not_started();
    let app = TestApp::spawn_with(engine, |env| {
        with_smtp(env, &smtp);
        fast_retries(env, 2);
    })
    .await;
    let db = app.server().app.store.primary().clone();
    let id = enqueue(
        app.server(),
        Channel::Email,
        RECIPIENTS,
        &payload("Grace Hopper", "Hi"),
    )
    .await;
    let (_, attempts, error) = wait_status(&db, id, "dead").await;
    assert_eq!(attempts, 2, "dead after VANTUS_OUTBOX_MAX_ATTEMPTS");
    assert!(error.is_some());

    let mut env = base_env(&app.db);
    with_smtp(&mut env, &smtp);
    let o = run_binary(&["outbox", "status", "--json"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["counts"]["dead"], 1, "{report:#}");
    let listed = &report["messages"][0];
    assert_eq!(listed["id"], id.to_string());
    assert_eq!(listed["state"], "dead");
    assert_eq!(listed["channel"], "email");
    assert_eq!(listed["topic"], "lead.created");
    assert_eq!(listed["attempts"], 2);
    assert!(
        listed["last_error"].as_str().unwrap().contains("SMTP"),
        "{listed}"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !text.contains("vantus.test") && !text.contains("Grace"),
        "no personal data: {text}"
    );
    let o = run_binary(&["outbox", "status"], &env);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.starts_with("outbox: 0 pending, 0 retrying, 1 dead, 0 sent"),
        "{text}"
    );
    assert!(
        text.contains(&id.to_string()) && text.contains("dead"),
        "{text}"
    );

    // Doctor says so.
    let o = run_binary(&["doctor", "--json"], &env);
    let doctor: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let finding = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "outbox-dead")
        .cloned()
        .unwrap_or_default();
    assert_eq!(finding["severity"], "high", "{doctor:#}");

    // Unknown and malformed ids: one sentence, exit 1.
    for bad in [Uuid::now_v7().to_string(), "not-an-id".to_owned()] {
        let o = run_binary(&["outbox", "retry", &bad], &env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    smtp.resume();
    let o = run_binary(&["outbox", "retry", "--dead"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("requeued 1"));
    let (_, attempts, _) = wait_status(&db, id, "sent").await;
    assert_eq!(attempts, 1, "attempts counted again from 0");
    assert_eq!(smtp.messages().len(), 1);

    // A delivered message is not sent again; its msg_ form names it too.
    let o = run_binary(&["outbox", "retry", &msg_id(id)], &env);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("delivered already"), "{err}");
    let audited: i64 = vantus::on_db!(&db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'outbox.requeued'"
    ).fetch_one(p).await)
    .unwrap();
    assert_eq!(audited, 1);
}

/// What a receiver got: headers and body of each call.
type Calls = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on 127.0.0.1 that answers `status` to every call and keeps them.
async fn receiver(status: StatusCode) -> (String, Calls) {
    slow_receiver(status, Duration::ZERO).await
}

/// A receiver that keeps each call as it arrives and answers `status` after `delay`.
async fn slow_receiver(status: StatusCode, delay: Duration) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let app = Router::new()
        .fallback(
            move |State(calls): State<Calls>, headers: HeaderMap, body: Bytes| async move {
                calls.lock().unwrap().push((headers, body));
                tokio::time::sleep(delay).await;
                status
            },
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks/vantus"), calls)
}

/// Verifies a call the way a receiver would, written here from the Standard Webhooks
/// specification rather than with the server's code.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("no {name} header"))
    };
    let (id, timestamp, signatures) = (
        get("webhook-id")?,
        get("webhook-timestamp")?,
        get("webhook-signature")?,
    );
    let sent: i64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - sent).abs() > 300 {
        return Err(format!("timestamp {sent} too far from {now}"));
    }
    let key = BASE64.decode(WHSEC.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
        .then_some(())
        .ok_or_else(|| format!("no valid v1 signature in {signatures:?}"))
}

async fn webhooks_arrive_signed_once_while_mail_without_smtp_waits(engine: Engine) {
    let (url, calls) = receiver(StatusCode::NO_CONTENT).await;
    let settings = |env: &mut std::collections::HashMap<String, String>| {
        with_webhooks(env, &url);
        env.insert(
            "VANTUS_METRICS_TOKEN".into(),
            "metrics-token-for-tests".into(),
        );
    };
    let app = TestApp::spawn_with(engine, settings).await;
    let replica = app.spawn_replica(settings).await;
    let db = app.server().app.store.primary().clone();
    let lead = payload("Katherine Johnson", "Orbits, please.");
    let mut hooks = Vec::new();
    for server in [app.server(), replica.server(), app.server()] {
        hooks.push(enqueue(server, Channel::Webhook, &url, &lead).await);
    }
    // No SMTP: the email waits, unattempted, beside webhooks that go out.
    let email = enqueue(app.server(), Channel::Email, RECIPIENTS, &lead).await;
    for id in &hooks {
        wait_status(&db, *id, "sent").await;
    }
    let received = calls.lock().unwrap().clone();
    assert_eq!(received.len(), hooks.len(), "each event once");
    let mut seen: Vec<String> = Vec::new();
    for (headers, body) in &received {
        verify(headers, body).unwrap_or_else(|e| panic!("signature: {e}"));
        assert_eq!(headers["content-type"], "application/json");
        let id = headers["webhook-id"].to_str().unwrap().to_owned();
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["type"], "lead.created");
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{event}"
        );
        assert_eq!(event["data"], lead.to_json());
        seen.push(id);
    }
    seen.sort();
    let mut expected: Vec<String> = hooks.iter().map(|id| msg_id(*id)).collect();
    expected.sort();
    assert_eq!(seen, expected, "webhook-id is the row's message id");
    assert_eq!(row(&db, email).await, ("pending".to_owned(), 0, None));

    let metrics = app
        .get("/metrics")
        .bearer_auth("metrics-token-for-tests")
        .await
        .assert_status(200)
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vantus_outbox_deliveries_total{channel=\"webhook\",outcome=\"sent\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vantus_outbox_oldest_pending_seconds"),
        "{metrics}"
    );
    assert!(metrics.contains("vantus_outbox_dead_messages"), "{metrics}");
    drop(replica);
}

async fn a_failing_receiver_is_retried_then_dead_lettered(engine: Engine) {
    let (url, calls) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let app = TestApp::spawn_with(engine, |env| {
        with_webhooks(env, &url);
        fast_retries(env, 3);
    })
    .await;
    let db = app.server().app.store.primary().clone();
    let id = enqueue(
        app.server(),
        Channel::Webhook,
        &url,
        &payload("Hedy Lamarr", "Hop"),
    )
    .await;
    let (_, attempts, error) = wait_status(&db, id, "dead").await;
    assert_eq!(attempts, 3);
    assert_eq!(error.as_deref(), Some("the receiver answered HTTP 500"));
    let received = calls.lock().unwrap().clone();
    assert_eq!(received.len(), 3, "one call per attempt");
    for (headers, body) in &received {
        verify(headers, body).unwrap_or_else(|e| panic!("signature: {e}"));
        assert_eq!(
            headers["webhook-id"],
            msg_id(id).as_str(),
            "the same id on every retry"
        );
        assert_eq!(body, &received[0].1, "the same body on every retry");
    }
}

/// A lead from the public API reaches every webhook endpoint, signed, with its data; spam
/// reaches none.
async fn a_new_lead_calls_the_webhooks_and_spam_does_not(engine: Engine) {
    let (url, calls) = receiver(StatusCode::NO_CONTENT).await;
    let app = TestApp::spawn_with(engine, |env| {
        with_webhooks(env, &url);
        env.insert("VANTUS_SPAM_BLOCKED_DOMAINS".into(), "spam.example".into());
    })
    .await;
    let lead = |email: &str| {
        serde_json::json!({
            "name": "Mary Jackson", "email": email, "consent": true,
            "message": "Wind tunnels and webhooks.",
        })
    };
    let accepted = app
        .post_json("/api/leads", &lead("mary@example.com"))
        .await
        .assert_status(202)
        .json_value()
        .await;
    app.post_json("/api/leads", &lead("bot@spam.example"))
        .await
        .assert_status(202);
    eventually(WAIT, "the webhook call", async || {
        !calls.lock().unwrap().is_empty()
    })
    .await;
    let db = app.server().app.store.primary().clone();
    let hooks: i64 = vantus::on_db!(&db, p => sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE channel = 'webhook'").fetch_one(p).await)
    .unwrap();
    assert_eq!(hooks, 1, "the spam submission queued no call");
    let received = calls.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    verify(headers, body).unwrap_or_else(|e| panic!("signature: {e}"));
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["data"]["lead"]["id"], accepted["id"], "{event}");
    assert_eq!(event["data"]["lead"]["email"], "mary@example.com");
}

/// A delivery under way when the server is told to stop is finished and recorded as sent
/// before the database pool closes, so it is not sent again after its lease.
async fn a_delivery_in_flight_at_shutdown_is_finished_and_recorded(engine: Engine) {
    let (url, calls) = slow_receiver(StatusCode::NO_CONTENT, Duration::from_millis(1500)).await;
    let app = TestApp::spawn_with(engine, |env| with_webhooks(env, &url)).await;
    app.post_json(
        "/api/leads",
        &serde_json::json!({
            "name": "Dorothy Vaughan", "email": "dorothy@example.com", "consent": true,
            "message": "A delivery that is still on its way.",
        }),
    )
    .await
    .assert_status(202);
    eventually(WAIT, "the webhook call to start", async || {
        !calls.lock().unwrap().is_empty()
    })
    .await;
    let db = app.into_db().await;
    let pool = crate::support::open_db(&db.url).await;
    let rows: Vec<(String, i64)> = vantus::on_db!(&pool, p => sqlx::query_as(
        "SELECT status, attempts FROM outbox WHERE channel = 'webhook'").fetch_all(p).await)
    .unwrap();
    assert_eq!(rows, vec![("sent".to_owned(), 1)]);
    assert_eq!(calls.lock().unwrap().len(), 1);
}

both_engines!(
    a_delivery_in_flight_at_shutdown_is_finished_and_recorded,
    a_new_lead_calls_the_webhooks_and_spam_does_not,
    a_new_lead_is_emailed_with_its_html_escaped,
    an_smtp_outage_delays_mail_and_two_servers_then_deliver_each_once,
    a_dead_letter_is_requeued_by_the_cli_and_then_delivered,
    webhooks_arrive_signed_once_while_mail_without_smtp_waits,
    a_failing_receiver_is_retried_then_dead_lettered,
);
