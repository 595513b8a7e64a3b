"""The HTTP side of the opening handshake, over raw sockets."""
import base64
import hashlib
import os

import pytest

from wsraw import (OP_TEXT, Closed, RawClient, accept_for, handshake_request,
                   new_key)


def request_status(server, data, timeout=5):
    """Sends |data|, returns the HTTP response; the server must then end
    the connection (an error response is never followed by an upgrade)."""
    with RawClient(server.port) as c:
        c.send(data)
        resp = c.read_http_response(timeout=timeout)
        return resp


def assert_closes_after(c):
    try:
        c.expect_eof(timeout=5)
    except Closed:
        pass


def test_accept_key_is_correct_for_random_key(echo_default):
    for _ in range(5):
        key = base64.b64encode(os.urandom(16)).decode()
        expected = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        with RawClient(echo_default.port) as c:
            resp, _ = c.handshake(key=key)
            assert resp.status == 101, resp
            assert resp.header("sec-websocket-accept") == expected
            c.echo(OP_TEXT, "upgraded")


def test_rfc_example_key(echo_default):
    # RFC 6455 section 1.3 example.
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with RawClient(echo_default.port) as c:
        resp, _ = c.handshake(key=key)
        assert resp.status == 101
        assert resp.header("sec-websocket-accept") == \
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_101_response_headers(echo_default):
    with RawClient(echo_default.port) as c:
        resp = c.upgrade(path="/any/path?x=1")
        assert resp.reason.lower().startswith("switching protocols")
        assert resp.header("content-length") in (None, "0")
        c.echo(OP_TEXT, "ok")


def test_missing_key_is_400(echo_default):
    req, _ = handshake_request(omit=("sec-websocket-key",))
    with RawClient(echo_default.port) as c:
        c.send(req)
        resp = c.read_http_response()
        assert resp.status == 400, resp
        assert_closes_after(c)


def test_bad_key_length_is_400(echo_default):
    req, _ = handshake_request(key=base64.b64encode(b"short").decode())
    resp = request_status(echo_default, req)
    assert resp.status == 400, resp


def test_version_8_is_426_with_version_13(echo_default):
    req, _ = handshake_request(version="8")
    with RawClient(echo_default.port) as c:
        c.send(req)
        resp = c.read_http_response()
        assert resp.status == 426, resp
        assert resp.header("sec-websocket-version") == "13", resp
        assert_closes_after(c)


def test_plain_get_without_upgrade_is_426(echo_default):
    req = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Accept: text/html\r\n\r\n")
    resp = request_status(echo_default, req)
    assert resp.status == 426, resp


def test_post_with_upgrade_headers_is_405(echo_default):
    req, _ = handshake_request(method="POST")
    resp = request_status(echo_default, req)
    assert resp.status == 405, resp


def test_head_over_8192_bytes_is_431(echo_default):
    req, _ = handshake_request(extra=[("X-Padding", "a" * 9000)])
    with RawClient(echo_default.port) as c:
        try:
            c.send(req)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading everything
        resp = c.read_http_response()
        assert resp.status == 431, resp


def test_head_just_under_limit_upgrades(echo_default):
    req, key = handshake_request()
    pad = 8192 - len(req) - len("X-Pad: \r\n") - 16
    req, key = handshake_request(key=key, extra=[("X-Pad", "p" * pad)])
    assert len(req) <= 8192
    with RawClient(echo_default.port) as c:
        c.send(req)
        resp = c.read_http_response()
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-accept") == accept_for(key)
        c.echo(OP_TEXT, "big head ok")


def test_request_split_byte_by_byte_upgrades(echo_default):
    req, key = handshake_request()
    with RawClient(echo_default.port) as c:
        c.send_slowly(req, chunk=1, delay=0.002)
        resp = c.read_http_response()
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-accept") == accept_for(key)
        c.echo(OP_TEXT, "slow handshake")


def test_headers_case_insensitive_and_connection_token_list(echo_default):
    key = new_key()
    req = ("GET /chat HTTP/1.1\r\n"
           "hOsT: 127.0.0.1\r\n"
           "UPGRADE: WebSocket\r\n"
           "connection: keep-alive, Upgrade\r\n"
           "sec-websocket-key: %s\r\n"
           "SEC-WEBSOCKET-VERSION: 13\r\n\r\n" % key).encode()
    with RawClient(echo_default.port) as c:
        c.send(req)
        resp = c.read_http_response()
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-accept") == accept_for(key)
        c.echo(OP_TEXT, "case-insensitive ok")


def test_connection_token_list_lowercase_upgrade(echo_default):
    with RawClient(echo_default.port) as c:
        c.upgrade(connection="upgrade,keep-alive")
        c.echo(OP_TEXT, "token list ok")


def test_http_1_0_is_400(echo_default):
    req, _ = handshake_request(http="HTTP/1.0")
    resp = request_status(echo_default, req)
    assert resp.status == 400, resp


def test_garbage_is_400(echo_default):
    with RawClient(echo_default.port) as c:
        c.send(b"\x16\x03\x01\x02\x00garbage\x00\xff bytes\r\n\r\n")
        resp = c.read_http_response()
        assert resp.status == 400, resp
        assert_closes_after(c)


def test_missing_host_is_400(echo_default):
    req, _ = handshake_request(omit=("host",))
    resp = request_status(echo_default, req)
    assert resp.status == 400, resp


def test_second_connection_after_rejection_works(echo_default):
    request_status(echo_default, b"nonsense\r\n\r\n")
    with RawClient(echo_default.port) as c:
        c.upgrade()
        c.echo(OP_TEXT, "fine")


def test_header_values_with_surrounding_whitespace(echo_default):
    key = new_key()
    req = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: \t websocket \t\r\n"
           "Connection:Upgrade\r\nSec-WebSocket-Key: \t%s \t\r\n"
           "Sec-WebSocket-Version:  13  \r\n\r\n" % key).encode()
    with RawClient(echo_default.port) as c:
        c.send(req)
        resp = c.read_http_response()
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-accept") == accept_for(key)


def test_connection_split_over_two_header_lines(echo_default):
    # RFC 7230 3.2.2: a list header may be sent as several fields.
    with RawClient(echo_default.port) as c:
        c.upgrade(connection="keep-alive",
                  extra=[("Connection", "Upgrade")])
        c.echo(OP_TEXT, "two connection headers")


def test_no_extension_or_subprotocol_is_accepted_unasked(echo_default):
    # No handshake hook: offered extensions and subprotocols are declined,
    # i.e. absent from the 101 (RFC 6455 4.2.2).
    with RawClient(echo_default.port) as c:
        resp = c.upgrade(extra=[
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Sec-WebSocket-Protocol", "chat, superchat")])
        assert resp.header("sec-websocket-extensions") is None, resp
        assert resp.header("sec-websocket-protocol") is None, resp
        c.echo(OP_TEXT, "plain")


def test_request_line_over_limit_is_rejected(echo_default):
    req, _ = handshake_request(path="/" + "a" * 9000)
    with RawClient(echo_default.port) as c:
        try:
            c.send(req)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = c.read_http_response()
        assert resp.status in (414, 431), resp


def test_header_line_without_colon_is_400(echo_default):
    req, _ = handshake_request(extra=[("Broken header line", None)])
    req = req.replace(b"Broken header line: None", b"Broken header line")
    resp = request_status(echo_default, req)
    assert resp.status == 400, resp


def test_upgrade_header_other_protocol_is_not_upgraded(echo_default):
    req, _ = handshake_request(upgrade="h2c")
    resp = request_status(echo_default, req)
    assert resp.status in (400, 426), resp
