//! What the content area's templates are given (`templates/admin/cms/`).

use askama::Template;

use crate::admin::layout::{Shell, when};
use crate::content::editing::Fields;
use crate::content::revisions::FieldDiff;

/// A kind as the portal names it.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "case_study" => "Case study",
        "insight" => "Insight",
        _ => "Page",
    }
}

pub struct KindOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

pub fn kind_options(selected: &str) -> Vec<KindOption> {
    ["insight", "case_study", "page"]
        .into_iter()
        .map(|value| KindOption {
            value,
            label: kind_label(value),
            selected: value == selected,
        })
        .collect()
}

pub struct Row {
    pub id: String,
    pub kind: &'static str,
    pub title: String,
    pub slug: String,
    pub status: String,
    /// "draft pending" when a draft waits to be published.
    pub pending: bool,
    pub changed: String,
}

#[derive(Template)]
#[template(path = "admin/cms/index.html")]
pub struct ListPage {
    pub shell: Shell,
    pub rows: Vec<Row>,
    pub kinds: Vec<KindOption>,
    pub bin: bool,
    pub can_edit: bool,
    pub notice: Option<&'static str>,
}

pub struct ScheduleRow {
    pub id: String,
    pub action: String,
    pub run_at: String,
    pub by: String,
    pub pending: bool,
    pub outcome: String,
}

/// The editor: the form (the draft, or what was posted when it was refused), the item's
/// state and what may be done with it.
#[derive(Template)]
#[template(path = "admin/cms/edit.html")]
pub struct EditPage {
    pub shell: Shell,
    /// `None` for a new item.
    pub id: Option<String>,
    pub kind: String,
    pub kind_label: &'static str,
    pub kinds: Vec<KindOption>,
    pub fields: Fields,
    pub status: String,
    pub deleted: bool,
    pub has_draft: bool,
    pub public_path: Option<String>,
    pub preview_link: Option<String>,
    pub preview_expires: String,
    pub schedules: Vec<ScheduleRow>,
    pub can_edit: bool,
    pub can_publish: bool,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    /// The field the error is about, for the error summary's link.
    pub error_field: Option<&'static str>,
    pub editor_script: &'static str,
}

impl EditPage {
    pub fn action(&self) -> String {
        match &self.id {
            Some(id) => format!("/admin/content/{id}"),
            None => "/admin/content".to_owned(),
        }
    }
}

pub struct RevisionRow {
    pub id: String,
    pub number: i64,
    pub author: String,
    pub saved: String,
    pub note: String,
    pub title: String,
    pub is_draft: bool,
    pub is_published: bool,
}

#[derive(Template)]
#[template(path = "admin/cms/revisions.html")]
pub struct RevisionsPage {
    pub shell: Shell,
    pub id: String,
    pub title: String,
    pub rows: Vec<RevisionRow>,
    /// The two revisions compared, by number, and their differences.
    pub compared: Option<(i64, i64)>,
    pub diff: Vec<FieldDiff>,
    pub can_edit: bool,
}

pub fn time(t: crate::store::Timestamp) -> String {
    when(t)
}
