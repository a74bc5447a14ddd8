//! Real network peers started by tests: an S3-compatible server and an HTTP sink that records
//! what it receives (standing in for an OTLP collector and for Sentry's ingest endpoint).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub body: Vec<u8>,
}

/// An HTTP server on 127.0.0.1 that answers 200 to everything and keeps the requests.
pub struct Sink {
    pub addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        async fn record(
            State(r): State<Arc<Mutex<Vec<Received>>>>,
            uri: Uri,
            body: Bytes,
        ) -> &'static str {
            r.lock().unwrap().push(Received {
                path: uri.path().to_owned(),
                body: body.to_vec(),
            });
            "{}"
        }
        let app = Router::new().fallback(record).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until a request matching `pred` arrives, and returns it.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        super::wait::poll(within, Duration::from_millis(50), async || {
            self.received().into_iter().find(|r| pred(r))
        })
        .await
        .ok()
    }
}

/// moto's S3-compatible server (PyPI `moto[server]`): no MinIO, SeaweedFS or Garage can be
/// installed here, so this emulator stands in for real object storage, and the tests that use
/// it say so in their names. It speaks the S3 REST protocol over HTTP with SigV4.
pub struct S3Emulator {
    child: Child,
    pub endpoint: String,
}

impl S3Emulator {
    pub async fn start() -> Self {
        vantus::telemetry::install_crypto_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server runs (pip install 'moto[server]'; scripts/ensure-services does)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        super::wait::eventually(
            Duration::from_secs(30),
            "the S3 emulator to start",
            async || client.get(&endpoint).send().await.map(|_| ()),
        )
        .await;
        Self { child, endpoint }
    }

    /// Creates a bucket (the emulator accepts unsigned requests for this).
    pub async fn create_bucket(&self, name: &str) {
        let res = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "create bucket: {}", res.status());
    }

    /// The `S3_*` settings that point Vantus at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("S3_ENDPOINT".into(), self.endpoint.clone()),
            ("S3_REGION".into(), "us-east-1".into()),
            ("S3_ACCESS_KEY_ID".into(), "testing-access-key".into()),
            ("S3_SECRET_ACCESS_KEY".into(), "testing-secret-key".into()),
        ]
    }

    /// Object keys under `prefix` in `bucket`.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = reqwest::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.endpoint
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for S3Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
