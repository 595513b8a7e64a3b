"""The threaded server: handlers run on the core's agent threads (DIRECT
delivery), holding the GIL; every call into the core releases it."""
import atexit
import threading
import weakref
from typing import Any, Callable, Optional, Union

from . import _websock as _ws
from ._base import (EV_CLOSE, EV_DRAIN, EV_MESSAGE, EV_OPEN, EV_PING, EV_PONG,
                    EVENT_HANDLERS, BaseConnection, BaseServer, F, Payload, log)
from ._errors import RecursiveCall, check, error_for

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
                 **options: Any) -> None:
        options["control_events"] = (control_events or on_ping is not None or
                                     on_pong is not None)
        super().__init__(host, port, queued=False, agents=agents, on_open=on_open,
                         on_message=on_message, on_close=on_close, options=options)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._on_drain = on_drain
        self._on_ping = on_ping
        self._on_pong = on_pong

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
            rc = _ws.websock_server_start(self._s)
            if rc:
                _ws.pyws_set_dispatch(self._h, None)
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
        with self._lock:
            if not self._joined:
                self._joined = True
                _ws.pyws_set_dispatch(self._h, None)  # breaks the C -> self cycle
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
