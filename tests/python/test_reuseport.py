"""The ``reuse_port`` option over real sockets: servers sharing one port
(the prefork / nginx-workers case), I/O threads that each accept on their
own socket (read back from the per-loop stats), the bind conflict with a
server that does not share, and the stop closing every listener."""
import asyncio
import errno
import socket
import time

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run


def echo(conn, msg):
    conn.send(msg)


async def echo_many(port, n, keep=None):
    """Opens ``n`` connections to ``port`` one after the other, each echoing
    one message; keeps them open in ``keep`` when given, else closes each."""
    for i in range(n):
        ws = await websockets.connect("ws://127.0.0.1:%d/" % port)
        await ws.send("hello %d" % i)
        assert await asyncio.wait_for(ws.recv(), 5) == "hello %d" % i
        if keep is None:
            await ws.close()
        else:
            keep.append(ws)


def refused(port):
    s = socket.socket()
    try:
        return s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    finally:
        s.close()


def settle(get, want, timeout=5.0):
    """``get()`` once it equals ``want`` (or whatever it is at the timeout)."""
    deadline = time.monotonic() + timeout
    got = get()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.01)
        got = get()
    return got


# -- servers sharing a port --------------------------------------------------

@pytest.mark.parametrize("agents", [0, 1])
def test_two_threaded_servers_share_a_port(make_server, agents):
    a = make_server(reuse_port=True, agents=agents, on_message=echo).start()
    b = make_server(port=a.port, reuse_port=True, agents=agents, on_message=echo).start()
    assert b.port == a.port
    run(echo_many(a.port, 80))
    got_a, got_b = a.stats()["accepted_total"], b.stats()["accepted_total"]
    # Each connection goes to either socket: none on one of them is 2^-79.
    assert got_a > 0 and got_b > 0 and got_a + got_b == 80, (got_a, got_b)
    # One leaves (a worker restarting): the other serves everything.
    a.stop()
    run(echo_many(b.port, 20))
    assert b.stats()["accepted_total"] == got_b + 20
    b.stop()
    assert refused(b.port)


def test_asyncio_and_threaded_servers_share_a_port(make_server):
    async def scenario():
        async def handler(conn):
            async for msg in conn:
                await conn.send(msg)

        async with libwebsock2.aio.Server(handler, reuse_port=True) as a:
            b = make_server(port=a.port, reuse_port=True, on_message=echo).start()
            await echo_many(a.port, 80)
            return a.stats()["accepted_total"], b.stats()["accepted_total"]

    got_a, got_b = run(scenario())
    assert got_a > 0 and got_b > 0 and got_a + got_b == 80, (got_a, got_b)


def test_two_asyncio_servers_share_a_port():
    async def scenario():
        async def handler(conn):
            async for msg in conn:
                await conn.send(msg)

        async with libwebsock2.aio.Server(handler, reuse_port=True) as a:
            async with libwebsock2.aio.Server(handler, port=a.port, reuse_port=True) as b:
                await echo_many(a.port, 80)
                return a.stats()["accepted_total"], b.stats()["accepted_total"]

    got_a, got_b = run(scenario())
    assert got_a > 0 and got_b > 0 and got_a + got_b == 80, (got_a, got_b)


# -- every I/O thread accepts on its own socket -------------------------------

def check_loops(stats, n):
    accepted, conns = stats["loop_accepted"], stats["loop_connections"]
    assert len(accepted) == 2 and all(x > 0 for x in accepted), accepted
    assert sum(accepted) == n and conns == accepted, (accepted, conns)


@pytest.mark.parametrize("agents", [0, 2])
def test_threaded_two_io_threads_both_accept(make_server, agents):
    srv = make_server(io_threads=2, agents=agents, reuse_port=True, on_message=echo).start()
    socks = []

    async def scenario():
        try:
            await echo_many(srv.port, 100, keep=socks)
            # While all are open, each loop holds exactly what it accepted:
            # nothing was handed over to the other loop.
            assert settle(lambda: srv.stats()["connections"], 100) == 100
            check_loops(srv.stats(), 100)
        finally:
            for ws in socks:
                await ws.close()

    run(scenario())
    assert settle(lambda: srv.stats()["loop_connections"], [0, 0]) == [0, 0]


def test_asyncio_two_io_threads_both_accept():
    async def scenario():
        async def handler(conn):
            async for msg in conn:
                await conn.send(msg)

        socks = []
        async with libwebsock2.aio.Server(handler, io_threads=2, reuse_port=True) as srv:
            try:
                await echo_many(srv.port, 100, keep=socks)
                for _ in range(500):
                    if srv.stats()["connections"] == 100:
                        break
                    await asyncio.sleep(0.01)
                return srv.stats()
            finally:
                for ws in socks:
                    await ws.close()

    check_loops(run(scenario()), 100)


def test_without_reuse_port_one_listener_spreads(make_server):
    """The default stays as it was: loop 0 accepts and hands every other
    connection to loop 1 (round-robin), exactly half each."""
    srv = make_server(io_threads=2, spread="round_robin", on_message=echo).start()
    run(echo_many(srv.port, 20))
    assert srv.stats()["loop_accepted"] == [10, 10]


# -- a port is shared only by servers that all ask for it --------------------

@pytest.mark.parametrize("first,second", [(True, False), (False, True)])
def test_sharing_needs_both(make_server, first, second):
    a = make_server(io_threads=2, reuse_port=first, on_message=echo).start()
    b = make_server(port=a.port, io_threads=2, reuse_port=second)
    with pytest.raises(libwebsock2.AddressError):
        b.start()
    run(echo_many(a.port, 3))  # the first still serves


def test_asyncio_sharing_needs_both(make_server):
    a = make_server(reuse_port=False, on_message=echo).start()

    async def idle(conn):
        pass

    async def scenario():
        # (a plain lambda as handler raises TypeError now: see test_errors.py)
        srv = libwebsock2.aio.Server(idle, port=a.port, reuse_port=True)
        with pytest.raises(libwebsock2.AddressError):
            await srv.start()

    run(scenario())


@pytest.mark.parametrize("bad", [2, -1, "yes", None, 0.5])
def test_bad_reuse_port_raises_value_error(bad):
    for cls in (libwebsock2.Server, libwebsock2.aio.Server):
        with pytest.raises(ValueError) as ei:
            cls(port=0, reuse_port=bad)
        assert "reuse_port" in str(ei.value) and repr(bad) in str(ei.value)


# -- the stop closes every listener --------------------------------------------

def test_stop_closes_every_listener(make_server):
    srv = make_server(io_threads=4, reuse_port=True, on_message=echo).start()
    port = srv.port
    run(echo_many(port, 80))
    assert all(x > 0 for x in srv.stats()["loop_accepted"])
    srv.stop()
    # Each connect would reach one of the four sockets: none may be left.
    assert all(refused(port) for _ in range(40))


def test_asyncio_stop_closes_every_listener():
    async def scenario():
        async def handler(conn):
            async for msg in conn:
                await conn.send(msg)

        async with libwebsock2.aio.Server(handler, io_threads=3, reuse_port=True) as srv:
            await echo_many(srv.port, 30)
            return srv.port

    port = run(scenario())
    assert all(refused(port) for _ in range(40))
