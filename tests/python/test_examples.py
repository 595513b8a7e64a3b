"""The example programs, started as subprocesses with --port 0."""
import asyncio
import signal

import websockets

from conftest import run


def test_echo_example(example):
    ex = example("echo_server.py", "--io-threads", "2", "--agents", "2")

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/" % ex.port) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00bin")
            assert await ws.recv() == b"\x00bin"

    run(client())
    assert ex.stop(signal.SIGINT) == 0


def test_chat_example(example):
    ex = example("chat_server.py")
    base = "ws://127.0.0.1:%d/chat" % ex.port

    async def client():
        async with websockets.connect(base) as a, websockets.connect(base) as b, \
                websockets.connect(base) as c:
            wa, wb, wc = [await ws.recv() for ws in (a, b, c)]
            assert wa.startswith("welcome #") and wb.startswith("welcome #")
            id_b = wb.split("#")[1]
            await a.send("/nick alice")
            assert await a.recv() == "ok nick alice"
            await b.send("/nick alice")
            assert await b.recv() == "error nick-taken alice"
            await a.send("/msg nobody hi")
            assert await a.recv() == "error no-such-user nobody"
            await c.send("/nick carol")
            assert await c.recv() == "ok nick carol"
            await a.send("/msg carol hello there")
            assert await a.recv() == "ok msg carol"
            assert await c.recv() == "msg alice hello there"
            await b.send("hi all")
            assert await a.recv() == "say #%s hi all" % id_b
            assert await c.recv() == "say #%s hi all" % id_b
            await a.send("bye")
            assert await b.recv() == "say alice bye"
            assert await c.recv() == "say alice bye"
            # the sender itself does not get its own line
            await asyncio.sleep(0.1)
            try:
                extra = await asyncio.wait_for(a.recv(), 0.2)
            except asyncio.TimeoutError:
                extra = None
            assert extra is None

    run(client())
    assert ex.stop(signal.SIGTERM) == 0
