"""examples/rag_quickstart.py runs offline against the real daemon, twice (the second run
replaces its chunks instead of duplicating them), and finds the passage that answers."""
import os
import subprocess
import sys
from pathlib import Path

import vectord

REPO = Path(__file__).resolve().parents[2]


def run_example(address, *extra):
    env = dict(os.environ, PYTHONPATH=str(REPO / "client" / "python"))
    out = subprocess.run([sys.executable, str(REPO / "examples" / "rag_quickstart.py"),
                          "--address", address, "--collection", "rag_example_test", *extra],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_rag_quickstart_example(server):
    first = run_example(server.address)
    assert "1. honeybees.txt" in first and "cluster" in first
    second = run_example(server.address, "how do sailors tell lighthouses apart at night?")
    assert "1. lighthouses.txt" in second
    with vectord.Client(server.address) as c:
        n_chunks = int(first.split("stored ")[1].split()[0])
        assert c.count("rag_example_test") == n_chunks  # the second run replaced, not added
        c.drop_collection("rag_example_test")


def _python_blocks(markdown):
    blocks, inside, current = [], False, []
    for line in markdown.splitlines():
        if line.startswith("```python"):
            inside, current = True, []
        elif line.startswith("```") and inside:
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def test_readme_snippets_run(server, capsys, tmp_path):
    """The Python code in README.md and client/python/README.md runs as written, served
    against a daemon and embedded on a fresh directory (only the address and the directory
    are changed)."""
    top = _python_blocks((REPO / "README.md").read_text())
    assert len(top) == 2 and "vectord.Client(" in top[0] and "vectord.open(" in top[1]
    blocks = top + _python_blocks((REPO / "client" / "python" / "README.md").read_text())
    assert len(blocks) >= 6
    with vectord.Client(server.address) as c:
        for i, block in enumerate(blocks):
            if "docs" in [x.name for x in c.list_collections()]:
                c.drop_collection("docs")
            code = block.replace("127.0.0.1:7711", server.address)
            for path in ("./my-vectors", "./vectord-data"):
                code = code.replace(f'"{path}"', repr(str(tmp_path / f"block{i}")))
            exec(compile(code, "README", "exec"), {})
            if '"docs"' not in block:  # the blocks about other collections (string ids...)
                continue
            if "vectord.Client(" in block:  # it wrote to the daemon, and left docs filled
                assert c.count("docs") > 0
            else:  # it wrote a directory of its own
                with vectord.open(tmp_path / f"block{i}") as db:
                    assert db.count("docs") > 0
        for name in ("docs", "notes", "chunks", "chunks_v2"):  # what the blocks create
            if name in [x.name for x in c.list_collections()]:
                c.drop_collection(name)
    out = capsys.readouterr().out
    assert out.count("chunk 42") >= 2  # served and embedded
