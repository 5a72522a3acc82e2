"""MariaDB from Debian's packages as the pipeline's MySQL server.

Its own datadir, socket and port under var/, so it never fights a system server. Holds database
`berka` (reference tables), `metastore` (the Hive metastore shared by every Spark process) and
`dagster` (optional Dagster instance storage), each with a user that has rights on its own
database only. Administration goes through the unix socket as the OS user, so no admin password
exists at all.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

from berka_core.config import MySQLSettings, get_settings, var_dir
from berka_stack import prereqs, process
from berka_stack.service import Service

HIVE_TXN_SCHEMA = Path(__file__).with_name("hive_txn_schema.sql")

# The application may create, replace and swap its own tables, nothing else.
APP_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW"
)


class MariaDB(Service):
    name = "mariadb"
    start_timeout = 60.0

    def __init__(self, settings: MySQLSettings | None = None) -> None:
        self.settings = settings or get_settings().mysql
        self.home = var_dir() / "mariadb"
        self.datadir = self.home / "data"
        self.socket = self.home / "mysqld.sock"
        self.config = self.home / "my.cnf"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        run_as_root = os.geteuid() == 0
        self.config.write_text(
            "\n".join(
                [
                    "[mariadbd]",
                    f"datadir={self.datadir}",
                    f"socket={self.socket}",
                    f"port={self.settings.port}",
                    f"bind-address={self.settings.host}",
                    f"pid-file={self.home / 'mariadbd.pid'}",
                    # The datadir sits inside the checkout, whose parents the `mysql` user may
                    # not be allowed to enter; as root we therefore keep root.
                    "user=root" if run_as_root else "",
                    "skip-name-resolve",
                    "skip-log-bin",
                    "innodb_buffer_pool_size=256M",
                    "innodb_log_file_size=64M",
                    "max_connections=200",
                    # The default (a day) turns a forgotten metadata lock into a silent hang.
                    "lock_wait_timeout=60",
                    "innodb_lock_wait_timeout=30",
                    "max_allowed_packet=64M",
                    "character-set-server=utf8mb4",
                    "collation-server=utf8mb4_general_ci",
                    "default-time-zone='+00:00'",
                    f"log-error={process.log_file(self.name)}",
                    "",
                ]
            )
        )

    def _initialise_datadir(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True)
        command = [
            "mariadb-install-db",
            f"--defaults-file={self.config}",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]
        process.run_setup_command("mariadb-install-db", command)

    def _launch(self) -> int:
        prereqs.ensure_mariadb_installed()
        self._write_config()
        self._initialise_datadir()
        return process.start_daemon(
            self.name, ["mariadbd", f"--defaults-file={self.config}"]
        )

    def is_healthy(self) -> bool:
        result = subprocess.run(
            ["mariadb-admin", f"--socket={self.socket}", f"--user={self.admin_user()}",
             "--connect-timeout=2", "ping"],
            capture_output=True, text=True, check=False,
        )
        return result.returncode == 0 and "alive" in result.stdout

    def version(self) -> str:
        return "MariaDB " + self.admin_sql("SELECT VERSION()").strip()

    @staticmethod
    def admin_user() -> str:
        # mariadb-install-db gives root (and the installing OS user) socket authentication.
        return "root" if os.geteuid() == 0 else getpass.getuser()

    def admin_sql(self, sql: str, database: str | None = None) -> str:
        """Run SQL as the admin over the unix socket; the statement never reaches a log."""
        command = ["mariadb", f"--socket={self.socket}", f"--user={self.admin_user()}",
                   "--batch", "--skip-column-names"]
        if database:
            command.append(database)
        result = subprocess.run(command, input=sql, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise process.StackError(f"MariaDB admin statement failed: {result.stderr.strip()}")
        return result.stdout

    def after_start(self) -> None:
        """Databases and least-privilege users, idempotently (passwords follow secrets.env)."""
        passwords = prereqs.ensure_secrets()
        s = self.settings
        statements = [
            f"CREATE DATABASE IF NOT EXISTS `{s.database}` CHARACTER SET utf8mb4",
            # latin1_bin keeps the metastore's long index keys under InnoDB's limit.
            f"CREATE DATABASE IF NOT EXISTS `{s.metastore_database}` "
            "CHARACTER SET latin1 COLLATE latin1_bin",
            "CREATE DATABASE IF NOT EXISTS `dagster` CHARACTER SET utf8mb4",
        ]
        grants = [
            (s.user, passwords["BERKA_MYSQL_PASSWORD"], s.database, APP_PRIVILEGES),
            (s.metastore_user, passwords["BERKA_METASTORE_PASSWORD"], s.metastore_database,
             "ALL PRIVILEGES"),
            ("dagster", passwords["BERKA_DAGSTER_MYSQL_PASSWORD"], "dagster", "ALL PRIVILEGES"),
        ]
        # The test suite loads synthetic reference data into throw-away databases next to
        # `berka`; only names matching this pattern, only for the application user.
        test_databases = f"{s.database}\\_test\\_%"
        for user, password, database, privileges in grants:
            for host in ("127.0.0.1", "localhost"):
                account = f"'{user}'@'{host}'"
                quoted = password.replace("'", "''")
                statements += [
                    f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{quoted}'",
                    f"ALTER USER {account} IDENTIFIED BY '{quoted}'",
                    f"GRANT {privileges} ON `{database}`.* TO {account}",
                ]
                if user == s.user:
                    statements.append(
                        f"GRANT {APP_PRIVILEGES} ON `{test_databases}`.* TO {account}"
                    )
        self.admin_sql(";\n".join(statements) + ";\n")
        self.admin_sql(HIVE_TXN_SCHEMA.read_text(), database=s.metastore_database)

    def wipe(self) -> None:
        """Remove all data (used by `berka-stack down --wipe`)."""
        if self.pid() is not None:
            raise process.StackError("Stop MariaDB before wiping its data.")
        if self.home.exists():
            shutil.rmtree(self.home)


