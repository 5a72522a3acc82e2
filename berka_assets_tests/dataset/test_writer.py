from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest

from berka_core.dataset.districts import district_records
from berka_core.dataset.reader import find_table_file, open_table
from berka_core.dataset.schema import TABLES
from berka_core.dataset.writer import TableWriter, format_record, format_yymmdd, write_table


@pytest.mark.parametrize("table", list(TABLES))
def test_read_then_write_is_byte_identical(real_dir: Path, tmp_path: Path, table: str) -> None:
    source = find_table_file(real_dir, table)
    target = tmp_path / source.name
    rows = write_table(target, table, open_table(real_dir, table))
    assert rows > 0
    assert target.read_bytes() == source.read_bytes()


def test_writes_to_binary_and_text_streams_without_closing_them(real_dir: Path) -> None:
    records = list(open_table(real_dir, "card"))
    binary = io.BytesIO()
    write_table(binary, "card", records)
    text = io.StringIO(newline="")
    write_table(text, "card", records)
    assert not binary.closed and not text.closed
    assert (
        binary.getvalue() == text.getvalue().encode("ascii") == (real_dir / "card.asc").read_bytes()
    )


def test_format_of_each_kind() -> None:
    card = {"card_id": 1, "disp_id": 9, "type": "gold", "issued": dt.date(1998, 12, 29)}
    assert format_record("card", card) == '1;9;"gold";981229 00:00:00\r\n'
    trans = {
        "trans_id": 3, "account_id": 7, "date": dt.date(1993, 1, 31), "type": "PRIJEM",
        "operation": "", "amount": Decimal("12.6"), "balance": Decimal("-5"),
        "k_symbol": "UROK", "bank": None, "account": None,
    }  # fmt: skip
    assert format_record("trans", trans) == '3;7;930131;"PRIJEM";"";12.60;-5.00;"UROK";;\r\n'
    loan = {"loan_id": 1, "account_id": 2, "date": dt.date(1997, 1, 1), "amount": 1200,
            "duration": 12, "payments": Decimal("100.00"), "status": "A"}  # fmt: skip
    assert format_record("loan", loan) == '1;2;970101;1200;12;100.00;"A"\r\n'


def test_generated_values_without_two_decimals_are_padded(tmp_path: Path) -> None:
    with TableWriter(tmp_path / "order.asc", "order") as writer:
        writer.write_values((1, 2, "YZ", "123", Decimal("5"), " "))
        writer.write_values((2, 2, "YZ", "123", 7, "SIPO"))
    lines = (tmp_path / "order.asc").read_bytes().split(b"\r\n")
    assert lines[1:] == [b'1;2;"YZ";"123";5.00;" "', b'2;2;"YZ";"123";7.00;"SIPO"', b""]


def test_dates_outside_the_1900s_are_refused() -> None:
    assert format_yymmdd(dt.date(1911, 2, 3)) == "110203"
    with pytest.raises(ValueError, match="1900-1999"):
        format_yymmdd(dt.date(2005, 1, 1))


def test_built_in_districts_are_the_real_file(real_dir: Path) -> None:
    buffer = io.BytesIO()
    write_table(buffer, "district", district_records())
    assert buffer.getvalue() == (real_dir / "district.asc").read_bytes()
