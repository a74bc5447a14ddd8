//! The contact page and the thank-you page.

use askama::Template;

use super::form::{Budget, ContactForm, FieldErrors, limits};
use crate::content::markdown::SanitizedHtml;
use crate::site::layout::Layout;

/// One text input or textarea of the form, with what the visitor typed and its error.
pub struct TextField {
    pub name: &'static str,
    pub label: &'static str,
    pub input_type: &'static str,
    pub autocomplete: &'static str,
    pub required: bool,
    pub multiline: bool,
    pub max: usize,
    pub hint: Option<&'static str>,
    pub value: String,
    pub error: Option<String>,
}

impl TextField {
    /// `aria-describedby`: the hint and the error, when there are any.
    pub fn described_by(&self) -> Option<String> {
        let ids: Vec<String> = [
            self.hint.map(|_| format!("{}-hint", self.name)),
            self.error.as_ref().map(|_| format!("{}-error", self.name)),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!ids.is_empty()).then(|| ids.join(" "))
    }
}

pub struct BudgetOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "leads/contact.html")]
pub struct ContactPage {
    pub layout: Layout,
    pub title: String,
    pub summary: String,
    pub intro: SanitizedHtml,
    pub error_title: &'static str,
    /// The errors in the order of the form's fields: (field, label, message).
    pub problems: Vec<(&'static str, &'static str, String)>,
    pub text_fields: Vec<TextField>,
    pub budgets: Vec<BudgetOption>,
    pub budget_error: Option<String>,
    pub consent: bool,
    pub consent_error: Option<String>,
    pub form_token: String,
    pub idempotency_key: String,
}

/// The form's fields in the order they are shown.
const FIELD_ORDER: [&str; 8] = [
    "name", "email", "company", "role", "budget", "website", "message", "consent",
];

/// The visible name of a field, for the error summary.
pub fn label_of(field: &str) -> &'static str {
    match field {
        "name" => "Your name",
        "email" => "Email",
        "company" => "Company",
        "role" => "Your role",
        "budget" => "Budget range",
        "website" => "Current website",
        "message" => "Message",
        "consent" => "Consent",
        _ => "This form",
    }
}

/// Everything the form shows besides the page around it.
pub struct FormState<'a> {
    pub input: &'a ContactForm,
    pub errors: FieldErrors,
    pub form_token: String,
    pub idempotency_key: String,
}

impl ContactPage {
    pub fn new(
        layout: Layout,
        title: String,
        summary: String,
        intro: SanitizedHtml,
        state: FormState<'_>,
    ) -> Self {
        let input = state.input;
        let errors = state.errors;
        let value = |v: &Option<String>| v.clone().unwrap_or_default();
        let field = |name: &'static str,
                     input_type: &'static str,
                     autocomplete: &'static str,
                     required: bool,
                     max: usize,
                     v: &Option<String>| TextField {
            name,
            label: label_of(name),
            input_type,
            autocomplete,
            required,
            multiline: false,
            max,
            hint: None,
            value: value(v),
            error: errors.get(name).map(str::to_owned),
        };
        let mut message = field("message", "", "off", true, limits::MESSAGE, &input.message);
        message.multiline = true;
        message.hint = Some("What the product does, what you want to change, and any deadline.");
        let text_fields = vec![
            field("name", "text", "name", true, limits::NAME, &input.name),
            field("email", "email", "email", true, limits::EMAIL, &input.email),
            field(
                "company",
                "text",
                "organization",
                false,
                limits::COMPANY,
                &input.company,
            ),
            field(
                "role",
                "text",
                "organization-title",
                false,
                limits::ROLE,
                &input.role,
            ),
            field(
                "website",
                "url",
                "url",
                false,
                limits::WEBSITE,
                &input.website,
            ),
            message,
        ];
        let chosen = input
            .budget
            .as_deref()
            .and_then(Budget::parse)
            .unwrap_or(Budget::NotSure);
        let budgets = Budget::ALL
            .into_iter()
            .map(|b| BudgetOption {
                value: b.as_str(),
                label: b.label(),
                selected: b == chosen,
            })
            .collect();
        let error_title = match errors.0.len() {
            0 => "",
            1 => "There is a problem with one field",
            _ => "There are problems with some fields",
        };
        let problems = FIELD_ORDER
            .iter()
            .filter_map(|f| errors.get(f).map(|m| (*f, label_of(f), m.to_owned())))
            .collect();
        ContactPage {
            problems,
            layout,
            title,
            summary,
            intro,
            error_title,
            budget_error: errors.get("budget").map(str::to_owned),
            consent: input.consent.is_some(),
            consent_error: errors.get("consent").map(str::to_owned),
            text_fields,
            budgets,
            form_token: state.form_token,
            idempotency_key: state.idempotency_key,
        }
    }
}

#[derive(Template)]
#[template(path = "leads/thanks.html")]
pub struct ThanksPage {
    pub layout: Layout,
}
