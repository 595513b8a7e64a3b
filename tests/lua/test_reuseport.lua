-- reuse_port in the Lua facade, run by both lua5.4 and luajit (see run.sh):
-- the option's checks; two servers of one process on one port (what one
-- server per OpenResty worker does), both serving a client
-- (reuseport_client.py), every I/O thread accepting on its own socket; a
-- server without reuse_port cannot take the port; stop closes every
-- listener. Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local python = os.getenv("LWS2_PYTHON") or "/usr/bin/python3"
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local VM, report, test, eq = T.VM, T.report, T.test, T.eq

-- true when a TCP connect to 127.0.0.1:port is refused (no listener left).
local function refused(port, tries)
  local cmd = ("%s -c 'import socket,sys\nfor _ in range(%d):\n" ..
               "  s=socket.socket()\n  r=s.connect_ex((\"127.0.0.1\",%d))\n" ..
               "  s.close()\n  sys.exit(0) if r!=111 else None\nsys.exit(7)'"):format(
               python, tries, port)
  local a, b, c = os.execute(cmd)
  local code = type(a) == "number" and a / 256 or c -- 5.1: status; 5.4: ok, "exit", n
  return code == 7
end

test("reuse_port must be true or false", function()
  for _, ok in ipairs({ true, false }) do
    local s, e = websock.server{ reuse_port = ok, io_threads = 2 }
    assert(s, tostring(e)); s:free()
  end
  for _, bad in ipairs({ 1, 0, "yes", "true", {} }) do
    local s, e = websock.server{ reuse_port = bad }
    eq(s, nil, "server with reuse_port " .. tostring(bad))
    assert(e:find("option reuse_port must be true or false", 1, true), e)
  end
end)

test("two reuse_port servers share a port and both serve", function()
  local a = assert(websock.server{ host = "127.0.0.1", port = 0, io_threads = 2,
                                   reuse_port = true })
  assert(a:start())
  local b = assert(websock.server{ host = "127.0.0.1", port = a.port, reuse_port = true })
  assert(b:start())
  eq(b.port, a.port, "b's port")
  local stopped = false
  for _, s in ipairs({ a, b }) do
    s:on("message", function(conn, data)
      if data == "stop" then stopped = true else conn:send(data) end
    end)
  end
  local out = os.tmpname()
  local N = 90
  os.execute(("%s %s/reuseport_client.py %d %d > %s 2>&1 &"):format(python, here, a.port, N, out))
  local deadline = os.time() + 70
  while not stopped and os.time() <= deadline do
    assert(a:poll(5)); assert(b:poll(5))
  end
  local sa, sb = assert(a:stats()), assert(b:stats())
  assert(not refused(a.port, 1), "the check itself: a connect while serving")
  assert(a:shutdown()); assert(b:shutdown())
  local text = ""
  for _ = 1, 200 do
    local f = io.open(out)
    text = f and f:read("*a") or ""
    if f then f:close() end
    if text:find("DONE") then break end
    os.execute("sleep 0.05")
  end
  os.remove(out)
  for line in text:gmatch("[^\n]+") do
    if line:match("^PASS ") or line:match("^FAIL ") then
      print((line:gsub("^(%u+) ", "%1 [" .. VM .. "] client: ")))
      if line:match("^FAIL ") then T.failures = T.failures + 1 end
    elseif line ~= "DONE" then
      print("  client: " .. line)
    end
  end
  assert(stopped, "the client never sent stop")
  -- N echo connections and the one that sent stop, spread by the kernel
  -- over a's two sockets and b's one (none on one server is 2^-90).
  eq(sa.accepted_total + sb.accepted_total, N + 1, "accepted by both")
  assert(sa.accepted_total > 0 and sb.accepted_total > 0,
         sa.accepted_total .. " / " .. sb.accepted_total)
  -- each of a's I/O threads accepted on its own socket
  assert(sa.loop_accepted[1] > 0 and sa.loop_accepted[2] > 0,
         table.concat(sa.loop_accepted, ","))
  eq(sa.loop_accepted[1] + sa.loop_accepted[2], sa.accepted_total, "a's loops")
  assert(refused(a.port, 30), "a listener is left after shutdown")
  a:free(); b:free()
end)

test("a port is shared only when every server asks for it", function()
  for _, first in ipairs({ true, false }) do
    local a = assert(websock.server{ host = "127.0.0.1", port = 0, io_threads = 2,
                                     reuse_port = first })
    assert(a:start())
    local b = assert(websock.server{ host = "127.0.0.1", port = a.port,
                                     reuse_port = not first })
    local ok, e = b:start()
    eq(ok, nil, "start on a port held by a server with reuse_port = " .. tostring(first))
    assert(tostring(e):lower():find("address", 1, true), e)
    b:free()
    assert(a:shutdown()); a:free()
  end
end)

print(("%d failed"):format(T.failures))
os.exit(T.failures == 0 and 0 or 1)
