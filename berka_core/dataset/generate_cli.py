"""`berka-generate --scale S --seed N --out DIR`: write a synthetic Berka data set."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from berka_core.dataset.generator import SHARD_ACCOUNTS, generate


# argparse names a type function in its error ("invalid _positive_float value"), unless it
# raises ArgumentTypeError: these do, so the message says what was expected.
def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berka-generate",
        description=(
            "Write the eight Berka tables (account.asc ... trans.asc) in the exact format of the "
            "original files. Scale 1 is the real volume: 4,500 accounts, ~1.06M transactions."
        ),
    )
    parser.add_argument(
        "--scale",
        type=positive_number,
        default=1.0,
        metavar="S",
        help=f"size relative to the real data set, e.g. 0.1 or 20; accounts are generated "
        f"{SHARD_ACCOUNTS:,} at a time, so memory stays flat (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=integer,
        default=0,
        metavar="N",
        help="random seed: the same seed and scale give the same bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to write the files into, created if missing; existing files of the same "
        "names are replaced",
    )
    return parser


def _progress(line: str) -> None:
    # stderr, so stdout keeps only the summary
    print(f"  {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out: {str(args.out)!r} exists and is not a folder")
    try:
        result = generate(args.out, scale=args.scale, seed=args.seed, progress=_progress)
    except OSError as error:  # disk full, no permission: a message, not a traceback
        print(f"berka-generate: error: cannot write {args.out}: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{table} {rows:,}" for table, rows in result.rows.items())
    print(f"wrote {result.out_dir}: {counts}")
    print(f"{result.seconds:.1f} s, {result.trans_rows_per_second:,.0f} trans rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
