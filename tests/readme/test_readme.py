"""Runs the README's Python and Lua quick starts as written (only the port
is changed to a free one) and talks to them with a real client, so the
README cannot rot. Needs WEBSOCK_BUILD_DIR with venv/ (the Python package)
and lua/ (the Lua modules). Run with Debian's /usr/bin/python3."""
import asyncio
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("WEBSOCK_BUILD_DIR", os.path.join(ROOT, "build")))


def readme_block(heading, lang):
    """The first ```lang block after the line `heading`."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("\n" + heading + "\n")
    m = re.compile(r"```%s\n(.*?)```" % lang, re.S).search(text, start)
    assert m, "no %s block after %r" % (lang, heading)
    return m.group(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path, name, code, old_port, cmd, env=None):
    port = free_port()
    assert str(old_port) in code
    path = tmp_path / name
    path.write_text(code.replace(str(old_port), str(port)))
    proc = subprocess.Popen(cmd + [str(path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("quick start did not listen")


def stop(proc, sig):
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.fixture
def python():
    py = os.path.join(BUILD, "venv", "bin", "python")
    if not os.path.exists(py):
        pytest.skip("no %s: install the package into BUILD/venv" % py)
    return [py, "-P"]


def test_python_threads_quick_start(tmp_path, python):
    code = readme_block("#### Quick start (threads)", "python")
    proc, port = start(tmp_path, "threads.py", code, 8765, python)

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/" % port) as ws:
            assert (await ws.recv()).startswith("welcome #")
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await ws.send(b"\x01\x02")
            assert await ws.recv() == b"\x01\x02"

    try:
        run(client())
    finally:
        stop(proc, signal.SIGINT)  # serve_forever: Ctrl-C stops gracefully
    assert proc.returncode == 0 or proc.returncode == -signal.SIGINT


def test_python_asyncio_quick_start(tmp_path, python):
    code = readme_block("#### Quick start (asyncio)", "python")
    proc, port = start(tmp_path, "aio.py", code, 8765, python)

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/" % port) as ws:
            await ws.send("echo me")
            assert await ws.recv() == "echo me"

    try:
        run(client())
    finally:
        stop(proc, signal.SIGTERM)


def test_lua_quick_start(tmp_path):
    lua_dir = os.path.join(BUILD, "lua")
    if not os.path.isdir(lua_dir):
        pytest.skip("no Lua modules in %s" % lua_dir)
    code = readme_block("#### Quick start", "lua")
    env = dict(os.environ,
               LUA_PATH=os.path.join(lua_dir, "share", "?.lua") + ";;",
               LUA_CPATH=os.path.join(lua_dir, "5.4", "?.so") + ";;")
    proc, port = start(tmp_path, "quick.lua", code, 8080, ["lua5.4"], env)

    async def client():
        url = "ws://127.0.0.1:%d/chat" % port
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            assert (await a.recv()).startswith("welcome #")
            assert (await b.recv()).startswith("welcome #")
            await a.send("/nick alice")
            assert await a.recv() == "ok"
            await b.send("/nick alice")
            assert "taken" in await b.recv()
            await a.send("hello")
            assert await b.recv() == "hello"  # broadcast to everyone else

    try:
        run(client())
    finally:
        stop(proc, signal.SIGTERM)  # catch_signals() makes run() return
    assert proc.returncode == 0


def _http_status(port, target, origin=None):
    """Status and body of an upgrade request for |target| (or a plain GET
    when it is "/health"), read with a raw socket."""
    head = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % target
    if target != "/health":
        head += ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    if origin:
        head += "Origin: %s\r\n" % origin
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((head + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or (not data.startswith(b"HTTP/1.1 101")
                                          and len(data.split(b"\r\n\r\n", 1)[1]) == 0):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_python_handshake_example(tmp_path, python):
    code = readme_block("#### Handshake (threads)", "python")
    proc, port = start(tmp_path, "handshake.py", code, 8765, python)

    async def client():
        url = "ws://127.0.0.1:%d/?token=s3cret" % port
        async with websockets.connect(url, subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            await ws.send("hi")
            assert await ws.recv() == "chat.v2: hi"

    try:
        run(client())
        assert _http_status(port, "/?token=wrong") == (401, b"unknown token\n")
        assert _http_status(port, "/") == (401, b"login first\n")
        assert _http_status(port, "/?token=s3cret", origin="https://evil.example")[0] == 403
        assert _http_status(port, "/health") == (200, b"ok\n")
    finally:
        stop(proc, signal.SIGINT)
    assert proc.returncode == 0 or proc.returncode == -signal.SIGINT
