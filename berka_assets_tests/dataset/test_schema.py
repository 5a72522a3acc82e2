from __future__ import annotations

import re
from pathlib import Path

import pytest

from berka_core.dataset import schema
from berka_core.dataset.reader import find_table_file


@pytest.mark.parametrize("table", list(schema.TABLES))
def test_header_is_the_real_files_first_line(real_dir: Path, table: str) -> None:
    first_line = find_table_file(real_dir, table).read_bytes().split(b"\r\n", 1)[0]
    assert first_line.decode("ascii") == schema.TABLES[table].header


def test_district_columns_have_readable_names() -> None:
    district = schema.get_table("district")
    assert district.header.startswith("A1;A2;A3;")
    assert district.column_names == (
        "district_id", "district_name", "region", "inhabitants", "municipalities_lt_500",
        "municipalities_500_1999", "municipalities_2000_9999", "municipalities_ge_10000",
        "cities", "urban_ratio", "average_salary", "unemployment_95", "unemployment_96",
        "entrepreneurs_per_1000", "crimes_95", "crimes_96",
    )  # fmt: skip
    assert {c.name for c in district.columns if c.nullable} == {"unemployment_95", "crimes_95"}


def test_foreign_keys_are_exactly_those_of_the_format() -> None:
    found = {
        (name, fk.column, fk.ref_table, fk.ref_column)
        for name, table in schema.TABLES.items()
        for fk in table.foreign_keys
    }
    assert found == {
        ("account", "district_id", "district", "district_id"),
        ("client", "district_id", "district", "district_id"),
        ("disp", "client_id", "client", "client_id"),
        ("disp", "account_id", "account", "account_id"),
        ("loan", "account_id", "account", "account_id"),
        ("order", "account_id", "account", "account_id"),
        ("trans", "account_id", "account", "account_id"),
        ("card", "disp_id", "disp", "disp_id"),
    }


def test_load_order_puts_parents_first() -> None:
    order = schema.load_order()
    assert sorted(order) == sorted(schema.TABLES)
    for name in order:
        for fk in schema.TABLES[name].foreign_keys:
            assert order.index(fk.ref_table) < order.index(name)


def test_client_has_derived_gender_and_birth_date_not_in_file() -> None:
    client = schema.get_table("client")
    assert [c.name for c in client.derived_columns] == ["gender", "birth_date"]
    assert "gender" not in client.header
    assert schema.gender_from_birth_number("706213") == "F"
    assert schema.gender_from_birth_number("450204") == "M"


def test_unknown_table_names_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="account"):
        schema.get_table("accounts")


@pytest.mark.parametrize("table", list(schema.TABLES))
def test_mysql_ddl_has_every_column_key_and_foreign_key(table: str) -> None:
    ddl = schema.mysql_create_table(table)
    definition = schema.TABLES[table]
    assert f"CREATE TABLE IF NOT EXISTS `{table}` (" in ddl
    assert "ENGINE=InnoDB" in ddl
    assert f"PRIMARY KEY (`{definition.primary_key}`)" in ddl
    for column in definition.columns:
        assert re.search(rf"^  `{column.name}` ", ddl, re.MULTILINE), column.name
    for fk in definition.foreign_keys:
        assert f"FOREIGN KEY (`{fk.column}`) REFERENCES `{fk.ref_table}` (`{fk.ref_column}`)" in ddl
    assert ddl.count("FOREIGN KEY") == len(definition.foreign_keys)


def test_mysql_types_follow_the_column_kinds() -> None:
    trans = schema.mysql_create_table("trans")
    assert "`amount` DECIMAL(15,2) NOT NULL" in trans
    assert "`balance` DECIMAL(15,2) NOT NULL" in trans
    assert "`date` DATE NOT NULL" in trans
    assert "`account` VARCHAR(10)," in trans  # nullable digit string stays text
    client = schema.mysql_create_table("client")
    assert "`gender` CHAR(1) NOT NULL" in client
    assert "`birth_date` DATE NOT NULL" in client
    assert "`birth_number` CHAR(6) NOT NULL" in client
    assert "`amount` INT NOT NULL" in schema.mysql_create_table("loan")
    assert "`payments` DECIMAL(15,2) NOT NULL" in schema.mysql_create_table("loan")
    assert "`issued` DATE NOT NULL" in schema.mysql_create_table("card")
    district = schema.mysql_create_table("district")
    assert "`unemployment_95` DECIMAL(4,2)," in district  # nullable: district 69 misses it
    assert "`urban_ratio` DECIMAL(4,1) NOT NULL" in district
    assert schema.mysql_create_table("order", if_not_exists=False).startswith(
        "CREATE TABLE `order` ("
    )


def test_spark_schema_is_derived_from_the_same_columns() -> None:
    types = pytest.importorskip("pyspark.sql.types")
    for name, table in schema.TABLES.items():
        struct = schema.spark_schema(name)
        assert struct.fieldNames() == list(table.column_names)
        for field, column in zip(struct.fields, table.columns, strict=True):
            assert field.nullable == column.nullable
            if column.kind in (schema.Kind.MONEY, schema.Kind.DECIMAL):
                assert field.dataType == types.DecimalType(column.precision, column.scale)
            elif column.kind in (schema.Kind.DATE, schema.Kind.CARD_DATETIME):
                assert field.dataType == types.DateType()
            elif column.kind is schema.Kind.INT:
                assert field.dataType == types.IntegerType()
            else:
                assert field.dataType == types.StringType()
    trans = schema.spark_schema("trans")
    assert trans["amount"].dataType == types.DecimalType(15, 2)
    assert trans["account"].dataType == types.StringType()
    assert schema.spark_schema("client", include_derived=False).fieldNames() == [
        "client_id", "birth_number", "district_id",
    ]  # fmt: skip
