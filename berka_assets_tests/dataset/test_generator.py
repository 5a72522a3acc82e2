from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from berka_core.dataset import generate_cli
from berka_core.dataset.generator import GenerationResult, generate
from berka_core.dataset.reader import foreign_key_violations, open_table
from berka_core.dataset.schema import TABLES
from berka_core.dataset.synthetic_shape import (
    ACCOUNTS_OPENED_PER_YEAR,
    FREQUENCY_COUNTS,
    FULL_TRANS_COUNTS,
    FULL_TRANS_MIX,
    mix_differences,
    mix_report,
    month_index,
)

from .conftest import TEST_SCALE

FILES = [f"{table}.asc" for table in TABLES]


@pytest.fixture(scope="module")
def tables(generated: GenerationResult) -> dict[str, list[dict]]:
    # Strict reading: every generated file must pass the same checks as the real ones.
    return {table: list(open_table(generated.out_dir, table)) for table in TABLES}


def test_writes_all_eight_files_with_the_real_proportions(
    generated: GenerationResult, tables: dict[str, list[dict]]
) -> None:
    assert sorted(p.name for p in generated.out_dir.iterdir()) == sorted(FILES)
    assert {t: len(rows) for t, rows in tables.items()} == generated.rows
    assert len(tables["account"]) == 90 and len(tables["district"]) == 77
    assert len(tables["client"]) == len(tables["disp"]) == 90 + 17  # 869 / 4500 disponents
    assert len(tables["card"]) == 18
    assert 12 <= len(tables["loan"]) <= 14
    # round(real count x scale) per k_symbol; every loan has its UVER order.
    assert Counter(o["k_symbol"] for o in tables["order"]) == {
        "SIPO": 70, " ": 28, "UVER": max(14, len(tables["loan"])), "POJISTNE": 11, "LEASING": 7,
    }  # fmt: skip
    assert 0.85 < len(tables["trans"]) / (1_056_320 * TEST_SCALE) < 1.15


def test_foreign_keys_resolve(generated: GenerationResult) -> None:
    assert foreign_key_violations(generated.out_dir) == []


def test_accounts_follow_the_real_years_and_frequencies(tables: dict[str, list[dict]]) -> None:
    years = Counter(a["date"].year for a in tables["account"])
    assert years == {1993: 23, 1994: 9, 1995: 13, 1996: 27, 1997: 18}
    assert set(years) == set(ACCOUNTS_OPENED_PER_YEAR)
    assert Counter(a["frequency"] for a in tables["account"]) == {
        "POPLATEK MESICNE": 83, "POPLATEK TYDNE": 5, "POPLATEK PO OBRATU": 2,
    }  # fmt: skip
    assert set(FREQUENCY_COUNTS) == {"POPLATEK MESICNE", "POPLATEK TYDNE", "POPLATEK PO OBRATU"}
    dates = [a["date"] for a in tables["account"]]
    assert dates == sorted(dates) and dates[0] == dt.date(1993, 1, 1)


def test_dispositions_and_clients(tables: dict[str, list[dict]]) -> None:
    disps = tables["disp"]
    owners = Counter(d["account_id"] for d in disps if d["type"] == "OWNER")
    assert set(owners) == {a["account_id"] for a in tables["account"]}
    assert set(owners.values()) == {1}
    disponents = Counter(d["account_id"] for d in disps if d["type"] == "DISPONENT")
    assert len(disponents) == 17 and set(disponents.values()) == {1}
    assert sorted(d["client_id"] for d in disps) == sorted(c["client_id"] for c in tables["client"])
    clients = tables["client"]
    women = sum(c["gender"] == "F" for c in clients)
    assert women == round(107 * 2645 / 5369)
    assert all(1911 <= c["birth_date"].year <= 1987 for c in clients)
    women_months = {int(c["birth_number"][2:4]) for c in clients if c["gender"] == "F"}
    assert women_months <= set(range(51, 63))


def test_cards_only_on_owner_dispositions(tables: dict[str, list[dict]]) -> None:
    disp = {d["disp_id"]: d for d in tables["disp"]}
    opened = {a["account_id"]: a["date"] for a in tables["account"]}
    for card in tables["card"]:
        owner = disp[card["disp_id"]]
        assert owner["type"] == "OWNER"
        assert opened[owner["account_id"]] < card["issued"] <= dt.date(1998, 12, 31)
    assert Counter(c["type"] for c in tables["card"]) == {"classic": 13, "junior": 3, "gold": 2}


def test_loans(tables: dict[str, list[dict]]) -> None:
    loans = tables["loan"]
    assert len({loan["account_id"] for loan in loans}) == len(loans)  # at most one per account
    opened = {a["account_id"]: a["date"] for a in tables["account"]}
    for loan in loans:
        assert loan["amount"] == loan["duration"] * loan["payments"]
        assert loan["duration"] in (12, 24, 36, 48, 60)
        finished = month_index(loan["date"]) + loan["duration"] <= month_index(dt.date(1998, 12, 1))
        assert finished == (loan["status"] in ("A", "B")), loan
        assert 102 <= (loan["date"] - opened[loan["account_id"]]).days <= 697


def test_trans_mix_is_within_2_points_of_the_full_real_file(tables: dict[str, list[dict]]) -> None:
    differences = mix_differences(mix_report(tables["trans"]))
    worst = {column: max(map(abs, values.values())) for column, values in differences.items()}
    assert set(differences) == {"type", "operation", "k_symbol"}
    assert all(points < 2.0 for points in worst.values()), differences
    # No value appears that the real file does not have.
    for column, values in differences.items():
        assert set(values) == set(FULL_TRANS_COUNTS[column])


def test_trans_balances_are_running_totals(tables: dict[str, list[dict]]) -> None:
    opened = {a["account_id"]: a["date"] for a in tables["account"]}
    balance: dict[int, Decimal] = {}
    for row in tables["trans"]:
        account = row["account_id"]
        sign = 1 if row["type"] == "PRIJEM" else -1
        if account not in balance:
            assert (row["operation"], row["date"]) == ("VKLAD", opened[account])
            assert row["balance"] == row["amount"]
        else:
            assert row["balance"] == balance[account] + sign * row["amount"], row
        balance[account] = row["balance"]
    assert set(balance) == set(opened)  # every account has transactions


def test_trans_order_ids_and_ranges(tables: dict[str, list[dict]]) -> None:
    trans = tables["trans"]
    dates = [t["date"] for t in trans]
    assert dates == sorted(dates)
    assert dates[0] == dt.date(1993, 1, 1) and dates[-1] == dt.date(1998, 12, 31)
    ids = [t["trans_id"] for t in trans]
    assert len(set(ids)) == len(ids)
    assert ids != sorted(ids)  # sorted by date, not by id
    assert all(Decimal(0) <= t["amount"] <= Decimal(87_400) for t in trans)
    # Where bank is "" the partner account is "0", as in the real file.
    assert {t["account"] for t in trans if t["bank"] == ""} == {"0"}


def test_month_end_interest_and_fees(tables: dict[str, list[dict]]) -> None:
    frequency = {a["account_id"]: a["frequency"] for a in tables["account"]}
    fee = {"POPLATEK MESICNE": Decimal("14.60"), "POPLATEK TYDNE": Decimal("30.00"),
           "POPLATEK PO OBRATU": Decimal("100.00")}  # fmt: skip
    for row in tables["trans"]:
        month_end = (row["date"] + dt.timedelta(days=1)).day == 1
        if row["k_symbol"] == "UROK":
            assert (row["type"], row["operation"], month_end) == ("PRIJEM", "", True)
        if row["k_symbol"] == "SLUZBY":
            assert row["amount"] == fee[frequency[row["account_id"]]] and month_end
        if row["operation"] == "":
            assert row["k_symbol"] == "UROK"


def test_permanent_orders_are_debited_monthly(tables: dict[str, list[dict]]) -> None:
    orders = {(o["account_id"], o["bank_to"], o["account_to"]): o for o in tables["order"]}
    debits: dict[tuple, list[dt.date]] = defaultdict(list)
    for row in tables["trans"]:
        if row["operation"] == "PREVOD NA UCET":
            order = orders[(row["account_id"], row["bank"], row["account"])]
            assert row["amount"] == order["amount"]
            expected = "" if order["k_symbol"] == "LEASING" else order["k_symbol"]
            assert row["k_symbol"] == expected
            debits[(row["account_id"], row["bank"], row["account"])].append(row["date"])
    assert debits
    for dates in debits.values():
        months = [month_index(d) for d in dates]
        assert len(set(months)) == len(months)  # at most once a month


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", scale=0.01, seed=3)
    again = generate(tmp_path / "b", scale=0.01, seed=3)
    other = generate(tmp_path / "c", scale=0.01, seed=4)
    for name in FILES:
        assert (first.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name
    assert (first.out_dir / "trans.asc").read_bytes() != (other.out_dir / "trans.asc").read_bytes()
    assert (first.out_dir / "district.asc").read_bytes() == (
        other.out_dir / "district.asc"
    ).read_bytes()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate_cli.main(["--scale", "0.005", "--seed", "1", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert "trans rows/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        generate_cli.main(["--scale", "0", "--out", str(tmp_path)])


def test_mix_report_counts_unquoted_empty_as_empty() -> None:
    rows = [
        {"type": "PRIJEM", "operation": "", "k_symbol": "UROK"},
        {"type": "VYDAJ", "operation": "VYBER", "k_symbol": None},
        {"type": "VYDAJ", "operation": "VYBER", "k_symbol": ""},
        {"type": "VYDAJ", "operation": "VYBER", "k_symbol": " "},
    ]
    report = mix_report(rows)
    assert report["type"] == {"PRIJEM": 0.25, "VYDAJ": 0.75}
    assert report["k_symbol"] == {"UROK": 0.25, "": 0.5, " ": 0.25}
    assert sum(FULL_TRANS_MIX["k_symbol"].values()) == pytest.approx(1.0)
    assert mix_differences(report)["type"]["VYBER"] == pytest.approx(-100 * 16_666 / 1_056_320)


def test_generator_as_a_dagster_asset(tmp_path) -> None:
    import dagster as dg

    from berka_assets.assets.synthetic import synthetic_berka
    from berka_core.dataset.reader import open_table

    result = dg.materialize([synthetic_berka], run_config={"ops": {"files__synthetic_berka": {
        "config": {"scale": 0.005, "seed": 3, "out_dir": str(tmp_path)}}}})
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    trans = sum(1 for _ in open_table(tmp_path, "trans"))
    assert metadata["dagster/row_count"].value == trans > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{t}.asc" for t in ("account", "card", "client", "disp", "district", "loan", "order",
                             "trans"))
