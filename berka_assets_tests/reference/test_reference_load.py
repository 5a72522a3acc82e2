"""The reference assets against the real MariaDB and the real S3-compatible server."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest

from berka_assets.assets.reference import REFERENCE_TABLES, reference_key, reference_tables
from berka_assets.checks.reference import REFERENCE_CHECKS
from berka_assets.resources.berka_source import BerkaSourceResource, upload_folder
from berka_assets.resources.factory import build_resources
from berka_assets.resources.mysql import MySQLResource
from berka_core.config import REPO_ROOT, Settings, secret
from berka_stack.s3 import local_s3_endpoint

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "data" / "berka"
EXPECTED_ROWS = {"district": 77, "account": 4_500, "client": 5_369, "disp": 5_369,
                 "loan": 682, "card": 892, "order": 6_471}


@pytest.fixture
def database(stack: Settings) -> Iterator[MySQLResource]:
    """A throw-away MySQL database for one test."""
    name = f"berka_test_{uuid.uuid4().hex[:8]}"
    admin = MySQLResource(password=secret(stack.mysql.password_env))
    with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    yield MySQLResource(database=name, password=admin.password)
    with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{name}`")


def load(mysql: MySQLResource, source: BerkaSourceResource, raise_on_error: bool = True,
         selection: list[str] | None = None):
    resources = {**build_resources(), "mysql": mysql, "berka_source": source}
    return dg.materialize(
        [reference_tables, *REFERENCE_CHECKS], resources=resources,
        raise_on_error=raise_on_error,
        selection=[reference_key(t) for t in selection] if selection else None,
    )


def folder_source(folder: Path) -> BerkaSourceResource:
    return BerkaSourceResource(folder=str(folder), s3=build_resources()["s3"])


def snapshot(mysql: MySQLResource) -> dict[str, list[tuple]]:
    with mysql.connect() as connection, connection.cursor() as cursor:
        tables = {}
        for table in REFERENCE_TABLES:
            cursor.execute(f"SELECT * FROM `{table}` ORDER BY 1")
            tables[table] = list(cursor.fetchall())
        return tables


def test_sample_loads_with_exact_counts_and_all_checks_pass(database: MySQLResource) -> None:
    result = load(database, folder_source(SAMPLE))
    counts = {e.asset_key.path[-1]: e.materialization.metadata["dagster/row_count"].value
              for e in result.get_asset_materialization_events()}
    assert counts == EXPECTED_ROWS
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 21 and all(c.passed for c in checks)
    tables = snapshot(database)
    women = sum(1 for row in tables["client"] if row[3] == "F")
    assert women == 2_645
    # Idempotent: loading again changes nothing and breaks no foreign key.
    load(database, folder_source(SAMPLE))
    assert snapshot(database) == tables


def test_schema_has_primary_and_foreign_keys(database: MySQLResource) -> None:
    load(database, folder_source(SAMPLE))
    with database.connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME FROM "
            "information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND "
            "REFERENCED_TABLE_NAME IS NOT NULL", (database.database,))
        foreign_keys = set(cursor.fetchall())
        cursor.execute("SELECT DATA_TYPE, NUMERIC_SCALE FROM information_schema.COLUMNS WHERE "
                       "TABLE_SCHEMA = %s AND TABLE_NAME = 'order' AND COLUMN_NAME = 'amount'",
                       (database.database,))
        money = cursor.fetchone()
    assert foreign_keys == {
        ("account", "district_id", "district"), ("client", "district_id", "district"),
        ("disp", "client_id", "client"), ("disp", "account_id", "account"),
        ("loan", "account_id", "account"), ("order", "account_id", "account"),
        ("card", "disp_id", "disp"),
    }
    assert money == ("decimal", 2)


def test_s3_and_folder_sources_give_identical_tables(
    stack: Settings, database: MySQLResource, tmp_path: Path
) -> None:
    load(database, folder_source(SAMPLE))
    from_folder = snapshot(database)
    with database.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in REFERENCE_TABLES:
            cursor.execute(f"DELETE FROM `{table}`")
    bucket = f"berka-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=local_s3_endpoint(), region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    uploaded = upload_folder(client, SAMPLE, bucket, "raw/")
    assert len(uploaded) == 8
    from dagster_aws.s3 import S3Resource

    s3 = S3Resource(endpoint_url=local_s3_endpoint(), region_name="us-east-1",
                    aws_access_key_id="test", aws_secret_access_key="test")
    result = load(database, BerkaSourceResource(kind="s3", bucket=bucket, prefix="raw/", s3=s3))
    uris = {e.materialization.metadata["source_uri"].value
            for e in result.get_asset_materialization_events()}
    assert f"s3://{bucket}/raw/account.asc" in uris
    assert snapshot(database) == from_folder


def _broken_copy(tmp_path: Path, table: str, edit) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(SAMPLE, folder)
    path = next(folder.glob(f"{table}.asc"))
    path.write_bytes(edit(path.read_bytes()))
    return folder


BAD_INPUTS = {
    "missing file": ("loan", None, "no file for Berka table 'loan'"),
    "truncated file": ("disp", lambda data: data[: len(data) // 2 + 7], "disp.asc"),
    "wrong delimiter": ("account", lambda data: data.replace(b";", b","), "delimiter"),
    "duplicate primary key": (
        "card", lambda data: data + data.splitlines(keepends=True)[1], "duplicate"),
    "orphan foreign key": (
        "loan", lambda data: data + b'9999999;987654;930705;96396;12;8033.00;"B"\r\n',
        "foreign key"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_keeps_the_previous_tables(
    case: str, database: MySQLResource, tmp_path: Path
) -> None:
    load(database, folder_source(SAMPLE))
    before = snapshot(database)
    table, edit, expected = BAD_INPUTS[case]
    if edit is None:
        folder = tmp_path / "missing"
        shutil.copytree(SAMPLE, folder)
        next(folder.glob(f"{table}.asc")).unlink()
    else:
        folder = _broken_copy(tmp_path, table, edit)
    result = load(database, folder_source(folder), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.to_string()
    assert expected.lower() in message.lower(), message
    if case != "missing file":
        assert "line" in message.lower(), message
    assert snapshot(database) == before, "a failed load must leave the previous tables"


def test_checks_detect_drift_after_a_load(database: MySQLResource) -> None:
    load(database, folder_source(SAMPLE))
    with database.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        cursor.execute("INSERT INTO loan VALUES (1, 999999, '1994-01-01', 1000, 12, 83.33, 'A')")
    resources = {**build_resources(), "mysql": database,
                 "berka_source": folder_source(SAMPLE)}
    result = dg.materialize([reference_tables, *REFERENCE_CHECKS], resources=resources,
                            selection=dg.AssetSelection.checks_for_assets(reference_key("loan")))
    outcome = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcome == {"row_count_matches_source": False, "foreign_keys_resolve": False,
                       "no_null_keys": True}
