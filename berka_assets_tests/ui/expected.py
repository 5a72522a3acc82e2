"""What the code location must show in the UI: asset keys, groups and dependency edges.

Written out by hand (not read from the definitions) so that a change of the graph shows up here.
"""

from __future__ import annotations

REFERENCE = ("district", "account", "client", "disp", "loan", "card", "order")
TRENDS = ("monthly_trend", "yearly_trend", "trans_by_age_gender")

# asset key (as "a/b") -> (group, upstream keys)
ASSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mysql/district": ("reference", ()),
    "mysql/account": ("reference", ("mysql/district",)),
    "mysql/client": ("reference", ("mysql/district",)),
    "mysql/disp": ("reference", ("mysql/account", "mysql/client")),
    "mysql/loan": ("reference", ("mysql/account",)),
    "mysql/card": ("reference", ("mysql/disp",)),
    "mysql/order": ("reference", ("mysql/account",)),
    "kafka/trans": ("streaming", ()),
    "hive/enriched_transactions": (
        "streaming",
        ("kafka/trans", "mysql/account", "mysql/client", "mysql/disp", "mysql/district"),
    ),
    "hive/quarantine": ("streaming", ("kafka/trans",)),
    "spark_streaming/berka_stream": ("streaming", ()),
    **{f"hive/{table}": ("trends", ("hive/enriched_transactions",)) for table in TRENDS},
    "reports/trends_report": ("reports", tuple(f"hive/{table}" for table in TRENDS)),
}

GROUPS = ("reference", "streaming", "trends", "reports")

EDGES: set[tuple[str, str]] = {
    (upstream, key) for key, (_, upstreams) in ASSETS.items() for upstream in upstreams
}

KAFKA_SENSOR = "kafka_trans_sensor"


def short(key: str) -> str:
    """The name the asset graph shows for a key: its last part."""
    return key.rsplit("/", 1)[-1]
