-- Content management: revisions, drafts of published items, SEO fields, scheduled publish and
-- unpublish, and redirects from old slugs.
--
-- `content_items` keeps what the public site shows (status, slug, title, body as published);
-- an editor's work lives in `content_revisions` until it is published, so saving a draft of a
-- published item never changes its public page.

-- SEO fields, as published. Empty means "not set" (the page falls back to its summary and its
-- own address).
ALTER TABLE content_items ADD COLUMN seo_description TEXT NOT NULL DEFAULT '';
ALTER TABLE content_items ADD COLUMN seo_image TEXT NOT NULL DEFAULT '';
ALTER TABLE content_items ADD COLUMN seo_canonical TEXT NOT NULL DEFAULT '';
-- The revision waiting to be published (NULL: nothing pending), and the one the site shows
-- (NULL for items seeded from files and never edited).
ALTER TABLE content_items ADD COLUMN draft_revision_id UUID;
ALTER TABLE content_items ADD COLUMN published_revision_id UUID;

-- Every save of an item: the whole editable state, who saved it and when. Never updated.
CREATE TABLE content_revisions (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id),
    item_id         UUID NOT NULL REFERENCES content_items (id),
    -- 1, 2, 3… per item, for people ("revision 4").
    number          BIGINT NOT NULL,
    slug            TEXT NOT NULL,
    title           TEXT NOT NULL,
    summary         TEXT NOT NULL,
    body_markdown   TEXT NOT NULL,
    meta            TEXT NOT NULL,
    seo_description TEXT NOT NULL,
    seo_image       TEXT NOT NULL,
    seo_canonical   TEXT NOT NULL,
    -- What made it: "saved", "restored from revision 3", "created".
    note            TEXT NOT NULL,
    author_id       UUID REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (item_id, number)
);

-- A publish or unpublish to run at `run_at`, as the user who asked for it. `done_at` is set
-- once, by whichever scheduler run claims it first; `outcome` says what happened.
CREATE TABLE content_schedules (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id),
    item_id      UUID NOT NULL REFERENCES content_items (id),
    action       TEXT NOT NULL CHECK (action IN ('publish', 'unpublish')),
    run_at       TIMESTAMPTZ NOT NULL,
    scheduled_by UUID NOT NULL REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    done_at      TIMESTAMPTZ,
    outcome      TEXT
);

CREATE INDEX content_schedules_due ON content_schedules (tenant_id, done_at, run_at);

-- An old address of an item (its slug before a change): the public site answers it with a
-- 301 to the item's current address.
CREATE TABLE content_redirects (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id),
    kind       TEXT NOT NULL,
    old_slug   TEXT NOT NULL,
    item_id    UUID NOT NULL REFERENCES content_items (id),
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, kind, old_slug)
);
