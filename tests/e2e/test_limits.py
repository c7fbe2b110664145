"""One table of parameter limits, seen the same way through every entry point.

For each collection parameter (dim, m, ef_construction, ef_search) the ranges come from one
table (VD_PARAM_MAP in index/vd_index.h). This test reads the range `vectord build --help`
prints from that table and then, at the values just outside and at both ends of the range,
asks three entry points whether they accept it:

- `vectord build` (the CLI, checked before the input is read),
- `create_collection` from Python, served (the request decoder and the store) and embedded
  (vectord.open: the engine in process),
- a stored catalog record carrying the value (the decoder of stored data, through
  `vectord info`, which decodes the catalog and nothing else).

All three must give the same verdict for every probed value. 0 is not a value but "not
given" in a request (the wire cannot tell an explicit 0 apart), so it is probed separately:
requests take it as the default, the CLI refuses it (omit the flag instead), and a catalog
record (which always stores resolved values) calls it damage.

The catalog record is patched without knowing its layout: the collection is built with
distinctive values and each is found as the one little-endian u32 equal to it.
"""
import re
import struct
import subprocess

import lmdb
import numpy as np
import pytest

import vectord
from conftest import VECTORD_BIN as VECTORD

FLAGS = {"m": "--m", "ef_construction": "--ef-construction", "ef_search": "--ef-search"}
# Distinctive values to find each field in the stored record.
MARK = {"dim": 17, "m": 37, "ef_construction": 433, "ef_search": 1234}


def table_ranges():
    """{'m': (2, 128), ...} and dim, from the help texts the table generates."""
    text = subprocess.run([VECTORD, "build", "--help"], capture_output=True, text=True,
                          check=True).stdout
    out = {}
    for param, flag in FLAGS.items():
        m = re.search(re.escape(flag) + r" \S+\s+.*?(\d+)\.\.(\d+)", text)
        assert m, f"build --help does not quote the range of {flag}:\n{text}"
        out[param] = (int(m.group(1)), int(m.group(2)))
    return out


def probes(lo, hi):
    return sorted({v for v in (lo - 1, lo, hi, hi + 1) if v >= 1})


def build(tmp_path, tag, param, value):
    dim = value if param == "dim" else 4
    vec = tmp_path / f"v{tag}.npy"
    np.save(vec, np.random.default_rng(1).random((3, dim), dtype=np.float32))
    args = [VECTORD, "build", "--data", str(tmp_path / f"d{tag}"), "--collection", "c",
            "--input", str(vec)]
    if param != "dim":
        args += [FLAGS[param], str(value)]
    return subprocess.run(args, capture_output=True, text=True)


@pytest.fixture(scope="module")
def marked_dir(tmp_path_factory):
    """A data directory with one collection built with the MARK values."""
    d = tmp_path_factory.mktemp("limits")
    vec = d / "v.npy"
    np.save(vec, np.random.default_rng(2).random((5, MARK["dim"]), dtype=np.float32))
    subprocess.run([VECTORD, "build", "--data", str(d / "data"), "--collection", "c",
                    "--input", str(vec), "--m", str(MARK["m"]),
                    "--ef-construction", str(MARK["ef_construction"]),
                    "--ef-search", str(MARK["ef_search"])], check=True, capture_output=True)
    return d / "data"


def catalog_accepts(data_dir, param, value):
    """Writes `value` into the stored catalog record's `param` field; True if `vectord info`
    then opens the directory, False if it refuses the record as damaged."""
    env = lmdb.open(str(data_dir), max_dbs=16, subdir=True, lock=True)
    try:
        db = env.open_db(b"catalog", create=False)
        with env.begin(write=True, db=db) as txn:
            rec = bytearray(txn.get(b"c"))
            offs = [o for o in range(0, len(rec) - 3, 4)
                    if struct.unpack_from("<I", rec, o)[0] == MARK[param]]
            assert len(offs) == 1, f"{param}: {len(offs)} fields hold {MARK[param]}"
            original = bytes(rec)
            struct.pack_into("<I", rec, offs[0], value)
            txn.put(b"c", bytes(rec))
    finally:
        env.close()
    r = subprocess.run([VECTORD, "info", "--data", str(data_dir)], capture_output=True,
                       text=True)
    env = lmdb.open(str(data_dir), max_dbs=16, subdir=True, lock=True)
    try:
        with env.begin(write=True, db=env.open_db(b"catalog", create=False)) as txn:
            txn.put(b"c", original)
    finally:
        env.close()
    if r.returncode != 0:
        assert "invalid parameters" in r.stderr, r.stderr
    return r.returncode == 0


def create_accepts(db, name, param, value):
    kw = {"dim": 4}
    kw[param] = value
    try:
        db.create_collection(name, metric="l2", **kw)
    except vectord.InvalidArgument as e:
        assert param in str(e), str(e)
        return False
    db.drop_collection(name)
    return True


def test_every_entry_point_draws_the_same_boundaries(tmp_path, db, name, marked_dir):
    ranges = table_ranges()
    ranges["dim"] = (1, db.limits.max_dim)  # the server announces the table's max_dim
    verdicts = {}
    for param, (lo, hi) in ranges.items():
        for v in probes(lo, hi):
            b = build(tmp_path, f"{param}{v}", param, v).returncode == 0
            c = create_accepts(db, f"lim_{param}_{v}", param, v)
            s = catalog_accepts(marked_dir, param, v)
            verdicts[(param, v)] = (b, c, s)
            assert b == c == s, f"{param} {v}: build {b}, create {c}, catalog {s}"
            assert b == (lo <= v <= hi), f"{param} {v}: accepted {b}, range {lo}..{hi}"
    assert len(verdicts) == 13, sorted(verdicts)
    # Each parameter has its smallest refused / largest accepted value at the table's ends.
    for param, (lo, hi) in ranges.items():
        accepted = [v for (p, v), (b, _, _) in verdicts.items() if p == param and b]
        assert max(accepted) == hi and min(accepted) == lo


def test_zero_means_not_given(tmp_path, db, name, marked_dir):
    for param in ("m", "ef_construction", "ef_search"):
        assert build(tmp_path, f"z{param}", param, 0).returncode == 2  # omit the flag instead
        info = db.create_collection(f"lim0_{param}", dim=4, metric="l2", **{param: 0})
        assert getattr(info, param) > 0  # the table's default
        db.drop_collection(f"lim0_{param}")
        assert not catalog_accepts(marked_dir, param, 0)
    with pytest.raises(vectord.InvalidArgument, match="dim 0 is outside"):
        db.create_collection(f"{name}_dim", dim=0, metric="l2")
    assert not catalog_accepts(marked_dir, "dim", 0)
