//! Security headers on every response, from one layer on the whole router: pages, errors,
//! health checks, static files and anything added later. There is no route to forget.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// The pages need no inline script or style and no third-party origin, so the policy can be
/// strict: everything from this origin only, nothing may frame us.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// Two years, the value browsers' preload lists expect.
const HSTS: &str = "max-age=63072000; includeSubDomains";

#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// HSTS and `upgrade-insecure-requests` only in production: on a developer's plain-HTTP
    /// localhost they would pin the browser to HTTPS for that host.
    pub fn new(production: bool) -> Self {
        let csp = if production {
            format!("{CSP}; upgrade-insecure-requests")
        } else {
            CSP.to_owned()
        };
        let mut headers = vec![
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_str(&csp).expect("static CSP is a valid header"),
            ),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("strict-origin-when-cross-origin"),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static(
                    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()",
                ),
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ];
        if production {
            headers.push((
                HeaderName::from_static("strict-transport-security"),
                HeaderValue::from_static(HSTS),
            ));
        }
        Self { headers }
    }
}

impl SecurityHeaders {
    /// The headers as raw `name: value\r\n` lines, for responses written below the router.
    pub fn head_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl SecurityHeaders {
    /// Sets the headers on a response about to leave. A response that chose its own
    /// (stricter) policy keeps it: a media PDF's `sandbox`.
    pub fn apply(&self, res: &mut Response) {
        let h = res.headers_mut();
        for (name, value) in &self.headers {
            if name == axum::http::header::CONTENT_SECURITY_POLICY && h.contains_key(name) {
                continue;
            }
            h.insert(name.clone(), value.clone());
        }
    }
}
