"""Client unit tests that need no daemon: conversions, payload JSON, error mapping, address
parsing, framing, and the pipelining pump over a socketpair.

The socketpair peers below are scripted byte-level counterparts for framing tests (answer out
of order, fail one frame, hang up, stay silent); they implement none of the server. Every
test of real behaviour runs against build/vectord in the other files of this folder.
"""
import socket
import struct
import threading

import numpy as np
import pytest

import vectord
from vectord import vectord_pb2 as pb
from vectord._codec import (PAD_ID, decode_payload, encode_payload, encode_payloads,
                            metric_from_wire, metric_to_wire, to_ids, to_matrix, to_queries)
from vectord._conn import (Connection, ConnectionBroken, FrameReader, SearchEncoder, encode_frame,
                           parse_address)
from vectord._errors import ERROR_CLASSES, Code, error_from_status


# ---- ids ---------------------------------------------------------------------------------

def test_ids_from_list_scalar_and_arrays():
    assert to_ids([1, 2, 3]).tolist() == [1, 2, 3]
    assert to_ids(7).tolist() == [7]
    assert to_ids(np.int32(5)).tolist() == [5]
    a = to_ids(np.array([0, PAD_ID], dtype=np.uint64))
    assert a.dtype == np.dtype("<u8") and a.tolist() == [0, PAD_ID]
    assert to_ids([2 ** 63, 2 ** 64 - 1]).tolist() == [2 ** 63, 2 ** 64 - 1]
    assert to_ids([1, 2 ** 64 - 2]).tolist() == [1, 2 ** 64 - 2]  # numpy alone: float64
    assert to_ids([]).shape == (0,)
    big_endian = np.array([1, 2], dtype=">u8")
    assert to_ids(big_endian).tobytes() == struct.pack("<2Q", 1, 2)


@pytest.mark.parametrize("bad, words", [
    ([-1, 2], "unsigned"),
    ([1.5], "integers"),
    ([1, 2 ** 64 - 2, 1.5], "integers"),
    ([-1, 2 ** 64 - 2], "integers"),
    ([[1, 2]], "1-D"),
    (["1"], "integers"),
    ([True], "integers"),
    ([2 ** 64], "2**64"),
    ([1, [2]], "integers"),
])
def test_ids_refused(bad, words):
    with pytest.raises(vectord.InvalidArgument) as ei:
        to_ids(bad)
    assert words in str(ei.value)


# ---- vectors -----------------------------------------------------------------------------

def test_matrix_conversion_once_and_no_copy_when_already_f4():
    f4 = np.ones((3, 4), dtype=np.float32)
    assert np.shares_memory(to_matrix(f4), f4)  # already wire layout: no copy
    for dtype in (np.float64, np.float16, ">f4", np.int32):
        a = np.arange(12).reshape(3, 4).astype(dtype)
        m = to_matrix(a)
        assert m.dtype == np.dtype("<f4") and m.flags.c_contiguous
        assert m.tobytes() == np.arange(12, dtype="<f4").tobytes()
    strided = np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2]
    assert to_matrix(strided).tobytes() == np.ascontiguousarray(strided).tobytes()
    assert to_matrix([[1.0, 2.0], [3.0, 4.0]]).shape == (2, 2)


@pytest.mark.parametrize("bad, words", [
    ([[1.0, 2.0], [3.0]], "2-D array"),
    ([1.0, 2.0], "2-D (n, dim)"),
    ([["a", "b"]], "real numbers"),
    (np.ones((2, 2), dtype=np.complex64), "real numbers"),
    (np.ones((2, 2, 2)), "2-D (n, dim)"),
    ([[True, False]], "real numbers"),
])
def test_matrix_refused(bad, words):
    with pytest.raises(vectord.InvalidArgument) as ei:
        to_matrix(bad)
    assert words in str(ei.value)


def test_queries_1d_and_2d():
    q, single = to_queries([1, 2, 3])
    assert single and q.shape == (1, 3) and q.dtype == np.dtype("<f4")
    q, single = to_queries(np.zeros((5, 3)))
    assert not single and q.shape == (5, 3)
    with pytest.raises(vectord.InvalidArgument):
        to_queries(np.zeros((1, 2, 3)))
    with pytest.raises(vectord.InvalidArgument):
        to_queries(5.0)


# ---- payloads ----------------------------------------------------------------------------

def test_payload_encoding():
    assert encode_payload(None) == b""
    assert encode_payload({}) == b"{}"
    p = {"text": "naïve café ☕ 日本語", "nested": {"a": [1, 2.5, None, True], "b": {}}}
    raw = encode_payload(p)
    assert "日本語".encode() in raw  # ensure_ascii=False: UTF-8 on the wire, not \\u escapes
    assert decode_payload(raw) == p
    assert decode_payload(b"") is None
    assert encode_payloads(None, 3) == []
    assert encode_payloads([None, None], 2) == []
    assert encode_payloads([None, {"a": 1}], 2) == [b"", b'{"a":1}']


@pytest.mark.parametrize("payloads, n, words", [
    (["text"], 1, "must be a dict"),
    ([[1, 2]], 1, "must be a dict"),
    ([{"x": float("nan")}], 1, "not JSON-serializable"),
    ([{"x": {1, 2}}], 1, "not JSON-serializable"),
    ([{"x": b"bytes"}], 1, "not JSON-serializable"),
    ([{"x": "\ud800"}], 1, "not JSON-serializable"),
    ([{}], 2, "got 1 payloads for 2 ids"),
    ({"a": 1}, 1, "sequence"),
    ("ab", 2, "sequence"),
])
def test_payloads_refused(payloads, n, words):
    with pytest.raises(vectord.InvalidArgument) as ei:
        encode_payloads(payloads, n)
    assert words in str(ei.value)


def test_metrics():
    assert [metric_to_wire(m) for m in ("l2", "COSINE", "ip")] == [pb.L2, pb.COSINE, pb.IP]
    assert metric_from_wire(pb.COSINE) == "cosine"
    with pytest.raises(vectord.InvalidArgument):
        metric_to_wire("euclid")


# ---- errors ------------------------------------------------------------------------------

def test_every_wire_code_maps_to_its_class():
    for value, name in ((v.number, v.name) for v in pb.Code.DESCRIPTOR.values):
        assert Code(value).name == name  # our enum mirrors the proto exactly
        if value == 0:
            continue
        err = error_from_status(value, "what was wrong")
        assert isinstance(err, vectord.Error)
        assert type(err) is ERROR_CLASSES[Code(value)]
        assert err.code == value and err.message == "what was wrong"
        assert str(err) == f"{name}: what was wrong"
    assert type(error_from_status(pb.NOT_FOUND, "x")) is vectord.NotFound
    assert type(error_from_status(pb.UNAUTHENTICATED, "x")) is vectord.Unauthenticated
    unknown = error_from_status(99, "future")
    assert type(unknown) is vectord.Unknown and "99" in unknown.message
    ctx = error_from_status(pb.INVALID_ARGUMENT, "vector 3 has 2 dims", "upsert rows 0..9")
    assert str(ctx) == "INVALID_ARGUMENT: vector 3 has 2 dims (upsert rows 0..9)"


def test_parse_address():
    assert parse_address("127.0.0.1:7711") == ("127.0.0.1", 7711)
    assert parse_address("localhost") == ("localhost", 7711)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("", "host:", "host:0", "host:70000", "host:x", "[::1", "[::1]x", ":80", 5):
        with pytest.raises(vectord.InvalidArgument):
            parse_address(bad)


def test_client_argument_checks_before_connecting():
    with pytest.raises(vectord.InvalidArgument):
        vectord.Client("127.0.0.1:1", timeout=0)
    with pytest.raises(vectord.InvalidArgument):
        vectord.Client("127.0.0.1:1", token=b"bytes")
    with pytest.raises(vectord.Unavailable) as ei:
        vectord.Client("127.0.0.1:1")  # nothing listens on port 1
    assert "127.0.0.1:1" in str(ei.value)


# ---- framing -----------------------------------------------------------------------------

def _response_frame(rid, code=0, message="", **search):
    r = pb.Response(request_id=rid)
    r.status.code = code
    r.status.message = message
    if search:
        for key, value in search.items():
            setattr(r.search, key, value)
    body = r.SerializeToString()
    return struct.pack(">I", len(body)) + body


def test_frame_reader_any_split():
    stream = b"".join(_response_frame(i, ids=bytes(8 * i)) for i in range(1, 6))
    for cut in range(1, 17):  # deliver the stream in pieces of every small size
        reader, got = FrameReader(initial=8), []
        for off in range(0, len(stream), cut):
            piece = stream[off:off + cut]
            pos = 0
            while pos < len(piece):
                view = reader.writable_view()
                n = min(len(view), len(piece) - pos)
                view[:n] = piece[pos:pos + n]
                view.release()
                got += reader.feed(n)
                pos += n
        assert [r.request_id for r in got] == [1, 2, 3, 4, 5]
        assert [len(r.search.ids) for r in got] == [8, 16, 24, 32, 40]


def test_frame_reader_refuses_garbage():
    reader = FrameReader(max_frame=1000)
    view = reader.writable_view()
    view[:4] = struct.pack(">I", 5000)
    view.release()
    with pytest.raises(vectord.Internal):
        reader.feed(4)
    reader = FrameReader()
    junk = struct.pack(">I", 3) + b"\xff\xff\xff"
    view = reader.writable_view()
    view[:len(junk)] = junk
    view.release()
    with pytest.raises(vectord.Internal):
        reader.feed(len(junk))


def test_encode_frame_is_length_prefixed():
    req = pb.Request(request_id=9)
    req.count.collection = "docs"
    frame = encode_frame(req)
    (n,) = struct.unpack(">I", frame[:4])
    assert n == len(frame) - 4 and pb.Request.FromString(frame[4:]) == req


@pytest.mark.parametrize("name", ["docs", "", "ünï-☕" * 9])
@pytest.mark.parametrize("rid", [1, 127, 128, 2 ** 40, 2 ** 64 - 1])
def test_hand_encoded_search_frames_are_what_protobuf_would_send(name, rid):
    """The search hot path encodes its frame head by hand around the borrowed queries: the
    frame must parse into exactly the message the generated encoder builds, for varints of
    every length, empty and multi-byte names, zero and non-zero scalars, big payloads."""
    for nq, dim, k, ef, wp in ((1, 3, 10, 0, False), (300, 784, 1, 2 ** 31, True),
                               (2, 1, 0, 0, False), (5000, 40, 200, 128, True)):
        q = np.random.default_rng(nq).standard_normal((nq, dim)).astype("<f4")
        want = pb.Request(request_id=rid)
        want.search.collection, want.search.queries = name, q.tobytes()
        want.search.dim, want.search.k, want.search.ef, want.search.with_payloads = dim, k, ef, wp
        parts = SearchEncoder(name.encode(), dim, k, ef, wp).frame(memoryview(q)).parts(rid)
        assert parts[1].obj is q  # the queries are sent from the caller's array
        frame = b"".join(bytes(p) for p in parts)
        (n,) = struct.unpack(">I", frame[:4])
        assert n == len(frame) - 4
        got = pb.Request.FromString(frame[4:])
        assert got == want
        assert len(frame) == len(encode_frame(want))  # the same size as the generated one


# ---- the pipelining pump over a socketpair ------------------------------------------------

def _read_request(sock):
    hdr = b""
    while len(hdr) < 4:
        chunk = sock.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (n,) = struct.unpack(">I", hdr)
    body = bytearray()
    while len(body) < n:
        chunk = sock.recv(min(1 << 20, n - len(body)))
        if not chunk:
            return None
        body += chunk
    return pb.Request.FromString(bytes(body))


def _peer(script):
    """Run script(peer_socket) on a thread; returns (client-side Connection, thread)."""
    a, b = socket.socketpair()
    t = threading.Thread(target=lambda: (script(b), b.close()), daemon=True)
    t.start()
    return Connection(a, "socketpair", timeout=5.0), t


def _count_req(i):
    req = pb.Request()
    req.count.collection = f"c{i}"
    return req


def test_pump_matches_out_of_order_responses_and_keeps_the_window():
    seen_window = []

    def script(s):
        # Collect all 12 requests in groups of the window size, answer each group reversed.
        for _ in range(3):
            group = [_read_request(s) for _ in range(4)]
            seen_window.append(len(group))
            for req in reversed(group):
                resp = pb.Response(request_id=req.request_id)
                resp.count.count = int(req.count.collection[1:]) * 10
                body = resp.SerializeToString()
                s.sendall(struct.pack(">I", len(body)) + body)

    conn, t = _peer(script)
    got = {}
    conn.run(list(range(12)), _count_req, lambda i, r: got.__setitem__(i, r.count.count),
             window=4)
    t.join(5)
    assert got == {i: i * 10 for i in range(12)}
    assert seen_window == [4, 4, 4]
    assert not conn.broken


def test_pump_raises_earliest_error_after_draining():
    def script(s):
        reqs = [_read_request(s) for _ in range(4)]
        for req in reversed(reqs):
            i = int(req.count.collection[1:])
            code = pb.INVALID_ARGUMENT if i in (1, 3) else 0
            s.sendall(_response_frame(req.request_id, code, f"frame {i} is bad"))
        # The connection stays usable: answer one more request afterwards.
        req = _read_request(s)
        s.sendall(_response_frame(req.request_id))

    conn, t = _peer(script)
    handled = []
    with pytest.raises(vectord.InvalidArgument) as ei:
        conn.run([0, 1, 2, 3], _count_req, lambda i, r: handled.append(i), window=4,
                 describe=lambda i: f"frame {i}")
    assert ei.value.message == "frame 1 is bad" and ei.value.context == "frame 1"
    assert not conn.broken
    conn.run([0], _count_req, lambda i, r: handled.append("again"))
    t.join(5)
    assert "again" in handled


def test_pump_reports_a_hang_up_as_connection_broken():
    def script(s):
        _read_request(s)
        s.sendall(_response_frame(1)[:5])  # half a frame, then hang up

    conn, t = _peer(script)
    with pytest.raises(ConnectionBroken):
        conn.run([0, 1], _count_req, lambda i, r: None)
    assert conn.broken and conn.sock is None
    with pytest.raises(ConnectionBroken):
        conn.run([0], _count_req, lambda i, r: None)
    t.join(5)


def test_pump_times_out_and_closes():
    done = threading.Event()

    def script(s):
        _read_request(s)
        done.wait(5)  # say nothing

    conn, t = _peer(script)
    conn.timeout = 0.2
    with pytest.raises(vectord.DeadlineExceeded):
        conn.run([0], _count_req, lambda i, r: None)
    assert conn.broken
    done.set()
    t.join(5)


def test_pump_does_not_deadlock_when_both_directions_are_full():
    # 8 requests of 4 MiB each; the peer answers each with 4 MiB before reading the next.
    # A client that blocked in send() without reading would hang here.
    blob = bytes(4 << 20)
    queries = np.zeros((1 << 20,), dtype="<f4")  # 4 MiB, sent from the array in pieces

    def build(i):
        if i % 2:  # hand-encoded frames: partial sendmsg calls resume mid-part
            return SearchEncoder(b"big", 1, 1, 0, False).frame(memoryview(queries))
        req = pb.Request()
        req.upsert.collection = "big"
        req.upsert.vectors = blob
        return req

    def script(s):
        for i in range(8):
            req = _read_request(s)
            assert len(req.search.queries if i % 2 else req.upsert.vectors) == 4 << 20
            s.sendall(_response_frame(req.request_id, ids=blob))

    conn, t = _peer(script)
    sizes = []
    conn.run(list(range(8)), build, lambda i, r: sizes.append(len(r.search.ids)), window=8)
    t.join(10)
    assert sizes == [4 << 20] * 8


def test_pump_refuses_frames_over_the_server_limit():
    conn, t = _peer(lambda s: None)
    conn.limits = pb.Limits(max_frame_bytes=1024)

    def build(i):
        req = pb.Request()
        req.upsert.vectors = bytes(4096)
        return req

    with pytest.raises(vectord.InvalidArgument) as ei:
        conn.run([0], build, lambda i, r: None)
    assert "max frame of 1024" in str(ei.value)
    t.join(5)


def test_connection_usability_check_sees_a_closed_peer():
    conn, t = _peer(lambda s: None)  # the peer closes at once
    t.join(5)
    assert not conn.is_usable()
