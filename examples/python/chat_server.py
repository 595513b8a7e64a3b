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

GET / serves the browser client examples/web/chat.html: open
http://HOST:PORT/ in a browser.

    python3 examples/python/chat_server.py --port 8765
"""
import argparse
import os
import signal
import sys

import libwebsock2

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_FILE = os.path.join(HERE, "..", "web", "chat.html")


def load_page() -> bytes:
    """The browser client examples/web/chat.html, served at GET /."""
    try:
        with open(PAGE_FILE, "rb") as f:
            return f.read()
    except OSError as e:
        print("chat_server: cannot read %s (%s); serving a stub page"
              % (PAGE_FILE, e.strerror), file=sys.stderr)
        return b"<!doctype html><title>chat</title><p>chat.html not found</p>"


def sender(conn: libwebsock2.Connection) -> str:
    return conn.tag or "#%d" % conn.id


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="libwebsock2 chat server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--io-threads", type=int, default=1)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--tls-cert", help="PEM certificate chain: serve https/wss")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None

    srv = libwebsock2.Server(args.host, args.port, io_threads=args.io_threads,
                             agents=args.agents, ws_paths=["/chat"], ssl=tls,
                             http_routes={"/": ("text/html; charset=utf-8",
                                                 load_page())})

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
