#!/usr/bin/python3
"""Client for test_facade.lua's spread tests (run with /usr/bin/python3
websockets).

    spread_client.py PORT least_connections|round_robin

The Lua server runs with io_threads = 2 and that spread option; it answers
"stats" with "A0,A1;C0,C1" (loop_accepted; loop_connections) and stops on
"stop". Opens 4 connections one after the other, closes the 2 on the second
one's loop, opens 4 more, and checks which loop took each (the one whose
accepted count grew). Prints "PASS name" / "FAIL name: why" lines, sends
"stop" on a fresh connection and prints "DONE". Bounded in time.
"""
import asyncio
import sys
import time

import websockets

import facade_client
from facade_client import run_then_stop

PORT = int(sys.argv[1])
MODE = sys.argv[2]
URL = "ws://127.0.0.1:%d/spread" % PORT


def report(name, ok, why=""):
    facade_client.report("%s: %s" % (MODE, name), ok, why)


async def stats(ws):
    await ws.send("stats")
    accepted, conns = (await ws.recv()).split(";")
    return [int(x) for x in accepted.split(",")], [int(x) for x in conns.split(",")]


def alternates(loops):
    return all(a != b for a, b in zip(loops, loops[1:]))


async def scenario(socks):
    last = [0, 0]

    async def connect(loops):
        ws = await websockets.connect(URL)
        socks.append(ws)
        accepted, _ = await stats(ws)
        grew = [i for i in (0, 1) if accepted[i] != last[i]]
        assert len(grew) == 1 and accepted[grew[0]] == last[grew[0]] + 1, (last, accepted)
        last[:] = accepted
        loops.append(grew[0])

    first, second = [], []
    for _ in range(4):
        await connect(first)
    report("equal loops take turns", alternates(first), first)
    emptied = first[1]
    for ws, loop in list(zip(socks, first)):
        if loop == emptied:
            await ws.close()
            socks.remove(ws)
    want = [0, 0]
    want[1 - emptied] = 2
    deadline = time.monotonic() + 5
    conns = (await stats(socks[0]))[1]
    while conns != want and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        conns = (await stats(socks[0]))[1]
    report("closed connections leave their loop", conns == want, (conns, want))
    for _ in range(4):
        await connect(second)
    conns = (await stats(socks[0]))[1]
    if MODE == "round_robin":
        report("strict alternation across the closes", alternates(first + second),
               (first, second))
        want[emptied] = 2
        want[1 - emptied] = 4
        report("open connections stay uneven", conns == want, (conns, want))
    else:
        loads = [0, 0]
        loads[1 - emptied] = 2
        fewest = True
        for loop in second:
            fewest = fewest and loads[loop] == min(loads)
            loads[loop] += 1
        report("new connections go to the emptier loop",
               fewest and second[:2] == [emptied, emptied], (first, second))
        report("open connections even out", conns == [3, 3], conns)


async def main():
    socks = []
    try:
        await scenario(socks)
    except Exception as e:  # noqa: BLE001
        report("scenario", False, "%s: %s" % (type(e).__name__, e))
    finally:
        for ws in socks:
            await ws.close()


run_then_stop(main, 30, URL)
