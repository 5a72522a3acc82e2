from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from berka_core.dataset.errors import (
    BerkaFileNotFoundError,
    BerkaFormatError,
    DuplicateKeyError,
    RejectedRow,
)
from berka_core.dataset.reader import (
    TableReader,
    find_table_file,
    foreign_key_violations,
    normalize_blank,
    open_table,
    read_table,
)

ROW_COUNTS = {
    "account": 4_500,
    "client": 5_369,
    "disp": 5_369,
    "district": 77,
    "loan": 682,
    "card": 892,
    "order": 6_471,
    "trans": 49_102,  # trans_prefix.asc
}


@pytest.fixture(scope="module")
def real(real_dir: Path) -> dict[str, list[dict]]:
    return {table: list(open_table(real_dir, table)) for table in ROW_COUNTS}


# --- the real files -----------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(ROW_COUNTS))
def test_row_counts_of_the_real_files(real: dict[str, list[dict]], table: str) -> None:
    assert len(real[table]) == ROW_COUNTS[table]


def test_records_are_typed_dicts_with_clean_names(real: dict[str, list[dict]]) -> None:
    assert real["account"][0] == {
        "account_id": 576,
        "district_id": 55,
        "frequency": "POPLATEK MESICNE",
        "date": dt.date(1993, 1, 1),
    }
    assert real["client"][0] == {
        "client_id": 1,
        "birth_number": "706213",  # digit strings stay strings
        "district_id": 18,
        "gender": "F",
        "birth_date": dt.date(1970, 12, 13),
    }
    assert real["card"][0]["issued"] == dt.date(1993, 11, 7)
    loan = real["loan"][0]
    assert (loan["amount"], loan["duration"], loan["payments"]) == (96396, 12, Decimal("8033.00"))
    assert real["order"][0]["account_to"] == "87144583"
    prague = real["district"][0]
    assert prague["district_name"] == "Hl.m. Praha"
    assert prague["urban_ratio"] == Decimal("100.0")
    assert prague["unemployment_95"] == Decimal("0.29")


def test_district_question_mark_is_missing(real: dict[str, list[dict]]) -> None:
    missing = {
        (d["district_id"], column)
        for d in real["district"]
        for column, value in d.items()
        if value is None
    }
    assert missing == {(69, "unemployment_95"), (69, "crimes_95")}


def test_birth_numbers_give_gender_and_1900s_dates(real: dict[str, list[dict]]) -> None:
    clients = real["client"]
    assert Counter(c["gender"] for c in clients) == {"F": 2_645, "M": 2_724}
    years = [c["birth_date"].year for c in clients]
    assert (min(years), max(years)) == (1911, 1987)  # not 2011: no %y
    woman = next(c for c in clients if c["birth_number"] == "406009")
    assert (woman["gender"], woman["birth_date"]) == ("F", dt.date(1940, 10, 9))


def test_trans_keeps_the_three_spellings_of_empty(real: dict[str, list[dict]]) -> None:
    trans = real["trans"]
    first = trans[0]  # 695247;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;
    assert first["k_symbol"] == "" and first["bank"] is None and first["account"] is None
    assert first["amount"] == Decimal("700.00")
    spellings = Counter((t["bank"] is None, t["bank"] == "", t["account"]) for t in trans
                        if t["bank"] in (None, ""))  # fmt: skip
    assert spellings == {(True, False, None): 38_224, (False, True, "0"): 763}
    k_symbols = Counter(t["k_symbol"] for t in trans)
    assert (k_symbols[""], k_symbols[" "]) == (26_197, 1_677)
    interest = [t for t in trans if t["k_symbol"] == "UROK"]
    assert {t["operation"] for t in interest} == {""}
    assert len(interest) == Counter(t["operation"] for t in trans)[""]


def test_normalize_blanks_maps_all_empties_to_none(real_dir: Path) -> None:
    rows = list(open_table(real_dir, "trans", normalize_blanks=True))
    assert not any(row["k_symbol"] in ("", " ") for row in rows)
    assert not any(row["bank"] == "" or row["operation"] == "" for row in rows)
    assert sum(row["k_symbol"] is None for row in rows) == 26_197 + 1_677
    assert [normalize_blank(v) for v in (None, "", " ", "UROK", 0)] == [None, None, None, "UROK", 0]


def test_every_foreign_key_resolves_in_the_real_files(real_dir: Path) -> None:
    assert foreign_key_violations(real_dir) == []


def test_foreign_key_violations_are_reported(real_dir: Path, tmp_path: Path) -> None:
    for table in ROW_COUNTS:
        source = find_table_file(real_dir, table)
        (tmp_path / source.name).write_bytes(source.read_bytes())
    with open(tmp_path / "loan.asc", "ab") as loan:
        loan.write(b'9999;999999;981230;1200;12;100.00;"C"\r\n')
    (violation,) = foreign_key_violations(tmp_path)
    assert (violation.table, violation.line, violation.column, violation.value) == (
        "loan", 684, "account_id", 999999,
    )  # fmt: skip


# --- sources and file names ---------------------------------------------------------------------


def test_find_table_file_accepts_asc_csv_and_trans_prefix(real_dir: Path, tmp_path: Path) -> None:
    assert find_table_file(real_dir, "trans").name == "trans_prefix.asc"
    (tmp_path / "trans.csv").write_bytes(b"")
    (tmp_path / "ACCOUNT.ASC").write_bytes(b"")
    assert find_table_file(tmp_path, "trans").name == "trans.csv"
    assert find_table_file(tmp_path, "account").name == "ACCOUNT.ASC"


def test_missing_file_names_the_expected_paths(tmp_path: Path) -> None:
    with pytest.raises(BerkaFileNotFoundError) as error:
        find_table_file(tmp_path, "trans")
    message = str(error.value)
    for name in ("trans.asc", "trans.csv", "trans_prefix.asc", "trans_prefix.csv"):
        assert str(tmp_path / name) in message
    with pytest.raises(FileNotFoundError, match=r"account\.asc"):
        list(TableReader(tmp_path / "account.asc", "account"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_table_file(tmp_path / "nowhere", "loan")


def test_reads_binary_and_text_streams_and_lf_copies(real_dir: Path) -> None:
    data = (real_dir / "account.asc").read_bytes()
    from_bytes = list(TableReader(io.BytesIO(data), "account"))
    from_text = list(read_table(io.StringIO(data.decode("ascii"), newline=""), "account"))
    lf_copy = data.replace(b"\r\n", b"\n").decode("ascii")
    from_lf = list(read_table(io.StringIO(lf_copy, newline=""), "account"))
    assert len(from_bytes) == 4_500
    assert from_bytes == from_text == from_lf


# --- malformed input ----------------------------------------------------------------------------

ACCOUNT_HEADER = '"account_id";"district_id";"frequency";"date"\r\n'
GOOD = ['576;55;"POPLATEK MESICNE";930101\r\n', '3818;74;"POPLATEK MESICNE";930101\r\n']


def _write(tmp_path: Path, text: str, name: str = "account.asc") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    return path


def _error(path: Path, table: str = "account") -> BerkaFormatError:
    with pytest.raises(BerkaFormatError) as error:
        list(TableReader(path, table))
    assert str(path) in str(error.value)
    return error.value


def test_empty_file(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ""))
    assert error.line == 1 and "empty" in str(error)


def test_truncated_last_line(tmp_path: Path) -> None:
    path = _write(tmp_path, ACCOUNT_HEADER + GOOD[0] + '3818;74;"POPLATEK MES')
    error = _error(path)
    assert error.line == 3 and "truncated" in str(error)
    # Cut right before the CRLF: the fields parse, but a complete file ends with a line end.
    error = _error(_write(tmp_path, ACCOUNT_HEADER + GOOD[0] + GOOD[1][:-2]))
    assert error.line == 3 and "truncated" in str(error)


def test_truncated_header(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ACCOUNT_HEADER[:20]))
    assert error.line == 1 and "truncated" in str(error)


def test_comma_delimited_file_is_named_as_such(tmp_path: Path) -> None:
    text = ACCOUNT_HEADER.replace(";", ",") + GOOD[0].replace(";", ",")
    error = _error(_write(tmp_path, text))
    assert error.line == 1
    assert "comma-delimited" in str(error) and "';'" in str(error)


def test_comma_delimited_row_after_a_good_header(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ACCOUNT_HEADER + GOOD[0] + GOOD[1].replace(";", ",")))
    assert error.line == 3 and "comma-delimited" in str(error)


def test_header_of_another_table(real_dir: Path) -> None:
    error = _error(real_dir / "loan.asc", "account")
    assert "header of the loan table" in str(error)


def test_bad_date_names_line_column_and_value(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ACCOUNT_HEADER + GOOD[0] + GOOD[1].replace("930101", "931301")))
    assert (error.line, error.column, error.value) == (3, "date", "931301")
    assert "month must be in 1..12" in str(error)
    assert "line 3: column 'date': value '931301'" in str(error)


def test_bad_number_names_line_column_and_value(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ACCOUNT_HEADER + GOOD[0] + GOOD[1].replace("74;", "7x;")))
    assert (error.line, error.column, error.value) == (3, "district_id", "7x")
    assert "integer" in error.reason


@pytest.mark.parametrize("amount", ["700", "700.0", " 700.00", "1_700.00", "NaN", "7e2", "+700.00"])
def test_money_must_have_exactly_two_decimals(tmp_path: Path, amount: str) -> None:
    header = '"order_id";"account_id";"bank_to";"account_to";"amount";"k_symbol"\r\n'
    path = _write(tmp_path, header + f'1;1;"YZ";"87144583";{amount};"SIPO"\r\n', "order.asc")
    error = _error(path, "order")
    assert (error.line, error.column, error.value) == (2, "amount", amount)


def test_bad_category_and_quoting(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ACCOUNT_HEADER + '1;1;"POPLATEK ROCNE";930101\r\n'))
    assert (error.column, error.value) == ("frequency", '"POPLATEK ROCNE"')
    error = _error(_write(tmp_path, ACCOUNT_HEADER + "1;1;POPLATEK MESICNE;930101\r\n"))
    assert error.column == "frequency" and "double-quoted" in error.reason


def test_bad_birth_number(tmp_path: Path) -> None:
    header = '"client_id";"birth_number";"district_id"\r\n'
    error = _error(_write(tmp_path, header + '1;"706313";18\r\n', "client.asc"), "client")
    assert (error.line, error.column, error.value) == (2, "birth_number", '"706313"')


def test_wrong_field_count(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, ACCOUNT_HEADER + '576;55;"POPLATEK MESICNE"\r\n'))
    assert error.line == 2 and "expected 4 fields" in str(error)


def test_not_ascii(tmp_path: Path) -> None:
    path = tmp_path / "account.asc"
    path.write_bytes((ACCOUNT_HEADER + GOOD[0]).encode() + '1;1;"POPLATEK Ř";930101\r\n'.encode())
    error = _error(path)
    assert error.line == 3 and "ASCII" in str(error)


def test_duplicate_primary_key_reports_both_lines(tmp_path: Path) -> None:
    text = ACCOUNT_HEADER + GOOD[0] + GOOD[1] + '576;1;"POPLATEK TYDNE";940101\r\n'
    with pytest.raises(DuplicateKeyError) as error:
        list(TableReader(_write(tmp_path, text), "account"))
    assert (error.value.line, error.value.first_line, error.value.value) == (4, 2, "576")
    assert "line 4" in str(error.value) and "line 2" in str(error.value)


def test_duplicate_in_a_stream_still_names_its_line() -> None:
    stream = io.StringIO(ACCOUNT_HEADER + GOOD[0] + GOOD[0], newline="")
    with pytest.raises(DuplicateKeyError) as error:
        list(TableReader(stream, "account"))
    assert error.value.line == 3 and "earlier line" in str(error.value)


def test_lenient_mode_yields_good_rows_and_quarantines_bad_ones(tmp_path: Path) -> None:
    lines = [
        ACCOUNT_HEADER,
        GOOD[0],
        '1;1;"POPLATEK MESICNE";931301\r\n',  # bad date
        '2;x;"POPLATEK MESICNE";930101\r\n',  # bad number
        GOOD[1],
        GOOD[0],  # duplicate
        '5;1;"POPLATEK TYDNE";950505\r\n',
        '6;1;"POPLATEK',  # truncated
    ]
    path = _write(tmp_path, "".join(lines))
    reader = TableReader(path, "account", strict=False)
    rows = list(reader)
    assert [r["account_id"] for r in rows] == [576, 3818, 5]
    assert reader.rows_read == 3
    assert [(r.line, r.raw) for r in reader.rejected] == [
        (3, lines[2].rstrip()),
        (4, lines[3].rstrip()),
        (6, lines[5].rstrip()),
        (8, lines[7]),
    ]
    reasons = [r.reason for r in reader.rejected]
    assert "column 'date'" in reasons[0]
    assert "column 'district_id'" in reasons[1]
    assert "duplicate" in reasons[2] and "line 2" in reasons[2]
    assert "truncated" in reasons[3]
    assert all(r.file == str(path) for r in reader.rejected)

    seen: list[RejectedRow] = []
    rows = list(read_table(path, "account", strict=False, on_reject=seen.append))
    assert len(rows) == 3 and len(seen) == 4


def test_lenient_mode_still_refuses_an_unreadable_file(tmp_path: Path) -> None:
    path = _write(tmp_path, ACCOUNT_HEADER.replace(";", ",") + GOOD[0])
    with pytest.raises(BerkaFormatError, match="comma-delimited"):
        list(TableReader(path, "account", strict=False))
