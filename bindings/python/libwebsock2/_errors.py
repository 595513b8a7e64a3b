"""Exceptions mapping libwebsock2's negative error codes.

The codes come from ``enum websock_error`` in ``<websock/error.h>`` through
SWIG (``_websock.ERR_*``), never from numbers written here: each class below
names its constant (``err="INVALID"`` is ``WEBSOCK_ERR_INVALID``), and a
code without a class of its own gets a plain :class:`Error` subclass named
after it (``ERR_SOME_THING`` -> ``SomeThing``)."""
from typing import Any, Dict, List, NoReturn, Optional, Type

from . import _websock as _ws

_BY_CODE: Dict[int, Type["Error"]] = {}


class Error(Exception):
    """Base of every libwebsock2 error. ``error_code`` is the core's negative
    ``WEBSOCK_ERR_*`` value, and so is ``code`` on every class but the
    :class:`ConnectionClosed` family, whose ``code`` is the close code (as in
    ``websockets``); the class attribute ``code`` is always the core's."""

    code: int = 0

    def __init_subclass__(cls, err: str = "", **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if err:
            # AttributeError here means error.h no longer has the code.
            cls.code = getattr(_ws, "ERR_" + err)
            _BY_CODE[cls.code] = cls

    def __init__(self, message: str = "", code: int = 0) -> None:
        super().__init__(message or self.__class__.__name__)
        self.error_code: int = code or type(self).code
        if code:
            self.code = code


class InvalidArgument(Error, ValueError, err="INVALID"):
    """Invalid argument (bad value, unknown handle, bad close code); the
    message names the argument and the values allowed."""


class NoMemory(Error, MemoryError, err="NOMEM"):
    """The core ran out of memory."""


class StateError(Error, err="STATE"):
    """Not allowed in the server's state (e.g. started twice, not running)."""


class Closing(Error, err="CLOSING"):
    """The connection is closing."""


# Close codes of a connection that ended as planned (websockets' choice).
OK_CLOSE_CODES = (_ws.CLOSE_NORMAL, _ws.CLOSE_GOING_AWAY)


class ConnectionClosed(Closing):
    """The connection ended, or was never there: raised by a send, a ping,
    or ``recv()`` on a connection that is gone. As in ``websockets``,
    ``code`` and ``reason`` are the close code and reason (1006 and "" when
    none is known); ``close_code`` and ``close_reason`` are the same;
    ``error_code`` is the core's error code (``ERR_NO_SUCH_CLIENT`` or
    ``ERR_CLOSING``). :class:`ConnectionClosedOK` (1000, 1001) and
    :class:`ConnectionClosedError` (any other code) say how it ended."""

    def __init__(self, message: str = "", code: int = 0,
                 close_code: Optional[int] = None, close_reason: str = "") -> None:
        if close_code is None:
            close_code = _ws.CLOSE_ABNORMAL
        super().__init__(message or describe_close(close_code, close_reason), code)
        self.error_code = code or type(self).code
        self.code = self.close_code = close_code
        self.reason = self.close_reason = close_reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection ended with 1000 (normal) or 1001 (going away)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended with a close code other than 1000 and 1001 (an
    error, a timeout, or 1006: no close frame)."""


class NoSuchClient(ConnectionClosed, LookupError, err="NO_SUCH_CLIENT"):
    """Unknown or already closed connection id or tag. A
    :class:`ConnectionClosed`: ``code``/``reason`` are the connection's
    close code and reason when the server saw it end, else 1006 and ""."""


def describe_close(code: int, reason: str) -> str:
    """"connection closed: 1011 (unexpected error) keepalive ping timeout",
    with the code's name as ``websockets`` writes it."""
    if 3000 <= code < 4000:
        name = "registered"
    elif 4000 <= code < 5000:
        name = "private use"
    else:
        name = _CLOSE_NAMES.get(code, "unknown")
    text = "connection closed: %d (%s)" % (code, name)
    return text + " " + reason if reason else text


# websockets.frames.CLOSE_CODES
_CLOSE_NAMES = {
    1000: "OK", 1001: "going away", 1002: "protocol error", 1003: "unsupported type",
    1005: "no status code [internal]", 1006: "connection closed abnormally [internal]",
    1007: "invalid data", 1008: "policy violation", 1009: "message too big",
    1010: "extension required", 1011: "unexpected error", 1012: "service restart",
    1013: "try again later", 1014: "bad gateway", 1015: "TLS failure [internal]",
}


def closed_error(close_code: Optional[int], close_reason: Optional[str] = "",
                 error_code: int = 0) -> ConnectionClosed:
    """The :class:`ConnectionClosedOK` / :class:`ConnectionClosedError` of a
    connection that ended with ``close_code`` (None: unknown, 1006)."""
    if close_code is None:
        close_code = _ws.CLOSE_ABNORMAL
    cls = ConnectionClosedOK if close_code in OK_CLOSE_CODES else ConnectionClosedError
    return cls("", error_code, close_code, close_reason or "")


class TagTaken(Error, err="TAG_TAKEN"):
    """Another live connection already holds the tag."""


class Backpressure(Error, err="BACKPRESSURE"):
    """The connection's outbound queue is full; retry after it drains."""


class TooBig(Error, ValueError, err="TOO_BIG"):
    """Payload over a limit (e.g. more than 125 bytes for a ping)."""


class BadUtf8(Error, ValueError, err="BAD_UTF8"):
    """A text payload is not valid UTF-8."""


class AddressError(Error, OSError, err="ADDRESS"):
    """Cannot resolve or bind the listen address. The message names the
    address and the reason ("cannot listen on 127.0.0.1:8080: address
    already in use"); ``errno`` is the failing call's (EADDRINUSE, EACCES,
    ...; 0 for a name that does not resolve)."""

    def __init__(self, message: str = "", code: int = 0, errno: Optional[int] = None) -> None:
        super().__init__(message, code)
        # Only errno: with strerror set too, OSError.__str__ would print
        # "[Errno 98] ..." instead of the core's sentence.
        self.errno = errno


class SystemCallError(Error, OSError, err="SYSTEM"):
    """A system call failed inside the core (``errno`` when known)."""

    def __init__(self, message: str = "", code: int = 0, errno: Optional[int] = None) -> None:
        super().__init__(message, code)
        self.errno = errno


class TLSError(Error, err="TLS"):
    """TLS set-up failed."""


class RecursiveCall(Error, err="RECURSIVE"):
    """Not allowed from a callback or core thread of this server."""


class ClusterError(Error, err="CLUSTER"):
    """The cluster's Redis link is down: a send to another node's
    connection cannot go now (local delivery goes on)."""


class InvalidURI(InvalidArgument):
    """``connect()`` got a URL it cannot use (not ws:// or wss://, no host,
    a bad port): the message is the core's reason (websock_connect_error,
    "bad URL: ..."); ``url`` is the URL."""

    def __init__(self, message: str = "", code: int = 0, url: str = "") -> None:
        super().__init__(message, code)
        self.url = url


class ConnectError(Error):
    """An outgoing connection (``connect()``) that never opened: the core
    ended it with 1006 and a reason naming the stage it failed in.
    ``stage`` is that stage ("resolve", "connect", "tls", "handshake",
    "timeout", "stopped"), ``reason`` the core's whole sentence
    ("connect: Connection refused (127.0.0.1 port 1)"), ``url`` the URL.
    The subclasses say which stage: :class:`ConnectionFailed` (resolve,
    connect), :class:`TLSHandshakeError` (tls), :class:`InvalidHandshake`
    and :class:`InvalidStatus` (handshake), :class:`OpenTimeout`
    (timeout)."""

    def __init__(self, message: str = "", code: int = 0, *, url: str = "",
                 reason: str = "") -> None:
        super().__init__(message or reason, code)
        self.url = url
        self.reason = reason
        self.stage = reason.partition(":")[0].strip() if ":" in reason else ""


class ConnectionFailed(ConnectError, OSError):
    """No TCP connection: the host name did not resolve (``stage``
    "resolve") or every address refused or was unreachable ("connect").
    An ``OSError`` too, with ``errno`` when the reason is a system error's
    text (ECONNREFUSED for "Connection refused"), else None."""

    def __init__(self, message: str = "", code: int = 0, *, url: str = "",
                 reason: str = "") -> None:
        super().__init__(message, code, url=url, reason=reason)
        self.errno = _errno_of(reason)


class TLSHandshakeError(ConnectError, TLSError):
    """The TLS handshake failed ("tls: certificate verify failed
    (hostname mismatch)", "tls: certificate verify failed (unable to get
    local issuer certificate)", ...)."""


class InvalidHandshake(ConnectError):
    """The server did not answer the upgrade as RFC 6455 wants: a wrong
    Sec-WebSocket-Accept, a subprotocol or extension we did not offer, a
    closed connection before the answer ("handshake: ...")."""


class InvalidStatus(InvalidHandshake):
    """The server answered the upgrade with another status than 101
    ("handshake: HTTP 404 Not Found"); ``status`` is that status."""

    def __init__(self, message: str = "", code: int = 0, *, url: str = "",
                 reason: str = "", status: int = 0) -> None:
        super().__init__(message, code, url=url, reason=reason)
        self.status = status


class OpenTimeout(ConnectError, TimeoutError):
    """No open connection within ``open_timeout`` ("timeout: no answer to
    the upgrade within 10000 ms"). A ``TimeoutError`` too."""


def _errno_of(reason: str) -> Optional[int]:
    import errno as _errno_mod
    import os
    text = reason.partition(":")[2].strip().lower()
    for num in sorted(_errno_mod.errorcode):
        if text.startswith(os.strerror(num).lower()):
            return num
    return None


def connect_error(url: str, reason: str) -> ConnectError:
    """The :class:`ConnectError` subclass of a connect that ended before
    OPEN with ``reason`` (the CLOSE event's, "<stage>: <why>")."""
    import re
    reason = reason or "connect: the connection ended before it opened"
    stage = reason.partition(":")[0].strip()
    message = "cannot connect to %s: %s" % (url, reason)
    if stage == "handshake":
        m = re.match(r"handshake: HTTP (\d{3})\b", reason)
        if m:
            return InvalidStatus(message, url=url, reason=reason, status=int(m.group(1)))
        return InvalidHandshake(message, url=url, reason=reason)
    if stage == "tls":
        return TLSHandshakeError(message, url=url, reason=reason)
    if stage == "timeout":
        return OpenTimeout(message, url=url, reason=reason)
    if stage in ("connect", "resolve"):
        return ConnectionFailed(message, url=url, reason=reason)
    return ConnectError(message, url=url, reason=reason)


def _generated() -> List[str]:
    """Classes for the ERR_* codes that have none above; their names."""
    names = []
    for const, code in vars(_ws).items():
        if const.startswith("ERR_") and code not in _BY_CODE:
            name = "".join(part.capitalize() for part in const[4:].split("_"))
            cls = type(name, (Error,), {"__doc__": _ws.websock_strerror(code),
                                        "__module__": __name__})
            cls.code = code
            _BY_CODE[code] = cls
            globals()[name] = cls
            names.append(name)
    return names


__all__ = [
    "Error", "InvalidArgument", "NoMemory", "StateError", "NoSuchClient",
    "TagTaken", "Backpressure", "Closing", "ConnectionClosed", "ConnectionClosedOK",
    "ConnectionClosedError", "TooBig", "BadUtf8", "AddressError", "SystemCallError",
    "TLSError", "RecursiveCall", "ClusterError", "InvalidURI", "ConnectError", "ConnectionFailed",
    "TLSHandshakeError", "InvalidHandshake", "InvalidStatus", "OpenTimeout", "connect_error",
    *_generated(), "error_for", "check", "error_classes",
    "closed_error", "describe_close", "OK_CLOSE_CODES",
]


def error_classes() -> Dict[int, Type[Error]]:
    """``{code: class}`` for every ``WEBSOCK_ERR_*`` code of the core."""
    return dict(_BY_CODE)


def error_for(code: int, message: str = "") -> Error:
    """Returns the exception instance for a negative core error code."""
    cls = _BY_CODE.get(code, Error)
    return cls(message or _ws.websock_strerror(code), code)


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
