"""The MySQL server holding the reference tables, for Python clients and Spark's JDBC source.

`MySQLConnection` holds the behaviour and reads its settings from attributes, so the Dagster
resource (berka_assets/resources/mysql.py) and the plain `MySQLClient` of the spark-submit job
are the same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from berka_core.config import MySQLSettings, get_settings, secret

MYSQL_JDBC_DRIVER = "com.mysql.cj.jdbc.Driver"


class MySQLConnection:
    """Needs the attributes host, port, database, user, password and connect_timeout_s.
    Credentials are never logged, never put in a URL."""

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator:
        """A PyMySQL connection; committed on success, rolled back on error, always closed."""
        import pymysql

        try:
            connection = pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.database,
                connect_timeout=self.connect_timeout_s,
                autocommit=autocommit,
                local_infile=True,
                charset="utf8mb4",
            )
        except pymysql.err.OperationalError as error:
            raise ConnectionError(
                f"Cannot reach MySQL at {self.host}:{self.port} (database {self.database}) as "
                f"{self.user}: {error.args[-1]}. Is it running (`berka-stack status`)?"
            ) from error
        try:
            yield connection
            if not autocommit:
                connection.commit()
        except BaseException:
            if not autocommit:
                connection.rollback()
            raise
        finally:
            connection.close()

    def jdbc_url(self) -> str:
        """Without credentials: they go in `jdbc_properties`, never in a URL that gets logged."""
        return MySQLSettings(
            host=self.host, port=self.port, database=self.database, user=self.user
        ).jdbc_url()

    def jdbc_properties(self) -> dict[str, str]:
        return {"user": self.user, "password": self.password, "driver": MYSQL_JDBC_DRIVER}


@dataclass(frozen=True)
class MySQLClient(MySQLConnection):
    """The same connection without Dagster, from the environment (password included)."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    connect_timeout_s: int = 10

    @classmethod
    def from_settings(cls, settings: MySQLSettings | None = None) -> MySQLClient:
        settings = settings or get_settings().mysql
        return cls(host=settings.host, port=settings.port, database=settings.database,
                   user=settings.user, password=secret(settings.password_env))
