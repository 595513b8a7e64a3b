#!/usr/bin/python3
"""Client half of test_facade.lua (run with /usr/bin/python3 websockets).

    inproc_client.py PORT

Talks the little command protocol the Lua test server implements, prints
"PASS name" / "FAIL name: why" lines and finally sends "stop" on a fresh
connection so the Lua side's srv:run() returns. Bounded in time.
"""
import asyncio
import re
import sys
import urllib.request

import websockets

from facade_client import report, run_then_stop

PORT = int(sys.argv[1])
BASE = "ws://127.0.0.1:%d" % PORT


async def check(name, coro):
    try:
        await asyncio.wait_for(coro, 10)
        report(name, True)
    except Exception as e:  # noqa: BLE001
        report(name, False, "%s: %s" % (type(e).__name__, e))


async def rpc(ws, msg):
    await ws.send(msg)
    return await ws.recv()


async def t_info():
    async with websockets.connect(BASE + "/ws?x=1") as ws:
        got = await rpc(ws, "info")
        assert re.fullmatch(r"path=/ws;query=x=1;remote=127\.0\.0\.1:\d+;tag=none", got), got


async def t_binary():
    async with websockets.connect(BASE + "/ws") as ws:
        p = b"echo:\x00\x01\xff\x00end"
        await ws.send(p)
        got = await ws.recv()
        assert got == b"\x00\x01\xff\x00end", got
        got = await rpc(ws, "echo:héllo")
        assert got == "héllo", got


async def t_tags():
    async with websockets.connect(BASE + "/ws") as a, websockets.connect(BASE + "/ws") as b:
        assert await rpc(a, "tag:alice") == "ok"
        got = await rpc(b, "tag:alice")
        assert got.startswith("err:"), got
        assert await rpc(b, "sendtag:alice:hello alice") == "ok"
        assert await a.recv() == "hello alice"
        got = await rpc(b, "sendtag:nobody:x")
        assert got == "err:no such client", got
        got = await rpc(a, "info")
        assert got.endswith("tag=alice"), got
        assert await rpc(a, "findtag:alice") == "same"
        assert await rpc(a, "untag") == "ok"
        got = await rpc(b, "sendtag:alice:x")
        assert got == "err:no such client", got
        got = await rpc(a, "info")
        assert got.endswith("tag=none"), got


async def t_broadcast():
    async with websockets.connect(BASE + "/ws") as a, websockets.connect(BASE + "/ws") as b:
        assert await rpc(a, "bcast:to all") == "ok"
        assert await b.recv() == "to all"
        try:
            got = await asyncio.wait_for(a.recv(), 0.3)
            raise AssertionError("sender got %r" % got)
        except asyncio.TimeoutError:
            pass


async def t_handler_error():
    async with websockets.connect(BASE + "/ws") as ws:
        await ws.send("boom")
        try:
            got = await ws.recv()
            raise AssertionError("got %r" % got)
        except websockets.exceptions.ConnectionClosed:
            pass
        assert ws.close_code == 1011, ws.close_code


async def t_server_close():
    async with websockets.connect(BASE + "/ws") as ws:
        await ws.send("kick")
        try:
            await ws.recv()
        except websockets.exceptions.ConnectionClosed:
            pass
        assert ws.close_code == 4002 and ws.close_reason == "kick", (ws.close_code, ws.close_reason)


async def t_client_close():
    async with websockets.connect(BASE + "/ws") as ws:
        assert await rpc(ws, "tag:closer") == "ok"
        await ws.close(4001, "bye")
    async with websockets.connect(BASE + "/ws") as ws:
        for _ in range(50):
            got = await rpc(ws, "lastclose")
            if got == "closer 4001 bye":
                return
            await asyncio.sleep(0.05)
        raise AssertionError(got)


async def t_stale_tag():
    async with websockets.connect(BASE + "/ws") as ws:
        got = await rpc(ws, "stale:carol")
        assert got.endswith(";tag=carol"), got
        got = await rpc(ws, "stale:")
        assert got.endswith(";tag=none"), got
        assert await rpc(ws, "tag:dora") == "ok"
        got = await rpc(ws, "stalerefusal:erin")
        assert got == "tag=erin", got


async def t_yield():
    async with websockets.connect(BASE + "/ws") as ws:
        assert await rpc(ws, "yield") == "resumed"
        assert await rpc(ws, "echo:after") == "after"


def t_http_route():
    body = urllib.request.urlopen("http://127.0.0.1:%d/hello" % PORT, timeout=5).read()
    assert body == b"hello route", body


async def main():
    await check("open event: path, query, remote_address", t_info())
    await check("binary-safe payloads and kinds", t_binary())
    await check("set_tag / send_tag / find_tag / tag taken / untag", t_tags())
    await check("broadcast skips except_id", t_broadcast())
    await check("handler error closes with 1011", t_handler_error())
    await check("server close(id, 4002, reason)", t_server_close())
    await check("close handler gets the peer's close code and reason", t_client_close())
    await check("set_tag not reverted by an event with the old tag (a message, a "
                "tag event's refusal)", t_stale_tag())
    await check("handler may yield the polling coroutine", t_yield())
    try:
        t_http_route()
        report("http_routes option served", True)
    except Exception as e:  # noqa: BLE001
        report("http_routes option served", False, str(e))


run_then_stop(main, 60, BASE + "/ws")
