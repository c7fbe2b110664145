#!/usr/bin/python3
"""bench_ids.py: what string ids cost, and how fast a collection scrolls, through the Python
client over loopback TCP.

Phases, each printed on its own (and with --json one JSON object per result line on stdout,
the table then going to stderr):
  1. ids: the same vectors into two collections of one daemon, one of integer ids and one
     of string ids ("corpus/doc-<i>.md#chunk-<j>", 28 bytes), every measurement alternating
     between the two so that noise falls on both alike: durable upsert points/s (10k-point
     calls, alternating); then knn QPS at each ef on two collections `vectord build` made
     with one thread and its fixed seed - the same graph, so only naming the hits differs -
     (median of --runs alternating passes, recall@k against exact neighbours); and the
     ratios str / int (targets: search >= 0.9, upsert >= 0.8). Then what string ids add
     per point: on disk, the sids and skeys tables of a compacted `vectord backup` (`mdb_stat -a`); in memory, no heap (nothing is
     loaded), and the LMDB pages naming hits maps (RSS after the str passes minus after the
     int ones).
  2. scroll: --scroll-n points (small vectors: the walk does not read them) built offline
     with `vectord build` (.npy ids, then .txt string ids), served, and walked with
     Client.iter_points (no vectors, no payloads) -> points/s for both id types (target
     >= 200k points/s).

Usage:
  PYTHONPATH=client/python /usr/bin/python3 bench/bench_ids.py --synthetic 100000x128
  PYTHONPATH=client/python /usr/bin/python3 bench/bench_ids.py --phases scroll --scroll-n 1000000
Timings on a shared machine are noisy: compare the ratios, taken in one run.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vectord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_client import (Daemon, cpu_seconds, exact_top, read_fvecs,  # noqa: E402
                          recall)  # (same folder)

REPO = Path(__file__).resolve().parents[1]


class Served(Daemon):
    """`vectord serve` on a given data directory, and its resident memory."""

    def __init__(self, binary, data, threads=0):
        super().__init__(binary, data, threads, f"{data}.log")

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def str_ids(n):
    return [f"corpus/doc-{i // 8:06d}.md#chunk-{i % 8}" for i in range(n)]


def table_bytes(data):
    """Bytes of each LMDB table of a data directory (pages x page size, `mdb_stat -a`)."""
    out = subprocess.run(["mdb_stat", "-a", str(data)], check=True, capture_output=True,
                         text=True).stdout
    sizes, name = {}, None
    for line in out.splitlines():
        if line.startswith("Status of "):
            name = line[len("Status of "):].strip()
            sizes[name] = 0
        elif name and ("pages:" in line):
            sizes[name] += int(line.split(":")[1]) * 4096
    return sizes


def phase_ids(args, base, queries, truth, metric, common, emit, tmp):
    """Both collections in one daemon, every measurement interleaved int / str, so that load
    from other processes falls on both alike."""
    n, dim = base.shape
    kinds = {"int": np.arange(n, dtype=np.uint64), "str": str_ids(n)}
    data = Path(tmp) / "data-ids"
    srv = Served(args.vectord, data, args.threads)
    up = {"int": 0.0, "str": 0.0}
    try:
        with vectord.Client(srv.address, timeout=300) as db:
            for kind in kinds:
                db.create_collection(kind, dim=dim, metric=metric, m=args.m,
                                     ef_construction=args.ef_construction, id_type=kind)
            step = 10_000
            for lo in range(0, n, step):
                for kind, ids in kinds.items():
                    t0 = time.perf_counter()
                    db.upsert(kind, ids[lo:lo + step], base[lo:lo + step],
                              batch_size=args.batch_size)
                    up[kind] += time.perf_counter() - t0
            assert db.count("int") == n and db.count("str") == n
    finally:
        srv.stop()
    for kind in kinds:
        emit(dict(common, phase="ids_upsert", id_type=kind, points_per_s=round(n / up[kind])),
             f"upsert    {kind:3s} ids: {n / up[kind]:9,.0f} points/s (durable)")
    # Searches compare one graph: `vectord build` with one fixed seed and one thread builds
    # the same graph for both (string ids: under the row numbers, as the int ids here), so
    # only naming the hits differs. Upserted collections have seeds of their own, and their
    # graphs differ by a few % in search cost either way.
    built = Path(tmp) / "data-built"
    np.save(Path(tmp) / "base.npy", base)
    np.save(Path(tmp) / "rows.npy", kinds["int"])
    with open(Path(tmp) / "rows.txt", "w") as f:
        f.writelines(x + "\n" for x in kinds["str"])
    for kind, ids_file in (("int", "rows.npy"), ("str", "rows.txt")):
        subprocess.run([args.vectord, "build", "--data", str(built), "--collection", kind,
                        "--input", str(Path(tmp) / "base.npy"), "--ids",
                        str(Path(tmp) / ids_file), "--metric", metric, "--m", str(args.m),
                        "--ef-construction", str(args.ef_construction), "--threads",
                        str(args.build_threads)], check=True, capture_output=True)
    srv = Served(args.vectord, built, args.threads)
    try:
        with vectord.Client(srv.address, timeout=300) as db:
            rss = {"start": srv.rss_bytes()}
            qps = {}
            row = {s: i for i, s in enumerate(kinds["str"])}
            cpu = {}
            for ef in (int(x) for x in args.ef.split(",")):
                times = {"int": [], "str": []}
                found = {}
                for kind in kinds:
                    db.knn(kind, queries[:100], k=args.k, ef=ef)  # warm
                for _ in range(args.runs):
                    for kind in kinds:
                        t0, c0 = time.perf_counter(), cpu_seconds([srv.proc.pid])
                        found[kind], _ = db.knn(kind, queries, k=args.k, ef=ef)
                        times[kind].append(time.perf_counter() - t0)
                        cpu[(kind, ef)] = cpu.get((kind, ef), 0.0) + \
                            cpu_seconds([srv.proc.pid]) - c0
                        rss.setdefault(kind, srv.rss_bytes())  # int first: before any naming
                found["str"] = np.array([[row.get(s, -1) for s in r] for r in found["str"]])
                for kind in kinds:
                    q = len(queries) / statistics.median(times[kind])
                    r = recall(found[kind], truth)
                    qps[(kind, ef)] = q
                    emit(dict(common, phase="ids_knn", id_type=kind, ef=ef, k=args.k,
                              qps=round(q), recall=r),
                         f"knn       {kind:3s} ids, ef {ef:4d}: {q:9,.0f} QPS  recall@{args.k} "
                         f"{r:.4f}")
    finally:
        srv.stop()
    emit(dict(common, phase="ids_upsert_ratio", str_over_int=round(up["int"] / up["str"], 3)),
         f"ratio     upsert str / int = {up['int'] / up['str']:.2f} (target >= 0.8)")
    for ef in (int(x) for x in args.ef.split(",")):
        ratio = qps[("str", ef)] / qps[("int", ef)]
        # CPU seconds (daemon + client) per query: less sensitive to other processes than
        # wall time, in ticks of 10 ms
        per_q = {kind: cpu[(kind, ef)] / (args.runs * len(queries)) * 1e6 for kind in kinds}
        emit(dict(common, phase="ids_knn_ratio", ef=ef, str_over_int=round(ratio, 3),
                  cpu_us_per_query_int=round(per_q["int"], 1),
                  cpu_us_per_query_str=round(per_q["str"], 1),
                  cpu_int_over_str=round(per_q["int"] / per_q["str"], 3)),
             f"ratio     knn ef {ef:4d} str / int = {ratio:.2f} (target >= 0.9); CPU per query "
             f"(daemon + client) {per_q['int']:.0f} us int, {per_q['str']:.0f} us str: "
             f"{per_q['int'] / per_q['str']:.2f}")
    copy = Path(tmp) / "data-ids-copy"
    subprocess.run([args.vectord, "backup", "--data", str(data), "--to", str(copy)], check=True,
                   capture_output=True)
    tables = table_bytes(copy)
    extra = tables.get("sids", 0) + tables.get("skeys", 0)
    avg_len = sum(len(x.encode()) for x in kinds["str"]) / n
    mapped = rss["str"] - rss["int"]
    emit(dict(common, phase="ids_bytes", avg_id_bytes=round(avg_len, 1),
              sids_bytes=tables.get("sids", 0), skeys_bytes=tables.get("skeys", 0),
              extra_disk_per_point=round(extra / n, 1), extra_heap_per_point=0,
              rss_after_int_knn=rss["int"], rss_after_str_knn=rss["str"],
              extra_mapped_per_point=round(mapped / n, 1)),
         f"bytes     ids of {avg_len:.1f} bytes: +{extra / n:.0f} B/point on disk (sids "
         f"{tables.get('sids', 0) / 2**20:.1f} MiB + skeys {tables.get('skeys', 0) / 2**20:.1f} "
         f"MiB, compacted); in memory no heap, +{mapped / n:.0f} B/point of LMDB pages mapped "
         f"after naming every hit of the knn passes (RSS {rss['int'] / 2**20:.0f} -> "
         f"{rss['str'] / 2**20:.0f} MiB)")


def phase_scroll(args, common, emit, tmp):
    n = args.scroll_n
    dim = 4
    rng = np.random.default_rng(7)
    np.save(Path(tmp) / "sv.npy", rng.standard_normal((n, dim)).astype(np.float32))
    np.save(Path(tmp) / "sids.npy", np.arange(n, dtype=np.uint64) * 3)
    with open(Path(tmp) / "sids.txt", "w") as f:
        f.writelines(s + "\n" for s in str_ids(n))
    for kind, ids_file in (("int", "sids.npy"), ("str", "sids.txt")):
        data = Path(tmp) / f"scroll-{kind}"
        t0 = time.perf_counter()
        subprocess.run([args.vectord, "build", "--data", str(data), "--collection", "s",
                        "--input", str(Path(tmp) / "sv.npy"), "--ids", str(Path(tmp) / ids_file),
                        "--m", "8", "--ef-construction", "32"], check=True, capture_output=True)
        build_s = time.perf_counter() - t0
        srv = Served(args.vectord, data, args.threads)
        try:
            with vectord.Client(srv.address, timeout=300) as db:
                for _ in db.iter_points("s", batch=args.scroll_batch):  # warm the page cache
                    pass
                best = None
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    seen = sum(1 for _ in db.iter_points("s", batch=args.scroll_batch,
                                                         with_payload=False))
                    dt = time.perf_counter() - t0
                    assert seen == n, (seen, n)
                    best = dt if best is None else min(best, dt)
        finally:
            srv.stop()
        emit(dict(common, phase="scroll", id_type=kind, n=n, batch=args.scroll_batch,
                  seconds=round(best, 3), points_per_s=round(n / best), build_s=round(build_s, 1)),
             f"scroll    {kind:3s} ids: {n:,} points in {best:.2f} s = {n / best:,.0f} points/s "
             f"(iter_points batch {args.scroll_batch}, no vectors; best of {args.runs})")


def main():
    ap = argparse.ArgumentParser(description="string ids and scrolling through the client")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--data", help="folder with base.fvecs, query.fvecs (metric from the "
                                    "-l2/-cosine/-ip suffix)")
    src.add_argument("--synthetic", default="100000x128", help="NxD seeded gaussian data (l2)")
    ap.add_argument("--phases", default="ids,scroll")
    ap.add_argument("--max-base", type=int, default=None)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="64,128")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--scroll-n", type=int, default=1_000_000)
    ap.add_argument("--scroll-batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="daemon --threads (default cores)")
    ap.add_argument("--build-threads", type=int, default=1,
                    help="vectord build --threads for the search comparison (1: the two "
                         "graphs are identical)")
    ap.add_argument("--vectord", default=os.environ.get("VECTORD_BIN",
                                                        str(REPO / "build" / "vectord")))
    ap.add_argument("--tmp", default=None, help="where the data directories go")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    table = sys.stderr if args.json else sys.stdout

    def emit(obj, line):
        print(line, file=table, flush=True)
        if args.json:
            print(json.dumps(obj), flush=True)

    tmp = tempfile.mkdtemp(prefix="vectord-bench-ids-", dir=args.tmp)
    version = subprocess.run([args.vectord, "--version"], capture_output=True, text=True)
    common = {"bench": "ids", "server": version.stdout.strip()}
    try:
        phases = args.phases.split(",")
        if "ids" in phases:
            if args.data:
                folder = Path(args.data)
                base = read_fvecs(folder / "base.fvecs", args.max_base)
                queries = read_fvecs(folder / "query.fvecs", args.queries)
                metric = next((m for m in ("l2", "cosine", "ip")
                               if folder.name.endswith("-" + m)), "l2")
                set_name = folder.name + (f"[:{len(base)}]" if args.max_base else "")
            else:
                n, d = (int(x) for x in args.synthetic.lower().split("x"))
                rng = np.random.default_rng(100)
                centers = rng.standard_normal((64, d)).astype(np.float32) * 2
                base = (centers[rng.integers(0, 64, n)]
                        + rng.standard_normal((n, d))).astype(np.float32)
                queries = (centers[rng.integers(0, 64, args.queries)]
                           + rng.standard_normal((args.queries, d))).astype(np.float32)
                metric, set_name = "l2", f"synthetic-{n}x{d}"
            ids_common = dict(common, set=set_name, n=len(base), dim=base.shape[1],
                              metric=metric, m=args.m, ef_construction=args.ef_construction)
            print(f"# {set_name}: {len(base)} x {base.shape[1]} {metric}, M {args.m}, "
                  f"ef_construction {args.ef_construction}, {len(queries)} queries, load "
                  f"{os.getloadavg()[0]:.1f}", file=table)
            truth = exact_top(base, queries, args.k, metric)
            phase_ids(args, base, queries, truth, metric, ids_common, emit, tmp)
        if "scroll" in phases:
            phase_scroll(args, common, emit, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
