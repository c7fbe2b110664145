"""The vectord client: :class:`Client`.

Connections: a Client keeps a small pool of TCP connections. Each call takes one connection
for its whole duration (a pipelined upsert owns its socket until the last acknowledgement)
and gives it back; a thread that finds the pool empty opens another one. So one Client can
be shared by any number of threads, and threads calling at once run in parallel on separate
connections, each greeted with Hello. The constructor opens the first connection, so a wrong
address or token fails there.

Retry rules: a connection found closed before a call starts (server restart, idle timeout)
is replaced silently. A connection that breaks *during* a call makes the call raise
:class:`Unavailable`, except for idempotent calls, which are re-sent once on a fresh
connection (only their unacknowledged frames): ``list_collections``, ``collection_info``,
``count``, ``stats``, ``search``, ``knn``, ``get``, ``upsert`` (writing the same points twice
leaves the same state) and ``delete`` (its returned count may then miss points the lost
attempt already deleted). ``create_collection`` and ``drop_collection`` are never re-sent:
after :class:`Unavailable` from them, look (``list_collections``) before trying again.
Server errors (a non-OK status) and timeouts are never retried.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import vectord_pb2 as pb
from ._codec import (PAD_ID, IdsLike, MatrixLike, check_name, check_uint32, decode_payload,
                     encode_payloads, metric_from_wire, metric_to_wire,
                     quantization_from_wire, quantization_to_wire, to_ids, to_matrix,
                     to_queries)
from ._conn import DEFAULT_MAX_FRAME, Connection, ConnectionBroken, parse_address
from ._errors import (FailedPrecondition, Internal, InvalidArgument, ResourceExhausted,
                      Unavailable)
from ._types import CollectionInfo, Hit, Limits, Record
from ._version import __version__

# Room left in each frame for everything but the bulk bytes (field tags, name, varints).
_FRAME_SLACK = 4096
# Queries per search frame: a batch is cut into about _QUERY_FRAMES frames of 8..64 queries,
# so that every reader thread of the server has frames queued until the end (one frame runs
# on one reader; a few big frames leave threads idle at the tail), while per-frame costs
# stay negligible next to the searching (measured: the client's CPU is < 5 % of a knn).
_QUERY_BATCH_MIN, _QUERY_BATCH_MAX, _QUERY_FRAMES = 8, 64, 32
# Points per get frame and ids per delete frame (further capped by the server's limits).
_GET_BATCH = 1024
_DELETE_BATCH = 16384


def _info_from_wire(info: "pb.CollectionInfo") -> CollectionInfo:
    return CollectionInfo(name=info.name, dim=info.dim, metric=metric_from_wire(info.metric),
                          m=info.m, ef_construction=info.ef_construction,
                          ef_search=info.ef_search, count=info.count,
                          created_unix_s=info.created_unix_s, bytes_disk=info.bytes_disk,
                          bytes_memory=info.bytes_memory,
                          quantization=quantization_from_wire(info.quantization))


def _chunks(n: int, step: int) -> List[Tuple[int, int]]:
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    """A tqdm bar when asked for and tqdm imports; otherwise None (no bar, no error)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except Exception:
        return None
    return tqdm(total=total, desc=desc, unit="pt", unit_scale=True)


class Client:
    """A connection (pool) to one vectord server.

    Args:
        address: ``"host:port"`` (``"[::1]:7711"`` for IPv6; a bare host means port 7711).
        token: the server's token when it runs with ``--token-file``; ``None`` otherwise.
        timeout: seconds to wait for a connection and, during a call, for each step of
            progress (a response, or room to send). Not a bound on a whole call: a large
            upsert takes as long as it needs while acknowledgements keep arriving. ``None``
            waits forever. On expiry the call raises :class:`DeadlineExceeded` and that
            connection is closed.
        window: most request frames in flight per call when a call is split into frames.
        retries: how many times an idempotent call is re-sent on a fresh connection after
            its connection broke (see the module docs); 0 disables.

    Raises:
        Unavailable: the server cannot be reached.
        Unauthenticated: the token is missing or wrong.

    Thread safety: a Client may be shared by threads; concurrent calls use separate pooled
    connections. ``close()`` (or leaving the ``with`` block) closes them all.
    """

    def __init__(self, address: str = "127.0.0.1:7711", token: Optional[str] = None,
                 timeout: Optional[float] = 30.0, *, window: int = 16, retries: int = 1) -> None:
        if timeout is not None and not timeout > 0:
            raise InvalidArgument(f"timeout must be positive seconds or None, got {timeout!r}")
        if token is not None and not isinstance(token, str):
            raise InvalidArgument("token must be a str or None")
        if check_uint32(window, "window") < 1:
            raise InvalidArgument("window must be at least 1")
        self.address = address
        self._host, self._port = parse_address(address)
        self._token = token
        self.timeout = timeout
        self.window = window
        self.retries = check_uint32(retries, "retries")
        self._lock = threading.Lock()
        self._idle: List[Connection] = []
        self._closed = False
        self._limits: Optional[Limits] = None
        self.server_version = ""
        first = self._open()
        self._checkin(first)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection; later calls raise :class:`FailedPrecondition`.
        Connections in use by other threads close when their call ends. Idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<vectord.Client {self.address} {state}>"

    @property
    def limits(self) -> Limits:
        """The server's limits from the latest Hello (frame size, batch, k, dim...)."""
        assert self._limits is not None  # set by the constructor's first connection
        return self._limits

    def _open(self) -> Connection:
        conn = Connection.connect(self._host, self._port, self.timeout, self._token,
                                  f"vectord-python/{__version__}")
        lim = conn.limits
        if lim is not None:
            self._limits = Limits(max_frame_bytes=lim.max_frame_bytes or DEFAULT_MAX_FRAME,
                                  max_batch=lim.max_batch or (1 << 20),
                                  max_k=lim.max_k or 10000, max_dim=lim.max_dim or 4096,
                                  max_connections=lim.max_connections,
                                  idle_timeout_ms=lim.idle_timeout_ms)
        self.server_version = conn.server_version
        return conn

    def _checkout(self) -> Connection:
        while True:
            with self._lock:
                if self._closed:
                    raise FailedPrecondition("this vectord.Client is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open()
            if conn.is_usable():
                return conn
            conn.close()

    def _checkin(self, conn: Connection) -> None:
        if conn.broken:
            conn.close()
            return
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _run(self, bounds: List[Tuple[int, int]], build: Callable[[int], "pb.Request"],
             handle: Callable[[int, "pb.Response"], None], *, idempotent: bool,
             describe: Optional[Callable[[int], str]] = None, splittable: bool = False) -> None:
        """Send frames 0..len(bounds)-1 pipelined on one pooled connection.

        ``bounds[i]`` is the (lo, hi) row range of frame i, read by ``build``/``handle``. If the
        connection breaks and the call is idempotent, the unanswered frames are re-sent once
        on a fresh connection. If ``splittable`` and the server refuses a frame because its
        *response* would exceed the frame limit (payloads the client cannot size in
        advance), that frame is halved (bounds[i] shrinks, a new frame is appended) and the
        unanswered frames are sent again.
        """
        done: List[bool] = [False] * len(bounds)

        def on_response(i: int, resp: "pb.Response") -> None:
            handle(i, resp)
            done[i] = True

        attempt = 0
        while True:
            todo = [i for i in range(len(bounds)) if not done[i]]
            if not todo:
                return
            conn = self._checkout()
            try:
                conn.run(todo, build, on_response, window=self.window, describe=describe)
                return
            except ConnectionBroken as e:
                conn.close()
                if idempotent and attempt < self.retries:
                    attempt += 1
                    continue
                raise Unavailable(e.message + ("" if idempotent else
                                               "; not retried: this call is not idempotent")
                                  ) from None
            except ResourceExhausted as e:
                i = getattr(e, "frame_index", None)
                if not splittable or i is None or bounds[i][1] - bounds[i][0] < 2:
                    raise
                lo, hi = bounds[i]
                bounds[i] = (lo, (lo + hi) // 2)
                bounds.append(((lo + hi) // 2, hi))
                done.append(False)
            finally:
                self._checkin(conn)

    def _call(self, build: Callable[[], "pb.Request"], *, idempotent: bool) -> "pb.Response":
        result: List[pb.Response] = []
        self._run([(0, 1)], lambda i: build(), lambda i, r: result.append(r),
                  idempotent=idempotent)
        return result[0]

    def _frame_budget(self) -> int:
        return max(1024, self.limits.max_frame_bytes - _FRAME_SLACK)

    # -- collections -----------------------------------------------------------------------

    def create_collection(self, name: str, dim: int, metric: str = "cosine", m: int = 16,
                          ef_construction: int = 200, ef_search: int = 100,
                          quantization: str = "none") -> CollectionInfo:
        """Create a collection and return its info.

        Args:
            name: ``[A-Za-z0-9_-]{1,64}``.
            dim: vector dimension, 1..``limits.max_dim``.
            metric: ``"l2"`` (squared Euclidean), ``"cosine"`` (1 - cos; vectors are stored
                normalized, zero vectors are refused) or ``"ip"`` (-dot).
            m: HNSW links per node (0: server default 16).
            ef_construction: HNSW build candidate list (0: server default 200).
            ef_search: default query candidate list (0: server default 100).
            quantization: ``"none"`` (float32 in the graph) or ``"int8"`` (int8 codes in
                the graph: about a quarter of the vector memory and faster searches; the
                best candidates are re-ranked with the float32 vectors, which stay stored
                and are what ``get`` returns). Fixed at creation.

        Raises:
            AlreadyExists: the name is taken. InvalidArgument: a bad name, dim, metric or
            quantization.
            Unavailable: the connection broke; not retried (check ``list_collections``).
        """
        req = pb.Request()
        c = req.create_collection
        c.name = check_name(name)
        c.dim = check_uint32(dim, "dim")
        c.metric = metric_to_wire(metric)
        c.m = check_uint32(m, "m")
        c.ef_construction = check_uint32(ef_construction, "ef_construction")
        c.ef_search = check_uint32(ef_search, "ef_search")
        c.quantization = quantization_to_wire(quantization)
        resp = self._call(lambda: req, idempotent=False)
        return _info_from_wire(resp.create_collection.info)

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its points. Raises NotFound if it does not exist.
        Not retried on a broken connection."""
        req = pb.Request()
        req.drop_collection.name = check_name(name)
        self._call(lambda: req, idempotent=False)

    def list_collections(self) -> List[CollectionInfo]:
        """Every collection, as :class:`CollectionInfo`, in the server's order."""
        req = pb.Request()
        req.list_collections.SetInParent()
        resp = self._call(lambda: req, idempotent=True)
        return [_info_from_wire(c) for c in resp.list_collections.collections]

    def collection_info(self, name: str) -> CollectionInfo:
        """One collection's :class:`CollectionInfo`. Raises NotFound."""
        req = pb.Request()
        req.collection_info.name = check_name(name)
        resp = self._call(lambda: req, idempotent=True)
        return _info_from_wire(resp.collection_info.info)

    def count(self, collection: str) -> int:
        """Number of points in ``collection``. Raises NotFound."""
        req = pb.Request()
        req.count.collection = check_name(collection)
        return int(self._call(lambda: req, idempotent=True).count.count)

    def stats(self) -> Dict[str, Any]:
        """Server statistics (version, uptime, connections, requests, commits, points,
        sizes, reader threads) as a dict keyed by the wire field names."""
        req = pb.Request()
        req.stats.SetInParent()
        st = self._call(lambda: req, idempotent=True).stats
        return {f.name: getattr(st, f.name) for f in st.DESCRIPTOR.fields}

    # -- points ----------------------------------------------------------------------------

    def upsert(self, collection: str, ids: IdsLike, vectors: MatrixLike,
               payloads: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
               batch_size: int = 1024, progress: bool = False) -> int:
        """Insert or replace points; returns the number written.

        Args:
            collection: collection name.
            ids: n distinct unsigned 64-bit ids (list or integer ndarray).
            vectors: ``(n, dim)`` array of any real dtype, or a list of lists; converted once
                to little-endian float32.
            payloads: ``None``, or n entries each a JSON-serializable dict or ``None``.
                Upserting a point replaces its payload too: no payload clears it.
            batch_size: points per request frame (also capped by the server's
                ``max_batch`` and ``max_frame_bytes``). Frames are pipelined.
            progress: show a tqdm progress bar (if tqdm is installed).

        Each frame is applied atomically and durably before it is acknowledged; the frames
        of one call are not one transaction, so after an error some frames may be written
        (re-running the same upsert is safe). Empty input writes nothing and returns 0.

        Raises:
            InvalidArgument: mismatched lengths, repeated ids, non-dict payloads, wrong
                dimension, NaN/Inf, zero vector in a cosine collection.
            NotFound: no such collection.
        """
        check_name(collection)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
        id_arr = to_ids(ids)
        n = len(id_arr)
        if n == 0:
            if payloads is not None and len(list(payloads)) != 0:
                raise InvalidArgument("payloads given for 0 ids")
            if not (isinstance(vectors, np.ndarray) and vectors.size == 0) and len(vectors) != 0:
                raise InvalidArgument(f"got 0 ids and {len(vectors)} vectors")
            return 0
        vecs = to_matrix(vectors)
        if vecs.shape[0] != n:
            raise InvalidArgument(f"got {n} ids and {vecs.shape[0]} vectors")
        if len(np.unique(id_arr)) != n:
            s = np.sort(id_arr)
            dup = int(s[np.flatnonzero(s[1:] == s[:-1])[0]])
            raise InvalidArgument(f"id {dup} appears more than once; ids in one upsert must "
                                  "be distinct")
        encoded = encode_payloads(payloads, n)
        dim = vecs.shape[1]
        budget = self._frame_budget()
        step = max(1, min(batch_size, self.limits.max_batch))
        row_bytes = 8 + 4 * dim
        if encoded:
            # Split greedily so no frame exceeds the server's frame limit, whatever the
            # payload sizes.
            sizes = np.fromiter((len(p) for p in encoded), dtype=np.int64, count=n)
            cum = np.concatenate(([0], np.cumsum(sizes + row_bytes + 6)))
            bounds: List[Tuple[int, int]] = []
            lo = 0
            while lo < n:
                hi = min(lo + step, n)
                fit = int(np.searchsorted(cum, cum[lo] + budget, side="right")) - 1
                hi = min(hi, fit)
                if hi <= lo:
                    raise InvalidArgument(f"point {lo} (id {int(id_arr[lo])}) needs "
                                          f"{int(cum[lo + 1] - cum[lo])} bytes, over the "
                                          f"server's max frame of "
                                          f"{self.limits.max_frame_bytes} bytes")
                bounds.append((lo, hi))
                lo = hi
        else:
            if row_bytes > budget:
                raise InvalidArgument(f"one vector of dim {dim} exceeds the server's max frame "
                                      f"of {self.limits.max_frame_bytes} bytes")
            bounds = _chunks(n, max(1, min(step, budget // row_bytes)))

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            u = req.upsert
            u.collection = collection
            u.ids = id_arr[lo:hi].tobytes()
            u.vectors = vecs[lo:hi].tobytes()
            if encoded:
                u.payloads.extend(encoded[lo:hi])
            return req

        written = [0] * len(bounds)  # not splittable: bounds never grows
        bar = _progress_bar(progress, n, f"upsert {collection}")

        def handle(i: int, resp: "pb.Response") -> None:
            written[i] = int(resp.upsert.written)
            if bar is not None:
                bar.update(bounds[i][1] - bounds[i][0])

        try:
            self._run(bounds, build, handle, idempotent=True,
                      describe=lambda i: f"upsert rows {bounds[i][0]}..{bounds[i][1] - 1}")
        finally:
            if bar is not None:
                bar.close()
        return sum(written)

    def _search_frames(self, collection: str, q: np.ndarray, k: int, ef: Optional[int],
                       with_payload: bool,
                       handle: Callable[[int, int, int, "pb.SearchResponse"], None],
                       rerank: Optional[int] = None) -> None:
        """Split queries into frames, run them pipelined, hand each checked response to
        ``handle(lo, hi, k, search_response)``."""
        check_name(collection)
        k = check_uint32(k, "k")
        ef_v = 0 if ef is None else check_uint32(ef, "ef")
        rerank_v = 0 if rerank is None else check_uint32(rerank, "rerank")
        nq, dim = q.shape
        budget = self._frame_budget()
        per_row = max(4 * dim, 12 * max(k, 1))
        want = min(_QUERY_BATCH_MAX, max(_QUERY_BATCH_MIN, -(-nq // _QUERY_FRAMES)))
        step = max(1, min(want, self.limits.max_batch, budget // max(per_row, 1)))
        bounds = _chunks(nq, step)

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            s = req.search
            s.collection = collection
            s.queries = q[lo:hi].tobytes()
            s.dim = dim  # the server refuses a query of another dim instead of re-cutting it
            s.k = k
            s.ef = ef_v
            s.rerank = rerank_v
            s.with_payloads = with_payload
            return req

        def on_response(i: int, resp: "pb.Response") -> None:
            lo, hi = bounds[i]
            sr = resp.search
            rows = hi - lo
            if (sr.nq != rows or sr.k != k or len(sr.ids) != rows * k * 8
                    or len(sr.distances) != rows * k * 4
                    or (len(sr.payloads) not in (0, rows * k))):
                raise Internal(f"malformed search response for queries {lo}..{hi - 1}: "
                               f"nq={sr.nq} k={sr.k} ids={len(sr.ids)}B "
                               f"distances={len(sr.distances)}B payloads={len(sr.payloads)}")
            handle(lo, hi, k, sr)

        self._run(bounds, build, on_response, idempotent=True, splittable=True,
                  describe=lambda i: f"queries {bounds[i][0]}..{bounds[i][1] - 1}")

    def search(self, collection: str, query: MatrixLike, k: int = 10, ef: Optional[int] = None,
               with_payload: bool = True,
               rerank: Optional[int] = None) -> Union[List[Hit], List[List[Hit]]]:
        """Nearest neighbours of one query or of a batch.

        Args:
            collection: collection name.
            query: a 1-D vector ``(dim,)`` -> returns ``list[Hit]``; or a 2-D batch
                ``(nq, dim)`` -> returns ``list[list[Hit]]``, one list per query. Any real
                dtype or (nested) lists.
            k: hits per query, 1..``limits.max_k``.
            ef: candidate list size; ``None`` uses the collection's ef_search. The server
                uses max(ef, k).
            with_payload: fetch each hit's payload (else ``Hit.payload`` is None).
            rerank: int8 collections: re-rank ``rerank * k`` candidates with the float32
                vectors (1..64; ``None``: the server's default, 2). Ignored otherwise.

        Hits are nearest first (ties by id); a query gets fewer than k hits when the
        collection holds fewer points. Large batches are split and pipelined.

        Raises:
            InvalidArgument: wrong dimension, NaN/Inf, k = 0 or k > max_k. NotFound.
        """
        q, single = to_queries(query)
        out: List[List[Hit]] = [[] for _ in range(q.shape[0])]

        def handle(lo: int, hi: int, kk: int, sr: "pb.SearchResponse") -> None:
            ids = np.frombuffer(sr.ids, dtype="<u8").reshape(hi - lo, kk).tolist()
            dists = np.frombuffer(sr.distances, dtype="<f4").reshape(hi - lo, kk).tolist()
            pls = sr.payloads if with_payload and len(sr.payloads) else None
            for r in range(hi - lo):
                row_ids, row_d, base = ids[r], dists[r], r * kk
                out[lo + r] = [Hit(id_, d, decode_payload(pls[base + j]) if pls else None)
                               for j, (id_, d) in enumerate(zip(row_ids, row_d))
                               if id_ != PAD_ID]

        if q.shape[0]:
            self._search_frames(collection, q, k, ef, with_payload, handle, rerank)
        return out[0] if single else out

    def knn(self, collection: str, queries: MatrixLike, k: int = 10,
            ef: Optional[int] = None,
            rerank: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Batch k-nearest-neighbour search returning arrays (the fast path).

        Args:
            collection: collection name.
            queries: ``(nq, dim)`` array (any real dtype) or list of lists; a 1-D vector
                counts as one query.
            k: neighbours per query. ef, rerank: as in :meth:`search`.

        Returns:
            ``(ids, distances)``: ``uint64`` and ``float32`` arrays of shape ``(nq, k)``,
            nearest first. Rows with fewer than k points are padded with id ``2**64 - 1``
            and distance ``inf``.
        """
        q, _ = to_queries(queries)
        kk = check_uint32(k, "k")
        ids = np.empty((q.shape[0], kk), dtype=np.uint64)
        dists = np.empty((q.shape[0], kk), dtype=np.float32)

        def handle(lo: int, hi: int, k_: int, sr: "pb.SearchResponse") -> None:
            ids[lo:hi] = np.frombuffer(sr.ids, dtype="<u8").reshape(hi - lo, k_)
            dists[lo:hi] = np.frombuffer(sr.distances, dtype="<f4").reshape(hi - lo, k_)

        if q.shape[0]:
            self._search_frames(collection, q, kk, ef, False, handle, rerank)
        return ids, dists

    def get(self, collection: str, ids: IdsLike, with_vectors: bool = True,
            with_payload: bool = True) -> List[Optional[Record]]:
        """Fetch points by id: one entry per requested id, in order, ``None`` where the id
        does not exist. Vectors of cosine collections come back normalized.

        Raises NotFound (no such collection)."""
        check_name(collection)
        id_arr = to_ids(ids)
        n = len(id_arr)
        out: List[Optional[Record]] = [None] * n
        if n == 0:
            return out
        max_dim = self.limits.max_dim or 4096
        step = max(1, min(_GET_BATCH, self.limits.max_batch,
                          self._frame_budget() // (4 * max_dim + 16)))
        bounds = _chunks(n, step)

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            g = req.get
            g.collection = collection
            g.ids = id_arr[lo:hi].tobytes()
            g.with_vectors = with_vectors
            g.with_payloads = with_payload
            return req

        def handle(i: int, resp: "pb.Response") -> None:
            lo, hi = bounds[i]
            gr, rows = resp.get, hi - lo
            if len(gr.found) != rows or (with_payload and len(gr.payloads) not in (0, rows)):
                raise Internal(f"malformed get response for ids {lo}..{hi - 1}: "
                               f"found={len(gr.found)} payloads={len(gr.payloads)}")
            mat = None
            if with_vectors:
                nbytes = len(gr.vectors)
                if nbytes % (4 * rows):
                    raise Internal(f"get response holds {nbytes} vector bytes for {rows} ids")
                mat = np.frombuffer(gr.vectors, dtype="<f4").reshape(rows, -1).copy()
            pls = gr.payloads if with_payload and len(gr.payloads) else None
            for r in range(rows):
                if gr.found[r]:
                    out[lo + r] = Record(int(id_arr[lo + r]),
                                         mat[r] if mat is not None else None,
                                         decode_payload(pls[r]) if pls else None)

        self._run(bounds, build, handle, idempotent=True, splittable=True,
                  describe=lambda i: f"get ids {bounds[i][0]}..{bounds[i][1] - 1}")
        return out

    def delete(self, collection: str, ids: IdsLike) -> int:
        """Delete points by id; returns how many existed. Unknown ids are ignored; the
        points leave search results at once. Raises NotFound (no such collection)."""
        check_name(collection)
        id_arr = to_ids(ids)
        n = len(id_arr)
        if n == 0:
            return 0
        step = max(1, min(_DELETE_BATCH, self.limits.max_batch, self._frame_budget() // 8))
        bounds = _chunks(n, step)
        deleted = [0] * len(bounds)  # not splittable: bounds never grows

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            req.delete.collection = collection
            req.delete.ids = id_arr[lo:hi].tobytes()
            return req

        def handle(i: int, resp: "pb.Response") -> None:
            deleted[i] = int(resp.delete.deleted)

        self._run(bounds, build, handle, idempotent=True,
                  describe=lambda i: f"delete ids {bounds[i][0]}..{bounds[i][1] - 1}")
        return sum(deleted)
