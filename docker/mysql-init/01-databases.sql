-- Run once by the mysql image on an empty data volume (/docker-entrypoint-initdb.d).
-- The same databases as the local stack (berka_stack/mariadb.py) under their default names;
-- 02-users.sh creates them again under BERKA_MYSQL_DATABASE / BERKA_METASTORE_DATABASE if those
-- are set to other names. No credentials here: users and passwords are made from the environment.
CREATE DATABASE IF NOT EXISTS `berka` CHARACTER SET utf8mb4;
-- latin1_bin keeps the metastore's long index keys under InnoDB's limit.
CREATE DATABASE IF NOT EXISTS `metastore` CHARACTER SET latin1 COLLATE latin1_bin;
-- Dagster's instance storage (runs, event log, schedules), see docker/dagster.yaml.
CREATE DATABASE IF NOT EXISTS `dagster` CHARACTER SET utf8mb4;
