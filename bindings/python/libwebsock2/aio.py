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
        await srv.serve_forever()     # SIGINT/SIGTERM stop it gracefully

    # decorators
    srv = libwebsock2.aio.Server(port=8765)

    @srv.on_message
    async def got(conn, msg):
        await conn.send(msg)

The handshake keywords of websockets (``origins``, ``subprotocols``,
``select_subprotocol``, ``process_request``, ``extra_headers``) run on the
loop: the upgrade is put off in the core's hook (``websock_request_defer``)
and answered from the loop, so ``process_request`` may be a coroutine
function that awaits a database.
"""
import asyncio
import concurrent.futures
import inspect
import signal
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, Generator, Iterable, List,
                    Optional, Set, Union)

from . import _websock as _ws
from ._base import (EV_CLOSE, EV_DRAIN, EV_MESSAGE, EV_OPEN, EV_PING, EV_PONG, EV_TAG,
                    BaseConnection, BaseServer, Payload, log, tag_error)
from ._config import PING_INTERVAL, PING_TIMEOUT
from ._errors import (Backpressure, Closing, ConnectionClosed, ConnectionClosedError,
                      ConnectionClosedOK, Error, NoSuchClient, check, error_for)
from ._handshake import (ACCEPT, DEFER, Request, Response, Upgrade, http_response,
                         negotiate_later, negotiate_now, respond_now)
from ._server import restore_signals, signals_to_handle

__all__ = ["Server", "Connection", "serve", "connect", "ClientConnection", "ConnectionClosed",
           "ConnectionClosedOK", "ConnectionClosedError"]

_BACKPRESSURE = Backpressure.code
_ENDED = (NoSuchClient.code, Closing.code)
_BATCH = 512


def _is_coroutine_function(fn: Any) -> bool:
    """``async def`` functions, also behind functools.partial or as a
    callable object's ``__call__``."""
    if inspect.iscoroutinefunction(fn) or asyncio.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def _describe(fn: Any) -> str:
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return "the plain function %s" % getattr(fn, "__name__", fn)
    return "a %s object" % type(fn).__name__


class Connection(BaseConnection):
    """One connection seen from asyncio. ``await send()`` waits while the
    core reports backpressure; ``recv()`` / ``async for`` read messages in
    the per-connection handler style. A send, ping or ``recv()`` on a
    connection that ended raises :class:`ConnectionClosedOK` (1000, 1001)
    or :class:`ConnectionClosedError` (any other code), with ``code`` and
    ``reason``.

    Tags: ``conn.set_tag(tag)`` as in the threaded API (True: settled now,
    False: pending on a cluster, the outcome by ``on_tag``), and ``await
    conn.claim_tag(tag)``, which also waits for a pending claim's outcome."""

    __slots__ = ("_events", "_drained", "_task", "_closed_ev", "_tag_waiters")
    _repr_name = "libwebsock2.aio.Connection"

    def __init__(self, server: "Server", ev: Any) -> None:
        super().__init__(server, ev)
        self._events: "asyncio.Queue[Any]" = asyncio.Queue()
        self._drained = asyncio.Event()
        self._closed_ev = asyncio.Event()  # the CLOSE event was dispatched
        self._task: Optional["asyncio.Task[None]"] = None
        # tag -> the claim_tag() calls waiting for its TAG event
        self._tag_waiters: Optional[Dict[str, List["asyncio.Future[None]"]]] = None

    async def claim_tag(self, tag: Optional[str]) -> None:
        """Gives the connection the unique ``tag`` (None removes it) and,
        on a cluster, waits until Redis has answered the claim: returns
        once the connection holds the tag cluster-wide (at once without a
        cluster, for None, or for the tag it holds already; its tag of
        before is let go then); raises :class:`TagTaken` when a connection
        of this or another node has it, :class:`ClusterError` when Redis
        could not be asked (then the connection keeps its tag of before,
        which ``conn.tag`` shows, or None), and as :meth:`set_tag` does.
        The outcome is settled where the loop reads the core's events, not
        in the connection's ordered queue, so this may be awaited inside
        the connection's own handler or ``on_message`` (``on_tag`` still
        runs afterwards, in order, when set). Fails with
        :class:`ConnectionClosed` when the connection ends first."""
        if self.set_tag(tag):
            return
        assert tag is not None
        if self.closed or self.close_code is not None:
            raise self._closed_error()
        fut: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        if self._tag_waiters is None:
            self._tag_waiters = {}
        waiting = self._tag_waiters.setdefault(tag, [])
        waiting.append(fut)
        try:
            await fut
        finally:
            if not fut.done() or fut.cancelled():
                try:
                    waiting.remove(fut)
                except ValueError:
                    pass

    def _claimed(self, tag: Optional[str], exc: Optional[BaseException]) -> None:
        """A TAG event (on the loop): the claim_tag() calls waiting for
        ``tag`` return or raise ``exc``."""
        waiters = self._tag_waiters
        if not waiters or tag is None:
            return
        for fut in waiters.pop(tag, ()):
            self._settle(fut, None, exc)

    def _claims_ended(self) -> None:
        """The connection ended: the claim_tag() calls still waiting fail
        with its ConnectionClosed."""
        waiters = self._tag_waiters
        if not waiters:
            return
        self._tag_waiters = None
        exc = self._closed_error()
        for futs in waiters.values():
            for fut in futs:
                self._settle(fut, None, exc)

    async def send(self, data: Payload, *, timeout: Optional[float] = None) -> None:
        """Queues a message (str = text, bytes-like = binary). While the core
        reports Backpressure, waits for the drain event (with a backoff
        between 1 ms and 100 ms) and retries; raises Backpressure after
        ``timeout`` seconds, :class:`ConnectionClosed` when the connection
        ended."""
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
            raise self._closed_error(rc) if rc in _ENDED else error_for(rc)

    async def ping(self, data: Optional[Payload] = None) -> "asyncio.Future[float]":
        """Sends a ping (``data``: up to 125 bytes, str as UTF-8; None for 4
        random bytes) and returns a waiter: ``await`` it for the matching
        pong, and it gives the round-trip time in seconds::

            pong_waiter = await conn.ping()
            latency = await pong_waiter

        The waiter fails with :class:`ConnectionClosed` when the connection
        ends first. Raises :class:`TooBig` past 125 bytes,
        :class:`ConnectionClosed` on a closed connection, RuntimeError when
        a ping with the same payload still waits for its pong."""
        return self._send_ping(data)

    async def close(self, code: int = _ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the close handshake and waits until the connection ended
        (at most the close timeout). Closing a connection that is closed or
        closing already does nothing, as in websockets."""
        if self.close_code is None and self._sent_close is None:
            rc = _ws.websock_server_close(self._server._s, self.id, code, reason or None)
            if rc and rc not in _ENDED:
                from ._base import close_error
                raise close_error(rc, code)
            if not rc:
                self._sent_close = (code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Waits until the connection ended (its CLOSE event), at most the
        server's close timeout and a second."""
        try:
            await asyncio.wait_for(self._closed_ev.wait(), self._server._close_timeout + 1.0)
        except asyncio.TimeoutError:
            pass

    async def recv(self) -> Union[str, bytes]:
        """The next message (handler style). Raises ConnectionClosedOK or
        ConnectionClosedError once the connection ended."""
        while True:
            if self.closed:
                raise self._closed_error()
            ev = await self._events.get()
            if ev.type == EV_MESSAGE:
                return ev.data
            if ev.type == EV_CLOSE:
                self._mark_closed(ev)
                raise self._closed_error()

    def __aiter__(self) -> AsyncIterator[Union[str, bytes]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Union[str, bytes]]:
        # As websockets: the loop ends on a normal close (1000, 1001) and
        # raises ConnectionClosedError otherwise.
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    # -- internals ---------------------------------------------------------
    def _ping_failed(self, rc: int) -> Error:
        return self._closed_error(rc) if rc in _ENDED else error_for(rc)

    def _new_waiter(self) -> "asyncio.Future[float]":
        return asyncio.get_running_loop().create_future()

    def _settle(self, waiter: Any, result: Any = None,
                exc: Optional[BaseException] = None) -> None:
        if waiter.done():
            return
        if exc is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(exc)
            waiter.exception()  # retrieved: no "never retrieved" log for unawaited pings


Handler = Callable[[Connection], Awaitable[Any]]


class Server(BaseServer):
    """An asyncio WebSocket server on the libwebsock2 core (QUEUED mode).

    Give either ``handler`` (``async def handler(conn)``, run once per
    connection; the connection is closed with 1000 when it returns, 1011
    when it raises) or the ``on_open(conn)``, ``on_message(conn, msg)``,
    ``on_close(conn, code, reason)``, ``on_ping(conn, data)``,
    ``on_pong(conn, data)``, ``on_tag(conn, tag, error)`` coroutine
    functions (keywords or decorators); a plain function raises TypeError
    at once. Options as for
    :class:`libwebsock2.Server`, including the handshake keywords of
    websockets (``origins``, ``subprotocols``, ``select_subprotocol``,
    ``process_request``, which may be a coroutine function here,
    ``extra_headers``), the keepalive (``ping_interval``, ``ping_timeout``,
    20 s each), ``compression`` (``"deflate"``, the default as in
    websockets, None, or a :class:`libwebsock2.Deflate`), ``ssl``,
    ``io_threads``, ``reuse_port`` and ``spread``; no
    agents: handlers run on the event loop (``agent_budget`` and
    ``agent_batch`` are accepted and checked, but have no effect here).

    Topics: ``conn.subscribe(topic)``, ``conn.unsubscribe(topic)`` and
    ``srv.publish(topic, msg, exclude=None)`` are plain methods (no
    ``await``): they never block, they only post to the core's I/O threads,
    as :meth:`broadcast` does.

    A cluster through Redis (``cluster``, ``node``, ``cluster_prefix``,
    ``cluster_ttl``, as :class:`libwebsock2.Server`): ``conn.set_tag(tag)``
    returns False while the claim in Redis is pending, and its outcome
    comes by ``on_tag`` (see :meth:`on_tag`); ``await
    conn.claim_tag(tag)`` sets the tag and waits for that outcome.

    Where the handshake runs: an upgrade whose answer needs
    ``process_request``, ``select_subprotocol`` or a callable
    ``extra_headers`` is put off in the core's hook and answered from the
    loop (a task per upgrade; the core refuses it with 503 at the
    ``handshake_timeout``); ``origins`` and ``subprotocols`` alone are
    answered in the hook. A plain HTTP request (a health check) cannot be
    put off: its I/O thread waits for ``process_request`` on the loop (at
    most the handshake timeout), so keep that path short."""

    _conn_class = Connection

    def __init__(self, handler: Optional[Handler] = None, host: str = "127.0.0.1",
                 port: int = 0, *,
                 on_open: Optional[Callable[[Connection], Awaitable[Any]]] = None,
                 on_message: Optional[Callable[[Connection, Union[str, bytes]],
                                               Awaitable[Any]]] = None,
                 on_close: Optional[Callable[[Connection, int, str], Awaitable[Any]]] = None,
                 on_ping: Optional[Callable[[Connection, bytes], Awaitable[Any]]] = None,
                 on_pong: Optional[Callable[[Connection, bytes], Awaitable[Any]]] = None,
                 on_tag: Optional[Callable[[Connection, str, Optional[Error]],
                                           Awaitable[Any]]] = None,
                 origins: Optional[Iterable[Optional[str]]] = None,
                 subprotocols: Optional[Iterable[str]] = None,
                 select_subprotocol: Optional[Callable[[Request, Any], Optional[str]]] = None,
                 process_request: Optional[Callable[[Request], Any]] = None,
                 extra_headers: Any = None,
                 ping_interval: Optional[float] = PING_INTERVAL,
                 ping_timeout: Optional[float] = PING_TIMEOUT,
                 compression: Any = "deflate",
                 **options: Any) -> None:
        self._check_handler("handler", handler)
        self._check_handler("on_ping", on_ping)
        self._check_handler("on_pong", on_pong)
        self._check_handler("on_tag", on_tag)
        options.update(control_events=True, origins=origins, subprotocols=subprotocols,
                       select_subprotocol=select_subprotocol, process_request=process_request,
                       extra_headers=extra_headers, ping_interval=ping_interval,
                       ping_timeout=ping_timeout, compression=compression)
        super().__init__(host, port, queued=True, agents=0, on_open=on_open,
                         on_message=on_message, on_close=on_close, options=options)
        self._handler = handler
        self._on_ping = on_ping
        self._on_pong = on_pong
        self._on_tag = on_tag
        close_timeout = options.get("close_timeout")
        self._close_timeout = 5.0 if close_timeout is None else close_timeout
        handshake_timeout = options.get("handshake_timeout")
        self._handshake_timeout = 10.0 if handshake_timeout is None else handshake_timeout
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd = -1
        self._stopped = False
        self._closed: Optional["asyncio.Future[None]"] = None
        self._stop_task: Optional["asyncio.Task[None]"] = None

    def _check_handler(self, name: str, fn: Any) -> None:
        if fn is not None and not _is_coroutine_function(fn):
            raise TypeError(
                "libwebsock2.aio: %s must be a coroutine function (async def %s(conn%s): "
                "...), not %s" % (name, name, _HANDLER_ARGS.get(name, ""), _describe(fn)))

    def on_ping(self, fn: Any) -> Any:
        """Decorator: ``async fn(conn, data)`` per ping from the client."""
        self._check_handler("on_ping", fn)
        self._on_ping = fn
        return fn

    def on_pong(self, fn: Any) -> Any:
        """Decorator: ``async fn(conn, data)`` per pong from the client."""
        self._check_handler("on_pong", fn)
        self._on_pong = fn
        return fn

    def on_tag(self, fn: Any) -> Any:
        """Decorator: ``async fn(conn, tag, error)`` with the outcome of a
        tag claim on a cluster (a ``set_tag`` that returned False, or a
        ``claim_tag``): ``error`` is None when the connection holds ``tag``
        cluster-wide, else the exception, not raised (:class:`TagTaken`,
        :class:`ClusterError`; the tag is then no longer the connection's,
        and it has its tag of before again, which ``conn.tag`` shows).
        It also comes, with :class:`TagTaken`, unasked, when a tag is lost
        to another node after a Redis restart. In order with the other
        events in the decorator style; a task of its own beside a
        ``handler``. ``conn.tag`` and the waiting ``claim_tag`` calls are
        settled before, when the event is read."""
        self._check_handler("on_tag", fn)
        self._on_tag = fn
        return fn

    # lifecycle
    async def start(self) -> "Server":
        """Starts the core and registers its event fd with the running loop.
        Raises :class:`AddressError` naming the address and the reason when
        it cannot listen."""
        self._check_startable()
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        _ws.pyws_set_handshake(self._h, self._run_hook)
        try:
            self._start_core()
        except BaseException:
            _ws.pyws_set_handshake(self._h, None)
            raise
        self._started = True
        self._fd = check(_ws.websock_server_event_fd(self._s))
        self._loop.add_reader(self._fd, self._drain)
        return self

    def __await__(self) -> Generator[Any, None, "Server"]:
        """``srv = await serve(...)`` starts it, as in websockets."""
        return self.start().__await__()

    async def stop(self) -> None:
        """Graceful stop: close 1001 to every client, wait for the core to
        end (events keep being dispatched meanwhile), then for the
        connection tasks (cancelled after the close timeout). A second
        call waits for the first one."""
        if not self._started:
            return
        if self._stopped:
            await self.wait_closed()
            return
        self._stopped = True
        loop = self._loop
        assert loop is not None
        self._pending.refuse_all(503)  # the clients get an answer
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
        from ._client import stop_dials
        stop_dials(self._dialer)
        self._pending.refuse_all(503)
        _ws.pyws_set_handshake(self._h, None)
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=self._close_timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self._conns.clear()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def close(self) -> None:
        """Begins stop() without waiting (``await wait_closed()`` after it),
        as websockets' ``server.close()``."""
        if self._started and self._stop_task is None and self._loop is not None:
            self._stop_task = self._loop.create_task(self.stop())

    async def wait_closed(self) -> None:
        """Waits until stop() finished."""
        if self._closed is not None:
            await asyncio.shield(self._closed)

    async def serve_forever(self, *, handle_signals: bool = True) -> None:
        """Starts if needed and waits until stopped or cancelled (then
        stops). On the main thread SIGINT (Ctrl-C) and SIGTERM stop the
        server gracefully (clients get 1001) and this returns normally,
        even in a process started with SIGINT ignored; the previous
        handlers are back on return. ``handle_signals=False`` leaves them
        alone."""
        if not self._started:
            await self.start()
        loop = self._loop
        assert loop is not None
        saved: Dict[int, Any] = {}
        installed = []
        if handle_signals:
            for sig in signals_to_handle():
                try:
                    previous = signal.getsignal(sig)
                    loop.add_signal_handler(sig, self.close)
                except (NotImplementedError, RuntimeError, ValueError):
                    continue  # a loop without signal support: leave them alone
                saved[sig] = previous
                installed.append(sig)
        try:
            try:
                await self.wait_closed()
            finally:
                await self.stop()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            restore_signals(saved)

    async def __aenter__(self) -> "Server":
        if not self._started:
            await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def connect(self, url: str, **options: Any) -> Connection:
        """Opens an outgoing connection to ``url`` from this (started)
        server with the keywords of :func:`connect` (``subprotocols``,
        ``extra_headers``, ``ssl``, ``compression``, ``max_size``,
        ``open_timeout``, ``user_data``: ``conn.data``) and returns its
        :class:`Connection` once open. Its events go to this server's
        ``handler`` (run for it as for an accepted connection: then leave
        ``recv()`` to the handler) or ``on_open``/``on_message``/... like
        an accepted connection's; ``conn.url`` is the URL. Raises the
        :class:`libwebsock2.ConnectError` naming the stage when it does not
        open, :class:`libwebsock2.InvalidURI` for a bad URL."""
        from ._client import _WAIT_MARGIN, server_dial
        if not self._started or self._stopped:
            raise error_for(_ws.ERR_STATE, "the server is not running")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        _, plan = server_dial(self, url, fut, _settle_loop_future, dict(options))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), plan.open_timeout + _WAIT_MARGIN)
        except asyncio.TimeoutError:
            if fut.done():  # the core's OpenTimeout is a TimeoutError too
                raise
            from ._errors import OpenTimeout
            raise OpenTimeout("cannot connect to %s: timeout: no answer within %.3g s"
                              % (plan.url, plan.open_timeout), url=plan.url,
                              reason="timeout: no answer within %.3g s" % plan.open_timeout)

    # the handshake (hook on an I/O thread, GIL held; answers on the loop)
    def _run_hook(self, ptr: Any) -> int:
        neg = self._negotiation
        if neg.process_request is None and not _ws.websock_request_is_upgrade(ptr):
            return ACCEPT  # a plain request nobody looks at: the core's default answer
        req = None
        try:
            req = Request(ptr, self._pending)
            if not req.is_upgrade:
                if neg.process_request is not None:
                    resp = self._plain_on_loop(req)
                    if resp is not None:
                        respond_now(req, resp)
                return ACCEPT
            if neg.runs_code:
                up = req.defer()
                self._opening.add(req)
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._negotiate, up)
                return DEFER
            negotiate_now(neg, req, self._opening)
            return ACCEPT
        except Exception:
            if req is None:
                log.exception("libwebsock2: reading the handshake request failed")
                return 500
            self._opening.discard(req)
            log.exception("libwebsock2: the handshake raised for %s %s", req.method, req.path)
            up = req._upgrade
            if up is not None:
                up._finish_quietly(500, "the handshake raised; refused with 500")
                return DEFER
            return 500
        finally:
            if req is not None:
                req._ptr = None
                req._upgrade = None

    def _plain_on_loop(self, req: Request) -> Optional[Response]:
        """Runs process_request for a plain HTTP request on the loop and
        waits for it here, on the I/O thread (at most the handshake
        timeout: then 503)."""
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(self._plain(req), self._loop)
        try:
            return fut.result(self._handshake_timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            log.error("libwebsock2: process_request took longer than the handshake timeout "
                      "(%.3g s) for %s %s; answered 503", self._handshake_timeout, req.method,
                      req.path)
            return Response(503, [], None, b"process_request timed out\n")

    async def _plain(self, req: Request) -> Optional[Response]:
        fn = self._negotiation.process_request
        assert fn is not None
        result = fn(req)
        if inspect.isawaitable(result):
            result = await result
        return http_response(result, False)

    def _negotiate(self, up: Upgrade) -> None:
        """On the loop: answers a deferred upgrade in a task of its own."""
        self._spawn(negotiate_later(self._negotiation, up))

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            run = self._run_handler if self._handler is not None else self._run_events
            self._spawn(run(conn))
        elif etype == EV_CLOSE:
            conn._drained.set()  # wake a waiting send: it will fail
            conn._closed_ev.set()
            conn._claims_ended()
            conn._events.put_nowait(ev)
        elif etype == EV_DRAIN:
            conn._drained.set()
        elif etype == EV_PONG:
            conn._got_pong(ev.data)
            self._control(conn, ev, self._on_pong, "on_pong")
        elif etype == EV_PING:
            self._control(conn, ev, self._on_ping, "on_ping")
        elif etype == EV_TAG:
            # Settled here, not in the connection's queue: a claim_tag()
            # awaited inside the connection's own handler returns.
            err, settled = self._tag_event(conn, ev)
            if settled:  # (else a claim of the tag again is pending: its outcome)
                conn._claimed(ev.data, err)
            fn = self._on_tag
            if fn is None:
                return
            if self._handler is None:
                conn._events.put_nowait(ev)
            else:
                self._spawn(self._call_tag(fn, conn, ev))

    def _control(self, conn: Connection, ev: Any, fn: Any, what: str) -> None:
        """on_ping / on_pong: in order with the other events in the
        decorator style; a task of its own beside a ``handler``."""
        if fn is None:
            return
        if self._handler is None:
            conn._events.put_nowait(ev)
        else:
            self._spawn(self._call(fn, conn, ev.data, what))

    async def _call(self, fn: Any, conn: Connection, data: Any, what: str) -> None:
        try:
            await fn(conn, data)
        except Exception:
            self._failed(conn, what)

    async def _call_tag(self, fn: Any, conn: Connection, ev: Any) -> None:
        try:
            await fn(conn, ev.data, tag_error(ev.status, ev.data))
        except Exception:
            self._failed(conn, "on_tag")

    async def _run_events(self, conn: Connection) -> None:
        q = conn._events
        if self._on_open is not None:
            try:
                await self._on_open(conn)
            except Exception:
                self._failed(conn, "on_open")
        while True:
            ev = await q.get()
            etype = ev.type
            if etype == EV_MESSAGE:
                fn = self._on_message
                if fn is not None:
                    try:
                        await fn(conn, ev.data)
                    except Exception:
                        self._failed(conn, "on_message")
            elif etype == EV_CLOSE:  # the last one
                conn._mark_closed(ev)
                if self._on_close is not None:
                    try:
                        await self._on_close(conn, ev.close_code, ev.data)
                    except Exception:
                        self._failed(conn, "on_close")
                return
            elif etype == EV_PONG and self._on_pong is not None:
                await self._call(self._on_pong, conn, ev.data, "on_pong")
            elif etype == EV_PING and self._on_ping is not None:
                await self._call(self._on_ping, conn, ev.data, "on_ping")
            elif etype == EV_TAG and self._on_tag is not None:
                await self._call_tag(self._on_tag, conn, ev)

    async def _run_handler(self, conn: Connection) -> None:
        assert self._handler is not None
        try:
            await self._handler(conn)
        except ConnectionClosed:
            pass
        except Exception:
            self._failed(conn, "handler")
            return
        if conn.close_code is None and conn._sent_close is None:
            _ws.websock_server_close(self._s, conn.id, _ws.CLOSE_NORMAL, None)


def _settle_loop_future(fut: Any, result: Any, exc: Optional[BaseException]) -> None:
    """Settles an asyncio future (on its loop: aio.Server dispatches there)."""
    if fut.done():
        return
    if exc is None:
        fut.set_result(result)
    else:
        fut.set_exception(exc)


_HANDLER_ARGS = {"on_message": ", msg", "on_close": ", code, reason", "on_ping": ", data",
                 "on_pong": ", data", "on_tag": ", tag, error"}


def serve(handler: Optional[Handler] = None, host: str = "127.0.0.1", port: int = 0,
          **options: Any) -> Server:
    """Creates an asyncio :class:`Server`; use it as
    ``async with serve(handler, host, port) as srv:`` (starts on enter, stops
    on exit), ``srv = await serve(...)`` or ``await serve(...).start()``.
    ``handler`` must be a coroutine function (``async def handler(conn)``):
    anything else raises TypeError here. Keyword options as for
    :class:`Server` (including on_open/on_message/on_close)."""
    return Server(handler, host, port, **options)


# -- the client: libwebsock2.aio.connect ------------------------------------------

class ClientConnection(Connection):
    """An outgoing connection for asyncio, made by :func:`connect` once
    open: ``await ws.send(msg)``, ``await ws.recv()``, ``async for msg in
    ws`` (ends on 1000/1001, raises ConnectionClosedError on any other
    code), ``await ws.ping()``, ``await ws.close(code, reason)``,
    ``async with ws:``. ``ws.url`` is the URL, ``ws.data`` the
    ``user_data``. Use it from the loop it was opened on."""

    __slots__ = ()
    _repr_name = "libwebsock2.aio.ClientConnection"

    def subscribe(self, topic: Any) -> None:
        """Refused (TypeError): see :func:`libwebsock2._client.no_topics`;
        use ``await server.connect(url)`` and subscribe that connection."""
        from ._client import no_topics
        no_topics(self, topic)

    unsubscribe = subscribe

    async def recv(self) -> Union[str, bytes]:
        """The next message (str for text, bytes for binary); the messages
        that arrived before the close come first, then it raises
        ConnectionClosedOK (1000, 1001) or ConnectionClosedError."""
        q = self._events
        while True:
            if self.closed and q.empty():
                raise self._closed_error()
            ev = await q.get()
            if ev.type == EV_MESSAGE:
                return ev.data
            if ev.type == EV_CLOSE:
                raise self._closed_error()

    async def __aenter__(self) -> "ClientConnection":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<%s id=%d url=%r%s>" % (self._repr_name, self.id, self.url,
                                       " closed" if self.closed else "")


def _feed(conn: Connection, ev: Any) -> None:
    """One event of an outgoing connection, on its loop (as Server._dispatch
    does for accepted ones)."""
    etype = ev.type
    if etype == EV_MESSAGE:
        conn._events.put_nowait(ev)
    elif etype == EV_CLOSE:
        conn._ended(ev)
        conn.closed = True
        conn._drained.set()
        conn._closed_ev.set()
        conn._events.put_nowait(ev)
    elif etype == EV_DRAIN:
        conn._drained.set()
    elif etype == EV_PONG:
        conn._got_pong(ev.data)


class _LoopDial:
    """The hidden server's entry of an asyncio connect: the agent hands its
    events to the loop's inbox; there the OPEN makes the connection and
    settles ``future``."""

    __slots__ = ("id", "hub", "url", "user_data", "future", "conn", "abandoned", "inbox")

    def __init__(self, hub: Any, url: str, user_data: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        from ._client import loop_inbox
        self.id = 0
        self.hub = hub
        self.url = url
        self.user_data = user_data
        self.future: "asyncio.Future[ClientConnection]" = loop.create_future()
        self.conn: Optional[ClientConnection] = None
        self.abandoned = False
        self.inbox = loop_inbox(loop, hub._s)

    def event(self, ev: Any) -> None:  # the agent thread
        self.inbox.put(self, ev)

    def on_loop(self, ev: Any) -> None:  # the loop
        conn = self.conn
        if conn is not None:
            _feed(conn, ev)
            return
        if ev.type == EV_OPEN:
            if self.abandoned or self.future.done():  # connect() was cancelled
                _ws.websock_server_close(self.hub._s, ev.id, _ws.CLOSE_GOING_AWAY, None)
                return
            conn = self.conn = ClientConnection(self.hub, ev)
            conn.url = self.url
            conn.data = self.user_data
            self.future.set_result(conn)
        elif ev.type == EV_CLOSE and not self.future.done():
            from ._errors import connect_error
            self.future.set_exception(connect_error(self.url, ev.data))


class connect:
    """Connects to ``url`` (``ws://`` or ``wss://``) from asyncio::

        async with libwebsock2.aio.connect("ws://127.0.0.1:8765/") as ws:
            await ws.send("hi")
            print(await ws.recv())

        ws = await libwebsock2.aio.connect(url)   # then await ws.close()

    The keywords and errors are those of :func:`libwebsock2.connect`
    (``subprotocols``, ``extra_headers``, ``ssl``, ``compression``,
    ``max_size``, ``open_timeout``, ``user_data``); the arguments are
    checked here, at once. The connection runs on the process's hidden
    client server; its events reach this loop in batches."""

    def __init__(self, url: str, *, subprotocols: Optional[Iterable[str]] = None,
                 extra_headers: Any = None, ssl: Any = None, compression: Any = "deflate",
                 max_size: Optional[int] = 2 ** 20, open_timeout: Optional[float] = 10.0,
                 user_data: Any = None) -> None:
        from ._client import make_plan
        self._plan = make_plan(url, subprotocols=subprotocols, extra_headers=extra_headers,
                               ssl=ssl, compression=compression, max_size=max_size,
                               open_timeout=open_timeout)
        self._user_data = user_data
        self._ws: Optional[ClientConnection] = None

    async def _open(self) -> ClientConnection:
        from ._client import _WAIT_MARGIN, hub
        from ._errors import OpenTimeout
        plan = self._plan
        h = hub()
        dial = _LoopDial(h, plan.url, self._user_data, asyncio.get_running_loop())
        h.dial(plan, dial)
        try:
            ws = await asyncio.wait_for(asyncio.shield(dial.future),
                                        plan.open_timeout + _WAIT_MARGIN)
        except asyncio.TimeoutError:
            if dial.future.done():  # the core's OpenTimeout is a TimeoutError too
                raise
            dial.abandoned = True
            raise OpenTimeout("cannot connect to %s: timeout: no answer within %.3g s"
                              % (plan.url, plan.open_timeout), url=plan.url,
                              reason="timeout: no answer within %.3g s" % plan.open_timeout)
        except BaseException:
            dial.abandoned = True
            if dial.future.done() and not dial.future.cancelled() and \
                    dial.future.exception() is None:
                await dial.future.result().close()  # opened just as we were cancelled
            raise
        self._ws = ws
        return ws

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._open()

    async def __aexit__(self, *exc: Any) -> None:
        if self._ws is not None:
            await self._ws.close()
