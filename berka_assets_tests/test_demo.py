"""The README's main command: it completes and prints trends that an independent plain-Python
computation over the same transactions confirms."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest

from berka_assets_tests import independent
from berka_core.config import REPO_ROOT, Settings

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


def test_demo_prints_trends_equal_to_an_independent_computation(stack: Settings) -> None:
    # Its own topic and Hive database: the demo starts from the file's first line whatever
    # earlier demos sent to `trans`. Its subprocess timeout sits inside pytest's (600 s).
    own = f"demo_{uuid.uuid4().hex[:8]}"
    environment = {**os.environ, "BERKA_KAFKA_TOPIC": own, "BERKA_KAFKA_DLQ_TOPIC": f"{own}.dlq",
                   "BERKA_HIVE_DATABASE": own}
    result = subprocess.run(
        [sys.executable, "-m", "berka_stack.demo", "--transactions", "2500", "--rate", "2000"],
        capture_output=True, text=True, timeout=540, cwd=REPO_ROOT, env=environment,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout
    for step in range(1, 9):
        assert f"step {step}/8" in output
    # From the local S3 store, as the demo uploads the sample there first.
    assert re.search(rf"replay: 2,500 messages delivered to {own} from s3://berka/raw/"
                     r"trans_prefix\.asc ", output), output
    assert re.search(r"mysql/account +4,500 rows +from s3://berka/raw/account\.asc", output)
    assert "FAILED" not in output

    expected = independent.trends(SAMPLE, SAMPLE_TRANS,
                                  independent.first_trans_ids(SAMPLE_TRANS, 2_500))
    yearly = [(int(y), int(number(n)), number(a))
              for y, n, a in printed_table(output, "yearly_trend")]
    assert yearly == expected["yearly_trend"]
    by_age = [(band, gender, int(number(n)), number(total), number(avg))
              for band, gender, n, total, avg in printed_table(output, "trans_by_age_gender")]
    assert sorted(by_age) == expected["trans_by_age_gender"]
    monthly = [(int(y), int(m), int(number(n)), number(a))
               for y, m, n, a in printed_table(output, "monthly_trend")]
    assert monthly == expected["monthly_trend"]
