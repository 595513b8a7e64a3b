"""Keepalive as in websockets, threads and asyncio, over real sockets: a
raw-socket peer that never answers the keepalive ping is closed with 1011
"keepalive ping timeout"; one that answers (the websockets client) stays;
``conn.ping()`` returns a waiter that the matching pong resolves with the
round-trip time, pongs matched by payload as websockets does (a pong also
answers the pings before it); on_pong.

Small ping_interval / ping_timeout make the close come quickly; the bounds
are generous (the core checks at a periodic sweep, and a loaded machine
is slow), and nothing asserts that something happens *fast* except the
order of events."""
import asyncio
import base64
import contextlib
import inspect
import os
import socket
import struct
import threading
import time

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run

WAIT = 15.0
FRONTS = ["threads", "asyncio"]


class RawClient:
    """A WebSocket client on a plain socket that does nothing by itself:
    it never answers a ping unless told to."""

    def __init__(self, port, path="/"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            data += chunk
        head, _, self.buf = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(opcode, payload) of the next frame (the server's are unmasked)."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def send(self, opcode, payload=b""):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self):
        self.sock.close()


PING, PONG, CLOSE, TEXT = 0x9, 0xA, 0x8, 0x1


async def off_loop(fn, *args):
    """A blocking call off the loop (an asyncio server needs the loop)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@contextlib.asynccontextmanager
async def serving(front, closes, opened=None, **kw):
    """A server of ``front`` that records (id, code, reason) of each close
    in ``closes`` and puts each connection into the queue ``opened``."""
    loop = asyncio.get_running_loop()

    def record_open(conn):
        if opened is not None:
            loop.call_soon_threadsafe(opened.put_nowait, conn)

    if front == "threads":
        srv = libwebsock2.Server(port=0, agents=2, **kw)
        srv.on_open(record_open)
        srv.on_close(lambda conn, code, reason: closes.append((conn.id, code, reason)))
        srv.on_message(lambda conn, msg: conn.send(msg))
        srv.start()
        try:
            yield srv
        finally:
            await off_loop(srv.stop)
    else:
        srv = libwebsock2.aio.Server(port=0, **kw)

        @srv.on_open
        async def o(conn):
            record_open(conn)

        @srv.on_message
        async def m(conn, msg):
            await conn.send(msg)

        @srv.on_close
        async def c(conn, code, reason):
            closes.append((conn.id, code, reason))

        async with srv:
            yield srv


async def wait_for(cond, what):
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        await asyncio.sleep(0.01)


def test_defaults_are_websockets():
    for cls in (libwebsock2.Server, libwebsock2.aio.Server):
        params = inspect.signature(cls).parameters
        assert params["ping_interval"].default == 20.0
        assert params["ping_timeout"].default == 20.0


@pytest.mark.parametrize("front", FRONTS)
def test_peer_that_never_answers_the_ping_is_closed_with_1011(front):
    closes = []

    async def scenario():
        async with serving(front, closes, ping_interval=0.2, ping_timeout=0.3) as srv:
            client = await off_loop(RawClient, srv.port)
            try:
                t0 = time.monotonic()
                frames = []
                while True:
                    opcode, payload = await off_loop(client.frame)
                    frames.append((opcode, payload))
                    if opcode == CLOSE:
                        break
                waited = time.monotonic() - t0
            finally:
                client.close()
            assert frames[0][0] == PING  # the keepalive ping came first
            code, reason = struct.unpack("!H", frames[-1][1][:2])[0], frames[-1][1][2:]
            assert (code, reason) == (1011, b"keepalive ping timeout")
            assert waited >= 0.5 - 0.05  # interval + timeout (the sweep may be late, never early)
            await wait_for(lambda: closes, "the close event")
            # (the CLOSE event of a close this side started has its code;
            # the core does not repeat the reason it sent there)
            assert closes[0][1] == 1011

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_peer_that_answers_stays_open(front):
    closes = []

    async def scenario():
        async with serving(front, closes, ping_interval=0.2, ping_timeout=0.3) as srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port,
                                          ping_interval=None) as ws:
                await asyncio.sleep(1.5)  # several keepalive rounds, answered by websockets
                await ws.send("still here")
                assert await ws.recv() == "still here"
            await wait_for(lambda: closes, "the close event")
            assert closes[0][1] == 1000

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_ping_interval_none_sends_no_ping(front):
    closes = []

    async def scenario():
        async with serving(front, closes, ping_interval=None, ping_timeout=0.1) as srv:
            client = await off_loop(RawClient, srv.port)
            client.sock.settimeout(1.0)
            try:
                with pytest.raises(socket.timeout):
                    await off_loop(client.frame)
            finally:
                client.close()

    run(scenario())


async def waiter_result(front, waiter):
    if front == "threads":
        return await off_loop(waiter.result, WAIT)
    return await asyncio.wait_for(waiter, WAIT)


async def ping(front, conn, data=None):
    return conn.ping(data) if front == "threads" else await conn.ping(data)


@pytest.mark.parametrize("front", FRONTS)
def test_pong_waiter_resolves_with_the_round_trip_time(front):
    closes = []

    async def scenario():
        opened = asyncio.Queue()
        async with serving(front, closes, opened, ping_interval=None) as srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                conn = await asyncio.wait_for(opened.get(), WAIT)
                for data in (None, b"\x00\x01", "caf\xe9"):
                    t0 = time.monotonic()
                    waiter = await ping(front, conn, data)
                    rtt = await waiter_result(front, waiter)
                    assert isinstance(rtt, float) and 0 < rtt <= time.monotonic() - t0
                await ws.send("x")
                assert await ws.recv() == "x"

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_pongs_match_pings_by_payload(front):
    """Pings "a", "b": the pong for "b" answers both (as in websockets);
    a pong nobody asked for resolves nothing; the waiter still pending
    fails with ConnectionClosed when the peer leaves."""
    closes = []

    async def scenario():
        opened = asyncio.Queue()
        async with serving(front, closes, opened, ping_interval=None) as srv:
            client = await off_loop(RawClient, srv.port)
            try:
                conn = await asyncio.wait_for(opened.get(), WAIT)
                wa = await ping(front, conn, b"a")
                wb = await ping(front, conn, b"b")
                with pytest.raises(RuntimeError) as ei:
                    await ping(front, conn, b"a")
                assert str(ei.value) == "already waiting for a pong with the same data"
                assert await off_loop(client.frame) == (PING, b"a")
                assert await off_loop(client.frame) == (PING, b"b")
                await off_loop(client.send, PONG, b"b")
                rtts = [await waiter_result(front, w) for w in (wa, wb)]
                assert all(r > 0 for r in rtts)
                wc = await ping(front, conn, b"c")
                assert await off_loop(client.frame) == (PING, b"c")
                await off_loop(client.send, PONG, b"zzz")  # unknown payload
                await off_loop(client.send, TEXT, b"sync")  # echoed after the pong's event
                assert await off_loop(client.frame) == (TEXT, b"sync")
                assert not wc.done()
                wd = await ping(front, conn)  # 4 new random bytes
                opcode, payload = await off_loop(client.frame)
                assert opcode == PING and len(payload) == 4
            finally:
                client.close()
            await wait_for(lambda: closes, "the close event")
            for waiter in (wc, wd):
                with pytest.raises(libwebsock2.ConnectionClosedError) as ei:
                    await waiter_result(front, waiter)
                assert ei.value.code == 1006

    run(scenario())


def test_on_pong_and_on_ping_in_asyncio():
    got = []

    async def scenario():
        pongs = asyncio.Queue()
        srv = libwebsock2.aio.Server(port=0, ping_interval=None)

        @srv.on_pong
        async def pong(conn, data):
            await pongs.put(("pong", data))

        @srv.on_ping
        async def pinged(conn, data):
            await pongs.put(("ping", data))

        @srv.on_message
        async def m(conn, msg):
            waiter = await conn.ping(msg.encode())
            got.append(await waiter)
            await conn.send("done")

        async with srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                await ws.send("p1")
                assert await ws.recv() == "done"
                assert await asyncio.wait_for(pongs.get(), WAIT) == ("pong", b"p1")
                await (await ws.ping(b"from client"))
                assert await asyncio.wait_for(pongs.get(), WAIT) == ("ping", b"from client")

    run(scenario())
    assert len(got) == 1 and got[0] > 0


def test_on_pong_beside_a_handler_in_asyncio():
    async def scenario():
        pongs = asyncio.Queue()

        async def handler(conn):
            waiter = await conn.ping(b"h")
            await conn.send("rtt %s" % (await waiter > 0))
            async for msg in conn:
                await conn.send(msg)

        async def on_pong(conn, data):
            await pongs.put(data)

        async with libwebsock2.aio.serve(handler, on_pong=on_pong, ping_interval=None) as srv:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                assert await ws.recv() == "rtt True"
                assert await asyncio.wait_for(pongs.get(), WAIT) == b"h"

    run(scenario())


def test_threads_on_pong():
    pongs = []
    done = threading.Event()
    srv = libwebsock2.Server(port=0, agents=1, ping_interval=None)

    @srv.on_open
    def o(conn):
        conn.ping(b"open")

    @srv.on_pong
    def p(conn, data):
        pongs.append(data)
        done.set()

    srv.start()
    try:
        async def client():
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port):
                assert await off_loop(done.wait, WAIT)

        run(client())
    finally:
        srv.stop()
    assert pongs == [b"open"]
