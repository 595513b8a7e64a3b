#!/usr/bin/python3
"""Peer servers in another process for test_client.lua.

    client_peer.py

Runs Debian's python3-websockets server and a plain HTTP server on free
ports of 127.0.0.1 and prints "PORTS <ws port> <http port> <silent port>" once both
listen. WebSocket paths:
  /echo      echoes every message with its type
  /headers   sends the request's headers as one text message
             ("name: value" lines, names lower-case), then echoes
  /close     on the first message closes with 4001 "bye from python"
  /proto     sends the chosen subprotocol ("none" without one); ours, in
             order of preference: chat.v2, chat.v1
  /404       refuses the upgrade with HTTP 404
  /quit      stops the process
The HTTP server answers every GET with 200 and a small HTML body, the
upgrade included. A third port (printed last) listens but never accepts
nor answers: a connect to it gets no 101. Exits after 120 s at the latest.
"""
import asyncio
import http
import http.server
import socket
import sys
import threading

import websockets


async def handler(ws, path):
    path = path.split("?")[0]
    if path == "/headers":
        lines = ["%s: %s" % (k.lower(), v) for k, v in ws.request_headers.raw_items()]
        await ws.send("\n".join(lines))
    elif path == "/close":
        await ws.recv()
        await ws.close(4001, "bye from python")
        return
    elif path == "/proto":
        await ws.send(ws.subprotocol or "none")
    elif path == "/quit":
        STOP.set()
        return
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass  # a close with a code other than 1000/1001


async def process_request(path, headers):
    if path.startswith("/404"):
        return http.HTTPStatus.NOT_FOUND, [], b"no such thing\n"
    return None


class Plain(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"<h1>just HTTP</h1>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


async def main():
    global STOP
    STOP = asyncio.Event()
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(128)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    async with websockets.serve(handler, sock=sock, subprotocols=["chat.v2", "chat.v1"],
                                process_request=process_request, max_size=None,
                                ping_interval=None):
        print("PORTS %d %d %d" % (sock.getsockname()[1], plain.server_address[1],
                                  silent.getsockname()[1]), flush=True)
        try:
            await asyncio.wait_for(STOP.wait(), 120)
        except asyncio.TimeoutError:
            pass
    plain.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
