-- Operations: every run of a job (scheduled or started by hand), and the audit log.

-- One row per run. (job, scheduled_for) is unique: when several replicas believe they should
-- run the same tick, exactly one insert succeeds, and only that replica runs the job.
CREATE TABLE job_runs (
    id            UUID PRIMARY KEY,
    job           TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    instance      TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       TEXT NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed')),
    detail        TEXT,
    UNIQUE (job, scheduled_for)
);

CREATE INDEX job_runs_recent ON job_runs (job, outcome, started_at);

-- Who did what, when. Operations commands write here now; the portal will too.
-- tenant_id is NULL for installation-wide events (a backup covers every tenant).
CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    tenant_id   UUID REFERENCES tenants (id),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    detail      TEXT NOT NULL,
    ip          TEXT,
    request_id  TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, created_at);
