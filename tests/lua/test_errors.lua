-- Error messages of the Lua facade, asserted verbatim, run by both lua5.4
-- and luajit (see run.sh): a port in use, a host that does not resolve,
-- and the C module of the other Lua ABI (run in the other interpreter:
-- LWS2_BUILD_DIR names the build tree). Prints "PASS name" / "FAIL name:
-- why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local test, eq = T.test, T.eq

test("a port in use: nil, the C API's text, ERR.ADDRESS, EADDRINUSE", function()
  local a = assert(websock.server{ host = "127.0.0.1", port = 0 })
  assert(a:start())
  local b = assert(websock.server{ host = "127.0.0.1", port = a.port })
  local ok, err, code, errno = b:start()
  eq(ok, nil)
  eq(err, "cannot listen on 127.0.0.1:" .. a.port .. ": address already in use")
  eq(code, websock.ERR.ADDRESS, "code")
  eq(errno, 98, "errno (EADDRINUSE)")
  eq(websock.core.server_last_error(b._s), err, "websock_server_last_error")
  b:free()
  assert(a:shutdown()); a:free()
end)

test("a host that does not resolve says so", function()
  local s = assert(websock.server{ host = "no-such-host.invalid", port = 0 })
  local ok, err, code, errno = s:start()
  eq(ok, nil)
  local want = 'cannot resolve the address to listen on, "no-such-host.invalid": '
  assert(err:sub(1, #want) == want, err)
  assert(#err > #want, "no reason after the name: " .. err)
  eq(code, websock.ERR.ADDRESS, "code")
  eq(type(errno), "number", "errno")
  s:free()
end)

test("start twice: the state error, no listen text", function()
  local s = assert(websock.server{ port = 0 })
  assert(s:start())
  local ok, err = s:start()
  eq(ok, nil); eq(err, websock.strerror(websock.ERR.STATE))
  assert(s:shutdown()); s:free()
end)

-- The other interpreter with this one's module first on its cpath.
local build = os.getenv("LWS2_BUILD_DIR")
local this_abi = websock.core.lua_abi()
test("the module reports the ABI it was built for", function()
  eq(this_abi, jit and 501 or 504)
end)

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local text = p:read("*a")
  p:close()
  return text
end

test("the other interpreter gets a message naming the mismatch", function()
  assert(build, "LWS2_BUILD_DIR is not set")
  local other, other_name, other_dir, my_dir
  if jit then
    other, my_dir, other_dir = "lua5.4", "5.1", "5.4"
    other_name = "Lua 5.4"
  else
    other, my_dir, other_dir = "luajit", "5.4", "5.1"
    other_name = run("luajit -e 'io.write(jit.version)'") .. " (the Lua 5.1 ABI)"
  end
  local so = build .. "/lua/" .. my_dir .. "/libwebsock2_core.so"
  local facade = here .. "/../../bindings/lua/?.lua"
  local got = run(("LUA_PATH='%s;;' LUA_CPATH='%s/lua/%s/?.so;;' %s -e " ..
                   "'local ok, e = pcall(require, \"libwebsock2\") io.write(tostring(e))'")
                  :format(facade, build, my_dir, other))
  local built_for = jit and "the Lua 5.1 ABI (LuaJIT, OpenResty, Lua 5.1)" or "Lua 5.4"
  eq(got, ("libwebsock2: %s was built for %s, but this is %s: put the module built for " ..
           "this interpreter (lua/%s/libwebsock2_core.so of the build tree, or lib/lua/%s/ " ..
           "of an install) first on package.cpath"):format(so, built_for, other_name,
                                                           other_dir, other_dir))
  assert(not got:find("undefined symbol", 1, true), got)
end)

test("a module that is not there: require's own message", function()
  local got = run(("LUA_PATH='%s/../../bindings/lua/?.lua;;' LUA_CPATH='/nonexistent/?.so' " ..
                   "%s -e 'local ok, e = pcall(require, \"libwebsock2\") io.write(tostring(e))'")
                  :format(here, jit and "luajit" or "lua5.4"))
  assert(got:find("module 'libwebsock2_core' not found", 1, true), got)
end)

print(("%d failed"):format(T.failures))
os.exit(T.failures == 0 and 0 or 1)
