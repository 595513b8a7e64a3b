"""Close handshake details and frame-level behaviour over raw sockets."""
import os
import time

import pytest

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                   Closed, RawClient, close_payload, frame)


# -- close handshake ---------------------------------------------------------

def test_client_close_4000_with_reason_is_echoed(echo_server):
    with RawClient(echo_server.port) as c:
        c.upgrade()
        c.echo(OP_TEXT, "hi")
        c.send_frame(OP_CLOSE, close_payload(4000, "custom reason"))
        f = c.expect_close(4000, reply=False)
        assert f.opcode == OP_CLOSE
        c.expect_eof()


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4999])
def test_valid_close_codes_are_echoed(echo_default, code):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_CLOSE, close_payload(code, "r"))
        c.expect_close(code, reply=False)
        c.expect_eof()


def test_empty_close_gets_empty_close(echo_server):
    with RawClient(echo_server.port) as c:
        c.upgrade()
        c.send_frame(OP_CLOSE, b"")
        f = c.expect_close(reply=False)
        assert f.payload == b"", \
            "expected an empty close payload (1005 must never be on the " \
            "wire), got %r" % f.payload
        c.expect_eof()


def test_server_closes_tcp_after_close_handshake(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        t0 = time.monotonic()
        c.send_frame(OP_CLOSE, close_payload(1000))
        c.expect_close(1000, reply=False)
        c.expect_eof(timeout=3)
        assert time.monotonic() - t0 < 2.0, "server was slow to close TCP"


def test_close_while_fragmented_message_in_progress(echo_default):
    # Control frames may be interleaved with fragments; close ends it all.
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send(frame(OP_TEXT, b"partial", fin=False) +
               frame(OP_CLOSE, close_payload(1000)))
        c.expect_close(1000, reply=False)
        c.expect_eof()


def test_tcp_eof_without_close_frame_does_not_disturb_server(echo_default):
    c = RawClient(echo_default.port)
    c.upgrade()
    c.send(frame(OP_TEXT, b"half", fin=False))
    c.close()
    with RawClient(echo_default.port) as c2:
        c2.upgrade()
        c2.echo(OP_TEXT, "still serving")


# -- control frames ----------------------------------------------------------

def test_raw_ping_gets_pong_with_same_payload(echo_server):
    with RawClient(echo_server.port) as c:
        c.upgrade()
        for payload in (b"", b"abc", os.urandom(125)):
            c.send_frame(OP_PING, payload)
            f = c.read_frame()
            assert f.opcode == OP_PONG and f.fin, f
            assert f.payload == payload


def test_unsolicited_pong_is_ignored(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_PONG, b"unsolicited")
        c.echo(OP_TEXT, "after pong")


def test_ping_between_fragments(echo_server):
    with RawClient(echo_server.port) as c:
        c.upgrade()
        c.send(frame(OP_TEXT, b"Hello, ", fin=False) +
               frame(OP_PING, b"mid") +
               frame(OP_CONT, b"World", fin=False) +
               frame(OP_CONT, b"!"))
        f = c.read_frame()
        assert f.opcode == OP_PONG and f.payload == b"mid", f
        op, data = c.read_message()
        assert (op, data) == (OP_TEXT, b"Hello, World!")


# -- framing -----------------------------------------------------------------

def test_fifty_frames_in_one_write_echo_in_order(echo_server):
    msgs = [("message %02d " % i).encode() * (i % 5 + 1) for i in range(50)]
    with RawClient(echo_server.port) as c:
        c.upgrade()
        c.send(b"".join(frame(OP_TEXT if i % 2 else OP_BINARY, m)
                        for i, m in enumerate(msgs)))
        for i, m in enumerate(msgs):
            op, data = c.read_message()
            assert op == (OP_TEXT if i % 2 else OP_BINARY), i
            assert data == m, "echo %d out of order or corrupt" % i


def test_upgrade_and_frame_in_same_write(echo_default):
    from wsraw import accept_for, handshake_request
    req, key = handshake_request()
    with RawClient(echo_default.port) as c:
        c.send(req + frame(OP_TEXT, b"eager client"))
        resp = c.read_http_response()
        assert resp.status == 101
        assert resp.header("sec-websocket-accept") == accept_for(key)
        assert c.read_message() == (OP_TEXT, b"eager client")


def test_frame_split_byte_by_byte_is_echoed(echo_server):
    with RawClient(echo_server.port) as c:
        c.upgrade()
        c.send_slowly(frame(OP_TEXT, "split é frame".encode()),
                      chunk=1, delay=0.003)
        assert c.read_message() == (OP_TEXT, "split é frame".encode())


def test_16bit_length_frame_split_byte_by_byte(echo_default):
    payload = os.urandom(300)
    with RawClient(echo_default.port) as c:
        c.upgrade()
        data = frame(OP_BINARY, payload)
        c.send_slowly(data[:20], chunk=1, delay=0.003)
        c.send(data[20:])
        assert c.read_message() == (OP_BINARY, payload)


@pytest.mark.parametrize("size", [126, 65535, 65536, 200000])
def test_raw_extended_lengths(echo_default, size):
    payload = os.urandom(size)
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_BINARY, payload)
        assert c.read_message(timeout=10) == (OP_BINARY, payload)


def test_zero_mask_key_is_accepted(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_TEXT, b"zero mask", mask_key=b"\x00\x00\x00\x00")
        assert c.read_message() == (OP_TEXT, b"zero mask")


def test_empty_fragments(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send(frame(OP_BINARY, b"", fin=False) + frame(OP_CONT, b"",
                                                       fin=False) +
               frame(OP_CONT, b""))
        assert c.read_message() == (OP_BINARY, b"")
