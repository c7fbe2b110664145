"""docs/protocol.md, checked against the server word for word.

The page quotes every server message it mentions in a code span between double quotes
(`"search: k is 0; k must be 1..10000"`), with `<n>`-style placeholders for values. This
module provokes each of them from a real daemon over raw frames - along with the behaviours
the page promises about request ids, payload replacement and duplicate ids - and then checks
that every quoted message matches one the server really sent. A message added to the page
without a way to provoke it, or changed in the server without the page, fails here.
"""
import re
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from vectord import vectord_pb2 as pb

from conftest import Daemon, make_test_ca

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
QUOTED = re.compile(r'`"(.+?)"`')
TOKEN = "doc-token"
READ_TOKEN = "doc-read-token"
MAX_FRAME = 1 << 20


def doc_messages():
    return QUOTED.findall(DOC.read_text(encoding="utf-8"))


def as_pattern(message):
    """A quoted message -> a regex matching the whole server message."""
    parts = re.split(r"(<[a-z_]+>)", message)
    return re.compile("".join(".+?" if p.startswith("<") and p.endswith(">") else re.escape(p)
                              for p in parts) + r"\Z")


class Raw:
    """A bare connection: frames in, frames out, nothing checked on our side."""

    def __init__(self, address, hello=True, token=None):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        self.next_id = 1
        if hello:
            r = self.call(hello_req(token))
            assert r.status.code == pb.OK, r.status.message

    def send(self, req):
        if not req.request_id:
            req.request_id = self.next_id
            self.next_id += 1
        body = req.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def recv(self):
        """The next Response, or None once the server has closed."""
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return pb.Response.FromString(body)
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def call(self, req):
        self.send(req)
        return self.recv()

    def closed(self):
        return self.recv() is None

    def close(self):
        self.sock.close()


def hello_req(token=None, version=1):
    r = pb.Request()
    r.hello.protocol_version = version
    if token is not None:
        r.hello.token = token
    return r


def ids_bytes(ids):
    return np.asarray(ids, dtype="<u8").tobytes()


def floats(values):
    return np.asarray(values, dtype="<f4").tobytes()


def upsert(name, ids, vecs, payloads=None):
    r = pb.Request()
    r.upsert.collection = name
    r.upsert.ids = ids_bytes(ids)
    r.upsert.vectors = floats(vecs)
    if payloads is not None:
        r.upsert.payloads.extend(payloads)
    return r


def search(name, values, k=1, dim=0, ef=0, with_payloads=False, rerank=0):
    r = pb.Request()
    r.search.collection = name
    r.search.queries = floats(values)
    r.search.k = k
    r.search.dim = dim
    r.search.ef = ef
    r.search.rerank = rerank
    r.search.with_payloads = with_payloads
    return r


def get(name, ids, with_payloads=False):
    r = pb.Request()
    r.get.collection = name
    r.get.ids = ids_bytes(ids)
    r.get.with_payloads = with_payloads
    return r


def delete(name, ids):
    r = pb.Request()
    r.delete.collection = name
    r.delete.ids = ids_bytes(ids)
    return r


def create(name, dim, metric=pb.L2, **params):
    r = pb.Request()
    c = r.create_collection
    c.name, c.dim, c.metric = name, dim, metric
    for k, v in params.items():
        setattr(c, k, v)
    return r


def str_ids(msg, ids, ends=None):
    """msg.str_ids packed from a list of bytes (ends given: as they are, however wrong)."""
    msg.str_ids.data = b"".join(ids)
    msg.str_ids.ends = np.asarray(ends if ends is not None else np.cumsum([len(i) for i in ids]),
                                  dtype="<u4").tobytes()


def upsert_str(name, ids, ends=None, dim=4):
    r = pb.Request()
    r.upsert.collection = name
    str_ids(r.upsert, ids, ends)
    r.upsert.vectors = floats(np.ones((max(len(ids), 1), dim)))
    return r


def scroll(name, limit=0, cursor=b""):
    r = pb.Request()
    r.scroll.collection, r.scroll.limit, r.scroll.cursor = name, limit, cursor
    return r


def set_payload(name, ids, payloads, merge=True):
    r = pb.Request()
    r.set_payload.collection = name
    r.set_payload.ids = ids_bytes(ids)
    r.set_payload.payloads.extend(payloads)
    r.set_payload.merge = merge
    return r


def named(op, name):
    r = pb.Request()
    getattr(r, op).SetInParent()
    field = "collection" if op == "count" else "name"
    setattr(getattr(r, op), field, name)
    return r


class Log:
    """Every error the server sent, as (code, message, request_id)."""

    def __init__(self):
        self.seen = []

    def add(self, resp, code, rid=None):
        assert resp is not None, "no response"
        assert resp.status.code == code, (resp.status.code, resp.status.message)
        if rid is not None:
            assert resp.request_id == rid, (resp.request_id, rid)
        self.seen.append((resp.status.code, resp.status.message, resp.request_id))
        return resp.status.message


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    base = tmp_path_factory.mktemp("protocol-doc")
    plain = Daemon(base / "plain", base / "plain.log", extra_args=[
        "--max-frame-bytes", str(MAX_FRAME), "--max-batch", "1000", "--max-connections", "4",
        "--idle-timeout-s", "1.5"])
    token = Daemon(base / "token", base / "token.log", token=TOKEN, read_token=READ_TOKEN)
    ca = make_test_ca(base / "ca")
    tls = Daemon(base / "tls", base / "tls.log",
                 extra_args=["--tls-cert", ca["server.pem"], "--tls-key", ca["server.key"]])
    plain.start()
    token.start()
    tls.start(wait=False)
    time.sleep(0.5)  # its readiness probe would need TLS; the refusal below waits anyway
    yield plain, token, tls
    plain.stop()
    token.stop()
    tls.stop()


def seed(address):
    c = Raw(address)
    for req in (create("docs", 4), create("cos", 4, pb.COSINE), create("d", 16),
                create("big", 1), upsert("docs", [1, 2, 3], np.eye(4)[:3]),
                upsert("cos", [1], [[1, 0, 0, 0]])):
        assert c.call(req).status.code == pb.OK
    blob = b'{"t":"' + b"x" * 400_000 + b'"}'
    for i in range(3):
        assert c.call(upsert("big", [i], [[i]], [blob])).status.code == pb.OK
    c.close()


def framing(address, log):
    for raw, code in ((struct.pack(">I", MAX_FRAME + 1) + b"abcd", pb.RESOURCE_EXHAUSTED),
                      (b"\0\0\0\0", pb.INVALID_ARGUMENT),
                      (struct.pack(">I", 6) + b"\xff" * 6, pb.INVALID_ARGUMENT)):
        c = Raw(address)
        c.sock.sendall(raw)
        log.add(c.recv(), code, rid=0)
        assert c.closed()
        c.close()


def hello_time(plain, token, log):
    """Each refusal answers the refused request's id, then closes."""
    for address, code, tok in ((plain, pb.FAILED_PRECONDITION, None),
                               (token, pb.UNAUTHENTICATED, None)):
        c = Raw(address, hello=False)
        r = named("count", "docs")
        r.request_id = 5
        log.add(c.call(r), code, rid=5)
        assert c.closed()
        c.close()
    for address, req, code in ((plain, hello_req(version=2), pb.FAILED_PRECONDITION),
                               (token, hello_req(), pb.UNAUTHENTICATED),
                               (token, hello_req("wrong"), pb.UNAUTHENTICATED)):
        c = Raw(address, hello=False)
        req.request_id = 9
        log.add(c.call(req), code, rid=9)
        assert c.closed()
        c.close()
    Raw(token, token=TOKEN).close()


def permissions(token, log):
    """The read-only token reads and may not write; the connection stays open."""
    c = Raw(token, token=READ_TOKEN)
    r = pb.Request()
    r.list_collections.SetInParent()
    assert c.call(r).status.code == pb.OK
    for req in (create("ro", 4), upsert("ro", [1], [[0] * 4]), delete("ro", [1])):
        req.request_id = 11
        log.add(c.call(req), pb.PERMISSION_DENIED, rid=11)
    assert c.call(r).status.code == pb.OK
    c.close()


def plain_on_tls(address, log):
    deadline = time.monotonic() + 30
    while True:  # the TLS daemon may still be starting
        try:
            c = Raw(address, hello=False)
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    log.add(c.call(hello_req()), pb.FAILED_PRECONDITION, rid=0)
    assert c.closed()
    c.close()


def connection_limits(address, log):
    c = Raw(address, hello=False)  # says nothing: cut after 1.5 s
    t0 = time.monotonic()
    log.add(c.recv(), pb.UNAVAILABLE, rid=0)
    assert 1.0 < time.monotonic() - t0 < 5 and c.closed()
    c.close()
    time.sleep(0.2)  # let the server count the earlier connections out
    held = [Raw(address) for _ in range(4)]
    extra = Raw(address, hello=False)
    log.add(extra.recv(), pb.RESOURCE_EXHAUSTED, rid=0)
    extra.close()
    for h in held:
        h.close()
    time.sleep(0.2)


def requests(address, log):
    c = Raw(address)
    inv, nf = pb.INVALID_ARGUMENT, pb.NOT_FOUND
    r = pb.Request(request_id=7)
    log.add(c.call(r), pb.UNIMPLEMENTED, rid=7)
    # one not-found message for every operation
    for req in (named("collection_info", "nope"), named("count", "nope"),
                named("drop_collection", "nope"), get("nope", [1]), search("nope", [1] * 4),
                upsert("nope", [1], [[0] * 4]), delete("nope", [1])):
        log.add(c.call(req), nf)
    # bulk fields the wire format refuses; the connection stays open
    r = pb.Request()
    r.delete.collection, r.delete.ids = "docs", b"\1" * 12
    log.add(c.call(r), inv)
    r = pb.Request()
    r.upsert.collection, r.upsert.ids, r.upsert.vectors = "docs", ids_bytes([1]), b"\0" * 30
    log.add(c.call(r), inv)
    log.add(c.call(get("docs", range(1001))), inv)
    # create
    for req, code in ((create("bad name!", 4), inv), (create("x", 0), inv),
                      (create("x", 4, ef_construction=20000), inv), (create("x", 4, 0), inv),
                      (create("x", 4, quantization=7), inv),
                      (create("docs", 4), pb.ALREADY_EXISTS)):
        log.add(c.call(req), code)
    # upsert and delete
    for req in (upsert("docs", [100, 101], [0] * 7),
                upsert("docs", [100, 101, 102], np.zeros((3, 4)), [b"{}", b"{}"]),
                upsert("docs", [], []), delete("docs", []), get("docs", []),
                upsert("docs", [7, 7], np.zeros((2, 4))), delete("docs", [7, 7]),
                upsert("docs", [7], [[0, 0, np.nan, 0]]), upsert("cos", [7], [[0, 0, 0, 0]]),
                upsert("docs", [7], [[0] * 4], [b"{not json"]),
                upsert("docs", [7], [[0] * 4], [b"[1, 2]"]),
                upsert("docs", [7], [[0] * 4], [b'{"a":' * 65 + b"1" + b"}" * 65])):
        log.add(c.call(req), inv)
    # search
    for req in (search("d", [1] * 32, dim=32), search("docs", [0] * 5), search("docs", [1] * 4, k=0),
                search("docs", [1] * 4, k=10001), search("docs", [1] * 4, ef=20000),
                search("docs", [1] * 4, rerank=65),
                search("docs", []), search("docs", np.ones(1001 * 4)),
                search("docs", [0, np.nan, 0, 0]), search("cos", [0] * 4)):
        log.add(c.call(req), inv)
    # responses over max_frame_bytes: before the work, and with payloads after it
    ex = pb.RESOURCE_EXHAUSTED
    log.add(c.call(search("docs", np.ones(1000 * 4), k=100)), ex)
    log.add(c.call(get("big", [0, 1, 2], with_payloads=True)), ex)
    log.add(c.call(search("big", [1], k=3, with_payloads=True)), ex)
    c.close()


def strids_scroll_set_payload(address, log):
    c = Raw(address)
    inv = pb.INVALID_ARGUMENT
    bad_type = create("styp", 4)
    bad_type.create_collection.id_type = 5
    log.add(c.call(bad_type), inv)
    sc = create("sdocs", 4)
    sc.create_collection.id_type = pb.ID_TYPE_STR
    assert c.call(sc).status.code == pb.OK
    assert c.call(upsert_str("sdocs", [b"a.md#0", b"b"])).status.code == pb.OK
    both = upsert_str("sdocs", [b"x"])
    both.upsert.ids = ids_bytes([1])
    for req in (upsert("sdocs", [1], [[0] * 4]), upsert_str("docs", [b"a"]), both,
                upsert_str("sdocs", [b"ok", b""]), upsert_str("sdocs", [b"ok", b"y" * 513]),
                upsert_str("sdocs", [b"ok", b"\xff"]), upsert_str("sdocs", [b"d", b"d"]),
                upsert_str("sdocs", [b"ab", b"c"], ends=[2, 1]),
                upsert_str("sdocs", [b"ab", b"c"], ends=[2, 9]),
                upsert_str("sdocs", [b"ab", b"c"], ends=[1, 2])):
        log.add(c.call(req), inv)
    r = upsert_str("sdocs", [b"ab"])
    r.upsert.str_ids.ends = b"\1" * 5
    log.add(c.call(r), inv)
    # scroll: a walk, then the cursor refusals
    page = c.call(scroll("docs", limit=1))
    assert page.status.code == pb.OK and len(page.scroll.ids) == 8 and page.scroll.next_cursor
    log.add(c.call(scroll("docs", limit=1001)), inv)
    log.add(c.call(scroll("docs", cursor=b"\1\0forged")), inv)
    log.add(c.call(scroll("sdocs", cursor=page.scroll.next_cursor)), inv)
    log.add(c.call(scroll("nope")), pb.NOT_FOUND)
    walk = c.call(scroll("sdocs", limit=1))
    ends = np.frombuffer(walk.scroll.str_ids.ends, dtype="<u4")
    assert walk.scroll.str_ids.data == b"a.md#0" and list(ends) == [6] and walk.scroll.next_cursor
    # search names the hits of a string-id collection in str_ids
    hit = c.call(search("sdocs", [1] * 4, k=3, dim=4))
    assert hit.search.ids == b"" and len(hit.search.str_ids.ends) == 12
    # set_payload
    for req, code in ((set_payload("docs", [1, 2], [b"{}"]), inv),
                      (set_payload("docs", [], []), inv),
                      (set_payload("docs", [1], [b"[1]"]), inv),
                      (set_payload("nope", [1], [b"{}"]), pb.NOT_FOUND)):
        log.add(c.call(req), code)
    r = c.call(set_payload("docs", [1, 999], [b'{"a":1}', b'{"a":2}']))
    assert r.status.code == pb.OK and r.set_payload.updated == 1
    c.close()


def fcond(field, op, *vals):
    f = pb.Filter()
    c = f.condition
    c.field, c.op = field, op
    for v in vals:
        x = c.values.add()
        if isinstance(v, bool):
            x.b = v
        elif isinstance(v, int):
            x.i = v
        elif isinstance(v, float):
            x.f = v
        else:
            x.s = v if isinstance(v, bytes) else v.encode()
    return f


def with_filter(req, f):
    getattr(req, req.WhichOneof("op")).filter.CopyFrom(f)
    return req


def nested_not(f, levels):
    for _ in range(levels):
        g = pb.Filter()
        g.negate.CopyFrom(f)
        f = g
    return f


def filters(address, log):
    """Filters the server refuses, and payload index operations."""
    c = Raw(address)
    inv = pb.INVALID_ARGUMENT
    cnt = named("count", "docs")
    nan_gte, or_empty, or_badpath, empty = (fcond("year", pb.FILTER_GTE, float("nan")),
                                            pb.Filter(), pb.Filter(), pb.Filter())
    or_empty.any.SetInParent()
    or_badpath.any.filters.extend([fcond("a", pb.FILTER_EQ, 1), fcond("b..c", pb.FILTER_EQ, 1)])
    no_op = fcond("a", pb.FILTER_OP_UNSPECIFIED, 1)
    for req in (with_filter(search("docs", [1] * 4), nan_gte),
                with_filter(search("docs", [1] * 4), empty),
                with_filter(search("docs", [1] * 4), no_op),
                with_filter(search("docs", [1] * 4), nested_not(fcond("a", pb.FILTER_EQ, 1), 70)),
                with_filter(delete("docs", []), or_badpath),
                with_filter(delete("docs", [1]), fcond("a", pb.FILTER_EQ, 1))):
        log.add(c.call(req), inv)
    for f in (fcond("year", pb.FILTER_GTE, True), fcond("a", pb.FILTER_EXISTS, 1),
              fcond("a", pb.FILTER_EQ, 1, 2), or_empty, fcond("", pb.FILTER_EQ, 1),
              fcond("a", pb.FILTER_EQ, b"\xff"), nested_not(fcond("a", pb.FILTER_EQ, 1), 17),
              fcond("a", pb.FILTER_IN, *range(1100))):
        log.add(c.call(with_filter(named("count", "docs"), f)), inv)
    # a filter that is fine counts; the connection stayed open through the refusals
    r = c.call(with_filter(named("count", "docs"), fcond("no_such_field", pb.FILTER_NE, 1)))
    assert r.status.code == pb.OK and r.count.count == 3
    # payload indexes
    def pindex(op, field, kind=pb.PAYLOAD_INDEX_KEYWORD):
        r = pb.Request()
        m = getattr(r, op)
        m.collection, m.field = "docs", field
        if op == "create_payload_index":
            m.kind = kind
        return r
    assert c.call(pindex("create_payload_index", "src")).status.code == pb.OK
    log.add(c.call(pindex("create_payload_index", "src", pb.PAYLOAD_INDEX_BOOL)),
            pb.ALREADY_EXISTS)
    log.add(c.call(pindex("create_payload_index", "a..b")), inv)
    log.add(c.call(pindex("create_payload_index", "k", pb.PAYLOAD_INDEX_KIND_UNSPECIFIED)), inv)
    for i in range(15):
        assert c.call(pindex("create_payload_index", f"f{i}")).status.code == pb.OK
    log.add(c.call(pindex("create_payload_index", "f15")), pb.RESOURCE_EXHAUSTED)
    assert c.call(pindex("drop_payload_index", "src")).status.code == pb.OK
    log.add(c.call(pindex("drop_payload_index", "src")), pb.NOT_FOUND)
    info = c.call(named("collection_info", "docs")).collection_info.info
    assert [p.field for p in info.payload_indexes] == [f"f{i}" for i in range(15)]
    for i in range(15):
        assert c.call(pindex("drop_payload_index", f"f{i}")).status.code == pb.OK
    c.close()


def behaviours(address):
    """What the page promises beyond messages."""
    c = Raw(address)
    # an upsert without payloads erases the payload a point had
    assert c.call(upsert("docs", [50], [[1] * 4], [b'{"a":1}'])).status.code == pb.OK
    assert c.call(upsert("docs", [50], [[2] * 4])).status.code == pb.OK
    r = c.call(get("docs", [50], with_payloads=True))
    assert list(r.get.found) == [True] and r.get.payloads[0] == b""
    # duplicate ids are fine in a get
    r = c.call(get("docs", [1, 1, 99]))
    assert list(r.get.found) == [True, True, False]
    # a client request with id 0 is served and answered with 0
    r = named("count", "docs")
    r.request_id = 0
    c.sock.sendall(struct.pack(">I", r.ByteSize()) + r.SerializeToString())
    resp = c.recv()
    assert resp.request_id == 0 and resp.status.code == pb.OK and resp.count.count == 4
    # an old client (no dim): a 32-float query on a 16-dim collection is two queries
    assert c.call(upsert("d", [1], np.ones((1, 16)))).status.code == pb.OK
    assert c.call(search("d", [1] * 32)).search.nq == 2
    c.close()


@pytest.fixture(scope="module")
def produced(servers):
    plain, token, tls = servers
    seed(plain.address)
    log = Log()
    framing(plain.address, log)
    hello_time(plain.address, token.address, log)
    permissions(token.address, log)
    plain_on_tls(tls.address, log)
    connection_limits(plain.address, log)
    requests(plain.address, log)
    strids_scroll_set_payload(plain.address, log)
    filters(plain.address, log)
    behaviours(plain.address)
    return log.seen


MESSAGES = doc_messages()


def test_the_page_quotes_messages_one_per_span():
    assert len(MESSAGES) >= 40, len(MESSAGES)
    for line in DOC.read_text(encoding="utf-8").splitlines():
        assert line.count('`"') == line.count('"`'), f"a quoted message spans lines: {line}"


@pytest.mark.parametrize("message", MESSAGES, ids=[f"{i:02d}" for i in range(len(MESSAGES))])
def test_every_quoted_message_is_produced(produced, message):
    rx = as_pattern(message)
    assert any(rx.match(m) for _, m, _ in produced), (
        f"docs/protocol.md quotes {message!r}, which the server did not send; it sent:\n"
        + "\n".join(m for _, m, _ in produced))


def test_every_provoked_error_is_on_the_page(produced):
    """The converse, for the errors provoked here: none goes undocumented."""
    patterns = [as_pattern(m) for m in MESSAGES]
    missing = [m for _, m, _ in produced if not any(p.match(m) for p in patterns)]
    assert not missing, missing
