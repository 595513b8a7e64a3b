#!/usr/bin/python3
"""Client of test_handshake.lua: the handshake handler, Origin and
subprotocol checks, keepalive and mTLS over real sockets.

    hs_client.py PORT_A PORT_B PORT_K TLS_REQUIRED_PORT|- TLS_OPTIONAL_PORT|- CERT_DIR|-

python3-websockets 10.4 for the ordinary clients; raw sockets (wsraw.py)
where the status line, headers and body of a refusal are checked, and for
the peer that never answers a keepalive ping. Prints "PASS name" / "FAIL
name: why", then stops server A (with the token it needs) and prints DONE.
"""
import asyncio
import os
import ssl
import struct
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsraw  # noqa: E402
from facade_client import report  # noqa: E402

GOOD = [("Authorization", "Bearer good-token")]
TIMEOUT = 10


async def check(name, fn):
    try:
        await asyncio.wait_for(fn(), 30)
    except AssertionError as e:
        report(name, False, "%s" % e)
        return
    except Exception as e:  # noqa: BLE001 - report everything
        report(name, False, "%s: %s" % (type(e).__name__, e))
        return
    report(name, True)


def in_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


def eq(got, want, what="value"):
    assert got == want, "%s: expected %r, got %r" % (what, want, got)


async def refused(port, path, headers, status, body=None):
    got_status, got_headers, got_body = await in_thread(wsraw.refusal, port, path, headers)
    eq(got_status, status, "status")
    if body is not None:
        eq(got_body, body, "body")
    return got_headers, got_body


# ------------------------------------------------------------------ A
def a_checks(pa):
    base = "ws://127.0.0.1:%d" % pa

    async def good_token():
        async with websockets.connect(
                base + "/chat?room=1&x=%20y", origin="https://good.example",
                subprotocols=["chat.v1", "chat.v2"],
                extra_headers=GOOD + [("X-Test", "fields"), ("X-Twice", "one"),
                                      ("X-Twice", "two")]) as ws:
            eq(ws.subprotocol, "chat.v2", "subprotocol")
            await ws.send("info")
            eq(await asyncio.wait_for(ws.recv(), TIMEOUT),
               "subprotocol=chat.v2;x-test=fields;path=/chat;origin=https://good.example;"
               "req=true", "what the connection knows")

    async def no_origin():
        async with websockets.connect(base + "/chat", extra_headers=GOOD +
                                      [("X-Test", "no-origin")]) as ws:
            await ws.send("hi")
            eq(await asyncio.wait_for(ws.recv(), TIMEOUT), "hi")

    async def no_token_raw():
        h, _ = await refused(pa, "/chat", [], 401, "missing or bad token")
        eq(wsraw.header(h, "WWW-Authenticate"), 'Bearer realm="chat"', "WWW-Authenticate")
        eq(wsraw.header(h, "Content-Type"), "text/plain", "Content-Type")

    async def no_token_websockets():
        try:
            async with websockets.connect(base + "/chat"):
                raise AssertionError("accepted without a token")
        except websockets.exceptions.InvalidStatusCode as e:
            eq(e.status_code, 401, "status")

    async def bad_token():
        await refused(pa, "/chat", [("Authorization", "Bearer wrong")], 401,
                      "missing or bad token")

    async def foreign_origin():
        await refused(pa, "/chat", GOOD + [("Origin", "https://evil.example"),
                                           ("X-Test", "foreign")], 403,
                      "Failed to open a WebSocket connection: invalid Origin header: "
                      "https://evil.example.\n")
        try:
            async with websockets.connect(base + "/chat", origin="https://evil.example",
                                          extra_headers=GOOD):
                raise AssertionError("accepted a foreign Origin")
        except websockets.exceptions.InvalidStatusCode as e:
            eq(e.status_code, 403, "status")

    async def preference():
        for offer, want in [(["chat.v1", "chat.v2"], "chat.v2"),
                            (["chat.v2", "chat.v1"], "chat.v2"),
                            (["chat.v1"], "chat.v1"), (["chat.v3"], None)]:
            async with websockets.connect(base + "/chat", subprotocols=offer,
                                          extra_headers=GOOD) as ws:
                eq(ws.subprotocol, want, "offered %s" % offer)

    async def handler_picks():
        async with websockets.connect(base + "/chat?proto=v1", subprotocols=["chat.v1", "chat.v2"],
                                      extra_headers=GOOD) as ws:
            eq(ws.subprotocol, "chat.v1", "the handler's choice")

    async def unoffered_pick():
        await refused(pa, "/chat?proto=bogus", GOOD + [("Sec-WebSocket-Protocol", "chat.v1")],
                      500)

    async def redirect():
        h, _ = await refused(pa, "/redirect", [], 302)
        eq(wsraw.header(h, "Location"), "https://elsewhere.example/chat", "Location")

    async def teapot():
        h, _ = await refused(pa, "/teapot", [], 418, "short and stout")
        eq(wsraw.header(h, "Content-Type"), "text/x-tea", "Content-Type")
        eq([v for n, v in h if n == "X-Pot"], ["1", "2"], "a header twice")

    async def errors_500():
        await refused(pa, "/boom", [], 500)
        await refused(pa, "/badheader", GOOD, 500)

    async def forbidden():
        await refused(pa, "/forbidden", [], 403)

    async def cookies_on_101():
        status, h, _, s = await in_thread(wsraw.upgrade_request, pa, "/chat", GOOD)
        s.close()
        eq(status, 101, "status")
        eq([v for n, v in h if n.lower() == "set-cookie"], ["sid=42", "theme=dark"],
           "Set-Cookie lines")

    async def plain_http():
        def get():
            import urllib.request
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % pa, timeout=TIMEOUT) as r:
                return r.status, r.read().decode()
        eq(await in_thread(get), (200, "ok"), "GET /health")

    return [
        ("A: a good token is accepted; subprotocol, headers, origin on the connection",
         good_token),
        ("A: websock.NO_ORIGIN lets a client without Origin in", no_origin),
        ("A: no token: 401 with the body and WWW-Authenticate", no_token_raw),
        ("A: no token: websockets sees InvalidStatusCode 401", no_token_websockets),
        ("A: a wrong token: 401", bad_token),
        ("A: a foreign Origin: 403 with websockets' body", foreign_origin),
        ("A: offered chat.v1, chat.v2 with our preference chat.v2 -> chat.v2", preference),
        ("A: the handler sets req.subprotocol", handler_picks),
        ("A: a subprotocol the client did not offer: 500", unoffered_pick),
        ("A: 302 with Location", redirect),
        ("A: any status, Content-Type and repeated headers from the handler", teapot),
        ("A: an error in the handler, a header with CR/LF: 500", errors_500),
        ("A: false refuses with 403", forbidden),
        ("A: headers of an accept go on the 101 (two Set-Cookie)", cookies_on_101),
        ("A: plain HTTP still gets the static route", plain_http),
    ]


# ------------------------------------------------------------------ B
def b_checks(pb):
    base = "ws://127.0.0.1:%d" % pb

    async def preference():
        async with websockets.connect(base + "/", origin="https://good.example",
                                      subprotocols=["chat.v1", "chat.v2"]) as ws:
            eq(ws.subprotocol, "chat.v2", "subprotocol")
            await ws.send("info")
            eq(await asyncio.wait_for(ws.recv(), TIMEOUT), "subprotocol=chat.v2;req=false")

    async def origins():
        await refused(pb, "/", [], 403,
                      "Failed to open a WebSocket connection: missing Origin header.\n")
        await refused(pb, "/", [("Origin", "https://evil.example")], 403,
                      "Failed to open a WebSocket connection: invalid Origin header: "
                      "https://evil.example.\n")
        await refused(pb, "/", [("Origin", "https://good.example.evil")], 403)

    return [
        ("B (no handler): chat.v2 chosen in C", preference),
        ("B (no handler): a missing or foreign Origin gets 403 in C", origins),
    ]


# ------------------------------------------------------------------ K
def silent_peer(pk):
    """Upgrades, then reads frames and answers none; returns what it saw."""
    status, _, rest, s = wsraw.upgrade_request(pk, "/", [])
    assert status == 101, status
    s.settimeout(15)
    c = wsraw.RawClient(s, rest)
    seen = []
    t0 = time.time()
    try:
        while True:
            op, payload = c.read_frame()
            seen.append(op)
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return seen, code, payload[2:].decode(), time.time() - t0
    finally:
        c.close()


def k_checks(pk):
    async def timeout_closes():
        seen, code, reason, took = await in_thread(silent_peer, pk)
        assert 9 in seen, "no ping before the close: %s" % seen
        eq(code, 1011, "close code")
        eq(reason, "keepalive ping timeout", "close reason")
        assert took >= 0.5, "closed after %.2f s, before interval + timeout" % took

    async def answering_peer_stays():
        async with websockets.connect("ws://127.0.0.1:%d/" % pk, ping_interval=None) as ws:
            await asyncio.sleep(2.5)  # > 2 x (300 + 600) ms: pongs answered the pings
            await ws.send("still here")
            eq(await asyncio.wait_for(ws.recv(), TIMEOUT), "still here")

    return [
        ("K: a raw peer that never answers the ping is closed 1011 'keepalive ping timeout'",
         timeout_closes),
        ("K: a peer that answers pings stays open", answering_peer_stays),
    ]


# ------------------------------------------------------------------ TLS
def tls_checks(ptr, pto, certs):
    def ctx(client=None):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(os.path.join(certs, "ca.pem"))
        if client:
            c.load_cert_chain(os.path.join(certs, client + ".pem"),
                              os.path.join(certs, client + ".key"))
        return c

    async def peer(port, client):
        async with websockets.connect("wss://127.0.0.1:%d/" % port, ssl=ctx(client)) as ws:
            await ws.send("x")
            return ws.response_headers.get("X-Peer"), await asyncio.wait_for(ws.recv(), TIMEOUT)

    async def refused_tls(port, client):
        try:
            got = await peer(port, client)
        except Exception:  # noqa: BLE001 - an SSL error, a reset or a closed stream
            return
        raise AssertionError("accepted: %r" % (got,))

    async def required_ok():
        eq(await peer(ptr, "alice"), ("CN=alice,O=Example", "peer=CN=alice,O=Example"))

    async def required_refuses():
        await refused_tls(ptr, None)
        await refused_tls(ptr, "mallory")

    async def optional():
        eq(await peer(pto, None), ("none", "peer=nil"), "without a certificate")
        eq(await peer(pto, "alice"), ("CN=alice,O=Example", "peer=CN=alice,O=Example"))
        await refused_tls(pto, "mallory")

    return [
        ("mTLS required: alice's certificate gets in; req.tls_peer and conn.tls_peer", required_ok),
        ("mTLS required: no certificate or an untrusted one is refused", required_refuses),
        ("mTLS optional: without a certificate in (tls_peer nil), untrusted refused", optional),
    ]


async def main(argv):
    pa, pb, pk = int(argv[0]), int(argv[1]), int(argv[2])
    checks = a_checks(pa) + b_checks(pb) + k_checks(pk)
    if argv[3] != "-" and argv[5] != "-":
        checks += tls_checks(int(argv[3]), int(argv[4]), argv[5])
    # The keepalive checks take seconds: run them beside the others.
    slow = [c for c in checks if c[0].startswith("K:")]
    fast = [c for c in checks if not c[0].startswith("K:")]
    slow_task = asyncio.gather(*(check(n, f) for n, f in slow))
    for name, fn in fast:
        await check(name, fn)
    await slow_task


def stop(pa):
    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/chat" % pa, extra_headers=GOOD) as ws:
            await ws.send("stop")
            await asyncio.sleep(0.2)
    try:
        asyncio.run(asyncio.wait_for(go(), 10))
    except Exception as e:  # noqa: BLE001
        print("stop failed: %s" % e, flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1:]), 80))
    except Exception as e:  # noqa: BLE001
        report("client ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        stop(int(sys.argv[1]))
        print("DONE", flush=True)
