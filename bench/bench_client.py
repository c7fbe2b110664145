#!/usr/bin/python3
"""bench_client.py: vectord from Python, served (Client over loopback TCP) and embedded
(vectord.open, the engine in this process), side by side on the same graph, then next to
the engine alone (build/bench-index).

Phases, each printed on its own:
  1. build: the base vectors become a collection through the embedded bulk build
     (db.build, all threads) in data directory A; A is copied to B, a daemon serves B and
     the embedded handle reopens A - so the served and the embedded graph are the same
     bytes, and their recall must agree;
  2. upsert: --upsert-max points upserted durably (each call returns after its LMDB
     commits), the same batches (--batch-size) through the Client and embedded, alternating
     -> points/s each and the ratio;
  3. knn: the query set through Client.knn and embedded knn, passes alternating (each pass
     repeats the call for at least --min-pass-ms), at each ef -> QPS (median of --runs),
     recall@k against exact neighbours (numpy), client / embedded (target >= 0.8), and the
     CPU time per query of each side (client: this process and the daemon), which a busy
     machine hardly moves;
  4. search: one query per call (with_payload off), served and embedded alternating ->
     p50 / p99 latency each; then embedded single-query searches (at the largest ef) from 1
     and from 2 Python threads -> the throughput ratio (the GIL is released inside the
     engine: ~2 on 2 cores);
  5. same graph: after the daemon stops and the handle closes, embedded knn on directory A
     (reopened) alternating with build/bench-embed on A, the engine alone searching the very
     same graph (vd_engine_read on the module's pool, and bench-index's loop over the
     collection's index) -> embedded / index and embedded / engine, QPS and CPU per query:
     the honest in-process comparison;
  6. in-process: build/bench-index on the same vectors, queries, ef and threads (vectord
     only; it builds a graph of its own, whose recall and speed differ a little) ->
     embedded knn / in-process (target >= 0.95) and client knn / in-process.
     --no-inprocess skips 5 and 6.

Usage:
  PYTHONPATH=client/python /usr/bin/python3 bench/bench_client.py \\
      --data ../shared/data/fashion-mnist-784-l2 --ef 10,32,128
  PYTHONPATH=client/python /usr/bin/python3 bench/bench_client.py --synthetic 100000x128
--json prints one JSON object per result line on stdout (the table then goes to stderr).
Timings on a shared machine are noisy; the ratios, taken pass by pass under the same load,
are the figures to quote.
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
import threading
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
    """`vectord serve` on `data_dir` and a free port, its output into `log_path`."""

    def __init__(self, binary, data_dir, threads, log_path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        args = [binary, "serve", "--data", str(data_dir), "--listen", self.address]
        if threads:
            args += ["--threads", str(threads)]
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
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


def cpu_seconds(pids=()):
    """CPU time (user + system) of this process and of the processes `pids`."""
    t = os.times()
    total = t.user + t.system
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def timed_pass(call, min_s, pids=()):
    """(seconds per call, CPU seconds per call of this process and `pids`): the call
    repeated until the pass lasts min_s."""
    n, t0, c0 = 0, time.perf_counter(), cpu_seconds(pids)
    while True:
        call()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_s:
            return dt / n, (cpu_seconds(pids) - c0) / n


def alternate(calls, runs, min_s):
    """[(median seconds per call, CPU seconds per call)] of each (call, pids), passes taken
    in turns (A B B A ...). The CPU time, unlike the wall time, hardly moves when other
    processes take cores away: it is the steadier figure on a busy machine."""
    times = [[] for _ in calls]
    for r in range(runs):
        order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
        for i in order:
            times[i].append(timed_pass(calls[i][0], min_s, calls[i][1]))
    return [(statistics.median(w for w, _ in t), sum(c for _, c in t) / len(t)) for t in times]


def threads_throughput(db, name, queries, k, ef, n_threads, seconds):
    """Single-query searches per second from n_threads Python threads at once."""
    counts = [0] * n_threads
    stop = time.perf_counter() + seconds

    def worker(t):
        i = t
        while time.perf_counter() < stop:
            db.search(name, queries[i % len(queries)], k=k, ef=ef, with_payload=False)
            counts[t] += 1
            i += n_threads

    ths = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    t0 = time.perf_counter()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def load(args):
    if args.data:
        folder = Path(args.data)
        base = read_fvecs(folder / "base.fvecs", args.max_base)
        queries = read_fvecs(folder / "query.fvecs", args.queries)
        metric = args.metric or next((m for m in ("l2", "cosine", "ip")
                                      if folder.name.endswith("-" + m)), "l2")
        return base, queries, metric, folder.name + (f"[:{len(base)}]" if args.max_base else "")
    n, d = (int(x) for x in args.synthetic.lower().split("x"))
    rng = np.random.default_rng(100)
    centers = rng.standard_normal((64, d)).astype(np.float32) * 2
    base = (centers[rng.integers(0, 64, n)] + rng.standard_normal((n, d))).astype(np.float32)
    queries = (centers[rng.integers(0, 64, args.queries)]
               + rng.standard_normal((args.queries, d))).astype(np.float32)
    return base, queries, args.metric or "l2", f"synthetic-{n}x{d}"


def main():
    ap = argparse.ArgumentParser(description="vectord from Python: served and embedded")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="folder with base.fvecs, query.fvecs (metric from the "
                                    "-l2/-cosine/-ip suffix)")
    src.add_argument("--synthetic", help="NxD seeded gaussian data, e.g. 100000x128 (l2)")
    ap.add_argument("--max-base", type=int, default=None)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--metric", default=None)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="10,64,256")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--min-pass-ms", type=float, default=300,
                    help="a timed pass repeats its call for at least this long (default 300)")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--upsert-max", type=int, default=50000,
                    help="points upserted by each side (default 50000; 0 skips the phase)")
    ap.add_argument("--latency-queries", type=int, default=1000)
    ap.add_argument("--thread-seconds", type=float, default=2.0,
                    help="seconds of each 1- and 2-thread embedded search run (0 skips)")
    ap.add_argument("--threads", type=int, default=0,
                    help="daemon --threads, embedded threads, bench-index --threads "
                         "(default: cores)")
    ap.add_argument("--vectord", default=os.environ.get("VECTORD_BIN",
                                                        str(REPO / "build" / "vectord")))
    ap.add_argument("--bench-index", default=str(REPO / "build" / "bench-index"))
    ap.add_argument("--bench-embed", default=str(REPO / "build" / "bench-embed"))
    ap.add_argument("--tmp", default=None, help="where the data directories go")
    ap.add_argument("--no-inprocess", action="store_true",
                    help="skip the in-process comparisons (build/bench-embed, "
                         "build/bench-index)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    table = sys.stderr if args.json else sys.stdout

    def emit(obj, line):
        print(line, file=table, flush=True)
        if args.json:
            print(json.dumps(obj), flush=True)

    base, queries, metric, set_name = load(args)
    n, dim = base.shape
    threads = args.threads or len(os.sched_getaffinity(0))
    truth = exact_top(base, queries, args.k, metric)
    efs = [int(x) for x in args.ef.split(",")]
    min_s = args.min_pass_ms / 1000
    common = {"set": set_name, "n": n, "dim": dim, "metric": metric, "m": args.m,
              "ef_construction": args.ef_construction, "threads": threads, "k": args.k,
              "simd": vectord._engine.simd}
    tmp = Path(tempfile.mkdtemp(prefix="vectord-bench-client-", dir=args.tmp))
    dir_a, dir_b = tmp / "embedded", tmp / "served"
    print(f"# {set_name}: {n} x {dim} {metric}, M {args.m}, ef_construction "
          f"{args.ef_construction}, {len(queries)} queries, k {args.k}, {threads} threads, "
          f"load {os.getloadavg()[0]:.1f}", file=table)
    daemon = emb = None
    try:
        try:
            with vectord.open(dir_a, threads=threads) as db:
                t0 = time.perf_counter()
                db.build("bench", base, metric=metric, m=args.m,
                         ef_construction=args.ef_construction)
                dt = time.perf_counter() - t0
            emit(dict(common, phase="embedded_build", seconds=round(dt, 3),
                      points_per_s=round(n / dt)),
                 f"build     embedded db.build: {n} points in {dt:.2f} s = "
                 f"{n / dt:,.0f} points/s")
            shutil.copytree(dir_a, dir_b)  # closed: the same bytes, so the same graph served
            daemon = Daemon(args.vectord, dir_b, threads, tmp / "serve.log")
            emb = vectord.open(dir_a, threads=threads)
            with vectord.Client(daemon.address, timeout=600) as cl:
                upsert_phase(args, cl, emb, base, metric, common, emit)
                qps = knn_phase(args, cl, emb, daemon.proc.pid, queries, truth, efs, min_s,
                                common, emit)
                latency_phase(args, cl, emb, queries, efs[0], common, emit)
            if args.thread_seconds > 0:  # at the largest ef: the engine's share of a call
                ef_t = max(efs)              # (without the GIL) dominates, as in real use
                one, two = (threads_throughput(emb, "bench", queries, args.k, ef_t, t,
                                               args.thread_seconds) for t in (1, 2))
                emit(dict(common, phase="embedded_threads", ef=ef_t, qps_1_thread=round(one),
                          qps_2_threads=round(two), ratio=round(two / one, 3)),
                     f"threads   embedded search ef {ef_t}, one query per call: 1 Python "
                     f"thread "
                     f"{one:,.0f}/s, 2 threads {two:,.0f}/s = {two / one:.2f}x")
        finally:
            if emb is not None:
                emb.close()
            if daemon is not None:
                daemon.stop()
        if not args.no_inprocess:
            same_graph(args, dir_a, threads, queries, efs, min_s, common, emit)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_inprocess:
        inprocess(args, threads, metric, base, queries, truth, qps, common, emit)


def upsert_phase(args, cl, emb, base, metric, common, emit):
    n = min(args.upsert_max, len(base))
    if n == 0:
        return
    ids = np.arange(n, dtype=np.uint64)
    rates = {}
    for i, (side, db) in enumerate((("client", cl), ("embedded", emb), ("embedded", emb),
                                    ("client", cl))):
        db.create_collection(f"up{i}", dim=base.shape[1], metric=metric, m=args.m,
                             ef_construction=args.ef_construction)
        t0 = time.perf_counter()
        written = db.upsert(f"up{i}", ids, base[:n], batch_size=args.batch_size)
        rates.setdefault(side, []).append(n / (time.perf_counter() - t0))
        assert written == n and db.count(f"up{i}") == n
        db.drop_collection(f"up{i}")
    c, e = (statistics.mean(rates[s]) for s in ("client", "embedded"))
    emit(dict(common, phase="upsert", points=n, batch_size=args.batch_size,
              client_points_per_s=round(c), embedded_points_per_s=round(e),
              client_over_embedded=round(c / e, 3)),
         f"upsert    {n} points, batches of {args.batch_size}, durable: client "
         f"{c:,.0f} points/s, embedded {e:,.0f} points/s, client / embedded {c / e:.0%}")


def knn_phase(args, cl, emb, daemon_pid, queries, truth, efs, min_s, common, emit):
    qps = {}
    nq = len(queries)
    for ef in efs:
        got = [db.knn("bench", queries, k=args.k, ef=ef)[0] for db in (cl, emb)]  # warm
        r_c, r_e = recall(got[0], truth), recall(got[1], truth)
        (t_c, cpu_c), (t_e, cpu_e) = alternate(
            [(lambda: cl.knn("bench", queries, k=args.k, ef=ef), (daemon_pid,)),
             (lambda: emb.knn("bench", queries, k=args.k, ef=ef), ())], args.runs, min_s)
        q_c, q_e = nq / t_c, nq / t_e
        u_c, u_e = cpu_c / nq * 1e6, cpu_e / nq * 1e6  # CPU microseconds per query
        qps[ef] = (q_c, q_e)
        emit(dict(common, phase="knn", ef=ef, qps_client=round(q_c), qps_embedded=round(q_e),
                  recall_client=r_c, recall_embedded=r_e, client_over_embedded=round(q_c / q_e, 3),
                  cpu_us_per_query_client=round(u_c, 2), cpu_us_per_query_embedded=round(u_e, 2)),
             f"knn       ef {ef:4d}: client {q_c:9,.0f} QPS, embedded {q_e:9,.0f} QPS, "
             f"client / embedded {q_c / q_e:4.0%}  recall@{args.k} {r_c:.4f} / {r_e:.4f}; "
             f"CPU us/query {u_c:.1f} / {u_e:.1f}")
    return qps


def latency_phase(args, cl, emb, queries, ef, common, emit):
    nq = min(args.latency_queries, len(queries))
    lat = {"client": [], "embedded": []}
    for i in range(nq):
        for side, db in (("client", cl), ("embedded", emb)) if i % 2 else \
                (("embedded", emb), ("client", cl)):
            t0 = time.perf_counter()
            db.search("bench", queries[i], k=args.k, ef=ef, with_payload=False)
            lat[side].append(time.perf_counter() - t0)
    p = {s: (np.percentile(np.array(v) * 1e6, 50), np.percentile(np.array(v) * 1e6, 99))
         for s, v in lat.items()}
    emit(dict(common, phase="search_latency", ef=ef, queries=nq,
              client_p50_us=round(p["client"][0], 1), client_p99_us=round(p["client"][1], 1),
              embedded_p50_us=round(p["embedded"][0], 1),
              embedded_p99_us=round(p["embedded"][1], 1)),
         f"search    ef {ef:4d}, one query per call: client p50 {p['client'][0]:.0f} us "
         f"p99 {p['client'][1]:.0f} us, embedded p50 {p['embedded'][0]:.0f} us p99 "
         f"{p['embedded'][1]:.0f} us ({nq} calls each)")


def write_vecs(path, rows, dtype):
    rows = np.ascontiguousarray(rows, dtype=dtype)
    rec = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=dtype)
    rec[:, 0] = np.array(rows.shape[1], dtype="<i4").view(dtype)
    rec[:, 1:] = rows
    rec.tofile(path)


def same_graph(args, dir_a, threads, queries, efs, min_s, common, emit):
    """Embedded knn against the engine alone on the very graph it searched (directory A):
    build/bench-embed runs the same queries through vd_engine_read on the module's pool
    ("engine": the embedded path without Python) and through bench-index's loop over the
    collection's index ("index"). Runs alternate between a freshly opened handle and one
    bench-embed process (A B B A ...), as the two cannot hold A at once."""
    qfile = dir_a.parent / "query.fvecs"
    write_vecs(qfile, queries, "<f4")
    nq = len(queries)
    got = {ef: {"embedded": [], "engine": [], "index": []} for ef in efs}
    cpu = {ef: {"embedded": [], "engine": [], "index": []} for ef in efs}
    cmd = [args.bench_embed, "--open", str(dir_a), "--collection", "bench", "--queries",
           str(qfile), "--ef", ",".join(map(str, efs)), "--k", str(args.k), "--threads",
           str(threads), "--runs", "1", "--min-pass-ms", str(int(args.min_pass_ms)), "--json"]
    for r in range(args.runs):
        for side in ("embedded", "driver") if r % 2 == 0 else ("driver", "embedded"):
            if side == "embedded":
                with vectord.open(dir_a, threads=threads) as db:
                    for ef in efs:
                        call = lambda: db.knn("bench", queries, k=args.k, ef=ef)  # noqa: E731
                        call()  # warm
                        t, c = timed_pass(call, min_s)
                        got[ef]["embedded"].append(nq / t)
                        cpu[ef]["embedded"].append(c / nq * 1e6)
                continue
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            for row in (json.loads(line) for line in out.splitlines()):
                for way in ("engine", "index"):
                    got[row["ef"]][way].append(row[f"qps_{way}"])
                    cpu[row["ef"]][way].append(row[f"cpu_us_{way}"])
    for ef in efs:
        q = {w: statistics.median(v) for w, v in got[ef].items()}
        u = {w: statistics.mean(v) for w, v in cpu[ef].items()}
        emit(dict(common, phase="same_graph", ef=ef, qps_embedded=round(q["embedded"]),
                  qps_engine=round(q["engine"]), qps_index=round(q["index"]),
                  embedded_over_engine=round(q["embedded"] / q["engine"], 3),
                  embedded_over_index=round(q["embedded"] / q["index"], 3),
                  cpu_us_per_query_embedded=round(u["embedded"], 2),
                  cpu_us_per_query_engine=round(u["engine"], 2),
                  cpu_us_per_query_index=round(u["index"], 2)),
             f"same-graph ef {ef:4d}: embedded {q['embedded']:9,.0f} QPS, engine "
             f"{q['engine']:9,.0f}, index {q['index']:9,.0f}; embedded / index "
             f"{q['embedded'] / q['index']:4.0%}, embedded / engine "
             f"{q['embedded'] / q['engine']:4.0%}; CPU us/query {u['embedded']:.1f} / "
             f"{u['engine']:.1f} / {u['index']:.1f}")


def inprocess(args, threads, metric, base, queries, truth, qps, common, emit):
    """The same vectors, queries, ef and threads in process (bench-index, vectord only), run
    once the daemon and the handle are gone."""
    tmp = Path(tempfile.mkdtemp(prefix="vectord-bench-client-", dir=args.tmp)) / f"set-{metric}"
    tmp.mkdir()
    try:
        write_vecs(tmp / "base.fvecs", base, "<f4")
        write_vecs(tmp / "query.fvecs", queries, "<f4")
        write_vecs(tmp / "gt.ivecs", truth.astype("<i4"), "<i4")
        cmd = [args.bench_index, "--data", str(tmp), "--systems", "vectord", "--m",
               str(args.m), "--ef-construction", str(args.ef_construction), "--ef", args.ef,
               "--k", str(args.k), "--runs", str(args.runs), "--threads", str(threads),
               "--min-pass-ms", str(int(args.min_pass_ms)), "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    for row in (json.loads(line) for line in out.splitlines()):
        ef = row["ef"]
        if ef not in qps:
            continue
        q_c, q_e = qps[ef]
        inp = row["qps_all"]
        emit(dict(common, phase="inprocess", ef=ef, qps_inprocess=round(inp),
                  recall_inprocess=row["recall_at_10"], qps_client=round(q_c),
                  qps_embedded=round(q_e), embedded_over_inprocess=round(q_e / inp, 3),
                  client_over_inprocess=round(q_c / inp, 3)),
             f"in-proc   ef {ef:4d}: {inp:9,.0f} QPS  recall@10 {row['recall_at_10']:.4f}; "
             f"embedded / in-process {q_e / inp:4.0%}, client / in-process {q_c / inp:4.0%}")


if __name__ == "__main__":
    main()
