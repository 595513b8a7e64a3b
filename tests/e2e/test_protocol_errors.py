"""Protocol violations: the server must send a close frame with the RFC 6455
status code and then end the TCP connection."""
import os
import struct

import pytest

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawClient,
                   close_payload, frame)


def fails_with(server, data, code, pre=None):
    """Upgrades, optionally echoes a good message (|pre|), sends |data| and
    expects close |code| then EOF."""
    with RawClient(server.port) as c:
        c.upgrade()
        if pre:
            c.echo(OP_TEXT, pre)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        f = c.expect_close(code)
        c.expect_eof()
        return f


def test_unmasked_client_frame_is_1002(echo_server):
    fails_with(echo_server, frame(OP_TEXT, b"not masked", mask=False), 1002)


@pytest.mark.parametrize("opcode", [3, 7, 0xB, 0xF])
def test_reserved_opcode_is_1002(echo_default, opcode):
    fails_with(echo_default, frame(opcode, b"x"), 1002)


@pytest.mark.parametrize("rsv", [4, 2, 1], ids=["rsv1", "rsv2", "rsv3"])
def test_rsv_bit_is_1002(echo_default, rsv):
    fails_with(echo_default, frame(OP_TEXT, b"rsv", rsv=rsv), 1002)


def test_continuation_without_start_is_1002(echo_server):
    fails_with(echo_server, frame(OP_CONT, b"orphan"), 1002)


def test_new_message_inside_fragmented_message_is_1002(echo_default):
    data = frame(OP_TEXT, b"start", fin=False) + frame(OP_TEXT, b"again")
    fails_with(echo_default, data, 1002)


def test_ping_with_126_byte_payload_is_1002(echo_server):
    fails_with(echo_server, frame(OP_PING, b"p" * 126), 1002)


def test_fragmented_ping_is_1002(echo_default):
    fails_with(echo_default, frame(OP_PING, b"ping", fin=False), 1002)


def test_fragmented_close_is_1002(echo_default):
    fails_with(echo_default,
               frame(OP_CLOSE, close_payload(1000), fin=False), 1002)


def test_close_with_one_byte_payload_is_1002(echo_server):
    fails_with(echo_server, frame(OP_CLOSE, b"\x03"), 1002)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000,
                                  2999, 5000, 65535])
def test_close_with_invalid_code_is_1002(echo_default, code):
    fails_with(echo_default, frame(OP_CLOSE, close_payload(code)), 1002)


def test_close_with_invalid_utf8_reason_is_1007(echo_default):
    fails_with(echo_default,
               frame(OP_CLOSE, close_payload(1000, b"bad \xff reason")), 1007)


def test_invalid_utf8_text_is_1007(echo_server):
    fails_with(echo_server, frame(OP_TEXT, b"abc\xffdef"), 1007, pre="ok")


@pytest.mark.parametrize("bad", [
    b"\xc0\xaf",              # overlong '/'
    b"\xed\xa0\x80",          # UTF-16 surrogate
    b"\xf4\x90\x80\x80",      # above U+10FFFF
    b"\xe2\x82",              # truncated at end of message
], ids=["overlong", "surrogate", "too-large", "truncated"])
def test_invalid_utf8_variants_are_1007(echo_default, bad):
    fails_with(echo_default, frame(OP_TEXT, b"x" + bad), 1007)


def test_invalid_utf8_in_second_fragment_is_1007(echo_server):
    data = (frame(OP_TEXT, "good é start".encode(), fin=False) +
            frame(OP_CONT, b"bad \xff here", fin=False) +
            frame(OP_CONT, b" end"))
    fails_with(echo_server, data, 1007)


def test_utf8_sequence_split_across_fragments_is_valid(echo_server):
    euro = "€".encode()  # e2 82 ac
    with RawClient(echo_server.port) as c:
        c.upgrade()
        c.send(frame(OP_TEXT, b"a" + euro[:1], fin=False) +
               frame(OP_CONT, euro[1:2], fin=False) +
               frame(OP_CONT, euro[2:] + b"z"))
        op, data = c.read_message()
        assert (op, data) == (OP_TEXT, b"a" + euro + b"z")


def test_message_over_max_message_is_1009(start_server, mode):
    io, agents = mode
    srv = start_server("echo_server", "--io-threads", io, "--agents", agents,
                       "--max-message", 1000)
    with RawClient(srv.port) as c:
        c.upgrade()
        c.echo(OP_BINARY, os.urandom(1000))  # exactly at the limit is fine
    f = fails_with(srv, frame(OP_BINARY, os.urandom(1001)), 1009)
    assert f.payload[2:] == b"message too big (limit 1000 bytes)"


def test_fragmented_message_over_max_message_is_1009(start_server):
    srv = start_server("echo_server", "--max-message", 1000)
    data = (frame(OP_BINARY, b"a" * 600, fin=False) +
            frame(OP_CONT, b"b" * 401))
    fails_with(srv, data, 1009)


def test_frame_header_announcing_2_pow_40_is_1009_immediately(start_server):
    srv = start_server("echo_server", "--max-message", 1000)
    # Only the header and the mask key: no payload is ever sent, so the
    # server must reject on the announced length alone.
    hdr = frame(OP_BINARY, b"", length=1 << 40)
    assert len(hdr) == 2 + 8 + 4
    f = fails_with(srv, hdr, 1009)
    assert f.payload[2:] == b"message too big (limit 1000 bytes)"


def test_frame_header_announcing_2_pow_40_default_limit_is_1009(echo_default):
    fails_with(echo_default, frame(OP_BINARY, b"", length=1 << 40), 1009)


def test_64bit_length_with_high_bit_set_is_rejected(echo_default):
    # RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0.
    head = struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + b"\x00" * 4
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send(head)
        f = c.expect_close()
        assert f.close_code in (1002, 1009), f
        c.expect_eof()


def test_message_after_close_is_ignored(echo_default):
    # Data sent after our close frame must not be echoed.
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send(frame(OP_CLOSE, close_payload(1000)) +
               frame(OP_TEXT, b"after close"))
        f = c.expect_close(1000, reply=False)
        assert f.opcode == OP_CLOSE
        c.expect_eof()


def test_close_with_126_byte_payload_is_1002(echo_default):
    fails_with(echo_default, frame(OP_CLOSE, close_payload(1000, "r" * 124)),
               1002)


def test_close_with_125_byte_payload_is_valid(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_CLOSE, close_payload(1000, "r" * 123))
        c.expect_close(1000, reply=False)
        c.expect_eof()


def test_default_limit_1mib_plus_one_is_1009(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_BINARY, bytes(1 << 20))
        assert c.read_message(timeout=10) == (OP_BINARY, bytes(1 << 20))
    fails_with(echo_default, frame(OP_BINARY, bytes((1 << 20) + 1)), 1009)


def test_protocol_error_without_client_reply_closes_tcp(echo_default):
    # The client never answers the server's close: the TCP connection must
    # still end, at the latest after the close timeout (5 s).
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.send_frame(OP_TEXT, b"unmasked", mask=False)
        c.expect_close(1002, reply=False)
        c.expect_eof(timeout=7)


def test_invalid_utf8_fails_fast_before_message_end(echo_server):
    # The message never finishes: the server must not wait for FIN to
    # notice the invalid byte (RFC 6455 8.1 allows failing fast; the
    # connection must not stay open half-validated).
    fails_with(echo_server, frame(OP_TEXT, b"ok so far \xff", fin=False), 1007)


def test_utf8_truncated_at_end_of_fragmented_message_is_1007(echo_default):
    data = frame(OP_TEXT, b"a\xe2", fin=False) + frame(OP_CONT, b"\x82")
    fails_with(echo_default, data, 1007)


def test_fragment_announcing_2_pow_40_mid_message_is_1009(start_server):
    srv = start_server("echo_server", "--max-message", 1000)
    data = (frame(OP_BINARY, b"a" * 600, fin=False) +
            frame(OP_CONT, b"", length=1 << 40))
    fails_with(srv, data, 1009)
