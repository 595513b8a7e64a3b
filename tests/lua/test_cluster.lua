-- The cluster through Redis from Lua, run by both lua5.4 and luajit (see
-- run.sh): a redis-server of the test's own on a free loopback port, two
-- servers of this Lua state as nodes 1 and 2 of one cluster, and clients
-- made with the facade's websock.connect() (their recv() polls both
-- servers). A publish on node 1 reaches a member on node 2, a broadcast
-- too, a send by id crosses nodes; the option errors. Prints "PASS name" /
-- "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local test, eq = T.test, T.eq

-- A free port: a server on port 0 tells one, then lets it go.
local function free_port()
  local s = assert(websock.server{ host = "127.0.0.1", port = 0 })
  assert(s:start())
  local p = s.port
  s:shutdown()
  s:free()
  return p
end

local rport = free_port()
local pidfile = os.tmpname()
local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end
assert(sh(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no " ..
           "--daemonize yes --pidfile %s --logfile /dev/null"):format(rport, pidfile)))
local function redis_stop()
  sh(("kill -9 $(cat %s) 2>/dev/null; rm -f %s"):format(pidfile, pidfile))
end

local url = ("redis://127.0.0.1:%d"):format(rport)

-- "sub T" subscribes, "pub T|DATA" publishes except the sender, "bc DATA"
-- broadcasts except the sender, "to ID|DATA" sends to ID, "id" tells the
-- connection's id; each answered ("ok", "err:...", or the id).
local function node(n)
  local s = assert(websock.server{ host = "127.0.0.1", port = 0, cluster = url,
                                   node = n, cluster_prefix = "luatest" })
  s:on("message", function(conn, data)
    local cmd, rest = data:match("^(%a+) ?(.*)$")
    local function reply(ok, err) conn:send(ok and "ok" or ("err:" .. tostring(err))) end
    if cmd == "id" then
      conn:send(tostring(conn.id))
    elseif cmd == "sub" then
      reply(conn:subscribe(rest))
    elseif cmd == "pub" then
      local t, d = rest:match("^([^|]*)|(.*)$")
      reply(s:publish(t, d, "text", conn))
    elseif cmd == "bc" then
      reply(s:broadcast(rest, "text", conn.id))
    elseif cmd == "to" then
      local id, d = rest:match("^(%d+)|(.*)$")
      reply(s:send(tonumber(id), d))
    end
  end)
  assert(s:start())
  return s
end

local n1, n2 = node(1), node(2)

-- Both links up (the stats say so), within 10 s.
local function wait_up(s)
  local deadline = websock.core.now_ms() + 10000
  while websock.core.now_ms() < deadline do
    s:poll(10)
    local st = s:stats()
    if st.cluster_up == 1 then return true end
  end
  return false
end

local function ask(c, cmd)
  assert(c:send(cmd))
  return c:recv(5000)
end

test("both nodes join the cluster", function()
  assert(wait_up(n1), "node 1's link did not come up")
  assert(wait_up(n2), "node 2's link did not come up")
end)

local a = assert(websock.connect(("ws://127.0.0.1:%d/"):format(n1.port)))
local b = assert(websock.connect(("ws://127.0.0.1:%d/"):format(n2.port)))
assert(a:wait_open(5000) and b:wait_open(5000))

test("ids carry their node", function()
  local ida, idb = tonumber((ask(a, "id"))), tonumber((ask(b, "id")))
  eq(math.floor(ida / 2 ^ 43), 1, "node of a's id")
  eq(math.floor(idb / 2 ^ 43), 2, "node of b's id")
end)

test("a publish on node 1 reaches a member on node 2", function()
  eq(ask(b, "sub room"), "ok")
  -- node 2's SUBSCRIBE reaches Redis meanwhile
  local until_ms = websock.core.now_ms() + 200
  while websock.core.now_ms() < until_ms do n1:poll(10); n2:poll(10) end
  eq(ask(a, "pub room|hello"), "ok")
  eq(b:recv(5000), "hello")
end)

test("a broadcast on node 2 reaches node 1", function()
  eq(ask(b, "bc news"), "ok")
  eq(a:recv(5000), "news")
end)

test("a send by id crosses nodes", function()
  local ida = (ask(a, "id"))
  eq(ask(b, "to " .. ida .. "|psst"), "ok")
  eq(a:recv(5000), "psst")
end)

test("option errors", function()
  local s, err = websock.server{ cluster = "http://x", node = 1 }
  assert(not s and err:find("cluster"), err)
  s, err = websock.server{ cluster = url, node = 0 }
  assert(not s and err:find("node"), err)
  s, err = websock.server{ cluster = url }
  assert(not s and err:find("go together"), err)
end)

a:close()
b:close()
n1:shutdown()
n2:shutdown()
websock.client_shutdown()
redis_stop()
os.exit(T.failures == 0 and 0 or 1)
