//! [`SoftAuthenticator`]: a passkey in software, for tests that go through the real WebAuthn
//! ceremonies over HTTP. One P-256 key (ES256), "none" attestation, user presence and user
//! verification always asserted, a signature counter the test controls, and an origin the
//! test may forge. It answers the options the server sends exactly as a browser plus a
//! platform authenticator would (`navigator.credentials.create` / `.get`, serialised as
//! `static/js/passkeys.js` does).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

pub struct SoftAuthenticator {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The user handle the server gave at registration (its account id).
    pub user_handle: Vec<u8>,
    /// The signature counter the next assertion carries (then incremented).
    pub counter: u32,
    /// The origin written into clientDataJSON; the relying party id is its host.
    pub origin: String,
    rp_id: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("{text:?} is not base64url: {e}"))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes
}

/// The few CBOR items an attestation object and a COSE key need.
fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=255 => out.extend([m | 24, len as u8]),
        _ => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}

fn cbor_int(v: i64, out: &mut Vec<u8>) {
    if v >= 0 {
        cbor_head(0, v as usize, out)
    } else {
        cbor_head(1, (-1 - v) as usize, out)
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len(), out);
    out.extend(b);
}

fn cbor_text(t: &str, out: &mut Vec<u8>) {
    cbor_head(3, t.len(), out);
    out.extend(t.as_bytes());
}

impl SoftAuthenticator {
    /// A new authenticator for the site at `origin` (e.g. `http://localhost`).
    pub fn new(origin: &str) -> Self {
        let key = loop {
            if let Ok(k) = SigningKey::from_bytes(&random::<32>().into()) {
                break k;
            }
        };
        let rp_id = url::Url::parse(origin)
            .expect("origin is a URL")
            .host_str()
            .expect("origin has a host")
            .to_owned();
        Self {
            key,
            credential_id: random::<32>().to_vec(),
            user_handle: Vec::new(),
            counter: 1,
            origin: origin.to_owned(),
            rp_id,
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": b64(&unb64(challenge)),
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    fn auth_data(&self, flags: u8, counter: u32) -> Vec<u8> {
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend(counter.to_be_bytes());
        data
    }

    /// The public key as a COSE_Key (EC2, ES256, P-256).
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut out = Vec::new();
        cbor_head(5, 5, &mut out);
        cbor_int(1, &mut out);
        cbor_int(2, &mut out);
        cbor_int(3, &mut out);
        cbor_int(-7, &mut out);
        cbor_int(-1, &mut out);
        cbor_int(1, &mut out);
        cbor_int(-2, &mut out);
        cbor_bytes(point.x().expect("x"), &mut out);
        cbor_int(-3, &mut out);
        cbor_bytes(point.y().expect("y"), &mut out);
        out
    }

    /// Answers creation options (the server's `options`, `{"publicKey": …}`) with a new
    /// discoverable credential; remembers the user handle.
    pub fn register(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        assert_eq!(pk["rp"]["id"], self.rp_id.as_str(), "relying party id");
        self.user_handle = unb64(pk["user"]["id"].as_str().expect("user.id"));
        let client_data = self.client_data(
            "webauthn.create",
            pk["challenge"].as_str().expect("challenge"),
        );
        let mut auth_data = self.auth_data(UP | UV | AT, 0);
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        cbor_head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        cbor_head(5, 0, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
    }

    /// Answers request options with an assertion by this credential, as the user it was
    /// registered for.
    pub fn assert(&mut self, options: &Value) -> Value {
        let handle = self.user_handle.clone();
        self.assert_as(options, &handle)
    }

    /// An assertion that claims `user_handle` (a forgery unless it is the registered one).
    pub fn assert_as(&mut self, options: &Value, user_handle: &[u8]) -> Value {
        let pk = &options["publicKey"];
        let client_data =
            self.client_data("webauthn.get", pk["challenge"].as_str().expect("challenge"));
        let auth_data = self.auth_data(UP | UV, self.counter);
        self.counter += 1;
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(user_handle),
            },
            "extensions": {},
        })
    }
}
