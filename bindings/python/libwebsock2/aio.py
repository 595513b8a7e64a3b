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
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Set, Union

from . import _websock as _ws
from ._base import EV_CLOSE, EV_DRAIN, EV_MESSAGE, EV_OPEN, BaseConnection, BaseServer, Payload, log
from ._errors import Backpressure, Closing, ConnectionClosed, NoSuchClient, check, error_for

__all__ = ["Server", "Connection", "serve", "ConnectionClosed"]

_BACKPRESSURE = Backpressure.code
_ENDED = (NoSuchClient.code, Closing.code)
_BATCH = 512


class Connection(BaseConnection):
    """One connection seen from asyncio. ``await send()`` waits while the
    core reports backpressure; ``recv()`` / ``async for`` read messages in
    the per-connection handler style."""

    __slots__ = ("_events", "_drained", "_task")
    _repr_name = "libwebsock2.aio.Connection"

    def __init__(self, server: "Server", ev: Any) -> None:
        super().__init__(server, ev)
        self._events: "asyncio.Queue[Any]" = asyncio.Queue()
        self._drained = asyncio.Event()
        self._task: Optional["asyncio.Task[None]"] = None

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
        self._server.ping(self.id, data)

    async def close(self, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake (no error when already closing)."""
        rc = _ws.websock_server_close(self._server._s, self.id, code, reason or None)
        if rc and rc not in _ENDED:
            raise error_for(rc)

    async def recv(self) -> Union[str, bytes]:
        """The next message (handler style). Raises ConnectionClosed."""
        if self.closed:
            raise ConnectionClosed(close_code=self.close_code or _ws.CLOSE_ABNORMAL,
                                   close_reason=self.close_reason or "")
        ev = await self._events.get()
        if ev.type == EV_MESSAGE:
            return ev.data
        self._mark_closed(ev)
        raise ConnectionClosed(close_code=ev.close_code, close_reason=ev.data)

    def __aiter__(self) -> AsyncIterator[Union[str, bytes]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Union[str, bytes]]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosed:
            return


Handler = Callable[[Connection], Awaitable[Any]]


class Server(BaseServer):
    """An asyncio WebSocket server on the libwebsock2 core (QUEUED mode).

    Give either ``handler`` (``async def handler(conn)``, run once per
    connection; the connection is closed with 1000 when it returns, 1011
    when it raises) or the ``on_open(conn)``, ``on_message(conn, msg)``,
    ``on_close(conn, code, reason)`` coroutine functions (keywords or
    decorators). Options as for :class:`libwebsock2.Server`, including
    ``io_threads``, ``reuse_port`` and ``spread`` (``"least_connections"``, the default, or
    ``"round_robin"``; anything else raises ValueError); no agents:
    handlers run on the event loop (``agent_budget`` is accepted and
    checked, but has no effect here)."""

    _conn_class = Connection

    def __init__(self, handler: Optional[Handler] = None, host: str = "127.0.0.1",
                 port: int = 0, *,
                 on_open: Optional[Callable[[Connection], Awaitable[Any]]] = None,
                 on_message: Optional[Callable[[Connection, Union[str, bytes]],
                                               Awaitable[Any]]] = None,
                 on_close: Optional[Callable[[Connection, int, str], Awaitable[Any]]] = None,
                 **options: Any) -> None:
        super().__init__(host, port, queued=True, agents=0, on_open=on_open,
                         on_message=on_message, on_close=on_close, options=options)
        self._handler = handler
        close_timeout = options.get("close_timeout")
        self._close_timeout = 5.0 if close_timeout is None else close_timeout
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd = -1
        self._stopped = False
        self._closed: Optional["asyncio.Future[None]"] = None

    # lifecycle
    async def start(self) -> "Server":
        """Starts the core and registers its event fd with the running loop."""
        self._check_startable()
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        check(_ws.websock_server_start(self._s))
        self._started = True
        self._fd = check(_ws.websock_server_event_fd(self._s))
        self._loop.add_reader(self._fd, self._drain)
        return self

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
        check(join.result())
        self._joined = True
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
                self._dispatch(ev)
            if len(evs) < _BATCH:
                return

    def _dispatch(self, ev: Any) -> None:
        """Hands one event record to its connection's task."""
        conn = self._conn_of(ev)
        if conn is None:
            return
        etype = ev.type
        if etype == EV_MESSAGE:
            conn._events.put_nowait(ev)
        elif etype == EV_OPEN:
            assert self._loop is not None
            run = self._run_handler if self._handler is not None else self._run_events
            task = conn._task = self._loop.create_task(run(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif etype == EV_CLOSE:
            conn._drained.set()  # wake a waiting send: it will fail
            conn._events.put_nowait(ev)
        elif etype == EV_DRAIN:
            conn._drained.set()

    async def _run_events(self, conn: Connection) -> None:
        q = conn._events
        if self._on_open is not None:
            try:
                await self._on_open(conn)
            except Exception:
                self._failed(conn, "on_open")
        while True:
            ev = await q.get()
            if ev.type == EV_MESSAGE:
                fn = self._on_message
                if fn is not None:
                    try:
                        await fn(conn, ev.data)
                    except Exception:
                        self._failed(conn, "on_message")
            else:  # CLOSE: the last one
                conn._mark_closed(ev)
                if self._on_close is not None:
                    try:
                        await self._on_close(conn, ev.close_code, ev.data)
                    except Exception:
                        self._failed(conn, "on_close")
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
            _ws.websock_server_close(self._s, conn.id, _ws.CLOSE_NORMAL, None)


def serve(handler: Optional[Handler] = None, host: str = "127.0.0.1", port: int = 0,
          **options: Any) -> Server:
    """Creates an asyncio :class:`Server`; use it as
    ``async with serve(handler, host, port) as srv:`` (starts on enter, stops
    on exit) or ``await serve(...).start()``. Keyword options as for
    :class:`Server` (including on_open/on_message/on_close)."""
    return Server(handler, host, port, **options)
