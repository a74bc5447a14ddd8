use std::time::Duration;

use clap::Args;

use super::CliError;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to probe. Default: /readyz on VANTUS_LISTEN (an unspecified address such as
    /// 0.0.0.0 is probed on 127.0.0.1).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up after this long (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

fn default_url() -> Result<String, CliError> {
    let listen = std::env::var("VANTUS_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let addr: std::net::SocketAddr = listen.trim().parse().map_err(|_| {
        CliError::Config(crate::config::ConfigError::new(
            "VANTUS_LISTEN",
            format!("\"{listen}\" is not an address and port such as 127.0.0.1:8080"),
        ))
    })?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Ok(format!("http://{host}:{}/readyz", addr.port()))
}

pub async fn run(args: HealthcheckArgs) -> Result<(), CliError> {
    let url = match args.url {
        Some(u) => u,
        None => default_url()?,
    };
    // No trust roots are loaded: the probe talks plain HTTP to its own container, and must work
    // in an image without a CA bundle.
    let client = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .timeout(args.timeout)
        .build()
        .map_err(|e| CliError::Failed(format!("cannot build an HTTP client: {e}")))?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("{url} did not answer: {e}")))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    let summary: String = body.chars().take(400).collect();
    if status.is_success() {
        crate::say!("ready: {url} answered {status}");
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "not ready: {url} answered {status}: {summary}"
        )))
    }
}
