"""The handshake handler's side of the binding: the :class:`Request` a
handler reads, the :class:`Upgrade` handle of an upgrade answered later,
and how a handler's return value becomes the core's answer
(:func:`run_hook`). Front-end neutral: the threaded server calls
:func:`run_hook` from its handshake trampoline; another front end (asyncio)
can defer in the hook and answer the :class:`Upgrade` from its loop.

The core's request object is valid only during the hook call, so
:class:`Request` copies what it says at once (``pyws_request_read``) and
keeps the raw pointer only for the calls that must happen during the hook
(``select_subprotocol``, ``defer``, answering a plain HTTP request)."""
import threading
import weakref
from typing import (Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple,
                    Union)

from . import _websock as _ws
from ._base import log
from ._config import parse_remote
from ._errors import InvalidArgument, NoMemory, NoSuchClient, StateError, check, error_for

__all__ = ["ACCEPT", "DEFER", "Headers", "Request", "Upgrade", "Pending", "run_hook"]

# The hook's answers (enum websock_handshake_answer of <websock/request.h>).
ACCEPT: int = _ws.ACCEPT
DEFER: int = _ws.DEFER

Body = Union[str, bytes, bytearray, memoryview]
_INVALID = InvalidArgument.code
_NOMEM = NoMemory.code
_GONE = NoSuchClient.code


class Headers(Mapping[str, str]):
    """The request's headers: a read-only, case-insensitive mapping in the
    order received. ``headers[name]`` and ``headers.get(name)`` give the
    first value of a header sent several times; ``get_all(name)`` gives
    every value; ``raw_items()`` the ``(name, value)`` pairs as sent."""

    __slots__ = ("_items", "_values", "_names")

    def __init__(self, items: Any = ()) -> None:
        self._items: Tuple[Tuple[str, str], ...] = tuple((str(n), str(v)) for n, v in items)
        self._values: Dict[str, List[str]] = {}
        self._names: List[str] = []  # first spelling of each name, in order
        for name, value in self._items:
            key = name.lower()
            if key not in self._values:
                self._values[key] = []
                self._names.append(name)
            self._values[key].append(value)

    def __getitem__(self, name: str) -> str:
        values = self._values.get(name.lower()) if isinstance(name, str) else None
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def get_all(self, name: str) -> List[str]:
        """Every value of header ``name`` in the order sent (empty if none)."""
        return list(self._values.get(name.lower(), ()))

    def raw_items(self) -> List[Tuple[str, str]]:
        """Every ``(name, value)`` pair, in order, names as sent."""
        return list(self._items)

    def __repr__(self) -> str:
        return "Headers(%r)" % (self.raw_items(),)


def _status(status: Any, low: int, what: str) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not low <= status <= 599:
        raise error_for(_INVALID, "%s must be an int in %d..599, not %r" % (what, low, status))
    return status


def _body(body: Any) -> Optional[Body]:
    if body is None or isinstance(body, (str, bytes, bytearray, memoryview)):
        return body
    raise TypeError("body must be str, bytes-like or None, not %s" % type(body).__name__)


def _content_type(content_type: Any) -> Optional[str]:
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError("content_type must be str or None, not %s" % type(content_type).__name__)
    return content_type


class Pending:
    """The unanswered upgrades of one server, held weakly (a handle dropped
    unanswered refuses itself). ``refuse_all()`` answers every one still
    waiting with 503; a server calls it on stop and again once its threads
    are joined, so that every handle is completed before the core server
    is freed."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set: "weakref.WeakSet[Upgrade]" = weakref.WeakSet()

    def add(self, up: "Upgrade") -> None:
        with self._lock:
            self._set.add(up)

    def discard(self, up: "Upgrade") -> None:
        with self._lock:
            self._set.discard(up)

    def __len__(self) -> int:
        with self._lock:
            return len(self._set)

    def refuse_all(self, status: int = 503) -> int:
        """Refuses every waiting upgrade with ``status``; how many there were."""
        with self._lock:
            ups = list(self._set)
        for up in ups:
            up._finish_quietly(status, "the server stopped; the upgrade was refused with %d"
                               % status)
        return len(ups)


class Upgrade:
    """A WebSocket upgrade whose answer was put off by ``req.defer()``.
    Answer it once, from any thread, with :meth:`accept` or :meth:`reject`;
    ``request`` is the :class:`Request` it came from.

    A second answer raises :class:`StateError`; an answer after the client
    left (or after the core refused it with 503 at the handshake timeout,
    or the server stopped) raises :class:`NoSuchClient`. A handle dropped
    unanswered refuses its client with 503, and stopping the server refuses
    every handle still waiting with 503."""

    __slots__ = ("request", "_ptr", "_lock", "_spent", "_pending", "__weakref__")

    def __init__(self, ptr: Any, request: "Request", pending: Optional[Pending]) -> None:
        self.request = request
        self._ptr = ptr
        self._lock = threading.Lock()
        self._spent: Optional[Exception] = None  # what a later answer raises
        self._pending = pending
        if pending is not None:
            pending.add(self)

    @property
    def answered(self) -> bool:
        """True once the handle was completed (answered, or found stale)."""
        return self._ptr is None

    def accept(self, subprotocol: Optional[str] = None) -> None:
        """Accepts the upgrade: the client gets 101 and the connection opens
        (``on_open`` follows). ``subprotocol``: one the client offered, or
        None for the one chosen with ``req.select_subprotocol()`` in the
        handler (none if it chose none). An unoffered one raises
        :class:`InvalidArgument` and leaves the handle unanswered."""
        if subprotocol is None:
            subprotocol = self.request.subprotocol
        elif not isinstance(subprotocol, str):
            raise TypeError("subprotocol must be str or None")
        elif subprotocol not in self.request.subprotocols:
            raise error_for(_INVALID, "subprotocol %r was not offered (offered: %s)" % (
                subprotocol, ", ".join(self.request.subprotocols) or "none"))
        with self._lock:
            self._done(_ws.websock_upgrade_accept(self._take(), subprotocol))

    def reject(self, status: int, body: Optional[Body] = None,
               content_type: Optional[str] = None) -> None:
        """Refuses the upgrade with HTTP ``status`` (400..599), ``body``
        (str as UTF-8, or bytes-like; None for the status's default text)
        and ``content_type`` (None: text/plain)."""
        status = _status(status, 400, "status")
        body = _body(body)
        content_type = _content_type(content_type)
        with self._lock:
            self._done(_ws.websock_upgrade_reject(self._take(), status, content_type, body))

    # -- internals (the caller holds self._lock) ---------------------------
    def _take(self) -> Any:
        if self._ptr is None:
            assert self._spent is not None
            raise self._spent
        return self._ptr

    def _done(self, rc: int) -> None:
        """Acts on the core's answer: the handle is consumed on every result
        but InvalidArgument and NoMemory."""
        if rc in (_INVALID, _NOMEM):
            raise error_for(rc)
        self._ptr = None
        if self._pending is not None:
            self._pending.discard(self)
        if rc == 0:
            self._spent = error_for(StateError.code, "the upgrade was answered already")
            return
        if rc == _GONE:
            self._spent = error_for(rc, "the client left before the upgrade was answered "
                                        "(or the handshake timeout refused it with 503)")
        else:
            self._spent = error_for(rc)
        raise self._spent

    def _finish_quietly(self, status: int, why: str) -> None:
        """Refuses with ``status`` unless answered; never raises. Later
        answers raise NoSuchClient(``why``)."""
        try:
            with self._lock:
                if self._ptr is None:
                    return
                try:
                    self._done(_ws.websock_upgrade_reject(self._ptr, status, None, None))
                except NoSuchClient:
                    pass
                if self._ptr is None:
                    self._spent = error_for(_GONE, why)
        except Exception:  # pragma: no cover - NoMemory; the timeout answers
            pass

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            self._finish_quietly(503, "the handle was dropped unanswered; refused with 503")

    def __repr__(self) -> str:
        return "<libwebsock2.Upgrade %s%s>" % (
            self.request.path, " answered" if self._ptr is None else "")


class Request:
    """The HTTP request the handshake handler sees (a WebSocket upgrade or
    a plain HTTP request, see ``is_upgrade``), copied from the core: its
    fields stay readable after the handler returned. ``method``, ``path``
    (without the query), ``query`` (without ``?``; None if none),
    ``headers`` (:class:`Headers`), ``origin`` (None if no Origin header),
    ``remote_addr`` (``"ip:port"``) and ``remote_address`` (``(host,
    port)``), ``sni`` (the TLS server name, None without TLS or SNI),
    ``subprotocols`` (offered by the client, in its order).

    ``select_subprotocol(name)`` and ``defer()`` work only while the
    handler runs (then they raise :class:`StateError`)."""

    __slots__ = ("is_upgrade", "method", "path", "query", "headers", "origin",
                 "remote_addr", "sni", "subprotocols", "_ptr", "_pending", "_upgrade",
                 "_subprotocol")

    def __init__(self, ptr: Any, pending: Optional[Pending] = None) -> None:
        (is_upgrade, method, path, query, headers, origin, remote, sni,
         protos) = _ws.pyws_request_read(ptr)
        self.is_upgrade: bool = is_upgrade
        self.method: str = method
        self.path: str = path
        self.query: Optional[str] = query
        self.headers = Headers(headers)
        self.origin: Optional[str] = origin
        self.remote_addr: Optional[str] = remote
        self.sni: Optional[str] = sni
        self.subprotocols: Tuple[str, ...] = protos
        self._ptr = ptr
        self._pending = pending
        self._upgrade: Optional[Upgrade] = None
        self._subprotocol: Optional[str] = None

    @property
    def remote_address(self) -> Optional[Tuple[str, int]]:
        """Peer address as ``(host, port)``."""
        return parse_remote(self.remote_addr)

    @property
    def subprotocol(self) -> Optional[str]:
        """The subprotocol chosen with :meth:`select_subprotocol`, or None."""
        return self._subprotocol

    def _live(self, what: str) -> Any:
        if self._ptr is None:
            raise error_for(StateError.code, "%s() only works while the handshake handler "
                                             "runs; answer later through req.defer()" % what)
        return self._ptr

    def select_subprotocol(self, name: str) -> None:
        """Chooses ``name``, one of :attr:`subprotocols`, for the 101 answer
        (of an accept now, or of the deferred handle's ``accept()``).
        Raises :class:`InvalidArgument` when the client did not offer it."""
        ptr = self._live("select_subprotocol")
        if not isinstance(name, str):
            raise TypeError("subprotocol must be str")
        rc = _ws.websock_request_select_subprotocol(ptr, name)
        if rc == _INVALID:
            raise error_for(rc, "subprotocol %r was not offered (offered: %s)" % (
                name, ", ".join(self.subprotocols) or "none"))
        check(rc, "select_subprotocol")
        self._subprotocol = name

    def defer(self) -> Upgrade:
        """Puts off the answer to this upgrade and returns its
        :class:`Upgrade` handle: return it (or ``DEFER``) from the handler
        and answer it later, from any thread. Raises :class:`StateError`
        for a plain HTTP request and when called twice."""
        ptr = self._live("defer")
        if not self.is_upgrade:
            raise error_for(StateError.code, "a plain HTTP request cannot be deferred; "
                                             "return (status, body[, content_type])")
        if self._upgrade is not None:
            raise error_for(StateError.code, "defer() was called already for this request")
        rc, up = _ws.websock_request_defer(ptr)
        check(rc, "defer")
        handle = self._upgrade = Upgrade(up, self, self._pending)
        return handle

    def __repr__(self) -> str:
        return "<libwebsock2.Request %s %s%s%s>" % (
            self.method, self.path, "?" + self.query if self.query else "",
            "" if self.is_upgrade else " (plain HTTP)")


_RETURNS = ("None (accept), a status, (status, body) or (status, body, content_type), "
            "or the Upgrade from req.defer()")


def _refusal(result: Any, low: int) -> Tuple[int, Optional[Body], Optional[str]]:
    """(status, body, content_type) from a status or a tuple."""
    if isinstance(result, tuple) and len(result) in (2, 3):
        status = _status(result[0], low, "the status")
        content_type = _content_type(result[2] if len(result) == 3 else None)
        return status, _body(result[1]), content_type
    if isinstance(result, int) and not isinstance(result, bool):
        return _status(result, 400, "a status returned alone"), None, None
    raise TypeError("the handshake handler must return %s, not %r" % (_RETURNS, result))


def _refuse(up: Upgrade, status: int, body: Optional[Body], ctype: Optional[str]) -> None:
    """Refuses through the handle unless it was answered; a client gone
    meanwhile (on an agent) needs no answer."""
    if not up.answered:
        try:
            up.reject(status, body, ctype)
        except (NoSuchClient, StateError):  # gone, or answered by another thread
            pass


def _answer(req: Request, result: Any) -> int:
    """The hook's answer for the handler's return value ``result``."""
    up = req._upgrade
    if up is not None:  # deferred: the handle answers
        if result is None or result is up or (type(result) is int and result == DEFER):
            return DEFER
        if isinstance(result, Upgrade):
            raise TypeError("the handshake handler returned another request's Upgrade")
        _refuse(up, *_refusal(result, 400))
        return DEFER
    if result is None:
        return ACCEPT
    if isinstance(result, Upgrade) or (type(result) is int and result == DEFER):
        raise TypeError("the handshake handler returned DEFER without calling req.defer()")
    if req.is_upgrade:
        status, body, ctype = _refusal(result, 400)
        if body is None and ctype is None:
            return status  # the core refuses with the status's default text
        # A body needs the handle's refusal (the hook's answer is a number).
        _refuse(req.defer(), status, body, ctype)
        return DEFER
    status, body, ctype = _refusal(result, 100)
    if isinstance(result, int):
        return status  # the core answers with the status's default text
    check(_ws.websock_request_respond(req._ptr, status, ctype, body if body is not None else b""),
          "respond")
    return ACCEPT


def _failed(req: Optional[Request], status: int) -> int:
    """The answer after the handler raised: ``status``, through the handle
    if it deferred."""
    up = req._upgrade if req is not None else None
    if up is None:
        return status
    up._finish_quietly(status, "the handshake handler raised; refused with %d" % status)
    return DEFER


def run_hook(handler: Callable[[Request], Any], ptr: Any, pending: Optional[Pending]) -> int:
    """Runs ``handler(Request)`` for the core's request pointer ``ptr`` (valid
    during this call only) and returns the hook's answer: ACCEPT, an HTTP
    status, or DEFER (answered by the :class:`Upgrade`). An exception in
    the handler, or a return value it may not give, is logged (logger
    ``libwebsock2``) and answered with 500."""
    req = None
    try:
        req = Request(ptr, pending)
        return _answer(req, handler(req))
    except Exception:
        if req is None:
            log.exception("libwebsock2: reading the handshake request failed")
        else:
            log.exception("libwebsock2: the handshake handler raised for %s %s",
                          req.method, req.path)
        return _failed(req, 500)
    finally:
        if req is not None:
            req._ptr = None  # the core's request ends with this call
            req._upgrade = None  # no Request -> Upgrade -> Request cycle
