#!/usr/bin/python3
"""OpenResty (Debian nginx + libnginx-mod-http-lua) test of the Lua binding.

    openresty_test.py BUILD_DIR

Starts nginx through examples/openresty/run.sh on free ports (2 workers,
each running a libwebsock2 server on the one WebSocket port with
reuse_port), checks that both workers serve WebSocket clients
(python3-websockets), reloads nginx (the new workers join the port while
the old ones still hold it), sets a client's tag with "/nick", sends to it
through the HTTP endpoint /send?tag=...&text=... (whichever worker takes
the request), then "nginx -s quit" and checks that every nginx process it
started exits and the servers were stopped and joined. Prints "PASS name" /
"FAIL name: why" lines; bounded in time; kills only the nginx processes it
started.
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


def http_get(url, header=None):
    """(status, body), or (status, body, value of |header|) when given."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            got = r.status, r.read().decode(), r.headers.get(header or "-")
    except urllib.error.HTTPError as e:
        got = e.code, e.read().decode(), e.headers.get(header or "-")
    return got if header else got[:2]


def wait_log(path, pattern, timeout, count=1):
    """The log once |pattern| occurs |count| times in it, else None."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if len(re.findall(pattern, text)) >= count:
                return text
        except OSError:
            pass
        time.sleep(0.05)
    return None


def listening(ws_port):
    return r"libwebsock2 worker \d+ listening on %d" % ws_port


async def stats_until(http_port, pattern, timeout=3):
    """The /stats body once it matches |pattern| (or the last one)."""
    loop = asyncio.get_running_loop()
    deadline = time.time() + timeout
    while True:
        status, body = await loop.run_in_executor(
            None, http_get, "http://127.0.0.1:%d/stats" % http_port)
        if (status == 200 and re.search(pattern, body)) or time.time() > deadline:
            return status, body
        await asyncio.sleep(0.05)


async def workers_flow(ws_port, http_port):
    """Both workers serve the one port: the kernel spreads connections over
    their four sockets (all 40 on one worker's two is 2^-39)."""
    url = "ws://127.0.0.1:%d/chat" % ws_port
    seen = []
    for _ in range(40):
        async with websockets.connect(url) as ws:
            await asyncio.wait_for(ws.recv(), 5)  # welcome
            await ws.send("/whoami")
            seen.append(await asyncio.wait_for(ws.recv(), 5))
    report("every worker serves on the one WebSocket port",
           sorted(set(seen)) == ["worker 0", "worker 1"], sorted(set(seen)))
    status, body = await stats_until(http_port, r"(?m)^connections 0\naccepted 40$")
    per_worker = [int(n) for n in re.findall(r"worker \d+ connections \d+ accepted (\d+)", body)]
    report("/stats sums the workers' counters",
           status == 200 and len(per_worker) == 2 and sum(per_worker) == 40 and
           all(per_worker), (status, body))


async def reload_flow(ws_port, state):
    """nginx -s reload: the new workers start their servers on the port the
    old ones still hold (reuse_port: no retry), the old workers' premature
    timers stop theirs (clients get 1001), and once the old workers are
    gone the new ones serve."""
    url = "ws://127.0.0.1:%d/chat" % ws_port
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        loop = asyncio.get_running_loop()
        old = await loop.run_in_executor(None, state["reload"])
        try:
            await asyncio.wait_for(ws.recv(), 8)
        except websockets.exceptions.ConnectionClosed:
            pass
        report("reload: old worker closes its clients with 1001", ws.close_code == 1001,
               ws.close_code)
    text = await loop.run_in_executor(
        None, wait_log, state["log"], listening(ws_port), 10, 4)
    report("reload: both new workers start their servers at once",
           text is not None and "libwebsock2: start:" not in text,
           (text or open(state["log"]).read())[-600:])
    deadline = time.time() + 10
    while any(alive(p) for p in old) and time.time() < deadline:
        await asyncio.sleep(0.05)
    report("reload: the old workers exit", not any(alive(p) for p in old), old)
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
        report("welcome from a worker's server",
               re.fullmatch(r"welcome #\d+", msg) is not None, msg)
        await ws.send("/nick alice")
        got = await asyncio.wait_for(ws.recv(), 5)
        report("tag set through the chat protocol", got == "ok nick alice", got)
        await ws.send(b"\x00bin\xff")
        got = await asyncio.wait_for(ws.recv(), 5)
        report("binary echo through the poll timer", got == b"\x00bin\xff", got)

        # The HTTP port is shared too, so the requests reach both workers
        # (all 24 on one is 2^-23): the owner sends at once, the other hands
        # the text to the owner's mailbox (so the order may differ).
        loop = asyncio.get_running_loop()
        answers, vias, want = [], set(), set()
        for i in range(24):
            q = urllib.parse.urlencode({"tag": "alice", "text": "hello from nginx %d" % i})
            status, body, via = await loop.run_in_executor(
                None, http_get, "http://127.0.0.1:%d/send?%s" % (http_port, q),
                "X-Lws2-Via")
            answers.append((status, body))
            vias.add(via)
            want.add("hello from nginx %d" % i)
        report("/send to a known tag: 200 sent",
               answers == [(200, "sent")] * 24, answers)
        report("/send from the owner and from the other worker",
               vias == {"direct", "mailbox"}, vias)
        got = set()
        for _ in range(24):
            got.add(await asyncio.wait_for(ws.recv(), 5))
        report("client receives the texts sent by tag", got == want, got)
        async with websockets.connect(url) as bob:
            await asyncio.wait_for(bob.recv(), 5)
            await bob.send("/nick alice")
            taken = await asyncio.wait_for(bob.recv(), 5)
        report("a tag is taken across workers", taken == "error nick-taken alice", taken)

        status, body = await loop.run_in_executor(
            None, http_get, "http://127.0.0.1:%d/send?tag=nobody&text=x" % http_port)
        report("/send to an unknown tag: 404 no such client",
               (status, body) == (404, "no such client"), (status, body))

        t0 = time.time()
        status, body = await stats_until(http_port, r"(?m)^connections 1$")
        report("nginx stays responsive (/stats)",
               status == 200 and re.search(r"(?m)^connections 1$", body) is not None and
               time.time() - t0 < 3, (status, body))

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
        text = wait_log(log, listening(ws_port), 10, 2)
        report("a server started in each worker's init_worker_by_lua", text is not None,
               "log: %s" % (open(log).read()[-500:] if os.path.exists(log) else "none"))
        with open(os.path.join(prefix, "logs", "nginx.pid")) as f:
            master = int(f.read().strip())
        workers = children_of(master)
        report("nginx master and 2 workers running", alive(master) and len(workers) == 2,
               workers)

        def quit_nginx():
            subprocess.run([nginx, "-p", prefix, "-e", log, "-c", "conf/nginx.conf",
                            "-s", "quit"], timeout=10, capture_output=True)

        def reload_nginx():
            """Returns the workers from before the reload."""
            old = list(workers)
            subprocess.run([nginx, "-p", prefix, "-e", log, "-c", "conf/nginx.conf",
                            "-s", "reload"], timeout=10, capture_output=True)
            deadline = time.time() + 10  # remember the new workers too
            while time.time() < deadline:
                kids = [k for k in children_of(master) if k not in workers]
                if len(kids) >= 2:
                    workers.extend(kids)
                    break
                time.sleep(0.05)
            return old

        state = {"quit": quit_nginx, "reload": reload_nginx, "log": log}
        if text is not None:
            try:
                asyncio.run(asyncio.wait_for(workers_flow(ws_port, http_port), 30))
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
        report("premature timers stopped and joined the 4 servers (2 reloaded)",
               text.count("libwebsock2 server stopped") == 4, text[-800:])
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
