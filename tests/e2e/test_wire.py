"""Requests the Python client never sends (it validates first), sent as raw frames to the real
daemon: each must get its specific error, and nothing stored may change. Broken framing
must close only the offending connection."""
import socket
import struct
import time

import numpy as np
import pytest

import vectord
from vectord import vectord_pb2 as pb
from vectord._conn import Connection


def raw_connection(address):
    host, port = address.rsplit(":", 1)
    conn = Connection.connect(host, int(port), 10.0, None, "e2e-raw")
    return conn


def send(conn, req):
    """Send one request; return the Response, or raise the mapped error."""
    got = []
    conn.run([0], lambda i: req, lambda i, r: got.append(r))
    return got[0]


def upsert_req(name, ids, vecs, payloads=None):
    req = pb.Request()
    req.upsert.collection = name
    req.upsert.ids = np.asarray(ids, dtype="<u8").tobytes()
    req.upsert.vectors = np.asarray(vecs, dtype="<f4").tobytes()
    if payloads is not None:
        req.upsert.payloads.extend(payloads)
    return req


@pytest.fixture
def coll(client, name):
    client.create_collection(name, dim=2, metric="l2")
    client.upsert(name, [1], [[1, 1]], payloads=[{"keep": True}])
    return name


@pytest.mark.parametrize("what, make", [
    ("payload not JSON", lambda n: upsert_req(n, [2], [[0, 0]], [b"{not json"])),
    ("payload JSON but not an object", lambda n: upsert_req(n, [2], [[0, 0]], [b"[1, 2]"])),
    ("payload truncated JSON", lambda n: upsert_req(n, [2], [[0, 0]], [b'{"a": "b'])),
    ("payload invalid UTF-8", lambda n: upsert_req(n, [2], [[0, 0]], [b'{"a": "\xff"}'])),
    ("payload count != n", lambda n: upsert_req(n, [2, 3], [[0, 0], [1, 1]], [b"{}"])),
    ("empty batch", lambda n: upsert_req(n, [], np.zeros((0, 2)))),
    ("duplicate ids in one batch", lambda n: upsert_req(n, [2, 2], [[0, 0], [1, 1]])),
    ("ids not a multiple of 8 bytes", lambda n: pb.Request(upsert=pb.UpsertRequest(
        collection=n, ids=b"\x01" * 12, vectors=b"\x00" * 8))),
    ("vectors not n x dim", lambda n: pb.Request(upsert=pb.UpsertRequest(
        collection=n, ids=b"\x02" + b"\x00" * 7, vectors=b"\x00" * 12))),
    ("NaN", lambda n: upsert_req(n, [2], [[np.nan, 0]])),
    ("search with no queries", lambda n: pb.Request(search=pb.SearchRequest(
        collection=n, queries=b"", k=1))),
    ("delete with ragged ids", lambda n: pb.Request(delete=pb.DeleteRequest(
        collection=n, ids=b"\x01\x02\x03"))),
    ("get with ragged ids", lambda n: pb.Request(get=pb.GetRequest(
        collection=n, ids=b"\x01\x02\x03"))),
    ("metric unspecified", lambda n: pb.Request(create_collection=pb.CreateCollectionRequest(
        name=n + "_x", dim=2))),
])
def test_bad_requests_get_invalid_argument_and_change_nothing(server, client, coll, what, make):
    conn = raw_connection(server.address)
    try:
        with pytest.raises(vectord.InvalidArgument) as ei:
            send(conn, make(coll))
        assert ei.value.message, what
        # The connection is still usable after a refused request.
        count = pb.Request()
        count.count.collection = coll
        assert send(conn, count).count.count == 1
    finally:
        conn.close()
    rec = client.get(coll, [1, 2, 3])
    assert rec[0].payload == {"keep": True} and rec[1] is None and rec[2] is None
    assert coll + "_x" not in [c.name for c in client.list_collections()]


def search_req(name, n_floats, dim=None, k=1):
    req = pb.Request()
    req.search.collection = name
    req.search.queries = np.ones(n_floats, dtype="<f4").tobytes()
    req.search.k = k
    if dim is not None:
        req.search.dim = dim
    return req


@pytest.mark.parametrize("n_floats", [4, 1, 3])  # a multiple, a fraction, a non-multiple of 2
def test_search_that_says_its_dim_must_match_the_collection(server, client, coll, n_floats):
    conn = raw_connection(server.address)
    try:
        with pytest.raises(vectord.InvalidArgument) as ei:
            send(conn, search_req(coll, n_floats, dim=n_floats))
        assert ei.value.message == f"search: query has {n_floats} dims, collection {coll} expects 2"
        # the collection's own dim, but not whole rows of it
        if n_floats % 2:
            with pytest.raises(vectord.InvalidArgument) as ei:
                send(conn, search_req(coll, n_floats, dim=2))
            assert "not a multiple of 8 (2 dims x 4 bytes" in ei.value.message
        else:
            assert send(conn, search_req(coll, n_floats, dim=2)).search.nq == n_floats // 2
    finally:
        conn.close()


@pytest.mark.parametrize("n_floats", [4, 1, 3])
def test_search_from_a_client_without_dim_is_served_as_before(server, client, coll, n_floats):
    """A client older than SearchRequest.dim: rows of the collection's dim, as always."""
    conn = raw_connection(server.address)
    try:
        if n_floats % 2 == 0:
            r = send(conn, search_req(coll, n_floats)).search
            assert (r.nq, r.k, len(r.ids)) == (n_floats // 2, 1, n_floats // 2 * 8)
        else:
            with pytest.raises(vectord.InvalidArgument) as ei:
                send(conn, search_req(coll, n_floats))
            assert ei.value.message == (f"search: queries hold {4 * n_floats} bytes, not a "
                                        f"multiple of 8 (2 dims x 4 bytes, collection {coll})")
    finally:
        conn.close()


def test_request_before_hello_is_refused(server):
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        req = pb.Request(request_id=5)
        req.list_collections.SetInParent()
        body = req.SerializeToString()
        s.sendall(struct.pack(">I", len(body)) + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break  # the server closes after the error
            data += chunk
    (n,) = struct.unpack(">I", data[:4])
    resp = pb.Response.FromString(data[4:4 + n])
    assert resp.status.code == pb.FAILED_PRECONDITION and "hello" in resp.status.message


@pytest.mark.parametrize("junk", [
    b"\x00\x00\x00\x00",                       # zero-length frame
    struct.pack(">I", 0xFFFFFFF0) + b"abc",    # over max_frame_bytes
    struct.pack(">I", 6) + b"\xff" * 6,        # undecodable protobuf
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",      # not our protocol at all
])
def test_broken_framing_closes_only_that_connection(server, client, coll, junk):
    conn = raw_connection(server.address)
    sock = conn.sock
    sock.setblocking(True)
    sock.settimeout(10)
    sock.sendall(junk)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    conn.close()
    if len(data) >= 4:  # "an error response where possible", then the close
        (n,) = struct.unpack(">I", data[:4])
        resp = pb.Response.FromString(data[4:4 + n])
        assert resp.status.code != pb.OK and resp.status.message
    assert client.count(coll) == 1  # everyone else is still served


def test_silent_and_half_frame_clients_do_not_stall_others(server, client, coll):
    host, port = server.address.rsplit(":", 1)
    silent = socket.create_connection((host, int(port)))
    half = socket.create_connection((host, int(port)))
    half.sendall(struct.pack(">I", 1000) + b"\x0a\x02")  # a frame that never completes
    try:
        t0 = time.perf_counter()
        for _ in range(20):
            assert client.count(coll) == 1
        assert time.perf_counter() - t0 < 5
    finally:
        silent.close()
        half.close()
