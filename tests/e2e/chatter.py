"""The chat clients of the chat tests (test_chat.py, test_chat_cluster.py):
a websockets connection to a chat server's /chat that knows its id."""
import asyncio
import re

import websockets
from websockets.frames import Frame, Opcode

RECV_TIMEOUT = 5  # one message


class Chatter:
    def __init__(self, ws, ident):
        self.ws, self.id = ws, ident

    @property
    def anon(self):
        return "#%d" % self.id

    async def send(self, text):
        await self.ws.send(text)

    async def recv(self, timeout=RECV_TIMEOUT):
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(msg, str), msg
        return msg

    async def poll(self, timeout):
        """The next message, or None when none comes within |timeout|
        (cancelling websockets' recv loses no message)."""
        try:
            return await self.recv(timeout)
        except asyncio.TimeoutError:
            return None

    async def send_together(self, lines):
        """Sends |lines| as text frames in one TCP write, so the server
        reads them at once: none of their answers (Redis' among them) can
        come before the server has read them all."""
        data = b"".join(
            Frame(Opcode.TEXT, line.encode()).serialize(
                mask=True, extensions=self.ws.extensions) for line in lines)
        self.ws.transport.write(data)

    async def request(self, text):
        await self.send(text)
        return await self.recv()

    async def nick(self, name):
        assert await self.request("/nick " + name) == "ok nick " + name

    async def recv_until(self, pred, timeout=RECV_TIMEOUT):
        """Reads until a message satisfies |pred|; returns the ones
        before it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        skipped = []
        while True:
            msg = await self.recv(max(deadline - loop.time(), 0.01))
            if pred(msg):
                return skipped
            skipped.append(msg)

    async def close(self):
        await self.ws.close()
        await asyncio.wait_for(self.ws.wait_closed(), 5)


async def join_url(url):
    """Connects to a chat server's /chat at |url| and reads its welcome."""
    ws = await websockets.connect(url, ping_interval=None,
                                  open_timeout=5, close_timeout=5)
    welcome = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
    m = re.fullmatch(r"welcome #(\d+)", welcome)
    assert m, "bad welcome %r" % welcome
    return Chatter(ws, int(m.group(1)))


async def barrier(c):
    """Proves |c| got everything sent to it before: its own request's
    answer comes after anything queued for it earlier."""
    assert await c.request("/msg nobody-here sync") == \
        "error no-such-user nobody-here"
