"""permessage-deflate (RFC 7692, issue 14) over real sockets: Debian's
websockets client, which negotiates it with several parameter sets, and a
raw client that compresses with Python's zlib and reads every bit of the
server's frames (RSV1, sizes on the wire, close codes)."""
import asyncio
import os
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import \
    ClientPerMessageDeflateFactory

from wsraw import (OP_BINARY, OP_CONT, OP_TEXT, RawClient, frame)

TAIL = b"\x00\x00\xff\xff"

MODES = [("--deflate",), ("--io-threads", "2", "--agents", "2", "--deflate"),
         ("--deflate-dedicated",),
         ("--io-threads", "2", "--agents", "2", "--deflate-dedicated")]
MODE_IDS = ["shared-inline", "shared-agents", "dedicated-inline",
            "dedicated-agents"]


@pytest.fixture(params=MODES, ids=MODE_IDS)
def deflate_server(request, start_server):
    return start_server("echo_server", *request.param,
                        "--max-message", 1 << 20)


def compress(data, obj=None):
    """One message compressed as RFC 7692 sends it: raw DEFLATE, sync
    flush, the 00 00 FF FF tail removed. |obj| keeps the context."""
    c = obj or zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


class DeflateClient(RawClient):
    """A raw client that negotiates permessage-deflate and inflates the
    server's compressed messages (keeping the server's context unless it
    said server_no_context_takeover)."""
    allow_rsv1 = True

    def upgrade_deflate(self, offer="permessage-deflate"):
        resp = self.upgrade(extra=[("Sec-WebSocket-Extensions", offer)])
        self.ext = resp.header("sec-websocket-extensions") or ""
        self.server_resets = "server_no_context_takeover" in self.ext
        self.inflater = zlib.decompressobj(wbits=-15)
        return self.ext

    def read_deflate(self, timeout=None):
        """One data message: (opcode, payload, compressed, wire bytes)."""
        f = self.read_frame(timeout)
        op, compressed, data = f.opcode, f.rsv == 4, f.payload
        while not f.fin:
            f = self.read_frame(timeout)
            assert f.opcode == OP_CONT and f.rsv == 0, f
            data += f.payload
        wire = len(data)
        if compressed:
            if self.server_resets:
                self.inflater = zlib.decompressobj(wbits=-15)
            data = self.inflater.decompress(data + TAIL)
        return op, data, compressed, wire


def run(coro, timeout=60):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def ws_echo(port, messages, **kw):
    async with websockets.connect("ws://127.0.0.1:%d/" % port,
                                  max_size=None, **kw) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        for m in messages:
            await ws.send(m)
            want = "".join(m) if isinstance(m, list) and m and \
                isinstance(m[0], str) else (b"".join(m)
                                            if isinstance(m, list) else m)
            got = await asyncio.wait_for(ws.recv(), 30)
            assert got == want, (len(got), len(want))
        return ext


JSON = ('{"user":"alice","room":"lobby","text":"hello there, how are you '
        'doing today?","ts":1700000000,"tags":["a","b","c"]}')


def test_websockets_client_round_trips(deflate_server):
    """Text and binary, tiny (under the threshold) to 512 KiB, and
    fragmented compressed messages (websockets sends a list as fragments
    of one message, compressed with one stream, RSV1 on the first)."""
    msgs = ["x", JSON, JSON * 200, "é€😀" * 5000, b"\x00" * 100,
            os.urandom(70000), bytes(range(256)) * 2048,
            [JSON, JSON, "end"], [b"a" * 1000, b"b" * 50000, b""]]
    ext = run(ws_echo(deflate_server.port, msgs, compression="deflate"))
    assert ext and ext.startswith("permessage-deflate")


@pytest.mark.parametrize("params", [
    dict(server_no_context_takeover=True),
    dict(client_no_context_takeover=True),
    dict(server_max_window_bits=10),
    dict(server_max_window_bits=9, client_no_context_takeover=True),
    dict(client_max_window_bits=9),
    dict(client_max_window_bits=12, server_max_window_bits=12,
         server_no_context_takeover=True, client_no_context_takeover=True),
], ids=["snct", "cnct", "smwb10", "smwb9-cnct", "cmwb9", "all"])
def test_websockets_parameter_sets(deflate_server, params):
    """The answer is one the client accepts (websockets fails the
    connection otherwise) and messages flow both ways with it."""
    factory = ClientPerMessageDeflateFactory(**params)
    ext = run(ws_echo(deflate_server.port, [JSON * 20, b"\x01" * 5000],
                      extensions=[factory], compression=None))
    assert ext and ext.startswith("permessage-deflate")


def test_no_offer_no_extension(deflate_server):
    ext = run(ws_echo(deflate_server.port, [JSON], compression=None))
    assert ext is None


def test_offers_in_order_and_bad_ones_declined(start_server):
    """A malformed offer is declined, not a failed handshake; the next
    acceptable one is taken; an offer of nothing we know gets no header."""
    srv = start_server("echo_server", "--deflate")
    cases = [
        ("permessage-deflate; server_max_window_bits=8, "
         "permessage-deflate; client_max_window_bits",
         "permessage-deflate; server_no_context_takeover; "
         "client_no_context_takeover"),
        ("permessage-deflate; bogus, permessage-deflate", None),
        ("x-webkit-deflate-frame, foo; bar=1", ""),
        ("permessage-deflate; server_no_context_takeover; "
         "server_no_context_takeover", ""),
    ]
    for offer, want in cases:
        with DeflateClient(srv.port) as c:
            ext = c.upgrade_deflate(offer)
            if want is None:
                assert ext.startswith("permessage-deflate"), ext
            else:
                assert ext == want, (offer, ext)
            c.send_frame(OP_TEXT, compress(JSON.encode()) if ext else
                         JSON.encode(), rsv=4 if ext else 0)
            op, data, _, _ = c.read_deflate()
            assert (op, data) == (OP_TEXT, JSON.encode())


def test_threshold_and_context_takeover(start_server):
    """Dedicated mode keeps its context: a message sent twice costs far
    fewer bytes the second time. Messages under 64 bytes go out with RSV1
    clear. The client's own compressed messages may refer back too."""
    srv = start_server("echo_server", "--deflate-dedicated")
    with DeflateClient(srv.port) as c:
        assert c.upgrade_deflate() == "permessage-deflate"
        ours = zlib.compressobj(wbits=-15)
        text = (JSON * 10).encode()
        wires = []
        for _ in range(3):
            c.send_frame(OP_TEXT, compress(text, ours), rsv=4)
            op, data, compressed, wire = c.read_deflate()
            assert (op, data, compressed) == (OP_TEXT, text, True)
            wires.append(wire)
        assert wires[1] < wires[0] / 4, wires
        c.send_frame(OP_TEXT, b"short")
        assert c.read_deflate() == (OP_TEXT, b"short", False, 5)


def test_shared_mode_keeps_no_context(start_server):
    """Shared mode answers server_no_context_takeover and asks the client
    not to keep its context either: every reply inflates on its own."""
    srv = start_server("echo_server", "--io-threads", "2", "--deflate")
    with DeflateClient(srv.port) as c:
        ext = c.upgrade_deflate()
        assert ext == ("permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover"), ext
        text = (JSON * 10).encode()
        for _ in range(3):
            c.send_frame(OP_TEXT, compress(text), rsv=4)
            op, payload, compressed, wire = c.read_deflate()
            assert (op, payload, compressed) == (OP_TEXT, text, True)
            assert wire < len(text) / 3


def rss_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024


@pytest.mark.parametrize("args", [("--deflate",),
                                  ("--io-threads", "2", "--agents", "2",
                                   "--deflate-dedicated")],
                         ids=["shared-inline", "dedicated-agents"])
def test_decompression_bomb_is_1009(start_server, args):
    """16 KiB that inflate to 16 MiB against a 64 KiB limit: close 1009
    naming the limit, at most the limit inflated (the server's peak memory
    barely moves), and a healthy client on the same server keeps its
    echoes."""
    srv = start_server("echo_server", *args, "--max-message", 65536)
    bomb = compress(b"\0" * (16 << 20))
    assert len(bomb) < 65536
    with DeflateClient(srv.port) as healthy, DeflateClient(srv.port) as c:
        healthy.upgrade_deflate()
        healthy.send_frame(OP_BINARY, compress(b"ok" * 100), rsv=4)
        assert healthy.read_deflate()[1] == b"ok" * 100
        before = rss_hwm(srv.proc.pid)
        c.upgrade_deflate()
        c.send_frame(OP_BINARY, bomb, rsv=4)
        f = c.expect_close(1009)
        assert f.payload[2:] == b"message too big (limit 65536 bytes)"
        assert rss_hwm(srv.proc.pid) - before < 8 << 20
        for i in range(3):
            msg = b"still here %d " % i * 50
            healthy.send_frame(OP_BINARY, compress(msg), rsv=4)
            assert healthy.read_deflate()[1] == msg


def test_fragmented_bomb_is_1009(start_server):
    """The same in 64 fragments: the inflated size is what counts."""
    srv = start_server("echo_server", "--deflate", "--max-message", 65536)
    bomb = compress(b"\0" * (16 << 20))
    step = len(bomb) // 64 + 1
    parts = [bomb[i:i + step] for i in range(0, len(bomb), step)]
    data = b"".join(
        frame(OP_BINARY if i == 0 else OP_CONT, p, fin=i == len(parts) - 1,
              rsv=4 if i == 0 else 0) for i, p in enumerate(parts))
    with DeflateClient(srv.port) as c:
        c.upgrade_deflate()
        c.send(data)
        c.expect_close(1009)


@pytest.mark.parametrize("case", ["corrupt", "bad-utf8", "rsv1-on-cont",
                                  "rsv1-on-ping", "rsv1-undeclared"])
def test_bad_compressed_input(start_server, case):
    """Corrupt DEFLATE data and bad UTF-8 inside compressed text are 1007;
    RSV1 where it may not be (a continuation, a control frame, a
    connection that did not negotiate deflate) is 1002."""
    srv = start_server("echo_server", "--deflate")
    with DeflateClient(srv.port) as c:
        if case == "rsv1-undeclared":
            c.upgrade()
        else:
            c.upgrade_deflate()
        code = 1007
        if case == "corrupt":
            c.send_frame(OP_TEXT, b"\xff\xff\xff\xff garbage", rsv=4)
        elif case == "bad-utf8":
            c.send_frame(OP_TEXT, compress(b"ok \xc3\x28 not utf-8"), rsv=4)
        elif case == "rsv1-on-cont":
            code = 1002
            c.send(frame(OP_TEXT, compress(b"a" * 100), fin=False, rsv=4) +
                   frame(OP_CONT, b"", rsv=4))
        elif case == "rsv1-on-ping":
            code = 1002
            c.send_frame(0x9, b"", rsv=4)
        else:
            code = 1002
            c.send_frame(OP_TEXT, compress(b"hello"), rsv=4)
        c.expect_close(code)
