#!/usr/bin/python3
"""bench_ops.py: what operating features cost, measured on one data directory.

  readiness  `vectord build` a synthetic N x D collection (default 1M x 128), then start
             `vectord serve --metrics-listen` on it and poll /readyz every 20 ms from the
             moment the process starts: how long it answered 503 (loading), when it turned
             200, and the first search after that. Also scrapes /metrics once mid-load.
  tls        the same data served plain and then with TLS (a test CA made with the openssl
             command line), knn QPS through the Python client on the same queries (median of
             --runs passes, alternating plain and TLS twice): the ratio TLS / plain
             (target >= 0.9).

Usage: PYTHONPATH=client/python /usr/bin/python3 bench/bench_ops.py [readiness] [tls]
           [--n 1000000] [--dim 128] [--tls-n 100000] [--json]
Timings on a shared machine are noisy; the ratio is what to quote.
"""
import argparse
import json
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "client" / "python"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import vectord  # noqa: E402

BIN = str(REPO / "build" / "vectord")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(tmp, n, dim, name="bench"):
    x = np.random.default_rng(7).standard_normal((n, dim)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    t0 = time.monotonic()
    subprocess.run([BIN, "build", "--data", str(tmp / "data"), "--collection", name, "--input",
                    str(tmp / "x.npy"), "--threads", "2"], check=True, stdout=subprocess.DEVNULL)
    print(f"built {n} x {dim} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    (tmp / "x.npy").unlink()
    return x


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def readiness(args, tmp):
    build(tmp, args.n, args.dim)
    port, mport = free_port(), free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([BIN, "serve", "--data", str(tmp / "data"), "--listen",
                             f"127.0.0.1:{port}", "--metrics-listen", str(mport)],
                            stderr=open(tmp / "serve.log", "wb"))
    first_503 = first_200 = None
    n_503, mid_scrape = 0, None
    while time.monotonic() - t0 < 300:
        status, body = get(f"http://127.0.0.1:{mport}/readyz")
        now = time.monotonic() - t0
        if status == 503:
            n_503 += 1
            first_503 = first_503 or now
            _, text = get(f"http://127.0.0.1:{mport}/metrics")  # the last one before 200
            mid_scrape = [line for line in text.splitlines()
                          if line.startswith("vectord_load_points")] or mid_scrape
        elif status == 200:
            first_200 = now
            break
        time.sleep(0.02)
    with vectord.Client(f"127.0.0.1:{port}") as db:
        q = np.random.default_rng(8).standard_normal(args.dim).astype(np.float32)
        t1 = time.monotonic()
        db.search("bench", q, k=10)
        first_search_ms = (time.monotonic() - t1) * 1000
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    res = {"bench": "readiness", "n": args.n, "dim": args.dim,
           "first_503_s": first_503, "first_200_s": first_200, "n_503": n_503,
           "first_search_ms": round(first_search_ms, 2), "mid_load_metrics": mid_scrape}
    print(f"readiness of {args.n} x {args.dim}: /readyz 503 from {first_503:.2f} s "
          f"({n_503} polls), 200 at {first_200:.2f} s after start; first search "
          f"{first_search_ms:.1f} ms; mid-load scrape: {mid_scrape}", file=sys.stderr)
    return res


def knn_qps(address, queries, runs, ctx=None):
    with vectord.Client(address, tls=ctx) as db:
        db.knn("bench", queries[:64], k=10, ef=64)  # warm-up
        rates = []
        for _ in range(runs):
            t0 = time.monotonic()
            db.knn("bench", queries, k=10, ef=64)
            rates.append(len(queries) / (time.monotonic() - t0))
    return statistics.median(rates)


def tls(args, tmp):
    from conftest import make_test_ca, tls_client_context
    build(tmp, args.tls_n, args.dim)
    ca = make_test_ca(tmp / "ca")
    queries = np.random.default_rng(9).standard_normal((args.queries, args.dim)).astype(
        np.float32)
    results = {"plain": [], "tls": []}
    for mode in ("plain", "tls", "plain", "tls"):
        port = free_port()
        extra = ["--tls-cert", ca["server.pem"], "--tls-key", ca["server.key"]] \
            if mode == "tls" else []
        proc = subprocess.Popen([BIN, "serve", "--data", str(tmp / "data"), "--listen",
                                 f"127.0.0.1:{port}", *extra], stderr=subprocess.DEVNULL)
        ctx = tls_client_context(ca) if mode == "tls" else None
        for _ in range(400):
            try:
                vectord.Client(f"127.0.0.1:{port}", tls=ctx, timeout=2).close()
                break
            except vectord.Unavailable:
                time.sleep(0.05)
        results[mode].append(knn_qps(f"127.0.0.1:{port}", queries, args.runs, ctx))
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    plain, secure = max(results["plain"]), max(results["tls"])
    res = {"bench": "tls_knn", "n": args.tls_n, "dim": args.dim, "queries": args.queries,
           "k": 10, "ef": 64, "qps_plain": round(plain, 1), "qps_tls": round(secure, 1),
           "ratio": round(secure / plain, 3)}
    print(f"knn through the Python client, {args.tls_n} x {args.dim}, {args.queries} queries, "
          f"k 10, ef 64: plain {plain:.0f} QPS, TLS {secure:.0f} QPS, ratio "
          f"{secure / plain:.3f} (best of 2 servers each, median of {args.runs} passes)",
          file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="*", default=["readiness", "tls"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--tls-n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for what in args.what:
        tmp = Path(tempfile.mkdtemp(prefix="vd-bench-ops-", dir=args.tmp))
        try:
            res = {"readiness": readiness, "tls": tls}[what](args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if args.json:
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
