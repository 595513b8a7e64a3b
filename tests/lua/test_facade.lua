-- Facade checks, run by both lua5.4 and luajit (see run.sh):
--   1. pure checks (options, errors, states) without a client;
--   2. an in-process server driven by inproc_client.py (python3
--      websockets) started in the background.
-- Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local python = os.getenv("LWS2_PYTHON") or "/usr/bin/python3"
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local VM, report, test, eq = T.VM, T.report, T.test, T.eq

-- A public header without its comments (for the checks against it).
local function header(name)
  local f = assert(io.open(here .. "/../../include/websock/" .. name))
  local text = f:read("*a"):gsub("/%*.-%*/", "")
  f:close()
  return text
end

-- The member names of "typedef struct NAME { ... } NAME;", in order.
local function struct_fields(text, name)
  local body = text:match("typedef struct " .. name .. " {(.-)} " .. name .. ";")
  assert(body, name)
  local fields = {}
  for decl in body:gmatch("([^;]+);") do fields[#fields + 1] = decl:match("([%w_]+)%s*$") end
  return fields
end

local function set_of(list)
  local t = {}
  for _, v in ipairs(list) do t[v] = true end
  return t
end

------------------------------------------------------------------ pure
test("version is the C library's", function()
  local v = websock.version()
  eq(websock._VERSION, v, "_VERSION")
  eq(websock.core.VERSION_STRING, v, "the header the module was built with")
  local want = os.getenv("LWS2_VERSION") -- run.sh: project() of CMakeLists.txt
  if want then eq(v, want, "version") else assert(v:match("^%d+%.%d+%.%d+$"), v) end
end)

test("ERR has every code of error.h", function()
  local n = 0
  for name, value in header("error.h"):gmatch("WEBSOCK_ERR_([%u%d_]+)%s*=%s*(%-?%d+)") do
    eq(websock.ERR[name], tonumber(value), "ERR." .. name)
    n = n + 1
  end
  assert(n >= 13, n)
  for name in pairs(websock.ERR) do
    assert(header("error.h"):find("WEBSOCK_ERR_" .. name .. " ", 1, true), name)
  end
  eq(websock.strerror(websock.ERR.TAG_TAKEN), "tag taken by another connection")
end)

test("unknown option rejected", function()
  local s, e = websock.server{ nope = 1 }
  eq(s, nil); eq(e, "unknown option 'nope'")
end)

test("out-of-range option rejected", function()
  local s, e = websock.server{ io_threads = 0 }
  eq(s, nil); assert(e:find("io_threads"), e)
  s, e = websock.server{ agents = -1 }
  eq(s, nil)
  s, e = websock.server{ port = 70000 }
  eq(s, nil)
  s, e = websock.server{ max_message_size = 1.5 }
  eq(s, nil)
end)

test("agent_budget option: 1..65536 accepted, others rejected", function()
  for _, ok in ipairs({ 1, 32, 65536 }) do
    local s, e = websock.server{ agent_budget = ok }
    assert(s, "agent_budget = " .. ok .. ": " .. tostring(e)); s:free()
  end
  for _, bad in ipairs({ 0, 65537, -1, 2.5, 2 ^ 40 }) do
    local s, e = websock.server{ agent_budget = bad }
    eq(s, nil, "server with agent_budget " .. tostring(bad))
    assert(e:find("option agent_budget", 1, true), e)
  end
  local s, e = websock.server{ agent_budget = "many" }
  eq(s, nil); eq(e, "option agent_budget must be a number")
end)

test("errors before start use nil, err", function()
  local s = assert(websock.server{})
  local ok, e = s:send(1, "x")
  eq(ok, nil); eq(type(e), "string")
  ok, e = s:join()
  eq(ok, nil)
  s:free()
end)

test("bad kind raises", function()
  local s = assert(websock.server{})
  local ok, e = pcall(s.send, s, 1, "x", "jpeg")
  eq(ok, false); assert(tostring(e):find("kind"), e)
  s:free()
end)

test("bad id raises", function()
  local s = assert(websock.server{})
  eq(pcall(s.send, s, -1, "x"), false)
  eq(pcall(s.send, s, 1.5, "x"), false)
  eq(pcall(s.send, s, "abc", "x"), false)
  s:free()
end)

test("on() validates", function()
  local s = assert(websock.server{})
  eq(pcall(s.on, s, "nosuch", print), false)
  eq(pcall(s.on, s, "open", 42), false)
  eq(s:on("open", function() end), s)
  s:free()
end)

test("start, port, fd, stats, unknown ids, stop, join, free", function()
  local s = assert(websock.server{ host = "127.0.0.1", port = 0, io_threads = 2, agents = 2 })
  assert(s:start())
  assert(type(s.port) == "number" and s.port > 0, s.port)
  eq(s.port % 1, 0, "integral port")
  local ok, e = s:start(); eq(ok, nil); assert(e)
  assert(s:fd() >= 0)
  local st = assert(s:stats())
  -- queued delivery needs no agent threads: the core reports agents = 0
  eq(st.io_threads, 2); eq(st.agents, 0); eq(#st.loop_connections, 2)
  eq(st.connections, 0)
  -- every field of the stats structs: websock_stats once, a list per I/O
  -- thread for websock_loop_stats, per agent for websock_agent_stats
  local text = header("server.h")
  local want = set_of(struct_fields(text, "websock_stats"))
  assert(want.ready_connections and want.ready_wait_max_ns, "new websock_stats fields")
  eq(st.ready_connections, 0); eq(st.ready_wait_max_ns, 0)
  for prefix, kind in pairs({ loop = { "websock_loop_stats", 2 },
                              agent = { "websock_agent_stats", 0 } }) do
    for _, f in ipairs(struct_fields(text, kind[1])) do
      local key = prefix .. "_" .. f
      eq(type(st[key]), "table", key); eq(#st[key], kind[2], key)
      want[key] = true
    end
  end
  assert(want.loop_accepted and want.agent_busy_ns and not want.agent_connections)
  for k in pairs(st) do assert(want[k], "unexpected stats key " .. k); want[k] = nil end
  eq(next(want), nil, "missing stats key")
  eq(math.type and math.type(st.loop_accepted[1]) or "integer", "integer")
  local code
  ok, e, code = s:send(12345, "x"); eq(ok, nil); eq(e, "no such client")
  eq(code, websock.ERR.NO_SUCH_CLIENT)
  ok, e = s:send_tag("ghost", "x"); eq(ok, nil); eq(e, "no such client")
  ok, e = s:find_tag("ghost"); eq(ok, nil); eq(e, "no such client")
  ok, e = s:set_tag(12345, "ghost"); eq(ok, nil)
  assert(s:broadcast("nobody listens"))
  local t0 = os.clock()
  eq(s:poll(0), 0)
  assert(os.clock() - t0 < 0.5)
  assert(s:stop()); assert(s:stop())
  assert(s:join())
  assert(s:free()); assert(s:free())
  ok, e = s:send(1, "x"); eq(ok, nil)
  ok, e = s:poll(0); eq(ok, nil)
end)

test("garbage collection of an unfreed started server", function()
  do
    local s = assert(websock.server{})
    assert(s:start())
  end
  collectgarbage(); collectgarbage()
end)

------------------------------------------ pull style, with a client
test("recv(): open, message, close as tables", function()
  local s = assert(websock.server{ host = "127.0.0.1", port = 0 })
  assert(s:start())
  eq(s:recv(0), false)
  local out = os.tmpname()
  os.execute(("%s %s/pull_client.py %d > %s 2>&1 &"):format(python, here, s.port, out))
  local seen, deadline = {}, os.time() + 15
  while #seen < 3 and os.time() <= deadline do
    local e = s:recv(100)
    assert(e ~= nil)
    if e then seen[#seen + 1] = e end
  end
  os.remove(out)
  eq(#seen, 3, "events")
  eq(seen[1].type, "open"); eq(seen[1].path, "/pull"); eq(seen[1].query, "q=1")
  eq(seen[2].type, "message"); eq(seen[2].kind, "binary"); eq(seen[2].data, "\0\1")
  eq(seen[2].conn, seen[1].conn, "same conn object")
  eq(seen[3].type, "close"); eq(seen[3].code, 4005); eq(seen[3].conn.closed, true)
  eq(seen[3].reason, "later", "the peer's close reason")
  assert(s:shutdown()); s:free()
end)

test("core.server_poll: one record with websock_event's field names", function()
  local s = assert(websock.server{ host = "127.0.0.1", port = 0 })
  assert(s:start())
  local out = os.tmpname()
  os.execute(("%s %s/pull_client.py %d > %s 2>&1 &"):format(python, here, s.port, out))
  local fields = set_of(struct_fields(header("event.h"), "websock_event"))
  local core, recs, deadline = websock.core, {}, os.time() + 15
  while #recs < 3 and os.time() <= deadline do
    local rc, ev = core.server_poll(s._s, 100)
    assert(rc >= 0, rc)
    if rc == 1 then recs[#recs + 1] = ev end
  end
  os.remove(out)
  eq(#recs, 3, "records")
  for _, ev in ipairs(recs) do
    for k in pairs(ev) do assert(fields[k], "not a websock_event field: " .. k) end
    eq(ev.length, nil); eq(ev.user_data, nil); eq(ev.server, nil)
  end
  local open, msg, close = recs[1], recs[2], recs[3]
  eq(open.type, core.EVENT_OPEN); eq(open.path, "/pull"); eq(open.query, "q=1")
  assert(open.remote_addr:find("^127%.0%.0%.1:%d+$"), open.remote_addr)
  eq(msg.type, core.EVENT_MESSAGE); eq(msg.opcode, core.OP_BINARY); eq(msg.data, "\0\1")
  eq(close.type, core.EVENT_CLOSE); eq(close.close_code, 4005); eq(close.data, "later")
  eq(open.id, close.id)
  assert(s:shutdown()); s:free()
end)

------------------------------------------------------ spread option
test("bad spread rejected", function()
  for _, bad in ipairs({ "fewest", "ROUND_ROBIN", "round-robin", "", 1, true }) do
    local s, e = websock.server{ io_threads = 2, spread = bad }
    eq(s, nil, "server with spread " .. tostring(bad))
    assert(e:find("option spread", 1, true) and e:find("least_connections", 1, true) and
           e:find("round_robin", 1, true), e)
  end
end)

-- The output of a background client once it printed DONE (or after 10 s).
local function client_output(out)
  local text = ""
  for _ = 1, 200 do
    local f = io.open(out)
    text = f and f:read("*a") or ""
    if f then f:close() end
    if text:find("DONE") then break end
    os.execute("sleep 0.05")
  end
  os.remove(out)
  return text
end

-- spread_client.py checks on which I/O thread each connection lands; its
-- PASS/FAIL lines are relayed (4 PASS lines when all is well).
for _, mode in ipairs({ "least_connections", "round_robin" }) do
  test("spread = " .. mode .. " serves; client checks relayed", function()
    local s = assert(websock.server{ host = "127.0.0.1", port = 0, io_threads = 2,
                                     spread = mode })
    local stopped = false
    s:on("message", function(conn, data)
      if data == "stats" then
        local st = assert(s:stats())
        conn:send(table.concat(st.loop_accepted, ",") .. ";" ..
                  table.concat(st.loop_connections, ","))
      elseif data == "stop" then
        stopped = true
        s:stop()
      end
    end)
    assert(s:start())
    local out = os.tmpname()
    os.execute(("%s %s/spread_client.py %d %s > %s 2>&1 &"):format(python, here, s.port,
                                                                   mode, out))
    local deadline = os.time() + 60
    while not stopped and os.time() <= deadline do assert(s:poll(20)) end
    assert(s:shutdown()); s:free()
    local text, passes = client_output(out), 0
    for line in text:gmatch("[^\n]+") do
      local status, name = line:match("^(%u+) (.*)$")
      if status == "PASS" or status == "FAIL" then
        print(status .. " [" .. VM .. "] client: " .. name)
        if status == "FAIL" then T.failures = T.failures + 1 else passes = passes + 1 end
      elseif line ~= "DONE" then
        print("  client: " .. line)
      end
    end
    assert(stopped, "the client never sent stop")
    assert(text:find("DONE"), "no DONE from the client")
    eq(passes, 4, "client checks passed")
  end)
end

------------------------------------------------------ with a client
local logs = {}
local srv = assert(websock.server{
  host = "127.0.0.1", port = 0, io_threads = 2, agents = 2,
  http_routes = { ["/hello"] = { body = "hello route", content_type = "text/plain" } },
  log = function(msg) logs[#logs + 1] = msg end,
})
local lastclose = "none"
local opened, closed = 0, 0
srv:on("open", function(conn) opened = opened + 1 end)
srv:on("close", function(conn, code, reason)
  closed = closed + 1
  if conn.tag then lastclose = conn.tag .. " " .. tostring(code) .. " " .. reason end
end)
srv:on("message", function(conn, data, kind)
  if kind == "binary" then
    return conn:send(data:sub(6), "binary")
  end
  local cmd, rest = data:match("^(%w+):?(.*)$")
  if cmd == "echo" then
    conn:send(rest, kind)
  elseif cmd == "info" then
    conn:send(("path=%s;query=%s;remote=%s;tag=%s"):format(conn.path,
      tostring(conn.query), conn.remote_address, conn.tag or "none"))
  elseif cmd == "tag" then
    local ok, e = conn:set_tag(rest)
    conn:send(ok and "ok" or ("err:" .. e))
  elseif cmd == "untag" then
    local ok, e = conn:set_tag(nil)
    conn:send(ok and "ok" or ("err:" .. e))
  elseif cmd == "stale" then
    -- set_tag(rest, or nil when empty), then an "info" event that was
    -- queued before it and carries the old tag, as the core delivers such
    -- an event: the reply must show the new tag.
    local old = conn.tag
    local ok, e = conn:set_tag(rest ~= "" and rest or nil)
    if not ok then return conn:send("err:" .. e) end
    srv:_dispatch{ type = websock.core.EVENT_MESSAGE, id = conn.id, tag = old,
                   opcode = websock.core.OP_TEXT, data = "info", close_code = 0 }
  elseif cmd == "stalerefusal" then
    -- set_tag(rest), then a "tag" event refusing rest that was queued
    -- before it, its record carrying the tag of before (a cluster's
    -- refusal of an earlier claim of rest, asked again since): conn.tag
    -- must stay what the core says, rest.
    local old = conn.tag
    local ok, e = conn:set_tag(rest)
    if not ok then return conn:send("err:" .. e) end
    srv:_dispatch{ type = websock.core.EVENT_TAG, id = conn.id, tag = old, data = rest,
                   status = websock.ERR.TAG_TAKEN, opcode = 0, close_code = 0 }
    conn:send("tag=" .. tostring(conn.tag))
  elseif cmd == "findtag" then
    conn:send(srv:find_tag(rest) == conn.id and "same" or "different")
  elseif cmd == "sendtag" then
    local name, text = rest:match("^([^:]*):(.*)$")
    local ok, e = srv:send_tag(name, text)
    conn:send(ok and "ok" or ("err:" .. e))
  elseif cmd == "bcast" then
    local ok, e = srv:broadcast(rest, "text", conn.id)
    conn:send(ok and "ok" or ("err:" .. e))
  elseif cmd == "boom" then
    error("boom requested")
  elseif cmd == "kick" then
    conn:close(4002, "kick")
  elseif cmd == "lastclose" then
    conn:send(lastclose)
  elseif cmd == "yield" then
    coroutine.yield("yielded")
    conn:send("resumed")
  elseif cmd == "stop" then
    srv:stop()
  end
end)
assert(srv:start())

local out = os.tmpname()
local cmd = ("%s %s/inproc_client.py %d > %s 2>&1 &"):format(python, here, srv.port, out)
os.execute(cmd)

-- run() inside a coroutine: handlers yield it; while suspended, another
-- poll() must not dispatch (one consumer at a time).
local yields, reentrant = 0, nil
local co = coroutine.create(function() return srv:run{ interval = 20 } end)
local deadline = os.time() + 90
local run_ok, run_err
while true do
  local ok, v, e2 = coroutine.resume(co)
  if not ok then run_ok, run_err = false, v; break end
  if coroutine.status(co) == "dead" then run_ok, run_err = v, e2; break end
  yields = yields + 1
  reentrant = srv:poll(0)
  if os.time() > deadline then break end
end

-- wait for the client's last line
T.client_results(out, "client finished", 200)
report("[" .. VM .. "] run() returns true after stop() from a handler", run_ok == true, run_err)
report("[" .. VM .. "] handler yielded once", yields == 1, yields)
report("[" .. VM .. "] poll() while a handler is suspended dispatches nothing", reentrant == 0, reentrant)
report("[" .. VM .. "] handler error logged with handler name",
  logs[1] ~= nil and logs[1]:find("'message' handler") and logs[1]:find("boom requested"),
  logs[1])
report("[" .. VM .. "] every open got a close", opened == closed and opened > 0,
  ("opened %d closed %d"):format(opened, closed))
local st = srv:stats()
report("[" .. VM .. "] stats after run", st and st.messages_in > 0 and st.connections_total == opened,
  st and (st.messages_in .. " " .. st.connections_total))
srv:free()

os.exit(T.failures == 0 and 0 or 1)
