-- The leads CRM: the pipeline gains "proposal" and a lost reason, a lead can be assigned to a
-- member of its tenant, and everything staff do to a lead (notes, stage changes, assignment,
-- spam decisions) is kept in lead_activity for its timeline.
--
-- SQLite cannot change a CHECK constraint in place, so `leads` is rebuilt: a new table is
-- filled and renamed over the old one. `outbox.lead_id` references `leads`, and dropping a
-- parent table under `PRAGMA foreign_keys = ON` runs its ON DELETE CASCADE (the pragma cannot
-- be turned off inside the migration's transaction), so `outbox` is rebuilt too, first
-- pointing at the new table: when `leads_next` is renamed to `leads`, SQLite rewrites that
-- reference (and PostgreSQL follows the table, not its name). Nothing else references either
-- table. The same statements run on both engines.
--
-- The full-text index is not here: an FTS5 table and a GIN expression index have no common
-- DDL; `store::search` installs it after every migration run (like the audit log's guards).

CREATE TABLE leads_next (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    stage       TEXT NOT NULL
                CHECK (stage IN ('new', 'contacted', 'qualified', 'proposal', 'won', 'lost')),
    spam_reason TEXT,
    source      TEXT NOT NULL CHECK (source IN ('form', 'api')),
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    company     TEXT,
    role        TEXT,
    budget      TEXT NOT NULL,
    website     TEXT,
    message     TEXT NOT NULL,
    -- The member of the tenant who follows the lead up; NULL: nobody yet.
    assignee_id UUID REFERENCES users (id),
    -- Why a lost lead was lost; required by the application when stage is 'lost'.
    lost_reason TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

INSERT INTO leads_next (id, tenant_id, stage, spam_reason, source, name, email, company, role,
                        budget, website, message, assignee_id, lost_reason, created_at,
                        updated_at)
SELECT id, tenant_id, stage, spam_reason, source, name, email, company, role, budget, website,
       message, NULL, NULL, created_at, updated_at
FROM leads;

CREATE TABLE outbox_next (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id),
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    topic           TEXT NOT NULL,
    destination     TEXT NOT NULL,
    lead_id         UUID REFERENCES leads_next (id) ON DELETE CASCADE,
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

INSERT INTO outbox_next (id, tenant_id, channel, topic, destination, lead_id, payload,
                         message_id, status, attempts, next_attempt_at, locked_by, locked_until,
                         last_error, created_at, updated_at, sent_at)
SELECT id, tenant_id, channel, topic, destination, lead_id, payload, message_id, status,
       attempts, next_attempt_at, locked_by, locked_until, last_error, created_at, updated_at,
       sent_at
FROM outbox;

DROP TABLE outbox;
DROP TABLE leads;
ALTER TABLE leads_next RENAME TO leads;
ALTER TABLE outbox_next RENAME TO outbox;

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_lead ON outbox (lead_id);

-- The CRM lists newest first with keyset pages on (created_at, id): each list has an index in
-- that order. Leads and spam are separate partial indexes (the queries spell the same
-- condition), so the spam inbox does not scan past every lead to find a page of spam.
CREATE INDEX leads_inbox_time ON leads (tenant_id, created_at, id) WHERE spam_reason IS NULL;
CREATE INDEX leads_spam_time ON leads (tenant_id, created_at, id) WHERE spam_reason IS NOT NULL;
CREATE INDEX leads_stage_time ON leads (tenant_id, stage, created_at, id)
    WHERE spam_reason IS NULL;
CREATE INDEX leads_assignee_time ON leads (tenant_id, assignee_id, created_at, id)
    WHERE spam_reason IS NULL;
-- Erasure and subject-access requests look a person up by address.
CREATE INDEX leads_tenant_email ON leads (tenant_id, email);

-- What happened to a lead at staff's hands, for its timeline. kind says what; body holds the
-- note's text, the new stage (and lost reason), or the assignee's id. actor_id is the account
-- that acted (no foreign key: the timeline outlives an account, as the audit log does).
CREATE TABLE lead_activity (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id),
    lead_id    UUID NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    actor_id   UUID,
    kind       TEXT NOT NULL
               CHECK (kind IN ('note', 'stage', 'assigned', 'unassigned', 'spam', 'not_spam')),
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX lead_activity_lead ON lead_activity (lead_id, created_at);
