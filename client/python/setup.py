"""Build hook for the vectord client: all metadata lives in pyproject.toml.

Two generated parts, neither committed:

- vectord/vectord_pb2.py, from the wire contract ../../proto/vectord.proto by protoc (`make
  client/python/vectord/vectord_pb2.py` is the usual way). So that a plain
  `pip install ./client/python` from a checkout also works, build_py regenerates it here when
  it is missing or older than the .proto. Outside a checkout (no .proto next to us) the
  generated file must already be in the source tree.
- vectord/_engine*.so, the embedded engine (vectord.open), compiled from the repository's C
  sources. The repository's Makefile owns how (the sources, the flags, PIC objects): build_ext
  runs `make python-ext` with this interpreter and takes the module it leaves in the source
  tree, so `pip install ./client/python` and `pip install -e client/python` build it. Outside
  a checkout (no Makefile and C sources two levels up) it is skipped with a warning: the
  package then has the TCP Client only, and vectord.open says how to get the engine.
"""
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
PROTO_DIR = os.path.join(REPO, "proto")
PROTO = os.path.join(PROTO_DIR, "vectord.proto")
PKG = os.path.join(HERE, "vectord")
GENERATED = os.path.join(PKG, "vectord_pb2.py")


def generate_pb2() -> None:
    if not os.path.exists(PROTO):
        if not os.path.exists(GENERATED):
            raise RuntimeError(f"{GENERATED} is missing and {PROTO} is not there to generate it")
        return
    if os.path.exists(GENERATED) and os.path.getmtime(GENERATED) >= os.path.getmtime(PROTO):
        return
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError("protoc (Debian: protobuf-compiler) is needed to generate "
                           "vectord/vectord_pb2.py from proto/vectord.proto")
    subprocess.check_call([protoc, f"--python_out={PKG}", f"-I{PROTO_DIR}", PROTO])


class BuildPyWithProto(build_py):
    def run(self) -> None:
        generate_pb2()
        super().run()


def in_checkout() -> bool:
    return all(os.path.exists(os.path.join(REPO, p)) for p in ("Makefile", "engine", "index"))


class BuildEngineWithMake(build_ext):
    """vectord._engine through the repository's Makefile (see the module docstring)."""

    def build_extension(self, ext: Extension) -> None:
        if not in_checkout():
            print("vectord: no C sources at ../.. (not a checkout): vectord._engine is not "
                  "built; vectord.Client works, vectord.open needs it", file=sys.stderr)
            return
        jobs = max(1, min(os.cpu_count() or 1, 8))
        subprocess.check_call(["make", "-C", REPO, f"-j{jobs}", "--no-print-directory",
                               f"PYTHON={sys.executable}", "python-ext"])
        built = os.path.join(PKG, "_engine" + sysconfig.get_config_var("EXT_SUFFIX"))
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.abspath(built) != os.path.abspath(dest):
            shutil.copyfile(built, dest)


setup(cmdclass={"build_py": BuildPyWithProto, "build_ext": BuildEngineWithMake},
      ext_modules=[Extension("vectord._engine", sources=[], optional=True)])
