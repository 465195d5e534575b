#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d):
# one login role for the nodes and one database per node, each owned by that role. A node's
# six services share its database, each with its own tables and Alembic version table.
set -euo pipefail
: "${YIDI_DB_PASSWORD:?set YIDI_DB_PASSWORD for the yidi role}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=password="$YIDI_DB_PASSWORD" <<'SQL'
CREATE ROLE yidi LOGIN PASSWORD :'password';
CREATE DATABASE yidi_national OWNER yidi;
CREATE DATABASE yidi_beijing OWNER yidi;
CREATE DATABASE yidi_hebei OWNER yidi;
CREATE DATABASE yidi_langfang OWNER yidi;
SQL
