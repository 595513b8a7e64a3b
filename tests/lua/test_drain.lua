-- A graceful hand-over in the Lua facade, run by both lua5.4 and luajit
-- (see run.sh): two reuse_port servers a and b share a port (as two nginx
-- workers, an old and a new one, do during a reload); a:stop_accepting()
-- sends every new connection to b while a's client goes on;
-- a:drain_and_stop() returns once that client has left; b:drain_and_stop()
-- with clients that stay closes them with 1001 at its deadline. Driven by
-- drain_client.py. Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local python = os.getenv("LWS2_PYTHON") or "/usr/bin/python3"
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local VM, report, test, eq = T.VM, T.report, T.test, T.eq

-- true when a TCP connect to 127.0.0.1:port is refused; with |within|
-- (seconds), when one is refused within that time (the I/O threads close
-- their listening sockets a moment after stop_accepting() returns).
local function refused(port, within)
  local cmd = ("%s -c 'import socket,sys,time\nend=time.time()+%s\n" ..
               "while True:\n s=socket.socket()\n r=s.connect_ex((\"127.0.0.1\",%d))\n" ..
               " s.close()\n if r==111: sys.exit(7)\n" ..
               " if time.time()>=end: sys.exit(0)\n time.sleep(0.01)'"):format(
               python, tostring(within or 0), port)
  local a, _, c = os.execute(cmd)
  local code = type(a) == "number" and a / 256 or c
  return code == 7
end

-- The number of descriptors this process has open (the shell's own
-- /proc/self would be the shell's: ask for our pid's).
local PID
do
  local f = assert(io.open("/proc/self/stat"))
  PID = f:read("*l"):match("^%d+")
  f:close()
end
-- Counted by a shell writing to a file, not through io.popen: a popen's
-- pipe has both ends open in this process for a moment while the child
-- starts, and a count taken then is one too many.
local function fd_count()
  collectgarbage(); collectgarbage()
  local tmp = os.tmpname()
  os.execute("ls /proc/" .. PID .. "/fd | wc -l > " .. tmp)
  local f = assert(io.open(tmp))
  local n = tonumber(f:read("*a"))
  f:close()
  os.remove(tmp)
  return n
end

test("stop_accepting before start / without reuse_port", function()
  local s = assert(websock.server{ port = 0 })
  local ok, err = s:stop_accepting()
  eq(ok, nil); eq(err, websock.strerror(websock.ERR.STATE))
  assert(s:start())
  assert(not refused(s.port), "the check itself: a connect while listening")
  assert(s:stop_accepting())
  assert(refused(s.port, 2), "a connect after stop_accepting() was not refused")
  assert(s:stop_accepting(), "twice")
  assert(s:shutdown()); s:free()
end)

test("stop_accepting and drain_and_stop leave no descriptor behind", function()
  local before = fd_count()
  for _ = 1, 3 do
    local s = assert(websock.server{ port = 0, io_threads = 2, reuse_port = true })
    assert(s:start())
    assert(s:stop_accepting())
    local ok, left = s:drain_and_stop(1000)
    assert(ok, left); eq(left, 0, "connections left")
    s:free()
  end
  eq(fd_count(), before, "descriptors after three servers")
end)

local a = assert(websock.server{ host = "127.0.0.1", port = 0, io_threads = 2,
                                 reuse_port = true, close_timeout = 3000 })
assert(a:start())
local b = assert(websock.server{ host = "127.0.0.1", port = a.port, reuse_port = true,
                                 close_timeout = 3000 })
assert(b:start())
local names = { [a] = "a", [b] = "b" }
local pending, results, drained = nil, {}, {}
for _, s in ipairs({ a, b }) do
  s:on("message", function(conn, data)
    local name = names[s]
    local how, ms = data:match("^drain:(%a):(%d+)$")
    if data == "who" then
      conn:send(name)
    elseif data == "stop_accepting" then
      local ok, err = s:stop_accepting()
      conn:send(ok and "ok" or ("err:" .. tostring(err)))
    elseif how then
      pending = { how == "a" and a or b, tonumber(ms) }
      conn:send("ok")
    elseif data == "result" then
      local r = results.a
      conn:send(r and ("a:left=%d;ms=%d"):format(r.left, r.ms) or "none")
    else
      conn:send(data)
    end
  end)
end

local out = os.tmpname()
os.execute(("%s %s/drain_client.py %d > %s 2>&1 &"):format(python, here, a.port, out))
local deadline = os.time() + 90
while not (drained.a and drained.b) and os.time() <= deadline do
  if not drained.a then assert(a:poll(5)) end
  if not drained.b then assert(b:poll(5)) end
  if pending then
    local s, ms = pending[1], pending[2]
    pending = nil
    local t0 = websock.core.now_ms()
    local ok, left = s:drain_and_stop(ms)
    assert(ok, left)
    results[names[s]] = { left = left, ms = websock.core.now_ms() - t0 }
    drained[names[s]] = true
  end
end

T.client_results(out, "drain client finished", 300)

test("a drained once its client left, before its deadline", function()
  local r = assert(results.a, "a was not drained")
  eq(r.left, 0, "connections left at a's deadline")
  assert(r.ms < 15000, "a's drain took " .. r.ms .. " ms")
end)

test("b reached its deadline with its two clients and closed them", function()
  local r = assert(results.b, "b was not drained")
  eq(r.left, 2, "connections left at b's deadline")
  assert(r.ms >= 900, "b's drain took only " .. r.ms .. " ms")
end)

for _, s in ipairs({ a, b }) do s:free() end
print(("%d failed"):format(T.failures))
os.exit(T.failures == 0 and 0 or 1)
