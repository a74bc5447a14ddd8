-- Staff accounts: people who sign in to the portal, and their role in each tenant.
-- Same common subset of SQL as 0001 and the rules of store::schema (one-column primary keys,
-- BIGINT for integers), so backups, restores and copies carry these tables too.

-- A person who may sign in. The address is stored lower-cased (one account per address);
-- password_hash is an argon2id PHC string, NULL for an invited user who has not chosen one.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT,
    disabled_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Which tenants a user works in, and as what. The role names are auth::permission::Role's.
CREATE TABLE memberships (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    tenant_id  UUID NOT NULL REFERENCES tenants (id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'sales', 'viewer')),
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, tenant_id)
);

CREATE INDEX memberships_tenant ON memberships (tenant_id);

-- A signed-in browser. The cookie holds a 256-bit random token; only its SHA-256 (hex) is kept
-- here, so a leaked backup or replica holds no usable session. A session ends when it has been
-- idle too long (last_seen_at), at expires_at whatever happens, or when revoked.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id),
    tenant_id    UUID NOT NULL REFERENCES tenants (id),
    csrf_token   TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX sessions_user ON sessions (user_id);
