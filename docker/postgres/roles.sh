#!/bin/sh
# docker-compose only: the roles production has, created on the container's first start
# (the postgres image runs /docker-entrypoint-initdb.d/* once, on an empty data directory).
#
#   yomu_owner  owns the database and its schema: the migrator runs DDL as this role
#   yomu_app    the API's role: no CREATE, no TEMP; `migrator upgrade` grants it exactly what
#               the API needs (MIGRATOR_APP_ROLE=yomu_app), as the Helm hook does in Kubernetes
#
# Roles only, never a table: the schema comes from the migrations (init.sql is deprecated).
# Run by hand elsewhere with PGHOST/PGPORT/PGUSER/PGPASSWORD set; the passwords come from
# YOMU_OWNER_PASSWORD and YOMU_APP_PASSWORD.
set -eu
psql -v ON_ERROR_STOP=1 --dbname "${POSTGRES_DB:-yomu}" \
  -v db="${POSTGRES_DB:-yomu}" \
  -v owner_password="${YOMU_OWNER_PASSWORD:?set YOMU_OWNER_PASSWORD}" \
  -v app_password="${YOMU_APP_PASSWORD:?set YOMU_APP_PASSWORD}" <<'SQL'
CREATE ROLE yomu_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE yomu_app LOGIN PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO yomu_owner;
ALTER SCHEMA public OWNER TO yomu_owner;
-- Nobody but the owner creates anything in this database, not even temporary tables.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE TEMP ON DATABASE :"db" FROM PUBLIC;
SQL
