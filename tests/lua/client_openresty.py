#!/usr/bin/python3
"""OpenResty (Debian nginx + libnginx-mod-http-lua) check of the Lua client.

    client_openresty.py BUILD_DIR

Runs a python3-websockets echo server (in this process; /slow waits 1 s
before each echo) and nginx with one worker in a fresh prefix, whose
content_by_lua handler /relay?url=...&text=... connects out with
websock.connect(), sends the text, waits for the reply with conn:recv()
(which yields with ngx.sleep) and answers "relayed: REPLY". Checks the
relay, a failed connect's reason reaching the HTTP answer, the refusal of a
connect in init_by_lua (the master), and that three
/slow relays at once take about one second in the one worker (recv yields
instead of blocking it); then "nginx -s quit" and that nginx exits.
Prints "PASS name" / "FAIL name: why" lines; kills only the nginx it
started.
"""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
failures = 0

CONF = """
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    lua_package_cpath "@CPATH@/?.so;;";
    lua_package_path "@LPATH@/?.lua;;";
    init_by_lua_block {
        local websock = require("libwebsock2")
        local c, err = websock.connect("ws://127.0.0.1:1/")
        INIT_CONNECT = tostring(c) .. " " .. tostring(err)
    }
    exit_worker_by_lua_block {
        local websock = package.loaded["libwebsock2"]
        if websock then websock.client_shutdown() end
    }
    server {
        listen 127.0.0.1:@PORT@;
        location = /init {
            content_by_lua_block { ngx.say(INIT_CONNECT) }
        }
        location = /relay {
            content_by_lua_block {
                local websock = require("libwebsock2")
                local args = ngx.req.get_uri_args()
                local c, err = websock.connect(args.url, { timeout = 3000 })
                if not c then
                    ngx.status = 502
                    ngx.say("connect: ", err)
                    return
                end
                local ok, why = c:wait_open(5000)
                if not ok then
                    ngx.status = 502
                    ngx.say("failed: ", why)
                    return
                end
                c:send(args.text or "hi")
                local data, e, code, reason = c:recv(5000)
                c:close()
                if not data then
                    ngx.status = 502
                    ngx.say("recv: ", e, " ", tostring(code), " ", tostring(reason))
                    return
                end
                ngx.say("relayed: ", data)
            }
        }
    }
}
"""


def report(name, ok, why=""):
    global failures
    name = "openresty client: " + name
    if not ok:
        failures += 1
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def echo_server():
    """Starts the echo server on a thread; returns its port."""
    ready = threading.Event()
    box = {}

    async def handler(ws, path):
        try:
            async for msg in ws:
                if path.startswith("/slow"):
                    await asyncio.sleep(1)
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        async with websockets.serve(handler, sock=sock):
            box["port"] = sock.getsockname()[1]
            ready.set()
            await asyncio.sleep(3600)

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return box["port"]


def get(port, url, text):
    q = urllib.parse.urlencode({"url": url, "text": text})
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/relay?%s" % (port, q),
                                    timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    build = os.path.abspath(sys.argv[1])
    cpath = os.path.join(build, "lua", "5.1")
    lpath = os.path.join(build, "lua", "share")
    if not os.path.exists(os.path.join(lpath, "libwebsock2.lua")):
        lpath = os.path.join(ROOT, "bindings", "lua")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx) or not os.path.exists(
            "/usr/lib/nginx/modules/ngx_http_lua_module.so"):
        report("nginx with the Lua module", False, "not installed")
        return
    wsport = echo_server()
    port = free_port()
    prefix = tempfile.mkdtemp(prefix="lws2-client-openresty.")
    for d in ("conf", "logs", "temp"):
        os.makedirs(os.path.join(prefix, d))
    with open(os.path.join(prefix, "conf", "nginx.conf"), "w") as f:
        f.write(CONF.replace("@CPATH@", cpath).replace("@LPATH@", lpath)
                .replace("@PORT@", str(port)))
    cmd = [nginx, "-p", prefix, "-e", os.path.join(prefix, "logs", "error.log"),
           "-c", "conf/nginx.conf"]
    subprocess.run(cmd, check=True, timeout=10)
    pidfile = os.path.join(prefix, "logs", "nginx.pid")
    master = None
    for _ in range(100):
        try:
            with open(pidfile) as f:
                master = int(f.read().strip())
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        echo = "ws://127.0.0.1:%d/echo" % wsport
        status, body = get(port, echo, "héllo from nginx")
        report("a content handler connects out and relays the reply",
               status == 200 and body == "relayed: héllo from nginx\n", (status, body))
        status, body = get(port, echo, "again")
        report("a second request reuses the worker's client server",
               status == 200 and body == "relayed: again\n", (status, body))
        status, body = get(port, "ws://127.0.0.1:1/", "x")
        report("a failed connect's reason reaches the answer",
               status == 502 and body.startswith("failed: connect: ")
               and "127.0.0.1 port 1" in body, (status, body))
        status, body = get(port, "http://nowhere/", "x")
        report("a bad URL is refused at once",
               status == 502 and body.startswith("connect: bad URL"), (status, body))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/init" % port, timeout=5) as r:
                body = r.read().decode()
        except OSError as e:
            body = str(e)
        report("websock.connect() in init_by_lua is refused",
               body.startswith("nil websock.connect() in init_by_lua"), body)
        results = [None] * 3

        def one(i):
            results[i] = get(port, "ws://127.0.0.1:%d/slow" % wsport, "slow %d" % i)

        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        took = time.monotonic() - t0
        ok = all(r == (200, "relayed: slow %d\n" % i) for i, r in enumerate(results))
        report("three 1 s relays at once in one worker: recv() yields (%.2f s)" % took,
               ok and took < 2.5, (results, took))
    finally:
        if master:
            subprocess.run(cmd + ["-s", "quit"], timeout=10)
            gone = False
            for _ in range(200):
                try:
                    os.kill(master, 0)
                except ProcessLookupError:
                    gone = True
                    break
                time.sleep(0.05)
            report("nginx -s quit: nginx exits", gone, "still running after 10 s")
            if not gone:
                os.kill(master, signal.SIGKILL)
        with open(os.path.join(prefix, "logs", "error.log"), errors="replace") as f:
            log = f.read()
        bad = [ln for ln in log.splitlines() if "[error]" in ln or "[alert]" in ln
               or "[crit]" in ln]
        report("no errors in nginx's log", not bad, "\n".join(bad[:5]))
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
