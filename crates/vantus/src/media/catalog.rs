//! The Markdown renderer's view of the library: for a body, the library images it uses, with
//! their sizes and variants ([`crate::content::markdown::MediaLookup`]).
//!
//! ```ignore
//! let catalog = with_conn!(db, conn => catalog::for_markdown(conn, &scope, &body).await)?;
//! let html = markdown::render_with_media(&body, &catalog);
//! ```

use std::collections::HashMap;

use pulldown_cmark::{Event, Parser, Tag};

use super::queries;
use crate::content::markdown::{LibraryImage, MEDIA_PREFIX, MediaLookup};
use crate::store::Conn;
use crate::tenancy::TenantScope;

/// The library images of one body, by their `/media/...` address.
#[derive(Clone, Debug, Default)]
pub struct Catalog(HashMap<String, LibraryImage>);

impl MediaLookup for Catalog {
    fn image(&self, src: &str) -> Option<LibraryImage> {
        self.0.get(src).cloned()
    }
}

/// The `/media/<file name>` images `markdown` refers to.
pub fn referenced_files(markdown: &str) -> Vec<String> {
    let mut names: Vec<String> = Parser::new(markdown)
        .filter_map(|e| match e {
            Event::Start(Tag::Image { dest_url, .. }) => dest_url
                .trim()
                .strip_prefix(MEDIA_PREFIX)
                .filter(|n| super::is_file_name(n))
                .map(str::to_owned),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Loads what the renderer needs for the images `markdown` uses from `scope`'s library.
pub async fn for_markdown(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    markdown: &str,
) -> Result<Catalog, sqlx::Error> {
    let names = referenced_files(markdown);
    if names.is_empty() {
        return Ok(Catalog::default());
    }
    let found = queries::by_file_names(conn, scope, &names).await?;
    let ids: Vec<_> = found.iter().map(|m| m.id).collect();
    let variants = queries::variants_of(conn, scope, &ids).await?;
    let mut map = HashMap::new();
    for m in found {
        let (Some(w), Some(h)) = (m.width, m.height) else {
            continue;
        };
        let image = LibraryImage {
            width: u32::try_from(w).unwrap_or(0),
            height: u32::try_from(h).unwrap_or(0),
            variants: variants
                .iter()
                .filter(|v| v.media_id == m.id)
                .map(|v| {
                    (
                        format!("{MEDIA_PREFIX}{}", v.file_name),
                        u32::try_from(v.width).unwrap_or(0),
                    )
                })
                .collect(),
        };
        map.insert(format!("{MEDIA_PREFIX}{}", m.file_name), image);
    }
    Ok(Catalog(map))
}
