"""Client mode: outgoing ws:// and wss:// connections (issue #15).

``libwebsock2.connect(url, ...)`` (threads) and ``libwebsock2.aio.connect``
(asyncio) run their connections on one hidden core server of the process,
made on the first connect: client-only (no listening socket), one I/O
thread, one agent in DIRECT delivery. The agent runs the trampoline with
the GIL (its thread state pinned, as for :class:`libwebsock2.Server`); the
Python dispatcher there only routes each event to its connection: a
threaded connection's inbox (a deque and a condition), or an asyncio
connection's loop (one ``call_soon_threadsafe`` per batch of events, see
:class:`LoopInbox`). No user code runs on the agent. The hidden server is
stopped and joined at interpreter exit (never freed: a daemon thread may
still hold a connection).

``Server.connect(url, ...)`` dials from an existing server instead: the
outgoing connection's events reach that server's handlers like an accepted
one's.

The dial registry (:class:`Dialer`, one per core server) maps the id
``websock_server_connect`` returns to the caller's waiter. The OPEN or the
CLOSE of a fast failure may reach the agent before the caller has that id
(the connect call releases the GIL): while a connect is under way the
dispatcher takes the dial lock, which the connecting thread holds until it
has registered its id. The lock also guards the cache of
``websock_connect_options`` objects (not thread-safe in C): one per set of
options, so many connects with one CA file load it once."""
import atexit
import collections
import concurrent.futures
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import _websock as _ws
from ._base import (EV_CLOSE, EV_DRAIN, EV_MESSAGE, EV_OPEN, EV_PONG, BaseConnection,
                    Payload, close_error, log)
from ._config import TLS, invalid, make_server
from ._errors import (Backpressure, Closing, ConnectionClosedOK, Error, InvalidURI,
                      NoSuchClient, OpenTimeout, StateError, TLSError, check, connect_error,
                      error_for)

__all__ = ["connect", "ClientConnection", "ConnectPlan", "make_plan", "Dialer", "hub"]

_BACKPRESSURE = Backpressure.code
_ENDED = (NoSuchClient.code, Closing.code)
_INVALID_CODE = _ws.ERR_INVALID
_OPTIONS_CACHE = 32          # connect options objects kept per core server
_WAIT_MARGIN = 5.0           # seconds we wait past open_timeout for the core's CLOSE
_MAX_SIZE_NONE = 2 ** 63 - 1  # max_size=None: no limit
DEFAULT_MAX_SIZE = 2 ** 20
DEFAULT_OPEN_TIMEOUT = 10.0
HUB_CLOSE_TIMEOUT = 5.0      # the hidden server's close timeout (the core's default)


# -- the arguments ------------------------------------------------------------

class ConnectPlan:
    """The checked arguments of one connect; ``key`` names the options
    object that carries them (everything but the URL)."""

    __slots__ = ("url", "key", "open_timeout")

    def __init__(self, url: str, key: Tuple[Any, ...], open_timeout: float) -> None:
        self.url = url
        self.key = key
        self.open_timeout = open_timeout


def _headers(extra_headers: Any) -> Tuple[Tuple[str, str], ...]:
    if extra_headers is None:
        return ()
    if isinstance(extra_headers, Mapping):
        items: Iterable[Any] = extra_headers.items()
    elif hasattr(extra_headers, "raw_items"):  # libwebsock2.Headers, websockets' Headers
        items = extra_headers.raw_items()
    elif isinstance(extra_headers, (str, bytes)):
        raise TypeError("extra_headers must be a mapping or (name, value) pairs, not %s"
                        % type(extra_headers).__name__)
    else:
        items = extra_headers
    out = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("extra_headers must be a mapping or (name, value) pairs, "
                            "not %r" % (item,)) from None
        if not isinstance(name, str) or not isinstance(value, (str, int)):
            raise TypeError("extra_headers: a header's name must be str and its value str "
                            "(or int), not %r" % ((name, value),))
        out.append((name, str(value)))
    return tuple(out)


def _tls(url: str, ssl: Any) -> Tuple[Optional[str], int]:
    """(CA file or None for the system's store, verify 1/0)."""
    secure = url[:6].lower() == "wss://"
    if ssl is None:
        return None, 1
    if not secure and url[:5].lower() == "ws://":
        raise invalid("ssl=%r was given for the ws:// URL %s: use wss:// (or drop ssl)"
                      % (ssl, url))
    if ssl is True:
        return None, 1
    if ssl is False or (isinstance(ssl, str) and ssl == "insecure"):
        return None, 0
    if isinstance(ssl, TLS):
        raise TypeError(
            "ssl=libwebsock2.TLS(...) describes a server's own certificate; a client takes "
            "ssl='ca.pem' (the CA file to trust), True or None (the system's CAs), or "
            "False / 'insecure' (no verification, for tests)")
    if isinstance(ssl, (str, bytes)) or hasattr(ssl, "__fspath__"):
        return os.fsdecode(ssl), 1
    raise TypeError(
        "ssl must be None or True (verify with the system's CAs), a CA file path, or False / "
        "'insecure' (no verification), not %s; an ssl.SSLContext cannot be handed to the C "
        "core (see libwebsock2.TLS)" % type(ssl).__name__)


def make_plan(url: Any, *, subprotocols: Optional[Iterable[str]] = None,
              extra_headers: Any = None, ssl: Any = None, compression: Any = "deflate",
              max_size: Optional[int] = DEFAULT_MAX_SIZE,
              open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT) -> ConnectPlan:
    """Checks connect()'s arguments (TypeError / InvalidArgument naming the
    argument) and returns their :class:`ConnectPlan`."""
    if not isinstance(url, str):
        raise TypeError("url must be str, not %s" % type(url).__name__)
    if not url[:6].lower() in ("wss://",) and not url[:5].lower() == "ws://":
        raise InvalidURI("%s: bad URL: scheme is not ws:// or wss://" % (url,),
                         InvalidURI.code, url=url)
    if subprotocols is None:
        protos: Tuple[str, ...] = ()
    elif isinstance(subprotocols, (str, bytes)):
        raise TypeError("subprotocols must be a list of str, not a single %s"
                        % type(subprotocols).__name__)
    else:
        protos = tuple(subprotocols)
        for p in protos:
            if not isinstance(p, str):
                raise TypeError("subprotocols must be a list of str, not %r" % (p,))
    headers = _headers(extra_headers)
    cafile, verify = _tls(url, ssl)
    if compression is None:
        deflate = 0
    elif isinstance(compression, str) and compression == "deflate":
        deflate = 1
    else:
        raise invalid("compression must be 'deflate' or None, not %r" % (compression,))
    if max_size is None:
        limit = _MAX_SIZE_NONE
    elif isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise invalid("max_size must be an int >= 1 (bytes) or None (no limit), not %r"
                      % (max_size,))
    else:
        limit = min(max_size, _MAX_SIZE_NONE)
    if open_timeout is None:
        seconds = 3600.0
    elif (isinstance(open_timeout, bool) or not isinstance(open_timeout, (int, float)) or
          not 0.001 <= open_timeout <= 3600):
        raise invalid("open_timeout must be seconds in 0.001..3600 (None: 3600), not %r"
                      % (open_timeout,))
    else:
        seconds = float(open_timeout)
    key = (protos, headers, int(round(seconds * 1000)), cafile, verify, limit, deflate)
    return ConnectPlan(url, key, seconds)


def _new_options(key: Tuple[Any, ...]) -> Any:
    protos, headers, timeout_ms, cafile, verify, limit, deflate = key
    o = _ws.websock_connect_options_new()
    if o is None:
        raise error_for(_ws.ERR_NOMEM)
    try:
        for p in protos:
            if _ws.websock_connect_options_add_subprotocol(o, p):
                raise invalid("subprotocols: %r is not a token (RFC 7230), or more than 16 "
                              "were given" % (p,))
        for name, value in headers:
            if _ws.websock_connect_options_add_header(o, name, value):
                raise invalid(
                    "extra_headers: %r refused: the name must be a token other than Host, "
                    "Upgrade, Connection, Content-Length, Transfer-Encoding and "
                    "Sec-WebSocket-* (use subprotocols=), the value without control "
                    "characters, 8 KiB in all" % ((name, value),))
        check(_ws.websock_connect_options_set_timeout_ms(o, timeout_ms), "open_timeout")
        if cafile is not None:
            check(_ws.websock_connect_options_set_tls_ca_file(o, cafile), "ssl")
        check(_ws.websock_connect_options_set_tls_verify(o, verify), "ssl")
        check(_ws.websock_connect_options_set_max_message_size(o, limit), "max_size")
        check(_ws.websock_connect_options_set_deflate(o, deflate), "compression")
    except BaseException:
        _ws.websock_connect_options_free(o)
        raise
    return o


# -- the dial registry ------------------------------------------------------------

class Dialer:
    """The outgoing connections of one core server between
    websock_server_connect and their OPEN (or the CLOSE of a failure), and
    the cache of connect options. See the module docstring for the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dials: Dict[int, Any] = {}
        self.inflight = 0
        self._options: "collections.OrderedDict[Tuple[Any, ...], Any]" = \
            collections.OrderedDict()
        self._closed = False

    def dial(self, s: Any, plan: ConnectPlan, entry: Any) -> int:
        """Starts the connect and registers ``entry`` under its id; raises
        InvalidURI (a bad URL), TLSError (the CA file), StateError, ..."""
        with self.lock:
            if self._closed:
                raise error_for(StateError.code, "the server has stopped")
            opts = self._options.get(plan.key)
            if opts is None:
                opts = _new_options(plan.key)
                self._options[plan.key] = opts
                while len(self._options) > _OPTIONS_CACHE:
                    _, old = self._options.popitem(last=False)
                    _ws.websock_connect_options_free(old)
            else:
                self._options.move_to_end(plan.key)
            self.inflight += 1
            try:
                rc, conn_id = _ws.websock_server_connect(s, plan.url, opts)
                if rc:
                    why = _ws.websock_connect_error() or _ws.websock_strerror(rc)
                    if rc == _INVALID_CODE:
                        raise InvalidURI("%s: %s" % (plan.url, why), rc, url=plan.url)
                    if rc == TLSError.code:
                        raise TLSError("cannot connect to %s: %s" % (plan.url, why), rc)
                    raise error_for(rc, "cannot connect to %s: %s" % (plan.url, why))
                entry.id = conn_id
                self.dials[conn_id] = entry
            finally:
                self.inflight -= 1
        return conn_id

    def pop(self, conn_id: int) -> Optional[Any]:
        """The entry of ``conn_id`` (removed), or None. Fast when no dial is
        under way nor waiting (every accepted connection's OPEN asks)."""
        dials = self.dials
        if not dials and not self.inflight:
            return None
        entry = dials.pop(conn_id, None)
        if entry is None and self.inflight:
            with self.lock:  # a connect under way may be about to register it
                entry = dials.pop(conn_id, None)
        return entry

    def get(self, conn_id: int) -> Optional[Any]:
        entry = self.dials.get(conn_id)
        if entry is None and self.inflight:
            with self.lock:
                entry = self.dials.get(conn_id)
        return entry

    def close(self) -> None:
        """Frees the cached options (after the core server was joined)."""
        with self.lock:
            self._closed = True
            while self._options:
                _, o = self._options.popitem()
                _ws.websock_connect_options_free(o)


# -- the hidden client-only server --------------------------------------------

class Hub:
    """The process's hidden client-only core server (see the module
    docstring). Looks like a server to the connection classes (``_s``,
    ``_close_timeout``, ``close_client``)."""

    def __init__(self) -> None:
        self._h = make_server(host="127.0.0.1", port=0, agents=1, queued=False,
                              io_threads=1, client_only=True, control_events=True,
                              compression="deflate", close_timeout=HUB_CLOSE_TIMEOUT,
                              # Each connect sets its own limit (max_size); the
                              # config's message limit is also the default frame
                              # limit (config.c), which would cap a larger max_size
                              # at 1 MiB per frame: keep both out of the way.
                              max_message_size=_MAX_SIZE_NONE)
        self._s = _ws.pyws_handle(self._h)
        self._close_timeout = HUB_CLOSE_TIMEOUT
        self.dialer = Dialer()
        # id -> entry of every connection from connect to CLOSE
        self._entries: Dict[int, Any] = {}
        self._stopped = False
        _ws.pyws_set_dispatch(self._h, self._dispatch)
        rc = _ws.websock_server_start(self._s)
        if rc:
            _ws.pyws_set_dispatch(self._h, None)
            _ws.pyws_server_free(self._h)
            raise error_for(rc, "cannot start the client's core server")

    def dial(self, plan: ConnectPlan, entry: Any) -> int:
        return self.dialer.dial(self._s, plan, entry)

    def close_client(self, conn_id: int, code: int = _ws.CLOSE_NORMAL,
                     reason: str = "") -> None:
        rc = _ws.websock_server_close(self._s, conn_id, code, reason or None)
        if rc:
            raise close_error(rc, code)

    # the agent thread, GIL held: route only, never run user code here
    def _dispatch(self, ev: Any) -> None:
        conn_id = ev.id
        entry = self._entries.get(conn_id)
        if entry is None:
            entry = self.dialer.pop(conn_id)
            if entry is None:
                return
            self._entries[conn_id] = entry
        if ev.type == EV_CLOSE:
            self._entries.pop(conn_id, None)
        try:
            entry.event(ev)
        except Exception:  # pragma: no cover - a bug of ours; keep the agent alive
            log.exception("libwebsock2: routing an event of outgoing connection %d failed",
                          conn_id)

    def stop(self) -> None:
        """Stops and joins (the connections get 1001); never frees."""
        if self._stopped:
            return
        self._stopped = True
        _ws.websock_server_stop(self._s)
        _ws.websock_server_join(self._s)
        _ws.pyws_set_dispatch(self._h, None)
        self.dialer.close()


_hub: Optional[Hub] = None
_hub_lock = threading.Lock()
_exiting = False


def hub() -> Hub:
    """The hidden client server, made and started on first use."""
    global _hub
    h = _hub
    if h is not None:
        return h
    with _hub_lock:
        if _exiting:
            raise error_for(StateError.code, "the interpreter is exiting: no new connections")
        if _hub is None:
            _hub = Hub()
        return _hub


@atexit.register
def _stop_hub() -> None:
    global _exiting
    with _hub_lock:
        _exiting = True
        h = _hub
    if h is not None:
        try:
            h.stop()
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("libwebsock2: stopping the client server at exit failed")


# -- threaded connections ---------------------------------------------------------

def no_topics(self: Any, topic: Any) -> None:
    """Refused: a connection of :func:`connect` lives on the process's
    hidden client server, which nobody can publish on. Dial with
    ``Server.connect(url)`` instead: that server's ``publish`` reaches its
    outgoing connections' topics."""
    raise TypeError(
        "a connection of libwebsock2.connect() or libwebsock2.aio.connect() runs on the "
        "process's hidden client server, which nobody can publish on, so topics mean "
        "nothing there; dial with Server.connect(url) and subscribe that Connection (the "
        "Server's publish() reaches it)")


class ClientConnection(BaseConnection):
    """An outgoing connection for threaded code, returned by
    :func:`connect` once open. Every method is safe from any thread.
    ``recv()`` and iteration read the messages in order; ``send()`` waits
    while the core reports backpressure; ``close()`` waits for the close
    handshake. After the connection ended, ``send``/``recv``/``ping``
    raise :class:`ConnectionClosedOK` (1000, 1001) or
    :class:`ConnectionClosedError` with the close code and reason."""

    __slots__ = ("_cond", "_inbox", "_drained", "_done")
    _repr_name = "libwebsock2.ClientConnection"

    def __init__(self, server: Any, ev: Any, url: str, user_data: Any) -> None:
        super().__init__(server, ev)
        self.url = url
        self.data = user_data
        self._cond = threading.Condition(threading.Lock())
        self._inbox: "collections.deque[Union[str, bytes]]" = collections.deque()
        self._drained = threading.Event()
        self._done = threading.Event()  # the CLOSE event arrived

    # the agent thread
    def _event(self, ev: Any) -> None:
        etype = ev.type
        if etype == EV_MESSAGE:
            with self._cond:
                self._inbox.append(ev.data)
                self._cond.notify()
        elif etype == EV_CLOSE:
            self._ended(ev)
            with self._cond:
                self.closed = True
                self._cond.notify_all()
            self._drained.set()
            self._done.set()
        elif etype == EV_DRAIN:
            self._drained.set()
        elif etype == EV_PONG:
            self._got_pong(ev.data)

    # -- sending -----------------------------------------------------------
    def send(self, data: Payload, *, timeout: Optional[float] = None) -> None:
        """Sends one message: ``str`` as text, a bytes-like object as
        binary. While the core reports backpressure (the outbound queue is
        full) it waits for the queue to drain and retries; raises
        :class:`Backpressure` after ``timeout`` seconds (None: no limit),
        :class:`ConnectionClosed` when the connection ended."""
        s = self._server._s
        rc = _ws.websock_server_send(s, self.id, data)
        if not rc:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while rc == _BACKPRESSURE:
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._drained.clear()
            wait = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            self._drained.wait(wait)
            delay = min(delay * 2, 0.1)
            rc = _ws.websock_server_send(s, self.id, data)
        if rc:
            raise self._closed_error(rc) if rc in _ENDED else error_for(rc)

    def ping(self, data: Optional[Payload] = None) -> "concurrent.futures.Future[float]":
        """Sends a ping (``data``: up to 125 bytes, str as UTF-8; None: 4
        random bytes) and returns a :class:`concurrent.futures.Future` the
        matching pong resolves with the round-trip time in seconds
        (``ws.ping().result(timeout=5)``)."""
        return self._send_ping(data)

    def _ping_failed(self, rc: int) -> Error:
        return self._closed_error(rc) if rc in _ENDED else error_for(rc)

    def _new_waiter(self) -> "concurrent.futures.Future[float]":
        return concurrent.futures.Future()

    subscribe = unsubscribe = no_topics  # the hidden server publishes nothing

    def _settle(self, waiter: Any, result: Any = None,
                exc: Optional[BaseException] = None) -> None:
        try:
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass

    # -- receiving ---------------------------------------------------------
    def recv(self, timeout: Optional[float] = None) -> Union[str, bytes]:
        """The next message (str for text, bytes for binary), waiting up to
        ``timeout`` seconds (None: no limit; then TimeoutError). The
        messages that arrived before the close are returned first; then it
        raises :class:`ConnectionClosedOK` / :class:`ConnectionClosedError`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                if self.closed:
                    raise self._closed_error()
                if deadline is None:
                    self._cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        if self._inbox:
                            break
                        if self.closed:
                            raise self._closed_error()
                        raise TimeoutError("no message within %.3g s" % timeout)
            return self._inbox.popleft()

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        """The messages until the connection ends: the loop stops on a
        normal close (1000, 1001) and raises ConnectionClosedError on any
        other."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    # -- closing -----------------------------------------------------------
    def close(self, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake with ``code`` and ``reason`` and waits
        until the connection ended (at most the close timeout and a
        second). On a connection that is closed or closing it does
        nothing but wait (as in websockets)."""
        if self.close_code is None and self._sent_close is None:
            rc = _ws.websock_server_close(self._server._s, self.id, code, reason or None)
            if rc and rc not in _ENDED:
                raise close_error(rc, code)
            if not rc:
                self._sent_close = (code, reason)
        self.wait_closed()

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Waits until the connection ended (None: at most the close timeout
        and a second); True when it did."""
        if timeout is None:
            timeout = self._server._close_timeout + 1.0
        return self._done.wait(timeout)

    def __enter__(self) -> "ClientConnection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<%s id=%d url=%r%s>" % (self._repr_name, self.id, self.url,
                                       " closed" if self.closed else "")


class ThreadDial:
    """The hub's entry of a threaded connect: a Future until OPEN (or the
    CLOSE of a failure), then the connection's events."""

    __slots__ = ("id", "hub", "url", "user_data", "future", "conn", "abandoned")

    def __init__(self, hub: Hub, url: str, user_data: Any) -> None:
        self.id = 0
        self.hub = hub
        self.url = url
        self.user_data = user_data
        self.future: "concurrent.futures.Future[ClientConnection]" = concurrent.futures.Future()
        self.conn: Optional[ClientConnection] = None
        self.abandoned = False

    def event(self, ev: Any) -> None:  # the agent thread
        conn = self.conn
        if conn is not None:
            conn._event(ev)
            return
        if ev.type == EV_OPEN:
            conn = self.conn = ClientConnection(self.hub, ev, self.url, self.user_data)
            if self.abandoned:  # connect() gave up waiting
                _ws.websock_server_close(self.hub._s, ev.id, _ws.CLOSE_GOING_AWAY, None)
            try:
                self.future.set_result(conn)
            except concurrent.futures.InvalidStateError:
                pass
        elif ev.type == EV_CLOSE:
            try:
                self.future.set_exception(connect_error(self.url, ev.data))
            except concurrent.futures.InvalidStateError:
                pass


def connect(url: str, *, subprotocols: Optional[Iterable[str]] = None,
            extra_headers: Any = None, ssl: Any = None, compression: Any = "deflate",
            max_size: Optional[int] = DEFAULT_MAX_SIZE,
            open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
            user_data: Any = None) -> ClientConnection:
    """Connects to ``url`` (``ws://host[:port]/path?query`` or ``wss://``)
    and returns the open :class:`ClientConnection` (a context manager).

    ``subprotocols``: offered in order of preference (``ws.subprotocol`` is
    the one the server chose, or None); ``extra_headers``: request headers,
    a mapping or (name, value) pairs; ``ssl`` (wss:// only): None or True
    verifies the server with the system's CAs, a path a CA file (PEM) to
    trust instead, False or ``"insecure"`` checks no certificate (tests);
    ``compression``: ``"deflate"`` offers permessage-deflate, None does
    not; ``max_size``: the largest message accepted (bytes, None: no
    limit; a larger one closes with 1009); ``open_timeout``: seconds for
    the name lookup, TCP, TLS and the 101 together; ``user_data``: kept as
    ``ws.data``.

    Raises :class:`InvalidURI` for a bad URL, :class:`InvalidArgument` /
    TypeError for bad arguments, and for a connect that fails a
    :class:`ConnectError` naming the stage: :class:`ConnectionFailed`
    (resolve, connect), :class:`TLSHandshakeError`,
    :class:`InvalidStatus` (a status other than 101),
    :class:`InvalidHandshake`, :class:`OpenTimeout`."""
    plan = make_plan(url, subprotocols=subprotocols, extra_headers=extra_headers, ssl=ssl,
                     compression=compression, max_size=max_size, open_timeout=open_timeout)
    h = hub()
    dial = ThreadDial(h, plan.url, user_data)
    h.dial(plan, dial)
    try:
        return dial.future.result(plan.open_timeout + _WAIT_MARGIN)
    except concurrent.futures.TimeoutError:
        # (an OpenTimeout from the core is a TimeoutError too: let it pass)
        if dial.future.done():
            raise
        dial.abandoned = True
        raise OpenTimeout("cannot connect to %s: timeout: no CLOSE nor OPEN within %.3g s"
                          % (plan.url, plan.open_timeout + _WAIT_MARGIN), url=plan.url,
                          reason="timeout: no answer within %.3g s" % plan.open_timeout)
    except BaseException:
        if not dial.future.done():
            dial.abandoned = True
        raise


# -- asyncio: events to the connection's loop ------------------------------------

class LoopInbox:
    """Events of a loop's outgoing connections, handed over from the agent
    in batches: one ``call_soon_threadsafe`` while a batch waits, not one
    per event. When the loop has closed, its connections are closed
    (1001)."""

    def __init__(self, loop: Any, s: Any) -> None:
        # weak: the inbox is the value of a WeakKeyDictionary keyed by the loop
        self._loop = weakref.ref(loop)
        self._s = s
        self._lock = threading.Lock()
        self._items: List[Tuple[Any, Any]] = []
        self._scheduled = False
        self._dead = False

    def put(self, entry: Any, ev: Any) -> None:  # the agent thread
        with self._lock:
            if not self._dead:
                self._items.append((entry, ev))
                if self._scheduled:
                    return
                self._scheduled = True
                dead = False
            else:
                dead = True
        if not dead:
            loop = self._loop()
            try:
                if loop is None:
                    raise RuntimeError("the loop is gone")
                loop.call_soon_threadsafe(self._run)
                return
            except RuntimeError:  # the loop is closed
                with self._lock:
                    self._dead = True
                    items, self._items = self._items, []
                for _, e in items:
                    if e.type != EV_CLOSE:
                        _ws.websock_server_close(self._s, e.id, _ws.CLOSE_GOING_AWAY, None)
                return
        if ev.type != EV_CLOSE:
            _ws.websock_server_close(self._s, ev.id, _ws.CLOSE_GOING_AWAY, None)

    def _run(self) -> None:  # the loop
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        for entry, ev in items:
            try:
                entry.on_loop(ev)
            except Exception:  # pragma: no cover
                log.exception("libwebsock2: an event of outgoing connection %d failed", ev.id)


_inboxes: "weakref.WeakKeyDictionary[Any, LoopInbox]" = weakref.WeakKeyDictionary()
_inbox_lock = threading.Lock()


def loop_inbox(loop: Any, s: Any) -> LoopInbox:
    with _inbox_lock:
        box = _inboxes.get(loop)
        if box is None:
            box = _inboxes[loop] = LoopInbox(loop, s)
        return box


# -- Server.connect(): dials of a libwebsock2.Server / libwebsock2.aio.Server ------

class ServerDial:
    """The dial entry of ``Server.connect()``: ``waiter`` (a
    concurrent.futures.Future, or an asyncio future settled on its loop)
    gets the server's Connection at OPEN or the ConnectError at the CLOSE
    of a failure; the events themselves go to the server's handlers."""

    __slots__ = ("id", "url", "user_data", "waiter", "_settle")

    def __init__(self, url: str, user_data: Any, waiter: Any,
                 settle: Callable[[Any, Any, Optional[BaseException]], None]) -> None:
        self.id = 0
        self.url = url
        self.user_data = user_data
        self.waiter = waiter
        self._settle = settle

    def opened(self, conn: Any) -> None:
        self._settle(self.waiter, conn, None)

    def failed(self, ev: Any) -> None:
        self._settle(self.waiter, None, connect_error(self.url, ev.data))

    def stopped(self) -> None:
        self._settle(self.waiter, None,
                     connect_error(self.url, "stopped: the server stopped"))


def settle_future(fut: Any, result: Any, exc: Optional[BaseException]) -> None:
    """Settles a concurrent.futures.Future (any thread)."""
    try:
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by its owner


def server_dial(server: Any, url: str, waiter: Any,
                settle: Callable[[Any, Any, Optional[BaseException]], None],
                options: Dict[str, Any]) -> Tuple[ServerDial, ConnectPlan]:
    """Starts ``server``'s connect to ``url`` with connect()'s keywords in
    ``options`` (and ``user_data``)."""
    user_data = options.pop("user_data", None)
    plan = make_plan(url, **options)
    entry = ServerDial(plan.url, user_data, waiter, settle)
    server._dialer.dial(server._s, plan, entry)
    return entry, plan


def stop_dials(dialer: Dialer) -> None:
    """The server was joined: the dials still waiting fail, and the cached
    options are freed."""
    with dialer.lock:
        left = list(dialer.dials.values())
        dialer.dials.clear()
    for entry in left:
        if isinstance(entry, ServerDial):
            entry.stopped()
    dialer.close()
