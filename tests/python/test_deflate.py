"""permessage-deflate (RFC 7692) in the Python binding: ``compression=
"deflate"`` (the default, as in websockets), ``compression=None`` and
``compression=libwebsock2.Deflate(...)`` on the threaded Server, on
libwebsock2.aio.Server and libwebsock2.aio.serve, over real sockets.

Clients: Debian's ``websockets`` 10.4, with its compression on and off and
with hand-made offers, and a raw socket client that reads the frames (RSV1,
the compressed payload inflated with zlib) to see what went out on the wire:
the threshold, the shared model's reset after every message and the
dedicated model's kept context. Waits have generous bounds; nothing here is
timed."""
import asyncio
import base64
import contextlib
import os
import socket
import struct
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import libwebsock2
import libwebsock2.aio
from conftest import run

WAIT = 15.0  # a bound for a hang, never a timing
FRONTS = ["threads", "asyncio"]
SHARED_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
# JSON-like text that compresses well, and random bytes that do not.
TEXT = "".join('{"id": %d, "user": "alice", "text": "hello, world"}\n' % i
               for i in range(40000))  # ~2 MiB
BLOB = os.urandom(300 * 1024)


# -- echo servers of both front ends ----------------------------------------

@contextlib.asynccontextmanager
async def serving(front, **kw):
    """An echo server of ``front`` (``kw`` are its options), started."""
    if front == "threads":
        kw.setdefault("agents", 2)
        srv = libwebsock2.Server(port=0, **kw)

        @srv.on_message
        def echo(conn, msg):
            conn.send(msg)

        srv.start()
        try:
            yield srv
        finally:
            await asyncio.get_running_loop().run_in_executor(None, srv.stop)
    else:
        async def echo(conn):
            async for msg in conn:
                await conn.send(msg)

        async with libwebsock2.aio.serve(echo, "127.0.0.1", 0, **kw) as srv:
            yield srv


def url(srv, path="/"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def connect(srv, **kw):
    kw.setdefault("open_timeout", WAIT)
    kw.setdefault("max_size", None)
    return websockets.connect(url(srv), **kw)


async def echo(ws, msg):
    await ws.send(msg)
    return await asyncio.wait_for(ws.recv(), WAIT)


async def bytes_out_since(srv, before):
    """The bytes the server wrote since its bytes_out was ``before``. The
    counter goes up just after each write returns, so a client may read the
    bytes a moment before they count: wait until they do."""
    for _ in range(200):
        sent = srv.stats()["bytes_out"] - before
        if sent > 0:
            await asyncio.sleep(0.05)  # any write still under way counted too
            return srv.stats()["bytes_out"] - before
        await asyncio.sleep(0.01)
    return 0


def extension_header(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions")


# -- websockets with compression, both fronts ---------------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_deflate_is_the_default_and_answers_shared_terms(front):
    """Without the keyword a websockets client with compression="deflate"
    (its default) gets the shared model's answer: we keep no context, and
    ask the client to keep none either."""
    async def main():
        async with serving(front) as srv, connect(srv, compression="deflate") as ws:
            assert extension_header(ws) == SHARED_ANSWER
            (pmd,) = ws.extensions
            assert pmd.name == "permessage-deflate"
            assert pmd.remote_no_context_takeover  # the server resets
            assert pmd.local_no_context_takeover  # and so does the client
            assert await echo(ws, "hi") == "hi"
    run(main())


@pytest.mark.parametrize("compression", ["deflate", libwebsock2.Deflate(),
                                         libwebsock2.Deflate(mode="dedicated")],
                         ids=["deflate", "Deflate()", "dedicated"])
@pytest.mark.parametrize("front", FRONTS)
def test_messages_of_every_kind_survive_compression(front, compression):
    """Text, binary, large (2 MiB of text, 300 KiB of random bytes),
    fragmented by the client (websockets compresses the fragments as one
    message: RSV1 on the first frame only) and fragmented by the server
    (fragment_size), in a row on one connection."""
    async def main():
        async with serving(front, compression=compression, fragment_size=16384,
                           max_message_size=4 << 20) as srv, \
                connect(srv, compression="deflate") as ws:
            assert extension_header(ws).startswith("permessage-deflate")
            assert await echo(ws, "hello") == "hello"
            assert await echo(ws, b"\x00\x01\x02" * 100) == b"\x00\x01\x02" * 100
            assert await echo(ws, "") == ""
            assert await echo(ws, "é€😀" * 1000) == "é€😀" * 1000
            assert await echo(ws, TEXT) == TEXT
            assert await echo(ws, BLOB) == BLOB
            parts = [TEXT[i:i + 50000] for i in range(0, 400000, 50000)]
            assert await echo(ws, parts) == "".join(parts)
            chunks = [BLOB[i:i + 40000] for i in range(0, len(BLOB), 40000)]
            assert await echo(ws, chunks) == BLOB
            for i in range(20):  # similar messages: the dedicated context at work
                msg = '{"seq": %d, "text": "%s"}' % (i, "abc" * i * 10)
                assert await echo(ws, msg) == msg
    run(main())


@pytest.mark.parametrize("front", FRONTS)
def test_client_without_compression_gets_no_extension(front):
    """A client that offers nothing is served uncompressed by a deflate
    server."""
    async def main():
        async with serving(front, max_message_size=4 << 20) as srv, \
                connect(srv, compression=None) as ws:
            assert extension_header(ws) is None and ws.extensions == []
            assert await echo(ws, TEXT) == TEXT
            assert await echo(ws, BLOB) == BLOB
    run(main())


@pytest.mark.parametrize("front", FRONTS)
def test_compression_none_server_answers_no_extension(front):
    """compression=None: a client offering permessage-deflate gets no
    Sec-WebSocket-Extensions header, and the messages go out as they are."""
    async def main():
        async with serving(front, compression=None) as srv, \
                connect(srv, compression="deflate") as ws:
            assert extension_header(ws) is None and ws.extensions == []
            before = srv.stats()["bytes_out"]
            assert await echo(ws, TEXT[:300000]) == TEXT[:300000]
            assert await bytes_out_since(srv, before) >= 300000  # not compressed
            assert await echo(ws, BLOB) == BLOB
    run(main())


@pytest.mark.parametrize("front", FRONTS)
def test_compressed_messages_take_fewer_bytes_on_the_wire(front):
    async def main():
        async with serving(front) as srv, connect(srv) as ws:
            before = srv.stats()["bytes_out"]
            assert await echo(ws, TEXT[:300000]) == TEXT[:300000]
            sent = await bytes_out_since(srv, before)
            assert 0 < sent < 30000, sent  # JSON-like text: well over 10:1
    run(main())


def test_aio_serve_and_server_take_compression():
    async def main():
        async def echo_handler(conn):
            async for msg in conn:
                await conn.send(msg)

        srv = libwebsock2.aio.Server(echo_handler, compression=None)
        async with srv, connect(srv) as ws:
            assert extension_header(ws) is None
        async with libwebsock2.aio.serve(echo_handler, "127.0.0.1", 0,
                                         compression=libwebsock2.Deflate(
                                             mode="dedicated")) as srv, connect(srv) as ws:
            assert extension_header(ws) == "permessage-deflate"
            assert await echo(ws, TEXT[:1000]) == TEXT[:1000]
    run(main())


# -- the negotiated terms -----------------------------------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_dedicated_mode_keeps_its_context(front):
    """Dedicated: the answer does not ask anyone to reset (the server keeps
    its compressor's context, the client may keep its own)."""
    async def main():
        async with serving(front, compression=libwebsock2.Deflate(mode="dedicated")) as srv, \
                connect(srv) as ws:
            assert extension_header(ws) == "permessage-deflate"
            (pmd,) = ws.extensions
            assert not pmd.remote_no_context_takeover
            assert not pmd.local_no_context_takeover
            for i in range(10):
                assert await echo(ws, TEXT[i:i + 5000]) == TEXT[i:i + 5000]
    run(main())


@pytest.mark.parametrize("front", FRONTS)
def test_offers_with_parameters(front):
    """A client that offers client_no_context_takeover and a smaller
    server window: the shared model agrees to both; the dedicated one with
    window_bits=10 answers its own, smaller window."""
    offer = ClientPerMessageDeflateFactory(server_max_window_bits=12,
                                           client_no_context_takeover=True)

    async def main():
        async with serving(front) as srv, \
                connect(srv, compression=None, extensions=[offer]) as ws:
            assert extension_header(ws) == SHARED_ANSWER + "; server_max_window_bits=12"
            assert ws.extensions[0].remote_max_window_bits == 12
            assert await echo(ws, TEXT[:100000]) == TEXT[:100000]
        deflate = libwebsock2.Deflate(mode="dedicated", window_bits=10, mem_level=4, level=9)
        async with serving(front, compression=deflate) as srv, \
                connect(srv, compression=None, extensions=[offer]) as ws:
            assert extension_header(ws) == "permessage-deflate; server_max_window_bits=10"
            assert ws.extensions[0].remote_max_window_bits == 10
            assert await echo(ws, TEXT[:100000]) == TEXT[:100000]
    run(main())


# -- what goes out on the wire: a raw client ----------------------------------

class RawClient:
    """A WebSocket client on a plain socket that offers ``extensions`` and
    reads frames as they are (it only reads: the server sends on open)."""

    def __init__(self, port, extensions):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        head = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: %s\r\n" % key)
        if extensions:
            head += "Sec-WebSocket-Extensions: %s\r\n" % extensions
        self.sock.sendall((head + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def _more(self):
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(fin, rsv1, opcode, payload) of the next frame."""
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, self._take(n)

    def close(self):
        self.sock.close()


def inflate(payload, inflater=None):
    """A compressed message's payload inflated (RFC 7692 section 7.2.2)."""
    d = inflater or zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


def greeted(compression, messages, extensions="permessage-deflate"):
    """The frames of ``messages`` a threaded server with ``compression``
    sends on open to a raw client offering ``extensions``, and the
    client's view of the 101's headers."""
    srv = libwebsock2.Server(port=0, agents=1, compression=compression)

    @srv.on_open
    def hello(conn):
        for msg in messages:
            conn.send(msg)

    with srv:
        client = RawClient(srv.port, extensions)
        try:
            frames = [client.frame() for _ in messages]
        finally:
            client.close()
    return client.headers, frames


def test_threshold_leaves_short_messages_uncompressed():
    short, long = "x" * 63, "x" * 64
    headers, frames = greeted("deflate", [short, long, b"\x00" * 200])
    assert headers["sec-websocket-extensions"] == SHARED_ANSWER  # insisted on, offered or not
    (fin0, rsv0, op0, p0), (fin1, rsv1, op1, p1), (_, rsv2, op2, p2) = frames
    assert (fin0, rsv0, op0, p0) == (True, False, 0x1, short.encode())  # below 64 bytes
    assert (fin1, rsv1, op1) == (True, True, 0x1) and inflate(p1) == long.encode()
    assert (rsv2, op2) == (True, 0x2) and inflate(p2) == b"\x00" * 200
    _, frames = greeted(libwebsock2.Deflate(threshold=0), ["x" * 10])
    assert frames[0][1] and inflate(frames[0][3]) == b"x" * 10
    _, frames = greeted(libwebsock2.Deflate(threshold=1000), ["x" * 999])
    assert not frames[0][1]


def test_shared_resets_and_dedicated_keeps_context_between_messages():
    """The same message twice: in shared mode each is compressed on its
    own (two equal frames, each inflated by a fresh inflater); in
    dedicated mode the second refers back to the first and comes out much
    smaller (inflated only with the first one's context)."""
    msg = TEXT[:4000]
    _, frames = greeted("deflate", [msg, msg])
    (_, r0, _, p0), (_, r1, _, p1) = frames
    assert r0 and r1 and p0 == p1
    assert inflate(p0) == inflate(p1) == msg.encode()
    headers, frames = greeted(libwebsock2.Deflate(mode="dedicated"), [msg, msg])
    assert headers["sec-websocket-extensions"] == "permessage-deflate"
    (_, r0, _, p0), (_, r1, _, p1) = frames
    assert r0 and r1 and len(p1) < len(p0) // 2, (len(p0), len(p1))
    d = zlib.decompressobj(-15)
    assert inflate(p0, d) == msg.encode() and inflate(p1, d) == msg.encode()


def test_no_offer_no_compression():
    """A raw client without the header gets plain frames from a deflate
    server, even long compressible ones."""
    headers, frames = greeted("deflate", [TEXT[:5000]], extensions=None)
    assert "sec-websocket-extensions" not in headers
    assert frames[0] == (True, False, 0x1, TEXT[:5000].encode())


# -- the limits ---------------------------------------------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_a_bomb_is_closed_with_1009(front):
    """8 MiB of zeros compress to ~8 KiB: the inflated size counts against
    max_message_size while it inflates, so the client is closed with 1009
    and the next client is served."""
    async def main():
        async with serving(front, max_message_size=1 << 20) as srv:
            async with connect(srv) as ws:
                await ws.send(b"\x00" * (8 << 20))
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), WAIT)
                assert ws.close_code == 1009
            async with connect(srv) as ws:
                assert await echo(ws, b"\x00" * (1 << 19)) == b"\x00" * (1 << 19)
    run(main())


@pytest.mark.parametrize("front", FRONTS)
def test_broadcast_is_compressed_for_each_client(front):
    async def main():
        async with serving(front) as srv:
            clients = [await connect(srv) for _ in range(3)]
            plain = await connect(srv, compression=None)
            try:
                # A broadcast skips a connection whose OPEN handler has
                # not returned: an echo with each shows they all were.
                for i, ws in enumerate(clients + [plain]):
                    await ws.send("hello %d" % i)
                    assert await asyncio.wait_for(ws.recv(), WAIT) == "hello %d" % i
                srv.broadcast(TEXT[:50000])
                for ws in clients + [plain]:
                    assert await asyncio.wait_for(ws.recv(), WAIT) == TEXT[:50000]
            finally:
                for ws in clients + [plain]:
                    await ws.close()
    run(main())


# -- bad options --------------------------------------------------------------

BAD_DEFLATE = [
    (dict(mode="per-connection"), "mode must be 'shared' or 'dedicated', not 'per-connection'"),
    (dict(mode=2), "mode must be 'shared' or 'dedicated', not 2"),
    (dict(window_bits=8), "window_bits must be an int in 9..15, not 8"),
    (dict(window_bits=16), "window_bits must be an int in 9..15, not 16"),
    (dict(window_bits=True), "window_bits must be an int in 9..15, not True"),
    (dict(mem_level=0), "mem_level must be an int in 1..9, not 0"),
    (dict(mem_level=10), "mem_level must be an int in 1..9, not 10"),
    (dict(level=-2), "level must be an int in -1..9, not -2"),
    (dict(level=10), "level must be an int in -1..9, not 10"),
    (dict(level=1.5), "level must be an int in -1..9, not 1.5"),
    (dict(threshold=-1), "threshold must be an int >= 0 (bytes), not -1"),
    (dict(threshold=2 ** 64), "threshold must be an int >= 0 (bytes), not %d" % 2 ** 64),
    (dict(threshold="64"), "threshold must be an int >= 0 (bytes), not '64'"),
]


@pytest.mark.parametrize("kw,message", BAD_DEFLATE, ids=[m for _, m in BAD_DEFLATE])
def test_bad_deflate_options_name_the_argument_and_range(kw, message):
    with pytest.raises(libwebsock2.InvalidArgument) as ei:
        libwebsock2.Deflate(**kw)
    assert str(ei.value) == message
    assert isinstance(ei.value, ValueError)


COMPRESSION_MESSAGE = ("compression must be 'deflate', None or libwebsock2.Deflate("
                       "mode='shared' or 'dedicated', window_bits=9..15, mem_level=1..9, "
                       "level=-1..9, threshold=bytes), not %r")


@pytest.mark.parametrize("value", ["gzip", "DEFLATE", True, 1, {"mode": "shared"}])
def test_bad_compression_names_the_keyword(value):
    for make in (lambda: libwebsock2.Server(compression=value),
                 lambda: libwebsock2.aio.Server(compression=value),
                 lambda: libwebsock2.aio.serve(None, compression=value)):
        with pytest.raises(libwebsock2.InvalidArgument) as ei:
            make()
        assert str(ei.value) == COMPRESSION_MESSAGE % (value,)


def test_deflate_options_object():
    d = libwebsock2.Deflate()
    assert (d.mode, d.window_bits, d.mem_level, d.level, d.threshold) == ("shared", 15, 8, 1, 64)
    assert d == libwebsock2.Deflate("shared", 15, 8, 1, 64)
    assert hash(d) == hash(libwebsock2.Deflate())
    assert d != libwebsock2.Deflate(mode="dedicated")
    assert repr(libwebsock2.Deflate("dedicated", 9, 1, -1, 0)) == (
        "libwebsock2.Deflate(mode='dedicated', window_bits=9, mem_level=1, level=-1, threshold=0)")
    with pytest.raises(AttributeError):
        d.level = 9
    # the SWIG layer: the enum and the setter of <websock/config.h>
    ws = libwebsock2._websock
    assert (ws.DEFLATE_OFF, ws.DEFLATE_SHARED, ws.DEFLATE_DEDICATED) == (0, 1, 2)
    rc, cfg = ws.websock_config_new()
    try:
        assert ws.websock_config_set_deflate(cfg, ws.DEFLATE_DEDICATED, 0, 0, 1, 64) == 0
        assert ws.websock_config_set_deflate(cfg, 3, 15, 8, 1, 64) == ws.ERR_INVALID
    finally:
        ws.websock_config_free(cfg)
