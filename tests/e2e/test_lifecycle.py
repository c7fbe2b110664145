"""Restarts, crashes, reconnects, authentication and threads, each on a daemon of its own."""
import threading
import time

import numpy as np
import pytest

import vectord
from conftest import Daemon

RNG = np.random.default_rng(11)


def _fill(c, name, n=2000, dim=16, metric="cosine"):
    vecs = RNG.standard_normal((n, dim)).astype(np.float32)
    c.create_collection(name, dim=dim, metric=metric, ef_construction=64)
    c.upsert(name, np.arange(n), vecs, payloads=[{"i": i, "text": f"chunk {i} ✓"}
                                                 for i in range(n)])
    return vecs


def _check_same(c, name, vecs, before_ids, before_d):
    n = len(vecs)
    assert c.count(name) == n
    recs = c.get(name, np.arange(n))
    assert [r.payload["i"] for r in recs] == list(range(n))
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    np.testing.assert_allclose(np.stack([r.vector for r in recs]), unit, rtol=1e-5, atol=1e-6)
    ids, dists = c.knn(name, vecs[:50], k=10, ef=200)
    assert (ids == before_ids).mean() > 0.98  # the same graph answers after the restart
    np.testing.assert_allclose(dists[ids == before_ids], before_d[ids == before_ids],
                               atol=1e-5)


def test_data_survives_a_clean_restart(fresh_server):
    with vectord.Client(fresh_server.address) as c:
        vecs = _fill(c, "keep")
        c.create_collection("empty", dim=3, metric="ip", m=8, ef_search=33)
        assert c.delete("keep", [0, 1]) == 2
        queries = vecs[:50]
        before_ids, _ = c.knn("keep", queries, k=10, ef=200)
    fresh_server.restart()
    with vectord.Client(fresh_server.address) as c:
        assert c.count("keep") == len(vecs) - 2
        assert c.get("keep", [0, 1]) == [None, None]
        info = c.collection_info("empty")
        assert (info.dim, info.metric, info.m, info.ef_search, info.count) == (3, "ip", 8, 33, 0)
        ids, _ = c.knn("keep", queries, k=10, ef=200)
        assert (ids == before_ids).mean() > 0.98
        rest = np.arange(2, len(vecs))
        recs = c.get("keep", rest)
        assert [r.payload["i"] for r in recs] == rest.tolist()


def test_acknowledged_writes_survive_kill_9(fresh_server):
    with vectord.Client(fresh_server.address) as c:
        vecs = _fill(c, "crash", n=3000)
        before_ids, before_d = c.knn("crash", vecs[:50], k=10, ef=200)
    fresh_server.kill()  # SIGKILL right after the last acknowledgement
    fresh_server.start()
    with vectord.Client(fresh_server.address) as c:
        _check_same(c, "crash", vecs, before_ids, before_d)


def test_client_reconnects_after_the_server_restarts(fresh_server):
    c = vectord.Client(fresh_server.address, timeout=10)
    c.create_collection("re", dim=2, metric="l2")
    c.upsert("re", [1], [[1.0, 2.0]])
    fresh_server.stop()
    with pytest.raises(vectord.Unavailable):
        c.count("re")  # down: the call fails with Unavailable, it does not hang
    with pytest.raises(vectord.Unavailable):
        c.create_collection("while_down", dim=2)
    fresh_server.start()
    # Every kind of call works again on a new connection, without a new Client.
    assert c.count("re") == 1
    c.create_collection("after", dim=2, metric="l2")  # non-idempotent, stale socket replaced
    assert c.upsert("after", [5], [[0.5, 0.5]]) == 1
    assert c.search("after", [0.5, 0.5], k=1)[0].id == 5
    fresh_server.restart()  # restart while the client holds an idle pooled connection
    assert c.get("re", [1])[0].vector.tolist() == [1.0, 2.0]
    c.drop_collection("after")
    c.close()


def test_token_authentication(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "serve.log", token="s3cret-token")
    d.start()
    try:
        with pytest.raises(vectord.Unauthenticated):
            vectord.Client(d.address)  # no token
        with pytest.raises(vectord.Unauthenticated) as ei:
            vectord.Client(d.address, token="wrong")
        assert ei.value.code == vectord.Code.UNAUTHENTICATED and ei.value.message
        with vectord.Client(d.address, token="s3cret-token") as c:
            c.create_collection("auth", dim=2, metric="l2")
            assert c.upsert("auth", [1], [[1, 1]]) == 1
            assert c.count("auth") == 1
    finally:
        d.stop()


def test_one_client_shared_by_threads(fresh_server):
    """One Client, 8 threads: each writes its own ids, searches and reads them back while
    the others write. The documented model: calls run in parallel on pooled connections."""
    dim, per_thread, threads = 16, 500, 8
    c = vectord.Client(fresh_server.address, timeout=60)
    c.create_collection("shared", dim=dim, metric="l2", ef_construction=64)
    data = {t: RNG.standard_normal((per_thread, dim)).astype(np.float32) for t in range(threads)}
    errors = []
    barrier = threading.Barrier(threads)

    def worker(t):
        try:
            barrier.wait()
            ids = np.arange(per_thread) + t * 1_000_000
            for lo in range(0, per_thread, 100):  # several calls, interleaved with others
                part = slice(lo, lo + 100)
                assert c.upsert("shared", ids[part], data[t][part],
                                payloads=[{"t": t, "i": int(i)} for i in ids[part]]) == 100
                got = c.get("shared", ids[part])
                assert [r.payload["t"] for r in got] == [t] * 100
                found, _ = c.knn("shared", data[t][part][:10], k=1, ef=64)
                assert (found[:, 0] == ids[part][:10]).mean() >= 0.9
                hits = c.search("shared", data[t][lo], k=1)
                assert hits[0].id == ids[lo] and hits[0].payload == {"t": t, "i": int(ids[lo])}
                assert c.count("shared") >= lo + 100
        except BaseException as e:  # report in the main thread
            errors.append((t, e))

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(120)
    assert not errors, errors
    assert c.count("shared") == per_thread * threads
    assert c.stats()["connections"] >= 2  # the pool opened connections in parallel
    assert c.delete("shared", np.arange(per_thread) + 3 * 1_000_000) == per_thread
    c.close()


def test_splitting_follows_the_servers_limits(tmp_path):
    """A daemon with small limits: the client cuts upserts (payload sizes included), gets and
    searches to fit max_batch and max_frame_bytes, whatever batch_size asks for."""
    d = Daemon(tmp_path / "data", tmp_path / "serve.log",
               extra_args=["--max-batch", "100", "--max-frame-bytes", "65536"])
    d.start()
    try:
        with vectord.Client(d.address) as c:
            assert (c.limits.max_batch, c.limits.max_frame_bytes) == (100, 65536)
            n, dim = 3000, 64
            vecs = RNG.standard_normal((n, dim)).astype(np.float32)
            payloads = [{"i": i, "text": "y" * (i % 900)} for i in range(n)]
            c.create_collection("small", dim=dim, metric="l2", ef_construction=40)
            assert c.upsert("small", np.arange(n), vecs, payloads=payloads,
                            batch_size=100000) == n
            recs = c.get("small", np.arange(n))
            assert [r.payload for r in recs] == payloads
            ids, _ = c.knn("small", vecs[:450], k=5, ef=60)
            assert (ids[:, 0] == np.arange(450)).mean() > 0.95
            hits = c.search("small", vecs[:150], k=3)
            assert len(hits) == 150 and hits[7][0].payload == payloads[7]
            assert c.delete("small", np.arange(n)) == n
            with pytest.raises(vectord.InvalidArgument) as ei:
                c.upsert("small", [1], vecs[:1], payloads=[{"text": "z" * 70000}])
            assert "max frame" in ei.value.message
    finally:
        d.stop()


def test_idle_timeout_is_transparent(tmp_path):
    """The server closes idle connections; the next call (even a non-idempotent one) opens a
    new connection instead of failing."""
    d = Daemon(tmp_path / "data", tmp_path / "serve.log", extra_args=["--idle-timeout-s", "0.5"])
    d.start()
    try:
        with vectord.Client(d.address) as c:
            c.create_collection("idle1", dim=2, metric="l2")
            time.sleep(1.2)
            c.create_collection("idle2", dim=2, metric="l2")
            time.sleep(1.2)
            assert {x.name for x in c.list_collections()} == {"idle1", "idle2"}
    finally:
        d.stop()


def test_retry_rules_when_the_connection_breaks_mid_call(server, name):
    """Idempotent calls are re-sent on a fresh connection; create/drop are not (they may
    have happened: here they did)."""
    from faultproxy import CutProxy
    proxy = CutProxy(server.address)
    try:
        c = vectord.Client(proxy.address, timeout=10)
        proxy.cut_after(1)
        with pytest.raises(vectord.Unavailable) as ei:
            c.create_collection(name, dim=4, metric="l2")
        assert "not idempotent" in ei.value.message
        assert name in [x.name for x in c.list_collections()]  # it did happen
        proxy.cut_after(1)
        assert c.count(name) == 0  # cut, re-sent, answered
        n = 3000
        vecs = RNG.standard_normal((n, 4)).astype(np.float32)
        proxy.cut_after(2)  # break during a 30-frame pipelined upsert
        assert c.upsert(name, np.arange(n), vecs, batch_size=100) == n
        assert c.count(name) == n
        proxy.cut_after(1)
        ids, _ = c.knn(name, vecs[:5], k=1, ef=50)
        assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
        proxy.cut_after(1)
        with pytest.raises(vectord.Unavailable):
            c.drop_collection(name)
        assert name not in [x.name for x in c.list_collections()]
        assert proxy.accepted >= 6  # a new connection after every cut
        c.close()
        no_retry = vectord.Client(proxy.address, timeout=10, retries=0)
        proxy.cut_after(1)
        with pytest.raises(vectord.Unavailable):
            no_retry.list_collections()
        no_retry.close()
    finally:
        proxy.close()


def test_close_while_another_thread_is_mid_call(server, name):
    """close() does not cut a call in progress: it finishes, its connection is closed when
    it comes back, and every later call raises FailedPrecondition."""
    c = vectord.Client(server.address)
    c.create_collection(name, dim=8, metric="l2", ef_construction=32)
    vecs = RNG.standard_normal((20000, 8)).astype(np.float32)
    result = {}
    started = threading.Event()

    def big_upsert():
        started.set()
        try:
            result["written"] = c.upsert(name, np.arange(len(vecs)), vecs, batch_size=500)
        except BaseException as e:
            result["error"] = e

    th = threading.Thread(target=big_upsert)
    th.start()
    started.wait(10)
    with vectord.Client(server.address) as watcher:  # close once the first frames landed
        deadline = time.monotonic() + 60
        while watcher.count(name) == 0 and "error" not in result:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    c.close()
    th.join(120)
    assert result.get("written") == len(vecs), result
    with pytest.raises(vectord.FailedPrecondition):
        c.count(name)
    with vectord.Client(server.address) as other:
        assert other.count(name) == len(vecs)
