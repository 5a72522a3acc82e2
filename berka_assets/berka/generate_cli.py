"""`berka-generate --scale S --seed N --out DIR`: write a synthetic Berka data set."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from berka_assets.berka.generator import generate


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berka-generate",
        description=(
            "Write the eight Berka tables (account.asc ... trans.asc) in the exact format of the "
            "original files. Scale 1 is the real volume: 4,500 accounts, ~1.06M transactions."
        ),
    )
    parser.add_argument(
        "--scale", type=_positive_float, default=1.0, help="size relative to the real data set"
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = generate(args.out, scale=args.scale, seed=args.seed)
    counts = ", ".join(f"{table} {rows:,}" for table, rows in result.rows.items())
    print(f"wrote {result.out_dir}: {counts}")
    print(f"{result.seconds:.1f} s, {result.trans_rows_per_second:,.0f} trans rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
