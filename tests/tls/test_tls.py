"""wss:// end to end: examples/echo_server with --tls-cert/--tls-key against
the websockets client (Debian's python3-websockets 10.x) and raw sockets.

A throwaway CA and a server certificate for localhost/127.0.0.1 are made
with the openssl CLI in a temporary directory for each run; no private key
is committed. The server binary comes from $WEBSOCK_BUILD_DIR (default
build/) under examples/. Run:  /usr/bin/python3 -m pytest tests/tls
"""
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WEBSOCK_BUILD_DIR", os.path.join(ROOT, "build"))
ECHO = os.path.join(BUILD, "examples", "echo_server")
STEP = 30  # seconds any single network step may take


def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=libwebsock2 test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
             "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"),
            "key": str(d / "server.key")}


class Server:
    def __init__(self, certs, io, agents, extra=()):
        if not os.access(ECHO, os.X_OK):
            pytest.skip("no echo_server at %s (set WEBSOCK_BUILD_DIR)" % ECHO)
        self.proc = subprocess.Popen(
            [ECHO, "--host", "127.0.0.1", "--port", "0",
             "--io-threads", str(io), "--agents", str(agents),
             "--tls-cert", certs["cert"], "--tls-key", certs["key"], *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), (line, self.proc.stderr.read())
        self.port = int(line.split()[-1])
        self.url = "wss://localhost:%d/" % self.port

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


@pytest.fixture(params=[(1, 0), (2, 2)], ids=["io1-inline", "io2-agents2"])
def server(request, certs):
    io, agents = request.param
    s = Server(certs, io, agents, ("--max-message", "20000000"))
    yield s
    assert s.stop() == 0


def client_ctx(certs):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    return ctx


def run(coro, timeout=120):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def echo_once(server, certs, payload="hello"):
    async with websockets.connect(server.url, ssl=client_ctx(certs),
                                  open_timeout=STEP, max_size=None) as ws:
        await ws.send(payload)
        got = await asyncio.wait_for(ws.recv(), STEP)
        assert got == payload
        return got


def test_echo(server, certs):
    async def main():
        async with websockets.connect(server.url, ssl=client_ctx(certs),
                                      open_timeout=STEP) as ws:
            for msg in ["text", b"\x00\x01binary", "ü" * 1000, b"x" * 70000]:
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), STEP) == msg
    run(main())


def test_large_message(server, certs):
    big = os.urandom(16 * 1024 * 1024)

    async def main():
        async with websockets.connect(server.url, ssl=client_ctx(certs),
                                      open_timeout=STEP, max_size=None) as ws:
            # The 16 MiB echo is past the outbound bound, so the server
            # pauses reading this client; it must resume afterwards.
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), 60) == big
            for i in range(3):
                await ws.send("after %d" % i)
                assert await asyncio.wait_for(ws.recv(), STEP) == "after %d" % i
    run(main())


def test_concurrent_clients(server, certs):
    async def one(i):
        async with websockets.connect(server.url, ssl=client_ctx(certs),
                                      open_timeout=STEP) as ws:
            for m in range(20):
                msg = "c%d-m%d" % (i, m)
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), STEP) == msg

    async def main():
        await asyncio.gather(*(one(i) for i in range(50)))
    run(main())


def test_pipelined_burst(server, certs):
    # Many records arrive per wake-up: every one must be read even though
    # the socket is no longer readable once OpenSSL holds them. (6 MB stays
    # under the 8 MiB outbound bound, past which echo_server drops echoes.)
    chunk = os.urandom(100 * 1024)

    async def main():
        async with websockets.connect(server.url, ssl=client_ctx(certs),
                                      open_timeout=STEP, max_size=None,
                                      max_queue=None) as ws:
            async def sender():
                for i in range(60):
                    await ws.send(chunk[:-1] + bytes([i]))

            async def receiver():
                for i in range(60):
                    got = await asyncio.wait_for(ws.recv(), STEP)
                    assert got == chunk[:-1] + bytes([i])
            await asyncio.gather(sender(), receiver())
    run(main())


def test_alpn(server, certs):
    for offer, want in ((["http/1.1"], "http/1.1"), (["h2", "http/1.1"],
                        "http/1.1"), (["h2"], None), (None, None)):
        ctx = client_ctx(certs)
        if offer:
            ctx.set_alpn_protocols(offer)
        with socket.create_connection(("127.0.0.1", server.port), STEP) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == want
    run(echo_once(server, certs))


def test_untrusted_client_fails(server, certs):
    async def main():
        ctx = ssl.create_default_context()  # system CAs only
        with pytest.raises(ssl.SSLCertVerificationError):
            async with websockets.connect(server.url, ssl=ctx,
                                          open_timeout=STEP):
                pass
        await echo_once(server, certs)
    run(main())
    assert server.alive()


def test_plain_client_on_tls_port(server, certs):
    async def main():
        with pytest.raises(Exception):
            async with websockets.connect("ws://127.0.0.1:%d/" % server.port,
                                          open_timeout=STEP):
                pass
        await echo_once(server, certs)
    run(main())
    # Raw garbage and a plain HTTP request get dropped, nothing else.
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096)):
        with socket.create_connection(("127.0.0.1", server.port), STEP) as s:
            s.settimeout(STEP)
            s.sendall(junk)
            data = b""
            try:
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    data += b
            except ConnectionResetError:
                pass
            assert b"HTTP/1.1" not in data
    run(echo_once(server, certs))
    assert server.alive()


def _client_hello():
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_stalled_handshakes(server, certs):
    hello = _client_hello()
    assert len(hello) > 100
    stalled = []
    try:
        for _ in range(5):
            stalled.append(socket.create_connection(("127.0.0.1", server.port),
                                                    STEP))
        for s in stalled[:3]:
            s.sendall(hello[:len(hello) // 2])
        t0 = time.monotonic()
        run(echo_once(server, certs))
        assert time.monotonic() - t0 < 5
        # The stalled ones are still waiting (the handshake timeout is 10 s),
        # and a full set of other clients is served meanwhile.
        async def many():
            await asyncio.gather(*(echo_once(server, certs, "x%d" % i)
                                   for i in range(10)))
        run(many())
    finally:
        for s in stalled:
            s.close()
    assert server.alive()


def test_sigterm_closes_1001(certs):
    srv = Server(certs, 2, 1)

    async def main():
        async with websockets.connect(srv.url, ssl=client_ctx(certs),
                                      open_timeout=STEP) as ws:
            await ws.send("before")
            assert await asyncio.wait_for(ws.recv(), STEP) == "before"
            srv.proc.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), STEP)
            assert ei.value.rcvd is not None and ei.value.rcvd.code == 1001
    try:
        run(main())
        assert srv.proc.wait(timeout=15) == 0
    finally:
        srv.stop()


def test_bad_key_file_fails_clearly(certs, tmp_path):
    if not os.access(ECHO, os.X_OK):
        pytest.skip("no echo_server")
    missing = str(tmp_path / "nope.key")
    p = subprocess.run([ECHO, "--port", "0", "--tls-cert", certs["cert"],
                        "--tls-key", missing], capture_output=True, text=True,
                       timeout=STEP)
    assert p.returncode == 1
    assert "TLS" in p.stderr and missing in p.stderr
    # A key that is not the certificate's.
    other = tmp_path / "other.key"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-out", str(other), cwd=tmp_path)
    p = subprocess.run([ECHO, "--port", "0", "--tls-cert", certs["cert"],
                        "--tls-key", str(other)], capture_output=True,
                       text=True, timeout=STEP)
    assert p.returncode == 1
    assert "does not match" in p.stderr


@pytest.mark.parametrize("lang", ["c", "lua"])
def test_chat_example_page_over_https_and_chat_over_wss(certs, lang):
    """The chat examples serve their page over https and the chat over wss
    on one port (the Python one is covered in tests/python)."""
    import urllib.request

    page = os.path.join(ROOT, "examples", "web", "chat.html")
    tls = ["--tls-cert", certs["cert"], "--tls-key", certs["key"]]
    env = None
    if lang == "c":
        exe = os.path.join(BUILD, "examples", "chat_server")
        if not os.access(exe, os.X_OK):
            pytest.skip("no chat_server in %s" % BUILD)
        cmd = [exe, "--port", "0", "--web", page] + tls
    else:
        lua = os.path.join(BUILD, "lua")
        if not os.path.isdir(lua):
            pytest.skip("no Lua modules in %s" % lua)
        env = dict(os.environ, LUA_PATH=os.path.join(lua, "share", "?.lua") + ";;",
                   LUA_CPATH=os.path.join(lua, "5.4", "?.so") + ";;")
        cmd = ["lua5.4", os.path.join(ROOT, "examples", "lua", "chat_server.lua"),
               "--port", "0"] + tls
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on "), (line, proc.stderr.read())
        port = int(line.split()[-1])
        body = urllib.request.urlopen("https://localhost:%d/" % port,
                                      context=client_ctx(certs), timeout=STEP).read()
        assert body == open(page, "rb").read()

        async def chat():
            async with websockets.connect("wss://localhost:%d/chat" % port,
                                          ssl=client_ctx(certs)) as ws:
                assert (await asyncio.wait_for(ws.recv(), STEP)).startswith("welcome #")

        run(chat())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
