"""HiveServer2 (the Spark Thrift Server) through PyHive, for reading the Hive tables."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from berka_core.config import get_settings


class HiveResource(dg.ConfigurableResource):
    host: str = Field(default_factory=lambda: get_settings().hive.host)
    port: int = Field(default_factory=lambda: get_settings().hive.port)
    username: str = Field(default_factory=lambda: get_settings().hive.username)
    auth: str = Field(default_factory=lambda: get_settings().hive.auth)
    password: str | None = None
    database: str = "default"

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement; return column names and rows."""
        from pyhive import hive

        connection = hive.connect(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password if self.auth in ("LDAP", "CUSTOM") else None,
            auth=self.auth,
            database=self.database,
        )
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            columns = [column[0].split(".")[-1] for column in cursor.description or []]
            return columns, cursor.fetchall() if cursor.description else []
        finally:
            connection.close()
