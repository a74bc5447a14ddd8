//! What the media templates are given (`templates/admin/media/`).

use askama::Template;

use crate::admin::layout::{Shell, when};
use crate::media::queries::{Media, VariantRow};

pub struct MediaRow {
    pub id: String,
    pub url: String,
    pub label: String,
    pub alt_text: String,
    pub kind: &'static str,
    pub size: String,
    pub dimensions: String,
    pub is_image: bool,
    pub is_public: bool,
    pub variants: &'static str,
    pub uploaded: String,
}

fn human_size(bytes: i64) -> String {
    crate::config::format_byte_size(usize::try_from(bytes).unwrap_or(0))
}

impl From<&Media> for MediaRow {
    fn from(m: &Media) -> Self {
        let kind = crate::media::sniff::Kind::from_content_type(&m.content_type);
        Self {
            id: m.id.to_string(),
            url: format!("/media/{}", m.file_name),
            label: m.label.clone(),
            alt_text: m.alt_text.clone(),
            kind: kind.map(|k| k.name()).unwrap_or("file"),
            size: human_size(m.bytes),
            dimensions: match (m.width, m.height) {
                (Some(w), Some(h)) => format!("{w}×{h}"),
                _ => String::new(),
            },
            is_image: kind.is_some_and(|k| k.is_image()),
            is_public: m.is_public,
            variants: match m.variants_state.as_str() {
                "pending" => "being made",
                "ready" => "ready",
                "failed" => "failed",
                _ => "none",
            },
            uploaded: when(m.created_at),
        }
    }
}

pub struct VariantView {
    pub url: String,
    pub width: i64,
    pub height: i64,
    pub size: String,
}

impl From<&VariantRow> for VariantView {
    fn from(v: &VariantRow) -> Self {
        Self {
            url: format!("/media/{}", v.file_name),
            width: v.width,
            height: v.height,
            size: human_size(v.bytes),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/media/index.html")]
pub struct ListPage {
    pub shell: Shell,
    pub files: Vec<MediaRow>,
    pub max_size: String,
    pub alt_text: String,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/media/show.html")]
pub struct ShowPage {
    pub shell: Shell,
    pub file: MediaRow,
    pub variants: Vec<VariantView>,
    pub markdown: String,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}
