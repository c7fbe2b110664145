"""Filters, payload indexes, count and delete by filter, served (a Client of the real daemon)
and embedded (vectord.open): the tests taking ``db`` or ``loaded`` run against both.

The contract under test: a filtered search returns exactly min(k, matching points) hits, all
matching, with recall@10 >= 0.95 against brute force over the matching subset, at every
selectivity, whether the filter's fields have payload indexes or not; count and delete by
filter see exactly the matching points; payload indexes are built over a loaded collection,
kept on every write, survive restarts without a rebuild and a kill -9 in the middle of
filtered deletes and upserts (`vectord check` passes, every acknowledged write is there).
The grammar's client-side checks are in test_filter_offline-style unit tests at the end; a
hostile filter (nesting far past the guard) is refused by the embedded engine as by the
daemon, without reaching protobuf-c's recursion.
"""
import contextlib
import random
import subprocess
import threading
import time

import numpy as np
import pytest

import vectord
from vectord._filter import to_wire

from conftest import VECTORD_BIN

RNG = np.random.default_rng(11)


def matches(payload, flt):
    """The reference semantics in Python (docs/protocol.md "Filters"), for brute force."""
    if not flt:
        return True
    return all(key_holds(payload, k, v) for k, v in flt.items())


def values_at(payload, path):
    """The values a dotted path finds (arrays of objects fan out, a final array's
    elements), and whether it finds anything."""
    cur = [payload] if payload is not None else []
    for seg in path.split("."):
        nxt = []
        for c in cur:
            if isinstance(c, dict) and seg in c:
                nxt.append(c[seg])
            elif isinstance(c, list):
                nxt.extend(e[seg] for e in c if isinstance(e, dict) and seg in e)
        cur = nxt
    present = bool(cur)
    out = []
    for c in cur:
        out.extend(c if isinstance(c, list) else [c])
    return out, present


def same_type(a, b):
    num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    return (num(a) and num(b)) or (isinstance(a, str) and isinstance(b, str)) or \
        (isinstance(a, bool) and isinstance(b, bool))


def op_holds(x, op, v):
    if not same_type(x, v) or isinstance(x, (list, dict)):
        return False
    if op in ("$eq", "$in"):
        return x == v
    if isinstance(x, bool):
        return False
    return {"$gt": x > v, "$gte": x >= v, "$lt": x < v, "$lte": x <= v}[op]


def key_holds(payload, k, v):
    if k == "$and":
        return all(matches(payload, f) for f in v)
    if k == "$or":
        return any(matches(payload, f) for f in v)
    if k == "$not":
        return not matches(payload, v)
    vals, present = values_at(payload, k)
    ops = v if isinstance(v, dict) else {"$eq": v}
    for op, arg in ops.items():
        if op == "$exists":
            ok = present == arg
        elif op in ("$ne", "$nin"):
            pos = "$eq" if op == "$ne" else "$in"
            args = arg if op == "$nin" else [arg]
            ok = not any(op_holds(x, "$eq", a) for x in vals for a in args)
        elif op == "$in":
            ok = any(op_holds(x, "$eq", a) for x in vals for a in arg)
        else:
            ok = any(op_holds(x, op, arg) for x in vals)
        if not ok:
            return False
    return True


def brute_ids(base, ids, payloads, q, k, flt):
    keep = [i for i, p in enumerate(payloads) if matches(p, flt)]
    if not keep:
        return []
    d = ((base[keep].astype(np.float64) - q.astype(np.float64)) ** 2).sum(1)
    order = np.lexsort((np.asarray(ids)[keep], d))[:k]
    return [int(ids[keep[i]]) for i in order]


WORDS = ["alpha", "beta", "gamma", "delta", "eps"]


def payload_of(i, rng):
    p = {"tag": f"t{i % 1000}", "grp": WORDS[i % 5], "n": i % 100, "x": float(i % 7) / 2,
         "flag": bool(i % 3 == 0), "meta": {"lang": "en" if i % 4 else "de"}}
    if i % 11 == 0:
        p["tags"] = ["rag", WORDS[i % 5]]
    if i % 13 == 0:
        del p["n"]
    if i % 17 == 0:
        p["n"] = str(i % 100)  # a type mismatch: never equal to a number
    return p


@contextlib.contextmanager
def front_end(request, mode):
    """A Client of the shared daemon, or the shared embedded handle (conftest's db)."""
    if mode == "served":
        with vectord.Client(request.getfixturevalue("server").address, timeout=120) as c:
            yield c
    else:
        yield request.getfixturevalue("embedded")


@pytest.fixture(scope="module", params=["served", "embedded"])
def loaded(request):
    """A collection of 6,000 points (dim 16) with varied payloads, no index yet, in either
    front end: (db, name, base, ids, payloads). The tests using it run in file order per
    front end (pytest groups them by this module-scoped parameter)."""
    name = "filter_loaded"
    with front_end(request, request.param) as db:
        if name in [c.name for c in db.list_collections()]:
            db.drop_collection(name)
        db.create_collection(name, dim=16, metric="l2", m=12, ef_construction=100)
        n = 6000
        rng = np.random.default_rng(5)
        base = rng.standard_normal((n, 16)).astype(np.float32)
        ids = np.arange(n, dtype=np.uint64) * 3 + 1
        payloads = [payload_of(i, rng) for i in range(n)]
        db.upsert(name, ids, base, payloads)
        yield db, name, base, ids, payloads


FILTERS = [
    {"grp": "beta"},                                   # 20 %
    {"tag": "t7"},                                     # 0.1 %
    {"n": {"$lt": 10}},                                # ~9 %
    {"n": {"$gte": 50.0, "$lt": 60}},                  # numbers compare as numbers
    {"n": 3.0},
    {"n": {"$ne": 3}},                                 # missing and mismatched fields match
    {"tags": "rag"},                                   # arrays: any element
    {"meta.lang": "de", "flag": True},                 # nested path, several keys
    {"$or": [{"tag": "t1"}, {"x": {"$gte": 3.0}}]},
    {"$not": {"grp": {"$in": ["alpha", "beta", "gamma"]}}},
    {"grp": {"$nin": ["alpha"]}, "n": {"$exists": True}},
    {"tag": {"$in": ["t3", "t500", "nope"]}},
    {"missing": {"$exists": False}},
    {"grp": "nope"},                                   # nothing matches
]


def check_filters(db, name, base, ids, payloads, filters=FILTERS, k=10, min_recall=0.95):
    queries = RNG.standard_normal((20, base.shape[1])).astype(np.float32)
    for flt in filters:
        want_n = sum(matches(p, flt) for p in payloads)
        assert db.count(name, filter=flt) == want_n, flt
        got_ids, _ = db.knn(name, queries, k=k, filter=flt)
        hits = 0
        for qi, q in enumerate(queries):
            want = brute_ids(base, ids, payloads, q, k, flt)
            row = [int(x) for x in got_ids[qi] if x != vectord.PAD_ID]
            assert len(row) == min(k, want_n), (flt, len(row), want_n)
            by_id = dict(zip(ids.tolist(), payloads))
            assert all(matches(by_id[i], flt) for i in row), flt
            hits += len(set(row) & set(want))
        if want_n:
            recall = hits / sum(min(k, want_n) for _ in queries)
            assert recall >= min_recall, (flt, recall)


def test_filters_without_indexes(loaded):
    db, name, base, ids, payloads = loaded
    check_filters(db, name, base, ids, payloads)
    hits = db.search(name, base[5], k=3, filter={"grp": WORDS[5 % 5]})
    assert hits[0].id == int(ids[5]) and hits[0].payload == payloads[5]
    assert db.collection_info(name).payload_indexes == []
    x = db.explain(name, base[:2], k=5)
    assert not x["filtered"] and [q["plan"] for q in x["queries"]] == ["graph"] * 2


def test_payload_indexes_on_a_loaded_collection(loaded):
    db, name, base, ids, payloads = loaded
    for field, kind in [("grp", "keyword"), ("tag", "keyword"), ("n", "integer"),
                        ("x", "float"), ("flag", "bool"), ("meta.lang", "keyword"),
                        ("tags", "keyword")]:
        info = db.create_payload_index(name, field, kind=kind)
        assert (info.field, info.kind, info.building) == (field, kind, False)
        assert info.points > 0 and info.bytes_memory > 0
    got = {p.field: p for p in db.collection_info(name).payload_indexes}
    assert got["grp"].points == len(payloads)
    assert got["n"].points == sum(isinstance(p.get("n"), int) for p in payloads)
    with pytest.raises(vectord.AlreadyExists, match="has a keyword index already"):
        db.create_payload_index(name, "grp", kind="keyword")
    with pytest.raises(vectord.InvalidArgument, match="kind must be one of"):
        db.create_payload_index(name, "other", kind="text")
    check_filters(db, name, base, ids, payloads)
    x = db.explain(name, base[:3], k=10, filter={"tag": "t7"})
    assert x["filtered"] and x["matching"] == 6 and x["conditions_indexed"] == 1
    assert x["conditions_scanned"] == 0 and x["payloads_read"] == 0
    assert [q["plan"] for q in x["queries"]] == ["exact"] * 3
    # 80 % at a small ef: the one-hop traversal costs a fraction of the scan of 4,800 points.
    x = db.explain(name, base[:2], k=10, ef=10, filter={"grp": {"$ne": "beta"}})
    assert [q["plan"] for q in x["queries"]] == ["one_hop"] * 2
    x = db.explain(name, base[:2], k=10, filter={"grp": "beta", "missing": 1})
    assert x["conditions_indexed"] == 1 and x["conditions_scanned"] == 1
    assert x["payloads_read"] > 0 and x["matching"] == 0


def test_indexes_follow_every_write_and_restarts(fresh_server):
    srv = fresh_server
    client = lambda: vectord.Client(srv.address, timeout=60)  # noqa: E731
    indexes_follow_every_write_and_reopen(client, srv.restart)
    assert srv.log_path.read_text().count("building over") == 2  # the restart built nothing


def test_embedded_indexes_follow_every_write_and_reopen(tmp_path):
    indexes_follow_every_write_and_reopen(lambda: vectord.open(tmp_path / "d", threads=2),
                                          lambda: None)


def indexes_follow_every_write_and_reopen(connect, restart):
    """Indexes made on an empty collection follow upserts, replacements, deletes by filter
    and by ids, and a restart (a daemon's, or closing and opening the directory again)
    loads them; dropping one leaves the filters right."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((3000, 8)).astype(np.float32)
    ids = np.arange(3000, dtype=np.uint64)
    payloads = [payload_of(i, rng) for i in range(3000)]
    with connect() as db:
        db.create_collection("w", dim=8, metric="l2")
        db.create_payload_index("w", "grp", kind="keyword")  # on an empty collection
        db.create_payload_index("w", "n", kind="float")
        db.upsert("w", ids, base, payloads)
        # Replace a third (new payloads), delete by filter, then by ids.
        for i in range(0, 3000, 3):
            payloads[i] = {"grp": "zeta", "n": -1}
        db.upsert("w", ids[::3], base[::3], payloads[::3])
        assert db.delete("w", filter={"n": {"$gte": 90}}) == sum(
            matches(p, {"n": {"$gte": 90}}) for p in payloads)
        keep = [i for i, p in enumerate(payloads) if not matches(p, {"n": {"$gte": 90}})]
        base, ids, payloads = base[keep], ids[keep], [payloads[i] for i in keep]
        assert db.delete("w", ids[:10]) == 10
        base, ids, payloads = base[10:], ids[10:], payloads[10:]
        flts = [{"grp": "zeta"}, {"grp": "beta"}, {"n": {"$lt": 5}}, {"n": -1}]
        check_filters(db, "w", base, ids, payloads, flts)
    restart()
    with connect() as db:
        assert [p.building for p in db.collection_info("w").payload_indexes] == [False, False]
        check_filters(db, "w", base, ids, payloads, flts)
        db.drop_payload_index("w", "grp")
        with pytest.raises(vectord.NotFound, match="no payload index on field grp"):
            db.drop_payload_index("w", "grp")
        check_filters(db, "w", base, ids, payloads, flts)  # grp from the payloads now
        assert [p.field for p in db.collection_info("w").payload_indexes] == ["n"]


def test_delete_by_filter_is_one_write_and_not_with_ids(db, name):
    db.create_collection(name, dim=4, metric="l2")
    db.upsert(name, [1, 2, 3], np.eye(4)[:3], [{"s": "a"}, {"s": "b"}, {"s": "a"}])
    with pytest.raises(vectord.InvalidArgument, match="give ids or a filter, not both"):
        db.delete(name, [1], filter={"s": "a"})
    assert db.delete(name, filter={"s": "a"}) == 2
    assert db.count(name) == 1 and db.count(name, filter={}) == 1
    assert db.delete(name, filter={"s": "a"}) == 0


@pytest.mark.parametrize("flt, message", [
    ({"$or": [{"a": 1}, {"year": {"$gte": [2020]}}]},
     "filter.$or[1].year: $gte expects a number or string, got list"),
    ({"a": {"$foo": 1}}, "filter.a: unknown operator '$foo'"),
    ({"$and": {"a": 1}}, "filter.$and: expects a list of filters, got dict"),
    ({"a": {"$in": "x"}}, "filter.a: $in expects a list, got str"),
    ({"a": None}, "filter.a: $eq expects a string, number or bool, got None"),
    ({"a": {"$exists": 1}}, "filter.a: $exists expects true or false, got int"),
    ({"meta": {"lang": "en"}}, "filter.meta: unknown operator 'lang' (a nested field is a "
                               "dotted path: \"meta.lang\")"),
    ({"$not": [1]}, "filter.$not: a filter is a dict, got list"),
    ({"a": {"$gt": True}}, "filter.a: $gt expects a number or string, got bool"),
    ({"a": {"$in": [1, [2]]}}, "filter.a: $in[1] expects a string, number or bool, got list"),
])
def test_client_checks_what_the_wire_cannot_say(flt, message):
    with pytest.raises(vectord.InvalidArgument) as e:
        to_wire(flt)
    assert e.value.message == message


@pytest.mark.parametrize("flt, message", [
    ({"year": {"$gte": float("nan")}}, "filter.year: $gte expects a finite number, got nan"),
    ({"a": 1, "year": {"$lt": float("inf")}}, "filter.year: $lt expects a finite number, got inf"),
    ({"$or": []}, "filter: $or expects a non-empty list of filters"),
    ({"$or": [{"a": 1}, {"b..c": 2}]},
     "filter.$or[1].b..c: the field path \"b..c\" has an empty segment"),
    ({"a": {"$in": list(range(1100))}}, "filter: more than 1024 terms"),
])
def test_server_checks_what_the_wire_can_say(db, name, flt, message):
    db.create_collection(name, dim=2, metric="l2")
    for call in (lambda: db.count(name, filter=flt),
                 lambda: db.search(name, [1, 0], k=1, filter=flt),
                 lambda: db.delete(name, filter=flt),
                 lambda: db.scroll(name, filter=flt)):
        with pytest.raises(vectord.InvalidArgument) as e:
            call()
        op = e.value.message.split(":")[0]
        assert e.value.message == f"{op}: {message}", e.value.message


def test_filter_nesting_limit(db, name):
    db.create_collection(name, dim=2, metric="l2")
    flt = {"a": 1}
    for _ in range(16):
        flt = {"$not": flt}
    assert db.count(name, filter=flt) == 0
    with pytest.raises(vectord.InvalidArgument, match="nesting deeper than 16 levels"):
        db.count(name, filter={"$not": flt})


def _negations(levels):
    """The bytes of a Filter nested `levels` deep in `negate` (field 4), built outside in
    without Python's recursion: the shape of a hostile frame, a few bytes per level."""
    heads, size = [], 0
    for _ in range(levels):
        n, varint = size, b""
        while True:
            varint += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                break
        heads.append(b"\x22" + varint)
        size += len(heads[-1])
    return b"".join(reversed(heads))


def test_embedded_refuses_a_hostile_filter(embedded, name):
    """A filter nesting 100 levels through every call that takes one, and 200,000 levels of
    raw Filter bytes handed straight to the extension (which protobuf-c's recursion would
    not survive): InvalidArgument in the daemon's words, and the handle goes on working."""
    db = embedded
    db.create_collection(name, dim=2, metric="l2")
    db.upsert(name, [1, 2], [[1, 0], [0, 1]], [{"a": 1}, {"a": 2}])
    flt = {"a": 1}
    for _ in range(100):
        flt = {"$not": flt}
    for op, call in [("count", lambda: db.count(name, filter=flt)),
                     ("search", lambda: db.search(name, [1, 0], k=1, filter=flt)),
                     ("search", lambda: db.knn(name, [[1, 0]], k=1, filter=flt)),
                     ("search", lambda: db.explain(name, [[1, 0]], k=1, filter=flt)),
                     ("delete", lambda: db.delete(name, filter=flt)),
                     ("scroll", lambda: db.scroll(name, filter=flt))]:
        with pytest.raises(vectord.InvalidArgument) as e:
            call()
        assert e.value.message == f"{op}: filter: nesting deeper than 16 levels"
    deep = _negations(200_000)
    with pytest.raises(vectord.InvalidArgument, match=": count: filter: nesting deeper than 16 levels$"):
        db._eng.count(name, deep)
    with pytest.raises(vectord.InvalidArgument, match=": search: filter: nesting deeper than 16 levels$"):
        db._eng.search(name, np.array([[1, 0]], dtype=np.float32), 2, 1, 0, False, deep)
    with pytest.raises(vectord.InvalidArgument,
                       match=": count: filter of 3 bytes is not a valid vectord.v1.Filter$"):
        db._eng.count(name, b"\x22\x05a")  # a length past the end
    assert db.count(name) == 2 and db.count(name, filter={"$not": {"a": 1}}) == 1


def run_check(data_dir):
    r = subprocess.run([VECTORD_BIN, "check", "--data", str(data_dir)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_indexes_consistent_after_kill_9_during_filtered_writes(fresh_server):
    """A writer upserts batches tagged with their batch number and deletes earlier batches by
    filter; kill -9 at a random moment. After the restart: `vectord check` passes, every
    acknowledged upsert not later deleted is there and found through the payload index,
    every acknowledged filtered delete left nothing it matched."""
    srv = fresh_server
    k = 40
    with vectord.Client(srv.address, timeout=60) as db:
        db.create_collection("c", dim=8, metric="l2")
        db.create_payload_index("c", "batch", kind="integer")
        db.create_payload_index("c", "odd", kind="bool")
    rng = random.Random(5)
    acked = []  # ("up", b) / ("del", b)
    stop = threading.Event()

    def writer():
        try:
            with vectord.Client(srv.address, timeout=30, retries=0) as db:
                b = 0
                while not stop.is_set():
                    ids = np.arange(b * k, b * k + k, dtype=np.uint64)
                    pls = [{"batch": b, "odd": bool(i % 2)} for i in range(k)]
                    db.upsert("c", ids, RNG.standard_normal((k, 8)), pls)
                    acked.append(("up", b))
                    if b >= 2 and b % 2 == 0:
                        db.delete("c", filter={"batch": b - 2, "odd": True})
                        acked.append(("del", b - 2))
                    b += 1
        except vectord.Error:
            pass

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(rng.uniform(1.0, 2.5))
    srv.kill()
    stop.set()
    t.join()
    assert len(acked) > 4
    run_check(srv.data_dir)
    srv.start()
    deleted = {b for kind, b in acked if kind == "del"}
    upserted = [b for kind, b in acked if kind == "up"]
    # The one write after the last acknowledged one may have committed or not.
    kind, b = acked[-1]
    maybe_deleted = b - 2 if kind == "up" and b >= 2 and b % 2 == 0 else None
    with vectord.Client(srv.address, timeout=60) as db:
        for b in upserted:
            n = db.count("c", filter={"batch": b})
            want = k // 2 if b in deleted else k
            assert n == want or (b == maybe_deleted and n == k // 2), (b, n, want)
            assert db.count("c", filter={"batch": b, "odd": False}) == k // 2
        # at most the one unacknowledged batch beyond
        last = upserted[-1]
        assert db.count("c", filter={"batch": {"$gt": last + 1}}) == 0
        total = db.count("c")
        assert db.count("c", filter={"batch": {"$exists": True}}) == total
    srv.stop()
    run_check(srv.data_dir)
