"""The trans rows a replay sends: after the start position, within the date range.

Two shapes of the same rows: one (line, payload) at a time for the paced loop, RowBlocks of
encoded lines for the full-speed loop.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

from berka_core.dataset.errors import RejectedRow
from berka_core.dataset.reader import TableReader
from berka_core.producer.blocks import BlockReader, RowBlock, shift_row
from berka_core.producer.position import Position
from berka_core.producer.results import PositionMismatchError

BLOCK_MESSAGES = 8192  # messages per produce_batch call: the unit of position and of stops
SKIPPED = object()  # payload of a row left out by the date range


class SourceRows:
    """Reads the trans file of one run; remembers what the reading found out on the way."""

    def __init__(self, date_from: dt.date | None, date_to: dt.date | None) -> None:
        self.date_from, self.date_to = date_from, date_to
        self.date_to_reached = False  # the rows stopped at a date after date_to
        # Set by the block reader, or by the per-row sender when it picks one.
        self.encoder = "none (no record sent)"

    def records(self, stream: Any, uri: str, start: Position) -> Iterator[tuple[int, Any]]:
        """(line, record | RejectedRow | SKIPPED) in line order, after the start position."""
        lines = iter(stream)
        header = next(lines, b"")
        skip = start.last_line - 1
        if skip > 0:
            skip_lines(lines, skip, start, uri)
        rejects: list[RejectedRow] = []
        reader = TableReader(itertools.chain([header], lines), "trans", strict=False,
                             on_reject=rejects.append, name=uri)
        date_from, date_to = self.date_from, self.date_to
        if date_from is None and date_to is None:
            for record in reader:
                if rejects:
                    yield from _take(rejects, skip)
                yield reader.line_number + skip, record
        else:
            for record in reader:
                if rejects:
                    yield from _take(rejects, skip)
                date = record["date"]
                if date_to is not None and date > date_to:
                    self.date_to_reached = True
                    return
                if date_from is not None and date < date_from:
                    yield reader.line_number + skip, SKIPPED
                    continue
                yield reader.line_number + skip, record
        yield from _take(rejects, skip)

    def blocks(self, stream: Any, uri: str, start: Position) -> Iterator[RowBlock]:
        """Blocks of lines after the start position, limited to the date range."""
        header = stream.readline()
        # The header is checked (and an empty file reported) exactly as the per-row path does.
        for _ in TableReader([header], "trans", strict=False, name=uri):
            pass
        skip = start.last_line - 1
        if skip > 0:
            skip_lines(iter(stream.readline, b""), skip, start, uri)
        reader = BlockReader(stream, header, max(start.last_line, 1) + 1, uri)
        for block in reader:
            self.encoder = reader.encoder_name
            block, self.date_to_reached = block.within(self.date_from, self.date_to)
            yield from block.split(BLOCK_MESSAGES)
            if self.date_to_reached:
                return


def _take(rejects: list[RejectedRow], skip: int) -> Iterator[tuple[int, RejectedRow]]:
    rows = [shift_row(row, skip) for row in rejects]
    rejects.clear()
    return ((row.line, row) for row in rows)


def skip_lines(lines: Iterator[bytes], skip: int, start: Position, uri: str) -> None:
    """Pass the lines up to the start position, checking they hold its last trans_id."""
    # Raw lines, not parsed: resuming near the end of a 1M-row file costs a fraction of a
    # second. The stored last_trans_id must be among them, or the file has changed.
    prefix = f"{start.last_trans_id};".encode() if start.last_trans_id else None
    found = prefix is None
    for count in range(skip):
        raw = next(lines, None)
        if raw is None:
            raise PositionMismatchError(
                f"the stored position of {uri} on {start.topic} is line "
                f"{start.last_line:,} but the file has only {count + 1:,} lines: it changed "
                "since. Replay it with start=beginning (--start beginning)."
            )
        if not found and raw.startswith(prefix):  # type: ignore[arg-type]
            found = True
    if not found:
        raise PositionMismatchError(
            f"the stored position of {uri} on {start.topic} (line {start.last_line:,}, "
            f"trans_id {start.last_trans_id}) does not match the file: that trans_id is "
            "not among its first lines. Replay it with start=beginning (--start beginning)."
        )
