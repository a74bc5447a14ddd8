//! Content management at `/admin/content`: case studies, insights and pages.
//!
//! - [`handlers`]: the list, the editor and its forms. Reading needs `ViewContent`, saving
//!   drafts `EditContent`, anything the public site sees (publish, unpublish, schedule, delete,
//!   restore) `PublishContent`. Every change and its audit entry commit together.
//! - [`views`]: the templates' data (`templates/admin/cms/`).
//! - [`scheduled`]: the `content-schedule` job, which carries out scheduled publishes and
//!   unpublishes as the user who scheduled them.
//!
//! The queries live in `content::{editing, revisions, schedule}`; pages render through
//! `site::render::render_page`, the public pages' own function.

pub mod handlers;
pub mod scheduled;
pub mod views;

use axum::http::Method;

use crate::auth::permission::perm;
use crate::auth::routing::Portal;

pub fn declare(portal: &mut Portal) {
    type View = perm::ViewContent;
    type Edit = perm::EditContent;
    type Publish = perm::PublishContent;
    portal
        .staff::<View, _, _>(Method::GET, "/admin/content", handlers::list)
        .staff::<Edit, _, _>(Method::GET, "/admin/content/new", handlers::new_page)
        .staff::<Edit, _, _>(Method::POST, "/admin/content", handlers::create)
        .staff::<Edit, _, _>(
            Method::POST,
            "/admin/content/preview",
            handlers::live_preview,
        )
        .staff::<View, _, _>(Method::GET, "/admin/content/{id}", handlers::edit_page)
        .staff::<Edit, _, _>(Method::POST, "/admin/content/{id}", handlers::save)
        .staff::<Publish, _, _>(
            Method::POST,
            "/admin/content/{id}/publish",
            handlers::publish,
        )
        .staff::<Publish, _, _>(
            Method::POST,
            "/admin/content/{id}/unpublish",
            handlers::unpublish,
        )
        .staff::<Publish, _, _>(Method::POST, "/admin/content/{id}/delete", handlers::delete)
        .staff::<Publish, _, _>(
            Method::POST,
            "/admin/content/{id}/restore",
            handlers::restore,
        )
        .staff::<Publish, _, _>(
            Method::POST,
            "/admin/content/{id}/schedule",
            handlers::schedule,
        )
        .staff::<Publish, _, _>(
            Method::POST,
            "/admin/content/{id}/schedule/{schedule}/cancel",
            handlers::cancel_schedule,
        )
        .staff::<View, _, _>(
            Method::GET,
            "/admin/content/{id}/revisions",
            handlers::revisions_page,
        )
        .staff::<Edit, _, _>(
            Method::POST,
            "/admin/content/{id}/revisions/{revision}/restore",
            handlers::restore_revision,
        );
}
