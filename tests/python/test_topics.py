"""Topics (publish/subscribe) in the Python binding: ``conn.subscribe(topic)``,
``conn.unsubscribe(topic)``, ``server.publish(topic, msg, exclude=...)`` on
the threaded Server and on ``libwebsock2.aio``, over real sockets with
Debian's ``websockets`` (10.4) and the binding's own client.

"Exactly these messages" is checked with a round trip: once the publishes
have been posted, a client sends "sync" and collects what came before the
server's "sync" answer (posted to the connection's I/O thread after every
publish, so it comes after their frames)."""
import asyncio
import threading
import time

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from conftest import run

WAIT = 10.0


def url(srv, path="/"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def topic_server(make_server, **kw):
    """A threaded server speaking a tiny protocol: ws://.../topic/NAME joins
    NAME at open; "+NAME" joins, "-NAME" leaves (each answered "ok +NAME" /
    "ok -NAME"); "NAME:text" publishes text to NAME's other members
    (answered "sent"); "sync" is answered "sync"."""
    srv = make_server(**kw)

    @srv.on_open
    def opened(conn):
        if conn.path.startswith("/topic/"):
            conn.subscribe(conn.path[len("/topic/"):])

    @srv.on_message
    def got(conn, msg):
        if not isinstance(msg, str):
            return
        if msg == "sync":
            conn.send("sync")
        elif msg[:1] in ("+", "-"):
            try:
                (conn.subscribe if msg[0] == "+" else conn.unsubscribe)(msg[1:])
            except libwebsock2.Closing:
                return  # the client's close came in meanwhile (the churn test)
            conn.send("ok " + msg)
        elif ":" in msg:
            name, _, text = msg.partition(":")
            srv.publish(name, text, exclude=conn)
            conn.send("sent")

    return srv.start()


async def until_sync(ws, timeout=WAIT):
    """The messages before the answer to a "sync" sent now."""
    await ws.send("sync")
    got = []
    while True:
        msg = await asyncio.wait_for(ws.recv(), timeout)
        if msg == "sync":
            return got
        got.append(msg)


async def join(ws, name):
    await ws.send("+" + name)
    assert await asyncio.wait_for(ws.recv(), WAIT) == "ok +" + name


async def leave(ws, name):
    await ws.send("-" + name)
    assert await asyncio.wait_for(ws.recv(), WAIT) == "ok -" + name


def wait_for(pred, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def memberships(srv):
    st = srv.stats()
    return sum(st["loop_subscriptions"]), sum(st["loop_topics"])


# -- from handlers -----------------------------------------------------------------

@pytest.mark.parametrize("io_threads,agents", [(1, 0), (1, 1), (2, 2)])
def test_subscribe_unsubscribe_publish_from_handlers(make_server, io_threads, agents):
    srv = topic_server(make_server, io_threads=io_threads, agents=agents)

    async def client():
        async with websockets.connect(url(srv)) as a, websockets.connect(url(srv)) as b, \
                websockets.connect(url(srv)) as c:
            await join(a, "news")
            await join(b, "news")
            await join(b, "news")  # twice: still one membership
            await join(c, "sport")
            await a.send("news:hello")  # exclude=conn: not back to the sender
            assert await asyncio.wait_for(a.recv(), WAIT) == "sent"
            assert await until_sync(a) == []
            assert await until_sync(b) == ["hello"]
            assert await until_sync(c) == []
            await c.send("sport:goal")  # c is the only member: reaches nobody
            assert await asyncio.wait_for(c.recv(), WAIT) == "sent"
            await c.send("nobody:here")  # a topic without members is no error
            assert await asyncio.wait_for(c.recv(), WAIT) == "sent"
            assert (await until_sync(a), await until_sync(b), await until_sync(c)) == \
                ([], [], [])
            await leave(b, "news")
            await leave(b, "never-joined")  # a no-op
            await c.send("news:again")
            assert await asyncio.wait_for(c.recv(), WAIT) == "sent"
            assert (await until_sync(a), await until_sync(b)) == (["again"], [])
            # from this (the test's) thread, binary, excluding nobody
            srv.publish("news", b"\x00bin")
            srv.publish("sport", "\u00e9t\u00e9")
            assert await until_sync(a) == [b"\x00bin"]
            assert await until_sync(c) == ["\u00e9t\u00e9"]
            assert await until_sync(b) == []
            assert memberships(srv)[0] == 2  # a in news, c in sport

    run(client())
    assert wait_for(lambda: memberships(srv) == (0, 0))


def test_subscribe_in_on_open_and_publish_from_another_thread(make_server):
    srv = topic_server(make_server, io_threads=2, agents=2)

    async def client():
        clients = [await websockets.connect(url(srv, "/topic/clock")) for _ in range(6)]
        others = [await websockets.connect(url(srv, "/topic/other")) for _ in range(2)]
        try:
            for ws in clients + others:  # their OPEN handlers have returned
                assert await until_sync(ws) == []

            def publisher():
                for i in range(50):
                    srv.publish("clock", "tick %d" % i)

            t = threading.Thread(target=publisher)
            t.start()
            await asyncio.get_running_loop().run_in_executor(None, t.join)
            for ws in clients:
                assert await until_sync(ws) == ["tick %d" % i for i in range(50)]
            for ws in others:
                assert await until_sync(ws) == []
        finally:
            for ws in clients + others:
                await ws.close()

    run(client())


def test_subscribe_then_publish_from_one_other_thread_in_order(make_server):
    """A subscribe and a later publish of the same thread are applied in that
    order: the publish reaches the new member. Also by id on the server."""
    srv = topic_server(make_server, io_threads=2, agents=2)

    async def client():
        socks = [await websockets.connect(url(srv)) for _ in range(8)]
        try:
            for ws in socks:
                assert await until_sync(ws) == []
            conns = sorted(srv.connections.values(), key=lambda c: c.id)
            assert len(conns) == 8
            errors = []

            def worker():
                try:
                    for i, conn in enumerate(conns):
                        if i % 2:
                            conn.subscribe("t")
                        else:
                            srv.subscribe(conn.id, b"t")  # by id, bytes: the same topic
                    srv.publish("t", "first")
                    conns[0].unsubscribe("t")
                    srv.unsubscribe(conns[1], "t")  # by Connection
                    srv.publish("t", "second", exclude=conns[2].id)
                except Exception as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            t = threading.Thread(target=worker)
            t.start()
            await asyncio.get_running_loop().run_in_executor(None, t.join)
            assert errors == []
            got = {}
            # which socket is which connection: match by the local port
            by_port = {ws.local_address[1]: ws for ws in socks}
            for conn in conns:
                got[conn.id] = await until_sync(by_port[conn.remote_address[1]])
            ids = [c.id for c in conns]
            assert got[ids[0]] == ["first"]
            assert got[ids[1]] == ["first"]
            assert got[ids[2]] == ["first"]
            for i in ids[3:]:
                assert got[i] == ["first", "second"]
        finally:
            for ws in socks:
                await ws.close()

    run(client())


def test_concurrent_publishers_keep_each_threads_order(make_server):
    srv = topic_server(make_server, io_threads=2, agents=2)
    threads, per_thread = 4, 100

    async def client():
        socks = [await websockets.connect(url(srv, "/topic/feed"), max_queue=None)
                 for _ in range(5)]
        try:
            for ws in socks:
                assert await until_sync(ws) == []

            def publisher(k):
                for i in range(per_thread):
                    srv.publish("feed", "%d:%d" % (k, i))

            ts = [threading.Thread(target=publisher, args=(k,)) for k in range(threads)]
            for t in ts:
                t.start()
            loop = asyncio.get_running_loop()
            for t in ts:
                await loop.run_in_executor(None, t.join)
            for ws in socks:
                got = await until_sync(ws)
                assert len(got) == threads * per_thread
                for k in range(threads):
                    mine = [m for m in got if m.startswith("%d:" % k)]
                    assert mine == ["%d:%d" % (k, i) for i in range(per_thread)]
        finally:
            for ws in socks:
                await ws.close()

    run(client())


def test_churn_of_subscribes_publishes_and_disconnects(make_server):
    """Threads subscribe, unsubscribe and publish while clients come and go:
    calls on a connection that ended raise ConnectionClosed (NoSuchClient)
    or Closing, nothing else, and no membership is left behind."""
    srv = topic_server(make_server, io_threads=2, agents=2)
    stop = threading.Event()
    unexpected = []

    def churn(k):
        n = 0
        while not stop.is_set():
            for conn in list(srv.connections.values()):
                try:
                    (conn.subscribe if n % 3 else conn.unsubscribe)("room%d" % (n % 5))
                    srv.publish("room%d" % (n % 5), "x" * (n % 50), exclude=conn)
                except libwebsock2.Closing:
                    pass  # NoSuchClient (a ConnectionClosed) or Closing: it is leaving
                except Exception as exc:  # pragma: no cover - reported below
                    unexpected.append(exc)
                n += 1
            time.sleep(0.001)

    ts = [threading.Thread(target=churn, args=(k,)) for k in range(3)]
    for t in ts:
        t.start()

    async def clients():
        async def one(i):
            # max_queue=None: a full queue would keep websockets from reading
            # our close frame behind the publishes (then it waits 10 s)
            async with websockets.connect(url(srv, "/topic/room%d" % (i % 5)),
                                          max_queue=None) as ws:
                await ws.send("+room%d" % ((i + 1) % 5))
                try:
                    await asyncio.wait_for(ws.recv(), 0.05)
                except asyncio.TimeoutError:
                    pass
        for _ in range(10):
            await asyncio.gather(*(one(i) for i in range(20)))

    try:
        run(clients(), timeout=60)
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert unexpected == []
    assert wait_for(lambda: not srv.connections and memberships(srv) == (0, 0))


# -- a connection's topics end with it ---------------------------------------------

def test_topics_are_dropped_when_the_connection_closes(make_server):
    closed = threading.Event()
    conns = []
    srv = topic_server(make_server, io_threads=2, agents=2)

    @srv.on_open
    def opened(conn):
        conns.append(conn)
        for name in ("a", "b", b"\x00c"):
            conn.subscribe(name)

    @srv.on_close
    def gone(conn, code, reason):
        closed.set()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            assert await until_sync(ws) == []
            assert memberships(srv) == (3, 3)
            await ws.close(1000, "bye")

    run(client())
    assert closed.wait(WAIT)
    assert wait_for(lambda: memberships(srv) == (0, 0))
    conn = conns[0]
    for call in (lambda: conn.subscribe("a"), lambda: conn.unsubscribe("a")):
        with pytest.raises(libwebsock2.NoSuchClient) as ei:
            call()
        assert isinstance(ei.value, libwebsock2.ConnectionClosed)
        assert (ei.value.code, ei.value.reason) == (1000, "bye")
        assert str(ei.value) == "connection closed: 1000 (OK) bye"
    with pytest.raises(libwebsock2.NoSuchClient):
        srv.subscribe(conn.id, "a")
    srv.publish("a", "to nobody")  # no member left: no error

    # a new connection with the old topics starts with none of them
    async def again():
        async with websockets.connect(url(srv, "/plain")) as ws:
            assert await until_sync(ws) == []
            assert memberships(srv) == (3, 3)  # on_open subscribed it again
            await leave(ws, "a")
            await leave(ws, "b")
            srv.publish(b"\x00c", "still here")
            assert await until_sync(ws) == ["still here"]
            srv.publish("a", "gone")
            assert await until_sync(ws) == []

    run(again())


# -- names --------------------------------------------------------------------------

def test_binary_and_unicode_topic_names(make_server):
    srv = make_server(io_threads=1, agents=1)
    ready = threading.Event()

    @srv.on_open
    def opened(conn):
        conn.subscribe(b"\x00\xff\x00")      # NUL bytes, not UTF-8
        conn.subscribe("caf\u00e9")           # str: its UTF-8 bytes
        conn.subscribe(bytearray(b"ba"))
        conn.subscribe(memoryview(b"xmvx")[1:3])  # "mv"
        conn.subscribe("x" * 255)            # the longest name
        conn.subscribe("\u00e9" * 127)       # 254 bytes of UTF-8
        ready.set()

    @srv.on_message
    def sync(conn, msg):
        conn.send(msg)

    srv.start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            assert await until_sync(ws) == []
            srv.publish(b"\x00\xff\x00", "nul")
            srv.publish(b"\x00\xff", "prefix only")      # another topic
            srv.publish(b"\x00\xff\x00\x00", "longer")   # another topic
            srv.publish("caf\u00e9".encode("utf-8"), "bytes of the str")
            srv.publish("CAF\u00c9", "no case folding")
            srv.publish("cafe\u0301", "no normalisation")  # e + combining accent
            srv.publish("ba", "str of the bytearray")
            srv.publish(memoryview(b"mv"), b"mv")
            srv.publish("x" * 255, "255")
            srv.publish("\u00e9" * 127, "254")
            assert await until_sync(ws) == ["nul", "bytes of the str", "str of the bytearray",
                                            b"mv", "255", "254"]
            assert memberships(srv) == (6, 6)

    run(client())


def test_bad_names_and_arguments_raise(make_server):
    srv = make_server(io_threads=1, agents=1)
    conns = []

    @srv.on_open
    def opened(conn):
        conns.append(conn)

    @srv.on_message
    def sync(conn, msg):
        conn.send(msg)

    with pytest.raises(libwebsock2.StateError) as ei:
        srv.publish("t", "before start")
    assert str(ei.value) == "publish: the server is not running"
    srv.start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            assert await until_sync(ws) == []
            conn = conns[0]
            for bad, size in (("", 0), (b"", 0), ("x" * 256, 256), ("\u00e9" * 128, 256),
                              (bytearray(300), 300)):
                for call in (lambda: conn.subscribe(bad), lambda: conn.unsubscribe(bad),
                             lambda: srv.subscribe(conn.id, bad),
                             lambda: srv.publish(bad, "x")):
                    with pytest.raises(libwebsock2.InvalidArgument) as ei:
                        call()
                    assert isinstance(ei.value, ValueError)
                    assert str(ei.value).startswith(
                        "topic must be 1..255 bytes (str as UTF-8, or bytes), not %d bytes: "
                        % size)
            for bad in (None, 5, ["t"], object()):
                with pytest.raises(TypeError, match="topic must be str or a bytes-like"):
                    conn.subscribe(bad)
                with pytest.raises(TypeError, match="topic must be str or a bytes-like"):
                    srv.publish(bad, "x")
            with pytest.raises(TypeError, match="payload must be str or a bytes-like"):
                srv.publish("t", 5)
            for bad in ("me", 1.5, True, -1):
                with pytest.raises(TypeError, match="exclude must be a Connection"):
                    srv.publish("t", "x", exclude=bad)
            with pytest.raises(TypeError, match="conn must be a Connection"):
                srv.subscribe("me", "t")
            with pytest.raises(libwebsock2.NoSuchClient):
                srv.subscribe(987654, "t")
            with pytest.raises(libwebsock2.NoSuchClient):
                srv.unsubscribe(987654, "t")
            with pytest.raises(UnicodeEncodeError):
                srv.publish("\udc80", "a lone surrogate cannot be UTF-8")
            assert await until_sync(ws) == []  # nothing got through
            assert memberships(srv) == (0, 0)
            # broadcast takes a Connection for exclude= too
            srv.broadcast("not to you", exclude=conn)
            srv.broadcast("to you", exclude=conn.id + 1)
            with pytest.raises(TypeError, match="exclude must be a Connection"):
                srv.broadcast("x", exclude="me")
            assert await until_sync(ws) == ["to you"]

    run(client())
    srv.stop()
    with pytest.raises(libwebsock2.StateError):
        srv.publish("t", "after stop")


def test_a_refused_argument_leaves_the_others_alone(make_server):
    """A wrapper that fails on one argument releases the payload buffers of
    the others, converted or not (they start empty): before that fix,
    publish(None, ...) released a garbage Py_buffer and corrupted objects
    (here: publish's own keyword defaults)."""
    srv = make_server(io_threads=1, agents=1).start()
    data = bytearray(b"held")
    for _ in range(2000):
        with pytest.raises(TypeError):
            srv.publish(None, data)
        with pytest.raises(TypeError):
            srv.send("not an id", data)
        with pytest.raises(TypeError):
            srv.publish("t", data, exclude="nobody")
    srv.publish("t", data)  # exclude still defaults to None
    data.extend(b" and resizable")  # no buffer export left behind
    assert srv.publish.__kwdefaults__ == {"exclude": None}


# -- size ---------------------------------------------------------------------------

def test_500_subscribers_get_one_publish_each(make_server):
    srv = topic_server(make_server, io_threads=2, agents=2)
    n = 500

    async def client():
        socks = await asyncio.gather(*(websockets.connect(url(srv, "/topic/big"))
                                       for _ in range(n)))
        try:
            outside = await websockets.connect(url(srv, "/topic/small"))
            socks_all = list(socks) + [outside]
            await asyncio.gather(*(until_sync(ws) for ws in socks_all))
            subs, topics = memberships(srv)
            assert subs == n + 1
            # each I/O thread counts the topics of its own connections: "big"
            # on both, "small" on one
            assert topics == 3
            srv.publish("big", "one for all")
            srv.publish("big", b"\x01" * 1000)
            got = await asyncio.gather(*(until_sync(ws) for ws in socks))
            assert all(g == ["one for all", b"\x01" * 1000] for g in got)
            assert await until_sync(outside) == []
            await outside.close()
        finally:
            await asyncio.gather(*(ws.close() for ws in socks))

    run(client(), timeout=60)
    assert wait_for(lambda: memberships(srv) == (0, 0))


def test_a_connection_in_200_topics(make_server):
    srv = topic_server(make_server, io_threads=2, agents=2)
    names = ["topic-%03d" % i for i in range(200)]

    async def client():
        async with websockets.connect(url(srv), max_queue=None) as ws, \
                websockets.connect(url(srv)) as other:
            for name in names:
                await ws.send("+" + name)
            for name in names:
                assert await asyncio.wait_for(ws.recv(), WAIT) == "ok +" + name
            await join(other, names[7])
            subs, topics = memberships(srv)
            assert subs == 201 and topics in (200, 201)  # per I/O thread
            for name in names:
                srv.publish(name, "to " + name)
            assert await until_sync(ws) == ["to " + name for name in names]
            assert await until_sync(other) == ["to " + names[7]]
            for name in names[::2]:
                await leave(ws, name)
            assert memberships(srv)[0] == 101
            for name in names:
                srv.publish(name, name)
            assert await until_sync(ws) == names[1::2]
            assert await until_sync(other) == [names[7]]
            await ws.close()
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_for, lambda: memberships(srv) == (1, 1))

    run(client(), timeout=60)


# -- compression ---------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["deflate", libwebsock2.Deflate(mode="dedicated")],
                         ids=["shared", "dedicated"])
def test_publish_with_deflate(make_server, compression):
    """Members with and without permessage-deflate on two I/O threads get
    the same messages; with the shared compressor one compression per
    I/O thread serves them all."""
    srv = topic_server(make_server, io_threads=2, agents=2, compression=compression)
    text = "the same words again and again " * 400   # 12 KB, compresses well
    blob = bytes(range(256)) * 64                     # 16 KB binary

    async def client():
        zipped = [await websockets.connect(url(srv, "/topic/z"), compression="deflate")
                  for _ in range(4)]
        plain = [await websockets.connect(url(srv, "/topic/z"), compression=None)
                 for _ in range(2)]
        try:
            for ws in zipped:
                assert ws.response_headers["Sec-WebSocket-Extensions"].startswith(
                    "permessage-deflate")
            for ws in plain:
                assert "Sec-WebSocket-Extensions" not in ws.response_headers
            for ws in zipped + plain:
                assert await until_sync(ws) == []
            before = srv.stats()["bytes_out"]
            for i in range(5):
                srv.publish("z", text + str(i))
            srv.publish("z", blob)
            srv.publish("z", "tiny")  # under the threshold: sent as it is
            for ws in zipped + plain:
                assert await until_sync(ws) == [text + str(i) for i in range(5)] + \
                    [blob, "tiny"]
            sent = srv.stats()["bytes_out"] - before
            # the compressed copies are far smaller than the 6 x 5 x 12 KB of text
            assert sent < 3 * (5 * len(text) + len(blob))
        finally:
            for ws in zipped + plain:
                await ws.close()

    run(client())


# -- outgoing connections -------------------------------------------------------------

def test_server_connect_outgoing_connections_take_part(make_server):
    """A Server's own outgoing connections (Server.connect) subscribe and
    get its publishes like accepted ones; an echo server on the other end
    sends each back to our handler."""
    echo = make_server(io_threads=1, agents=1)

    @echo.on_message
    def back(conn, msg):
        conn.send(msg)

    echo.start()
    got = []
    srv = make_server(io_threads=2, agents=2,
                      on_message=lambda conn, msg: got.append((conn.id, msg)))
    srv.start()
    conns = [srv.connect("ws://127.0.0.1:%d/" % echo.port).result(timeout=WAIT)
             for _ in range(3)]
    conns[0].subscribe("up")
    conns[1].subscribe("up")
    srv.publish("up", "relayed", exclude=conns[1])
    srv.broadcast("broadcasts skip outgoing connections")
    assert wait_for(lambda: len(got) >= 1)
    time.sleep(0.2)
    assert got == [(conns[0].id, "relayed")]
    conns[0].close(1000, "done")
    assert wait_for(lambda: memberships(srv) == (1, 1))


def test_connect_connections_refuse_topics(make_server):
    echo = make_server(io_threads=1, agents=1)
    echo.start()
    with libwebsock2.connect(url(echo)) as ws:
        for call in (ws.subscribe, ws.unsubscribe):
            with pytest.raises(TypeError, match="Server.connect"):
                call("t")

    async def main():
        async with libwebsock2.aio.connect(url(echo)) as ws:
            for call in (ws.subscribe, ws.unsubscribe):
                with pytest.raises(TypeError, match="Server.connect"):
                    call("t")

    run(main())


# -- asyncio --------------------------------------------------------------------------

def test_aio_handler_style_topics():
    async def handler(conn):
        assert conn.subscribe("lobby") is None  # plain methods: nothing to await
        async for msg in conn:
            if msg == "sync":
                await conn.send("sync")
            elif msg.startswith("+"):
                conn.subscribe(msg[1:])
                await conn.send("ok " + msg)
            elif msg.startswith("-"):
                conn.unsubscribe(msg[1:])
                await conn.send("ok " + msg)
            else:
                name, _, text = msg.partition(":")
                conn.server.publish(name, text, exclude=conn)
                await conn.send("sent")

    async def main():
        async with libwebsock2.aio.serve(handler, "127.0.0.1", 0, io_threads=2) as srv:
            async with websockets.connect(url(srv)) as a, websockets.connect(url(srv)) as b:
                assert (await until_sync(a), await until_sync(b)) == ([], [])
                await a.send("lobby:hi")
                assert await a.recv() == "sent"
                assert (await until_sync(a), await until_sync(b)) == ([], ["hi"])
                await join(a, "\u00ff")
                await leave(b, "lobby")
                srv.publish("lobby", "from the loop")
                srv.publish("\u00ff", b"bin")
                assert (await until_sync(a), await until_sync(b)) == (
                    ["from the loop", b"bin"], [])
                # from another thread while the loop runs
                t = threading.Thread(target=lambda: [srv.publish("lobby", str(i))
                                                     for i in range(20)])
                t.start()
                await asyncio.get_running_loop().run_in_executor(None, t.join)
                assert await until_sync(a) == [str(i) for i in range(20)]
                assert sum(srv.stats()["loop_subscriptions"]) == 2

    run(main())


def test_aio_decorators_errors_and_end():
    async def main():
        srv = libwebsock2.aio.Server(port=0)
        conns = []
        ended = asyncio.Event()

        @srv.on_open
        async def opened(conn):
            conns.append(conn)
            conn.subscribe("news")
            conn.subscribe(b"\x00raw")

        @srv.on_message
        async def got(conn, msg):
            await conn.send(msg)

        @srv.on_close
        async def closed(conn, code, reason):
            ended.set()

        with pytest.raises(libwebsock2.StateError):
            srv.publish("news", "not started")
        async with srv:
            async with websockets.connect(url(srv)) as ws:
                assert await until_sync(ws) == []
                conn = conns[0]
                with pytest.raises(libwebsock2.InvalidArgument, match="not 0 bytes"):
                    conn.subscribe("")
                srv.publish("news", "n")
                srv.publish(b"\x00raw", b"r")
                assert await until_sync(ws) == ["n", b"r"]
                await ws.close(4000, "later")
            await asyncio.wait_for(ended.wait(), WAIT)
            for call in (lambda: conn.subscribe("news"), lambda: conn.unsubscribe("news")):
                with pytest.raises(libwebsock2.ConnectionClosedError) as ei:
                    call()
                assert (ei.value.code, ei.value.reason) == (4000, "later")
            deadline = time.monotonic() + WAIT
            while sum(srv.stats()["loop_subscriptions"]) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert sum(srv.stats()["loop_subscriptions"]) == 0
            srv.publish("news", "to nobody")

    run(main())


def test_aio_500_subscribers_and_deflate():
    async def handler(conn):
        conn.subscribe("all")
        async for msg in conn:
            await conn.send(msg)  # "sync"

    async def main():
        async with libwebsock2.aio.serve(handler, "127.0.0.1", 0, io_threads=2) as srv:
            socks = await asyncio.gather(*(websockets.connect(
                url(srv), compression="deflate" if i % 2 else None) for i in range(500)))
            try:
                await asyncio.gather(*(until_sync(ws) for ws in socks))
                assert sum(srv.stats()["loop_subscriptions"]) == 500
                big = "compress me " * 1000
                srv.publish("all", big)
                srv.publish("all", "small")
                got = await asyncio.gather(*(until_sync(ws) for ws in socks))
                assert all(g == [big, "small"] for g in got)
            finally:
                await asyncio.gather(*(ws.close() for ws in socks))

    run(main(), timeout=60)


def test_aio_server_connect_outgoing_subscribes():
    async def echo(conn):
        async for msg in conn:
            await conn.send(msg)

    async def main():
        got = asyncio.Queue()

        async def on_message(conn, msg):
            await got.put(msg)

        async with libwebsock2.aio.serve(echo, "127.0.0.1", 0) as far, \
                libwebsock2.aio.Server(port=0, on_message=on_message) as srv:
            conn = await srv.connect(url(far))
            conn.subscribe("up")
            srv.publish("up", "via the topic")
            assert await asyncio.wait_for(got.get(), WAIT) == "via the topic"
            conn.unsubscribe("up")
            srv.publish("up", "not any more")
            await conn.send("direct")
            assert await asyncio.wait_for(got.get(), WAIT) == "direct"

    run(main())
