"""Every method of the API, served (a Client of the real daemon) and embedded (vectord.open),
each test run against both (the ``db`` fixture): results checked against numpy brute force,
payload round trips, input forms (lists, ndarrays of several dtypes, 1-D and 2-D queries),
the error class and message of each kind of bad input; and the two front ends' methods,
signatures and stats keys compared, so neither can gain what the other lacks."""
import inspect
import math

import numpy as np
import pytest

import vectord

RNG = np.random.default_rng(7)


def brute_force(base, queries, k, metric):
    """Exact distances as the daemon defines them (smaller is closer), ties by id."""
    base = base.astype(np.float64)
    queries = np.atleast_2d(queries).astype(np.float64)
    if metric == "l2":
        d = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
    elif metric == "ip":
        d = -queries @ base.T
    else:
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        bn = base / np.linalg.norm(base, axis=1, keepdims=True)
        d = 1.0 - qn @ bn.T
    order = np.lexsort((np.broadcast_to(np.arange(base.shape[0]), d.shape), d), axis=1)
    return order[:, :k], np.take_along_axis(d, order[:, :k], axis=1)


# ---- collections -------------------------------------------------------------------------

def test_collection_lifecycle(db, name):
    info = db.create_collection(name, dim=8, metric="l2", m=12, ef_construction=64,
                                    ef_search=40)
    assert isinstance(info, vectord.CollectionInfo)
    assert (info.name, info.dim, info.metric, info.m, info.ef_construction,
            info.ef_search, info.count) == (name, 8, "l2", 12, 64, 40, 0)
    assert name in [c.name for c in db.list_collections()]
    got = db.collection_info(name)
    assert (got.name, got.dim, got.metric, got.m, got.ef_search) == (name, 8, "l2", 12, 40)
    assert got.created_unix_s > 0
    assert db.count(name) == 0
    db.upsert(name, [1, 2, 3], RNG.random((3, 8)))
    assert db.count(name) == 3
    assert db.collection_info(name).count == 3
    assert db.drop_collection(name) is None
    assert name not in [c.name for c in db.list_collections()]
    with pytest.raises(vectord.NotFound):
        db.collection_info(name)


def test_defaults_and_every_metric(db, name):
    for metric in ("l2", "cosine", "ip"):
        info = db.create_collection(f"{name}_{metric}", dim=4, metric=metric)
        assert info.metric == metric
        assert (info.m, info.ef_construction, info.ef_search) == (16, 200, 100)
    listed = {c.name: c for c in db.list_collections()}
    assert {f"{name}_{m}" for m in ("l2", "cosine", "ip")} <= set(listed)


def test_collection_errors(db, name):
    db.create_collection(name, dim=4)
    with pytest.raises(vectord.AlreadyExists) as ei:
        db.create_collection(name, dim=4)
    assert name in ei.value.message
    for bad in ("", "has space", "slash/", "dot.s", "x" * 65, "ünïcode"):
        with pytest.raises(vectord.InvalidArgument):
            db.create_collection(bad, dim=4)
    with pytest.raises(vectord.InvalidArgument):
        db.create_collection(name + "_d0", dim=0)
    with pytest.raises(vectord.InvalidArgument):
        db.create_collection(name + "_dbig", dim=db.limits.max_dim + 1)
    with pytest.raises(vectord.InvalidArgument):
        db.create_collection(name + "_m", dim=4, metric="hamming")
    missing = name + "_missing"
    for call in (lambda: db.collection_info(missing), lambda: db.count(missing),
                 lambda: db.drop_collection(missing),
                 lambda: db.upsert(missing, [1], [[1, 2, 3, 4]]),
                 lambda: db.search(missing, [1, 2, 3, 4]),
                 lambda: db.knn(missing, [[1, 2, 3, 4]]),
                 lambda: db.get(missing, [1]), lambda: db.delete(missing, [1])):
        with pytest.raises(vectord.NotFound) as ei:
            call()
        assert missing in ei.value.message, ei.value.message
    # A failed call leaves the connection usable.
    assert db.count(name) == 0


# ---- points ------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_search_and_knn_match_brute_force(db, name, metric):
    n, dim, k = 300, 16, 10
    base = RNG.standard_normal((n, dim)).astype(np.float32)
    db.create_collection(name, dim=dim, metric=metric)
    assert db.upsert(name, np.arange(n), base) == n
    queries = RNG.standard_normal((25, dim)).astype(np.float32)
    want_ids, want_d = brute_force(base, queries, k, metric)
    ids, dists = db.knn(name, queries, k=k, ef=n)
    assert ids.dtype == np.uint64 and dists.dtype == np.float32
    assert ids.shape == dists.shape == (25, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dists, want_d, rtol=1e-4, atol=1e-4)
    hits = db.search(name, queries[0], k=k, ef=n)
    assert [h.id for h in hits] == want_ids[0].tolist()
    assert all(isinstance(h, vectord.Hit) for h in hits)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_query_input_forms(db, name):
    dim = 6
    base = RNG.standard_normal((50, dim))
    db.create_collection(name, dim=dim, metric="l2")
    db.upsert(name, list(range(50)), base.tolist())  # lists of lists of Python floats
    q64 = base[:3]  # float64 ndarray, exact matches of points 0, 1, 2
    forms = [q64, q64.astype(np.float32), q64.tolist(), np.asfortranarray(q64),
             q64.astype(">f8")]
    for q in forms:
        batch = db.search(name, q, k=1, ef=50)
        assert isinstance(batch, list) and len(batch) == 3
        assert [hits[0].id for hits in batch] == [0, 1, 2]
        ids, _ = db.knn(name, q, k=1, ef=50)
        assert ids[:, 0].tolist() == [0, 1, 2]
    for q in (q64[1], q64[1].astype(np.float32), q64[1].tolist()):
        hits = db.search(name, q, k=3, ef=50)  # 1-D -> list[Hit]
        assert isinstance(hits[0], vectord.Hit) and hits[0].id == 1
        assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    ids, dists = db.knn(name, q64[1], k=2)  # a 1-D vector is one query
    assert ids.shape == (1, 2) and ids[0, 0] == 1
    empty_ids, empty_d = db.knn(name, np.zeros((0, dim)), k=4)
    assert empty_ids.shape == empty_d.shape == (0, 4)
    assert db.search(name, np.zeros((0, dim)), k=4) == []


def test_fewer_points_than_k_pads_knn_and_shortens_search(db, name):
    db.create_collection(name, dim=3, metric="l2")
    db.upsert(name, [10, 20], [[0, 0, 0], [1, 1, 1]])
    ids, dists = db.knn(name, [[0, 0, 0]], k=5)
    assert ids[0].tolist() == [10, 20] + [vectord.PAD_ID] * 3
    assert np.isinf(dists[0, 2:]).all() and dists[0, 0] == 0 and dists[0, 1] == 3
    hits = db.search(name, [0, 0, 0], k=5)
    assert [h.id for h in hits] == [10, 20]


def test_payload_round_trips(db, name):
    payloads = [
        {"text": "naïve café ☕ — 日本語のテキスト 🙂", "source": "ü.txt", "chunk": 0},
        {"nested": {"a": [1, 2.5, None, True, False], "b": {"c": {"d": "deep"}}},
         "list": [{"x": 1}, {"y": [2, 3]}]},
        {},
        None,
        {"quote\"and\\backslash\n": "tab\tnewline\n", "big": 2 ** 53, "neg": -1.25e-7},
    ]
    n = len(payloads)
    vecs = RNG.standard_normal((n, 4)).astype(np.float32)
    db.create_collection(name, dim=4, metric="l2")
    db.upsert(name, np.arange(n, dtype=np.uint64), vecs, payloads=payloads)
    recs = db.get(name, list(range(n)))
    assert [r.payload for r in recs] == payloads
    assert all(isinstance(r, vectord.Record) for r in recs)
    np.testing.assert_array_equal(np.stack([r.vector for r in recs]), vecs)
    for i in range(n):
        hit = db.search(name, vecs[i], k=1, ef=20)[0]
        assert hit.id == i and hit.payload == payloads[i]
    no_payload = db.search(name, vecs[0], k=1, with_payload=False)[0]
    assert no_payload.id == 0 and no_payload.payload is None
    only_payloads = db.get(name, [0], with_vectors=False)
    assert only_payloads[0].vector is None and only_payloads[0].payload == payloads[0]


def test_upsert_replaces_vector_and_payload(db, name):
    db.create_collection(name, dim=2, metric="l2")
    db.upsert(name, [1], [[0.0, 0.0]], payloads=[{"v": 1}])
    db.upsert(name, [1], [[5.0, 5.0]], payloads=[{"v": 2}])
    assert db.count(name) == 1
    rec = db.get(name, [1])[0]
    assert rec.vector.tolist() == [5.0, 5.0] and rec.payload == {"v": 2}
    db.upsert(name, [1], [[5.0, 5.0]])  # no payload given: the payload is cleared
    assert db.get(name, [1])[0].payload is None


def test_cosine_stores_normalized_vectors(db, name):
    db.create_collection(name, dim=3, metric="cosine")
    db.upsert(name, [7], [[3.0, 0.0, 4.0]])
    np.testing.assert_allclose(db.get(name, [7])[0].vector, [0.6, 0.0, 0.8], rtol=1e-6)
    with pytest.raises(vectord.InvalidArgument):
        db.upsert(name, [8], [[0.0, 0.0, 0.0]])  # a zero vector has no direction


def test_get_missing_ids_and_delete(db, name):
    vecs = RNG.standard_normal((20, 5)).astype(np.float32)
    db.create_collection(name, dim=5, metric="l2")
    db.upsert(name, np.arange(100, 120), vecs, payloads=[{"i": i} for i in range(20)])
    recs = db.get(name, [100, 999, 119, 2 ** 64 - 2])
    assert recs[1] is None and recs[3] is None
    assert (recs[0].id, recs[0].payload, recs[2].id) == (100, {"i": 0}, 119)
    assert db.get(name, []) == []
    assert db.get(name, 105)[0].payload == {"i": 5}  # a single int is one id
    assert db.delete(name, [100, 101, 5555]) == 2  # 5555 never existed
    assert db.delete(name, []) == 0
    assert db.count(name) == 18
    assert db.get(name, [100, 101]) == [None, None]
    ids, _ = db.knn(name, vecs[:2], k=18, ef=100)
    assert not ({100, 101} & set(ids.ravel().tolist()))  # deleted points leave results
    assert db.delete(name, np.arange(100, 120)) == 18
    assert db.count(name) == 0


def test_large_batches_are_split_and_pipelined(db, name, capsys):
    n, dim = 5000, 32
    vecs = RNG.standard_normal((n, dim)).astype(np.float32)
    db.create_collection(name, dim=dim, metric="l2", ef_construction=64)
    payloads = [{"i": i, "pad": "x" * (i % 50)} for i in range(n)]
    written = db.upsert(name, np.arange(n), vecs, payloads=payloads, batch_size=97,
                            progress=True)
    assert written == n and db.count(name) == n
    bar = capsys.readouterr().err  # tqdm is installed here: a bar named after the collection
    assert f"upsert {name}" in bar and "5.00k/5.00k" in bar, bar
    recs = db.get(name, np.arange(n))  # several get frames
    assert [r.payload["i"] for r in recs] == list(range(n))
    np.testing.assert_array_equal(np.stack([r.vector for r in recs]), vecs)
    q = vecs[:700]  # several search frames; each query finds itself first
    ids, dists = db.knn(name, q, k=3, ef=64)
    assert (ids[:, 0] == np.arange(700)).mean() > 0.99
    batch = db.search(name, q[:130], k=2)
    assert len(batch) == 130 and all(len(h) == 2 for h in batch)
    assert db.delete(name, np.arange(0, n, 2)) == n // 2


def test_upsert_batch_size_beyond_server_max_batch(db, name):
    n = min((db.limits.max_batch or 100_000) + 10, 200_000)  # embedded: no max_batch (0)
    db.create_collection(name, dim=2, metric="l2", ef_construction=32)
    vecs = RNG.standard_normal((n, 2)).astype(np.float32)
    assert db.upsert(name, np.arange(n), vecs, batch_size=10 ** 9) == n
    assert db.count(name) == n


# ---- bad input ---------------------------------------------------------------------------

def test_bad_points_are_refused_and_change_nothing(db, name):
    db.create_collection(name, dim=4, metric="l2")
    db.upsert(name, [1, 2], [[1, 2, 3, 4], [5, 6, 7, 8]], payloads=[{"a": 1}, None])
    bad_calls = {
        "wrong dim": lambda: db.upsert(name, [3], [[1, 2, 3]]),
        "NaN": lambda: db.upsert(name, [1, 3], [[1, 2, 3, 4], [1, math.nan, 3, 4]]),
        "Inf": lambda: db.upsert(name, [3], [[1, 2, math.inf, 4]]),
        "float64 overflow": lambda: db.upsert(name, [3], np.full((1, 4), 1e300)),
        "ids/vectors mismatch": lambda: db.upsert(name, [3, 4], [[1, 2, 3, 4]]),
        "duplicate ids": lambda: db.upsert(name, [3, 3], np.ones((2, 4))),
        "negative id": lambda: db.upsert(name, [-3], np.ones((1, 4))),
        "float ids": lambda: db.upsert(name, [3.5], np.ones((1, 4))),
        "payload not a dict": lambda: db.upsert(name, [3], np.ones((1, 4)), ["text"]),
        "payload not JSON": lambda: db.upsert(name, [3], np.ones((1, 4)), [{"s": {1}}]),
        "payload NaN": lambda: db.upsert(name, [3], np.ones((1, 4)),
                                             [{"x": math.nan}]),
        "payload count": lambda: db.upsert(name, [3], np.ones((1, 4)), [{}, {}]),
        "ragged": lambda: db.upsert(name, [3, 4], [[1, 2, 3, 4], [1]]),
        "batch_size 0": lambda: db.upsert(name, [3], np.ones((1, 4)), batch_size=0),
        "query dim": lambda: db.search(name, [1, 2, 3]),
        "query NaN": lambda: db.knn(name, [[1, 2, math.nan, 4]]),
        "k = 0": lambda: db.search(name, [1, 2, 3, 4], k=0),
        "knn k = 0": lambda: db.knn(name, [[1, 2, 3, 4]], k=0),
        "k > max_k": lambda: db.knn(name, [[1, 2, 3, 4]], k=db.limits.max_k + 1),
        "k negative": lambda: db.search(name, [1, 2, 3, 4], k=-1),
        "3-D query": lambda: db.search(name, np.ones((1, 1, 4))),
    }
    for what, call in bad_calls.items():
        with pytest.raises(vectord.InvalidArgument) as ei, np.errstate(over="ignore"):
            call()
        assert ei.value.message, what
    assert db.count(name) == 2
    recs = db.get(name, [1, 2, 3])
    assert recs[0].vector.tolist() == [1, 2, 3, 4] and recs[0].payload == {"a": 1}
    assert recs[1].payload is None and recs[2] is None


def test_server_message_names_the_problem(db, name):
    db.create_collection(name, dim=4, metric="l2")
    with pytest.raises(vectord.InvalidArgument) as ei:
        db.upsert(name, [1, 2], [[1, 2, 3], [4, 5, 6]])
    msg = ei.value.message
    assert "3" in msg and "4" in msg, msg  # "... has 3 dims, collection ... expects 4"
    assert ei.value.code == vectord.Code.INVALID_ARGUMENT


@pytest.mark.parametrize("dims", [32, 8, 20])  # a multiple, a fraction, a non-multiple of 16
def test_query_of_another_dim_is_refused_naming_both_dims(db, name, dims):
    """Issue 16: a 32-float query on a 16-dim collection used to come back as two rows."""
    db.create_collection(name, dim=16, metric="l2")
    db.upsert(name, [1, 2], np.ones((2, 16)))
    want = f"search: query has {dims} dims, collection {name} expects 16"
    calls = [lambda: db.knn(name, np.ones((1, dims), np.float32), k=3),
             lambda: db.knn(name, np.ones((3, dims)), k=1),
             lambda: db.search(name, np.ones(dims), k=3),
             lambda: db.search(name, [[1.0] * dims], k=3, with_payload=False)]
    for call in calls:
        with pytest.raises(vectord.InvalidArgument) as ei:
            call()
        assert ei.value.message == want
    ids, _ = db.knn(name, np.ones((2, 16)), k=1)  # the right dim still works
    assert ids.shape == (2, 1)


def test_stats(db, name):
    db.create_collection(name, dim=2, metric="l2")
    db.upsert(name, [1], [[1, 2]])
    st = db.stats()
    assert st["server_version"] and st["collections"] >= 1 and st["points"] >= 1
    served = isinstance(db, vectord.Client)
    assert st["requests_total"] >= 3 and st["connections"] >= (1 if served else 0)
    assert st["reader_threads"] == 2 and st["writes_committed"] >= 2
    assert db.server_version == st["server_version"]
    assert isinstance(db.limits, vectord.Limits) and db.limits.max_k >= 10000


@pytest.mark.parametrize("mode", ["served", "embedded"])
def test_closed_handle_refuses_calls(mode, server, tmp_path):
    c = vectord.Client(server.address) if mode == "served" else vectord.open(tmp_path / "d")
    with c:
        assert isinstance(c.list_collections(), list)
    with pytest.raises(vectord.FailedPrecondition) as ei:
        c.list_collections()
    assert "closed" in ei.value.message
    c.close()  # idempotent


def _public(cls):
    return {n: inspect.signature(getattr(cls, n)) for n in dir(cls)
            if not n.startswith("_") and callable(getattr(cls, n))}


def test_both_front_ends_have_the_same_methods_and_arguments():
    served, embedded = _public(vectord.Client), _public(vectord.Embedded)
    assert set(embedded) - set(served) == {"build"}  # the offline bulk build is in process only
    assert set(served) - set(embedded) == set()
    for n, sig in served.items():
        assert embedded[n] == sig, f"{n}: Client{sig} but Embedded{embedded[n]}"


def test_stats_keys_are_the_same_in_both_modes(server, embedded):
    with vectord.Client(server.address) as c:
        assert list(c.stats()) == list(embedded.stats())
