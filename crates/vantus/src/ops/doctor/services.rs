//! Services beside the database: Redis, and object storage for media.

use std::time::Duration;

use super::{Doctor, Finding};
use crate::ops::destination::{self, Destination};

pub(super) async fn check(d: &mut Doctor<'_>) {
    if let Some(url) = &d.config.redis_url
        && d.can_run("redis", &["REDIS_URL"])
    {
        let finding = match redis_ping(secrecy::ExposeSecret::expose_secret(url)).await {
            Ok(()) => Finding::ok("redis", "REDIS_URL answers PING"),
            Err(e) => Finding::high("redis", format!("REDIS_URL is configured but unreachable: {e}"))
                .impact("Replicas fall back to per-process rate limits: each grants its own allowance, so limits multiply by the replica count.")
                .fix("Check REDIS_URL and that Redis is running and reachable."),
        };
        d.push(finding);
    } else if d.config.redis_url.is_none() && d.config.is_production() {
        d.push(
            Finding::medium("rate-limits", "REDIS_URL is not set: rate limits are kept per process")
                .impact("With several replicas, each grants its own allowance: a client gets N times the limit.")
                .fix("Set REDIS_URL so every replica shares one limit."),
        );
    }
    if let Some(bucket) = &d.config.s3.bucket
        && d.can_run(
            "object-storage",
            &[
                "S3_BUCKET",
                "S3_ENDPOINT",
                "S3_REGION",
                "S3_ACCESS_KEY_ID",
                "S3_SECRET_ACCESS_KEY",
            ],
        )
    {
        let finding = object_storage(d, bucket).await;
        d.push(finding);
    }
}

async fn object_storage(d: &Doctor<'_>, bucket: &str) -> Finding {
    let store = match destination::s3_store(&d.config.s3, bucket) {
        Ok(store) => store,
        Err(e) => {
            return Finding::critical("object-storage", e.to_string())
                .impact("Uploads and media fail.")
                .fix("Fix the S3_* settings.");
        }
    };
    let dest = Destination::S3 {
        store,
        bucket: bucket.to_owned(),
        prefix: String::new(),
    };
    probe(
        "object-storage",
        &dest,
        &format!("s3://{bucket}"),
        "Uploads and media fail.",
    )
    .await
}

/// Probes an S3 destination for up to 5 s; `described` names it, `impact` says what fails.
pub(super) async fn probe(
    check: &'static str,
    dest: &Destination,
    described: &str,
    impact: &str,
) -> Finding {
    let found = match tokio::time::timeout(Duration::from_secs(5), dest.probe()).await {
        Ok(Ok(())) => return Finding::ok(check, format!("{described} answers")),
        Ok(Err(e)) => Finding::critical(check, format!("{described} is unreachable: {e}"))
            .fix("Check S3_ENDPOINT, the bucket and the credentials."),
        Err(_) => Finding::critical(check, format!("{described}: no answer within 5 s"))
            .fix("Check S3_ENDPOINT and the network."),
    };
    found.impact(impact)
}

async fn redis_ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let fut = async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(3), fut).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within 3 s".into()),
    }
}
