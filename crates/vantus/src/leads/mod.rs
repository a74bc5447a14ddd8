//! Lead capture: the contact form (`/contact`, server-rendered, working without JavaScript)
//! and its JSON twin (`POST /api/leads`).
//!
//! Both doors parse a submission with [`form`] (one set of rules), judge it with [`spam`]
//! (costing a person nothing), and store it with [`submit`]: the lead, its notifications
//! (through the outbox) and its audit entry in one transaction, under the submission's
//! idempotency key ([`idempotency`]). Every query takes the [`TenantScope`] the request's host
//! selects ([`PublicTenant`]). Both POST routes are rate-limited per client.

pub mod api;
pub mod crm;
pub mod form;
pub mod idempotency;
pub mod notes;
pub mod privacy;
pub mod queries;
pub mod spam;
pub mod stats;
pub mod submit;
pub mod timeline;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::config::RateSetting;
use crate::content::markdown::SanitizedHtml;
use crate::content::{self, ContentKind};
use crate::http::errors::AppError;
use crate::http::extract::Form;
use crate::http::rate_limit::{self, Quota, RouteLimit};
use crate::site::layout::{Layout, Section};
use crate::state::{App, PublicTenant};
use crate::tenancy::TenantScope;
use form::ContactForm;
use idempotency::{IdempotencyKey, SavedResponse};
use queries::LeadSource;
use spam::{FormToken, SpamRules};
use submit::{Stored, Submission};
use views::{ContactPage, FormState, ThanksPage};

/// Where a successful form submission is redirected (POST/redirect/GET).
const THANKS_PATH: &str = "/contact/thanks";

/// The slice's state: the application, and this process's [`submit::Writer`] (one per
/// server, shared by both doors, so their submissions are committed together).
#[derive(Clone)]
pub struct Leads {
    pub app: App,
    pub writer: Arc<submit::Writer>,
}

impl Leads {
    pub fn new(app: App) -> Self {
        let writer = Arc::new(submit::Writer::new(&app));
        Self { app, writer }
    }
}

impl std::ops::Deref for Leads {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl axum::extract::FromRef<Leads> for App {
    fn from_ref(leads: &Leads) -> App {
        leads.app.clone()
    }
}

pub fn routes(app: &App) -> Router<Leads> {
    let forms = route_limit(app, "forms", app.config.leads.form_rate);
    let api = route_limit(app, "api", app.config.leads.api_rate);
    Router::new()
        .route(
            "/contact",
            get(contact_page)
                .merge(post(submit_form).route_layer(from_fn_with_state(forms, rate_limit::limit))),
        )
        .route(THANKS_PATH, get(thanks_page))
        .merge(api::routes(api))
}

fn route_limit(app: &App, class: &'static str, rate: RateSetting) -> RouteLimit {
    RouteLimit {
        limiter: app.limiter.clone(),
        class,
        quota: Quota::new(rate.count, rate.period),
        trusted: app.trusted_proxies.clone(),
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What the browser posts: the form's fields, the signed token, the idempotency key and the
/// honeypot.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FormPost {
    #[serde(flatten)]
    fields: ContactForm,
    form_token: Option<String>,
    idempotency_key: Option<String>,
    /// The honeypot: hidden from people and assistive technology; only bots fill it. Its name
    /// is no autofill token (unlike `nickname` or `fax`), so a browser's autofill leaves it be.
    leave_blank: Option<String>,
}

async fn contact_page(State(app): State<Leads>, PublicTenant(tenant): PublicTenant) -> Response {
    let state = FormState {
        input: &ContactForm::default(),
        errors: Default::default(),
        form_token: FormToken::issue(app.secret.expose().as_bytes(), unix_now()),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    };
    render_form(&app, &tenant, state, StatusCode::OK).await
}

/// Renders the contact page around the form. Never stored by a cache: each rendering carries
/// its own token and idempotency key.
async fn render_form(
    app: &App,
    tenant: &TenantScope,
    state: FormState<'_>,
    status: StatusCode,
) -> Response {
    let page = with_conn!(app.store.primary(), conn => {
        content::find_published(conn, tenant, ContentKind::Page, "contact").await
    });
    let (title, summary, intro) = match page {
        Ok(Some(p)) => (p.title.clone(), p.summary.clone(), p.body_html()),
        Ok(None) => (
            "Start a project".to_owned(),
            "Tell us about your product and what you need.".to_owned(),
            SanitizedHtml::default(),
        ),
        Err(e) => return AppError::from(e).into_response(),
    };
    let canonical = app.config.public_url_of("/contact");
    let layout = Layout::new(&title, &summary, canonical, Section::Contact);
    let page = ContactPage::new(layout, title, summary, intro, state);
    crate::http::html_page(status, askama::Template::render(&page))
}

async fn submit_form(
    State(app): State<Leads>,
    PublicTenant(tenant): PublicTenant,
    Form(post): Form<FormPost>,
) -> Response {
    let secret = app.secret.expose().as_bytes();
    let now = unix_now();
    let leads = &app.config.leads;
    let token = FormToken::verify(
        secret,
        post.form_token.as_deref(),
        now,
        leads.min_fill_time.as_secs() as i64,
        leads.max_form_age.as_secs() as i64,
    );
    let lead = match post.fields.parse() {
        Ok(lead) => lead,
        Err(errors) => {
            // Keep the token a person has been filling in since the first rendering (a fresh
            // one would make a quick correction look "too fast"), unless it is unusable.
            let form_token = match (&token, post.form_token.clone()) {
                (Ok(_), Some(t)) => t,
                _ => FormToken::issue(secret, now),
            };
            let state = FormState {
                input: &post.fields,
                errors,
                form_token,
                idempotency_key: post
                    .idempotency_key
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            };
            return render_form(&app, &tenant, state, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let rules = SpamRules::of(&app.config.leads);
    let spam_reason = spam::spam_reason(
        &lead,
        post.leave_blank.as_deref(),
        token.as_ref().map_err(|p| *p),
        &rules,
    );
    let key = post.idempotency_key.as_deref().and_then(|k| {
        IdempotencyKey::new(&format!("form:{k}"), &Submission::fingerprint(&lead)).ok()
    });
    let submission = Submission {
        lead,
        source: LeadSource::Form,
        spam_reason,
        key,
    };
    let stored = submit::store(&app.writer, &tenant, &submission, |_, _| SavedResponse {
        status: StatusCode::SEE_OTHER.as_u16().into(),
        location: Some(THANKS_PATH.to_owned()),
        body: String::new(),
    })
    .await;
    match stored {
        Ok(Stored::New { response, .. } | Stored::Replay(response)) => replay(&response),
        Ok(Stored::KeyConflict) => {
            let mut errors = form::FieldErrors::default();
            errors.0.insert(
                "message",
                "was changed after this form was sent. Check it and send the form again.".into(),
            );
            let state = FormState {
                input: &post.fields,
                errors,
                form_token: FormToken::issue(secret, now),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
            };
            render_form(&app, &tenant, state, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => AppError::from(e).into_response(),
    }
}

/// A saved response as an HTTP response.
fn replay(saved: &SavedResponse) -> Response {
    let status = u16::try_from(saved.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut res = if saved.body.is_empty() {
        status.into_response()
    } else {
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            saved.body.clone(),
        )
            .into_response()
    };
    if let Some(location) = saved
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        res.headers_mut().insert(header::LOCATION, location);
    }
    res
}

async fn thanks_page(State(app): State<App>) -> Response {
    let canonical = app.config.public_url_of(THANKS_PATH);
    let mut layout = Layout::new(
        "Thank you",
        "Your enquiry has arrived; we reply within one business day.",
        canonical,
        Section::Contact,
    );
    // Nothing to find here from a search engine.
    layout.canonical = None;
    crate::http::html_page(
        StatusCode::OK,
        askama::Template::render(&ThanksPage { layout }),
    )
}
