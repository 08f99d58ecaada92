-- The role the services' connections switch to (`SET ROLE`, libs/runtime): it owns no table, so
-- row-level security applies to everything a service runs. Roles are cluster-wide: every service
-- database's migrations create it if missing.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'longship_app') THEN
    CREATE ROLE longship_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently by another database's migration
END $$;

GRANT USAGE ON SCHEMA public TO longship_app;
