"""Real data through both front ends: 100k GloVe vectors (cosine) upserted over the network
(Client) and in process (vectord.open), then knn recall@10 against exact neighbours
recomputed with numpy (the shipped gt.ivecs is for the full 340k base, so it does not apply
to a prefix)."""
import time

import numpy as np

from conftest import DATA_SETS

N_BASE, N_QUERIES, K = 100_000, 200, 10
EF = 128


def read_fvecs(path, rows):
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
    raw = np.fromfile(path, dtype="<f4", count=rows * (dim + 1))
    rec = raw.reshape(-1, dim + 1)
    assert (rec[:, 0].view("<i4") == dim).all(), f"{path} is not fvecs of dim {dim}"
    return np.ascontiguousarray(rec[:, 1:])


def exact_cosine_top(base, queries, k):
    """Exact top-k by cosine distance, ties by id: candidates from a float32 pass (fast),
    re-ranked in float64 (exact); 3k candidates leave room for float32 rounding."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cand = np.argpartition(-(q @ b.T), 3 * k, axis=1)[:, :3 * k]
    d = 1.0 - np.einsum("qd,qcd->qc", q.astype(np.float64), b[cand].astype(np.float64))
    order = np.lexsort((cand, d), axis=1)[:, :k]
    return np.take_along_axis(cand, order, axis=1)


def test_glove_100k_recall_at_10(db, name):
    folder = DATA_SETS / "glove6b-100-cosine"
    base = read_fvecs(folder / "base.fvecs", N_BASE)
    queries = read_fvecs(folder / "query.fvecs", N_QUERIES)
    assert base.shape == (N_BASE, 100) and queries.shape == (N_QUERIES, 100)
    truth = exact_cosine_top(base, queries, K)
    # Cross-check with the shipped ground truth: its top-100 over the full base, restricted
    # to ids in our prefix, must start with our top-10 wherever it has 10 such ids.
    gt = np.fromfile(folder / "gt.ivecs", dtype="<i4").reshape(-1, 101)[:N_QUERIES, 1:]
    for i in range(N_QUERIES):
        in_prefix = gt[i][gt[i] < N_BASE][:K]
        if len(in_prefix) == K:
            assert in_prefix.tolist() == truth[i].tolist(), f"query {i}"

    db.create_collection(name, dim=100, metric="cosine", m=16, ef_construction=64)
    t0 = time.perf_counter()
    assert db.upsert(name, np.arange(N_BASE), base) == N_BASE
    t_upsert = time.perf_counter() - t0
    assert db.count(name) == N_BASE

    t0 = time.perf_counter()
    ids, dists = db.knn(name, queries, k=K, ef=EF)
    t_knn = time.perf_counter() - t0
    hits = sum(len(set(ids[i].tolist()) & set(truth[i].tolist())) for i in range(N_QUERIES))
    recall = hits / (N_QUERIES * K)
    print(f"\nglove 100k: upsert {N_BASE / t_upsert:,.0f} points/s, knn {N_QUERIES / t_knn:,.0f}"
          f" QPS at ef={EF}, recall@10 {recall:.4f}")
    assert recall >= 0.95, f"recall@10 {recall:.4f} < 0.95 at ef={EF}"
    assert (np.diff(dists, axis=1) >= 0).all()  # nearest first
    # The same answers one at a time through search().
    for i in range(3):
        assert [h.id for h in db.search(name, queries[i], k=K, ef=EF)] == ids[i].tolist()
    db.drop_collection(name)
    assert name not in [c.name for c in db.list_collections()]
