"""The MySQL server holding the reference tables, for Python clients and Spark's JDBC source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from berka_assets.config import MySQLSettings

MYSQL_JDBC_DRIVER = "com.mysql.cj.jdbc.Driver"


class MySQLResource(dg.ConfigurableResource):
    """Credentials come from EnvVar in definitions; nothing here is logged or shown in the UI."""

    host: str = Field(default_factory=lambda: MySQLSettings().host)
    port: int = Field(default_factory=lambda: MySQLSettings().port)
    database: str = Field(default_factory=lambda: MySQLSettings().database)
    user: str = Field(default_factory=lambda: MySQLSettings().user)
    password: str
    connect_timeout_s: int = 10

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
