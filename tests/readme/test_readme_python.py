"""Runs the Python blocks of the README as written (only the port is
changed to a free one; the TLS block runs in a directory with the files it
names) and talks to them with real clients, so the README cannot rot. Needs
WEBSOCK_BUILD_DIR with venv/ (the Python package). Run with Debian's
/usr/bin/python3."""
import asyncio
import re
import signal
import ssl
import subprocess

import pytest
import websockets

from readme_helpers import (has_heading, http_request, readme_block, run, start, stop,
                            stopped_cleanly)


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


def test_python_handshake_example(tmp_path, python):
    """#### Handshake (threads): a token gets in with our subprotocol (with
    and without an allowed Origin); none or a wrong one gets 401 with its
    body and WWW-Authenticate, a foreign Origin websockets' 403 text, the
    health check its 200; SIGINT stops it with exit code 0."""
    code = readme_block("#### Handshake (threads)", "python")
    proc, port = start(tmp_path, "handshake.py", code, 8765, python)

    async def client():
        url = "ws://127.0.0.1:%d/?token=s3cret" % port
        for origin in (None, "https://example.com"):
            async with websockets.connect(url, subprotocols=["chat.v1", "chat.v2"],
                                          origin=origin) as ws:
                assert ws.subprotocol == "chat.v2"
                await ws.send("hi")
                assert await ws.recv() == "chat.v2: hi"

    try:
        run(client())
        status, headers, body = http_request(port, "/")
        assert (status, body) == (401, b"login first\n")
        assert headers["www-authenticate"] == 'Bearer realm="chat"'
        status, headers, body = http_request(port, "/?token=wrong")
        assert (status, body) == (401, b"unknown token\n")
        assert headers["www-authenticate"] == 'Bearer error="invalid_token"'
        status, _, body = http_request(port, "/?token=s3cret",
                                       [("Origin", "https://evil.example")])
        assert (status, body) == (403, b"Failed to open a WebSocket connection: invalid "
                                       b"Origin header: https://evil.example.\n")
        assert http_request(port, "/health")[::2] == (200, b"ok\n")
    finally:
        stopped_cleanly(proc, signal.SIGINT)


def test_python_asyncio_handshake_example(tmp_path, python):
    code = readme_block("#### Handshake (asyncio)", "python")
    proc, port = start(tmp_path, "aio_handshake.py", code, 8765, python)
    try:
        async def client():
            async with websockets.connect(
                    "ws://127.0.0.1:%d/" % port, subprotocols=["chat.v1", "chat.v2"],
                    extra_headers={"Authorization": "Bearer s3cret"}) as ws:
                assert ws.subprotocol == "chat.v2"
                await ws.send("hi")
                assert await ws.recv() == "chat.v2 alice: hi"
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
                async with websockets.connect("ws://127.0.0.1:%d/" % port):
                    pass
            assert ei.value.status_code == 401

        run(client())
        status, headers, body = http_request(port, "/", [("Authorization", "Bearer nope")])
        assert (status, headers["www-authenticate"], body) == (
            401, 'Bearer realm="chat"', b"login first\n")
        assert http_request(port, "/", [("Authorization", "Bearer s3cret"),
                                        ("Origin", "https://evil.example")])[0] == 403
    finally:
        stopped_cleanly(proc, signal.SIGTERM)


def test_python_keepalive_example(tmp_path, python):
    code = readme_block("#### Keepalive", "python")
    proc, port = start(tmp_path, "keepalive.py", code, 8765, python)
    try:
        async def client():
            async with websockets.connect("ws://127.0.0.1:%d/" % port) as ws:
                assert re.fullmatch(r"latency \d+\.\d ms", await ws.recv())
                await ws.send("x")
                assert await ws.recv() == "x"

        run(client())
    finally:
        stopped_cleanly(proc, signal.SIGINT)


def test_python_tls_example(tmp_path, python):
    """#### TLS and client certificates, run in a directory with the files it
    names, made by the openssl CLI: a client with a certificate from
    clients-ca.pem is greeted with its subject; one without is refused."""
    def sh(*args):
        subprocess.run(("openssl",) + args, cwd=tmp_path, check=True, capture_output=True,
                       timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "clients-ca"):
        sh("req", "-x509", *ec, "-days", "2", "-subj", "/CN=%s" % ca,
           "-keyout", ca + ".key", "-out", ca + ".pem")
    (tmp_path / "srv.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    (tmp_path / "cli.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, subj, ext in (("server", "ca", "/CN=localhost", "srv.cnf"),
                                ("alice", "clients-ca", "/O=Example/CN=alice", "cli.cnf")):
        sh("req", *ec, "-subj", subj, "-keyout", name + ".key", "-out", name + ".csr")
        sh("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
           "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".pem")
    code = readme_block("#### TLS and client certificates", "python")
    proc, port = start(tmp_path, "tls.py", code, 8765, python, cwd=tmp_path)
    try:
        def ctx(cert):
            c = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            if cert:
                c.load_cert_chain(str(tmp_path / "alice.pem"), str(tmp_path / "alice.key"))
            return c

        async def client():
            async with websockets.connect("wss://127.0.0.1:%d/" % port, ssl=ctx(True)) as ws:
                assert await ws.recv() == "hello CN=alice,O=Example"
            with pytest.raises((OSError, EOFError, websockets.exceptions.WebSocketException)):
                async with websockets.connect("wss://127.0.0.1:%d/" % port, ssl=ctx(False),
                                              open_timeout=10) as ws:
                    await ws.recv()

        run(client())
    finally:
        stopped_cleanly(proc, signal.SIGTERM)


COMPRESSION = "#### Compression"


def test_python_compression_example(tmp_path, python):
    """#### Compression (proposed in /work/readme-drafts/python_deflate.md;
    skipped until README.md has it): a websockets client, which offers
    permessage-deflate by default, gets the dedicated model's answer and
    its large message back; one with compression=None gets no extension;
    SIGINT stops it with exit code 0."""
    if not has_heading(COMPRESSION):
        pytest.skip("README.md has no %r section yet" % COMPRESSION)
    code = readme_block(COMPRESSION, "python")
    proc, port = start(tmp_path, "compression.py", code, 8765, python)
    big = "".join('{"id": %d, "text": "hello, world"}\n' % i for i in range(20000))

    async def client():
        url = "ws://127.0.0.1:%d/" % port
        async with websockets.connect(url, max_size=None) as ws:
            assert ws.response_headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
            (pmd,) = ws.extensions
            assert not pmd.remote_no_context_takeover  # dedicated: the server keeps context
            assert await ws.recv() == "offered: permessage-deflate; client_max_window_bits"
            for msg in ("hi", big, b"\x00" * 100000):
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 10) == msg
        async with websockets.connect(url, compression=None) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            assert ws.extensions == []
            assert await ws.recv() == "offered: nothing"
            await ws.send(big[:5000])
            assert await ws.recv() == big[:5000]

    try:
        run(client())
    finally:
        stopped_cleanly(proc, signal.SIGINT)
