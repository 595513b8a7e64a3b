-- Topics (publish/subscribe) through the facade, run by both lua5.4 and
-- luajit (see run.sh), over real sockets: an in-process server whose
-- handlers subscribe, unsubscribe and publish on their clients' commands,
-- and clients made with the facade's own websock.connect() (their recv()
-- polls the server meanwhile). Prints "PASS name" / "FAIL name: why" lines.
--
-- The command protocol (text or binary messages; a topic may hold any
-- bytes but "\n"):
--   "sub TOPIC", "unsub TOPIC"        conn:subscribe / conn:unsubscribe
--   "pub TOPIC\nDATA"                 srv:publish(TOPIC, DATA, kind, conn)
--   "pubid TOPIC\nDATA"               ... except conn.id
--   "puball TOPIC\nDATA"              ... except nobody
--   "whoami"                          answered with the server's conn.id
-- each answered with "ok" or "err:MESSAGE:CODE" (text).
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local test, eq = T.test, T.eq
local now = websock.core.now_ms
local ERR = websock.ERR

local srv = assert(websock.server{ host = "127.0.0.1", port = 0, io_threads = 2 })
local conns_closed = {}
srv:on("open", function(conn)
  -- ws://.../?topic=NAME joins NAME from the OPEN handler
  local t = conn.query and conn.query:match("^topic=(.+)$")
  if t then assert(conn:subscribe(t)) end
end)
srv:on("close", function(conn) conns_closed[conn.id] = true end)
srv:on("message", function(conn, data, kind)
  local function reply(ok, err, code)
    conn:send(ok and "ok" or ("err:" .. tostring(err) .. ":" .. tostring(code)))
  end
  local cmd, rest = data:match("^(%a+) (.*)$")
  if cmd == "sub" then
    reply(conn:subscribe(rest))
  elseif cmd == "unsub" then
    reply(conn:unsubscribe(rest))
  elseif cmd == "pub" or cmd == "pubid" or cmd == "puball" then
    local topic, body = rest:match("^([^\n]*)\n(.*)$")
    local except = (cmd == "pub" and conn) or (cmd == "pubid" and conn.id) or nil
    reply(srv:publish(topic, body, kind, except))
  elseif data == "whoami" then
    conn:send(tostring(conn.id))
  else
    conn:send("unknown command")
  end
end)
assert(srv:start())
local URL = "ws://127.0.0.1:" .. srv.port .. "/"

------------------------------------------------------------ helpers
-- Every client made, so a failed test leaves none open for the next.
local live = {}
local function connect(query)
  local c = assert(websock.connect(URL .. (query and ("?" .. query) or "")))
  live[#live + 1] = c
  return c
end

local function open(query)
  local c = connect(query)
  local ok, why = c:wait_open(5000)
  if not ok then error("connect: " .. tostring(why), 2) end
  return c
end

local function show(s)
  if #s > 60 then return #s .. " bytes" end
  return (s:gsub("[%z\1-\31\127-\255]", function(ch) return ("\\%d"):format(ch:byte()) end))
end

local function expect(c, want, want_kind, what)
  local data, kind, code = c:recv(5000)
  if data == nil then
    error((what or "recv") .. ": " .. tostring(kind) .. " " .. tostring(code), 2)
  end
  if data ~= want then
    error((what or "recv") .. ": expected " .. show(want) .. ", got " .. show(data), 2)
  end
  if want_kind then eq(kind, want_kind, (what or "recv") .. " kind") end
end

-- Nothing (more) arrives on c within ms.
local function expect_none(c, ms, what)
  local data, err = c:recv(ms or 300)
  if data ~= nil then error((what or "quiet") .. ": got " .. show(data), 2) end
  eq(err, "timeout", what or "quiet")
end

-- A command whose answer is "ok" (kind: how the command goes out).
local function cmd(c, text, kind)
  assert(c:send(text, kind))
  expect(c, "ok", "text", show(text))
end

-- The next |n| messages of c, sorted (a publish that reaches its own
-- sender and the "ok" after it travel different ways).
local function take(c, n)
  local got = {}
  for i = 1, n do
    local data, err = c:recv(5000)
    if data == nil then error("message " .. i .. " of " .. n .. ": " .. tostring(err), 2) end
    got[i] = data
  end
  table.sort(got)
  return table.concat(got, "|")
end

-- The server's id of client connection c.
local function id_of(c)
  assert(c:send("whoami"))
  local data, err = c:recv(5000)
  local id = data and tonumber(data)
  if not id then error("whoami: " .. tostring(data or err), 2) end
  return id
end

local function close_all(list)
  for _, c in ipairs(list) do c:close() end
  for _, c in ipairs(list) do
    local data, err = c:recv(5000)
    while data ~= nil do data, err = c:recv(5000) end
    eq(err, "closed", "close")
  end
end

-- Waits until the server's I/O threads count |subs| memberships (their
-- sum of loop_subscriptions) and |topics| topics (the sum of loop_topics:
-- a topic with members on both I/O threads counts twice; nil: any); both
-- are counted on the I/O threads, after the posted change.
local function wait_counts(subs, topics, what)
  local st
  local deadline = now() + 5000
  repeat
    srv:poll(0)
    websock.poll(0)
    st = assert(srv:stats())
    local s, t = 0, 0
    for i = 1, #st.loop_subscriptions do
      s = s + st.loop_subscriptions[i]
      t = t + st.loop_topics[i]
    end
    if s == subs and (topics == nil or t == topics) then return end
    os.execute("sleep 0.02")
  until now() > deadline
  local s, t = 0, 0
  for i = 1, #st.loop_subscriptions do
    s = s + st.loop_subscriptions[i]
    t = t + st.loop_topics[i]
  end
  error((what or "counts") .. ": expected " .. subs .. " subscriptions / " ..
        tostring(topics) .. " topics, got " .. s .. " / " .. t, 2)
end

-- A test, then the close of whatever clients it left open.
local function ttest(name, fn)
  test(name, fn)
  local left = {}
  for _, c in ipairs(live) do
    if c.state ~= "closed" then left[#left + 1] = c end
  end
  live = {}
  if #left > 0 then pcall(close_all, left) end
end

------------------------------------------------------------ tests
ttest("subscribe, publish to the other members (except the sender conn)", function()
  local a, b, c = open(), open(), open()
  cmd(a, "sub news"); cmd(b, "sub news")
  cmd(a, "pub news\nhello members")
  expect(b, "hello members", "text", "b")
  expect_none(a, 200, "the sender (except = conn)")
  expect_none(c, 50, "a non-member")
  -- except as an id
  cmd(b, "pubid news\nfrom b")
  expect(a, "from b", "text", "a")
  expect_none(b, 200, "the sender (except = id)")
  -- no except: the sender gets its own publish too
  assert(a:send("puball news\nto everyone"))
  eq(take(a, 2), "ok|to everyone", "a")
  expect(b, "to everyone", "text", "b")
  expect_none(c, 50, "a non-member")
  close_all{ a, b, c }
end)

ttest("binary publish and kinds", function()
  local a, b = open(), open()
  cmd(a, "sub bin"); cmd(b, "sub bin")
  cmd(a, "pub bin\n\0\1\255\0end", "binary")
  expect(b, "\0\1\255\0end", "binary", "binary publish")
  cmd(a, "pub bin\n", "text")
  expect(b, "", "text", "empty text publish")
  close_all{ a, b }
end)

ttest("unsubscribe: no more publishes; twice and unknown are no-ops", function()
  local a, b = open(), open()
  cmd(a, "sub t1"); cmd(b, "sub t1"); cmd(b, "sub t1") -- twice: one membership
  cmd(a, "pub t1\none")
  expect(b, "one", "text", "before unsubscribe")
  expect_none(b, 200, "subscribed twice, one copy")
  cmd(b, "unsub t1")
  cmd(b, "unsub t1")            -- not a member any more: a no-op
  cmd(b, "unsub never-joined")  -- never was
  cmd(a, "pub t1\ntwo")
  expect_none(b, 300, "after unsubscribe")
  cmd(b, "sub t1")
  cmd(a, "pub t1\nthree")
  expect(b, "three", "text", "subscribed again")
  close_all{ a, b }
end)

ttest("subscribe from the OPEN handler", function()
  local a = open("topic=lobby")
  local b = open()
  cmd(b, "pub lobby\nwelcome")
  expect(a, "welcome", "text", "member from OPEN")
  close_all{ a, b }
end)

ttest("srv:subscribe / srv:unsubscribe / srv:publish by id, outside handlers", function()
  local a, b = open(), open()
  local ids = { id_of(a), id_of(b) }
  for _, id in ipairs(ids) do assert(srv:subscribe(id, "by-id")) end
  assert(srv:publish("by-id", "from main"))
  expect(a, "from main", "text", "a"); expect(b, "from main", "text", "b")
  assert(srv:publish("by-id", "skip one", "text", ids[1]))
  assert(srv:publish("by-id", "skip conn", "text", srv:connection(ids[2])))
  -- each gets exactly the one that did not skip it
  local got = take(a, 1) .. "," .. take(b, 1)
  assert(got == "skip one,skip conn" or got == "skip conn,skip one", got)
  expect_none(a, 150); expect_none(b, 50)
  assert(srv:unsubscribe(ids[1], "by-id"))
  assert(srv:unsubscribe(ids[2], "by-id"))
  assert(srv:publish("by-id", "nobody"))   -- a topic without members: no error
  expect_none(a, 200); expect_none(b, 50)
  close_all{ a, b }
end)

ttest("binary topic names: NUL bytes, every byte value, 255 bytes", function()
  local a, b = open(), open()
  local t1, t2 = "a\0b", "a\0c"
  cmd(a, "sub " .. t1, "binary")
  cmd(b, "sub " .. t2, "binary")
  cmd(b, "pub " .. t1 .. "\nto a\0b", "binary")
  expect(a, "to a\0b", "binary", "topic a\\0b")
  expect_none(b, 200, "a\\0c is another topic")
  -- "a" (the part before the NUL) is yet another topic
  cmd(b, "pub a\nplain a", "text")
  expect_none(a, 200, "'a' is not 'a\\0b'")
  -- no case folding
  cmd(a, "sub Case"); cmd(b, "pub case\nlower")
  expect_none(a, 200, "case matters")
  -- a name of every byte value but "\n" (the protocol's separator), and
  -- 255 bytes exactly, through srv:subscribe by id
  local chars = {}
  for i = 0, 255 do if i ~= 10 then chars[#chars + 1] = string.char(i) end end
  local all = table.concat(chars)
  local long = ("\0x"):rep(127) .. "\0"
  eq(#long, 255, "long name")
  cmd(a, "sub " .. all:sub(1, 200), "binary")
  cmd(a, "sub " .. long, "binary")
  cmd(b, "pub " .. all:sub(1, 200) .. "\nall bytes", "binary")
  expect(a, "all bytes", "binary", "every byte value")
  cmd(b, "pub " .. long .. "\n255", "binary")
  expect(a, "255", "binary", "255 bytes")
  close_all{ a, b }
end)

ttest("a connection's topics are dropped when it closes", function()
  wait_counts(0, 0, "nothing left from earlier tests")
  local a, b = open(), open()
  cmd(a, "sub gone-1"); cmd(a, "sub gone-2"); cmd(a, "sub shared")
  cmd(b, "sub shared")
  wait_counts(4, nil, "after subscribing")
  local a_id = id_of(a)
  close_all{ a }
  wait_counts(1, nil, "after a closed")
  local deadline = now() + 5000
  while not conns_closed[a_id] and now() < deadline do srv:poll(10) end
  assert(conns_closed[a_id], "the server saw a's CLOSE")
  local last = a_id
  local ok, err, code = srv:subscribe(last, "gone-1")
  eq(ok, nil); eq(code, ERR.NO_SUCH_CLIENT, "subscribe of an ended id: " .. tostring(err))
  ok, err, code = srv:unsubscribe(last, "gone-1")
  eq(ok, nil); eq(code, ERR.NO_SUCH_CLIENT, "unsubscribe of an ended id")
  -- b is still a member of shared, alone
  assert(srv:publish("gone-1", "nobody"))
  assert(srv:publish("shared", "still here"))
  expect(b, "still here", "text", "b")
  close_all{ b }
  wait_counts(0, 0, "all closed")
end)

ttest("200 subscribers get one publish each", function()
  local list = {}
  for i = 1, 200 do
    list[i] = connect("topic=crowd")
  end
  for i, c in ipairs(list) do
    local ok, why = c:wait_open(10000)
    if not ok then error("connect " .. i .. ": " .. tostring(why)) end
  end
  wait_counts(200, nil, "200 members")
  local pub = open()
  cmd(pub, "pub crowd\nto the crowd")
  for i, c in ipairs(list) do expect(c, "to the crowd", "text", "subscriber " .. i) end
  -- exactly one each
  cmd(pub, "puball crowd\nsecond")
  for i, c in ipairs(list) do expect(c, "second", "text", "subscriber " .. i .. " (2)") end
  for i = 1, 200, 20 do expect_none(list[i], 20, "subscriber " .. i .. ": one copy") end
  list[#list + 1] = pub
  close_all(list)
  wait_counts(0, 0, "the crowd left")
end)

ttest("one connection in 100 topics", function()
  local a, b = open(), open()
  for i = 1, 100 do cmd(a, "sub room-" .. i) end
  wait_counts(100, 100, "100 memberships")
  for i = 1, 100 do assert(b:send("pub room-" .. i .. "\nmsg " .. i)) end
  for i = 1, 100 do expect(b, "ok", "text", "pub " .. i) end
  local seen = {}
  for _ = 1, 100 do
    local data = assert(a:recv(5000))
    local n = tonumber(data:match("^msg (%d+)$"))
    assert(n and not seen[n], "unexpected " .. show(data))
    seen[n] = true
  end
  expect_none(a, 200, "one per topic")
  for i = 2, 100, 2 do cmd(a, "unsub room-" .. i) end
  wait_counts(50, 50, "50 left")
  for i = 1, 100 do cmd(b, "pub room-" .. i .. "\nagain " .. i) end
  for i = 1, 100, 2 do expect(a, "again " .. i, "text", "odd room " .. i) end
  expect_none(a, 200, "even rooms left")
  close_all{ a, b }
  wait_counts(0, 0, "dropped with the connection")
end)

ttest("errors: empty, 256 bytes, unknown id, bad kind, bad UTF-8, wrong types", function()
  local a = open()
  -- through the handlers: nil, err, code
  assert(a:send("sub "))
  expect(a, "err:invalid argument:" .. ERR.INVALID, "text", "empty topic")
  assert(a:send("sub " .. ("x"):rep(256)))
  expect(a, "err:invalid argument:" .. ERR.INVALID, "text", "256 bytes")
  assert(a:send("unsub "))
  expect(a, "err:invalid argument:" .. ERR.INVALID, "text", "unsubscribe empty")
  assert(a:send("pub \nx"))
  expect(a, "err:invalid argument:" .. ERR.INVALID, "text", "publish empty")
  assert(a:send("pub " .. ("x"):rep(256) .. "\nx"))
  expect(a, "err:invalid argument:" .. ERR.INVALID, "text", "publish 256 bytes")
  assert(a:send("pub t\n\255\254", "binary"))
  expect(a, "ok", "text", "binary publish of any bytes")

  cmd(a, "sub " .. ("x"):rep(255))
  -- direct calls
  local function fails(want, ok, err, code)
    eq(ok, nil, "result")
    eq(code, want, "code (" .. tostring(err) .. ")")
    eq(err, websock.strerror(want), "message")
  end
  fails(ERR.NO_SUCH_CLIENT, srv:subscribe(987654321, "t"))
  fails(ERR.NO_SUCH_CLIENT, srv:unsubscribe(987654321, "t"))
  fails(ERR.INVALID, srv:subscribe(987654321, ""))
  fails(ERR.INVALID, srv:publish("", "x"))
  fails(ERR.INVALID, srv:publish(("y"):rep(256), "x"))
  fails(ERR.BAD_UTF8, srv:publish("t", "\255", "text"))
  assert(srv:publish("t", "\255", "binary"))
  assert(srv:publish(("y"):rep(255), "x"))
  assert(srv:publish("t", "x", nil, 987654321)) -- an unknown except id skips nobody
  assert(srv:publish(42, "a number is its string"))
  -- misuse raises
  eq(pcall(srv.publish, srv, nil, "x"), false, "nil topic")
  eq(pcall(srv.publish, srv, {}, "x"), false, "table topic")
  eq(pcall(srv.subscribe, srv, 1, true), false, "boolean topic")
  eq(pcall(srv.publish, srv, "t", "x", "utf8"), false, "bad kind")
  eq(pcall(srv.publish, srv, "t", "x", "text", "id"), false, "bad except")
  eq(pcall(srv.subscribe, srv, -1, "t"), false, "negative id")
  eq(pcall(srv.subscribe, srv, 1.5, "t"), false, "fractional id")
  local conn = assert(srv:connection(id_of(a)))
  eq(pcall(conn.subscribe, conn, {}), false, "conn:subscribe({})")
  assert(conn:subscribe("via conn")); assert(conn:unsubscribe("via conn"))
  close_all{ a }
end)

ttest("a stopped server: publish is nil, err, ERR.STATE", function()
  local s2 = assert(websock.server{ host = "127.0.0.1", port = 0 })
  local ok, err, code = s2:publish("t", "x")       -- never started
  eq(ok, nil); eq(code, ERR.STATE, "before start: " .. tostring(err))
  assert(s2:start())
  assert(s2:publish("t", "x"))
  assert(s2:shutdown())
  ok, err, code = s2:publish("t", "x")
  eq(ok, nil); eq(code, ERR.STATE, "after shutdown: " .. tostring(err))
  s2:free()
end)

assert(srv:shutdown())
srv:free()
websock.client_shutdown()
os.exit(T.failures == 0 and 0 or 1)
