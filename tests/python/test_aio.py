"""asyncio front end (QUEUED mode + loop.add_reader)."""
import asyncio

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run


def test_aio_echo_handler_style():
    async def echo(conn):
        async for msg in conn:
            await conn.send(msg)

    async def main():
        async with libwebsock2.aio.serve(echo, "127.0.0.1", 0) as srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                for i in range(20):
                    await ws.send("m%d" % i)
                    assert await ws.recv() == "m%d" % i
                await ws.send(b"\x01\x02")
                assert await ws.recv() == b"\x01\x02"
            assert srv.stats()["messages_in"] == 21

    run(main())


def test_aio_decorators_order_and_close():
    events = []
    closed = asyncio.Event

    async def main():
        done = asyncio.Event()
        srv = libwebsock2.aio.Server(port=0, io_threads=2)

        @srv.on_open
        async def opened(conn):
            events.append(("open", conn.path))
            await asyncio.sleep(0.01)  # later events wait for this one
            await conn.send("welcome")

        @srv.on_message
        async def got(conn, msg):
            events.append(("msg", msg))
            if msg == "boom":
                raise ValueError("boom")
            await conn.send(msg.upper())

        @srv.on_close
        async def gone(conn, code, reason):
            events.append(("close", code))
            done.set()

        async with srv:
            async with websockets.connect("ws://127.0.0.1:%d/p" % srv.port) as ws:
                await ws.send("a")
                await ws.send("b")
                assert await ws.recv() == "welcome"
                assert await ws.recv() == "A"
                assert await ws.recv() == "B"
                await ws.send("boom")
                with pytest.raises(websockets.ConnectionClosed) as ei:
                    await ws.recv()
                assert ei.value.rcvd.code == 1011
            await asyncio.wait_for(done.wait(), 5)

    run(main())
    assert events == [("open", "/p"), ("msg", "a"), ("msg", "b"), ("msg", "boom"),
                      ("close", 1011)]


def test_aio_stop_sends_1001_and_backpressure_send():
    async def main():
        conns = []
        opened = asyncio.Event()

        async def handler(conn):
            conns.append(conn)
            opened.set()
            try:
                await conn.recv()
            except libwebsock2.ConnectionClosed:
                pass

        srv = libwebsock2.aio.serve(handler, max_outbound=64 * 1024)
        await srv.start()
        async with websockets.connect("ws://127.0.0.1:%d/" % srv.port,
                                      max_size=None) as ws:
            await asyncio.wait_for(opened.wait(), 5)
            conn = conns[0]
            payload = b"x" * 32 * 1024
            sent = 0

            async def sender():
                nonlocal sent
                for _ in range(64):  # 2 MiB through a 64 KiB queue
                    await conn.send(payload)
                    sent += 1

            async def reader():
                got = 0
                while got < 64 * len(payload):
                    got += len(await ws.recv())
                return got

            _, got = await asyncio.gather(sender(), reader())
            assert sent == 64 and got == 64 * len(payload)
            await srv.stop()
            with pytest.raises(websockets.ConnectionClosed) as ei:
                await ws.recv()
            assert ei.value.rcvd.code == 1001

    run(main())
