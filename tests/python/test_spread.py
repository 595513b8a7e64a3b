"""The ``spread`` option over real sockets: which I/O thread accepted each
connection is read back from the per-loop stats (loop_accepted,
loop_connections)."""
import asyncio
import time

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run


async def connect(srv, socks, loops):
    """Opens one connection to ``srv``; appends it to ``socks`` and the index
    of the loop that accepted it (the one whose loop_accepted grew) to
    ``loops``."""
    before = srv.stats()["loop_accepted"]
    ws = await websockets.connect("ws://127.0.0.1:%d/" % srv.port)
    socks.append(ws)
    after = srv.stats()["loop_accepted"]
    grew = [i for i in range(len(after)) if after[i] != before[i]]
    assert len(grew) == 1 and after[grew[0]] == before[grew[0]] + 1, (before, after)
    loops.append(grew[0])


async def loop_connections(srv, want, timeout=5.0):
    """The per-loop open connection counts once they equal ``want`` (or
    whatever they are after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    got = srv.stats()["loop_connections"]
    while got != want and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        got = srv.stats()["loop_connections"]
    return got


async def open_close_open(srv):
    """On two I/O threads: opens 4 connections one after the other, closes
    the 2 on the second connection's loop, then opens 4 more. Returns the
    loops of the first 4, the loop emptied, the loops of the last 4 and the
    per-loop open connections at the end."""
    socks, first, second = [], [], []
    try:
        for _ in range(4):
            await connect(srv, socks, first)
        assert sorted(first) == [0, 0, 1, 1], first
        emptied = first[1]
        for ws, loop in list(zip(socks, first)):
            if loop == emptied:
                await ws.close()
                socks.remove(ws)
        want = [0, 0]
        want[1 - emptied] = 2
        assert await loop_connections(srv, want) == want
        for _ in range(4):
            await connect(srv, socks, second)
        return first, emptied, second, srv.stats()["loop_connections"]
    finally:
        for ws in socks:
            await ws.close()


async def aio_open_close_open(**kw):
    async with libwebsock2.aio.Server(port=0, io_threads=2, **kw) as srv:
        return await open_close_open(srv)


def alternates(loops):
    return all(a != b for a, b in zip(loops, loops[1:]))


@pytest.mark.parametrize("front", ["threads", "asyncio"])
def test_round_robin_alternates_even_after_closes(make_server, front):
    if front == "threads":
        srv = make_server(host="127.0.0.1", port=0, io_threads=2, spread="round_robin").start()
        first, emptied, second, conns = run(open_close_open(srv))
        assert srv.stats()["loop_accepted"] == [4, 4]
    else:
        first, emptied, second, conns = run(aio_open_close_open(spread="round_robin"))
    # Strict alternation across the closes: the emptied loop gets no more
    # than its turn, so the open connections stay uneven.
    assert alternates(first + second), (first, second)
    assert second.count(emptied) == 2, second
    want = [0, 0]
    want[emptied], want[1 - emptied] = 2, 4
    assert conns == want, conns


@pytest.mark.parametrize("front,spread", [("threads", "least_connections"),
                                          ("threads", None),
                                          ("asyncio", "least_connections")])
def test_least_connections_fills_the_emptier_loop(make_server, front, spread):
    kw = {} if spread is None else {"spread": spread}  # None: the default
    if front == "threads":
        srv = make_server(host="127.0.0.1", port=0, io_threads=2, **kw).start()
        first, emptied, second, conns = run(open_close_open(srv))
    else:
        first, emptied, second, conns = run(aio_open_close_open(**kw))
    # Equal loads take turns; after the closes every new connection goes to
    # a loop with the fewest open connections, first the emptied one.
    assert alternates(first), first
    loads = [0, 0]
    loads[1 - emptied] = 2
    for loop in second:
        assert loads[loop] == min(loads), (second, loads)
        loads[loop] += 1
    assert second[:2] == [emptied, emptied], second
    assert conns == [3, 3], conns


@pytest.mark.parametrize("bad", ["fewest", "ROUND_ROBIN", "round-robin", "", None, 1])
def test_bad_spread_raises_value_error(bad):
    for cls in (libwebsock2.Server, libwebsock2.aio.Server):
        with pytest.raises(ValueError) as ei:
            cls(port=0, io_threads=2, spread=bad)
        msg = str(ei.value)
        assert "'least_connections'" in msg and "'round_robin'" in msg, msg
        assert repr(bad) in msg, msg
