#!/usr/bin/python3
"""Client of test_drain.lua: two reuse_port servers a and b on PORT.

    drain_client.py PORT

Finds a connection on each, has a stop accepting (every new connection
then lands on b while a's client goes on), has a drain (a's client sends
during the drain, then leaves, so a's drain ends early), then has b drain
with two clients that stay (both get 1001 at b's deadline). Prints "PASS
name" / "FAIL name: why", then DONE."""
import asyncio
import os
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from facade_client import report  # noqa: E402

T = 10


async def ask(ws, text):
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), T)


async def closed_code(ws, timeout):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.exceptions.ConnectionClosed:
        return ws.close_code


async def main(port):
    url = "ws://127.0.0.1:%d/" % port
    held = {}
    spare = []
    for _ in range(80):
        ws = await websockets.connect(url)
        who = await ask(ws, "who")
        if who not in held:
            held[who] = ws
        else:
            spare.append(ws)
        if len(held) == 2:
            break
    for ws in spare:
        await ws.close()
    report("connections on both servers of the port", sorted(held) == ["a", "b"], sorted(held))
    if len(held) != 2:
        return
    ca, cb = held["a"], held["b"]

    got = await ask(ca, "stop_accepting")
    report("a:stop_accepting() from a handler", got == "ok", got)
    # a's listener closes on a's loop a moment after the answer (nothing
    # reports when); a connection the kernel queued at a meanwhile is
    # reset with it, which a client sees as a failed handshake: try again.
    await asyncio.sleep(0.3)
    whos = []
    resets = 0
    while len(whos) < 30 and resets < 5:
        try:
            async with websockets.connect(url) as ws:
                whos.append(await ask(ws, "who"))
        except (websockets.exceptions.InvalidMessage, ConnectionError, EOFError):
            resets += 1
    report("after a:stop_accepting() every new connection lands on b",
           whos == ["b"] * 30, whos)
    got = await ask(ca, "still there")
    report("a's client goes on after stop_accepting()", got == "still there", got)

    got = await ask(cb, "drain:a:15000")
    report("drain of a asked", got == "ok", got)
    await asyncio.sleep(0.3)
    got = await ask(ca, "during the drain")
    report("a serves its client during the drain", got == "during the drain", got)
    await ca.close()
    report("a's client closes normally", ca.close_code == 1000, ca.close_code)
    deadline = time.time() + 20
    got = "none"
    while got == "none" and time.time() < deadline:
        got = await ask(cb, "result")
        await asyncio.sleep(0.1)
    report("a's drain ended when its client left", got.startswith("a:left=0;"), got)

    cc = await websockets.connect(url)
    got = await ask(cc, "who")
    report("a new connection after a's drain lands on b", got == "b", got)
    t0 = time.time()
    got = await ask(cb, "drain:b:1000")
    codes = await asyncio.gather(closed_code(cb, 20), closed_code(cc, 20))
    took = time.time() - t0
    report("clients that stay get 1001 at the drain deadline", codes == [1001, 1001], codes)
    report("not before the deadline", took >= 0.9, "%.2f s" % took)


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 75))
    except Exception as e:  # noqa: BLE001
        report("client ran to the end", False, "%s: %s" % (type(e).__name__, e))
    print("DONE", flush=True)
