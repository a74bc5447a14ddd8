-- Staff invitations and password resets: single-use links sent by email. Same common subset of
-- SQL and rules as 0005 (one-column primary keys, BIGINT), so backups, restores and copies carry
-- these tables too.
--
-- Like sessions, a link's token is 256 random bits that only the email holds; these tables keep
-- its SHA-256 (hex), so a leaked backup or replica opens no invitation and resets no password.

-- An invitation to join a tenant as a role. Pending while accepted_at and revoked_at are NULL
-- and expires_at is in the future. The address is stored lower-cased, like users.email.
CREATE TABLE invitations (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'sales', 'viewer')),
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  UUID REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    accepted_by UUID REFERENCES users (id),
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX invitations_tenant ON invitations (tenant_id);

-- A requested password reset. The primary key is the token's SHA-256; used_at is set when the
-- link sets a password, or when another reset of the same account makes this one void.
CREATE TABLE password_resets (
    id         TEXT PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX password_resets_user ON password_resets (user_id);
