//! Cross-site request refusal, for every state-changing request on the whole router: a page
//! on another site cannot make a visitor's browser post a form here (sign out a staff member,
//! submit a lead in their name, or later change anything in the portal).
//!
//! Browsers say where a request comes from. `Sec-Fetch-Site` (every current browser) must be
//! `same-origin`, or `none` (typed, bookmarked); without it, `Origin` must be this site's
//! public origin. A request with neither comes from something that is not a browser (curl, an
//! API client, a server-side integration), which no other site can steer, and passes; session
//! cookies are `SameSite=Lax` besides, and portal forms carry a session-bound token.

use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};

use super::errors::AppError;

/// What the layer compares `Origin` with.
#[derive(Clone, Debug)]
pub struct AllowedOrigin {
    /// `scheme://host[:port]` of `VANTUS_PUBLIC_URL`; `None` when the public URL is the
    /// development default (the site may be opened as localhost, 127.0.0.1, …).
    origin: Option<String>,
}

impl AllowedOrigin {
    pub fn new(public_url: &url::Url, is_default: bool) -> Self {
        let origin = (!is_default).then(|| public_url.origin().ascii_serialization());
        Self { origin }
    }

    /// The 403 for a state-changing request another site sent, naming the reason.
    pub fn refusal<B>(&self, req: &Request<B>) -> Option<Response> {
        self.refuses(req.method(), req.headers())
            .map(|why| AppError::Forbidden(why.into()).into_response())
    }

    /// Why a request must be refused, if it must.
    pub fn refuses(
        &self,
        method: &Method,
        headers: &axum::http::HeaderMap,
    ) -> Option<&'static str> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return None;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(site) = header("sec-fetch-site") {
            return match site.trim().to_ascii_lowercase().as_str() {
                "same-origin" | "none" => None,
                _ => Some("Requests from other sites are refused: send this form from this site."),
            };
        }
        match (header("origin"), &self.origin) {
            (None, _) => None,
            (Some("null"), _) => Some("Requests from an opaque origin are refused."),
            (Some(origin), Some(ours)) if !origin.eq_ignore_ascii_case(ours) => {
                Some("Requests from other sites are refused: send this form from this site.")
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_same_origin_browsers_and_non_browsers_may_change_state() {
        let url = url::Url::parse("https://vantus.example/").unwrap();
        let allowed = AllowedOrigin::new(&url, false);
        let post = Method::POST;
        assert!(
            allowed
                .refuses(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")]))
                .is_none()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("sec-fetch-site", "same-origin")]))
                .is_none()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("sec-fetch-site", "none")]))
                .is_none()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("sec-fetch-site", "cross-site")]))
                .is_some()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("sec-fetch-site", "same-site")]))
                .is_some()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("origin", "https://vantus.example")]))
                .is_none()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("origin", "https://evil.example")]))
                .is_some()
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("origin", "http://vantus.example")]))
                .is_some(),
            "another scheme is another origin"
        );
        assert!(
            allowed
                .refuses(&post, &headers(&[("origin", "null")]))
                .is_some()
        );
        assert!(
            allowed
                .refuses(
                    &Method::DELETE,
                    &headers(&[("origin", "https://evil.example")])
                )
                .is_some()
        );
        assert!(
            allowed.refuses(&post, &HeaderMap::new()).is_none(),
            "curl and API clients"
        );
        // Sec-Fetch-Site decides when present, whatever Origin says.
        assert!(
            allowed
                .refuses(
                    &post,
                    &headers(&[
                        ("sec-fetch-site", "cross-site"),
                        ("origin", "https://vantus.example")
                    ])
                )
                .is_some()
        );
    }
}
