"""The embedded mode: :func:`open` runs vectord's engine inside this process.

The same C engine as the daemon (``vectord._engine``, built from the repository's engine/,
storage/ and index/), on the same data directory: a directory written here can be served by
``vectord serve`` and opened here again, with the same durability (an upsert returns after
its synced LMDB commit, so ``kill -9`` of this process loses no acknowledged write). Only one
process may write a directory at a time: opening one that a daemon or another process has
open raises :class:`FailedPrecondition` naming that process.

The handle has exactly the :class:`Client`'s methods, arguments, results and errors; the
arguments are checked and converted by the same code (``_codec``), the results shaped by the
same code, and everything that needs the collection is the engine's, so the messages are the
daemon's word for word. What differs is the path, not the answers:

- zero copy: a C-contiguous float32 (and uint64 ids) ndarray is read in place by the engine
  (other dtypes and layouts are converted once, as for the Client), and ``knn`` returns arrays
  the engine filled, wrapped by numpy without a copy; string ids cross packed as the wire
  carries them (the Client's ``StrIds``), one encoding pass in and one decoding pass out;
- the GIL is released while the engine works (open, upsert, search, knn, get, build...), so
  Python threads calling at once run in parallel; one ``knn`` also fans out on the handle's
  ``threads``;
- an ``upsert`` call is committed as one group (its batches of ``batch_size`` points are each
  checked on their own, as the Client's frames are, but share one transaction and one sync
  per group of up to 16 batches);
- ``set_payload`` is one atomic write for the whole call; a ``scroll`` page holds ``limit``
  points (no frame limit cuts it short);
- filters are encoded by the Client's own code (``vectord._filter``) and decoded by the
  daemon's own decoder, so the grammar and its messages are one; ``create_payload_index``
  builds the index within the call (writes wait for it, reads go on), so ``timeout`` has
  nothing to wait for;
- ``build`` is the offline bulk build of ``vectord build``, from arrays (string ids make a
  collection of string ids, as ``vectord build --ids FILE.txt`` does).

Without the compiled module (a pure-Python install) ``import vectord`` and the Client work;
:func:`open` raises ImportError saying how to build it.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import vectord_pb2 as pb
from ._codec import (IdsLike, MatrixLike, StrIds, check_name, check_pindex_kind, check_uint32,
                     create_args, decode_str_ids, encode_payloads, hits_of, id_values, info_of,
                     iter_points, page_of, quantization_from_wire, quantization_to_wire,
                     records_of, rerank_param, scroll_args, search_params,
                     set_payload_args, str_id_matrix, to_matrix, to_point_ids, to_queries,
                     upsert_arrays)
from ._errors import Error, FailedPrecondition, InvalidArgument
from ._filter import Filter, encode as encode_filter
from ._types import CollectionInfo, Hit, Limits, PayloadIndexInfo, Record, ScrollPage
from ._version import __version__

try:
    from . import _engine
except ImportError as _e:  # a pure-Python install: the Client still works
    _engine = None
    _IMPORT_ERROR = str(_e)

# An upsert call commits its batches in groups: up to this many batches and bytes of input
# per transaction, so a huge call still shows progress and bounds one transaction's dirty
# pages, while a typical call is one commit.
_GROUP_BATCHES = 16
_GROUP_BYTES = 64 << 20


def _engine_ids(ids: Any, lo: int, hi: int) -> Any:
    """Rows lo..hi-1 of ids (to_point_ids' form) as the extension takes them: a ``'<u8'``
    array, or for string ids the tuple (bytes, ``'<u4'`` end offsets)."""
    return ids.packed(lo, hi) if isinstance(ids, StrIds) else ids[lo:hi]


def _id_matrix(ids: Any, nq: int, k: int) -> np.ndarray:
    """The engine's search ids as knn returns them: its uint64 array wrapped without a copy,
    or for string ids (a (bytes, ends) tuple) an object array padded with None."""
    if isinstance(ids, tuple):
        return str_id_matrix(ids[0], ids[1], nq, k)
    return np.frombuffer(ids, dtype=np.uint64).reshape(nq, k)


def _filter_bytes(flt: Optional[Filter]) -> Optional[bytes]:
    """A call's ``filter=`` as the extension takes it: the serialized wire ``Filter`` the
    Client would send (None: no filter)."""
    wire = encode_filter(flt)
    return None if wire is None else wire.SerializeToString()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Embedded:
    """A data directory opened in this process; see :func:`open`.

    Thread safety: share it between threads freely. Reads (search, knn, explain, get, scroll,
    info, count) run concurrently; writes (create, drop, upsert, delete, set_payload, the
    payload indexes, build) one at a time, each waiting for the previous one. ``close()`` waits for the calls in progress.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], threads: Optional[int] = None
                 ) -> None:
        if _engine is None:
            raise ImportError(
                "vectord.open needs the compiled module vectord._engine, which this install "
                "lacks (" + _IMPORT_ERROR + "): run `make` in the repository (then "
                "PYTHONPATH=client/python), or `pip install client/python` from a checkout")
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise InvalidArgument(f"path must be a non-empty str, got {path!r}")
        n = _cores() if threads is None else check_uint32(threads, "threads")
        if n < 1:
            raise InvalidArgument("threads must be at least 1")
        self.path = path
        self.threads = n
        self._eng = _engine.Engine(path, n)  # opens (and creates) the directory, GIL released
        lim = self._eng.limits()
        # No frames in process: no frame or batch limit (0 = none), the engine's k and dim.
        self.limits = Limits(max_frame_bytes=0, max_batch=0, max_k=lim["max_k"],
                             max_dim=lim["max_dim"])
        self.server_version = f"{__version__} (embedded)"
        # Calls made of several engine calls (an upsert's groups) count here, so close()
        # waits for them as the engine waits for its single calls.
        self._calls = threading.Condition()
        self._in_calls = 0
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "Embedded":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the calls in progress, flush and close; later calls raise
        :class:`FailedPrecondition`. Idempotent."""
        with self._calls:
            self._closing = True
            self._calls.wait_for(lambda: self._in_calls == 0)
        self._eng.close()

    def _begin(self) -> None:
        with self._calls:
            if self._closing:
                raise FailedPrecondition("this vectord.open handle is closed")
            self._in_calls += 1

    def _end(self) -> None:
        with self._calls:
            self._in_calls -= 1
            self._calls.notify_all()

    @property
    def closed(self) -> bool:
        return self._eng.closed

    def __repr__(self) -> str:
        return f"<vectord.open {self.path!r} {'closed' if self.closed else 'open'}>"

    # -- collections -----------------------------------------------------------------------

    def create_collection(self, name: str, dim: int, metric: str = "cosine", m: int = 16,
                          ef_construction: int = 200, ef_search: int = 100,
                          id_type: str = "int", quantization: str = "none") -> CollectionInfo:
        """As :meth:`Client.create_collection`."""
        quant = quantization_from_wire(quantization_to_wire(quantization))  # its check, its name
        return info_of(**self._eng.create_collection(
            *create_args(name, dim, metric, m, ef_construction, ef_search, id_type), quant))

    def drop_collection(self, name: str) -> None:
        """As :meth:`Client.drop_collection`."""
        self._eng.drop_collection(check_name(name))

    def list_collections(self) -> List[CollectionInfo]:
        """As :meth:`Client.list_collections` (sorted by name)."""
        return [info_of(**c) for c in self._eng.list_collections()]

    def collection_info(self, name: str) -> CollectionInfo:
        """As :meth:`Client.collection_info`."""
        return info_of(**self._eng.collection_info(check_name(name)))

    def count(self, collection: str, filter: Optional[Filter] = None) -> int:
        """As :meth:`Client.count`."""
        check_name(collection)
        return self._eng.count(collection, _filter_bytes(filter))

    # -- payload indexes -------------------------------------------------------------------

    def create_payload_index(self, collection: str, field: str, kind: str = "keyword", *,
                             timeout: Optional[float] = None) -> PayloadIndexInfo:
        """As :meth:`Client.create_payload_index`; the build over the stored points runs
        within the call (writes wait for it, reads go on), so ``timeout`` is accepted for
        the Client's signature and has nothing to wait for."""
        check_pindex_kind(kind)
        return PayloadIndexInfo(**self._eng.create_payload_index(
            check_name(collection), check_name(field, "field"), kind))

    def drop_payload_index(self, collection: str, field: str) -> None:
        """As :meth:`Client.drop_payload_index`."""
        self._eng.drop_payload_index(check_name(collection), check_name(field, "field"))

    def stats(self) -> Dict[str, Any]:
        """The Client's stats keys (the wire's StatsResponse fields), for this handle:
        ``connections`` is 0 (there are none), ``reader_threads`` the handle's threads."""
        have = dict(self._eng.stats(), **self._eng.counters(),
                    server_version=self.server_version, connections=0)
        return {f.name: have[f.name] for f in pb.StatsResponse.DESCRIPTOR.fields}

    # -- points ----------------------------------------------------------------------------

    def upsert(self, collection: str, ids: IdsLike, vectors: MatrixLike,
               payloads: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
               batch_size: int = 1024, progress: bool = False) -> int:
        """As :meth:`Client.upsert`: each batch of ``batch_size`` points is an atomic write
        checked on its own; a call's batches are committed in groups (one transaction and
        one sync each), and the call returns once all are durable."""
        arrays = upsert_arrays(collection, ids, vectors, payloads, batch_size)
        if arrays is None:
            return 0
        id_arr, vecs, encoded = arrays
        n, dim = vecs.shape
        rows = max(batch_size, min(batch_size * _GROUP_BATCHES,
                                   _GROUP_BYTES // max(1, 4 * dim + 8)))
        written, bar = 0, None
        self._begin()
        try:
            bar = _progress_bar(progress, n, f"upsert {collection}")
            for lo in range(0, n, rows):
                hi = min(lo + rows, n)
                try:
                    written += self._eng.upsert(collection, _engine_ids(id_arr, lo, hi),
                                                vecs[lo:hi], dim,
                                                encoded[lo:hi] if encoded else None,
                                                batch_size)
                except Error as e:  # rows of this group -> rows of the call
                    raise _shift_rows(e, lo)
                if bar is not None:
                    bar.update(hi - lo)
        finally:
            self._end()
            if bar is not None:
                bar.close()
        return written

    def search(self, collection: str, query: MatrixLike, k: int = 10, ef: Optional[int] = None,
               with_payload: bool = True, filter: Optional[Filter] = None,
               rerank: Optional[int] = None) -> Union[List[Hit], List[List[Hit]]]:
        """As :meth:`Client.search`."""
        flt = _filter_bytes(filter)
        rr = rerank_param(rerank)
        q, single = to_queries(query)
        check_name(collection)
        k, ef_v = search_params(k, ef)
        out: List[List[Hit]] = []
        if q.shape[0]:
            ids, dists, pls, nq, kk = self._eng.search(collection, q, q.shape[1], k, ef_v,
                                                       bool(with_payload), flt, rr)
            out = hits_of(_id_matrix(ids, nq, kk),
                          np.frombuffer(dists, dtype=np.float32).reshape(nq, kk), pls)
        return out[0] if single else out

    def knn(self, collection: str, queries: MatrixLike, k: int = 10, ef: Optional[int] = None,
            filter: Optional[Filter] = None,
            rerank: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`Client.knn`; the arrays are the engine's, wrapped without a copy (but
        for string ids, which become an object array of str)."""
        flt = _filter_bytes(filter)
        rr = rerank_param(rerank)
        q, _ = to_queries(queries)
        check_name(collection)
        k, ef_v = search_params(k, ef)
        if q.shape[0] == 0:
            return np.empty((0, k), dtype=np.uint64), np.empty((0, k), dtype=np.float32)
        ids, dists, _, nq, kk = self._eng.search(collection, q, q.shape[1], k, ef_v, False, flt,
                                                 rr)
        return _id_matrix(ids, nq, kk), np.frombuffer(dists, dtype=np.float32).reshape(nq, kk)

    def explain(self, collection: str, query: MatrixLike, k: int = 10, ef: Optional[int] = None,
                filter: Optional[Filter] = None) -> Dict[str, Any]:
        """As :meth:`Client.explain` (the same dict)."""
        flt = _filter_bytes(filter)
        q, _ = to_queries(query)
        check_name(collection)
        k, ef_v = search_params(k, ef)
        if q.shape[0] == 0:
            return {"queries": []}
        return self._eng.explain(collection, q, q.shape[1], k, ef_v, False, flt)

    def get(self, collection: str, ids: IdsLike, with_vectors: bool = True,
            with_payload: bool = True) -> List[Optional[Record]]:
        """As :meth:`Client.get`; the vectors are rows of one array the engine filled."""
        check_name(collection)
        id_arr = to_point_ids(ids)
        n = len(id_arr)
        if n == 0:
            return []
        found, vecs, pls, dim = self._eng.get(collection, _engine_ids(id_arr, 0, n),
                                              bool(with_vectors), bool(with_payload))
        mat = (np.frombuffer(vecs, dtype=np.float32).reshape(n, dim)
               if vecs is not None else None)
        return records_of(id_values(id_arr, 0, n), memoryview(found), mat, pls)

    def delete(self, collection: str, ids: Optional[IdsLike] = None,
               filter: Optional[Filter] = None) -> int:
        """As :meth:`Client.delete`: by ids, or every point the filter matches in one atomic,
        durable write; not both."""
        check_name(collection)
        flt = _filter_bytes(filter)
        if flt is not None:  # ids too: the engine refuses both, its rule and its message
            id_arg = None if ids is None else _engine_ids(to_point_ids(ids), 0, 1)
            return self._eng.delete(collection, id_arg, flt)
        if ids is None:
            raise InvalidArgument("delete: give ids or a filter")
        id_arr = to_point_ids(ids)
        n = len(id_arr)
        return self._eng.delete(collection, _engine_ids(id_arr, 0, n), None) if n else 0

    def set_payload(self, collection: str, ids: IdsLike,
                    payloads: Union[Optional[Dict[str, Any]],
                                    Sequence[Optional[Dict[str, Any]]]],
                    merge: bool = True) -> int:
        """As :meth:`Client.set_payload`; the whole call is one atomic, durable write."""
        args = set_payload_args(collection, ids, payloads)
        if args is None:
            return 0
        id_arr, encoded = args
        return self._eng.set_payload(collection, _engine_ids(id_arr, 0, len(id_arr)), encoded,
                                     bool(merge))

    def scroll(self, collection: str, limit: int = 100, cursor: Optional[bytes] = None,
               filter: Optional[Filter] = None, with_vectors: bool = False,
               with_payload: bool = True) -> ScrollPage:
        """As :meth:`Client.scroll` (no frame limit here: a page holds ``limit`` points
        unless the walk ends first); the vectors are rows of one array the engine filled."""
        lim, cur = scroll_args(collection, limit, cursor)
        ids, vecs, pls, dim, nxt = self._eng.scroll(collection, lim, cur, bool(with_vectors),
                                                    bool(with_payload), _filter_bytes(filter))
        id_list = decode_str_ids(*ids) if isinstance(ids, tuple) else \
            np.frombuffer(ids, dtype=np.uint64).tolist()
        mat = (np.frombuffer(vecs, dtype=np.float32).reshape(len(id_list), dim)
               if vecs is not None and id_list else None)
        return page_of(id_list, mat, pls, nxt)

    def iter_points(self, collection: str, batch: int = 1000, *, with_vectors: bool = False,
                    with_payload: bool = True,
                    filter: Optional[Filter] = None) -> Iterator[Record]:
        """As :meth:`Client.iter_points`."""
        return iter_points(self.scroll, collection, batch, with_vectors, with_payload, filter)

    def build(self, name: str, vectors: MatrixLike, ids: Optional[IdsLike] = None,
              payloads: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
              metric: str = "cosine", m: int = 16, ef_construction: int = 200,
              ef_search: int = 100, replace: bool = False) -> CollectionInfo:
        """The offline bulk build of ``vectord build`` from arrays: a new collection ``name``
        of ``vectors`` (``(n, dim)``, any real dtype), built in memory on the handle's threads
        and written in ONE transaction, so it appears complete or not at all.

        Args:
            ids: n distinct ids (default ``0..n-1``): integers, or str - which makes the
                collection one of string ids (``id_type="str"``). payloads: None or one dict
                (or None) per row. metric, m, ef_construction, ef_search: as
                :meth:`create_collection`.
            replace: replace an existing collection of that name (in the same transaction);
                without it an existing name raises :class:`AlreadyExists` before any work.

        Raises:
            InvalidArgument: a bad name, parameter or value (the message names the row),
                repeated ids, mismatched lengths. AlreadyExists.
        """
        name, _, metric, m, ef_construction, ef_search, _ = create_args(
            name, 1, metric, m, ef_construction, ef_search)
        vecs = to_matrix(vectors)
        n, dim = vecs.shape
        id_arr = np.arange(n, dtype="<u8") if ids is None else to_point_ids(ids)
        if len(id_arr) != n:
            raise InvalidArgument(f"got {len(id_arr)} ids and {n} vectors")
        encoded = encode_payloads(payloads, n)
        return info_of(**self._eng.build(name, vecs, dim, _engine_ids(id_arr, 0, n),
                                         encoded or None, metric, m, ef_construction, ef_search,
                                         bool(replace)))


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    from .client import _progress_bar as bar  # the Client's own bar (tqdm when installed)
    return bar(enabled, total, desc)


def _shift_rows(e: Error, lo: int) -> Error:
    """A group's error context ("upsert rows 0..1023") in the whole call's rows."""
    if lo and e.context.startswith("upsert rows "):
        a, b = e.context[len("upsert rows "):].split("..")
        e.context = f"upsert rows {int(a) + lo}..{int(b) + lo}"
    return e


def open(path: Union[str, "os.PathLike[str]"] = "./vectord-data",
         threads: Optional[int] = None) -> Embedded:
    """Open (creating it if missing) the data directory ``path`` in this process.

    Args:
        path: a data directory, the one ``vectord serve --data`` uses.
        threads: threads for one search's queries, for the index work of writes and for
            ``build`` (default: the cores this process may run on).

    Returns:
        an :class:`Embedded` handle with the :class:`Client` API (a context manager).

    Raises:
        FailedPrecondition: another process (a daemon, or another embedded one) writes the
            directory - the message names its pid - or this process has it open already.
        DataLoss / FailedPrecondition: not a vectord directory, or a newer format.
        ImportError: the compiled module is not built.
    """
    return Embedded(path, threads)


__all__ = ["Embedded", "open"]
