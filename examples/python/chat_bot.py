#!/usr/bin/env python3
"""A chat bot that stays connected: it joins the chat of chat_server.py (or
the C examples/chat_server), answers "/msg bot ping" with "pong", and
reconnects with exponential back-off when the server goes away.

    python3 examples/python/chat_bot.py [--url ws://127.0.0.1:9002/chat] [--nick bot]

It takes the nick NICK (NICK2, NICK3, ... while it is taken); on
"msg FROM ping" it sends "/msg FROM pong"; any other line is printed with
"> " in front. Ctrl-C or SIGTERM stops it (exit status 0).

`reconnecting()` is the part to copy: an async generator that yields one
open connection after another, waiting between attempts.
"""
import argparse
import asyncio
import random
import signal
import sys

import libwebsock2
import libwebsock2.aio


def say(*words) -> None:
    print(*words, flush=True)


async def reconnecting(url, *, first=0.5, most=30.0, stable=10.0, **options):
    """Yields open connections to ``url``, forever. When a connect fails or
    the connection the caller got has ended, it prints why and waits before
    the next attempt: ``first`` seconds, doubled after every failure up to
    ``most``, back to ``first`` after a connection that stayed up ``stable``
    seconds; each wait is jittered (between half and all of it) so that many
    clients of a restarted server do not come back at the same instant.
    ``options`` go to libwebsock2.aio.connect(). Use it as websockets'
    ``async for ws in connect(...)``::

        async for ws in reconnecting(url):
            async with ws:          # closed on the way out, e.g. when cancelled
                try:
                    async for msg in ws:
                        ...
                except libwebsock2.ConnectionClosed:
                    pass            # on to the next connection
    """
    loop = asyncio.get_running_loop()
    delay = first
    while True:
        try:
            ws = await libwebsock2.aio.connect(url, **options)
        except libwebsock2.ConnectError as e:
            why = e.reason                       # "connect: Connection refused (...)"
        else:
            say("connected to", url)
            opened = loop.time()
            yield ws
            await ws.close()                     # nothing to do if it has ended
            if loop.time() - opened >= stable:
                delay = first
            why = "closed with %s %s" % (ws.close_code, ws.close_reason)
        wait = delay * random.uniform(0.5, 1.0)
        say("retry in %.2f s: %s" % (wait, why))
        await asyncio.sleep(wait)
        delay = min(delay * 2, most)


async def chat(ws, nick: str) -> None:
    """One connection's session: take a nick, answer pings."""
    name, n = nick, 1
    await ws.send("/nick " + name)
    async for line in ws:
        if not isinstance(line, str):
            continue
        words = line.split(" ", 2)               # e.g. ["msg", FROM, TEXT]
        if words == ["error", "nick-taken", name]:
            n += 1
            name = "%s%d" % (nick, n)
            await ws.send("/nick " + name)
        elif words == ["ok", "nick", name]:
            say("joined as", name)
        elif words[0] == "msg" and words[2:] == ["ping"]:
            await ws.send("/msg %s pong" % words[1])
        else:
            say(">", line)


async def run(url: str, nick: str) -> None:
    # SIGINT and SIGTERM cancel this task: the connection is closed on the
    # way out (1000) and the program ends normally.
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, me.cancel)
    try:
        async for ws in reconnecting(url):
            async with ws:
                try:
                    await chat(ws, nick)
                except libwebsock2.ConnectionClosed:
                    pass                         # reconnecting() says how it ended
    except asyncio.CancelledError:
        say("stopped")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="libwebsock2 chat bot")
    ap.add_argument("--url", default="ws://127.0.0.1:9002/chat")
    ap.add_argument("--nick", default="bot")
    args = ap.parse_args(argv)
    try:
        asyncio.run(run(args.url, args.nick))
    except libwebsock2.InvalidURI as e:     # no use retrying that
        ap.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
