"""asyncio front end of libwebsock2.

The core runs in QUEUED mode: its I/O threads queue events and signal an
eventfd that is registered with ``loop.add_reader``; the reader drains the
queue with zero-timeout polls, so handlers run on the event loop. Each
connection gets one task that processes its events in order.

Two styles::

    # websockets-style: one coroutine per connection
    async def echo(conn):
        async for msg in conn:
            await conn.send(msg)

    async with libwebsock2.aio.serve(echo, "127.0.0.1", 8765) as srv:
        await srv.serve_forever()

    # decorators
    srv = libwebsock2.aio.Server(port=8765)

    @srv.on_message
    async def got(conn, msg):
        await conn.send(msg)
"""
import asyncio
import logging
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, Optional, Set,
                    Tuple, TypeVar, Union)

from . import _websock as _ws
from ._config import HttpRoutes, make_server, parse_remote
from ._errors import Backpressure, ConnectionClosed, check, error_for

__all__ = ["Server", "Connection", "serve", "ConnectionClosed"]

log = logging.getLogger("libwebsock2")

Payload = Union[str, bytes, bytearray, memoryview]
F = TypeVar("F", bound=Callable[..., Any])

_EV_OPEN = _ws.EVENT_OPEN
_EV_MESSAGE = _ws.EVENT_MESSAGE
_EV_CLOSE = _ws.EVENT_CLOSE
_EV_DRAIN = _ws.EVENT_DRAIN
_BACKPRESSURE = Backpressure.code
_BATCH = 512


class Connection:
    """One connection seen from asyncio. ``await send()`` waits while the
    core reports backpressure; ``recv()`` / ``async for`` read messages in
    the per-connection handler style."""

    def __init__(self, server: "Server", conn_id: int, tag: Optional[str], path: Optional[str],
                 query: Optional[str], subprotocol: Optional[str],
                 remote_addr: Optional[str]) -> None:
        self._server = server
        self.id = conn_id
        self._tag = tag
        self.path = path
        self.query = query
        self.subprotocol = subprotocol
        self.remote_addr = remote_addr
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.data: Any = None
        self._events: "asyncio.Queue[tuple]" = asyncio.Queue()
        self._drained = asyncio.Event()
        self._task: Optional["asyncio.Task[None]"] = None

    @property
    def server(self) -> "Server":
        return self._server

    @property
    def tag(self) -> Optional[str]:
        """The connection's unique tag, or None."""
        return self._tag

    @property
    def remote_address(self) -> Optional[Tuple[str, int]]:
        """Peer address as ``(host, port)``."""
        return parse_remote(self.remote_addr)

    def set_tag(self, tag: Optional[str]) -> None:
        """Gives the connection a unique tag (None removes it); TagTaken."""
        check(_ws.websock_server_set_tag(self._server._s, self.id, tag))
        self._tag = tag

    def send_nowait(self, data: Payload) -> None:
        """Queues a message without waiting; raises Backpressure when full."""
        rc = _ws.websock_server_send(self._server._s, self.id, data)
        if rc:
            raise error_for(rc)

    async def send(self, data: Payload, *, timeout: Optional[float] = None) -> None:
        """Queues a message (str = text, bytes-like = binary). While the core
        reports Backpressure, waits for the drain event (with a backoff
        between 1 ms and 100 ms) and retries; raises Backpressure after
        ``timeout`` seconds, NoSuchClient/Closing when the connection ended."""
        s = self._server._s
        rc = _ws.websock_server_send(s, self.id, data)
        if not rc:
            return
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.001
        while rc == _BACKPRESSURE:
            if deadline is not None and loop.time() >= deadline:
                break
            self._drained.clear()
            wait = delay if deadline is None else min(delay, max(0.0, deadline - loop.time()))
            try:
                await asyncio.wait_for(self._drained.wait(), wait)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 0.1)
            rc = _ws.websock_server_send(s, self.id, data)
        if rc:
            raise error_for(rc)

    async def ping(self, data: Payload = b"") -> None:
        """Sends a ping (payload up to 125 bytes)."""
        check(_ws.websock_server_ping(self._server._s, self.id, data))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake (no error when already closing)."""
        rc = _ws.websock_server_close(self._server._s, self.id, code, reason or None)
        if rc and rc not in (-4, -7):
            raise error_for(rc)

    async def recv(self) -> Union[str, bytes]:
        """The next message (handler style). Raises ConnectionClosed."""
        if self.closed:
            raise ConnectionClosed(close_code=self.close_code or 1006,
                                   close_reason=self.close_reason or "")
        ev = await self._events.get()
        if ev[0] == _EV_MESSAGE:
            return ev[4]
        self._mark_closed(ev)
        raise ConnectionClosed(close_code=ev[5], close_reason=ev[4])

    def __aiter__(self) -> AsyncIterator[Union[str, bytes]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Union[str, bytes]]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosed:
            return

    def _mark_closed(self, ev: tuple) -> None:
        self.closed = True
        self.close_code = ev[5]
        self.close_reason = ev[4]
        self._tag = ev[2]

    def __repr__(self) -> str:
        return "<libwebsock2.aio.Connection id=%d tag=%r path=%r%s>" % (
            self.id, self._tag, self.path, " closed" if self.closed else "")


Handler = Callable[[Connection], Awaitable[Any]]


class Server:
    """An asyncio WebSocket server on the libwebsock2 core (QUEUED mode).

    Give either ``handler`` (``async def handler(conn)``, run once per
    connection; the connection is closed with 1000 when it returns, 1011
    when it raises) or the ``on_open(conn)``, ``on_message(conn, msg)``,
    ``on_close(conn, code, reason)`` coroutine functions (keywords or
    decorators). Options as for :class:`libwebsock2.Server`, including
    ``io_threads`` and ``spread`` (``"least_connections"``, the default, or
    ``"round_robin"``; anything else raises ValueError); no agents:
    handlers run on the event loop."""

    def __init__(self, handler: Optional[Handler] = None, host: str = "127.0.0.1",
                 port: int = 0, *, io_threads: int = 1, spread: str = "least_connections",
                 on_open: Optional[Callable[[Connection], Awaitable[Any]]] = None,
                 on_message: Optional[Callable[[Connection, Union[str, bytes]],
                                               Awaitable[Any]]] = None,
                 on_close: Optional[Callable[[Connection, int, str], Awaitable[Any]]] = None,
                 max_message_size: Optional[int] = None, max_frame_size: Optional[int] = None,
                 max_outbound: Optional[int] = None, max_connections: Optional[int] = None,
                 max_handshake_size: Optional[int] = None, fragment_size: Optional[int] = None,
                 handshake_timeout: Optional[float] = None, idle_timeout: Optional[float] = None,
                 ping_interval: Optional[float] = None, close_timeout: Optional[float] = None,
                 ws_paths: Optional[Iterable[str]] = None,
                 http_routes: Optional[HttpRoutes] = None, ssl: object = None) -> None:
        self._handler = handler
        self._on_open = on_open
        self._on_message = on_message
        self._on_close = on_close
        self._close_timeout = 5.0 if close_timeout is None else close_timeout
        self._h: Any = make_server(
            host=host, port=port, io_threads=io_threads, agents=0, queued=True,
            spread=spread,
            max_message_size=max_message_size, max_frame_size=max_frame_size,
            max_outbound=max_outbound, max_connections=max_connections,
            max_handshake_size=max_handshake_size, fragment_size=fragment_size,
            handshake_timeout=handshake_timeout, idle_timeout=idle_timeout,
            ping_interval=ping_interval, close_timeout=close_timeout,
            ws_paths=ws_paths, http_routes=http_routes, ssl=ssl)
        self._s: Any = _ws.pyws_handle(self._h)
        self._conns: Dict[int, Connection] = {}
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd = -1
        self._started = False
        self._stopped = False
        self._closed: Optional["asyncio.Future[None]"] = None

    # decorators
    def on_open(self, fn: F) -> F:
        """Decorator: ``async fn(conn)`` when a connection opened."""
        self._on_open = fn
        return fn

    def on_message(self, fn: F) -> F:
        """Decorator: ``async fn(conn, msg)`` per message."""
        self._on_message = fn
        return fn

    def on_close(self, fn: F) -> F:
        """Decorator: ``async fn(conn, code, reason)`` when it ended."""
        self._on_close = fn
        return fn

    # lifecycle
    async def start(self) -> "Server":
        """Starts the core and registers its event fd with the running loop."""
        if self._started:
            raise error_for(-3, "server already started")
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        check(_ws.websock_server_start(self._s))
        self._started = True
        self._fd = check(_ws.websock_server_event_fd(self._s))
        self._loop.add_reader(self._fd, self._drain)
        return self

    @property
    def port(self) -> int:
        """The listening port."""
        return check(_ws.websock_server_port(self._s))

    async def stop(self) -> None:
        """Graceful stop: close 1001 to every client, wait for the core to
        end (events keep being dispatched meanwhile), then for the
        connection tasks (cancelled after the close timeout)."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        loop = self._loop
        assert loop is not None
        _ws.websock_server_stop(self._s)
        # Once the core has ended its fd stays readable: poll instead.
        loop.remove_reader(self._fd)
        join = loop.run_in_executor(None, _ws.websock_server_join, self._s)
        while not join.done():
            self._drain()
            await asyncio.wait({join}, timeout=0.01)
        self._drain()
        join.result()
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=self._close_timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self._conns.clear()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Waits until stop() finished."""
        if self._closed is not None:
            await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Starts if needed and waits until stopped or cancelled (then stops)."""
        if not self._started:
            await self.start()
        try:
            await self.wait_closed()
        finally:
            await self.stop()

    async def __aenter__(self) -> "Server":
        if not self._started:
            await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def __del__(self) -> None:
        h = getattr(self, "_h", None)
        if h is not None and (not self._started or self._stopped):
            self._h = self._s = None
            _ws.pyws_server_free(h)  # the core threads are joined: no wait

    # sending
    def send(self, conn_id: int, data: Payload) -> None:
        """Non-blocking send by id (Backpressure when the queue is full)."""
        rc = _ws.websock_server_send(self._s, conn_id, data)
        if rc:
            raise error_for(rc)

    def send_tag(self, tag: str, data: Payload) -> None:
        """Non-blocking send by tag."""
        rc = _ws.websock_server_send_tag(self._s, tag, data)
        if rc:
            raise error_for(rc)

    def broadcast(self, data: Payload, exclude: Optional[int] = None) -> None:
        """Sends to every open connection except ``exclude``."""
        check(_ws.websock_server_broadcast(self._s, data, exclude or 0))

    def close_client(self, conn_id: int, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake with ``conn_id``."""
        check(_ws.websock_server_close(self._s, conn_id, code, reason or None))

    def find_tag(self, tag: str) -> int:
        """The id of the connection tagged ``tag`` (NoSuchClient if none)."""
        return check(_ws.pyws_find_tag(self._s, tag))

    def stats(self) -> Dict[str, Any]:
        """Counters of the core, as a dict."""
        return _ws.pyws_stats(self._s)

    @property
    def connections(self) -> Dict[int, Connection]:
        """A snapshot of the open connections."""
        return dict(self._conns)

    # event path (loop thread)
    def _drain(self) -> None:
        s = self._s
        while True:
            try:
                evs = _ws.pyws_poll_many(s, _BATCH)
            except Exception:  # pragma: no cover
                log.exception("libwebsock2: poll failed")
                return
            for ev in evs:
                etype = ev[0]
                cid = ev[1]
                if etype == _EV_OPEN:
                    conn = Connection(self, cid, ev[2], ev[6], ev[7], ev[8], ev[9])
                    self._conns[cid] = conn
                    assert self._loop is not None
                    if self._handler is not None:
                        task = self._loop.create_task(self._run_handler(conn))
                    else:
                        task = self._loop.create_task(self._run_events(conn))
                    conn._task = task
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    continue
                conn = self._conns.get(cid)
                if conn is None:
                    continue
                if etype == _EV_DRAIN:
                    conn._drained.set()
                    continue
                if etype == _EV_CLOSE:
                    del self._conns[cid]
                    conn._drained.set()  # wake a waiting send: it will fail
                elif etype == _EV_MESSAGE:
                    conn._tag = ev[2]
                conn._events.put_nowait(ev)
            if len(evs) < _BATCH:
                return

    async def _run_events(self, conn: Connection) -> None:
        q = conn._events
        if self._on_open is not None:
            try:
                await self._on_open(conn)
            except Exception:
                self._failed(conn, "on_open")
        while True:
            ev = await q.get()
            etype = ev[0]
            if etype == _EV_MESSAGE:
                fn = self._on_message
                if fn is not None:
                    try:
                        await fn(conn, ev[4])
                    except Exception:
                        self._failed(conn, "on_message")
            elif etype == _EV_CLOSE:
                conn._mark_closed(ev)
                if self._on_close is not None:
                    try:
                        await self._on_close(conn, ev[5], ev[4])
                    except Exception:
                        log.exception("libwebsock2: on_close raised for connection %d",
                                      conn.id)
                return

    async def _run_handler(self, conn: Connection) -> None:
        assert self._handler is not None
        try:
            await self._handler(conn)
        except ConnectionClosed:
            pass
        except Exception:
            self._failed(conn, "handler")
            return
        if not conn.closed:
            _ws.websock_server_close(self._s, conn.id, 1000, None)

    def _failed(self, conn: Connection, what: str) -> None:
        log.exception("libwebsock2: %s raised for connection %d", what, conn.id)
        _ws.websock_server_close(self._s, conn.id, 1011, "internal error")


def serve(handler: Optional[Handler] = None, host: str = "127.0.0.1", port: int = 0,
          **options: Any) -> Server:
    """Creates an asyncio :class:`Server`; use it as
    ``async with serve(handler, host, port) as srv:`` (starts on enter, stops
    on exit) or ``await serve(...).start()``. Keyword options as for
    :class:`Server` (including on_open/on_message/on_close)."""
    return Server(handler, host, port, **options)
