-- The audit log becomes a hash chain (docs/adr/0011-tamper-evident-audit-log.md).
--
-- Every row gets its place in the chain (seq, 1, 2, 3, … without gaps), the hash of the row
-- before it (prev_hash; 64 zeros for seq 1) and its own hash (hash), both lowercase hex
-- SHA-256 computed by the application (crate::audit) over an engine-neutral encoding of the
-- row, so a copy or a restore on the other engine verifies the same way.
--
-- The columns are nullable, for two kinds of rows that have no place in the chain yet: the
-- rows written before this migration, and rows written by an older release still running
-- during a rolling upgrade (expand-then-contract, ADR 0001). Every start of a newer release
-- seals them into the chain (crate::audit::seal_unchained, in created_at order); until then
-- `vantus audit verify` reports them. The database computes nothing: SQLite has no SHA-256.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

-- Unique: two writers that read the same chain head cannot both append after it; one fails
-- instead of forking the chain. Also the order `vantus audit verify` reads the table in.
CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq);

-- The rows still to seal, found without scanning the table.
CREATE INDEX audit_log_unchained ON audit_log (created_at) WHERE seq IS NULL;

-- The sanctioned bypass of the append-only triggers: restore --force (which replaces every
-- table) and sealing insert one row here inside their own transaction and delete it before
-- committing, so no other transaction ever sees it. The triggers themselves are dialect
-- specific and installed by store::migrate after this migration (store/append_only.rs).
-- The leading underscore keeps it out of backups and copies: it is bookkeeping, not data.
CREATE TABLE _audit_maintenance (
    id          UUID PRIMARY KEY,
    reason      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL
);
