"""wss:// through the Python binding: a throwaway CA and server certificate
are made with the openssl CLI at test time (no committed keys); then
libwebsock2.TLS: an encrypted key with its password, and client
certificates (mutual TLS), required or optional, with the verified subject
in request.tls_peer."""
import asyncio
import os
import signal
import ssl
import subprocess

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
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
            # compression="deflate", the default: compressed inside TLS
            assert ws.response_headers["Sec-WebSocket-Extensions"].startswith(
                "permessage-deflate")
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


# -- libwebsock2.TLS: an encrypted key, client certificates (mutual TLS) ------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA with a server certificate (its key encrypted with "pw"), a
    client certificate "CN=alice,O=libwebsock2 test" from that CA, and one
    from another CA the server does not trust."""
    d = tmp_path_factory.mktemp("mtls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

    def sh(*args):
        subprocess.run(("openssl",) + args, cwd=d, check=True, capture_output=True, timeout=60)

    for ca in ("ca", "other_ca"):
        sh("req", "-x509", *ec, "-days", "2", "-subj", "/CN=libwebsock2 test %s" % ca,
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign",
           "-keyout", ca + ".key", "-out", ca + ".pem")
    (d / "server.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "extendedKeyUsage=serverAuth\n")
    (d / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, subj, ext in (("server", "ca", "/CN=localhost", "server.cnf"),
                                ("alice", "ca", "/O=libwebsock2 test/CN=alice", "client.cnf"),
                                ("mallory", "other_ca", "/CN=mallory", "client.cnf")):
        sh("req", *ec, "-subj", subj, "-keyout", name + ".key", "-out", name + ".csr")
        sh("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
           "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".pem")
    sh("pkey", "-in", "server.key", "-aes256", "-passout", "pass:pw", "-out", "server.enc.key")
    return d


def client_ctx(pki, cert=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / (cert + ".pem")), str(pki / (cert + ".key")))
    return ctx


async def peer_of(port, ctx):
    """What the server saw of the client certificate ("peer|<tls_peer>"),
    or the exception that ended the attempt."""
    try:
        async with websockets.connect("wss://127.0.0.1:%d/" % port, ssl=ctx,
                                      open_timeout=15) as ws:
            await ws.send("who")
            return await asyncio.wait_for(ws.recv(), 15)
    except (OSError, EOFError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) \
            as e:
        return e


def mtls_server(front, pki, verify_client, seen):
    tls = libwebsock2.TLS(pki / "server.pem", pki / "server.enc.key", password="pw",
                          cafile=pki / "ca.pem", verify_client=verify_client)

    def pr(request):
        seen.append(request.tls_peer)
        return None

    if front == "threads":
        srv = libwebsock2.Server(port=0, agents=1, ssl=tls, process_request=pr)
        srv.on_message(lambda conn, msg: conn.send("peer|%s" % conn.request.tls_peer))
        return srv

    async def handler(conn):
        async for msg in conn:
            await conn.send("peer|%s" % conn.request.tls_peer)

    return libwebsock2.aio.Server(handler, ssl=tls, process_request=pr)


@pytest.mark.parametrize("front", ["threads", "asyncio"])
def test_required_client_certificate(front, pki):
    seen = []
    srv = mtls_server(front, pki, True, seen)

    async def scenario():
        if front == "threads":
            srv.start()
        else:
            await srv.start()
        try:
            alice = await peer_of(srv.port, client_ctx(pki, "alice"))
            nobody = await peer_of(srv.port, client_ctx(pki))
            mallory = await peer_of(srv.port, client_ctx(pki, "mallory"))
            again = await peer_of(srv.port, client_ctx(pki, "alice"))
        finally:
            if front == "threads":
                await asyncio.get_running_loop().run_in_executor(None, srv.stop)
            else:
                await srv.stop()
        return alice, nobody, mallory, again

    alice, nobody, mallory, again = run(scenario())
    assert alice == again == "peer|CN=alice,O=libwebsock2 test"
    assert isinstance(nobody, Exception) and isinstance(mallory, Exception)
    # refused in the TLS handshake: process_request never saw them
    assert seen == ["CN=alice,O=libwebsock2 test"] * 2


def test_optional_client_certificate(make_server, pki):
    seen = []
    srv = mtls_server("threads", pki, "optional", seen)
    srv.start()
    try:
        async def scenario():
            return [await peer_of(srv.port, client_ctx(pki, who))
                    for who in ("alice", None, "mallory")]

        alice, nobody, mallory = run(scenario())
    finally:
        srv.stop()
    assert (alice, nobody) == ("peer|CN=alice,O=libwebsock2 test", "peer|None")
    assert isinstance(mallory, Exception)  # an untrusted certificate never gets in
    assert seen == ["CN=alice,O=libwebsock2 test", None]


def test_tls_password_forms_and_wrong_password(pki):
    for password in ("pw", b"pw", lambda: "pw"):
        srv = libwebsock2.Server(port=0, ssl=libwebsock2.TLS(
            str(pki / "server.pem"), str(pki / "server.enc.key"), password=password))
        srv.on_message(lambda conn, msg: conn.send(msg))
        with srv:
            async def client():
                async with websockets.connect("wss://127.0.0.1:%d/" % srv.port,
                                              ssl=client_ctx(pki)) as ws:
                    await ws.send("x")
                    return await ws.recv()

            assert run(client()) == "x"
    for password in (None, "wrong"):
        with pytest.raises(libwebsock2.TLSError) as ei:
            libwebsock2.Server(port=0, ssl=libwebsock2.TLS(
                str(pki / "server.pem"), str(pki / "server.enc.key"), password=password))
        assert "server.enc.key" in str(ei.value)
    # the key in the certificate file (keyfile=None)
    both = pki / "both.pem"
    both.write_bytes((pki / "server.pem").read_bytes() + (pki / "server.key").read_bytes())
    libwebsock2.Server(port=0, ssl=libwebsock2.TLS(both))
    # a mapping of TLS's keywords
    libwebsock2.Server(port=0, ssl={"certfile": str(both), "keyfile": str(both)})


def test_tls_arguments_are_checked(pki):
    cert, key, ca = pki / "server.pem", pki / "server.key", pki / "ca.pem"
    cases = [
        (dict(verify_client="maybe", cafile=ca),
         "verify_client must be False, True (required) or 'optional', not 'maybe'"),
        (dict(verify_client=True),
         "verify_client=True needs cafile, the PEM file of the CAs that sign the client "
         "certificates"),
        (dict(cafile=ca),
         "cafile is only read to verify client certificates: pass verify_client=True or "
         "'optional' with it"),
    ]
    for kw, message in cases:
        with pytest.raises(libwebsock2.InvalidArgument) as ei:
            libwebsock2.TLS(cert, key, **kw)
        assert str(ei.value) == message
    with pytest.raises(TypeError) as ei:
        libwebsock2.TLS(cert, key, password=12)
    assert str(ei.value) == ("password must be str, bytes, a callable returning one, or None, "
                             "not int")
    with pytest.raises(libwebsock2.TLSError) as ei:
        libwebsock2.Server(port=0, ssl=libwebsock2.TLS(cert, key, cafile=pki / "nope.pem",
                                                       verify_client=True))
    assert "nope.pem" in str(ei.value)
    assert repr(libwebsock2.TLS(cert, key, password="secret")).count("secret") == 0


def test_ssl_context_message_explains():
    with pytest.raises(TypeError) as ei:
        libwebsock2.aio.Server(ssl=ssl.create_default_context())
    assert str(ei.value) == (
        "ssl must be libwebsock2.TLS(certfile, keyfile, ...), (certfile, keyfile) or "
        "{'certfile': ..., 'keyfile': ...}, not SSLContext; an ssl.SSLContext cannot be "
        "handed to the C core (see libwebsock2.TLS)")
