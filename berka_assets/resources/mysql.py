"""The MySQL server as a Dagster resource; the code is berka_core/clients/mysql.py."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from berka_core.clients.mysql import MySQLConnection
from berka_core.config import get_settings


class MySQLResource(MySQLConnection, dg.ConfigurableResource):
    """Credentials come from EnvVar in definitions; nothing here is logged or shown in the UI."""

    host: str = Field(default_factory=lambda: get_settings().mysql.host)
    port: int = Field(default_factory=lambda: get_settings().mysql.port)
    database: str = Field(default_factory=lambda: get_settings().mysql.database)
    user: str = Field(default_factory=lambda: get_settings().mysql.user)
    password: str
    connect_timeout_s: int = 10
