//! A lead acknowledged is a lead kept: the server is killed with SIGKILL in the middle of a
//! burst of submissions (while the mail server is down) and restarted; every submission that
//! had received a success response is in the database, and once the mail server is back every
//! queued notification is delivered, each exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::both_engines;
use crate::support::smtp::SmtpServer;
use crate::support::{Engine, ServeProcess, TestDb, env_with, eventually, open_db};

/// Clients posting at once during the burst.
const CLIENTS: usize = 8;
/// Acknowledged submissions before the kill.
const BEFORE_KILL: usize = 40;

async fn acknowledged_leads_survive_sigkill(engine: Engine) {
    let db = TestDb::create(engine).await;
    let mut smtp = SmtpServer::not_started();
    let smtp_url = smtp.url();
    let env = env_with(
        &db,
        &[
            ("VANTUS_RATE_LIMIT_API", "1000000/1s"),
            ("VANTUS_LEADS_NOTIFY", "sales@example.com"),
            ("SMTP_URL", &smtp_url),
            ("SMTP_FROM", "Vantus <noreply@example.com>"),
            ("VANTUS_OUTBOX_RETRY_BASE", "200ms"),
            ("VANTUS_OUTBOX_RETRY_MAX", "1s"),
            ("VANTUS_OUTBOX_MAX_ATTEMPTS", "100"),
        ],
    );
    let mut server = ServeProcess::start(&env).await;
    let url = server.url("/api/leads");
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (url, acked, count) = (url.clone(), acked.clone(), count.clone());
        clients.push(tokio::spawn(async move {
            let client = crate::support::client();
            for i in 0.. {
                let body = serde_json::json!({
                    "name": format!("Client {c} number {i}"),
                    "email": format!("c{c}.{i}@example.com"),
                    "message": "A burst of enquiries, one of them cut short.",
                    "consent": true,
                });
                match client.post(&url).json(&body).send().await {
                    Ok(res) if res.status() == 202 => {
                        let Ok(v) = res.json::<serde_json::Value>().await else {
                            return;
                        };
                        acked
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_owned());
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The server is gone (or answering something else): this client stops.
                    _ => return,
                }
            }
        }));
    }
    eventually(
        Duration::from_secs(60),
        "submissions before the kill",
        async || count.load(Ordering::SeqCst) >= BEFORE_KILL,
    )
    .await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    for c in clients {
        let _ = c.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= BEFORE_KILL);

    // Restart on the same data: every acknowledged lead is there, with its notification.
    let restarted = ServeProcess::start(&env).await;
    let store = open_db(&db.url).await;
    let mut message_ids = Vec::new();
    for id in &acked {
        let id: uuid::Uuid = id.parse().unwrap();
        let (leads, queued): (i64, Option<String>) = vantus::on_db!(&store, p => sqlx::query_as(
            "SELECT (SELECT count(*) FROM leads WHERE id = $1),
                    (SELECT max(message_id) FROM outbox WHERE lead_id = $1 AND channel = 'email')"
        ).bind(id).fetch_one(p).await)
        .unwrap();
        assert_eq!(leads, 1, "acknowledged lead {id} was lost");
        message_ids.push(queued.unwrap_or_else(|| panic!("lead {id} lost its notification")));
    }

    // The mail server comes back: every queued notification arrives, once.
    smtp.resume();
    let queued: i64 = vantus::on_db!(&store, p => sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE channel = 'email'").fetch_one(p).await)
    .unwrap();
    eventually(
        Duration::from_secs(90),
        "every queued notification delivered",
        async || smtp.messages().len() >= queued as usize,
    )
    .await;
    let delivered = smtp.count_by_message_id();
    for message_id in &message_ids {
        let copies: usize = delivered
            .iter()
            .filter(|(header, _)| header.contains(message_id.as_str()))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(copies, 1, "{message_id} delivered {copies} times");
    }
    assert_eq!(
        delivered.values().sum::<usize>(),
        queued as usize,
        "nothing but the queue was sent"
    );
    drop(restarted);
}

both_engines!(acknowledged_leads_survive_sigkill);
