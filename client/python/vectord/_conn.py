"""One framed, pipelined TCP connection to a vectord server.

Framing (proto/vectord.proto, docs/protocol.md): a frame is a 4-byte big-endian length N and
then N bytes of one protobuf message; the client sends ``Request`` frames and reads
``Response`` frames, matched by ``request_id`` because the server may answer out of order.

Pipelining: a large call is cut into many frames, and :meth:`Connection.run` keeps up to
``window`` of them (and at most ``max_inflight_bytes``) in flight, writing the next frame while
responses arrive, so the server's reader pool and group-committing writer always have work
queued and a million-point upsert is not paced by round trips. The socket is non-blocking
and one ``poll`` waits for "writable" and "readable" together: a blocking write of a big frame
while the server blocks writing responses we are not reading would deadlock both sides.

Failure model: a non-OK status for one frame stops sending, the frames already in flight are
drained (keeping the connection usable), and the error of the earliest failing frame is
raised. A broken connection (EOF, reset, a frame we cannot parse) raises
:class:`ConnectionBroken` with nothing retried here; the Client decides whether the call may be
re-sent. A timeout closes the connection, since an answer may still be on its way.

TLS: with an ``ssl.SSLContext`` the socket is wrapped and the handshake done (blocking, under
the timeout) before Hello; the pump then drives the non-blocking ``SSLSocket`` like a plain
one, with two differences: a call may want to read when it writes and the other way round
(``SSLWantReadError``/``SSLWantWriteError`` just mean "poll again"), and decrypted bytes may
wait inside the SSL object where ``poll`` cannot see them, so every receive drains
``pending()`` before polling again.

A Connection is used by one thread at a time; the Client's pool guarantees that.
"""
from __future__ import annotations

import select
import socket
import ssl
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import vectord_pb2 as pb
from ._errors import (DeadlineExceeded, Error, FailedPrecondition, Internal, InvalidArgument,
                      Unavailable, error_from_status)

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 64 << 20
_HDR = struct.Struct(">I")
_MAX_INCOMING = (1 << 31) - 1  # sanity bound for a length prefix from the server
_POLLIN = select.POLLIN | select.POLLPRI
_POLLBAD = select.POLLERR | select.POLLHUP | select.POLLNVAL


class ConnectionBroken(Unavailable):
    """The connection failed mid-call; which frames were answered is known to the caller."""


def parse_address(address: str) -> Tuple[str, int]:
    """``"host:port"``, ``"[v6addr]:port"`` or ``"host"`` (port 7711) -> (host, port)."""
    if not isinstance(address, str) or not address:
        raise InvalidArgument(f"address must be 'host:port', got {address!r}")
    host, port = address, "7711"
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise InvalidArgument(f"address {address!r}: missing ']'")
        host, rest = address[1:end], address[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise InvalidArgument(f"address {address!r}: expected ':port' after ']'")
            port = rest[1:]
    elif address.count(":") == 1:
        host, port = address.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"address must be 'host:port' with a port in 1..65535, "
                              f"got {address!r}")
    return host, int(port)


def encode_frame(req: "pb.Request") -> bytes:
    """Serialize one Request with its 4-byte big-endian length prefix."""
    body = req.SerializeToString()
    return _HDR.pack(len(body)) + body


# ---- hand-encoded requests around a borrowed payload -----------------------------------------
# The hot path (search/knn frames) carries one big bytes field: the queries. Building a
# pb.Request copies them three times (ndarray.tobytes, the message, the frame); here the
# frame's head - the length prefix and every other field - is encoded by hand and the
# queries are sent from the caller's array with sendmsg, copied only by the kernel. The
# field numbers come from the generated descriptors, the encoding is protobuf's (varints,
# length-delimited fields in any order; zero scalars omitted as proto3 encoders do), and
# tests/e2e/test_client_offline.py checks that pb.Request parses the result into the very
# message the generated encoder would have built.

_ONE_BYTE = [bytes((v,)) for v in range(0x80)]


def _varint(v: int) -> bytes:
    if v < 0x80:
        return _ONE_BYTE[v]
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _tag(descriptor: "Any", field: str, wire_type: int) -> bytes:
    return _varint(descriptor.fields_by_name[field].number << 3 | wire_type)


_VARINT, _LEN = 0, 2
_REQ_ID = _tag(pb.Request.DESCRIPTOR, "request_id", _VARINT)
_REQ_SEARCH = _tag(pb.Request.DESCRIPTOR, "search", _LEN)
_S = pb.SearchRequest.DESCRIPTOR
_S_COLLECTION, _S_QUERIES = _tag(_S, "collection", _LEN), _tag(_S, "queries", _LEN)
_S_K, _S_EF = _tag(_S, "k", _VARINT), _tag(_S, "ef", _VARINT)
_S_PAYLOADS, _S_DIM = _tag(_S, "with_payloads", _VARINT), _tag(_S, "dim", _VARINT)


class Encoded:
    """A request encoded by hand: ``parts(request_id)`` gives the buffers of its frame, the
    last one borrowed from the caller (it must stay unchanged until the call returns)."""

    __slots__ = ("_body_head", "_tail", "_size")

    def __init__(self, body_head: bytes, tail: memoryview) -> None:
        self._body_head, self._tail = body_head, tail
        self._size = len(body_head) + tail.nbytes

    def parts(self, request_id: int) -> List[memoryview]:
        rid = _REQ_ID + _varint(request_id) if request_id else b""
        head = _HDR.pack(len(rid) + self._size) + rid + self._body_head
        return [memoryview(head), self._tail]


class SearchEncoder:
    """The SearchRequest frames of one call (``collection`` UTF-8): the fields they share
    are encoded once, each frame adds its queries. ``extra``: further SearchRequest fields
    already serialized (a filter, explain), by protobuf itself."""

    __slots__ = ("_fields",)

    def __init__(self, collection: bytes, dim: int, k: int, ef: int, with_payloads: bool,
                 extra: bytes = b"") -> None:
        self._fields = b"".join([extra,
            _S_COLLECTION + _varint(len(collection)) + collection if collection else b"",
            _S_K + _varint(k) if k else b"", _S_EF + _varint(ef) if ef else b"",
            _S_PAYLOADS + b"\x01" if with_payloads else b"",
            _S_DIM + _varint(dim) if dim else b"", _S_QUERIES])

    def frame(self, queries: memoryview) -> Encoded:
        """A frame around ``queries`` (nq x dim little-endian float32, borrowed), sent last."""
        q = queries.cast("B")
        fields = self._fields + _varint(q.nbytes)
        return Encoded(_REQ_SEARCH + _varint(len(fields) + q.nbytes) + fields, q)


class FrameReader:
    """Accumulates received bytes and splits them into complete Response frames.

    The buffer is reused; a frame larger than it makes it grow to fit exactly that frame.
    """

    def __init__(self, max_frame: int = _MAX_INCOMING, initial: int = 1 << 16) -> None:
        self.max_frame = max_frame
        self.buf = bytearray(initial)
        self.start = 0  # first unparsed byte
        self.end = 0    # one past the last received byte

    def writable_view(self) -> memoryview:
        """Free space at the end of the buffer (compacting or growing it when full)."""
        if self.end == len(self.buf):
            pending = self.end - self.start
            need = pending + 4
            if pending >= 4:
                need = max(need, 4 + _HDR.unpack_from(self.buf, self.start)[0])
            size = len(self.buf)
            while size < need or size - pending < size // 4:
                size *= 2
            if size != len(self.buf) or self.start:
                fresh = bytearray(size)
                fresh[:pending] = self.buf[self.start:self.end]
                self.buf, self.start, self.end = fresh, 0, pending
        return memoryview(self.buf)[self.end:]

    def feed(self, n: int) -> List["pb.Response"]:
        """Account for ``n`` bytes just written into :meth:`writable_view`; return the
        Responses completed by them. Raises :class:`Internal` on an impossible length."""
        self.end += n
        out: List[pb.Response] = []
        while self.end - self.start >= 4:
            size = _HDR.unpack_from(self.buf, self.start)[0]
            if size > self.max_frame:
                raise Internal(f"server sent a frame of {size} bytes, over the "
                               f"{self.max_frame}-byte bound")
            if self.end - self.start - 4 < size:
                break
            resp = pb.Response()
            with memoryview(self.buf) as mv:
                try:
                    resp.ParseFromString(mv[self.start + 4:self.start + 4 + size])
                except Exception as e:  # DecodeError; the C++ backend raises others too
                    raise Internal(f"server sent an undecodable frame ({size} bytes): {e}") \
                        from None
            out.append(resp)
            self.start += 4 + size
        if self.start == self.end:
            self.start = self.end = 0
        return out


Build = Callable[[int], Union["pb.Request", Encoded]]
Handle = Callable[[int, "pb.Response"], None]


class Connection:
    """A connected, greeted socket. Use from one thread at a time."""

    def __init__(self, sock: socket.socket, address: str, timeout: Optional[float]) -> None:
        """Wrap an already connected stream socket (made non-blocking here); no Hello yet."""
        self.sock: Optional[socket.socket] = sock
        self.address = address
        self.timeout = timeout
        self.broken = False
        self.limits: Optional["pb.Limits"] = None
        self.server_version = ""
        self._next_id = 1
        self._reader = FrameReader()
        sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(sock.fileno(), _POLLIN)
        self._mask = _POLLIN  # events registered now (modify only on change: a syscall)
        self.last_used = time.monotonic()

    @classmethod
    def connect(cls, host: str, port: int, timeout: Optional[float], token: Optional[str],
                client_name: str, tls: Optional[ssl.SSLContext] = None) -> "Connection":
        """Open a TCP connection (TLS with ``tls``, verifying the server as that context
        says) and greet the server (Hello); raises the mapped error (Unavailable,
        Unauthenticated, DeadlineExceeded...) if any step fails."""
        address = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            raise DeadlineExceeded(f"connecting to {address} took longer than "
                                   f"{timeout} s") from None
        except OSError as e:
            raise Unavailable(f"cannot connect to {address}: {e.strerror or e}") from None
        conn = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = _tls_handshake(tls, sock, host, address, timeout)
            conn = cls(sock, address, timeout)
            conn.hello(token, client_name)
        except BaseException:
            if conn is not None:
                conn.close()
            else:
                sock.close()
            raise
        return conn

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.broken = True
        sock, self.sock = getattr(self, "sock", None), None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def is_usable(self) -> bool:
        """False when closed, or when the server has closed or written to an idle connection
        (EOF pending: a restart or idle timeout). Costs one non-blocking poll."""
        if self.broken or self.sock is None:
            return False
        if self.limits is not None and self.limits.idle_timeout_ms:
            idle_ms = (time.monotonic() - self.last_used) * 1000
            if idle_ms > 0.9 * self.limits.idle_timeout_ms:
                return False
        try:
            self._watch(_POLLIN)
            return not self._poll.poll(0)
        except OSError:
            return False

    def hello(self, token: Optional[str], client_name: str) -> None:
        """Send Hello (protocol version, token, name); keep the server's limits."""
        req = pb.Request()
        req.hello.protocol_version = PROTOCOL_VERSION
        if token:
            req.hello.token = token
        req.hello.client_name = client_name
        result: Dict[str, pb.Response] = {}
        try:
            self.run([0], lambda i: req, lambda i, r: result.__setitem__("r", r))
        except ConnectionBroken as e:
            raise Unavailable(f"{self.address} closed the connection during Hello: "
                              f"{e.message}") from None
        hello = result["r"].hello
        if hello.protocol_version and hello.protocol_version != PROTOCOL_VERSION:
            raise FailedPrecondition(f"server at {self.address} speaks protocol "
                                     f"{hello.protocol_version}; this client speaks "
                                     f"{PROTOCOL_VERSION}")
        self.limits = hello.limits
        self.server_version = hello.server_version

    # -- the pump --------------------------------------------------------------------------

    def max_frame_bytes(self) -> int:
        if self.limits is not None and self.limits.max_frame_bytes:
            return self.limits.max_frame_bytes
        return DEFAULT_MAX_FRAME

    def run(self, indices: Sequence[int], build: Build, handle: Handle, window: int = 16,
            max_inflight_bytes: int = 64 << 20, describe: Optional[Callable[[int], str]] = None
            ) -> None:
        """Send ``build(i)`` for each i in ``indices`` (pipelined) and pass each OK response to
        ``handle(i, response)``, in arrival order (also after another frame failed).

        Raises the earliest failing frame's :class:`Error` (its ``frame_index`` set to i)
        after draining what is in flight;
        :class:`ConnectionBroken` when the connection fails (the connection is then closed);
        :class:`DeadlineExceeded` when nothing moves for ``timeout`` seconds (closed too).
        ``describe(i)`` names frame i in error contexts (e.g. "rows 1024..2047").
        """
        if self.sock is None:
            raise ConnectionBroken(f"connection to {self.address} is closed")
        sock, limit = self.sock, self.max_frame_bytes()
        inflight: Dict[int, Tuple[int, int]] = {}  # request_id -> (index, frame bytes)
        inflight_bytes = 0
        errors: Dict[int, Error] = {}
        out: Optional[List[memoryview]] = None  # what is left to send of the current frame
        nxt = 0
        stopping = False
        timeout_ms = None if self.timeout is None else max(1, int(self.timeout * 1000))
        try:
            while True:
                # Queue frames while the window allows; try to send each at once.
                while (out is None and not stopping and nxt < len(indices)
                       and len(inflight) < window
                       and (inflight_bytes < max_inflight_bytes or not inflight)):
                    i = indices[nxt]
                    nxt += 1
                    req = build(i)
                    rid = self._next_id
                    self._next_id += 1
                    if isinstance(req, Encoded):
                        parts = req.parts(rid)
                    else:
                        req.request_id = rid
                        parts = [memoryview(encode_frame(req))]
                    size = sum(p.nbytes for p in parts)
                    if size - 4 > limit:
                        ctx = describe(i) if describe else ""
                        errors[i] = InvalidArgument(
                            f"request of {size - 4} bytes exceeds the server's "
                            f"max frame of {limit} bytes; use a smaller batch", context=ctx)
                        errors[i].frame_index = i
                        stopping = True
                        break
                    inflight[rid] = (i, size)
                    inflight_bytes += size
                    out = self._send(sock, parts)
                if not inflight:
                    break
                self._watch(_POLLIN | (select.POLLOUT if out is not None else 0))
                ready = self._poll.poll(timeout_ms)
                if not ready:
                    self.close()
                    raise DeadlineExceeded(
                        f"no response from {self.address} within {self.timeout} s; "
                        "connection closed (the request may still complete)")
                ev = ready[0][1]
                if out is not None and ev & (select.POLLOUT | _POLLBAD):
                    out = self._send(sock, out)
                if ev & (_POLLIN | _POLLBAD):
                    for resp in self._recv(sock):
                        entry = inflight.pop(resp.request_id, None)
                        if entry is None:
                            if resp.status.code != 0:  # connection-level error, e.g. id 0
                                self.close()
                                raise error_from_status(resp.status.code, resp.status.message)
                            self.close()
                            raise Internal(f"server answered unknown request id "
                                           f"{resp.request_id}")
                        i, size = entry
                        inflight_bytes -= size
                        if resp.status.code != 0:
                            ctx = describe(i) if describe else ""
                            err = error_from_status(resp.status.code, resp.status.message, ctx)
                            err.frame_index = i
                            errors[i] = err
                            stopping = True
                        else:
                            handle(i, resp)
        except ConnectionBroken:
            self.close()
            if errors:  # e.g. "frame too large" followed by the server closing the socket
                raise errors[min(errors)] from None
            raise
        except BaseException:
            # Anything else mid-pump (a handler error, KeyboardInterrupt) leaves responses
            # unread: the connection cannot be reused.
            self.close()
            raise
        self.last_used = time.monotonic()
        if errors:
            raise errors[min(errors)]

    def _watch(self, mask: int) -> None:
        if mask != self._mask and self.sock is not None:
            self._poll.modify(self.sock.fileno(), mask)
            self._mask = mask

    def _send(self, sock: socket.socket, parts: List[memoryview]
              ) -> Optional[List[memoryview]]:
        """Sends what the socket takes of ``parts`` (one sendmsg, no copy); returns what is
        left, or None once all is sent."""
        try:
            # An SSLSocket has no sendmsg: it sends the first part, the rest next time.
            if len(parts) > 1 and not isinstance(sock, ssl.SSLSocket):
                n = sock.sendmsg(parts)
            else:
                n = sock.send(parts[0])
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return parts
        except OSError as e:
            raise ConnectionBroken(f"connection to {self.address} broke while sending: "
                                   f"{e.strerror or e}") from None
        while parts and n >= parts[0].nbytes:
            n -= parts[0].nbytes
            parts = parts[1:]
        if not parts:
            return None
        return [parts[0][n:], *parts[1:]]

    def _recv(self, sock: socket.socket) -> List["pb.Response"]:
        out: List[pb.Response] = []
        while True:
            view = self._reader.writable_view()
            try:
                n = sock.recv_into(view)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return out
            except OSError as e:
                raise ConnectionBroken(f"connection to {self.address} broke while receiving: "
                                       f"{_os_reason(e)}") from None
            finally:
                view.release()
            if n == 0:
                raise ConnectionBroken(f"{self.address} closed the connection")
            out.extend(self._reader.feed(n))
            # Plaintext already decrypted waits inside the SSL object, invisible to poll.
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return out


def _os_reason(e: OSError) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    return e.strerror or str(e)


def _tls_handshake(ctx: ssl.SSLContext, sock: socket.socket, host: str, address: str,
                   timeout: Optional[float]) -> ssl.SSLSocket:
    """Wrap a connected socket and complete the handshake (blocking, under ``timeout``)."""
    try:
        return ctx.wrap_socket(sock, server_hostname=host)
    except socket.timeout:
        raise DeadlineExceeded(f"TLS handshake with {address} took longer than {timeout} s"
                               ) from None
    except ssl.SSLCertVerificationError as e:
        raise Unavailable(f"TLS handshake with {address} failed: the server's certificate "
                          f"was not accepted: {e.verify_message or e}") from None
    except (ssl.SSLError, OSError) as e:
        raise Unavailable(f"TLS handshake with {address} failed: {_os_reason(e)} (is it a "
                          "TLS port?)") from None
