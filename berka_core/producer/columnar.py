"""Whole blocks of trans lines to message bodies at once, column-wise in pyarrow (C++).

At full speed the per-row path (reader + `encode_record`, ~5 us a row in Python) cannot feed a
producer that queues 400k+ messages/s, so a block of lines goes through one regular expression
(RE2) that accepts only the canonical spelling of a valid row, and the JSON bodies are joined
from the captured fields as they are written: a quoted Berka text of printable ASCII is already
its own JSON literal, an integer without leading zeros is its own JSON number, and money with
exactly two decimals is `money_text`'s output. Categories are looked up in tables built from
the reader's own spellings and the contract's rules.

A block is "clean" only if every line matches, every date exists and no trans_id was seen
before; anything else (a malformed row, an odd but valid spelling such as a leading zero, a
non-ASCII byte) sends the whole block through the exact per-row path, which rejects with the
reader's reasons and line numbers. Both paths share one set of seen trans_ids, so duplicate
detection is the same whichever path a row took. Identity with the contract's own `encode` is
checked by the tests over the whole sample and edge spellings, and at run time on the first row
of every clean block (a difference turns this path off for the run).

Bodies end just before the send timestamp, `"sent_at_ms":`: the producer appends the time
and the closing brace when it really sends the block.
"""

from __future__ import annotations

from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv

from berka_core.dataset import schema
from berka_core.dataset.converters import _date
from berka_core.dataset.reader import SeenKeys
from berka_core.producer.encoding import FAST_ENCODER_MATCHES_CONTRACT

# The contract's layout this module writes is the fast per-row encoder's: same check.
MATCHES_CONTRACT = FAST_ENCODER_MATCHES_CONTRACT

_INT = r"0|[1-9][0-9]{0,17}"  # no leading zero: the text is then the JSON number
# Money as money_text writes it: two decimals, no leading zero, no "-0.00" (all of which the
# reader may accept, in other spellings; those rows take the exact path).
_MONEY = r"(?:0|-?[1-9][0-9]{0,14})\.[0-9]{2}|-0\.(?:0[1-9]|[1-9][0-9])"
_QUOTED = r'|"[ !#-\[\]-~]*"'  # unquoted empty, or printable ASCII without " and \
_FIELDS = (
    ("trans_id", _INT), ("account_id", _INT), ("date", "[0-9]{6}"), ("type", _QUOTED),
    ("operation", _QUOTED), ("amount", _MONEY), ("balance", _MONEY), ("k_symbol", _QUOTED),
    ("bank", r'|"[ !#-\[\]-~]{0,2}"'), ("account", r'|"[0-9]{0,10}"|" "'),
)
CHUNK_BYTES = 4 << 20  # ~45k rows: big enough for C++ to dominate, small for latency


def _literal(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _category_literals(column: str, to_message) -> tuple[pa.Array, pa.Array]:
    """(field spellings, their JSON literals) of a closed-set column, as the reader reads it."""
    table = schema.get_table("trans")
    col = next(c for c in table.file_columns if c.name == column)
    spelled: dict[str, str | None] = {f'"{v}"': v for v in col.values or ()}
    if col.nullable:
        for text, value in (("", None), ('""', ""), ('" "', " ")):
            spelled.setdefault(text, value)
    keys = list(spelled)
    return pa.array(keys), pa.array([_literal(to_message(spelled[k])) for k in keys])


_TYPE = _category_literals("type", lambda v: v)
_OPERATION = _category_literals("operation", lambda v: v or None)  # message_kwargs' rule
_K_SYMBOL = _category_literals("k_symbol", lambda v: v)


def _lookup(field: pa.Array, table: tuple[pa.Array, pa.Array]) -> pa.Array:
    return pc.take(table[1], pc.index_in(field, value_set=table[0]))


def _text_or_null(field: pa.Array) -> pa.Array:
    # A matched quoted field is its own JSON literal; the unquoted empty is None -> null.
    return pc.if_else(pc.equal(field, ""), "null", field)


@dataclass
class EncodedBlock:
    """A clean block: one body per line, in line order."""

    bodies: pa.Array  # binary, each ending with '"sent_at_ms":'
    keys: list[bytes]
    trans_ids: np.ndarray  # int64
    dates: pa.Array  # date32, for the date range


class ColumnarEncoder:
    """Encode chunks of whole trans lines (bytes, every line with its terminator)."""

    def __init__(self, seen: SeenKeys, crlf: bool) -> None:
        self.seen = seen
        self.crlf = crlf
        # quote_char=False keeps each field exactly as written, quotes included: the patterns
        # below then decide what is canonical, not the CSV parser's quoting rules.
        self._read = csv.ReadOptions(column_names=[name for name, _ in _FIELDS],
                                     block_size=CHUNK_BYTES + 1024, use_threads=False)
        self._parse = csv.ParseOptions(delimiter=";", quote_char=False,
                                       ignore_empty_lines=False)
        self._convert = csv.ConvertOptions(
            column_types={name: pa.string() for name, _ in _FIELDS},
            strings_can_be_null=False, quoted_strings_can_be_null=False,
        )
        # Closed sets and dates are checked by their look-ups below; the rest by pattern.
        self._patterns = [
            (index, f"^(?:{pattern})$") for index, (name, pattern) in enumerate(_FIELDS)
            if name not in ("date", "type", "operation", "k_symbol")
        ]

    def encode(self, chunk: bytes) -> EncodedBlock | None:
        """The chunk's bodies, or None if any line needs the exact per-row path.

        The seen trans_ids are only updated for a clean chunk (the exact path records its own).
        """
        rows = chunk.count(b"\n")
        # Every line ends with the file's terminator and holds no other CR or LF (the CSV
        # parser would take a lone CR for a line end); a truncated last line fails here.
        # Non-ASCII bytes are the exact path's to reject.
        if (not rows or not chunk.endswith(b"\n") or not chunk.isascii()
                or chunk.count(b"\r") != (rows if self.crlf else 0)):
            return None
        try:
            table = csv.read_csv(pa.BufferReader(chunk), self._read, self._parse, self._convert)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # a row with another number of fields, or not UTF-8
        if table.num_rows != rows:
            return None
        columns = [column.combine_chunks() for column in table.columns]
        for index, pattern in self._patterns:
            if not pc.all(pc.match_substring_regex(columns[index], pattern)).as_py():
                return None
        (trans_id, account_id, yymmdd, type_, operation, amount, balance, k_symbol, bank,
         account) = columns
        dates, iso = self._dates(yymmdd)
        if dates is None:
            return None  # e.g. 930230: the exact path says why
        ids = pc.cast(trans_id, pa.int64()).to_numpy()
        literals = [_lookup(type_, _TYPE), _lookup(operation, _OPERATION),
                    _lookup(k_symbol, _K_SYMBOL)]
        if any(array.null_count for array in literals):
            return None  # a text outside the closed sets
        bodies = pc.binary_join_element_wise(
            '{"schema_version":1,"trans_id":', trans_id,
            ',"account_id":', account_id,
            ',"date":', iso,
            ',"type":', literals[0],
            ',"operation":', literals[1],
            ',"amount":"', amount,
            '","balance":"', balance,
            '","k_symbol":', literals[2],
            ',"bank":', _text_or_null(bank),
            ',"account":', _text_or_null(account),
            ',"event_date":', iso,
            ',"sent_at_ms":',
            "",
        )
        if not self._mark_seen(ids):
            return None
        return EncodedBlock(
            bodies=pc.cast(bodies, pa.binary()),
            keys=pc.cast(account_id, pa.binary()).to_pylist(),
            trans_ids=ids,
            dates=dates,
        )

    @staticmethod
    def _dates(yymmdd: pa.Array) -> tuple[pa.Array | None, pa.Array]:
        """(date32, JSON literal) per row through the reader's own date rule, once per
        distinct date (a few thousand in the whole file)."""
        encoded = pc.dictionary_encode(yymmdd)
        values = []
        for text in encoded.dictionary.to_pylist():
            try:
                values.append(_date(text))
            except ValueError:
                return None, yymmdd
        dates = pa.array(values, pa.date32())
        literals = pa.array([_literal(d.isoformat()) for d in values], pa.string())
        return pc.take(dates, encoded.indices), pc.take(literals, encoded.indices)

    # Primary keys: the reader's one-bit-per-id set, read and written here with numpy.
    def _bitmap(self, ids: np.ndarray) -> np.ndarray | None:
        if len(ids) == 0:
            return np.zeros(0, np.uint8)
        top = int(ids.max())
        if top >= SeenKeys._BITMAP_LIMIT:
            return None
        return self.seen.bitmap(top)

    def _mark_seen(self, ids: np.ndarray) -> bool:
        """Record `ids` as seen if none was seen before and none repeats; else change nothing.

        Counting the set bits before and after costs two passes over the bitmap (0.5 MB for
        the real file's ids), much less than a hash set of the chunk's ids."""
        bitmap = self._bitmap(ids)
        if bitmap is None:
            return False
        before = bitmap.copy()
        np.bitwise_or.at(bitmap, ids >> 3, (1 << (ids & 7)).astype(np.uint8))
        added = int(np.bitwise_count(bitmap).sum(dtype=np.int64)
                    - np.bitwise_count(before).sum(dtype=np.int64))
        if added != len(ids):
            bitmap[:] = before
            return False
        return True


def finish_bodies(bodies: pa.Array, suffix: bytes) -> list[bytes]:
    """The message values: each body with `suffix` (the send time and closing brace)."""
    return pc.binary_join_element_wise(bodies, suffix, b"").to_pylist()
