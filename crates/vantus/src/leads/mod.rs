//! Lead capture: the contact form and its JSON twin.
//!
//! What exists so far is the part every door shares: [`form`] turns what a visitor sent into a
//! [`form::ValidLead`] or a map of field errors, and [`spam`] judges a submission without costing
//! a person anything. Storage (with its outbox and audit entry in one transaction), the routes
//! and the notifications build on these.

pub mod form;
pub mod spam;
