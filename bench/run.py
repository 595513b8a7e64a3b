#!/usr/bin/env python3
"""libwebsock2 benchmark driver (stdlib only).

Starts each echo server on a free 127.0.0.1 port, runs the wsload
workloads A-D (and H, handshakes, with --only) against it, kills the server it started (by PID) and
records its CPU time and RSS. Each cell (server x workload) gets a fresh
server; within a round all servers run one workload before the next, so
cells compared in a ratio run seconds apart. The report is the per-cell
median, plus the median of per-round paired ratios against a baseline
row.

  python3 bench/run.py                 # full run, 5 rounds
  python3 bench/run.py --quick         # CI smoke test (~30 s)
  python3 bench/run.py --alloc         # allocations per message
  python3 bench/run.py --deflate       # permessage-deflate (issue 14)
  python3 bench/run.py --client-load   # wsload vs wsclient_load (issue 15)

TLS: with --tls-cert/--tls-key (or --gen-cert), "{tls}" in a server
command becomes "--tls-cert FILE --tls-key FILE" and wsload talks wss://
to that server.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(BENCH_DIR)
DEFAULT_BUILD = os.path.join(tempfile.gettempdir(), "libwebsock2-bench-build")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

DEFAULT_SERVERS = [
    ("raw_echo", "{bin}/raw_echo --port {port}"),
    ("lws_echo", "{bin}/lws_echo --port {port}"),
    ("py_websockets",
     "/usr/bin/python3 {bench}/py_websockets_echo.py --port {port}"),
]

# --deflate (issue 14): libwebsock2 without compression, with one
# compressor per I/O thread and with one per connection, and Node's ws with
# perMessageDeflate: true (skipped when node or the ws package is missing).
DEFLATE_SERVERS = [
    ("off", "{examples}/echo_server --port {port} --agents 0"),
    ("shared", "{examples}/echo_server --port {port} --agents 0 --deflate"),
    ("dedicated",
     "{examples}/echo_server --port {port} --agents 0 --deflate-dedicated"),
    ("ws_node",
     "node {bench}/ws_node_echo.js --port {port} --modules {node_modules}"),
]
# --client-load (issue 15): the library's own client mode as a load
# generator (wsclient_load.c) next to wsload, both driving A and B against
# the server of the libwebsock2 inline rows. wsclient_load embeds the
# library, so it is only built inside the top-level project.
CLIENT_LOAD_SERVER = ("libwebsock2",
                      "{examples}/echo_server --port {port} --agents 0")
GENERATORS = ("wsload", "wsclient_load")
CLIENT_LOAD_BUILD = os.path.join(tempfile.gettempdir(),
                                 "libwebsock2-bench-build-full")

# The ws version the README's figures were measured with.
WS_NODE_VERSION = "8.23.0"
NODE_MODULES_DIRS = [os.path.join(BENCH_DIR, "node_modules"),
                     "/tmp/libwebsock2-bench-node/node_modules"]

# name -> wsload arguments (D is handled specially: idle connections)
WORKLOADS = {
    "A": dict(connections=100, size=16, inflight=1),
    "B": dict(connections=100, size=16, inflight=16),
    "C": dict(connections=10, size=65536, inflight=1),
    "D": dict(connections=10000, idle=True),
    # H: connections made one after another, --concurrency at a time, each
    # upgrading then closing (sizes from --handshakes / --concurrency)
    "H": dict(handshakes=10000, concurrency=64),
    # permessage-deflate (issue 14). wsload offers it on every connection
    # (client_no_context_takeover; client_max_window_bits) and compresses
    # what it sends where the server agrees; bodies are JSON-like text.
    "Z1": dict(connections=100, size=1024, inflight=1, text=True, json=True,
               deflate=True),
    "Z64": dict(connections=10, size=65536, inflight=1, text=True, json=True,
                deflate=True),
    # ZD: D's idle connections, each having agreed on deflate (--idle-conns)
    "ZD": dict(idle=True, deflate=True),
    # ZA: --active-conns connections, each echoing --active-messages JSON
    # messages of --active-size bytes (1 KiB) compressed, then held; ZB: the
    # same with Chrome's offer (client_max_window_bits only: the client
    # keeps its context)
    "ZA": dict(idle=True, deflate=True, active=True, text=True, json=True),
    "ZB": dict(idle=True, deflate_keep_context=True, active=True, text=True,
               json=True),
}
DEFLATE_WORKLOADS = "Z1,Z64,ZD,ZA,ZB"
# D first: measure idle memory before the echo loads have grown the heap.
ORDER = ["D", "ZD", "ZA", "ZB", "A", "B", "C", "Z1", "Z64", "H"]
# wsload flags a workload passes through as they are
WSLOAD_FLAGS = ("text", "json", "deflate", "deflate_keep_context")


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- binaries -----------------------------------------------------------

def find_bin_dir(args):
    if args.client_load:
        return find_client_bin_dir(args)
    cands = [args.bin_dir] if args.bin_dir else [
        os.environ.get("WSBENCH_BIN"),
        os.path.join(ROOT_DIR, "build", "bench"),
        "/tmp/bench-build",
        args.build_dir,
    ]
    for d in cands:
        if d and os.access(os.path.join(d, "wsload"), os.X_OK):
            if not args.rebuild or d == args.build_dir:
                return d
    if args.bin_dir:
        raise BenchError(f"no wsload in --bin-dir {args.bin_dir}")
    log(f"building bench programs in {args.build_dir}")
    subprocess.run(["cmake", "-S", BENCH_DIR, "-B", args.build_dir,
                    "-DCMAKE_BUILD_TYPE=Release"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", args.build_dir, "-j",
                    str(os.cpu_count() or 2)], check=True,
                   stdout=subprocess.DEVNULL)
    return args.build_dir


def find_client_bin_dir(args):
    """--client-load needs wsload and wsclient_load side by side, and
    echo_server in ../examples: a top-level build's bench directory. Without
    one, builds the three targets of the top-level project (Release) in
    --build-dir (default /tmp/libwebsock2-bench-build-full)."""
    build = (args.build_dir if args.build_dir != DEFAULT_BUILD
             else CLIENT_LOAD_BUILD)
    bench = os.path.join(build, "bench")
    cands = [args.bin_dir] if args.bin_dir else [
        os.environ.get("WSBENCH_BIN"),
        os.path.join(ROOT_DIR, "build", "bench"),
        bench,
    ]
    for d in cands:
        if d and all(os.access(os.path.join(d, g), os.X_OK)
                     for g in GENERATORS):
            if not args.rebuild or d == bench:
                return d
    if args.bin_dir:
        raise BenchError(f"no wsload and wsclient_load in --bin-dir "
                         f"{args.bin_dir}")
    log(f"building wsload, wsclient_load and echo_server in {build}")
    subprocess.run(["cmake", "-S", ROOT_DIR, "-B", build,
                    "-DCMAKE_BUILD_TYPE=Release", "-DWEBSOCK_TESTS=OFF",
                    "-DWEBSOCK_LUA=OFF"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2),
                    "--target", "wsload", "wsclient_load", "echo_server"],
                   check=True, stdout=subprocess.DEVNULL)
    return bench


# ---- /proc helpers --------------------------------------------------------

def proc_cpu_s(pid):
    """utime + stime of pid in seconds (fields 14, 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinning():
    """(server prefix, client prefix): taskset when 2+ CPUs are usable."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        return [], []
    return (["taskset", "-c", str(cpus[0])],
            ["taskset", "-c", str(cpus[1])])


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- server lifecycle ---------------------------------------------------

def uses_tls(cmd):
    return "{tls}" in cmd


def tls_args(ctx):
    if not ctx.get("tls_cert"):
        return ""
    return "--tls-cert {} --tls-key {}".format(
        shlex.quote(ctx["tls_cert"]), shlex.quote(ctx["tls_key"]))


class Server:
    def __init__(self, name, cmd, ctx, env=None):
        self.name = name
        self.port = free_port()
        self.tls = uses_tls(cmd)
        self.argv = shlex.split(cmd.format(
            port=self.port, bin=ctx["bin"], bench=BENCH_DIR, root=ROOT_DIR,
            tls=tls_args(ctx), examples=ctx["examples"],
            node_modules=ctx["node_modules"] or "-"))
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"wsbench-{name}-", suffix=".log", delete=False)
        self.env = env
        self.ctx = ctx
        self.proc = None

    def start(self, timeout=15.0):
        full_env = dict(os.environ)
        if self.env:
            full_env.update(self.env)
        self.proc = subprocess.Popen(
            self.ctx["pin_server"] + self.argv, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, env=full_env,
            preexec_fn=raise_nofile, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"exited with {self.proc.returncode} "
                                 f"before listening: {self.tail()}")
            with open(self.log.name, "rb") as f:
                if b"listening on" in f.read():
                    return
            time.sleep(0.05)
        raise BenchError(f"no 'listening on' within {timeout:.0f}s")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=300):
        try:
            with open(self.log.name, "rb") as f:
                return f.read()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop(self):
        """Kills the server we started (by PID)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


# ---- wsload ---------------------------------------------------------------

def wsload_argv(ctx, port, tls=False, prog="wsload", **kw):
    argv = ctx["pin_client"] + [os.path.join(ctx["bin"], prog),
                                "--host", "127.0.0.1", "--port", str(port)]
    if tls:
        argv.append("--tls")
    for k, v in kw.items():
        if v is True:
            argv.append("--" + k.replace("_", "-"))
        elif v is not None and v is not False:
            argv += ["--" + k.replace("_", "-"), str(v)]
    return argv


def parse_result(out):
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError("wsload printed no result")


def run_wsload(ctx, port, timeout, prog="wsload", **kw):
    argv = wsload_argv(ctx, port, quiet=True, prog=prog, **kw)
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{prog} timed out")
    res = parse_result(p.stdout) if "{" in p.stdout else None
    if p.returncode != 0 or res is None:
        detail = ""
        if res:
            detail = ", ".join(f"{k} {res[k]}" for k in
                               ("lost", "reordered", "corrupt",
                                "conn_errors", "proto_errors") if res[k])
        raise BenchError(f"{prog} exit {p.returncode}: "
                         f"{detail or p.stderr.strip()[-200:]}")
    return res


def wsload_flags(cfg):
    """The pass-through wsload flags of a workload (text, json, deflate)."""
    flags = {k: True for k in WSLOAD_FLAGS if cfg.get(k)}
    if not cfg.get("text"):
        flags["binary"] = True
    return flags


def check_deflate(res, cfg):
    """A server agrees on deflate with every connection or with none; some
    of each means it is broken. Returns (connections agreed, all?)."""
    want = res.get("connections_open", 0)
    got = res.get("deflate_conns", 0)
    if (cfg.get("deflate") or cfg.get("deflate_keep_context")) and \
            got not in (0, want):
        raise BenchError(f"only {got} of {want} connections agreed on "
                         "permessage-deflate")
    return got


def run_echo_workload(ctx, srv, wl):
    import resource
    cfg = WORKLOADS[wl]
    cpu0 = proc_cpu_s(srv.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_wsload(ctx, srv.port, ctx["duration"] + ctx["warmup"] + 90,
                     tls=srv.tls, connections=cfg["connections"],
                     size=cfg["size"], inflight=cfg["inflight"],
                     duration=ctx["duration"], warmup=ctx["warmup"],
                     **wsload_flags(cfg))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = proc_cpu_s(srv.pid)
    cell = {
        "msgs_per_s": res["msgs_per_s"], "mb_per_s": res["mb_per_s"],
        "p50_us": res["p50_us"], "p99_us": res["p99_us"],
        "msgs": res["msgs"], "msgs_total": res["msgs_total"],
        "server_cpu_s": cpu1 - cpu0,
    }
    if res["msgs_total"]:
        cell["cpu_us_per_msg"] = (cpu1 - cpu0) * 1e6 / res["msgs_total"]
    if wl.startswith("Z"):
        # What the server sent on the wire (payload bytes, compressed or
        # not) per message and against the messages' size, and wsload's own
        # CPU: near one second per second, the client is the limit.
        cell["deflate_conns"] = check_deflate(res, cfg)
        cell["wire_ratio"] = res["wire_ratio"]
        cell["sent_ratio"] = res["sent_ratio"]
        if res["msgs"]:
            cell["wire_bytes_per_msg"] = res["wire_bytes"] / res["msgs"]
        client_s = ((ru1.ru_utime + ru1.ru_stime) -
                    (ru0.ru_utime + ru0.ru_stime))
        if res["msgs_total"]:
            cell["client_cpu_us_per_msg"] = client_s * 1e6 / res["msgs_total"]
    return cell


def run_handshake_workload(ctx, srv):
    """H: handshakes per second. A short unmeasured burst first, so what
    the first connections bring in once (code pages, loop buffers) is not
    in the figure. wsload's own CPU time is reported too: near 1 s per
    second, the client's core is the limit, not the server."""
    import resource
    run_wsload(ctx, srv.port, 120, tls=srv.tls, handshakes=256,
               concurrency=ctx["concurrency"])
    cpu0 = proc_cpu_s(srv.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_wsload(ctx, srv.port, 300, tls=srv.tls,
                     handshakes=ctx["handshakes"],
                     concurrency=ctx["concurrency"])
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = proc_cpu_s(srv.pid)
    n = res["handshakes"]
    client_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return {"handshakes_per_s": res["handshakes_per_s"], "handshakes": n,
            "p50_us": res["p50_us"], "p99_us": res["p99_us"],
            "server_cpu_s": cpu1 - cpu0,
            "cpu_us_per_handshake": (cpu1 - cpu0) * 1e6 / n,
            "client_cpu_us_per_handshake": client_s * 1e6 / n}


def warm_up_idle(ctx, srv, extra=None):
    """A few connections made and dropped before the idle measurement, so
    that what the first handshake brings in once for the whole process
    (code pages of libcrypto, about 2 MiB, lazy imports, loop buffers)
    is not charged to the connections measured. The deflate workloads warm
    up with their own flags (4 connections), so that a compressor made once
    per I/O thread is not charged either."""
    conns = 4 if extra else 16
    argv = wsload_argv(ctx, srv.port, tls=srv.tls, connections=conns,
                       idle=True, duration=0.2, **(extra or {}))
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)
    time.sleep(0.3)


def run_idle_workload(ctx, srv, wl="D"):
    """D and ZD: RSS growth per idle connection; ZA and ZB: per connection
    that has echoed a few compressed messages (the dedicated model makes
    its compressor on the first one), read while they are held."""
    cfg = WORKLOADS[wl]
    active = cfg.get("active", False)
    n = ctx["active_conns"] if active else ctx["idle_conns"]
    extra = {k: v for k, v in wsload_flags(cfg).items() if k != "binary"}
    if active:
        extra.update(size=ctx["active_size"],
                     idle_messages=ctx["active_messages"])
    time.sleep(0.3)
    warm_up_idle(ctx, srv, extra)
    rss0 = proc_status_kb(srv.pid, "VmRSS")
    anon0 = proc_status_kb(srv.pid, "RssAnon")
    argv = wsload_argv(ctx, srv.port, tls=srv.tls, connections=n, idle=True,
                       duration=ctx["idle_hold"], **extra)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    rss1 = None
    err_lines = []
    deadline = time.monotonic() + 120
    ready = "connections active" if active else "connections open"
    try:
        for line in p.stderr:          # wait for "N connections open"
            err_lines.append(line.strip())
            if ready in line:
                time.sleep(min(0.5, ctx["idle_hold"] / 3))
                rss1 = proc_status_kb(srv.pid, "VmRSS")
                anon1 = proc_status_kb(srv.pid, "RssAnon")
                break
            if time.monotonic() > deadline:
                break
        out, err = p.communicate(timeout=ctx["idle_hold"] + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise BenchError("wsload --idle timed out")
    err_lines += err.strip().splitlines()
    res = parse_result(out) if "{" in out else None
    if p.returncode != 0 or res is None or rss1 is None:
        raise BenchError(f"wsload --idle exit {p.returncode}: "
                         f"{' '.join(err_lines)[-200:]}")
    cell = {"bytes_per_conn": (rss1 - rss0) * 1024 / n,
            "anon_bytes_per_conn": (anon1 - anon0) * 1024 / n,
            "rss_before_kb": rss0, "rss_after_kb": rss1,
            "connections": res["connections_open"]}
    if wl != "D":
        cell["deflate_conns"] = check_deflate(res, cfg)
    if active:
        cell["msgs_total"] = res["msgs_total"]
        cell["msgs_compressed"] = res["msgs_compressed"]
    return cell


def run_cell(ctx, name, cmd, wl):
    """A fresh server process for one workload. Returns its cell."""
    srv = Server(name, cmd, ctx)
    try:
        srv.start()
    except (BenchError, OSError) as e:
        srv.stop()
        msg = f"start failed: {e}"
        log(f"  {name} {wl}: {msg}")
        return {"error": msg}
    try:
        if WORKLOADS[wl].get("idle"):
            cell = run_idle_workload(ctx, srv, wl)
        elif wl == "H":
            cell = run_handshake_workload(ctx, srv)
        else:
            cell = run_echo_workload(ctx, srv, wl)
    except (BenchError, OSError, ValueError) as e:
        cell = {"error": str(e)}
    finally:
        srv.stop()
    if "error" in cell:
        log(f"  {name} {wl}: ERROR {cell['error']}")
    elif WORKLOADS[wl].get("idle"):
        pmd = ""
        if "deflate_conns" in cell:
            pmd = f", deflate on {cell['deflate_conns']}"
        log(f"  {name} {wl}: {cell['bytes_per_conn']:.0f} B/conn "
            f"({cell['anon_bytes_per_conn']:.0f} B anonymous{pmd})")
    elif wl == "H":
        log(f"  {name} H: {cell['handshakes_per_s']:.0f} handshakes/s "
            f"p50 {cell['p50_us']:.0f} p99 {cell['p99_us']:.0f} us "
            f"cpu {cell['cpu_us_per_handshake']:.1f} us/handshake "
            f"(wsload {cell['client_cpu_us_per_handshake']:.1f})")
    else:
        wire = ""
        if "wire_ratio" in cell:
            wire = (f" wire {cell.get('wire_bytes_per_msg', 0):.0f} B/msg "
                    f"({cell['wire_ratio']:.3f}) wsload "
                    f"{cell.get('client_cpu_us_per_msg', 0):.1f} us/msg")
        log(f"  {name} {wl}: {cell['msgs_per_s']:.0f} msg/s "
            f"{cell['mb_per_s']:.1f} MB/s p50 {cell['p50_us']:.0f} "
            f"p99 {cell['p99_us']:.0f} us "
            f"cpu {cell.get('cpu_us_per_msg', 0):.2f} us/msg{wire}")
    return cell


def run_round(ctx, servers):
    """Every workload on every server, workload by workload, so the cells a
    ratio compares ran seconds apart. Returns {server: {wl: cell}}."""
    rnd = {name: {} for name, _ in servers}
    for wl in [w for w in ORDER if w in ctx["workloads"]]:
        for name, cmd in servers:
            rnd[name][wl] = run_cell(ctx, name, cmd, wl)
    return rnd


# ---- aggregation and report ----------------------------------------------

# column key -> (workload, metric, header, format, higher_is_better)
COLUMNS = [
    ("A_mps", "A", "msgs_per_s", "A msgs/s", "{:,.0f}", True),
    ("A_lat", "A", ("p50_us", "p99_us"), "A p50/p99 µs", None, False),
    ("B_mps", "B", "msgs_per_s", "B msgs/s", "{:,.0f}", True),
    ("C_mbs", "C", "mb_per_s", "C MB/s", "{:,.1f}", True),
    ("D_bpc", "D", "bytes_per_conn", "D bytes/conn", "{:,.0f}", False),
    ("D_anon", "D", "anon_bytes_per_conn", "D anon B/conn", "{:,.0f}", False),
    ("A_cpu", "A", "cpu_us_per_msg", "CPU µs/msg A", "{:.2f}", False),
    ("B_cpu", "B", "cpu_us_per_msg", "CPU µs/msg B", "{:.2f}", False),
    ("H_hps", "H", "handshakes_per_s", "H handshakes/s", "{:,.0f}", True),
    ("H_lat", "H", ("p50_us", "p99_us"), "H p50/p99 µs", None, False),
    ("H_cpu", "H", "cpu_us_per_handshake", "CPU µs/handshake H", "{:.1f}",
     False),
    ("H_ccpu", "H", "client_cpu_us_per_handshake", "wsload CPU µs/hs H",
     "{:.1f}", False),
    ("Z1_mps", "Z1", "msgs_per_s", "1K msgs/s", "{:,.0f}", True),
    ("Z1_cpu", "Z1", "cpu_us_per_msg", "1K CPU µs/msg", "{:.1f}", False),
    ("Z1_wire", "Z1", "wire_bytes_per_msg", "1K wire B/msg", "{:,.0f}",
     False),
    ("Z1_ratio", "Z1", "wire_ratio", "1K wire ratio", "{:.3f}", False),
    ("Z1_ccpu", "Z1", "client_cpu_us_per_msg", "1K wsload µs/msg", "{:.1f}",
     False),
    ("Z64_mps", "Z64", "msgs_per_s", "64K msgs/s", "{:,.0f}", True),
    ("Z64_cpu", "Z64", "cpu_us_per_msg", "64K CPU µs/msg", "{:,.0f}", False),
    ("Z64_wire", "Z64", "wire_bytes_per_msg", "64K wire B/msg", "{:,.0f}",
     False),
    ("Z64_ratio", "Z64", "wire_ratio", "64K wire ratio", "{:.3f}", False),
    ("Z64_ccpu", "Z64", "client_cpu_us_per_msg", "64K wsload µs/msg",
     "{:,.0f}", False),
    ("ZD_bpc", "ZD", "bytes_per_conn", "idle B/conn", "{:,.0f}", False),
    ("ZD_anon", "ZD", "anon_bytes_per_conn", "idle anon B/conn", "{:,.0f}",
     False),
    ("ZA_bpc", "ZA", "bytes_per_conn", "active B/conn", "{:,.0f}", False),
    ("ZA_anon", "ZA", "anon_bytes_per_conn", "active anon B/conn",
     "{:,.0f}", False),
    ("ZB_bpc", "ZB", "bytes_per_conn", "active (Chrome offer) B/conn",
     "{:,.0f}", False),
    ("ZB_anon", "ZB", "anon_bytes_per_conn",
     "active (Chrome offer) anon B/conn", "{:,.0f}", False),
]


def median_cells(rounds, servers, workloads):
    """{server: {wl: {metric: median} | {"error": msg}}}"""
    out = {}
    for name in servers:
        out[name] = {}
        for wl in workloads:
            cells = [r[name][wl] for r in rounds if wl in r.get(name, {})]
            errs = [c["error"] for c in cells if "error" in c]
            if errs or not cells:
                out[name][wl] = {"error": errs[0] if errs else "not run"}
                continue
            keys = set.intersection(*(set(c) for c in cells))
            out[name][wl] = {k: statistics.median(c[k] for c in cells)
                             for k in sorted(keys)
                             if isinstance(cells[0][k], (int, float))}
    return out


def cell_text(med, col):
    _, wl, metric, _, fmt, _ = col
    c = med.get(wl)
    if c is None:
        return "–"
    if "error" in c:
        return "ERR"
    if isinstance(metric, tuple):
        if not all(m in c for m in metric):
            return "–"
        return " / ".join(f"{c[m]:,.0f}" for m in metric)
    if metric not in c:
        return "–"
    return fmt.format(c[metric])


def cell_ratio(a, b, col):
    _, wl, metric, _, _, _ = col
    a, b = a.get(wl, {}), b.get(wl, {})
    if isinstance(metric, tuple):
        metric = metric[0]                  # ratio on p50
    if "error" in a or "error" in b or metric not in a or metric not in b:
        return None
    if not b[metric]:
        return None
    return a[metric] / b[metric]


def paired_ratio(rounds, name, baseline, col):
    """Median over rounds of (row / baseline) within each round: the two
    cells ran back to back, so slow spells of a shared machine cancel."""
    vals = [cell_ratio(r[name], r[baseline], col) for r in rounds
            if name in r and baseline in r]
    if not vals or any(v is None for v in vals):
        return None
    return statistics.median(vals)


def markdown(med, rounds, servers, workloads, baseline):
    cols = [c for c in COLUMNS if c[1] in workloads]
    lines = ["| server | " + " | ".join(c[3] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name in servers:
        lines.append(f"| {name} | " +
                     " | ".join(cell_text(med[name], c) for c in cols) +
                     " |")
    out = "\n".join(lines)
    if baseline in med:
        rl = ["", f"Ratios vs {baseline}, median of the per-round paired "
                  "ratios (throughput: higher is better; latency p50, "
                  "bytes, CPU: lower is better)", "",
              "| server | " + " | ".join(
                  c[3].replace("p50/p99", "p50") + (" ↑" if c[5] else " ↓")
                  for c in cols) + " |",
              "|---|" + "---:|" * len(cols)]
        for name in servers:
            vals = [paired_ratio(rounds, name, baseline, c) for c in cols]
            rl.append(f"| {name} | " + " | ".join(
                "–" if v is None else f"{v:.2f}x" for v in vals) + " |")
        out += "\n" + "\n".join(rl)
    return out


def any_errors(med):
    return [(s, wl, c["error"]) for s, row in med.items()
            for wl, c in row.items() if "error" in c]


# ---- allocation mode --------------------------------------------------------

def read_alloc_lines(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"mallocs (\d+) frees (\d+)", line)
                if m:
                    rows.append((int(m.group(1)), int(m.group(2))))
    except OSError:
        pass
    return rows


def run_alloc(ctx, servers, args):
    shim = os.path.join(ctx["bin"], "libwsalloc.so")
    if not os.path.exists(shim):
        raise BenchError(f"{shim} not found")
    results = {}
    for name, cmd in servers:
        out = tempfile.NamedTemporaryFile(prefix=f"wsalloc-{name}-",
                                          delete=False)
        out.close()
        os.unlink(out.name)
        srv = Server(name, cmd, ctx, env={"LD_PRELOAD": shim,
                                          "WSALLOC_OUT": out.name})
        try:
            srv.start()
            res = run_wsload(ctx, srv.port, 180, tls=srv.tls,
                             connections=100, size=16,
                             inflight=16, warmup=ctx["warmup"],
                             duration=60, messages=args.alloc_messages,
                             signal_pid=srv.pid, binary=True)
            snaps = read_alloc_lines(out.name)
            if len(snaps) < 2:
                raise BenchError("no counts from the shim (does the server "
                                 "replace the SIGUSR2 handler?)")
            (m0, f0), (m1, f1) = snaps[0], snaps[1]
            n = res["msgs"]
            results[name] = {"msgs": n, "mallocs": m1 - m0,
                             "frees": f1 - f0,
                             "mallocs_per_msg": (m1 - m0) / n,
                             "frees_per_msg": (f1 - f0) / n}
            log(f"  {name}: {(m1 - m0) / n:.3f} mallocs/msg, "
                f"{(f1 - f0) / n:.3f} frees/msg over {n} msgs")
        except (BenchError, OSError, ValueError) as e:
            results[name] = {"error": str(e)}
            log(f"  {name}: ERROR {e}")
        finally:
            srv.stop()
            if os.path.exists(out.name):
                os.unlink(out.name)
    lines = ["| server | mallocs/msg | frees/msg | messages |",
             "|---|---:|---:|---:|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | ERR | ERR | – |")
        else:
            lines.append(f"| {name} | {r['mallocs_per_msg']:.3f} | "
                         f"{r['frees_per_msg']:.3f} | {r['msgs']:,} |")
    return results, "\n".join(lines)


# ---- client-load mode (issue 15) -------------------------------------------

def run_client_load_cell(ctx, server, gen, wl):
    """One generator driving workload wl against a fresh server. Client
    CPU is what the generator measured of itself over its measured window
    (CLOCK_PROCESS_CPUTIME_ID) per echo in it; server CPU, as in the other
    rows, the server's over the whole run per echo (warmup included)."""
    import resource
    name, cmd = server
    cfg = WORKLOADS[wl]
    srv = Server(name, cmd, ctx)
    try:
        srv.start()
    except (BenchError, OSError) as e:
        srv.stop()
        return {"error": f"server start failed: {e}"}
    extra = {}
    if gen == "wsclient_load":
        extra = dict(io_threads=ctx["client_io_threads"],
                     agents=ctx["client_agents"])
    try:
        cpu0 = proc_cpu_s(srv.pid)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = run_wsload(ctx, srv.port, ctx["duration"] + ctx["warmup"] + 90,
                         prog=gen, connections=cfg["connections"],
                         size=cfg["size"], inflight=cfg["inflight"],
                         duration=ctx["duration"], warmup=ctx["warmup"],
                         binary=True, **extra)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = proc_cpu_s(srv.pid)
        if "client_cpu_us_per_msg" not in res:
            raise BenchError(f"{gen} reports no client_cpu_us_per_msg "
                             "(an old binary?)")
        n = res["msgs_total"]
        client_s = ((ru1.ru_utime + ru1.ru_stime) -
                    (ru0.ru_utime + ru0.ru_stime))
        cell = {"msgs_per_s": res["msgs_per_s"], "p50_us": res["p50_us"],
                "p99_us": res["p99_us"], "msgs": res["msgs"],
                "msgs_total": n, "client_cpu_s": res["client_cpu_s"],
                "client_cpu_us_per_msg": res["client_cpu_us_per_msg"],
                # the same from the outside: the whole process, connect,
                # warmup and close included, per echo of the whole run
                "client_rusage_us_per_msg": client_s * 1e6 / n if n else 0.0,
                "server_cpu_s": cpu1 - cpu0,
                "cpu_us_per_msg": (cpu1 - cpu0) * 1e6 / n if n else 0.0}
    except (BenchError, OSError, ValueError, KeyError) as e:
        cell = {"error": str(e)}
    finally:
        srv.stop()
    if "error" in cell:
        log(f"  {gen} {wl}: ERROR {cell['error']}")
    else:
        log(f"  {gen} {wl}: {cell['msgs_per_s']:.0f} msg/s "
            f"p50 {cell['p50_us']:.0f} p99 {cell['p99_us']:.0f} us "
            f"client {cell['client_cpu_us_per_msg']:.2f} us/msg "
            f"server {cell['cpu_us_per_msg']:.2f} us/msg")
    return cell


def client_ratio(rounds, wl, metric):
    """Per-round paired ratios wsclient_load / wsload of metric in wl:
    their median and range, or None when a cell of a round failed."""
    vals = []
    for r in rounds:
        a, b = r["wsclient_load"].get(wl, {}), r["wsload"].get(wl, {})
        if "error" in a or "error" in b or not b.get(metric):
            return None
        vals.append(a[metric] / b[metric])
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def client_load_markdown(med, rounds, workloads):
    lines = ["| load generator | workload | msgs/s | p50/p99 µs | "
             "client CPU µs/msg | server CPU µs/msg | msgs/s vs wsload | "
             "client CPU vs wsload |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for wl in workloads:
        for gen in GENERATORS:
            c = med[gen][wl]
            if "error" in c:
                lines.append(f"| {gen} | {wl} | ERR | ERR | ERR | ERR | – "
                             "| – |")
                continue
            if gen == "wsload":
                ratios = ["1", "1"]
            else:
                ratios = []
                for m in ("msgs_per_s", "client_cpu_us_per_msg"):
                    q = client_ratio(rounds, wl, m)
                    ratios.append("–" if q is None else
                                  f"{q[0]:.2f}x ({q[1]:.2f}–{q[2]:.2f})")
            lines.append(
                f"| {gen} | {wl} | {c['msgs_per_s']:,.0f} | "
                f"{c['p50_us']:,.0f} / {c['p99_us']:,.0f} | "
                f"{c['client_cpu_us_per_msg']:.2f} | "
                f"{c['cpu_us_per_msg']:.2f} | {ratios[0]} | {ratios[1]} |")
    return "\n".join(lines)


def run_client_load(ctx, args, meta):
    """Rounds of A and B, each driven by wsload and by wsclient_load back
    to back, each cell against a fresh server; the order of the two
    alternates from round to round, so neither always runs second."""
    server = CLIENT_LOAD_SERVER
    if args.server:
        spec = args.server[-1]
        if "=" not in spec:
            raise SystemExit(f"--server needs NAME=COMMAND, got {spec!r}")
        name, cmd = spec.split("=", 1)
        server = (name.strip(), cmd.strip())
    if uses_tls(server[1]):
        raise SystemExit("--client-load drives plain ws:// only")
    workloads = ctx["workloads"]
    bad = [w for w in workloads if w not in ("A", "B")]
    if bad:
        raise SystemExit(f"--client-load runs A and B only, not {bad}")
    log(f"client-load: server {server[0]}: {server[1]}; wsclient_load with "
        f"{ctx['client_io_threads']} I/O thread(s), "
        f"{ctx['client_agents']} agent(s)")
    rounds = []
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        rnd = {g: {} for g in GENERATORS}
        order = GENERATORS if r % 2 == 0 else GENERATORS[::-1]
        for wl in workloads:
            for gen in order:
                rnd[gen][wl] = run_client_load_cell(ctx, server, gen, wl)
        rounds.append(rnd)
    med = median_cells(rounds, list(GENERATORS), workloads)
    print(client_load_markdown(med, rounds, workloads))
    errors = any_errors(med)
    if args.json:
        ratios = {wl: {m: client_ratio(rounds, wl, m)
                       for m in ("msgs_per_s", "client_cpu_us_per_msg",
                                 "cpu_us_per_msg")}
                  for wl in workloads}
        meta = dict(meta, servers=dict([server]), baseline="wsload",
                    client_io_threads=ctx["client_io_threads"],
                    client_agents=ctx["client_agents"])
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "median": med, "ratios": ratios,
                       "rounds": rounds}, f, indent=2)
    if errors:
        print("\nErrors:")
        for g, wl, e in errors:
            print(f"- {g} {wl}: {e}")
        return 1
    return 0


# ---- main ---------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(
        description="libwebsock2 echo-server benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Server commands may use {port}, {bin} (directory of the "
               "bench binaries), {bench} (this directory), {root} (repo), "
               "{examples} (directory of echo_server), {node_modules} (where "
               "the ws package is; rows using it are skipped without it) "
               "and {tls} (--tls-cert FILE --tls-key FILE; wsload then "
               "uses wss://).")
    ap.add_argument("--server", action="append", default=[],
                    metavar="NAME='CMD {port}'",
                    help="add (or replace) a server definition")
    ap.add_argument("--no-default-servers", action="store_true",
                    help="run only the --server definitions")
    ap.add_argument("--servers", help="comma list: run only these names")
    ap.add_argument("--baseline", default=None,
                    help="row the ratios are computed against (default "
                         "raw_echo; off with --deflate)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0,
                    help="measured seconds per cell (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--only", default=None,
                    help="workloads to run, e.g. A,B (default A,B,C,D; "
                         f"{DEFLATE_WORKLOADS} with --deflate)")
    ap.add_argument("--deflate", action="store_true",
                    help="permessage-deflate (issue 14): the rows off, "
                         "shared, dedicated and ws_node and the workloads "
                         f"{DEFLATE_WORKLOADS}")
    ap.add_argument("--client-load", action="store_true",
                    help="issue 15: A and B driven by wsload and by "
                         "wsclient_load (the library's own client) against "
                         "echo_server --agents 0, paired per round")
    ap.add_argument("--client-io-threads", type=int, default=1,
                    help="--client-load: wsclient_load's I/O threads "
                         "(default 1)")
    ap.add_argument("--client-agents", type=int, default=0,
                    help="--client-load: wsclient_load's agents (default 0: "
                         "callbacks inline)")
    ap.add_argument("--active-conns", type=int, default=1000,
                    help="connections of ZA/ZB (default 1000, 200 with "
                         "--quick)")
    ap.add_argument("--active-messages", type=int, default=3,
                    help="ZA/ZB: compressed messages each connection "
                         "echoes before the hold (default 3)")
    ap.add_argument("--active-size", type=int, default=1024,
                    help="ZA/ZB: bytes per message (default 1024)")
    ap.add_argument("--examples-dir",
                    help="where echo_server is (default: beside --bin-dir, "
                         "else build/examples)")
    ap.add_argument("--node-modules",
                    help="node_modules holding ws (default: "
                         "$WSBENCH_NODE_MODULES, bench/node_modules, "
                         "/tmp/libwebsock2-bench-node/node_modules)")
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--handshakes", type=int, default=10000,
                    help="connections of workload H (default 10000)")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="H: connections at a time (default 64)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2 s cells, 1 round, D with 1000")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--alloc", action="store_true",
                    help="measure allocations per message instead")
    ap.add_argument("--alloc-messages", type=int, default=200000)
    ap.add_argument("--bin-dir", help="where wsload, raw_echo, ... are")
    ap.add_argument("--build-dir", default=DEFAULT_BUILD)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--tls-cert", metavar="FILE",
                    help="certificate for servers whose command has {tls}")
    ap.add_argument("--tls-key", metavar="FILE", help="its private key")
    ap.add_argument("--gen-cert", action="store_true",
                    help="make a throwaway self-signed cert/key (openssl "
                         "CLI) unless --tls-cert/--tls-key are given")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.quick:
        args.rounds = 1
        args.duration = min(args.duration, 2.0)
        args.warmup = min(args.warmup, 0.5)
        args.idle_conns = min(args.idle_conns, 1000)
        args.handshakes = min(args.handshakes, 2000)
        args.active_conns = min(args.active_conns, 200)
    if args.client_load and (args.deflate or args.alloc):
        ap.error("--client-load goes without --deflate and --alloc")
    if args.only is None:
        args.only = (DEFLATE_WORKLOADS if args.deflate else
                     "A,B" if args.client_load else "A,B,C,D")
    if args.baseline is None:
        args.baseline = "off" if args.deflate else "raw_echo"
    if args.active_messages < 1 or args.active_size < 1:
        ap.error("--active-messages and --active-size must be at least 1")
    return args


def server_list(args):
    defaults = DEFLATE_SERVERS if args.deflate else DEFAULT_SERVERS
    servers = [] if args.no_default_servers else list(defaults)
    for spec in args.server:
        if "=" not in spec:
            raise SystemExit(f"--server needs NAME=COMMAND, got {spec!r}")
        name, cmd = spec.split("=", 1)
        name = name.strip()
        servers = [(n, c) for n, c in servers if n != name]
        servers.append((name, cmd.strip()))
    if args.servers:
        keep = [s.strip() for s in args.servers.split(",")]
        servers = [s for s in servers if s[0] in keep]
    if not servers:
        raise SystemExit("no servers to run")
    return servers


def find_examples_dir(args, bin_dir):
    """Where echo_server is: --examples-dir, $WSBENCH_EXAMPLES, the
    examples directory beside the bench binaries (a top-level build), or
    build/examples."""
    cands = [args.examples_dir, os.environ.get("WSBENCH_EXAMPLES"),
             os.path.join(os.path.dirname(bin_dir), "examples"),
             os.path.join(ROOT_DIR, "build", "examples")]
    for d in cands:
        if d and os.access(os.path.join(d, "echo_server"), os.X_OK):
            return d
    return args.examples_dir or os.path.join(ROOT_DIR, "build", "examples")


def find_node_modules(args):
    """A node_modules directory holding the ws package, or None."""
    cands = [args.node_modules, os.environ.get("WSBENCH_NODE_MODULES")]
    cands += NODE_MODULES_DIRS
    for d in cands:
        if d and os.path.isfile(os.path.join(d, "ws", "package.json")):
            return os.path.abspath(d)
    return None


def drop_unavailable(servers, node_modules):
    """Rows that need node and the ws package, left out (with a note)
    when either is missing, so a machine without them still runs."""
    keep = []
    for name, cmd in servers:
        if "{node_modules}" in cmd:
            if not shutil.which("node"):
                log(f"skipping {name}: no node on PATH")
                continue
            if not node_modules:
                log(f"skipping {name}: no ws package (npm install --prefix "
                    f"/tmp/libwebsock2-bench-node ws@{WS_NODE_VERSION}, or "
                    "--node-modules DIR)")
                continue
        keep.append((name, cmd))
    return keep


def gen_cert():
    """Throwaway self-signed cert/key for localhost in a temp dir."""
    if not shutil.which("openssl"):
        raise SystemExit("--gen-cert needs the openssl command")
    d = tempfile.mkdtemp(prefix="wsbench-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-subj", "/CN=localhost", "-days", "1",
                        "-keyout", key, "-out", cert],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        raise SystemExit(f"openssl req failed: {p.stderr.strip()[-300:]}")
    return d, cert, key


def main():
    args = parse_args()
    servers = [CLIENT_LOAD_SERVER] if args.client_load else server_list(args)
    cert_dir = None
    if args.gen_cert and not args.tls_cert:
        cert_dir, args.tls_cert, args.tls_key = gen_cert()
        log(f"generated throwaway TLS cert in {cert_dir}")
    try:
        return run_main(args, servers)
    finally:
        if cert_dir:
            shutil.rmtree(cert_dir, ignore_errors=True)


def run_main(args, servers):
    tls_servers = [n for n, c in servers if uses_tls(c)]
    if tls_servers and not args.tls_cert:
        raise SystemExit("servers " + ",".join(tls_servers) + " use {tls}: "
                         "give --tls-cert/--tls-key or --gen-cert")
    workloads = [w.strip().upper() for w in args.only.split(",")
                 if w.strip()]
    bad = [w for w in workloads if w not in WORKLOADS]
    if bad:
        raise SystemExit(f"unknown workloads {bad}; choose from "
                         + ",".join(WORKLOADS))
    pin_server, pin_client = ([], []) if args.no_pin else pinning()
    try:
        bin_dir = find_bin_dir(args)
    except (BenchError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"cannot find/build the bench binaries: {e}")
    node_modules = find_node_modules(args)
    servers = drop_unavailable(servers, node_modules)
    if not servers:
        raise SystemExit("no servers to run")
    ctx = {"bin": bin_dir, "pin_server": pin_server,
           "examples": find_examples_dir(args, bin_dir),
           "node_modules": node_modules,
           "active_conns": args.active_conns,
           "active_messages": args.active_messages,
           "active_size": args.active_size,
           "pin_client": pin_client, "duration": args.duration,
           "warmup": args.warmup, "idle_conns": args.idle_conns,
           "idle_hold": 1.0 if args.quick else 2.0,
           "handshakes": args.handshakes, "concurrency": args.concurrency,
           "workloads": workloads, "tls_cert": args.tls_cert,
           "tls_key": args.tls_key,
           "client_io_threads": args.client_io_threads,
           "client_agents": args.client_agents}
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "host": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "pinned": bool(pin_server),
            "bin_dir": bin_dir, "rounds": args.rounds,
            "duration_s": args.duration, "warmup_s": args.warmup,
            "idle_conns": args.idle_conns, "handshakes": args.handshakes,
            "concurrency": args.concurrency, "workloads": workloads,
            "servers": dict(servers), "baseline": args.baseline,
            "tls_servers": tls_servers, "examples_dir": ctx["examples"],
            "node_modules": node_modules,
            "active_conns": args.active_conns,
            "active_messages": args.active_messages,
            "active_size": args.active_size}

    if args.client_load:
        return run_client_load(ctx, args, meta)

    if args.alloc:
        log(f"alloc mode: {args.alloc_messages} messages, 100 conns x 16 B,"
            " 16 in flight")
        results, table = run_alloc(ctx, servers, args)
        print(table)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "alloc": results}, f, indent=2)
        return 1 if any("error" in r for r in results.values()) else 0

    rounds = []
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        rounds.append(run_round(ctx, servers))
    names = [n for n, _ in servers]
    med = median_cells(rounds, names, workloads)
    print(markdown(med, rounds, names, workloads, args.baseline))
    errors = any_errors(med)
    if args.json:
        ratios = {}
        if args.baseline in med:
            for n in names:
                ratios[n] = {c[0]: paired_ratio(rounds, n, args.baseline, c)
                             for c in COLUMNS if c[1] in workloads}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "median": med, "ratios": ratios,
                       "rounds": rounds}, f, indent=2)
    if errors:
        print("\nErrors:")
        for s, wl, e in errors:
            print(f"- {s} {wl}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
