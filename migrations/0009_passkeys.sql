-- Passkeys (WebAuthn): the credentials staff sign in with, and the server-side state of each
-- ceremony (registration or sign-in) between its start and its finish.
-- Same common subset of SQL as 0005 and the rules of store::schema (one-column primary keys,
-- BIGINT for integers), so backups, restores and copies carry these tables too.

-- A user's passkey. credential_id is the authenticator's credential id (base64url), unique
-- across all accounts: a credential names one account. passkey is webauthn-rs's serialised
-- `Passkey` (public key, signature counter, backup state), rewritten after each use.
CREATE TABLE passkeys (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id),
    credential_id TEXT NOT NULL UNIQUE,
    passkey       TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ
);

CREATE INDEX passkeys_user ON passkeys (user_id);

-- A ceremony between its start and its finish, kept here (not in a cookie, not in the client)
-- so any replica can finish what another started. id is the SHA-256 (hex) of the random
-- ceremony id the client holds; user_id is NULL for a passwordless sign-in, where who signs in
-- is only known at the finish. A row is deleted when it is used, and swept once expired.
CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    user_id    UUID REFERENCES users (id),
    kind       TEXT NOT NULL CHECK (kind IN ('registration', 'authentication', 'second_factor')),
    state      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
