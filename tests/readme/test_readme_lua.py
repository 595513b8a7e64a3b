"""Runs the Lua blocks of the README as written under Lua 5.4 (only the
port is changed to a free one; the TLS block also gets the paths of
certificates made with openssl) and talks to them with real clients, so the
README cannot rot. Needs WEBSOCK_BUILD_DIR with lua/ (the Lua modules). Run
with Debian's /usr/bin/python3."""
import asyncio
import os
import shutil
import signal
import ssl
import subprocess

import pytest
import websockets

from readme_helpers import BUILD, http_request, readme_block, readme_text, run, start, stop


def stopped(proc):
    """SIGTERM: the README's blocks catch it and return from run()."""
    stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, proc.communicate()


def test_lua_quick_start(tmp_path, lua54):
    cmd, env = lua54
    code = readme_block("#### Quick start", "lua")
    proc, port = start(tmp_path, "quick.lua", code, 8080, cmd, env)

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
        stopped(proc)


def test_lua_handshake_example(tmp_path, lua54):
    """#### Handshake (Lua): a token gets in with chat.v2 and a cookie, none
    gets 401 with its body and WWW-Authenticate, a foreign Origin 403, the
    health check 200; SIGTERM ends it with exit code 0."""
    cmd, env = lua54
    code = readme_block("#### Handshake (Lua)", "lua")
    proc, port = start(tmp_path, "handshake.lua", code, 8080, cmd, env)

    async def client():
        url = "ws://127.0.0.1:%d/?token=s3cret" % port
        async with websockets.connect(url, subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response_headers["Set-Cookie"] == "user=alice"
            await ws.send("hi")
            assert await ws.recv() == "chat.v2 alice: hi"
        async with websockets.connect("ws://127.0.0.1:%d/" % port,
                                      origin="https://example.com",
                                      extra_headers=[("Authorization", "Bearer s3cret")]) as ws:
            await ws.send("hi")
            assert await ws.recv() == "nil alice: hi"

    try:
        run(client())
        status, fields, body = http_request(port, "/?token=wrong")
        assert (status, body) == (401, b"login first\n")
        assert fields["www-authenticate"] == 'Bearer realm="chat"'
        status, _, body = http_request(port, "/?token=s3cret",
                                       [("Origin", "https://evil.example")])
        assert (status, body) == (403, b"Failed to open a WebSocket connection: invalid Origin "
                                       b"header: https://evil.example.\n")
        assert http_request(port, "/health")[::2] == (200, b"ok\n")
    finally:
        stopped(proc)


def test_lua_keepalive_timers_errors_example(tmp_path, lua54):
    """#### Keepalive, timers and errors (Lua): the every(1000) broadcast
    reaches two clients without a loop of the user's; a second copy on the
    same port prints the C API's text and exits 3 (ERR.ADDRESS, EADDRINUSE)."""
    cmd, env = lua54
    code = readme_block("#### Keepalive, timers and errors (Lua)", "lua")
    proc, port = start(tmp_path, "timers.lua", code, 8080, cmd, env)

    async def client():
        url = "ws://127.0.0.1:%d/" % port
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            for ws in (a, b):
                while await asyncio.wait_for(ws.recv(), 5) != "clients: 2":
                    pass

    try:
        run(client())
        second = tmp_path / "second.lua"
        second.write_text(code.replace("8080", str(port)))
        out = subprocess.run(cmd + [str(second)], env=env, capture_output=True, text=True,
                             timeout=20)
        assert out.returncode == 3, (out.returncode, out.stderr)
        assert out.stderr == ("cannot listen on 127.0.0.1:%d: address already in use\n"
                              % port)
    finally:
        stopped(proc)


def _certs(d):
    """A CA, a server certificate for 127.0.0.1 and alice's client
    certificate, made with openssl in |d|."""
    script = r"""
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
key ca.key; key server.key; key alice.key
openssl req -x509 -new -key ca.key -out clients-ca.pem -days 2 -subj "/CN=readme CA"
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl req -new -key server.key -out server.csr -subj "/CN=127.0.0.1"
openssl x509 -req -in server.csr -CA clients-ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 2 -extfile san.ext
openssl req -new -key alice.key -out alice.csr -subj "/O=Example/CN=alice"
openssl x509 -req -in alice.csr -CA clients-ca.pem -CAkey ca.key -CAcreateserial \
  -out alice.pem -days 2
"""
    subprocess.run(["sh", "-c", script], cwd=d, check=True, capture_output=True)


def test_lua_mtls_example(tmp_path, lua54):
    """#### TLS and client certificates (Lua): alice's certificate gets in
    and is greeted by its verified subject; a client without one is
    refused."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    cmd, env = lua54
    _certs(tmp_path)
    code = readme_block("#### TLS and client certificates (Lua)", "lua")
    for name in ("server.pem", "server.key", "clients-ca.pem"):
        code = code.replace('"%s"' % name, '"%s"' % (tmp_path / name))
    proc, port = start(tmp_path, "mtls.lua", code, 8443, cmd, env)

    def ctx(client):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(str(tmp_path / "clients-ca.pem"))
        if client:
            c.load_cert_chain(str(tmp_path / "alice.pem"), str(tmp_path / "alice.key"))
        return c

    async def client():
        url = "wss://127.0.0.1:%d/" % port
        async with websockets.connect(url, ssl=ctx(True)) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "hello CN=alice,O=Example"
        with pytest.raises((OSError, EOFError, asyncio.TimeoutError,
                            websockets.exceptions.WebSocketException)):
            async with websockets.connect(url, ssl=ctx(False), open_timeout=10) as ws:
                await asyncio.wait_for(ws.recv(), 5)

    try:
        run(client())
    finally:
        stopped(proc)


def test_lua_abi_mismatch_message(tmp_path):
    """The text the Build section quotes: the Lua 5.4 module in LuaJIT."""
    lua_dir = os.path.join(BUILD, "lua")
    if not os.path.isdir(lua_dir) or shutil.which("luajit") is None:
        pytest.skip("no Lua modules or no luajit")
    (tmp_path / "build").symlink_to(BUILD)  # the README's relative path
    env = dict(os.environ, LUA_PATH=os.path.join(lua_dir, "share", "?.lua") + ";;",
               LUA_CPATH="build/lua/5.4/?.so;;")
    out = subprocess.run(["luajit", "-e", "local ok, e = pcall(require, 'libwebsock2') "
                          "io.write(tostring(e))"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=20)
    version = subprocess.run(["luajit", "-e", "io.write(jit.version)"], capture_output=True,
                             text=True).stdout
    want = ("libwebsock2: build/lua/5.4/libwebsock2_core.so was built for Lua 5.4, but this "
            "is %s (the Lua 5.1 ABI): put the module built for this interpreter "
            "(lua/5.1/libwebsock2_core.so of the build tree, or lib/lua/5.1/ of an install) "
            "first on package.cpath") % version
    assert out.stdout == want, out.stdout
    text = readme_text()
    assert " ".join(want.replace(version, "LuaJIT 2.1.0-beta3").split()) in " ".join(text.split())


def test_lua_deflate_example(tmp_path, lua54):
    """#### Compression (Lua): dedicated mode is negotiated (no
    no_context_takeover: the context is kept), text and binary echo through
    it, a client that offers nothing gets plain frames."""
    cmd, env = lua54
    code = readme_block("#### Compression (Lua)", "lua")
    proc, port = start(tmp_path, "deflate.lua", code, 8080, cmd, env)
    url = "ws://127.0.0.1:%d/" % port

    async def client():
        async with websockets.connect(url) as ws:
            assert ws.response_headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
            for msg in ["hi", '{"text": "hello"} ' * 1000, bytes(range(256)) * 100]:
                await ws.send(msg)
                assert await ws.recv() == msg
        async with websockets.connect(url, compression=None) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            await ws.send("plain " * 100)
            assert await ws.recv() == "plain " * 100

    try:
        run(client())
    finally:
        stopped(proc)
