//! `POST /api/leads`: the contact form for programs (a partner's site, a CRM import), with the
//! same rules, and `GET /api/openapi.json`, the public API's OpenAPI 3.1 document.
//!
//! The document is generated from these handlers and types (utoipa), and the routes are
//! registered through the same description (`utoipa_axum::routes!`), so a route cannot exist
//! without being documented, nor the reverse.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Leads;
use super::form::{ContactForm, FieldErrors};
use super::idempotency::{IdempotencyKey, SavedResponse};
use super::queries::LeadSource;
use super::spam::{self, SpamRules};
use super::submit::{self, Stored, Submission};
use crate::http::errors::AppError;
use crate::http::extract::Json;
use crate::http::observe::RequestId;
use crate::http::rate_limit::{self, RouteLimit};
use crate::state::PublicTenant;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vantus public API",
        description = "Lead capture for programs. Errors share one shape: `{\"error\": {\"status\", \"title\", \"message\", \"field\"?, \"fields\"?}, \"request_id\"}`.",
        license(name = "AGPL-3.0-only")
    ),
    tags((name = "leads", description = "Enquiries, as the contact form sends them"))
)]
struct ApiDoc;

/// The API's routes, rate-limited by `limit`, and the document that describes them.
pub fn routes(limit: RouteLimit) -> Router<Leads> {
    let (router, document) = api_router().split_for_parts();
    let document = std::sync::Arc::new(
        document
            .to_json()
            .expect("the OpenAPI document serializes to JSON"),
    );
    router
        .route_layer(from_fn_with_state(limit, rate_limit::limit))
        .route(
            "/api/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document.as_str().to_owned(),
                    )
                }
            }),
        )
}

/// Every documented route; also what the route-matching test walks.
pub fn api_router() -> OpenApiRouter<Leads> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(create_lead))
}

/// The OpenAPI document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// An enquiry. Text is Unicode-normalised (NFC) and trimmed; control characters are refused;
/// single-line fields refuse line breaks.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct LeadRequest {
    /// 1 to 100 characters.
    #[schema(example = "Ada Lovelace", max_length = 100)]
    pub name: Option<String>,
    /// A valid address; its domain is lower-cased.
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: Option<String>,
    #[schema(max_length = 120)]
    pub company: Option<String>,
    #[schema(max_length = 120)]
    pub role: Option<String>,
    /// One of the listed ranges; `not-sure` when absent. Any other value is a 422 naming
    /// the field, like every other rule.
    #[schema(value_type = Option<BudgetRange>, example = "25k-50k")]
    pub budget: Option<String>,
    /// An http(s) address.
    #[schema(example = "https://example.com", max_length = 200)]
    pub website: Option<String>,
    /// 10 to 5000 characters.
    #[schema(min_length = 10, max_length = 5000)]
    pub message: Option<String>,
    /// Consent to the privacy policy; must be true.
    pub consent: Option<bool>,
}

/// The budget ranges, as the form offers them (the schema's view of
/// [`Budget`](super::form::Budget); a test checks the two agree).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetRange {
    NotSure,
    #[serde(rename = "under-10k")]
    Under10k,
    #[serde(rename = "10k-25k")]
    From10kTo25k,
    #[serde(rename = "25k-50k")]
    From25kTo50k,
    #[serde(rename = "50k-100k")]
    From50kTo100k,
    #[serde(rename = "over-100k")]
    Over100k,
}

impl LeadRequest {
    fn into_form(self) -> ContactForm {
        ContactForm {
            name: self.name,
            email: self.email,
            company: self.company,
            role: self.role,
            budget: self.budget,
            website: self.website,
            message: self.message,
            consent: self.consent.filter(|c| *c).map(|_| "true".to_owned()),
        }
    }
}

/// The enquiry was stored (notifications follow from the outbox).
#[derive(Serialize, ToSchema)]
pub struct LeadAccepted {
    pub id: uuid::Uuid,
    /// RFC 3339, UTC.
    pub received_at: String,
}

/// A 422: each field at fault, with what is wrong with it.
#[derive(Serialize, ToSchema)]
pub struct ValidationError {
    pub error: ValidationErrorBody,
    pub request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ValidationErrorBody {
    #[schema(example = 422)]
    pub status: u16,
    pub title: String,
    pub message: String,
    /// Field name → what is wrong with it.
    #[schema(example = json!({"email": "must be an email address such as name@example.com"}))]
    pub fields: BTreeMap<String, String>,
}

/// Any other error (400, 413, 415, 429, 5xx).
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
    pub request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub status: u16,
    pub title: String,
    pub message: String,
    /// The parameter, header or limit at fault.
    pub field: Option<String>,
}

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Submit an enquiry.
///
/// With an `Idempotency-Key` header, a retry of the same request within 24 hours stores
/// nothing and gets the first response again (with `Idempotent-Replayed: true`); the same key
/// with a different request is a 422.
#[utoipa::path(
    post,
    path = "/api/leads",
    tag = "leads",
    request_body(content = LeadRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters, such as a UUID, unique per enquiry.")
    ),
    responses(
        (status = 202, description = "Stored", body = LeadAccepted),
        (status = 400, description = "Not JSON, or a field of the wrong type", body = ErrorResponse),
        (status = 413, description = "Body over the size limit", body = ErrorResponse),
        (status = 415, description = "Not application/json", body = ErrorResponse),
        (status = 422, description = "A field breaks a rule, or the idempotency key was used for another request", body = ValidationError),
        (status = 429, description = "Too many requests from this client; see Retry-After", body = ErrorResponse),
    )
)]
async fn create_lead(
    State(app): State<Leads>,
    PublicTenant(tenant): PublicTenant,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    Json(request): Json<LeadRequest>,
) -> Response {
    let request_id = request_id.map(|r| r.0.0);
    let raw_key = match headers.get(IDEMPOTENCY_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) => Some(k.to_owned()),
        Some(Err(_)) => {
            return AppError::bad_request("Idempotency-Key", "must be visible ASCII characters")
                .into_response();
        }
    };
    let lead = match request.into_form().parse() {
        Ok(lead) => lead,
        Err(errors) => return unprocessable(request_id, errors),
    };
    let key = match raw_key {
        None => None,
        Some(k) => {
            match IdempotencyKey::new(&format!("api:{k}"), &Submission::fingerprint(&lead)) {
                Ok(key) => Some(key),
                Err(why) => return AppError::bad_request("Idempotency-Key", why).into_response(),
            }
        }
    };
    let rules = SpamRules::of(&app.config.leads);
    let submission = Submission {
        spam_reason: spam::heuristics(&lead, &rules),
        lead,
        source: LeadSource::Api,
        key,
    };
    let stored = submit::store(&app.writer, &tenant, &submission, |id, at| SavedResponse {
        status: StatusCode::ACCEPTED.as_u16().into(),
        location: None,
        body: serde_json::to_string(&LeadAccepted {
            id,
            received_at: at.to_rfc3339_seconds(),
        })
        .expect("a UUID and a string serialize"),
    })
    .await;
    match stored {
        Ok(Stored::New { response, .. }) => super::replay(&response),
        Ok(Stored::Replay(response)) => {
            let mut res = super::replay(&response);
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            res
        }
        Ok(Stored::KeyConflict) => {
            let mut errors = FieldErrors::default();
            errors.0.insert(
                "Idempotency-Key",
                "was already used for a different request; use a new key for a new enquiry".into(),
            );
            unprocessable(request_id, errors)
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

/// 422 with every field at fault.
fn unprocessable(request_id: Option<String>, errors: FieldErrors) -> Response {
    let fields: BTreeMap<String, String> = errors
        .0
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    let body = ValidationError {
        error: ValidationErrorBody {
            status: 422,
            title: "Invalid enquiry".into(),
            message: format!("Check these fields: {}.", names.join(", ")),
            fields: fields.clone(),
        },
        request_id,
    };
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::form::Budget;

    #[test]
    fn the_schema_lists_exactly_the_budget_ranges_the_form_takes() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let listed: Vec<String> =
            serde_json::from_value(doc["components"]["schemas"]["BudgetRange"]["enum"].clone())
                .expect("BudgetRange is an enum of strings in the document");
        let taken: Vec<String> = Budget::ALL.iter().map(|b| b.as_str().to_owned()).collect();
        assert_eq!(listed, taken);
    }
}
