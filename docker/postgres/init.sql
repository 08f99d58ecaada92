-- Runs once, when the postgres container starts on an empty data volume
-- (docker-entrypoint-initdb.d). One database per service (ARCHITECTURE.md section 3).
-- Roles, tables and row-level security come from each service's migrations
-- (`<service> migrate`, the *-migrate jobs in compose.yaml), not from here.
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE payments;
