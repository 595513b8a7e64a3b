"""Isolation between clients, slow and non-reading clients, graceful stop,
IPv6."""
import asyncio
import os
import socket
import struct
import threading
import time

import pytest
import websockets

from wsraw import (OP_BINARY, OP_CLOSE, OP_TEXT, Closed, RawClient, frame,
                   handshake_request, run)


def connect(server, path="/", **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(server.url(path), **kw)


async def echo_many(server, n=20, tag="good"):
    async with connect(server) as ws:
        for i in range(n):
            msg = "%s client message %d" % (tag, i)
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), 5) == msg


# -- isolation -----------------------------------------------------------------

def test_garbage_client_does_not_affect_others(echo_server):
    with RawClient(echo_server.port) as bad:
        bad.upgrade()
        run(echo_many(echo_server, tag="before"))
        try:
            bad.send(os.urandom(4096))
        except OSError:
            pass
        run(echo_many(echo_server, tag="after"))


def test_garbage_before_handshake_does_not_affect_others(echo_server):
    with RawClient(echo_server.port) as bad:
        bad.send(b"\x00" * 100 + os.urandom(1000))
        run(echo_many(echo_server))


def test_oversized_frame_client_does_not_affect_others(echo_server):
    with RawClient(echo_server.port) as bad:
        bad.upgrade()
        bad.send(frame(OP_BINARY, b"", length=1 << 40))
        run(echo_many(echo_server))
        bad.expect_close(1009)


def test_partial_frame_client_does_not_affect_others(echo_server):
    with RawClient(echo_server.port) as slow:
        slow.upgrade()
        data = frame(OP_TEXT, b"x" * 1000)
        slow.send(data[:500])  # and then stall mid-frame
        run(echo_many(echo_server))
        slow.send(data[500:])
        assert slow.read_message() == (OP_TEXT, b"x" * 1000)


def test_silent_connection_does_not_affect_others(echo_server):
    # Connects and sends nothing: it will only be dropped after the
    # handshake timeout (10 s); meanwhile everyone else is served.
    silent = [RawClient(echo_server.port) for _ in range(5)]
    try:
        run(echo_many(echo_server))
    finally:
        for s in silent:
            s.close()


def test_partial_handshake_does_not_affect_others(echo_server):
    req, _ = handshake_request()
    with RawClient(echo_server.port) as slow:
        slow.send(req[:len(req) // 2])
        run(echo_many(echo_server))
        slow.send(req[len(req) // 2:])
        assert slow.read_http_response().status == 101
        slow.echo(OP_TEXT, "finished late")


def test_stop_with_silent_pre_handshake_connection(echo_default):
    # A connection that never handshakes must not hold up a stop.
    with RawClient(echo_default.port) as silent:
        code, secs = echo_default.stop()
        assert code == 0
        assert secs < 6, "stop took %.1fs" % secs
        try:
            silent.expect_eof(timeout=1)
        except (OSError, Closed):
            pass


def test_non_reading_client_does_not_block_others(echo_server):
    """A raw client pipelines ~50 MB of echo requests and never reads its
    echoes; the server must keep serving others and still stop in time."""
    payload = os.urandom(64 * 1024)
    one = frame(OP_BINARY, payload)
    total_frames = 800  # ~50 MiB
    hog = RawClient(echo_server.port)
    hog.upgrade()
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    state = {"sent": 0, "error": None}
    stop_sending = threading.Event()

    def pump():
        hog.sock.settimeout(1.0)
        try:
            for _ in range(total_frames):
                if stop_sending.is_set():
                    return
                try:
                    hog.sock.sendall(one)
                except socket.timeout:
                    # The server stopped reading us (backpressure): fine.
                    # Keep trying until told to stop.
                    continue
                state["sent"] += 1
        except OSError as e:
            state["error"] = e

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        # Wait until the hog has pushed a good amount, then check others.
        deadline = time.monotonic() + 10
        while state["sent"] < 50 and time.monotonic() < deadline and \
                t.is_alive():
            time.sleep(0.05)
        run(echo_many(echo_server, n=50, tag="while-hogging"), timeout=20)
        run(echo_many(echo_server, n=5, tag="second"), timeout=20)
        assert echo_server.alive()
        # Stop while the hog is still connected and not reading.
        code, secs = echo_server.stop()
        assert code == 0, echo_server.stderr_text()
        assert secs < 10, "stop took %.1fs" % secs
    finally:
        stop_sending.set()
        t.join(timeout=5)
        hog.close()


def test_non_reading_client_is_throttled(echo_default):
    """config.h: past max_outbound (8 MiB) 'reading from that client
    pauses'. Kernel socket buffers on loopback can absorb some tens of MB,
    but not 256 MB: a client that never reads must at some point be unable
    to write more."""
    one = frame(OP_BINARY, bytes(64 * 1024))
    limit = 4096  # frames: 256 MiB
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.sock.settimeout(1.0)
        sent = 0
        try:
            while sent < limit:
                c.sock.sendall(one)
                sent += 1
        except socket.timeout:
            pass
        assert sent < limit, (
            "the server read all %d MiB from a client that never reads its "
            "echoes: reading never paused" % (sent * len(one) >> 20))


def test_slow_reader_gets_every_echo_in_order(echo_server):
    """A client pipelines ~50 MB of echo requests before it reads anything.
    Once its outbound queue is full the server must stop reading from it
    (max_outbound, config.h) rather than drop echoes, so when the client
    finally reads, every echo arrives, in order."""
    count, size = 800, 64 * 1024
    frames = [frame(OP_BINARY, struct.pack("!I", i) + bytes(size - 4))
              for i in range(count)]
    c = RawClient(echo_server.port)
    c.upgrade()
    state = {"sent": 0, "error": None}
    done = threading.Event()

    def pump():
        try:
            c.sock.settimeout(20)
            for f in frames:
                c.sock.sendall(f)
                state["sent"] += 1
        except OSError as e:
            state["error"] = e
        finally:
            done.set()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        # Let the writer run until it finishes or the server stops reading
        # from it (no progress for 0.5 s); only then start reading.
        last = -1
        while not done.is_set() and state["sent"] != last:
            last = state["sent"]
            done.wait(0.5)
        sent_before_reading = state["sent"]
        got = []
        try:
            for _ in range(count):
                op, data = c.read_message(timeout=5)
                got.append(struct.unpack("!I", data[:4])[0])
        except (OSError, Closed):
            pass
        assert done.wait(10) and state["error"] is None, state
        assert got == list(range(count)), (
            "client sent %d frames (%d before it started reading); got %d "
            "echoes back, first missing %r: the server dropped echoes "
            "instead of pausing reads" % (
                count, sent_before_reading, len(got),
                sorted(set(range(count)) - set(got))[:1]))
    finally:
        c.close()
        t.join(timeout=5)


# -- graceful stop -------------------------------------------------------------

def test_sigterm_sends_1001_to_every_client(echo_server):
    async def main():
        clients = [await connect(echo_server) for _ in range(3)]
        for i, ws in enumerate(clients):
            await ws.send("hello %d" % i)
            assert await asyncio.wait_for(ws.recv(), 5) == "hello %d" % i
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        stopping = loop.run_in_executor(None, echo_server.stop)
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 6)
            assert ws.close_code == 1001, ws.close_code
        code, secs = await stopping
        assert code == 0, echo_server.stderr_text()
        assert time.monotonic() - t0 < 6.5
    run(main())


def test_sigterm_raw_client_sees_1001_then_eof(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.echo(OP_TEXT, "x")
        echo_default.proc.send_signal(15)
        c.expect_close(1001, timeout=6)
        c.expect_eof(timeout=6)
    code, secs = echo_default.stop()
    assert code == 0


def test_data_after_server_close_is_not_echoed(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        echo_default.proc.send_signal(15)
        f = c.expect_close(1001, timeout=6, reply=False)
        # Late data before our close reply must be discarded, not echoed.
        c.send(frame(OP_TEXT, b"too late") + frame(OP_CLOSE, f.payload[:2]))
        c.expect_eof(timeout=6)
    code, _ = echo_default.stop()
    assert code == 0


def test_sigterm_client_not_answering_close_is_dropped(echo_default):
    # The client never answers the server's close: the server must give
    # up after the close timeout (5 s) and still exit 0.
    with RawClient(echo_default.port) as c:
        c.upgrade()
        t0 = time.monotonic()
        echo_default.proc.send_signal(15)
        c.expect_close(1001, timeout=6, reply=False)
        code, secs = echo_default.stop(timeout=9)
        assert code == 0
        assert time.monotonic() - t0 < 8


def test_sigterm_with_no_clients_is_fast(echo_server):
    code, secs = echo_server.stop()
    assert code == 0
    assert secs < 2, "idle stop took %.1fs" % secs


def test_sigterm_with_many_raw_clients(echo_server):
    clients = []
    try:
        for _ in range(200):
            c = RawClient(echo_server.port)
            c.upgrade()
            clients.append(c)
        clients[-1].echo(OP_TEXT, "last one is served")
        echo_server.proc.send_signal(15)
        for c in clients:
            c.expect_close(1001, timeout=6)
        for c in clients:
            c.expect_eof(timeout=6)
        code, secs = echo_server.stop()
        assert code == 0, echo_server.stderr_text()
    finally:
        for c in clients:
            c.close()


def test_sigterm_during_pipelined_echoes(echo_server):
    """Echoes in flight at stop time arrive complete and in order, then
    the close 1001; nothing follows the close frame."""
    with RawClient(echo_server.port) as c:
        c.upgrade()
        msgs = [("msg %d " % i).encode() * 50 for i in range(200)]
        c.send(b"".join(frame(OP_TEXT, m) for m in msgs))
        echo_server.proc.send_signal(15)
        i = 0
        while True:
            f = c.read_frame(timeout=6)
            if f.opcode == OP_CLOSE:
                assert f.close_code == 1001, f
                break
            assert f.opcode == OP_TEXT and f.fin, f
            assert f.payload == msgs[i], "echo %d wrong" % i
            i += 1
        c.send_frame(OP_CLOSE, f.payload[:2])
        c.expect_eof(timeout=6)
    code, _ = echo_server.stop()
    assert code == 0, echo_server.stderr_text()


def test_connection_churn_and_abrupt_disconnects(echo_server):
    import socket as _s
    for i in range(150):
        c = RawClient(echo_server.port)
        kind = i % 5
        if kind == 0:      # close right after connecting
            pass
        elif kind == 1:    # half a handshake, then RST
            c.send(handshake_request()[0][:40])
        else:
            c.upgrade()
            if kind == 2:  # proper close handshake
                c.send_frame(OP_CLOSE, b"\x03\xe8")
                c.expect_close(1000, reply=False)
            elif kind == 3:  # half a frame, then RST
                c.send(frame(OP_BINARY, bytes(1000))[:300])
            else:          # message, do not read the echo, RST
                c.send_frame(OP_TEXT, b"bye")
        if kind in (1, 3, 4):
            c.sock.setsockopt(_s.SOL_SOCKET, _s.SO_LINGER,
                              struct.pack("ii", 1, 0))
        c.close()
    run(echo_many(echo_server, n=10, tag="after churn"))


# -- IPv6 ----------------------------------------------------------------------

def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_loopback(start_server):
    srv = start_server("echo_server", host="::1")
    with RawClient(srv.port, host="::1") as c:
        c.upgrade(host="[::1]:%d" % srv.port)
        c.echo(OP_TEXT, "over IPv6")
    run(echo_many(srv, n=5, tag="ipv6"))
