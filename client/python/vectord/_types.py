"""Result types returned by :class:`vectord.Client`: plain frozen dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np


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
    quantization: str = "none"


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: the point's id.
        distance: smaller is closer (l2: squared distance, cosine: 1 - cos, ip: -dot).
        payload: the point's JSON object, or ``None`` when it has none or payloads were
            not requested.
    """

    id: int
    distance: float
    payload: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class Record:
    """One stored point, as returned by :meth:`vectord.Client.get`.

    Attributes:
        id: the point's id.
        vector: float32 array of the collection's dimension (unit length for cosine
            collections, which store vectors normalized), or ``None`` if not requested.
        payload: the point's JSON object, or ``None``.
    """

    id: int
    vector: Optional[np.ndarray] = field(default=None, compare=False)
    payload: Optional[Dict[str, Any]] = None


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
