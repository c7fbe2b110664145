"""The package installs with Debian's pip and no network (--no-build-isolation --no-deps), the
build step generates vectord_pb2.py from proto/vectord.proto with protoc, and the installed
package imports outside the source tree with its typing marker; without the C sources it is
the TCP client alone, and from a checkout (`pip install -e`) it builds the embedded engine
through the Makefile. And without pip: in a fresh checkout, `make run` (and plain `make`)
leave the client and the engine importable with PYTHONPATH=client/python, as the example's
docstring and client/python/README.md say."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_pip_install_into_a_fresh_venv(tmp_path):
    # Work on a copy so the build leaves nothing (build/, *.egg-info) in the checkout.
    src = tmp_path / "src"
    shutil.copytree(REPO / "client" / "python", src / "client" / "python",
                    ignore=shutil.ignore_patterns("vectord_pb2.py", "build", "*.egg-info",
                                                  "__pycache__"))
    shutil.copytree(REPO / "proto", src / "proto", ignore=shutil.ignore_patterns("*.c", "*.h"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no checkout imports
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, capture_output=True)
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                          "--no-index", str(src / "client" / "python")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    check = ("import vectord, pathlib; import vectord.vectord_pb2 as pb; "
             "p = pathlib.Path(vectord.__file__).parent; "
             "assert (p / 'py.typed').exists(); "
             "assert pb.Request.DESCRIPTOR.full_name == 'vectord.v1.Request'; "
             "assert not list(p.glob('_engine*.so')); "  # no C sources were copied
             "print(vectord.__version__, p)\n"
             "try:\n    vectord.open('never')\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([str(py), "-c", check], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert str(venv) in out.stdout  # imported from the venv, not from the checkout
    assert "vectord.open needs the compiled module vectord._engine" in out.stdout


def test_pip_install_editable_builds_the_engine_from_a_checkout(tmp_path):
    src = fresh_checkout(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAKEFLAGS", "MFLAGS")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, capture_output=True)
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                          "--no-index", "-e", str(src / "client" / "python")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert list((src / "client" / "python" / "vectord").glob("_engine*.so"))  # built in place
    check = ("import sys, numpy as np, vectord, vectord._engine as e; "
             "print(e.__file__); db = vectord.open(sys.argv[1], threads=1); "
             "db.create_collection('c', dim=2, metric='l2'); db.upsert('c', [1], [[1, 2]]); "
             "print(db.search('c', [1, 2], k=1)[0].id); db.close()")
    out = subprocess.run([str(py), "-c", check, str(tmp_path / "data")], capture_output=True,
                         text=True, cwd=str(tmp_path), timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    where, hit = out.stdout.split()
    assert where.startswith(str(src)) and hit == "1"  # editable: the checkout's module


def fresh_checkout(dest):
    """The files a fresh clone has: tracked ones, and new ones git does not ignore (so the test
    also covers uncommitted work); no build/, no generated vectord_pb2.py."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in names)):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    assert not (dest / "client" / "python" / "vectord" / "vectord_pb2.py").exists()
    return dest


def test_make_and_make_run_generate_the_python_wire_module(tmp_path):
    src = fresh_checkout(tmp_path / "src")
    for goal in ([], ["run"]):  # -n: what each would do, nothing run
        out = subprocess.run(["make", "-n", *goal], cwd=src, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert "protoc --python_out=client/python/vectord" in out.stdout, (goal, out.stdout)
        assert "-shared -o client/python/vectord/_engine" in out.stdout, (goal, out.stdout)


def test_make_run_serves_and_the_example_imports_from_the_checkout(tmp_path):
    """The example's docstring, word for word (plus --address): `make run`, then
    PYTHONPATH=client/python python3 examples/rag_quickstart.py, in a fresh checkout."""
    src = fresh_checkout(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAKEFLAGS", "MFLAGS")}
    log = open(tmp_path / "run.log", "w+")
    serve_args = f"--data {tmp_path / 'data'} --listen 127.0.0.1:0"
    run = subprocess.Popen(["make", "-j2", "run", f"SERVE_ARGS={serve_args}"], cwd=src, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # make run compiles the daemon first
        while True:
            text = (tmp_path / "run.log").read_text()
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", text)
            if m:
                address = m.group(1)
                break
            assert run.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, "make run did not start serving"
            time.sleep(0.5)
        env["PYTHONPATH"] = "client/python"
        out = subprocess.run([sys.executable, "examples/rag_quickstart.py", "--address", address,
                              "--collection", "packaging_test"], cwd=src, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "1. honeybees.txt" in out.stdout
        where = subprocess.run([sys.executable, "-c", "import vectord, vectord._engine as e; "
                                "print(vectord.__file__, e.__file__)"],
                               cwd=src, env=env, capture_output=True, text=True, timeout=60)
        assert where.returncode == 0, where.stderr
        assert all(p.startswith(str(src)) for p in where.stdout.split()), where.stdout
    finally:
        os.killpg(run.pid, signal.SIGINT)  # make and the daemon: the daemon stops cleanly
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        log.close()
    assert "stopped:" in (tmp_path / "run.log").read_text()
