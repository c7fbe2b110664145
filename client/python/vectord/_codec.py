"""Conversions between Python/numpy values and the wire's packed byte arrays.

The wire carries bulk data as packed little-endian ``bytes`` (proto/vectord.proto): ids as
uint64, vectors and distances as float32, row-major. Each input array is converted once, by
numpy, to exactly that layout (``np.ascontiguousarray(x, dtype='<f4')``, ``'<u8'``), so an
ndarray upsert or a knn never touches single elements from Python; decoding is
``np.frombuffer`` over the response's bytes. Only payloads, which are arbitrary JSON objects,
are handled one by one.

String ids (collections created with ``id_type="str"``) travel packed as well (``StrIds``:
their UTF-8 bytes back to back plus one uint32 end offset each). Python strings have to be
encoded and decoded one by one, so each direction costs exactly one pass over the ids:
``str.encode`` into a list joined once (lengths by ``map(len)``, offsets by numpy), and on
the way back one slice per id (of the decoded text when it is all ASCII, which needs no
per-id decode).

Everything here validates structure (shapes, dtypes, lengths, JSON-ability) and raises
:class:`InvalidArgument` naming the offending argument; value checks that need the
collection (dimension, NaN/Inf, name syntax, k range) are the server's, so its message is
the one users see.
"""
from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._errors import InvalidArgument

PAD_ID = (1 << 64) - 1
"""Id the server puts in knn rows that have fewer than k hits (distance is +inf there)."""

MAX_STR_ID_BYTES = 512
"""String ids are 1..512 bytes of UTF-8 (the server checks the same rule)."""

_ID_TYPES = {"int": 0, "str": 1}
_ID_TYPE_NAMES = {v: k for k, v in _ID_TYPES.items()}

_METRICS = {"l2": 1, "cosine": 2, "ip": 3}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}

IdsLike = Any
"""An int, or a 1-D sequence / ndarray of non-negative integers below 2**64."""
MatrixLike = Any
"""A 2-D ndarray of any real dtype, or a list of equal-length lists of numbers."""


def metric_to_wire(metric: str) -> int:
    """``"l2" | "cosine" | "ip"`` (any case) -> the wire ``Metric`` number."""
    if not isinstance(metric, str) or metric.lower() not in _METRICS:
        raise InvalidArgument(f"metric must be one of 'l2', 'cosine', 'ip'; got {metric!r}")
    return _METRICS[metric.lower()]


def metric_from_wire(value: int) -> str:
    """Wire ``Metric`` number -> ``"l2" | "cosine" | "ip"`` (``"unknown(N)"`` otherwise)."""
    return _METRIC_NAMES.get(value, f"unknown({value})")


def id_type_to_wire(id_type: str) -> int:
    """``"int" | "str"`` -> the wire ``IdType`` number."""
    if not isinstance(id_type, str) or id_type not in _ID_TYPES:
        raise InvalidArgument(f"id_type must be 'int' or 'str'; got {id_type!r}")
    return _ID_TYPES[id_type]


def id_type_from_wire(value: int) -> str:
    """Wire ``IdType`` number -> ``"int" | "str"`` (``"unknown(N)"`` otherwise)."""
    return _ID_TYPE_NAMES.get(value, f"unknown({value})")


def check_uint32(value: Any, what: str) -> int:
    """An int in [0, 2**32) for a uint32 request field; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{what} must be an integer, got {type(value).__name__}")
    v = int(value)
    if not 0 <= v < 1 << 32:
        raise InvalidArgument(f"{what} must be in [0, 2**32), got {v}")
    return v


def check_name(name: Any, what: str = "collection name") -> str:
    """Names must be ``str``; their syntax is checked by the server."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{what} must be a str, got {type(name).__name__}")
    return name


class StrIds:
    """A batch of string ids, encoded once: ``ids`` (the str objects, for results),
    ``blob`` (their UTF-8 bytes back to back) and ``ends`` (uint64 end offset of each)."""

    __slots__ = ("ids", "blob", "ends")

    def __init__(self, ids: List[str], blob: bytes, ends: np.ndarray) -> None:
        self.ids, self.blob, self.ends = ids, blob, ends

    def __len__(self) -> int:
        return len(self.ids)

    def nbytes(self, lo: int, hi: int) -> int:
        """Bytes rows lo..hi-1 take on the wire (ids and their ends)."""
        return int(self.ends[hi - 1] - (self.ends[lo - 1] if lo else 0)) + 4 * (hi - lo)

    def row_sizes(self) -> np.ndarray:
        """Wire bytes of each row's id (its bytes and its end offset)."""
        return np.diff(self.ends, prepend=0).astype(np.int64) + 4

    def fill(self, msg: Any, lo: int, hi: int) -> None:
        """Set a ``StrIds`` message to rows lo..hi-1."""
        a = int(self.ends[lo - 1]) if lo else 0
        msg.data = self.blob[a:int(self.ends[hi - 1])]
        msg.ends = (self.ends[lo:hi] - a).astype("<u4").tobytes()


def _bad_str_row(items: Sequence[Any], what: str) -> InvalidArgument:
    """The error for the first item of a string-id batch that cannot be one."""
    for i, v in enumerate(items):
        if isinstance(v, (bytes, bytearray)):
            return InvalidArgument(f"{what}[{i}] is {v!r}: bytes; string ids are str (UTF-8 "
                                   "text)")
        if not isinstance(v, str):
            return InvalidArgument(f"{what}[{i}] is {v!r}; ids in one call are all str (a "
                                   "collection of string ids) or all int")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            return InvalidArgument(f"{what}[{i}] is not valid UTF-8 ({e.reason} at character "
                                   f"{e.start})")
    return InvalidArgument(f"{what} must be a sequence of str or of int")


def to_str_ids(items: Sequence[Any], what: str = "ids") -> StrIds:
    """Encode a sequence of str ids (one pass), checking each is 1..512 bytes of UTF-8."""
    items = list(items)
    try:
        enc = [s.encode("utf-8") for s in items]
    except (AttributeError, TypeError, UnicodeEncodeError):
        raise _bad_str_row(items, what) from None
    lens = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
    bad = np.flatnonzero((lens == 0) | (lens > MAX_STR_ID_BYTES))
    if bad.size:
        i = int(bad[0])
        if lens[i] == 0:
            raise InvalidArgument(f"{what}[{i}] is an empty string; string ids are 1.."
                                  f"{MAX_STR_ID_BYTES} bytes of UTF-8")
        raise InvalidArgument(f"{what}[{i}] is {int(lens[i])} bytes of UTF-8; string ids are "
                              f"1..{MAX_STR_ID_BYTES} bytes")
    return StrIds(items, b"".join(enc), np.cumsum(lens, dtype=np.uint64))


def _is_str_batch(ids: Any) -> bool:
    if isinstance(ids, str):
        return True
    if isinstance(ids, np.ndarray):
        return ids.dtype.kind == "U" or (ids.dtype.kind == "O" and ids.size > 0 and
                                         isinstance(ids.flat[0], str))
    if isinstance(ids, (list, tuple)):
        return len(ids) > 0 and isinstance(ids[0], str)
    return False


def to_point_ids(ids: Any, what: str = "ids") -> Any:
    """Ids of either kind: a ``'<u8'`` ndarray (integers) or :class:`StrIds` (strings; a
    single str is one id). Which kind a collection takes is the server's to check."""
    if isinstance(ids, (bytes, bytearray)) or (isinstance(ids, np.ndarray) and
                                               ids.dtype.kind == "S"):
        raise InvalidArgument(f"{what} are bytes; string ids are str (UTF-8 text)")
    if not _is_str_batch(ids):
        return to_ids(ids, what)
    if isinstance(ids, str):
        return to_str_ids([ids], what)
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise InvalidArgument(f"{what} must be 1-D, got shape {ids.shape}")
        return to_str_ids(ids.tolist(), what)
    return to_str_ids(ids, what)


def check_distinct(ids: Any, what: str = "ids") -> None:
    """Refuse an id (of either kind, as to_point_ids returns them) given twice, naming both
    rows."""
    if isinstance(ids, np.ndarray):
        if len(np.unique(ids)) == len(ids):
            return
        order = np.argsort(ids, kind="stable")
        s = ids[order]
        k = int(np.flatnonzero(s[1:] == s[:-1])[0])
        a, b = sorted((int(order[k]), int(order[k + 1])))
        raise InvalidArgument(f"{what}[{b}] {int(ids[b])} appears more than once (rows {a} and "
                              f"{b}); ids in one call must be distinct")
    if len(set(ids.ids)) == len(ids.ids):
        return
    seen: Dict[str, int] = {}
    for i, s in enumerate(ids.ids):
        if s in seen:
            raise InvalidArgument(f"{what}[{i}] {s!r} appears more than once (rows {seen[s]} "
                                  f"and {i}); ids in one call must be distinct")
        seen[s] = i


def decode_str_ids(m: Any) -> List[Optional[str]]:
    """A ``StrIds`` message -> list of str, ``None`` for empty entries (padding)."""
    ends = np.frombuffer(m.ends, dtype="<u4")
    if ends.size == 0:
        return []
    data = m.data
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1]
    text = data.decode("utf-8")
    if len(text) == len(data):  # all ASCII: byte offsets are character offsets
        return [text[a:b] or None for a, b in zip(starts.tolist(), ends.tolist())]
    return [data[a:b].decode("utf-8") or None for a, b in zip(starts.tolist(), ends.tolist())]


def to_ids(ids: IdsLike, what: str = "ids") -> np.ndarray:
    """Convert ids to a contiguous 1-D ``'<u8'`` array (a single int becomes one id)."""
    if isinstance(ids, numbers.Integral) and not isinstance(ids, bool):
        ids = [int(ids)]
    try:
        a = np.asarray(ids)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(f"{what} must be a 1-D sequence of integers: {e}") from None
    if a.ndim != 1:
        raise InvalidArgument(f"{what} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        return np.empty(0, dtype="<u8")
    kind = a.dtype.kind
    if kind == "f" and not isinstance(ids, np.ndarray):
        # numpy turns a list mixing ints below 2**63 and above it into float64 (lossy):
        # look at the Python objects themselves instead.
        a = np.empty(len(ids), dtype=object)
        a[:] = list(ids)
        kind = "O"
    if kind == "u":
        return np.ascontiguousarray(a, dtype="<u8")
    if kind == "i":
        if (a < 0).any():
            bad = int(np.flatnonzero(a < 0)[0])
            raise InvalidArgument(f"{what}[{bad}] is {int(a[bad])}; ids are unsigned 64-bit")
        return np.ascontiguousarray(a, dtype="<u8")
    if kind in "US" and not isinstance(ids, np.ndarray):
        # A list mixing ints and strings: numpy made it all strings.
        for i, v in enumerate(ids):
            if isinstance(v, (bytes, bytearray)):
                raise InvalidArgument(f"{what}[{i}] is {v!r}: bytes; string ids are str "
                                      "(UTF-8 text)")
            if isinstance(v, str):
                raise InvalidArgument(f"{what}[{i}] is {v!r}; ids in one call are all integers "
                                      "or all str (a collection of string ids)")
    if kind == "O":
        # Python ints beyond int64's range; rare, so the per-element check is acceptable.
        for i, v in enumerate(a):
            if isinstance(v, str):
                raise InvalidArgument(f"{what}[{i}] is {v!r}; ids in one call are all integers "
                                      "or all str (a collection of string ids)")
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= v <= PAD_ID:
                raise InvalidArgument(f"{what}[{i}] is {v!r}; ids are integers in [0, 2**64)")
        return np.array([int(v) for v in a], dtype="<u8")
    raise InvalidArgument(f"{what} must be integers in [0, 2**64), got dtype {a.dtype}")


def to_matrix(x: MatrixLike, what: str = "vectors") -> np.ndarray:
    """Convert a 2-D array-like of real numbers to one C-contiguous ``'<f4'`` array.

    An ndarray that already is contiguous little-endian float32 is used as is (no copy).
    """
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InvalidArgument(f"{what} must be a 2-D array of numbers: {e}") from None
    if a.dtype.kind not in "fiu":
        raise InvalidArgument(f"{what} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise InvalidArgument(f"{what} must be 2-D (n, dim), got shape {a.shape}")
    return np.ascontiguousarray(a, dtype="<f4")


def to_queries(x: MatrixLike) -> Tuple[np.ndarray, bool]:
    """Queries as a ``(nq, dim)`` float32 array, and whether the input was a single 1-D query."""
    a = x if isinstance(x, np.ndarray) else None
    if a is None:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InvalidArgument(f"query must be a 1-D or 2-D array of numbers: {e}") from None
    if a.ndim == 1:
        return to_matrix(a.reshape(1, -1), "query"), True
    if a.ndim == 2:
        return to_matrix(a, "queries"), False
    raise InvalidArgument(f"query must be 1-D (dim,) or 2-D (nq, dim), got shape {a.shape}")


def encode_payload(p: Optional[Mapping], i: int = 0) -> bytes:
    """A payload dict -> compact UTF-8 JSON; ``None`` -> ``b""`` (no payload)."""
    if p is None:
        return b""
    if not isinstance(p, Mapping):
        raise InvalidArgument(f"payload {i} is a {type(p).__name__}; a payload must be a dict "
                              "(a JSON object) or None")
    try:
        return json.dumps(p, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:  # ValueError covers NaN and lone surrogates
        raise InvalidArgument(f"payload {i} is not JSON-serializable: {e}") from None


def encode_payloads(payloads: Optional[Sequence[Optional[Mapping]]], n: int) -> List[bytes]:
    """Encode ``n`` payloads; returns ``[]`` (the wire's "no payloads") when all are None."""
    if payloads is None:
        return []
    if isinstance(payloads, (Mapping, str, bytes)):
        raise InvalidArgument("payloads must be a sequence with one dict (or None) per point")
    try:
        items = list(payloads)
    except TypeError:
        raise InvalidArgument("payloads must be a sequence with one dict (or None) per point") \
            from None
    if len(items) != n:
        raise InvalidArgument(f"got {len(items)} payloads for {n} ids; give one per point")
    out = [encode_payload(p, i) for i, p in enumerate(items)]
    return out if any(out) else []


def decode_payload(raw: bytes) -> Optional[Dict[str, Any]]:
    """Wire payload bytes -> dict, ``b""`` -> ``None``."""
    if not raw:
        return None
    return json.loads(raw)
