"""The example programs, started as subprocesses with --port 0."""
import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import websockets

from conftest import ROOT, run


def test_echo_example(example):
    ex = example("echo_server.py", "--io-threads", "2", "--agents", "2")

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/" % ex.port) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00bin")
            assert await ws.recv() == b"\x00bin"

    run(client())
    assert ex.stop(signal.SIGINT) == 0


def test_chat_example(example):
    ex = example("chat_server.py")
    base = "ws://127.0.0.1:%d/chat" % ex.port

    async def client():
        async with websockets.connect(base) as a, websockets.connect(base) as b, \
                websockets.connect(base) as c:
            wa, wb, wc = [await ws.recv() for ws in (a, b, c)]
            assert wa.startswith("welcome #") and wb.startswith("welcome #")
            id_b = wb.split("#")[1]
            await a.send("/nick alice")
            assert await a.recv() == "ok nick alice"
            await b.send("/nick alice")
            assert await b.recv() == "error nick-taken alice"
            await a.send("/msg nobody hi")
            assert await a.recv() == "error no-such-user nobody"
            await c.send("/nick carol")
            assert await c.recv() == "ok nick carol"
            await a.send("/msg carol hello there")
            assert await a.recv() == "ok msg carol"
            assert await c.recv() == "msg alice hello there"
            await b.send("hi all")
            assert await a.recv() == "say #%s hi all" % id_b
            assert await c.recv() == "say #%s hi all" % id_b
            await a.send("bye")
            assert await b.recv() == "say alice bye"
            assert await c.recv() == "say alice bye"
            # the sender itself does not get its own line
            await asyncio.sleep(0.1)
            try:
                extra = await asyncio.wait_for(a.recv(), 0.2)
            except asyncio.TimeoutError:
                extra = None
            assert extra is None

    run(client())
    assert ex.stop(signal.SIGTERM) == 0


class Lines:
    """A program whose output lines are read on a thread, to wait for them."""

    def __init__(self, argv) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.seen = []
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The next line that contains ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no line with %r in %g s; got %r"
                                     % (text, timeout, self.seen)) from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self, sig) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def spawn():
    started = []

    def start(argv):
        p = Lines(argv)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def chat_server_argv(kind: str):
    """The Python example, or the C one of the build tree ($WEBSOCK_BUILD_DIR,
    default build/) when it is built."""
    if kind == "python":
        return [sys.executable, "-P", os.path.join(ROOT, "examples", "python", "chat_server.py")]
    build = os.path.join(ROOT, os.environ.get("WEBSOCK_BUILD_DIR", "build"))
    exe = os.path.join(build, "examples", "chat_server")
    if not os.access(exe, os.X_OK):
        pytest.skip("%s not built (set WEBSOCK_BUILD_DIR)" % exe)
    return [exe]


async def ping(url: str, nick: str) -> None:
    """A client with a nick of its own sends "/msg NICK ping"; NICK answers."""
    async with websockets.connect(url) as ws:
        assert (await ws.recv()).startswith("welcome #")
        await ws.send("/nick tester")
        assert await ws.recv() == "ok nick tester"
        await ws.send("/msg %s ping" % nick)
        # in either order: the pong may overtake the server's "ok" (agents)
        assert {await ws.recv(), await ws.recv()} == {"ok msg " + nick, "msg %s pong" % nick}


@pytest.mark.parametrize("server", ["python", "c"])
def test_chat_bot_reconnects(server, spawn):
    """chat_bot.py answers pings, reconnects when the chat server restarts
    on the same port (one "retry in" line per attempt), stops on SIGTERM."""
    argv = chat_server_argv(server)
    srv = spawn(argv + ["--port", "0"])
    port = int(srv.wait_for("listening on ").split()[-1])
    url = "ws://127.0.0.1:%d/chat" % port
    bot_argv = [sys.executable, "-P", os.path.join(ROOT, "examples", "python", "chat_bot.py"),
                "--url", url]

    async def scenario():
        nonlocal srv
        # "bot" is taken: the bot joins as bot2.
        async with websockets.connect(url) as holder:
            await holder.recv()
            await holder.send("/nick bot")
            assert await holder.recv() == "ok nick bot"
            bot = spawn(bot_argv)
            assert await asyncio.to_thread(bot.wait_for, "joined as ") == "joined as bot2"
            await ping(url, "bot2")

        # The server goes away: the bot's attempts fail, one line each,
        # until the server is back on the same port.
        assert srv.stop(signal.SIGTERM) == 0
        dropped = await asyncio.to_thread(bot.wait_for, "retry in ")
        assert " s: closed with 1001" in dropped            # going away
        assert "s: connect: Connection refused" in \
            await asyncio.to_thread(bot.wait_for, "retry in ")
        srv = spawn(argv + ["--port", str(port)])
        await asyncio.to_thread(srv.wait_for, "listening on %d" % port)
        assert await asyncio.to_thread(bot.wait_for, "joined as ") == "joined as bot"
        await ping(url, "bot")

        assert bot.stop(signal.SIGTERM) == 0
        assert await asyncio.to_thread(bot.wait_for, "stopped", 2) == "stopped"
        return bot.seen

    t0 = time.monotonic()
    seen = run(scenario(), 25)
    assert time.monotonic() - t0 < 25
    assert seen.count("connected to " + url) == 2
    assert srv.stop(signal.SIGTERM) == 0
