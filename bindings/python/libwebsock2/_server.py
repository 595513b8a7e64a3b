"""The threaded server: handlers run on the core's agent threads (DIRECT
delivery), holding the GIL; every call into the core releases it."""
import atexit
import threading
import weakref
from typing import Any, Callable, Optional, Union

from . import _websock as _ws
from ._base import (EV_CLOSE, EV_DRAIN, EV_MESSAGE, EV_OPEN, EV_PING, EV_PONG,
                    EVENT_HANDLERS, BaseConnection, BaseServer, F, Payload, log)
from ._errors import RecursiveCall, StateError, check, error_for
from ._handshake import Pending, Request, run_hook

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
    connection ended they raise :class:`NoSuchClient` (or :class:`Closing`)."""

    __slots__ = ()

    send = BaseConnection.send_nowait

    def ping(self, data: Payload = b"") -> None:
        """Sends a ping with up to 125 bytes of payload."""
        self._server.ping(self.id, data)

    def close(self, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake with ``code`` and ``reason``."""
        self._server.close_client(self.id, code, reason)


class Server(BaseServer):
    """A multi-threaded WebSocket server.

    Handlers (``on_open(conn)``, ``on_message(conn, msg)``,
    ``on_close(conn, code, reason)``, ``on_drain(conn)``, ``on_ping(conn,
    data)``, ``on_pong(conn, data)``) run on the core's agent threads
    (``agents`` of them; with ``agents=0`` inline on the I/O threads). The
    events of one connection arrive in order and never two at once, though
    not always on the same agent thread: any idle agent runs any connection
    with events waiting, so a handler that blocks (and releases the GIL,
    as ``time.sleep`` or ``threading.Event.wait`` do) holds up only its own
    connection while another agent is free. A handler that raises an
    Exception is logged and its connection closed with 1011.

    Options: ``io_threads`` and ``spread``, which picks the I/O thread for
    each accepted connection, where it stays for life:
    ``"least_connections"`` (default: the thread with the fewest open
    connections, ties in turn) or ``"round_robin"`` (each thread in turn);
    any other value raises ValueError. ``agent_budget``: how many events of
    one connection an agent runs in a row before the other connections
    with events waiting get their turn (1..65536; None keeps the core's
    default, 32). ``ssl``: None, or ``(certfile,
    keyfile)`` PEM paths to serve wss://. ``http_routes`` maps a path to
    ``(content_type, body)`` served to plain HTTP GETs; ``ws_paths``
    restricts the WebSocket upgrade paths. ``max_message_size``,
    ``max_frame_size``, ``max_outbound``, ``max_connections``,
    ``max_handshake_size``, ``fragment_size`` are in bytes,
    ``handshake_timeout``, ``idle_timeout``, ``ping_interval``,
    ``close_timeout`` in seconds; None keeps the core's default.
    ``reuse_port=True``: every I/O thread listens on its own SO_REUSEPORT
    socket and keeps the connections it accepted (``spread`` does not apply
    then), and several servers, in this process or in others, may listen on
    one port: the kernel spreads new connections over all their sockets.

    Handshake: ``handshake=fn`` (or the ``@server.on_handshake``
    decorator, before ``start()``) runs ``fn(request)`` for every request
    head, a WebSocket upgrade or a plain HTTP request (see
    :class:`libwebsock2.Request`). For an upgrade, return None to accept
    (after ``request.select_subprotocol(name)`` if you choose one), a status
    (400..599) or ``(status, body)`` / ``(status, body, content_type)`` to
    refuse, or call ``request.defer()`` and return the
    :class:`libwebsock2.Upgrade` it gives (or ``libwebsock2.DEFER``) to
    answer later, from any thread, with ``upgrade.accept(subprotocol=None)``
    or ``upgrade.reject(status, body=None, content_type=None)``. For a plain
    HTTP request, return ``(status, body[, content_type])`` to answer it, a
    status (400..599) for that status's default answer, or None for the
    default (``http_routes``, else 426). A handler that raises is logged
    and answered with 500. With ``agents > 0`` the handler runs on the
    agents for upgrades (``websock_config_set_handshake_on_agents``), so a
    slow one (a database lookup, a blocking call that releases the GIL)
    holds up no I/O thread and no other connection while another agent is
    free; plain HTTP requests still run it on their I/O thread. With
    ``agents=0`` it always runs on the I/O thread: it holds up every
    connection of that thread while it runs, so answer slow checks through
    ``request.defer()`` from another thread. ``stop()`` refuses the upgrades
    still waiting for an answer with 503, as does an :class:`Upgrade`
    dropped unanswered and the core at the ``handshake_timeout``.
    """

    _conn_class = Connection

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, agents: int = 1,
                 control_events: bool = False,
                 on_open: Optional[Callable[[Connection], Any]] = None,
                 on_message: Optional[Callable[[Connection, Union[str, bytes]], Any]] = None,
                 on_close: Optional[Callable[[Connection, int, str], Any]] = None,
                 on_drain: Optional[Callable[[Connection], Any]] = None,
                 on_ping: Optional[Callable[[Connection, bytes], Any]] = None,
                 on_pong: Optional[Callable[[Connection, bytes], Any]] = None,
                 handshake: Optional[Callable[[Request], Any]] = None,
                 **options: Any) -> None:
        options["control_events"] = (control_events or on_ping is not None or
                                     on_pong is not None)
        super().__init__(host, port, queued=False, agents=agents, on_open=on_open,
                         on_message=on_message, on_close=on_close, options=options,
                         hook=handshake is not None)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._on_drain = on_drain
        self._on_ping = on_ping
        self._on_pong = on_pong
        self._handshake = handshake
        self._pending = Pending()  # deferred upgrades not answered yet

    def on_handshake(self, fn: F) -> F:
        """Decorator: ``fn(request)`` answers every request head (see the
        class docstring). Set it before ``start()``, or pass ``handshake=``
        (after start only a server made with a handler may change it)."""
        with self._lock:
            if not self._hook and fn is not None:
                if self._started:
                    raise error_for(StateError.code, "set the handshake handler before "
                                                     "start(), or pass handshake= to Server()")
                self._install_hook()
            self._handshake = fn
            if self._started and not self._joined:
                _ws.pyws_set_handshake(self._h, self._run_hook if fn is not None else None)
        return fn

    def on_drain(self, fn: F) -> F:
        """Decorator: ``fn(conn)`` runs when a send refused with
        Backpressure may be retried."""
        self._on_drain = fn
        return fn

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Server":
        """Binds, listens and starts the core threads; returns once the
        server accepts connections. A server starts once."""
        with self._lock:
            self._check_startable()
            _ws.pyws_set_dispatch(self._h, self._dispatch)
            if self._handshake is not None:
                _ws.pyws_set_handshake(self._h, self._run_hook)
            rc = _ws.websock_server_start(self._s)
            if rc:
                _ws.pyws_set_dispatch(self._h, None)
                _ws.pyws_set_handshake(self._h, None)
                raise error_for(rc)
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
        return True

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Starts (if needed) and waits in Python until stop() is called;
        Ctrl-C raises KeyboardInterrupt here. Stops and joins on the way out."""
        if not self._started:
            self.start()
        try:
            while not self._stopping.wait(poll_interval):
                pass
        finally:
            self.stop()

    def __enter__(self) -> "Server":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the handshake hook (agents or I/O thread, GIL held) ---------------
    def _run_hook(self, ptr: Any) -> int:
        fn = self._handshake
        if fn is None:
            return 0  # WEBSOCK_ACCEPT: the core's default answer
        return run_hook(fn, ptr, self._pending)

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
            elif etype == EV_PING:
                if self._on_ping is not None:
                    self._on_ping(conn, ev.data)
            elif etype == EV_PONG:
                if self._on_pong is not None:
                    self._on_pong(conn, ev.data)
        except Exception:
            self._failed(conn, EVENT_HANDLERS.get(etype, "handler"))

    def __repr__(self) -> str:
        state = "joined" if self._joined else "running" if self._started else "new"
        return "<libwebsock2.Server %s>" % state
