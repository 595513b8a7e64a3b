"""The cluster through Redis from Python: ``Server(cluster=..., node=...)``.
A redis-server of the test's own on a free loopback port, two nodes in this
process, Debian's ``websockets`` as clients: a publish on node 1 reaches a
member on node 2, a broadcast crosses too, a send by id reaches the other
node's connection, ids carry their node; with Redis gone a send to the
other node raises ClusterError; the option errors."""
import asyncio
import shutil
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


def node(make_server, url, n):
    """Commands: "id" → the connection's id; "sub T" joins T; "pub T|X"
    publishes X to T but the sender; "bc X" broadcasts; "to ID|X" sends X
    to ID, answered "sent" or the error's class name."""
    srv = make_server(host="127.0.0.1", agents=2, cluster=url, node=n,
                      cluster_prefix="pytest")

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


def test_cluster_options(make_server):
    with pytest.raises(libwebsock2.InvalidArgument, match="go together"):
        make_server(cluster="redis://127.0.0.1:1")
    with pytest.raises(libwebsock2.InvalidArgument, match="node"):
        make_server(cluster="redis://127.0.0.1:1", node=0)
    with pytest.raises(libwebsock2.InvalidArgument, match="cluster"):
        make_server(cluster="http://x", node=1)
    with pytest.raises(TypeError):
        make_server(cluster=b"redis://x", node=1)
    assert issubclass(libwebsock2.ClusterError, libwebsock2.Error)
