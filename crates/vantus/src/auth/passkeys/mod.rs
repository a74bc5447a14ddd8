//! Passkeys (WebAuthn, through webauthn-rs): registered on the account page, used as the whole
//! sign-in (a discoverable credential with user verification is something you have and
//! something you are or know), and offered to the MFA step as a second factor.
//!
//! The relying party is built once per server from `VANTUS_PUBLIC_URL`: its id is the URL's
//! host, its one accepted origin the URL itself. A credential is bound to that id, so changing
//! the domain makes every passkey unusable (docs/operations/passkeys.md).
//!
//! Between a ceremony's start and its finish its state (the challenge, the credentials it
//! allows) lives in `webauthn_ceremonies`, keyed by the SHA-256 of a random id the client
//! holds: never in a cookie or the client, and reachable from every replica. A ceremony is
//! deleted as it is taken, so it can be finished once; one past its end is refused, and the
//! scheduler sweeps those nobody finished ([`purge_expired_ceremonies`]).

pub mod routes;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::session::{key_of, random_token};
use crate::store::{Conn, Timestamp, on_conn};

/// How long a started ceremony can be finished: the browser's own timeout (webauthn-rs asks
/// for five minutes), so a slow user is not refused by the server first.
pub const CEREMONY_TTL: Duration = webauthn_rs::DEFAULT_AUTHENTICATOR_TIMEOUT;

/// The most characters of a passkey's name that are kept.
const MAX_NAME_CHARS: usize = 100;

/// This server as a WebAuthn relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl RelyingParty {
    /// The relying party of `public_url`: id = its host, origin = the URL. Refused (with why)
    /// when the host is an IP address, which WebAuthn does not accept as a relying party id.
    pub fn for_public_url(public_url: &Url) -> Result<Self, String> {
        let Some(host) = public_url.domain() else {
            return Err(format!(
                "passkeys need VANTUS_PUBLIC_URL with a domain name, not {} (use http://localhost:PORT in development)",
                public_url.host_str().unwrap_or("no host")
            ));
        };
        let mut origin = public_url.clone();
        origin.set_path("");
        let webauthn = WebauthnBuilder::new(host, &origin)
            .and_then(|b| b.rp_name(crate::site::layout::SITE_NAME).build())
            .map_err(|e| format!("passkeys: {e}"))?;
        Ok(Self { webauthn })
    }

    /// The relying party id: the public URL's host, which every passkey is bound to.
    pub fn id(&self) -> &str {
        self.webauthn.get_allowed_origins()[0]
            .host_str()
            .unwrap_or("")
    }
}

/// Why a ceremony's finish was refused. Shown to the user as [`Refusal::message`]; a sign-in
/// refusal never says more than "not accepted" to someone who is not signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No ceremony by that id: never started, finished already, or expired.
    NoCeremony,
    /// The browser's answer does not verify (signature, challenge, origin, flags, counter).
    NotVerified,
    /// The credential is not registered here, or not to the account it claims.
    UnknownCredential,
    /// Registration: this credential is registered already.
    AlreadyRegistered,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NoCeremony => "This passkey request has expired. Try again.",
            Refusal::NotVerified => "The passkey's answer could not be verified.",
            Refusal::UnknownCredential => "This passkey is not registered here.",
            Refusal::AlreadyRegistered => "This passkey is registered already.",
        }
    }
}

/// What a ceremony row is for: each kind stores its own state type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Registration,
    /// A passwordless sign-in: who signs in is known only at the finish.
    Authentication,
    /// A passkey as the second factor of a known user, after the password.
    SecondFactor,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Registration => "registration",
            Kind::Authentication => "authentication",
            Kind::SecondFactor => "second_factor",
        }
    }
}

/// Stores a started ceremony; returns the id the client finishes it with.
async fn save_ceremony(
    conn: &mut Conn<'_>,
    kind: Kind,
    user: Option<Uuid>,
    state: &impl Serialize,
) -> Result<String, sqlx::Error> {
    let token = random_token()?;
    let state = serde_json::to_string(state)
        .map_err(|e| sqlx::Error::Protocol(format!("ceremony state: {e}")))?;
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO webauthn_ceremonies (id, user_id, kind, state, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(key_of(&token)).bind(user).bind(kind.as_str()).bind(state).bind(now)
        .bind(now.plus(CEREMONY_TTL)).execute(c).await.map(|_| ()))?;
    Ok(token)
}

/// Takes (deletes) the ceremony `token` names if it is of `kind`, belongs to `user` and has
/// not expired. Deleting first makes a ceremony single-use even across replicas: of two
/// finishes racing, one deletes the row and the other finds nothing.
async fn take_ceremony<T: DeserializeOwned>(
    conn: &mut Conn<'_>,
    kind: Kind,
    user: Option<Uuid>,
    token: &str,
) -> Result<Option<T>, sqlx::Error> {
    let row: Option<(Option<Uuid>, String, Timestamp)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2
         RETURNING user_id, state, expires_at"
    ).bind(key_of(token)).bind(kind.as_str()).fetch_optional(c).await)?;
    Ok(row
        .filter(|(owner, _, expires)| *owner == user && *expires > Timestamp::now())
        .and_then(|(_, state, _)| serde_json::from_str(&state).ok()))
}

/// Deletes ceremonies nobody finished in time (scheduled hourly). Returns how many.
pub async fn purge_expired_ceremonies(conn: &mut Conn<'_>) -> Result<u64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM webauthn_ceremonies WHERE expires_at <= $1"
    ).bind(Timestamp::now()).execute(c).await.map(|r| r.rows_affected()))
}

fn encode_id(credential_id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(credential_id)
}

/// One of a user's passkeys, as the account page lists it.
#[derive(Clone, Debug)]
pub struct Listed {
    pub id: Uuid,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}
crate::store::from_row!(Listed {
    id,
    name,
    created_at,
    last_used_at
});

/// The user's passkeys, the newest first.
pub async fn list_for(conn: &mut Conn<'_>, user: Uuid) -> Result<Vec<Listed>, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, name, created_at, last_used_at FROM passkeys WHERE user_id = $1
         ORDER BY created_at DESC, id"
    ).bind(user).fetch_all(c).await)
}

/// How many passkeys `user` has. A passkey verifies the user (UV is required), so the MFA
/// step counts a user with one as enrolled.
pub async fn count_for(conn: &mut Conn<'_>, user_id: Uuid) -> Result<i64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT count(*) FROM passkeys WHERE user_id = $1"
    ).bind(user_id).fetch_one(c).await)
}

/// Removes one of `user`'s passkeys; anyone else's is left alone. Returns whether it existed.
pub async fn remove(conn: &mut Conn<'_>, user: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM passkeys WHERE id = $1 AND user_id = $2"
    ).bind(id).bind(user).execute(c).await.map(|r| r.rows_affected() == 1))
}

/// Removes every passkey of `user` (an administrator's reset of their second factors); how
/// many there were.
pub async fn remove_all(conn: &mut Conn<'_>, user: Uuid) -> Result<u64, sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "DELETE FROM passkeys WHERE user_id = $1"
    ).bind(user).execute(c).await.map(|r| r.rows_affected()))
}

/// A stored passkey with its owner.
struct Stored {
    id: Uuid,
    user_id: Uuid,
    passkey: Passkey,
}

fn parse_passkey(json: &str) -> Result<Passkey, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

async fn find_by_credential(
    conn: &mut Conn<'_>,
    credential_id: &[u8],
) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<(Uuid, Uuid, String)> = on_conn!(conn.reborrow(), c => sqlx::query_as(
        "SELECT id, user_id, passkey FROM passkeys WHERE credential_id = $1"
    ).bind(encode_id(credential_id)).fetch_optional(c).await)?;
    row.map(|(id, user_id, json)| {
        Ok(Stored {
            id,
            user_id,
            passkey: parse_passkey(&json)?,
        })
    })
    .transpose()
}

async fn passkeys_of(conn: &mut Conn<'_>, user: Uuid) -> Result<Vec<Passkey>, sqlx::Error> {
    let rows: Vec<String> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "SELECT passkey FROM passkeys WHERE user_id = $1 ORDER BY created_at"
    ).bind(user).fetch_all(c).await)?;
    rows.iter().map(|j| parse_passkey(j)).collect()
}

fn to_json(passkey: &Passkey) -> Result<String, sqlx::Error> {
    serde_json::to_string(passkey).map_err(|e| sqlx::Error::Protocol(format!("passkey: {e}")))
}

/// Records a use: the new signature counter and backup state, and when.
async fn record_use(conn: &mut Conn<'_>, stored: &Stored) -> Result<(), sqlx::Error> {
    on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE passkeys SET passkey = $2, last_used_at = $3 WHERE id = $1"
    ).bind(stored.id).bind(to_json(&stored.passkey)?).bind(Timestamp::now()).execute(c).await.map(|_| ()))
}

/// Starts registering a passkey for `user`: the options for `navigator.credentials.create`,
/// and the ceremony id to finish with. The user's own passkeys are excluded (no duplicate on
/// one authenticator), and a discoverable credential is required so the passkey alone can
/// sign in later (webauthn-rs's passkey registration only prefers one).
pub async fn start_registration(
    conn: &mut Conn<'_>,
    rp: &RelyingParty,
    user: Uuid,
    email: &str,
    name: &str,
) -> Result<(CreationChallengeResponse, String), sqlx::Error> {
    let exclude = passkeys_of(conn, user)
        .await?
        .iter()
        .map(|p| p.cred_id().clone())
        .collect::<Vec<_>>();
    let (mut options, state): (_, PasskeyRegistration) = rp
        .webauthn
        .start_passkey_registration(user, email, name, Some(exclude))
        .map_err(|e| sqlx::Error::Protocol(format!("passkey registration: {e}")))?;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let token = save_ceremony(conn, Kind::Registration, Some(user), &state).await?;
    Ok((options, token))
}

/// Finishes a registration `user` started: verifies the browser's answer and stores the
/// passkey under `name`. Returns its id.
pub async fn finish_registration(
    conn: &mut Conn<'_>,
    rp: &RelyingParty,
    user: Uuid,
    ceremony: &str,
    credential: &RegisterPublicKeyCredential,
    name: &str,
) -> Result<Result<Uuid, Refusal>, sqlx::Error> {
    let Some(state) =
        take_ceremony::<PasskeyRegistration>(conn, Kind::Registration, Some(user), ceremony)
            .await?
    else {
        return Ok(Err(Refusal::NoCeremony));
    };
    let Ok(passkey) = rp.webauthn.finish_passkey_registration(credential, &state) else {
        return Ok(Err(Refusal::NotVerified));
    };
    if find_by_credential(conn, passkey.cred_id()).await?.is_some() {
        return Ok(Err(Refusal::AlreadyRegistered));
    }
    let id = Uuid::now_v7();
    let name: String = name.trim().chars().take(MAX_NAME_CHARS).collect();
    let name = if name.is_empty() {
        "Passkey".to_owned()
    } else {
        name
    };
    on_conn!(conn.reborrow(), c => sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, passkey, name, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(id).bind(user).bind(encode_id(passkey.cred_id())).bind(to_json(&passkey)?).bind(name)
        .bind(Timestamp::now()).execute(c).await.map(|_| ()))?;
    Ok(Ok(id))
}

/// Starts a passwordless sign-in: options for `navigator.credentials.get` that name no
/// account (the authenticator offers its discoverable credentials for this site), and the
/// ceremony id to finish with.
pub async fn start_sign_in(
    conn: &mut Conn<'_>,
    rp: &RelyingParty,
) -> Result<(RequestChallengeResponse, String), sqlx::Error> {
    let (mut options, state): (_, DiscoverableAuthentication) = rp
        .webauthn
        .start_discoverable_authentication()
        .map_err(|e| sqlx::Error::Protocol(format!("passkey sign-in: {e}")))?;
    // A button starts this sign-in: the browser's modal prompt, not autofill (conditional UI).
    options.mediation = None;
    let token = save_ceremony(conn, Kind::Authentication, None, &state).await?;
    Ok((options, token))
}

/// The passkey that verified a sign-in: its owner and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: Uuid,
    pub passkey_id: Uuid,
}

/// Finishes a passwordless sign-in: the credential must be registered here, to the account
/// its user handle names, and its answer must verify against the stored key with a signature
/// counter that moved forward (one that went back is a cloned authenticator). Updates the
/// stored counter and backup state. Whether the account may sign in (not disabled) is the
/// caller's to check.
pub async fn finish_sign_in(
    conn: &mut Conn<'_>,
    rp: &RelyingParty,
    ceremony: &str,
    credential: &PublicKeyCredential,
) -> Result<Result<Verified, Refusal>, sqlx::Error> {
    let Some(state) =
        take_ceremony::<DiscoverableAuthentication>(conn, Kind::Authentication, None, ceremony)
            .await?
    else {
        return Ok(Err(Refusal::NoCeremony));
    };
    let Ok((claimed_user, credential_id)) =
        rp.webauthn.identify_discoverable_authentication(credential)
    else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    let Some(mut stored) = find_by_credential(conn, credential_id).await? else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    if stored.user_id != claimed_user {
        return Ok(Err(Refusal::UnknownCredential));
    }
    let Ok(result) =
        rp.webauthn
            .finish_discoverable_authentication_v2(credential, state, &stored.passkey)
    else {
        return Ok(Err(Refusal::NotVerified));
    };
    stored.passkey.update_credential(&result);
    record_use(conn, &stored).await?;
    Ok(Ok(Verified {
        user_id: stored.user_id,
        passkey_id: stored.id,
    }))
}

/// Starts a passkey as the second factor of `user`, whose password was just verified: options
/// that allow only that user's passkeys, and the ceremony id to finish with
/// ([`verify_second_factor`]). `None` when the user has no passkey.
pub async fn start_second_factor(
    conn: &mut Conn<'_>,
    rp: &RelyingParty,
    user: Uuid,
) -> Result<Option<(RequestChallengeResponse, String)>, sqlx::Error> {
    let passkeys = passkeys_of(conn, user).await?;
    if passkeys.is_empty() {
        return Ok(None);
    }
    let (options, state): (_, PasskeyAuthentication) = rp
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| sqlx::Error::Protocol(format!("passkey second factor: {e}")))?;
    let token = save_ceremony(conn, Kind::SecondFactor, Some(user), &state).await?;
    Ok(Some((options, token)))
}

/// Verifies a passkey assertion for a KNOWN user (the second factor after the password): the
/// ceremony must have been started for `user` by [`start_second_factor`], and the credential
/// must be one of `user`'s passkeys, verified with a counter that moved forward. Updates the
/// stored counter. On `Ok(Ok(_))` the caller completes the sign-in; the ceremony is used up
/// either way (run it in the transaction that starts the session, or in its own).
pub async fn verify_second_factor(
    conn: &mut Conn<'_>,
    rp: &RelyingParty,
    user: Uuid,
    ceremony: &str,
    credential: &PublicKeyCredential,
) -> Result<Result<Verified, Refusal>, sqlx::Error> {
    let Some(state) =
        take_ceremony::<PasskeyAuthentication>(conn, Kind::SecondFactor, Some(user), ceremony)
            .await?
    else {
        return Ok(Err(Refusal::NoCeremony));
    };
    let Some(mut stored) = find_by_credential(conn, credential.get_credential_id()).await? else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    if stored.user_id != user {
        return Ok(Err(Refusal::UnknownCredential));
    }
    let Ok(result) = rp
        .webauthn
        .finish_passkey_authentication(credential, &state)
    else {
        return Ok(Err(Refusal::NotVerified));
    };
    stored.passkey.update_credential(&result);
    record_use(conn, &stored).await?;
    Ok(Ok(Verified {
        user_id: user,
        passkey_id: stored.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_public_urls_host_and_never_an_ip_address() {
        for ok in [
            "https://portal.example.com",
            "https://example.com/some/path",
            "http://localhost:8080",
        ] {
            let url = Url::parse(ok).unwrap();
            let rp = RelyingParty::for_public_url(&url).expect(ok);
            assert_eq!(rp.id(), url.host_str().unwrap());
        }
        for bad in ["http://127.0.0.1:8080", "http://[::1]:8080"] {
            let why = RelyingParty::for_public_url(&Url::parse(bad).unwrap())
                .err()
                .expect(bad);
            assert!(why.contains("VANTUS_PUBLIC_URL"), "{why}");
        }
    }

    #[test]
    fn ceremony_kinds_are_the_migrations() {
        let sql = include_str!("../../../../../migrations/0009_passkeys.sql");
        for kind in [Kind::Registration, Kind::Authentication, Kind::SecondFactor] {
            assert!(sql.contains(&format!("'{}'", kind.as_str())), "{kind:?}");
        }
    }
}
