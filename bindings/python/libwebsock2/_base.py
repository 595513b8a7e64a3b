"""What the threaded (``_server``) and the asyncio (``aio``) front ends
share: connection objects, the core handle, sending, ids and tags, stats,
and the event records.

Events arrive as ``_websock.Event`` records (a struct sequence with the
fields of ``bindings/event_record.i``: type, id, tag, opcode, data,
close_code, path, query, subprotocol, remote_addr, extensions, status),
read by name here.

Tags on a cluster: ``set_tag`` may answer ``WEBSOCK_PENDING`` (the tag is
held here and being claimed in Redis, and the tag of before stays the
connection's too until Redis answers); the outcome comes later as a TAG
event of the connection (``data``: the tag, ``status``: 0 or the error,
``tag``: the connection's tag then, which after a refusal is its tag of
before again, or none). Both front ends keep ``conn.tag`` alike here
(:meth:`BaseServer._set_tag` and :meth:`BaseServer._tag_event`, under one
lock per server)."""
import collections
import logging
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar, Union

from . import _websock as _ws
from . import websock as _swig  # SWIG's shadow module: the stats structs' classes
from ._config import make_server, parse_remote
from ._errors import (AddressError, Closing, ClusterError, ConnectionClosed, Error,
                      InvalidArgument, NoSuchClient, StateError, SystemCallError, TagTaken,
                      TooBig, check, closed_error, describe_close, error_for)

__all__ = ["BaseConnection", "BaseServer", "Payload", "Topic", "EVENT_HANDLERS", "log"]

# The keywords of websockets' serve() that shape the handshake.
_NEGOTIATION = ("origins", "subprotocols", "select_subprotocol", "process_request",
                "extra_headers")

log = logging.getLogger("libwebsock2")

Payload = Union[str, bytes, bytearray, memoryview]
Topic = Union[str, bytes, bytearray, memoryview]  # 1..255 bytes, str as UTF-8
F = TypeVar("F", bound=Callable[..., Any])

EV_OPEN = _ws.EVENT_OPEN
EV_MESSAGE = _ws.EVENT_MESSAGE
EV_CLOSE = _ws.EVENT_CLOSE
EV_DRAIN = _ws.EVENT_DRAIN
EV_PING = _ws.EVENT_PING
EV_PONG = _ws.EVENT_PONG
EV_TAG = _ws.EVENT_TAG

_NO_SUCH_CLIENT = NoSuchClient.code
_CLOSING = Closing.code
_TOO_BIG = TooBig.code
_INVALID = InvalidArgument.code
_STATE = StateError.code
_PENDING = _ws.PENDING  # set_tag on a cluster: held here, claimed in Redis
TOPIC_MAX = 255  # bytes of a topic name (<websock/server.h>)
PING_LIMIT = 125  # bytes of a ping's payload (RFC 6455 section 5.5)
_PING_SETUP = threading.Lock()  # makes a connection's ping table once

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


def ping_too_big(size: int) -> Error:
    return error_for(_TOO_BIG, "ping payload too big: %d bytes (limit %d bytes)"
                     % (size, PING_LIMIT))


def close_error(rc: int, code: int) -> Error:
    if rc == _INVALID:
        return error_for(rc, "close code must be 1000..1003, 1007..1014 or 3000..4999 "
                             "(0: no code), not %r" % (code,))
    return error_for(rc)


def check_tag(rc: int, tag: Any) -> None:
    """Raises for a failed set_tag; a bad tag's message names the limit."""
    if rc == _INVALID and tag is not None:
        raise error_for(rc, "tag must be a str of 1..255 bytes (None removes it), not %r"
                        % (tag,))
    check(rc)


def tag_error(status: int, tag: Optional[str]) -> Optional[Error]:
    """The exception of a TAG event's ``status`` (None for 0, success):
    :class:`TagTaken` when a connection of another node has the tag,
    :class:`ClusterError` when Redis could not be asked."""
    if not status:
        return None
    if status == TagTaken.code:
        return error_for(status, "tag %r is held by a connection of another node" % (tag,))
    if status == ClusterError.code:
        return error_for(status, "tag %r could not be claimed: the cluster's Redis link is "
                                 "down" % (tag,))
    return error_for(status)


def _topic_size(topic: Any) -> Optional[int]:
    """The length in bytes of a topic name, None when it cannot be told."""
    try:
        if isinstance(topic, str):
            return len(topic.encode("utf-8", "surrogatepass"))
        return memoryview(topic).nbytes
    except (TypeError, ValueError):
        return None


def topic_error(rc: int, topic: Any) -> Optional[Error]:
    """The exception of a topic call whose ``topic`` the core refused
    (WEBSOCK_ERR_INVALID for a name of 0 or more than 255 bytes), worded
    with the limit; None for any other code."""
    if rc != _INVALID:
        return None
    size = _topic_size(topic)
    if size is not None and 1 <= size <= TOPIC_MAX:
        return None  # not the name: something else was refused
    shown = repr(topic)
    if size and size > 40:
        shown = repr(topic[:32] if isinstance(topic, str) else bytes(topic)[:32]) + "..."
    return error_for(rc, "topic must be 1..%d bytes (str as UTF-8, or bytes), not %s: %s"
                     % (TOPIC_MAX, "%d bytes" % size if size is not None else "unsized",
                        shown))


def exclude_id(exclude: Any) -> int:
    """The id of ``exclude`` (a connection, an id or None: 0, nobody)."""
    if exclude is None:
        return 0
    if isinstance(exclude, BaseConnection):
        return exclude.id
    if isinstance(exclude, int) and not isinstance(exclude, bool) and exclude >= 0:
        return exclude
    raise TypeError("exclude must be a Connection, a connection id (int) or None, not %r"
                    % (exclude,))


def conn_id_of(conn: Any) -> int:
    """The id of ``conn`` (a connection or an id)."""
    if isinstance(conn, BaseConnection):
        return conn.id
    if isinstance(conn, int) and not isinstance(conn, bool):
        return conn
    raise TypeError("conn must be a Connection or a connection id (int), not %r" % (conn,))


def ping_payload(data: Any) -> Optional[bytes]:
    """The bytes of a ping payload (str as UTF-8), None for a new one."""
    if data is None:
        return None
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError("ping payload must be str, bytes-like or None, not %s"
                    % type(data).__name__)


class BaseConnection:
    """One WebSocket connection, made from its OPEN event and kept by the
    server until its CLOSE event. The tag is the one the connection had when
    it opened, then whatever ``set_tag`` gave it: the tag snapshots carried
    by later events never overwrite it, but for a cluster's refused claim,
    whose TAG event gives it the tag the core gave back. ``request`` is the upgrade's
    :class:`libwebsock2.Request` (``request_headers`` its headers)."""

    __slots__ = ("_server", "id", "path", "query", "subprotocol", "remote_addr", "extensions",
                 "_tag", "closed", "close_code", "close_reason", "data", "request",
                 "_pings", "_ping_lock", "_sent_close", "url", "__weakref__")
    _repr_name = "libwebsock2.Connection"

    def __init__(self, server: "BaseServer", ev: Any) -> None:
        self._server = server
        self.id: int = ev.id
        self._tag: Optional[str] = ev.tag
        self.path: Optional[str] = ev.path
        self.query: Optional[str] = ev.query
        self.subprotocol: Optional[str] = ev.subprotocol
        self.remote_addr: Optional[str] = ev.remote_addr
        # the extension agreed in the 101 ("permessage-deflate; ..."), or None
        self.extensions: Optional[str] = ev.extensions
        self.closed: bool = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.data: Any = None  # free for the application
        self.request: Any = None  # the Request of the upgrade
        # payload -> (waiter, time sent) of the pings waiting for a pong, in
        # the order sent; made by the first ping
        self._pings: "Optional[collections.OrderedDict[bytes, Tuple[Any, float]]]" = None
        self._ping_lock: Optional[threading.Lock] = None
        self._sent_close: Optional[Tuple[int, str]] = None  # our close(code, reason)
        self.url: Optional[str] = None  # the URL of an outgoing connection (connect())

    @property
    def server(self) -> Any:
        """The server this connection belongs to."""
        return self._server

    @property
    def remote_address(self) -> Optional[Tuple[str, int]]:
        """Peer address as ``(host, port)``."""
        return parse_remote(self.remote_addr)

    @property
    def request_headers(self) -> Any:
        """The headers of the upgrade request (a case-insensitive
        :class:`libwebsock2.Headers`)."""
        from ._handshake import Headers
        req = self.request
        return req.headers if req is not None else Headers()

    @property
    def tag(self) -> Optional[str]:
        """The connection's unique tag, or None. On a cluster it shows a
        claimed tag at once, while Redis is asked (the tag of before is
        still the connection's meanwhile: sends to either reach it); when
        the claim is refused it shows the tag of before again (None when
        there was none), as after a refused ``set_tag`` on one server, and
        it becomes None when the tag is lost to another node."""
        return self._tag

    def set_tag(self, tag: Optional[str]) -> bool:
        """Gives the connection the unique ``tag`` (a str of 1..255 bytes;
        None removes it). Returns True when that is settled now (a server
        without a cluster; None; the tag was already the connection's and
        confirmed; on a cluster, the tag it had before a claim still
        pending, which it keeps then), False when it is pending on a
        cluster: the connection holds the tag on this node at once
        (``conn.tag`` shows it, sends by tag on this node reach it), its
        tag of before stays its too until Redis answers, and the answer
        comes later as the server's ``on_tag(conn, tag, error)``, in order
        with the connection's other events (``error`` None: held
        cluster-wide, and the tag of before is let go; :class:`TagTaken`:
        another node won, and the connection has its tag of before again).
        A second call with the tag still pending is pending too: the one
        outcome answers both. Raises :class:`TagTaken` when another live
        connection holds it (on a cluster: one this node knows of),
        :class:`ClusterError` while the cluster's Redis link is down,
        :class:`InvalidArgument`, :class:`NoSuchClient`; the connection's
        tag is then as it was."""
        return self._server._set_tag(self.id, self, tag)

    def send_nowait(self, data: Payload) -> None:
        """Queues one message: ``str`` as a text frame, any bytes-like object
        as a binary frame. Non-blocking; raises :class:`Backpressure` when
        the outbound queue is full, :class:`ConnectionClosed` when the
        connection ended."""
        rc = _ws.websock_server_send(self._server._s, self.id, data)
        if rc:
            raise self._error(rc)

    # -- topics ------------------------------------------------------------
    def subscribe(self, topic: Topic) -> None:
        """Makes this connection a member of ``topic`` (str as UTF-8, or
        bytes: 1..255 bytes, compared byte for byte), so that the server's
        ``publish(topic, ...)`` reaches it. Subscribing twice is a no-op; a
        connection leaves all its topics when it ends. Never blocks (from
        another thread than the connection's I/O thread the change is
        posted to it, in order with a later publish of the same thread).
        Raises :class:`InvalidArgument` for a name of 0 or more than 255
        bytes, :class:`ConnectionClosed` (threads: :class:`NoSuchClient`)
        when the connection ended, :class:`Closing` when its close began."""
        rc = _ws.websock_server_subscribe(self._server._s, self.id, topic)
        if rc:
            raise self._topic_failed(rc, topic)

    def unsubscribe(self, topic: Topic) -> None:
        """Ends this connection's membership of ``topic``; a topic it is not
        in is a no-op (from another thread the membership is not known yet
        when this returns, so it cannot say). Errors as for
        :meth:`subscribe`."""
        rc = _ws.websock_server_unsubscribe(self._server._s, self.id, topic)
        if rc:
            raise self._topic_failed(rc, topic)

    def _topic_failed(self, rc: int, topic: Any) -> Error:
        err = topic_error(rc, topic)
        # an ended connection: mapped as a ping's (each front end's way)
        return err if err is not None else self._ping_failed(rc)

    # -- errors ------------------------------------------------------------
    def _close_info(self) -> Tuple[Optional[int], str]:
        """(close code, reason) as far as known: the CLOSE event's, else
        the one this side sent, else (None, "")."""
        if self.close_code is not None:
            return self.close_code, self.close_reason or ""
        if self._sent_close is not None:
            return self._sent_close
        return None, ""

    def _error(self, rc: int) -> Error:
        """The exception of a failed call on this connection: NoSuchClient
        with the close code and reason when it ended (the threaded API)."""
        if rc == _NO_SUCH_CLIENT:
            code, reason = self._close_info()
            message = (describe_close(code, reason) if code is not None
                       else _ws.websock_strerror(rc))
            return NoSuchClient(message, rc, code, reason)
        return error_for(rc)

    def _closed_error(self, rc: int = _NO_SUCH_CLIENT) -> ConnectionClosed:
        """ConnectionClosedOK / ConnectionClosedError of this connection."""
        code, reason = self._close_info()
        return closed_error(code, reason, rc)

    # -- pings and their pongs ---------------------------------------------
    def _new_waiter(self) -> Any:  # pragma: no cover - each front end has its own
        raise NotImplementedError

    def _settle(self, waiter: Any, result: Any = None,
                exc: Optional[BaseException] = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _send_ping(self, data: Any) -> Any:
        """Sends a ping with ``data`` (None: 4 new random bytes) and returns
        the waiter the matching pong resolves with the round-trip time in
        seconds."""
        key = ping_payload(data)
        if key is not None and len(key) > PING_LIMIT:
            raise ping_too_big(len(key))
        if self._ping_lock is None:
            with _PING_SETUP:  # made by the first ping: most connections never ping
                if self._ping_lock is None:
                    self._pings = collections.OrderedDict()
                    self._ping_lock = threading.Lock()
        with self._ping_lock:
            pings = self._pings
            assert pings is not None
            if key is None:
                key = random.getrandbits(32).to_bytes(4, "big")
                while key in pings:
                    key = random.getrandbits(32).to_bytes(4, "big")
            elif key in pings:
                raise RuntimeError("already waiting for a pong with the same data")
            waiter = self._new_waiter()
            pings[key] = (waiter, time.monotonic())
        rc = _ws.websock_server_ping(self._server._s, self.id, key)
        if rc:
            with self._ping_lock:
                pings.pop(key, None)
            raise ping_too_big(len(key)) if rc == _TOO_BIG else self._ping_failed(rc)
        return waiter

    def _ping_failed(self, rc: int) -> Error:
        return self._error(rc)

    def _got_pong(self, data: Any) -> None:
        """A pong arrived: resolves the waiter of its payload and of every
        ping sent before it (a pong answers the pings before it too)."""
        lock, pings = self._ping_lock, self._pings
        if lock is None or pings is None:
            return
        key = data if isinstance(data, bytes) else bytes(data or b"")
        with lock:
            if key not in pings:
                return
            done = []
            while pings:
                sent, entry = pings.popitem(last=False)
                done.append(entry)
                if sent == key:
                    break
        now = time.monotonic()
        for waiter, t0 in done:
            self._settle(waiter, now - t0)

    def _abort_pings(self) -> None:
        """The connection ended: its pending ping waiters fail with its
        ConnectionClosed."""
        lock, pings = self._ping_lock, self._pings
        if lock is None or pings is None:
            return
        with lock:
            waiting = [w for w, _ in pings.values()]
            pings.clear()
        if waiting:
            exc = self._closed_error()
            for waiter in waiting:
                self._settle(waiter, exc=exc)

    def _ended(self, ev: Any) -> None:
        """The CLOSE event was dispatched: the close code and reason are
        known, and the pings waiting for a pong fail."""
        self.close_code = ev.close_code
        self.close_reason = ev.data
        self._abort_pings()

    def _mark_closed(self, ev: Any) -> None:
        """The CLOSE event reached the handlers: ``closed`` is True."""
        if self.close_code is None:
            self._ended(ev)
        self.closed = True

    def __repr__(self) -> str:
        return "<%s id=%d tag=%r path=%r%s>" % (
            self._repr_name, self.id, self._tag, self.path, " closed" if self.closed else "")


class BaseServer:
    """The core server and what both front ends do with it alike. Options
    (keywords of :func:`libwebsock2._config.make_server`): ``io_threads``,
    ``spread``, ``agent_budget``, ``agent_batch``, ``max_message_size``,
    ``max_frame_size``,
    ``max_outbound``, ``max_connections``, ``max_handshake_size``,
    ``fragment_size``, ``handshake_timeout``, ``idle_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``,
    ``slow_consumer_timeout`` (seconds), ``ws_paths``, ``http_routes``,
    ``ssl``; and the handshake keywords of websockets (``origins``,
    ``subprotocols``, ``select_subprotocol``, ``process_request``,
    ``extra_headers``: see :class:`libwebsock2._handshake.Negotiation`).

    The core's handshake hook is always installed: it records each
    upgrade's request for ``conn.request`` / ``conn.request_headers``."""

    _conn_class: Type[BaseConnection] = BaseConnection

    def __init__(self, host: str, port: int, *, queued: bool, agents: int,
                 on_open: Optional[Callable[..., Any]],
                 on_message: Optional[Callable[..., Any]],
                 on_close: Optional[Callable[..., Any]], options: Dict[str, Any]) -> None:
        from ._handshake import Negotiation, Opening, Pending
        # set_tag and the TAG events of its claims keep conn.tag and the
        # claims in flight under this lock (set_tag may come from any thread)
        self._tag_lock = threading.Lock()
        self._h: Any = None
        self._s: Any = None
        self._started = False
        self._joined = False
        self._negotiation = Negotiation(**{k: options.pop(k) for k in _NEGOTIATION
                                           if k in options})
        for name, fn in (("on_open", on_open), ("on_message", on_message),
                         ("on_close", on_close)):
            self._check_handler(name, fn)
        self._h = make_server(hook=True, host=host, port=port, agents=agents, queued=queued,
                              **options)
        self._s = _ws.pyws_handle(self._h)
        self._conns: Dict[int, Any] = {}
        self._on_open = on_open
        self._on_message = on_message
        self._on_close = on_close
        timeout = options.get("handshake_timeout")
        # An accepted upgrade's OPEN follows within the handshake timeout;
        # what is left longer in the table belongs to a client that left.
        self._opening = Opening((10.0 if timeout is None else timeout) + 60.0)
        self._pending = Pending(self._opening)  # deferred upgrades not answered yet
        from ._client import Dialer
        self._dialer = Dialer()  # outgoing connections until their OPEN (connect())

    def _check_handler(self, name: str, fn: Any) -> None:
        """Raises TypeError for a handler the front end cannot call."""
        if fn is not None and not callable(fn):
            raise TypeError("%s must be callable, not %r" % (name, fn))

    # -- handler decorators ------------------------------------------------
    def on_open(self, fn: F) -> F:
        """Decorator: ``fn(conn)`` runs when a connection opened."""
        self._check_handler("on_open", fn)
        self._on_open = fn
        return fn

    def on_message(self, fn: F) -> F:
        """Decorator: ``fn(conn, msg)`` runs per message (str or bytes)."""
        self._check_handler("on_message", fn)
        self._on_message = fn
        return fn

    def on_close(self, fn: F) -> F:
        """Decorator: ``fn(conn, code, reason)`` runs when a connection ended."""
        self._check_handler("on_close", fn)
        self._on_close = fn
        return fn

    # -- lifecycle ---------------------------------------------------------
    def _start_core(self) -> None:
        """websock_server_start; a failure to listen raises AddressError (or
        SystemCallError) with the core's sentence naming the address and
        the reason, and ``errno``; a cluster node whose number is alive
        AddressError, one that cannot draw a number (node 0) because Redis
        does not answer ClusterError, with the core's sentence."""
        rc = _ws.websock_server_start(self._s)
        if not rc:
            return
        if rc in (AddressError.code, SystemCallError.code):
            text, err = _ws.websock_server_last_error(self._s)
            if text:
                cls = AddressError if rc == AddressError.code else SystemCallError
                raise cls(text, rc, errno=err)
        if rc == ClusterError.code:
            text, _ = _ws.websock_server_last_error(self._s)
            if text:
                raise error_for(rc, text)
        raise error_for(rc)

    def _check_startable(self) -> None:
        if self._started:
            raise error_for(StateError.code, "server already started")

    @property
    def port(self) -> int:
        """The port the server listens on (the chosen one with port=0)."""
        return check(_ws.websock_server_port(self._s))

    @property
    def node(self) -> int:
        """This server's node number in its cluster (1..1023: the one
        given, or the one drawn from Redis with ``node`` None or 0), 0
        without a cluster. Raises :class:`StateError` before start."""
        return check(_ws.websock_server_cluster_node(self._s))

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

    def broadcast(self, data: Payload, exclude: Any = None) -> None:
        """Sends ``data`` to every open connection except ``exclude`` (an id
        or a Connection). Connections over their outbound limit are
        skipped."""
        check(_ws.websock_server_broadcast(self._s, data, exclude_id(exclude)))

    # -- topics ------------------------------------------------------------
    def publish(self, topic: Topic, message: Payload, *, exclude: Any = None) -> None:
        """Sends ``message`` (str = text, bytes-like = binary) to every
        member of ``topic`` (str as UTF-8, or bytes; 1..255 bytes) but
        ``exclude`` (a Connection or an id, e.g. the sender; None: nobody).
        Encoded once and shared by every member (with permessage-deflate,
        compressed once per I/O thread); members over their outbound limit
        are skipped, as by :meth:`broadcast`. Never blocks: it returns once
        the message is posted, before it is known how many members it
        reaches (a topic without members is no error). Any thread. Raises
        :class:`InvalidArgument` for a bad topic name, :class:`BadUtf8`,
        :class:`StateError` when the server does not run."""
        rc = _ws.websock_server_publish(self._s, topic, message, exclude_id(exclude))
        if rc:
            err = topic_error(rc, topic)
            if err is None and rc == _STATE:
                err = error_for(rc, "publish: the server is not running")
            raise err if err is not None else error_for(rc)

    def subscribe(self, conn: Any, topic: Topic) -> None:
        """``conn.subscribe(topic)`` by id (or Connection): any thread.
        Raises :class:`NoSuchClient` for an id the server does not know."""
        rc = _ws.websock_server_subscribe(self._s, conn_id_of(conn), topic)
        if rc:
            err = topic_error(rc, topic)
            raise err if err is not None else error_for(rc)

    def unsubscribe(self, conn: Any, topic: Topic) -> None:
        """``conn.unsubscribe(topic)`` by id (or Connection): any thread."""
        rc = _ws.websock_server_unsubscribe(self._s, conn_id_of(conn), topic)
        if rc:
            err = topic_error(rc, topic)
            raise err if err is not None else error_for(rc)

    def ping(self, conn_id: int, data: Payload = b"") -> None:
        """Sends a ping (payload up to 125 bytes, else :class:`TooBig`) to
        ``conn_id``. ``conn.ping()`` also waits for the pong."""
        rc = _ws.websock_server_ping(self._s, conn_id, data)
        if rc == _TOO_BIG:
            raise ping_too_big(len(ping_payload(data) or b""))
        check(rc)

    def close_client(self, conn_id: int, code: int = _ws.CLOSE_NORMAL,
                     reason: str = "") -> None:
        """Starts the close handshake with connection ``conn_id``."""
        rc = _ws.websock_server_close(self._s, conn_id, code, reason or None)
        if rc:
            raise close_error(rc, code)

    def close_tag(self, tag: str, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake with the connection tagged ``tag``."""
        rc = _ws.websock_server_close_tag(self._s, tag, code, reason or None)
        if rc:
            raise close_error(rc, code)

    # -- ids and tags ------------------------------------------------------
    def set_tag(self, conn_id: int, tag: Optional[str]) -> bool:
        """Gives connection ``conn_id`` the unique ``tag`` (None removes it).
        Returns True when settled now, False when pending on a cluster (the
        outcome comes by ``on_tag``), as ``conn.set_tag``. Raises TagTaken,
        ClusterError, InvalidArgument or NoSuchClient."""
        return self._set_tag(conn_id, self._conns.get(conn_id), tag)

    def _set_tag(self, conn_id: int, conn: Optional[BaseConnection],
                 tag: Optional[str]) -> bool:
        """websock_server_set_tag and ``conn.tag`` (``conn`` None: not
        known here). The core says whether it is settled: 0, or
        WEBSOCK_PENDING while Redis has not answered (also for the tag
        still pending, asked again). Under the tag lock, so that a TAG
        event dispatched on another thread while the core call runs is
        booked after ``conn.tag`` shows the tag."""
        with self._tag_lock:
            rc = _ws.websock_server_set_tag(self._s, conn_id, tag)
            check_tag(rc, tag)
            if conn is not None:
                conn._tag = tag
            return rc != _PENDING

    def _tag_event(self, conn: BaseConnection, ev: Any) -> Tuple[Optional[Error], bool]:
        """Books a TAG event of ``conn``: an error for the tag the
        connection shows makes ``conn.tag`` the record's tag, the one the
        core gave it back (its tag of before, or None). Returns the error
        (None: held cluster-wide) and whether the claims of the tag are
        settled: False when, after an error, the connection is claiming
        that tag again (a set_tag of it after the refusal, whose own
        outcome comes later)."""
        tag, status = ev.data, ev.status
        settled = True
        with self._tag_lock:
            if status and conn._tag == tag:
                now = ev.tag
                # The record's tag is copied as the event is delivered: a
                # set_tag of this tag again from another thread may have
                # come after the copy. The core knows.
                if now != tag and self._core_tag(conn.id) == tag:
                    now = tag
                conn._tag = now
                settled = now != tag
        return tag_error(status, tag), settled

    def _core_tag(self, conn_id: int) -> Optional[str]:
        """The core's tag of ``conn_id`` now (None: none, or gone)."""
        rc, tag = _ws.websock_server_get_tag(self._s, conn_id)
        return tag if rc >= 0 else None

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
            dial = self._dialer.pop(ev.id)
            if dial is None:
                conn.request = self._opening.take(ev)
            else:  # an outgoing connection of connect()
                conn.url = dial.url
                conn.data = dial.user_data
                dial.opened(conn)
            return conn
        if etype == EV_CLOSE:
            conn = self._conns.pop(ev.id, None)
            if conn is not None:
                conn._ended(ev)
            else:
                dial = self._dialer.pop(ev.id)
                if dial is not None:  # a connect() that failed: no OPEN
                    dial.failed(ev)
            return conn
        return self._conns.get(ev.id)

    def _failed(self, conn: BaseConnection, what: str) -> None:
        """Logs the exception a handler raised and closes its connection with
        1011 (not for on_close: that connection has ended)."""
        log.exception("libwebsock2: %s raised for connection %d", what, conn.id)
        if what != "on_close":
            _ws.websock_server_close(self._s, conn.id, _ws.CLOSE_INTERNAL_ERROR,
                                     "internal error")
