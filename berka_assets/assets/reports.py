"""A report over the trend tables, read the way an analyst would: HiveServer2 through PyHive."""

import base64
import io
import time
from decimal import Decimal

import dagster as dg

from berka_assets.assets.streaming import TREND_TABLES, hive_key
from berka_assets.config import SparkSettings, var_dir
from berka_assets.resources.hive import HiveResource

# Dagster keeps metadata in its event log; keep an inline chart well under its column limits.
MAX_INLINE_PNG_BYTES = 48 * 1024


def fetch_trends(hive: HiveResource, database: str) -> dict[str, tuple[list[str], list[tuple]]]:
    order = {
        "monthly_trend": "year, month",
        "yearly_trend": "year",
        "trans_by_age_gender": "age_band, gender",
    }
    return {
        table: hive.query(f"SELECT * FROM `{database}`.`{table}` ORDER BY {order[table]}")
        for table in TREND_TABLES
    }


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
    description="The three trend tables read through the Spark Thrift Server (PyHive), as "
    "markdown tables and a chart.",
)
def trends_report(context: dg.AssetExecutionContext, hive: HiveResource) -> dg.MaterializeResult:
    database = SparkSettings().hive_database
    started = time.monotonic()
    trends = fetch_trends(hive, database)
    query_seconds = time.monotonic() - started
    png = trends_chart_png(trends)
    reports = var_dir() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    chart_path = reports / f"trends_{context.run_id}.png"
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
            "yearly_trend": dg.MetadataValue.md(markdown_table(yearly_columns, yearly_rows)),
            "trans_by_age_gender": dg.MetadataValue.md(
                markdown_table(*trends["trans_by_age_gender"])
            ),
            "monthly_trend": dg.MetadataValue.md(markdown_table(*trends["monthly_trend"], 24)),
            "months": len(trends["monthly_trend"][1]),
            "hive_query_seconds": round(query_seconds, 2),
        }
    )
