"""Generation in shards (how large scales keep memory flat) gives files as valid as one pass."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from berka_core.dataset.generator import GenerationResult, generate
from berka_core.dataset.reader import foreign_key_violations, open_table
from berka_core.dataset.schema import TABLES

SCALE = 0.05  # 225 accounts
SHARD_ACCOUNTS = 40  # -> 6 shards, merged


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> GenerationResult:
    return generate(tmp_path_factory.mktemp("sharded"), scale=SCALE, seed=5,
                    shard_accounts=SHARD_ACCOUNTS)


@pytest.fixture(scope="module")
def tables(sharded: GenerationResult) -> dict[str, list[dict]]:
    return {table: list(open_table(sharded.out_dir, table)) for table in TABLES}


def test_only_the_eight_files_remain(sharded: GenerationResult,
                                     tables: dict[str, list[dict]]) -> None:
    assert sorted(p.name for p in sharded.out_dir.iterdir()) == sorted(f"{t}.asc" for t in TABLES)
    assert {t: len(rows) for t, rows in tables.items()} == sharded.rows


def test_keys_resolve_and_ids_are_unique(sharded: GenerationResult,
                                         tables: dict[str, list[dict]]) -> None:
    assert foreign_key_violations(sharded.out_dir) == []
    for table, key in (("account", "account_id"), ("client", "client_id"), ("disp", "disp_id"),
                       ("order", "order_id"), ("loan", "loan_id"), ("card", "card_id"),
                       ("trans", "trans_id")):
        ids = [row[key] for row in tables[table]]
        assert len(set(ids)) == len(ids), table
    assert len(tables["account"]) == 225


def test_every_file_keeps_the_real_files_order(tables: dict[str, list[dict]]) -> None:
    def in_order(table: str, column: str) -> bool:
        values = [row[column] for row in tables[table]]
        return values == sorted(values)

    assert in_order("account", "date")
    assert in_order("client", "client_id") and in_order("disp", "disp_id")
    assert in_order("order", "order_id")
    assert in_order("loan", "date") and in_order("card", "issued")
    assert in_order("trans", "date")  # merged from the shards, not concatenated


def test_balances_are_running_totals_across_the_merge(tables: dict[str, list[dict]]) -> None:
    opened = {a["account_id"]: a["date"] for a in tables["account"]}
    balance: dict[int, Decimal] = {}
    for row in tables["trans"]:
        account = row["account_id"]
        if account not in balance:
            assert (row["operation"], row["date"]) == ("VKLAD", opened[account])
            assert row["balance"] == row["amount"]
        else:
            sign = 1 if row["type"] == "PRIJEM" else -1
            assert row["balance"] == balance[account] + sign * row["amount"], row
        balance[account] = row["balance"]
    assert set(balance) == set(opened)


def test_sizes_match_one_pass_generation(tmp_path: Path, sharded: GenerationResult) -> None:
    single = generate(tmp_path, scale=SCALE, seed=5)
    for table in ("account", "district"):
        assert sharded.rows[table] == single.rows[table]
    for table in ("client", "order", "trans"):
        assert abs(sharded.rows[table] / single.rows[table] - 1) < 0.05, table


def test_same_seed_and_shard_size_same_bytes(tmp_path: Path, sharded: GenerationResult) -> None:
    again = generate(tmp_path, scale=SCALE, seed=5, shard_accounts=SHARD_ACCOUNTS)
    for table in TABLES:
        name = f"{table}.asc"
        assert (again.out_dir / name).read_bytes() == (sharded.out_dir / name).read_bytes(), name


def test_shard_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shard_accounts"):
        generate(tmp_path, scale=0.01, shard_accounts=0)
