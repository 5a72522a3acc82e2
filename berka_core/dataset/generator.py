"""Synthetic Berka data in the exact physical format of the real files, at any scale.

Scale 1 gives about the real volume: 4,500 accounts and ~1.06M transactions over 1993-1998.
The shape follows the real data (counts from FORMAT.md and the full trans.asc): accounts opened
per year, statement frequencies, one OWNER per account and a DISPONENT on ~1 account in 5,
gender and birth decades, card types (OWNER dispositions only), loan statuses consistent with
their dates (A/B finished, C/D running), permanent orders by k_symbol, and the transaction mix
by type, operation and k_symbol.

The work is split by job: synthetic_shape holds the real counts and rates (and the mix
report), synthetic_tables builds a shard's static tables, synthetic_trans writes its trans
rows, synthetic_draws has the random draws they share; this module runs them shard by shard
and merges the shards' files.

Deterministic: one random.Random(seed) drives everything, in a fixed order.
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import itertools
import math
import os
import random
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from berka_core.dataset.districts import district_records
from berka_core.dataset.schema import get_table, load_order
from berka_core.dataset.synthetic_draws import _allocate, _scaled
from berka_core.dataset.synthetic_shape import (
    ACCOUNTS_OPENED_PER_YEAR,
    FIRST_YEAR,
    REAL_ACCOUNTS,
)
from berka_core.dataset.synthetic_tables import _build_static, _NextIds, _Shard
from berka_core.dataset.synthetic_trans import _write_trans
from berka_core.dataset.writer import TableWriter

# --- accounts and shards ------------------------------------------------------------------------


def _opening_dates(rng: random.Random, n_accounts: int) -> array[int]:
    """Every account's opening date as an ordinal (4 bytes each), in the real yearly counts,
    sorted like account.asc."""
    opened = array("i")
    per_year = _allocate(n_accounts, list(ACCOUNTS_OPENED_PER_YEAR.values()))
    for year, count in zip(ACCOUNTS_OPENED_PER_YEAR, per_year, strict=True):
        days_in_year = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
        first = dt.date(year, 1, 1).toordinal()
        # Sorted by counting per day: no list of all dates, whatever the scale.
        per_day = array("i", bytes(4 * days_in_year))
        for _ in range(count):
            per_day[rng.randrange(days_in_year)] += 1
        for day, accounts_that_day in enumerate(per_day):
            opened.extend(itertools.repeat(first + day, accounts_that_day))
    opened[0] = dt.date(FIRST_YEAR, 1, 1).toordinal()  # the real file starts on 930101
    return opened


def _shard_count(n_accounts: int, shard_accounts: int) -> int:
    return max(1, math.ceil(n_accounts / shard_accounts))


def _shards(opened: Sequence[int], scale: float, shard_accounts: int) -> Iterator[_Shard]:
    """The shards one after the other (each holds its accounts' dates only while in use)."""
    n_accounts = len(opened)
    n_shards = _shard_count(n_accounts, shard_accounts)
    bounds = [n_accounts * i // n_shards for i in range(n_shards + 1)]
    id_low = 1
    for low, high in itertools.pairwise(bounds):
        size = high - low
        id_high = id_low + int(size * 2.53) + 1  # real account ids are this sparse
        yield _Shard(
            opened=[dt.date.fromordinal(day) for day in opened[low:high]],
            scale=scale * size / n_accounts,
            id_low=id_low,
            id_high=id_high,
            slot_base=low,
        )
        id_low = id_high


# --- entry point --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    rows: dict[str, int]  # table -> data rows written
    seconds: float

    @property
    def trans_rows_per_second(self) -> float:
        return self.rows["trans"] / self.seconds if self.seconds else 0.0


# Accounts simulated at a time: a larger scale makes more shards, not more memory.
SHARD_ACCOUNTS = REAL_ACCOUNTS
# Files in date order, and the column their runs are merged on.
_DATE_ORDERED = {"loan": "date", "card": "issued", "trans": "date"}


def generate(
    out: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    seed: int = 0,
    shard_accounts: int = SHARD_ACCOUNTS,
    progress: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Write all eight tables as `<table>.asc` into the folder `out` (created if needed).

    Accounts are generated `shard_accounts` at a time, so peak memory is that of one shard
    whatever the scale; the date-ordered files are then merged from the shards' sorted runs.
    Each file is written under a temporary name and renamed when complete, so a watcher never
    sees half a file. `progress`, if given, gets a line of text after each shard and before the
    merge (a large scale takes minutes).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if shard_accounts < 1:
        raise ValueError(f"shard_accounts must be >= 1, got {shard_accounts}")
    started = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # Nothing here makes reference cycles, and with millions of live objects the cyclic
    # collector's full passes would dominate the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        rows = _generate_into(folder, rng, seed, scale, shard_accounts, progress or _quiet)
    finally:
        if gc_was_enabled:
            gc.enable()
    return GenerationResult(folder, rows, time.perf_counter() - started)


def _quiet(_: str) -> None:
    pass


def _generate_into(
    folder: Path,
    rng: random.Random,
    seed: int,
    scale: float,
    shard_accounts: int,
    progress: Callable[[str], None],
) -> dict[str, int]:
    opened = _opening_dates(rng, max(1, _scaled(REAL_ACCOUNTS, scale)))
    n_accounts = len(opened)
    partial = {table: folder / f".{table}.asc.partial" for table in load_order()}
    runs_dir = folder / ".runs"
    n_shards = _shard_count(n_accounts, shard_accounts)
    merged = n_shards > 1
    if merged:
        runs_dir.mkdir(exist_ok=True)
    writers = {
        table: TableWriter(path, table)
        for table, path in partial.items()
        if not (merged and table in _DATE_ORDERED)
    }
    runs: dict[str, list[Path]] = {table: [] for table in _DATE_ORDERED}
    rows: dict[str, int] = {}
    try:
        writers["district"].write_many(district_records())
        next_ids = _NextIds()
        for index, shard in enumerate(_shards(opened, scale, shard_accounts)):
            # One shard reuses the seed's generator: scale <= 1 gives the same bytes as ever.
            shard_rng = rng if not merged else random.Random(f"berka-{seed}-shard-{index}")
            static = _build_static(shard_rng, shard, next_ids)
            shard_writers = dict(writers)
            if merged:
                for table in _DATE_ORDERED:
                    run = runs_dir / f"{table}.{index:05d}.asc"
                    runs[table].append(run)
                    shard_writers[table] = TableWriter(run, table)
            try:
                for table, values in static.tables.items():
                    for row in values:
                        shard_writers[table].write_values(row)
                static.tables.clear()
                trans_rows = _write_trans(
                    shard_rng, static.accounts, shard_writers["trans"], n_accounts
                )
                progress(f"shard {index + 1}/{n_shards}: {len(shard.opened):,} accounts, "
                         f"{trans_rows:,} trans rows")
                del static, shard  # before the next shard is built, not after
            finally:
                if merged:
                    for table in _DATE_ORDERED:
                        shard_writers[table].close()
        for table, writer in writers.items():
            writer.close()
            rows[table] = writer.rows_written
        if merged:
            progress(f"merging the {n_shards} shards' {', '.join(_DATE_ORDERED)} files by date")
        for table, column in _DATE_ORDERED.items():
            if merged:
                rows[table] = _merge_runs(runs[table], partial[table], table, column)
        for table, path in partial.items():
            os.replace(path, folder / f"{table}.asc")
    finally:
        for writer in writers.values():
            writer.close()
        if merged:
            for run in runs_dir.glob("*.asc"):
                run.unlink()
            runs_dir.rmdir()
    return rows


def _merge_runs(runs: list[Path], dest: Path, table: str, column: str) -> int:
    """Merge date-sorted run files into one (earlier shard first on equal dates)."""
    field = get_table(table).file_column_names.index(column)
    files = [open(run, "rb") for run in runs]  # closed below, all together
    try:
        for stream in files:
            header = stream.readline()
        # The date is YYMMDD of 1993-1999 (one century): its text sorts as the date does.
        merged = heapq.merge(*files, key=lambda line: line.split(b";", field + 1)[field])
        count = 0
        with open(dest, "wb") as out:
            out.write(header)
            for line in merged:
                out.write(line)
                count += 1
        return count
    finally:
        for stream in files:
            stream.close()
