"""Fixtures that run the real daemon (``$VECTORD_BIN``, default build/vectord) and the
embedded engine (``vectord.open``, the compiled vectord._engine) for the end-to-end tests.

``server`` is one daemon shared by the session (tests use their own collection names);
``fresh_server`` gives a test its own daemon and data directory, to restart or kill it.
Both listen on a free loopback port, are "up" once a Hello succeeds, and must exit with
status 0 on SIGTERM. ``embedded`` is one vectord.open handle shared by the session, on a
data directory of its own. ``db`` is the API under test in both forms: a test taking it runs
once against a Client of the shared daemon and once against the embedded handle, so the
two cannot drift. A missing binary or module makes every test that needs it fail, never
skip.
"""
import itertools
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import vectord

REPO = Path(__file__).resolve().parents[2]
VECTORD_BIN = os.environ.get("VECTORD_BIN", str(REPO / "build" / "vectord"))
DATA_SETS = REPO.parent / "shared" / "data"
if not DATA_SETS.is_dir():
    DATA_SETS = Path("/work/shared/data")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One `vectord serve` process on a data directory and a fixed port (kept across
    restarts so clients can reconnect)."""

    def __init__(self, data_dir: Path, log_path: Path, token: str = None, extra_args=(),
                 read_token: str = None, metrics: bool = False, tls=None, env=None):
        """``tls``: the ssl.SSLContext clients (and the start-up probe) connect with, for a
        daemon started with --tls-cert in ``extra_args``; ``metrics``: add
        --metrics-listen on a free port (``metrics_url``)."""
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.log_path = Path(log_path)
        self.port = free_port()
        self.token = token
        self.read_token = read_token
        self.metrics_port = free_port() if metrics else None
        self.tls = tls
        self.env = env
        self.proc = None
        self._log = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def write_token(self, suffix: str, token: str) -> Path:
        """A token file of mode 600 (the daemon refuses looser ones)."""
        path = self.data_dir.parent / f"{self.data_dir.name}.{suffix}"
        path.write_text(token + "\n")
        os.chmod(path, 0o600)
        return path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def start(self, timeout: float = 30.0, wait: bool = True) -> "Daemon":
        """Start the daemon; with ``wait`` (default) return once a Hello succeeds."""
        if not (os.path.isfile(VECTORD_BIN) and os.access(VECTORD_BIN, os.X_OK)):
            pytest.fail(f"daemon binary {VECTORD_BIN} is missing or not executable: build it "
                        "with `make` or set VECTORD_BIN", pytrace=False)
        args = [VECTORD_BIN, "serve", "--data", str(self.data_dir), "--listen", self.address]
        if self.token is not None:
            args += ["--token-file", str(self.write_token("token", self.token))]
        if self.read_token is not None:
            args += ["--read-token-file", str(self.write_token("read-token", self.read_token))]
        if self.metrics_port is not None:
            args += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        args += self.extra_args
        self._log = open(self.log_path, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        if not wait:
            return self
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> "Daemon":
        """Return once a Hello succeeds; fail the test if the daemon exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"vectord serve exited with {self.proc.returncode} while starting:"
                            f"\n{self.log_tail()}", pytrace=False)
            try:
                vectord.Client(self.address, token=self.token, timeout=5, tls=self.tls).close()
                return self
            except vectord.Unavailable:
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"vectord serve did not accept a Hello within {timeout} s:\n"
                                f"{self.log_tail()}", pytrace=False)
                time.sleep(0.05)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, then insist on a clean exit (status 0)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"vectord serve ignored SIGTERM for {timeout} s:\n{self.log_tail()}",
                        pytrace=False)
        finally:
            self._log.close()
        assert rc == 0, f"vectord serve exited with {rc} on SIGTERM:\n{self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL (a crash): no clean shutdown."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()
        self._log.close()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One daemon for the whole session."""
    base = tmp_path_factory.mktemp("vectord-shared")
    d = Daemon(base / "data", base / "serve.log")
    d.start()
    yield d
    d.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A daemon of the test's own (restart it, kill it, check its data directory)."""
    d = Daemon(tmp_path / "data", tmp_path / "serve.log")
    d.start()
    yield d
    if d.proc is not None:
        d.stop()


@pytest.fixture
def client(server):
    with vectord.Client(server.address, timeout=60) as c:
        yield c


def make_test_ca(d: Path) -> dict:
    """A CA, a server certificate for 127.0.0.1 / localhost and a client certificate, all
    signed by the CA, made with the openssl command line into ``d``. Returns the paths."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    p = {k: str(d / k) for k in ("ca.key", "ca.pem", "server.key", "server.pem",
                                  "client.key", "client.pem", "ext.cnf")}

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", p["ca.key"], "-out", p["ca.pem"], "-days", "2",
        "-subj", "/CN=vectord test CA")
    Path(p["ext.cnf"]).write_text(
        "[srv]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "[cli]\nextendedKeyUsage=clientAuth\n")
    for who, ext in (("server", "srv"), ("client", "cli")):
        csr = str(d / f"{who}.csr")
        run("req", *ec, "-keyout", p[f"{who}.key"], "-out", csr, "-subj", f"/CN=vectord {who}")
        run("x509", "-req", "-in", csr, "-CA", p["ca.pem"], "-CAkey", p["ca.key"],
            "-CAcreateserial", "-out", p[f"{who}.pem"], "-days", "2", "-extfile", p["ext.cnf"],
            "-extensions", ext)
    for k in ("ca.key", "server.key", "client.key"):
        os.chmod(p[k], 0o600)
    return p


def tls_client_context(ca: dict, client_cert: bool = False):
    """What a client verifying the test CA uses (with the client certificate: mTLS)."""
    import ssl
    ctx = ssl.create_default_context(cafile=ca["ca.pem"])
    if client_cert:
        ctx.load_cert_chain(ca["client.pem"], ca["client.key"])
    return ctx


@pytest.fixture(scope="session")
def embedded(tmp_path_factory):
    """One embedded handle for the whole session (2 threads, as the daemon's readers)."""
    base = tmp_path_factory.mktemp("vectord-embedded")
    with vectord.open(base / "data", threads=2) as db:
        yield db


@pytest.fixture(params=["served", "embedded"])
def db(request):
    """The API under test: a Client of the shared daemon, or the embedded handle."""
    if request.param == "served":
        with vectord.Client(request.getfixturevalue("server").address, timeout=60) as c:
            yield c
    else:
        yield request.getfixturevalue("embedded")


_counter = itertools.count()


@pytest.fixture
def name(request):
    """A collection name unique to this test (valid: [A-Za-z0-9_-]{1,64})."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:50]
    return f"{base}_{next(_counter)}"
