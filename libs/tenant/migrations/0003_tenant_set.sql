-- A set of tenants one transaction may work on: the batch paths (set-based saga steps, consumers
-- handling many events at once) serve the commands of several tenants in one transaction with
-- set-based statements keyed by (tenant, ...). They set the transaction-local `app.tenant_ids` (a
-- text array literal, e.g. `{acme,globex}`; `longship_tenant::begin_set`) instead of
-- `app.tenant_id`, and each tenant table admits the rows of those tenants through a second
-- permissive policy `tenant_set` (in the migration that creates the table, or one after it):
--   USING (tenant_id = ANY (app_tenant_set())) WITH CHECK (tenant_id = ANY (app_tenant_set()))
-- Unset (NULL) or reset (''): the set is empty, so the policy admits nothing. docs/security.md
-- says what this admits and what keeps each item of a batch to its own tenant.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE OR REPLACE FUNCTION app_tenant_set() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_ids', true), '')::text[] $$;
