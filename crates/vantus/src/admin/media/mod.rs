//! The media library at `/admin/media` (`Staff<perm::ManageMedia>`): the list with the upload
//! form, a file's page (alt text, visibility, delete), and the public route that serves files
//! at `/media/<file name>` ([`serve`]).
//!
//! - [`upload`]: the multipart upload, checked and cleaned by `crate::media` before anything
//!   is stored;
//! - [`handlers`]: the pages and the edit and delete forms;
//! - [`serve`]: public files to anyone, private ones to the tenant's staff who may view
//!   content.

pub mod handlers;
pub mod serve;
pub mod upload;
pub mod views;

use axum::Router;
use axum::http::Method;
use axum::routing::get;

use crate::auth::Auth;
use crate::auth::permission::perm;
use crate::auth::routing::Portal;

/// Declares the media area's routes on the portal's table.
pub fn declare(portal: &mut Portal) {
    type Manage = perm::ManageMedia;
    portal
        .staff::<Manage, _, _>(Method::GET, "/admin/media", handlers::list)
        .staff::<Manage, _, _>(Method::POST, "/admin/media", upload::upload)
        .staff::<Manage, _, _>(Method::GET, "/admin/media/{id}", handlers::show)
        .staff::<Manage, _, _>(Method::POST, "/admin/media/{id}", handlers::update)
        .staff::<Manage, _, _>(Method::POST, "/admin/media/{id}/delete", handlers::delete);
}

/// `/media/<file name>`: outside the portal (it is the public site's), read-only.
pub fn public_routes(auth: &Auth) -> Router {
    Router::new()
        .route("/media/{file}", get(serve::file))
        .with_state(auth.clone())
}
