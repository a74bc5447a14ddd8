//! Request bodies: held to their size limit, and watched so that a body still arriving when
//! the request timeout strikes is answered 408 (the client's slowness), not 504.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;
use hyper::body::{Frame, SizeHint};

use super::errors::ErrorDetail;

/// The routes that take a file upload: their bodies may be as large as
/// `VANTUS_MEDIA_MAX_BYTES` (plus [`UPLOAD_OVERHEAD`]); every other body is held to
/// `VANTUS_BODY_LIMIT`.
pub const UPLOAD_PATHS: &[&str] = &["/admin/media"];

/// Room for an upload's form fields and multipart framing beside the file itself.
pub const UPLOAD_OVERHEAD: usize = 256 * 1024;

#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub default: usize,
    pub uploads: usize,
}

/// What [`BodyLimits::admit`] decided.
pub enum Admission {
    /// Refused before the handler runs (boxed: a response is large, and this is rare).
    Refused(Box<Response>),
    /// Let through; `Some` while the request has a body that may still be arriving.
    Admitted(Option<BodyProgress>),
}

impl BodyLimits {
    /// Holds the request's body to its limit (larger for a POST to one of the
    /// [`UPLOAD_PATHS`]), or refuses with 413 a body declared larger. An upload over its
    /// limit is answered by the upload handler's own check, which names the media setting.
    pub fn admit(&self, req: &mut Request) -> Admission {
        if req.body().is_end_stream() {
            // No body (most GETs): nothing to limit or to wait for.
            return Admission::Admitted(None);
        }
        let is_upload =
            req.method() == axum::http::Method::POST && UPLOAD_PATHS.contains(&req.uri().path());
        let limit = if is_upload {
            self.uploads
        } else {
            self.default
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            let mut res = StatusCode::PAYLOAD_TOO_LARGE.into_response();
            if is_upload {
                res.extensions_mut().insert(ErrorDetail {
                    title: "File too large".into(),
                    message: format!(
                        "file: the file is larger than the {} limit (VANTUS_MEDIA_MAX_BYTES)",
                        crate::config::format_byte_size(limit - UPLOAD_OVERHEAD)
                    ),
                    field: Some("file".into()),
                });
            }
            return Admission::Refused(Box::new(res));
        }
        // A body without a length (chunked) is cut off at the limit while it is read; axum's
        // extractors answer that with 413.
        let progress = BodyProgress::default();
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = Body::new(WatchedBody {
            inner: Limited::new(body, limit),
            progress: progress.clone(),
        });
        Admission::Admitted(Some(progress))
    }
}

/// Whether a request's body has been read to its end.
#[derive(Clone, Default)]
pub struct BodyProgress(Arc<AtomicBool>);

impl BodyProgress {
    fn complete(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// A request timeout (504) while this body was still arriving is the client's doing:
    /// 408, with `Connection: close` (the rest of the body is never read).
    pub fn blame_slow_body(&self, res: &mut Response) {
        if res.status() == StatusCode::GATEWAY_TIMEOUT && !self.complete() {
            *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body that notes when it has been read to its end.
    struct WatchedBody {
        #[pin]
        inner: Limited<Body>,
        progress: BodyProgress,
    }
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.progress.0.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
