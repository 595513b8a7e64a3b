"""Raw-socket helpers of the Lua tests' Python clients: an HTTP upgrade
request whose whole answer (status, headers, body) is read back, and a
WebSocket client that reads frames itself and never answers a ping (the
peer that a keepalive ping timeout must close), with the RSV1 bit of
permessage-deflate and zlib's raw streams (deflate_raw/inflate_raw). Blocking sockets with
timeouts; call them through run_in_executor from asyncio code."""
import base64
import os
import socket
import struct
import zlib


def upgrade_request(port, path="/", headers=None, host="127.0.0.1", timeout=10.0):
    """Sends a WebSocket upgrade for |path| with the extra |headers| (a list
    of (name, value)) and returns (status, headers, body, sock): headers
    is a list of (name, value) as received, body the bytes after the head
    (Content-Length of them for a refusal), sock the open socket (after a
    101 the WebSocket stream; the caller closes it)."""
    s = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % (n, v) for n, v in (headers or [])]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    got = []
    for line in header_lines:
        name, _, value = line.partition(":")
        got.append((name.strip(), value.strip()))
    length = next((int(v) for n, v in got if n.lower() == "content-length"), None)
    if status != 101 and length is not None:
        while len(rest) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    return status, got, rest, s


def header(headers, name):
    """The first value of header |name| in a list of (name, value), or None."""
    return next((v for n, v in headers if n.lower() == name.lower()), None)


def refusal(port, path="/", headers=None):
    """(status, headers, body as str) of an upgrade the server refuses."""
    status, got, body, s = upgrade_request(port, path, headers)
    s.close()
    return status, got, body.decode("utf-8", "replace")


class RawClient:
    """A WebSocket client on a raw socket, after upgrade_request()'s 101:
    reads frames one by one, answers nothing unless told."""

    def __init__(self, sock, pending=b""):
        self.sock = sock
        self.buf = pending

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed after %d of %d bytes" % (len(self.buf), n))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """(opcode, payload) of the next frame (server frames are unmasked)."""
        _, _, opcode, payload = self.read_frame_bits()
        return opcode, payload

    def read_frame_bits(self):
        """(fin, rsv1, opcode, payload) of the next frame: rsv1 is set on the
        first frame of a message compressed with permessage-deflate."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, self._read(n)

    def send_frame(self, opcode, payload=b"", rsv1=False, fin=True):
        """Sends one masked frame; rsv1 marks a compressed message's first
        frame, fin=False a fragment with more to come."""
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def close(self):
        self.sock.close()


def deflate_raw(data, level=6):
    """|data| compressed as one permessage-deflate message (RFC 7692 7.2.1:
    a raw deflate stream flushed with Z_SYNC_FLUSH, its final 00 00 ff ff
    removed), with a fresh context."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_raw(payload, max_size=64 << 20):
    """The message of a compressed payload (RFC 7692 7.2.2: the 00 00 ff ff
    put back), inflated with a fresh context."""
    d = zlib.decompressobj(-15)
    out = d.decompress(payload + b"\x00\x00\xff\xff", max_size)
    assert not d.unconsumed_tail, "more than %d bytes" % max_size
    return out
