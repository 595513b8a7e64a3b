-- LuaRocks spec for the Lua binding of libwebsock2.
--
-- From a source checkout (needs a C compiler, cmake, swig, libevent and
-- OpenSSL headers):
--   luarocks make bindings/lua/libwebsock2-0.1.0-1.rockspec
--   luarocks --lua-version 5.4 make bindings/lua/libwebsock2-0.1.0-1.rockspec
-- The CMake build compiles the core into the module (no libwebsock2.so
-- needed at run time) and installs libwebsock2_core.so and libwebsock2.lua.
package = "libwebsock2"
version = "0.1.0-1"

source = {
  -- Replace with the project's public repository when it has one.
  url = "git+https://github.com/libwebsock2/libwebsock2.git",
  tag = "v0.1.0",
}

description = {
  summary = "Multi-threaded WebSocket server (libevent + OpenSSL) for Lua",
  detailed = [[
libwebsock2 runs a WebSocket (RFC 6455) server on its own I/O threads and
queues events; a pure-Lua facade polls them and calls your handlers on the
Lua thread, so handlers are plain (yieldable) Lua. Sends by connection id or
tag are non-blocking and thread-safe. Works with Lua 5.1-5.4, LuaJIT and
OpenResty (start it in init_worker_by_lua*, drain with a timer).
]],
  license = "MIT",
  homepage = "https://github.com/libwebsock2/libwebsock2",
}

dependencies = {
  "lua >= 5.1",
}

external_dependencies = {
  LIBEVENT = { header = "event2/event.h" },
  OPENSSL = { header = "openssl/ssl.h" },
}

build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    -- keep the C library's own install (headers, .so, pkg-config) out of
    -- the directories LuaRocks deploys as Lua modules
    CMAKE_INSTALL_LIBDIR = "c/lib",
    CMAKE_INSTALL_INCLUDEDIR = "c/include",
    WEBSOCK_LUA = "ON",
    WEBSOCK_TESTS = "OFF",
    WEBSOCK_EXAMPLES = "OFF",
    WEBSOCK_BENCH = "OFF",
    WEBSOCK_LUA_INCDIR = "$(LUA_INCDIR)",
    WEBSOCK_LUA_CMOD_DIR = "$(LIBDIR)",
    WEBSOCK_LUA_LMOD_DIR = "$(LUADIR)",
  },
}
