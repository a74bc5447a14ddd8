-- The portal's audit viewer lists one tenant's entries newest first, a page at a time, by
-- their place in the chain (keyset pagination on seq): this index serves exactly that, for
-- the viewer and the streamed export alike.
CREATE INDEX audit_log_tenant_seq ON audit_log (tenant_id, seq);
