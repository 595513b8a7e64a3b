"""chat_server protocol tests (path /chat; see examples/chat_server.c)."""
import os
import asyncio
import re

import pytest
import websockets

from chatter import barrier, join_url
from wsraw import RawClient, handshake_request, run


async def join(server):
    return await join_url(server.url("/chat"))


def test_welcome_with_distinct_ids(chat_server):
    async def main():
        cs = [await join(chat_server) for _ in range(4)]
        ids = [c.id for c in cs]
        assert len(set(ids)) == 4, ids
        assert all(i > 0 for i in ids)
        for c in cs:
            await c.close()
    run(main())


def test_nick_ok(chat_server):
    async def main():
        a = await join(chat_server)
        assert await a.request("/nick alice") == "ok nick alice"
        await a.close()
    run(main())


def test_nick_taken(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.nick("alice")
        assert await b.request("/nick alice") == "error nick-taken alice"
        await b.nick("bob")  # b can still pick another one
        await a.close()
        await b.close()
    run(main())


def test_nick_change_keeps_working(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.nick("first")
        await a.nick("second")
        await a.send("hi")
        assert await b.recv() == "say second hi"
        await a.close()
        await b.close()
    run(main())


def test_nick_released_after_disconnect(chat_server):
    async def main():
        a = await join(chat_server)
        await a.nick("carol")
        await a.close()
        b = await join(chat_server)
        # The release happens when the server processes the disconnect;
        # allow it a bounded moment after the close handshake completed.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3
        while True:
            reply = await b.request("/nick carol")
            if reply == "ok nick carol" or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert reply == "ok nick carol"
        await b.close()
    run(main())


def test_msg_delivered_to_exactly_that_client(chat_server):
    async def main():
        a, b, c = [await join(chat_server) for _ in range(3)]
        await a.nick("alice")
        await b.nick("bob")
        await c.nick("carl")
        assert await a.request("/msg bob hello there bob") == "ok msg bob"
        assert await b.recv() == "msg alice hello there bob"
        # Nobody else got it: their next messages are their own replies.
        await barrier(c)
        await barrier(a)
        await barrier(b)
        for x in (a, b, c):
            await x.close()
    run(main())


def test_msg_to_missing_user(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.nick("alice")
        assert await a.request("/msg ghost boo") == "error no-such-user ghost"
        await barrier(b)  # b received nothing
        await a.close()
        await b.close()
    run(main())


def test_msg_after_recipient_left(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await b.nick("leaver")
        await b.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3
        while True:
            reply = await a.request("/msg leaver still there?")
            if reply != "ok msg leaver" or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert reply == "error no-such-user leaver"
        await a.close()
    run(main())


def test_say_reaches_everyone_but_sender(chat_server):
    async def main():
        cs = [await join(chat_server) for _ in range(4)]
        names = ["ann", "ben", "cat", "dan"]
        for c, n in zip(cs, names):
            await c.nick(n)
        await cs[0].send("hello everyone")
        for c in cs[1:]:
            assert await c.recv() == "say ann hello everyone"
        await barrier(cs[0])  # the sender did not get its own line
        for c in cs:
            await c.close()
    run(main())


def test_say_order_preserved(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.nick("talker")
        lines = ["line %d" % i for i in range(30)]
        for line in lines:
            await a.send(line)
        got = [await b.recv() for _ in lines]
        assert got == ["say talker " + line for line in lines]
        await a.close()
        await b.close()
    run(main())


def test_anonymous_sender_is_hash_id(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await b.nick("bea")
        await a.send("no nick yet")
        assert await b.recv() == "say %s no nick yet" % a.anon
        assert await a.request("/msg bea psst") == "ok msg bea"
        assert await b.recv() == "msg %s psst" % a.anon
        await a.nick("al")
        await a.send("now named")
        assert await b.recv() == "say al now named"
        await a.close()
        await b.close()
    run(main())


def test_non_ascii_say(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.nick("zoë")
        await a.send("grüße 😀")
        assert await b.recv() == "say zoë grüße 😀"
        await a.close()
        await b.close()
    run(main())


def test_binary_message_is_ignored(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.ws.send(b"binary is not chat")
        await barrier(b)
        await barrier(a)
        await a.close()
        await b.close()
    run(main())


def test_other_path_is_404(start_server):
    srv = start_server("chat_server")
    for path in ("/", "/chatroom", "/other", "/chat/x"):
        req, _ = handshake_request(path=path)
        with RawClient(srv.port) as c:
            c.send(req)
            resp = c.read_http_response()
            assert resp.status == 404, (path, resp)


def test_chat_path_with_query_upgrades(start_server):
    srv = start_server("chat_server")
    with RawClient(srv.port) as c:
        c.upgrade(path="/chat?room=1")
        op, data = c.read_message()
        assert re.fullmatch(rb"welcome #\d+", data), data


def test_websockets_client_sees_404(start_server):
    srv = start_server("chat_server")

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(srv.url("/nope"), open_timeout=5)
        assert e.value.status_code == 404
    run(main())


def test_chat_graceful_stop_sends_1001(chat_server):
    async def main():
        a, b = await join(chat_server), await join(chat_server)
        await a.nick("x")
        loop = asyncio.get_running_loop()
        stopping = loop.run_in_executor(None, chat_server.stop)
        for c in (a, b):
            await asyncio.wait_for(c.ws.wait_closed(), 7)
            assert c.ws.close_code == 1001
        code, _ = await stopping
        assert code == 0, chat_server.stderr_text()
    run(main())


def _plain_request(port, method):
    """Sends `method /` and reads until the server closes: (head, body)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_head_of_the_page_has_the_get_length_and_no_body(start_server):
    """HEAD answers what GET would, without the body (RFC 9110 9.3.2)."""
    page = os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                        "web", "chat.html")
    srv = start_server("chat_server", "--web", page)
    get_head, get_body = _plain_request(srv.port, "GET")
    head, body = _plain_request(srv.port, "HEAD")
    assert get_head.startswith("HTTP/1.1 200") and len(get_body) > 100
    assert head.startswith("HTTP/1.1 200"), head
    assert f"Content-Length: {len(get_body)}" in head, head
    assert body == b""


# ---- rooms (topics) ------------------------------------------------------


def test_rooms_join_talk_leave(chat_server):
    """/join, /room, /leave: a room line reaches the other members only, the
    sender gets its ok; strangers get not-in-room; a member who left, and
    one who disconnected, hear no more."""
    async def main():
        a, b, c, d = [await join(chat_server) for _ in range(4)]
        for x, name in ((a, "ann"), (b, "bob"), (c, "cid"), (d, "dee")):
            await x.nick(name)
        for x in (a, b, c):
            assert await x.request("/join lobby") == "ok join lobby"
        assert await a.request("/join lobby") == "ok join lobby"  # twice: fine
        assert await d.request("/room lobby hi") == "error not-in-room lobby"
        assert await a.request("/room lobby hello all") == "ok room lobby"
        assert await b.recv() == "room lobby ann hello all"
        assert await c.recv() == "room lobby ann hello all"
        # Neither the sender nor the stranger got it.
        await barrier(a)
        await barrier(d)
        assert await c.request("/leave lobby") == "ok leave lobby"
        assert await c.request("/room lobby x") == "error not-in-room lobby"
        await b.close()
        assert await a.request("/room lobby anyone?") == "ok room lobby"
        await barrier(c)  # it left: nothing came
        # Rooms are separate, and a client may be in several.
        assert await a.request("/join kitchen") == "ok join kitchen"
        assert await d.request("/join kitchen") == "ok join kitchen"
        assert await d.request("/room kitchen tea?") == "ok room kitchen"
        assert await a.recv() == "room kitchen dee tea?"
        assert await d.request("/leave nowhere") == "ok leave nowhere"
        assert await d.request("/join ") == "error bad-room"
        for x in (a, c, d):
            await x.close()
    run(main())


def test_room_lines_keep_their_order(chat_server):
    async def main():
        a, b = [await join(chat_server) for _ in range(2)]
        for x in (a, b):
            assert await x.request("/join r") == "ok join r"
        for i in range(100):
            await a.send("/room r line %d" % i)
        oks = [await a.recv() for _ in range(100)]
        assert oks == ["ok room r"] * 100
        got = [await b.recv() for _ in range(100)]
        assert got == ["room r %s line %d" % (a.anon, i) for i in range(100)]
        await a.close()
        await b.close()
    run(main())
