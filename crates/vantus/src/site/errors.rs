//! The site's HTML error pages, rendered for every 4xx/5xx a browser gets (see
//! [`crate::http::errors`], which calls this through [`ErrorPages`]).

use askama::Template;
use axum::http::StatusCode;

use super::layout::{Layout, Section};
use crate::http::errors::{ErrorDetail, ErrorPageView, ErrorPages};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    detail: &'a ErrorDetail,
    request_id: Option<&'a str>,
    not_found: bool,
}

/// Error pages in the site's layout, with links onward from a 404.
pub struct SiteErrorPages;

impl ErrorPages for SiteErrorPages {
    fn render(&self, view: &ErrorPageView<'_>) -> Result<String, String> {
        ErrorPage {
            layout: Layout::bare(&view.detail.title, Section::None),
            status: view.status.as_u16(),
            detail: view.detail,
            request_id: view.request_id,
            not_found: view.status == StatusCode::NOT_FOUND,
        }
        .render()
        .map_err(|e| e.to_string())
    }
}
