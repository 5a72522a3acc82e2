"""The trans stream as blocks of consecutive lines, encoded, for the full-speed replay.

A block covers lines first_line..last_line of the file and holds, in line order, the message
bodies of its valid rows (each ending just before the send time) and its rejected rows. Each
chunk of ~4 MB goes through `columnar` (all rows at once, in C++) when it is clean, else through
the reader row by row (exact reasons and line numbers); both share one set of seen trans_ids, so
every row gets the same verdict whichever way it went.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa

from berka_core.dataset.errors import RejectedRow
from berka_core.dataset.reader import SeenKeys, TableReader
from berka_core.messages import trans_message
from berka_core.producer.columnar import CHUNK_BYTES, MATCHES_CONTRACT, ColumnarEncoder
from berka_core.producer.encoding import Encoder, choose_encoder, encode_record_exact

_BODY_END = b'"sent_at_ms":0}'  # what an encoder writes last for sent_at_ms=0


@dataclass
class RowBlock:
    first_line: int
    last_line: int
    bodies: pa.Array | list[bytes]  # binary
    keys: list[bytes]
    trans_ids: np.ndarray  # int64
    lines: np.ndarray  # int64, the line of each body
    dates: np.ndarray  # datetime64[D]
    rejects: list[RejectedRow] = field(default_factory=list)
    skipped: int = 0  # rows left out by the date range

    def __len__(self) -> int:
        return len(self.keys)

    def line_of(self, trans_id: int) -> int:
        return int(self.lines[np.flatnonzero(self.trans_ids == trans_id)[0]])

    def head(self, rows: int, last_line: int | None = None) -> RowBlock:
        """The first `rows` bodies, ending at the line of the last one (or `last_line`), with
        the rejects up to there."""
        if last_line is None:
            last_line = int(self.lines[rows - 1]) if rows else self.first_line - 1
        return RowBlock(
            self.first_line, last_line, self.bodies[:rows], self.keys[:rows],
            self.trans_ids[:rows], self.lines[:rows], self.dates[:rows],
            [r for r in self.rejects if r.line <= last_line],
            skipped=self.skipped,  # skipped rows lie before any kept one or are counted here
        )

    def split(self, rows: int) -> Iterator[RowBlock]:
        """Consecutive blocks of at most `rows` bodies that cover the same lines."""
        if len(self) <= rows:
            yield self
            return
        start_line, skipped = self.first_line, self.skipped
        for start in range(0, len(self), rows):
            end = min(start + rows, len(self))
            last_line = self.last_line if end == len(self) else int(self.lines[end - 1])
            yield RowBlock(
                start_line, last_line, self.bodies[start:end], self.keys[start:end],
                self.trans_ids[start:end], self.lines[start:end], self.dates[start:end],
                [r for r in self.rejects if start_line <= r.line <= last_line],
                skipped=skipped,
            )
            start_line, skipped = last_line + 1, 0

    def within(self, date_from: dt.date | None, date_to: dt.date | None) -> tuple[RowBlock, bool]:
        """The block restricted to the date range, and whether a row after `date_to` ended
        it (as in the per-row replay: reading stops at the first such row)."""
        block, ended = self, False
        if date_to is not None:
            after = np.flatnonzero(self.dates > np.datetime64(date_to, "D"))
            if len(after):
                cut = int(after[0])
                block, ended = self.head(cut, int(self.lines[cut]) - 1), True
        if date_from is not None:
            keep = block.dates >= np.datetime64(date_from, "D")
            if not keep.all():
                index = np.flatnonzero(keep)
                bodies = (block.bodies.take(pa.array(index)) if isinstance(block.bodies, pa.Array)
                          else [block.bodies[i] for i in index])
                block = RowBlock(
                    block.first_line, block.last_line, bodies, [block.keys[i] for i in index],
                    block.trans_ids[index], block.lines[index], block.dates[index],
                    block.rejects, skipped=block.skipped + int(len(keep) - len(index)),
                )
        return block, ended


class BlockReader:
    """Blocks of a trans stream whose header (and any resumed-over lines) were read already."""

    def __init__(self, stream: IO[bytes], header: bytes, first_line: int, name: str) -> None:
        self.stream = stream
        self.header = header
        self.next_line = first_line
        self.name = name
        self.seen = SeenKeys()
        self.columnar: ColumnarEncoder | None = None
        if MATCHES_CONTRACT:
            self.columnar = ColumnarEncoder(self.seen, crlf=header.endswith(b"\r\n"))
        self.encoder: Encoder | None = None  # the exact path's, chosen on its first record
        self.encoder_name = "columnar"
        self.exact_chunks = 0
        self.columnar_checked = False

    def __iter__(self) -> Iterator[RowBlock]:
        for chunk in self._chunks():
            rows = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
            first = self.next_line
            self.next_line += rows
            encoded = self.columnar.encode(chunk) if self.columnar is not None else None
            if encoded is not None and not self.columnar_checked:
                self._check_columnar(chunk, encoded.bodies[0].as_py())
            if encoded is not None and self.columnar is not None:
                lines = np.arange(first, first + rows, dtype=np.int64)
                yield RowBlock(first, first + rows - 1, encoded.bodies, encoded.keys,
                               encoded.trans_ids, lines,
                               encoded.dates.to_numpy(zero_copy_only=False).astype("M8[D]"))
            else:
                self.exact_chunks += 1
                yield self._exact(chunk, first, first + rows - 1)

    def _check_columnar(self, chunk: bytes, body: bytes) -> None:
        """Compare the first clean row's body with the contract's own encoder once; on a
        difference the whole run takes the exact path."""
        self.columnar_checked = True
        first_line = chunk[: chunk.index(b"\n") + 1]
        record = next(iter(TableReader([self.header, first_line], "trans", name=self.name)))
        if encode_record_exact(record, 0)[:-2] != body:
            self.columnar = None
            self.encoder_name = "exact (columnar encoder differs from the contract)"

    def _chunks(self) -> Iterator[bytes]:
        """Whole lines, ~CHUNK_BYTES at a time; a last line without terminator on its own."""
        rest = b""
        while True:
            data = self.stream.read(CHUNK_BYTES)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            chunk, rest = data[:cut], data[cut:]
            if chunk:
                yield chunk
        if rest:
            yield rest

    def _exact(self, chunk: bytes, first: int, last: int) -> RowBlock:
        """The chunk row by row through the reader: what it rejects and why, at which line."""
        rejects: list[RejectedRow] = []
        shift = first - 2  # the reader numbers the header 1 and the chunk's first line 2
        reader = TableReader(itertools.chain([self.header], io.BytesIO(chunk)), "trans",
                             strict=False, on_reject=rejects.append, seen_keys=self.seen,
                             name=self.name)
        bodies: list[bytes] = []
        keys: list[bytes] = []
        ids: list[int] = []
        lines: list[int] = []
        dates: list[dt.date] = []
        for record in reader:
            if self.encoder is None:
                self.encoder, self.encoder_name = choose_encoder(record)
            value = self.encoder(record, 0)
            assert value.endswith(_BODY_END), value[-40:]
            bodies.append(value[:-2])
            keys.append(trans_message.key(record["account_id"]))
            ids.append(record["trans_id"])
            lines.append(reader.line_number + shift)
            dates.append(record["date"])
        return RowBlock(
            first, last, bodies, keys, np.array(ids, np.int64), np.array(lines, np.int64),
            np.array(dates, "M8[D]"), [shift_row(row, shift) for row in rejects],
        )


def shift_row(row: RejectedRow, skip: int) -> RejectedRow:
    """The row with line numbers of the whole file: the reader only saw it after `skip`."""
    if not skip:
        return row
    line = row.line + skip
    # The reason is the reader's "<file>: line <n>: ..." text; fix its line number too.
    prefix = f"{row.file}: line {row.line}:"
    reason = row.reason
    if reason.startswith(prefix):
        reason = f"{row.file}: line {line}:{reason[len(prefix):]}"
    return RejectedRow(row.file, line, row.raw, reason)
