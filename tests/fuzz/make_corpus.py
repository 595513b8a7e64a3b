#!/usr/bin/env python3
"""Writes the small hand-made seed corpora for the fuzz targets into
corpus/<target>/ next to this script (fuzz_inflate's compressed payloads
come from Python's zlib). Re-run after changing the seeds."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(b0, payload, mask=b"\x11\x22\x33\x44", claim=None):
    n = len(payload) if claim is None else claim
    mbit = 0x80 if mask else 0
    if n <= 125:
        h = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        h = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        h += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return h + (b"" if claim is not None else payload)


# fuzz_frame input: byte 0 = flags (bit 0 require_mask, bits 1-2 limits),
# byte 1 = split seed, then the byte stream.
FRAME = {
    "text": b"\x01\x00" + frame(0x81, b"Hello"),
    "binary_126": b"\x01\x07" + frame(0x82, bytes(range(126))),
    "binary_65536_head": b"\x00\x03" + frame(0x82, b"", claim=65536)
    + b"x" * 100,
    "fragments_ping": b"\x01\x05" + frame(0x01, b"Hel") + frame(0x89, b"p")
    + frame(0x00, b"lo") + frame(0x8A, b"") + frame(0x80, b"!"),
    "utf8_split": b"\x01\x09" + frame(0x01, b"\xe2") + frame(0x00, b"\x82")
    + frame(0x80, b"\xac\xf0\x9f\x98\x80"),
    "close": b"\x01\x02" + frame(0x88, b"\x03\xe8bye") + frame(0x89, b"x"),
    "close_bad": b"\x01\x02" + frame(0x88, b"\x03\xed"),
    "unmasked": b"\x00\x04" + frame(0x81, b"hi", mask=None)
    + frame(0x82, b"", mask=None),
    "bad_utf8": b"\x01\x01" + frame(0x81, b"ok\xed\xa0\x80"),
    "rsv_opcode": b"\x01\x01" + frame(0xC1, b"a") + frame(0x83, b""),
    "too_big": b"\x03\x06" + frame(0x02, b"a" * 60) + frame(0x80, b"", claim=300),
    "limits_ok": b"\x05\x08" + frame(0x01, b"a" * 500) + frame(0x89, b"ping")
    + frame(0x80, b"b" * 500),
    "len64_top": b"\x01\x00" + frame(0x82, b"", claim=1 << 63),
}

REQ = (b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n"
       b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       b"Sec-WebSocket-Version: 13\r\n")

# fuzz_handshake input: byte 0 = head limit / 16 - 1, then the request.
HANDSHAKE = {
    "good": b"\xff" + REQ + b"\r\n",
    "protocols": b"\xff" + REQ + b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Protocol: v2\r\nOrigin: https://a.example\r\n\r\n",
    "bare_lf": b"\x80" + REQ.replace(b"\r\n", b"\n") + b"\n",
    "plain_get": b"\x40GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
    "post_upgrade": b"\xff" + REQ.replace(b"GET", b"POST") + b"\r\n",
    "http10": b"\xff" + REQ.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n",
    "bad_version": b"\xff" + REQ.replace(b"Version: 13", b"Version: 8") + b"\r\n",
    "bad_key": b"\xff" + REQ.replace(b"bub25jZQ==", b"bub25jZQ=") + b"\r\n",
    "no_host": b"\xff" + REQ.replace(b"Host: example.com\r\n", b"") + b"\r\n",
    "obs_fold": b"\xff" + REQ + b"X: a\r\n b\r\n\r\n",
    "too_large": b"\x02" + REQ + b"\r\n",
    "many_headers": b"\xff" + b"GET / HTTP/1.1\r\n"
    + b"".join(b"X-%d: v\r\n" % i for i in range(70)) + b"\r\n",
    "garbage": b"\x10\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}

# fuzz_utf8 input: byte 0 = split seed, then the text.
UTF8 = {
    "ascii": b"\x00" + b"Hello, world! " * 4,
    "kosme": b"\x01" + "κόσμε".encode(),
    "mixed": b"\x02" + "a€😀é\x7f".encode() * 5,
    "max": b"\x03\xf4\x8f\xbf\xbf",
    "above_max": b"\x04\xf4\x90\x80\x80",
    "surrogate": b"\x05\xed\xa0\x80",
    "overlong_2": b"\x06\xc0\xaf",
    "overlong_3": b"\x07\xe0\x80\xaf",
    "overlong_4": b"\x08\xf0\x80\x80\xaf",
    "truncated": b"\x09abc\xe2\x82",
    "lone_cont": b"\x0a\x80\xbf",
    "bad_lead": b"\x0b" + b"x" * 20 + b"\xff" + b"y" * 9,
    "long_ascii_tail": b"\x0c" + b"z" * 40 + "€".encode(),
}


def deflate(payloads, bits=15, level=6, finish=False):
    """RFC 7692 §7.2.1 compressed payloads, one stream for all (context
    takeover): raw DEFLATE, sync flush, the 00 00 ff ff tail removed; with
    finish, one final block each and a fresh stream per payload."""
    out = []
    c = zlib.compressobj(level, zlib.DEFLATED, -bits)
    for p in payloads:
        if finish:
            c = zlib.compressobj(level, zlib.DEFLATED, -bits)
            out.append(c.compress(p) + c.flush(zlib.Z_FINISH))
        else:
            z = c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH)
            assert z.endswith(b"\x00\x00\xff\xff")
            out.append(z[:-4])
    return out


def inflate_cfg(keep, bits=15, mem_level=8, require_mask=1):
    """fuzz_inflate's byte 0: bit 0 context takeover, bit 1 require_mask,
    bits 2-4 window bits - 8, bits 5-7 memLevel - 1."""
    return bytes([keep | require_mask << 1 | (bits - 8) << 2
                  | (mem_level - 1) << 5])


JSON = b'{"user":"alice","msg":"hello world","room":42,"tags":["a","b"]}'
(Z_HELLO,) = deflate([b"Hello"])
Z_TWO = deflate([JSON, JSON])
Z_LONG = deflate([JSON * 8])[0]

# fuzz_inflate input: byte 0 = config (inflate_cfg), byte 1 = split seed,
# then frames; RSV1 (0x40) marks a compressed message's first frame.
INFLATE = {
    "hello": inflate_cfg(1) + b"\x00" + frame(0xC1, Z_HELLO),
    "takeover": inflate_cfg(1) + b"\x03" + frame(0xC1, Z_TWO[0])
    + frame(0xC1, Z_TWO[1]),
    "no_takeover": inflate_cfg(0, mem_level=1) + b"\x04"
    + b"".join(frame(0xC1, z) for z in deflate([JSON]) * 2),
    "fragmented": inflate_cfg(1) + b"\x05" + frame(0x41, Z_LONG[:10])
    + frame(0x89, b"ping") + frame(0x00, Z_LONG[10:20])
    + frame(0x80, Z_LONG[20:]),
    "binary": inflate_cfg(0) + b"\x06"
    + frame(0xC2, deflate([bytes(range(256)) * 4])[0]),
    "final_block": inflate_cfg(1) + b"\x07"
    + frame(0xC1, deflate([b"Hello"], finish=True)[0] + b"\x00")
    + frame(0xC1, Z_HELLO),
    "stored": inflate_cfg(0) + b"\x08"
    + frame(0xC1, deflate([b"stored, not compressed"], level=0)[0]),
    "window_9": inflate_cfg(1, bits=9) + b"\x09"
    + frame(0xC1, deflate([JSON * 20], bits=9)[0]),
    "window_8": inflate_cfg(1, bits=8) + b"\x0a"
    + frame(0xC2, deflate([bytes(600)], bits=9)[0]),
    "bomb": inflate_cfg(0, require_mask=0) + b"\x0b"
    + frame(0xC2, deflate([bytes(1 << 20)], level=9)[0], mask=None),
    "empty": inflate_cfg(0) + b"\x0c" + frame(0xC1, b"\x00")
    + frame(0xC1, b""),
    "mixed": inflate_cfg(1) + b"\x0d" + frame(0x81, b"plain")
    + frame(0xC1, Z_HELLO) + frame(0x82, b"\xff") + frame(0x88, b"\x03\xe8"),
    "bad_utf8": inflate_cfg(0) + b"\x0e"
    + frame(0xC1, deflate([b"ok\xed\xa0\x80"])[0]),
    "corrupt": inflate_cfg(0) + b"\x0f" + frame(0xC1, b"\x07\x00")
    + frame(0xC1, Z_HELLO[:-2]),
}


def cluster_msg(kind, name=b"", data=b"", origin=1, id_=0, opcode=0, code=0,
                name_len=None):
    """A message between cluster nodes (core/cluster/wire.h): kind 1,
    origin 2, id 8, opcode 1, code 2, name length 1, name, data."""
    nl = len(name) if name_len is None else name_len
    return struct.pack(">BHQBHB", kind, origin, id_, opcode, code, nl) \
        + name + data


# fuzz_cluster input: byte 0 even = a redis:// URL follows, odd = a message.
CLUSTER = {
    "url_plain": b"\x00redis://127.0.0.1",
    "url_port_db": b"\x00redis://redis.example.com:6380/3",
    "url_password": b"\x00redis://:s3cret@h:7000/",
    "url_user": b"\x00redis://alice:p@ss:w0rd@h/15",
    "url_bad_port": b"\x00redis://h:65536",
    "url_garbage": b"\x00redis://h:1x",
    "url_db_path": b"\x00redis://h/1/2",
    "url_scheme": b"\x00rediss://h",
    "url_long_pw": b"\x00redis://:" + b"p" * 513 + b"@h",
    "url_ipv6": b"\x00redis://u%40x:p%2Fw@[::1]:7000/2",
    "url_escape_bad": b"\x00redis://:a%2@h",
    "msg_publish": b"\x01" + cluster_msg(1, b"room/42", b"hello", origin=3,
                                         id_=77, opcode=1),
    "msg_broadcast": b"\x01" + cluster_msg(2, data=bytes(range(256)),
                                           id_=2**64 - 1, opcode=2),
    "msg_send_close": b"\x01" + cluster_msg(3, data=b"bye", id_=5,
                                            code=1000),
    "msg_tag_claimed": b"\x01" + cluster_msg(4, b"user:alice", id_=9,
                                             origin=0xFFFF),
    "msg_tag_released": b"\x01" + cluster_msg(5, b"user:alice", id_=9),
    "msg_alive": b"\x01" + cluster_msg(6, origin=12),
    "msg_gone": b"\x01" + cluster_msg(7, id_=12),
    "msg_name_255": b"\x01" + cluster_msg(1, b"t" * 255, b"x"),
    "msg_name_too_long": b"\x01" + cluster_msg(4, b"tag", name_len=200),
    "msg_kind_0": b"\x01" + cluster_msg(0, b"t", b"d"),
    "msg_kind_8": b"\x01" + cluster_msg(8, b"t", b"d"),
    "msg_short": b"\x01" + cluster_msg(1)[:14],
}


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("fuzz_frame", FRAME)
    write("fuzz_handshake", HANDSHAKE)
    write("fuzz_utf8", UTF8)
    write("fuzz_inflate", INFLATE)
    write("fuzz_cluster", CLUSTER)
