"""The MySQL position store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from berka_assets.resources.mysql import MySQLResource
from berka_core.producer.position import TABLE, MySQLPositionStore, Position

pytestmark = pytest.mark.integration


@pytest.fixture
def uri(mysql: MySQLResource) -> Iterator[str]:
    uri = f"s3://test-position-{uuid.uuid4().hex[:8]}/raw/trans.asc"
    yield uri
    with mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM `{TABLE}` WHERE source_uri = %s", (uri,))


def test_save_load_upsert_and_reconnect(positions: MySQLPositionStore, uri: str) -> None:
    assert positions.load(uri, "t") is None
    positions.save(Position(uri, "t", last_line=10, last_trans_id=42, sent=9))
    positions.save(Position(uri, "t", last_line=20, last_trans_id=43, sent=18, rejected=1))
    positions.save(Position(uri, "other", last_line=5))
    stored = positions.load(uri, "t")
    assert stored is not None and stored.updated_at is not None
    assert (stored.last_line, stored.last_trans_id, stored.sent, stored.rejected) == (
        20, 43, 18, 1)
    assert positions.load(uri, "other").last_line == 5  # type: ignore[union-attr]
    positions._connection.close()  # a dropped connection is reopened on the next call
    positions.save(Position(uri, "t", last_line=21, last_trans_id=None, sent=18, rejected=2))
    assert positions.load(uri, "t").last_trans_id is None  # type: ignore[union-attr]


def test_overlong_source_uri_is_refused(positions: MySQLPositionStore) -> None:
    with pytest.raises(ValueError, match="longer than 512"):
        positions.save(Position("s3://b/" + "x" * 600, "t"))
