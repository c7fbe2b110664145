"""Result types returned by :class:`vectord.Client`: plain frozen dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np


@dataclass(frozen=True)
class PayloadIndexInfo:
    """One payload index of a collection.

    Attributes:
        field: the dotted field path it indexes (``"meta.lang"``).
        kind: ``"keyword"``, ``"integer"``, ``"float"`` or ``"bool"``.
        points: points holding a value of its kind (while building: points scanned so far).
        bytes_memory: bytes its in-memory postings hold.
        building: still being built over the points stored before it (filters on its field
            are evaluated from the payloads meanwhile: correct, slower).
    """

    field: str
    kind: str
    points: int = 0
    bytes_memory: int = 0
    building: bool = False


@dataclass(frozen=True)
class CollectionInfo:
    """What the server knows about one collection.

    Attributes:
        name: collection name, ``[A-Za-z0-9_-]{1,64}``.
        dim: vector dimension.
        metric: ``"l2"`` (squared Euclidean), ``"cosine"`` (1 - cos) or ``"ip"`` (-dot).
        m: HNSW links per node.
        ef_construction: HNSW build-time candidate list size.
        ef_search: default query-time candidate list size (a query's ef is max(ef, k)).
        count: number of points stored.
        created_unix_s: creation time, seconds since the epoch.
        bytes_disk: bytes the collection occupies on disk (as reported by the server).
        bytes_memory: bytes of index memory (as reported by the server).
        id_type: ``"int"`` (unsigned 64-bit ids) or ``"str"`` (UTF-8 string ids), fixed at
            creation.
        payload_indexes: the collection's :class:`PayloadIndexInfo`, by field.
        quantization: ``"none"`` (float32 in the graph) or ``"int8"`` (int8 codes in the
            graph, the best candidates re-ranked with the stored float32 vectors).
    """

    name: str
    dim: int
    metric: str
    m: int
    ef_construction: int
    ef_search: int
    count: int
    created_unix_s: int = 0
    bytes_disk: int = 0
    bytes_memory: int = 0
    id_type: str = "int"
    payload_indexes: List[PayloadIndexInfo] = field(default_factory=list)
    quantization: str = "none"


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: the point's id (an int, or a str in a collection of string ids).
        distance: smaller is closer (l2: squared distance, cosine: 1 - cos, ip: -dot).
        payload: the point's JSON object, or ``None`` when it has none or payloads were
            not requested.
    """

    id: Union[int, str]
    distance: float
    payload: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class Record:
    """One stored point, as returned by :meth:`vectord.Client.get` and
    :meth:`vectord.Client.scroll`.

    Attributes:
        id: the point's id (an int, or a str in a collection of string ids).
        vector: float32 array of the collection's dimension (unit length for cosine
            collections, which store vectors normalized), or ``None`` if not requested.
        payload: the point's JSON object, or ``None``.
    """

    id: Union[int, str]
    vector: Optional[np.ndarray] = field(default=None, compare=False)
    payload: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class ScrollPage:
    """One page of :meth:`vectord.Client.scroll`.

    Attributes:
        records: the page's points in id order (numeric for int ids, bytewise UTF-8 for
            string ids).
        next_cursor: pass it as ``cursor`` for the next page; ``None`` when the walk is done.
            An opaque token: valid for this collection only, also after a server restart.
    """

    records: List[Record]
    next_cursor: Optional[bytes] = None


@dataclass(frozen=True)
class Limits:
    """The server's limits, announced in its Hello reply.

    Attributes:
        max_frame_bytes: largest frame (request or response) the server accepts.
        max_batch: most points per upsert/delete/get and queries per search.
        max_k: largest k.
        max_dim: largest collection dimension.
        max_connections: connections the server accepts at once.
        idle_timeout_ms: the server closes connections idle this long (0: never).
    """

    max_frame_bytes: int
    max_batch: int
    max_k: int
    max_dim: int
    max_connections: int = 0
    idle_timeout_ms: int = 0
