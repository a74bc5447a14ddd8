//! Webhook calls, signed as [Standard Webhooks](https://www.standardwebhooks.com/) says, so
//! any receiver with a Standard Webhooks library (or twenty lines of HMAC) can verify them.
//!
//! Each call is `POST <url>` with a JSON body `{"type", "timestamp", "data"}` and three headers:
//! `webhook-id` (the row's stable message id: the same on every retry, for deduplication),
//! `webhook-timestamp` (Unix seconds of this attempt, against replays) and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key
//! is the base64-decoded part of `VANTUS_WEBHOOK_SECRET` after `whsec_`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::Timestamp;

/// Longest wait for a receiver's answer, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed, phrased without the URL (it may carry a token) or the body.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(String);

/// A signing HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    key: Vec<u8>,
}

impl Sender {
    /// `key`: the decoded signing secret.
    pub fn new(key: Vec<u8>) -> Result<Self, CallError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // A redirect would resend the signed body to wherever it points: a receiver
            // that moved is told by the failure, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("vantus/{}", crate::build::VERSION))
            .build()
            .map_err(|e| CallError(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Self { client, key })
    }

    /// Posts one event. A 2xx answer is a delivery; anything else, or no answer within
    /// [`TIMEOUT`], is a failure.
    pub async fn send(&self, url: &str, message_id: &str, body: &str) -> Result<(), CallError> {
        let timestamp = Timestamp::now().unix_micros() / 1_000_000;
        let signature = sign(&self.key, message_id, timestamp, body);
        let result = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        match result {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(CallError(format!(
                "the receiver answered HTTP {}",
                res.status().as_u16()
            ))),
            Err(e) if e.is_timeout() => Err(CallError(format!(
                "the receiver did not answer within {} s",
                TIMEOUT.as_secs()
            ))),
            Err(e) => Err(CallError(format!(
                "cannot reach the receiver: {}",
                crate::mail::error_chain(&e.without_url())
            ))),
        }
    }
}

/// The event body: `{"type", "timestamp", "data"}`. `created` is when the event happened (the
/// row's creation), so every retry sends the same bytes.
pub fn body(event_type: &str, created: Timestamp, data: &serde_json::Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": created.to_fixed_string(),
        "data": data,
    })
    .to_string()
}

/// `v1,<base64 signature>` of `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], message_id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The example from the Standard Webhooks specification's reference libraries.
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
