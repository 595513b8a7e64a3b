#!/usr/bin/python3
"""End-to-end checks of the Lua example servers, driven with Debian's
python3-websockets (run with /usr/bin/python3).

    e2e.py echo|chat -- CMD...     (CMD is started with "--port 0" appended)

Starts CMD, reads "listening on PORT", runs the checks, sends SIGTERM and
checks a clean exit. The client offers permessage-deflate (the websockets
default): the echo server answers it with --deflate or
--deflate-dedicated only, the chat server unless --no-deflate. Prints one "PASS name" / "FAIL name: why" line per
check. Everything is bounded in time; only the started process is killed.
"""
import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import websockets

TIMEOUT = 10.0
results = []


def report(name, ok, why=""):
    results.append(ok)
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


async def check(name, coro):
    try:
        await asyncio.wait_for(coro, TIMEOUT)
        report(name, True)
    except Exception as e:  # noqa: BLE001 - report everything
        report(name, False, "%s: %s" % (type(e).__name__, e))


def start_server(cmd):
    proc = subprocess.Popen(cmd + ["--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    deadline = time.time() + TIMEOUT
    line = ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = re.match(r"listening on (\d+)\s*$", line)
        if m:
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError("server did not start: %r" % line)


def stop_server(proc, name):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=TIMEOUT)
        report(name + " exits cleanly on SIGTERM", rc == 0, "exit code %r" % rc)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        report(name + " exits cleanly on SIGTERM", False, "still running")


# ---------------------------------------------------------------- echo
async def echo_text(url):
    async with websockets.connect(url) as ws:
        for msg in ["hello", "", "héllo wörld ✓", "x" * 70000]:
            await ws.send(msg)
            got = await ws.recv()
            assert got == msg and isinstance(got, str), repr(got)[:80]


async def echo_binary(url):
    async with websockets.connect(url, max_size=None) as ws:
        payloads = [bytes(range(256)), b"\x00", b"a\x00b\x00c", b"", os.urandom(300000)]
        for p in payloads:
            await ws.send(p)
            got = await ws.recv()
            assert got == p and isinstance(got, bytes), repr(got)[:80]


async def echo_concurrent(url):
    async def one(k):
        async with websockets.connect(url) as ws:
            for i in range(50):
                await ws.send("c%d-m%d" % (k, i))
            for i in range(50):
                got = await ws.recv()
                assert got == "c%d-m%d" % (k, i), got
    await asyncio.gather(*(one(k) for k in range(20)))


async def echo_close_code(url):
    async with websockets.connect(url) as ws:
        await ws.send("bye")
        assert await ws.recv() == "bye"
        await ws.close(code=4000, reason="done")
        assert ws.close_code == 4000, ws.close_code


async def deflate_answer(url, want, chat):
    async with websockets.connect(url) as ws:
        got = ws.response_headers.get("Sec-WebSocket-Extensions")
        if want is None:
            assert got is None, "answered %r" % got
        else:
            assert got is not None and got.startswith(want), "answered %r" % got
        if chat:
            await welcome(ws)
        else:
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000


def deflate_check(url, on, mode, chat=False):
    want = None
    if on:
        want = "permessage-deflate"
        if mode == "shared":
            want += "; server_no_context_takeover; client_no_context_takeover"
    name = ("permessage-deflate negotiated (%s)" % mode) if on else \
        "no permessage-deflate in the 101"
    return check(name, deflate_answer(url, want, chat))


async def run_echo(port, cmd):
    url = "ws://127.0.0.1:%d/" % port
    on = "--deflate" in cmd or "--deflate-dedicated" in cmd
    await deflate_check(url, on, "dedicated" if "--deflate-dedicated" in cmd else "shared")
    await check("echo text (utf-8, empty, 70 kB)", echo_text(url))
    await check("echo binary (NUL bytes, 300 kB)", echo_binary(url))
    await check("echo 20 clients x 50 messages in order", echo_concurrent(url))
    await check("echo client close handshake", echo_close_code(url))


# ---------------------------------------------------------------- chat
async def welcome(ws):
    msg = await ws.recv()
    m = re.fullmatch(r"welcome #(\d+)", msg)
    assert m, "bad welcome %r" % msg
    return int(m.group(1))


async def no_message(ws, secs=0.3):
    try:
        msg = await asyncio.wait_for(ws.recv(), secs)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected message %r" % msg)


async def chat_flow(url):
    async with websockets.connect(url) as a, websockets.connect(url) as b, \
            websockets.connect(url) as c:
        ida, idb, idc = await welcome(a), await welcome(b), await welcome(c)
        assert len({ida, idb, idc}) == 3
        await a.send("/nick alice")
        assert await a.recv() == "ok nick alice"
        await b.send("/nick alice")
        assert await b.recv() == "error nick-taken alice"
        await b.send("/nick bob")
        assert await b.recv() == "ok nick bob"
        await b.send("/msg alice hi there")
        assert await a.recv() == "msg bob hi there"
        assert await b.recv() == "ok msg alice"
        await c.send("/msg alice psst")
        assert await a.recv() == "msg #%d psst" % idc
        assert await c.recv() == "ok msg alice"
        await a.send("/msg nobody x")
        assert await a.recv() == "error no-such-user nobody"
        await a.send("hello all")
        assert await b.recv() == "say alice hello all"
        assert await c.recv() == "say alice hello all"
        await no_message(a)
        await c.send("from c")
        assert await a.recv() == "say #%d from c" % idc
        assert await b.recv() == "say #%d from c" % idc


async def chat_nick_released(url):
    async with websockets.connect(url) as a:
        await welcome(a)
        await a.send("/nick carol")
        assert await a.recv() == "ok nick carol"
    deadline = time.time() + 5
    while True:  # the close is processed asynchronously
        async with websockets.connect(url) as b:
            await welcome(b)
            await b.send("/nick carol")
            got = await b.recv()
            if got == "ok nick carol":
                return
            assert got == "error nick-taken carol", got
        assert time.time() < deadline, "nick never released"
        await asyncio.sleep(0.05)


async def chat_pipelined_nick(url):
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        await welcome(a)
        await welcome(b)
        await a.send("/nick dave")
        await a.send("right after")  # no wait: queued behind the /nick
        assert await a.recv() == "ok nick dave"
        assert await b.recv() == "say dave right after"


async def chat_rooms(url):
    async with websockets.connect(url) as a, websockets.connect(url) as b, \
            websockets.connect(url) as c:
        ida, idb, idc = await welcome(a), await welcome(b), await welcome(c)
        for ws in (a, b):
            await ws.send("/join lobby")
            assert await ws.recv() == "ok join lobby"
        await a.send("/join lobby")  # again: still one membership
        assert await a.recv() == "ok join lobby"
        await a.send("/room lobby hi there")
        assert await a.recv() == "ok room lobby"
        assert await b.recv() == "room lobby #%d hi there" % ida
        await no_message(a)
        await no_message(c)
        await c.send("/room lobby let me in")
        assert await c.recv() == "error not-in-room lobby"
        await no_message(b)
        await b.send("/nick rob")
        assert await b.recv() == "ok nick rob"
        await b.send("/room lobby")  # no text
        assert await b.recv() == "ok room lobby"
        assert await a.recv() == "room lobby rob "
        await b.send("/leave lobby")
        assert await b.recv() == "ok leave lobby"
        await b.send("/leave lobby")  # not a member: still ok
        assert await b.recv() == "ok leave lobby"
        await a.send("/room lobby anyone?")
        assert await a.recv() == "ok room lobby"
        await no_message(b)
        await b.send("/room lobby back?")
        assert await b.recv() == "error not-in-room lobby"
        # names: 1..255 bytes, any but space
        for bad in ["/join ", "/join " + "r" * 256, "/leave ", "/room "]:
            await c.send(bad)
            assert await c.recv() == "error bad-room", bad
        long = "r" * 255
        await c.send("/join " + long)
        assert await c.recv() == "ok join " + long
        await a.send("/join " + long)
        assert await a.recv() == "ok join " + long
        await c.send("/room %s x y" % long)
        assert await c.recv() == "ok room " + long
        assert await a.recv() == "room %s #%d x y" % (long, idc)
        # a room message is no say: b, outside both rooms, got nothing
        await no_message(b)
        # "/join" without a name and a space is just talk
        await c.send("/join")
        assert await a.recv() == "say #%d /join" % idc
        assert await b.recv() == "say #%d /join" % idc


async def chat_room_left_on_close(url):
    async with websockets.connect(url) as a:
        await welcome(a)
        async with websockets.connect(url) as b:
            await welcome(b)
            await b.send("/join den")
            assert await b.recv() == "ok join den"
        await a.send("/join den")
        assert await a.recv() == "ok join den"
        await a.send("/room den alone?")
        assert await a.recv() == "ok room den"
        await no_message(a)


async def chat_wrong_path(port):
    try:
        async with websockets.connect("ws://127.0.0.1:%d/other" % port):
            pass
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == 404, e.status_code
        return
    raise AssertionError("upgrade on /other accepted")


async def run_chat(port, cmd):
    url = "ws://127.0.0.1:%d/chat" % port
    await deflate_check(url, "--no-deflate" not in cmd, "shared", chat=True)
    await check("chat welcome/nick/msg/say", chat_flow(url))
    await check("chat nick released on close", chat_nick_released(url))
    await check("chat nick applies to the next queued message", chat_pipelined_nick(url))
    await check("chat rooms: join/leave/room, not-in-room, bad-room, 255 bytes",
                chat_rooms(url))
    await check("chat rooms: a closed member is gone", chat_room_left_on_close(url))
    await check("chat only /chat upgrades (404)", chat_wrong_path(port))


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__)
        return 2
    kind, cmd = sys.argv[1], sys.argv[3:]
    label = os.path.basename(cmd[0]) + " " + kind + "".join(
        " " + a for a in cmd if a.startswith("--"))
    try:
        proc, port = start_server(cmd)
    except Exception as e:  # noqa: BLE001
        report(label + " server starts", False, str(e))
        return 1
    report(label + " server starts", True)
    try:
        asyncio.run(run_echo(port, cmd) if kind == "echo" else run_chat(port, cmd))
    finally:
        stop_server(proc, label)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
