"""The cluster through Redis from Python: ``Server(cluster=..., node=...)``.
A redis-server of the test's own on a free loopback port, two nodes in this
process, Debian's ``websockets`` as clients: a publish on node 1 reaches a
member on node 2, a broadcast crosses too, a send by id reaches the other
node's connection, ids carry their node; with Redis gone a send to the
other node raises ClusterError; the option errors.

Tags (issue #16): set_tag's pending claim and its on_tag outcome, a tag
taken across nodes (at once, and by the TAG event), conn.tag back to the
tag of before on a refusal (None when there was none), the tag of before
still the connection's while a claim is pending (Redis held by CLIENT
PAUSE WRITE: sends to either tag reach it, the pending tag asked again is
pending too, the tag of before asked again settles back), a tag lost after
the link came back, claim_tag in libwebsock2.aio (awaited inside the
connection's own handlers), cluster_ttl; and examples/python/chat_server.py
as two nodes of one cluster (a refused /nick keeps the old nick, FROM the
old nick while a /nick is pending).

A tag held by a connection of another node that this node has not heard of
yet is made by writing it into Redis directly, as a node 3 that is alive
(its key) but never published the claim: the next claim of it on a node
is then refused by Redis, and the refusal comes by the TAG event."""
import asyncio
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import websockets

import libwebsock2
from conftest import run

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="no redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis():
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    yield proc, "redis://127.0.0.1:%d" % port
    proc.kill()
    proc.wait()


def redis_port(url):
    return int(url.rsplit(":", 1)[1])


def redis_call(url, *args):
    """One command to the test's Redis (RESP over a socket): its reply."""
    with socket.create_connection(("127.0.0.1", redis_port(url)), timeout=5) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return _reply(f)


def _reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b":"):
        return int(rest) if kind == b":" else rest.decode()
    if kind == b"-":
        raise AssertionError("redis: %s" % rest.decode())
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        return [_reply(f) for _ in range(int(rest))]
    raise AssertionError("redis: bad reply %r" % line)


PLANTED_ID = 3 << 43 | 99


def plant_tag(url, tag, prefix="pytest", *nodes):
    """``tag`` held in Redis by a connection of node 3, alive (its key) but
    silent: a node that is up already has not heard of it (a node reads
    the tags in Redis when its link comes up), so its claim is refused by
    Redis. ``nodes`` (servers): checked not to know it."""
    redis_call(url, "SET", "%s:node:3" % prefix, "planted", "PX", 60000)
    redis_call(url, "HSET", "%s:tags" % prefix, tag, "3:%d" % PLANTED_ID)
    for srv in nodes:
        assert find(srv, tag) is None, "%r knew the planted %r" % (srv, tag)


def paused(url):
    """Redis holds every write (the claim scripts, PUBLISH) until the block
    ends, while reads and CLIENT UNPAUSE go on: a claim stays pending."""
    class Paused:
        def __enter__(self):
            redis_call(url, "CLIENT", "PAUSE", "8000", "WRITE")

        def __exit__(self, *exc):
            redis_call(url, "CLIENT", "UNPAUSE")
    return Paused()


def reset_links(url):
    """Redis drops every client but this one: the nodes' links go, they
    connect again and claim their tags again."""
    redis_call(url, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    redis_call(url, "CLIENT", "KILL", "TYPE", "pubsub")


def node(make_server, url, n, **kw):
    """Commands: "id" → the connection's id; "sub T" joins T; "pub T|X"
    publishes X to T but the sender; "bc X" broadcasts; "to ID|X" sends X
    to ID, answered "sent" or the error's class name; "tag T1 [T2 ...]"
    sets the tags in turn ("-": None), answered "set R1 [R2 ...] tag=TAG"
    (set_tag's results, conn.tag after) or the error's class name and
    conn.tag; "sendtag T|X" sends X to tag T. on_tag sends "on_tag TAG
    ERROR tag=TAG" (ERROR: None or the class name, then conn.tag)."""
    srv = make_server(host="127.0.0.1", agents=2, cluster=url, node=n,
                      cluster_prefix="pytest", **kw)

    @srv.on_message
    def got(conn, msg):
        cmd, _, rest = msg.partition(" ")
        if cmd == "id":
            conn.send(str(conn.id))
        elif cmd == "sub":
            conn.subscribe(rest)
            conn.send("ok")
        elif cmd == "pub":
            topic, _, text = rest.partition("|")
            srv.publish(topic, text, exclude=conn)
            conn.send("ok")
        elif cmd == "bc":
            srv.broadcast(rest, exclude=conn)
            conn.send("ok")
        elif cmd == "to":
            to, _, text = rest.partition("|")
            try:
                srv.send(int(to), text)
                conn.send("sent")
            except libwebsock2.Error as e:
                conn.send(type(e).__name__)
        elif cmd == "tag":
            results = []
            try:
                for t in rest.split():
                    results.append(conn.set_tag(None if t == "-" else t))
            except libwebsock2.Error as e:
                conn.send("%s tag=%s" % (type(e).__name__, conn.tag))
            else:
                conn.send("set %s tag=%s" % (" ".join(map(str, results)), conn.tag))
        elif cmd == "sendtag":
            to, _, text = rest.partition("|")
            try:
                srv.send_tag(to, text)
                conn.send("sent")
            except libwebsock2.Error as e:
                conn.send(type(e).__name__)

    @srv.on_tag
    def tagged(conn, tag, error):
        assert error is None or isinstance(error, (libwebsock2.TagTaken,
                                                   libwebsock2.ClusterError))
        conn.send("on_tag %s %s tag=%s" % (tag, error and type(error).__name__,
                                           conn.tag))

    srv.start()
    return srv


def wait_up(srv, connects=1):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = srv.stats()
        if st["cluster_up"] and st["cluster_connects"] >= connects:
            return
        time.sleep(0.02)
    raise AssertionError("the cluster link did not come up: %r" % (srv.stats(),))


def test_publish_broadcast_and_send_cross_nodes(make_server, redis):
    proc, url = redis
    n1, n2 = node(make_server, url, 1), node(make_server, url, 2)
    wait_up(n1)
    wait_up(n2)

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/" % n1.port) as a, \
                websockets.connect("ws://127.0.0.1:%d/" % n2.port) as b:
            async def ask(ws, cmd):
                await ws.send(cmd)
                return await asyncio.wait_for(ws.recv(), 5)
            ida, idb = int(await ask(a, "id")), int(await ask(b, "id"))
            assert (ida >> 43, idb >> 43) == (1, 2)
            assert await ask(b, "sub room") == "ok"
            await asyncio.sleep(0.2)  # node 2's SUBSCRIBE reaches Redis
            assert await ask(a, "pub room|hello") == "ok"
            assert await asyncio.wait_for(b.recv(), 5) == "hello"
            assert await ask(b, "bc news") == "ok"
            assert await asyncio.wait_for(a.recv(), 5) == "news"
            assert await ask(b, "to %d|psst" % ida) == "sent"
            assert await asyncio.wait_for(a.recv(), 5) == "psst"
            # Redis gone: a send to the other node's id says so.
            proc.kill()
            proc.wait()
            deadline = time.monotonic() + 10
            while n2.stats()["cluster_up"] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert await ask(b, "to %d|lost" % ida) == "ClusterError"
    run(main())


def find(srv, tag):
    """find_tag's id, None when no node holds the tag."""
    try:
        return srv.find_tag(tag)
    except libwebsock2.NoSuchClient:
        return None


async def until(check, what="", timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within %g s: %s" % (timeout, what))
        await asyncio.sleep(0.01)


async def recv(ws, timeout=5.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def ask(ws, cmd):
    await ws.send(cmd)
    return await recv(ws)


async def nothing_more(ws, wait=0.2):
    try:
        extra = await asyncio.wait_for(ws.recv(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected %r" % (extra,))


def test_tags_across_nodes(make_server, redis):
    proc, url = redis
    n1, n2 = node(make_server, url, 1), node(make_server, url, 2)
    wait_up(n1)
    wait_up(n2)

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/" % n1.port) as a, \
                websockets.connect("ws://127.0.0.1:%d/" % n2.port) as b:
            ida, idb = int(await ask(a, "id")), int(await ask(b, "id"))
            # pending: shown at once, held cluster-wide by on_tag
            assert await ask(a, "tag alice") == "set False tag=alice"
            assert await recv(a) == "on_tag alice None tag=alice"
            assert await ask(a, "tag alice") == "set True tag=alice"  # its own already
            assert n1.get_tag(ida) == "alice" and n1.connection(ida).tag == "alice"
            await until(lambda: find(n2, "alice") == ida, "node 2 hears of alice")
            # node 2 knows: refused at once, no TAG event
            assert await ask(b, "tag alice") == "TagTaken tag=None"
            assert await ask(b, "sendtag alice|hi") == "sent"
            assert await recv(a) == "hi"
            assert await ask(b, "tag bob") == "set False tag=bob"
            assert await recv(b) == "on_tag bob None tag=bob"
            await nothing_more(b)
            # released (True: nothing to wait for): node 2 may have it
            assert await ask(a, "tag -") == "set True tag=None"
            await until(lambda: find(n2, "alice") is None, "node 2 hears alice is free")
            assert await ask(b, "tag alice") == "set False tag=alice"
            assert await recv(b) == "on_tag alice None tag=alice"
            assert n2.get_tag(idb) == "alice"
            await until(lambda: find(n1, "alice") == idb and find(n1, "bob") is None,
                        "node 1 hears bob went and alice came")
            assert n1.stats()["cluster_tags"] == 1  # the other nodes' tags it knows
            # (the other nodes heard: counted every ttl/10)
            await until(lambda: n1.stats()["cluster_nodes"] == 1, "cluster_nodes", 5)
            # Redis gone: set_tag raises ClusterError, conn.tag as it was
            proc.kill()
            proc.wait()
            await until(lambda: not n1.stats()["cluster_up"], "node 1 sees Redis gone")
            assert await ask(a, "tag zed") == "ClusterError tag=None"
    run(main())


def test_tag_refused_by_redis_comes_by_on_tag(make_server, redis):
    """A tag another node holds that this node has not heard of: set_tag is
    pending, and the TAG event brings TagTaken; the connection has its tag
    of before again (conn.tag shows it, None when it had none, and sends to
    it reach it) when it still shows the refused tag, and keeps a later
    one it shows."""
    _, url = redis
    n2 = node(make_server, url, 2)
    wait_up(n2)
    for planted in ("carol", "dave", "fay"):
        plant_tag(url, planted, "pytest", n2)

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/" % n2.port) as b:
            idb = int(await ask(b, "id"))
            # no tag before: none after
            assert await ask(b, "tag carol") == "set False tag=carol"
            assert await recv(b) == "on_tag carol TagTaken tag=None"
            assert n2.get_tag(idb) is None
            assert find(n2, "carol") == PLANTED_ID  # learnt from the refusal
            # now in node 2's directory: refused at once, the tag as it was
            assert await ask(b, "tag carol") == "TagTaken tag=None"
            # a tag before: the refusal gives it back, as on one server
            assert await ask(b, "tag bea") == "set False tag=bea"
            assert await recv(b) == "on_tag bea None tag=bea"
            assert await ask(b, "tag dave") == "set False tag=dave"
            assert await recv(b) == "on_tag dave TagTaken tag=bea"
            assert n2.get_tag(idb) == "bea" and n2.connection(idb).tag == "bea"
            assert find(n2, "bea") == idb and find(n2, "dave") == PLANTED_ID
            n2.send_tag("bea", "still bea")
            assert await recv(b) == "still bea"
            assert await ask(b, "tag carol") == "TagTaken tag=bea"
            # fay refused while the connection shows erin: erin stays, and
            # bea, held till erin's answer, goes with it
            assert await ask(b, "tag fay erin") == "set False False tag=erin"
            got = {await recv(b), await recv(b)}
            assert got == {"on_tag fay TagTaken tag=erin", "on_tag erin None tag=erin"}
            assert n2.get_tag(idb) == "erin"
            assert find(n2, "bea") is None and find(n2, "erin") == idb
    run(main())


def test_tag_of_before_kept_while_a_claim_is_pending(make_server, redis):
    """Redis holds the claims (CLIENT PAUSE WRITE): the connection shows
    the claimed tag and keeps its tag of before meanwhile, sends to either
    reach it, the pending tag asked again is pending too (one outcome),
    the tag of before asked again settles back to it; granted, the old tag
    is let go; refused, the connection has it still."""
    _, url = redis
    n1 = node(make_server, url, 1)
    wait_up(n1)
    plant_tag(url, "carl", "pytest", n1)

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/" % n1.port) as a, \
                websockets.connect("ws://127.0.0.1:%d/" % n1.port) as c:
            ida = int(await ask(a, "id"))
            assert await ask(a, "tag alice") == "set False tag=alice"
            assert await recv(a) == "on_tag alice None tag=alice"
            with paused(url):
                assert await ask(a, "tag alice2 alice2") == "set False False tag=alice2"
                assert n1.get_tag(ida) == "alice2" and n1.connection(ida).tag == "alice2"
                assert find(n1, "alice") == ida and find(n1, "alice2") == ida
                assert await ask(c, "sendtag alice|to the old") == "sent"
                assert await recv(a) == "to the old"
                assert await ask(c, "sendtag alice2|to the new") == "sent"
                assert await recv(a) == "to the new"
                n1.send_tag("alice", "from outside")
                assert await recv(a) == "from outside"
                await nothing_more(a, 0.3)  # no outcome while Redis holds the claim
            assert await recv(a) == "on_tag alice2 None tag=alice2"
            await nothing_more(a)  # one for both
            # granted: the old one is let go
            assert find(n1, "alice") is None
            assert await ask(c, "sendtag alice|gone?") == "NoSuchClient"
            # refused: the tag of before reached it all along, and is its still
            with paused(url):
                assert await ask(a, "tag carl") == "set False tag=carl"
                assert await ask(c, "sendtag alice2|while carl") == "sent"
                assert await recv(a) == "while carl"
                assert find(n1, "alice2") == ida
            assert await recv(a) == "on_tag carl TagTaken tag=alice2"
            assert n1.get_tag(ida) == "alice2" and find(n1, "alice2") == ida
            assert await ask(c, "sendtag alice2|after carl") == "sent"
            assert await recv(a) == "after carl"
            # the tag of before asked for again while a claim is pending:
            # settled back to it at once; the claim's outcome still comes
            with paused(url):
                assert await ask(a, "tag bea") == "set False tag=bea"
                assert await ask(a, "tag alice2") == "set True tag=alice2"
                assert n1.get_tag(ida) == "alice2" and find(n1, "bea") is None
            outcome = await recv(a)
            assert outcome.startswith("on_tag bea ") and outcome.endswith(" tag=alice2"), \
                outcome
            assert n1.get_tag(ida) == "alice2" and find(n1, "bea") is None
            await nothing_more(a)
    run(main())


def test_tag_lost_when_the_link_comes_back(make_server, redis):
    """The link dropped and back: the node claims its tags again, and one
    that another node took meanwhile comes unasked by on_tag (TagTaken)."""
    _, url = redis
    n1 = node(make_server, url, 1)
    wait_up(n1)

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/" % n1.port) as a:
            ida = int(await ask(a, "id"))
            assert await ask(a, "tag alice") == "set False tag=alice"
            assert await recv(a) == "on_tag alice None tag=alice"
            plant_tag(url, "alice")  # node 3 took it while node 1 was not looking
            reset_links(url)
            assert await recv(a, 15) == "on_tag alice TagTaken tag=None"
            assert n1.get_tag(ida) is None and n1.connection(ida).tag is None
            assert n1.stats()["cluster_connects"] >= 2
    run(main())


def aio_tag_server(url, n, **kw):
    """An aio node: "claim T" awaits conn.claim_tag(T) in on_message ("-":
    None), answered "claimed T tag=TAG" or the error's class name and
    conn.tag; on_tag sends "on_tag TAG ERROR"."""
    srv = libwebsock2.aio.Server(port=0, cluster=url, node=n, cluster_prefix="pytest", **kw)

    @srv.on_message
    async def got(conn, msg):
        cmd, _, tag = msg.partition(" ")
        if cmd == "id":
            await conn.send(str(conn.id))
        elif cmd == "claim":
            try:
                await conn.claim_tag(None if tag == "-" else tag)
                await conn.send("claimed %s tag=%s" % (tag, conn.tag))
            except libwebsock2.Error as e:
                await conn.send("%s tag=%s" % (type(e).__name__, conn.tag))

    @srv.on_tag
    async def tagged(conn, tag, error):
        await conn.send("on_tag %s %s" % (tag, error and type(error).__name__))

    return srv


async def aio_wait_up(srv):
    await until(lambda: srv.stats()["cluster_up"], "the cluster link comes up", 15)


def test_aio_claim_tag_in_on_message(make_server, redis):
    _, url = redis
    n1 = node(make_server, url, 1)
    wait_up(n1)

    async def main():
        async with aio_tag_server(url, 2) as srv:
            await aio_wait_up(srv)
            plant_tag(url, "carol", "pytest", srv)
            async with websockets.connect("ws://127.0.0.1:%d/" % n1.port) as a, \
                    websockets.connect("ws://127.0.0.1:%d/" % srv.port) as b:
                ida, idb = int(await ask(a, "id")), int(await ask(b, "id"))
                # awaited inside on_message: settled where events are read
                assert await ask(b, "claim bob") == "claimed bob tag=bob"
                assert await recv(b) == "on_tag bob None"  # then on_tag, in order
                assert await ask(b, "claim bob") == "claimed bob tag=bob"  # held already
                # refused by Redis: by the TAG event; bob is its tag again
                assert await ask(b, "claim carol") == "TagTaken tag=bob"
                assert await recv(b) == "on_tag carol TagTaken"
                assert srv.get_tag(idb) == "bob" and find(srv, "bob") == idb
                # held on node 1: refused at once once node 2 knows
                assert await ask(a, "tag alice") == "set False tag=alice"
                assert await recv(a) == "on_tag alice None tag=alice"
                await until(lambda: find(srv, "alice") == ida, "node 2 hears of alice")
                assert await ask(b, "claim alice") == "TagTaken tag=bob"
                assert await ask(b, "claim -") == "claimed - tag=None"
                await nothing_more(b)
    run(main())


def test_aio_claim_tag_in_a_handler_and_a_connection_that_ends(redis):
    """claim_tag awaited in a handler(conn) coroutine; a claim still
    waiting when its connection ends fails with ConnectionClosed."""
    _, url = redis
    ended = []

    async def handler(conn):
        async for msg in conn:
            try:
                await conn.claim_tag(msg)
                await conn.send("claimed " + msg)
            except libwebsock2.ConnectionClosed as e:
                ended.append(e)
                return
            except libwebsock2.Error as e:
                await conn.send(type(e).__name__)

    async def main():
        async with libwebsock2.aio.serve(handler, "127.0.0.1", 0, cluster=url, node=2,
                                         cluster_prefix="pytest") as srv:
            await aio_wait_up(srv)
            plant_tag(url, "eve", "pytest", srv)
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as b:
                assert await ask(b, "dan") == "claimed dan"
                assert await ask(b, "eve") == "TagTaken"
            # Redis holds every command for a while: the claim is in flight
            # when the connection ends
            redis_call(url, "CLIENT", "PAUSE", "1500", "ALL")
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as c:
                await c.send("frank")
                await asyncio.sleep(0.2)
            await until(lambda: ended, "the claim fails")
            assert isinstance(ended[0], libwebsock2.ConnectionClosed)
            redis_call(url, "CLIENT", "UNPAUSE")
    run(main())


def test_set_tag_and_claim_tag_settled_without_a_cluster(make_server):
    srv = make_server(agents=1)
    results = []

    @srv.on_message
    def got(conn, msg):
        results.append((conn.set_tag(msg), srv.set_tag(conn.id, msg), conn.tag))
        conn.send("ok")

    srv.start()

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
            assert await ask(ws, "alice") == "ok"
        assert results == [(True, True, "alice")]

        async with libwebsock2.aio.Server(port=0) as asrv:
            claimed = []

            @asrv.on_message
            async def got2(conn, msg):
                try:
                    await conn.claim_tag(msg)
                    claimed.append(conn.tag)
                except libwebsock2.TagTaken:
                    claimed.append("taken")
                await conn.send("ok")

            async with websockets.connect("ws://127.0.0.1:%d/" % asrv.port) as a, \
                    websockets.connect("ws://127.0.0.1:%d/" % asrv.port) as b:
                assert await ask(a, "bob") == "ok"
                assert await ask(b, "bob") == "ok"
        assert claimed == ["bob", "taken"]
    run(main())


def test_node_drawn_from_redis(make_server, redis):
    proc, url = redis
    given = node(make_server, url, 2)
    drawn = [node(make_server, url, n) for n in (0, None)]  # node 0, or node left out
    assert [given.node] + [srv.node for srv in drawn] == [2, 1, 3]
    for srv in [given] + drawn:
        wait_up(srv)

    async def main():
        for srv in drawn:
            async with websockets.connect("ws://127.0.0.1:%d/" % srv.port) as ws:
                assert int(await ask(ws, "id")) >> 43 == srv.node
    run(main())
    assert make_server().start().node == 0  # not a cluster node
    with pytest.raises(libwebsock2.StateError):
        make_server(cluster=url).node  # before start
    # no Redis to draw from: start fails, saying so
    proc.kill()
    proc.wait()
    with pytest.raises(libwebsock2.ClusterError, match="did not answer"):
        make_server(cluster=url).start()
    n5 = make_server(cluster=url, node=5).start()  # a number given: starts anyway
    assert n5.node == 5


def test_cluster_ttl_reaches_redis(make_server, redis):
    _, url = redis
    n1 = node(make_server, url, 1, cluster_ttl=0.6)
    n2 = node(make_server, url, 2)
    wait_up(n1)
    wait_up(n2)
    ttl1 = redis_call(url, "PTTL", "pytest:node:1")
    ttl2 = redis_call(url, "PTTL", "pytest:node:2")
    assert 0 < ttl1 <= 600, ttl1
    assert 600 < ttl2 <= 9000, ttl2


def test_cluster_options(make_server):
    with pytest.raises(libwebsock2.InvalidArgument, match="node needs cluster"):
        make_server(node=1)
    with pytest.raises(libwebsock2.InvalidArgument, match="cluster_ttl needs cluster"):
        make_server(cluster_ttl=1.0)
    for bad in (-1, 1024, "1", True, 1.5):
        with pytest.raises(libwebsock2.InvalidArgument, match=r"node must be an int in 0\.\.1023"):
            make_server(cluster="redis://127.0.0.1:1", node=bad)
    with pytest.raises(libwebsock2.InvalidArgument, match="cluster"):
        make_server(cluster="http://x", node=1)
    with pytest.raises(TypeError):
        make_server(cluster=b"redis://x", node=1)
    for bad in (0, 0.05, 0.0999, 600.5, -1, "1", True, None.__class__):
        with pytest.raises(libwebsock2.InvalidArgument,
                           match=r"cluster_ttl must be seconds in 0\.1\.\.600"):
            make_server(cluster="redis://127.0.0.1:1", node=1, cluster_ttl=bad)
    with pytest.raises(libwebsock2.InvalidArgument, match="cluster_ttl must be seconds"):
        libwebsock2.aio.Server(cluster="redis://127.0.0.1:1", node=1, cluster_ttl=0)
    for good in (0.1, 1, 9.0, 600):  # made, not started
        make_server(cluster="redis://127.0.0.1:1", node=1, cluster_ttl=good)
    assert issubclass(libwebsock2.ClusterError, libwebsock2.Error)


# -- examples/python/chat_server.py as two nodes of one cluster -------------

class Chatter:
    """A chat client: its id from the welcome, ``ask`` for one answer."""

    def __init__(self, ws, ident):
        self.ws, self.id = ws, ident

    @classmethod
    async def join(cls, port):
        ws = await websockets.connect("ws://127.0.0.1:%d/chat" % port)
        m = re.fullmatch(r"welcome #(\d+)", await recv(ws))
        assert m
        return cls(ws, int(m.group(1)))

    async def ask(self, text):
        return await ask(self.ws, text)

    async def recv(self, timeout=5.0):
        return await recv(self.ws, timeout)

    async def barrier(self):
        """Everything sent to it before is in: a /msg to nobody is answered
        after it."""
        assert await self.ask("/msg nobody-here sync") == "error no-such-user nobody-here"


async def until_answer(chatter, text, answer, timeout=10.0):
    """Sends ``text`` until the answer is ``answer`` (the other node hears
    of a nick or a member within milliseconds, not at once)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await chatter.ask(text)
        if got == answer:
            return
        if time.monotonic() > deadline:
            raise AssertionError("%r: %r, not %r" % (text, got, answer))
        await asyncio.sleep(0.02)


def chat_nodes(example, url):
    """Node 1, then a node that draws its number (the lowest free: 2)."""
    return [example("chat_server.py", "--redis", url, *node, "--cluster-ttl", "3000",
                    "--agents", "2")
            for node in (("--node", "1"), ())]


def test_chat_example_on_two_nodes(example, redis):
    proc, url = redis
    n1, n2 = chat_nodes(example, url)

    async def main():
        a = await Chatter.join(n1.port)
        b, c = await Chatter.join(n2.port), await Chatter.join(n2.port)
        assert (a.id >> 43, b.id >> 43, c.id >> 43) == (1, 2, 2)
        # nicks: confirmed by Redis, unique on every node
        assert await a.ask("/nick alice") == "ok nick alice"
        assert await b.ask("/nick alice") == "error nick-taken alice"
        assert await b.ask("/nick bob") == "ok nick bob"
        assert await c.ask("/nick bob") == "error nick-taken bob"  # same node
        assert await a.ask("/nick bob") == "error nick-taken bob"
        assert await a.ask("/nick  ") == "error bad-nick "
        # private messages across nodes, both ways
        await until_answer(b, "/msg alice hello", "ok msg alice")
        assert await a.recv() == "msg bob hello"
        await until_answer(a, "/msg bob hi there", "ok msg bob")
        assert await b.recv() == "msg alice hi there"
        assert await a.ask("/msg carol x") == "error no-such-user carol"
        # c has no nick: FROM is #ID
        assert await c.ask("/msg alice psst") == "ok msg alice"
        assert await a.recv() == "msg #%d psst" % c.id
        # rooms across nodes
        assert await a.ask("/join lobby") == "ok join lobby"
        assert await c.ask("/join lobby") == "ok join lobby"
        assert await b.ask("/room lobby x") == "error not-in-room lobby"
        assert await a.ask("/join " + "r" * 256) == "error bad-room"
        await asyncio.sleep(0.3)  # the nodes' SUBSCRIBEs reach Redis
        assert await c.ask("/room lobby hey all") == "ok room lobby"
        assert await a.recv() == "room lobby #%d hey all" % c.id
        assert await a.ask("/room lobby yo") == "ok room lobby"
        assert await c.recv() == "room lobby alice yo"
        assert await a.ask("/leave lobby") == "ok leave lobby"
        assert await a.ask("/room lobby gone?") == "error not-in-room lobby"
        assert await c.ask("/room lobby anyone") == "ok room lobby"
        # say: every other client of every node
        await b.ws.send("hello everyone")
        assert await a.recv() == "say bob hello everyone"
        assert await c.recv() == "say bob hello everyone"
        await a.ws.send("hi")
        assert await b.recv() == "say alice hi"
        assert await c.recv() == "say alice hi"
        for x in (a, b, c):  # nothing else came: not b's own line, not the lobby
            await x.barrier()        # after a left it
        await nothing_more(a.ws)
        for x in (a, b, c):
            await x.ws.close()
    run(main())
    assert n1.stop(signal.SIGTERM) == 0 and n2.stop(signal.SIGTERM) == 0


def test_chat_example_nick_taken_by_redis_lost_and_cluster_down(example, redis):
    """The answers that come from on_tag: a nick another node holds that
    this one has not heard of (nick-taken, by Redis; the client keeps its
    old nick, as on one server), a nick lost after the link came back
    (nick-lost, unasked, FROM back to #ID), and Redis gone (cluster-down)."""
    proc, url = redis
    n1, n2 = chat_nodes(example, url)

    async def main():
        a, b = await Chatter.join(n1.port), await Chatter.join(n2.port)
        assert await a.ask("/nick alice") == "ok nick alice"
        assert await b.ask("/nick bob") == "ok nick bob"
        plant_tag(url, "carol", "websock")
        assert await a.ask("/nick carol") == "error nick-taken carol"
        # the nick it asked for is refused: it is alice still, everywhere
        await b.ws.send("who?")
        assert await a.recv() == "say bob who?"
        await a.ws.send("me")
        assert await b.recv() == "say alice me"
        await until_answer(b, "/msg alice still you?", "ok msg alice")
        assert await a.recv() == "msg bob still you?"
        assert await a.ask("/nick alice") == "ok nick alice"  # its own already
        assert await b.ask("/nick alice") == "error nick-taken alice"
        # alice taken by node 3 while node 1's link was away
        plant_tag(url, "alice", "websock")
        reset_links(url)
        assert await a.recv(15) == "error nick-lost alice"
        await a.ws.send("still here")
        assert await b.recv() == "say #%d still here" % a.id
        # Redis gone: a /nick is refused at once, the client keeps its nick
        assert await a.ask("/nick ann") == "ok nick ann"
        c = await Chatter.join(n1.port)
        proc.kill()
        proc.wait()
        await until_answer(a, "/nick zed", "error cluster-down zed")
        await until_answer(a, "/msg bob x", "error cluster-down bob")
        await a.ws.send("after zed")  # (node 1's clients only, now)
        assert await c.recv() == "say ann after zed"
        await a.ws.close()
        await c.ws.close()
        await b.ws.close()
    run(main())
    assert n1.stop(signal.SIGTERM) == 0 and n2.stop(signal.SIGTERM) == 0


def test_chat_example_old_nick_while_a_nick_is_pending(example, redis):
    """Redis holds the claims (CLIENT PAUSE WRITE): while a /nick is
    pending the client keeps its old nick (FROM, /msg to it reaches it,
    and so does one to the nick asked for), then has the new one when
    Redis grants it, and the old one still when Redis refuses it; /nick
    lines sent meanwhile wait their turn, each answered once, in order."""
    _, url = redis
    n1, n2 = chat_nodes(example, url)

    async def main():
        a, c = await Chatter.join(n1.port), await Chatter.join(n1.port)
        b = await Chatter.join(n2.port)
        assert await a.ask("/nick alice") == "ok nick alice"
        assert await b.ask("/nick bob") == "ok nick bob"
        plant_tag(url, "carol", "websock")
        with paused(url):
            await a.ws.send("/nick zoe")
            await a.ws.send("/nick zoe")  # waits its turn
            await nothing_more(a.ws, 0.3)  # the answer waits for Redis
            assert await c.ask("/msg alice psst") == "ok msg alice"
            assert await a.recv() == "msg #%d psst" % c.id
            assert await c.ask("/msg zoe hi zoe") == "ok msg zoe"
            assert await a.recv() == "msg #%d hi zoe" % c.id
            await a.ws.send("pending zoe")
            assert await c.recv() == "say alice pending zoe"
        assert [await a.recv(), await a.recv()] == ["ok nick zoe", "ok nick zoe"]
        assert await b.recv() == "say alice pending zoe"  # through Redis, once it went on
        await a.ws.send("as zoe")
        assert await c.recv() == "say zoe as zoe"
        assert await b.recv() == "say zoe as zoe"
        assert await c.ask("/msg alice x") == "error no-such-user alice"  # let go
        with paused(url):
            await a.ws.send("/nick carol")
            await a.ws.send("/nick zoe")   # after the refusal: its own still
            await a.ws.send("/nick bob")   # then one node 1 knows is taken
            await nothing_more(a.ws, 0.3)
            await a.ws.send("pending carol")
            assert await c.recv() == "say zoe pending carol"
            assert await c.ask("/msg zoe y") == "ok msg zoe"
            assert await a.recv() == "msg #%d y" % c.id
        assert [await a.recv() for _ in range(3)] == [
            "error nick-taken carol", "ok nick zoe", "error nick-taken bob"]
        assert await b.recv() == "say zoe pending carol"
        await a.ws.send("refused carol")
        assert await c.recv() == "say zoe refused carol"
        assert await b.recv() == "say zoe refused carol"
        await until_answer(b, "/msg zoe z", "ok msg zoe")
        assert await a.recv() == "msg bob z"
        for x in (a, b, c):
            await x.barrier()
        await nothing_more(a.ws)
        for x in (a, b, c):
            await x.ws.close()
    run(main())
    assert n1.stop(signal.SIGTERM) == 0 and n2.stop(signal.SIGTERM) == 0
