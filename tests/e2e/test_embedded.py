"""The embedded mode (vectord.open) beyond the shared API suite (test_api.py runs every API
test in both modes): one writer per data directory (a daemon, embedded processes, this
process), kill -9 of an embedded writer loses no acknowledged write, a payload index build
kill -9'd midway is resumed by the next open and complete, a directory goes
embedded -> served -> embedded with nothing lost, the GIL is released inside the engine
(proved by a rendezvous that needs two calls inside at once), results are the engine's own
arrays, and the bulk build from arrays (string ids too)."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import vectord
from vectord import _codec, _engine
from conftest import VECTORD_BIN, Daemon

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(23)
ENV = dict(os.environ, PYTHONPATH=str(REPO / "client" / "python"))


def python(code, *args, **kw):
    """A child Python process running `code` with the checkout's vectord."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


HOLD = """
import sys, time, vectord
db = vectord.open(sys.argv[1], threads=1)
print("ready", flush=True)
sys.stdin.read()  # until the parent closes stdin or kills us
"""


# ---- one writer per directory --------------------------------------------------------------

def test_a_served_directory_is_refused_embedded_naming_the_daemon(fresh_server):
    with pytest.raises(vectord.FailedPrecondition) as ei:
        vectord.open(fresh_server.data_dir)
    msg = ei.value.message
    assert f"data directory {fresh_server.data_dir} is in use by process " \
           f"{fresh_server.proc.pid} (" in msg, msg
    assert "only one process may write it" in msg
    with vectord.Client(fresh_server.address) as c:  # the daemon is unaffected
        c.create_collection("still", dim=2)
        assert c.count("still") == 0


def test_an_embedded_directory_is_refused_by_serve_and_build(tmp_path):
    data = tmp_path / "data"
    with vectord.open(data) as db:
        db.create_collection("mine", dim=2, metric="l2")
        want = f"is in use by process {os.getpid()} ("
        serve = subprocess.run([VECTORD_BIN, "serve", "--data", str(data), "--listen",
                                "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
        assert serve.returncode != 0 and want in serve.stderr, serve.stderr
        np.save(tmp_path / "v.npy", np.ones((3, 2), np.float32))
        build = subprocess.run([VECTORD_BIN, "build", "--data", str(data), "--collection", "b",
                                "--input", str(tmp_path / "v.npy")], capture_output=True,
                               text=True, timeout=60)
        assert build.returncode == 1 and want in build.stderr, build.stderr
        assert db.count("mine") == 0  # still ours, unharmed


def test_two_embedded_processes_and_one_process_twice(tmp_path):
    data = tmp_path / "data"
    child = python(HOLD, data, stdin=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        with pytest.raises(vectord.FailedPrecondition) as ei:
            vectord.open(data)
        assert f"is in use by process {child.pid} (" in ei.value.message
        child.kill()  # the lock dies with its holder, also on kill -9
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with vectord.open(data) as db:
        with pytest.raises(vectord.FailedPrecondition) as ei:
            vectord.open(data)  # LMDB forbids a second handle in one process: refused first
        assert ei.value.message.startswith(
            f"data directory {data} is already open in this process (pid {os.getpid()})")
        db.create_collection("after", dim=2)  # the first handle is unharmed
    with vectord.open(data) as db:  # closed: opens again
        assert [c.name for c in db.list_collections()] == ["after"]


# ---- durability ----------------------------------------------------------------------------

WRITER = """
import sys, numpy as np, vectord
db = vectord.open(sys.argv[1], threads=2)
str_ids = sys.argv[2] == "str"
db.create_collection("c", dim=8, metric="l2", ef_construction=32, id_type=sys.argv[2])
rng = np.random.default_rng(1)
for b in range(10**6):
    ids = np.arange(b * 50, b * 50 + 50)
    vecs = rng.random((50, 8), dtype=np.float32)
    db.upsert("c", [f"r{i}-ü" for i in ids] if str_ids else ids, vecs,
              payloads=[{"b": b, "i": int(i)} for i in ids], batch_size=20)
    print("acked", b, flush=True)
"""


def writer_ids(id_type, n):
    """The ids WRITER gave its first n points."""
    return [f"r{i}-ü" for i in range(n)] if id_type == "str" else np.arange(n)


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_kill_9_of_an_embedded_writer_loses_no_acknowledged_write(tmp_path, id_type):
    data = tmp_path / "data"
    child = python(WRITER, data, id_type)
    acked = -1
    try:
        for line in child.stdout:
            acked = int(line.split()[1])
            if acked >= 30:
                break
        child.send_signal(signal.SIGKILL)  # mid-write: the next upsert is under way
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert acked >= 30, child.stderr.read()
    rng = np.random.default_rng(1)
    want = np.concatenate([rng.random((50, 8), dtype=np.float32) for _ in range(acked + 1)])
    with vectord.open(data) as db:
        n = db.count("c")
        assert n >= (acked + 1) * 50 and n % 50 == 0  # batches of 20 in one commit per call
        recs = db.get("c", writer_ids(id_type, (acked + 1) * 50))
        assert all(r is not None for r in recs)
        assert [r.payload["i"] for r in recs] == list(range((acked + 1) * 50))
        np.testing.assert_array_equal(np.stack([r.vector for r in recs]), want)
        ids, _ = db.knn("c", want[::97], k=1, ef=64)
        want_ids = writer_ids(id_type, len(want))
        assert np.mean([ids[j, 0] == want_ids[i]
                        for j, i in enumerate(range(0, len(want), 97))]) > 0.95
    check = subprocess.run([VECTORD_BIN, "check", "--data", str(data)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


PINDEX_BUILDER = """
import sys, threading, time, vectord
db = vectord.open(sys.argv[1], threads=2)
def watch():  # reads go on during the build: report a step committed, the build not done
    while True:
        pi = db.collection_info("c").payload_indexes
        if pi and pi[0].building and pi[0].points > 0:
            print("mid", pi[0].points, flush=True)
            return
        time.sleep(0.001)
threading.Thread(target=watch, daemon=True).start()
db.create_payload_index("c", "g", "keyword")
print("done", flush=True)
"""

RESUMER = """
import sys, vectord
with vectord.open(sys.argv[1], threads=2) as db:  # resumes the build before returning
    pi = db.collection_info("c").payload_indexes
    print(pi[0].building, pi[0].points, flush=True)
"""


def test_kill_9_of_a_payload_index_build_is_resumed_by_open(tmp_path):
    """create_payload_index kill -9'd between build steps (each its own commit): the next
    vectord.open resumes the build from the stored resume point and finishes it before it
    returns; the index then answers filters as a brute-force scan does."""
    data, n, groups = tmp_path / "data", 100_000, 50
    rng = np.random.default_rng(31)
    base = rng.standard_normal((n, 4)).astype(np.float32)
    g = np.arange(n) % groups
    t = (np.arange(n) * 7) % 997
    with vectord.open(data) as db:  # the bulk build: no index, payloads stored
        db.build("c", base, payloads=[{"g": f"g{a}", "t": f"t{b}"} for a, b in zip(g, t)],
                 metric="l2", m=8, ef_construction=16)
    child = python(PINDEX_BUILDER, data)
    try:
        line = child.stdout.readline().split()
        child.send_signal(signal.SIGKILL)  # a step committed; 16,384-point steps remain
        child.wait()
        log = child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert line and line[0] == "mid" and 0 < int(line[1]) < n, (line, log)
    assert "ready:" not in log, log  # killed before the build's last step committed
    resumed = python(RESUMER, data)
    out, log = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, log
    assert out.split() == ["False", str(n)], (out, log)  # complete: every point holds g
    assert "(keyword): building over" in log and "(resumed)" in log, log  # not from scratch
    assert "ready:" in log, log
    check = subprocess.run([VECTORD_BIN, "check", "--data", str(data)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    queries = rng.standard_normal((10, 4)).astype(np.float32)
    with vectord.open(data) as db:
        for flt, mask in (({"g": "g7"}, g == 7),
                          ({"g": {"$in": ["g1", "g2", "g49"]}}, np.isin(g, [1, 2, 49])),
                          ({"g": "g3", "t": {"$in": ["t3", "t10", "t17"]}},
                           (g == 3) & np.isin(t, [3, 10, 17])),
                          ({"g": "nope"}, np.zeros(n, dtype=bool))):
            want_n = int(mask.sum())
            assert db.count("c", filter=flt) == want_n, flt
            ids, _ = db.knn("c", queries, k=10, ef=64, filter=flt)
            rows = np.flatnonzero(mask)
            found = 0
            for qi, q in enumerate(queries):
                got = [int(x) for x in ids[qi] if x != vectord.PAD_ID]
                assert len(got) == min(10, want_n) and mask[got].all(), flt
                d = ((base[rows] - q) ** 2).sum(1)
                found += len(set(got) & set(rows[np.argsort(d, kind="stable")[:10]].tolist()))
            if want_n:
                assert found / (len(queries) * min(10, want_n)) >= 0.95, (flt, found)


# ---- one directory, both ways -------------------------------------------------------------

def test_a_directory_goes_embedded_served_embedded(tmp_path):
    data = tmp_path / "data"
    base = RNG.standard_normal((3000, 16)).astype(np.float32)
    queries = base[:40] + 0.01
    with vectord.open(data) as db:
        db.build("built", base, ids=np.arange(3000) * 2, payloads=[{"r": i} for i in range(3000)],
                 metric="cosine", m=12, ef_construction=100, ef_search=50)
        db.create_collection("upserted", dim=16, metric="l2")
        db.upsert("upserted", np.arange(500), base[:500])
        assert db.delete("built", [0, 2]) == 2
        emb_ids, emb_d = db.knn("built", queries, k=5, ef=80)
        names = [f"doc/{i}#ü" for i in range(300)]
        db.build("named", base[:300], ids=names, metric="l2")
        db.set_payload("named", names[:2], [{"p": 0}, {"p": 1}])
        assert db.delete("named", names[299]) == 1
    server = Daemon(data, tmp_path / "serve.log").start()
    try:
        with vectord.Client(server.address) as c:
            info = c.collection_info("built")
            assert (info.count, info.metric, info.m, info.ef_construction, info.ef_search) == \
                (2998, "cosine", 12, 100, 50)
            ids, dists = c.knn("built", queries, k=5, ef=80)
            np.testing.assert_array_equal(ids, emb_ids)  # the graph as the embedded one left it
            np.testing.assert_allclose(dists, emb_d, rtol=1e-6)
            assert c.get("built", [4])[0].payload == {"r": 2}
            assert c.count("upserted") == 500
            c.upsert("upserted", [9000], [np.ones(16)], payloads=[{"from": "served"}])
            c.drop_collection("built")
            assert c.collection_info("named").id_type == "str"
            assert [h.id for h in c.search("named", base[17], k=1)] == [names[17]]
            assert [r.payload for r in c.get("named", names[:2])] == [{"p": 0}, {"p": 1}]
            walk = [r.id for r in c.iter_points("named", batch=64)]
            assert walk == sorted(names[:299], key=lambda x: x.encode())
            c.upsert("named", ["from-served"], base[299:300])
    finally:
        server.stop()
    with vectord.open(data) as db:
        assert [x.name for x in db.list_collections()] == ["named", "upserted"]
        assert db.search("named", base[299], k=1)[0].id == "from-served"
        assert db.count("named") == 300
        assert db.count("upserted") == 501
        assert db.get("upserted", [9000])[0].payload == {"from": "served"}
        assert db.search("upserted", base[7], k=1)[0].id == 7


# ---- the GIL is released inside the engine -------------------------------------------------

def _together(*calls):
    """Runs the calls on threads of their own while the engine's test rendezvous waits for
    all of them to be inside (without the GIL) at once; returns their results. If a call held
    the GIL there, the others could never arrive and it would fail with a timeout."""
    results, errors = [None] * len(calls), []

    def run(i, call):
        try:
            results[i] = call()
        except Exception as e:  # collected: the assertion below names it
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    _engine._test_rendezvous(len(calls), 20000)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        _engine._test_rendezvous(0, 0)
    assert not errors, errors
    return results


def test_searches_run_inside_the_engine_at_once(embedded, name):
    base = RNG.standard_normal((2000, 32)).astype(np.float32)
    embedded.create_collection(name, dim=32, metric="l2")
    embedded.upsert(name, np.arange(2000), base)
    one = embedded.knn(name, base[:100], k=5)[0]
    a, b = _together(lambda: embedded.knn(name, base[:100], k=5),
                     lambda: embedded.knn(name, base[:100], k=5))
    np.testing.assert_array_equal(a[0], one)
    np.testing.assert_array_equal(b[0], one)
    hits = _together(*[lambda i=i: embedded.search(name, base[i], k=1) for i in range(2)])
    assert [h[0].id for h in hits] == [0, 1]
    got = _together(lambda: embedded.get(name, [5]), lambda: embedded.count(name))
    assert got[0][0].id == 5 and got[1] == 2000


def test_writes_and_builds_run_beside_searches(embedded, name):
    base = RNG.standard_normal((1000, 8)).astype(np.float32)
    embedded.create_collection(name, dim=8, metric="l2")
    embedded.upsert(name, np.arange(1000), base)
    far = base[:100] + 50
    written, hits = _together(lambda: embedded.upsert(name, np.arange(1000, 1100), far),
                              lambda: embedded.search(name, base[3], k=1))
    assert written == 100 and hits[0].id == 3
    info, ids = _together(lambda: embedded.build(name + "_b", base, metric="l2"),
                          lambda: embedded.knn(name, base[:10], k=1))
    assert info.count == 1000 and ids[0][:, 0].tolist() == list(range(10))
    updated, page = _together(lambda: embedded.set_payload(name, np.arange(50), {"s": 1}),
                              lambda: embedded.scroll(name, limit=10, with_vectors=True))
    assert updated == 50 and [r.id for r in page.records] == list(range(10))


def test_opens_run_at_once(tmp_path):
    a, b = _together(lambda: vectord.open(tmp_path / "a"), lambda: vectord.open(tmp_path / "b"))
    assert a.list_collections() == b.list_collections() == []
    a.close()
    b.close()


def test_close_waits_for_calls_in_progress(tmp_path):
    db = vectord.open(tmp_path / "d")
    db.create_collection("c", dim=4, metric="l2")
    vecs = RNG.standard_normal((20000, 4)).astype(np.float32)
    done = []
    _engine._test_rendezvous(2, 20000)
    t = threading.Thread(target=lambda: done.append(db.upsert("c", np.arange(20000), vecs)))
    t.start()
    assert db.count("c") in (0, 20000)  # returns once the upsert is inside the engine too
    db.close()  # waits for the upsert, then closes
    t.join()
    assert done == [20000]
    with pytest.raises(vectord.FailedPrecondition):
        db.count("c")
    with vectord.open(tmp_path / "d") as again:
        assert again.count("c") == 20000


# ---- zero copy -----------------------------------------------------------------------------

def test_arrays_cross_without_copies(embedded, name):
    f32 = RNG.standard_normal((50, 4)).astype(np.float32)
    assert _codec.to_matrix(f32) is f32  # read in place by the engine (buffer protocol)
    f64 = f32.astype(np.float64)
    assert _codec.to_matrix(f64) is not f64  # other dtypes: converted once
    embedded.create_collection(name, dim=4, metric="l2")
    embedded.upsert(name, np.arange(50), f32)
    ids, dists = embedded.knn(name, f32[:7], k=3)
    for arr, dtype in ((ids, np.uint64), (dists, np.float32)):
        assert arr.dtype == dtype and arr.shape == (7, 3) and not arr.flags.owndata
        assert arr.flags.c_contiguous and arr.flags.writeable
        base = arr
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, _engine.Array)  # the engine's memory, freed with the array
    assert ids[:, 0].tolist() == list(range(7))
    recs = embedded.get(name, [1, 2])
    assert recs[0].vector.base is not None and recs[0].vector.tolist() == f32[1].tolist()


# ---- the bulk build ------------------------------------------------------------------------

def test_build_from_arrays(embedded, name):
    base = RNG.standard_normal((4000, 24))  # float64: converted once
    queries = RNG.standard_normal((30, 24))
    ids = np.arange(4000, dtype=np.uint64) * 3 + 7
    info = embedded.build(name, base, ids=ids, payloads=[{"row": i} for i in range(4000)],
                          metric="l2", m=16, ef_construction=100)
    assert isinstance(info, vectord.CollectionInfo)
    assert (info.name, info.count, info.dim, info.metric, info.m, info.ef_construction,
            info.ef_search) == (name, 4000, 24, "l2", 16, 100, 100)
    d = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
    truth = ids[np.argsort(d, axis=1)[:, :10]]
    got, _ = embedded.knn(name, queries, k=10, ef=100)
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got.tolist(), truth.tolist())])
    assert recall >= 0.95, recall
    assert embedded.get(name, [int(ids[17])])[0].payload == {"row": 17}
    assert embedded.search(name, base[5], k=1)[0].id == ids[5]
    with pytest.raises(vectord.AlreadyExists) as ei:
        embedded.build(name, base[:10])
    assert ei.value.message == (f"build {name}: collection {name} already exists (--replace, "
                                "or replace=True in Python, builds it anew)")
    again = embedded.build(name, base[:100], metric="cosine", replace=True)
    assert (again.count, again.metric) == (100, "cosine")
    assert embedded.get(name, [99])[0] is not None and embedded.get(name, [int(ids[40])])[0] is None


def test_build_with_string_ids(embedded, name):
    base = RNG.standard_normal((2000, 8)).astype(np.float32)
    names = [f"chunk {i} — ü" for i in range(2000)]
    info = embedded.build(name, base, ids=names, payloads=[{"row": i} for i in range(2000)],
                          metric="l2")
    assert (info.count, info.id_type) == (2000, "str")
    assert embedded.collection_info(name).id_type == "str"
    ids, dists = embedded.knn(name, base[:20], k=3, ef=64)
    assert ids.dtype == object and list(ids[:, 0]) == names[:20]
    assert embedded.get(name, [names[7], "nope"])[0].payload == {"row": 7}
    assert [r.id for r in embedded.iter_points(name, batch=500)] == \
        sorted(names, key=lambda x: x.encode())
    embedded.upsert(name, ["later"], base[:1] + 100)  # later writes take keys after the rows
    assert embedded.search(name, base[0] + 100, k=1)[0].id == "later"
    with pytest.raises(vectord.InvalidArgument) as ei:
        embedded.build(name + "_d", base[:3], ids=["a", "b", "a"])
    assert ei.value.message == \
        f'build {name}_d: string id "a" appears more than once (rows 0 and 2)'
    with pytest.raises(vectord.InvalidArgument) as ei:
        embedded.build(name + "_e", base[:2], ids=["a", ""])
    assert ei.value.message.startswith("ids[1] is an empty string")
    assert name + "_d" not in [c.name for c in embedded.list_collections()]


def test_build_refuses_bad_input_before_writing(embedded, name):
    base = RNG.standard_normal((300, 4)).astype(np.float32)
    base[123, 2] = np.nan
    bad = {
        f"build {name}: row 123: component 2 is NaN": lambda: embedded.build(name, base),
        f"build {name}: id 5 appears more than once (rows 1 and 2)":
            lambda: embedded.build(name, base[:3] * 0 + 1, ids=[4, 5, 5]),
        "got 2 ids and 3 vectors": lambda: embedded.build(name, base[:3], ids=[1, 2]),
        f"build {name}: row 0: zero vector has no direction for cosine":
            lambda: embedded.build(name, np.zeros((2, 4))),
        f"build {name}: m 1 is outside 2..128": lambda: embedded.build(name, base[:3], m=1),
        "payload 0 is a str; a payload must be a dict (a JSON object) or None":
            lambda: embedded.build(name, base[:1], payloads=["x"]),
    }
    for msg, call in bad.items():
        with pytest.raises(vectord.InvalidArgument) as ei:
            call()
        assert ei.value.message == msg
    assert name not in [c.name for c in embedded.list_collections()]


def test_the_engine_is_optional(tmp_path):
    """Without the compiled module the Client still imports and works; vectord.open says how
    to get the engine."""
    pkg = tmp_path / "pkg"
    (pkg / "vectord").mkdir(parents=True)
    src = REPO / "client" / "python" / "vectord"
    for f in src.iterdir():
        if f.suffix == ".py" or f.name == "py.typed":
            (pkg / "vectord" / f.name).write_bytes(f.read_bytes())
    code = ("import vectord\n"
            "assert vectord.Client and vectord.Embedded\n"
            "try:\n    vectord.open('x')\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(pkg)),
                         capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "vectord.open needs the compiled module vectord._engine" in out.stdout
    assert "run `make` in the repository" in out.stdout
    assert not (tmp_path / "x").exists()


def test_the_extension_refuses_what_would_be_unsafe(tmp_path):
    """embedded.py hands vectord._engine checked arguments; called directly, the extension
    still refuses whatever could make C read past a buffer or misname a collection."""
    eng = _engine.Engine(str(tmp_path / "raw"), 1)
    eng.create_collection("c", 2, "l2", 0, 0, 0)
    ids, vecs = np.arange(2, dtype="<u8"), np.ones((2, 2), "<f4")
    bad = {
        "queries: 3 bytes is not a whole number of 4-byte values":
            lambda: eng.search("c", b"abc", 2, 1, 0, False),
        "ids: 7 bytes is not a whole number of 8-byte values": lambda: eng.delete("c", b"1234567"),
        "upsert: ids and vectors disagree on the number of rows":
            lambda: eng.upsert("c", ids, vecs[:1], 2, None, 10),
        "build: vectors and ids disagree on the number of rows":
            lambda: eng.build("b", vecs, 2, ids[:1], None, "l2", 0, 0, 0, False),
        "collection name holds a NUL character": lambda: eng.count("a\0b"),
        "collection name must be a str": lambda: eng.count(5),
        "payloads: entry 1 is not bytes": lambda: eng.upsert("c", ids, vecs, 2, [b"{}", 3], 10),
        "payloads: expected a list of 2 encoded payloads":
            lambda: eng.upsert("c", ids, vecs, 2, "{}", 10),
        "metric must be one of 'l2', 'cosine', 'ip'":
            lambda: eng.create_collection("x", 4, "hamming", 0, 0, 0),
        "build: collection name has character 0x2f at position 1; allowed: A-Z a-z 0-9 _ -":
            lambda: eng.build("a/" + "x" * 70, vecs, 2, ids, None, "l2", 0, 0, 0, False),
        "threads must be at least 1, got 0": lambda: _engine.Engine(str(tmp_path / "t"), 0),
        "this vectord.open handle is open already": lambda: eng.__init__(str(tmp_path / "o"), 1),
    }
    for msg, call in bad.items():
        with pytest.raises(vectord.Error) as ei:
            call()
        assert ei.value.message == msg
    assert eng.count("c") == 0 and [c["name"] for c in eng.list_collections()] == ["c"]
    eng.close()
    for call in (lambda: eng.count("c"), eng.limits):
        with pytest.raises(vectord.FailedPrecondition):
            call()
    for threads in (0, -1, 1.5, "2"):
        with pytest.raises(vectord.InvalidArgument):
            vectord.open(tmp_path / "never", threads=threads)
    with pytest.raises(vectord.InvalidArgument):
        vectord.open("")
    assert not (tmp_path / "never").exists() and not (tmp_path / "t").exists()


def test_the_extension_refuses_unsafe_string_ids_scrolls_and_payloads(tmp_path):
    """The same for what issue 12 added: string ids packed wrong (the ends beyond the bytes
    are refused before an upsert cuts them into batches), a forged cursor, set_payload
    without its payload list, an unknown id type."""
    eng = _engine.Engine(str(tmp_path / "raw"), 1)
    eng.create_collection("s", 2, "l2", 0, 0, 0, "str")
    vecs = np.ones((2, 2), "<f4")
    bad = {
        "id_type must be 'int' or 'str'":
            lambda: eng.create_collection("x", 4, "l2", 0, 0, 0, "uuid"),
        "string ids: expected a tuple (bytes, uint32 ends)": lambda: eng.delete("s", (b"a",)),
        "string id ends: 7 bytes is not a whole number of 4-byte values":
            lambda: eng.get("s", (b"ab", b"1234567"), True, True),
        "upsert into s: row 1: string id ends at byte 9, outside 1..2 (ends must ascend "
        "within the 2 bytes of ids)":
            lambda: eng.upsert("s", (b"ab", np.array([1, 9], "<u4")), vecs, 2, None, 1),
        "set_payload: payloads must be a list of one entry per id":
            lambda: eng.set_payload("s", (b"a", np.array([1], "<u4")), None, True),
        "scroll: invalid cursor (damaged, or not one this server gave); start again without "
        "a cursor": lambda: eng.scroll("s", 10, b"x" * 24, False, False),
    }
    for msg, call in bad.items():
        with pytest.raises(vectord.InvalidArgument) as ei:
            call()
        assert ei.value.message == msg
    assert eng.count("s") == 0 and [c["name"] for c in eng.list_collections()] == ["s"]
    eng.close()


def test_a_forked_child_is_told_to_open_its_own(tmp_path):
    """A child after fork() inherits the handle but not its threads or its lock: a call is
    refused (it would otherwise wait for threads that do not exist), and the parent's handle
    is unharmed."""
    with vectord.open(tmp_path / "d", threads=2) as db:
        db.create_collection("c", dim=2, metric="l2")
        db.upsert("c", [1, 2], [[0, 0], [1, 1]])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running the parent's cleanup
            try:
                db.knn("c", [[0, 0], [1, 1]], k=1)
                msg = "no error"
            except vectord.FailedPrecondition as e:
                msg = e.message
            os.write(w, msg.encode())
            os._exit(0)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        msg = os.read(r, 4096).decode()
        os.close(r)
        assert status == 0
        assert msg.startswith(f"this vectord.open handle belongs to process {os.getpid()}; "
                              "after fork() open the directory again in the child"), msg
        assert db.knn("c", [[1, 1]], k=1)[0][0, 0] == 2
