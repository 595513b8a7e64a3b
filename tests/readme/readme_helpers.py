"""What the README doc-tests share (tests/readme/test_readme_*.py): reading
a block under a heading of the README, running it as written with only its
port changed, stopping it with a signal, and a raw HTTP client for the
answers a WebSocket client does not show (status, headers, body).

``README_FILE`` names another file to read the blocks from (a draft of a
section, before it is merged into README.md); ``WEBSOCK_BUILD_DIR`` the
build tree with venv/ (the Python package) and lua/ (the Lua modules)."""
import asyncio
import os
import re
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.abspath(os.environ.get("README_FILE", os.path.join(ROOT, "README.md")))
BUILD = os.path.abspath(os.environ.get("WEBSOCK_BUILD_DIR", os.path.join(ROOT, "build")))


def readme_text():
    with open(README, encoding="utf-8") as f:
        return f.read()


def has_heading(heading):
    """Whether the README has the line ``heading``."""
    return ("\n" + heading + "\n") in "\n" + readme_text()


def readme_block(heading, lang):
    """The first ```lang block after the line ``heading``."""
    text = "\n" + readme_text()  # a draft may begin with the heading
    start = text.index("\n" + heading + "\n")
    m = re.compile(r"```%s\n(.*?)```" % lang, re.S).search(text, start)
    assert m, "no %s block after %r" % (lang, heading)
    return m.group(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path, name, code, old_port, cmd, env=None, cwd=None):
    """Writes ``code`` with ``old_port`` replaced by a free port to
    ``tmp_path/name``, runs ``cmd + [that file]`` and returns (process, port)
    once the port accepts connections."""
    port = free_port()
    assert str(old_port) in code
    path = tmp_path / name
    path.write_text(code.replace(str(old_port), str(port)))
    proc = subprocess.Popen(cmd + [str(path)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the README block did not listen")


def stop(proc, sig):
    """Sends ``sig`` and waits for the process (killed after 10 s)."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()


def stopped_cleanly(proc, sig):
    """Stops ``proc`` with ``sig`` and asserts it exited with 0 and no
    traceback."""
    stop(proc, sig)
    _, err = proc.communicate()
    assert proc.returncode == 0 and "Traceback" not in err, (proc.returncode, err)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def http_request(port, target, headers=(), upgrade=None):
    """(status, headers with lower-case names (the first of each), body) of
    the answer to a raw request for ``target``: a WebSocket upgrade, or a
    plain GET when ``upgrade`` is False (by default: for "/health"). A body
    is read to its Content-Length (to the end without one); a 101 has
    none."""
    if upgrade is None:
        upgrade = target != "/health"
    lines = ["GET %s HTTP/1.1" % target, "Host: 127.0.0.1"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    lines += ["%s: %s" % h for h in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, "closed before an answer: %r" % data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        first, *rest = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in rest:
            name, _, value = line.partition(":")
            fields.setdefault(name.strip().lower(), value.strip())
        status = int(first.split()[1])
        if status == 101:
            return status, fields, b""
        length = int(fields.get("content-length", -1))
        while length < 0 or len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
    return status, fields, body
