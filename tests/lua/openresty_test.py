#!/usr/bin/python3
"""OpenResty (Debian nginx + libnginx-mod-http-lua) test of the Lua binding.

    openresty_test.py BUILD_DIR

Starts nginx through examples/openresty/run.sh on free ports, connects a
WebSocket client (python3-websockets) to the libwebsock2 server running in
worker 0, sets its tag with "/nick", sends to it through the HTTP endpoint
/send?tag=...&text=..., then "nginx -s quit" and checks that every nginx
process it started exits and the server was stopped and joined. Prints
"PASS name" / "FAIL name: why" lines; bounded in time; kills only the nginx
processes it started.
"""
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUN_SH = os.path.join(ROOT, "examples", "openresty", "run.sh")
results = []


def report(name, ok, why=""):
    results.append(ok)
    name = "openresty: " + name
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_log(path, pattern, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if re.search(pattern, text):
                return text
        except OSError:
            pass
        time.sleep(0.05)
    return None


async def reload_flow(ws_port, state):
    """nginx -s reload: the old worker's premature timer stops its server
    (clients get 1001) and the new worker 0 starts one on the same port."""
    url = "ws://127.0.0.1:%d/chat" % ws_port
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, state["reload"])
        try:
            await asyncio.wait_for(ws.recv(), 8)
        except websockets.exceptions.ConnectionClosed:
            pass
        report("reload: old worker closes its clients with 1001", ws.close_code == 1001,
               ws.close_code)
    deadline = time.time() + 10
    while True:
        try:
            async with websockets.connect(url) as ws:
                msg = await asyncio.wait_for(ws.recv(), 5)
                report("reload: new worker serves WebSockets",
                       re.fullmatch(r"welcome #\d+", msg) is not None, msg)
                return
        except (OSError, websockets.exceptions.WebSocketException):
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def client_flow(ws_port, http_port, state):
    url = "ws://127.0.0.1:%d/chat" % ws_port
    async with websockets.connect(url) as ws:
        msg = await asyncio.wait_for(ws.recv(), 5)
        report("welcome from the server in worker 0",
               re.fullmatch(r"welcome #\d+", msg) is not None, msg)
        await ws.send("/nick alice")
        got = await asyncio.wait_for(ws.recv(), 5)
        report("tag set through the chat protocol", got == "ok nick alice", got)
        await ws.send(b"\x00bin\xff")
        got = await asyncio.wait_for(ws.recv(), 5)
        report("binary echo through the poll timer", got == b"\x00bin\xff", got)

        q = urllib.parse.urlencode({"tag": "alice", "text": "hello from nginx"})
        loop = asyncio.get_running_loop()
        status, body = await loop.run_in_executor(
            None, http_get, "http://127.0.0.1:%d/send?%s" % (http_port, q))
        report("/send to a known tag: 200 sent", (status, body) == (200, "sent"),
               (status, body))
        got = await asyncio.wait_for(ws.recv(), 5)
        report("client receives the text sent by tag", got == "hello from nginx", got)

        status, body = await loop.run_in_executor(
            None, http_get, "http://127.0.0.1:%d/send?tag=nobody&text=x" % http_port)
        report("/send to an unknown tag: 404 no such client",
               (status, body) == (404, "no such client"), (status, body))

        t0 = time.time()
        status, body = await loop.run_in_executor(
            None, http_get, "http://127.0.0.1:%d/stats" % http_port)
        report("nginx stays responsive (/stats)",
               status == 200 and "connections 1" in body and time.time() - t0 < 2,
               (status, body))

        # quit nginx while the client is connected: it must get a close
        await loop.run_in_executor(None, state["quit"])
        try:
            await asyncio.wait_for(ws.recv(), 8)
        except websockets.exceptions.ConnectionClosed:
            pass
        report("client closed with 1001 on nginx quit", ws.close_code == 1001,
               ws.close_code)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        report("nginx installed", False, "apt-get install nginx libnginx-mod-http-lua")
        return 1
    http_port, ws_port = free_port(), free_port()
    out = subprocess.run([RUN_SH, str(http_port), str(ws_port), build],
                         capture_output=True, text=True, timeout=30)
    m = re.search(r"^prefix (\S+)$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        report("nginx starts", False, out.stderr.strip() or out.stdout)
        return 1
    prefix = m.group(1)
    log = os.path.join(prefix, "logs", "error.log")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    master, workers = None, []
    try:
        text = wait_log(log, r"libwebsock2 listening on %d" % ws_port, 10)
        report("server started in init_worker_by_lua", text is not None,
               "log: %s" % (open(log).read()[-500:] if os.path.exists(log) else "none"))
        with open(os.path.join(prefix, "logs", "nginx.pid")) as f:
            master = int(f.read().strip())
        workers = children_of(master)
        report("nginx master and worker running", alive(master) and len(workers) >= 1,
               workers)

        def quit_nginx():
            subprocess.run([nginx, "-p", prefix, "-e", log, "-c", "conf/nginx.conf",
                            "-s", "quit"], timeout=10, capture_output=True)

        def reload_nginx():
            subprocess.run([nginx, "-p", prefix, "-e", log, "-c", "conf/nginx.conf",
                            "-s", "reload"], timeout=10, capture_output=True)
            deadline = time.time() + 10  # remember the new workers too
            while time.time() < deadline:
                kids = [k for k in children_of(master) if k not in workers]
                if kids:
                    workers.extend(kids)
                    return
                time.sleep(0.05)

        state = {"quit": quit_nginx, "reload": reload_nginx}
        if text is not None:
            try:
                asyncio.run(asyncio.wait_for(reload_flow(ws_port, state), 30))
                asyncio.run(asyncio.wait_for(client_flow(ws_port, http_port, state), 40))
            except Exception as e:  # noqa: BLE001
                report("client flow", False, "%s: %s" % (type(e).__name__, e))
                quit_nginx()
        else:
            quit_nginx()

        deadline = time.time() + 15
        while time.time() < deadline and (alive(master) or any(alive(w) for w in workers)):
            time.sleep(0.05)
        report("every nginx process exits after quit",
               not alive(master) and not any(alive(w) for w in workers),
               "still alive: %s" % [p for p in [master] + workers if alive(p)])
        text = open(log).read()
        report("premature timer stopped and joined the server",
               "libwebsock2 server stopped" in text, text[-800:])
        bad = [ln for ln in text.splitlines()
               if re.search(r"\[(alert|crit|emerg)\]|worker process \d+ exited on signal", ln)]
        report("no crash or alert in the error log", not bad, bad[:3])
    finally:
        for pid in [master] + workers:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        if all(results):
            shutil.rmtree(prefix, ignore_errors=True)
        else:
            print("  (nginx prefix kept: %s)" % prefix, flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
