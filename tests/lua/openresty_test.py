#!/usr/bin/python3
"""OpenResty (Debian nginx + libnginx-mod-http-lua) test of the Lua binding.

    openresty_test.py BUILD_DIR

Starts nginx through examples/openresty/run.sh on free ports (2 workers,
each running a libwebsock2 server on the one WebSocket port with
reuse_port, a drain of DRAIN_MS on reload and quit), checks that both
workers serve WebSocket clients (python3-websockets), the handshake handler
on /private (401 without a token; a slow one holds up no other client),
permessage-deflate (negotiated by the websockets client, compressed on the
wire above the threshold),
reloads nginx with two clients connected (they go on with their old
worker, receive a /send from the new workers, one leaves, the other gets
1001 at the drain deadline; new connections go to the new workers only),
sets a client's tag with "/nick", sends to it through /send?tag=...&text=...
(whichever worker takes the request), then "nginx -s quit" and checks that
every nginx process it started exits and the servers were drained, stopped
and joined. Prints "PASS name" / "FAIL name: why" lines; bounded in time;
kills only the nginx processes it started.
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
sys.path.insert(0, HERE)
import wsraw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
RUN_SH = os.path.join(ROOT, "examples", "openresty", "run.sh")
DRAIN_MS = 3000
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


WHOAMI = re.compile(r"worker (\d+) pid (\d+)")
STOPPED = re.compile(r"libwebsock2 server stopped \((\d+) connections closed at the drain "
                     r"deadline\)")


async def whoami(ws):
    """(worker id, pid) of the worker serving |ws|."""
    await ws.send("/whoami")
    m = WHOAMI.fullmatch(await asyncio.wait_for(ws.recv(), 5))
    return int(m.group(1)), int(m.group(2))


async def closed_code(ws, timeout):
    """The close code once |ws| is closed by the server (None: timed out)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.exceptions.ConnectionClosed:
        return ws.close_code
    except asyncio.TimeoutError:
        return None


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
            seen.append((await whoami(ws))[0])
    report("every worker serves on the one WebSocket port",
           sorted(set(seen)) == [0, 1], sorted(set(seen)))
    status, body = await stats_until(http_port, r"(?m)^connections 0\naccepted 40$")
    per_worker = [int(n) for n in re.findall(r"worker \d+ connections \d+ accepted (\d+)", body)]
    report("/stats sums the workers' counters",
           status == 200 and len(per_worker) == 2 and sum(per_worker) == 40 and
           all(per_worker), (status, body))


async def handshake_flow(ws_port):
    """The handshake handler of lws2_app.lua on /private: 401 without a
    token, "welcome alice" with hers; bob's slow token (a 2 s wait in the
    handler, in its own timer) holds up no other client's messages."""
    base = "ws://127.0.0.1:%d" % ws_port
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(None, wsraw.refusal, ws_port,
                                                       "/private", [])
    report("/private without a token: 401 'unknown token' with WWW-Authenticate",
           (status, body, wsraw.header(headers, "WWW-Authenticate")) ==
           (401, "unknown token", 'Bearer realm="lws2"'), (status, body, headers))
    async with websockets.connect(base + "/private",
                                  extra_headers=[("Authorization", "Bearer demo-token")]) as ws:
        msg = await asyncio.wait_for(ws.recv(), 5)
    report("/private with alice's token: welcome alice",
           re.fullmatch(r"welcome alice #\d+", msg) is not None, msg)

    chats = []
    for _ in range(6):
        ws = await websockets.connect(base + "/chat")
        await asyncio.wait_for(ws.recv(), 5)
        chats.append(ws)

    async def slow():
        t0 = time.time()
        async with websockets.connect(base + "/private",
                                      extra_headers=[("Authorization", "Bearer slow-token")]) as ws:
            return await asyncio.wait_for(ws.recv(), 10), time.time() - t0

    pending = asyncio.ensure_future(slow())
    await asyncio.sleep(0.3)  # the slow handshake now waits in its handler
    t1 = time.time()
    echoed = []
    for i, ws in enumerate(chats):
        await ws.send("echo %d" % i)
        echoed.append(await asyncio.wait_for(ws.recv(), 5))
    took = time.time() - t1
    still_waiting = not pending.done()
    msg, slow_took = await pending
    for ws in chats:
        await ws.close()
    report("a slow handshake handler holds up no other client (both workers' echoes)",
           echoed == ["echo %d" % i for i in range(6)] and still_waiting and took < 1.5,
           (echoed, still_waiting, "%.2f s" % took))
    report("the slow handshake is answered after its wait",
           re.fullmatch(r"welcome bob #\d+", msg) is not None and slow_took >= 1.9,
           (msg, "%.2f s" % slow_took))


SHARED_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def raw_deflate_echo(ws_port):
    """A raw client on /chat offering permessage-deflate: (the answer, the
    welcome's RSV1, the echo of 10000 compressed bytes: its RSV1, its size
    on the wire and the message inflated)."""
    status, headers, rest, sock = wsraw.upgrade_request(
        ws_port, "/chat", [("Sec-WebSocket-Extensions", "permessage-deflate")])
    try:
        assert status == 101, status
        c = wsraw.RawClient(sock, rest)
        _, welcome_rsv1, _, _ = c.read_frame_bits()
        c.send_frame(1, wsraw.deflate_raw(b"a" * 10000), rsv1=True)
        _, rsv1, _, payload = c.read_frame_bits()
        msg = wsraw.inflate_raw(payload) if rsv1 else payload
        return (wsraw.header(headers, "Sec-WebSocket-Extensions"), welcome_rsv1, rsv1,
                len(payload), msg == b"a" * 10000)
    finally:
        sock.close()


async def deflate_flow(ws_port):
    """lws2_app.lua turns permessage-deflate on (shared mode): the
    websockets client (which offers it by default) gets it on /chat and
    /private, large messages echo through it, and on the wire a long
    message goes compressed while the short welcome does not."""
    base = "ws://127.0.0.1:%d" % ws_port
    text = '{"user": "alice", "text": "hello"} ' * 2000
    blob = os.urandom(300000)
    answers, echoed = [], []
    for path, extra in (("/chat", []), ("/private", [("Authorization", "Bearer demo-token")])):
        async with websockets.connect(base + path, extra_headers=extra, max_size=None) as ws:
            answers.append(ws.response_headers.get("Sec-WebSocket-Extensions"))
            await asyncio.wait_for(ws.recv(), 5)  # welcome
            for m in (text, blob, "short"):
                await ws.send(m)
                echoed.append(await asyncio.wait_for(ws.recv(), 5) == m)
    report("deflate: /chat and /private answer " + SHARED_ANSWER,
           answers == [SHARED_ANSWER] * 2, answers)
    report("deflate: 70 kB text, 300 kB binary and a short text echo through it",
           echoed == [True] * 6, echoed)
    got = await asyncio.get_running_loop().run_in_executor(None, raw_deflate_echo, ws_port)
    report("deflate: on the wire the welcome goes plain, a 10000-byte echo compressed",
           got[:3] == (SHARED_ANSWER, False, True) and got[3] < 200 and got[4], got)
    async with websockets.connect(base + "/chat", compression=None) as ws:
        got = ws.response_headers.get("Sec-WebSocket-Extensions")
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(text)
        same = await asyncio.wait_for(ws.recv(), 5) == text
    report("deflate: a client that offers nothing gets plain frames",
           got is None and same, (got, same))


async def reload_flow(ws_port, http_port, state):
    """nginx -s reload with two clients connected: the new workers start
    their servers on the port the old ones still hold (reuse_port: no
    retry); each old worker stops accepting and serves its clients up to
    DRAIN_MS more: they chat, receive a /send made by a new worker, one
    leaves, the other gets 1001 at the deadline; then the old workers
    exit and the new ones serve."""
    url = "ws://127.0.0.1:%d/chat" % ws_port
    loop = asyncio.get_running_loop()
    c1 = await websockets.connect(url)
    c2 = await websockets.connect(url)
    for c in (c1, c2):
        await asyncio.wait_for(c.recv(), 5)
    await c1.send("/nick carol")
    got = await asyncio.wait_for(c1.recv(), 5)
    report("reload: a client takes a nick before the reload", got == "ok nick carol", got)
    before = [await whoami(c) for c in (c1, c2)]
    t_reload = time.time()
    old = await loop.run_in_executor(None, state["reload"])
    report("reload: the clients were on the old workers",
           {p for _, p in before} <= set(old), (before, old))
    text = await loop.run_in_executor(
        None, wait_log, state["log"], r"libwebsock2 worker \d+ pid \d+ draining", 10, 2)
    report("reload: both old workers drain", text is not None,
           open(state["log"]).read()[-600:])
    text = await loop.run_in_executor(
        None, wait_log, state["log"], listening(ws_port), 10, 4)
    report("reload: both new workers start their servers at once",
           text is not None and "libwebsock2: start:" not in text,
           (text or open(state["log"]).read())[-600:])

    after = []
    for c in (c1, c2):
        await c.send("after the reload")
        after.append(await asyncio.wait_for(c.recv(), 5))
    report("reload: connected clients go on with their old worker",
           after == ["after the reload"] * 2 and [await whoami(c) for c in (c1, c2)] == before,
           after)
    pids = set()
    for _ in range(20):
        async with websockets.connect(url) as ws:
            await asyncio.wait_for(ws.recv(), 5)
            pids.add((await whoami(ws))[1])
    report("reload: new connections go to the new workers only",
           not (pids & set(old)) and pids <= set(state["workers"]), (pids, old))

    q = urllib.parse.urlencode({"tag": "carol", "text": "across the reload"})
    status, body, via = await loop.run_in_executor(
        None, http_get, "http://127.0.0.1:%d/send?%s" % (http_port, q), "X-Lws2-Via")
    got = await asyncio.wait_for(c1.recv(), 5)
    report("reload: /send from a new worker reaches the client on an old one",
           (status, body, via, got) == (200, "sent", "mailbox", "across the reload"),
           (status, body, via, got))

    await c1.close()
    report("reload: a client leaves during the drain (1000)", c1.close_code == 1000,
           c1.close_code)
    code = await closed_code(c2, DRAIN_MS / 1000 + 15)
    took = time.time() - t_reload
    report("reload: a client that stays gets 1001 at the drain deadline",
           code == 1001 and took >= DRAIN_MS / 1000 - 1, (code, "%.2f s" % took))
    deadline = time.time() + 15
    while any(alive(p) for p in old) and time.time() < deadline:
        await asyncio.sleep(0.05)
    report("reload: the old workers exit", not any(alive(p) for p in old), old)
    text = open(state["log"]).read()
    left = [int(n) for n in STOPPED.findall(text)]
    report("reload: the old workers closed one client at the deadline between them",
           len(left) == 2 and sum(left) == 1, left)
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

        # quit nginx while the client is connected: it is served until the
        # drain deadline, then gets 1001
        t0 = time.time()
        await loop.run_in_executor(None, state["quit"])
        await asyncio.sleep(0.5)
        await ws.send("still served while nginx quits")
        got = await asyncio.wait_for(ws.recv(), 5)
        report("nginx quit: the client is served during the drain",
               got == "still served while nginx quits", got)
        code = await closed_code(ws, DRAIN_MS / 1000 + 15)
        report("client closed with 1001 on nginx quit after the drain",
               code == 1001 and time.time() - t0 >= DRAIN_MS / 1000 - 1,
               (code, "%.2f s" % (time.time() - t0)))


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
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, LWS2_DRAIN_MS=str(DRAIN_MS)))
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

        state = {"quit": quit_nginx, "reload": reload_nginx, "log": log, "workers": workers}
        if text is not None:
            try:
                asyncio.run(asyncio.wait_for(workers_flow(ws_port, http_port), 30))
                asyncio.run(asyncio.wait_for(handshake_flow(ws_port), 30))
                asyncio.run(asyncio.wait_for(deflate_flow(ws_port), 30))
                asyncio.run(asyncio.wait_for(reload_flow(ws_port, http_port, state), 60))
                asyncio.run(asyncio.wait_for(client_flow(ws_port, http_port, state), 60))
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
        report("premature timers drained, stopped and joined the 4 servers (2 reloaded)",
               text.count("libwebsock2 server stopped") == 4, text[-800:])
        left = [int(n) for n in STOPPED.findall(text)]
        report("nginx quit: the one client left was closed at the drain deadline",
               len(left) == 4 and sum(left[2:]) == 1, left)
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


async def stop_flow(ws_port, stop):
    """nginx -s stop (fast shutdown, no drain): exit_worker_by_lua closes
    the clients with 1001 at once."""
    url = "ws://127.0.0.1:%d/chat" % ws_port
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        t0 = time.time()
        await asyncio.get_running_loop().run_in_executor(None, stop)
        code = await closed_code(ws, 10)
        took = time.time() - t0
    report("nginx -s stop: exit_worker_by_lua closes the clients with 1001 at once",
           code == 1001 and took < DRAIN_MS / 1000, (code, "%.2f s" % took))


def fast_stop(build):
    """A second nginx for "nginx -s stop"."""
    http_port, ws_port = free_port(), free_port()
    out = subprocess.run([RUN_SH, str(http_port), str(ws_port), build],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, LWS2_DRAIN_MS=str(DRAIN_MS)))
    m = re.search(r"^prefix (\S+)$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        report("nginx starts again", False, out.stderr.strip() or out.stdout)
        return
    prefix = m.group(1)
    log = os.path.join(prefix, "logs", "error.log")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    master, workers = None, []
    ok_before = all(results)
    try:
        if wait_log(log, listening(ws_port), 10, 2) is None:
            report("nginx starts again", False, open(log).read()[-500:])
            return
        with open(os.path.join(prefix, "logs", "nginx.pid")) as f:
            master = int(f.read().strip())
        workers = children_of(master)

        def stop():
            subprocess.run([nginx, "-p", prefix, "-e", log, "-c", "conf/nginx.conf",
                            "-s", "stop"], timeout=10, capture_output=True)
        try:
            asyncio.run(asyncio.wait_for(stop_flow(ws_port, stop), 30))
        except Exception as e:  # noqa: BLE001
            report("stop flow", False, "%s: %s" % (type(e).__name__, e))
            stop()
        deadline = time.time() + 15
        while time.time() < deadline and (alive(master) or any(alive(w) for w in workers)):
            time.sleep(0.05)
        report("nginx -s stop: every nginx process exits",
               not alive(master) and not any(alive(w) for w in workers),
               [p for p in [master] + workers if alive(p)])
        bad = [ln for ln in open(log).read().splitlines()
               if re.search(r"\[(alert|crit|emerg)\]|worker process \d+ exited on signal", ln)]
        report("nginx -s stop: no crash or alert in the error log", not bad, bad[:3])
    finally:
        for pid in [master] + workers:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        if all(results) or not ok_before:
            shutil.rmtree(prefix, ignore_errors=True)
        else:
            print("  (nginx prefix kept: %s)" % prefix, flush=True)


if __name__ == "__main__":
    rc = main()
    if rc == 2:
        sys.exit(2)
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        fast_stop(sys.argv[1])
    sys.exit(0 if all(results) else 1)
