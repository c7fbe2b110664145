"""Build hook for the vectord client: all metadata lives in pyproject.toml.

vectord/vectord_pb2.py is generated from the wire contract ../../proto/vectord.proto by protoc
and never committed (`make client/python/vectord/vectord_pb2.py` is the usual way). So that a
plain `pip install ./client/python` from a checkout also works, build_py regenerates it here when
it is missing or older than the .proto. Outside a checkout (no .proto next to us) the generated
file must already be in the source tree.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
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


setup(cmdclass={"build_py": BuildPyWithProto})
