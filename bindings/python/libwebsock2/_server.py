"""The threaded server: handlers run on the core's agent threads (DIRECT
delivery), holding the GIL; every call into the core releases it."""
import atexit
import concurrent.futures
import signal
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, Optional, Union

from . import _websock as _ws
from ._base import (EV_CLOSE, EV_DRAIN, EV_MESSAGE, EV_OPEN, EV_PING, EV_PONG, EV_TAG,
                    EVENT_HANDLERS, BaseConnection, BaseServer, F, Payload, log)
from ._config import PING_INTERVAL, PING_TIMEOUT
from ._errors import Error, RecursiveCall, check
from ._handshake import Request, run_hook

__all__ = ["Server", "Connection", "Payload"]

_ERR_RECURSIVE = RecursiveCall.code

# Every started, not yet joined server; stopped and joined at exit.
_live: "weakref.WeakSet[Server]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for srv in list(_live):
        try:
            srv.stop()
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("libwebsock2: stopping a server at exit failed")


class Connection(BaseConnection):
    """One WebSocket connection, created at open and kept by the server
    until its close event. Methods are safe from any thread; after the
    connection ended they raise :class:`NoSuchClient` (a
    :class:`ConnectionClosed` with the close code and reason) or
    :class:`Closing`."""

    __slots__ = ()

    send = BaseConnection.send_nowait

    def ping(self, data: Optional[Payload] = None) -> "concurrent.futures.Future[float]":
        """Sends a ping (``data``: up to 125 bytes, str as UTF-8; None for 4
        random bytes) and returns a :class:`concurrent.futures.Future` that
        the matching pong resolves with the round-trip time in seconds
        (``conn.ping().result(timeout=5)``; don't wait for it in a handler
        of this connection: the pong is one of its events). It fails with
        :class:`ConnectionClosed` when the connection ends first. Raises
        :class:`TooBig` past 125 bytes, RuntimeError when a ping with the
        same payload still waits for its pong."""
        return self._send_ping(data)

    def close(self, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake with ``code`` and ``reason``."""
        self._server.close_client(self.id, code, reason)
        if self._sent_close is None:
            self._sent_close = (code, reason)

    def _new_waiter(self) -> "concurrent.futures.Future[float]":
        return concurrent.futures.Future()

    def _settle(self, waiter: Any, result: Any = None,
                exc: Optional[BaseException] = None) -> None:
        try:
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass  # cancelled by its owner


class _Stop(BaseException):
    """Raised by serve_forever()'s signal handler out of its wait."""


def signals_to_handle() -> Iterable[int]:
    """SIGINT and SIGTERM when the caller is the main thread, else none
    (Python runs signal handlers on the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return ()
    return (signal.SIGINT, signal.SIGTERM)


def restore_signals(saved: Dict[int, Any]) -> None:
    for sig, handler in saved.items():
        try:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError):  # pragma: no cover
            pass


class Server(BaseServer):
    """A multi-threaded WebSocket server.

    Handlers (``on_open(conn)``, ``on_message(conn, msg)``,
    ``on_close(conn, code, reason)``, ``on_drain(conn)``, ``on_ping(conn,
    data)``, ``on_pong(conn, data)``, ``on_tag(conn, tag, error)``) run on
    the core's agent threads (``agents`` of them; with ``agents=0`` inline
    on the I/O threads). The events of one connection arrive in order and
    never two at once, though
    not always on the same agent thread: any idle agent runs any connection
    with events waiting, so a handler that blocks (and releases the GIL,
    as ``time.sleep`` or ``threading.Event.wait`` do) holds up only its own
    connection while another agent is free. A handler that raises an
    Exception is logged and its connection closed with 1011.

    Handshake, with the keywords of ``websockets.serve``: ``origins`` (the
    allowed Origin values; None in the list lets in a request without an
    Origin header; any other gets 403), ``subprotocols`` (ours, in order of
    preference: the first one of them the client offered is chosen, and
    becomes ``conn.subprotocol``), ``select_subprotocol(request, offered)``
    (returns one of ``offered`` or None, instead of the list),
    ``process_request(request)`` (returns None to go on, or ``(status,
    headers, body)`` to answer with that: a 401 with WWW-Authenticate, a
    302 with Location, a 200 health check; it runs for plain HTTP requests
    too) and ``extra_headers`` (headers for the 101, or a function of the
    request returning them). ``process_request`` runs first, then the
    Origin check, then the subprotocol choice. With ``agents > 0`` all of it
    runs on an agent, so a slow lookup holds up no I/O thread and no other
    connection while another agent is free (plain HTTP requests run it on
    their I/O thread); with ``agents=0`` on the I/O thread. An exception in
    any of them gives 500 and is logged. ``conn.request`` (the
    :class:`libwebsock2.Request`) and ``conn.request_headers`` are there on
    every connection.

    ``handshake=fn`` (or the ``@server.on_handshake`` decorator) is the
    lower-level handler, which may also put the answer off
    (``request.defer()``): it runs after ``origins`` and ``subprotocols``
    (and may not be combined with ``process_request``). For an upgrade,
    return None to accept (after ``request.select_subprotocol(name)`` if
    you choose one), a status (400..599) or ``(status, body)`` / ``(status,
    body, content_type)`` (200..599) to refuse, or call
    ``request.defer()`` and return the :class:`libwebsock2.Upgrade` it gives
    (or ``libwebsock2.DEFER``) to answer later, from any thread, with
    ``upgrade.accept(subprotocol=None, headers=None)`` or
    ``upgrade.reject(status, body=None, content_type=None, headers=None)``.
    For a plain HTTP request, return ``(status, body[, content_type])``
    to answer it, a status (400..599) for that status's default answer, or
    None for the default (``http_routes``, else 426). ``stop()`` refuses the
    upgrades still waiting for an answer with 503, as does an
    :class:`libwebsock2.Upgrade` dropped unanswered and the core at the
    ``handshake_timeout``.

    Topics: ``conn.subscribe(topic)`` / ``conn.unsubscribe(topic)`` (str
    as UTF-8, or bytes; 1..255 bytes) and ``server.publish(topic, msg,
    exclude=None)`` (``exclude``: a Connection or an id, e.g. the sender),
    from any thread, inside handlers or outside, never blocking; a
    connection leaves its topics when it ends. This server's own outgoing
    connections (:meth:`connect`) take part too; those of
    ``libwebsock2.connect()`` cannot (TypeError).

    A cluster through Redis: ``cluster="redis://host:port"``, ``node``
    (1..1023; None or 0: a free number drawn from Redis at start),
    ``cluster_prefix``, ``cluster_ttl`` (seconds, 0.1..600, default 9).
    Tags are unique cluster-wide: ``conn.set_tag(tag)`` returns True when
    settled now and False when the claim in Redis is pending (the
    connection keeps its tag of before meanwhile); its outcome comes by
    ``on_tag(conn, tag, error)`` (see :meth:`on_tag`).

    Keepalive (as websockets): ``ping_interval`` (default 20 s) of silence
    from a client sends it a ping; ``ping_timeout`` (default 20 s) more of
    silence closes it with 1011 "keepalive ping timeout". None turns either
    off. ``conn.ping()`` returns a Future resolved by the pong.

    Compression (as websockets): ``compression="deflate"`` (the default)
    answers the clients that offer permessage-deflate (browsers do) with
    the shared memory model: one compressor per I/O thread, no context
    kept, so no compressor memory per connection; ``compression=None``
    turns it off (the C API's default); ``compression=libwebsock2.Deflate(
    mode="dedicated", window_bits=15, mem_level=8, level=1, threshold=64)``
    chooses the memory model and zlib's settings.

    Other options: ``io_threads`` and ``spread``, which picks the I/O
    thread for each accepted connection, where it stays for life:
    ``"least_connections"`` (default: the thread with the fewest open
    connections, ties in turn) or ``"round_robin"`` (each thread in turn).
    ``agent_budget``: how many events of one connection an agent runs in a
    row before the other connections with events waiting get their turn
    (1..65536; None keeps the core's default, 32). ``agent_batch``
    (default True): the agents run under SCHED_BATCH on Linux, so a woken
    agent does not preempt the I/O thread it shares a core with; False
    keeps the policy they inherit (websock_config_set_agent_batch).
    ``ssl``: None, a
    :class:`libwebsock2.TLS` (certificate, key, password, client
    certificates) or a ``(certfile, keyfile)`` pair of PEM paths to serve
    wss://. ``http_routes`` maps a path to ``(content_type, body)`` served
    to plain HTTP GETs; ``ws_paths`` restricts the WebSocket upgrade paths.
    ``max_message_size``, ``max_frame_size``, ``max_outbound``,
    ``max_connections``, ``max_handshake_size``, ``fragment_size`` are in
    bytes, ``handshake_timeout``, ``idle_timeout``, ``close_timeout``,
    ``slow_consumer_timeout`` in seconds; None keeps the core's default. A
    bad value raises :class:`libwebsock2.InvalidArgument` naming the option
    and its range. ``reuse_port=True``: every I/O thread listens on its own
    SO_REUSEPORT socket and keeps the connections it accepted (``spread``
    does not apply then), and several servers, in this process or in
    others, may listen on one port.
    """

    _conn_class = Connection

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, agents: int = 1,
                 control_events: bool = True,
                 on_open: Optional[Callable[[Connection], Any]] = None,
                 on_message: Optional[Callable[[Connection, Union[str, bytes]], Any]] = None,
                 on_close: Optional[Callable[[Connection, int, str], Any]] = None,
                 on_drain: Optional[Callable[[Connection], Any]] = None,
                 on_ping: Optional[Callable[[Connection, bytes], Any]] = None,
                 on_pong: Optional[Callable[[Connection, bytes], Any]] = None,
                 on_tag: Optional[Callable[[Connection, str, Optional[Error]], Any]] = None,
                 handshake: Optional[Callable[[Request], Any]] = None,
                 origins: Optional[Iterable[Optional[str]]] = None,
                 subprotocols: Optional[Iterable[str]] = None,
                 select_subprotocol: Optional[Callable[[Request, Any], Optional[str]]] = None,
                 process_request: Optional[Callable[[Request], Any]] = None,
                 extra_headers: Any = None,
                 ping_interval: Optional[float] = PING_INTERVAL,
                 ping_timeout: Optional[float] = PING_TIMEOUT,
                 compression: Any = "deflate",
                 **options: Any) -> None:
        if handshake is not None and process_request is not None:
            raise TypeError("handshake= and process_request= do not go together: "
                            "process_request answers with (status, headers, body), "
                            "handshake= is the lower-level handler (defer, accept later)")
        # PING/PONG events always: conn.ping()'s waiter needs the pong
        # (control_events is accepted for compatibility).
        options.update(control_events=True, origins=origins, subprotocols=subprotocols,
                       select_subprotocol=select_subprotocol, process_request=process_request,
                       extra_headers=extra_headers, ping_interval=ping_interval,
                       ping_timeout=ping_timeout, compression=compression)
        super().__init__(host, port, queued=False, agents=agents, on_open=on_open,
                         on_message=on_message, on_close=on_close, options=options)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._on_drain = on_drain
        self._on_ping = on_ping
        self._on_pong = on_pong
        self._check_handler("on_tag", on_tag)
        self._on_tag = on_tag
        self._check_handler("handshake", handshake)
        self._handshake = handshake

    def on_handshake(self, fn: F) -> F:
        """Decorator: ``fn(request)`` answers every request head (see the
        class docstring); may be set, replaced or cleared (None) at any
        time."""
        self._check_handler("handshake", fn)
        if fn is not None and self._negotiation.process_request is not None:
            raise TypeError("handshake= and process_request= do not go together")
        self._handshake = fn
        return fn

    def on_drain(self, fn: F) -> F:
        """Decorator: ``fn(conn)`` runs when a send refused with
        Backpressure may be retried."""
        self._on_drain = fn
        return fn

    def on_ping(self, fn: F) -> F:
        """Decorator: ``fn(conn, data)`` runs per ping from the client (the
        pong is sent already)."""
        self._on_ping = fn
        return fn

    def on_pong(self, fn: F) -> F:
        """Decorator: ``fn(conn, data)`` runs per pong from the client."""
        self._on_pong = fn
        return fn

    def on_tag(self, fn: F) -> F:
        """Decorator: ``fn(conn, tag, error)`` runs with the outcome of a
        tag claim on a cluster (a ``set_tag`` that returned False): ``error``
        is None when the connection holds ``tag`` cluster-wide, else the
        exception, not raised: :class:`TagTaken` (a connection of another
        node won it) or :class:`ClusterError` (Redis could not be asked);
        then the tag is no longer the connection's: it has its tag of before
        the ``set_tag`` again, which it kept meanwhile, as a refused
        ``set_tag`` on one server leaves it, and ``conn.tag`` shows that
        one (None when it had none; unless it shows another tag set since).
        It also comes, with :class:`TagTaken`, unasked, when a tag is lost
        to another node after a Redis restart (``conn.tag`` None then). A
        claim replaced by a later ``set_tag`` still brings its outcome:
        ``conn.tag`` tells which tag the connection has. Runs on an agent
        thread in the connection's order, as ``on_message``; without a
        handler the outcome still keeps ``conn.tag`` right.

        There is no call that waits for the outcome in the threaded API:
        the TAG event is one of the connection's own events, so it runs only
        after the handler that called ``set_tag`` has returned, and a wait
        inside that handler would never end. Answer from ``on_tag`` instead
        (``libwebsock2.aio`` has ``await conn.claim_tag(tag)``)."""
        self._check_handler("on_tag", fn)
        self._on_tag = fn
        return fn

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Server":
        """Binds, listens and starts the core threads; returns once the
        server accepts connections. A server starts once. Raises
        :class:`AddressError` naming the address and the reason ("cannot
        listen on 127.0.0.1:8080: address already in use", ``errno``
        EADDRINUSE) when it cannot listen."""
        with self._lock:
            self._check_startable()
            _ws.pyws_set_dispatch(self._h, self._dispatch)
            _ws.pyws_set_handshake(self._h, self._run_hook)
            try:
                self._start_core()
            except BaseException:
                _ws.pyws_set_dispatch(self._h, None)
                _ws.pyws_set_handshake(self._h, None)
                raise
            self._started = True
            _live.add(self)
        return self

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._started and not self._stopping.is_set()

    def stop(self) -> None:
        """Graceful stop: stops accepting, sends close 1001 to every client,
        waits up to the close timeout, then joins the core threads.
        Idempotent. From a handler it only begins the stop (the join happens
        in serve_forever(), a later stop() or at exit)."""
        if not self._started or self._joined:
            self._stopping.set()
            return
        self._pending.refuse_all(503)  # the clients get an answer
        _ws.websock_server_stop(self._s)
        self._stopping.set()
        self.join()

    def join(self) -> bool:
        """Waits for the core threads after a stop; returns False when
        called from one of this server's own threads (nothing joined)."""
        if not self._started or self._joined:
            return True
        rc = _ws.websock_server_join(self._s)
        if rc == _ERR_RECURSIVE:
            return False
        check(rc)
        # Deferred since the first refusal (stale now: this only completes
        # them); every handle is completed before the core server is freed.
        self._pending.refuse_all(503)
        with self._lock:
            if not self._joined:
                self._joined = True
                _ws.pyws_set_dispatch(self._h, None)  # breaks the C -> self cycle
                _ws.pyws_set_handshake(self._h, None)
                self._conns.clear()
                _live.discard(self)
        from ._client import stop_dials
        stop_dials(self._dialer)
        return True

    def connect(self, url: str, **options: Any) -> "concurrent.futures.Future[Connection]":
        """Opens an outgoing connection to ``url`` from this (started)
        server, with the keywords of :func:`libwebsock2.connect`
        (``subprotocols``, ``extra_headers``, ``ssl``, ``compression``,
        ``max_size``, ``open_timeout``, ``user_data``: ``conn.data``).
        Its events reach this server's handlers (``on_open``,
        ``on_message``, ``on_close``, ...) like an accepted connection's;
        ``conn.url`` is the URL (None on accepted ones), ``conn.request``
        None. Returns a :class:`concurrent.futures.Future` resolved with
        the :class:`Connection` at its OPEN (before ``on_open`` runs), or
        failed with the :class:`ConnectError` naming the stage when it does
        not open (no handler runs then). Don't wait for it in a handler
        with ``agents=1``: the OPEN is an event of that agent. Raises at
        once :class:`InvalidURI` for a bad URL and :class:`StateError` when
        the server does not run. Broadcasts do not reach outgoing
        connections."""
        from ._client import server_dial, settle_future
        fut: "concurrent.futures.Future[Connection]" = concurrent.futures.Future()
        server_dial(self, url, fut, settle_future, dict(options))
        return fut

    def serve_forever(self, poll_interval: float = 0.5, *, handle_signals: bool = True) -> None:
        """Starts (if needed) and waits in Python until stop() is called.
        On the main thread SIGINT (Ctrl-C) and SIGTERM stop the server
        gracefully too (clients get 1001) and the call returns normally,
        even in a process started with SIGINT ignored; the previous
        handlers are back on return. A second signal during the stop is
        ignored (the stop takes at most the close timeout).
        ``handle_signals=False`` leaves the signal handlers alone (Ctrl-C
        then raises KeyboardInterrupt here, after the stop). Stops and joins
        on the way out."""
        if not self._started:
            self.start()
        armed = [True]

        def on_signal(signum: int, frame: Any) -> None:
            if armed[0]:  # once: the stop that follows must not be cut short
                armed[0] = False
                raise _Stop()

        saved: Dict[int, Any] = {}
        try:
            try:
                if handle_signals:
                    for sig in signals_to_handle():
                        saved[sig] = signal.signal(sig, on_signal)
                while not self._stopping.wait(poll_interval):
                    pass
            finally:
                armed[0] = False
        except _Stop:
            pass
        finally:
            armed[0] = False
            try:
                self.stop()
            finally:
                restore_signals(saved)

    def __enter__(self) -> "Server":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the handshake hook (agents or I/O thread, GIL held) ---------------
    def _run_hook(self, ptr: Any) -> int:
        return run_hook(self._handshake, ptr, self._pending, self._negotiation, self._opening)

    # -- event dispatch (agent threads, GIL held) -------------------------
    def _dispatch(self, ev: Any) -> None:
        conn = self._conn_of(ev)
        if conn is None:
            return
        etype = ev.type
        try:
            if etype == EV_MESSAGE:
                if self._on_message is not None:
                    self._on_message(conn, ev.data)
            elif etype == EV_OPEN:
                if self._on_open is not None:
                    self._on_open(conn)
            elif etype == EV_CLOSE:
                conn._mark_closed(ev)
                if self._on_close is not None:
                    self._on_close(conn, ev.close_code, ev.data)
            elif etype == EV_DRAIN:
                if self._on_drain is not None:
                    self._on_drain(conn)
            elif etype == EV_PONG:
                conn._got_pong(ev.data)
                if self._on_pong is not None:
                    self._on_pong(conn, ev.data)
            elif etype == EV_PING:
                if self._on_ping is not None:
                    self._on_ping(conn, ev.data)
            elif etype == EV_TAG:
                err, _ = self._tag_event(conn, ev)
                if self._on_tag is not None:
                    self._on_tag(conn, ev.data, err)
        except Exception:
            self._failed(conn, EVENT_HANDLERS.get(etype, "handler"))

    def __repr__(self) -> str:
        state = "joined" if self._joined else "running" if self._started else "new"
        return "<libwebsock2.Server %s>" % state
