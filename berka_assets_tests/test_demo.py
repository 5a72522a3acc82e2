"""The README's main command: it completes and prints trends that an independent plain-Python
computation over the same transactions confirms."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal

import pymysql
import pytest

from berka_assets.config import REPO_ROOT, Settings, secret
from berka_assets_tests import independent

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "data" / "berka"
SAMPLE_TRANS = SAMPLE / "trans_prefix.asc"


def printed_table(output: str, table: str) -> list[tuple[str, ...]]:
    """The rows of one markdown table the demo printed after its title line."""
    block = output.split(f"\n{table} (", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]
    return [tuple(cell.strip() for cell in row.strip("|").split("|")) for row in rows]


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def sent_lines(stack: Settings) -> int:
    connection = pymysql.connect(host=stack.mysql.host, port=stack.mysql.port,
                                 user=stack.mysql.user, database=stack.mysql.database,
                                 password=secret(stack.mysql.password_env))
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_line FROM producer_position WHERE topic = %s "
                       "AND source_uri LIKE %s", (stack.kafka.topic, "%trans_prefix.asc"))
        (last_line,) = cursor.fetchone()
    connection.close()
    return int(last_line)


def test_demo_prints_trends_equal_to_an_independent_computation(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "berka_assets.demo", "--transactions", "2500", "--rate", "2000"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout
    for step in range(1, 8):
        assert f"step {step}/7" in output
    assert re.search(r"replay: 2,500 messages delivered to trans", output)
    assert "FAILED" not in output

    # Everything the demo ever replayed from the sample into `trans` (demos resume).
    transactions = sent_lines(stack) - 1
    expected = independent.trends(
        SAMPLE, SAMPLE_TRANS, _first_ids(transactions)
    )
    yearly = [(int(y), int(number(n)), number(a))
              for y, n, a in printed_table(output, "yearly_trend")]
    assert yearly == expected["yearly_trend"]
    by_age = [(band, gender, int(number(n)), number(total), number(avg))
              for band, gender, n, total, avg in printed_table(output, "trans_by_age_gender")]
    assert sorted(by_age) == expected["trans_by_age_gender"]
    monthly = [(int(y), int(m), int(number(n)), number(a))
               for y, m, n, a in printed_table(output, "monthly_trend")]
    assert monthly == expected["monthly_trend"]


def _first_ids(count: int) -> set[int]:
    with SAMPLE_TRANS.open() as handle:
        next(handle)
        return {int(line.split(";", 1)[0])
                for line, _ in zip(handle, range(count), strict=False)}
