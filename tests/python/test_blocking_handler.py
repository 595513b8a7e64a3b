"""A handler that blocks holds up only its own connection (threaded Server,
agents > 1), over real sockets; and the ``agent_budget`` and ``agent_batch``
options.

The core's scheduler is work-conserving: any idle agent runs any connection
with events waiting, one agent at a time per connection. Before it, each
connection was pinned to agent ``id % agents``: a connection sharing the
blocked one's agent waited for the release. Here the blocked handlers wait
on a ``threading.Event`` (no timing): while they wait, every other
connection must get its echoes, among them connections whose id %
agents equals a blocked one's (asserted, so the test keeps its teeth); the
blocked connections finish, in order, after the release."""
import asyncio
import os
import threading

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run

WAIT = 15.0  # generous: a failure is a hang, never a slow machine
OTHERS = 8


def url(srv):
    return "ws://127.0.0.1:%d/" % srv.port


async def wait_event(ev, timeout=WAIT):
    """Waits for a threading.Event without blocking the asyncio loop."""
    ok = await asyncio.get_running_loop().run_in_executor(None, ev.wait, timeout)
    assert ok, "timed out waiting for the blocked handler"


@pytest.mark.parametrize("agents,blocked", [(2, 1), (4, 3)])
def test_blocked_handlers_hold_up_only_their_own_connections(make_server, agents, blocked):
    """``blocked`` connections block their handler (all agents but one);
    OTHERS connections still get every echo through the one agent left."""
    release = threading.Event()
    started = {}        # connection id -> Event set once its handler blocks
    served = []         # ids of the connections echoed while others blocked
    lock = threading.Lock()
    srv = make_server(io_threads=2, agents=agents)

    @srv.on_message
    def got(conn, msg):
        if msg == "block":
            started[conn.id].set()
            # releases the GIL like any blocking call; bounded so a broken
            # core cannot hang the suite
            conn.send("released" if release.wait(60) else "timed out")
            return
        with lock:
            served.append(conn.id)
        conn.send("%s#%d" % (msg, conn.id))

    @srv.on_open
    def opened(conn):
        started[conn.id] = threading.Event()
        conn.send("id %d" % conn.id)

    srv.start()

    async def scenario():
        stuck = []
        for _ in range(blocked):
            ws = await websockets.connect(url(srv))
            cid = int((await asyncio.wait_for(ws.recv(), WAIT)).split()[1])
            await ws.send("block")
            # queued behind the blocked handler, to come after the release
            await ws.send("after 1")
            await ws.send("after 2")
            await wait_event(started[cid])
            stuck.append((ws, cid))

        async def other(i):
            cid = None
            try:
                async with websockets.connect(url(srv)) as ws:
                    cid = int((await asyncio.wait_for(ws.recv(), WAIT)).split()[1])
                    for n in range(3):
                        msg = "m%d.%d" % (i, n)
                        await ws.send(msg)
                        assert await asyncio.wait_for(ws.recv(), WAIT) == "%s#%d" % (msg, cid)
                    return cid
            except asyncio.TimeoutError:
                raise AssertionError(
                    "connection id=%s (None: its open waited) of %d agents waited for "
                    "the blocked handlers of %s"
                    % (cid, agents, [c for _, c in stuck])) from None

        try:
            ids = await asyncio.gather(*(other(i) for i in range(OTHERS)))
            # nothing of the blocked connections ran meanwhile
            assert not release.is_set()
            for ws, cid in stuck:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.05)
            release.set()
            for ws, cid in stuck:
                got = [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(3)]
                assert got == ["released", "after 1#%d" % cid, "after 2#%d" % cid]
            return ids, [cid for _, cid in stuck]
        finally:
            release.set()  # never leave a handler blocked (stop waits for it)
            for ws, _ in stuck:
                await ws.close()

    ids, stuck_ids = run(scenario(), timeout=120)
    assert sorted(served[:OTHERS * 3]) == sorted(ids * 3)
    # Pinned to agent id % agents, these would have waited for the release.
    lanes = {cid % agents for cid in stuck_ids}
    assert any(cid % agents in lanes for cid in ids), (ids, stuck_ids)
    st = srv.stats()
    assert len(st["agent_events"]) == len(st["agent_busy_ns"]) == agents
    # every agent ran something: the blocked handlers took all but one
    assert all(n > 0 for n in st["agent_events"]), st["agent_events"]


def test_agent_budget_one_keeps_each_connections_order(make_server):
    """With a budget of 1 an agent switches connection after every event;
    each connection's messages still come back in order."""
    srv = make_server(agents=2, agent_budget=1)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()

    async def client(i):
        async with websockets.connect(url(srv)) as ws:
            want = ["%d:%d" % (i, n) for n in range(200)]
            for msg in want:
                await ws.send(msg)
            got = [await asyncio.wait_for(ws.recv(), WAIT) for _ in want]
            assert got == want

    async def main():
        await asyncio.gather(*(client(i) for i in range(4)))

    run(main(), timeout=60)
    assert srv.stats()["messages_in"] == 800


@pytest.mark.parametrize("cls", [libwebsock2.Server, libwebsock2.aio.Server])
def test_agent_budget_option_is_checked(cls):
    for ok in (1, 32, 65536):
        cls(port=0, agent_budget=ok)
    for bad in (0, 65537):
        with pytest.raises(libwebsock2.InvalidArgument) as ei:
            cls(port=0, agent_budget=bad)
        assert "agent_budget" in str(ei.value)
    with pytest.raises(ValueError):
        cls(port=0, agent_budget=-1)


@pytest.mark.parametrize("batch,want", [(None, os.SCHED_BATCH),
                                        (True, os.SCHED_BATCH),
                                        (False, os.SCHED_OTHER)])
def test_agent_batch_sets_the_policy_handlers_run_under(make_server, batch, want):
    """A message handler on an agent reports its thread's policy: SCHED_BATCH
    by default and with agent_batch=True, the inherited one with False."""
    kw = {} if batch is None else {"agent_batch": batch}
    srv = make_server(agents=2, **kw)

    @srv.on_message
    def policy(conn, msg):
        conn.send(str(os.sched_getscheduler(0)))

    srv.start()

    async def main():
        async with websockets.connect(url(srv)) as ws:
            for _ in range(4):
                await ws.send("?")
                assert int(await asyncio.wait_for(ws.recv(), WAIT)) == want

    run(main(), timeout=30)


@pytest.mark.parametrize("cls", [libwebsock2.Server, libwebsock2.aio.Server])
def test_agent_batch_option_is_checked(cls):
    for ok in (True, False):
        cls(port=0, agent_batch=ok)
    with pytest.raises(libwebsock2.InvalidArgument) as ei:
        cls(port=0, agent_batch="yes")
    assert "agent_batch" in str(ei.value)
