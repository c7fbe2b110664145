"""Operating the daemon: metrics and health (--metrics-listen), TLS on the data port, the
read-only token, JSON logs and the slow-request log - each against a real daemon.

The readiness test makes a load observable with the daemon's test hook VD_TEST_LOAD_PAUSE_MS
(a pause per 4096 points loaded) on a 40,960-point collection built with `vectord build`;
bench/bench_ops.py measures the same on a real 1M-point collection.
"""
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import vectord
from vectord import vectord_pb2 as pb

from conftest import REPO, VECTORD_BIN, Daemon, make_test_ca, tls_client_context


def http_get(url, timeout=5.0):
    """(status, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(d):
    """/metrics parsed by prometheus_client: {(name, frozenset(labels)): value}."""
    status, text = http_get(d.metrics_url + "/metrics")
    assert status == 200, text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(m, name, **labels):
    return m[(name, frozenset(labels.items()))]


# ---- metrics and health ---------------------------------------------------------------------

N_LOAD = 10 * 4096


@pytest.fixture(scope="module")
def loaded_dir(tmp_path_factory):
    """A data directory holding a 40,960-point collection `big`, built offline."""
    base = tmp_path_factory.mktemp("load")
    x = np.random.default_rng(1).standard_normal((N_LOAD, 8)).astype(np.float32)
    np.save(base / "x.npy", x)
    subprocess.run([VECTORD_BIN, "build", "--data", str(base / "data"), "--collection", "big",
                    "--input", str(base / "x.npy"), "--threads", "2", "--m", "8",
                    "--ef-construction", "40"], check=True, capture_output=True)
    return base


def test_metrics_and_readiness_while_a_collection_loads(loaded_dir):
    d = Daemon(loaded_dir / "data", loaded_dir / "serve.log", metrics=True,
               env={"VD_TEST_LOAD_PAUSE_MS": "300"})
    d.start(wait=False)
    try:
        deadline = time.monotonic() + 20
        while True:  # the endpoint comes up before the data directory is opened
            try:
                if http_get(d.metrics_url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, d.log_tail()
            time.sleep(0.02)
        status, body = http_get(d.metrics_url + "/readyz")
        assert (status, body) == (503, "loading\n")
        m = scrape(d)
        assert sample(m, "vectord_ready") == 0 and sample(m, "vectord_state") == 1
        assert sample(m, "vectord_load_points_total") == N_LOAD
        assert 0 <= sample(m, "vectord_load_points_done") < N_LOAD
        with pytest.raises(vectord.Unavailable):  # the data port is not open yet
            vectord.Client(d.address, timeout=2)
        d.wait_ready(60)
        assert http_get(d.metrics_url + "/readyz") == (200, "ready\n")
        assert http_get(d.metrics_url + "/livez")[0] == 200
        assert http_get(d.metrics_url + "/nothing")[0] == 404
        m = scrape(d)
        assert sample(m, "vectord_ready") == 1
        assert sample(m, "vectord_load_points_done") == N_LOAD
        assert sample(m, "vectord_collection_points", collection="big") == N_LOAD
        assert sample(m, "vectord_collection_memory_bytes", collection="big") > N_LOAD * 32
        assert sample(m, "vectord_lmdb_file_bytes") > 0
        assert sample(m, "vectord_lmdb_map_bytes") >= sample(m, "vectord_lmdb_file_bytes")
    finally:
        d.stop()


def test_metrics_count_every_request(tmp_path):
    d = Daemon(tmp_path / "m", tmp_path / "m.log", metrics=True).start()
    try:
        with vectord.Client(d.address) as db:
            db.create_collection("c", dim=4)
            db.upsert("c", np.arange(50), np.random.rand(50, 4))
            for _ in range(7):
                db.count("c")
            with pytest.raises(vectord.NotFound):
                db.count("nope")
            db.knn("c", np.random.rand(3, 4), k=2)
            before = scrape(d)
            db.upsert("c", [1000], [[1, 2, 3, 4]])
            m = scrape(d)
        assert sample(m, "vectord_requests_total", op="count", code="OK") == 7
        assert sample(m, "vectord_requests_total", op="count", code="NOT_FOUND") == 1
        assert sample(m, "vectord_request_duration_seconds_count", op="count") == 8
        assert sample(m, "vectord_request_duration_seconds_bucket", op="count", le="+Inf") == 8
        assert sample(m, "vectord_requests_total", op="hello", code="OK") >= 1
        assert sample(m, "vectord_requests_total", op="search", code="OK") >= 1
        assert sample(m, "vectord_requests_in_flight") == 0
        assert sample(m, "vectord_connections_open") >= 1
        assert (sample(m, "vectord_group_commit_size_count")
                == sample(before, "vectord_group_commit_size_count") + 1)
        assert sample(m, "vectord_commit_sync_duration_seconds_count") >= 3
        assert sample(m, "vectord_commit_duration_seconds_sum") > 0
        assert sample(m, "vectord_writer_queue_depth") == 0
        assert sample(m, "vectord_reader_busy_seconds_total") > 0
        assert sample(m, "process_open_fds") > 3
        assert sample(m, "process_resident_memory_bytes") > 1 << 20
    finally:
        d.stop()


# ---- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_test_ca(tmp_path_factory.mktemp("ca"))


def tls_daemon(tmp_path, ca, mtls=False, **kw):
    args = ["--tls-cert", ca["server.pem"], "--tls-key", ca["server.key"]]
    if mtls:
        args += ["--tls-client-ca", ca["ca.pem"]]
    return Daemon(tmp_path / "data", tmp_path / "serve.log", extra_args=args,
                  tls=tls_client_context(ca, client_cert=mtls), **kw)


def test_tls_round_trip_with_a_test_ca(tmp_path, ca):
    d = tls_daemon(tmp_path, ca, metrics=True).start()
    try:
        rng = np.random.default_rng(2)
        x = rng.standard_normal((20000, 32)).astype(np.float32)
        with vectord.Client(d.address, tls=tls_client_context(ca)) as db:
            db.create_collection("t", dim=32, metric="l2")
            assert db.upsert("t", np.arange(20000), x,
                             payloads=[{"i": int(i)} for i in range(20000)]) == 20000
            ids, dist = db.knn("t", x[:200], k=5)  # frames of many TLS records each way
            assert (ids[:, 0] == np.arange(200)).all() and (dist[:, 0] < 1e-3).all()
            recs = db.get("t", [3, 19999])
            assert recs[1].payload == {"i": 19999}
            np.testing.assert_array_equal(recs[0].vector, x[3])
        m = scrape(d)
        assert sample(m, "vectord_tls_handshakes_total") >= 2  # the probe and the client
        text = d.log_path.read_text()
        assert "(max 1024 connections, no token, TLS)" in text
    finally:
        d.stop()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_verifies_the_server_by_default(tmp_path, ca):
    d = tls_daemon(tmp_path, ca).start()
    try:
        with pytest.raises(vectord.Unavailable, match="certificate was not accepted"):
            vectord.Client(d.address, tls=True, timeout=5)  # the system CAs know no test CA
        ctx = tls_client_context(ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1  # older than the server's 1.2 floor
        with pytest.raises(vectord.Unavailable, match="TLS handshake"):
            vectord.Client(d.address, tls=ctx, timeout=5)
        with pytest.raises(vectord.InvalidArgument, match="tls must be"):
            vectord.Client(d.address, tls="yes")
    finally:
        d.stop()


def test_a_plain_client_on_the_tls_port_is_closed_promptly(tmp_path, ca):
    d = tls_daemon(tmp_path, ca).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(vectord.FailedPrecondition, match="this port requires TLS"):
            vectord.Client(d.address, timeout=10)
        assert time.monotonic() - t0 < 2
        # Raw bytes that are no TLS record: one plain error frame, then the close.
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert time.monotonic() - t0 < 2
        (n,) = struct.unpack(">I", data[:4])
        resp = pb.Response.FromString(data[4:4 + n])
        assert resp.request_id == 0 and resp.status.code == pb.FAILED_PRECONDITION
        time.sleep(0.1)
        assert "not a TLS handshake (a plain-text client on a TLS port?); closing" in \
            d.log_path.read_text()
    finally:
        d.stop()


def test_mtls_refuses_a_client_without_a_certificate(tmp_path, ca):
    d = tls_daemon(tmp_path, ca, mtls=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(vectord.Unavailable):
            vectord.Client(d.address, tls=tls_client_context(ca), timeout=10)
        assert time.monotonic() - t0 < 5
        with vectord.Client(d.address, tls=tls_client_context(ca, client_cert=True)) as db:
            assert db.list_collections() == []
        time.sleep(0.1)
        log = d.log_path.read_text()
        assert re.search(r"TLS handshake failed: .*certificate", log), log
        assert "TLS with client certificates" in log
    finally:
        d.stop()


def test_tls_flags_that_need_each_other_exit_2(tmp_path, ca):
    for args, why in ((["--tls-cert", ca["server.pem"]], "--tls-key: is required"),
                      (["--tls-key", ca["server.key"]], "--tls-cert: is required"),
                      (["--tls-client-ca", ca["ca.pem"]], "--tls-client-ca: needs"),
                      (["--tls-cert", "/nonexistent.pem"], "No such file"),
                      (["--metrics-listen", "nohost"], "expected HOST:PORT or PORT"),
                      (["--log-format", "xml"], "expected text or json")):
        r = subprocess.run([VECTORD_BIN, "serve", "--data", str(tmp_path / "x"), *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    # a key that does not belong to the certificate: refused at start, before any load
    r = subprocess.run([VECTORD_BIN, "serve", "--data", str(tmp_path / "x"), "--tls-cert",
                        ca["server.pem"], "--tls-key", ca["client.key"]],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "does not match --tls-cert" in r.stderr, r.stderr


# ---- the read-only token --------------------------------------------------------------------


def request_table():
    """(name, is_write) of every request kind, from engine/vd_engine.h's VD_REQUEST_MAP."""
    text = (REPO / "engine" / "vd_engine.h").read_text()
    rows = re.findall(r'X\((\w+), "(\w+)", ([01])\)', text)
    assert len(rows) >= 10, rows
    return [(name, w == "1") for _, name, w in rows]


# One call per write kind, run with the read-only token. A new write kind in VD_REQUEST_MAP
# without a call here fails test_every_write_kind_is_denied.
WRITE_CALLS = {
    "create_collection": lambda db: db.create_collection("ro_new", dim=4),
    "drop_collection": lambda db: db.drop_collection("ro"),
    "upsert": lambda db: db.upsert("ro", [9], np.ones((1, 4))),
    "delete": lambda db: db.delete("ro", [1]),
    "set_payload": lambda db: db.set_payload("ro", [1], [{"a": 1}]),
    "create_payload_index": lambda db: db.create_payload_index("ro", "a"),
    "drop_payload_index": lambda db: db.drop_payload_index("ro", "a"),
}


@pytest.fixture(scope="module")
def ro_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("ro")
    d = Daemon(base / "data", base / "serve.log", token="w-token", read_token="r-token",
               metrics=True).start()
    with vectord.Client(d.address, token="w-token") as db:
        db.create_collection("ro", dim=4, metric="l2")
        db.upsert("ro", np.arange(10), np.eye(4)[np.arange(10) % 4] * (1 + np.arange(10))[:, None])
    yield d
    d.stop()


def test_the_read_only_token_reads(ro_server):
    with vectord.Client(ro_server.address, token="r-token") as db:
        assert db.count("ro") == 10
        assert [c.name for c in db.list_collections()] == ["ro"]
        assert db.collection_info("ro").count == 10
        assert db.get("ro", [3])[0].id == 3
        assert len(db.search("ro", [1, 0, 0, 0], k=2)) == 2
        ids, _ = db.knn("ro", np.eye(4), k=1)
        assert ids.shape == (4, 1)
        assert db.stats()["points"] == 10
    with pytest.raises(vectord.Unauthenticated):
        vectord.Client(ro_server.address, token="guess")


def test_every_write_kind_is_denied(ro_server):
    writes = [name for name, w in request_table() if w]
    missing = [w for w in writes if w not in WRITE_CALLS]
    assert not missing, f"write kinds without a read-only check here: {missing}"
    with vectord.Client(ro_server.address, token="r-token") as db:
        for name in writes:
            with pytest.raises(vectord.PermissionDenied) as e:
                WRITE_CALLS[name](db)
            assert e.value.message == (f"{name}: permission denied: this connection's token "
                                       "is read-only"), e.value.message
            assert e.value.code == vectord.Code.PERMISSION_DENIED
        assert db.count("ro") == 10  # nothing changed, the connection still reads
        assert db.get("ro", [1])[0].payload is None
    m = scrape(ro_server)
    assert sample(m, "vectord_requests_total", op="upsert", code="PERMISSION_DENIED") == 1
    with vectord.Client(ro_server.address, token="w-token") as db:  # the write token writes
        assert db.upsert("ro", [100], [[1, 1, 1, 1]]) == 1
        db.delete("ro", [100])


def run_serve(tmp_path, *args):
    return subprocess.run([VECTORD_BIN, "serve", "--data", str(tmp_path / "d"), "--listen",
                           "127.0.0.1:0", *args], capture_output=True, text=True, timeout=30)


def test_token_files_open_to_others_are_refused(tmp_path):
    w, r = tmp_path / "w.token", tmp_path / "r.token"
    w.write_text("write-secret\n")
    r.write_text("read-secret\n")
    os.chmod(r, 0o600)
    for mode in (0o644, 0o640, 0o620, 0o604):
        os.chmod(w, mode)
        res = run_serve(tmp_path, "--token-file", str(w))
        assert res.returncode == 1, res.stderr
        assert (f"--token-file {w}: permissions {mode:04o} are too open: group or others may "
                "read or write it (chmod 600 the file)") in res.stderr
    os.chmod(w, 0o600)
    os.chmod(r, 0o644)
    res = run_serve(tmp_path, "--token-file", str(w), "--read-token-file", str(r))
    assert res.returncode == 1 and f"--read-token-file {r}: permissions 0644" in res.stderr
    os.chmod(r, 0o600)
    r.write_text("write-secret\n")
    res = run_serve(tmp_path, "--token-file", str(w), "--read-token-file", str(r))
    assert res.returncode == 1 and "holds the same token as --token-file" in res.stderr
    res = run_serve(tmp_path, "--read-token-file", str(r))
    assert res.returncode == 2 and "--read-token-file: needs --token-file" in res.stderr
    assert not (tmp_path / "d").exists()  # refused before the data directory is touched


# ---- logs ---------------------------------------------------------------------------------------


def test_json_logs_and_the_slow_request_log(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "serve.log",
               extra_args=["--log-format", "json", "--slow-query-ms", "1"]).start()
    try:
        with vectord.Client(d.address) as db:
            db.create_collection("slow", dim=32)
            db.upsert("slow", np.arange(3000), np.random.rand(3000, 32), batch_size=3000)
            with pytest.raises(vectord.NotFound):
                db.count("bad\"name")  # a message with a quote in the JSON log (debug: none)
    finally:
        d.stop()
    lines = d.log_path.read_text().splitlines()
    objs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(set(o) == {"ts", "level", "msg"} for o in objs)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]) for o in objs)
    slow = [o for o in objs if o["msg"].startswith("slow request")]
    assert any(re.fullmatch(r"slow request \d+: upsert slow: 3000 points: OK in [\d.]+ ms",
                            o["msg"]) for o in slow), slow
    assert all(o["level"] == "warn" for o in slow)
    assert any(o["msg"].startswith("listening on 127.0.0.1:") for o in objs)
