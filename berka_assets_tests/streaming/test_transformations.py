"""The shared per-record pipeline (parse, validate, enrich) on the real Spark Connect server:
every quarantine reason, the enrichment and the age rule at its edges, record by record."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from berka_assets_tests.streaming.harness import spark_session
from berka_core import transformations as T
from berka_core.config import Settings
from berka_core.messages import trans_message

# account 1: owner client 10 (F, born 1960-06-15), district 7; account 2: owner born on
# 29 February 1952; account 3: a DISPONENT only, so no owner; account 4 does not exist.
DISTRICTS = [(7, "Pisek", "south Bohemia"), (8, "Brno - mesto", "south Moravia")]
ACCOUNTS = [(1, 7), (2, 8), (3, 7)]
CLIENTS = [(10, "F", dt.date(1960, 6, 15)), (20, "M", dt.date(1952, 2, 29)),
           (30, "M", dt.date(1970, 1, 1))]
DISPS = [(100, 10, 1, "OWNER"), (200, 20, 2, "OWNER"), (300, 30, 3, "DISPONENT")]


def message(**overrides: object) -> bytes:
    fields = json.loads(trans_message.encode(
        trans_id=1, account_id=1, date=dt.date(1995, 3, 24), type="PRIJEM", operation="VKLAD",
        amount=Decimal("1200.50"), balance=Decimal("-35.00"), k_symbol=None, bank=None,
        account=None, sent_at_ms=1,
    ))
    fields.update(overrides)
    return json.dumps(fields, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def spark(stack: Settings) -> SparkSession:
    return spark_session(stack)


@pytest.fixture(scope="module")
def reference(spark: SparkSession) -> T.ReferenceData:
    return T.ReferenceData(
        account=spark.createDataFrame(ACCOUNTS, "account_id INT, district_id INT"),
        district=spark.createDataFrame(DISTRICTS,
                                       "district_id INT, district_name STRING, region STRING"),
        disp=spark.createDataFrame(DISPS,
                                   "disp_id INT, client_id INT, account_id INT, type STRING"),
        client=spark.createDataFrame(CLIENTS, "client_id INT, gender STRING, birth_date DATE"),
    )


def classify(spark: SparkSession, reference: T.ReferenceData,
             values: list[bytes | None]) -> list[dict]:
    records: DataFrame = spark.createDataFrame(
        [(value, 0, offset) for offset, value in enumerate(values)],
        "value BINARY, partition INT, offset BIGINT",
    )
    rows = T.classify(records, reference).orderBy("kafka_offset").collect()
    assert [row.kafka_offset for row in rows] == list(range(len(values)))  # none lost or added
    return [row.asDict() for row in rows]


def test_a_valid_message_is_enriched_from_its_owner_and_district(
    spark: SparkSession, reference: T.ReferenceData
) -> None:
    (row,) = classify(spark, reference, [message()])
    assert row["reason"] is None
    assert {k: row[k] for k in ("trans_id", "account_id", "trans_date", "year", "month", "type",
                                "amount", "balance", "district_name", "region", "client_id",
                                "gender", "birth_date", "age", "age_band")} == {
        "trans_id": 1, "account_id": 1, "trans_date": dt.date(1995, 3, 24), "year": 1995,
        "month": 3, "type": "PRIJEM", "amount": Decimal("1200.50"),
        "balance": Decimal("-35.00"), "district_name": "Pisek", "region": "south Bohemia",
        "client_id": 10, "gender": "F", "birth_date": dt.date(1960, 6, 15), "age": 34,
        "age_band": "30-39",
    }


@pytest.mark.parametrize(
    ("account_id", "date", "age", "band"),
    [
        (1, "1995-06-14", 34, "30-39"),  # the day before the 35th birthday
        (1, "1995-06-15", 35, "30-39"),  # the birthday itself
        (1, "1980-06-14", 19, "<20"),
        (1, "1980-06-15", 20, "20-29"),
        (1, "2030-06-14", 69, "60-69"),
        (1, "2030-06-15", 70, "70+"),
        (2, "1993-02-28", 40, "40-49"),  # born 29 Feb: not yet 41 on 28 Feb of a common year
        (2, "1993-03-01", 41, "40-49"),
        (2, "1996-02-29", 44, "40-49"),  # and on the day itself in a leap year
        (2, "1992-02-28", 39, "30-39"),
    ],
)
def test_age_is_completed_years_at_the_transaction_date(
    spark: SparkSession, reference: T.ReferenceData, account_id: int, date: str, age: int,
    band: str,
) -> None:
    (row,) = classify(spark, reference, [message(account_id=account_id, date=date)])
    assert (row["reason"], row["age"], row["age_band"]) == (None, age, band)
    assert (row["year"], row["month"]) == (int(date[:4]), int(date[5:7]))


def test_every_bad_record_gets_its_reason_and_none_fails_the_batch(
    spark: SparkSession, reference: T.ReferenceData
) -> None:
    cases: list[tuple[bytes | None, str | None]] = [
        (None, T.REASON_EMPTY),
        (b"", T.REASON_EMPTY),
        (b"  \n", T.REASON_EMPTY),
        (b"x" * (T.MAX_PAYLOAD_BYTES + 1), T.REASON_TOO_LARGE),
        (b"{not json", T.REASON_NOT_JSON),
        (b"[1, 2, 3]", T.REASON_NOT_JSON),
        (message(schema_version=2), T.REASON_VERSION),
        (message(trans_id="abc"), T.REASON_TRANS_ID),
        (message(trans_id=0), T.REASON_TRANS_ID),
        (message(trans_id=10**30), T.REASON_TRANS_ID),  # overflows a BIGINT
        (b'"just a string"', T.REASON_NOT_JSON),
        (b"[" * 5_000 + b"]" * 5_000, T.REASON_NOT_JSON),  # deeper than Jackson allows
        (message(operation="x" * T.MAX_PAYLOAD_BYTES), T.REASON_TOO_LARGE),
        (message(account_id=None), T.REASON_ACCOUNT_ID),
        # Impossible days: under ANSI mode to_date raised on these and failed the whole batch.
        (message(date="1995-02-30"), T.REASON_DATE),
        (message(date="1995-13-01"), T.REASON_DATE),
        (message(date="1995-1-1"), T.REASON_DATE),
        (message(date=" 995-01-01"), T.REASON_DATE),
        (message(date="1995-01-01T10:00"), T.REASON_DATE),
        (message(date="01.01.1995"), T.REASON_DATE),
        (message(type="DEPOSIT"), T.REASON_TYPE),
        (message(amount="-5.00"), T.REASON_AMOUNT),
        (message(amount="5"), T.REASON_AMOUNT),
        (message(amount="5.001"), T.REASON_AMOUNT),
        (message(account_id=4), T.REASON_UNKNOWN_ACCOUNT),
        (message(account_id=3), T.REASON_NO_OWNER),
        (message(date="1996-02-29"), None),  # a real leap day stays valid
        (message(balance="n/a"), None),  # balance is informative: null, not a reason
    ]
    rows = classify(spark, reference, [value for value, _ in cases])
    assert [row["reason"] for row in rows] == [reason for _, reason in cases]
    assert rows[-1]["balance"] is None and rows[-2]["trans_date"] == dt.date(1996, 2, 29)
    assert all(row["raw_value"] is not None for row, (value, _) in zip(rows, cases, strict=True)
               if value is not None)


def test_duplicates_are_broadcast_not_joined_by_shuffling_every_record(
    spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch's records meet their duplicates (usually none) in a broadcast join: a
    sort-merge join shuffled every wide record, payload included (bench/RESULTS.md,
    session 13: a third of a 1M batch)."""
    staged = spark.range(2_000_000).selectExpr(
        "CAST(id % 3 AS INT) AS kafka_partition", "id AS kafka_offset", "id AS trans_id",
        "CAST(NULL AS STRING) AS reason", "repeat('x', 200) AS raw_value")
    committed = spark.range(2_000_000).selectExpr("id AS trans_id")
    final = T.with_duplicate_reasons(staged, T.duplicate_reasons(staged, committed))
    final.explain()
    plan = capsys.readouterr().out
    assert "BroadcastHashJoin" in plan and "BroadcastExchange" in plan, plan
    assert plan.count("SortMergeJoin") <= 1, plan  # only the committed ids' own join
    # The committed ids are narrowed to the batch's by a broadcast semi-join before anything
    # is shuffled: a distinct over the whole table grew with it (the session-18 hour).
    assert "LeftSemi" in plan, plan
