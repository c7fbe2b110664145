"""int8 collections end to end, as a user reaches them: `create_collection(...,
quantization="int8")` through the client and the embedded handle (vectord.open), and `vectord
build --quantization int8`.

Recall@10 against the exact float32 answer (numpy) within 0.01 of a float32 collection of the
same points at the same ef, and >= 0.95; distances are the float32 ones (the hits are re-ranked
with the stored vectors), `get` returns the stored float32 vectors exactly, `collection_info`
and `vectord info` say int8, and a restart serves the same answers (the codes are recomputed
from the stored floats, nothing is retrained). Bad values are refused with the server's or
the client's message."""
import subprocess

import numpy as np
import pytest

import vectord
from conftest import DATA_SETS, VECTORD_BIN, Daemon

K, EF = 10, 64


def exact_top(base, queries, metric, k):
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "l2":
        d = (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]
    else:
        d = -(q @ b.T) + (1.0 if metric == "cosine" else 0.0)
    top = np.argpartition(d, k, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(d, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1), d


def recall(got, truth):
    return np.mean([len(set(got[i].tolist()) & set(truth[i].tolist())) / truth.shape[1]
                    for i in range(len(truth))])


def clustered(n, dim, seed):
    """Like embeddings: clusters in an 8-dimensional latent space mapped linearly into dim
    dimensions, plus a little noise (the map and centres are shared by every seed)."""
    shared = np.random.default_rng(0)
    lift, centres = shared.normal(size=(8, dim)), shared.normal(size=(20, 8)) * 3
    rng = np.random.default_rng(seed)
    z = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, 8))
    return (z @ lift + 0.05 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_int8_collection_matches_float(fresh_server, metric):
    int8_matches_float(lambda: vectord.Client(fresh_server.address), fresh_server.restart,
                       metric)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_embedded_int8_collection_matches_float(tmp_path, metric):
    int8_matches_float(lambda: vectord.open(tmp_path / "d", threads=2), lambda: None, metric)


def int8_matches_float(connect, restart, metric):
    """An int8 collection beside a float32 one of the same points, in either front end; the
    restart is a daemon's, or closing and opening the directory again."""
    base, queries = clustered(4000, 48, 1), clustered(60, 48, 2)
    with connect() as c:
        c.create_collection("f32", dim=48, metric=metric)
        info = c.create_collection("i8", dim=48, metric=metric, quantization="int8")
        assert info.quantization == "int8"
        assert c.collection_info("f32").quantization == "none"
        for name in ("f32", "i8"):
            assert c.upsert(name, np.arange(4000), base) == 4000
        truth, d = exact_top(base, queries, metric, K)
        r32 = recall(c.knn("f32", queries, k=K, ef=EF)[0], truth)
        ids, dists = c.knn("i8", queries, k=K, ef=EF)
        r8 = recall(ids, truth)
        # Inner product is the hard case for any graph (the nearest by -dot are the largest
        # vectors, not the closest): held to float32's recall, with a lower floor.
        assert r8 >= r32 - 0.01 and r8 >= (0.9 if metric == "ip" else 0.95), (metric, r8, r32)
        # The distances are the float32 ones of the re-ranked hits.
        want = d[np.arange(len(queries))[:, None], ids.astype(np.int64)]
        assert np.allclose(dists, want, rtol=1e-4, atol=1e-4)
        rec = c.get("i8", [17])[0]
        stored = base[17] / np.linalg.norm(base[17]) if metric == "cosine" else base[17]
        assert np.allclose(rec.vector, stored, rtol=1e-6, atol=1e-7)
        if metric == "l2":
            assert np.array_equal(np.asarray(rec.vector, dtype=np.float32), base[17])
        hits = c.search("i8", queries[0], k=3, rerank=1)
        assert len(hits) == 3 and hits[0].id == ids[0][0]
        before = c.knn("i8", queries, k=K, ef=EF)
    restart()
    with connect() as c:
        assert c.collection_info("i8").quantization == "int8"
        after = c.knn("i8", queries, k=K, ef=EF)
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_int8_refusals(db, name):
    with pytest.raises(vectord.InvalidArgument, match="quantization must be 'none' or 'int8'"):
        db.create_collection(name, dim=4, quantization="int4")
    assert db.create_collection(name, dim=4, metric="l2", quantization="INT8").quantization == \
        "int8"
    db.upsert(name, [1, 2], np.eye(4, dtype=np.float32)[:2])
    with pytest.raises(vectord.InvalidArgument, match="rerank 65 is outside 1..64"):
        db.search(name, [1, 0, 0, 0], k=1, rerank=65)
    with pytest.raises(vectord.InvalidArgument, match="rerank 65 is outside 1..64"):
        db.knn(name, [[1, 0, 0, 0]], k=1, rerank=65)
    assert db.search(name, [1, 0, 0, 0], k=1, rerank=64)[0].id == 1
    assert [c.quantization for c in db.list_collections() if c.name == name] == ["int8"]


def test_build_int8_then_info_check_and_serve(tmp_path):
    folder = DATA_SETS / "glove6b-100-cosine"
    raw = np.fromfile(folder / "base.fvecs", dtype="<f4", count=5000 * 101).reshape(-1, 101)
    base = np.ascontiguousarray(raw[:, 1:])
    qraw = np.fromfile(folder / "query.fvecs", dtype="<f4", count=50 * 101).reshape(-1, 101)
    queries = np.ascontiguousarray(qraw[:, 1:])
    np.save(tmp_path / "base.npy", base)
    data = tmp_path / "data"
    r = subprocess.run([VECTORD_BIN, "build", "--data", str(data), "--collection", "g",
                        "--input", str(tmp_path / "base.npy"), "--metric", "cosine",
                        "--quantization", "int8", "--threads", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "quantization int8" in r.stdout, r.stdout
    r = subprocess.run([VECTORD_BIN, "build", "--data", str(data), "--collection", "h",
                        "--input", str(tmp_path / "base.npy"), "--quantization", "int4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--quantization int4: expected none or int8" in r.stderr
    info = subprocess.run([VECTORD_BIN, "info", "--data", str(data)], capture_output=True,
                          text=True, timeout=60)
    row = [line for line in info.stdout.splitlines() if line.startswith("g ")]
    assert row and " int8 " in row[0], info.stdout
    check = subprocess.run([VECTORD_BIN, "check", "--data", str(data)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0 and check.stdout.strip() == "ok", check.stdout + check.stderr
    d = Daemon(data, tmp_path / "serve.log").start()
    try:
        with vectord.Client(d.address) as c:
            assert c.collection_info("g").quantization == "int8"
            truth, _ = exact_top(base, queries, "cosine", K)
            got = c.knn("g", queries, k=K, ef=128)[0]
            assert recall(got, truth) >= 0.95
    finally:
        d.stop()
