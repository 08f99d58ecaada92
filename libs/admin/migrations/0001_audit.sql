-- The audit log of the admin API: one row per state-changing admin call (retry, cancel, redrive,
-- discard), written in the transaction of the action it records, so an action and its record
-- commit together or not at all. Append-only for the services: the application role may insert
-- and read, never change or delete a record.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE admin_audit (
    id         uuid PRIMARY KEY,          -- UUID v7: time-ordered, the paging key (newest first)
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,             -- the caller's JWT `sub`
    tenant_id  text,                      -- the tenant of the object acted on (null: none known)
    action     text NOT NULL,             -- e.g. saga.retry, dead_letter.discard
    target     text NOT NULL,             -- the object's id
    reason     text
);
CREATE INDEX admin_audit_tenant ON admin_audit (tenant_id, id);

GRANT SELECT, INSERT ON admin_audit TO longship_app;

-- The rule of the platform's tables: the application role sees its tenant's records only; the
-- worker role (the admin API, which acts across tenants) reads and appends every tenant's.
ALTER TABLE admin_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON admin_audit
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY background_work ON admin_audit TO longship_worker
    USING (true) WITH CHECK (true);
