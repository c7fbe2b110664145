"""vectord errors: one exception class per wire status code.

Every failure a Client method reports is a :class:`Error`. Errors the server returns carry its
status code and its one-line message unchanged; errors the client detects itself (bad
arguments before anything is sent, a broken or timed-out connection) use the same classes and
codes, so callers catch one hierarchy whatever side found the problem.
"""
from __future__ import annotations

import enum
from typing import Dict, Optional, Type


class Code(enum.IntEnum):
    """The wire status codes (``vectord.v1.Code``, modelled on the gRPC canonical set)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class Error(Exception):
    """Base class of every vectord error.

    Attributes:
        code: the status :class:`Code` (an ``IntEnum``, so it also compares equal to the
            wire integer).
        message: the server's one-line message as sent, or the client's own message.
        context: where in a multi-frame call the error happened (e.g. which rows of a large
            upsert), or ``""``.
    """

    code: Code = Code.UNKNOWN
    frame_index: Optional[int] = None  # which frame of a pipelined call failed (internal)

    def __init__(self, message: str, *, code: Optional[Code] = None, context: str = "") -> None:
        if code is not None:
            self.code = Code(code)
        self.message = message
        self.context = context
        super().__init__(message)

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        return f"{text} ({self.context})" if self.context else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.name})"


class Cancelled(Error):
    """The operation was cancelled."""
    code = Code.CANCELLED


class Unknown(Error):
    """An error the server could not classify (or a status code this client does not know)."""
    code = Code.UNKNOWN


class InvalidArgument(Error):
    """A bad argument: wrong dimension, NaN/Inf, bad name, k out of range, bad payload..."""
    code = Code.INVALID_ARGUMENT


class DeadlineExceeded(Error):
    """No answer within the client's timeout; the connection is dropped (the request may
    still have been carried out)."""
    code = Code.DEADLINE_EXCEEDED


class NotFound(Error):
    """The named collection does not exist."""
    code = Code.NOT_FOUND


class AlreadyExists(Error):
    """A collection with that name already exists."""
    code = Code.ALREADY_EXISTS


class PermissionDenied(Error):
    """The caller is authenticated but may not do this."""
    code = Code.PERMISSION_DENIED


class ResourceExhausted(Error):
    """A server limit was hit: frame size, batch size, connections, memory or disk."""
    code = Code.RESOURCE_EXHAUSTED


class FailedPrecondition(Error):
    """The system is not in a state that allows the call (e.g. the Client was closed)."""
    code = Code.FAILED_PRECONDITION


class Aborted(Error):
    """The operation was aborted, typically by a concurrency conflict; it may be retried."""
    code = Code.ABORTED


class OutOfRange(Error):
    """A value is outside the range the server accepts."""
    code = Code.OUT_OF_RANGE


class Unimplemented(Error):
    """The server does not implement this request."""
    code = Code.UNIMPLEMENTED


class Internal(Error):
    """A bug or broken invariant on the server, or a malformed response seen by the client."""
    code = Code.INTERNAL


class Unavailable(Error):
    """The server cannot be reached, or the connection broke during the call."""
    code = Code.UNAVAILABLE


class DataLoss(Error):
    """Stored data is unreadable or corrupt."""
    code = Code.DATA_LOSS


class Unauthenticated(Error):
    """The server requires a token and none, or a wrong one, was given."""
    code = Code.UNAUTHENTICATED


ERROR_CLASSES: Dict[Code, Type[Error]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}


def error_from_status(code: int, message: str, context: str = "") -> Error:
    """Build the exception for a non-OK wire status ``code`` with the server's ``message``.

    A code this client does not know becomes :class:`Unknown`, keeping the number in the
    message so nothing the server said is lost.
    """
    try:
        known = Code(code)
    except ValueError:
        return Unknown(f"status code {code}: {message}", context=context)
    cls = ERROR_CLASSES.get(known, Unknown)
    return cls(message or known.name.lower().replace("_", " "), code=known, context=context)
