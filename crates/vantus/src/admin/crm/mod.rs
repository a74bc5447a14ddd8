//! The leads CRM (`/admin/leads`): the list (search, filters, keyset pages, the spam inbox),
//! a lead's page (its fields, the pipeline, notes, assignment, the timeline), bulk actions on
//! selected leads, spam review, and the CSV export of the current filter.
//!
//! Reading needs `Staff<perm::ViewLeads>`, every change `Staff<perm::EditLeads>`, the export
//! `Staff<perm::ExportLeads>`. A change to a lead, its timeline entry, its audit entry (and a
//! rescued lead's notification) commit in one transaction. The queries live in
//! `leads::crm`, `leads::notes` and `leads::timeline`; the full-text index in `store::search`.
//!
//! - [`handlers`]: the pages and forms.
//! - [`views`]: the query string and forms as typed values, and the templates' data
//!   (`templates/admin/crm/`).

pub mod handlers;
pub mod views;

use axum::http::Method;

use crate::auth::permission::perm;
use crate::auth::routing::Portal;

/// Declares the CRM's routes on the portal's table.
pub fn declare(portal: &mut Portal) {
    type View = perm::ViewLeads;
    type Edit = perm::EditLeads;
    portal
        .staff::<View, _, _>(Method::GET, "/admin/leads", handlers::list)
        .staff::<perm::ExportLeads, _, _>(Method::GET, "/admin/leads/export", handlers::export)
        .staff::<Edit, _, _>(Method::POST, "/admin/leads/bulk", handlers::bulk)
        .staff::<View, _, _>(Method::GET, "/admin/leads/{id}", handlers::show)
        .staff::<Edit, _, _>(Method::POST, "/admin/leads/{id}/stage", handlers::stage)
        .staff::<Edit, _, _>(Method::POST, "/admin/leads/{id}/notes", handlers::note)
        .staff::<Edit, _, _>(Method::POST, "/admin/leads/{id}/assign", handlers::assign)
        .staff::<Edit, _, _>(Method::POST, "/admin/leads/{id}/spam", handlers::mark_spam)
        .staff::<Edit, _, _>(Method::POST, "/admin/leads/{id}/not-spam", handlers::rescue);
}
