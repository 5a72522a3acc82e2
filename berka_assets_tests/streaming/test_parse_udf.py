"""The message parser (jvm/udf ParseTransMessage) against Spark's own from_json, on the real
Spark Connect server: every kind of input gives the same fields, except the three differences
the parser makes on purpose."""

from __future__ import annotations

import json
import re

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from berka_assets_tests.streaming.harness import spark_session
from berka_core.config import REPO_ROOT, Settings
from berka_core.messages import trans_message
from berka_core.spark_jobs.jvm_functions import PARSE_TRANS_MESSAGE

GOOD = {"schema_version": 1, "trans_id": 7, "account_id": 1, "date": "1995-03-24",
        "type": "PRIJEM", "operation": "VKLAD", "amount": "1000.00", "balance": "1000.00",
        "k_symbol": None, "bank": None, "account": None, "event_date": "1995-03-24",
        "sent_at_ms": 123}


def message(**overrides: object) -> bytes:
    return json.dumps({**GOOD, **overrides}).encode()


SAME_AS_FROM_JSON = [
    message(),
    json.dumps(GOOD, separators=(",", ":")).encode(),
    b' {"amount" : "1.00" , "trans_id" : 3 }  \n',
    # A field of the wrong JSON type, or out of range: that field null, the others kept.
    message(trans_id="abc"), message(trans_id=10**30), message(trans_id=1.0),
    message(trans_id=True), message(trans_id={"a": 1}), message(trans_id=[1]),
    message(trans_id=""), message(trans_id=-5), message(trans_id=2**63 - 1),
    message(trans_id=2**63), message(schema_version=2**31), message(schema_version=1.5),
    message(sent_at_ms=1.7e12), message(date=""), message(account_id=None),
    # A string field given another JSON value gets its JSON text.
    message(amount=12.5), message(amount=1e3), message(amount=True),
    message(amount={"x": [1, 2]}), message(amount=[1, "a"]),
    # Text: non-ASCII, escapes, a long value.
    message(operation="Příjem ü"), b'{"trans_id":1,"operation":"a\\u00e9b\\n"}',
    b'{"trans_id":1,"operation":"' + b"x" * 70_000 + b'"}',
    # Keys: the last repeat wins, names are case-sensitive, unknown ones are skipped.
    b'{"trans_id":1,"trans_id":2}', b'{"TRANS_ID":5}',
    b'{"trans_id":1,"extra":{"deep":[1,{"a":2}]},"type":"VYDAJ"}',
    # Spark's JSON defaults: single quotes and NaN allowed, comments and leading zeros not.
    b"{'trans_id': 5, 'type': 'VYBER'}", b'{"trans_id": NaN}', b'{"amount": NaN}',
    b'{"amount": -Infinity}', b'{"trans_id": 01}', b'{"trans_id": 1, /*c*/ "x":1}',
    # Not an object, or not JSON: every field null.
    b"", b"  ", b"null", b"1", b'"text"', b"[]", b'[{"trans_id":1}]', b"{}",
    b'{"trans_id":1', b"{not json", b"[" * 5_000 + b"]" * 5_000,
    b'{"a":' * 600 + b"1" + b"}" * 600,
]
# Where the parser differs from from_json, on purpose: (input, what from_json gives for
# trans_id, what the parser gives).
DELIBERATE_DIFFERENCES = [
    # from_json ignores what follows the object: a second message glued on would vanish.
    (b'{"trans_id":1} xyz', 1, None),
    (b'{"trans_id":1}{"trans_id":2}', 1, None),
    # from_json replaces bytes that are not UTF-8 and keeps the record with altered text.
    (b'{"trans_id":1,"operation":"a\xffb"}', 1, None),
    (b'{"trans_id":1,"zzz":"a\xffb"}', 1, None),
    # RFC 8259 lets a parser ignore a UTF-8 byte order mark; from_json rejects the record.
    (b'\xef\xbb\xbf{"trans_id":1}', None, 1),
]


@pytest.fixture(scope="module")
def spark(stack: Settings) -> SparkSession:
    return spark_session(stack)


def parse_both(spark: SparkSession, values: list[bytes | None]) -> list[tuple[tuple, tuple]]:
    """(from_json fields, parser fields) per value, all-null when the struct itself is null."""
    frame = spark.createDataFrame(list(enumerate(values)), "i INT, value BINARY")
    rows = frame.select(
        "i",
        F.from_json(F.col("value").cast("string"), trans_message.spark_schema()).alias("spark"),
        F.call_function(PARSE_TRANS_MESSAGE, F.col("value")).alias("ours"),
    ).orderBy("i").collect()
    assert [row.i for row in rows] == list(range(len(values)))
    width = len(trans_message.FIELDS)
    return [(tuple(row.spark or (None,) * width), tuple(row.ours or (None,) * width))
            for row in rows]


def test_the_parser_gives_what_from_json_gives(spark: SparkSession) -> None:
    results = parse_both(spark, [None, *SAME_AS_FROM_JSON])
    for value, (expected, got) in zip([None, *SAME_AS_FROM_JSON], results, strict=True):
        assert got == expected, value[:80] if value else value
    # The corpus exercises both outcomes, so agreement is not agreement on all-null.
    first = results[1][1]
    assert first == tuple(GOOD[name] for name, _ in trans_message.FIELDS)
    assert results[4][1][1] is None and results[4][1][2] == 1  # trans_id "abc": only it null


def test_the_parser_differs_from_from_json_only_towards_safety(spark: SparkSession) -> None:
    values = [value for value, _, _ in DELIBERATE_DIFFERENCES]
    for (value, spark_id, our_id), (theirs, ours) in zip(
        DELIBERATE_DIFFERENCES, parse_both(spark, values), strict=True
    ):
        assert (theirs[1], ours[1]) == (spark_id, our_id), value
        if our_id is None:
            assert ours == (None,) * len(trans_message.FIELDS), value


def test_the_java_field_list_is_the_message_schema() -> None:
    source = (REPO_ROOT / "jvm/udf/src/main/java/berka/udf/ParseTransMessage.java").read_text()
    names = re.search(r"FIELDS = \{(.*?)\};", source, re.S).group(1)
    kinds = re.search(r"KINDS = \{(.*?)\};", source, re.S).group(1)
    java = list(zip(re.findall(r'"(\w+)"', names), re.findall(r"Kind\.(\w+)", kinds),
                    strict=True))
    assert java == [(name, kind.upper()) for name, kind in trans_message.FIELDS]
