"""serve_forever() (threads and asyncio) on the main thread stops
gracefully on SIGINT and SIGTERM: the connected client gets 1001, the
call returns normally (exit code 0, no traceback), also in a process
started with SIGINT ignored (as a shell starts background jobs), and the
previous handlers are back afterwards. Each case is a subprocess started
through ``sh -c "trap '' INT; exec python ..."`` when SIGINT is to be
ignored."""
import asyncio
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
import websockets

from conftest import run

WAIT = 20.0

SERVERS = {
    "threads": """
        import libwebsock2
        srv = libwebsock2.Server(port=0, agents=1)
        srv.on_message(lambda conn, msg: conn.send(msg))
        srv.start()
        print("listening on %d" % srv.port, flush=True)
        srv.serve_forever()
        print("returned", flush=True)
    """,
    "asyncio": """
        import asyncio, libwebsock2.aio

        async def echo(conn):
            async for msg in conn:
                await conn.send(msg)

        async def main():
            async with libwebsock2.aio.serve(echo, "127.0.0.1", 0) as srv:
                print("listening on %d" % srv.port, flush=True)
                await srv.serve_forever()
            print("returned", flush=True)

        asyncio.run(main())
    """,
}

# The test may signal only once serve_forever() installed its handlers (a
# signal before that finds SIGINT ignored, or Python's KeyboardInterrupt):
# a thread reports when both handlers changed.
PROLOGUE = """
    import signal, threading, time
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    print("sigint ignored at start:", before[signal.SIGINT] is signal.SIG_IGN, flush=True)

    def report():
        while any(signal.getsignal(s) == h for s, h in before.items()):
            time.sleep(0.005)
        print("handlers installed", flush=True)

    threading.Thread(target=report, daemon=True).start()
"""
EPILOGUE = """
    after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    print("handlers restored:", after == before, flush=True)
"""


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(front, ignore_sigint, tmp_path):
    script = tmp_path / ("server_%s.py" % front)
    script.write_text(textwrap.dedent(PROLOGUE) + textwrap.dedent(SERVERS[front]) +
                      textwrap.dedent(EPILOGUE))
    cmd = [sys.executable, "-P", str(script)]
    if ignore_sigint:
        cmd = ["/bin/sh", "-c", "trap '' INT; exec \"$@\"", "sh"] + cmd
    # The case without "trap" means SIGINT as a terminal gives it: restored
    # for the child, since a test run started in the background of a
    # non-interactive shell (CI) inherits it ignored.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=None if ignore_sigint else _default_sigint)
    lines = []

    def read():
        for _ in range(3):
            lines.append(proc.stdout.readline())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(WAIT)
    if len(lines) < 3 or not lines[1].startswith("listening on ") or \
            lines[2] != "handlers installed\n":
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError("server did not start: %r %s %s" % (lines, out, err))
    assert lines[0] == "sigint ignored at start: %s\n" % ignore_sigint
    return proc, int(lines[1].split()[-1])


@pytest.mark.parametrize("ignore_sigint", [False, True])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("front", ["threads", "asyncio"])
def test_signal_stops_gracefully(front, sig, ignore_sigint, tmp_path):
    proc, port = start(front, ignore_sigint, tmp_path)
    try:
        async def client():
            async with websockets.connect("ws://127.0.0.1:%d/" % port) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                proc.send_signal(sig)
                with pytest.raises(websockets.ConnectionClosed) as ei:
                    await asyncio.wait_for(ws.recv(), WAIT)
                return ei.value.rcvd.code

        assert run(client()) == 1001
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out == "returned\nhandlers restored: True\n", (out, err)


def test_second_signal_during_the_stop_is_ignored(tmp_path):
    """A client that does not answer the close keeps the stop waiting (up
    to the close timeout); a second SIGINT meanwhile does not cut it short
    with a traceback."""
    script = tmp_path / "slow_stop.py"
    script.write_text(textwrap.dedent(PROLOGUE) + textwrap.dedent("""
        import libwebsock2
        srv = libwebsock2.Server(port=0, agents=1, close_timeout=1.0)
        srv.start()
        print("listening on %d" % srv.port, flush=True)
        srv.serve_forever()
        print("returned", flush=True)
    """))
    proc = subprocess.Popen([sys.executable, "-P", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        port = int(proc.stdout.readline().split()[-1])
        assert proc.stdout.readline() == "handlers installed\n"
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 101")
            proc.send_signal(signal.SIGINT)
            assert sock.recv(2)[:1] == b"\x88"  # the close frame: the stop began
            proc.send_signal(signal.SIGINT)  # never answered: the stop waits 1 s
            out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, "returned\n"), (out, err)
    assert "Traceback" not in err, err
