//! The CRM's inputs as typed values (the list's query string, the forms), and the templates'
//! data (`templates/admin/crm/`).

use std::collections::HashMap;

use askama::Template;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::audit::{day, midnight};
use crate::admin::layout::{Shell, when};
use crate::http::errors::AppError;
use crate::leads::crm::{CrmLead, Cursor, Filter, Owner, Stage};
use crate::leads::queries::LeadSource;
use crate::leads::timeline::Event;
use crate::store::search;

/// The list's and the export's query string. Empty fields mean "any".
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ListQuery {
    /// Words to search for.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub q: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stage: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// A member's id, or `none` for leads nobody has.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// `spam` for the spam inbox.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub inbox: String,
    /// The keyset cursor: continue after this lead ([`Cursor::encode`]).
    #[serde(skip_serializing)]
    pub after: String,
}

impl ListQuery {
    pub fn filter(&self) -> Result<Filter, AppError> {
        let stage = match self.stage.trim() {
            "" => None,
            s => Some(Stage::parse(s).ok_or_else(|| {
                AppError::bad_request(
                    "stage",
                    "must be one of new, contacted, qualified, proposal, won, lost",
                )
            })?),
        };
        let source = match self.source.trim() {
            "" => None,
            "form" => Some(LeadSource::Form),
            "api" => Some(LeadSource::Api),
            _ => return Err(AppError::bad_request("source", "must be form or api")),
        };
        let owner = match self.owner.trim() {
            "" => Owner::Anyone,
            "none" => Owner::Unassigned,
            id => Owner::Member(
                id.parse()
                    .map_err(|_| AppError::bad_request("owner", "must be a member or none"))?,
            ),
        };
        let spam = match self.inbox.trim() {
            "" | "leads" => false,
            "spam" => true,
            _ => return Err(AppError::bad_request("inbox", "must be leads or spam")),
        };
        let from = day("from", &self.from)?;
        let to = day("to", &self.to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(AppError::bad_request("to", "must not be before from"));
        }
        Ok(Filter {
            spam,
            stage,
            source,
            owner,
            from: from.map(midnight),
            until: to.and_then(|t| t.next_day()).map(midnight),
            words: search::words(&self.q),
        })
    }

    pub fn cursor(&self) -> Result<Option<Cursor>, AppError> {
        match self.after.trim() {
            "" => Ok(None),
            raw => Cursor::parse(raw)
                .map(Some)
                .ok_or_else(|| AppError::bad_request("after", "is not a page of this list")),
        }
    }

    /// The filter as a query string (without the cursor).
    pub fn query_string(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

/// A choice in a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub fn stage_choices(current: &str) -> Vec<Choice> {
    Stage::ALL
        .into_iter()
        .map(|s| Choice {
            value: s.as_str().into(),
            label: s.label().into(),
            selected: s.as_str() == current,
        })
        .collect()
}

pub fn member_choices(members: &[(Uuid, String)], current: &str) -> Vec<Choice> {
    members
        .iter()
        .map(|(id, name)| Choice {
            value: id.to_string(),
            label: name.clone(),
            selected: id.to_string() == current,
        })
        .collect()
}

/// A lead as a row of the list.
pub struct LeadRow {
    pub id: String,
    pub name: String,
    pub company: String,
    pub email: String,
    pub stage: &'static str,
    pub source: String,
    pub owner: String,
    pub created: String,
    pub spam_reason: String,
}

pub fn stage_label(raw: &str) -> &'static str {
    Stage::parse(raw).map_or("Unknown", Stage::label)
}

pub fn row(lead: &CrmLead, names: &HashMap<Uuid, String>) -> LeadRow {
    LeadRow {
        id: lead.id.to_string(),
        name: lead.name.clone(),
        company: lead.company.clone().unwrap_or_default(),
        email: lead.email.clone(),
        stage: stage_label(&lead.stage),
        source: lead.source.clone(),
        owner: owner_name(lead.assignee_id, names),
        created: when(lead.created_at),
        spam_reason: lead.spam_reason.clone().unwrap_or_default(),
    }
}

pub fn owner_name(id: Option<Uuid>, names: &HashMap<Uuid, String>) -> String {
    match id {
        None => String::new(),
        Some(id) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "a former member".into()),
    }
}

#[derive(Template)]
#[template(path = "admin/crm/list.html")]
pub struct ListPage {
    pub shell: Shell,
    pub q: ListQuery,
    pub spam: bool,
    pub stages: Vec<Choice>,
    pub owners: Vec<Choice>,
    pub bulk_stages: Vec<Choice>,
    pub bulk_owners: Vec<Choice>,
    pub rows: Vec<LeadRow>,
    /// The next page's link, when there is one.
    pub next: Option<String>,
    /// The filter's query string, for the export link and the inbox tabs.
    pub filter_query: String,
    pub can_edit: bool,
    pub can_export: bool,
    pub notice: Option<&'static str>,
    /// Where a bulk action comes back to.
    pub here: String,
}

/// A timeline entry as the page shows it.
pub struct EventView {
    pub at: String,
    pub at_iso: String,
    pub kind: String,
    pub actor: String,
    pub text: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            at: when(e.at),
            at_iso: e.at.to_rfc3339_seconds(),
            kind: e.kind,
            actor: e.actor.unwrap_or_default(),
            text: e.text,
        }
    }
}

/// A lead's fields as the page shows them.
pub struct LeadView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub company: String,
    pub role: String,
    pub budget: String,
    pub website: String,
    pub message: String,
    pub source: String,
    pub stage: &'static str,
    pub lost_reason: String,
    pub spam_reason: String,
    pub owner: String,
    pub created: String,
    pub updated: String,
}

impl LeadView {
    pub fn of(lead: &CrmLead, names: &HashMap<Uuid, String>) -> Self {
        let budget = crate::leads::form::Budget::parse(&lead.budget)
            .map_or_else(|| lead.budget.clone(), |b| b.label().to_owned());
        Self {
            id: lead.id.to_string(),
            name: lead.name.clone(),
            email: lead.email.clone(),
            company: lead.company.clone().unwrap_or_default(),
            role: lead.role.clone().unwrap_or_default(),
            budget,
            website: lead.website.clone().unwrap_or_default(),
            message: lead.message.clone(),
            source: lead.source.clone(),
            stage: stage_label(&lead.stage),
            lost_reason: lead.lost_reason.clone().unwrap_or_default(),
            spam_reason: lead.spam_reason.clone().unwrap_or_default(),
            owner: owner_name(lead.assignee_id, names),
            created: when(lead.created_at),
            updated: when(lead.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/crm/show.html")]
pub struct ShowPage {
    pub shell: Shell,
    pub lead: LeadView,
    pub is_spam: bool,
    pub stages: Vec<Choice>,
    pub owners: Vec<Choice>,
    pub timeline: Vec<EventView>,
    pub can_edit: bool,
    pub notice: Option<&'static str>,
}

/// A refused form (422): which field, and why.
#[derive(Template)]
#[template(path = "admin/crm/invalid.html")]
pub struct InvalidPage {
    pub shell: Shell,
    pub field: &'static str,
    pub message: String,
    pub back: String,
}

/// What a redirect after a change says.
pub fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "stage" => "The stage was changed.",
        "note" => "The note was added.",
        "assigned" => "The assignment was changed.",
        "spam" => "Marked as spam.",
        "rescued" => "Rescued: it is a lead now, and its notification was sent.",
        "bulk" => "The selected leads were changed.",
        _ => return None,
    })
}
