//! A lead's timeline: everything that happened to it, oldest first. Its arrival (the lead's
//! own row), what staff did (`lead_activity`, [`super::notes`]) and the messages sent about it
//! (its outbox rows: the notification email and webhook calls, queued, sent or given up).

use std::collections::HashMap;

use uuid::Uuid;

use super::crm::{CrmLead, Stage};
use super::notes::{self, Activity};
use crate::auth::memberships;
use crate::store::{Conn, Timestamp, on_conn};
use crate::tenancy::TenantScope;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Timestamp,
    /// `created`, `note`, `stage`, `assigned`, `unassigned`, `spam`, `not_spam`, `email`,
    /// `webhook`.
    pub kind: String,
    /// Who did it, by name (`None`: the system or a visitor).
    pub actor: Option<String>,
    /// What the page says of it.
    pub text: String,
}

struct Message {
    channel: String,
    topic: String,
    status: String,
    created_at: Timestamp,
    sent_at: Option<Timestamp>,
}
crate::store::from_row!(Message {
    channel,
    topic,
    status,
    created_at,
    sent_at
});

/// The timeline of `lead` (of `scope`).
pub async fn of_lead(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    lead: &CrmLead,
) -> Result<Vec<Event>, sqlx::Error> {
    let activity = notes::of_lead(conn, scope, lead.id).await?;
    let messages: Vec<Message> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT channel, topic, status, created_at, sent_at FROM outbox
         WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at, id"
    ).bind(scope.id()).bind(lead.id).fetch_all(c).await)?;
    let mut people: Vec<Uuid> = activity.iter().filter_map(|a| a.actor_id).collect();
    people.extend(
        activity
            .iter()
            .filter(|a| a.kind == "assigned")
            .filter_map(|a| a.body.parse::<Uuid>().ok()),
    );
    people.sort();
    people.dedup();
    let names = memberships::names_of(conn, &people).await?;

    let mut events = vec![Event {
        at: lead.created_at,
        kind: "created".into(),
        actor: None,
        text: format!(
            "Arrived through the {}",
            if lead.source == "api" {
                "API"
            } else {
                "contact form"
            }
        ),
    }];
    events.extend(activity.iter().map(|a| activity_event(a, &names)));
    for m in messages {
        let what = if m.channel == "email" {
            "Email"
        } else {
            "Webhook call"
        };
        let state = match (m.status.as_str(), m.sent_at) {
            ("sent", Some(at)) => format!("sent {}", at.to_rfc3339_seconds()),
            ("dead", _) => "given up after repeated failures".into(),
            _ => "queued".into(),
        };
        events.push(Event {
            at: m.created_at,
            kind: m.channel.clone(),
            actor: None,
            text: format!("{what} {}: {state}", m.topic),
        });
    }
    events.sort_by_key(|e| e.at);
    Ok(events)
}

fn activity_event(a: &Activity, names: &HashMap<Uuid, String>) -> Event {
    let name_of = |id: Uuid| {
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "a former member".into())
    };
    let text = match a.kind.as_str() {
        "note" => a.body.clone(),
        "stage" => {
            let (stage, reason) = a.body.split_once('\n').unwrap_or((&a.body, ""));
            let label = Stage::parse(stage).map_or(stage.to_owned(), |s| s.label().to_owned());
            if reason.is_empty() {
                format!("Moved to {label}")
            } else {
                format!("Moved to {label}: {reason}")
            }
        }
        "assigned" => match a.body.parse::<Uuid>() {
            Ok(id) => format!("Assigned to {}", name_of(id)),
            Err(_) => "Assigned".into(),
        },
        "unassigned" => "Unassigned".into(),
        "spam" => "Marked as spam".into(),
        "not_spam" => "Rescued from spam: now a lead, notification queued".into(),
        other => other.to_owned(),
    };
    Event {
        at: a.created_at,
        kind: a.kind.clone(),
        actor: a.actor_id.map(name_of),
        text,
    }
}
