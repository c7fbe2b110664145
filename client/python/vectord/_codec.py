"""Conversions between Python/numpy values and the wire's packed byte arrays.

The wire carries bulk data as packed little-endian ``bytes`` (proto/vectord.proto): ids as
uint64, vectors and distances as float32, row-major. Each input array is converted once, by
numpy, to exactly that layout (``np.ascontiguousarray(x, dtype='<f4')``, ``'<u8'``), so an
ndarray upsert or a knn never touches single elements from Python; decoding is
``np.frombuffer`` over the response's bytes. Only payloads, which are arbitrary JSON objects,
are handled one by one.

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
    """Names must be ``str``; their syntax is checked by the server."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{what} must be a str, got {type(name).__name__}")
    return name


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
    if kind == "O":
        # Python ints beyond int64's range; rare, so the per-element check is acceptable.
        for i, v in enumerate(a):
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
