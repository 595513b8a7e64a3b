"""Hardening (issue 18): the file-descriptor limit, the read budget after a
close for a protocol error, and the slow-consumer policy, over real sockets
against the echo example."""
import os
import shutil
import socket
import threading
import time

import pytest

from wsraw import OP_BINARY, OP_CLOSE, Closed, RawClient, frame

CLK_TCK = os.sysconf("SC_CLK_TCK")


@pytest.fixture
def limited_server(start_server):
    """start(name, *args, nofile=256): an example server started under
    `prlimit --nofile=N:N` (prlimit execs it, so the PID is the server's),
    stopped at teardown like every server of start_server."""
    prlimit = shutil.which("prlimit")
    if not prlimit:
        pytest.skip("prlimit (util-linux) not installed")

    def start(name, *args, nofile=256):
        return start_server(name, *args, prefix=(
            prlimit, "--nofile=%d:%d" % (nofile, nofile), "--"))

    return start


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] is 3.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def open_flood(port, n):
    """|n| silent TCP connections: the kernel completes them from the
    listen backlog whether or not the server accepts them."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def count_503(socks, timeout):
    """How many of |socks| received an HTTP 503 within |timeout|."""
    got = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < len(socks):
        for i, s in enumerate(socks):
            if i in got:
                continue
            try:
                data = s.recv(4096, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                continue
            if data.startswith(b"HTTP/1.1 503"):
                got.add(i)
        time.sleep(0.05)
    return len(got)


# -- 1. the file-descriptor limit ---------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--max-connections", "100000"]],
                         ids=["default-limit", "past-the-fd-limit"])
def test_fd_limit_does_not_spin_and_answers(limited_server, extra):
    """Under RLIMIT_NOFILE 256, 400 silent clients neither make the server
    spin (its CPU time over two seconds stays low) nor hang: those it cannot
    take get a 503, a client connected before keeps being served, and a new
    one is served once the flood left. With the default limit the 503 comes
    from max_connections (derived from the fd limit); with a limit above
    it, from the spare descriptor once accept4() fails with EMFILE."""
    srv = limited_server("echo_server", *extra, nofile=256)
    with RawClient(srv.port) as healthy:
        healthy.upgrade()
        healthy.echo(OP_BINARY, b"before")
        flood = open_flood(srv.port, 400)
        try:
            time.sleep(0.5)  # let the accepts and refusals happen
            refused = count_503(flood, 5.0)
            cpu0 = cpu_seconds(srv.proc.pid)
            time.sleep(2.0)
            cpu = cpu_seconds(srv.proc.pid) - cpu0
            assert cpu < 0.5, "server used %.2f s of CPU in 2 s" % cpu
            # At most 256 descriptors: at least 144 clients were not taken,
            # and every one of them was answered.
            assert refused >= 400 - 256, "only %d clients got 503" % refused
            healthy.echo(OP_BINARY, b"during the flood")
        finally:
            for s in flood:
                s.close()
        healthy.echo(OP_BINARY, b"after")
    deadline = time.monotonic() + 5
    while True:
        try:
            with RawClient(srv.port) as late:
                resp, _ = late.handshake()
                if resp.status == 101:
                    late.echo(OP_BINARY, b"served once fds are free")
                    break
        except (Closed, OSError):
            pass
        assert time.monotonic() < deadline, "no client served after flood"
        time.sleep(0.1)


# -- 2. the read budget after a close for a protocol error --------------------

def test_stream_after_1009_is_not_read(start_server):
    """A client that sends a frame header over the size limit (1009) and
    keeps streaming gets its close frame, then the server drops the TCP
    connection soon, having taken in far less than a client could send
    while it read and discarded until the close timeout (5 s)."""
    srv = start_server("echo_server", "--max-message", 65536)
    with RawClient(srv.port, timeout=10) as c:
        c.upgrade()
        sent = [0]
        ended = [None]  # when a send failed: the server dropped us
        stop = threading.Event()
        c.send(frame(OP_BINARY, length=1 << 30))  # header only: 1009

        def stream():
            chunk = b"\0" * 65536
            c.sock.settimeout(1.0)
            while not stop.is_set():
                try:
                    sent[0] += c.sock.send(chunk)
                except socket.timeout:
                    continue  # the server is not reading: keep pushing
                except OSError:  # reset or EPIPE: the connection is gone
                    ended[0] = time.monotonic()
                    return

        t0 = time.monotonic()
        th = threading.Thread(target=stream)
        th.start()
        try:
            f = c.read_frame(timeout=5)
            assert f.opcode == OP_CLOSE and f.close_code == 1009, f
            # Then the end of the stream (a FIN or a reset), and sends fail:
            # a half-close alone would let the client stream on.
            with pytest.raises(Closed):
                while True:
                    c._fill(time.monotonic() + 5)
                    c.buf = b""
            th.join(timeout=4)
        finally:
            stop.set()
            th.join()
        assert ended[0] is not None, \
            "still streaming after 4 s: %d bytes taken" % sent[0]
        elapsed = ended[0] - t0
        assert elapsed < 2.0, "TCP connection dropped after %.1f s" % elapsed
        # Loopback socket buffers hold a few MiB; the server itself reads
        # at most one buffer plus 64 KiB after the failure.
        assert sent[0] < 32 << 20, "the server took %d bytes" % sent[0]


# -- 3. the slow-consumer policy ----------------------------------------------

def tcp_state(sock):
    """The kernel's TCP state of |sock| (1: ESTABLISHED), without reading."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def test_slow_consumer_is_closed(start_server):
    """A client that never reads what the server sends it stays at its
    outbound bound and is closed within the slow-consumer timeout plus two
    sweep periods; a client that reads is unaffected."""
    srv = start_server("echo_server", "--max-outbound", 65536,
                       "--slow-consumer-timeout", 1000)
    with RawClient(srv.port) as normal, RawClient(srv.port) as slow:
        normal.upgrade()
        slow.upgrade()
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        msg = frame(OP_BINARY, b"x" * 16384)
        slow.sock.settimeout(0.2)
        t_blocked = None
        rest = b""  # what a blocked send left of the current frame
        deadline = time.monotonic() + 10
        # Send until the server stops reading (its output to us, which we
        # never read, passed half the bound), then wait for the reset.
        while time.monotonic() < deadline:
            if tcp_state(slow.sock) != 1:
                break
            try:
                rest = rest[slow.sock.send(rest or msg):] if rest else \
                    msg[slow.sock.send(msg):]
            except socket.timeout:
                if t_blocked is None:
                    t_blocked = time.monotonic()
            except OSError:
                break
            normal.echo(OP_BINARY, b"still served")
        closed_at = time.monotonic()
        assert tcp_state(slow.sock) != 1, "slow consumer never closed"
        assert t_blocked is not None
        assert closed_at - t_blocked < 1.0 + 2.5, \
            "closed %.1f s after it stopped reading" % (closed_at - t_blocked)
        for i in range(5):
            normal.echo(OP_BINARY, b"after %d" % i)


def rss_bytes(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s for %d" % (key, pid))


def pipeline_until_stuck(socks, msg, quiet=1.0, limit=30):
    """Sends |msg| on every non-blocking socket of |socks| until none of
    them took a byte for |quiet| seconds (the server stopped reading them
    all), never reading a byte back."""
    import select
    rest = {s: b"" for s in socks}
    last = start = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() - start < limit:
        _, writable, _ = select.select([], socks, [], 0.1)
        for s in writable:
            data = rest[s] or msg
            try:
                rest[s] = data[s.send(data):]
                last = time.monotonic()
            except BlockingIOError:
                pass


@pytest.mark.parametrize("args", [("--agents", "0"),
                                  ("--io-threads", "2", "--agents", "2")],
                         ids=["inline", "io2-agents2"])
def test_memory_of_clients_that_never_read(start_server, args):
    """Clients that pipeline 64 KiB messages and never read their echoes
    cost at most the outbound bound each while they stay (the README's
    figure), and their memory goes back to the system within seconds of
    their leaving, in both modes (with agents 177 MiB used to stay)."""
    clients, size = 20, 65536
    srv = start_server("echo_server", *args, "--slow-consumer-timeout", 0)
    pid = srv.proc.pid
    with RawClient(srv.port) as warm:  # the steady state's own memory
        warm.upgrade()
        for _ in range(20):
            warm.echo(OP_BINARY, b"w" * size)
    time.sleep(1.5)
    base = rss_bytes(pid)
    socks = []
    for _ in range(clients):
        c = RawClient(srv.port)
        c.upgrade()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.sock.setblocking(False)
        socks.append(c.sock)
    pipeline_until_stuck(socks, frame(OP_BINARY, b"x" * size,
                                      mask_key=b"\0\0\0\0"))
    per_client = (rss_bytes(pid, "VmHWM") - base) / clients
    assert per_client <= 8 << 20, \
        "%.1f MiB per client over the 8 MiB bound" % (per_client / 2**20)
    assert per_client >= 1 << 20, "the server never stopped reading?"
    for s in socks:  # abortive: no close handshake to wait for
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\1\0\0\0\0\0\0\0")
        s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and rss_bytes(pid) > base + (16 << 20):
        time.sleep(0.2)
    left = rss_bytes(pid) - base
    assert left <= 16 << 20, "%.1f MiB still resident after the clients left" \
        % (left / 2**20)
    with RawClient(srv.port) as after:  # and the server still serves
        after.upgrade()
        after.echo(OP_BINARY, b"a" * size)
