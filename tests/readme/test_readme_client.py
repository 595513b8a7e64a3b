"""The README's client quick starts (C, Python, Lua), run as written against
the build's echo_server: only the port is changed to the server's. The C
block is compiled against the build tree's static library. Needs
WEBSOCK_BUILD_DIR with examples/, venv/ and lua/. Run with Debian's
/usr/bin/python3."""
import os
import shutil
import subprocess
import time

import pytest

from readme_helpers import BUILD, ROOT, free_port, readme_block


@pytest.fixture
def echo_port():
    """An echo_server of the build on a free port, stopped afterwards."""
    exe = os.path.join(BUILD, "examples", "echo_server")
    if not os.path.exists(exe):
        pytest.skip("no %s" % exe)
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "listening" in line, (line, proc.stderr.read())
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def run_block(cmd, env=None, timeout=30):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_c_client_quick_start(tmp_path, echo_port):
    code = readme_block("#### Client quick start (C)", "c")
    assert "9001" in code
    src = tmp_path / "client.c"
    src.write_text(code.replace("9001", str(echo_port)))
    lib = os.path.join(BUILD, "libwebsock2.a")
    if not os.path.exists(lib) or shutil.which("pkg-config") is None:
        pytest.skip("no static library or pkg-config")
    libs = subprocess.run(
        ["pkg-config", "--libs", "libevent_core", "libevent_pthreads",
         "libssl", "libcrypto", "zlib", "hiredis"],
        capture_output=True, text=True, check=True).stdout.split()
    exe = tmp_path / "client"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-o", str(exe),
                    str(src), "-I", os.path.join(ROOT, "include"),
                    "-I", os.path.join(BUILD, "include"), lib] + libs +
                   ["-lpthread"], check=True, capture_output=True, text=True)
    out = run_block([str(exe)])
    assert "got: hello" in out
    assert "closed: 1000 thanks" in out


def test_python_client(python, echo_port):
    code = readme_block("#### Client (threads and asyncio)", "python")
    assert "8765" in code
    out = run_block(python + ["-c", code.replace("8765", str(echo_port))])
    lines = out.splitlines()
    assert lines[0] == "got: hello"
    assert lines[1] == "got: b'\\x01\\x02'"
    assert lines[2] == ("connect | connect: Connection refused "
                        "(127.0.0.1 port 1)")


def test_lua_client(tmp_path, lua54, echo_port):
    cmd, env = lua54
    code = readme_block("#### Client (Lua)", "lua")
    assert "8765" in code
    path = tmp_path / "client.lua"
    path.write_text(code.replace("8765", str(echo_port)))
    out = run_block(cmd + [str(path)], env=env)
    lines = out.splitlines()
    assert lines[0] == "got: hello"
    assert lines[1].split("\t") == [
        "nil", "connect: Connection refused (127.0.0.1 port 1)", "1006"]
