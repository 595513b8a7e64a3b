"""Exceptions mapping libwebsock2's negative error codes.

The codes come from ``enum websock_error`` in ``<websock/error.h>`` through
SWIG (``_websock.ERR_*``), never from numbers written here: each class below
names its constant (``err="INVALID"`` is ``WEBSOCK_ERR_INVALID``), and a
code without a class of its own gets a plain :class:`Error` subclass named
after it (``ERR_SOME_THING`` -> ``SomeThing``)."""
from typing import Any, Dict, List, NoReturn, Type

from . import _websock as _ws

_BY_CODE: Dict[int, Type["Error"]] = {}


class Error(Exception):
    """Base of every libwebsock2 error; ``code`` is the core's negative
    ``WEBSOCK_ERR_*`` value."""

    code: int = 0

    def __init_subclass__(cls, err: str = "", **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if err:
            # AttributeError here means error.h no longer has the code.
            cls.code = getattr(_ws, "ERR_" + err)
            _BY_CODE[cls.code] = cls

    def __init__(self, message: str = "", code: int = 0) -> None:
        super().__init__(message or self.__class__.__name__)
        if code:
            self.code = code


class InvalidArgument(Error, ValueError, err="INVALID"):
    """Invalid argument (bad value, unknown handle, bad close code)."""


class NoMemory(Error, MemoryError, err="NOMEM"):
    """The core ran out of memory."""


class StateError(Error, err="STATE"):
    """Not allowed in the server's state (e.g. started twice, not running)."""


class NoSuchClient(Error, LookupError, err="NO_SUCH_CLIENT"):
    """Unknown or already closed connection id or tag."""


class TagTaken(Error, err="TAG_TAKEN"):
    """Another live connection already holds the tag."""


class Backpressure(Error, err="BACKPRESSURE"):
    """The connection's outbound queue is full; retry after it drains."""


class Closing(Error, err="CLOSING"):
    """The connection is closing."""


class ConnectionClosed(Closing):
    """The connection ended (asyncio ``recv()``); ``close_code`` and
    ``close_reason`` tell how."""

    def __init__(self, message: str = "", code: int = 0,
                 close_code: int = _ws.CLOSE_ABNORMAL, close_reason: str = "") -> None:
        super().__init__(message or "connection closed (%d %s)" % (close_code, close_reason),
                         code)
        self.close_code = close_code
        self.close_reason = close_reason


class TooBig(Error, ValueError, err="TOO_BIG"):
    """Payload over a limit (e.g. more than 125 bytes for a ping)."""


class BadUtf8(Error, ValueError, err="BAD_UTF8"):
    """A text payload is not valid UTF-8."""


class AddressError(Error, OSError, err="ADDRESS"):
    """Cannot resolve or bind the listen address."""


class SystemCallError(Error, OSError, err="SYSTEM"):
    """A system call failed inside the core."""


class TLSError(Error, err="TLS"):
    """TLS set-up failed."""


class RecursiveCall(Error, err="RECURSIVE"):
    """Not allowed from a callback or core thread of this server."""


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
    "TagTaken", "Backpressure", "Closing", "ConnectionClosed", "TooBig", "BadUtf8",
    "AddressError", "SystemCallError", "TLSError", "RecursiveCall", *_generated(),
    "error_for", "check", "error_classes",
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
