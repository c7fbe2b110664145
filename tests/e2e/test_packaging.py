"""The package installs with Debian's pip and no network (--no-build-isolation --no-deps), the
build step generates vectord_pb2.py from proto/vectord.proto with protoc, and the installed
package imports outside the source tree with its typing marker."""
import os
import shutil
import subprocess
import sys
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
             "print(vectord.__version__, p)")
    out = subprocess.run([str(py), "-c", check], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert str(venv) in out.stdout  # imported from the venv, not from the checkout
