#!/usr/bin/env python3
"""Chat server on ws://HOST:PORT/chat, alone or as a node of a cluster
through Redis (--redis): then nicks, private messages, rooms and the lines
to everyone reach the clients of every node.

Protocol (text frames):
  on connect            <- "welcome #ID"
  "/nick NAME"          -> tag the connection NAME (unique on every node);
                           <- "ok nick NAME", "error nick-taken NAME" (a
                           client of any node has it), "error bad-nick NAME"
                           (not 1..255 bytes) or "error cluster-down NAME"
                           (Redis unreachable); a refused /nick keeps the
                           nick of before, as on one server. On a cluster
                           the answer may come a moment later, once Redis
                           has answered; till then the client keeps its
                           old nick (FROM, and a /msg to it reaches it),
                           and a /nick sent meanwhile waits its turn:
                           every /nick is answered once, in the order sent.
                           Later, unasked: "error nick-lost NAME" when the
                           nick went to a client of another node (after a
                           Redis restart); FROM is "#ID" again then.
  "/msg NAME TEXT"      -> NAME (on whichever node) gets "msg FROM TEXT";
                           <- "ok msg NAME", "error no-such-user NAME" or
                           "error cluster-down NAME"
  "/join ROOM"          -> <- "ok join ROOM" (ROOM: 1..255 bytes, a topic)
  "/leave ROOM"         -> <- "ok leave ROOM"
  "/room ROOM TEXT"     -> every other member of ROOM on any node gets
                           "room ROOM FROM TEXT"; <- "ok room ROOM" or
                           "error not-in-room ROOM"
                           (a bad ROOM name: <- "error bad-room")
  anything else         -> every other client of every node gets
                           "say FROM TEXT"
FROM is the sender's nick once confirmed (on a cluster: by Redis; till
then its nick of before), or "#ID" before it has one.

GET / serves the browser client examples/web/chat.html: open
http://HOST:PORT/ in a browser.

    python3 examples/python/chat_server.py --port 8765
    python3 examples/python/chat_server.py --port 8765 --redis redis://127.0.0.1:6379
    python3 examples/python/chat_server.py --port 8766 --redis redis://127.0.0.1:6379

(--node N picks the node number, 1..1023; by default a free one is drawn
from Redis at start. --cluster-ttl MS: how long a node that died without a
word keeps its nicks, about.)
"""
import argparse
import collections
import os
import signal
import sys
from typing import Deque, Optional, Set, Tuple

import libwebsock2

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_FILE = os.path.join(HERE, "..", "web", "chat.html")
ROOM_MAX = 255  # bytes of a room name: a topic's limit


def load_page() -> bytes:
    """The browser client examples/web/chat.html, served at GET /."""
    try:
        with open(PAGE_FILE, "rb") as f:
            return f.read()
    except OSError as e:
        print("chat_server: cannot read %s (%s); serving a stub page"
              % (PAGE_FILE, e.strerror), file=sys.stderr)
        return b"<!doctype html><title>chat</title><p>chat.html not found</p>"


class Client:
    """What the chat keeps of one connection (its ``conn.data``). Only the
    connection's own handlers touch it, and they never run at once, so it
    needs no lock."""

    __slots__ = ("nick", "asks", "rooms")

    def __init__(self) -> None:
        self.nick: Optional[str] = None   # confirmed: the FROM of its lines
        # the "/nick NAME" lines not answered yet, in the order sent: on a
        # cluster the first one's claim waits for Redis, the others for it
        self.asks: Deque[str] = collections.deque()
        self.rooms: Set[str] = set()      # the rooms (topics) it joined


def sender(conn: libwebsock2.Connection) -> str:
    """FROM: the confirmed nick, or #ID."""
    client: Client = conn.data
    return client.nick or "#%d" % conn.id


# The answers to "/nick NAME" by outcome (None: "ok nick NAME").
NICK_ERRORS = ((libwebsock2.TagTaken, "nick-taken"), (libwebsock2.ClusterError, "cluster-down"),
               (libwebsock2.InvalidArgument, "bad-nick"))


def nick_answer(name: str, error: Optional[Exception]) -> str:
    if error is None:
        return "ok nick %s" % name
    what = next((w for cls, w in NICK_ERRORS if isinstance(error, cls)), "cluster-down")
    return "error %s %s" % (what, name)


def split_word(text: str) -> Tuple[str, str]:
    """"WORD REST" -> (WORD, REST) at the first space."""
    word, _, rest = text.partition(" ")
    return word, rest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="libwebsock2 chat server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--io-threads", type=int, default=1)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--tls-cert", help="PEM certificate chain: serve https/wss")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--redis", metavar="URL",
                    help="redis://[:password@]host[:port]: a node of that cluster")
    ap.add_argument("--node", type=int, default=0,
                    help="the node number, 1..1023 (default 0: a free one drawn from Redis)")
    ap.add_argument("--cluster-ttl", type=int, metavar="MS",
                    help="how long a silent node stays alive in Redis (100..600000 ms)")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if not args.redis and (args.node or args.cluster_ttl is not None):
        ap.error("--node and --cluster-ttl need --redis")
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    cluster = {}
    if args.redis:
        cluster = {"cluster": args.redis, "node": args.node,
                   "cluster_ttl": (None if args.cluster_ttl is None
                                   else args.cluster_ttl / 1000.0)}

    try:
        srv = libwebsock2.Server(args.host, args.port, io_threads=args.io_threads,
                                 agents=args.agents, ws_paths=["/chat"], ssl=tls,
                                 http_routes={"/": ("text/html; charset=utf-8",
                                                     load_page())},
                                 **cluster)
    except (libwebsock2.Error, TypeError) as e:
        print("chat_server: %s" % e, file=sys.stderr)
        return 2

    @srv.on_open
    def opened(conn: libwebsock2.Connection) -> None:
        conn.data = Client()
        conn.send("welcome #%d" % conn.id)

    def claim(conn: libwebsock2.Connection, name: str) -> bool:
        """Asks for the first /nick waiting and answers it when that is
        settled now (True); False while Redis is asked (the old nick stays
        the client's meanwhile, and on_tag answers)."""
        try:
            if not conn.set_tag(name):
                return False
        except (libwebsock2.TagTaken, libwebsock2.ClusterError,
                libwebsock2.InvalidArgument) as e:  # the nick as it was
            answered(conn, e)
        else:
            answered(conn, None)
        return True

    def answered(conn: libwebsock2.Connection, error: Optional[Exception]) -> None:
        """The first /nick waiting has its outcome: its answer, in turn."""
        client: Client = conn.data
        name = client.asks.popleft()
        if error is None:
            client.nick = name  # confirmed; on a refusal the old one stays
        conn.send(nick_answer(name, error))

    def next_nicks(conn: libwebsock2.Connection) -> None:
        """Asks for the /nick lines waiting, in turn, one claim at a time,
        until one waits for Redis: every /nick is answered as on one
        server, in order, and a refused one leaves the nick of before."""
        client: Client = conn.data
        while client.asks and claim(conn, client.asks[0]):
            pass

    def nick(conn: libwebsock2.Connection, name: str) -> None:
        client: Client = conn.data
        client.asks.append(name)
        if len(client.asks) == 1:  # else a claim is in flight: it waits its turn
            next_nicks(conn)

    @srv.on_tag
    def tagged(conn: libwebsock2.Connection, tag: str,
               error: Optional[libwebsock2.Error]) -> None:
        client: Client = conn.data
        if client.asks and client.asks[0] == tag:
            # Redis' answer to the claim in flight; refused, the connection
            # has its nick of before again, still the confirmed one.
            answered(conn, error)
            next_nicks(conn)
        elif error is not None and client.nick == tag:
            # unasked: its nick went to a client of another node
            client.nick = None
            conn.send("error nick-lost %s" % tag)

    def private(conn: libwebsock2.Connection, rest: str) -> None:
        name, text = split_word(rest)
        try:
            srv.send_tag(name, "msg %s %s" % (sender(conn), text))
        except libwebsock2.ClusterError:
            conn.send("error cluster-down %s" % name)
        except (libwebsock2.NoSuchClient, libwebsock2.InvalidArgument):
            conn.send("error no-such-user %s" % name)
        else:
            conn.send("ok msg %s" % name)

    def room(conn: libwebsock2.Connection, cmd: str, rest: str) -> None:
        client: Client = conn.data
        name, text = split_word(rest)
        if not 1 <= len(name.encode("utf-8", "surrogateescape")) <= ROOM_MAX:
            conn.send("error bad-room")
        elif cmd == "/join":
            if name not in client.rooms:
                conn.subscribe(name)
                client.rooms.add(name)
            conn.send("ok join %s" % name)
        elif cmd == "/leave":
            if name in client.rooms:
                conn.unsubscribe(name)
                client.rooms.discard(name)
            conn.send("ok leave %s" % name)
        elif name not in client.rooms:
            conn.send("error not-in-room %s" % name)
        else:
            srv.publish(name, "room %s %s %s" % (name, sender(conn), text), exclude=conn)
            conn.send("ok room %s" % name)

    @srv.on_message
    def got(conn: libwebsock2.Connection, msg) -> None:
        if not isinstance(msg, str):
            return
        cmd, rest = split_word(msg)
        if cmd == "/nick" and rest:
            nick(conn, split_word(rest)[0])
        elif cmd == "/msg" and rest:
            private(conn, rest)
        elif cmd in ("/join", "/leave", "/room") and msg.startswith(cmd + " "):
            room(conn, cmd, rest)
        else:
            srv.broadcast("say %s %s" % (sender(conn), msg), exclude=conn.id)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        srv.start()
    except libwebsock2.Error as e:  # the port, a node number in use, Redis down
        print("chat_server: %s" % e, file=sys.stderr)
        return 1
    print("listening on %d" % srv.port, flush=True)
    if args.redis:
        print("chat_server: cluster node %d" % srv.node, file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
