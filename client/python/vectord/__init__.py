"""vectord: Python client for the vectord vector database, served or embedded.

>>> import numpy as np, vectord
>>> with vectord.Client("127.0.0.1:7711") as db:          # a `vectord serve` daemon
...     db.create_collection("docs", dim=384, metric="cosine")
...     db.upsert("docs", ids, vectors, payloads=[{"text": t} for t in texts])
...     hits = db.search("docs", query_vector, k=5)
>>> with vectord.open("./vectord-data") as db:            # the same engine, in process
...     hits = db.search("docs", query_vector, k=5)

Both have the same API and the same errors; the data directory is the same too (written
embedded, served by the daemon, and back). See client/python/README.md for the whole API.
Every error is a :class:`Error` subclass named after the wire status code
(:class:`NotFound`, :class:`InvalidArgument`, ...), carrying the server's code and message.
"""
try:
    from . import vectord_pb2  # noqa: F401  (generated from proto/vectord.proto by the build)
except ImportError as _e:  # pragma: no cover - only without the generated module
    raise ImportError(
        "vectord/vectord_pb2.py is missing: it is generated from proto/vectord.proto; run "
        "`make client/python/vectord/vectord_pb2.py` in the repository (or reinstall with "
        "pip, which runs protoc)") from _e

from ._errors import (Aborted, AlreadyExists, Cancelled, Code, DataLoss, DeadlineExceeded,
                      Error, FailedPrecondition, Internal, InvalidArgument, NotFound,
                      OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated,
                      Unavailable, Unimplemented, Unknown)
from ._types import CollectionInfo, Hit, Limits, PayloadIndexInfo, Record, ScrollPage
from ._version import __version__
from .client import Client
from .embedded import Embedded, open

PAD_ID: int = (1 << 64) - 1
"""The id that pads :meth:`Client.knn` rows holding fewer than k hits (distance ``inf``)."""

__all__ = [
    "Client", "open", "Embedded", "CollectionInfo", "Hit", "Record", "ScrollPage", "Limits",
    "PayloadIndexInfo", "Code", "PAD_ID",
    "__version__",
    "Error", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
]
