-- Lead capture: the hosts that pick a tenant, the leads themselves, the saved responses that
-- make a submission idempotent, and the transactional outbox that notifies people about them.
-- Same common subset of SQL as 0001 (UUIDs as blobs on SQLite, timestamps as fixed-width text),
-- and the rules of store::schema (one-column primary keys, BIGINT for integers) so backups,
-- restores and copies carry these tables too.

-- The public site picks its tenant by the request's host (lower-case, without a port); a host
-- that is not listed gets the configured site tenant.
CREATE TABLE tenant_hosts (
    host       TEXT PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX tenant_hosts_tenant ON tenant_hosts (tenant_id);

-- One row per submission that passed the form's rules. A submission the spam defence caught
-- is stored too, with its reason in spam_reason, so staff can rescue a false positive; a lead
-- is a row whose spam_reason is NULL.
CREATE TABLE leads (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    stage       TEXT NOT NULL CHECK (stage IN ('new', 'contacted', 'qualified', 'won', 'lost')),
    spam_reason TEXT,
    source      TEXT NOT NULL CHECK (source IN ('form', 'api')),
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    company     TEXT,
    role        TEXT,
    budget      TEXT NOT NULL,
    website     TEXT,
    message     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX leads_tenant_time ON leads (tenant_id, created_at);
-- Erasure and subject-access requests look a person up by address.
CREATE INDEX leads_tenant_email ON leads (tenant_id, email);

-- The first response to a submission, kept under its idempotency key: a double click, a
-- browser resubmit or an API retry with the same key gets this response again and stores
-- nothing. request_hash tells a retry from a different request that reuses a key.
CREATE TABLE idempotency_keys (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id),
    idempotency_key TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT NOT NULL,
    location      TEXT,
    body          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);

CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Messages to deliver (emails, webhook calls), written in the transaction of the change that
-- causes them, and delivered by a worker afterwards: a dead mail server never loses a lead.
-- A worker leases a row (locked_by, locked_until) before delivering it, so several replicas
-- never deliver the same row at once; a lease that expires (a worker died) frees the row.
-- message_id is stable across retries (the email's Message-ID, the webhook-id).
CREATE TABLE outbox (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id),
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    topic           TEXT NOT NULL,
    destination     TEXT NOT NULL,
    lead_id         UUID REFERENCES leads (id) ON DELETE CASCADE,
    payload         TEXT NOT NULL,
    message_id      TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    locked_by       TEXT,
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_lead ON outbox (lead_id);
