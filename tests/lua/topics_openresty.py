#!/usr/bin/python3
"""OpenResty (Debian nginx + libnginx-mod-http-lua) check of topics.

    topics_openresty.py BUILD_DIR

Starts nginx with one worker in a fresh prefix. Its init_worker_by_lua
starts a libwebsock2 server on a port of its own whose OPEN handler
subscribes ws://.../?topic=NAME to NAME, and an ngx.timer.every polls it;
the HTTP handler /publish?topic=T&text=X calls srv:publish(T, X) and
answers "ok" or "err: MESSAGE CODE". python3-websockets clients join
topics, an HTTP request publishes, and only the members get it (a topic
name with a NUL byte, sent as %00, included); an empty topic's error
reaches the HTTP answer. Then "nginx -s quit" and that nginx exits. Prints
"PASS name" / "FAIL name: why" lines; kills only the nginx it started.
"""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
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
    init_worker_by_lua_block {
        local websock = require("libwebsock2")
        local srv = assert(websock.server{ host = "127.0.0.1", port = @WSPORT@,
                                           io_threads = 2 })
        srv:on("open", function(conn)
            local t = conn.query and conn.query:match("^topic=(.+)$")
            if t then conn:subscribe(ngx.unescape_uri(t)) end
            conn:send("joined")
        end)
        assert(srv:start())
        TOPIC_SRV = srv
        ngx.timer.every(0.01, function(premature)
            if premature then return end
            srv:poll(0, 1000)
        end)
    }
    exit_worker_by_lua_block {
        if TOPIC_SRV then TOPIC_SRV:shutdown(); TOPIC_SRV:free() end
    }
    server {
        listen 127.0.0.1:@PORT@;
        location = /publish {
            content_by_lua_block {
                local args = ngx.req.get_uri_args()
                local ok, err, code = TOPIC_SRV:publish(args.topic or "", args.text or "")
                if ok then ngx.say("ok") else ngx.say("err: ", err, " ", code) end
            }
        }
    }
}
"""


def report(name, ok, why=""):
    global failures
    name = "openresty topics: " + name
    if not ok:
        failures += 1
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, query):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/publish?%s" % (port, query),
                                    timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def quiet(ws, secs):
    try:
        got = await asyncio.wait_for(ws.recv(), secs)
        return got
    except asyncio.TimeoutError:
        return None


async def checks(port, wsport):
    base = "ws://127.0.0.1:%d/" % wsport
    loop = asyncio.get_running_loop()

    async def publish(query):
        return await loop.run_in_executor(None, get, port, query)

    async with websockets.connect(base + "?topic=news") as a, \
            websockets.connect(base + "?topic=news") as b, \
            websockets.connect(base + "?topic=sport") as c, \
            websockets.connect(base + "?topic=a%00b") as d:
        for ws in (a, b, c, d):
            assert await asyncio.wait_for(ws.recv(), 5) == "joined"
        status, body = await publish("topic=news&text=breaking")
        report("an HTTP handler publishes", (status, body) == (200, "ok\n"), (status, body))
        got = [await asyncio.wait_for(ws.recv(), 5) for ws in (a, b)]
        report("both members of news get it", got == ["breaking", "breaking"], got)
        got = [await quiet(c, 0.3), await quiet(d, 0.05)]
        report("the members of other topics do not", got == [None, None], got)
        status, body = await publish("topic=a%00b&text=nul")
        got = await asyncio.wait_for(d.recv(), 5) if body == "ok\n" else None
        report("a topic with a NUL byte", got == "nul", (status, body, got))
        got = await quiet(a, 0.2)
        report("... reaches no other topic", got is None, got)
        status, body = await publish("topic=&text=x")
        report("an empty topic: err in the answer",
               body == "err: invalid argument -1\n", (status, body))


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
    port, wsport = free_port(), free_port()
    prefix = tempfile.mkdtemp(prefix="lws2-topics-openresty.")
    for d in ("conf", "logs", "temp"):
        os.makedirs(os.path.join(prefix, d))
    with open(os.path.join(prefix, "conf", "nginx.conf"), "w") as f:
        f.write(CONF.replace("@CPATH@", cpath).replace("@LPATH@", lpath)
                .replace("@PORT@", str(port)).replace("@WSPORT@", str(wsport)))
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
        for p in (port, wsport):
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", p), 1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        try:
            asyncio.run(asyncio.wait_for(checks(port, wsport), 30))
        except Exception as e:  # noqa: BLE001
            report("the checks ran", False, "%s: %s" % (type(e).__name__, e))
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
