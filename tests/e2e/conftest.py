"""Fixtures for the end-to-end suite: start example servers on a free port,
and check that every one of them shuts down cleanly (SIGTERM -> exit 0
within 10 s) when the test ends.

The build directory comes from $WEBSOCK_BUILD_DIR (default: build/ in the
repository root). Run with Debian's interpreter:
    WEBSOCK_BUILD_DIR=/tmp/e2e-build /usr/bin/python3 -m pytest -q tests/e2e
"""
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD_DIR = os.path.abspath(os.path.join(
    REPO, os.environ.get("WEBSOCK_BUILD_DIR", "build")))

STOP_TIMEOUT = 10.0
START_TIMEOUT = 10.0
TEST_TIMEOUT = 60  # hard per-test limit (SIGALRM), teardown included

MODES = [(1, 0), (2, 2)]
MODE_IDS = ["io1-ag0", "io2-ag2"]


def binary_path(name):
    return os.path.join(BUILD_DIR, "examples", name)


class ServerProcess:
    """An example server started with --port 0; |prefix| is a command
    that execs it (e.g. prlimit), so the PID stays the server's."""

    def __init__(self, name, args=(), host="127.0.0.1", prefix=()):
        self.name = name
        self.path = binary_path(name)
        if not os.path.exists(self.path):
            pytest.skip("%s not built at %s (set WEBSOCK_BUILD_DIR)" %
                        (name, self.path))
        self.host = host
        self.args = ["--port", "0"] + (["--host", host]
                                       if host != "127.0.0.1" else [])
        self.args += [str(a) for a in args]
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(list(prefix) + [self.path] + self.args,
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.port = self._read_port()
        self.exit_code = None
        self.stop_seconds = None

    def _read_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        out = b""
        while b"\n" not in out:
            remaining = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [],
                                    max(remaining, 0))
            if not r:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s printed no port within %.0fs" %
                                     (self.name, START_TIMEOUT))
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.proc.wait()
                raise AssertionError("%s exited with %r before listening: %s"
                                     % (self.name, self.proc.returncode,
                                        self.stderr_text()))
            out += chunk
        line = out.split(b"\n", 1)[0].decode()
        assert line.startswith("listening on "), line
        return int(line.split()[-1])

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "ws://%s:%d%s" % (host, self.port, path)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """Sends SIGTERM once; returns (exit code, seconds) or kills the
        server and raises after |timeout|."""
        if self.exit_code is not None:
            return self.exit_code, self.stop_seconds
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = "hung"
        self.stop_seconds = time.monotonic() - t0
        return self.exit_code, self.stop_seconds

    def check_clean_stop(self):
        code, secs = self.stop()
        assert code == 0, "%s did not stop cleanly (exit %r after %.1fs): %s" % (
            self.name, code, secs, self.stderr_text())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(autouse=True)
def _hard_timeout():
    """Makes a hung test fail instead of hanging the suite."""
    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded %ds" % TEST_TIMEOUT)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def start_server():
    """Factory: start_server(name, *args, host=...) -> ServerProcess. Every
    server started is stopped at teardown and must exit 0 within 10 s."""
    servers = []

    def start(name, *args, host="127.0.0.1", prefix=()):
        srv = ServerProcess(name, args, host=host, prefix=prefix)
        servers.append(srv)
        return srv

    yield start
    errors = []
    for srv in servers:
        try:
            srv.check_clean_stop()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            srv.kill()
    assert not errors, "\n".join(errors)


@pytest.fixture(params=MODES, ids=MODE_IDS)
def mode(request):
    return request.param


@pytest.fixture
def echo_server(start_server, mode):
    io, agents = mode
    return start_server("echo_server", "--io-threads", io, "--agents", agents)


@pytest.fixture
def echo_default(start_server):
    """A default (1 I/O thread, inline callbacks) echo server for tests
    that need no parametrization."""
    return start_server("echo_server")


@pytest.fixture
def chat_server(start_server, mode):
    io, agents = mode
    return start_server("chat_server", "--io-threads", io, "--agents", agents)

