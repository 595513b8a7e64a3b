"""The handshake handler of the threaded Server over real sockets: accept
later from another thread, refuse with a status and a body, a client that
leaves while its upgrade waits, subprotocols, a slow handler that holds up
no I/O thread, an exception (500), plain HTTP answered by the handler, and
the handle's life (answered twice, dropped unanswered, the server's stop,
the handshake timeout).

Clients: Debian's ``websockets`` (10.x raises InvalidStatusCode with
``.status_code``; newer releases InvalidStatus with ``.response``), and a
raw socket where the test needs the response's body or a client that
leaves. Waits are Events with generous bounds; the only timed part is the
200 ms accept, which is the scenario."""
import asyncio
import gc
import logging
import socket
import threading
import time

import pytest
import websockets

import libwebsock2
from conftest import run

WAIT = 10.0  # a bound for a hang, never a timing


def url(srv, path="/"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def refused_status(exc):
    """The HTTP status of a refused websockets handshake (10.x and later)."""
    code = getattr(exc, "status_code", None)
    if code is None:
        code = exc.response.status_code
    return code


async def refused(srv, path, **kw):
    """Connects and expects the upgrade to be refused: its HTTP status."""
    with pytest.raises(websockets.exceptions.InvalidHandshake) as ei:
        async with websockets.connect(url(srv, path), open_timeout=WAIT, **kw):
            pass
    return refused_status(ei.value)


async def echo_once(srv, path="/", msg="ping", **kw):
    async with websockets.connect(url(srv, path), open_timeout=WAIT, **kw) as ws:
        await ws.send(msg)
        return await asyncio.wait_for(ws.recv(), WAIT), ws.subprotocol


def raw_request(srv, path, headers=(), upgrade=True):
    """A raw client: sends a request head; returns the open socket."""
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % srv.port]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % h for h in headers]
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def read_response(sock):
    """(status, headers dict with lower-case names, body) of the answer
    (read to its Content-Length, or to the end for a 101)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before a response: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length] if status != 101 else body


def wait_until(cond, what):
    """Polls ``cond`` (a state the core reaches on its own, e.g. a closed
    socket noticed) within the bound."""
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.005)


def no_connections(srv):
    return sum(srv.stats()["loop_connections"]) == 0


@pytest.mark.parametrize("agents", [0, 2])
def test_accepted_200ms_later_from_another_thread_then_echoes(make_server, agents):
    answered = {}
    timers = []
    srv = make_server(agents=agents)

    @srv.on_handshake
    def hs(req):
        up = req.defer()
        timer = threading.Timer(0.2, lambda: answered.setdefault("rc", up.accept()))
        timers.append(timer)
        answered["t0"] = time.monotonic()
        timer.start()
        return up

    @srv.on_message
    def echo(conn, msg):
        answered.setdefault("open_after", time.monotonic() - answered["t0"])
        conn.send(msg)

    srv.start()
    got, proto = run(echo_once(srv, "/later", "hello"))
    assert got == "hello" and proto is None
    timers[0].join(WAIT)
    assert answered["rc"] is None  # accept() returned
    assert answered["open_after"] >= 0.15  # the client really waited for it
    assert srv.stats()["connections_total"] == 1


def test_rejected_with_401_and_a_body(make_server):
    handles, threads = [], []
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        if req.path == "/now":  # refused by the return value
            return 401, b"login first\n", "text/plain"
        up = req.defer()
        handles.append(up)
        threads.append(threading.Thread(target=up.reject, args=(401, "token expired\n")))
        threads[-1].start()
        return libwebsock2.DEFER

    srv.start()
    assert run(refused(srv, "/now")) == 401
    assert run(refused(srv, "/later")) == 401
    for path, body in (("/now", b"login first\n"), ("/later", b"token expired\n")):
        with raw_request(srv, path) as sock:
            status, headers, got = read_response(sock)
        assert (status, got) == (401, body)
        assert headers["content-type"].startswith("text/plain")
    for t in threads:
        t.join(WAIT)
    assert len(handles) == 2 and all(up.answered for up in handles)
    with pytest.raises(libwebsock2.StateError):
        handles[0].accept()  # answered already
    assert srv.stats()["connections_total"] == 0


def test_status_alone_gives_the_default_answer(make_server):
    srv = make_server(agents=1, handshake=lambda req: 403)
    srv.start()
    with raw_request(srv, "/") as sock:
        status, _, body = read_response(sock)
    assert status == 403 and body  # the status's default text


def test_client_leaving_while_pending_makes_the_handle_stale(make_server):
    pending = []
    deferred = threading.Event()
    srv = make_server(agents=2)

    @srv.on_handshake
    def hs(req):
        pending.append(req.defer())
        deferred.set()
        return pending[-1]

    srv.start()
    sock = raw_request(srv, "/wait")
    assert deferred.wait(WAIT)
    sock.close()
    wait_until(lambda: no_connections(srv), "the server to drop the client")
    up = pending[0]
    with pytest.raises(libwebsock2.NoSuchClient) as ei:
        up.accept()
    assert "client left" in str(ei.value)
    assert up.answered
    with pytest.raises(libwebsock2.NoSuchClient):
        up.reject(403)  # still stale, never a crash


def test_handshake_timeout_answers_503_and_the_handle_goes_stale(make_server):
    pending = []
    srv = make_server(agents=1, handshake_timeout=0.3)

    @srv.on_handshake
    def hs(req):
        pending.append(req.defer())
        return pending[-1]

    srv.start()
    with raw_request(srv, "/slowpoke") as sock:
        status, _, _ = read_response(sock)
    assert status == 503
    with pytest.raises(libwebsock2.NoSuchClient):
        pending[0].accept()


@pytest.mark.parametrize("deferred", [False, True])
def test_subprotocol_selected(make_server, deferred):
    opened = []
    srv = make_server(agents=2)

    @srv.on_handshake
    def hs(req):
        assert req.subprotocols == ("chat.v1", "chat.v2")
        if deferred:
            up = req.defer()
            with pytest.raises(libwebsock2.InvalidArgument):
                up.accept("chat.v3")  # not offered: the handle stays unanswered
            assert not up.answered
            threading.Thread(target=up.accept, args=("chat.v2",)).start()
            return up
        with pytest.raises(libwebsock2.InvalidArgument):
            req.select_subprotocol("chat.v3")
        req.select_subprotocol("chat.v2")
        assert req.subprotocol == "chat.v2"
        return None

    @srv.on_open
    def on_open(conn):
        opened.append(conn.subprotocol)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    got, proto = run(echo_once(srv, "/chat", subprotocols=["chat.v1", "chat.v2"]))
    assert (got, proto) == ("ping", "chat.v2")
    assert opened == ["chat.v2"]


def test_deferred_accept_keeps_the_subprotocol_selected_in_the_handler(make_server):
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        req.select_subprotocol("b")
        up = req.defer()
        threading.Thread(target=up.accept).start()  # subprotocol=None: "b"
        return up

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    assert run(echo_once(srv, subprotocols=["a", "b"])) == ("ping", "b")


def test_slow_handler_holds_up_no_io_thread(make_server):
    """One I/O thread, two agents: the handler of /slow blocks on an Event
    while other clients connect and echo; then it is released and accepts."""
    release = threading.Event()
    blocked = threading.Event()
    hook_threads = {}  # upgrade or plain -> thread idents that ran the handler
    srv = make_server(io_threads=1, agents=2)

    @srv.on_handshake
    def hs(req):
        hook_threads.setdefault(req.is_upgrade, set()).add(threading.get_ident())
        if req.path == "/slow":
            blocked.set()
            if not release.wait(60):  # bounded: a broken core cannot hang the suite
                return 504
        return None

    @srv.on_message
    def echo(conn, msg):
        conn.send("%s:%s" % (conn.path, msg))

    srv.start()

    async def scenario():
        loop = asyncio.get_running_loop()
        slow = asyncio.ensure_future(echo_once(srv, "/slow", "late"))
        assert await loop.run_in_executor(None, blocked.wait, WAIT)
        try:
            for i in range(4):
                got, _ = await echo_once(srv, "/fast%d" % i, "m%d" % i)
                assert got == "/fast%d:m%d" % (i, i)
            assert not slow.done() and not release.is_set()
        finally:
            release.set()
        return await asyncio.wait_for(slow, WAIT)

    assert run(scenario()) == ("/slow:late", None)
    assert srv.stats()["connections_total"] == 5
    # plain HTTP runs the handler on the (one) I/O thread; upgrades never did
    with raw_request(srv, "/plain", upgrade=False) as sock:
        assert read_response(sock)[0] == 426
    (io_thread,) = hook_threads[False]
    assert io_thread not in hook_threads[True] and len(hook_threads[True]) >= 1


def test_handler_exception_gives_500_and_is_logged(make_server, caplog):
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        if req.path == "/boom":
            raise RuntimeError("no database")
        if req.path == "/boom-deferred":
            req.defer()
            raise RuntimeError("no database either")
        if req.path == "/bad-return":
            return "yes"
        if req.path == "/defer-without-handle":
            return libwebsock2.DEFER
        return None

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    with caplog.at_level(logging.ERROR, logger="libwebsock2"):
        for path in ("/boom", "/boom-deferred", "/bad-return", "/defer-without-handle"):
            assert run(refused(srv, path)) == 500, path
    messages = [r.getMessage() for r in caplog.records if r.name == "libwebsock2"]
    assert any("handshake handler raised for GET /boom" in m for m in messages), messages
    assert any(r.exc_info and "no database" in str(r.exc_info[1]) for r in caplog.records)
    assert any(r.exc_info and "must return" in str(r.exc_info[1]) for r in caplog.records)
    assert any(r.exc_info and "without calling req.defer" in str(r.exc_info[1])
               for r in caplog.records)
    assert run(echo_once(srv, "/fine")) == ("ping", None)  # the server keeps serving


@pytest.mark.parametrize("agents", [0, 2])
def test_plain_http_answered_by_the_handler(make_server, agents):
    srv = make_server(agents=agents, http_routes={"/static": ("text/html", b"<p>static</p>")})

    @srv.on_handshake
    def hs(req):
        if req.is_upgrade:
            return None
        if req.path == "/health":
            assert req.method == "GET" and req.query == "full=1"
            return 200, '{"ok": true}', "application/json"
        if req.path == "/teapot":
            return 418, b"short and stout"
        if req.path == "/gone":
            return 410
        with pytest.raises(libwebsock2.StateError):
            req.defer()  # plain HTTP cannot be deferred
        return None  # the default: the static routes, else 426

    srv.start()
    answers = {}
    for path in ("/health?full=1", "/teapot", "/gone", "/static", "/nothing"):
        with raw_request(srv, path, upgrade=False) as sock:
            answers[path] = read_response(sock)
    status, headers, body = answers["/health?full=1"]
    assert (status, body) == (200, b'{"ok": true}')
    assert headers["content-type"] == "application/json"
    assert answers["/teapot"][0::2] == (418, b"short and stout")
    assert answers["/gone"][0] == 410
    assert answers["/static"][0::2] == (200, b"<p>static</p>")
    assert answers["/nothing"][0] == 426


def test_request_fields(make_server):
    seen = {}
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        seen["req"] = req
        seen["path"] = req.path
        return None

    srv.start()
    sock = raw_request(srv, "/room/7?user=ann&x=1", headers=[
        ("Origin", "https://example.com"), ("X-Token", "a"), ("x-token", "b"),
        ("Sec-WebSocket-Protocol", "p1, p2")])
    with sock:
        status, headers, _ = read_response(sock)
        assert status == 101 and "sec-websocket-protocol" not in headers  # none chosen
        port = sock.getsockname()[1]
    req = seen["req"]
    assert (req.method, req.path, req.query) == ("GET", "/room/7", "user=ann&x=1")
    assert req.is_upgrade and req.origin == "https://example.com"
    assert req.remote_address == ("127.0.0.1", port)
    assert req.subprotocols == ("p1", "p2") and req.subprotocol is None and req.sni is None
    h = req.headers
    assert h["x-TOKEN"] == "a" and h.get_all("X-Token") == ["a", "b"]
    assert h.get("missing") is None and h.get_all("missing") == []
    assert "ORIGIN" in h and h["host"] == "127.0.0.1:%d" % srv.port
    assert ("X-Token", "a") in h.raw_items() and ("x-token", "b") in h.raw_items()
    assert list(h).count("X-Token") == 1 and "x-token" not in list(h)
    # after the handler returned, the request is data only
    with pytest.raises(libwebsock2.StateError):
        req.defer()
    with pytest.raises(libwebsock2.StateError):
        req.select_subprotocol("p1")


def test_dropped_handle_refuses_with_503(make_server):
    # a handshake timeout past the client's: only the dropped handle answers
    srv = make_server(agents=1, handshake_timeout=60)

    @srv.on_handshake
    def hs(req):
        req.defer()  # the handle is not kept: gone when the handler returns
        return libwebsock2.DEFER

    srv.start()
    assert run(refused(srv, "/")) == 503


def test_stop_refuses_waiting_upgrades_with_503(make_server):
    pending = []
    deferred = threading.Event()
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        pending.append(req.defer())
        deferred.set()
        return pending[-1]

    srv.start()
    sock = raw_request(srv, "/")
    with sock:
        assert deferred.wait(WAIT)
        # stop() waits for the clients to leave: this one leaves once answered
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        status, _, _ = read_response(sock)
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert status == 503
    up = pending[0]
    assert up.answered
    with pytest.raises(libwebsock2.NoSuchClient) as ei:
        up.accept()
    assert "server stopped" in str(ei.value)
    del up, pending[:]
    gc.collect()


def test_handler_set_by_keyword_or_replaced_while_running(make_server):
    srv = make_server(agents=1, handshake=lambda req: 401)
    srv.start()
    assert run(refused(srv, "/")) == 401
    srv.on_handshake(lambda req: 402)
    assert run(refused(srv, "/")) == 402
    srv.on_handshake(None)  # the core's default answer again

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    assert run(echo_once(srv)) == ("ping", None)


def test_decorator_after_start_sets_the_handler(make_server):
    """The hook is always installed (it records every upgrade's request for
    conn.request_headers), so a handler may be set after start() too."""
    srv = make_server(agents=1)
    srv.start()

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    assert run(echo_once(srv)) == ("ping", None)
    srv.on_handshake(lambda req: 403)
    assert run(refused(srv, "/")) == 403


def test_no_handler_accepts_and_keeps_the_request(make_server):
    """Without a handler every valid upgrade is accepted as before, and the
    connection still has its request and headers."""
    seen = []
    srv = make_server(agents=1)

    @srv.on_message
    def echo(conn, msg):
        seen.append((conn.request.path, conn.request_headers["x-trace"],
                     conn.request.remote_address == conn.remote_address))
        conn.send(msg)

    srv.start()
    assert run(echo_once(srv, "/p", extra_headers={"X-Trace": "t1"})) == ("ping", None)
    assert seen == [("/p", "t1", True)]
    assert len(srv._opening) == 0  # taken by its OPEN event


def test_reject_checks_its_arguments(make_server):
    pending = []
    deferred = threading.Event()
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        pending.append(req.defer())
        deferred.set()
        return pending[-1]

    srv.start()
    with raw_request(srv, "/") as sock:
        assert deferred.wait(WAIT)
        up = pending[0]
        # 200..599 but 101 since the core answers an upgrade with any final
        # status (a 302 redirect, a 200)
        for bad in (100, 101, 600, True, "401"):
            with pytest.raises(libwebsock2.InvalidArgument) as ei:
                up.reject(bad)
            assert str(ei.value) == "status must be an int in 200..599, not %r" % (bad,)
        with pytest.raises(TypeError):
            up.reject(400, body=42)
        assert not up.answered
        up.reject(429, b"slow down")
        status, _, body = read_response(sock)
    assert (status, body) == (429, b"slow down")


def test_a_kept_raw_request_pointer_is_null_after_the_hook(make_server):
    """The trampoline clears the SWIG pointer it passed when the hook
    returns: a kept one reaches the core as NULL (an error, never freed
    memory)."""
    from libwebsock2 import _websock

    kept = []
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        kept.append(req._ptr)
        assert _websock.websock_request_path(req._ptr) == "/raw"
        return None

    srv.start()
    with raw_request(srv, "/raw") as sock:
        assert read_response(sock)[0] == 101
    raw = kept[0]
    assert _websock.websock_request_path(raw) is None
    assert _websock.websock_request_defer(raw) == [_websock.ERR_INVALID, None]
    with pytest.raises(libwebsock2.InvalidArgument):
        _websock.pyws_request_read(raw)


def test_none_after_defer_leaves_the_answer_to_the_handle(make_server):
    """A forgotten ``return up`` never accepts by accident: the handle
    answers; a refusal returned after defer() refuses through it."""
    pending, errors = [], []
    deferred = threading.Event()
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        up = req.defer()
        if req.path == "/refuse":
            return 451, "not here"
        pending.append(up)
        deferred.set()
        return None

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    def answer():
        assert deferred.wait(WAIT)
        try:
            pending[0].accept()
        except Exception as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    srv.start()
    t = threading.Thread(target=answer)
    t.start()
    assert run(echo_once(srv, "/wait")) == ("ping", None)
    t.join(WAIT)
    assert errors == []
    with raw_request(srv, "/refuse") as sock:
        assert read_response(sock)[0::2] == (451, b"not here")


def read_to_the_end(sock):
    """(status, headers with lower-case names, everything after the head),
    read until the server closes."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def test_empty_bodies_are_sent_empty(make_server):
    """An empty body is sent empty (not the status's default text):
    returned by the handler, through a deferred handle, and for a plain
    request; None still gives the default text."""
    srv = make_server(agents=1)

    @srv.on_handshake
    def hs(req):
        if req.path == "/moved":
            req.add_response_header("Location", "/new")
            return 302, b""
        if req.path == "/nothing":
            return 204, ""
        if req.path == "/later":
            up = req.defer()
            threading.Thread(target=up.reject, args=(302, b""),
                             kwargs={"headers": {"Location": "/elsewhere"}}).start()
            return up
        if req.path == "/default":
            up = req.defer()
            threading.Thread(target=up.reject, args=(503,)).start()
            return up
        return None

    srv.start()
    for upgrade in (True, False):
        with raw_request(srv, "/moved", upgrade=upgrade) as sock:
            status, headers, body = read_to_the_end(sock)
        assert (status, headers["location"], body) == (302, "/new", b"")
        with raw_request(srv, "/nothing", upgrade=upgrade) as sock:
            status, headers, body = read_to_the_end(sock)
        assert (status, body) == (204, b"")
    with raw_request(srv, "/later") as sock:
        status, headers, body = read_to_the_end(sock)
    assert (status, headers["location"], headers["content-length"], body) == (
        302, "/elsewhere", "0", b"")
    with raw_request(srv, "/default") as sock:
        status, headers, body = read_to_the_end(sock)
    assert status == 503 and body  # None: the status's default text
