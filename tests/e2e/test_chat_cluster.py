"""The chat example on a cluster through Redis: a redis-server of the
test's own on a free loopback port, three chat server processes on it,
clients on different nodes (see the protocol in examples/chat_server.c).

Each test starts its own Redis and three nodes (numbers drawn from Redis:
no --node), with a short --cluster-ttl so a killed node's nicks are free
quickly, and waits until every node hears the others before it begins.
The implementation is a parameter: IMPLS lists (name, argv builder); a
builder returns (argv, env) for node i, or None when that server is not
built (the test is then skipped); "mixed" is one cluster of a C, a Python
and a Lua node. Every wait is bounded.
"""
import asyncio
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD_DIR, REPO, binary_path
from chatter import barrier, join_url
from wsraw import run

TTL_MS = 1000          # --cluster-ttl of every node
START_TIMEOUT = 10     # a node printing "listening on PORT", Redis answering
STOP_TIMEOUT = 10      # SIGTERM -> exit 0
SETTLE_TIMEOUT = 10    # every node hearing the others
# Node modes (io threads, agents): the three nodes differ, so one run
# covers inline callbacks, agents and several I/O threads.
NODE_MODES = [(1, 0), (2, 2), (1, 2)]


def _c_argv(url, io, agents, i=0):
    path = binary_path("chat_server")
    if not os.path.exists(path):
        return None
    return [path, "--port", "0", "--io-threads", str(io), "--agents",
            str(agents), "--redis", url, "--cluster-ttl", str(TTL_MS)], {}


def _python_argv(url, io, agents, i=0):
    python = os.path.join(BUILD_DIR, "venv", "bin", "python")
    if not os.path.exists(python):  # the package installed in BUILD/venv
        return None
    return [python, os.path.join(REPO, "examples", "python", "chat_server.py"),
            "--port", "0", "--io-threads", str(io), "--agents", str(agents),
            "--redis", url, "--cluster-ttl", str(TTL_MS)], \
        {"PYTHONDONTWRITEBYTECODE": "1"}


def _lua_argv(url, io, agents, i=0):
    lua = shutil.which("lua5.4")
    if not lua or not os.path.isdir(os.path.join(BUILD_DIR, "lua", "5.4")):
        return None
    env = {"LUA_PATH": os.path.join(BUILD_DIR, "lua", "share", "?.lua") + ";;",
           "LUA_CPATH": os.path.join(BUILD_DIR, "lua", "5.4", "?.so") + ";;"}
    return [lua, os.path.join(REPO, "examples", "lua", "chat_server.lua"),
            "--port", "0", "--io-threads", str(io), "--agents", str(agents),
            "--redis", url, "--cluster-ttl", str(TTL_MS)], env


def _mixed_argv(url, io, agents, i):
    """Node 1 C, node 2 Python, node 3 Lua: one cluster of all three."""
    return (_c_argv, _python_argv, _lua_argv)[i](url, io, agents)


IMPLS = [("c", _c_argv), ("python", _python_argv), ("lua", _lua_argv),
         ("mixed", _mixed_argv)]


@pytest.fixture(params=IMPLS, ids=[name for name, _ in IMPLS])
def impl(request):
    return request.param


# ---- processes ----------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on 127.0.0.1, no persistence: a restart forgets all."""

    def __init__(self):
        self.exe = shutil.which("redis-server")
        if not self.exe:
            why = "redis-server not installed (apt-get install redis-server)"
            if os.environ.get("CI"):  # .ci/run installs it
                pytest.fail(why)
            pytest.skip(why)
        self.proc = None
        for _ in range(5):  # a free port taken meanwhile: try another
            self.port = free_port()
            if self.start():
                return
        raise AssertionError("redis-server did not start: %s" % self.log())

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        """Starts it on self.port; True once it answers PING."""
        self.logf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        return False

    def call(self, *args):
        """Sends one command; returns the raw reply."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=2) as s:
            s.sendall(out)
            return s.recv(4096)

    def log(self):
        self.logf.seek(0)
        return self.logf.read().decode("utf-8", "replace")[-2000:]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Node:
    """One chat server process; its port read from "listening on PORT"."""

    def __init__(self, argv, env):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=self.stderr,
                                     env=dict(os.environ, **env))
        self.port = None
        self.exit_code = None

    def wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        out = b""
        while b"\n" not in out:
            r, _, _ = select.select([self.proc.stdout], [], [],
                                    max(deadline - time.monotonic(), 0))
            if not r:
                raise AssertionError("no 'listening on PORT' within %ds: %s"
                                     % (START_TIMEOUT, self.stderr_text()))
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.proc.wait()
                raise AssertionError("exited %r before listening: %s" %
                                     (self.proc.returncode,
                                      self.stderr_text()))
            out += chunk
        line = out.split(b"\n", 1)[0].decode()
        assert re.fullmatch(r"listening on \d+", line), line
        self.port = int(line.split()[-1])

    def url(self):
        return "ws://127.0.0.1:%d/chat" % self.port

    def number(self):
        """Its node number, as it printed it on stderr."""
        m = re.search(r"\bnode (\d+)", self.stderr_text())
        assert m, self.stderr_text()
        return int(m.group(1))

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-3000:]

    def sigkill(self):
        self.proc.kill()
        self.proc.wait()
        self.exit_code = "killed"

    def stop(self):
        """SIGTERM; the exit code, or "hung" (then killed)."""
        if self.exit_code is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_code = "hung"
        return self.exit_code


@pytest.fixture
def cluster(impl):
    """(redis, [node1, node2, node3], implementation name), every node
    hearing the others. At teardown every node not killed by the test must
    exit 0 on SIGTERM."""
    name, argv = impl
    redis = Redis()
    nodes = []
    try:
        for i, (io, agents) in enumerate(NODE_MODES):
            spec = argv(redis.url, io, agents, i)
            if spec is None:
                why = "this chat server is not built in %s" % BUILD_DIR
                if os.environ.get("CI"):  # CI builds every one of them
                    pytest.fail(why)
                pytest.skip(why)
            nodes.append(Node(*spec))
        for n in nodes:  # started together: they draw their numbers at once
            n.wait_listening()
        run(settle(nodes), timeout=SETTLE_TIMEOUT + 5)
        yield redis, nodes, name
    finally:
        errors = []
        for i, n in enumerate(nodes):
            code = n.stop()
            if code not in (0, "killed"):
                errors.append("node %d exited %r: %s" %
                              (i + 1, code, n.stderr_text()))
        redis.kill()
        assert not errors, "\n".join(errors)


# ---- clients ------------------------------------------------------------


async def join(node):
    return await join_url(node.url())


async def send_msg(sender, name, text, timeout=3):
    """/msg NAME TEXT, again while the answer is no-such-user: a nick just
    claimed on another node reaches this node's directory a moment after
    its owner's "ok nick" (milliseconds; longer on a loaded machine).
    Exactly one copy is delivered."""
    async def sent():
        r = await sender.request("/msg %s %s" % (name, text))
        assert r in ("ok msg " + name, "error no-such-user " + name), r
        return r == "ok msg " + name
    await eventually(sent, timeout, "/msg %s known" % name)


async def eventually(step, timeout, what):
    """Calls |step| (a coroutine function returning True when done) every
    50 ms until it is done; fails after |timeout| seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await step():
            return loop.time() - (deadline - timeout)
        if loop.time() > deadline:
            raise AssertionError("%s: not within %.1f s" % (what, timeout))
        await asyncio.sleep(0.05)


async def settle_lines(sender, line, members, match, timeout=SETTLE_TIMEOUT):
    """Sends |line|-k (a say or a /room line; the sender reads its answer
    when |line| is a command) until every member has received one (a
    node's subscription may still be on its way to Redis), then a last
    |line|-done that every member reads up to: afterwards nothing of this
    is in flight to them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    heard = set()
    k = 0
    while len(heard) < len(members):
        assert loop.time() < deadline, \
            "%r never reached %d of %d members" % (
                line, len(members) - len(heard), len(members))
        k += 1
        await sender.send("%s-%d" % (line, k))
        if line.startswith("/"):
            assert (await sender.recv()).startswith("ok ")
        for i, m in enumerate(members):
            if i in heard:
                continue
            got = await m.poll(0.05)
            if got is not None:
                assert match(got), got
                heard.add(i)
    await sender.send(line + "-done")
    if line.startswith("/"):
        assert (await sender.recv()).startswith("ok ")
    done = " %s-done" % line.split()[-1]
    for m in members:
        for got in await m.recv_until(lambda s: s.endswith(done)):
            assert match(got), got


async def settle(nodes):
    """Waits until each node is up in Redis (a /nick is accepted) and
    hears the others' broadcasts."""
    probes = [await join(n) for n in nodes]
    for i, p in enumerate(probes):
        async def nick_ok(p=p, i=i):
            r = await p.request("/nick probe-%d" % i)
            assert r in ("ok nick probe-%d" % i,
                         "error cluster-down probe-%d" % i), r
            return r.startswith("ok")
        await eventually(nick_ok, SETTLE_TIMEOUT, "node %d up" % (i + 1))
    for i, p in enumerate(probes):
        others = [q for q in probes if q is not p]
        await settle_lines(p, "ready", others,
                           lambda s: s.startswith("say probe-"))
    for p in probes:
        await p.close()


async def join_all(nodes, where):
    """Clients on nodes[where[0]], nodes[where[1]], ..."""
    return [await join(nodes[w]) for w in where]


async def close_all(cs):
    for c in cs:
        await c.close()


# ---- tests --------------------------------------------------------------


def test_nicks_unique_across_nodes(cluster):
    _, nodes, _ = cluster

    async def main():
        a, b, c = await join_all(nodes, (0, 1, 2))
        await a.nick("alice")
        assert await b.request("/nick alice") == "error nick-taken alice"
        assert await c.request("/nick alice") == "error nick-taken alice"
        await b.nick("bob")
        assert await c.request("/nick bob") == "error nick-taken bob"
        assert await a.request("/nick bob") == "error nick-taken bob"
        # a refused bob keeps alice, as on one server: b and c still see
        # a as alice.
        await a.send("still alice")
        assert await b.recv() == "say alice still alice"
        assert await c.recv() == "say alice still alice"
        # A nick given up on one node is free on the others: a renames,
        # then c (another node) may take alice.
        await a.nick("alice2")

        async def c_takes_alice():
            r = await c.request("/nick alice")
            assert r in ("ok nick alice", "error nick-taken alice"), r
            return r == "ok nick alice"
        await eventually(c_takes_alice, 3, "alice free after the rename")
        assert await b.request("/nick alice") == "error nick-taken alice"
        # ... and a nick whose client left, too.
        await b.close()

        async def a_takes_bob():
            r = await a.request("/nick bob")
            assert r in ("ok nick bob", "error nick-taken bob"), r
            return r == "ok nick bob"
        await eventually(a_takes_bob, 3, "bob free after b left")
        await close_all((a, c))
    run(main())


def test_simultaneous_nick_race_across_nodes(cluster):
    """Two clients on two nodes ask for one nick at the same moment:
    exactly one gets it, and the loser is never shown with it. In odd
    rounds both had a nick before: the loser keeps it, cluster-wide, as a
    refused /nick on one server does. Each sends a line with its /nick, in
    one write: handled while both claims wait for Redis, it shows the
    nick of before."""
    _, nodes, _ = cluster

    async def main():
        z = await join(nodes[2])  # watches the says
        for k in range(12):
            x, y = await join_all(nodes, (0, 1))
            old = {x: x.anon, y: y.anon}
            if k % 2:
                old = {x: "x-%d" % k, y: "y-%d" % k}
                await x.nick(old[x])
                await y.nick(old[y])
            name = "racer-%d" % k
            racing = "racing %d" % k
            await asyncio.gather(x.send_together(["/nick " + name, racing]),
                                 y.send_together(["/nick " + name, racing]))

            async def answer(me, other):
                """|me|'s answer; the other's line may come before it."""
                got = [await me.recv(), await me.recv()]
                line = "say %s %s" % (old[other], racing)
                assert line in got, (got, line)
                got.remove(line)
                return got[0]
            rx, ry = await asyncio.gather(answer(x, y), answer(y, x))
            assert sorted([await z.recv(), await z.recv()]) == sorted(
                "say %s %s" % (old[c], racing) for c in (x, y))
            replies = sorted([rx, ry])
            assert replies == ["error nick-taken " + name,
                               "ok nick " + name], (rx, ry)
            win, lose = (x, y) if rx.startswith("ok") else (y, x)
            await win.send("round %d" % k)
            assert await z.recv() == "say %s round %d" % (name, k)
            await lose.send("round %d" % k)
            shown = await z.recv()
            assert shown == "say %s round %d" % (old[lose], k), shown
            await send_msg(z, name, "hi")
            assert await lose.recv() == "say %s round %d" % (name, k)
            if k % 2:  # its old nick, still its own
                await send_msg(z, old[lose], "still yours?")
                assert await lose.recv() == "msg #%d still yours?" % z.id
            # The winner got the loser's round line and z's /msg (two
            # senders: in either order); nothing else came.
            assert sorted([await win.recv(), await win.recv()]) == sorted([
                "msg #%d hi" % z.id, shown])
            if k % 2:
                assert await win.request("/nick " + old[lose]) == \
                    "error nick-taken " + old[lose]
            await barrier(win)
            await barrier(lose)
            await close_all((x, y))
        await z.close()
    run(main())


def test_nick_pending_keeps_old_nick(cluster):
    """While a /nick waits for Redis the sender is still shown with its
    nick of before, and a refused /nick keeps that nick, cluster-wide; /nick
    lines sent together (a repeated one among them) get one answer each,
    in the order sent, as on one server. Each group of lines goes in one
    TCP write, so the server has read them all before Redis answers the
    first claim: the lines after a /nick are handled while it is
    pending."""
    _, nodes, _ = cluster

    async def main():
        a, b, w = await join_all(nodes, (0, 1, 2))
        await a.nick("ann")
        await b.nick("ben")

        async def heard(line):  # by b and w, on the other two nodes
            for x in (b, w):
                assert await x.recv() == line

        async def answers(n):
            return [await a.recv() for _ in range(n)]

        # Granted: the line sent while it was pending shows the old nick.
        await a.send_together(["/nick ann2", "asking for ann2"])
        assert await a.recv() == "ok nick ann2"
        await heard("say ann asking for ann2")
        await a.send("now ann2")
        await heard("say ann2 now ann2")
        # Refused (ben is b's): ann2 stays a's, while pending and after.
        await a.send_together(["/nick ben", "asking for ben"])
        assert await a.recv() == "error nick-taken ben"
        await heard("say ann2 asking for ben")
        await a.send("refused ben")
        await heard("say ann2 refused ben")
        await send_msg(w, "ann2", "still yours?")
        assert await a.recv() == "msg %s still yours?" % w.anon
        # Several before the first answer, one asked twice in a row and
        # one asked again after another.
        await a.send_together(["/nick p1", "/nick p2", "/nick p2",
                               "/nick p1", "asking for four"])
        assert await answers(4) == ["ok nick p1", "ok nick p2",
                                    "ok nick p2", "ok nick p1"]
        await heard("say ann2 asking for four")
        await a.send("now p1")
        await heard("say p1 now p1")
        # A refused one among them answers in its turn and leaves the
        # nick the one before gave.
        await a.send_together(["/nick p3", "/nick ben", "/nick p3",
                               "asking for three"])
        assert await answers(3) == ["ok nick p3", "error nick-taken ben",
                                    "ok nick p3"]
        await heard("say p1 asking for three")
        await a.send("now p3")
        await heard("say p3 now p3")
        # The nicks a went through are free again, on the other nodes too.
        for x, name in ((b, "p2"), (w, "ann2"), (w, "p1")):
            async def takes(x=x, name=name):
                r = await x.request("/nick " + name)
                assert r in ("ok nick " + name,
                             "error nick-taken " + name), r
                return r == "ok nick " + name
            await eventually(takes, 3, "%s free" % name)
        assert await b.request("/nick p3") == "error nick-taken p3"
        for x in (a, b, w):
            await barrier(x)
        await close_all((a, b, w))
    run(main())


def test_nick_refused_by_redis_after_one_granted(cluster):
    """/nick p and /nick X sent together, X refused by Redis itself (held
    there for a live node, planted, so the asking node has not heard of it
    and asks Redis): ok nick p, then error nick-taken X, and the client is
    p afterwards, as on one server."""
    redis, nodes, _ = cluster

    async def main():
        a, w = await join_all(nodes, (0, 2))
        await a.nick("ann")
        b = nodes[1].number()
        assert redis.call("HSET", "websock:tags", "planted",
                          "%d:%d" % (b, b << 43 | 4242)) == b":1\r\n"
        await a.send_together(["/nick p", "/nick planted", "while asking"])
        assert [await a.recv(), await a.recv()] == [
            "ok nick p", "error nick-taken planted"]
        assert await w.recv() == "say ann while asking"
        await a.send("after")
        assert await w.recv() == "say p after"
        await send_msg(w, "p", "yours?")
        assert await a.recv() == "msg %s yours?" % w.anon
        for x in (a, w):
            await barrier(x)
        await close_all((a, w))
    run(main())


def test_msg_across_nodes(cluster):
    _, nodes, _ = cluster

    async def main():
        a, b, c = await join_all(nodes, (0, 1, 2))
        for x, name in ((a, "alice"), (b, "bob"), (c, "carl")):
            await x.nick(name)
        await send_msg(a, "bob", "hello bob")
        assert await b.recv() == "msg alice hello bob"
        await send_msg(c, "alice", "from node three")
        assert await a.recv() == "msg carl from node three"
        await send_msg(b, "carl", "grüße 😀")
        assert await c.recv() == "msg bob grüße 😀"
        assert await a.request("/msg ghost boo") == "error no-such-user ghost"
        # An anonymous sender shows as its id, on every node.
        d = await join(nodes[2])
        await send_msg(d, "alice", "who am i")
        assert await a.recv() == "msg %s who am i" % d.anon
        for x in (a, b, c, d):  # nobody got anything else
            await barrier(x)
        # A nick that left: no-such-user on the other nodes soon.
        await b.close()

        async def gone():
            r = await a.request("/msg bob still there?")
            assert r in ("ok msg bob", "error no-such-user bob"), r
            return r == "error no-such-user bob"
        await eventually(gone, 3, "bob unknown after it left")
        await close_all((a, c, d))
    run(main())


def test_rooms_across_nodes(cluster):
    _, nodes, _ = cluster

    async def main():
        a, b, c, d = await join_all(nodes, (0, 1, 2, 0))
        for x, name in ((a, "ann"), (b, "bob"), (c, "cid"), (d, "dee")):
            await x.nick(name)
        for x in (a, b, c):
            assert await x.request("/join lobby") == "ok join lobby"
        assert await d.request("/room lobby hi") == "error not-in-room lobby"
        # The first member of a node subscribes it in Redis: wait until
        # a's room lines reach b and c.
        await settle_lines(a, "/room lobby sync", [b, c],
                           lambda s: s.startswith("room lobby ann sync-"))
        assert await a.request("/room lobby hello all") == "ok room lobby"
        assert await b.recv() == "room lobby ann hello all"
        assert await c.recv() == "room lobby ann hello all"
        assert await c.request("/room lobby hi from three") == "ok room lobby"
        assert await a.recv() == "room lobby cid hi from three"
        assert await b.recv() == "room lobby cid hi from three"
        for x in (a, b, c, d):  # not the senders, not the stranger
            await barrier(x)
        # c leaves: it hears no more, and may not talk there.
        assert await c.request("/leave lobby") == "ok leave lobby"
        assert await c.request("/room lobby x") == "error not-in-room lobby"
        assert await b.request("/room lobby anyone?") == "ok room lobby"
        assert await a.recv() == "room lobby bob anyone?"
        await barrier(c)
        await barrier(d)
        # Another room, on two nodes, is apart from the first.
        assert await d.request("/join kitchen") == "ok join kitchen"
        assert await c.request("/join kitchen") == "ok join kitchen"
        await settle_lines(c, "/room kitchen sync", [d],
                           lambda s: s.startswith("room kitchen cid sync-"))
        assert await d.request("/room kitchen tea?") == "ok room kitchen"
        assert await c.recv() == "room kitchen dee tea?"
        await barrier(a)
        await barrier(b)
        await close_all((a, b, c, d))
    run(main())


def test_say_across_nodes(cluster):
    _, nodes, _ = cluster

    async def main():
        cs = await join_all(nodes, (0, 1, 2, 1))
        await cs[0].nick("ann")
        await cs[0].send("hello everyone")
        for c in cs[1:]:
            assert await c.recv() == "say ann hello everyone"
        await cs[2].send("no nick on node three")
        for c in (cs[0], cs[1], cs[3]):
            assert await c.recv() == "say %s no nick on node three" % \
                cs[2].anon
        for c in cs:  # the senders did not get their own lines
            await barrier(c)
        await close_all(cs)
    run(main())


def test_order_per_sender_across_nodes(cluster):
    """300 numbered lines from one client, mixed say, /msg and /room, in
    one burst: a client on each other node gets its share in order."""
    _, nodes, _ = cluster

    async def main():
        a, b, c = await join_all(nodes, (0, 1, 2))
        await a.nick("talker")
        await b.nick("hearer")
        for x in (a, b):
            assert await x.request("/join r") == "ok join r"
        await settle_lines(a, "/room r sync", [b],
                           lambda s: s.startswith("room r talker sync-"))
        await send_msg(a, "hearer", "known?")
        assert await b.recv() == "msg talker known?"
        want_b, want_c, want_a = [], [], []
        lines = []
        for i in range(300):
            kind = i % 3
            if kind == 0:
                lines.append("line %d" % i)
                want_b.append("say talker line %d" % i)
                want_c.append("say talker line %d" % i)
            elif kind == 1:
                lines.append("/msg hearer line %d" % i)
                want_b.append("msg talker line %d" % i)
                want_a.append("ok msg hearer")
            else:
                lines.append("/room r line %d" % i)
                want_b.append("room r talker line %d" % i)
                want_a.append("ok room r")
        for line in lines:
            await a.send(line)
        got_a = [await a.recv() for _ in want_a]
        got_b = [await b.recv() for _ in want_b]
        got_c = [await c.recv() for _ in want_c]
        assert got_a == want_a
        assert got_b == want_b
        assert got_c == want_c
        for x in (a, b, c):
            await barrier(x)
        await close_all((a, b, c))
    run(main())


def test_node_killed_frees_its_nicks(cluster):
    """Node 3 dies by SIGKILL: its nicks are free for the others within
    ttl + ttl/10 (+ slack for a loaded machine), and the clients of nodes
    1 and 2 chat on."""
    _, nodes, _ = cluster
    bound = (TTL_MS + TTL_MS / 10) / 1000 + 1.0

    async def main():
        a, b, v = await join_all(nodes, (0, 1, 2))
        await a.nick("alice")
        await b.nick("bob")
        await v.nick("victim")
        await send_msg(a, "victim", "hi")
        assert await v.recv() == "msg alice hi"
        assert await a.request("/nick victim") == "error nick-taken victim"
        nodes[2].sigkill()
        t0 = asyncio.get_running_loop().time()

        async def a_takes_victim():
            r = await a.request("/nick victim")
            assert r in ("ok nick victim", "error nick-taken victim"), r
            return r == "ok nick victim"
        await eventually(a_takes_victim, bound + 2, "victim freed")
        took = asyncio.get_running_loop().time() - t0
        assert took < bound, "victim freed after %.2f s (bound %.2f s)" % (
            took, bound)
        # The other two nodes chat on, and know who is where.
        await a.send("still here")
        assert await b.recv() == "say victim still here"
        await send_msg(b, "victim", "across")
        assert await a.recv() == "msg bob across"
        await send_msg(a, "bob", "back")
        assert await b.recv() == "msg victim back"
        assert await b.request("/join r") == "ok join r"
        assert await a.request("/join r") == "ok join r"
        await settle_lines(a, "/room r sync", [b],
                           lambda s: s.startswith("room r victim sync-"))
        await barrier(a)
        await barrier(b)
        await close_all((a, b))
    run(main())


def test_redis_restart(cluster):
    """Redis killed and started again on the same port: while it is away a
    cross-node /msg and a new nick say cluster-down, local chat goes on;
    then service resumes within a bounded wait, the nicks held before are
    still held (another node's /nick of one is refused) and /msg crosses
    again."""
    redis, nodes, _ = cluster

    async def main():
        a, b, c, a2 = await join_all(nodes, (0, 1, 2, 0))
        for x, name in ((a, "alice"), (b, "bob"), (c, "carl")):
            await x.nick(name)
        redis.kill()

        async def down():
            r = await a.request("/msg ghost ping")
            assert r in ("error no-such-user ghost",
                         "error cluster-down ghost"), r
            return r == "error cluster-down ghost"
        await eventually(down, 5, "cluster-down while Redis is away")
        assert await a.request("/msg bob hi") == "error cluster-down bob"
        assert await a.request("/nick newname") == \
            "error cluster-down newname"
        # Local delivery goes on: a2 shares a's node.
        await a.send("local only")
        assert await a2.recv() == "say alice local only"
        assert await a2.request("/msg alice psst") == "ok msg alice"
        assert await a.recv() == "msg %s psst" % a2.anon
        assert redis.start(), "redis-server did not start again: %s" % (
            redis.log())

        # Back: c (node 3) reaches alice (node 1), which node 1 has claimed
        # again, and b's node reaches carl.
        async def crosses():
            r = await c.request("/msg alice are you back?")
            assert r in ("ok msg alice", "error no-such-user alice",
                         "error cluster-down alice"), r
            return r == "ok msg alice"
        # (The link retries with back-off, 0.1 s doubling to 5 s.)
        await eventually(crosses, 12, "service resumed")
        assert await a.recv() == "msg carl are you back?"

        async def b_to_carl():
            r = await b.request("/msg carl and me?")
            assert r in ("ok msg carl", "error no-such-user carl",
                         "error cluster-down carl"), r
            return r == "ok msg carl"
        await eventually(b_to_carl, 5, "node 2 back")
        assert await c.recv() == "msg bob and me?"
        # The nicks held before are still held, cluster-wide.
        assert await c.request("/nick alice") == "error nick-taken alice"
        assert await a.request("/nick bob") == "error nick-taken bob"
        assert await b.request("/nick carl") == "error nick-taken carl"
        await a.nick("newname")
        # Say crosses again too; nobody lost a nick on the way.
        await a.send("back again")
        for x in (a2, b, c):
            skipped = await x.recv_until(
                lambda s: s == "say newname back again")
            assert not [s for s in skipped if "nick-lost" in s], skipped
        for x in (a, a2, b, c):
            await barrier(x)
        await close_all((a, b, c, a2))
    run(main())
