"""wss:// through the Python binding: a throwaway CA and server certificate
are made with the openssl CLI at test time (no committed keys)."""
import os
import signal
import ssl
import subprocess

import pytest
import websockets

import libwebsock2
from conftest import run


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")

    def sh(*args):
        subprocess.run(args, cwd=d, check=True, capture_output=True, timeout=60)

    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", "/CN=libwebsock2 test CA", "-keyout", "ca.key", "-out", "ca.pem")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
       "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
       "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf",
       "-out", "server.pem")
    return d


def test_echo_over_wss(make_server, certs):
    srv = make_server(host="127.0.0.1", io_threads=2, agents=2,
                      ssl=(str(certs / "server.pem"), str(certs / "server.key")))

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)

    srv.start()
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    async def client():
        async with websockets.connect("wss://127.0.0.1:%d/" % srv.port, ssl=ctx) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00" * 100000)
            assert await ws.recv() == b"\x00" * 100000

    run(client())


def test_bad_key_raises_tls_error_naming_the_file(certs):
    with pytest.raises(libwebsock2.TLSError) as info:
        libwebsock2.Server(port=0, ssl=(str(certs / "server.pem"),
                                        str(certs / "missing.key")))
    assert "missing.key" in str(info.value)


def test_ssl_context_is_refused_with_a_clear_message():
    with pytest.raises(TypeError):
        libwebsock2.Server(port=0, ssl=ssl.create_default_context())


def test_chat_example_over_https_and_wss(certs):
    import urllib.request

    from conftest import Example

    ex = Example("chat_server.py", "--tls-cert", str(certs / "server.pem"),
                 "--tls-key", str(certs / "server.key"))
    try:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        page = urllib.request.urlopen("https://127.0.0.1:%d/" % ex.port,
                                      context=ctx, timeout=10).read()
        assert b"<html" in page

        async def client():
            async with websockets.connect("wss://127.0.0.1:%d/chat" % ex.port,
                                          ssl=ctx) as ws:
                assert (await ws.recv()).startswith("welcome #")

        run(client())
    finally:
        assert ex.stop(signal.SIGTERM) == 0
