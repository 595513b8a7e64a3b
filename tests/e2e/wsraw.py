"""A tiny raw-socket WebSocket client for end-to-end tests.

It builds handshake requests and masked frames byte by byte so tests can
send exactly what they want (including invalid input), and parses server
frames and HTTP responses strictly.
"""
import asyncio
import base64
import hashlib
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

DEFAULT_TIMEOUT = 5.0


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key):
    digest = hashlib.sha1(key.encode("ascii") + GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_request(path="/", host="127.0.0.1", key=None, version="13",
                      method="GET", http="HTTP/1.1", extra=(), omit=(),
                      upgrade="websocket", connection="Upgrade"):
    """Returns (request bytes, key). Headers named in |omit| (lower case)
    are left out; |extra| is a list of (name, value) appended."""
    key = key or new_key()
    headers = [("Host", host), ("Upgrade", upgrade),
               ("Connection", connection), ("Sec-WebSocket-Key", key),
               ("Sec-WebSocket-Version", version)]
    headers = [(n, v) for n, v in headers if n.lower() not in omit and
               v is not None]
    headers += list(extra)
    lines = ["%s %s %s" % (method, path, http)]
    lines += ["%s: %s" % (n, v) for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^
            int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None,
          length=None):
    """Encodes one client frame. |rsv| is the 3-bit RSV field (4 = RSV1).
    |length| overrides the announced payload length (the payload given is
    still appended as is)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        mk = mask_key if mask_key is not None else os.urandom(4)
        return head + mk + mask_bytes(payload, mk)
    return head + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.payload, self.masked = payload, masked

    @property
    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        return "Frame(fin=%d rsv=%d op=%d len=%d %r)" % (
            self.fin, self.rsv, self.opcode, len(self.payload),
            self.payload[:40])


class HttpResponse:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status, self.reason = status, reason
        self.headers = headers  # list of (lower-case name, value)
        self.body, self.raw_head = body, raw_head

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def __repr__(self):
        return "HttpResponse(%d %s %r)" % (self.status, self.reason,
                                           self.headers)


class Closed(Exception):
    """The server ended the TCP connection (EOF or reset)."""


class RawClient:
    allow_rsv1 = False  # permessage-deflate clients set it (RSV1: compressed)

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect((host, port))
        self.host, self.port = host, port
        self.buf = b""
        self.timeout = timeout

    # -- context manager -------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- raw I/O -----------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def send_slowly(self, data, chunk=1, delay=0.002):
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i:i + chunk])
            time.sleep(delay)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for server data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError as e:
            raise Closed("connection reset") from e
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_until(self, marker, timeout=None, limit=1 << 20):
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (marker,
                                                                 limit))
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    # -- HTTP ----------------------------------------------------------------
    def read_http_response(self, timeout=None, read_body=True):
        head = self.recv_until(b"\r\n\r\n", timeout=timeout)
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[0] == "HTTP/1.1", \
            "bad status line %r" % lines[0]
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            assert sep, "bad header line %r" % line
            headers.append((name.strip().lower(), value.strip()))
        resp = HttpResponse(status, reason, headers, b"", head)
        if read_body:
            cl = resp.header("content-length")
            if cl is not None and int(cl) > 0:
                resp.body = self.recv_exact(int(cl), timeout=timeout)
        return resp

    def handshake(self, path="/", **kw):
        req, key = handshake_request(path=path, **kw)
        self.send(req)
        resp = self.read_http_response()
        return resp, key

    def upgrade(self, path="/", **kw):
        resp, key = self.handshake(path=path, **kw)
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-accept") == accept_for(key), resp
        assert (resp.header("upgrade") or "").lower() == "websocket", resp
        assert "upgrade" in (resp.header("connection") or "").lower(), resp
        return resp

    # -- frames ----------------------------------------------------------------
    def send_frame(self, opcode, payload=b"", **kw):
        self.send(frame(opcode, payload, **kw))

    def read_frame(self, timeout=None):
        b0, b1 = self.recv_exact(2, timeout)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.recv_exact(2, timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.recv_exact(8, timeout))[0]
        masked = bool(b1 & 0x80)
        mk = self.recv_exact(4, timeout) if masked else None
        payload = self.recv_exact(n, timeout) if n else b""
        if masked:
            payload = mask_bytes(payload, mk)
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload, masked)
        assert not f.masked, "server frames must not be masked: %r" % f
        assert f.rsv == 0 or (self.allow_rsv1 and f.rsv == 4), \
            "server frame with RSV bits: %r" % f
        return f

    def read_message(self, timeout=None):
        """Reads one whole data message (joins fragments, skips pongs).
        Returns (opcode, payload)."""
        f = self.read_frame(timeout)
        while f.opcode == OP_PONG:
            f = self.read_frame(timeout)
        assert f.opcode in (OP_TEXT, OP_BINARY), "expected data: %r" % f
        op, data = f.opcode, f.payload
        while not f.fin:
            f = self.read_frame(timeout)
            assert f.opcode == OP_CONT, "expected continuation: %r" % f
            data += f.payload
        return op, data

    def echo(self, opcode, payload, timeout=None):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.send_frame(opcode, payload)
        op, data = self.read_message(timeout)
        assert op == opcode
        assert data == payload
        return data

    def expect_close(self, code=None, timeout=None, reply=True):
        """Reads frames until a close frame (no data frame may come first),
        optionally answers it, and returns the close Frame."""
        f = self.read_frame(timeout)
        assert f.opcode == OP_CLOSE, "expected a close frame, got %r" % f
        assert f.fin, f
        if code is not None:
            assert f.close_code == code, \
                "expected close code %d, got %r" % (code, f.close_code)
        if reply:
            try:
                self.send_frame(OP_CLOSE, f.payload[:2])
            except OSError:
                pass
        return f

    def expect_eof(self, timeout=None):
        """Asserts the server ends the TCP connection within |timeout|
        without sending anything more."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._fill(deadline)
                raise AssertionError("unexpected data before EOF: %r" %
                                     self.buf[:80])
        except Closed:
            return

    def expect_silence(self, seconds=0.2):
        """Asserts nothing arrives for |seconds| (used sparingly)."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        raise AssertionError("unexpected data: %r" % data[:80])


def run(coro, timeout=30):
    """Runs the coroutine |coro| to completion within |timeout| seconds."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())
