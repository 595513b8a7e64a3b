"""The handshake's side of the binding: the :class:`Request` a handler
reads, the :class:`Upgrade` handle of an upgrade answered later, the
websockets-style negotiation (:class:`Negotiation`: ``origins``,
``subprotocols``, ``select_subprotocol``, ``process_request``,
``extra_headers``), the table that hands each accepted upgrade's request to
its connection (:class:`Opening`), and how the threaded server's hook
answers (:func:`run_hook`). Front-end neutral: the threaded server runs
everything in its hook (on an agent); the asyncio server defers the upgrade
in the hook and answers the :class:`Upgrade` from its loop.

The core's request object is valid only during the hook call, so
:class:`Request` copies what it says at once (``pyws_request_read``) and
keeps the raw pointer only for the calls that must happen during the hook
(``select_subprotocol``, ``defer``, ``add_response_header``, answering
it)."""
import collections
import inspect
import threading
import weakref
import time
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple,
                    Union)

from . import _websock as _ws
from ._base import log
from ._config import parse_remote
from ._errors import (InvalidArgument, NoMemory, NoSuchClient, StateError, TooBig, check,
                      error_for)

__all__ = ["ACCEPT", "DEFER", "Headers", "Request", "Upgrade", "Pending", "Opening",
           "Negotiation", "Response", "http_response", "respond_now", "run_hook"]

# The hook's answers (enum websock_handshake_answer of <websock/request.h>).
ACCEPT: int = _ws.ACCEPT
DEFER: int = _ws.DEFER

Body = Union[str, bytes, bytearray, memoryview]
_INVALID = InvalidArgument.code
_NOMEM = NoMemory.code
_GONE = NoSuchClient.code
_TOO_BIG = TooBig.code
HeaderPairs = List[Tuple[str, str]]


class Headers(Mapping[str, str]):
    """The request's headers: a read-only, case-insensitive mapping in the
    order received. ``headers[name]`` and ``headers.get(name)`` give the
    first value of a header sent several times; ``get_all(name)`` gives
    every value; ``raw_items()`` the ``(name, value)`` pairs as sent. (Every
    connection keeps its request's headers: the lookup table is made on
    the first lookup only.)"""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Any = ()) -> None:
        self._items: Tuple[Tuple[str, str], ...] = tuple((str(n), str(v)) for n, v in items)
        # lower-case name -> (first spelling, values); made when first needed
        self._index: Optional[Dict[str, Tuple[str, List[str]]]] = None

    def _lookup(self) -> Dict[str, Tuple[str, List[str]]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                entry = index.get(name.lower())
                if entry is None:
                    index[name.lower()] = (name, [value])
                else:
                    entry[1].append(value)
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        entry = self._lookup().get(name.lower()) if isinstance(name, str) else None
        if entry is None:
            raise KeyError(name)
        return entry[1][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter([entry[0] for entry in self._lookup().values()])

    def __len__(self) -> int:
        return len(self._lookup())

    def get_all(self, name: str) -> List[str]:
        """Every value of header ``name`` in the order sent (empty if none)."""
        entry = self._lookup().get(name.lower())
        return list(entry[1]) if entry is not None else []

    def raw_items(self) -> List[Tuple[str, str]]:
        """Every ``(name, value)`` pair, in order, names as sent."""
        return list(self._items)

    def __repr__(self) -> str:
        return "Headers(%r)" % (self.raw_items(),)


def _status(status: Any, low: int, what: str) -> int:
    if (isinstance(status, bool) or not isinstance(status, int) or not low <= status <= 599 or
            status == 101):
        raise error_for(_INVALID, "%s must be an int in %d..599%s, not %r" % (
            what, low, " but 101" if low < 101 else "", status))
    return int(status)


def _header_error(rc: int, name: str, value: str) -> Exception:
    if rc == _TOO_BIG:
        return error_for(rc, "response headers: more than 4096 bytes with %r" % (name,))
    if rc == _INVALID:
        return error_for(rc, "response header %r: %r is not allowed (the library writes "
                             "Connection, Content-Length, Transfer-Encoding, Upgrade and "
                             "Sec-WebSocket-* itself; names are HTTP tokens; values have no "
                             "CR, LF or other control characters)" % (name, value))
    return error_for(rc)


def header_pairs(headers: Any, what: str = "headers") -> HeaderPairs:
    """``(name, value)`` pairs of a headers-like value: None, a mapping
    (``raw_items()`` when it has one, as websockets' and our
    :class:`Headers`), or an iterable of pairs."""
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        raw = getattr(headers, "raw_items", None)
        items: Iterable[Any] = raw() if callable(raw) else headers.items()
    elif isinstance(headers, (str, bytes)):
        raise TypeError("%s must be a mapping or (name, value) pairs, not %s"
                        % (what, type(headers).__name__))
    else:
        items = headers
    pairs = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("%s must be a mapping or (name, value) pairs, not %r"
                            % (what, item)) from None
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("%s: name and value must be str, not %r" % (what, (name, value)))
        pairs.append((name, value))
    return pairs


def _body(body: Any) -> Optional[Body]:
    if body is None or isinstance(body, (str, bytes, bytearray, memoryview)):
        return body
    raise TypeError("body must be str, bytes-like or None, not %s" % type(body).__name__)


def _content_type(content_type: Any) -> Optional[str]:
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError("content_type must be str or None, not %s" % type(content_type).__name__)
    return content_type


class Opening:
    """The requests of upgrades the handshake let through (accepted, or
    deferred and waiting), under the id their connection has and keeps
    (``websock_request_id``, the OPEN event's id), until the OPEN event of
    that connection takes them (``conn.request``). Refused requests leave
    at once. What no OPEN ever takes (the client left between the answer
    and the 101, or the 101 could not be written) is dropped ``ttl``
    seconds later, so the table stays bounded."""

    __slots__ = ("_lock", "_reqs", "_ttl")

    def __init__(self, ttl: float) -> None:
        self._lock = threading.Lock()
        # id -> (request, when it may be dropped), the oldest first
        self._reqs: "collections.OrderedDict[int, Tuple[Request, float]]" = \
            collections.OrderedDict()
        self._ttl = ttl

    def add(self, req: "Request") -> None:
        if not req.id:
            return  # no connection to give it to (cannot happen in the hook)
        now = time.monotonic()
        with self._lock:
            reqs = self._reqs
            while reqs:  # the oldest first: stop at the first one still young
                oldest = next(iter(reqs.values()))
                if oldest[1] > now:
                    break
                reqs.popitem(last=False)
            reqs[req.id] = (req, now + self._ttl)
            reqs.move_to_end(req.id)

    def take(self, ev: Any) -> Optional["Request"]:
        """The request of the connection an OPEN event record opened."""
        with self._lock:
            entry = self._reqs.pop(ev.id, None)
        return entry[0] if entry is not None else None

    def discard(self, req: "Request") -> None:
        with self._lock:
            entry = self._reqs.get(req.id)
            if entry is not None and entry[0] is req:
                del self._reqs[req.id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._reqs)


class Pending:
    """The unanswered upgrades of one server, held weakly (a handle dropped
    unanswered refuses itself). ``refuse_all()`` answers every one still
    waiting with 503; a server calls it on stop and again once its threads
    are joined, so that every handle is completed before the core server
    is freed. A refused handle's request leaves ``opening``."""

    __slots__ = ("_lock", "_set", "opening")

    def __init__(self, opening: Optional[Opening] = None) -> None:
        self._lock = threading.Lock()
        self._set: "weakref.WeakSet[Upgrade]" = weakref.WeakSet()
        self.opening = opening

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

    def accept(self, subprotocol: Optional[str] = None, headers: Any = None) -> None:
        """Accepts the upgrade: the client gets 101 and the connection opens
        (``on_open`` follows). ``subprotocol``: one the client offered, or
        None for the one chosen with ``req.select_subprotocol()`` in the
        handler (none if it chose none). ``headers`` (a mapping or ``(name,
        value)`` pairs) go into the 101, e.g. Set-Cookie. An unoffered
        subprotocol or a header the library writes itself raises
        :class:`InvalidArgument` and leaves the handle unanswered."""
        if subprotocol is None:
            subprotocol = self.request.subprotocol
        elif not isinstance(subprotocol, str):
            raise TypeError("subprotocol must be str or None")
        elif subprotocol not in self.request.subprotocols:
            raise error_for(_INVALID, "subprotocol %r was not offered (offered: %s)" % (
                subprotocol, ", ".join(self.request.subprotocols) or "none"))
        pairs = header_pairs(headers)
        with self._lock:
            ptr = self._take()
            self._add_headers(ptr, pairs)
            self._done(_ws.websock_upgrade_accept(ptr, subprotocol), accepted=True)

    def reject(self, status: int, body: Optional[Body] = None,
               content_type: Optional[str] = None, headers: Any = None) -> None:
        """Refuses the upgrade with HTTP ``status`` (200..599 but 101: 401,
        403, or a 302 with a Location header), ``body`` (str as UTF-8, or
        bytes-like; None for the status's default text), ``content_type``
        (None: text/plain) and ``headers`` (a mapping or ``(name, value)``
        pairs, e.g. WWW-Authenticate, Location)."""
        status = _status(status, 200, "status")
        body = _body(body)
        content_type = _content_type(content_type)
        pairs = header_pairs(headers)
        with self._lock:
            ptr = self._take()
            self._add_headers(ptr, pairs)
            self._done(_ws.websock_upgrade_reject(ptr, status, content_type, body))

    # -- internals (the caller holds self._lock) ---------------------------
    def _take(self) -> Any:
        if self._ptr is None:
            assert self._spent is not None
            raise self._spent
        return self._ptr

    @staticmethod
    def _add_headers(ptr: Any, pairs: HeaderPairs) -> None:
        for name, value in pairs:
            rc = _ws.websock_upgrade_add_response_header(ptr, name, value)
            if rc:
                raise _header_error(rc, name, value)

    def _done(self, rc: int, accepted: bool = False) -> None:
        """Acts on the core's answer: the handle is consumed on every result
        but InvalidArgument and NoMemory."""
        if rc in (_INVALID, _NOMEM):
            raise error_for(rc)
        self._ptr = None
        if self._pending is not None:
            self._pending.discard(self)
            if not (accepted and rc == 0) and self._pending.opening is not None:
                self._pending.opening.discard(self.request)
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
    """The HTTP request the handshake sees (a WebSocket upgrade or a plain
    HTTP request, see ``is_upgrade``), copied from the core: its fields stay
    readable after the handler returned, and an upgrade's request stays on
    its connection as ``conn.request``. ``method``, ``path`` (without the
    query), ``query`` (without ``?``; None if none), ``headers``
    (:class:`Headers`), ``origin`` (None if no Origin header),
    ``remote_addr`` (``"ip:port"``) and ``remote_address`` (``(host,
    port)``), ``sni`` (the TLS server name, None without TLS or SNI),
    ``tls_peer`` (the subject of the client's verified certificate,
    "CN=alice,O=Example", None without one), ``subprotocols`` (offered by
    the client, in its order), ``id`` (the id the connection has, and keeps
    once accepted: ``conn.id`` of the connection this request opens).

    ``select_subprotocol(name)``, ``add_response_header(name, value)`` and
    ``defer()`` work only while the hook runs (then they raise
    :class:`StateError`)."""

    __slots__ = ("is_upgrade", "method", "path", "query", "headers", "origin",
                 "remote_addr", "sni", "subprotocols", "tls_peer", "id", "_ptr",
                 "_pending", "_upgrade", "_subprotocol", "_answered")

    def __init__(self, ptr: Any, pending: Optional[Pending] = None) -> None:
        (is_upgrade, method, path, query, headers, origin, remote, sni,
         protos, tls_peer, conn_id) = _ws.pyws_request_read(ptr)
        self.is_upgrade: bool = is_upgrade
        self.method: str = method
        self.path: str = path
        self.query: Optional[str] = query
        self.headers = Headers(headers)
        self.origin: Optional[str] = origin
        self.remote_addr: Optional[str] = remote
        self.sni: Optional[str] = sni
        self.subprotocols: Tuple[str, ...] = protos
        self.tls_peer: Optional[str] = tls_peer
        self.id: int = conn_id
        self._ptr = ptr
        self._pending = pending
        self._upgrade: Optional[Upgrade] = None
        self._subprotocol: Optional[str] = None
        self._answered = False  # respond() was called in the hook

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

    def add_response_header(self, name: str, value: str) -> None:
        """Adds ``name: value`` to whatever answer this request gets (the
        101, a refusal, a plain HTTP answer): Set-Cookie, WWW-Authenticate,
        Location. Raises :class:`InvalidArgument` for a header the library
        writes itself (Connection, Content-Length, Content-Type,
        Transfer-Encoding, Upgrade, Sec-WebSocket-*) or a CR, LF or control
        character, :class:`TooBig` past 4096 bytes of header lines."""
        ptr = self._live("add_response_header")
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header name and value must be str")
        rc = _ws.websock_request_add_response_header(ptr, name, value)
        if rc:
            raise _header_error(rc, name, value)

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

    def _respond(self, status: int, content_type: Optional[str], body: Any) -> None:
        """Answers in the hook (any request; an upgrade is refused so)."""
        check(_ws.websock_request_respond(self._live("respond"), status, content_type,
                                          body if body is not None else b""), "respond")
        self._answered = True

    def __repr__(self) -> str:
        return "<libwebsock2.Request %s %s%s%s>" % (
            self.method, self.path, "?" + self.query if self.query else "",
            "" if self.is_upgrade else " (plain HTTP)")


# -- HTTP responses (process_request) ---------------------------------------

class Response(Tuple[int, HeaderPairs, Optional[str], bytes]):
    """An HTTP answer: (status, header pairs without Content-Type and
    Content-Length, content type or None, body)."""

    __slots__ = ()

    def __new__(cls, status: int, headers: HeaderPairs, content_type: Optional[str],
                body: bytes) -> "Response":
        return tuple.__new__(cls, (status, headers, content_type, body))

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    content_type = property(lambda self: self[2])
    body = property(lambda self: self[3])


_PR_RETURNS = "None or (status, headers, body)"


def http_response(result: Any, is_upgrade: bool, what: str = "process_request") -> \
        Optional[Response]:
    """The :class:`Response` of what ``process_request`` returned: None
    (go on), ``(status, headers, body)`` as in websockets (status an int or
    ``http.HTTPStatus``; headers a mapping or ``(name, value)`` pairs, where
    Content-Type gives the content type and Content-Length is left to the
    library; body str (UTF-8) or bytes-like), or an object with
    ``status_code``, ``headers`` and ``body`` (websockets' newer
    ``Response``)."""
    if result is None:
        return None
    if isinstance(result, tuple) and len(result) == 3:
        status, headers, body = result
    elif all(hasattr(result, a) for a in ("status_code", "headers", "body")):
        status, headers, body = result.status_code, result.headers, result.body
    else:
        raise TypeError("%s must return %s, not %r" % (what, _PR_RETURNS, result))
    status = _status(status, 200 if is_upgrade else 100, "the status %s returned" % what)
    pairs, content_type = [], None
    for name, value in header_pairs(headers, "the headers %s returned" % what):
        low = name.lower()
        if low == "content-type":
            content_type = value
        elif low != "content-length":  # the library writes the right one
            pairs.append((name, value))
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        raise TypeError("the body %s returned must be str or bytes-like, not %s"
                        % (what, type(body).__name__))
    return Response(status, pairs, content_type, data)


def respond_now(req: Request, resp: Response) -> None:
    """Answers ``req`` in the hook with ``resp``."""
    for name, value in resp.headers:
        req.add_response_header(name, value)
    req._respond(resp.status, resp.content_type, resp.body)


def reject_later(up: Upgrade, resp: Response) -> None:
    """Refuses the deferred ``up`` with ``resp``."""
    up.reject(resp.status, resp.body, resp.content_type, resp.headers)


# -- the websockets keywords ------------------------------------------------

class Negotiation:
    """The handshake keywords of websockets for one server: ``origins``
    (allowed Origin values; None in the list allows a request without
    one; others get 403), ``subprotocols`` (ours, in order of preference:
    the first one the client offered is chosen), ``select_subprotocol``
    (``fn(request, offered)`` -> one of ``offered`` or None, instead of the
    list), ``process_request`` (``fn(request)`` -> None to go on, or
    ``(status, headers, body)`` to answer with that) and ``extra_headers``
    (headers for the 101: a mapping, pairs, or ``fn(request)`` returning
    one). The front end decides where each runs."""

    __slots__ = ("origins", "subprotocols", "select_subprotocol", "process_request",
                 "extra_headers")

    def __init__(self, origins: Optional[Iterable[Optional[str]]] = None,
                 subprotocols: Optional[Iterable[str]] = None,
                 select_subprotocol: Optional[Callable[..., Optional[str]]] = None,
                 process_request: Optional[Callable[[Request], Any]] = None,
                 extra_headers: Any = None) -> None:
        if origins is not None:
            if isinstance(origins, str):
                raise TypeError("origins must be a list of origins (str, or None for "
                                "requests without an Origin header), not a str")
            origins = tuple(origins)
            for o in origins:
                if o is not None and not isinstance(o, str):
                    raise TypeError("origins must hold str or None, not %r" % (o,))
        if subprotocols is not None:
            if isinstance(subprotocols, str):
                raise TypeError("subprotocols must be a list of str, not a str")
            subprotocols = tuple(subprotocols)
            for p in subprotocols:
                if not isinstance(p, str):
                    raise TypeError("subprotocols must hold str, not %r" % (p,))
        for name, fn in (("select_subprotocol", select_subprotocol),
                         ("process_request", process_request)):
            if fn is not None and not callable(fn):
                raise TypeError("%s must be callable, not %r" % (name, fn))
        if extra_headers is not None and not callable(extra_headers):
            header_pairs(extra_headers, "extra_headers")  # checked now, not per request
        self.origins: Optional[Tuple[Optional[str], ...]] = origins
        self.subprotocols: Optional[Tuple[str, ...]] = subprotocols
        self.select_subprotocol = select_subprotocol
        self.process_request = process_request
        self.extra_headers = extra_headers

    @property
    def runs_code(self) -> bool:
        """Whether the negotiation calls user code (else it is data only)."""
        return (self.process_request is not None or self.select_subprotocol is not None or
                callable(self.extra_headers))

    def origin_refusal(self, req: Request) -> Optional[Response]:
        """403 for an Origin not in ``origins`` (websockets' body)."""
        if self.origins is None or req.origin in self.origins:
            return None
        why = ("missing Origin header" if req.origin is None
               else "invalid Origin header: %s" % req.origin)
        return Response(403, [], None,
                        ("Failed to open a WebSocket connection: %s.\n" % why).encode())

    def choose_subprotocol(self, req: Request) -> Optional[str]:
        offered = req.subprotocols
        if self.select_subprotocol is not None:
            chosen = self.select_subprotocol(req, offered)
            if chosen is not None and (not isinstance(chosen, str) or chosen not in offered):
                raise error_for(_INVALID, "select_subprotocol returned %r, which the client did "
                                          "not offer (offered: %s)"
                                % (chosen, ", ".join(offered) or "none"))
            return chosen
        for name in self.subprotocols or ():
            if name in offered:
                return name
        return None

    def headers_101(self, req: Request) -> HeaderPairs:
        extra = self.extra_headers
        if callable(extra):
            extra = extra(req)
        return header_pairs(extra, "extra_headers")


def negotiate_now(neg: Negotiation, req: Request, opening: Optional[Opening]) -> bool:
    """The part of the negotiation after ``process_request``, answered in
    the hook: refuses (True) or selects the subprotocol, adds the 101's
    headers and records the request for its connection (False: go on)."""
    refusal = neg.origin_refusal(req)
    if refusal is not None:
        respond_now(req, refusal)
        return True
    chosen = neg.choose_subprotocol(req)
    if chosen is not None:
        req.select_subprotocol(chosen)
    for name, value in neg.headers_101(req):
        req.add_response_header(name, value)
    if opening is not None:
        opening.add(req)
    return False


async def negotiate_later(neg: Negotiation, up: Upgrade) -> None:
    """The whole negotiation of a deferred upgrade (asyncio: on the loop;
    ``process_request`` may be a coroutine function): answers ``up``. An
    exception is logged and answered with 500."""
    req = up.request
    stage = "process_request"
    try:
        if neg.process_request is not None:
            result = neg.process_request(req)
            if inspect.isawaitable(result):
                result = await result
            resp = http_response(result, True)
            if resp is not None:
                reject_later(up, resp)
                return
        stage = "the handshake (origins, subprotocols, extra_headers)"
        refusal = neg.origin_refusal(req)
        if refusal is not None:
            reject_later(up, refusal)
            return
        up.accept(neg.choose_subprotocol(req), neg.headers_101(req))
    except NoSuchClient:
        pass  # the client left, or the handshake timeout answered 503
    except Exception:
        log.exception("libwebsock2: %s raised for %s %s", stage, req.method, req.path)
        up._finish_quietly(500, "the handshake raised; refused with 500")


# -- the threaded server's hook ---------------------------------------------

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
    """The hook's answer for the ``handshake=`` handler's return value."""
    up = req._upgrade
    if up is not None:  # deferred: the handle answers
        if result is None or result is up or (type(result) is int and result == DEFER):
            return DEFER
        if isinstance(result, Upgrade):
            raise TypeError("the handshake handler returned another request's Upgrade")
        _refuse(up, *_refusal(result, 200))
        return DEFER
    if result is None:
        return ACCEPT
    if isinstance(result, Upgrade) or (type(result) is int and result == DEFER):
        raise TypeError("the handshake handler returned DEFER without calling req.defer()")
    status, body, ctype = _refusal(result, 200 if req.is_upgrade else 100)
    if isinstance(result, int) or (req.is_upgrade and status >= 400 and body is None and
                                   ctype is None):
        return status  # the core answers with the status's default text
    req._respond(status, ctype, body)
    return ACCEPT  # ignored by the core: the response goes out


def _failed(req: Optional[Request], status: int) -> int:
    """The answer after the handler raised: ``status``, through the handle
    if it deferred."""
    up = req._upgrade if req is not None else None
    if up is None:
        return status
    up._finish_quietly(status, "the handshake handler raised; refused with %d" % status)
    return DEFER


def run_hook(handler: Optional[Callable[[Request], Any]], ptr: Any,
             pending: Optional[Pending], negotiation: Optional[Negotiation] = None,
             opening: Optional[Opening] = None) -> int:
    """Answers the core's request pointer ``ptr`` (valid during this call
    only) in the hook: ``negotiation.process_request``, then for an upgrade
    the Origin check and the subprotocol, then ``handler(Request)`` (the
    ``handshake=`` handler) if any. Returns the hook's answer: ACCEPT, an
    HTTP status, or DEFER (answered by the :class:`Upgrade`). An exception,
    or a return value a handler may not give, is logged (logger
    ``libwebsock2``) and answered with 500."""
    if (handler is None and (negotiation is None or negotiation.process_request is None) and
            not _ws.websock_request_is_upgrade(ptr)):
        return ACCEPT  # a plain request nobody looks at: the core's default answer
    req = None
    stage = "the handshake handler"
    try:
        req = Request(ptr, pending)
        if negotiation is not None and negotiation.process_request is not None:
            stage = "process_request"
            result = negotiation.process_request(req)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never awaited: no "never awaited" warning
                raise TypeError("process_request returned an awaitable: a coroutine "
                                "function needs libwebsock2.aio; the threaded Server runs "
                                "it on an agent, where a plain function may block")
            resp = http_response(result, req.is_upgrade)
            if resp is not None:
                respond_now(req, resp)
                return ACCEPT
        if req.is_upgrade:
            if negotiation is not None:
                stage = "the handshake (origins, subprotocols, extra_headers)"
                if negotiate_now(negotiation, req, opening):
                    return ACCEPT
            elif opening is not None:
                opening.add(req)
        if handler is None:
            return ACCEPT
        stage = "the handshake handler"
        answer = _answer(req, handler(req))
        if req.is_upgrade and opening is not None and answer not in (ACCEPT, DEFER):
            opening.discard(req)  # refused with a status
        elif req._answered and opening is not None:
            opening.discard(req)
        return answer
    except Exception:
        if req is None:
            log.exception("libwebsock2: reading the handshake request failed")
        else:
            if opening is not None:
                opening.discard(req)
            log.exception("libwebsock2: %s raised for %s %s", stage, req.method, req.path)
        return _failed(req, 500)
    finally:
        if req is not None:
            req._ptr = None  # the core's request ends with this call
            req._upgrade = None  # no Request -> Upgrade -> Request cycle
