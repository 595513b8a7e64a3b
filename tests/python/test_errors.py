"""Errors that say what happened, asserted verbatim: a port in use or a
name that does not resolve (AddressError with errno), options out of
range (InvalidArgument naming the option and the range), a ping payload
over 125 bytes (TooBig), a close code out of range, the 1009 close
reason, ConnectionClosedOK / ConnectionClosedError in asyncio and
NoSuchClient (a ConnectionClosed) in the threaded API, a handler that is
not a coroutine function, and both spellings of importing
libwebsock2.aio."""
import asyncio
import errno
import socket
import subprocess
import sys
import threading

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run

WAIT = 15.0
FRONTS = ["threads", "asyncio"]


async def start(front, **kw):
    """A started server of ``front`` (stop it with ``stop``)."""
    if front == "threads":
        return libwebsock2.Server(port=kw.pop("port", 0), **kw).start()

    async def idle(conn):
        await conn.recv()

    return await libwebsock2.aio.Server(idle, port=kw.pop("port", 0), **kw).start()


async def stop(srv):
    if isinstance(srv, libwebsock2.aio.Server):
        await srv.stop()
    else:
        srv.stop()


# -- the listen address --------------------------------------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_port_in_use_names_the_address_and_the_reason(front):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario():
            with pytest.raises(libwebsock2.AddressError) as ei:
                await start(front, port=port)
            return ei.value

        err = run(scenario())
    assert str(err) == "cannot listen on 127.0.0.1:%d: address already in use" % port
    assert err.errno == errno.EADDRINUSE
    assert isinstance(err, OSError) and err.error_code == libwebsock2.AddressError.code


@pytest.mark.parametrize("front", FRONTS)
def test_name_that_does_not_resolve_says_so(front):
    host = "no-such-host.invalid"
    try:  # the resolver's own words, as the core gets them (gai_strerror)
        socket.getaddrinfo(host, 80, 0, socket.SOCK_STREAM, 0,
                           socket.AI_PASSIVE | socket.AI_NUMERICSERV)
        pytest.skip("%s resolves here" % host)
    except socket.gaierror as e:
        reason = e.strerror

    async def scenario():
        with pytest.raises(libwebsock2.AddressError) as ei:
            await start(front, host=host)
        return ei.value

    err = run(scenario())
    assert str(err) == 'cannot resolve the address to listen on, "%s": %s' % (host, reason)
    assert err.errno == 0


# -- options -----------------------------------------------------------------

BAD_OPTIONS = [
    ({"io_threads": 0}, "io_threads must be an int in 1..256, not 0"),
    ({"io_threads": 300}, "io_threads must be an int in 1..256, not 300"),
    ({"port": 70000}, "port must be an int in 0..65535, not 70000"),
    ({"agent_budget": 0}, "agent_budget must be an int in 1..65536 (events), not 0"),
    ({"max_outbound": 10}, "max_outbound must be an int >= 1024 (bytes), not 10"),
    ({"max_message_size": 0}, "max_message_size must be an int >= 1 (bytes), not 0"),
    ({"max_handshake_size": 100},
     "max_handshake_size must be an int in 256..1048576 (bytes), not 100"),
    ({"max_frame_size": -1},
     "max_frame_size must be an int >= 0 (bytes; 0: the message limit), not -1"),
    ({"close_timeout": 0},
     "close_timeout must be seconds in 0.001..4294967.295 (None: the default), not 0"),
    ({"handshake_timeout": "10"},
     "handshake_timeout must be seconds in 0.001..4294967.295 (None: the default), not '10'"),
    ({"ping_interval": -1},
     "ping_interval must be seconds in 0..4294967.295 (0 or None: never), not -1"),
    ({"ping_timeout": 5e9},
     "ping_timeout must be seconds in 0..4294967.295 (0 or None: never), not 5000000000.0"),
    ({"spread": "fewest"}, "spread must be 'least_connections' or 'round_robin', not 'fewest'"),
]


@pytest.mark.parametrize("kw,message", BAD_OPTIONS)
def test_invalid_option_names_itself_and_its_range(kw, message):
    for cls in (libwebsock2.Server, libwebsock2.aio.Server):
        with pytest.raises(libwebsock2.InvalidArgument) as ei:
            cls(**kw)
        assert str(ei.value) == message
        assert isinstance(ei.value, ValueError) and ei.value.code == libwebsock2.InvalidArgument.code
    with pytest.raises(libwebsock2.InvalidArgument) as ei:
        libwebsock2.Server(agents=2000)
    assert str(ei.value) == "agents must be an int in 0..1024, not 2000"


# -- ping, close, 1009 ------------------------------------------------------------

def test_threads_ping_close_and_send_errors():
    opened = threading.Event()
    closed = threading.Event()
    conns = []
    srv = libwebsock2.Server(port=0, agents=1, ping_interval=None)
    srv.on_open(lambda conn: (conns.append(conn), opened.set()))
    srv.on_close(lambda conn, code, reason: closed.set())
    srv.start()
    try:
        async def client():
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                assert await asyncio.get_running_loop().run_in_executor(None, opened.wait, WAIT)
                conn = conns[0]
                for call in (lambda: conn.ping(b"x" * 126),
                             lambda: srv.ping(conn.id, b"x" * 126)):
                    with pytest.raises(libwebsock2.TooBig) as ei:
                        call()
                    assert str(ei.value) == "ping payload too big: 126 bytes (limit 125 bytes)"
                with pytest.raises(libwebsock2.TooBig) as ei:
                    conn.ping("\xe9" * 63)  # 126 bytes of UTF-8
                assert str(ei.value) == "ping payload too big: 126 bytes (limit 125 bytes)"
                for call in (lambda: conn.set_tag("x" * 256),
                             lambda: srv.set_tag(conn.id, "")):
                    with pytest.raises(libwebsock2.InvalidArgument) as ei:
                        call()
                    assert str(ei.value).startswith("tag must be a str of 1..255 bytes "
                                                    "(None removes it), not ")
                with pytest.raises(libwebsock2.InvalidArgument) as ei:
                    conn.close(5)
                assert str(ei.value) == ("close code must be 1000..1003, 1007..1014 or "
                                         "3000..4999 (0: no code), not 5")
                await ws.close(1000, "bye")
            assert await asyncio.get_running_loop().run_in_executor(None, closed.wait, WAIT)

        run(client())
        conn = conns[0]
        for call in (lambda: conn.send("late"), lambda: conn.ping(),
                     lambda: srv.send(conn.id, "late")):
            with pytest.raises(libwebsock2.NoSuchClient) as ei:
                call()
            assert isinstance(ei.value, libwebsock2.ConnectionClosed)
        with pytest.raises(libwebsock2.NoSuchClient) as ei:
            conn.send("late")
        # the connection's own calls know how it ended
        assert str(ei.value) == "connection closed: 1000 (OK) bye"
        assert (ei.value.code, ei.value.reason, ei.value.error_code) == (
            1000, "bye", libwebsock2.NoSuchClient.code)
    finally:
        srv.stop()


@pytest.mark.parametrize("front", FRONTS)
def test_message_too_big_closes_1009_naming_the_limit(front):
    async def scenario():
        srv = await start(front, max_message_size=1000)
        try:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                await ws.send("x" * 1001)
                with pytest.raises(websockets.ConnectionClosed) as ei:
                    await asyncio.wait_for(ws.recv(), WAIT)
                assert (ei.value.rcvd.code, ei.value.rcvd.reason) == (
                    1009, "message too big (limit 1000 bytes)")
        finally:
            await stop(srv)

    run(scenario())


# -- asyncio: ConnectionClosedOK / ConnectionClosedError -------------------------

@pytest.mark.parametrize("code,reason,cls", [
    (1000, "bye", libwebsock2.ConnectionClosedOK),
    (1001, "", libwebsock2.ConnectionClosedOK),
    (4000, "app error", libwebsock2.ConnectionClosedError),
])
def test_asyncio_send_ping_recv_after_close_raise_connection_closed(code, reason, cls):
    results = {}

    async def handler(conn):
        try:
            await conn.recv()
        except libwebsock2.ConnectionClosed as e:
            results["recv"] = e
        for name, call in (("send", lambda: conn.send("late")), ("ping", conn.ping)):
            try:
                await call()
            except libwebsock2.ConnectionClosed as e:
                results[name] = e
        await conn.close()  # closing a closed connection does nothing, as in websockets
        results["closed"] = True

    async def scenario():
        async with libwebsock2.aio.serve(handler, ping_interval=None) as srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                await ws.close(code, reason)
            for _ in range(int(WAIT * 100)):
                if "closed" in results:
                    break
                await asyncio.sleep(0.01)

    run(scenario())
    assert results.pop("closed")
    for name, err in results.items():
        assert type(err) is cls, (name, err)
        assert (err.code, err.reason) == (code, reason), name
        assert (err.close_code, err.close_reason) == (code, reason), name
    names = {1000: "OK", 1001: "going away", 4000: "private use"}
    want = "connection closed: %d (%s)%s" % (code, names[code], " " + reason if reason else "")
    assert str(results["recv"]) == want
    assert set(results) == {"recv", "send", "ping"}


def test_asyncio_async_for_ends_on_ok_and_raises_on_error():
    seen = []

    async def handler(conn):
        try:
            async for msg in conn:
                seen.append(msg)
            seen.append("ended")
        except libwebsock2.ConnectionClosedError as e:
            seen.append(("error", e.code))
            raise

    async def scenario():
        async with libwebsock2.aio.serve(handler, ping_interval=None) as srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                await ws.send("a")
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                await ws.send("b")
                await ws.close(4001)
            for _ in range(int(WAIT * 100)):
                if len(seen) == 4:
                    break
                await asyncio.sleep(0.01)

    run(scenario())
    assert seen == ["a", "ended", "b", ("error", 4001)]


def test_asyncio_refuses_a_handler_that_is_not_a_coroutine_function():
    def echo(conn):
        pass

    with pytest.raises(TypeError) as ei:
        libwebsock2.aio.serve(echo, "127.0.0.1", 0)
    assert str(ei.value) == ("libwebsock2.aio: handler must be a coroutine function "
                             "(async def handler(conn): ...), not the plain function echo")
    with pytest.raises(TypeError) as ei:
        libwebsock2.aio.Server(on_message=lambda conn, msg: None)
    assert str(ei.value) == ("libwebsock2.aio: on_message must be a coroutine function "
                             "(async def on_message(conn, msg): ...), not the plain function "
                             "<lambda>")
    srv = libwebsock2.aio.Server()
    with pytest.raises(TypeError) as ei:
        srv.on_close(print)
    assert str(ei.value) == ("libwebsock2.aio: on_close must be a coroutine function "
                             "(async def on_close(conn, code, reason): ...), not the plain "
                             "function print")
    with pytest.raises(TypeError):
        srv.on_pong(object())

    class Handler:
        async def __call__(self, conn):
            pass

    libwebsock2.aio.serve(Handler())  # an object with an async __call__ is fine


# -- import libwebsock2; libwebsock2.aio -------------------------------------------

@pytest.mark.parametrize("code", [
    "import libwebsock2\nprint(libwebsock2.aio.serve.__name__)",
    "import libwebsock2.aio\nprint(libwebsock2.aio.serve.__name__)",
    "from libwebsock2 import aio\nprint(aio.serve.__name__)",
    "import libwebsock2\nprint(getattr(libwebsock2, 'aio').serve.__name__)",
])
def test_both_spellings_of_importing_aio(code):
    # a fresh interpreter: this one imported libwebsock2.aio already
    p = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "serve\n", "")


def test_unknown_attribute_still_raises_attribute_error():
    with pytest.raises(AttributeError) as ei:
        libwebsock2.nothing_here
    assert str(ei.value) == "module 'libwebsock2' has no attribute 'nothing_here'"
