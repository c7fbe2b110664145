"""Filters: the Mongo-style dict grammar -> the wire's ``Filter`` tree (proto/vectord.proto).

The grammar, as Chroma, Pinecone and LangChain filter dicts write it::

    {"source": "a.md"}                                  # equality
    {"year": {"$gte": 2020, "$lt": 2024}}               # several operators: all hold
    {"lang": {"$in": ["en", "de"]}, "draft": False}     # several keys: all hold
    {"$or": [{"a": 1}, {"$not": {"b": {"$exists": True}}}]}
    {"meta.lang": "en"}                                 # dotted path into nested objects

Operators: ``$eq $ne $gt $gte $lt $lte`` (one value), ``$in $nin`` (a list), ``$exists``
(a bool); ``$and $or`` (a list of filters), ``$not`` (a filter). Values are str, int,
float or bool (numpy scalars too). ``{}`` is no filter at all.

Which side checks what: this module checks what the wire cannot express - the dict's shape,
operator names, the Python types of operands (a list where a number belongs, None, a dict
value) - and names the fault and its path the way the dict spells it
(``filter.$or[1].year: $gte expects a number or string, got list``). Everything the wire can
carry is the server's to refuse, with the same kind of path: non-finite numbers, empty
``$and``/``$or`` lists, empty or malformed field paths, nesting deeper than 16 levels, more
than 1,024 terms, strings that are not valid UTF-8. So each rule has one owner, and a client
in another language meets the same server checks.
"""
from __future__ import annotations

import numbers
from typing import Any, Mapping, Optional

import numpy as np

from . import vectord_pb2 as pb
from ._errors import InvalidArgument

_OPS = {"$eq": pb.FILTER_EQ, "$ne": pb.FILTER_NE, "$gt": pb.FILTER_GT, "$gte": pb.FILTER_GTE,
        "$lt": pb.FILTER_LT, "$lte": pb.FILTER_LTE, "$in": pb.FILTER_IN, "$nin": pb.FILTER_NIN,
        "$exists": pb.FILTER_EXISTS}
_INT64 = (-(1 << 63), (1 << 63) - 1)

Filter = Mapping[str, Any]
"""A filter dict in the grammar above."""


def _type_name(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, Mapping):
        return "dict"
    if isinstance(v, (list, tuple)):
        return "list"
    return type(v).__name__


def _scalar(v: Any) -> Any:
    """numpy scalars as Python ones; anything else unchanged."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _value(v: Any, path: str, op: str, ranges: bool) -> "pb.FilterValue":
    v = _scalar(v)
    out = pb.FilterValue()
    if isinstance(v, bool):
        if ranges:
            raise InvalidArgument(f"{path}: {op} expects a number or string, got bool")
        out.b = v
    elif isinstance(v, numbers.Integral):
        if not _INT64[0] <= int(v) <= _INT64[1]:
            raise InvalidArgument(f"{path}: {op} expects integers within int64, got {int(v)}")
        out.i = int(v)
    elif isinstance(v, numbers.Real):
        out.f = float(v)  # NaN and inf are sent: the server refuses them, naming the path
    elif isinstance(v, str):
        try:
            out.s = v.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(f"{path}: {op} expects a valid Unicode string") from None
    else:
        want = "a number or string" if ranges else "a string, number or bool"
        raise InvalidArgument(f"{path}: {op} expects {want}, got {_type_name(v)}")
    return out


def _condition(field: str, op: str, v: Any, path: str) -> "pb.Filter":
    if op not in _OPS:
        hint = (f" (a nested field is a dotted path: \"{field}.{op}\")"
                if not op.startswith("$") else "")
        raise InvalidArgument(f"{path}: unknown operator {op!r}{hint}")
    out = pb.Filter()
    c = out.condition
    c.field = field
    c.op = _OPS[op]
    if op in ("$in", "$nin"):
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise InvalidArgument(f"{path}: {op} expects a list, got {_type_name(v)}")
        for i, x in enumerate(v):
            c.values.append(_value(x, path, f"{op}[{i}]", False))
    elif op == "$exists":
        v = _scalar(v)
        if not isinstance(v, bool):
            raise InvalidArgument(f"{path}: $exists expects true or false, got {_type_name(v)}")
        c.values.add().b = v
    else:
        c.values.append(_value(v, path, op, op not in ("$eq", "$ne")))
    return out


def _all(nodes: list, implicit: bool) -> "pb.Filter":
    if len(nodes) == 1 and implicit:
        return nodes[0]
    out = pb.Filter()
    out.all.implicit = implicit
    out.all.filters.extend(nodes)
    return out


def _key(k: Any, v: Any, path: str) -> "pb.Filter":
    if not isinstance(k, str):
        raise InvalidArgument(f"{path}: keys are field paths or operators (str), got "
                              f"{_type_name(k)}")
    if k in ("$and", "$or"):
        if not isinstance(v, (list, tuple)):
            raise InvalidArgument(f"{path}.{k}: expects a list of filters, got {_type_name(v)}")
        nodes = [to_wire(x, f"{path}.{k}[{i}]") for i, x in enumerate(v)]
        if k == "$and":
            return _all(nodes, False)
        out = pb.Filter()
        out.any.filters.extend(nodes)
        return out
    if k == "$not":
        out = pb.Filter()
        out.negate.CopyFrom(to_wire(v, f"{path}.$not"))
        return out
    if k.startswith("$"):
        raise InvalidArgument(f"{path}: unknown operator {k!r}")
    fpath = f"{path}.{k}"
    if isinstance(v, Mapping):
        if not v:
            raise InvalidArgument(f"{fpath}: an empty operator dict")
        return _all([_condition(k, op, x, fpath) if isinstance(op, str) else
                     _condition(k, repr(op), x, fpath) for op, x in v.items()], True)
    return _condition(k, "$eq", v, fpath)


def to_wire(flt: Any, path: str = "filter") -> "pb.Filter":
    """A filter dict -> ``pb.Filter``; InvalidArgument naming the fault and its path."""
    if not isinstance(flt, Mapping):
        raise InvalidArgument(f"{path}: a filter is a dict, got {_type_name(flt)}")
    if not flt:
        raise InvalidArgument(f"{path}: an empty filter dict")
    return _all([_key(k, v, path) for k, v in flt.items()], True)


def encode(flt: Optional[Filter]) -> Optional["pb.Filter"]:
    """The wire filter of a call's ``filter=`` argument: None (and ``{}``) mean no filter."""
    if flt is None or (isinstance(flt, Mapping) and not flt):
        return None
    return to_wire(flt)
