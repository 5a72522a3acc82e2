"""Parse, validate, enrich and aggregate transactions: plain DataFrame -> DataFrame functions.

Shared by the Dagster micro-batch path and the Structured Streaming job in spark_streaming/, so
both compute the same thing. No I/O here: sessions, reads and writes stay at the edges. Every
function works on classic and Spark Connect DataFrames alike.

Each record ends up either enriched or quarantined with a reason; nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from berka_core.messages import trans_message
from berka_core.spark_jobs.jvm_functions import PARSE_TRANS_MESSAGE

MONEY = "decimal(15,2)"
# Sums of up to billions of rows still fit; never a float anywhere on the money path.
MONEY_SUM = "decimal(25,2)"
TRANSACTION_TYPES = ("PRIJEM", "VYDAJ", "VYBER")
MAX_PAYLOAD_BYTES = 64 * 1024
AGE_BANDS = ("<20", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")

# Quarantine reasons, stable strings that people and checks can filter on.
REASON_EMPTY = "empty payload"
REASON_TOO_LARGE = "payload larger than 64 KiB"
REASON_NOT_JSON = "not a JSON object with the transaction fields"
REASON_VERSION = "unsupported schema_version"
REASON_TRANS_ID = "trans_id missing or not a positive integer"
REASON_ACCOUNT_ID = "account_id missing or not a positive integer"
REASON_DATE = "date missing or not YYYY-MM-DD"
REASON_TYPE = "type not one of PRIJEM, VYDAJ, VYBER"
REASON_AMOUNT = "amount missing or not a non-negative decimal with 2 places"
REASON_UNKNOWN_ACCOUNT = "unknown account_id"
REASON_NO_OWNER = "account has no OWNER client"
REASON_DUPLICATE_IN_BATCH = "duplicate trans_id within the batch"
REASON_DUPLICATE_COMMITTED = "duplicate trans_id already committed"

KAFKA_COLUMNS = ("kafka_partition", "kafka_offset", "raw_value")

# Output columns and their Hive types, defined once: the selects below and the table DDL in
# spark_jobs/hive_tables.py both derive from these.
ENRICHED_TYPES = {
    "trans_id": "BIGINT", "account_id": "BIGINT", "trans_date": "DATE", "year": "INT",
    "month": "INT", "type": "STRING", "operation": "STRING", "amount": MONEY.upper(),
    "balance": MONEY.upper(), "k_symbol": "STRING", "bank": "STRING", "account": "STRING",
    "district_id": "INT", "district_name": "STRING", "region": "STRING", "client_id": "BIGINT",
    "gender": "STRING", "birth_date": "DATE", "age": "INT", "age_band": "STRING",
    "kafka_partition": "INT", "kafka_offset": "BIGINT", "sent_at_ms": "BIGINT",
}  # fmt: skip
QUARANTINE_TYPES = {
    "kafka_partition": "INT", "kafka_offset": "BIGINT", "trans_id": "BIGINT", "reason": "STRING",
    "raw_value": "STRING",
}  # fmt: skip
STAGED_TYPES = {**ENRICHED_TYPES, "reason": "STRING", "raw_value": "STRING"}
DUPLICATE_TYPES = {"kafka_partition": "INT", "kafka_offset": "BIGINT", "duplicate_reason": "STRING"}

ENRICHED_COLUMNS = tuple(ENRICHED_TYPES)
QUARANTINE_COLUMNS = tuple(QUARANTINE_TYPES)
STAGED_COLUMNS = tuple(STAGED_TYPES)
DUPLICATE_COLUMNS = tuple(DUPLICATE_TYPES)


@dataclass(frozen=True)
class ReferenceData:
    """The MySQL reference tables the enrichment needs (columns as in berka_core.dataset.schema)."""

    account: DataFrame  # account_id, district_id, ...
    district: DataFrame  # district_id, district_name, region, ...
    disp: DataFrame  # disp_id, client_id, account_id, type
    client: DataFrame  # client_id, gender, birth_date, ...
    # account_profiles of the above, when a long-running caller keeps them cached (the
    # streaming job), so a batch joins one small relation instead of four.
    profiles: DataFrame | None = None


def parse_messages(kafka_records: DataFrame) -> DataFrame:
    """Kafka records (value, partition, offset) -> one row per record with the message fields.

    Malformed JSON gives null fields; `validate` turns that into a reason. The parser is the
    pipeline's JVM function (spark_jobs.jvm_functions, registered in the session beforehand):
    the same fields as from_json with the message schema, read from the bytes at about a
    quarter of from_json's cost, the largest single cost of a batch before.
    """
    value = F.col("value").cast("binary")
    return kafka_records.select(
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        value.cast("string").alias("raw_value"),
        F.length(value).alias("payload_bytes"),
        F.call_function(PARSE_TRANS_MESSAGE, value).alias("message"),
    ).select(*KAFKA_COLUMNS, "payload_bytes", "message.*")


def _first_failure(*checks: tuple[Column, str]) -> Column:
    """The reason of the first failing check, or null when all pass."""
    expression = F.lit(None).cast("string")
    for failed, reason in reversed(checks):
        expression = F.when(failed, F.lit(reason)).otherwise(expression)
    return expression


def transaction_date(text: Column) -> Column:
    """The date of a `YYYY-MM-DD` text that names a real calendar day, else null.

    A cast, not `to_date` with a pattern: under ANSI mode (Spark 4's default) `to_date` raises
    on an impossible day such as 1995-02-30 and would fail the whole batch, and its formatter
    cost ~8% of a batch's CPU. The pattern keeps the cast from accepting other spellings
    (`1995-1-1`, ` 995-01-01`, a trailing time).
    """
    return F.when(text.rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), text.try_cast("date"))


def validate(parsed: DataFrame) -> DataFrame:
    """Add `reason` (null = valid) and the typed columns trans_date and amount/balance."""
    trans_date = transaction_date(F.col("date"))
    amount_ok = F.coalesce(F.col("amount").rlike(r"^[0-9]{1,13}\.[0-9]{2}$"), F.lit(False))
    balance_ok = F.coalesce(F.col("balance").rlike(r"^-?[0-9]{1,13}\.[0-9]{2}$"), F.lit(False))
    all_fields_null = F.col("trans_id").isNull() & F.col("account_id").isNull() & F.col(
        "date"
    ).isNull()
    # Cheap tests first: trimming copies the payload, so only a record that parsed to nothing
    # is trimmed. Whitespace only (JSON's four kinds) counts as empty.
    empty = (F.col("raw_value").isNull() | (F.col("payload_bytes") == 0)
             | (all_fields_null & (F.btrim(F.col("raw_value"), F.lit(" \t\r\n")) == "")))
    reason = _first_failure(
        (empty, REASON_EMPTY),
        (F.col("payload_bytes") > MAX_PAYLOAD_BYTES, REASON_TOO_LARGE),
        (all_fields_null, REASON_NOT_JSON),
        (F.coalesce(F.col("schema_version"), F.lit(-1)) != trans_message.SCHEMA_VERSION,
         REASON_VERSION),
        (F.col("trans_id").isNull() | (F.col("trans_id") <= 0), REASON_TRANS_ID),
        (F.col("account_id").isNull() | (F.col("account_id") <= 0), REASON_ACCOUNT_ID),
        (F.col("trans_date").isNull(), REASON_DATE),
        (~F.coalesce(F.col("type").isin(*TRANSACTION_TYPES), F.lit(False)), REASON_TYPE),
        (~amount_ok, REASON_AMOUNT),
    )
    # The date's digits as yyyymmdd, for year, month and age without date arithmetic per row.
    date_key = F.when(
        F.col("trans_date").isNotNull(),
        F.replace(F.col("date"), F.lit("-"), F.lit("")).cast("int"),
    )
    return parsed.withColumn("trans_date", trans_date).withColumns(
        {
            "reason": reason,
            "date_key": date_key,
            "amount": F.when(amount_ok, F.col("amount").cast(MONEY)),
            "balance": F.when(balance_ok, F.col("balance").cast(MONEY)),
        }
    )


def yyyymmdd(date: Column) -> Column:
    """A date as the integer yyyymmdd (validate takes a record's from its text instead)."""
    return F.year(date) * 10000 + F.month(date) * 100 + F.dayofmonth(date)


def account_profiles(reference: ReferenceData) -> DataFrame:
    """One row per account: its district and its OWNER client's gender and birth date.

    Broadcast joins: JDBC tables carry no size statistics, so Spark would otherwise shuffle
    and sort all four for three sort-merge joins (~0.5 s of every micro-batch).
    """
    owners = reference.disp.where(F.col("type") == "OWNER").select("account_id", "client_id")
    clients = reference.client.select("client_id", "gender", "birth_date",
                                      yyyymmdd(F.col("birth_date")).alias("birth_key"))
    districts = reference.district.select("district_id", "district_name", "region")
    return (
        reference.account.select("account_id", "district_id")
        .join(F.broadcast(districts), "district_id", "left")
        .join(F.broadcast(owners), "account_id", "left")
        .join(F.broadcast(clients), "client_id", "left")
        .select("account_id", "district_id", "district_name", "region", "client_id", "gender",
                "birth_date", "birth_key", F.lit(True).alias("account_known"))
    )


def completed_years(on_key: Column, born_key: Column) -> Column:
    """Age in completed years between two yyyymmdd dates: the birthday of a year counts once
    its month and day are reached (so a 29 February birthday counts on 1 March in other years).
    No date functions: this runs for every record. The month-day part of the difference stays
    within +-1,130, so flooring the difference / 10000 subtracts one exactly when the birthday
    is still ahead (floor, not truncation, keeps a birth date after the transaction at -1)."""
    return F.floor((on_key - born_key) / 10000).cast("int")


def age_band(age: Column) -> Column:
    expression = F.lit("70+")
    for upper, label in reversed(list(zip(range(20, 80, 10), AGE_BANDS[:-1], strict=True))):
        expression = F.when(age < upper, F.lit(label)).otherwise(expression)
    return expression


def enrich(validated: DataFrame, reference: ReferenceData) -> DataFrame:
    """Join each valid record with its account profile; unknown accounts get a reason."""
    profiles = reference.profiles
    if profiles is None:
        profiles = account_profiles(reference)
    profiles = F.broadcast(profiles)
    joined = validated.join(profiles, "account_id", "left")
    reason = F.coalesce(
        F.col("reason"),
        _first_failure(
            (F.col("account_known").isNull(), REASON_UNKNOWN_ACCOUNT),
            (F.col("client_id").isNull() | F.col("birth_date").isNull(), REASON_NO_OWNER),
        ),
    )
    age = completed_years(F.col("date_key"), F.col("birth_key"))
    return joined.withColumns(
        {
            "reason": reason,
            "year": F.floor(F.col("date_key") / 10000).cast("int"),
            "month": (F.floor(F.col("date_key") / 100) % 100).cast("int"),
            "age": age,
            "age_band": age_band(age),
        }
    )


def classify(kafka_records: DataFrame, reference: ReferenceData) -> DataFrame:
    """The per-record pipeline: parse, validate, enrich. A map only: no shuffle of wide rows.

    Duplicates are found afterwards on narrow columns (duplicate_reasons) and applied with
    with_duplicate_reasons.
    """
    return (
        kafka_records.transform(parse_messages)
        .transform(validate)
        .transform(lambda df: enrich(df, reference))
    )


def staged_rows(classified: DataFrame) -> DataFrame:
    """Every record with its reason and raw payload (a valid one may still prove a duplicate)."""
    return classified.select(*STAGED_COLUMNS)


def duplicate_reasons(staged: DataFrame, committed_trans_ids: DataFrame | None) -> DataFrame:
    """(kafka_partition, kafka_offset, duplicate_reason) of every valid record already seen.

    Within the batch the lowest (partition, offset) wins; against earlier batches the committed
    row wins, so a producer that re-sends after a crash never double-counts. Only the three key
    columns are shuffled; the result is usually empty.

    The committed ids are first narrowed to the batch's own (a broadcast semi-join, map-side),
    so what is de-duplicated and joined is at most a batch of ids, however large the table.
    """
    valid = staged.where(F.col("reason").isNull()).select(
        "trans_id", "kafka_partition", "kafka_offset"
    )
    order = Window.partitionBy("trans_id").orderBy("kafka_partition", "kafka_offset")
    ranked = valid.withColumn("_rank", F.row_number().over(order))
    reason = F.when(F.col("_rank") > 1, F.lit(REASON_DUPLICATE_IN_BATCH))
    if committed_trans_ids is not None:
        batch_ids = F.broadcast(valid.select("trans_id").distinct())
        seen = (committed_trans_ids.join(batch_ids, "trans_id", "left_semi")
                .select(F.col("trans_id").alias("_seen_trans_id")).distinct())
        ranked = ranked.join(seen, ranked["trans_id"] == seen["_seen_trans_id"], "left")
        reason = F.coalesce(
            reason,
            F.when(F.col("_seen_trans_id").isNotNull(), F.lit(REASON_DUPLICATE_COMMITTED)),
        )
    return ranked.select(
        "kafka_partition", "kafka_offset", reason.alias("duplicate_reason")
    ).where(F.col("duplicate_reason").isNotNull())


def with_duplicate_reasons(staged: DataFrame, duplicates: DataFrame) -> DataFrame:
    """The staged records with the duplicates' reason set (an existing reason stays first).

    The duplicates are broadcast: a few narrow rows, usually none. Without the hint Spark
    planned a sort-merge join that shuffled every wide record (payload included) by offset."""
    return (
        staged.join(F.broadcast(duplicates), ["kafka_partition", "kafka_offset"], "left")
        .withColumn("reason", F.coalesce(F.col("reason"), F.col("duplicate_reason")))
        .drop("duplicate_reason")
    )


CUBE_KEYS = ("year", "month", "age_band", "gender")
CUBE_SCHEMA = ("year INT, month INT, age_band STRING, gender STRING, transaction_count BIGINT, "
               f"transaction_amount {MONEY_SUM}")
CUBE_COLUMNS = (*CUBE_KEYS, "transaction_count", "transaction_amount")


def trend_cube(enriched: DataFrame) -> DataFrame:
    """Counts and amounts by every key a trend groups on: one scan of the enriched rows serves
    all three trends (counts and sums add up exactly; averages are taken last)."""
    return enriched.groupBy(*CUBE_KEYS).agg(
        F.count(F.lit(1)).alias("transaction_count"),
        F.sum("amount").cast(MONEY_SUM).alias("transaction_amount"),
    )


# Change types of a Delta change data feed that take a row away.
_REMOVED = ("delete", "update_preimage")


def add_changes_to_cube(cube: DataFrame, changes: DataFrame) -> DataFrame:
    """A trend cube plus the enriched rows of a change data feed (`_change_type`): inserted
    rows add to their cell, deleted ones subtract; cells left with no transaction go."""
    sign = F.when(F.col("_change_type").isin(*_REMOVED), -1).otherwise(1)
    changed = changes.groupBy(*CUBE_KEYS).agg(
        F.sum(sign).cast("bigint").alias("transaction_count"),
        F.sum(sign * F.col("amount")).cast(MONEY_SUM).alias("transaction_amount"),
    )
    return (cube.select(*CUBE_COLUMNS).unionByName(changed)
            .groupBy(*CUBE_KEYS)
            .agg(F.sum("transaction_count").cast("bigint").alias("transaction_count"),
                 F.sum("transaction_amount").cast(MONEY_SUM).alias("transaction_amount"))
            .where(F.col("transaction_count") != 0))


@dataclass(frozen=True)
class Trend:
    """A trend as an aggregation of the trend cube: its keys and its other columns as SQL
    expressions (the trend tables are views over the cube table, see hive_tables)."""

    keys: tuple[str, ...]
    values: tuple[str, ...]

    def view_sql(self, cube_table: str) -> str:
        keys = ", ".join(self.keys)
        return f"SELECT {keys}, {', '.join(self.values)} FROM {cube_table} GROUP BY {keys}"


_COUNT = "CAST(SUM(transaction_count) AS BIGINT) AS transaction_count"
_AMOUNT = f"CAST(SUM(transaction_amount) AS {MONEY_SUM})"
# No ORDER BY: a table has no order (readers sort).
TRENDS: dict[str, Trend] = {
    "monthly_trend": Trend(("year", "month"), (_COUNT, f"{_AMOUNT} AS transaction_amount")),
    "yearly_trend": Trend(("year",), (_COUNT, f"{_AMOUNT} AS transaction_amount")),
    "trans_by_age_gender": Trend(("age_band", "gender"), (
        _COUNT,
        f"{_AMOUNT} AS total_amount",
        # Decimal division then HALF_UP rounding to cents, as the independent check computes.
        f"CAST(ROUND({_AMOUNT} / SUM(transaction_count), 2) AS {MONEY_SUM}) AS avg_amount",
    )),
}
