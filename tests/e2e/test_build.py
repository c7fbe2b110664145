"""`vectord build` then `vectord serve` on the same data directory: the collection built
offline is served as built - its parameters, every id, vector and payload, and knn recall@10
against exact neighbours (numpy) - without re-inserting anything."""
import json
import subprocess

import numpy as np

import vectord
from conftest import DATA_SETS, VECTORD_BIN, Daemon

N_BASE, N_QUERIES, K, EF = 5_000, 100, 10, 100


def read_fvecs(path, rows):
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
    raw = np.fromfile(path, dtype="<f4", count=rows * (dim + 1))
    rec = raw.reshape(-1, dim + 1)
    assert (rec[:, 0].view("<i4") == dim).all(), f"{path} is not fvecs of dim {dim}"
    return np.ascontiguousarray(rec[:, 1:])


def exact_l2_top(base, queries, k):
    b, q = base.astype(np.float64), queries.astype(np.float64)
    d = (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]
    top = np.argpartition(d, k, axis=1)[:, :k]
    order = np.lexsort((top, np.take_along_axis(d, top, axis=1)), axis=1)
    return np.take_along_axis(top, order, axis=1)


def build(*args):
    return subprocess.run([VECTORD_BIN, "build", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_built_collection_is_served_as_built(tmp_path):
    folder = DATA_SETS / "fashion-mnist-784-l2"
    base = read_fvecs(folder / "base.fvecs", N_BASE)
    queries = read_fvecs(folder / "query.fvecs", N_QUERIES)
    ids = np.arange(N_BASE, dtype=np.int64) * 7 + 1000
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "ids.npy", ids)
    with open(tmp_path / "payloads.jsonl", "w") as f:
        for i in range(N_BASE):
            f.write(json.dumps({"row": i, "text": f"image {i}"}) + "\n")
    data = tmp_path / "data"

    r = build("--data", data, "--collection", "fashion", "--input", tmp_path / "base.npy",
              "--ids", tmp_path / "ids.npy", "--payloads", tmp_path / "payloads.jsonl",
              "--m", 16, "--ef-construction", 200, "--ef-search", 80, "--threads", 2)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("built fashion: 5000 points, dim 784, l2, m 16"), r.stdout

    d = Daemon(data, tmp_path / "serve.log").start()
    try:
        with vectord.Client(d.address, timeout=60) as c:
            info = c.collection_info("fashion")
            assert (info.dim, info.metric, info.m, info.ef_construction, info.ef_search,
                    info.count) == (784, "l2", 16, 200, 80, N_BASE)
            recs = c.get("fashion", [int(ids[0]), int(ids[4999]), 999])
            assert recs[2] is None
            assert np.array_equal(np.asarray(recs[0].vector, dtype=np.float32), base[0])
            assert recs[1].payload == {"row": 4999, "text": "image 4999"}

            got, dists = c.knn("fashion", queries, k=K, ef=EF)
            truth = ids[exact_l2_top(base, queries, K)]
            hits = sum(len(set(got[i].tolist()) & set(truth[i].tolist()))
                       for i in range(N_QUERIES))
            recall = hits / (N_QUERIES * K)
            assert recall >= 0.95, f"recall@10 {recall:.4f} < 0.95 at ef={EF}"
            hit = c.search("fashion", queries[0], k=1, ef=EF)[0]
            assert hit.payload["row"] == (hit.id - 1000) // 7
    finally:
        d.stop()

    # Building the same name again is refused without --replace.
    r = build("--data", data, "--collection", "fashion", "--input", tmp_path / "base.npy")
    assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
