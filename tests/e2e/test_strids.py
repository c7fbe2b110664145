"""String ids, scroll and set_payload, served (a Client of the real daemon) and embedded
(vectord.open): the API tests take the ``db`` fixture and run against both - round trips of
awkward ids (Unicode, 512 bytes, shared prefixes, ids that look like integers), the refusals
for ids of the wrong kind or shape (naming the row), knn's object array with None padding,
set_payload's merge and replace, scroll and iter_points for both id types (also while another
thread writes). The daemon's own: a kill -9 while a client writes string ids, and `vectord
build --ids FILE.txt` (the embedded ones are in test_embedded.py)."""
import contextlib
import random
import subprocess
import threading
import time

import numpy as np
import pytest

import vectord
from conftest import VECTORD_BIN

DIM = 8


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def vecs(seeds) -> np.ndarray:
    return np.stack([vec(s) for s in seeds])


AWKWARD = [
    "a.md#0", "a.md#1", "a.md#10", "a.md", "handbook.pdf#p12-3",
    "ünï©ødé ✓ 日本語 🚀", "7", "007", "18446744073709551615", "-1", "a\x00b", " lead",
    "q" * 512, "q" * 511 + "r", "q" * 510, "q" * 507, "é" * 256, "x",
]


def test_awkward_string_ids_round_trip(db, name):
    info = db.create_collection(name, dim=DIM, metric="l2", id_type="str")
    assert info.id_type == "str" and db.collection_info(name).id_type == "str"
    assert db.upsert(name, AWKWARD, vecs(range(len(AWKWARD))),
                     payloads=[{"row": i} for i in range(len(AWKWARD))]) == len(AWKWARD)
    got = db.get(name, AWKWARD + ["nope"])
    assert got[-1] is None
    for i, rec in enumerate(got[:-1]):
        assert rec.id == AWKWARD[i] and rec.payload == {"row": i}
        np.testing.assert_array_equal(rec.vector, vec(i))
    for i, ident in enumerate(AWKWARD):
        hit = db.search(name, vec(i), k=1)[0]
        assert hit.id == ident and hit.payload == {"row": i}
    assert [r.id for r in db.iter_points(name, batch=3)] == \
        sorted(AWKWARD, key=lambda s: s.encode())
    assert db.count(name) == len(AWKWARD)


def test_knn_returns_str_objects_padded_with_none(db, name):
    db.create_collection(name, dim=DIM, metric="l2", id_type="str")
    db.upsert(name, np.array(["b", "a", "c"]), vecs([0, 1, 2]))
    ids, dist = db.knn(name, vecs([1, 2]), k=5)
    assert ids.dtype == object and ids.shape == (2, 5)
    assert ids[0, 0] == "a" and ids[1, 0] == "c"
    assert sorted(ids[0, :3]) == ["a", "b", "c"]
    assert list(ids[:, 3:].ravel()) == [None] * 4 and np.isinf(dist[:, 3:]).all()
    # an int collection keeps its uint64 ids and 2**64-1 padding
    db.create_collection(name + "_i", dim=DIM, metric="l2")
    db.upsert(name + "_i", [5], vecs([5]))
    ids, _ = db.knn(name + "_i", vecs([5]), k=2)
    assert ids.dtype == np.uint64 and list(ids[0]) == [5, vectord.PAD_ID]


def test_ids_of_the_wrong_kind_or_shape_are_refused_naming_the_row(db, name):
    db.create_collection(name, dim=DIM, metric="l2", id_type="str")
    db.create_collection(name + "_i", dim=DIM, metric="l2")
    two = vecs([0, 1])
    cases = [
        (name, [1, 2], "collection %s has string ids; row 0 is an integer id (1)" % name),
        (name + "_i", ["a", "b"],
         "collection %s_i has integer ids; row 0 is a string id (\"a\")" % name),
        (name, ["a", 1], "ids[1] is 1; ids in one call are all str"),
        (name, [1, "a"], "ids[1] is 'a'; ids in one call are all integers or all str"),
        (name, ["ok", ""], "ids[1] is an empty string"),
        (name, ["ok", "y" * 513], "ids[1] is 513 bytes of UTF-8"),
        (name, ["ok", "\ud800"], "ids[1] is not valid UTF-8"),
        (name, ["ok", "ok"], "ids[1] 'ok' appears more than once (rows 0 and 1)"),
        (name, [b"a", b"b"], "string ids are str"),
    ]
    for coll, ids, msg in cases:
        with pytest.raises(vectord.InvalidArgument) as e:
            db.upsert(coll, ids, two)
        assert msg in str(e.value), (ids, str(e.value))
    with pytest.raises(vectord.InvalidArgument, match="row 0 is an integer id"):
        db.get(name, [3])
    with pytest.raises(vectord.InvalidArgument, match="row 0 is a string id"):
        db.delete(name + "_i", ["a"])
    assert db.count(name) == 0 and db.count(name + "_i") == 0
    with pytest.raises(vectord.InvalidArgument, match="id_type must be 'int' or 'str'"):
        db.create_collection(name + "_x", dim=DIM, id_type="uuid")


def test_delete_frees_an_id(db, name):
    db.create_collection(name, dim=DIM, metric="l2", id_type="str")
    db.upsert(name, ["keep", "gone"], vecs([1, 2]))
    assert db.delete(name, ["gone", "never"]) == 1
    assert [r and r.id for r in db.get(name, ["keep", "gone"])] == ["keep", None]
    assert [h.id for h in db.search(name, vec(2), k=5)] == ["keep"]
    db.upsert(name, ["gone"], vecs([3]))
    np.testing.assert_array_equal(db.get(name, ["gone"])[0].vector, vec(3))


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_set_payload_merges_or_replaces(db, name, id_type):
    db.create_collection(name, dim=DIM, metric="l2", id_type=id_type)
    ids = [1, 2, 3] if id_type == "int" else ["p1", "p2", "p3"]
    db.upsert(name, ids[:2], vecs([1, 2]), payloads=[{"a": 1, "b": {"x": [1]}}, None])
    missing = ids[2]
    assert db.set_payload(name, [ids[0], ids[1], missing],
                          [{"b": 2, "c": "t"}, {"c": 0.1}, {"z": 1}]) == 2
    got = db.get(name, ids)
    assert got[0].payload == {"a": 1, "b": 2, "c": "t"} and got[1].payload == {"c": 0.1}
    assert got[2] is None
    np.testing.assert_array_equal(got[0].vector, vec(1))  # vectors untouched
    assert db.set_payload(name, ids[:2], {"tag": "all"}) == 2  # one dict for every id
    assert [r.payload["tag"] for r in db.get(name, ids[:2])] == ["all", "all"]
    assert db.set_payload(name, ids[:2], [{"only": True}, None], merge=False) == 2
    got = db.get(name, ids[:2])
    assert got[0].payload == {"only": True} and got[1].payload is None
    assert db.set_payload(name, ids[:1], [None]) == 1  # merge with nothing: unchanged
    assert db.get(name, ids[:1])[0].payload == {"only": True}
    with pytest.raises(vectord.InvalidArgument, match="appears more than once"):
        db.set_payload(name, [ids[0], ids[0]], {"a": 1})
    with pytest.raises(vectord.InvalidArgument, match="payload 0 is a list"):
        db.set_payload(name, ids[:1], [[1]])
    with pytest.raises(vectord.NotFound):
        db.set_payload(name + "_none", ids[:1], {"a": 1})


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_scroll_pages_in_id_order(db, name, id_type):
    db.create_collection(name, dim=DIM, metric="l2", id_type=id_type)
    rng = random.Random(3)
    nums = rng.sample(range(10_000), 250)
    ids = nums if id_type == "int" else [f"doc{n}" for n in nums]
    db.upsert(name, ids, vecs(nums), payloads=[{"n": n} for n in nums])
    want = sorted(ids, key=(lambda s: s.encode()) if id_type == "str" else None)
    page = db.scroll(name, limit=100)
    assert isinstance(page, vectord.ScrollPage) and len(page.records) == 100
    seen, pages = [], 0
    cursor = None
    while True:
        page = db.scroll(name, limit=37, cursor=cursor, with_vectors=True)
        pages += 1
        for r in page.records:
            n = r.id if id_type == "int" else int(r.id[3:])
            assert r.payload == {"n": n}
            np.testing.assert_array_equal(r.vector, vec(n))
        seen += [r.id for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == want and pages == 7
    recs = list(db.iter_points(name, batch=1000, with_payload=False))
    assert [r.id for r in recs] == want and all(r.payload is None for r in recs)
    with pytest.raises(vectord.InvalidArgument, match="scroll: invalid cursor"):
        db.scroll(name, cursor=b"\x01\x00garbage-garbage")
    # a filtered walk: the matches only, in id order, across pages (some of them empty)
    pick = set(rng.sample(nums, 20)) | {10_001}
    n_of = (lambda i: i) if id_type == "int" else (lambda i: int(i[3:]))
    got = [r.id for r in db.iter_points(name, batch=3, filter={"n": {"$in": sorted(pick)}})]
    assert got == [i for i in want if n_of(i) in pick]
    page = db.scroll(name, limit=5, filter={"n": {"$gte": 10_000}})
    assert page.records == [] and page.next_cursor is None
    with pytest.raises(vectord.InvalidArgument, match=r"filter\.n: \$gte expects"):
        db.scroll(name, filter={"n": {"$gte": float("nan")}})
    with pytest.raises(vectord.InvalidArgument, match="limit must be at least 1"):
        db.scroll(name, limit=0)


def test_scroll_cursor_is_stale_after_the_collection_is_recreated(db, name):
    db.create_collection(name, dim=DIM, metric="l2", id_type="str")
    db.upsert(name, ["a", "b", "c"], vecs([0, 1, 2]))
    cur = db.scroll(name, limit=1).next_cursor
    db.drop_collection(name)
    db.create_collection(name, dim=DIM, metric="l2", id_type="str")
    with pytest.raises(vectord.InvalidArgument, match="belongs to another collection"):
        db.scroll(name, cursor=cur)


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_scroll_under_concurrent_writes(db, name, id_type):
    """Every point present for the whole walk is seen exactly once; none twice."""
    def ident(n):
        return n if id_type == "int" else f"k{n:06d}"

    def another():  # served: a client of its own; embedded: the one handle, shared
        if isinstance(db, vectord.Client):
            return vectord.Client(db.address)
        return contextlib.nullcontext(db)

    with another() as c:
        c.create_collection(name, dim=DIM, metric="l2", id_type=id_type)
        stable = list(range(0, 4000, 2))
        for lo in range(0, len(stable), 1000):
            chunk = stable[lo:lo + 1000]
            c.upsert(name, [ident(n) for n in chunk], vecs(chunk))
    stop = threading.Event()
    errors = []

    def churn():
        try:
            with another() as w:
                rng = random.Random(5)
                while not stop.is_set():
                    odd = [2 * rng.randrange(2000) + 1 for _ in range(50)]
                    odd = sorted(set(odd))
                    if rng.random() < 0.6:
                        w.upsert(name, [ident(n) for n in odd], vecs(odd))
                    else:
                        w.delete(name, [ident(n) for n in odd])
        except Exception as e:  # surfaced by the main thread
            errors.append(e)

    t = threading.Thread(target=churn)
    t.start()
    try:
        with another() as c:
            for _ in range(3):
                seen = [r.id for r in c.iter_points(name, batch=97, with_payload=False)]
                key = (lambda s: s.encode()) if id_type == "str" else None
                assert seen == sorted(set(seen), key=key), "repeated or out of order"
                got = set(seen)
                assert all(ident(n) in got for n in stable)
    finally:
        stop.set()
        t.join()
    assert not errors, errors


def test_string_ids_survive_kill_9(fresh_server):
    """kill -9 while a client writes string ids: every acknowledged id is there after the
    restart, mapped to its own vector, and `vectord check` passes."""
    acked = []
    with vectord.Client(fresh_server.address) as c:
        c.create_collection("crash", dim=DIM, metric="l2", id_type="str")
    for rnd in range(3):
        stop = threading.Event()

        def writer(base):
            try:
                with vectord.Client(fresh_server.address, retries=0) as w:
                    b = 0
                    while not stop.is_set():
                        nums = [base + b * 40 + i for i in range(40)]
                        w.upsert("crash", [f"r{n}-ü" for n in nums], vecs(nums))
                        acked.extend(nums)
                        b += 1
            except vectord.Error:
                pass  # the server died under the call

        t = threading.Thread(target=writer, args=(rnd * 1_000_000,))
        t.start()
        time.sleep(0.3 + random.random() * 0.5)
        fresh_server.kill()
        stop.set()
        t.join()
        fresh_server.start()
    assert len(acked) > 0
    print(f"kill -9 test: {len(acked)} string ids acknowledged over 3 kills")
    with vectord.Client(fresh_server.address) as c:
        got = c.get("crash", [f"r{n}-ü" for n in acked])
        for n, rec in zip(acked, got):
            assert rec is not None, f"acknowledged id r{n} lost"
            np.testing.assert_array_equal(rec.vector, vec(n))
        assert c.count("crash") >= len(acked)
    fresh_server.stop()
    r = subprocess.run([VECTORD_BIN, "check", "--data", str(fresh_server.data_dir)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def test_build_with_text_ids(tmp_path, fresh_server):
    n = 300
    np.save(tmp_path / "v.npy", vecs(range(n)))
    ids = [f"chunk {i} — ü" for i in range(n)]
    (tmp_path / "ids.txt").write_text("".join(i + "\n" for i in ids), encoding="utf-8")
    data = tmp_path / "built"
    r = subprocess.run([VECTORD_BIN, "build", "--data", str(data), "--collection", "t",
                        "--input", str(tmp_path / "v.npy"), "--ids", str(tmp_path / "ids.txt"),
                        "--metric", "l2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and ", string ids, quantization none in" in r.stdout, r.stdout + r.stderr
    info = subprocess.run([VECTORD_BIN, "info", "--data", str(data)], capture_output=True,
                          text=True, timeout=60).stdout
    row = [line for line in info.splitlines() if line.startswith("t ")][0]
    assert row.split()[6] == "str", info
    # refusals name the line (or the rows, for a duplicate) and write nothing
    (tmp_path / "dup.txt").write_text("".join(i + "\n" for i in ids[:-1]) + ids[0] + "\n")
    (tmp_path / "empty.txt").write_text("a\n\n" + "".join(f"b{i}\n" for i in range(n - 2)))
    for f, msg in [("dup.txt", f'string id "{ids[0]}" appears more than once (rows 0 and {n - 1})'),
                   ("empty.txt", "empty.txt: line 2: string id is empty")]:
        r = subprocess.run([VECTORD_BIN, "build", "--data", str(data), "--collection", "u",
                            "--input", str(tmp_path / "v.npy"), "--ids", str(tmp_path / f)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and msg in r.stderr, r.stderr
    # the built collection is served with its ids
    srv = type(fresh_server)(data, tmp_path / "built.log")
    srv.start()
    try:
        with vectord.Client(srv.address) as c:
            assert c.collection_info("t").id_type == "str"
            assert [h.id for h in c.search("t", vec(17), k=1)] == [ids[17]]
            assert [r.id for r in c.iter_points("t")] == sorted(ids, key=lambda s: s.encode())
            c.upsert("t", ["new"], vecs([9999]))  # later writes take keys after the rows
            assert c.get("t", ["new"])[0] is not None and c.count("t") == n + 1
    finally:
        srv.stop()
