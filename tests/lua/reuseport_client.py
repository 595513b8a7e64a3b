#!/usr/bin/python3
"""Client for test_reuseport.lua (run with /usr/bin/python3 websockets).

    reuseport_client.py PORT N

Opens N connections to PORT one after the other; each sends "hello <i>"
and must get it back. The Lua side runs two reuse_port servers on PORT and
reads their stats afterwards. Prints "PASS name" / "FAIL name: why" lines,
sends "stop" on a fresh connection and prints "DONE". Bounded in time.
"""
import asyncio
import sys

import websockets

import facade_client
from facade_client import run_then_stop

PORT = int(sys.argv[1])
N = int(sys.argv[2])
URL = "ws://127.0.0.1:%d/" % PORT


async def main():
    served = 0
    for i in range(N):
        try:
            async with websockets.connect(URL) as ws:
                await ws.send("hello %d" % i)
                if await asyncio.wait_for(ws.recv(), 5) == "hello %d" % i:
                    served += 1
        except Exception as e:  # noqa: BLE001
            facade_client.report("connection %d served" % i, False, e)
            return
    facade_client.report("%d connections served on the shared port" % N,
                         served == N, "%d of %d" % (served, N))


run_then_stop(main, 60, URL)
