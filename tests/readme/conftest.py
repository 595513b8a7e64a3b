"""Fixtures of the README doc-tests: the interpreters that run a README
block (the helpers are in readme_helpers.py). Run with Debian's
/usr/bin/python3 and WEBSOCK_BUILD_DIR=<build tree>."""
import os
import shutil

import pytest

from readme_helpers import BUILD


@pytest.fixture
def python():
    """The command that runs a README block with the package installed in
    BUILD/venv."""
    py = os.path.join(BUILD, "venv", "bin", "python")
    if not os.path.exists(py):
        pytest.skip("no %s: install the package into BUILD/venv" % py)
    return [py, "-P"]


@pytest.fixture
def lua54():
    """The command and environment that run a README block under Lua 5.4
    with the modules of BUILD/lua."""
    lua_dir = os.path.join(BUILD, "lua")
    if not os.path.isdir(lua_dir):
        pytest.skip("no Lua modules in %s" % lua_dir)
    if shutil.which("lua5.4") is None:
        pytest.skip("no lua5.4")
    env = dict(os.environ,
               LUA_PATH=os.path.join(lua_dir, "share", "?.lua") + ";;",
               LUA_CPATH=os.path.join(lua_dir, "5.4", "?.so") + ";;")
    return ["lua5.4"], env
