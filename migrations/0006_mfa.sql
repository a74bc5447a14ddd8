-- Multi-factor authentication for staff: a TOTP authenticator per user, single-use recovery
-- codes, the short-lived challenge between the password and the second factor, and on each
-- session when a factor was last proved. Same common subset of SQL and rules as 0005 (one-column
-- primary keys, BIGINT for integers), so backups, restores and copies carry these tables too.

-- A user's authenticator. secret_sealed is XChaCha20-Poly1305 under VANTUS_MFA_KEY (base64 of
-- nonce || ciphertext, the user id as associated data): a leaked backup holds no usable secret.
-- confirmed_at is NULL while enrolment is pending (the secret was shown, no code proved it yet).
-- last_step is the last accepted RFC 6238 time step: a code of that step or an earlier one is
-- refused, so a code seen over a shoulder or replayed cannot be used again.
CREATE TABLE mfa_totp (
    user_id       UUID PRIMARY KEY REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    confirmed_at  TIMESTAMPTZ,
    last_step     BIGINT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Single-use recovery codes, stored as the SHA-256 (hex) of the normalised code. A code is
-- used once (used_at); regenerating deletes a user's old codes.
CREATE TABLE mfa_recovery_codes (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL UNIQUE,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX mfa_recovery_codes_user ON mfa_recovery_codes (user_id);

-- The step between a correct password and the second factor: the browser holds a random
-- token in a cookie, this table its SHA-256 (hex). Five minutes, a few attempts, used once.
CREATE TABLE login_challenges (
    id          TEXT PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    next_path   TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
);

CREATE INDEX login_challenges_user ON login_challenges (user_id);

-- When the session's user last proved a factor (sign-in, re-authentication, password change):
-- MFA changes need it recent (VANTUS_REAUTH_WINDOW). NULL for sessions from before this.
ALTER TABLE sessions ADD COLUMN authenticated_at TIMESTAMPTZ;
-- Set when the user's role requires MFA and they have none: the portal sends them to
-- enrolment and nowhere else (auth::staff).
ALTER TABLE sessions ADD COLUMN must_enrol_mfa BOOLEAN NOT NULL DEFAULT FALSE;
