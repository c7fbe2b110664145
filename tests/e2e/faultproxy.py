"""A loopback TCP proxy in front of the real daemon that can cut a connection right after
forwarding the Nth request frame: deterministic "the connection broke mid-call" for the
retry-rule tests. It forwards bytes unchanged and answers nothing itself."""
import socket
import struct
import threading
import time

from vectord import vectord_pb2 as pb


class CutProxy:
    def __init__(self, upstream_address: str):
        host, port = upstream_address.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.address = f"127.0.0.1:{self.lsock.getsockname()[1]}"
        self.accepted = 0
        self._lock = threading.Lock()
        self._cut_at = None
        self._seen = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        """Cut the connection that carries the nth non-Hello request from now on, just after
        forwarding it (and giving the daemon a moment to act on it)."""
        with self._lock:
            self._cut_at, self._seen = n, 0

    def close(self) -> None:
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            u = socket.create_connection(self.upstream)
            held = threading.Event()  # set: answers on this connection are swallowed
            threading.Thread(target=self._up, args=(c, u, held), daemon=True).start()
            threading.Thread(target=self._down, args=(u, c, held), daemon=True).start()

    def _cut(self, c, u):
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _up(self, c, u, held):
        buf = b""
        try:
            while True:
                data = c.recv(1 << 16)
                if not data:
                    break
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    n = struct.unpack(">I", buf[:4])[0]
                    frame, buf = buf[:4 + n], buf[4 + n:]
                    cut = False
                    if pb.Request.FromString(frame[4:]).WhichOneof("op") != "hello":
                        with self._lock:
                            self._seen += 1
                            cut = self._cut_at is not None and self._seen == self._cut_at
                            if cut:
                                self._cut_at = None
                    if cut:
                        held.set()
                    u.sendall(frame)
                    if cut:
                        time.sleep(0.3)  # the daemon carries the request out...
                        self._cut(c, u)  # ...but its answer never reaches the client
                        return
        except OSError:
            pass
        self._cut(c, u)

    def _down(self, u, c, held):
        try:
            while True:
                data = u.recv(1 << 16)
                if not data:
                    break
                if not held.is_set():
                    c.sendall(data)
        except OSError:
            pass
        self._cut(c, u)
