//! Accepting and serving connections, with every connection bounded in time and in number.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never fires and a slow
//! or silent client keeps its connection (and a file descriptor) for ever; one such client
//! also holds a graceful shutdown for the whole drain timeout. This loop serves each
//! connection through hyper-util's builder instead, with:
//! * a **header-read timeout** (hyper's own, with a tokio timer): a request head must be
//!   complete within it, counted from when the connection is ready for a request;
//! * a **keep-alive idle timeout**: a connection with no request in flight that has neither
//!   read nor written a byte for this long is closed (HTTP/1.1 and HTTP/2 alike);
//! * a **cap on concurrent connections**: at the cap the loop stops accepting, so new clients
//!   wait in the kernel's backlog instead of exhausting file descriptors;
//! * a **drain**: on stop, every connection is asked to finish its current request and close;
//!   `serve` returns once all have closed. Idle and half-sent connections close at once.
//!
//! It also writes the security headers into the few responses hyper produces on its own
//! (400, 414, 431, 505 for requests it cannot parse), which no middleware ever sees.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::security_headers::SecurityHeaders;

/// How long connections may stay open, and how many at once.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` is cancelled and every connection has closed.
/// Dropping the returned future (or aborting its task) closes every connection at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    security: &SecurityHeaders,
    stop: CancellationToken,
) {
    let security_lines: Arc<[u8]> = security.head_lines().into();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let max = limits.max_connections.max(1);
    let mut connections = JoinSet::new();
    let mut at_capacity_logged = false;
    loop {
        if connections.len() >= max {
            if !at_capacity_logged {
                tracing::warn!(
                    max_connections = max,
                    "connection limit reached; new connections wait"
                );
                at_capacity_logged = true;
            }
            tokio::select! {
                _ = connections.join_next() => continue,
                _ = stop.cancelled() => break,
            }
        }
        at_capacity_logged = false;
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(
                        stream,
                        peer,
                        router.clone(),
                        builder.clone(),
                        limits.keep_alive_timeout,
                        security_lines.clone(),
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors (EMFILE) and similar: back off instead of
                    // spinning; connections closing will free what is needed.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
            _ = stop.cancelled() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    keep_alive_timeout: Duration,
    security_lines: Arc<[u8]>,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
        rewrite: HeadRewrite::new(security_lines),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            // In flight from the head's arrival until the response body is fully sent.
            let in_flight = activity.begin_request();
            let response = router.clone().oneshot(req);
            async move {
                let res = response.await?;
                Ok::<_, Infallible>(res.map(|body| TrackedBody {
                    inner: body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let next_check = activity.idle_deadline(keep_alive_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !closing => {
                if activity.in_flight() == 0 {
                    // Idle, or half a request head that may never complete: nothing to
                    // finish, and waiting for it would hold the shutdown.
                    return;
                }
                // Finish the request in flight, then close.
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(next_check.into()) => {
                if activity.idle_for(keep_alive_timeout) {
                    if closing {
                        // Asked to close once and still silent: drop it.
                        return;
                    }
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The process-wide origin of activity times, so they fit in an atomic as milliseconds.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn now_ms() -> u64 {
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn instant_of(ms: u64) -> Instant {
    *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
}

/// What the idle timer of one connection looks at.
struct Activity {
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            last_io_ms: AtomicU64::new(now_ms()),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        self.last_io_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// True when no request is being handled and no byte moved for `timeout`.
    fn idle_for(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && now_ms().saturating_sub(self.last_io_ms.load(Ordering::Relaxed))
                >= timeout.as_millis() as u64
    }

    /// When to look again: one timeout after the last byte moved, or (while a request is
    /// being handled) one timeout from now.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        let from = if self.in_flight.load(Ordering::Relaxed) > 0 {
            now_ms()
        } else {
            self.last_io_ms.load(Ordering::Relaxed)
        };
        instant_of(from) + timeout
    }
}

/// Marks a request as being handled until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The TCP stream, noting when bytes move and adding security headers to hyper's own error
/// responses.
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    rewrite: HeadRewrite,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = this.rewrite.poll_write(&mut this.inner, cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A head hyper wrote itself goes through the rewriting path, alone.
        if let Some(first) = bufs.first()
            && (this.rewrite.pending() || HeadRewrite::needs_headers(first))
        {
            return Pin::new(this).poll_write(cx, first);
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Rewrites response heads that did not pass through the application: every response the
/// router produces carries `x-content-type-options`, so a head without it is one hyper wrote
/// for a request it could not parse. The security headers are spliced in after the status
/// line; the caller is told its whole buffer was written once the rewritten bytes are out.
struct HeadRewrite {
    /// `name: value\r\n` lines of the security headers.
    lines: Arc<[u8]>,
    /// Rewritten bytes still to send, the length of the caller's buffer they replace, and
    /// how much of them is out.
    out: Option<(Vec<u8>, usize, usize)>,
}

impl HeadRewrite {
    fn new(lines: Arc<[u8]>) -> Self {
        HeadRewrite { lines, out: None }
    }

    fn pending(&self) -> bool {
        self.out.is_some()
    }

    /// A response head from hyper itself: a status line, and no security header in the head.
    fn needs_headers(buf: &[u8]) -> bool {
        if !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.1 5")) {
            return false;
        }
        let head_end = find(buf, b"\r\n\r\n").unwrap_or(buf.len());
        let head = &buf[..head_end];
        !head
            .windows(b"x-content-type-options".len())
            .any(|w| w.eq_ignore_ascii_case(b"x-content-type-options"))
    }

    fn poll_write(
        &mut self,
        inner: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.out.is_none() {
            if !Self::needs_headers(buf) {
                return Pin::new(inner).poll_write(cx, buf);
            }
            let line_end = find(buf, b"\r\n").map(|i| i + 2).unwrap_or(buf.len());
            let mut rewritten = Vec::with_capacity(buf.len() + 512);
            rewritten.extend_from_slice(&buf[..line_end]);
            rewritten.extend_from_slice(&self.lines);
            rewritten.extend_from_slice(&buf[line_end..]);
            self.out = Some((rewritten, buf.len(), 0));
        }
        let (bytes, replaces, sent) = self.out.as_mut().expect("set above");
        while *sent < bytes.len() {
            match Pin::new(&mut *inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(n)) => *sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let replaced = *replaces;
        self.out = None;
        Poll::Ready(Ok(replaced))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_heads_without_security_headers_are_rewritten() {
        assert!(HeadRewrite::needs_headers(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(HeadRewrite::needs_headers(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"
        ));
        assert!(!HeadRewrite::needs_headers(
            b"HTTP/1.1 404 Not Found\r\nX-Content-Type-Options: nosniff\r\n\r\n"
        ));
        assert!(!HeadRewrite::needs_headers(
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        ));
        // Body bytes of a streamed response are not a head.
        assert!(!HeadRewrite::needs_headers(b"<html>HTTP/1.1 400"));
    }
}
