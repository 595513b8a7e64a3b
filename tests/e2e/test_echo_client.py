"""echo_server driven by a real client library (websockets), in both
threading modes: 1 I/O thread with inline callbacks, and 2 I/O threads with
2 agent threads."""
import asyncio
import os
import random

import pytest
import websockets

from wsraw import run

MiB = 1 << 20


def connect(server, path="/", **kw):
    kw.setdefault("max_size", 2 * MiB)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(server.url(path), **kw)


async def echo_once(ws, msg):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 10)
    assert type(got) is type(msg)
    assert got == msg
    return got


def test_text_echo(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            await echo_once(ws, "hello")
            await echo_once(ws, "second message, same connection")
    run(main())


def test_text_echo_non_ascii(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            await echo_once(ws, "héllo wörld — ÄÖÜ ß")
            await echo_once(ws, "日本語のテキスト")
            await echo_once(ws, "emoji 😀🎉 and 𝄞 (4-byte UTF-8)")
    run(main())


def test_binary_echo(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            await echo_once(ws, bytes(range(256)))
            await echo_once(ws, b"\x00\xff\xfe\x80 invalid utf-8 is fine")
    run(main())


def test_empty_messages(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            await echo_once(ws, "")
            await echo_once(ws, b"")
            await echo_once(ws, "after empty")
    run(main())


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, MiB])
def test_binary_sizes(echo_server, size):
    async def main():
        async with connect(echo_server) as ws:
            await echo_once(ws, os.urandom(size))
    run(main())


@pytest.mark.parametrize("size", [125, 126, 65536, MiB])
def test_text_sizes(echo_server, size):
    async def main():
        rnd = random.Random(size)
        text = "".join(rnd.choice("abcxyzé€") for _ in range(size))
        text = text.encode("utf-8")[:size].decode("utf-8", "ignore")
        async with connect(echo_server) as ws:
            await echo_once(ws, text)
    run(main())


def test_fragmented_text_from_client(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            parts = ["frag-one ", "", "frag-two é ", "frag-three 😀"]
            await ws.send(iter(parts))
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == "".join(parts)
    run(main())


def test_fragmented_binary_from_client(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            parts = [os.urandom(n) for n in (1, 0, 125, 126, 70000, 3)]
            await ws.send(iter(parts))
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == b"".join(parts)
    run(main())


def test_ping_gets_pong(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            waiter = await ws.ping(b"are you there?")
            await asyncio.wait_for(waiter, 5)
            await echo_once(ws, "still open after ping")
    run(main())


def test_close_handshake_1000_with_reason(echo_server):
    async def main():
        async with connect(echo_server) as ws:
            await echo_once(ws, "before close")
            await ws.close(code=1000, reason="bye now")
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1000
    run(main())


def test_many_concurrent_clients(echo_server):
    clients, per_client = 100, 50

    async def one(i):
        async with connect(echo_server, open_timeout=15) as ws:
            sent = []
            # Pipeline half the messages, then go ping-pong for the rest.
            for j in range(per_client // 2):
                msg = "c%d-m%d-%s" % (i, j, "x" * (j * 7 % 300))
                if j % 3 == 0:
                    msg = msg.encode()
                sent.append(msg)
                await ws.send(msg)
            got = [await asyncio.wait_for(ws.recv(), 20) for _ in sent]
            assert got == sent, "client %d: echoes out of order/corrupt" % i
            for j in range(per_client // 2, per_client):
                await echo_once(ws, "c%d-m%d" % (i, j))
            return i

    async def main():
        done = await asyncio.gather(*(one(i) for i in range(clients)))
        assert sorted(done) == list(range(clients))
    run(main(), timeout=60)
