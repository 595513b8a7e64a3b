"""Client mode end to end: examples/echo_client (the C client) against real
servers over real sockets, run in-process with asyncio:

- Debian's `websockets` server (text, binary, empty, 1 MiB, 64 fragments,
  ping/pong, non-ASCII, 200 pipelined messages, close codes, a dropped TCP
  connection, wss:// with a throwaway CA);
- raw asyncio servers that write the handshake by hand, to check the
  request, the masking of every client frame, and that broken answers (a
  non-101 status, a wrong accept key, a missing Upgrade, an unoffered
  subprotocol, silence, an immediate TCP close) fail the connect with a
  reason naming the stage, that protocol violations (a masked server
  frame, bad UTF-8, RSV bits, bad control frames, bad close codes, a too
  large message) get the right close code, and that the close handshake
  leaves the TCP close to the server (RFC 6455 7.1.1) but not forever;
- connect failures (refused, unresolvable, bad URL, bad CA file) and IPv6.

echo_client exits 0 once the server closed a connection that had opened,
1 with "echo_client: cannot connect: <reason>" when the connect failed.
"""
import asyncio
import base64
import hashlib
import os
import re
import socket
import signal
import ssl
import struct
import subprocess
import time

import pytest
import websockets

from conftest import binary_path
from wsraw import (GUID, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,
                   OP_TEXT, close_payload, frame, mask_bytes, run)

MiB = 1 << 20
ECHO_CLIENT = binary_path("echo_client")
CLIENT_TIMEOUT = 20.0  # per echo_client run; the connect timeout is 10 s


@pytest.fixture(autouse=True)
def _need_echo_client():
    if not os.path.exists(ECHO_CLIENT):
        pytest.skip("echo_client not built at %s (set WEBSOCK_BUILD_DIR)" %
                    ECHO_CLIENT)


# ---- running echo_client ------------------------------------------------


class ClientRun:
    def __init__(self, rc, stdout, stderr, seconds):
        self.rc, self.stdout, self.seconds = rc, stdout, seconds
        self.stderr = stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "echo_client exit %r after %.2fs, stderr %r" % (
            self.rc, self.seconds, self.stderr)


async def start_client(url, *args):
    return await asyncio.create_subprocess_exec(
        ECHO_CLIENT, *args, url, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def finish_client(proc, t0, timeout=CLIENT_TIMEOUT):
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError("echo_client still running after %.0fs: %r" %
                             (timeout, err))
    res = ClientRun(proc.returncode, out, err, time.monotonic() - t0)
    print(res)
    return res


async def client_run(url, *args, timeout=CLIENT_TIMEOUT):
    t0 = time.monotonic()
    proc = await start_client(url, *args)
    return await finish_client(proc, t0, timeout)


def connect_failed(res):
    """Asserts the run is a failed connect; returns the reason."""
    assert res.rc == 1, res
    m = re.match(r"echo_client: cannot connect: (.*)\n\Z", res.stderr)
    assert m, res
    return m.group(1)


# ---- websockets servers --------------------------------------------------


def serve(handler, host="127.0.0.1", **kw):
    kw.setdefault("max_size", 4 * MiB)
    kw.setdefault("ping_interval", None)
    kw.setdefault("close_timeout", 5)
    return websockets.serve(handler, host, 0, **kw)


def port_of(server):
    return server.sockets[0].getsockname()[1]


async def echo_check(ws, msg, timeout=10):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), timeout)
    assert type(got) is type(msg), (type(got), type(msg))
    assert got == msg, "echo differs (%d vs %d bytes)" % (len(got), len(msg))


async def with_ws_server(handler, path="/", client_args=(), url_host=None,
                         **kw):
    """Serves |handler|, runs echo_client against it; returns the run and
    the handler's result (or raises the handler's exception)."""
    done = asyncio.get_running_loop().create_future()

    async def wrapped(ws, _path=None):
        try:
            r = await handler(ws)
        except BaseException as e:
            if not done.done():
                done.set_exception(e)
            raise
        if not done.done():
            done.set_result(r)

    async with serve(wrapped, **kw) as server:
        scheme = "wss" if kw.get("ssl") else "ws"
        host = url_host or kw.get("host", "127.0.0.1")
        if ":" in host:
            host = "[%s]" % host
        url = "%s://%s:%d%s" % (scheme, host, port_of(server), path)
        res = await client_run(url, *client_args)
        if res.rc != 0:
            return res, None
        result = await asyncio.wait_for(done, 5)
    return res, result


def test_websockets_server_echo_everything():
    """Text, binary, empty, 1 MiB, 64 fragments, ping, non-ASCII, then a
    close with 1000 and a reason: every echo byte for byte and by type,
    and a clean close handshake."""
    async def handler(ws):
        assert ws.path == "/echo?x=1"
        await echo_check(ws, "hello")
        await echo_check(ws, bytes(range(256)))
        await echo_check(ws, "")
        await echo_check(ws, b"")
        await echo_check(ws, os.urandom(MiB))
        await echo_check(ws, "x" * MiB)
        await echo_check(ws, "héllo wörld — 日本語 😀 𝄞")
        parts = [os.urandom(i * 37 % 300) for i in range(64)]
        await ws.send(iter(parts))
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == b"".join(parts)
        tparts = ["é" * (i % 5) + "part%d " % i for i in range(64)]
        await ws.send(iter(tparts))
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == "".join(tparts)
        waiter = await ws.ping(b"are you there?")
        await asyncio.wait_for(waiter, 5)
        await echo_check(ws, "still open after the ping")
        t0 = time.monotonic()
        await ws.close(code=1000, reason="bye now")
        await asyncio.wait_for(ws.wait_closed(), 5)
        return ws, time.monotonic() - t0

    async def main():
        t0 = time.monotonic()
        res, (ws, close_secs) = await with_ws_server(handler, "/echo?x=1")
        assert res.rc == 0 and res.stderr == "", res
        assert ws.close_sent.code == 1000
        assert ws.close_rcvd is not None, "our client sent no close frame"
        assert ws.close_rcvd.code == 1000, ws.close_rcvd
        # The server started the close: sent, then received.
        assert ws.close_rcvd_then_sent is False
        # websockets half-closes and waits (close_timeout, 5 s) for the
        # client's FIN: a quick end means our client closed TCP at once
        # after the server's FIN and did not need to be aborted.
        assert close_secs < 2.0, close_secs
        assert time.monotonic() - t0 < 15
    run(main(), timeout=40)


def test_websockets_server_200_messages_in_order():
    async def handler(ws):
        sent = []
        for i in range(200):
            msg = "m%03d-%s" % (i, "y" * (i * 13 % 500))
            if i % 3 == 0:
                msg = msg.encode()
            sent.append(msg)
            await ws.send(msg)
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in sent]
        assert [type(g) for g in got] == [type(s) for s in sent]
        assert got == sent, "echoes out of order or corrupt"
        await ws.close()
        return len(got)

    async def main():
        res, n = await with_ws_server(handler)
        assert res.rc == 0, res
        assert n == 200
    run(main())


def test_websockets_server_closes_4001():
    async def handler(ws):
        await echo_check(ws, "one")
        await ws.close(code=4001, reason="app says go")
        await asyncio.wait_for(ws.wait_closed(), 5)
        return ws

    async def main():
        res, ws = await with_ws_server(handler)
        assert res.rc == 0 and res.stderr == "", res
        assert ws.close_rcvd is not None, "our client sent no close frame"
        # RFC 6455 5.5.1: an endpoint typically echoes the status code.
        assert ws.close_rcvd.code == 4001, ws.close_rcvd
        assert res.seconds < 5, res
    run(main())


def test_websockets_server_drops_tcp_without_close():
    async def handler(ws):
        await echo_check(ws, "one")
        ws.transport.abort()  # RST/FIN, no close frame
        return True

    async def main():
        res, ok = await with_ws_server(handler)
        assert res.rc == 0, res
        assert res.seconds < 5, res
    run(main())


def test_websockets_server_half_close_without_close_frame():
    async def handler(ws):
        await echo_check(ws, "one")
        ws.transport.write_eof()  # FIN, no close frame
        await asyncio.wait_for(ws.wait_closed(), 5)
        return True

    async def main():
        res, ok = await with_ws_server(handler)
        assert res.rc == 0, res
        assert res.seconds < 5, res
    run(main())


# ---- raw servers ----------------------------------------------------------


def accept_for(key):
    return base64.b64encode(
        hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


class Request:
    def __init__(self, head):
        self.raw = head
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.method, self.target, self.version = lines[0].split(" ")
        self.headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.append((name.strip().lower(), value.strip()))

    def header(self, name):
        vals = [v for n, v in self.headers if n == name.lower()]
        assert len(vals) <= 1, "header %s repeated: %r" % (name, vals)
        return vals[0] if vals else None


class RFrame:
    def __init__(self, fin, rsv, opcode, payload, mask_key):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.payload, self.mask_key = payload, mask_key

    @property
    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def __repr__(self):
        return "RFrame(fin=%d op=%d len=%d key=%r %r)" % (
            self.fin, self.opcode, len(self.payload), self.mask_key,
            self.payload[:40])


async def read_frame(reader, timeout=5):
    async def go():
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await reader.readexactly(8))[0]
        key = await reader.readexactly(4) if b1 & 0x80 else None
        payload = await reader.readexactly(n) if n else b""
        if key is not None:
            payload = mask_bytes(payload, key)
        return RFrame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload, key)
    return await asyncio.wait_for(go(), timeout)


def server_frame(opcode, payload=b"", **kw):
    kw.setdefault("mask", False)
    return frame(opcode, payload, **kw)


def response_101(key, extra=(), accept=None, upgrade="websocket",
                 connection="Upgrade"):
    lines = ["HTTP/1.1 101 Switching Protocols"]
    if upgrade is not None:
        lines.append("Upgrade: %s" % upgrade)
    if connection is not None:
        lines.append("Connection: %s" % connection)
    lines.append("Sec-WebSocket-Accept: %s" %
                 (accept if accept is not None else accept_for(key)))
    lines += ["%s: %s" % hv for hv in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawServer:
    """An asyncio TCP server; |handler(reader, writer)| runs per connection
    and its result or exception lands in self.result (first connection)."""

    def __init__(self, handler, host="127.0.0.1"):
        self.handler, self.host = handler, host

    async def __aenter__(self):
        self.result = asyncio.get_running_loop().create_future()

        async def conn(reader, writer):
            try:
                r = await self.handler(reader, writer)
                if not self.result.done():
                    self.result.set_result(r)
            except asyncio.CancelledError:
                self.result.cancel()
                raise
            except BaseException as e:
                if not self.result.done():
                    self.result.set_exception(e)
            finally:
                writer.close()
        self.server = await asyncio.start_server(conn, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "ws://%s:%d%s" % (host, self.port, path)


async def read_request(reader, timeout=5):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    return Request(head)


async def upgrade(reader, writer, extra=()):
    req = await read_request(reader)
    writer.write(response_101(req.header("sec-websocket-key"), extra))
    await writer.drain()
    return req


async def close_from_server(reader, writer, code=1000, reason=b"bye"):
    """Sends a close frame, reads the client's (masked) answer, checks the
    client does not end TCP first, then closes. Returns the client's close
    frame and whether the client's FIN came before our close."""
    writer.write(server_frame(OP_CLOSE, close_payload(code, reason)))
    await writer.drain()
    f = await read_frame(reader)
    assert f.opcode == OP_CLOSE, f
    early_eof = False
    try:
        data = await asyncio.wait_for(reader.read(1), 0.5)
        early_eof = data == b""
        assert early_eof, "data after the client's close frame: %r" % data
    except asyncio.TimeoutError:
        pass
    writer.close()
    return f, early_eof


def test_raw_request_and_masking():
    """The request line and headers, then 50 echoes: every client frame is
    masked, each with its own key; then a server close, answered with a
    masked close frame, and our client leaves the TCP close to the server
    (RFC 6455 7.1.1)."""
    async def handler(reader, writer):
        req = await upgrade(reader, writer)
        frames = []
        for i in range(50):
            op = OP_TEXT if i % 2 else OP_BINARY
            payload = ("msg %d " % i).encode() * (i + 1)
            writer.write(server_frame(op, payload))
            await writer.drain()
            f = await read_frame(reader)
            assert f.fin and f.rsv == 0, f
            assert (f.opcode, f.payload) == (op, payload), f
            frames.append(f)
        close, early_eof = await close_from_server(reader, writer, 1000,
                                                   b"done")
        frames.append(close)
        return req, frames, early_eof

    async def main():
        async with RawServer(handler) as srv:
            url = "ws://127.0.0.1:%d/some/path?q=1&r=two" % srv.port
            res = await client_run(url)
            req, frames, early_eof = await asyncio.wait_for(srv.result, 5)
            assert res.rc == 0, res
            return srv.port, req, frames, early_eof, res

    port, req, frames, early_eof, res = run(main())
    assert req.request_line == "GET /some/path?q=1&r=two HTTP/1.1"
    assert req.header("host") == "127.0.0.1:%d" % port
    assert req.header("upgrade").lower() == "websocket"
    assert "upgrade" in req.header("connection").lower()
    assert req.header("sec-websocket-version") == "13"
    key = req.header("sec-websocket-key")
    assert len(base64.b64decode(key, validate=True)) == 16, key
    assert req.header("sec-websocket-protocol") is None
    assert req.header("sec-websocket-extensions") is None
    assert all(f.mask_key is not None for f in frames), \
        [f for f in frames if f.mask_key is None]
    keys = [f.mask_key for f in frames]
    assert len(set(keys)) == len(keys), "masking keys repeat: %r" % keys
    close = frames[-1]
    assert close.close_code == 1000, close
    assert not early_eof, "our client closed TCP before the server did"
    assert res.seconds < 5, res


def test_raw_request_defaults_path_and_query():
    """ws://host:port (no path) asks for "/"; ws://host:port?x asks for
    "/?x"."""
    async def handler(reader, writer):
        req = await read_request(reader)
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return req

    async def main():
        targets = []
        for suffix in ("", "?a=b"):
            async with RawServer(handler) as srv:
                res = await client_run("ws://127.0.0.1:%d%s" %
                                       (srv.port, suffix))
                assert "handshake: HTTP 404" in connect_failed(res)
                targets.append((await srv.result).target)
        return targets
    assert run(main()) == ["/", "/?a=b"]


def test_raw_ping_and_fragments_from_server():
    """A ping between fragments is answered with a masked pong carrying its
    payload; the fragments are joined into one message."""
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(server_frame(OP_TEXT, b"abc", fin=False) +
                     server_frame(OP_PING, b"ping-data") +
                     server_frame(OP_CONT, "déf".encode(), fin=False) +
                     server_frame(OP_CONT, b"", fin=True))
        await writer.drain()
        got = [await read_frame(reader), await read_frame(reader)]
        pong = [f for f in got if f.opcode == OP_PONG]
        data = [f for f in got if f.opcode == OP_TEXT]
        assert len(pong) == 1 and len(data) == 1, got
        assert pong[0].payload == b"ping-data" and pong[0].mask_key, pong
        assert data[0].payload == "abcdéf".encode() and data[0].fin, data
        assert data[0].mask_key is not None
        await close_from_server(reader, writer)
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            assert await asyncio.wait_for(srv.result, 5)
            assert res.rc == 0, res
    run(main())


def test_raw_masked_server_frame_fails_with_1002():
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(frame(OP_TEXT, b"masked by the server", mask=True))
        await writer.drain()
        f = await read_frame(reader)
        eof = await asyncio.wait_for(reader.read(1), 5)
        return f, eof

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            f, eof = await asyncio.wait_for(srv.result, 10)
            return res, f, eof
    res, f, eof = run(main())
    assert f.opcode == OP_CLOSE, "expected a close frame, got %r" % f
    assert f.close_code == 1002, f
    assert f.mask_key is not None, f
    # It had opened, so a CLOSE after it is exit 0.
    assert res.rc == 0, res


# Each answer and the reason echo_client must print for it.
BAD_ANSWERS = {
    "http200": (lambda key: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                "handshake: HTTP 200 OK"),
    "http302": (lambda key: b"HTTP/1.1 302 Found\r\nLocation: "
                b"ws://example.com/\r\nContent-Length: 0\r\n\r\n",
                "handshake: HTTP 302 Found"),
    "wrong_accept": (lambda key: response_101(key, accept=accept_for(
        base64.b64encode(b"0123456789abcdef").decode())),
        "handshake: Sec-WebSocket-Accept missing or wrong"),
    "no_accept": (lambda key: b"HTTP/1.1 101 Switching Protocols\r\n"
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                  "handshake: Sec-WebSocket-Accept missing or wrong"),
    "no_upgrade": (lambda key: response_101(key, upgrade=None),
                   "handshake: response lacks Upgrade: websocket"),
    "no_connection": (lambda key: response_101(key, connection=None),
                      "handshake: response lacks Connection: upgrade"),
    "unoffered_subprotocol": (lambda key: response_101(
        key, extra=[("Sec-WebSocket-Protocol", "chat")]),
        "handshake: server chose a subprotocol that was not offered"),
    "unoffered_extension": (lambda key: response_101(
        key, extra=[("Sec-WebSocket-Extensions", "permessage-deflate")]),
        "handshake: server sent extensions that were not offered"),
    "two_accept_headers": (lambda key: response_101(
        key, extra=[("Sec-WebSocket-Accept", accept_for(key))]),
        "handshake: Sec-WebSocket-Accept missing or wrong"),
    "upgrade_h2c": (lambda key: response_101(key, upgrade="h2c"),
                    "handshake: response lacks Upgrade: websocket"),
    "head_too_large": (lambda key: b"HTTP/1.1 101 Switching Protocols\r\n" +
                       b"X-Filler: " + b"f" * 70000 + b"\r\n\r\n",
                       "handshake: the answer's head is over the size limit"),
    "not_http": (lambda key: b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                 "handshake: the answer is not HTTP/1.1"),
    "close_after_request": (lambda key: None,
                            "handshake: the server closed the connection "
                            "before its answer"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_raw_bad_answer_fails_connect(case):
    make, want = BAD_ANSWERS[case]

    async def handler(reader, writer):
        req = await read_request(reader)
        answer = make(req.header("sec-websocket-key"))
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        # Leave the TCP close to the client: a failed handshake must end
        # it on its own, not wait for us.
        if answer is not None:
            try:
                await asyncio.wait_for(reader.read(), 8)
            except asyncio.TimeoutError:
                pass
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            return res
    res = run(main())
    assert connect_failed(res) == want
    assert res.seconds < 5, res


# Answers a strict but correct client must take.
GOOD_ANSWERS = {
    "lower_case_names": lambda key: (
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
        "connection: upgrade\r\nsec-websocket-accept: %s\r\n\r\n" %
        accept_for(key)),
    "extra_whitespace": lambda key: (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade:   websocket  \r\n"
        "Connection:\tUpgrade\r\nSec-WebSocket-Accept:  %s \r\n\r\n" %
        accept_for(key)),
    "other_reason_phrase": lambda key: (
        "HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket"
        "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
        "Date: Wed, 02 Dec 2026 12:00:00 GMT\r\n\r\n" % accept_for(key)),
    "connection_list": lambda key: (
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: %s\r\n"
        "Connection: keep-alive,upgrade\r\nUpgrade: websocket\r\n\r\n" %
        accept_for(key)),
}


@pytest.mark.parametrize("case", sorted(GOOD_ANSWERS))
def test_raw_good_answer_opens(case):
    async def handler(reader, writer):
        req = await read_request(reader)
        writer.write(GOOD_ANSWERS[case](
            req.header("sec-websocket-key")).encode())
        writer.write(server_frame(OP_TEXT, b"hi"))
        await writer.drain()
        f = await read_frame(reader)
        assert (f.opcode, f.payload) == (OP_TEXT, b"hi"), f
        writer.write(server_frame(OP_CLOSE, close_payload(1000)))
        await writer.drain()
        f = await read_frame(reader)
        assert f.close_code == 1000, f
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            assert res.rc == 0, res
            assert await asyncio.wait_for(srv.result, 5)
    run(main())


def test_raw_close_right_after_accept():
    async def handler(reader, writer):
        writer.close()
        return True

    async def main():
        async with RawServer(handler) as srv:
            return await client_run(srv.url())
    res = run(main())
    reason = connect_failed(res)
    assert reason.startswith("handshake: "), reason
    assert "closed the connection" in reason, reason
    assert res.seconds < 5, res


def test_raw_server_never_answers_times_out():
    """The default connect timeout (10 s); echo_client has no flag for it."""
    async def handler(reader, writer):
        await read_request(reader)
        await asyncio.sleep(15)
        return True

    async def main():
        async with RawServer(handler) as srv:
            return await client_run(srv.url(), timeout=16)
    res = run(main(), timeout=30)
    reason = connect_failed(res)
    assert reason == "timeout: no answer to the upgrade within 10000 ms"
    assert 9.0 <= res.seconds < 12.0, res


# ---- connect failures -------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connect_refused():
    port = free_port()
    res = run(client_run("ws://127.0.0.1:%d/" % port))
    reason = connect_failed(res)
    assert reason == "connect: Connection refused (127.0.0.1 port %d)" % port


def test_connect_unresolvable_host():
    res = run(client_run("ws://nonexistent.invalid:80/"))
    reason = connect_failed(res)
    # The resolver's words vary ("Name or service not known", "Temporary
    # failure in name resolution" without DNS).
    assert reason.startswith("resolve: nonexistent.invalid: "), reason
    assert res.seconds < 11, res


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "ws://", "ws://host:0/", "ws://host:99999/",
    "ws://user@host/", "ws://host/#frag", "ws://[::1/", "ws://ho st/",
])
def test_bad_url(url):
    res = run(client_run(url))
    assert res.rc == 1, res
    assert "bad URL" in res.stderr, res


def test_bad_arguments():
    res = run(client_run("--frobnicate"))
    assert res.rc == 2, res


def has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_websockets_server():
    async def handler(ws):
        await echo_check(ws, "over IPv6")
        host = ws.request_headers["Host"]
        port = ws.local_address[1]
        await ws.close()
        return host, port

    res, (host, port) = run(with_ws_server(handler, "/v6", host="::1"))
    assert res.rc == 0, res
    assert host == "[::1]:%d" % port


# ---- wss:// -----------------------------------------------------------------


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA, a server cert for localhost/127.0.0.1 and one for
    other.example, both signed by it."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
            "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
            "/CN=websock test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, cn, san in [("good", "localhost",
                           "DNS:localhost,IP:127.0.0.1"),
                          ("other", "other.example", "DNS:other.example")]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                cwd=d)
        (d / (name + ".ext")).write_text(
            "subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
            "extendedKeyUsage=serverAuth\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".pem",
                "-days", "2", "-extfile", name + ".ext", cwd=d)
    return d


def server_ssl(pki, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki / (name + ".pem")), str(pki / (name + ".key")))
    return ctx


async def tls_echo_handler(ws):
    await echo_check(ws, "secure hello")
    await echo_check(ws, os.urandom(100000))
    await ws.close(code=1000, reason="tls bye")
    await asyncio.wait_for(ws.wait_closed(), 5)
    return ws


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_wss_with_ca(pki, host):
    async def main():
        return await with_ws_server(
            tls_echo_handler, client_args=("--ca", str(pki / "ca.pem")),
            ssl=server_ssl(pki, "good"), url_host=host)
    res, ws = run(main())
    assert res.rc == 0 and res.stderr == "", res
    assert ws.close_rcvd is not None and ws.close_rcvd.code == 1000


def test_wss_sni_and_clean_close(pki):
    """SNI names the host for a host name and is absent for an IP; the
    close handshake over TLS ends quickly on both sides."""
    async def main():
        names = []
        results = []
        for host in ("localhost", "127.0.0.1"):
            ctx = server_ssl(pki, "good")
            ctx.sni_callback = lambda sock, name, c: names.append(name)

            async def handler(ws):
                await echo_check(ws, "sni")
                t0 = time.monotonic()
                await ws.close(code=1000, reason="tls bye")
                await asyncio.wait_for(ws.wait_closed(), 5)
                return ws, time.monotonic() - t0
            results.append(await with_ws_server(
                handler, client_args=("--ca", str(pki / "ca.pem")), ssl=ctx,
                url_host=host))
        return names, results
    names, results = run(main())
    assert names == ["localhost", None], names
    for res, (ws, secs) in results:
        assert res.rc == 0, res
        assert ws.close_rcvd.code == 1000, ws.close_rcvd
        assert secs < 2.0, secs


def test_wss_without_ca_fails_verify(pki):
    async def main():
        return await with_ws_server(tls_echo_handler,
                                    ssl=server_ssl(pki, "good"),
                                    url_host="localhost")
    res, _ = run(main())
    reason = connect_failed(res)
    assert reason.startswith("tls: "), reason
    assert "certificate verify failed" in reason, reason


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_wss_hostname_mismatch(pki, host):
    async def main():
        return await with_ws_server(
            tls_echo_handler, client_args=("--ca", str(pki / "ca.pem")),
            ssl=server_ssl(pki, "other"), url_host=host)
    res, _ = run(main())
    reason = connect_failed(res)
    assert reason.startswith("tls: "), reason
    assert "certificate verify failed" in reason, reason
    want = "IP address mismatch" if host[0].isdigit() else "hostname mismatch"
    assert want in reason, reason


def test_wss_insecure_accepts_wrong_hostname(pki):
    async def main():
        return await with_ws_server(
            tls_echo_handler, client_args=("--insecure",),
            ssl=server_ssl(pki, "other"), url_host="localhost")
    res, ws = run(main())
    assert res.rc == 0 and res.stderr == "", res
    assert ws.close_rcvd is not None and ws.close_rcvd.code == 1000


def test_wss_against_plain_tcp_server():
    """wss:// to a server that speaks no TLS (an HTTP answer)."""
    async def handler(reader, writer):
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        return True

    async def main():
        async with RawServer(handler) as srv:
            return await client_run("wss://127.0.0.1:%d/" % srv.port,
                                    "--insecure")
    res = run(main())
    reason = connect_failed(res)
    assert reason.startswith("tls: "), reason
    assert res.seconds < 5, res


# ---- raw servers: framing edge cases ---------------------------------------


def test_raw_first_frame_in_same_segment_as_101():
    """Bytes right after the 101's head (one write) are the first frame."""
    async def handler(reader, writer):
        req = await read_request(reader)
        writer.write(response_101(req.header("sec-websocket-key")) +
                     server_frame(OP_TEXT, b"glued to the 101"))
        await writer.drain()
        f = await read_frame(reader)
        assert (f.opcode, f.payload) == (OP_TEXT, b"glued to the 101"), f
        await close_from_server(reader, writer)
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            assert await asyncio.wait_for(srv.result, 5)
            assert res.rc == 0, res
    run(main())


def test_raw_101_dribbled_and_header_case():
    """The 101 one byte at a time, with header names and tokens in other
    cases and Connection as a list: still a valid answer."""
    async def handler(reader, writer):
        req = await read_request(reader)
        key = req.header("sec-websocket-key")
        head = ("HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                "CONNECTION: keep-alive, Upgrade\r\n"
                "sec-websocket-accept: %s\r\nServer: raw\r\n\r\n" %
                accept_for(key)).encode()
        for i in range(len(head)):
            writer.write(head[i:i + 1])
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(server_frame(OP_BINARY, b"\x00\x01"))
        f = await read_frame(reader)
        assert (f.opcode, f.payload) == (OP_BINARY, b"\x00\x01"), f
        await close_from_server(reader, writer)
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            assert await asyncio.wait_for(srv.result, 5)
            assert res.rc == 0, res
    run(main())


def test_raw_close_without_code_is_answered_without_code():
    """A close frame without a status is answered with one that has none
    or 1000 (1005 must never be on the wire)."""
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(server_frame(OP_CLOSE, b""))
        await writer.drain()
        f = await read_frame(reader)
        writer.close()
        return f

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            return res, await asyncio.wait_for(srv.result, 5)
    res, f = run(main())
    assert res.rc == 0, res
    assert f.opcode == OP_CLOSE and f.mask_key is not None, f
    assert f.payload == b"" or f.close_code == 1000, f


def test_raw_server_never_closes_tcp_after_close_handshake():
    """Our client waits for the server's TCP close, but only up to its
    close timeout (5 s), then ends the connection itself."""
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(server_frame(OP_CLOSE, close_payload(1000, b"x")))
        await writer.drain()
        f = await read_frame(reader)
        t0 = time.monotonic()
        eof = await asyncio.wait_for(reader.read(1), 15)
        return f, eof, time.monotonic() - t0

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            return res, await asyncio.wait_for(srv.result, 15)
    res, (f, eof, secs) = run(main(), timeout=30)
    assert f.close_code == 1000, f
    assert eof == b""
    assert res.rc == 0, res
    assert 3.0 < secs < 8.0, secs


def _frame_raw(b0, payload, length=None):
    n = len(payload) if length is None else length
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


# Bytes a server sends after the 101, and the close code our client must
# answer with.
PROTOCOL_ERRORS = {
    "invalid_utf8_text": (server_frame(OP_TEXT, b"ok \xff\xfe"), 1007),
    "invalid_utf8_across_fragments": (
        server_frame(OP_TEXT, b"\xe2\x82", fin=False) +
        server_frame(OP_CONT, b"\x28"), 1007),
    "rsv1_without_extension": (server_frame(OP_TEXT, b"x", rsv=4), 1002),
    "rsv3": (server_frame(OP_BINARY, b"x", rsv=1), 1002),
    "unknown_opcode_3": (_frame_raw(0x83, b"x"), 1002),
    "unknown_control_opcode_11": (_frame_raw(0x8B, b""), 1002),
    "ping_too_long": (server_frame(OP_PING, b"p" * 126), 1002),
    "fragmented_ping": (server_frame(OP_PING, b"p", fin=False), 1002),
    "continuation_first": (server_frame(OP_CONT, b"x"), 1002),
    "text_inside_fragmented_message": (
        server_frame(OP_TEXT, b"a", fin=False) +
        server_frame(OP_TEXT, b"b"), 1002),
    "close_code_1005_on_wire": (
        server_frame(OP_CLOSE, close_payload(1005)), 1002),
    "close_code_999": (server_frame(OP_CLOSE, close_payload(999)), 1002),
    "close_code_1_byte": (server_frame(OP_CLOSE, b"\x03"), 1002),
    "close_reason_invalid_utf8": (
        server_frame(OP_CLOSE, close_payload(1000, b"\xff")), 1007),
    "length_msb_set": (_frame_raw(0x82, b"", length=1 << 63), 1002),
    "message_over_64MiB_announced": (
        _frame_raw(0x82, b"", length=65 * MiB), 1009),
}


@pytest.mark.parametrize("case", sorted(PROTOCOL_ERRORS))
def test_raw_protocol_error_closes_with_code(case):
    data, code = PROTOCOL_ERRORS[case]

    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(data)
        await writer.drain()
        f = await read_frame(reader)
        if f.opcode == OP_CLOSE:
            writer.write(server_frame(OP_CLOSE, f.payload[:2]))
            await writer.drain()
        return f

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url(), timeout=12)
            return res, await asyncio.wait_for(srv.result, 5)
    res, f = run(main())
    assert f.opcode == OP_CLOSE, "expected a close frame, got %r" % f
    assert f.mask_key is not None, f
    assert f.close_code == code, f
    assert res.rc == 0, res
    assert res.seconds < 7, res


def test_raw_message_then_close_in_one_segment():
    """A message and a close frame in one write: whatever our client sends
    after its close frame is a protocol violation (RFC 6455 5.5.1)."""
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(b"".join(server_frame(OP_TEXT, b"m%d" % i)
                              for i in range(20)) +
                     server_frame(OP_CLOSE, close_payload(1000, b"bye")))
        await writer.drain()
        frames = []
        while len(frames) < 30 and (not frames or
                                    frames[-1].opcode != OP_CLOSE):
            frames.append(await read_frame(reader, timeout=5))
        # Anything after the close frame (before we close TCP)?
        try:
            frames.append(await read_frame(reader, timeout=0.3))
        except asyncio.TimeoutError:
            pass
        writer.close()
        return frames

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            return res, await asyncio.wait_for(srv.result, 10)
    res, frames = run(main())
    print(frames)
    ops = [f.opcode for f in frames]
    assert OP_CLOSE in ops, frames
    assert ops.count(OP_CLOSE) == 1, frames
    assert ops[-1] == OP_CLOSE, "frames after our close frame: %r" % frames
    data = [f.payload for f in frames if f.opcode == OP_TEXT]
    assert data == [b"m%d" % i for i in range(len(data))], data
    assert res.rc == 0, res


def test_raw_big_echoes_then_close_framing_intact():
    """Large echoes still being written when the close frame and pings
    arrive: the output stays well-framed (no control frame inside a data
    frame), every echo is whole, pongs carry their pings' payloads, and
    the close frame comes last."""
    big = [os.urandom(2 * MiB + i) for i in range(3)]

    async def handler(reader, writer):
        await upgrade(reader, writer)
        out = b"".join(server_frame(OP_BINARY, b) for b in big)
        out += b"".join(server_frame(OP_PING, b"p%d" % i) for i in range(5))
        out += server_frame(OP_CLOSE, close_payload(1000, b"enough"))
        writer.write(out)
        # Do not read until the client had time to fill the socket.
        await asyncio.sleep(0.3)
        await writer.drain()
        frames = []
        while not frames or frames[-1].opcode != OP_CLOSE:
            frames.append(await read_frame(reader, timeout=10))
            assert len(frames) < 50, frames
        writer.close()
        return frames

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            return res, await asyncio.wait_for(srv.result, 20)
    res, frames = run(main(), timeout=40)
    assert res.rc == 0, res
    assert all(f.mask_key is not None for f in frames)
    data = [f.payload for f in frames if f.opcode == OP_BINARY]
    # Echoes not yet started when the close arrived may be dropped, but
    # what is sent is whole and in order.
    assert data == big[:len(data)], [len(d) for d in data]
    pongs = [f.payload for f in frames if f.opcode == OP_PONG]
    assert pongs == [b"p%d" % i for i in range(len(pongs))], pongs
    assert frames[-1].close_code == 1000, frames[-1]
    print("echoes %d/3, pongs %d/5" % (len(data), len(pongs)))


def test_raw_unsolicited_pong_and_max_ping():
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(server_frame(OP_PONG, b"nobody asked") +
                     server_frame(OP_PING, b"P" * 125) +
                     server_frame(OP_PING, b"") +
                     server_frame(OP_TEXT, b"after"))
        await writer.drain()
        got = [await read_frame(reader) for _ in range(3)]
        assert [(f.opcode, f.payload) for f in got] == [
            (OP_PONG, b"P" * 125), (OP_PONG, b""), (OP_TEXT, b"after")], got
        await close_from_server(reader, writer)
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            assert await asyncio.wait_for(srv.result, 5)
            assert res.rc == 0, res
    run(main())


@pytest.mark.parametrize("extra, ok", [(0, True), (1, False)])
def test_raw_longest_target(extra, ok):
    """Path and query up to 4096 bytes go out as they are; longer is a bad
    URL."""
    target = "/" + "p" * 3000 + "?" + "q" * (4096 - 3002 + extra)

    async def handler(reader, writer):
        req = await read_request(reader)
        writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        await writer.drain()
        return req

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run("ws://127.0.0.1:%d%s" % (srv.port, target))
            req = await asyncio.wait_for(srv.result, 5) if ok else None
            return res, req
    res, req = run(main())
    if ok:
        assert "handshake: HTTP 403" in connect_failed(res)
        assert req.target == target
    else:
        assert res.rc == 1 and "bad URL: path and query too long" in \
            res.stderr, res


@pytest.mark.parametrize("ca, words", [
    ("/nonexistent/ca.pem", "cannot read CA file"),
    ("/etc/hostname", "bad CA file"),
])
def test_wss_bad_ca_file(ca, words):
    if not os.path.exists(ca) and ca != "/nonexistent/ca.pem":
        pytest.skip("%s missing" % ca)
    res = run(client_run("wss://127.0.0.1:%d/" % free_port(), "--ca", ca))
    assert res.rc == 1, res
    assert words in res.stderr, res


@pytest.mark.parametrize("read_first", [True, False])
def test_wss_server_closes_during_tls(read_first):
    """A TCP close in the middle of TLS (after the ClientHello, or before
    it) is a "tls:" failure, OpenSSL's "unexpected eof" or ours."""
    async def handler(reader, writer):
        if read_first:
            await reader.read(1)
        return True

    async def main():
        async with RawServer(handler) as srv:
            return await client_run("wss://127.0.0.1:%d/" % srv.port)
    res = run(main())
    reason = connect_failed(res)
    assert reason.startswith("tls: "), reason
    assert ("unexpected eof" in reason or
            "the server closed the connection" in reason), reason
    assert res.seconds < 5, res


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_raw_close_frame_then_tcp_gone(how):
    """The server sends its close frame and ends TCP at once, without
    waiting for ours: the client still exits 0, promptly."""
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.write(server_frame(OP_TEXT, b"x") +
                     server_frame(OP_CLOSE, close_payload(1001, b"away")))
        await writer.drain()
        if how == "rst":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            writer.transport.abort()
        return True

    async def main():
        async with RawServer(handler) as srv:
            res = await client_run(srv.url())
            assert await asyncio.wait_for(srv.result, 5)
            return res
    res = run(main())
    assert res.rc == 0, res
    assert res.seconds < 5, res


def test_websockets_server_20_clients_at_once():
    async def handler(ws):
        tag = ws.path
        for i in range(20):
            await echo_check(ws, "%s-%d" % (tag, i))
        await ws.close()

    async def main():
        async with serve(lambda ws, _p=None: handler(ws)) as server:
            port = port_of(server)
            t0 = time.monotonic()
            procs = [await start_client("ws://127.0.0.1:%d/c%d" % (port, i))
                     for i in range(20)]
            return await asyncio.gather(*(finish_client(p, t0)
                                          for p in procs))
    for res in run(main()):
        assert res.rc == 0 and res.stderr == "", res


def test_raw_close_while_server_never_reads():
    """The server sends a 16 MiB message and a close frame and then reads
    nothing: the echo cannot drain and our close frame cannot go out, so
    the client gives up at its close timeout (5 s, swept once a second)
    after the close frame, not at some other deadline."""
    async def handler(reader, writer):
        await upgrade(reader, writer)
        writer.transport.pause_reading()
        writer.write(server_frame(OP_BINARY, b"\x5a" * (16 * MiB)))
        await writer.drain()
        writer.write(server_frame(OP_CLOSE, close_payload(1000, b"bye")))
        await writer.drain()
        close_sent.append(time.monotonic())
        await asyncio.sleep(20)  # hold the TCP connection open
        return True

    close_sent = []

    async def main():
        async with RawServer(handler) as srv:
            t0 = time.monotonic()
            proc = await start_client(srv.url())
            res = await finish_client(proc, t0, timeout=15)
            return res, time.monotonic()
    res, ended = run(main(), timeout=40)
    close_sent = close_sent[0]
    assert res.rc == 0, res
    after_close = ended - close_sent
    print("ended %.2f s after the close frame" % after_close)
    assert 3.0 < after_close < 8.0, after_close


# ---- our own server, in another process ---------------------------------


def test_our_chat_server(chat_server):
    """echo_client against chat_server (both modes): it echoes its welcome,
    which the chat server says to everyone else, and what others say; a
    deflate client too (150 bytes: compressed both ways). Our client and our server agree
    across processes."""
    url = "ws://127.0.0.1:%d/chat" % chat_server.port

    async def main():
        async with websockets.connect(url) as watcher:
            assert (await watcher.recv()).startswith("welcome #")
            await watcher.send("/nick watcher")
            assert await watcher.recv() == "ok nick watcher"
            for flags in ((), ("--deflate",)):
                t0 = time.monotonic()
                proc = await start_client(url, *flags)
                said = await asyncio.wait_for(watcher.recv(), 5)
                m = re.match(r"say (#\d+) welcome \1\Z", said)
                assert m, said
                # It echoes what we say, which is said to everyone again.
                await watcher.send("ping " * 30)
                assert await asyncio.wait_for(watcher.recv(), 5) == \
                    "say %s say watcher %s" % (m.group(1), "ping " * 30)
                proc.terminate()  # SIGTERM: it ends without a clean close
                res = await finish_client(proc, t0)
                assert res.rc in (0, -signal.SIGTERM), res
    run(main())
