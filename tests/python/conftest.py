"""Helpers for the libwebsock2 Python binding tests (real sockets, the
`websockets` package as client). Run with the installed package:

    /tmp/pyvenv/bin/python -P -m pytest -q tests/python
"""
import asyncio
import os
import subprocess
import sys
import threading

import pytest

TIMEOUT = 20.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(coro, timeout: float = TIMEOUT):
    """Runs ``coro`` in a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def make_server():
    """Creates libwebsock2.Server objects and stops them after the test."""
    import libwebsock2

    made = []

    def factory(**kw):
        kw.setdefault("port", 0)
        srv = libwebsock2.Server(**kw)
        made.append(srv)
        return srv

    yield factory
    for srv in made:
        srv.stop()


class Example:
    def __init__(self, script: str, *args: str) -> None:
        path = os.path.join(ROOT, "examples", "python", script)
        self.proc = subprocess.Popen([sys.executable, "-P", path, "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = 0
        line = [""]

        def read():
            line[0] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(15)
        if not line[0].startswith("listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
            raise AssertionError("example did not start: %r %s" % (line[0], err))
        self.port = int(line[0].split()[-1])

    def stop(self, sig) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def example():
    started = []

    def start(script, *args):
        ex = Example(script, *args)
        started.append(ex)
        return ex

    yield start
    for ex in started:
        if ex.proc.poll() is None:
            ex.proc.kill()
            ex.proc.wait()
