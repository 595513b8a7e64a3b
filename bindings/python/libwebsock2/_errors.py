"""Exceptions mapping libwebsock2's negative error codes."""
from typing import Dict, NoReturn, Type

__all__ = [
    "Error", "InvalidArgument", "NoMemory", "StateError", "NoSuchClient",
    "TagTaken", "Backpressure", "Closing", "ConnectionClosed", "TooBig", "BadUtf8", "AddressError",
    "SystemCallError", "TLSError", "RecursiveCall", "Timeout", "error_for",
    "check",
]


class Error(Exception):
    """Base of every libwebsock2 error; ``code`` is the core's negative
    ``WEBSOCK_ERR_*`` value."""

    code: int = 0

    def __init__(self, message: str = "", code: int = 0) -> None:
        super().__init__(message or self.__class__.__name__)
        if code:
            self.code = code


class InvalidArgument(Error, ValueError):
    """Invalid argument (bad value, unknown handle, bad close code)."""
    code = -1


class NoMemory(Error, MemoryError):
    """The core ran out of memory."""
    code = -2


class StateError(Error):
    """Not allowed in the server's state (e.g. started twice, not running)."""
    code = -3


class NoSuchClient(Error, LookupError):
    """Unknown or already closed connection id or tag."""
    code = -4


class TagTaken(Error):
    """Another live connection already holds the tag."""
    code = -5


class Backpressure(Error):
    """The connection's outbound queue is full; retry after it drains."""
    code = -6


class Closing(Error):
    """The connection is closing."""
    code = -7


class ConnectionClosed(Closing):
    """The connection ended (asyncio ``recv()``); ``close_code`` and
    ``close_reason`` tell how."""

    def __init__(self, message: str = "", code: int = -7, close_code: int = 1006,
                 close_reason: str = "") -> None:
        super().__init__(message or "connection closed (%d %s)" % (close_code, close_reason),
                         code)
        self.close_code = close_code
        self.close_reason = close_reason


class TooBig(Error, ValueError):
    """Payload over a limit (e.g. more than 125 bytes for a ping)."""
    code = -8


class BadUtf8(Error, ValueError):
    """A text payload is not valid UTF-8."""
    code = -9


class AddressError(Error, OSError):
    """Cannot resolve or bind the listen address."""
    code = -10


class SystemCallError(Error, OSError):
    """A system call failed inside the core."""
    code = -11


class TLSError(Error):
    """TLS set-up failed."""
    code = -12


class RecursiveCall(Error):
    """Not allowed from a callback or core thread of this server."""
    code = -13


class Timeout(Error):
    """Nothing happened within the timeout."""
    code = -14


_BY_CODE: Dict[int, Type[Error]] = {
    cls.code: cls
    for cls in (InvalidArgument, NoMemory, StateError, NoSuchClient, TagTaken,
                Backpressure, Closing, TooBig, BadUtf8, AddressError,
                SystemCallError, TLSError, RecursiveCall, Timeout)
}


def error_for(code: int, message: str = "") -> Error:
    """Returns the exception instance for a negative core error code."""
    cls = _BY_CODE.get(code, Error)
    if not message:
        try:
            from . import _websock
            message = _websock.websock_strerror(code)
        except Exception:  # pragma: no cover - extension missing
            message = "libwebsock2 error %d" % code
    return cls(message, code)


def check(rc: int, what: str = "") -> int:
    """Returns ``rc`` when it is not negative, else raises the mapped error."""
    if rc < 0:
        err = error_for(rc)
        if what:
            err.args = ("%s: %s" % (what, err.args[0]),)
        raise err
    return rc


def _raise_from_c(code: int, message: str) -> NoReturn:
    """Called by the C helpers to raise the mapped exception."""
    raise error_for(code, message)
