#!/usr/bin/env python3
"""Echo server: every message comes back as it came (text as text, binary
as binary).

    python3 examples/python/echo_server.py --port 8765 --io-threads 2 --agents 1

Prints ``listening on PORT`` once ready; exits 0 on SIGINT/SIGTERM.
"""
import argparse
import signal
import sys

import libwebsock2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--io-threads", type=int, default=1)
    ap.add_argument("--agents", type=int, default=1,
                    help="agent threads running the handler (0 = on the I/O threads)")
    args = ap.parse_args(argv)

    srv = libwebsock2.Server(args.host, args.port, io_threads=args.io_threads,
                             agents=args.agents)

    @srv.on_message
    def echo(conn: libwebsock2.Connection, msg) -> None:
        conn.send(msg)

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
