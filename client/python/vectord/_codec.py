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

Both front ends use this module: :class:`vectord.Client` (which packs the arrays into
request frames) and the embedded handle of :func:`vectord.open` (which hands the same
arrays to the engine in process, zero-copy). So the argument checks of an operation
(``create_args``, ``upsert_arrays``, ``set_payload_args``, ``scroll_args``,
``search_params``; ids of both kinds by ``to_point_ids`` and ``check_distinct``) and the
shaping of its results (``hits_of``, ``records_of``, ``page_of``, ``info_of``, string ids by
``decode_str_ids`` and ``str_id_matrix``; ``iter_points`` over either's scroll) are written
once, here, and the two cannot disagree; string ids reach the engine in the very packing the
wire carries (``StrIds.packed``). Whatever needs the collection is the engine's in both cases
(the daemon runs the same engine), so its messages are word for word the same.
"""
from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._errors import InvalidArgument
from ._types import CollectionInfo, Hit, PayloadIndexInfo, Record, ScrollPage

PAD_ID = (1 << 64) - 1
"""Id the server puts in knn rows that have fewer than k hits (distance is +inf there)."""

MAX_STR_ID_BYTES = 512
"""String ids are 1..512 bytes of UTF-8 (the server checks the same rule)."""

_ID_TYPES = {"int": 0, "str": 1}
_ID_TYPE_NAMES = {v: k for k, v in _ID_TYPES.items()}

_METRICS = {"l2": 1, "cosine": 2, "ip": 3}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}

IdsLike = Any
"""An int, or a 1-D sequence / ndarray of non-negative integers below 2**64; or, for a
collection of string ids, a str or a 1-D sequence / str ndarray of them."""
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


_QUANTIZATIONS = {"none": 0, "int8": 1}
_QUANTIZATION_NAMES = {v: k for k, v in _QUANTIZATIONS.items()}


def quantization_to_wire(quantization: str) -> int:
    """``"none" | "int8"`` (any case) -> the wire ``Quantization`` number."""
    if not isinstance(quantization, str) or quantization.lower() not in _QUANTIZATIONS:
        raise InvalidArgument(f"quantization must be 'none' or 'int8'; got {quantization!r}")
    return _QUANTIZATIONS[quantization.lower()]


def quantization_from_wire(value: int) -> str:
    """Wire ``Quantization`` number -> ``"none" | "int8"`` (``"unknown(N)"`` otherwise)."""
    return _QUANTIZATION_NAMES.get(value, f"unknown({value})")


def check_uint32(value: Any, what: str) -> int:
    """An int in [0, 2**32) for a uint32 request field; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{what} must be an integer, got {type(value).__name__}")
    v = int(value)
    if not 0 <= v < 1 << 32:
        raise InvalidArgument(f"{what} must be in [0, 2**32), got {v}")
    return v


def check_name(name: Any, what: str = "collection name") -> str:
    """Names must be ``str`` without NUL characters (C strings on both sides would cut them
    short); their syntax is checked by the server."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{what} must be a str, got {type(name).__name__}")
    if "\0" in name:
        raise InvalidArgument(f"{what} {name!r} holds a NUL character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(f"{what} {name!r} is not valid Unicode: {e.reason}") from None
    return name


PINDEX_KINDS = ("keyword", "integer", "float", "bool")
"""The payload index kinds, as create_payload_index names them (the wire's enum, in order)."""


def check_pindex_kind(kind: Any) -> str:
    """A payload index kind name, or InvalidArgument listing them."""
    if not isinstance(kind, str) or kind not in PINDEX_KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(PINDEX_KINDS)}; got {kind!r}")
    return kind


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

    def packed(self, lo: int, hi: int) -> Tuple[bytes, np.ndarray]:
        """Rows lo..hi-1 packed as the wire and the engine take them: their bytes, and one
        ``'<u4'`` end offset each, counted from the first of them."""
        a = int(self.ends[lo - 1]) if lo else 0
        blob = self.blob if lo == 0 and hi == len(self.ids) else \
            self.blob[a:int(self.ends[hi - 1])]
        return blob, (self.ends[lo:hi] - a).astype("<u4")

    def fill(self, msg: Any, lo: int, hi: int) -> None:
        """Set a ``StrIds`` message to rows lo..hi-1."""
        blob, ends = self.packed(lo, hi)
        msg.data, msg.ends = blob, ends.tobytes()


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


def id_values(ids: Any, lo: int, hi: int) -> List[Any]:
    """Rows lo..hi-1 of ids (as to_point_ids returns them) as Python values (int or str)."""
    return ids.ids[lo:hi] if isinstance(ids, StrIds) else ids[lo:hi].tolist()


def decode_str_ids(data: bytes, ends: Any) -> List[Optional[str]]:
    """Packed string ids (``data``, and ``ends``: a buffer of ``'<u4'`` end offsets, as the
    wire's ``StrIds`` and the engine's results hold them) -> list of str, ``None`` for empty
    entries (padding)."""
    ends = np.frombuffer(ends, dtype="<u4")
    if ends.size == 0:
        return []
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1]
    text = data.decode("utf-8")
    if len(text) == len(data):  # all ASCII: byte offsets are character offsets
        return [text[a:b] or None for a, b in zip(starts.tolist(), ends.tolist())]
    return [data[a:b].decode("utf-8") or None for a, b in zip(starts.tolist(), ends.tolist())]


def check_batch_size(batch_size: Any) -> int:
    """Points per write: a positive int."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def create_args(name: Any, dim: Any, metric: Any, m: Any, ef_construction: Any,
                ef_search: Any, id_type: Any = "int"
                ) -> Tuple[str, int, str, int, int, int, str]:
    """create_collection's (and build's) arguments checked: (name, dim, metric in lower case,
    m, ef_construction, ef_search, id_type); 0 means the server's default for m,
    ef_construction and ef_search."""
    check_name(name)
    metric_to_wire(metric)
    id_type_to_wire(id_type)
    return (name, check_uint32(dim, "dim"), metric.lower(), check_uint32(m, "m"),
            check_uint32(ef_construction, "ef_construction"), check_uint32(ef_search, "ef_search"),
            id_type)


def search_params(k: Any, ef: Any) -> Tuple[int, int]:
    """(k, ef) as the request carries them: ef None -> 0 (the collection's ef_search)."""
    return check_uint32(k, "k"), 0 if ef is None else check_uint32(ef, "ef")


def rerank_param(rerank: Any) -> int:
    """rerank as the request carries it: None -> 0 (the server's default)."""
    return 0 if rerank is None else check_uint32(rerank, "rerank")


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


def upsert_arrays(collection: Any, ids: IdsLike, vectors: MatrixLike,
                  payloads: Optional[Sequence[Optional[Mapping]]], batch_size: Any
                  ) -> Optional[Tuple[Any, np.ndarray, List[bytes]]]:
    """An upsert's arguments checked and its points converted once: ``(ids (to_point_ids:
    '<u8' (n,) or StrIds), vectors '<f4' (n, dim) C-contiguous, encoded payloads or [])``, or
    ``None`` for an empty call (0 ids, nothing to write). Refuses a bad name or batch size,
    a bad string id, mismatched lengths and repeated ids before anything is written."""
    check_name(collection)
    check_batch_size(batch_size)
    id_arr = to_point_ids(ids)
    n = len(id_arr)
    if n == 0:
        if payloads is not None and len(list(payloads)) != 0:
            raise InvalidArgument("payloads given for 0 ids")
        if not (isinstance(vectors, np.ndarray) and vectors.size == 0) and len(vectors) != 0:
            raise InvalidArgument(f"got 0 ids and {len(vectors)} vectors")
        return None
    vecs = to_matrix(vectors)
    if vecs.shape[0] != n:
        raise InvalidArgument(f"got {n} ids and {vecs.shape[0]} vectors")
    check_distinct(id_arr)
    return id_arr, vecs, encode_payloads(payloads, n)


def set_payload_args(collection: Any, ids: IdsLike, payloads: Any
                     ) -> Optional[Tuple[Any, List[bytes]]]:
    """set_payload's arguments checked: ``(ids as to_point_ids returns them, one encoded
    payload per id)`` - a single dict (or None) applies to every id - or ``None`` for an
    empty call. Refuses repeated ids and a count of payloads other than 1 or len(ids)."""
    check_name(collection)
    id_arr = to_point_ids(ids)
    n = len(id_arr)
    if isinstance(payloads, Mapping) or payloads is None:
        encoded = [encode_payload(payloads)] * n
    else:
        encoded = encode_payloads(payloads, n) or [b""] * n
    if n == 0:
        return None
    check_distinct(id_arr)
    return id_arr, encoded


def scroll_args(collection: Any, limit: Any, cursor: Any) -> Tuple[int, bytes]:
    """scroll's arguments checked: ``(limit, cursor bytes; b"" for the first page)``."""
    check_name(collection)
    lim = check_uint32(limit, "limit")
    if lim < 1:
        raise InvalidArgument("limit must be at least 1")
    if cursor is not None and not isinstance(cursor, (bytes, bytearray)):
        raise InvalidArgument(f"cursor must be bytes (a next_cursor) or None, got "
                              f"{type(cursor).__name__}")
    return lim, bytes(cursor) if cursor else b""


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


# ---- results: the same Python values from either front end --------------------------------

def info_of(name: str, dim: int, metric: str, m: int, ef_construction: int, ef_search: int,
            count: int, created_unix_s: int = 0, bytes_disk: int = 0,
            bytes_memory: int = 0, id_type: str = "int",
            payload_indexes: Sequence[Any] = (), quantization: str = "none") -> CollectionInfo:
    """A :class:`CollectionInfo` from its fields (the wire message's, or the engine's);
    payload_indexes as :class:`PayloadIndexInfo` or as dicts of its fields."""
    return CollectionInfo(name=name, dim=dim, metric=metric, m=m,
                          ef_construction=ef_construction, ef_search=ef_search, count=count,
                          created_unix_s=created_unix_s, bytes_disk=bytes_disk,
                          bytes_memory=bytes_memory, id_type=id_type, quantization=quantization,
                          payload_indexes=[p if isinstance(p, PayloadIndexInfo)
                                           else PayloadIndexInfo(**p) for p in payload_indexes])


def str_id_matrix(data: bytes, ends: Any, rows: int, k: int) -> np.ndarray:
    """Packed string ids of rows x k hits (decode_str_ids' input) -> a ``(rows, k)`` object
    array of str, ``None`` where a row has fewer hits: knn's ids in a str collection."""
    flat = np.empty(rows * k, dtype=object)
    flat[:] = decode_str_ids(data, ends)
    return flat.reshape(rows, k)


def hits_of(ids: np.ndarray, distances: np.ndarray,
            payloads: Optional[Sequence[bytes]]) -> List[List[Hit]]:
    """Rows of ``(rows, k)`` ids (uint64 padded with PAD_ID, or str_id_matrix's objects
    padded with None) and distances (and ``rows * k`` payload entries, or None) -> one list
    of :class:`Hit` per row, padding dropped."""
    rows, k = ids.shape
    pad = None if ids.dtype == object else PAD_ID
    id_rows, d_rows = ids.tolist(), distances.tolist()
    pls = payloads if payloads is not None and len(payloads) else None
    out = []
    for r in range(rows):
        row_ids, row_d, base = id_rows[r], d_rows[r], r * k
        out.append([Hit(id_, d, decode_payload(pls[base + j]) if pls else None)
                    for j, (id_, d) in enumerate(zip(row_ids, row_d)) if id_ != pad])
    return out


def records_of(ids: Sequence[Any], found: Sequence[int], vectors: Optional[np.ndarray],
               payloads: Optional[Sequence[bytes]]) -> List[Optional[Record]]:
    """One :class:`Record` (or None where ``found`` is 0) per requested id (``ids``: Python
    values, id_values' rows); ``vectors`` is ``(n, dim)`` or None, ``payloads`` n entries or
    None."""
    pls = payloads if payloads is not None and len(payloads) else None
    return [Record(ids[r], vectors[r] if vectors is not None else None,
                   decode_payload(pls[r]) if pls else None) if found[r] else None
            for r in range(len(ids))]


def page_of(ids: List[Any], vectors: Optional[np.ndarray], payloads: Optional[Sequence[bytes]],
            next_cursor: Optional[bytes]) -> ScrollPage:
    """A :class:`ScrollPage` of n points: their ids (Python values), ``(n, dim)`` vectors or
    None, n payload entries or None, the next page's cursor (None or b"" at the end)."""
    pls = payloads if payloads is not None and len(payloads) else None
    if vectors is None and pls is None:
        records = [Record(i) for i in ids]
    else:
        records = [Record(ids[r], vectors[r] if vectors is not None else None,
                          decode_payload(pls[r]) if pls else None) for r in range(len(ids))]
    return ScrollPage(records, bytes(next_cursor) if next_cursor else None)


def iter_points(scroll: Callable[..., ScrollPage], collection: str, batch: int,
                with_vectors: bool, with_payload: bool, filter: Any) -> Iterator[Record]:
    """iter_points of either front end over its ``scroll``: page after page until the end."""
    cursor: Optional[bytes] = None
    while True:
        page = scroll(collection, limit=batch, cursor=cursor, filter=filter,
                      with_vectors=with_vectors, with_payload=with_payload)
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
