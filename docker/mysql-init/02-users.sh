# Sourced (not executed) by the mysql image's entrypoint on an empty data volume, after
# 01-databases.sql: `docker_process_sql` runs SQL as root over the local socket.
# One least-privilege user per database, each with its password from the environment (docker/.env
# through docker-compose.yml); nothing secret is written in this file.
# Keep the privileges in step with berka_stack/mariadb.py (the local stack).

_berka_quote() { # a value inside single quotes in SQL (backslashes are escapes there too)
	local value="${1//\\/\\\\}"
	printf '%s' "${value//\'/\'\'}"
}
_berka_ident() { # an identifier inside backquotes in SQL
	printf '%s' "${1//\`/\`\`}"
}
_berka_grant_db() { # a database name in GRANT ... ON, where _ and % are wildcards
	local name
	name="$(_berka_ident "$1")"
	name="${name//_/\\_}"
	printf '%s' "${name//%/\\%}"
}

: "${BERKA_MYSQL_PASSWORD:?BERKA_MYSQL_PASSWORD is not set}"
: "${BERKA_METASTORE_PASSWORD:?BERKA_METASTORE_PASSWORD is not set}"
: "${BERKA_DAGSTER_MYSQL_PASSWORD:?BERKA_DAGSTER_MYSQL_PASSWORD is not set}"

_berka_app_db="$(_berka_ident "${BERKA_MYSQL_DATABASE:-berka}")"
_berka_metastore_db="$(_berka_ident "${BERKA_METASTORE_DATABASE:-metastore}")"
_berka_app_grant_db="$(_berka_grant_db "${BERKA_MYSQL_DATABASE:-berka}")"
_berka_metastore_grant_db="$(_berka_grant_db "${BERKA_METASTORE_DATABASE:-metastore}")"
# The application may create, replace and swap its own tables, nothing else.
_berka_app_privileges='SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW'

docker_process_sql --database=mysql <<-EOSQL
	CREATE DATABASE IF NOT EXISTS \`${_berka_app_db}\` CHARACTER SET utf8mb4;
	CREATE DATABASE IF NOT EXISTS \`${_berka_metastore_db}\` CHARACTER SET latin1 COLLATE latin1_bin;

	CREATE USER IF NOT EXISTS '$(_berka_quote "${BERKA_MYSQL_USER:-berka_app}")'@'%' IDENTIFIED BY '$(_berka_quote "$BERKA_MYSQL_PASSWORD")';
	GRANT ${_berka_app_privileges} ON \`${_berka_app_grant_db}\`.* TO '$(_berka_quote "${BERKA_MYSQL_USER:-berka_app}")'@'%';

	CREATE USER IF NOT EXISTS '$(_berka_quote "${BERKA_METASTORE_USER:-hive}")'@'%' IDENTIFIED BY '$(_berka_quote "$BERKA_METASTORE_PASSWORD")';
	GRANT ALL PRIVILEGES ON \`${_berka_metastore_grant_db}\`.* TO '$(_berka_quote "${BERKA_METASTORE_USER:-hive}")'@'%';

	CREATE USER IF NOT EXISTS 'dagster'@'%' IDENTIFIED BY '$(_berka_quote "$BERKA_DAGSTER_MYSQL_PASSWORD")';
	GRANT ALL PRIVILEGES ON \`dagster\`.* TO 'dagster'@'%';
EOSQL

unset _berka_app_db _berka_metastore_db _berka_app_grant_db _berka_metastore_grant_db \
	_berka_app_privileges
unset -f _berka_quote _berka_ident _berka_grant_db
