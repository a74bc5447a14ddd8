-- Foundation schema: tenants, their site content, and the content generation counter.
--
-- One file serves SQLite and PostgreSQL, so it stays inside the common subset:
-- * UUID columns hold 16-byte BLOBs on SQLite (NUMERIC affinity keeps blobs as they are);
-- * TIMESTAMPTZ columns hold fixed-width UTC text on SQLite (see store::Timestamp), so
--   text order is time order;
-- * no database-side defaults for ids or times: the application sets them, identically on
--   both engines;
-- * JSON is stored as TEXT and parsed by the application.

CREATE TABLE tenants (
    id            UUID PRIMARY KEY,
    slug          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    contact_email TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Case studies, insight articles and the site's pages. Bodies are Markdown; HTML is produced
-- (and sanitized) at render time so a stricter sanitizer applies to old content too.
CREATE TABLE content_items (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id),
    kind          TEXT NOT NULL CHECK (kind IN ('case_study', 'insight', 'page')),
    slug          TEXT NOT NULL,
    title         TEXT NOT NULL,
    summary       TEXT NOT NULL,
    body_markdown TEXT NOT NULL,
    meta          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    published_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    deleted_at    TIMESTAMPTZ,
    UNIQUE (tenant_id, kind, slug)
);

CREATE INDEX content_items_listing
    ON content_items (tenant_id, kind, status, published_at);

-- Bumped by every content change. Page caches compare it to decide freshness, and a read
-- replica whose copy is older than the generation a process has seen is not used for pages.
CREATE TABLE site_state (
    tenant_id          UUID PRIMARY KEY REFERENCES tenants (id),
    content_generation BIGINT NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
