"""The client API (issue #15): libwebsock2.connect (threads),
libwebsock2.aio.connect (asyncio) and Server.connect, over real sockets,
against our own server in this process and against Debian's websockets
server in a subprocess (/usr/bin/python3, which never imports the
binding): messages of every kind, pings, every close path, every stage a
connect can fail in, limits, subprotocols and headers, many connections at
once, wss:// with a throwaway CA."""
import asyncio
import concurrent.futures
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import libwebsock2
import libwebsock2.aio
from conftest import run

WEBSOCKETS_PY = "/usr/bin/python3"  # Debian's interpreter and python3-websockets

# The peer: Debian's websockets, one behaviour per path.
PEER = textwrap.dedent(r'''
    import asyncio, json, sys
    import websockets

    async def handler(ws, path):
        if path == "/echo":
            async for msg in ws:
                await ws.send(msg)
        elif path == "/frag":
            await ws.send(["frag", "men", "ted"])          # one text message, 3 frames
            await ws.send([b"\x00\x01", b"\x02", b"\x03"])  # one binary message
            await ws.send(["x" * 70000, "y" * 70000])       # large fragments
            await ws.wait_closed()
        elif path.startswith("/close/"):
            _, _, code, reason = path.split("/", 3)
            await ws.close(int(code), reason)
        elif path == "/big":
            await ws.send(bytes(range(256)) * 4096)          # 1 MiB
            await ws.wait_closed()
        elif path == "/toobig":
            await ws.send(b"z" * (2 * 1024 * 1024))
            await ws.wait_closed()
        elif path == "/headers":
            await ws.send(json.dumps(list(ws.request_headers.raw_items())))
            await ws.wait_closed()
        elif path == "/subprotocol":
            await ws.send(str(ws.subprotocol))
            await ws.wait_closed()
        elif path == "/pingme":
            pong = await ws.ping(b"from-server")
            await asyncio.wait_for(pong, 5)
            await ws.send("got pong")
            await ws.wait_closed()

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                    subprotocols=["chat.v2", "chat.v1"]) as srv:
            print("listening on", srv.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()

    asyncio.run(main())
''')


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """The port of a websockets server in a subprocess."""
    script = tmp_path_factory.mktemp("peer") / "peer.py"
    script.write_text(PEER)
    proc = subprocess.Popen([WEBSOCKETS_PY, "-P", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = [""]
    t = threading.Thread(target=lambda: line.__setitem__(0, proc.stdout.readline()),
                         daemon=True)
    t.start()
    t.join(15)
    if not line[0].startswith("listening on "):
        proc.kill()
        raise AssertionError("websockets server did not start: %r %s"
                             % (line[0], proc.communicate(timeout=5)[1]))
    yield int(line[0].split()[-1])
    proc.kill()
    proc.wait(10)


@pytest.fixture
def echo_server(make_server):
    """Our own threaded echo server; also records each upgrade's headers."""
    seen = []

    def process_request(request):
        seen.append(request)
        return None

    srv = make_server(host="127.0.0.1", io_threads=1, agents=2, subprotocols=["chat.v2"],
                      process_request=process_request)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    srv.seen = seen
    return srv


class Background:
    """An asyncio loop in a thread for raw socket servers."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers = []

    def serve(self, handler):
        async def start():
            srv = await asyncio.start_server(handler, "127.0.0.1", 0)
            self.servers.append(srv)
            return srv.sockets[0].getsockname()[1]
        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self):
        async def stop():
            for s in self.servers:
                s.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:  # handlers still waiting (the silent server's)
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def raw():
    bg = Background()
    yield bg
    bg.close()


async def _read_head(reader):
    return await reader.readuntil(b"\r\n\r\n")


@pytest.fixture(scope="module")
def wrong_accept_port(raw):
    async def handler(reader, writer):
        await _read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()
    return raw.serve(handler)


@pytest.fixture(scope="module")
def silent_port(raw):
    async def handler(reader, writer):
        try:
            await reader.read()  # accepts TCP, never answers
        finally:
            writer.close()
    return raw.serve(handler)


@pytest.fixture(scope="module")
def http200_port():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"just a web page\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    return port


# -- against our own server, threads ---------------------------------------------

def test_text_binary_ping_and_our_close(echo_server):
    url = "ws://127.0.0.1:%d/room?x=1" % echo_server.port
    with libwebsock2.connect(url, user_data={"me": 1}) as ws:
        assert isinstance(ws, libwebsock2.ClientConnection)
        assert ws.id > 0 and ws.url == url and ws.data == {"me": 1}
        assert (ws.path, ws.query) == ("/room", "x=1")
        assert not ws.closed and ws.close_code is None
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=5) == b"\x00\xff"
        ws.send(bytearray(b"ba"))
        assert ws.recv(timeout=5) == b"ba"
        latency = ws.ping().result(timeout=5)
        assert 0 <= latency < 5
        assert ws.ping(b"abc").result(timeout=5) >= 0
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
    assert ws.closed and ws.close_code == 1000
    with pytest.raises(libwebsock2.ConnectionClosedOK) as info:
        ws.recv()
    assert info.value.code == 1000
    with pytest.raises(libwebsock2.ConnectionClosedOK):
        ws.send("late")
    ws.close()  # closing again does nothing


def test_close_with_code_and_reason_from_us(echo_server):
    got = []
    echo_server.on_close(lambda conn, code, reason: got.append((code, reason)))
    ws = libwebsock2.connect("ws://127.0.0.1:%d/" % echo_server.port)
    ws.close(4001, "done here")
    assert ws.closed and ws.close_code == 4001
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [(4001, "done here")]
    with pytest.raises(libwebsock2.ConnectionClosedError) as info:
        ws.recv()
    assert info.value.code == 4001


def test_server_closes_with_code_and_reason(make_server):
    srv = make_server(agents=1)

    @srv.on_message
    def bye(conn, msg):
        code, reason = msg.split(" ", 1)
        conn.close(int(code), reason)

    srv.start()
    url = "ws://127.0.0.1:%d/" % srv.port
    ws = libwebsock2.connect(url)
    ws.send("1000 all done")
    with pytest.raises(libwebsock2.ConnectionClosedOK) as info:
        ws.recv(timeout=5)
    assert (info.value.code, info.value.reason) == (1000, "all done")
    assert (ws.close_code, ws.close_reason) == (1000, "all done")

    ws = libwebsock2.connect(url)
    ws.send("4000 go away")
    with pytest.raises(libwebsock2.ConnectionClosedError) as info:
        for _ in ws:
            pass
    assert (info.value.code, info.value.reason) == (4000, "go away")


def test_messages_before_the_close_are_read_first(make_server):
    srv = make_server(agents=1)

    @srv.on_open
    def burst(conn):
        for i in range(50):
            conn.send("m%d" % i)
        conn.close(1000, "end")

    srv.start()
    with libwebsock2.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
        assert list(ws) == ["m%d" % i for i in range(50)]
        assert ws.close_code == 1000


def test_large_and_fragmented_from_our_server(make_server):
    srv = make_server(agents=1, fragment_size=4096, max_message_size=4 << 20)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    big = os.urandom(1 << 20)
    with libwebsock2.connect("ws://127.0.0.1:%d/" % srv.port, max_size=2 << 20) as ws:
        ws.send(big)  # 1 MiB out, masked
        assert ws.recv(timeout=10) == big  # back in 256 fragments
        text = "ü" * 300000
        ws.send(text)
        assert ws.recv(timeout=10) == text


def test_max_size_exceeded_closes_with_1009(make_server):
    srv = make_server(agents=1, max_message_size=4 << 20)

    @srv.on_message
    def big(conn, msg):
        conn.send(b"x" * int(msg))

    srv.start()
    ws = libwebsock2.connect("ws://127.0.0.1:%d/" % srv.port, max_size=1000)
    ws.send("1000")
    assert ws.recv(timeout=5) == b"x" * 1000
    ws.send("1001")
    with pytest.raises(libwebsock2.ConnectionClosedError) as info:
        ws.recv(timeout=5)
    assert info.value.code == 1009


def test_subprotocol_and_extra_headers_reach_our_server(echo_server):
    url = "ws://127.0.0.1:%d/" % echo_server.port
    with libwebsock2.connect(url, subprotocols=["chat.v1", "chat.v2"],
                             extra_headers={"Authorization": "Bearer s3cret",
                                            "X-Num": 7}) as ws:
        assert ws.subprotocol == "chat.v2"
    req = echo_server.seen[-1]
    assert req.headers["authorization"] == "Bearer s3cret"
    assert req.headers["X-Num"] == "7"
    assert req.subprotocols == ("chat.v1", "chat.v2")
    with libwebsock2.connect(url, extra_headers=[("X-A", "1"), ("X-A", "2")]) as ws:
        assert ws.subprotocol is None
    assert echo_server.seen[-1].headers.get_all("x-a") == ["1", "2"]


def test_bad_arguments_raise_at_once():
    with pytest.raises(libwebsock2.InvalidURI) as info:
        libwebsock2.connect("http://127.0.0.1/")
    assert isinstance(info.value, libwebsock2.InvalidArgument)
    assert "bad URL" in str(info.value)
    with pytest.raises(libwebsock2.InvalidURI):
        libwebsock2.connect("ws://")
    with pytest.raises(TypeError):
        libwebsock2.connect(b"ws://127.0.0.1/")
    with pytest.raises(libwebsock2.InvalidArgument, match="Sec-WebSocket"):
        libwebsock2.connect("ws://127.0.0.1:1/", extra_headers={"Sec-WebSocket-Key": "x"})
    with pytest.raises(libwebsock2.InvalidArgument, match="token"):
        libwebsock2.connect("ws://127.0.0.1:1/", subprotocols=["bad proto"])
    with pytest.raises(libwebsock2.InvalidArgument, match="max_size"):
        libwebsock2.connect("ws://127.0.0.1:1/", max_size=0)
    with pytest.raises(libwebsock2.InvalidArgument, match="open_timeout"):
        libwebsock2.connect("ws://127.0.0.1:1/", open_timeout=0)
    with pytest.raises(libwebsock2.InvalidArgument, match="compression"):
        libwebsock2.connect("ws://127.0.0.1:1/", compression="gzip")
    with pytest.raises(libwebsock2.InvalidArgument, match="ws://"):
        libwebsock2.connect("ws://127.0.0.1:1/", ssl="ca.pem")
    with pytest.raises(TypeError, match="CA file"):
        import ssl
        libwebsock2.connect("wss://127.0.0.1:1/", ssl=ssl.create_default_context())


# -- connect failures, each with its class and reason ----------------------------

def test_refused_port():
    port = closed_port()
    with pytest.raises(libwebsock2.ConnectionFailed) as info:
        libwebsock2.connect("ws://127.0.0.1:%d/" % port)
    e = info.value
    assert isinstance(e, libwebsock2.ConnectError) and isinstance(e, OSError)
    assert e.stage == "connect" and e.reason.startswith("connect: Connection refused")
    assert "127.0.0.1 port %d" % port in e.reason
    import errno
    assert e.errno == errno.ECONNREFUSED
    assert e.url == "ws://127.0.0.1:%d/" % port


def test_unresolvable_host():
    with pytest.raises(libwebsock2.ConnectionFailed) as info:
        libwebsock2.connect("ws://nonexistent.invalid/")
    assert info.value.stage == "resolve"
    assert info.value.reason.startswith("resolve: ")
    assert "nonexistent.invalid" in str(info.value)


def test_plain_http_server_answering_200(http200_port):
    with pytest.raises(libwebsock2.InvalidStatus) as info:
        libwebsock2.connect("ws://127.0.0.1:%d/" % http200_port)
    assert info.value.status == 200
    assert info.value.reason.startswith("handshake: HTTP 200")
    assert isinstance(info.value, libwebsock2.InvalidHandshake)


def test_404_from_our_server(make_server):
    srv = make_server(agents=1, ws_paths=["/chat"])
    srv.start()
    with pytest.raises(libwebsock2.InvalidStatus) as info:
        libwebsock2.connect("ws://127.0.0.1:%d/elsewhere" % srv.port)
    assert info.value.status == 404
    assert info.value.reason == "handshake: HTTP 404 Not Found"


def test_wrong_accept_key(wrong_accept_port):
    with pytest.raises(libwebsock2.InvalidHandshake) as info:
        libwebsock2.connect("ws://127.0.0.1:%d/" % wrong_accept_port)
    assert not isinstance(info.value, libwebsock2.InvalidStatus)
    assert info.value.reason.startswith("handshake: ")
    assert "Sec-WebSocket-Accept" in info.value.reason


def test_open_timeout_against_a_silent_server(silent_port):
    t0 = time.monotonic()
    with pytest.raises(libwebsock2.OpenTimeout) as info:
        libwebsock2.connect("ws://127.0.0.1:%d/" % silent_port, open_timeout=0.3)
    took = time.monotonic() - t0
    assert isinstance(info.value, TimeoutError)
    assert info.value.stage == "timeout" and "300 ms" in info.value.reason
    assert 0.25 <= took < 3  # the core checks deadlines at its sweep: up to 1 s late


# -- against Debian's websockets server in a subprocess ----------------------------

def test_websockets_peer_echo(peer):
    # max_size 2 MiB: with permessage-deflate, 1 MiB of random bytes is a
    # little more than 1 MiB on the wire, and the frame counts too (as in
    # websockets)
    with libwebsock2.connect("ws://127.0.0.1:%d/echo" % peer, max_size=2 << 20) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=5) == b"\x01\x02"
        big = os.urandom(1 << 20)
        ws.send(big)
        assert ws.recv(timeout=10) == big
        assert ws.ping(b"p").result(timeout=5) >= 0
    assert ws.close_code == 1000


def test_websockets_peer_fragmented(peer):
    with libwebsock2.connect("ws://127.0.0.1:%d/frag" % peer) as ws:
        assert ws.recv(timeout=5) == "fragmented"
        assert ws.recv(timeout=5) == b"\x00\x01\x02\x03"
        assert ws.recv(timeout=5) == "x" * 70000 + "y" * 70000


def test_websockets_peer_big_message(peer):
    with libwebsock2.connect("ws://127.0.0.1:%d/big" % peer) as ws:
        assert ws.recv(timeout=10) == bytes(range(256)) * 4096


def test_websockets_peer_too_big(peer):
    ws = libwebsock2.connect("ws://127.0.0.1:%d/toobig" % peer)  # max_size 1 MiB
    with pytest.raises(libwebsock2.ConnectionClosedError) as info:
        ws.recv(timeout=10)
    assert info.value.code == 1009


@pytest.mark.parametrize("code,reason,cls", [
    (1000, "bye", libwebsock2.ConnectionClosedOK),
    (1001, "going", libwebsock2.ConnectionClosedOK),
    (4321, "custom", libwebsock2.ConnectionClosedError),
])
def test_websockets_peer_closes(peer, code, reason, cls):
    ws = libwebsock2.connect("ws://127.0.0.1:%d/close/%d/%s" % (peer, code, reason))
    with pytest.raises(cls) as info:
        ws.recv(timeout=5)
    assert (info.value.code, info.value.reason) == (code, reason)
    assert ws.closed and (ws.close_code, ws.close_reason) == (code, reason)


def test_websockets_peer_subprotocol_and_headers(peer):
    with libwebsock2.connect("ws://127.0.0.1:%d/subprotocol" % peer,
                             subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.recv(timeout=5) == "chat.v1"
    with libwebsock2.connect("ws://127.0.0.1:%d/headers" % peer,
                             extra_headers=[("X-Trace", "abc"), ("Cookie", "a=1")]) as ws:
        headers = json.loads(ws.recv(timeout=5))
    assert ["X-Trace", "abc"] in headers and ["Cookie", "a=1"] in headers


def test_websockets_peer_pings_us(peer):
    with libwebsock2.connect("ws://127.0.0.1:%d/pingme" % peer) as ws:
        assert ws.recv(timeout=5) == "got pong"  # the core answered the ping itself


def test_websockets_peer_404(peer):
    # websockets answers a plain 'GET /' without upgrade headers... but ours
    # has them: a path websockets' handler ignores just closes with 1000.
    with libwebsock2.connect("ws://127.0.0.1:%d/nothing" % peer) as ws:
        with pytest.raises(libwebsock2.ConnectionClosedOK):
            ws.recv(timeout=5)


# -- many connections, one hidden server ------------------------------------------

def test_200_concurrent_connects(make_server):
    srv = make_server(io_threads=2, agents=2)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    url = "ws://127.0.0.1:%d/" % srv.port
    libwebsock2.connect(url).close()  # the hidden server exists from here on
    threads_before = len(os.listdir("/proc/self/task"))

    def one(i):
        ws = libwebsock2.connect(url)
        ws.send("n%d" % i)
        assert ws.recv(timeout=10) == "n%d" % i
        return ws

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        conns = list(pool.map(one, range(200)))
    assert len({ws.id for ws in conns}) == 200
    hub = libwebsock2._client.hub()
    assert all(ws.server is hub for ws in conns)  # one hidden server for all
    # no thread (C or Python) per connection: the pool's threads are gone
    # (a joined Python thread's OS thread may take a moment to exit)
    deadline = time.monotonic() + 5
    while (len(os.listdir("/proc/self/task")) > threads_before + 1 and
           time.monotonic() < deadline):
        time.sleep(0.02)
    assert len(os.listdir("/proc/self/task")) <= threads_before + 1
    assert srv.stats()["connections"] == 200
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda ws: ws.close(), conns))
    assert all(ws.close_code == 1000 for ws in conns)


# -- Server.connect: a server dials out with its own event model --------------------

def test_server_connect_events_reach_its_handlers(make_server, echo_server):
    events = []
    dialer = make_server(agents=2)

    @dialer.on_open
    def opened(conn):
        events.append(("open", conn.url))
        conn.send("from the dialer")

    @dialer.on_message
    def got(conn, msg):
        events.append(("message", msg))
        conn.close(1000, "thanks")

    @dialer.on_close
    def closed(conn, code, reason):
        events.append(("close", code))

    dialer.start()
    url = "ws://127.0.0.1:%d/" % echo_server.port
    conn = dialer.connect(url, subprotocols=["chat.v2"], user_data=5).result(timeout=10)
    assert conn.url == url and conn.data == 5 and conn.subprotocol == "chat.v2"
    assert conn.request is None
    deadline = time.monotonic() + 5
    while len(events) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == [("open", url), ("message", "from the dialer"), ("close", 1000)]

    with pytest.raises(libwebsock2.ConnectionFailed):
        dialer.connect("ws://127.0.0.1:%d/" % closed_port()).result(timeout=10)
    with pytest.raises(libwebsock2.InvalidURI):
        dialer.connect("nope")


def test_server_connect_to_websockets_peer(make_server, peer):
    got = []
    done = threading.Event()
    srv = make_server(agents=1)

    @srv.on_message
    def message(conn, msg):
        got.append(msg)

    @srv.on_close
    def closed(conn, code, reason):
        got.append((code, reason))
        done.set()

    srv.start()
    conn = srv.connect("ws://127.0.0.1:%d/frag" % peer).result(timeout=10)
    assert conn.url.endswith("/frag")
    # The peer's messages first: data that comes after our close frame is
    # not delivered.
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    conn.close(1000, "enough")
    assert done.wait(10)
    assert got[:2] == ["fragmented", b"\x00\x01\x02\x03"]
    assert got[-1][0] == 1000


def test_ping_and_send_after_the_end_raise(echo_server):
    ws = libwebsock2.connect("ws://127.0.0.1:%d/" % echo_server.port)
    waiter = ws.ping(b"late")
    ws.close(1000)
    with pytest.raises(libwebsock2.ConnectionClosedOK):
        ws.ping()
    with pytest.raises(libwebsock2.ConnectionClosedOK):
        ws.send(b"x")
    # the pong came before the close, or the waiter failed with the close
    try:
        waiter.result(timeout=5)
    except libwebsock2.ConnectionClosed:
        pass


def test_server_connect_needs_a_running_server():
    srv = libwebsock2.Server(port=0)
    with pytest.raises(libwebsock2.StateError):
        srv.connect("ws://127.0.0.1:1/")


def test_client_only_server_dials_out(echo_server):
    got = concurrent.futures.Future()
    with libwebsock2.Server(client_only=True, agents=1,
                            on_message=lambda conn, msg: got.set_result(msg)) as srv:
        assert srv.port == 0
        conn = srv.connect("ws://127.0.0.1:%d/" % echo_server.port).result(timeout=10)
        conn.send("ping-pong")
        assert got.result(timeout=5) == "ping-pong"


# -- asyncio ---------------------------------------------------------------------

def test_aio_echo_and_close(echo_server):
    url = "ws://127.0.0.1:%d/" % echo_server.port

    async def main():
        async with libwebsock2.aio.connect(url, subprotocols=["chat.v2"]) as ws:
            assert isinstance(ws, libwebsock2.aio.ClientConnection)
            assert ws.subprotocol == "chat.v2"
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00" * 100000)
            assert await ws.recv() == b"\x00" * 100000
            pong = await ws.ping()
            assert await asyncio.wait_for(pong, 5) >= 0
        assert ws.closed and ws.close_code == 1000
        with pytest.raises(libwebsock2.ConnectionClosedOK):
            await ws.recv()

        ws = await libwebsock2.aio.connect(url)
        await ws.send("two")
        assert await ws.recv() == "two"
        await ws.close(4002, "ours")
        assert ws.close_code == 4002

    run(main())


def test_aio_iteration_and_server_close(make_server):
    srv = make_server(agents=1)

    @srv.on_open
    def burst(conn):
        for i in range(20):
            conn.send(i.to_bytes(2, "big"))
        conn.close(1001, "restart")

    srv.start()

    async def main():
        async with libwebsock2.aio.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
            got = [m async for m in ws]
        assert got == [i.to_bytes(2, "big") for i in range(20)]
        assert (ws.close_code, ws.close_reason) == (1001, "restart")

    run(main())


def test_aio_failures(http200_port, wrong_accept_port, silent_port):
    async def main():
        with pytest.raises(libwebsock2.ConnectionFailed) as info:
            await libwebsock2.aio.connect("ws://127.0.0.1:%d/" % closed_port())
        assert info.value.reason.startswith("connect: Connection refused")
        with pytest.raises(libwebsock2.ConnectionFailed) as info:
            async with libwebsock2.aio.connect("ws://nonexistent.invalid/"):
                pass
        assert info.value.stage == "resolve"
        with pytest.raises(libwebsock2.InvalidStatus):
            await libwebsock2.aio.connect("ws://127.0.0.1:%d/" % http200_port)
        with pytest.raises(libwebsock2.InvalidHandshake, match="Sec-WebSocket-Accept"):
            await libwebsock2.aio.connect("ws://127.0.0.1:%d/" % wrong_accept_port)
        with pytest.raises(libwebsock2.OpenTimeout):
            await libwebsock2.aio.connect("ws://127.0.0.1:%d/" % silent_port,
                                          open_timeout=0.2)
        with pytest.raises(libwebsock2.InvalidURI):
            libwebsock2.aio.connect("ftp://x/")  # checked at once

    run(main())


def test_aio_connect_cancelled(silent_port, echo_server):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                libwebsock2.aio.connect("ws://127.0.0.1:%d/" % silent_port, open_timeout=0.5),
                0.05)
        await asyncio.sleep(1.6)  # the core's timeout ends the abandoned dial
        async with libwebsock2.aio.connect("ws://127.0.0.1:%d/" % echo_server.port) as ws:
            await ws.send("still fine")
            assert await ws.recv() == "still fine"

    run(main())


def test_aio_against_websockets_peer(peer):
    async def main():
        async with libwebsock2.aio.connect("ws://127.0.0.1:%d/frag" % peer) as ws:
            assert await ws.recv() == "fragmented"
            assert await ws.recv() == b"\x00\x01\x02\x03"
        ws = await libwebsock2.aio.connect("ws://127.0.0.1:%d/close/4400/nope" % peer)
        with pytest.raises(libwebsock2.ConnectionClosedError) as info:
            async for _ in ws:
                pass
        assert (info.value.code, info.value.reason) == (4400, "nope")
        ws = await libwebsock2.aio.connect("ws://127.0.0.1:%d/toobig" % peer,
                                           max_size=100000)
        with pytest.raises(libwebsock2.ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1009

    run(main())


def test_aio_200_concurrent_connects(make_server):
    srv = make_server(io_threads=2, agents=2)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    url = "ws://127.0.0.1:%d/" % srv.port

    async def one(i):
        ws = await libwebsock2.aio.connect(url)
        await ws.send("a%d" % i)
        assert await ws.recv() == "a%d" % i
        return ws

    async def main():
        conns = await asyncio.gather(*(one(i) for i in range(200)))
        assert srv.stats()["connections"] == 200
        await asyncio.gather(*(ws.close() for ws in conns))
        assert all(ws.close_code == 1000 for ws in conns)

    run(main(), timeout=60)


def test_aio_server_connect(echo_server):
    seen = []

    async def handler(conn):
        async for msg in conn:
            seen.append(msg)
            if msg == "stop":
                return

    async def main():
        async with libwebsock2.aio.serve(handler, "127.0.0.1", 0) as srv:
            url = "ws://127.0.0.1:%d/" % echo_server.port
            conn = await srv.connect(url, user_data="mine")
            assert conn.url == url and conn.data == "mine"
            await conn.send("one")       # echoed back into the handler
            await conn.send("stop")
            await conn.wait_closed()
            assert conn.close_code == 1000
            with pytest.raises(libwebsock2.ConnectionFailed):
                await srv.connect("ws://127.0.0.1:%d/" % closed_port())
        assert seen == ["one", "stop"]

    run(main())


def test_aio_connection_left_open_when_the_loop_ends(echo_server):
    url = "ws://127.0.0.1:%d/" % echo_server.port
    closes = []
    echo_server.on_close(lambda conn, code, reason: closes.append(code))

    async def main():
        ws = await libwebsock2.aio.connect(url)
        await ws.send("x")
        assert await ws.recv() == "x"
        return ws

    ws = run(main())
    # the loop has closed: the next event for it closes the connection (1001)
    assert not ws.closed
    for conn_id in echo_server.connections:
        echo_server.send(conn_id, "wake")
    deadline = time.monotonic() + 5
    while not closes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closes == [1001]


# -- wss:// ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA, a server certificate for localhost / 127.0.0.1 and
    one for another host name, made with the openssl CLI."""
    d = tmp_path_factory.mktemp("client-tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

    def sh(*args):
        subprocess.run(("openssl",) + args, cwd=d, check=True, capture_output=True, timeout=60)

    sh("req", "-x509", *ec, "-days", "2", "-subj", "/CN=libwebsock2 client test CA",
       "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "ca.key", "-out", "ca.pem")
    for name, san in (("good", "DNS:localhost,IP:127.0.0.1"), ("other", "DNS:other.example")):
        (d / (name + ".cnf")).write_text("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                                         % san)
        sh("req", *ec, "-subj", "/CN=" + san.split(",")[0].split(":")[1],
           "-keyout", name + ".key", "-out", name + ".csr")
        sh("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-days", "2", "-extfile", name + ".cnf", "-out", name + ".pem")
    return d


@pytest.fixture
def wss_server(make_server, pki):
    def start(name):
        srv = make_server(agents=1, ssl=(str(pki / (name + ".pem")), str(pki / (name + ".key"))))

        @srv.on_message
        def echo(conn, msg):
            conn.send(msg)

        srv.start()
        return srv
    return start


def test_wss_with_the_trusted_ca(wss_server, pki):
    srv = wss_server("good")
    for host in ("127.0.0.1", "localhost"):
        with libwebsock2.connect("wss://%s:%d/" % (host, srv.port),
                                 ssl=str(pki / "ca.pem")) as ws:
            ws.send("secret")
            assert ws.recv(timeout=5) == "secret"
            big = os.urandom(300000)
            ws.send(big)
            assert ws.recv(timeout=5) == big


def test_wss_without_the_ca_fails_verification(wss_server):
    srv = wss_server("good")
    with pytest.raises(libwebsock2.TLSHandshakeError) as info:
        libwebsock2.connect("wss://127.0.0.1:%d/" % srv.port)
    assert info.value.stage == "tls"
    assert "certificate verify failed" in info.value.reason
    assert isinstance(info.value, libwebsock2.TLSError)


def test_wss_hostname_mismatch(wss_server, pki):
    srv = wss_server("other")
    with pytest.raises(libwebsock2.TLSHandshakeError) as info:
        libwebsock2.connect("wss://127.0.0.1:%d/" % srv.port, ssl=str(pki / "ca.pem"))
    assert "hostname mismatch" in info.value.reason or "IP address mismatch" in \
        info.value.reason


def test_wss_insecure(wss_server):
    srv = wss_server("other")
    for insecure in (False, "insecure"):
        with libwebsock2.connect("wss://127.0.0.1:%d/" % srv.port, ssl=insecure) as ws:
            ws.send("unchecked")
            assert ws.recv(timeout=5) == "unchecked"


def test_wss_missing_ca_file(wss_server, pki):
    srv = wss_server("good")
    with pytest.raises(libwebsock2.TLSError) as info:
        libwebsock2.connect("wss://127.0.0.1:%d/" % srv.port, ssl=str(pki / "missing.pem"))
    assert not isinstance(info.value, libwebsock2.ConnectError)  # refused before any dial
    assert "missing.pem" in str(info.value) or "No such file" in str(info.value)


def test_wss_aio(wss_server, pki):
    srv = wss_server("good")

    async def main():
        async with libwebsock2.aio.connect("wss://localhost:%d/" % srv.port,
                                           ssl=str(pki / "ca.pem")) as ws:
            await ws.send("tls over asyncio")
            assert await ws.recv() == "tls over asyncio"
        with pytest.raises(libwebsock2.TLSHandshakeError):
            await libwebsock2.aio.connect("wss://127.0.0.1:%d/" % srv.port)

    run(main())


# -- the hidden server at interpreter exit ------------------------------------------

def test_exit_with_connections_left_open(echo_server):
    code = textwrap.dedent('''
        import threading, libwebsock2
        url = "ws://127.0.0.1:%d/"
        a = libwebsock2.connect(url)
        b = libwebsock2.connect(url)
        a.send("x"); assert a.recv(5) == "x"
        t = threading.Thread(target=lambda: list(b), daemon=True)  # blocked in recv
        t.start()
        print("ok", flush=True)
    ''' % echo_server.port)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                       timeout=30)
    assert (p.returncode, p.stdout) == (0, "ok\n"), p.stderr
    assert "Traceback" not in p.stderr and "Fatal" not in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10


def test_extensions_say_what_was_agreed(make_server):
    """conn.extensions on both ends: the 101's Sec-WebSocket-Extensions
    value with compression on (our server compresses by default), None
    without."""
    server_side = []
    srv = make_server(host="127.0.0.1", io_threads=1, agents=1)

    @srv.on_open
    def opened(conn):
        server_side.append(conn.extensions)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    url = "ws://127.0.0.1:%d/" % srv.port
    with libwebsock2.connect(url) as ws:
        assert ws.extensions and ws.extensions.startswith("permessage-deflate")
        ws.send("x" * 200)  # compressed both ways
        assert ws.recv(timeout=5) == "x" * 200
    with libwebsock2.connect(url, compression=None) as ws:
        assert ws.extensions is None
        ws.send("y")
        assert ws.recv(timeout=5) == "y"
    assert server_side[0] and server_side[0].startswith("permessage-deflate")
    assert server_side[1] is None
