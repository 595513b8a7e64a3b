#!/usr/bin/python3
"""Client of test_deflate.lua: permessage-deflate over real sockets.

    deflate_client.py PORT_S PORT_D PORT_H PORT_O PORT_N

S: deflate = true (shared mode, the defaults); D: dedicated mode,
window_bits 10, mem_level 4, level 9, threshold 0, max_message_size
100000; H: deflate = true with a handshake handler and a subprotocol; O:
deflate = false; N: no deflate option. Every server echoes; S also
broadcasts "bcast:TEXT" to everyone and stops on "stop".

python3-websockets 10.4, which offers permessage-deflate by default
(compression="deflate", "permessage-deflate; client_max_window_bits") and
compresses every message it sends, for the echoes; raw sockets (wsraw.py)
where the RSV1 bit and the compressed bytes on the wire are checked.
Prints "PASS name" / "FAIL name: why", then stops S and prints DONE."""
import asyncio
import os
import sys
import zlib

import websockets
from websockets.extensions import permessage_deflate as pmd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsraw  # noqa: E402
from facade_client import report, run_then_stop  # noqa: E402

T = 10
SHARED_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
TEXTS = ["hi", "", "héllo wörld ✓ " * 5, '{"user": "alice", "text": "hello"} ' * 2000,
         "".join(chr(0x20 + (i * 7919) % 0x5f) for i in range(200000))]
BINS = [b"\x00", bytes(range(256)) * 4, os.urandom(300000), b"\x00" * 1000000]


async def check(name, fn):
    try:
        await asyncio.wait_for(fn(), 30)
    except AssertionError as e:
        report(name, False, "%s" % e)
        return
    except Exception as e:  # noqa: BLE001 - report everything
        report(name, False, "%s: %s" % (type(e).__name__, e))
        return
    report(name, True)


def eq(got, want, what="value"):
    assert got == want, "%s: expected %r, got %r" % (what, want, (got if not isinstance(
        got, (str, bytes)) or len(got) < 80 else got[:40] + got[-20:]))


def in_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


def answer_of(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions")


async def echo_all(ws, messages, what):
    for i, m in enumerate(messages):
        await ws.send(m)
        got = await asyncio.wait_for(ws.recv(), T)
        eq(got, m, "%s %d (%d bytes)" % (what, i, len(m)))
        eq(type(got), type(m), "%s %d: type" % (what, i))


def open_ws(port, path="/", **kw):
    return websockets.connect("ws://127.0.0.1:%d%s" % (port, path), max_size=None, **kw)


class RawDeflate:
    """A raw client that negotiates permessage-deflate with |offer| and
    checks the frames the server sends back: (rsv1, opcode, message,
    bytes on the wire, payload) per message, inflated with one context for
    the connection (dedicated mode keeps the server's)."""

    def __init__(self, port, offer="permessage-deflate"):
        headers = [("Sec-WebSocket-Extensions", offer)] if offer else []
        status, got, rest, sock = wsraw.upgrade_request(port, "/", headers)
        assert status == 101, "status %r" % status
        self.answer = wsraw.header(got, "Sec-WebSocket-Extensions")
        self.ws = wsraw.RawClient(sock, rest)
        self.inflater = zlib.decompressobj(-15)

    def send(self, data, opcode=1, compress=True):
        if compress:
            self.ws.send_frame(opcode, wsraw.deflate_raw(data), rsv1=True)
        else:
            self.ws.send_frame(opcode, data)

    def recv(self):
        fin, rsv1, opcode, payload = self.ws.read_frame_bits()
        assert fin, "a fragmented answer"
        msg = payload
        if rsv1:
            msg = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
        return rsv1, opcode, msg, len(payload), payload

    def close(self):
        self.ws.close()


# ------------------------------------------------------------------ S
def s_checks(ps):
    async def answer():
        async with open_ws(ps) as ws:
            eq(answer_of(ws), SHARED_ANSWER, "Sec-WebSocket-Extensions")
            eq([type(e).__name__ for e in ws.extensions], ["PerMessageDeflate"], "extensions")

    async def echo_text():
        async with open_ws(ps) as ws:
            await echo_all(ws, TEXTS, "text")

    async def echo_binary():
        async with open_ws(ps) as ws:
            await echo_all(ws, BINS, "binary")

    async def fragmented():
        async with open_ws(ps) as ws:
            parts = ["part %d " % i + "x" * 5000 for i in range(5)]
            await ws.send(parts)  # one message in five frames, RSV1 on the first
            eq(await asyncio.wait_for(ws.recv(), T), "".join(parts), "joined")
            await ws.send([b"\x01" * 3000, b"\x02" * 3000])
            eq(await asyncio.wait_for(ws.recv(), T), b"\x01" * 3000 + b"\x02" * 3000)

    async def many_clients():
        async def one(k):
            async with open_ws(ps) as ws:
                msgs = ['{"client": %d, "seq": %d, "pad": "%s"}' % (k, i, "p" * (i * 37))
                        for i in range(30)]
                for m in msgs:
                    await ws.send(m)
                for m in msgs:
                    eq(await asyncio.wait_for(ws.recv(), T), m, "client %d" % k)
        await asyncio.gather(*(one(k) for k in range(10)))

    async def broadcast():
        deflating = [await open_ws(ps) for _ in range(3)]
        plain = await open_ws(ps, compression=None)
        try:
            eq(answer_of(plain), None, "the plain client's answer")
            # A broadcast skips a connection whose OPEN handler has not
            # returned yet: an echo first shows each one was greeted.
            for i, ws in enumerate(deflating + [plain]):
                await ws.send("hello %d" % i)
                eq(await asyncio.wait_for(ws.recv(), T), "hello %d" % i,
                   "echo before the broadcast %d" % i)
            text = "broadcast " * 500
            await deflating[0].send("bcast:" + text)
            for i, ws in enumerate(deflating + [plain]):
                eq(await asyncio.wait_for(ws.recv(), T), text, "receiver %d" % i)
        finally:
            for ws in deflating + [plain]:
                await ws.close()

    async def no_offer():
        async with open_ws(ps, compression=None) as ws:
            eq(answer_of(ws), None, "answer to a client that offers nothing")
            eq(ws.extensions, [], "extensions")
            await echo_all(ws, TEXTS[:4] + BINS[:2], "echo")

    def raw_wire():
        c = RawDeflate(ps)
        try:
            eq(c.answer, SHARED_ANSWER, "the answer to a bare offer")
            long_msg = b"a" * 10000
            c.send(long_msg)
            rsv1, op, msg, wire, _ = c.recv()
            eq((rsv1, op, msg), (True, 1, long_msg), "a long message comes back compressed")
            assert wire < 200, "10000 bytes went out as %d" % wire
            c.send(b"hi", compress=False)
            eq(c.recv()[:3], (False, 1, b"hi"), "a message under the threshold (64) goes plain")
            c.send(b"y" * 63, compress=True)
            eq(c.recv()[:3], (False, 1, b"y" * 63), "63 bytes: plain")
            c.send(b"z" * 64, opcode=2)
            rsv1, op, msg, _, _ = c.recv()
            eq((rsv1, op, msg), (True, 2, b"z" * 64), "64 bytes, binary: compressed")
            # server_no_context_takeover: every message inflates alone
            c.send(long_msg)
            rsv1, _, _, _, payload = c.recv()
            eq((rsv1, wsraw.inflate_raw(payload)), (True, long_msg),
               "the second long message, inflated with a fresh context")
        finally:
            c.close()

    async def raw():
        await in_thread(raw_wire)

    return [
        ("shared: the 101 answers " + SHARED_ANSWER, answer),
        ("shared: echo text (short, empty, utf-8, 70 kB JSON, 200 kB)", echo_text),
        ("shared: echo binary (NUL, 1 kB, 300 kB random, 1 MB of zeros)", echo_binary),
        ("shared: fragmented compressed messages (text and binary)", fragmented),
        ("shared: 10 clients x 30 messages in order", many_clients),
        ("shared: broadcast reaches 3 deflate clients and a plain one", broadcast),
        ("shared: a client offering nothing gets no extension and plain echoes", no_offer),
        ("shared: raw client: RSV1 and compressed bytes above the threshold, plain below", raw),
    ]


# ------------------------------------------------------------------ D
def d_checks(pd):
    async def answer():
        async with open_ws(pd) as ws:
            eq(answer_of(ws), "permessage-deflate", "Sec-WebSocket-Extensions")
            # under the limit of 100000 bytes
            await echo_all(ws, TEXTS[:4] + BINS[:2] + [os.urandom(90000)], "echo")

    async def similar():
        async with open_ws(pd) as ws:
            msgs = ['{"user": "u%d", "room": "lobby", "text": "message number %d"}' % (i, i)
                    for i in range(50)]
            await echo_all(ws, msgs, "message")

    async def window():
        ext = pmd.ClientPerMessageDeflateFactory(server_max_window_bits=10,
                                                 client_max_window_bits=True)
        async with open_ws(pd, compression=None, extensions=[ext]) as ws:
            eq(answer_of(ws), "permessage-deflate; server_max_window_bits=10",
               "Sec-WebSocket-Extensions")
            await echo_all(ws, [TEXTS[3], BINS[1] * 20], "echo")

    def raw_context():
        c = RawDeflate(pd)
        try:
            eq(c.answer, "permessage-deflate", "answer")
            sizes = []
            for _ in range(3):
                msg = b'{"k": "the same message every time"}'
                c.send(msg)
                rsv1, op, got, wire, _ = c.recv()
                eq((rsv1, op, got), (True, 1, msg), "threshold 0: compressed")
                sizes.append(wire)
            assert sizes[1] < sizes[0] and sizes[2] <= sizes[1], \
                "context kept: later copies should be smaller, got %r" % sizes
        finally:
            c.close()

    async def raw():
        await in_thread(raw_context)

    async def bomb():
        async with open_ws(pd) as ws:
            await ws.send(b"\x00" * 1000000)  # about 1 kB on the wire
            try:
                await asyncio.wait_for(ws.recv(), T)
            except websockets.exceptions.ConnectionClosed:
                pass
            eq(ws.close_code, 1009, "close code")
        async with open_ws(pd) as ws:  # the others go on
            await echo_all(ws, [TEXTS[3]], "after the bomb")

    return [
        ("dedicated: the 101 answers permessage-deflate (context kept), echoes", answer),
        ("dedicated: 50 similar JSON messages", similar),
        ("dedicated: server_max_window_bits=10 asked and answered", window),
        ("dedicated: threshold 0 compresses short messages, context shrinks copies", raw),
        ("dedicated: 1 MB of zeros over max_message_size 100000: 1009, others go on", bomb),
    ]


# ------------------------------------------------------------------ H, O, N
def h_checks(ph):
    async def with_handler():
        async with open_ws(ph, "/chat", subprotocols=["chat"]) as ws:
            eq(answer_of(ws), SHARED_ANSWER, "Sec-WebSocket-Extensions")
            eq(ws.subprotocol, "chat", "subprotocol")
            eq(ws.response_headers.get("X-Handshake"), "lua", "the handler's header")
            await echo_all(ws, TEXTS[3:] + BINS[2:3], "echo")

    return [("a handshake handler's accept answers permessage-deflate too", with_handler)]


def off_checks(port, label):
    async def no_extension():
        async with open_ws(port) as ws:
            eq(ws.request_headers.get("Sec-WebSocket-Extensions"),
               "permessage-deflate; client_max_window_bits", "the client's offer")
            eq(answer_of(ws), None, "Sec-WebSocket-Extensions in the 101")
            eq(ws.extensions, [], "extensions")
            await echo_all(ws, TEXTS + BINS[:3], "echo")

    def raw_off():
        c = RawDeflate(port)
        try:
            eq(c.answer, None, "answer")
            c.send(b"a" * 10000, compress=False)
            rsv1, op, msg, wire, _ = c.recv()
            eq((rsv1, op, msg, wire), (False, 1, b"a" * 10000, 10000), "a plain echo")
            c.send(b"a" * 10000, compress=True)  # RSV1 without the extension
            rsv1, op, msg, _, _ = c.recv()
            eq((op, msg[:2]), (8, b"\x03\xea"), "close 1002 for RSV1 without the extension")
        finally:
            c.close()

    async def raw():
        await in_thread(raw_off)

    return [
        (label + ": the offer gets no Sec-WebSocket-Extensions, plain echoes", no_extension),
        (label + ": raw client: plain frames; RSV1 is a protocol error (1002)", raw),
    ]


async def main(ps, pd, ph, po, pn):
    for name, fn in (s_checks(ps) + d_checks(pd) + h_checks(ph) +
                     off_checks(po, "deflate = false") + off_checks(pn, "no deflate option")):
        await check(name, fn)


if __name__ == "__main__":
    ports = [int(p) for p in sys.argv[1:6]]
    run_then_stop(lambda: main(*ports), 150, "ws://127.0.0.1:%d/" % ports[0])
