#!/usr/bin/python3
"""bench_client.py: vectord measured through the Python client, over loopback TCP.

Phases, each printed on its own:
  1. upsert: every base vector through Client.upsert (pipelined frames, durable: each frame is
     acknowledged after its LMDB commit) -> points/s;
  2. knn: the query set in one Client.knn call per pass, at each ef -> QPS (median of --runs
     passes) and recall@k against exact neighbours computed here with numpy;
  3. search: one query per call (Client.search, with payloads off) -> latency p50 / p99.
  4. in-process: after the daemon has stopped, build/bench-index on the same vectors, queries
     and ef (vectord only, all threads) -> the ratio client knn QPS / in-process QPS at each
     ef (target >= 70 %), and the durable client upsert rate / the in-process build rate
     (target >= 50 %). --no-inprocess skips it.

Usage:
  PYTHONPATH=client/python /usr/bin/python3 bench/bench_client.py \
      --data ../shared/data/glove6b-100-cosine --max-base 100000 --ef 64,128,256
  PYTHONPATH=client/python /usr/bin/python3 bench/bench_client.py --synthetic 100000x128
By default a daemon (build/vectord serve) is started on a temporary data directory and a free
port and stopped at the end; --address uses a running one instead. --json prints one JSON
object per result line on stdout (the table then goes to stderr).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vectord

REPO = Path(__file__).resolve().parents[1]


def read_fvecs(path, rows=None):
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
    count = -1 if rows is None else rows * (dim + 1)
    rec = np.fromfile(path, dtype="<f4", count=count).reshape(-1, dim + 1)
    return np.ascontiguousarray(rec[:, 1:])


def exact_top(base, queries, k, metric):
    b, q = base.astype(np.float32), queries.astype(np.float32)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    bn = (b ** 2).sum(1)
    bt = np.ascontiguousarray(b.T)
    for lo in range(0, len(q), 256):
        dots = q[lo:lo + 256] @ bt  # float32: a benchmark's recall, not a test oracle
        d = bn[None, :] - 2 * dots if metric == "l2" else -dots
        top = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, top, axis=1), axis=1, kind="stable")
        out[lo:lo + 256] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found, truth):
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


class Daemon:
    """`vectord serve` on a free port: on `data`, or on a temporary directory removed by
    stop()."""

    def __init__(self, binary, threads, data=None):
        self.tmp = data is None
        self.dir = tempfile.mkdtemp(prefix="vectord-bench-") if self.tmp else str(data)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        data = os.path.join(self.dir, "data") if self.tmp else self.dir
        args = [binary, "serve", "--data", data, "--listen", self.address]
        if threads:
            args += ["--threads", str(threads)]
        self.log = open(os.path.join(self.dir, "serve.log") if self.tmp else self.dir + ".log",
                        "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"bench_client: vectord serve exited with {self.proc.returncode}")
            try:
                vectord.Client(self.address, timeout=5).close()
                return
            except vectord.Unavailable:
                if time.monotonic() > deadline:
                    sys.exit("bench_client: vectord serve did not come up")
                time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()
        if self.tmp:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="vectord through the Python client")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="folder with base.fvecs, query.fvecs (metric from the "
                                    "-l2/-cosine/-ip suffix)")
    src.add_argument("--synthetic", help="NxD seeded gaussian data, e.g. 100000x128 (l2)")
    ap.add_argument("--max-base", type=int, default=None)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--metric", default=None)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="64,128,256")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--latency-queries", type=int, default=1000)
    ap.add_argument("--address", default=None, help="use a running daemon")
    ap.add_argument("--vectord", default=os.environ.get("VECTORD_BIN",
                                                        str(REPO / "build" / "vectord")))
    ap.add_argument("--threads", type=int, default=0, help="daemon --threads (default cores)")
    ap.add_argument("--collection", default=None,
                    help="collection name (default bench_client_<pid>, dropped at the end)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the collection; a later run with --address and the same "
                         "--collection reuses it (skips the upsert) when its count matches")
    ap.add_argument("--bench-index", default=str(REPO / "build" / "bench-index"))
    ap.add_argument("--no-inprocess", action="store_true",
                    help="skip the in-process comparison (build/bench-index)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    table = sys.stderr if args.json else sys.stdout

    def emit(obj, line):
        print(line, file=table, flush=True)
        if args.json:
            print(json.dumps(obj), flush=True)

    if args.data:
        folder = Path(args.data)
        base = read_fvecs(folder / "base.fvecs", args.max_base)
        queries = read_fvecs(folder / "query.fvecs", args.queries)
        metric = args.metric or next((m for m in ("l2", "cosine", "ip")
                                      if folder.name.endswith("-" + m)), "l2")
        set_name = folder.name + (f"[:{len(base)}]" if args.max_base else "")
    else:
        n, d = (int(x) for x in args.synthetic.lower().split("x"))
        rng = np.random.default_rng(100)
        centers = rng.standard_normal((64, d)).astype(np.float32) * 2
        base = (centers[rng.integers(0, 64, n)] + rng.standard_normal((n, d))).astype(np.float32)
        queries = (centers[rng.integers(0, 64, args.queries)]
                   + rng.standard_normal((args.queries, d))).astype(np.float32)
        metric = args.metric or "l2"
        set_name = f"synthetic-{n}x{d}"
    n, dim = base.shape
    truth = exact_top(base, queries, args.k, metric)

    daemon = None if args.address else Daemon(args.vectord, args.threads)
    address = args.address or daemon.address
    try:
        with vectord.Client(address, timeout=120) as db:
            name = args.collection or f"bench_client_{os.getpid()}"
            existing = {c.name: c for c in db.list_collections()}
            reuse = name in existing and existing[name].count == n
            if not reuse:
                if name in existing:
                    db.drop_collection(name)
                db.create_collection(name, dim=dim, metric=metric, m=args.m,
                                     ef_construction=args.ef_construction)
            common = {"set": set_name, "n": n, "dim": dim, "metric": metric, "m": args.m,
                      "ef_construction": args.ef_construction, "server": db.server_version}
            print(f"# {set_name}: {n} x {dim} {metric}, M {args.m}, ef_construction "
                  f"{args.ef_construction}, {len(queries)} queries, k {args.k}, daemon "
                  f"{address} ({db.stats()['reader_threads']} reader threads), load "
                  f"{os.getloadavg()[0]:.1f}", file=table)

            if reuse:
                print(f"upsert    skipped: reusing collection {name} ({n} points)", file=table)
            else:
                t0 = time.perf_counter()
                written = db.upsert(name, np.arange(n, dtype=np.uint64), base,
                                    batch_size=args.batch_size)
                dt = time.perf_counter() - t0
                assert written == n and db.count(name) == n
                upsert_pps = n / dt
                emit(dict(common, phase="upsert", seconds=round(dt, 3),
                          points_per_s=round(n / dt)),
                     f"upsert    {n} points in {dt:.2f} s = {n / dt:,.0f} points/s (durable)")

            client_qps = {}
            if reuse:
                upsert_pps = None
            for ef in (int(x) for x in args.ef.split(",")):
                db.knn(name, queries[:100], k=args.k, ef=ef)  # warm
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    ids, _ = db.knn(name, queries, k=args.k, ef=ef)
                    times.append(time.perf_counter() - t0)
                qps = len(queries) / statistics.median(times)
                r = recall(ids, truth)
                client_qps[ef] = qps
                emit(dict(common, phase="knn", ef=ef, k=args.k, qps=round(qps), recall=r),
                     f"knn       ef {ef:4d}: {qps:9,.0f} QPS  recall@{args.k} {r:.4f}")

            lat_ef = int(args.ef.split(",")[0])
            nq = min(args.latency_queries, len(queries))
            lat = []
            for i in range(nq):
                q = queries[i]
                t0 = time.perf_counter()
                db.search(name, q, k=args.k, ef=lat_ef, with_payload=False)
                lat.append(time.perf_counter() - t0)
            lat_us = np.array(lat) * 1e6
            p50, p99 = np.percentile(lat_us, 50), np.percentile(lat_us, 99)
            emit(dict(common, phase="search_latency", ef=lat_ef, k=args.k, queries=nq,
                      p50_us=round(float(p50), 1), p99_us=round(float(p99), 1)),
                 f"search    ef {lat_ef:4d}: one query per call, p50 {p50:.0f} us, "
                 f"p99 {p99:.0f} us ({nq} calls)")
            if not args.keep:
                db.drop_collection(name)
    finally:
        if daemon:
            daemon.stop()
    if not args.no_inprocess:
        inprocess(args, set_name, metric, base, queries, truth, client_qps, upsert_pps, common,
                  emit)


def write_vecs(path, rows, dtype):
    rows = np.ascontiguousarray(rows, dtype=dtype)
    rec = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=dtype)
    rec[:, 0] = np.array(rows.shape[1], dtype="<i4").view(dtype)
    rec[:, 1:] = rows
    rec.tofile(path)


def inprocess(args, set_name, metric, base, queries, truth, client_qps, upsert_pps, common,
              emit):
    """The same vectors, queries and ef in process (bench-index, vectord only, all threads),
    run while no daemon competes for the cores."""
    tmp = Path(tempfile.mkdtemp(prefix="vectord-bench-client-")) / f"set-{metric}"
    tmp.mkdir()
    try:
        write_vecs(tmp / "base.fvecs", base, "<f4")
        write_vecs(tmp / "query.fvecs", queries, "<f4")
        write_vecs(tmp / "gt.ivecs", truth.astype("<i4"), "<i4")
        cmd = [args.bench_index, "--data", str(tmp), "--systems", "vectord", "--m",
               str(args.m), "--ef-construction", str(args.ef_construction), "--ef", args.ef,
               "--k", str(args.k), "--runs", str(args.runs), "--json"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    rows = [json.loads(line) for line in out.splitlines()]
    if rows and upsert_pps:
        build_pps = len(base) / rows[0]["build_s"]
        emit(dict(common, phase="inprocess_build", seconds=rows[0]["build_s"],
                  points_per_s=round(build_pps), client_upsert_over_build=round(
                      upsert_pps / build_pps, 3)),
             f"in-proc   build {rows[0]['build_s']:.2f} s = {build_pps:,.0f} points/s; "
             f"durable client upsert / in-process build = {upsert_pps / build_pps:.0%}")
    for row in rows:
        ef = row["ef"]
        if ef not in client_qps:
            continue
        ratio = client_qps[ef] / row["qps_all"]
        emit(dict(common, phase="inprocess", ef=ef, k=args.k, qps_inprocess=round(row["qps_all"]),
                  recall_inprocess=row["recall_at_10"], qps_client=round(client_qps[ef]),
                  client_over_inprocess=round(ratio, 3)),
             f"in-proc   ef {ef:4d}: {row['qps_all']:9,.0f} QPS  recall@10 "
             f"{row['recall_at_10']:.4f}; client knn / in-process = {ratio:.0%}")


if __name__ == "__main__":
    main()
