"""The layers' contracts (.importlinter): runtime code never imports the developer tooling, and
the shared Spark code needs no Dagster. `make lint` runs the same check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from berka_core.config import REPO_ROOT


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout, result.stdout[-2000:]
