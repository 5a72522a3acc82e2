"""A report over the trend tables, read the way an analyst would: HiveServer2 through PyHive."""

import base64
import io
import time
from decimal import Decimal

import dagster as dg
from pydantic import Field

from berka_assets.assets.catalog import OWNERS, table_value
from berka_assets.assets.streaming import TREND_TABLES, hive_key
from berka_assets.automation import report_condition
from berka_assets.resources.hive import HiveResource
from berka_core.config import get_settings, var_dir

# Dagster keeps metadata in its event log; keep an inline chart well under its column limits.
MAX_INLINE_PNG_BYTES = 48 * 1024


class TrendsReportConfig(dg.Config):
    """Empty for the latest trends; a Delta version or a timestamp of the trend cube for the
    trends as they were then (time travel; the versions are in `DESCRIBE HISTORY` and in each
    micro-batch's materialization metadata)."""

    as_of_version: int | None = Field(
        default=None, description="Version of the trend cube, as in DESCRIBE HISTORY.")
    as_of_timestamp: str | None = Field(
        default=None, description="A time such as '2026-12-01 18:00:00' (UTC).")


def fetch_trends(hive: HiveResource, database: str, *, version: int | None = None,
                 timestamp: str | None = None) -> dict[str, tuple[list[str], list[tuple]]]:
    from berka_core.spark_jobs.hive_tables import HiveTables

    tables = HiveTables(database)
    order = {
        "monthly_trend": "year, month",
        "yearly_trend": "year",
        "trans_by_age_gender": "age_band, gender",
    }
    return {
        table: hive.query(f"{tables.trend_sql(table, version=version, timestamp=timestamp)} "
                          f"ORDER BY {order[table]}")
        for table in TREND_TABLES
    }


def cube_version(hive: HiveResource, database: str, *, version: int | None = None,
                 timestamp: str | None = None) -> tuple[int, str]:
    """The trend cube's version (and its commit time) that the report shows."""
    from berka_core.spark_jobs.hive_tables import CUBE

    columns, history = hive.query(f"DESCRIBE HISTORY `{database}`.`{CUBE}`")
    rows = [dict(zip(columns, row, strict=True)) for row in history]  # newest first
    for row in rows:
        if version is not None and row["version"] > version:
            continue
        if timestamp is not None and str(row["timestamp"]) > timestamp.replace("T", " "):
            continue
        return int(row["version"]), str(row["timestamp"])
    raise ValueError(f"the trend cube has no version at {version or timestamp}")


def markdown_table(columns: list[str], rows: list[tuple], limit: int | None = None) -> str:
    shown = rows if limit is None else rows[:limit]

    def cell(column: str, value: object) -> str:
        if isinstance(value, Decimal | float):
            return f"{value:,.2f}"
        if isinstance(value, int) and column not in ("year", "month"):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    lines += [
        "| " + " | ".join(cell(c, v) for c, v in zip(columns, row, strict=True)) + " |"
        for row in shown
    ]
    if limit is not None and len(rows) > limit:
        lines.append(f"\n… {len(rows) - limit} more rows")
    return "\n".join(lines)


def trends_chart_png(trends: dict[str, tuple[list[str], list[tuple]]]) -> bytes:
    """Monthly volume over time, and amount by age band and gender, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, monthly = trends["monthly_trend"]
    _, by_age = trends["trans_by_age_gender"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), dpi=72)
    labels = [f"{year}-{month:02d}" for year, month, *_ in monthly]
    left.plot(range(len(monthly)), [float(row[3]) / 1e6 for row in monthly], color="#4F43DD")
    left.set_title("Transaction amount per month (million CZK)")
    step = max(1, len(labels) // 8)
    left.set_xticks(range(0, len(labels), step), labels[::step], rotation=30, fontsize=8)
    bands = sorted({row[0] for row in by_age}, key=lambda band: (band != "<20", band))
    width = 0.4
    for offset, gender, color in ((-width / 2, "F", "#E0656B"), (width / 2, "M", "#3B8BD0")):
        amounts = {row[0]: float(row[3]) / 1e6 for row in by_age if row[1] == gender}
        right.bar([i + offset for i in range(len(bands))], [amounts.get(b, 0) for b in bands],
                  width, label=gender, color=color)
    right.set_xticks(range(len(bands)), bands)
    right.set_title("Amount by age band and gender (million CZK)")
    right.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@dg.asset(
    key=dg.AssetKey(["reports", "trends_report"]),
    group_name="reports",
    kinds={"hive", "python"},
    deps=[hive_key(table) for table in TREND_TABLES],
    automation_condition=report_condition(),
    description="The three trend tables read through the Spark Thrift Server (PyHive), as "
    "tables and a chart.",
    owners=OWNERS,
)
def trends_report(context: dg.AssetExecutionContext, config: TrendsReportConfig,
                  hive: HiveResource) -> dg.MaterializeResult:
    database = get_settings().spark.hive_database
    as_of = {"version": config.as_of_version, "timestamp": config.as_of_timestamp}
    started = time.monotonic()
    # The version first, then the three trends as of it: one consistent state even while
    # batches commit between the queries.
    version, committed_at = cube_version(hive, database, **as_of)
    trends = fetch_trends(hive, database, version=version)
    query_seconds = time.monotonic() - started
    png = trends_chart_png(trends)
    reports = var_dir() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    chart_path = reports / f"trends_{context.run.run_id}.png"
    chart_path.write_bytes(png)
    chart_md = (
        f"![trends](data:image/png;base64,{base64.b64encode(png).decode()})"
        if len(png) <= MAX_INLINE_PNG_BYTES
        else f"Chart too large to inline; see {chart_path}"
    )
    yearly_columns, yearly_rows = trends["yearly_trend"]
    return dg.MaterializeResult(
        metadata={
            "chart": dg.MetadataValue.md(chart_md),
            "chart_path": dg.MetadataValue.path(str(chart_path)),
            "yearly_trend": table_value(yearly_columns, yearly_rows),
            "trans_by_age_gender": table_value(*trends["trans_by_age_gender"]),
            "monthly_trend": table_value(*trends["monthly_trend"]),
            "months": len(trends["monthly_trend"][1]),
            "hive_query_seconds": round(query_seconds, 2),
            "trend_cube_version": version,
            "trend_cube_committed_at": committed_at,
            "as_of": "latest" if as_of == {"version": None, "timestamp": None}
            else ", ".join(f"{k} {v}" for k, v in as_of.items() if v is not None),
        }
    )
