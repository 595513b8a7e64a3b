"""The threaded server: handlers run on the core's agent threads (DIRECT
delivery), holding the GIL; every call into the core releases it."""
import atexit
import logging
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, TypeVar, Union

from . import _websock as _ws
from ._config import HttpRoutes, make_server, parse_remote
from ._errors import RecursiveCall, check, error_for

__all__ = ["Server", "Connection", "Payload"]

log = logging.getLogger("libwebsock2")

Payload = Union[str, bytes, bytearray, memoryview]
F = TypeVar("F", bound=Callable[..., Any])

_EV_OPEN = _ws.EVENT_OPEN
_EV_MESSAGE = _ws.EVENT_MESSAGE
_EV_CLOSE = _ws.EVENT_CLOSE
_EV_DRAIN = _ws.EVENT_DRAIN
_EV_PING = _ws.EVENT_PING
_EV_PONG = _ws.EVENT_PONG
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


class Connection:
    """One WebSocket connection, created at open and kept by the server
    until its close event. Methods are safe from any thread; after the
    connection ended they raise :class:`NoSuchClient` (or :class:`Closing`)."""

    __slots__ = ("_server", "id", "path", "query", "subprotocol", "remote_addr",
                 "_tag", "closed", "close_code", "close_reason", "data", "__weakref__")

    def __init__(self, server: "Server", conn_id: int, tag: Optional[str], path: Optional[str],
                 query: Optional[str], subprotocol: Optional[str],
                 remote_addr: Optional[str]) -> None:
        self._server = server
        self.id: int = conn_id
        self._tag = tag
        self.path: Optional[str] = path
        self.query: Optional[str] = query
        self.subprotocol: Optional[str] = subprotocol
        self.remote_addr: Optional[str] = remote_addr
        self.closed: bool = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.data: Any = None  # free for the application

    @property
    def server(self) -> "Server":
        """The server this connection belongs to."""
        return self._server

    @property
    def remote_address(self) -> Optional[Tuple[str, int]]:
        """Peer address as ``(host, port)``."""
        return parse_remote(self.remote_addr)

    @property
    def tag(self) -> Optional[str]:
        """The connection's unique tag, or None."""
        return self._tag

    def set_tag(self, tag: Optional[str]) -> None:
        """Gives the connection the unique ``tag`` (None removes it).
        Raises :class:`TagTaken` when another live connection holds it."""
        self._server._set_tag(self.id, tag)
        self._tag = tag

    def send(self, data: Payload) -> None:
        """Queues one message: ``str`` as a text frame, any bytes-like object
        as a binary frame. Non-blocking; raises :class:`Backpressure` when
        the outbound queue is full."""
        rc = _ws.websock_server_send(self._server._s, self.id, data)
        if rc:
            raise error_for(rc)

    def ping(self, data: Payload = b"") -> None:
        """Sends a ping with up to 125 bytes of payload."""
        self._server.ping(self.id, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake with ``code`` and ``reason``."""
        self._server.close_client(self.id, code, reason)

    def __repr__(self) -> str:
        return "<libwebsock2.Connection id=%d tag=%r path=%r%s>" % (
            self.id, self._tag, self.path, " closed" if self.closed else "")


class Server:
    """A multi-threaded WebSocket server.

    Handlers (``on_open(conn)``, ``on_message(conn, msg)``,
    ``on_close(conn, code, reason)``, ``on_drain(conn)``, ``on_ping(conn,
    data)``, ``on_pong(conn, data)``) run on the core's agent threads
    (``agents`` of them; with ``agents=0`` inline on the I/O threads). The
    events of one connection arrive in order on one thread. A handler that
    raises is logged and its connection closed with 1011.

    ``spread`` picks the I/O thread (of ``io_threads``) for each accepted
    connection, where it stays for life: ``"least_connections"`` (default:
    the thread with the fewest open connections, ties in turn) or
    ``"round_robin"`` (each thread in turn); any other value raises
    ValueError.

    ``ssl``: None, or ``(certfile, keyfile)`` PEM paths to serve wss://.
    ``http_routes`` maps a path to ``(content_type, body)`` served to plain
    HTTP GETs; ``ws_paths`` restricts the WebSocket upgrade paths. Times are
    in seconds, sizes in bytes; None keeps the core's default.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, io_threads: int = 1,
                 spread: str = "least_connections", agents: int = 1,
                 max_message_size: Optional[int] = None,
                 max_frame_size: Optional[int] = None, max_outbound: Optional[int] = None,
                 max_connections: Optional[int] = None,
                 max_handshake_size: Optional[int] = None,
                 fragment_size: Optional[int] = None,
                 handshake_timeout: Optional[float] = None,
                 idle_timeout: Optional[float] = None, ping_interval: Optional[float] = None,
                 close_timeout: Optional[float] = None, control_events: bool = False,
                 ws_paths: Optional[Iterable[str]] = None,
                 http_routes: Optional[HttpRoutes] = None, ssl: object = None,
                 on_open: Optional[Callable[[Connection], Any]] = None,
                 on_message: Optional[Callable[[Connection, Union[str, bytes]], Any]] = None,
                 on_close: Optional[Callable[[Connection, int, str], Any]] = None,
                 on_drain: Optional[Callable[[Connection], Any]] = None,
                 on_ping: Optional[Callable[[Connection, bytes], Any]] = None,
                 on_pong: Optional[Callable[[Connection, bytes], Any]] = None) -> None:
        self._h: Any = None
        self._s: Any = None
        self._h = make_server(
            host=host, port=port, io_threads=io_threads, agents=agents, queued=False,
            spread=spread,
            max_message_size=max_message_size, max_frame_size=max_frame_size,
            max_outbound=max_outbound, max_connections=max_connections,
            max_handshake_size=max_handshake_size, fragment_size=fragment_size,
            handshake_timeout=handshake_timeout, idle_timeout=idle_timeout,
            ping_interval=ping_interval, close_timeout=close_timeout,
            control_events=control_events or on_ping is not None or on_pong is not None,
            ws_paths=ws_paths, http_routes=http_routes, ssl=ssl)
        self._s = _ws.pyws_handle(self._h)
        self._conns: Dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._started = False
        self._joined = False
        self._stopping = threading.Event()
        self._on_open = on_open
        self._on_message = on_message
        self._on_close = on_close
        self._on_drain = on_drain
        self._on_ping = on_ping
        self._on_pong = on_pong

    # -- handler decorators ------------------------------------------------
    def on_open(self, fn: F) -> F:
        """Decorator: ``fn(conn)`` runs when a connection opened."""
        self._on_open = fn
        return fn

    def on_message(self, fn: F) -> F:
        """Decorator: ``fn(conn, msg)`` runs per message (str or bytes)."""
        self._on_message = fn
        return fn

    def on_close(self, fn: F) -> F:
        """Decorator: ``fn(conn, code, reason)`` runs when a connection ended."""
        self._on_close = fn
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
            if self._started:
                raise error_for(-3, "server already started")
            _ws.pyws_set_dispatch(self._h, self._dispatch)
            rc = _ws.websock_server_start(self._s)
            if rc:
                _ws.pyws_set_dispatch(self._h, None)
                raise error_for(rc)
            self._started = True
            _live.add(self)
        return self

    @property
    def port(self) -> int:
        """The port the server listens on (the chosen one with port=0)."""
        return check(_ws.websock_server_port(self._s))

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

    def __del__(self) -> None:
        # Never joins: free only when no core thread can run (never started
        # or already joined); otherwise leave it to the atexit hook.
        h = getattr(self, "_h", None)
        if h is not None and (not getattr(self, "_started", False) or self._joined):
            self._s = None
            self._h = None
            _ws.pyws_server_free(h)

    # -- sending -----------------------------------------------------------
    def send(self, conn_id: int, data: Payload) -> None:
        """Sends ``data`` (str = text, bytes-like = binary) to connection
        ``conn_id``. Raises NoSuchClient, Closing, Backpressure, ..."""
        rc = _ws.websock_server_send(self._s, conn_id, data)
        if rc:
            raise error_for(rc)

    def send_tag(self, tag: str, data: Payload) -> None:
        """Sends ``data`` to the connection tagged ``tag``."""
        rc = _ws.websock_server_send_tag(self._s, tag, data)
        if rc:
            raise error_for(rc)

    def broadcast(self, data: Payload, exclude: Optional[int] = None) -> None:
        """Sends ``data`` to every open connection except ``exclude`` (an id).
        Connections over their outbound limit are skipped."""
        rc = _ws.websock_server_broadcast(self._s, data, exclude or 0)
        if rc:
            raise error_for(rc)

    def ping(self, conn_id: int, data: Payload = b"") -> None:
        """Sends a ping (payload up to 125 bytes) to ``conn_id``."""
        rc = _ws.websock_server_ping(self._s, conn_id, data)
        if rc:
            raise error_for(rc)

    def close_client(self, conn_id: int, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake with connection ``conn_id``."""
        rc = _ws.websock_server_close(self._s, conn_id, code, reason or None)
        if rc:
            raise error_for(rc)

    def close_tag(self, tag: str, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake with the connection tagged ``tag``."""
        rc = _ws.websock_server_close_tag(self._s, tag, code, reason or None)
        if rc:
            raise error_for(rc)

    # -- ids and tags ------------------------------------------------------
    def _set_tag(self, conn_id: int, tag: Optional[str]) -> None:
        rc = _ws.websock_server_set_tag(self._s, conn_id, tag)
        if rc:
            raise error_for(rc)

    def set_tag(self, conn_id: int, tag: Optional[str]) -> None:
        """Gives connection ``conn_id`` the unique ``tag`` (None removes it).
        Raises TagTaken or NoSuchClient."""
        self._set_tag(conn_id, tag)
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn._tag = tag

    def get_tag(self, conn_id: int) -> Optional[str]:
        """The tag of ``conn_id`` or None; NoSuchClient for unknown ids."""
        return _ws.pyws_get_tag(self._s, conn_id)

    def find_tag(self, tag: str) -> int:
        """The id of the connection tagged ``tag``; NoSuchClient if none."""
        return check(_ws.pyws_find_tag(self._s, tag))

    def connection(self, conn_id: int) -> Optional[Connection]:
        """The Connection object of an open connection, or None."""
        return self._conns.get(conn_id)

    @property
    def connections(self) -> Dict[int, Connection]:
        """A snapshot ``{id: Connection}`` of the open connections."""
        return dict(self._conns)

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the core's counters as a dict (connections,
        messages_in/out, bytes_in/out, pool_*, per-loop/agent lists, ...)."""
        if self._s is None:
            raise error_for(-1, "server freed")
        return _ws.pyws_stats(self._s)

    # -- event dispatch (agent threads, GIL held) -------------------------
    def _failed(self, conn: Connection, what: str) -> None:
        log.exception("libwebsock2: %s handler raised for connection %d", what, conn.id)
        if what != "on_close":
            _ws.websock_server_close(self._s, conn.id, 1011, "internal error")

    def _dispatch(self, ev: tuple) -> None:
        etype, cid, tag, _op, data, code, path, query, subp, raddr = ev
        if etype == _EV_MESSAGE:
            conn = self._conns.get(cid)
            if conn is None:
                conn = self._conns[cid] = Connection(self, cid, tag, None, None, None, None)
            conn._tag = tag
            fn = self._on_message
            if fn is not None:
                try:
                    fn(conn, data)
                except BaseException:
                    self._failed(conn, "on_message")
        elif etype == _EV_OPEN:
            conn = self._conns[cid] = Connection(self, cid, tag, path, query, subp, raddr)
            fn = self._on_open
            if fn is not None:
                try:
                    fn(conn)
                except BaseException:
                    self._failed(conn, "on_open")
        elif etype == _EV_CLOSE:
            conn = self._conns.pop(cid, None)
            if conn is None:
                conn = Connection(self, cid, tag, None, None, None, None)
            conn._tag = tag
            conn.closed = True
            conn.close_code = code
            conn.close_reason = data
            fn = self._on_close
            if fn is not None:
                try:
                    fn(conn, code, data)
                except BaseException:
                    self._failed(conn, "on_close")
        else:
            conn = self._conns.get(cid)
            if conn is None:
                return
            try:
                if etype == _EV_DRAIN:
                    if self._on_drain is not None:
                        self._on_drain(conn)
                elif etype == _EV_PING:
                    if self._on_ping is not None:
                        self._on_ping(conn, data)
                elif etype == _EV_PONG:
                    if self._on_pong is not None:
                        self._on_pong(conn, data)
            except BaseException:
                self._failed(conn, "control event")

    def __repr__(self) -> str:
        state = "joined" if self._joined else "running" if self._started else "new"
        return "<libwebsock2.Server %s>" % state
