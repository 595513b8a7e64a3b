#!/usr/bin/python3
"""The Lua chat example on a two-node cluster through Redis, driven with
Debian's python3-websockets (run with /usr/bin/python3).

    chat_cluster.py -- CMD...    (e.g. lua5.4 examples/lua/chat_server.lua)

Starts a redis-server of its own on a free loopback port (no
persistence), then CMD twice as two nodes of one cluster: node A with
"--redis URL --node 1 --cluster-ttl 1000", node B with "--redis URL" alone
(its number drawn from Redis), each with "--port 0" appended (see e2e.py).
Checks, with clients on both nodes: ids carry the node, nicks unique
across the nodes (taken, a race of two nodes, released on close), /msg
across the nodes (both ways, no-such-user, FROM before a nick), rooms
across the nodes (join, room, not-in-room, leave), say across the nodes;
a /nick Redis refuses (the nick planted in Redis for node B, which node A
has not heard of) and one it grants, each sent in one write with a line
after it: FROM is the old nick while the /nick waits, and stays it after
the refusal; a /nick Redis grants and one it refuses (planted) sent
together: ok, then nick-taken, and the client keeps the granted nick (one
claim at a time: a second claim would release the first); /nick lines
sent together answered in their order; then Redis
killed (error cluster-down for /nick and /msg to the other
node) and started again empty while a third node (--node 5) takes a nick
node A held first: A's client gets "error nick-lost NAME" and speaks as #ID
again. SIGTERM ends every node cleanly. Prints one "PASS name" / "FAIL
name: why" line per check; every wait is bounded; only the processes it
started are killed, by their handles.
"""
import asyncio
import os
import re
import socket
import subprocess
import sys
import time

import websockets
from websockets.frames import Frame, Opcode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (report, check, start_server, stop_server, welcome)
from e2e import check, no_message, report, welcome  # noqa: E402

RECV = 5.0        # one expected message
SETTLE = 10.0     # something crossing Redis for the first time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on 127.0.0.1:port, no persistence: a restart forgets."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def call(self, *args):
        """One command on a connection of its own; the reply's first line."""
        cmd = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in (str(x).encode() for x in args))
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            s.sendall(cmd)
            return s.recv(4096).split(b"\r\n")[0].decode()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Client:
    def __init__(self, ws, ident):
        self.ws, self.id = ws, ident

    @property
    def anon(self):
        return "#%d" % self.id

    async def send(self, text):
        await self.ws.send(text)

    async def recv(self, timeout=RECV):
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def send_together(self, lines):
        """Sends lines as text frames in one TCP write: the server reads
        them at once, so none of their answers (Redis' among them) can
        come before it has taken them all."""
        self.ws.transport.write(b"".join(
            Frame(Opcode.TEXT, line.encode()).serialize(
                mask=True, extensions=self.ws.extensions) for line in lines))

    async def request(self, text, timeout=RECV):
        await self.ws.send(text)
        return await self.recv(timeout)

    async def recv_until(self, pred, timeout=RECV):
        """The first message pred() accepts; the others before it are
        dropped (settling lines sent before)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no message matched within %.1f s" % timeout)
            msg = await self.recv(left)
            if pred(msg):
                return msg


async def connect(port):
    ws = await websockets.connect("ws://127.0.0.1:%d/chat" % port)
    return Client(ws, await welcome(ws))


async def eventually(step, timeout, what):
    """Runs step() until it returns a true value (retried every 50 ms)."""
    deadline = time.time() + timeout
    while True:
        got = await step()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError("%s: not within %.1f s" % (what, timeout))
        await asyncio.sleep(0.05)


async def settle_line(sender, line, receiver, expect):
    """sender sends line (numbered) until receiver gets expect % n: the
    way across Redis is up (a node's subscription may be on its way)."""
    n = [0]

    async def once():
        n[0] += 1
        await sender.send(line % n[0])
        want = expect % n[0]
        try:
            await receiver.recv_until(lambda m: m == want, 0.3)
            return True
        except (AssertionError, asyncio.TimeoutError):
            return False
    await eventually(once, SETTLE, "%r never reached the other node" % line)


async def drain(c, secs=0.3):
    """Drops whatever c has received within secs."""
    try:
        while True:
            await c.recv(secs)
    except asyncio.TimeoutError:
        pass


async def expect(client, want, send=None):
    """client's next message is want (after sending send, if given)."""
    got = await (client.request(send) if send is not None else client.recv())
    assert got == want, "%s got %r, not %r" % (client.anon, got, want)


async def run(port_a, port_b, redis, cmd):
    # node A's clients a, r; node B's b, c
    a, b = await connect(port_a), await connect(port_b)
    c = await connect(port_b)
    node_a, node_b = a.id >> 43, b.id >> 43

    async def ids():
        assert node_a == 1, "node A's ids: node %d" % node_a
        assert node_b not in (0, 1), "node B's ids: node %d" % node_b
        assert c.id >> 43 == node_b
    await check("chat cluster: ids carry the node (A given 1, B drawn %d)" % node_b, ids())

    async def say_settles():
        # broadcasts cross both ways once both links are up
        await settle_line(b, "sync %d", a, "say %s sync %%d" % b.anon)
        await settle_line(a, "sync %d", b, "say %s sync %%d" % a.anon)
        await drain(a)
        await drain(b)
        await drain(c)
    await check("chat cluster: both nodes hear each other", say_settles())

    async def nick_taken():
        assert await a.request("/nick alice") == "ok nick alice"
        # node B knows the holder within moments: at once, or from Redis
        assert await b.request("/nick alice") == "error nick-taken alice"
        assert await c.request("/nick alice") == "error nick-taken alice"
        assert await b.request("/nick bob") == "ok nick bob"
        assert await a.request("/nick bob") == "error nick-taken bob"
        # a kept its nick: it is still alice
        await a.send("still me")
        assert await b.recv() == "say alice still me"
        assert await c.recv() == "say alice still me"
    await check("chat cluster: a nick held on one node is taken on the other", nick_taken())

    async def nick_race():
        for k in range(5):
            x, y = await connect(port_a), await connect(port_b)
            name = "zed%d" % k
            await asyncio.gather(x.send("/nick " + name), y.send("/nick " + name))
            gx, gy = await x.recv(), await y.recv()
            assert sorted([gx, gy]) == ["error nick-taken " + name, "ok nick " + name], \
                (gx, gy)
            # the loser is still #ID, and the nick is the winner's on both nodes
            loser, winner = (x, y) if gx.startswith("error") else (y, x)
            assert await loser.request("/msg %s hi" % name) == "ok msg " + name
            assert await winner.recv() == "msg %s hi" % loser.anon
            await x.ws.close()
            await y.ws.close()
    await check("chat cluster: two nodes' clients racing for one nick: one wins", nick_race())

    async def msg_across():
        async def to_bob():
            got = await a.request("/msg bob hi there")
            if got == "error no-such-user bob":
                return False  # node A has not heard of bob yet
            assert got == "ok msg bob", got
            return True
        await eventually(to_bob, SETTLE, "node A never found bob")
        assert await b.recv() == "msg alice hi there"
        assert await b.request("/msg alice hello back") == "ok msg alice"
        assert await a.recv() == "msg bob hello back"
        assert await c.request("/msg alice psst") == "ok msg alice"
        assert await a.recv() == "msg %s psst" % c.anon
        assert await a.request("/msg nobody x") == "error no-such-user nobody"
        assert await b.request("/msg nobody x") == "error no-such-user nobody"
    await check("chat cluster: /msg crosses nodes both ways", msg_across())

    async def rooms_across():
        assert await a.request("/join lobby") == "ok join lobby"
        assert await b.request("/join lobby") == "ok join lobby"
        # node B's subscription reaches Redis meanwhile
        await settle_line(a, "/room lobby sync %d", b, "room lobby alice sync %d")
        await drain(a)
        assert await a.request("/room lobby hello room") == "ok room lobby"
        assert await b.recv() == "room lobby alice hello room"
        assert await b.request("/room lobby from b") == "ok room lobby"
        assert await a.recv() == "room lobby bob from b"
        assert await c.request("/room lobby let me in") == "error not-in-room lobby"
        await no_message(c)  # c is in no room: it got none of them
        assert await b.request("/leave lobby") == "ok leave lobby"
        assert await b.request("/room lobby x") == "error not-in-room lobby"
        assert await a.request("/room lobby anyone?") == "ok room lobby"
        await no_message(b, 0.5)
        assert await c.request("/join " + "r" * 256) == "error bad-room"
    await check("chat cluster: rooms cross nodes (join, room, not-in-room, leave)",
                rooms_across())

    async def say_across():
        await a.send("hello everyone")
        assert await b.recv() == "say alice hello everyone"
        assert await c.recv() == "say alice hello everyone"
        await c.send("from c")
        assert await a.recv() == "say %s from c" % c.anon
        assert await b.recv() == "say %s from c" % c.anon
        await no_message(a)
        await no_message(c)
    await check("chat cluster: say crosses nodes", say_across())

    async def refused_keeps():
        # held in Redis by a connection of node B (alive) that no node has
        # heard of: node A's claim is pending, and refused
        planted = "planted-nick"
        got = redis.call("HSET", "websock:tags", planted,
                         "%d:%d" % (node_b, node_b << 43 | 4242))
        assert got == ":1", got
        await a.send_together(["/nick " + planted, "while it waits"])
        await expect(b, "say alice while it waits")
        await expect(c, "say alice while it waits")
        await expect(a, "error nick-taken " + planted)
        await a.send("after the refusal")
        await expect(b, "say alice after the refusal")
        await expect(c, "say alice after the refusal")
        # still alice's, cluster-wide
        await expect(b, "ok msg alice", "/msg alice still yours?")
        await expect(a, "msg bob still yours?")
        # node A knows the holder now: refused at once, alice kept
        await expect(a, "error nick-taken " + planted, "/nick " + planted)
        await a.send("again")
        await expect(c, "say alice again")
        await expect(b, "say alice again")
    await check("chat cluster: a /nick Redis refuses keeps the nick of before "
                "(FROM while it waits and after)", refused_keeps())

    async def granted_then_refused():
        # /nick pee (granted by Redis) and /nick planted-two (refused by
        # Redis: planted for node B, unknown to node A) in one write: a is
        # pee afterwards, not alice (were both claimed at once, the second
        # would release pee and its refusal give back alice)
        planted = "planted-two"
        got = redis.call("HSET", "websock:tags", planted,
                         "%d:%d" % (node_b, node_b << 43 | 4343))
        assert got == ":1", got
        await a.send_together(["/nick pee", "/nick " + planted, "while asking"])
        await expect(b, "say alice while asking")
        await expect(c, "say alice while asking")
        await expect(a, "ok nick pee")
        await expect(a, "error nick-taken " + planted)
        await a.send("after")
        await expect(b, "say pee after")
        await expect(c, "say pee after")
        await expect(b, "ok msg pee", "/msg pee yours?")
        await expect(a, "msg bob yours?")
        # alice was let go when pee was granted: a takes it back
        await expect(a, "ok nick alice", "/nick alice")
    await check("chat cluster: a /nick Redis grants then one it refuses, sent "
                "together: ok, nick-taken, the granted nick kept",
                granted_then_refused())

    async def granted_after():
        await b.send_together(["/nick bobby", "before the answer"])
        await expect(c, "say bob before the answer")
        await expect(a, "say bob before the answer")
        await expect(b, "ok nick bobby")
        await b.send("after the answer")
        await expect(c, "say bobby after the answer")
        await expect(a, "say bobby after the answer")
        # bob was let go: c may take it on node B, then b has it back
        await expect(c, "ok nick bob", "/nick bob")
        await expect(c, "ok nick carl", "/nick carl")
        await expect(b, "ok nick bob", "/nick bob")
        await expect(b, "ok nick bob", "/nick bob")  # the nick it has
    await check("chat cluster: a /nick Redis grants: FROM the old nick until "
                "the answer, then the new one, the old one let go", granted_after())

    async def in_order():
        # bob is refused at once on node A (it knows b holds it), yet it
        # is asked only once the /nick before it is answered; the repeated
        # /nick is answered in its turn (alias is a's by then)
        await a.send_together(["/nick alias", "/nick bob", "/nick alias",
                               "meanwhile"])
        await expect(b, "say alice meanwhile")
        await expect(a, "ok nick alias")
        await expect(a, "error nick-taken bob")
        await expect(a, "ok nick alias")
        await a.send("as alias")
        await expect(b, "say alias as alias")
        await expect(c, "say alice meanwhile")
        await expect(c, "say alias as alias")
        # back to alice (let go when alias was granted)
        await expect(a, "ok nick alice", "/nick alice")
    await check("chat cluster: /nick lines sent together: one answer each, in "
                "the order sent", in_order())

    async def released():
        r = await connect(port_a)
        assert await r.request("/nick gone") == "ok nick gone"
        await r.ws.close()

        async def take():
            got = await b.request("/nick gone")
            if got == "error nick-taken gone":
                return False
            assert got == "ok nick gone", got
            return True
        await eventually(take, SETTLE, "the nick was never released")
        assert await b.request("/nick bob") == "ok nick bob"
    await check("chat cluster: a nick is free on the other node once its client left",
                released())

    # k on node A holds "keep" through the Redis restart below
    k = await connect(port_a)

    async def keep():
        assert await k.request("/nick keep") == "ok nick keep"
    await check("chat cluster: a nick for the restart", keep())

    async def cluster_down():
        redis.kill()

        nick = ["alice"]

        async def nick_down():
            got = await a.request("/nick newname")
            if got == "ok nick newname":
                nick[0] = "newname"
                return False  # Redis answered before it died
            assert got == "error cluster-down newname", got
            return True
        await eventually(nick_down, SETTLE, "no cluster-down for /nick")
        got = await a.request("/msg bob x")
        assert got == "error cluster-down bob", got
        # local delivery goes on: k is on node A; a kept its nick (a /nick
        # that was pending when the link went is refused: the old nick
        # stays)
        got = await a.request("/msg keep local")
        assert got == "ok msg keep", got
        got = await k.recv()
        assert got == "msg %s local" % nick[0], got
    await check("chat cluster: Redis down: error cluster-down for /nick and /msg",
                cluster_down())

    async def nick_lost():
        await drain(k)
        for attempt in range(3):
            # node A waits out its reconnect back-off meanwhile
            await asyncio.sleep(3.2)
            redis.start()
            proc_c, port_c = e2e.start_server(cmd + ["--redis", redis.url, "--node", "5"])
            try:
                d = await connect(port_c)

                async def claim():
                    got = await d.request("/nick keep")
                    # node C's link may still be on its way up
                    return got != "error cluster-down keep" and got
                got = await eventually(claim, SETTLE, "node C's link never came up")
                if got == "ok nick keep":
                    lost = await k.recv_until(lambda m: m.startswith("error "), 15)
                    assert lost == "error nick-lost keep", lost
                    await k.send("who am i")
                    await d.recv_until(lambda m: m == "say %s who am i" % k.anon, RECV)
                    await d.ws.close()
                    return
                assert got == "error nick-taken keep", got
                print("  attempt %d: node A claimed keep again first" % (attempt + 1))
                await d.ws.close()
            finally:
                proc_c.terminate()
                proc_c.wait(10)
            redis.kill()
        raise AssertionError("node A always reconnected before the new node took the nick")
    await check("chat cluster: after a Redis restart a nick lost to another node: "
                "error nick-lost, then #ID", nick_lost())

    for cl in (a, b, c, k):
        await cl.ws.close()


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "--":
        print(__doc__)
        return 2
    cmd = sys.argv[2:]
    label = os.path.basename(cmd[0]) + " chat cluster"
    redis = Redis()
    procs = []
    try:
        redis.start()
        try:
            pa, port_a = e2e.start_server(cmd + ["--redis", redis.url, "--node", "1",
                                                 "--cluster-ttl", "1000"])
            procs.append(pa)
            pb, port_b = e2e.start_server(cmd + ["--redis", redis.url])
            procs.append(pb)
        except Exception as e:  # noqa: BLE001
            report(label + " nodes start", False, str(e))
            return 1
        report(label + " nodes start", True)
        asyncio.run(run(port_a, port_b, redis, cmd))
    finally:
        for i, p in enumerate(procs):
            e2e.stop_server(p, "%s node %s" % (label, "AB"[i]))
        redis.kill()
    return 0 if all(e2e.results) else 1


if __name__ == "__main__":
    sys.exit(main())
