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
