"""The handshake keywords of websockets (``origins``, ``subprotocols``,
``select_subprotocol``, ``process_request``, ``extra_headers``) on the
threaded Server and on libwebsock2.aio, over real sockets: a token checked
by process_request (401 with a body and WWW-Authenticate), a foreign
Origin (403), our subprotocol preference, a redirect and a health check,
an exception (500), the request on every connection, and a slow
process_request that holds up no other connection.

Clients: Debian's ``websockets`` 10.x and raw sockets (to read a refusal's
headers and body). For the asyncio server the raw client runs in the
loop's executor: the loop must stay free to answer. Waits have generous
bounds; the only timed parts are the 300 ms process_request scenarios,
with margins of several times the work measured."""
import asyncio
import contextlib
import logging
import socket
import threading
import time

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run

WAIT = 15.0  # a bound for a hang, never a timing
FRONTS = ["threads", "asyncio"]


# -- servers of both front ends, one echo each ------------------------------

def echo_reply(conn, msg):
    return "%s|%s" % (conn.subprotocol, msg)


@contextlib.asynccontextmanager
async def serving(front, **kw):
    """A server of ``front`` answering each message with
    ``"<subprotocol>|<msg>"``; yields it started."""
    if front == "threads":
        kw.setdefault("agents", 2)
        srv = libwebsock2.Server(port=0, **kw)

        @srv.on_message
        def echo(conn, msg):
            conn.send(echo_reply(conn, msg))

        srv.start()
        try:
            yield srv
        finally:
            await asyncio.get_running_loop().run_in_executor(None, srv.stop)
    else:
        async def echo(conn):
            async for msg in conn:
                await conn.send(echo_reply(conn, msg))

        async with libwebsock2.aio.serve(echo, "127.0.0.1", 0, **kw) as srv:
            yield srv


def url(srv, path="/"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


async def echo_once(srv, path="/", msg="hi", **kw):
    async with websockets.connect(url(srv, path), open_timeout=WAIT, **kw) as ws:
        await ws.send(msg)
        return await asyncio.wait_for(ws.recv(), WAIT), ws.subprotocol


async def refused_status(srv, path="/", **kw):
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
        async with websockets.connect(url(srv, path), open_timeout=WAIT, **kw):
            pass
    return ei.value.status_code


def raw_exchange(port, path, headers=(), upgrade=True):
    """A raw client: sends a request head and returns (status, headers with
    lower-case names, body) of the answer (a 101's head only)."""
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % h for h in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, "closed before a response: %r" % data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        got = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            got.setdefault(name.strip().lower(), value.strip())
        length = int(got.get("content-length", "0"))
        while status != 101 and len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    return status, got, body


async def raw(srv, path, headers=(), upgrade=True):
    """raw_exchange off the loop (an asyncio server answers on it)."""
    return await asyncio.get_running_loop().run_in_executor(
        None, raw_exchange, srv.port, path, tuple(headers), upgrade)


# -- process_request: a token ------------------------------------------------

TOKENS = {"s3cret": "alice"}


def check_token(request):
    """process_request of the auth tests (a plain function: both fronts)."""
    token = request.headers.get("Authorization", "").partition("Bearer ")[2]
    if not token:
        for part in (request.query or "").split("&"):
            if part.startswith("token="):
                token = part[len("token="):]
    if token not in TOKENS:
        return (401, [("WWW-Authenticate", 'Bearer realm="chat"')], "login first\n")
    return None


async def check_token_async(request):
    await asyncio.sleep(0.01)  # e.g. a database
    return check_token(request)


@pytest.mark.parametrize("front,fn", [("threads", check_token), ("asyncio", check_token),
                                      ("asyncio", check_token_async)])
def test_good_token_accepted_no_token_gets_401(front, fn):
    async def scenario():
        async with serving(front, process_request=fn) as srv:
            assert await echo_once(srv, "/?token=s3cret") == ("None|hi", None)
            assert await echo_once(srv, extra_headers={"Authorization": "Bearer s3cret"}) == \
                ("None|hi", None)
            assert await refused_status(srv, "/") == 401
            assert await refused_status(srv, "/?token=wrong") == 401
            status, headers, body = await raw(srv, "/")
            assert (status, body) == (401, b"login first\n")
            assert headers["www-authenticate"] == 'Bearer realm="chat"'
            assert headers["content-type"] == "text/plain"
            assert srv.stats()["connections_total"] == 2

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_redirect_health_check_and_content_type(front):
    def pr(request):
        if request.path == "/old":
            return 302, {"Location": "/new"}, "moved\n"
        if request.path == "/health":
            assert not request.is_upgrade
            return (200, [("Content-Type", "application/json"), ("Content-Length", "999")],
                    b'{"ok": true}')
        return None

    async def scenario():
        async with serving(front, process_request=pr) as srv:
            status, headers, body = await raw(srv, "/old")
            assert (status, headers["location"], body) == (302, "/new", b"moved\n")
            status, headers, body = await raw(srv, "/health", upgrade=False)
            # Content-Length is the library's (the one given is dropped)
            assert (status, headers["content-type"], body) == (
                200, "application/json", b'{"ok": true}')
            assert headers["content-length"] == "12"
            # None for a plain request: the default answer (426)
            assert (await raw(srv, "/other", upgrade=False))[0] == 426
            assert await echo_once(srv, "/chat") == ("None|hi", None)

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_process_request_exception_gives_500_and_is_logged(front, caplog):
    def pr(request):
        if request.path == "/boom":
            raise RuntimeError("no database")
        if request.path == "/bad":
            return "yes"
        return None

    async def scenario():
        async with serving(front, process_request=pr) as srv:
            assert await refused_status(srv, "/boom") == 500
            assert await refused_status(srv, "/bad") == 500
            assert await echo_once(srv, "/fine") == ("None|hi", None)

    with caplog.at_level(logging.ERROR, logger="libwebsock2"):
        run(scenario())
    messages = [r.getMessage() for r in caplog.records if r.name == "libwebsock2"]
    assert "libwebsock2: process_request raised for GET /boom" in messages, messages
    errors = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert "no database" in errors
    assert "process_request must return None or (status, headers, body), not 'yes'" in errors


def test_threads_process_request_may_not_be_a_coroutine(caplog):
    async def scenario():
        async with serving("threads", process_request=check_token_async) as srv:
            assert await refused_status(srv, "/?token=s3cret") == 500

    with caplog.at_level(logging.ERROR, logger="libwebsock2"):
        run(scenario())
    assert any(r.exc_info and "coroutine function needs libwebsock2.aio" in str(r.exc_info[1])
               for r in caplog.records)


# -- origins -----------------------------------------------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_foreign_origin_gets_403(front):
    async def scenario():
        async with serving(front, origins=["https://app.example", None]) as srv:
            assert await echo_once(srv, origin="https://app.example") == ("None|hi", None)
            assert await echo_once(srv) == ("None|hi", None)  # None allows no Origin
            assert await refused_status(srv, origin="https://evil.example") == 403
            status, _, body = await raw(srv, "/", [("Origin", "https://evil.example")])
            assert (status, body) == (403, b"Failed to open a WebSocket connection: "
                                           b"invalid Origin header: https://evil.example.\n")
        async with serving(front, origins=["https://app.example"]) as srv:
            status, _, body = await raw(srv, "/")
            assert (status, body) == (403, b"Failed to open a WebSocket connection: "
                                           b"missing Origin header.\n")
            # process_request runs first (websockets' order): a health
            # check needs no Origin
            assert (await raw(srv, "/health", upgrade=False))[0] == 426

    run(scenario())


# -- subprotocols ------------------------------------------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_our_subprotocol_preference_wins(front):
    async def scenario():
        async with serving(front, subprotocols=["chat.v2"]) as srv:
            assert await echo_once(srv, subprotocols=["chat.v1", "chat.v2"]) == \
                ("chat.v2|hi", "chat.v2")
            assert await echo_once(srv, subprotocols=["other"]) == ("None|hi", None)
            assert await echo_once(srv) == ("None|hi", None)
        async with serving(front, subprotocols=["chat.v2", "chat.v1"]) as srv:
            assert await echo_once(srv, subprotocols=["chat.v1", "chat.v2"]) == \
                ("chat.v2|hi", "chat.v2")
            assert await echo_once(srv, subprotocols=["chat.v1"]) == ("chat.v1|hi", "chat.v1")

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_select_subprotocol_callable(front, caplog):
    seen = []

    def select(request, offered):
        seen.append((request.path, offered))
        if request.path == "/bad":
            return "not-offered"
        return offered[-1] if offered else None

    async def scenario():
        async with serving(front, subprotocols=["a"], select_subprotocol=select) as srv:
            assert await echo_once(srv, "/p", subprotocols=["a", "b"]) == ("b|hi", "b")
            assert await refused_status(srv, "/bad", subprotocols=["a"]) == 500

    with caplog.at_level(logging.ERROR, logger="libwebsock2"):
        run(scenario())
    assert seen == [("/p", ("a", "b")), ("/bad", ("a",))]
    assert any(r.exc_info and str(r.exc_info[1]) == "select_subprotocol returned "
               "'not-offered', which the client did not offer (offered: a)"
               for r in caplog.records)


# -- the request on every connection, extra_headers ---------------------------

@pytest.mark.parametrize("front", FRONTS)
def test_request_on_every_connection_and_extra_headers(front):
    seen = {}

    def pr(request):
        seen["pr"] = (request.path, request.query, request.origin, request.remote_address,
                      request.tls_peer, request.headers["x-custom"])
        return None

    async def scenario():
        async with serving(front, process_request=pr,
                           extra_headers={"Set-Cookie": "sid=1; HttpOnly"}) as srv:
            async with websockets.connect(url(srv, "/room?x=1"), origin="https://o.example",
                                          extra_headers={"X-Custom": "42"}) as ws:
                assert ws.response_headers["Set-Cookie"] == "sid=1; HttpOnly"
                await ws.send("x")
                await ws.recv()
                (conn,) = srv.connections.values()
                port = ws.local_address[1]
                assert conn.request_headers["X-CUSTOM"] == "42"
                assert conn.request_headers.get_all("x-custom") == ["42"]
                assert (conn.request.path, conn.request.query) == ("/room", "x=1")
                assert conn.request.remote_address == conn.remote_address == ("127.0.0.1", port)
                assert seen["pr"] == ("/room", "x=1", "https://o.example", ("127.0.0.1", port),
                                      None, "42")
            # no handshake keyword at all: the request is still there
        async with serving(front) as srv:
            async with websockets.connect(url(srv, "/plain"), extra_headers={"X-A": "b"}) as ws:
                await ws.send("x")
                await ws.recv()
                (conn,) = srv.connections.values()
                assert conn.request_headers["x-a"] == "b" and conn.request.path == "/plain"

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_bad_extra_header_gives_500(front, caplog):
    async def scenario():
        async with serving(front, extra_headers=lambda request: {"Upgrade": "no"}) as srv:
            assert await refused_status(srv) == 500

    with caplog.at_level(logging.ERROR, logger="libwebsock2"):
        run(scenario())
    assert any(r.exc_info and str(r.exc_info[1]).startswith(
        "response header 'Upgrade': 'no' is not allowed (the library writes") for r in
        caplog.records)


def test_bad_keywords_raise_at_once():
    for cls in (libwebsock2.Server, libwebsock2.aio.Server):
        with pytest.raises(TypeError) as ei:
            cls(port=0, origins="https://app.example")
        assert str(ei.value) == ("origins must be a list of origins (str, or None for requests "
                                 "without an Origin header), not a str")
        with pytest.raises(TypeError) as ei:
            cls(port=0, subprotocols=["a", 1])
        assert str(ei.value) == "subprotocols must hold str, not 1"
        with pytest.raises(TypeError) as ei:
            cls(port=0, process_request="no")
        assert str(ei.value) == "process_request must be callable, not 'no'"
    with pytest.raises(TypeError) as ei:
        libwebsock2.Server(port=0, handshake=lambda r: None, process_request=check_token)
    assert str(ei.value).startswith("handshake= and process_request= do not go together")


def test_origins_and_subprotocols_apply_before_the_handshake_handler(make_server):
    """The lower-level handshake= handler still works, after origins and
    subprotocols: a subprotocol chosen from the list is there to keep (or
    change), a foreign Origin never reaches it."""
    reached = []
    srv = make_server(agents=1, origins=["https://app.example"], subprotocols=["b", "a"])

    @srv.on_handshake
    def hs(req):
        reached.append((req.origin, req.subprotocol))
        req.add_response_header("X-Handled", "yes")
        return None

    @srv.on_message
    def echo(conn, msg):
        conn.send(echo_reply(conn, msg))

    srv.start()

    async def scenario():
        async with websockets.connect(url(srv), origin="https://app.example",
                                      subprotocols=["a", "b"]) as ws:
            assert ws.response_headers["X-Handled"] == "yes"
            await ws.send("x")
            assert await ws.recv() == "b|x"
        assert await refused_status(srv, origin="https://evil.example") == 403

    run(scenario())
    assert reached == [("https://app.example", "b")]


# -- a slow process_request ----------------------------------------------------

def test_threads_slow_process_request_holds_up_no_other_connection():
    """process_request sleeps 300 ms on an agent (agents=2): meanwhile an
    open connection's echoes go through the other agent, and a new
    connection's handshake waits only for its own process_request."""
    entered = threading.Event()
    left = threading.Event()

    def pr(request):
        if request.path == "/slow":
            entered.set()
            time.sleep(0.3)
            left.set()
        return None

    async def scenario():
        loop = asyncio.get_running_loop()
        async with serving("threads", agents=2, io_threads=1, process_request=pr) as srv:
            async with websockets.connect(url(srv, "/fast")) as fast:
                await fast.send("warm")
                assert await fast.recv() == "None|warm"
                t_slow = time.monotonic()
                slow = asyncio.ensure_future(echo_once(srv, "/slow", "late"))
                assert await loop.run_in_executor(None, entered.wait, WAIT)
                t0 = time.monotonic()
                for i in range(3):
                    await fast.send("m%d" % i)
                    assert await asyncio.wait_for(fast.recv(), WAIT) == "None|m%d" % i
                echoed = time.monotonic() - t0
                # the echoes did not wait for the sleeping process_request
                assert not left.is_set(), "the echoes waited for process_request"
                assert echoed < 0.25, echoed
                assert await asyncio.wait_for(slow, WAIT) == ("None|late", None)
                assert time.monotonic() - t_slow >= 0.3  # it really slept

    run(scenario())


def test_asyncio_slow_coroutine_process_request_holds_up_no_other_connection():
    """An async process_request awaits 300 ms on the loop: meanwhile the
    loop serves an open connection's echoes and other handshakes."""
    state = {"entered": None, "left": False}

    async def pr(request):
        if request.path == "/slow":
            state["entered"].set()
            await asyncio.sleep(0.3)
            state["left"] = True
        return None

    async def scenario():
        state["entered"] = asyncio.Event()
        async with serving("asyncio", process_request=pr) as srv:
            async with websockets.connect(url(srv, "/fast")) as fast:
                slow = asyncio.ensure_future(echo_once(srv, "/slow", "late"))
                await asyncio.wait_for(state["entered"].wait(), WAIT)
                t0 = time.monotonic()
                for i in range(3):
                    await fast.send("m%d" % i)
                    assert await asyncio.wait_for(fast.recv(), WAIT) == "None|m%d" % i
                assert await echo_once(srv, "/other") == ("None|hi", None)
                echoed = time.monotonic() - t0
                assert not state["left"], "the loop waited for process_request"
                assert echoed < 0.25, echoed
                assert await asyncio.wait_for(slow, WAIT) == ("None|late", None)

    run(scenario())


def test_asyncio_handshake_timeout_refuses_a_process_request_that_never_answers():
    async def pr(request):
        await asyncio.sleep(30)

    async def scenario():
        async with serving("asyncio", process_request=pr, handshake_timeout=0.3,
                           close_timeout=0.5) as srv:
            status, _, _ = await raw(srv, "/")
            assert status == 503

    run(scenario())


# -- empty bodies: sent empty, not the status's text --------------------------

def exchange_to_the_end(port, path, upgrade=True):
    """(status, headers with lower-case names, everything after the head)
    of a refusal or plain answer, read until the server closes."""
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        got.setdefault(name.strip().lower(), value.strip())
    return int(lines[0].split()[1]), got, rest


@pytest.mark.parametrize("front", FRONTS)
def test_empty_bodies_are_sent_empty(front):
    """(302, headers, b""), (204, [], b"") and a None body answer with no
    body at all, for an upgrade (answered in the hook by the threaded
    server, through the deferred handle on the loop by asyncio) and for a
    plain request."""
    def pr(request):
        if request.path == "/moved":
            return 302, {"Location": "/new"}, b""
        if request.path == "/nothing":
            return 204, [], b""
        if request.path == "/none":
            return 401, [("WWW-Authenticate", "Bearer")], None
        if request.path == "/str":
            return 403, [], ""
        return None

    async def scenario():
        async with serving(front, process_request=pr) as srv:
            loop = asyncio.get_running_loop()
            for upgrade in (True, False):
                def get(path):
                    return loop.run_in_executor(None, exchange_to_the_end, srv.port, path,
                                                upgrade)

                status, headers, body = await get("/moved")
                assert (status, headers["location"], body) == (302, "/new", b"")
                assert headers.get("content-length", "0") == "0"
                status, headers, body = await get("/nothing")
                assert (status, body) == (204, b"")
                assert headers.get("content-length", "0") == "0"
                status, headers, body = await get("/none")
                assert (status, headers["www-authenticate"], body) == (401, "Bearer", b"")
                status, headers, body = await get("/str")
                assert (status, headers["content-length"], body) == (403, "0", b"")
            assert await echo_once(srv, "/chat") == ("None|hi", None)

    run(scenario())


# -- each connection's request, by the connection's id -------------------------

@pytest.mark.parametrize("keyword", [False, True], ids=["no keyword", "process_request"])
@pytest.mark.parametrize("front", FRONTS)
def test_each_connection_gets_its_own_request_by_id(front, keyword):
    """request.id is the id the connection will have (websock_request_id):
    conn.request is the very Request that process_request saw, for many
    clients at once on the same path and query, and nothing is left in
    the table once they are open."""
    seen = {}

    def pr(request):
        assert request.id > 0
        seen[request.id] = request
        return None

    def reply(conn, msg):
        req = conn.request
        return "%d %d %s %s" % (conn.id, req.id, req.headers["x-n"], msg)

    async def scenario():
        kw = {"process_request": pr} if keyword else {}
        if front == "threads":
            srv = libwebsock2.Server(port=0, agents=2, **kw)
            srv.on_message(lambda conn, msg: conn.send(reply(conn, msg)))
            srv.start()
        else:
            async def handler(conn):
                async for msg in conn:
                    await conn.send(reply(conn, msg))

            srv = await libwebsock2.aio.serve(handler, "127.0.0.1", 0, **kw)
        try:
            clients = await asyncio.gather(*[
                websockets.connect(url(srv, "/room?x=1"), open_timeout=WAIT,
                                   extra_headers={"X-N": str(n)}) for n in range(20)])
            ids = set()
            for n, ws in enumerate(clients):
                await ws.send("m")
                conn_id, req_id, got_n, msg = (await asyncio.wait_for(ws.recv(), WAIT)).split()
                assert (conn_id, got_n, msg) == (req_id, str(n), "m")
                ids.add(int(conn_id))
                if keyword:
                    assert srv.connection(int(conn_id)).request is seen[int(conn_id)]
            assert len(ids) == 20
            assert len(srv._opening) == 0
            for ws in clients:
                await ws.close()
        finally:
            if front == "threads":
                await asyncio.get_running_loop().run_in_executor(None, srv.stop)
            else:
                await srv.stop()

    run(scenario())


@pytest.mark.parametrize("front", FRONTS)
def test_refused_requests_leave_nothing_behind(front):
    def pr(request):
        return (401, [], "no\n") if request.path == "/no" else None

    async def scenario():
        async with serving(front, process_request=pr, origins=["https://ok.example"]) as srv:
            assert await refused_status(srv, "/no") == 401
            assert await refused_status(srv, "/", origin="https://evil.example") == 403
            assert await echo_once(srv, "/", origin="https://ok.example") == ("None|hi", None)
            assert len(srv._opening) == 0

    run(scenario())
