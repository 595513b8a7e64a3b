"""What the threaded (``_server``) and the asyncio (``aio``) front ends
share: connection objects, the core handle, sending, ids and tags, stats,
and the event records.

Events arrive as ``_websock.Event`` records (a struct sequence with the
fields of ``bindings/event_record.i``: type, id, tag, opcode, data,
close_code, path, query, subprotocol, remote_addr), read by name here."""
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar, Union

from . import _websock as _ws
from . import websock as _swig  # SWIG's shadow module: the stats structs' classes
from ._config import make_server, parse_remote
from ._errors import InvalidArgument, StateError, check, error_for

__all__ = ["BaseConnection", "BaseServer", "Payload", "EVENT_HANDLERS", "log"]

log = logging.getLogger("libwebsock2")

Payload = Union[str, bytes, bytearray, memoryview]
F = TypeVar("F", bound=Callable[..., Any])

EV_OPEN = _ws.EVENT_OPEN
EV_MESSAGE = _ws.EVENT_MESSAGE
EV_CLOSE = _ws.EVENT_CLOSE
EV_DRAIN = _ws.EVENT_DRAIN
EV_PING = _ws.EVENT_PING
EV_PONG = _ws.EVENT_PONG

# The handler of each event type: EVENT_OPEN -> "on_open", ...
EVENT_HANDLERS: Dict[int, str] = {
    code: "on_" + name[len("EVENT_"):].lower()
    for name, code in vars(_ws).items() if name.startswith("EVENT_")
}


def _struct_fields(cls: type) -> List[str]:
    """The fields of a struct, in its order, from its SWIG proxy class."""
    return [name for name, v in vars(cls).items()
            if isinstance(v, property) and name != "thisown"]


_STATS_FIELDS = _struct_fields(_swig.websock_stats)
# Per-thread lists in stats(): "<prefix>_<field>" for every field of the
# struct of that kind of thread, one entry per thread; the number of
# threads is the websock_stats field named.
_THREAD_KINDS = (
    ("loop", _ws.websock_server_get_loop_stats,
     _struct_fields(_swig.websock_loop_stats), "io_threads"),
    ("agent", _ws.websock_server_get_agent_stats,
     _struct_fields(_swig.websock_agent_stats), "agents"),
)


def read_stats(srv: Any) -> Dict[str, Any]:
    """Every field of websock_stats, a list per I/O thread of every field of
    websock_loop_stats (loop_connections, loop_accepted, loop_events) and a
    list per agent of every field of websock_agent_stats (agent_events,
    agent_busy_ns), of the core server ``srv``."""
    rc, st = _ws.websock_server_get_stats(srv)
    check(rc)
    out: Dict[str, Any] = {name: getattr(st, name) for name in _STATS_FIELDS}
    for prefix, get, fields, count in _THREAD_KINDS:
        threads = []
        for index in range(out[count]):
            rc, ts = get(srv, index)
            check(rc)
            threads.append(ts)
        for name in fields:
            out[prefix + "_" + name] = [getattr(ts, name) for ts in threads]
    return out


class BaseConnection:
    """One WebSocket connection, made from its OPEN event and kept by the
    server until its CLOSE event. The tag is the one the connection had when
    it opened, then whatever ``set_tag`` gave it: the tag snapshots carried
    by later events never overwrite it."""

    __slots__ = ("_server", "id", "path", "query", "subprotocol", "remote_addr",
                 "_tag", "closed", "close_code", "close_reason", "data", "__weakref__")
    _repr_name = "libwebsock2.Connection"

    def __init__(self, server: "BaseServer", ev: Any) -> None:
        self._server = server
        self.id: int = ev.id
        self._tag: Optional[str] = ev.tag
        self.path: Optional[str] = ev.path
        self.query: Optional[str] = ev.query
        self.subprotocol: Optional[str] = ev.subprotocol
        self.remote_addr: Optional[str] = ev.remote_addr
        self.closed: bool = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.data: Any = None  # free for the application

    @property
    def server(self) -> Any:
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
        check(_ws.websock_server_set_tag(self._server._s, self.id, tag))
        self._tag = tag

    def send_nowait(self, data: Payload) -> None:
        """Queues one message: ``str`` as a text frame, any bytes-like object
        as a binary frame. Non-blocking; raises :class:`Backpressure` when
        the outbound queue is full."""
        rc = _ws.websock_server_send(self._server._s, self.id, data)
        if rc:
            raise error_for(rc)

    def _mark_closed(self, ev: Any) -> None:
        self.closed = True
        self.close_code = ev.close_code
        self.close_reason = ev.data

    def __repr__(self) -> str:
        return "<%s id=%d tag=%r path=%r%s>" % (
            self._repr_name, self.id, self._tag, self.path, " closed" if self.closed else "")


class BaseServer:
    """The core server and what both front ends do with it alike. Options
    (keywords of :func:`libwebsock2._config.make_server`): ``io_threads``,
    ``spread``, ``agent_budget``, ``max_message_size``, ``max_frame_size``,
    ``max_outbound``, ``max_connections``, ``max_handshake_size``,
    ``fragment_size``, ``handshake_timeout``, ``idle_timeout``,
    ``ping_interval``, ``close_timeout`` (seconds), ``ws_paths``,
    ``http_routes``, ``ssl``."""

    _conn_class: Type[BaseConnection] = BaseConnection

    def __init__(self, host: str, port: int, *, queued: bool, agents: int,
                 on_open: Optional[Callable[..., Any]],
                 on_message: Optional[Callable[..., Any]],
                 on_close: Optional[Callable[..., Any]], options: Dict[str, Any],
                 hook: bool = False) -> None:
        self._h: Any = None
        self._s: Any = None
        self._started = False
        self._joined = False
        self._make_args: Dict[str, Any] = dict(options, host=host, port=port, agents=agents,
                                               queued=queued)
        self._hook = hook
        self._h = make_server(hook=hook, **self._make_args)
        self._s = _ws.pyws_handle(self._h)
        self._conns: Dict[int, Any] = {}
        self._on_open = on_open
        self._on_message = on_message
        self._on_close = on_close

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

    # -- lifecycle ---------------------------------------------------------
    def _install_hook(self) -> None:
        """Before start: makes the core server again, the same but with the
        handshake trampoline (the hook is part of the core's config, which
        is consumed when the server is made)."""
        if self._hook:
            return
        self._check_startable()
        h = make_server(hook=True, **self._make_args)
        old, self._h, self._s, self._hook = self._h, h, _ws.pyws_handle(h), True
        _ws.pyws_server_free(old)  # never started: nothing to join

    def _check_startable(self) -> None:
        if self._started:
            raise error_for(StateError.code, "server already started")

    @property
    def port(self) -> int:
        """The port the server listens on (the chosen one with port=0)."""
        return check(_ws.websock_server_port(self._s))

    def __del__(self) -> None:
        # Never joins: free only when no core thread can run (never started
        # or already joined); otherwise leave it to stop() or the exit.
        h = getattr(self, "_h", None)
        if h is not None and (not getattr(self, "_started", False) or
                              getattr(self, "_joined", False)):
            self._s = None
            self._h = None
            _ws.pyws_server_free(h)

    # -- sending -----------------------------------------------------------
    def send(self, conn_id: int, data: Payload) -> None:
        """Sends ``data`` (str = text, bytes-like = binary) to connection
        ``conn_id``, without waiting. Raises NoSuchClient, Closing,
        Backpressure, ..."""
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
        check(_ws.websock_server_broadcast(self._s, data, exclude or 0))

    def ping(self, conn_id: int, data: Payload = b"") -> None:
        """Sends a ping (payload up to 125 bytes) to ``conn_id``."""
        check(_ws.websock_server_ping(self._s, conn_id, data))

    def close_client(self, conn_id: int, code: int = _ws.CLOSE_NORMAL,
                     reason: str = "") -> None:
        """Starts the close handshake with connection ``conn_id``."""
        check(_ws.websock_server_close(self._s, conn_id, code, reason or None))

    def close_tag(self, tag: str, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake with the connection tagged ``tag``."""
        check(_ws.websock_server_close_tag(self._s, tag, code, reason or None))

    # -- ids and tags ------------------------------------------------------
    def set_tag(self, conn_id: int, tag: Optional[str]) -> None:
        """Gives connection ``conn_id`` the unique ``tag`` (None removes it).
        Raises TagTaken or NoSuchClient."""
        check(_ws.websock_server_set_tag(self._s, conn_id, tag))
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn._tag = tag

    def get_tag(self, conn_id: int) -> Optional[str]:
        """The tag of ``conn_id`` or None; NoSuchClient for unknown ids."""
        rc, tag = _ws.websock_server_get_tag(self._s, conn_id)
        check(rc)
        return tag

    def find_tag(self, tag: str) -> int:
        """The id of the connection tagged ``tag``; NoSuchClient if none."""
        rc, conn_id = _ws.websock_server_find_tag(self._s, tag)
        check(rc)
        return conn_id

    def connection(self, conn_id: int) -> Optional[Any]:
        """The Connection object of an open connection, or None."""
        return self._conns.get(conn_id)

    @property
    def connections(self) -> Dict[int, Any]:
        """A snapshot ``{id: Connection}`` of the open connections."""
        return dict(self._conns)

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the core's counters as a dict: every field of
        websock_stats (connections, messages_in/out, bytes_in/out, pool_*,
        io_threads, agents, ready_connections, ready_wait_max_ns, ...), for
        every field of websock_loop_stats a list per I/O thread
        (``loop_connections``, ``loop_accepted``, ``loop_events``) and for
        every field of websock_agent_stats a list per agent
        (``agent_events``, ``agent_busy_ns``; empty with no agents)."""
        if self._s is None:
            raise error_for(InvalidArgument.code, "server freed")
        return read_stats(self._s)

    # -- events ------------------------------------------------------------
    def _conn_of(self, ev: Any) -> Optional[Any]:
        """The connection an event record is for: made from the OPEN record,
        dropped from the table by the CLOSE record; None for an id not (or
        no longer) known."""
        etype = ev.type
        if etype == EV_OPEN:
            conn = self._conns[ev.id] = self._conn_class(self, ev)
            return conn
        if etype == EV_CLOSE:
            return self._conns.pop(ev.id, None)
        return self._conns.get(ev.id)

    def _failed(self, conn: BaseConnection, what: str) -> None:
        """Logs the exception a handler raised and closes its connection with
        1011 (not for on_close: that connection has ended)."""
        log.exception("libwebsock2: %s raised for connection %d", what, conn.id)
        if what != "on_close":
            _ws.websock_server_close(self._s, conn.id, _ws.CLOSE_INTERNAL_ERROR,
                                     "internal error")
