"""What the code location must show in the UI: asset keys, groups and dependency edges.

Written out by hand (not read from the definitions) so that a change of the graph shows up here.
"""

from __future__ import annotations

REFERENCE = ("district", "account", "client", "disp", "loan", "card", "order")
TRENDS = ("monthly_trend", "yearly_trend", "trans_by_age_gender")

# asset key (as "a/b") -> (group, upstream keys)
SOURCE = "berka/source_files"
ENRICHMENT = ("kafka/trans", "mysql/account", "mysql/client", "mysql/disp", "mysql/district")

ASSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    SOURCE: ("source", ()),
    "mysql/district": ("reference", (SOURCE,)),
    "mysql/account": ("reference", (SOURCE, "mysql/district")),
    "mysql/client": ("reference", (SOURCE, "mysql/district")),
    "mysql/disp": ("reference", (SOURCE, "mysql/account", "mysql/client")),
    "mysql/loan": ("reference", (SOURCE, "mysql/account")),
    "mysql/card": ("reference", (SOURCE, "mysql/disp")),
    "mysql/order": ("reference", (SOURCE, "mysql/account")),
    "kafka/trans": ("streaming", (SOURCE,)),
    "hive/enriched_transactions": ("streaming", ENRICHMENT),
    "hive/quarantine": ("streaming", ("kafka/trans",)),
    "spark_streaming/berka_stream": ("streaming", ENRICHMENT),
    **{f"hive/{table}": ("trends", ("hive/enriched_transactions",)) for table in TRENDS},
    "reports/trends_report": ("reports", tuple(f"hive/{table}" for table in TRENDS)),
    "files/synthetic_berka": ("synthetic", ()),
}

GROUPS = ("source", "reference", "streaming", "trends", "reports", "synthetic")

EDGES: set[tuple[str, str]] = {
    (upstream, key) for key, (_, upstreams) in ASSETS.items() for upstream in upstreams
}

KAFKA_SENSOR = "kafka_trans_sensor"


def short(key: str) -> str:
    """The name the asset graph shows for a key: its last part."""
    return key.rsplit("/", 1)[-1]


# (asset key, check name): every asset check the UI must list, and no other.
CHECKS: set[tuple[str, str]] = {
    *((f"mysql/{table}", check) for table in REFERENCE
      for check in ("row_count_matches_source", "foreign_keys_resolve", "no_null_keys")),
    ("hive/enriched_transactions", "offsets_add_up"),
    ("hive/enriched_transactions", "no_duplicate_trans_id"),
    ("hive/monthly_trend", "trends_fresh"),
    *((f"hive/{table}", "totals_match_enriched") for table in TRENDS),
}
