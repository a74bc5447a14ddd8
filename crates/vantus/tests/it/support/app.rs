//! The in-process server ([`TestApp`]), requests by verb ([`TestRequest`]) and checks on
//! responses ([`ResponseExt`]).

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use reqwest::Method;
use vantus::config::{Config, Overrides};
use vantus::server::{self, RunningServer};

use super::{Engine, TestDb, base_env};

/// A client that neither follows redirects nor decompresses, so tests see the wire.
pub fn client() -> reqwest::Client {
    vantus::telemetry::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One request being built. Awaiting it sends it and panics if nothing answers (a test that
/// expects the failure uses [`TestRequest::try_send`]).
#[must_use = "a request does nothing until it is awaited"]
pub struct TestRequest {
    builder: reqwest::RequestBuilder,
    /// "GET http://…/path", for failure messages.
    what: String,
}

impl TestRequest {
    pub fn new(client: &reqwest::Client, method: Method, url: String) -> Self {
        Self {
            what: format!("{method} {url}"),
            builder: client.request(method, url),
        }
    }

    pub fn header(self, name: &str, value: impl AsRef<str>) -> Self {
        Self {
            builder: self.builder.header(name, value.as_ref()),
            ..self
        }
    }

    pub fn bearer_auth(self, token: &str) -> Self {
        Self {
            builder: self.builder.bearer_auth(token),
            ..self
        }
    }

    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self {
            builder: self.builder.body(body),
            ..self
        }
    }

    /// A form-encoded body, as a browser's `<form method="post">` sends.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Self {
            builder: self
                .builder
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
            ..self
        }
    }

    pub fn json(self, body: &impl serde::Serialize) -> Self {
        Self {
            builder: self.builder.json(body),
            ..self
        }
    }

    /// Sends, returning the transport error instead of panicking.
    pub async fn try_send(self) -> reqwest::Result<reqwest::Response> {
        self.builder.send().await
    }

    pub async fn send(self) -> reqwest::Response {
        let what = self.what.clone();
        self.try_send()
            .await
            .unwrap_or_else(|e| panic!("{what} was not answered: {e}"))
    }
}

impl IntoFuture for TestRequest {
    type Output = reqwest::Response;
    type IntoFuture = Pin<Box<dyn Future<Output = reqwest::Response> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Request verbs for anything with a client and a base URL: `get`, `get_html`, `head`,
/// `post_form`, `post_json`, `put`, `delete`, each returning a [`TestRequest`] to add headers
/// to or to await.
macro_rules! request_verbs {
    ($ty:ty) => {
        // Not every holder uses every verb.
        #[allow(dead_code)]
        impl $ty {
            pub fn request(
                &self,
                method: reqwest::Method,
                path: &str,
            ) -> $crate::support::TestRequest {
                $crate::support::TestRequest::new(&self.client, method, self.url(path))
            }

            pub fn get(&self, path: &str) -> $crate::support::TestRequest {
                self.request(reqwest::Method::GET, path)
            }

            /// GET with an `Accept: text/html` header, as a browser sends.
            pub fn get_html(&self, path: &str) -> $crate::support::TestRequest {
                self.get(path)
                    .header("accept", "text/html,application/xhtml+xml")
            }

            pub fn head(&self, path: &str) -> $crate::support::TestRequest {
                self.request(reqwest::Method::HEAD, path)
            }

            pub fn post_form(
                &self,
                path: &str,
                fields: &[(&str, &str)],
            ) -> $crate::support::TestRequest {
                self.request(reqwest::Method::POST, path).form(fields)
            }

            pub fn post_json(
                &self,
                path: &str,
                body: &impl serde::Serialize,
            ) -> $crate::support::TestRequest {
                self.request(reqwest::Method::POST, path).json(body)
            }

            pub fn put(&self, path: &str) -> $crate::support::TestRequest {
                self.request(reqwest::Method::PUT, path)
            }

            pub fn delete(&self, path: &str) -> $crate::support::TestRequest {
                self.request(reqwest::Method::DELETE, path)
            }
        }
    };
}
pub(crate) use request_verbs;

/// A request to an absolute URL (a second listener, a sink), with the harness's client.
pub fn get_url(url: impl Into<String>) -> TestRequest {
    TestRequest::new(&client(), Method::GET, url.into())
}

/// Checks on a response, chainable: `app.get("/").await.assert_status(200).html().await`.
pub trait ResponseExt: Sized {
    /// Panics naming the request and the status it got.
    #[track_caller]
    fn assert_status(self, expected: u16) -> Self;
    /// A 3xx whose `Location` is `location`.
    #[track_caller]
    fn assert_redirect_to(self, location: &str) -> Self;
    /// The body as JSON (`json` is taken by reqwest's own, typed, method).
    fn json_value(self) -> impl Future<Output = serde_json::Value> + Send;
    /// The body of an HTML response (checked by its content type).
    fn html(self) -> impl Future<Output = String> + Send;
}

impl ResponseExt for reqwest::Response {
    #[track_caller]
    fn assert_status(self, expected: u16) -> Self {
        assert_eq!(
            self.status().as_u16(),
            expected,
            "status of {} (headers: {:?})",
            self.url(),
            self.headers()
        );
        self
    }

    #[track_caller]
    fn assert_redirect_to(self, location: &str) -> Self {
        assert!(
            self.status().is_redirection(),
            "{} answered {}, not a redirect",
            self.url(),
            self.status()
        );
        assert_eq!(
            self.headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or(""),
            location,
            "redirect target of {}",
            self.url()
        );
        self
    }

    async fn json_value(self) -> serde_json::Value {
        let url = self.url().clone();
        self.json()
            .await
            .unwrap_or_else(|e| panic!("{url} did not answer JSON: {e}"))
    }

    async fn html(self) -> String {
        let url = self.url().clone();
        let content_type = self
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            content_type.starts_with("text/html"),
            "{url} answered {content_type:?}, not HTML"
        );
        self.text()
            .await
            .unwrap_or_else(|e| panic!("{url}: body unreadable: {e}"))
    }
}

/// The `<title>` of an HTML document.
pub fn title_of(html: &str) -> String {
    let start = html.find("<title>").map(|i| i + 7).unwrap_or(0);
    let end = html[start..]
        .find("</title>")
        .map(|i| i + start)
        .unwrap_or(start);
    html[start..end].to_owned()
}

/// `vantus::server::start` in-process against a [`TestDb`], with a client and request verbs.
///
/// Dropping it stops the server (see [`RunningGuard`]); [`TestApp::stop`] is for tests that
/// look at the drain, [`TestApp::into_db`] for tests that start a second server on the data.
pub struct TestApp {
    // Declared first so it is dropped first: the server stops before its database goes.
    server: RunningGuard,
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
}

request_verbs!(TestApp);

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}).await
    }

    /// Starts a server; `adjust` may change its environment first.
    pub async fn spawn_with(
        engine: Engine,
        adjust: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let db = TestDb::create(engine).await;
        Self::spawn_on(db, adjust).await
    }

    pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let (server, base) = start_on(&db, adjust).await;
        Self {
            server,
            base,
            client: client(),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn server(&self) -> &RunningServer {
        self.server.0.as_ref().expect("server running")
    }

    /// Drains and stops; returns whether every in-flight request finished in time.
    pub async fn stop(mut self) -> bool {
        self.server.shutdown().await
    }

    /// Stops the server and hands back its database, for a second server or a restore.
    pub async fn into_db(self) -> TestDb {
        let Self { mut server, db, .. } = self;
        server.shutdown().await;
        db
    }

    /// A second server on this one's database (another replica), with the same environment
    /// as `adjust` makes it; stopped when dropped, before this one's database goes.
    pub async fn spawn_replica(
        &self,
        adjust: impl FnOnce(&mut HashMap<String, String>),
    ) -> Replica {
        let (server, base) = start_on(&self.db, adjust).await;
        Replica {
            server,
            base,
            client: client(),
        }
    }

    // Sessions (logging in, CSRF tokens for forms) belong here, next to the verbs they wrap.
}

/// Starts a server on `db` with the base environment as `adjust` changes it; its base URL.
async fn start_on(
    db: &TestDb,
    adjust: impl FnOnce(&mut HashMap<String, String>),
) -> (RunningGuard, String) {
    let mut env = base_env(db);
    adjust(&mut env);
    let config = Config::load(&env, &Overrides::default()).expect("test config is valid");
    let server = server::start(config).await.expect("server starts");
    let base = format!("http://{}", server.addr);
    (RunningGuard(Some(server)), base)
}

/// Another server on a [`TestApp`]'s database ([`TestApp::spawn_replica`]). Drop it before
/// the `TestApp` (declare it after).
pub struct Replica {
    server: RunningGuard,
    pub base: String,
    pub client: reqwest::Client,
}

request_verbs!(Replica);

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn server(&self) -> &RunningServer {
        self.server.0.as_ref().expect("server running")
    }
}

/// Owns the running server and stops it when dropped, so a test that ends (or panics) without
/// `stop()` does not leave a listener and database pools behind for the rest of the suite.
struct RunningGuard(Option<RunningServer>);

impl RunningGuard {
    async fn shutdown(&mut self) -> bool {
        match self.0.take() {
            Some(server) => server.shutdown().await,
            None => true,
        }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let Some(server) = self.0.take() else {
            return;
        };
        // Without a runtime there is nothing left to run the server's tasks either.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match runtime.runtime_flavor() {
            // Wait for the drain, so the port is closed when the drop returns. The worker
            // hands its other tasks on while it blocks, so the server can still finish.
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| runtime.block_on(server.shutdown()));
            }
            // One thread cannot block on work that needs that thread: stop in the background;
            // the runtime ending with the test ends it at the latest.
            _ => {
                runtime.spawn(server.shutdown());
            }
        }
    }
}
