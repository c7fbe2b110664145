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
``count``, ``stats``, ``search``, ``knn``, ``explain``, ``get``, ``scroll``, ``upsert``
(writing the same points twice leaves the same state), ``set_payload`` (likewise) and
``delete`` (by ids or filter: its returned count may then miss points the lost attempt
already deleted). ``create_collection``, ``drop_collection``, ``create_payload_index`` and
``drop_payload_index`` are never re-sent: after :class:`Unavailable` from them, look
(``list_collections``, ``collection_info``) before trying again.
Server errors (a non-OK status) and timeouts are never retried.
"""
from __future__ import annotations

import ssl
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import vectord_pb2 as pb
from ._codec import (IdsLike, MatrixLike, StrIds, check_name, check_pindex_kind, check_uint32,
                     create_args, decode_str_ids, hits_of, id_type_from_wire, id_type_to_wire,
                     id_values, info_of, iter_points, metric_from_wire, metric_to_wire,
                     page_of, quantization_from_wire, quantization_to_wire, rerank_param,
                     records_of, scroll_args, search_params, set_payload_args, str_id_matrix,
                     to_point_ids, to_queries, upsert_arrays)
from ._conn import (DEFAULT_MAX_FRAME, Connection, ConnectionBroken, Encoded, SearchEncoder,
                    parse_address)
from ._errors import (FailedPrecondition, Internal, InvalidArgument, ResourceExhausted,
                      Unavailable)
from ._filter import Filter, encode as encode_filter
from ._types import CollectionInfo, Hit, Limits, PayloadIndexInfo, Record, ScrollPage
from ._version import __version__

# Room left in each frame for everything but the bulk bytes (field tags, name, varints).
_FRAME_SLACK = 4096
# Queries per search frame (_query_bounds): big frames while the batch lasts, so per-frame
# costs (both sides' syscalls and wake-ups, the pump, the codec) are spread over many queries,
# then sizes halving down to _QUERY_BATCH_MIN, two of each, so that the server's readers (one
# frame runs on one reader) finish together instead of one idling while another works
# through a big last frame. Measured on fashion-mnist (784-d, ef 10, 2 readers): 32-query
# frames cost the wire path ~15 % more CPU per query than the engine alone.
_QUERY_BATCH_MIN, _QUERY_BATCH_MAX = 8, 128
# Points per get frame and ids per delete frame (further capped by the server's limits).
_GET_BATCH = 1024
_DELETE_BATCH = 16384


_PINDEX_KINDS = {"keyword": pb.PAYLOAD_INDEX_KEYWORD, "integer": pb.PAYLOAD_INDEX_INTEGER,
                 "float": pb.PAYLOAD_INDEX_FLOAT, "bool": pb.PAYLOAD_INDEX_BOOL}
_PINDEX_NAMES = {v: k for k, v in _PINDEX_KINDS.items()}


def _pindex_from_wire(p: "pb.PayloadIndexInfo") -> PayloadIndexInfo:
    return PayloadIndexInfo(field=p.field, kind=_PINDEX_NAMES.get(p.kind, f"unknown({p.kind})"),
                            points=p.points, bytes_memory=p.bytes_memory, building=p.building)


def _info_from_wire(info: "pb.CollectionInfo") -> CollectionInfo:
    return info_of(info.name, info.dim, metric_from_wire(info.metric), info.m,
                   info.ef_construction, info.ef_search, info.count, info.created_unix_s,
                   info.bytes_disk, info.bytes_memory, id_type_from_wire(info.id_type),
                   [_pindex_from_wire(p) for p in info.payload_indexes],
                   quantization_from_wire(info.quantization))


def _tls_context(tls: Union[bool, ssl.SSLContext, None]) -> Optional[ssl.SSLContext]:
    """``tls`` as the Client takes it -> the context to wrap sockets with, or None."""
    if tls is None or tls is False:
        return None
    if tls is True:
        ctx = ssl.create_default_context()  # certificate and host name checked
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx
    if isinstance(tls, ssl.SSLContext):
        return tls
    raise InvalidArgument(f"tls must be True, False, None or an ssl.SSLContext, got "
                          f"{type(tls).__name__}")


def _chunks(n: int, step: int) -> List[Tuple[int, int]]:
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def _set_ids(msg: Any, ids: Any, lo: int, hi: int) -> None:
    """Rows lo..hi-1 of integer ids (``msg.ids``) or string ids (``msg.str_ids``)."""
    if isinstance(ids, StrIds):
        ids.fill(msg.str_ids, lo, hi)
    else:
        msg.ids = ids[lo:hi].tobytes()


def _id_of(ids: Any, i: int) -> Union[int, str]:
    return id_values(ids, i, i + 1)[0]


def _row_bytes(ids: Any) -> Union[int, np.ndarray]:
    """Wire bytes of each row's id: 8, or per row for string ids."""
    return ids.row_sizes() if isinstance(ids, StrIds) else 8


def _greedy_bounds(n: int, step: int, budget: int, sizes: np.ndarray,
                   what: Callable[[int], str], max_frame: int) -> List[Tuple[int, int]]:
    """Frames of at most `step` rows and `budget` bytes, rows of `sizes` bytes each."""
    cum = np.concatenate(([0], np.cumsum(sizes)))
    bounds: List[Tuple[int, int]] = []
    lo = 0
    while lo < n:
        hi = min(lo + step, n)
        fit = int(np.searchsorted(cum, cum[lo] + budget, side="right")) - 1
        hi = min(hi, fit)
        if hi <= lo:
            raise InvalidArgument(f"{what(lo)} needs {int(cum[lo + 1] - cum[lo])} bytes, over "
                                  f"the server's max frame of {max_frame} bytes")
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _query_bounds(nq: int, cap: int) -> List[Tuple[int, int]]:
    """The frames of a batch of nq queries, at most ``cap`` each: full frames first, then
    two each of cap/2, cap/4 ... down to _QUERY_BATCH_MIN (the tail is built backwards)."""
    tail: List[int] = []
    size, left = min(_QUERY_BATCH_MIN, cap), nq
    while left > 0 and size < cap:
        for _ in range(2):
            take = min(size, left)
            if take:
                tail.append(take)
                left -= take
        size = min(2 * size, cap)
    sizes = ([left % cap] if left % cap else []) + [cap] * (left // cap) + tail[::-1]
    bounds, lo = [], 0
    for n in sizes:
        bounds.append((lo, lo + n))
        lo += n
    return bounds


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
        token: the server's token when it runs with ``--token-file`` (or its read-only token,
            ``--read-token-file``: writes then raise :class:`PermissionDenied`); ``None``
            otherwise.
        timeout: seconds to wait for a connection and, during a call, for each step of
            progress (a response, or room to send). Not a bound on a whole call: a large
            upsert takes as long as it needs while acknowledgements keep arriving. ``None``
            waits forever. On expiry the call raises :class:`DeadlineExceeded` and that
            connection is closed.
        window: most request frames in flight per call when a call is split into frames.
        retries: how many times an idempotent call is re-sent on a fresh connection after
            its connection broke (see the module docs); 0 disables.
        tls: ``None``/``False`` for plain TCP; ``True`` for TLS verified against the system's
            CAs with the host name of ``address`` checked; or an ``ssl.SSLContext`` of your
            own (a private CA: ``ssl.create_default_context(cafile="ca.pem")``; a client
            certificate for mTLS: ``ctx.load_cert_chain("client.pem", "client.key")``).
            TLS 1.2 is the oldest version offered.

    Raises:
        Unavailable: the server cannot be reached.
        Unauthenticated: the token is missing or wrong.

    Thread safety: a Client may be shared by threads; concurrent calls use separate pooled
    connections. ``close()`` (or leaving the ``with`` block) closes them all.
    """

    def __init__(self, address: str = "127.0.0.1:7711", token: Optional[str] = None,
                 timeout: Optional[float] = 30.0, *, window: int = 16, retries: int = 1,
                 tls: Union[bool, ssl.SSLContext, None] = None) -> None:
        if timeout is not None and not timeout > 0:
            raise InvalidArgument(f"timeout must be positive seconds or None, got {timeout!r}")
        if token is not None and not isinstance(token, str):
            raise InvalidArgument("token must be a str or None")
        if check_uint32(window, "window") < 1:
            raise InvalidArgument("window must be at least 1")
        self.address = address
        self._host, self._port = parse_address(address)
        self._tls = _tls_context(tls)
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
                                  f"vectord-python/{__version__}", tls=self._tls)
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
             describe: Optional[Callable[[int], str]] = None, splittable: bool = False,
             timeout: Any = "default") -> None:
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
            saved = conn.timeout
            if timeout != "default":
                conn.timeout = timeout
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
                conn.timeout = saved
                self._checkin(conn)

    def _call(self, build: Callable[[], "pb.Request"], *, idempotent: bool,
              timeout: Any = "default") -> "pb.Response":
        result: List[pb.Response] = []
        self._run([(0, 1)], lambda i: build(), lambda i, r: result.append(r),
                  idempotent=idempotent, timeout=timeout)
        return result[0]

    def _frame_budget(self) -> int:
        return max(1024, self.limits.max_frame_bytes - _FRAME_SLACK)

    # -- collections -----------------------------------------------------------------------

    def create_collection(self, name: str, dim: int, metric: str = "cosine", m: int = 16,
                          ef_construction: int = 200, ef_search: int = 100,
                          id_type: str = "int", quantization: str = "none") -> CollectionInfo:
        """Create a collection and return its info.

        Args:
            name: ``[A-Za-z0-9_-]{1,64}``.
            dim: vector dimension, 1..``limits.max_dim``.
            metric: ``"l2"`` (squared Euclidean), ``"cosine"`` (1 - cos; vectors are stored
                normalized, zero vectors are refused) or ``"ip"`` (-dot).
            m: HNSW links per node (0: server default 16).
            ef_construction: HNSW build candidate list (0: server default 200).
            ef_search: default query candidate list (0: server default 100).
            id_type: ``"int"`` (unsigned 64-bit ids) or ``"str"`` (string ids: 1..512 bytes
                of UTF-8, compared bytewise); fixed for the collection's life. Inside, the
                index keeps dense internal ids either way.
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
        c.name, c.dim, metric, c.m, c.ef_construction, c.ef_search, id_type = create_args(
            name, dim, metric, m, ef_construction, ef_search, id_type)
        c.metric = metric_to_wire(metric)
        c.id_type = id_type_to_wire(id_type)
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

    def count(self, collection: str, filter: Optional[Filter] = None) -> int:
        """Number of points in ``collection``, or of those the filter matches (the filter
        grammar is in :mod:`vectord._filter`; conditions on fields with a payload index are
        answered from it, others by reading the payloads). Raises NotFound, InvalidArgument
        (a bad filter, naming the fault and its path)."""
        req = pb.Request()
        req.count.collection = check_name(collection)
        flt = encode_filter(filter)
        if flt is not None:
            req.count.filter.CopyFrom(flt)
        return int(self._call(lambda: req, idempotent=True).count.count)

    # -- payload indexes -------------------------------------------------------------------

    def create_payload_index(self, collection: str, field: str, kind: str = "keyword", *,
                             timeout: Optional[float] = None) -> PayloadIndexInfo:
        """Index a payload field so filters on it are fast; returns its info once built.

        Args:
            collection: collection name.
            field: dotted path into the payloads (``"source"``, ``"meta.lang"``).
            kind: ``"keyword"`` (strings, exact), ``"integer"`` (integral numbers),
                ``"float"`` (numbers) or ``"bool"``. A filter uses the index for conditions
                whose values have its type.
            timeout: seconds to wait for the build over the points already stored (``None``:
                as long as it takes; the server logs its progress). Writes and searches go
                on meanwhile; once created, every write maintains the index.

        Raises:
            AlreadyExists: the field has an index. NotFound: no such collection.
            InvalidArgument: a bad field path or kind. ResourceExhausted: 16 indexes already.
            Unavailable: the connection broke; not retried (``collection_info`` tells).
        """
        check_pindex_kind(kind)
        req = pb.Request()
        c = req.create_payload_index
        c.collection = check_name(collection)
        c.field = check_name(field, "field")
        c.kind = _PINDEX_KINDS[kind]
        resp = self._call(lambda: req, idempotent=False, timeout=timeout)
        return _pindex_from_wire(resp.create_payload_index.info)

    def drop_payload_index(self, collection: str, field: str) -> None:
        """Drop the payload index on ``field``; filters on it then read the payloads.
        Raises NotFound (no such index or collection). Not retried on a broken connection."""
        req = pb.Request()
        req.drop_payload_index.collection = check_name(collection)
        req.drop_payload_index.field = check_name(field, "field")
        self._call(lambda: req, idempotent=False)

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
            ids: n distinct ids: unsigned 64-bit integers (list or integer ndarray), or, for
                a collection created with ``id_type="str"``, strings (1..512 bytes of UTF-8
                each; list or str ndarray).
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
            InvalidArgument: mismatched lengths, repeated ids, ids of the other kind than
                the collection's, a bad string id, non-dict payloads, wrong dimension,
                NaN/Inf, zero vector in a cosine collection.
            NotFound: no such collection.
        """
        arrays = upsert_arrays(collection, ids, vectors, payloads, batch_size)
        if arrays is None:
            return 0
        id_arr, vecs, encoded = arrays
        n, dim = vecs.shape
        budget = self._frame_budget()
        step = max(1, min(batch_size, self.limits.max_batch))
        id_bytes = _row_bytes(id_arr)
        if encoded or isinstance(id_arr, StrIds):
            # Split greedily so no frame exceeds the server's frame limit, whatever the
            # payload and id sizes.
            sizes = id_bytes + 4 * dim + 6
            if encoded:
                sizes = sizes + np.fromiter((len(p) for p in encoded), dtype=np.int64, count=n)
            sizes = np.broadcast_to(sizes, (n,))
            bounds = _greedy_bounds(n, step, budget, sizes,
                                    lambda r: f"point {r} (id {_id_of(id_arr, r)!r})",
                                    self.limits.max_frame_bytes)
        else:
            row_bytes = 8 + 4 * dim
            if row_bytes > budget:
                raise InvalidArgument(f"one vector of dim {dim} exceeds the server's max frame "
                                      f"of {self.limits.max_frame_bytes} bytes")
            bounds = _chunks(n, max(1, min(step, budget // row_bytes)))

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            u = req.upsert
            u.collection = collection
            _set_ids(u, id_arr, lo, hi)
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
                       flt: Optional["pb.Filter"] = None, explain: bool = False,
                       rerank: Optional[int] = None) -> None:
        """Split queries into frames, run them pipelined, hand each checked response to
        ``handle(lo, hi, k, search_response)``."""
        check_name(collection)
        k, ef_v = search_params(k, ef)
        nq, dim = q.shape
        budget = self._frame_budget()
        per_row = max(4 * dim, 12 * max(k, 1))
        cap = max(1, min(_QUERY_BATCH_MAX, self.limits.max_batch, budget // max(per_row, 1)))
        bounds = _query_bounds(nq, cap)

        # dim sent: the server refuses a query of another dim instead of re-cutting it
        extra = pb.SearchRequest()
        if flt is not None:
            extra.filter.CopyFrom(flt)
        extra.explain = explain
        extra.rerank = rerank_param(rerank)
        frames = SearchEncoder(collection.encode("utf-8"), dim, k, ef_v, with_payload,
                               extra.SerializeToString())

        def build(i: int) -> Encoded:
            lo, hi = bounds[i]
            return frames.frame(memoryview(q[lo:hi]))

        def on_response(i: int, resp: "pb.Response") -> None:
            lo, hi = bounds[i]
            sr = resp.search
            rows = hi - lo
            n_ids = len(sr.str_ids.ends) // 4 if sr.HasField("str_ids") else len(sr.ids) // 8
            if (sr.nq != rows or sr.k != k or n_ids != rows * k
                    or len(sr.distances) != rows * k * 4
                    or (len(sr.payloads) not in (0, rows * k))):
                raise Internal(f"malformed search response for queries {lo}..{hi - 1}: "
                               f"nq={sr.nq} k={sr.k} ids={n_ids} "
                               f"distances={len(sr.distances)}B payloads={len(sr.payloads)}")
            handle(lo, hi, k, sr)

        self._run(bounds, build, on_response, idempotent=True, splittable=True,
                  describe=lambda i: f"queries {bounds[i][0]}..{bounds[i][1] - 1}")

    def search(self, collection: str, query: MatrixLike, k: int = 10, ef: Optional[int] = None,
               with_payload: bool = True,
               filter: Optional[Filter] = None,
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
            filter: only points whose payload matches are hits, e.g.
                ``{"source": "a.md", "year": {"$gte": 2020}}`` (grammar: :mod:`vectord._filter`).
            rerank: int8 collections: re-rank ``rerank * k`` candidates with the float32
                vectors (1..64; ``None``: the server's default, 2). Ignored otherwise.

        Hits are nearest first (ties by id); a query gets fewer than k hits only when fewer
        points (matching the filter) exist: a filtered search returns exactly min(k,
        matching points). ``Hit.id`` is an int, or a str in a collection of string ids.
        Large batches are split and pipelined.

        Raises:
            InvalidArgument: wrong dimension, NaN/Inf, k = 0 or k > max_k, a bad filter
                (naming the fault and its path). NotFound.
        """
        flt = encode_filter(filter)
        q, single = to_queries(query)
        out: List[List[Hit]] = [[] for _ in range(q.shape[0])]

        def handle(lo: int, hi: int, kk: int, sr: "pb.SearchResponse") -> None:
            rows = hi - lo
            if sr.HasField("str_ids"):
                ids = str_id_matrix(sr.str_ids.data, sr.str_ids.ends, rows, kk)
            else:
                ids = np.frombuffer(sr.ids, dtype="<u8").reshape(rows, kk)
            dists = np.frombuffer(sr.distances, dtype="<f4").reshape(rows, kk)
            out[lo:hi] = hits_of(ids, dists, sr.payloads if with_payload else None)

        if q.shape[0]:
            self._search_frames(collection, q, k, ef, with_payload, handle, flt, rerank=rerank)
        return out[0] if single else out

    def knn(self, collection: str, queries: MatrixLike, k: int = 10, ef: Optional[int] = None,
            filter: Optional[Filter] = None,
            rerank: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Batch k-nearest-neighbour search returning arrays (the fast path).

        Args:
            collection: collection name.
            queries: ``(nq, dim)`` array (any real dtype) or list of lists; a 1-D vector
                counts as one query.
            k: neighbours per query. ef, filter, rerank: as in :meth:`search` (one filter for
                every query).

        Returns:
            ``(ids, distances)``: arrays of shape ``(nq, k)``, nearest first; ``distances``
            float32. ``ids`` is ``uint64``, rows with fewer than k points padded with id
            ``2**64 - 1``; in a collection of string ids it is an ``object`` array of str,
            padded with ``None``. Distances of padding are ``inf``.
        """
        flt = encode_filter(filter)
        q, _ = to_queries(queries)
        kk = check_uint32(k, "k")
        nq = q.shape[0]
        arrays: Dict[str, np.ndarray] = {}
        dists = np.empty((nq, kk), dtype=np.float32)

        def handle(lo: int, hi: int, k_: int, sr: "pb.SearchResponse") -> None:
            if sr.HasField("str_ids"):
                a = arrays.get("ids")
                if a is None:  # every frame of one call answers from one collection
                    a = arrays["ids"] = np.empty((nq, kk), dtype=object)
                a[lo:hi] = str_id_matrix(sr.str_ids.data, sr.str_ids.ends, hi - lo, k_)
            else:
                a = arrays.get("ids")
                if a is None:
                    a = arrays["ids"] = np.empty((nq, kk), dtype=np.uint64)
                a[lo:hi] = np.frombuffer(sr.ids, dtype="<u8").reshape(hi - lo, k_)
            dists[lo:hi] = np.frombuffer(sr.distances, dtype="<f4").reshape(hi - lo, k_)

        if nq:
            self._search_frames(collection, q, kk, ef, False, handle, flt, rerank=rerank)
        ids = arrays.get("ids")
        return (ids if ids is not None else np.empty((nq, kk), dtype=np.uint64)), dists

    def explain(self, collection: str, query: MatrixLike, k: int = 10, ef: Optional[int] = None,
                filter: Optional[Filter] = None) -> Dict[str, Any]:
        """How the server plans and runs a search (without payloads): a dict with, for a
        filter, ``matching`` (points it matches), ``conditions_indexed`` /
        ``conditions_scanned`` (answered by payload indexes / by reading payloads),
        ``payloads_read`` and ``filter_us``, and ``queries``: per query the ``plan``
        (``"graph"``, ``"exact"``, ``"graph_then_exact"`` or ``"one_hop"``), the ``fallback``
        that sent a traversal to the exact scan, ``ef``, ``nodes_visited``, ``distances``, the
        assumed ``selectivity`` and the planner's cost estimates."""
        flt = encode_filter(filter)
        q, _ = to_queries(query)
        out: Dict[str, Any] = {"queries": [None] * q.shape[0]}

        def handle(lo: int, hi: int, k_: int, sr: "pb.SearchResponse") -> None:
            x = sr.explain
            for f in ("filtered", "matching", "conditions_indexed", "conditions_scanned",
                      "payloads_read", "filter_us"):
                out[f] = getattr(x, f)
            for i, p in enumerate(x.queries):
                out["queries"][lo + i] = {f.name: getattr(p, f.name) for f in p.DESCRIPTOR.fields}

        if q.shape[0]:
            self._search_frames(collection, q, check_uint32(k, "k"), ef, False, handle, flt,
                                explain=True)
        return out

    def get(self, collection: str, ids: IdsLike, with_vectors: bool = True,
            with_payload: bool = True) -> List[Optional[Record]]:
        """Fetch points by id (ints, or str in a collection of string ids): one entry per
        requested id, in order, ``None`` where the id does not exist. Vectors of cosine
        collections come back normalized.

        Raises NotFound (no such collection), InvalidArgument (ids of the other kind, a bad
        string id)."""
        check_name(collection)
        id_arr = to_point_ids(ids)
        n = len(id_arr)
        out: List[Optional[Record]] = [None] * n
        if n == 0:
            return out
        max_dim = self.limits.max_dim or 4096
        step = max(1, min(_GET_BATCH, self.limits.max_batch,
                          self._frame_budget() // (4 * max_dim + 16 + 520)))
        bounds = _chunks(n, step)

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            g = req.get
            g.collection = collection
            _set_ids(g, id_arr, lo, hi)
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
            out[lo:hi] = records_of(id_values(id_arr, lo, hi), gr.found, mat,
                                    gr.payloads if with_payload else None)

        self._run(bounds, build, handle, idempotent=True, splittable=True,
                  describe=lambda i: f"get ids {bounds[i][0]}..{bounds[i][1] - 1}")
        return out

    def delete(self, collection: str, ids: Optional[IdsLike] = None,
               filter: Optional[Filter] = None) -> int:
        """Delete points by id (ints, or str in a collection of string ids), or every point a
        filter matches; returns how many were deleted. Unknown ids are ignored; the points
        leave search results at once. A delete by filter is one atomic, durable write (all
        its points or none); give ids or a filter, not both. Raises NotFound (no such
        collection), InvalidArgument (a bad filter, ids of the other kind)."""
        check_name(collection)
        flt = encode_filter(filter)
        if flt is not None:
            req = pb.Request()
            req.delete.collection = collection
            req.delete.filter.CopyFrom(flt)
            if ids is not None:  # the server refuses both: its rule, its message
                _set_ids(req.delete, to_point_ids(ids), 0, 1)
            return int(self._call(lambda: req, idempotent=True).delete.deleted)
        if ids is None:
            raise InvalidArgument("delete: give ids or a filter")
        id_arr = to_point_ids(ids)
        n = len(id_arr)
        if n == 0:
            return 0
        step = max(1, min(_DELETE_BATCH, self.limits.max_batch))
        if isinstance(id_arr, StrIds):
            bounds = _greedy_bounds(n, step, self._frame_budget(), id_arr.row_sizes(),
                                    lambda r: f"id {r}", self.limits.max_frame_bytes)
        else:
            bounds = _chunks(n, min(step, self._frame_budget() // 8))
        deleted = [0] * len(bounds)  # not splittable: bounds never grows

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            req.delete.collection = collection
            _set_ids(req.delete, id_arr, lo, hi)
            return req

        def handle(i: int, resp: "pb.Response") -> None:
            deleted[i] = int(resp.delete.deleted)

        self._run(bounds, build, handle, idempotent=True,
                  describe=lambda i: f"delete ids {bounds[i][0]}..{bounds[i][1] - 1}")
        return sum(deleted)

    def set_payload(self, collection: str, ids: IdsLike,
                    payloads: Union[Optional[Dict[str, Any]],
                                    Sequence[Optional[Dict[str, Any]]]],
                    merge: bool = True) -> int:
        """Change the payloads of existing points without re-sending their vectors; returns
        how many of the ids existed (and were updated). Ids that do not exist are skipped.

        Args:
            collection: collection name.
            ids: distinct ids (ints, or str in a collection of string ids).
            payloads: one dict (or ``None``) per id, or a single dict applied to every id.
            merge: ``True`` sets the given top-level keys and keeps the others (a point
                without a payload gets the dict); ``False`` replaces the whole payload
                (``None`` then clears it; under merge, ``None`` changes nothing).

        Each frame is applied atomically and durably before it is acknowledged, as for
        :meth:`upsert`; re-running the same call is safe.

        Raises:
            InvalidArgument: repeated ids, ids of the other kind, non-dict payloads, a count
                of payloads other than 1 or len(ids). NotFound: no such collection.
        """
        args = set_payload_args(collection, ids, payloads)
        if args is None:
            return 0
        id_arr, encoded = args
        n = len(id_arr)
        sizes = np.broadcast_to(_row_bytes(id_arr), (n,)) + \
            np.fromiter((len(p) for p in encoded), dtype=np.int64, count=n) + 6
        bounds = _greedy_bounds(n, max(1, min(_GET_BATCH, self.limits.max_batch)),
                                self._frame_budget(), sizes,
                                lambda r: f"payload {r} (id {_id_of(id_arr, r)!r})",
                                self.limits.max_frame_bytes)
        updated = [0] * len(bounds)

        def build(i: int) -> "pb.Request":
            lo, hi = bounds[i]
            req = pb.Request()
            sp = req.set_payload
            sp.collection = collection
            _set_ids(sp, id_arr, lo, hi)
            sp.payloads.extend(encoded[lo:hi])
            sp.merge = bool(merge)
            return req

        def handle(i: int, resp: "pb.Response") -> None:
            updated[i] = int(resp.set_payload.updated)

        self._run(bounds, build, handle, idempotent=True,
                  describe=lambda i: f"set_payload rows {bounds[i][0]}..{bounds[i][1] - 1}")
        return sum(updated)

    def scroll(self, collection: str, limit: int = 100, cursor: Optional[bytes] = None,
               filter: Optional[Filter] = None, with_vectors: bool = False,
               with_payload: bool = True) -> ScrollPage:
        """One page of the collection's points in id order (numeric for int ids, bytewise
        UTF-8 for string ids).

        Args:
            collection: collection name.
            limit: most points in the page, 1..``limits.max_batch``. A page may hold fewer
                (the server cuts it short rather than send a response over its frame
                limit) and still have a ``next_cursor``.
            cursor: ``None`` for the first page, then the previous page's ``next_cursor``.
            filter: only the points it matches (as in :meth:`search`); the walk still goes
                through every id, so a page of a rare match may take the server a while,
                and a page may hold fewer than ``limit`` points before the end.
            with_vectors: return each point's vector (normalized in cosine collections).
            with_payload: return each point's payload.

        Walking a whole collection page by page visits every point that exists for the
        whole walk exactly once, also while other clients write; points added or deleted
        meanwhile may or may not appear, none twice. Nothing is held on the server between
        pages.

        Raises:
            InvalidArgument: a cursor that is not one this collection's scroll returned (or a
                collection dropped and recreated since), a bad limit. NotFound.
        """
        lim, cur = scroll_args(collection, limit, cursor)
        flt = encode_filter(filter)
        req = pb.Request()
        sc = req.scroll
        sc.collection = collection
        if flt is not None:
            sc.filter.CopyFrom(flt)
        sc.limit = lim
        if cur:
            sc.cursor = cur
        sc.with_vectors = with_vectors
        sc.with_payloads = with_payload
        sr = self._call(lambda: req, idempotent=True).scroll
        if sr.HasField("str_ids"):
            ids: List[Any] = decode_str_ids(sr.str_ids.data, sr.str_ids.ends)
        else:
            ids = np.frombuffer(sr.ids, dtype="<u8").tolist()
        n = len(ids)
        if (with_payload and len(sr.payloads) not in (0, n)) or (
                with_vectors and n and len(sr.vectors) % (4 * n)):
            raise Internal(f"malformed scroll response: {n} ids, {len(sr.payloads)} payloads, "
                           f"{len(sr.vectors)} vector bytes")
        vecs = np.frombuffer(sr.vectors, dtype="<f4").reshape(n, -1).copy() \
            if with_vectors and n else None
        return page_of(ids, vecs, sr.payloads if with_payload else None, sr.next_cursor)

    def iter_points(self, collection: str, batch: int = 1000, *, with_vectors: bool = False,
                    with_payload: bool = True,
                    filter: Optional[Filter] = None) -> Iterator[Record]:
        """Every point of the collection as :class:`Record`, in id order: :meth:`scroll`
        page after page (``batch`` points each) until the end. The same guarantees as
        scroll: each point present throughout comes exactly once, also under writes."""
        return iter_points(self.scroll, collection, batch, with_vectors, with_payload, filter)
