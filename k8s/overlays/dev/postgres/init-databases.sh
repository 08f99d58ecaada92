#!/bin/sh
# Runs once, when the data volume is empty (the postgres image's /docker-entrypoint-initdb.d).
# One server, three databases (one per service), owned by the non-superuser `longship` that the
# services log in as. `longship_app` (DATABASE_APP_ROLE) owns nothing and cannot log in: the services
# SET ROLE to it per transaction so row-level security applies; migrations GRANT it table rights.
# `longship_worker` (DATABASE_WORKER_ROLE) is the role of background work: a member of longship_app,
# crossing tenants only on the platform's queue tables (docs/security.md).
# Roles are per server, so they are created here, not by any one service's migrations.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$LONGSHIP_DB_PASSWORD" <<'SQL'
CREATE ROLE longship LOGIN PASSWORD :'owner_password';
CREATE ROLE longship_app NOLOGIN;
GRANT longship_app TO longship;
CREATE ROLE longship_worker NOLOGIN;
GRANT longship_app TO longship_worker;
GRANT longship_worker TO longship;
CREATE DATABASE orders OWNER longship;
CREATE DATABASE inventory OWNER longship;
CREATE DATABASE payments OWNER longship;
-- new-service:dev-databases -- `just new-service NAME` adds its database above this line
SQL
