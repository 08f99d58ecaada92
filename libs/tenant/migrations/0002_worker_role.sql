-- The role the services' background work switches to (`SET ROLE`, libs/runtime's worker pool):
-- saga claims and transitions, outbox relays, consumers, sweeps, operator tools. It owns no table
-- and is not BYPASSRLS. It holds every privilege of `longship_app` (member, INHERIT), so every
-- table a service grants to the application role is open to it under the same tenant policies:
-- on a service's own tables background work sets `app.tenant_id` like a request does. Only the
-- platform's queue tables (saga, saga_history, outbox, inbox and the tables that follow their
-- rule) give it an explicit cross-tenant policy, in the migrations that create them.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'longship_worker') THEN
    CREATE ROLE longship_worker NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently by another database's migration
END $$;

DO $$ BEGIN
  IF NOT pg_has_role('longship_worker', 'longship_app', 'USAGE') THEN
    GRANT longship_app TO longship_worker;
  END IF;
EXCEPTION WHEN unique_violation THEN NULL; -- granted concurrently by another database's migration
END $$;
