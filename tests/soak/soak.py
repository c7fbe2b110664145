#!/usr/bin/env python3
"""`make soak`: a long mixed load against one daemon, with backups and restarts.

Many client threads (one vectord.Client each) upsert, delete, search and get, while the main
thread takes backups (`vectord backup`, each checked with `vectord check`) and restarts the
daemon, alternating a clean SIGTERM and a kill -9. Each thread owns the ids with
id % threads == its number, so it knows exactly what the server must hold: after an
acknowledged upsert the point with that version, after an acknowledged delete nothing, and
after a call that broke with the connection (a restart) either the old or the new state -
the next read decides which, and anything else is a lost or corrupted write. After every
restart each thread reads back all of its ids.

Asserts: zero acknowledged writes lost; no errors but the expected ones (Unavailable while
the daemon restarts); `vectord check` passes on every backup and at the end; resident memory
and open descriptors stop growing (the daemon's figures sampled just before each restart, a
steady point of every process life: the last third's peak may not exceed the middle third's
by more than 25 % + 16 MiB, nor 8 descriptors). Prints a table of operations by kind,
acknowledged writes, lost writes, RSS and fds at start, middle and end. Exit status 0 only
when every assertion holds. Traffic goes to 127.0.0.1 only; every loop is bounded by time.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "client" / "python"))
import vectord  # noqa: E402

ABSENT = ("absent", 0)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vector(i, v, dim):
    return np.random.default_rng(i * 1_000_003 + v).standard_normal(dim).astype(np.float32)


class Daemon:
    def __init__(self, binary, data, log):
        self.binary, self.data, self.log = binary, data, log
        self.port = free_port()
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--data", str(self.data), "--listen", self.address,
                 "--threads", "2"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"soak: the daemon exited with {self.proc.returncode} at start")
            try:
                vectord.Client(self.address, timeout=5).close()
                return
            except vectord.Unavailable:
                time.sleep(0.05)
        raise SystemExit("soak: the daemon did not start within 120 s")

    def stop(self, sig):
        self.proc.send_signal(sig)
        rc = self.proc.wait(120)
        if sig == signal.SIGTERM and rc != 0:
            raise SystemExit(f"soak: the daemon exited with {rc} on SIGTERM")
        self.proc = None

    def sample(self):
        """(RSS bytes, open fds) of the running daemon."""
        pid = self.proc.pid
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Worker(threading.Thread):
    """One client thread and the exact model of the ids it owns."""

    def __init__(self, idx, args, address, stop, stats):
        super().__init__(daemon=True)
        self.idx, self.args, self.address, self.stop_ev = idx, args, address, stop
        self.ids = np.arange(idx, args.ids, args.clients, dtype=np.uint64)
        # id -> set of states the server may hold: (present, version) or ABSENT
        self.model = {int(i): {ABSENT} for i in self.ids}
        self.version = 0
        self.stats = stats
        self.lost, self.unexpected = [], []
        self.verify_pending = threading.Event()
        self.rng = random.Random(idx)
        self.current = "get"

    def count(self, kind, ok):
        with self.stats["lock"]:
            self.stats[kind][0 if ok else 1] += 1

    def observe(self, i, state):
        """A read saw `state` for id i: it must be one the model allows."""
        if state in self.model[i]:
            self.model[i] = {state}
            return
        self.lost.append((i, sorted(self.model[i]), state))
        self.model[i] = {state}

    def verify(self, db, ids):
        recs = db.get("soak", ids, with_vectors=True)
        for i, r in zip(ids, recs):
            i = int(i)
            state = ABSENT if r is None else ("present", r.payload["v"])
            if r is not None and (r.payload["id"] != i or not np.array_equal(
                    r.vector, vector(i, state[1], self.args.dim))):
                self.lost.append((i, "payload or vector differs", r.payload))
            self.observe(i, state)

    def one(self, db):
        op = self.rng.choices(["upsert", "delete", "search", "get"], [30, 10, 35, 25])[0]
        self.current = op
        if op == "upsert":
            ids = self.rng.sample(list(self.ids), self.rng.randint(1, 64))
            self.version += 1
            v = self.version
            new = ("present", v)
            try:
                db.upsert("soak", ids, np.stack([vector(int(i), v, self.args.dim) for i in ids]),
                          payloads=[{"id": int(i), "v": v} for i in ids])
            except vectord.Unavailable:
                for i in ids:
                    self.model[int(i)].add(new)
                raise
            for i in ids:
                self.model[int(i)] = {new}
        elif op == "delete":
            ids = self.rng.sample(list(self.ids), self.rng.randint(1, 16))
            try:
                db.delete("soak", ids)
            except vectord.Unavailable:
                for i in ids:
                    self.model[int(i)].add(ABSENT)
                raise
            for i in ids:
                self.model[int(i)] = {ABSENT}
        elif op == "search":
            q = np.random.default_rng(self.rng.getrandbits(32)).standard_normal(
                (self.rng.randint(1, 8), self.args.dim)).astype(np.float32)
            ids, dist = db.knn("soak", q, k=10)
            ok = ((ids == vectord.PAD_ID) | (ids < self.args.ids)).all() and \
                (dist[:, 1:] >= dist[:, :-1]).all()  # inf padding compares equal
            if not ok:
                self.unexpected.append(f"search returned ids {ids[0]} distances {dist[0]}")
        else:
            self.verify(db, self.rng.sample(list(self.ids), self.rng.randint(1, 32)))
        return op

    def run(self):
        db = None
        while not self.stop_ev.is_set():
            try:
                if db is None:
                    db = vectord.Client(self.address, timeout=30)
                if self.verify_pending.is_set():
                    for lo in range(0, len(self.ids), 1024):
                        self.verify(db, self.ids[lo:lo + 1024])
                    self.verify_pending.clear()
                    continue
                self.count(self.one(db), True)
            except vectord.Unavailable:  # the daemon is restarting: expected
                self.count(self.current, False)
                with self.stats["lock"]:
                    self.stats["unavailable"] += 1
                time.sleep(0.1)
            except vectord.Error as e:
                self.unexpected.append(repr(e))
                time.sleep(0.1)
        if db is not None:
            db.close()


def check(binary, data):
    r = subprocess.run([binary, "check", "--data", str(data)], capture_output=True, text=True,
                       timeout=600)
    return r.returncode == 0, (r.stdout + r.stderr).strip().splitlines()[-1:]


def mib(b):
    return f"{b / (1 << 20):.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--bin", default=str(REPO / "build" / "vectord"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--ids", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vd-soak-", dir=args.tmp))
    daemon = Daemon(args.bin, root / "data", root / "serve.log")
    duration = args.minutes * 60
    restart_every = max(15.0, duration / 30)
    backup_every = restart_every / 2
    daemon.start()
    with vectord.Client(daemon.address) as db:
        db.create_collection("soak", dim=args.dim, metric="l2")
    stats = {"lock": threading.Lock(), "unavailable": 0,
             **{k: [0, 0] for k in ("upsert", "delete", "search", "get")}}
    stop = threading.Event()
    workers = [Worker(i, args, daemon.address, stop, stats) for i in range(args.clients)]
    for w in workers:
        w.start()
    samples, events = [], {"clean": 0, "kill": 0, "backups": 0, "bad_backups": []}
    t0 = time.monotonic()
    next_restart, next_backup, n_restart = t0 + restart_every, t0 + backup_every, 0
    print(f"soak: {args.minutes:g} min, {args.clients} clients, {args.ids} ids x {args.dim} "
          f"dims, a restart every {restart_every:.0f} s, data in {root}", flush=True)
    while time.monotonic() - t0 < duration:
        time.sleep(1)
        now = time.monotonic()
        if now >= next_backup:
            bk = root / f"backup-{events['backups']}"
            r = subprocess.run([args.bin, "backup", "--data", str(daemon.data), "--to", str(bk)],
                               capture_output=True, text=True, timeout=600)
            ok, last = check(args.bin, bk) if r.returncode == 0 else (False, [r.stderr])
            events["backups"] += 1
            if not ok:
                events["bad_backups"].append(last)
            shutil.rmtree(bk, ignore_errors=True)
            next_backup = now + restart_every
        if now >= next_restart:
            samples.append((now - t0,) + daemon.sample())
            sig = signal.SIGTERM if n_restart % 2 == 0 else signal.SIGKILL
            daemon.stop(sig)
            events["clean" if sig == signal.SIGTERM else "kill"] += 1
            n_restart += 1
            daemon.start()
            for w in workers:
                w.verify_pending.set()
            next_restart = time.monotonic() + restart_every
            el = time.monotonic() - t0
            print(f"  {el / 60:5.1f} min: restart {n_restart} ({sig.name}), RSS "
                  f"{mib(samples[-1][1])} MiB, {samples[-1][2]} fds", flush=True)
    samples.append((time.monotonic() - t0,) + daemon.sample())
    for w in workers:
        w.verify_pending.set()
    time.sleep(5)  # let every thread read its ids back once more
    stop.set()
    for w in workers:
        w.join(120)
    daemon.stop(signal.SIGTERM)
    final_ok, final_last = check(args.bin, daemon.data)

    lost = [x for w in workers for x in w.lost]
    unexpected = [x for w in workers for x in w.unexpected]
    acked = stats["upsert"][0] + stats["delete"][0]
    third = max(1, len(samples) // 3)
    mid, last = samples[third:2 * third] or samples, samples[2 * third:] or samples
    rss_mid, rss_end = max(s[1] for s in mid), max(s[1] for s in last)
    fds_mid, fds_end = max(s[2] for s in mid), max(s[2] for s in last)
    rss_ok = rss_end <= rss_mid * 1.25 + (16 << 20)
    fds_ok = fds_end <= fds_mid + 8
    start_s, mid_s, end_s = samples[0], samples[len(samples) // 2], samples[-1]

    print(f"\nsoak summary: {(time.monotonic() - t0) / 60:.1f} min, {args.clients} clients, "
          f"{events['clean']} clean restarts, {events['kill']} kill -9, {events['backups']} "
          f"backups ({len(events['bad_backups'])} failed their check)")
    print(f"{'operation':<12}{'ok':>12}{'failed':>10}  (failed: Unavailable during restarts)")
    for k in ("upsert", "delete", "search", "get"):
        print(f"{k:<12}{stats[k][0]:>12}{stats[k][1]:>10}")
    print(f"Unavailable errors (expected, while restarting): {stats['unavailable']}")
    print(f"acknowledged writes: {acked}")
    print(f"lost: {len(lost)}")
    print(f"unexpected errors: {len(unexpected)}")
    print(f"{'':<14}{'start':>10}{'middle':>10}{'end':>10}")
    print(f"{'minute':<14}{start_s[0] / 60:>10.1f}{mid_s[0] / 60:>10.1f}{end_s[0] / 60:>10.1f}")
    print(f"{'RSS (MiB)':<14}{mib(start_s[1]):>10}{mib(mid_s[1]):>10}{mib(end_s[1]):>10}")
    print(f"{'open fds':<14}{start_s[2]:>10}{mid_s[2]:>10}{end_s[2]:>10}")
    print(f"RSS peak middle third {mib(rss_mid)} MiB, last third {mib(rss_end)} MiB: "
          f"{'stopped growing' if rss_ok else 'GROWING'}; fds {fds_mid} -> {fds_end}: "
          f"{'stopped growing' if fds_ok else 'GROWING'}")
    print(f"final vectord check: {'ok' if final_ok else final_last}")
    for x in lost[:5]:
        print("  lost:", x)
    for x in unexpected[:5]:
        print("  unexpected:", x)
    for x in events["bad_backups"][:3]:
        print("  backup check:", x)
    good = (not lost and not unexpected and rss_ok and fds_ok and final_ok
            and not events["bad_backups"])
    if good:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"soak FAILED; data and log kept in {root}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
