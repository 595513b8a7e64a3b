#!/usr/bin/python3
"""Client for test_facade.lua's recv() test: opens /pull?q=1, sends one
binary message, closes with 4005 "later". Bounded in time."""
import asyncio
import sys

import websockets


async def main(port):
    async with websockets.connect("ws://127.0.0.1:%d/pull?q=1" % port) as ws:
        await ws.send(b"\x00\x01")
        await ws.close(4005, "later")


asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 10))
