"""A full disk, end to end: the daemon on a size-limited tmpfs, written until it is full.

Every acknowledged write survives (also a restart), the failing write gets RESOURCE_EXHAUSTED
naming the data directory, reads keep working, writes resume once space is freed, and
`vectord check` passes. Mounting needs root (CAP_SYS_ADMIN); without it the test is skipped
with a line saying so. (tests/unit/test_storage_growth.c covers the same at the storage level
with RLIMIT_FSIZE, which needs no privilege.)
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import vectord

from conftest import VECTORD_BIN, Daemon

BATCH = 500
DIM = 64


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip(f"disk-full test skipped: mounting a size-limited tmpfs needs root "
                    f"(running as uid {os.geteuid()})")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"disk-full test skipped: cannot mount a size-limited tmpfs: "
                    f"{r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def batch(b):
    ids = np.arange(b * BATCH, (b + 1) * BATCH, dtype=np.uint64)
    rng = np.random.default_rng(b)
    vecs = rng.standard_normal((BATCH, DIM)).astype(np.float32)
    payloads = [{"b": b, "i": i, "pad": "x" * 100} for i in range(BATCH)]
    return ids, vecs, payloads


def test_a_full_disk_loses_nothing_acknowledged(small_disk, tmp_path):
    data = small_disk / "data"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (6 << 20))  # room to free later
    d = Daemon(data, tmp_path / "serve.log").start()
    acked = []
    try:
        with vectord.Client(d.address, timeout=60, retries=0) as db:
            db.create_collection("full", dim=DIM, metric="l2")
            failure = None
            for b in range(400):
                ids, vecs, payloads = batch(b)
                try:
                    assert db.upsert("full", ids, vecs, payloads, batch_size=BATCH) == BATCH
                    acked.append(b)
                except vectord.ResourceExhausted as e:
                    failure = e
                    break
            assert failure is not None, "the 24 MiB disk never filled"
            msg = failure.message
            print(f"\ndisk full after {len(acked)} acknowledged batches "
                  f"({len(acked) * BATCH} points): RESOURCE_EXHAUSTED: {msg}")
            assert f"disk full in {data}" in msg and "nothing of this write was committed" in msg
            # reads go on, over exactly what was acknowledged
            assert db.count("full") == len(acked) * BATCH
            recs = db.get("full", [acked[-1] * BATCH + 7, 3])
            assert recs[0].payload["b"] == acked[-1] and recs[1].payload == {
                "b": 0, "i": 3, "pad": "x" * 100}
            ids, vecs, _ = batch(acked[-1])
            hits = db.search("full", vecs[0], k=1)
            assert hits[0].id == int(ids[0])
            with pytest.raises(vectord.ResourceExhausted, match="disk full"):
                db.upsert("full", *batch(len(acked))[:2])  # still full: refused again
            print(f"reads served: count {db.count('full')}, get, search; a second write: "
                  "RESOURCE_EXHAUSTED again")
            ballast.unlink()  # free space: writes resume
            b = len(acked)
            assert db.upsert("full", *batch(b)) == BATCH
            acked.append(b)
            print(f"after freeing 6 MiB: batch {b} acknowledged; {len(acked) * BATCH} points")
    finally:
        d.stop()
    r = subprocess.run([VECTORD_BIN, "check", "--data", str(data)], capture_output=True,
                       text=True, timeout=120)
    print(f"vectord check: exit {r.returncode}: {r.stdout.strip()}")
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
    d.start()
    try:
        with vectord.Client(d.address, timeout=60) as db:
            assert db.count("full") == len(acked) * BATCH
            for b in acked:  # every acknowledged point, vector and payload, after a restart
                ids, vecs, _ = batch(b)
                recs = db.get("full", ids)
                assert all(r is not None for r in recs), f"batch {b} lost"
                assert all(r.payload["b"] == b for r in recs)
                np.testing.assert_array_equal(np.stack([r.vector for r in recs]), vecs)
        print(f"after a restart: all {len(acked) * BATCH} acknowledged points present, "
              "vectors and payloads equal")
    finally:
        d.stop()
