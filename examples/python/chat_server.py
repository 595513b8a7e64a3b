#!/usr/bin/env python3
"""Chat server on ws://HOST:PORT/chat.

Protocol (text frames):
  on connect            <- "welcome #ID"
  "/nick NAME"          -> tag the connection NAME; <- "ok nick NAME" or
                           "error nick-taken NAME"
  "/msg NAME TEXT"      -> NAME gets "msg FROM TEXT"; <- "ok msg NAME" or
                           "error no-such-user NAME"
  anything else         -> every other client gets "say FROM TEXT"
FROM is the sender's nick, or "#ID" without one.

    python3 examples/python/chat_server.py --port 8765
"""
import argparse
import signal
import sys

import libwebsock2

PAGE = b"""<!doctype html><title>chat</title><pre id=log></pre><input id=t>
<script>
const ws = new WebSocket(`ws://${location.host}/chat`);
ws.onmessage = e => log.textContent += e.data + "\\n";
t.onkeydown = e => { if (e.key === "Enter") { ws.send(t.value); t.value = ""; } };
</script>"""


def sender(conn: libwebsock2.Connection) -> str:
    return conn.tag or "#%d" % conn.id


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="libwebsock2 chat server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--io-threads", type=int, default=1)
    ap.add_argument("--agents", type=int, default=2)
    args = ap.parse_args(argv)

    srv = libwebsock2.Server(args.host, args.port, io_threads=args.io_threads,
                             agents=args.agents, ws_paths=["/chat"],
                             http_routes={"/": ("text/html; charset=utf-8", PAGE)})

    @srv.on_open
    def opened(conn: libwebsock2.Connection) -> None:
        conn.send("welcome #%d" % conn.id)

    @srv.on_message
    def got(conn: libwebsock2.Connection, msg) -> None:
        if not isinstance(msg, str):
            return
        if msg.startswith("/nick "):
            name = msg[6:].strip()
            try:
                conn.set_tag(name)
            except (libwebsock2.TagTaken, libwebsock2.InvalidArgument):
                conn.send("error nick-taken %s" % name)
            else:
                conn.send("ok nick %s" % name)
        elif msg.startswith("/msg "):
            parts = msg.split(" ", 2)
            name = parts[1] if len(parts) > 1 else ""
            text = parts[2] if len(parts) > 2 else ""
            try:
                srv.send_tag(name, "msg %s %s" % (sender(conn), text))
            except (libwebsock2.NoSuchClient, libwebsock2.InvalidArgument):
                conn.send("error no-such-user %s" % name)
            else:
                conn.send("ok msg %s" % name)
        else:
            srv.broadcast("say %s %s" % (sender(conn), msg), exclude=conn.id)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    srv.start()
    print("listening on %d" % srv.port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
