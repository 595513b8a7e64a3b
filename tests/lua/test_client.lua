-- Client mode of the facade (websock.connect, srv:connect), run by both
-- lua5.4 and luajit (see run.sh), over real sockets:
--   1. against our own server in this Lua process (the facade's server);
--   2. against servers in another process: client_peer.py (Debian's
--      python3-websockets, a plain HTTP server, a port that never
--      answers) and, when built, BUILD_DIR/examples/echo_server;
--   3. connects that fail, with their reasons, and the option checks.
-- Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local python = os.getenv("LWS2_PYTHON") or "/usr/bin/python3"
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local test, eq = T.test, T.eq
local now = websock.core.now_ms

local function assert_open(c, what)
  local ok, why, code = c:wait_open(5000)
  if not ok then
    error((what or "connect") .. ": " .. tostring(why) .. " " .. tostring(code), 2)
  end
end

-- recv that must give a message
local function expect(c, want, want_kind, what)
  local data, kind, code, reason = c:recv(5000)
  if data == nil then
    error((what or "recv") .. ": " .. tostring(kind) .. " " .. tostring(code) .. " " ..
          tostring(reason), 2)
  end
  if data ~= want then
    error((what or "recv") .. ": expected " .. (#want > 80 and (#want .. " bytes") or want) ..
          ", got " .. (#data > 80 and (#data .. " bytes") or data), 2)
  end
  if want_kind then eq(kind, want_kind, (what or "recv") .. " kind") end
end

-- recv that must see the close
local function expect_close(c, want_code, want_reason)
  local data, err, code, reason = c:recv(5000)
  eq(data, nil, "recv after close (data)")
  eq(err, "closed", "recv after close")
  eq(code, want_code, "close code")
  if want_reason then eq(reason, want_reason, "close reason") end
end

-- A fate that must be a failure naming its stage.
local function expect_failure(c, pattern, ms)
  local ok, why, code = c:wait_open(ms or 5000)
  eq(ok, nil, "wait_open")
  assert(type(why) == "string" and why:find(pattern), "reason: " .. tostring(why) ..
         " (expected " .. pattern .. ")")
  eq(code, 1006, "code")
  eq(c.state, "closed", "state")
  local data, err, code2, reason = c:recv(100)
  eq(data, nil); eq(err, "closed"); eq(code2, 1006); eq(reason, why)
  return why
end

-- Dispatches the events of every server of this test for up to ms:
-- websock.connect()'s own, and the in-process server when it runs.
local pumped = {}
local function pump(ms)
  for _, s in ipairs(pumped) do s:poll(0) end
  websock.poll(ms)
end

local BIG = {}
for i = 1, 1024 do BIG[i] = string.char(i % 256):rep(1024) end
BIG = table.concat(BIG) -- 1 MiB, every byte value
assert(#BIG == 1048576)

-- The mixed-text checks of the echo peers.
local function echo_checks(url, name)
  test(name .. ": text and binary echo", function()
    local c = assert(websock.connect(url))
    assert_open(c)
    assert(c:send("héllo"))
    expect(c, "héllo", "text")
    assert(c:send("\0\1\255\0end", "binary"))
    expect(c, "\0\1\255\0end", "binary")
    assert(c:send_binary(""))
    expect(c, "", "binary")
    c:close()
    expect_close(c, 1000)
  end)
  test(name .. ": a 1 MiB message", function()
    local c = assert(websock.connect(url, { max_message = 2 * 1048576 }))
    assert(c:send(BIG, "binary"))
    expect(c, BIG, "binary", "1 MiB")
    c:close()
  end)
  test(name .. ": our close with code and reason", function()
    local c = assert(websock.connect(url))
    assert_open(c)
    assert(c:close(4003, "client says bye"))
    expect_close(c, 4003, "client says bye")
    local ok, err = c:send("late")
    eq(ok, nil, "send after close"); eq(type(err), "string")
  end)
end

-- 100 connections at once: every message sent before its OPEN (queued in
-- Lua), all replies taken with recv(); then the same with handlers.
local function concurrent(url, name)
  test(name .. ": 100 concurrent connections", function()
    local conns = {}
    for i = 1, 100 do
      conns[i] = assert(websock.connect(url))
      assert(conns[i]:send("n" .. i))
    end
    local ids = {}
    for i, c in ipairs(conns) do
      assert(not ids[c.id], "ids unique"); ids[c.id] = true
      expect(c, "n" .. i, "text", "conn " .. i)
    end
    for _, c in ipairs(conns) do c:close() end
    for _, c in ipairs(conns) do expect_close(c, 1000) end
  end)
  test(name .. ": 100 concurrent connections with handlers", function()
    local opened, got, closed = 0, 0, 0
    local opts = {
      on_open = function(c) opened = opened + 1; c:send("hi " .. c.id) end,
      on_message = function(c, data, kind)
        eq(data, "hi " .. c.id); eq(kind, "text")
        got = got + 1
        c:close(1000, "done")
      end,
      on_close = function(c, code) if code == 1000 then closed = closed + 1 end end,
    }
    for _ = 1, 100 do assert(websock.connect(url, opts)) end
    local deadline = now() + 10000
    while closed < 100 and now() < deadline do pump(10) end
    eq(opened, 100, "opened"); eq(got, 100, "replies"); eq(closed, 100, "closed")
  end)
end

------------------------------------------------------------ option checks
test("connect: bad URLs give nil, err at once", function()
  for _, url in ipairs({ "http://example.com/", "ws://", "ws://host:99999/", "nonsense" }) do
    local c, err, code = websock.connect(url)
    eq(c, nil, url)
    assert(type(err) == "string" and err ~= "", url)
    eq(code, websock.ERR.INVALID, url .. " code")
  end
  local c, err = websock.connect("http://example.com/")
  assert(err:find("ws://"), err)
  eq(pcall(websock.connect, 42), false, "url must be a string")
end)

test("connect: option checks", function()
  local url = "ws://127.0.0.1:1/"
  local cases = {
    { { nope = 1 }, "unknown connect option 'nope'" },
    { { subprotocols = { "a b" } }, "not a subprotocol name" },
    { { headers = { Host = "x" } }, "refused" },
    { { headers = { ["X-Bad"] = "a\r\nb" } }, "refused" },
    { { timeout = 0 }, "option timeout" },
    { { timeout = 1.5 }, "option timeout" },
    { { tls_verify = "no" }, "option tls_verify" },
    { { deflate = 1 }, "option deflate" },
    { { max_message = -1 }, "option max_message" },
    { { on_message = "x" }, "option on_message must be a function" },
  }
  for _, case in ipairs(cases) do
    local c, err = websock.connect(url, case[1])
    eq(c, nil, case[2])
    assert(tostring(err):find(case[2], 1, true), tostring(err) .. " vs " .. case[2])
  end
  local srv = assert(websock.server{})
  local c, err, code = srv:connect(url)
  eq(c, nil); eq(err, "the server is not running"); eq(code, websock.ERR.STATE)
  srv:free()
end)

test("client_server: client-only, shared, port 0", function()
  local cs = assert(websock.client_server())
  eq(cs, websock.client_server(), "shared")
  eq(cs.port, 0, "no listening port")
  local again, err = websock.client_server{ io_threads = 2 }
  eq(again, nil); assert(err:find("exists"), err)
  local s, e = websock.server{ client_only = true, port = 8080 }
  eq(s, nil); assert(e:find("client_only"), e)
end)

------------------------------------------------------------ failures
test("failure: connection refused names the address", function()
  local c = assert(websock.connect("ws://127.0.0.1:1/"))
  eq(c.state, "connecting")
  local why = expect_failure(c, "^connect: ")
  assert(why:find("127.0.0.1", 1, true) and why:find("refused"), why)
  eq(c.opened, false)
end)

test("failure: unresolvable host", function()
  local c = assert(websock.connect("ws://nonexistent.invalid/"))
  local why = expect_failure(c, "^resolve: ", 15000)
  assert(why:find("nonexistent.invalid", 1, true), why)
end)

test("failure: on_close gets the reason without on_open", function()
  local opened, code, reason = false, nil, nil
  assert(websock.connect("ws://127.0.0.1:1/", {
    on_open = function() opened = true end,
    on_close = function(_, c, r) code, reason = c, r end,
  }))
  local deadline = now() + 5000
  while not code and now() < deadline do websock.poll(20) end
  eq(opened, false, "opened"); eq(code, 1006, "code")
  assert(tostring(reason):find("^connect: "), reason)
end)

test("a send and a close before OPEN wait for it", function()
  local c = assert(websock.connect("ws://127.0.0.1:1/"))
  eq(c:send("queued"), true)
  eq(c:close(4000, "x"), true)
  expect_failure(c, "^connect: ")
end)

------------------------------------------------------------ our own server
local srv = assert(websock.server{
  port = 0, subprotocols = { "chat.v2", "chat.v1" }, max_message_size = 4 * 1048576,
  handshake = function(req)
    if req.path == "/private" and req.headers.authorization ~= "Bearer s3cret" then
      return 401, "no\n"
    end
    return true
  end,
})
local server_closes = {}
srv:on("open", function(conn)
  if conn.path == "/proto" then conn:send(conn.subprotocol or "none") end
  if conn.path == "/headers" or conn.path == "/private" then
    conn:send("auth=" .. tostring(conn.headers.authorization) .. ";x-trace=" ..
              tostring(conn.headers["x-trace"]))
  end
end)
srv:on("message", function(conn, data, kind)
  if conn.path == "/quiet" then return end
  if data == "close-me" then return conn:close(4002, "server says bye") end
  conn:send(data, kind)
end)
srv:on("close", function(conn, code, reason) server_closes[conn.id] = { code, reason } end)
assert(srv:start())
pumped[1] = srv
local base = "ws://127.0.0.1:" .. srv.port

echo_checks(base .. "/echo", "own server")

test("own server: the server closes with code and reason", function()
  local c = assert(websock.connect(base .. "/echo"))
  assert(c:send("close-me"))
  expect_close(c, 4002, "server says bye")
  eq(c.close_code, 4002); eq(c.close_reason, "server says bye"); eq(c.closed, true)
end)

test("own server: our close reaches the server's close handler", function()
  local c = assert(websock.connect(base .. "/byclose"))
  assert_open(c)
  local sid
  local deadline = now() + 2000
  while not sid and now() < deadline do
    for id, conn in pairs(srv._conns) do if conn.path == "/byclose" then sid = id end end
    pump(10)
  end
  assert(sid, "the server's OPEN")
  c:close(4005, "see you")
  expect_close(c, 4005, "see you")
  deadline = now() + 2000
  while not server_closes[sid] and now() < deadline do srv:poll(20) end
  assert(server_closes[sid], "server saw no close")
  eq(server_closes[sid][1], 4005); eq(server_closes[sid][2], "see you")
end)

test("own server: subprotocol negotiation", function()
  local c = assert(websock.connect(base .. "/proto", { subprotocols = { "chat.v1", "chat.v2" } }))
  assert_open(c)
  eq(c.subprotocol, "chat.v2", "our server's preference")
  expect(c, "chat.v2")
  c:close()
  c = assert(websock.connect(base .. "/proto", { subprotocols = "chat.v1" }))
  expect(c, "chat.v1"); eq(c.subprotocol, "chat.v1"); c:close()
  c = assert(websock.connect(base .. "/proto", { subprotocols = { "other" } }))
  expect(c, "none"); eq(c.subprotocol, nil); c:close()
end)

test("own server: headers reach the handshake handler", function()
  local c = assert(websock.connect(base .. "/private", {
    headers = { Authorization = "Bearer s3cret", { "X-Trace", "abc 123" } },
  }))
  expect(c, "auth=Bearer s3cret;x-trace=abc 123")
  eq(c.path, "/private")
  c:close()
end)

test("own server: a refused handshake names the status", function()
  local c = assert(websock.connect(base .. "/private", { headers = { Authorization = "Bearer no" } }))
  expect_failure(c, "^handshake: HTTP 401")
end)

test("own server: recv() times out", function()
  local c = assert(websock.connect(base .. "/quiet"))
  assert_open(c)
  local t0 = now()
  local data, err = c:recv(300)
  local took = now() - t0
  eq(data, nil); eq(err, "timeout")
  assert(took >= 290 and took < 1500, "took " .. took .. " ms")
  t0 = now()
  data, err = c:recv(0)
  eq(err, "timeout"); assert(now() - t0 < 200)
  c:close()
  expect_close(c, 1000)
end)

concurrent(base .. "/echo", "own server")

test("srv:connect: a server dials out with its own handlers", function()
  local got = {}
  local b = assert(websock.server{ port = 0 })
  b:on("open", function(conn) if conn.outgoing then conn:send("from b") end end)
  b:on("message", function(conn, data) got[#got + 1] = { conn.outgoing, data } end)
  assert(b:start())
  local c = assert(b:connect(base .. "/echo"))
  eq(c.server, b)
  local deadline = now() + 5000
  while #got == 0 and now() < deadline do b:poll(10); pump(0) end
  eq(#got, 1, "b's message handler")
  eq(got[1][1], true); eq(got[1][2], "from b")
  eq(b:connection(c.id), c, "known by id")
  local data, err = c:recv(10)
  eq(data, nil); assert(err:find("message handler"), err)
  c:close()
  b:shutdown(); b:free()
end)

test("srv:connect: recv() inside a handler of its own server refuses to wait", function()
  local e = assert(websock.server{})
  assert(e:start())
  local inner
  assert(e:connect(base .. "/echo", {
    on_open = function(conn) inner = { conn:recv(1000) } end,
  }))
  local deadline = now() + 5000
  while not inner and now() < deadline do e:poll(10); pump(0) end
  assert(inner, "no open")
  eq(inner[1], nil)
  assert(tostring(inner[2]):find("cannot wait inside a handler", 1, true), inner[2])
  e:shutdown(); e:free()
end)

test("own server: max_message closes a larger message with 1009", function()
  local c = assert(websock.connect(base .. "/echo", { max_message = 1000 }))
  assert(c:send(("x"):rep(999)))
  expect(c, ("x"):rep(999))
  assert(c:send(("y"):rep(1001)))
  local data, err, code = c:recv(5000)
  eq(data, nil); eq(err, "closed"); eq(code, 1009)
end)

srv:shutdown()
srv:free()
pumped[1] = nil

-- deflate = true is offered, agreed (conn.extensions says so on both
-- ends), and the echo holds.
test("own server: deflate = true is agreed and echoes", function()
  local d = assert(websock.server{ port = 0, deflate = true })
  local server_ext
  d:on("open", function(conn) server_ext = conn.extensions end)
  d:on("message", function(conn, data, kind) conn:send(data, kind) end)
  assert(d:start())
  pumped[2] = d
  local c = assert(websock.connect("ws://127.0.0.1:" .. d.port .. "/", { deflate = true }))
  assert(c:wait_open(5000))
  assert(c.extensions and c.extensions:find("^permessage%-deflate"), tostring(c.extensions))
  local text = ("compress me "):rep(100)
  assert(c:send(text))
  expect(c, text, "text")
  assert(server_ext and server_ext:find("^permessage%-deflate"), tostring(server_ext))
  c:close()
  expect_close(c, 1000)
  pumped[2] = nil
  d:shutdown(); d:free()
end)

------------------------------------------------------------ wss://
local certs = os.tmpname()
os.remove(certs)
local function sh(cmd) local ok = os.execute(cmd); return ok == true or ok == 0 end
local have_tls = sh("command -v openssl >/dev/null 2>&1") and sh(([[
set -e; mkdir -p %s; cd %s
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key; key server.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=lws2 client test CA" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl req -new -key server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 2 -extfile san.ext 2>/dev/null
]]):format(certs, certs))
if have_tls then
  local tsrv = assert(websock.server{ port = 0, tls_cert = certs .. "/server.pem",
                                      tls_key = certs .. "/server.key" })
  tsrv:on("message", function(conn, data, kind) conn:send(data, kind) end)
  assert(tsrv:start())
  pumped[2] = tsrv
  local turl = "wss://127.0.0.1:" .. tsrv.port .. "/"
  test("wss: trusted with tls_ca", function()
    local c = assert(websock.connect(turl, { tls_ca = certs .. "/ca.pem" }))
    assert(c:send("secret"))
    expect(c, "secret", "text")
    assert(c:send(BIG, "binary"))
    expect(c, BIG, "binary", "1 MiB over TLS")
    c:close()
    expect_close(c, 1000)
  end)
  test("wss: the system's CAs refuse a private CA", function()
    expect_failure(assert(websock.connect(turl)), "^tls: ")
  end)
  test("wss: a host name the certificate does not name", function()
    -- localhost reaches the server too; the certificate names 127.0.0.1 only
    local c = assert(websock.connect("wss://localhost:" .. tsrv.port .. "/",
                                     { tls_ca = certs .. "/ca.pem" }))
    local why = expect_failure(c, "^tls: ")
    print("  (" .. why .. ")")
  end)
  test("wss: tls_verify = false accepts any certificate", function()
    local c = assert(websock.connect(turl, { tls_verify = false }))
    assert(c:send("anyway"))
    expect(c, "anyway")
    c:close()
  end)
  test("wss: a CA file that does not exist", function()
    local c, err = websock.connect(turl, { tls_ca = certs .. "/nope.pem" })
    eq(c, nil)
    assert(type(err) == "string" and err ~= "", tostring(err))
  end)
  pumped[2] = nil
  tsrv:shutdown(); tsrv:free()
  sh("rm -rf " .. certs)
else
  T.report("[" .. T.VM .. "] wss checks: openssl missing or failed", false, "skipped")
end

------------------------------------------------------------ another process
local peer = io.popen(python .. " " .. here .. "/client_peer.py")
local line = peer:read("*l") or ""
local wsport, httpport, silentport = line:match("^PORTS (%d+) (%d+) (%d+)")
test("client_peer.py started", function() assert(wsport, "got " .. line) end)
if wsport then
  local pbase = "ws://127.0.0.1:" .. wsport
  echo_checks(pbase .. "/echo", "python")

  test("python: the server closes with code and reason", function()
    local c = assert(websock.connect(pbase .. "/close"))
    assert(c:send("please"))
    expect_close(c, 4001, "bye from python")
  end)

  test("python: subprotocol negotiation", function()
    local c = assert(websock.connect(pbase .. "/proto", { subprotocols = { "chat.v1" } }))
    expect(c, "chat.v1"); eq(c.subprotocol, "chat.v1"); c:close()
    c = assert(websock.connect(pbase .. "/proto", { subprotocols = { "x1", "x2" } }))
    expect(c, "none"); eq(c.subprotocol, nil); c:close()
  end)

  test("python: headers reach the server", function()
    local c = assert(websock.connect(pbase .. "/headers?q=1", {
      headers = { Authorization = "Bearer t0ken", Cookie = "a=1" },
      subprotocols = { "chat.v2" },
    }))
    local data = assert(c:recv(5000))
    assert(data:find("\nauthorization: Bearer t0ken", 1, true) or
           data:find("^authorization: Bearer t0ken"), data)
    assert(data:find("cookie: a=1", 1, true), data)
    assert(data:find("host: 127.0.0.1:" .. wsport, 1, true), data)
    assert(data:find("sec-websocket-protocol: chat.v2", 1, true), data)
    eq(c.path, "/headers"); eq(c.query, "q=1")
    c:close()
  end)

  test("python: the default max_message is 1 MiB (the server's max_message_size)", function()
    local c = assert(websock.connect(pbase .. "/echo"))
    assert(c:send(BIG, "binary"))
    expect(c, BIG, "binary", "exactly 1 MiB")
    assert(c:send(BIG .. "!", "binary"))
    local data, err, code, reason = c:recv(5000)
    eq(data, nil); eq(err, "closed"); eq(code, 1009)
    eq(reason, "message too big (limit 1048576 bytes)")
  end)

  -- offered only: the negotiation is not asserted, the echo must hold
  test("python: deflate = true echoes text and binary, small and 1 MiB", function()
    local c = assert(websock.connect(pbase .. "/echo", { deflate = true, max_message = 2 * 1048576 }))
    for _, msg in ipairs({ "x", ("compressible "):rep(500), ("z"):rep(1048576) }) do
      assert(c:send(msg))
      expect(c, msg, "text")
    end
    for _, msg in ipairs({ "\0", ("\1\2\3"):rep(1000), BIG }) do
      assert(c:send(msg, "binary"))
      expect(c, msg, "binary")
    end
    c:close()
    expect_close(c, 1000)
  end)

  test("python: HTTP 404 names the status", function()
    expect_failure(assert(websock.connect(pbase .. "/404")), "^handshake: HTTP 404 Not Found")
  end)

  test("python: a plain HTTP 200 server", function()
    expect_failure(assert(websock.connect("ws://127.0.0.1:" .. httpport .. "/")),
                   "^handshake: HTTP 200")
  end)

  test("python: no 101 within the timeout", function()
    local t0 = now()
    local c = assert(websock.connect("ws://127.0.0.1:" .. silentport .. "/", { timeout = 400 }))
    expect_failure(c, "^timeout: ")
    local took = now() - t0
    assert(took >= 350 and took < 3000, "took " .. took .. " ms")
  end)

  test("python: recv() times out", function()
    local c = assert(websock.connect(pbase .. "/echo"))
    local data, err = c:recv(200)
    eq(data, nil); eq(err, "timeout")
    eq(c.state, "open")
    c:close()
  end)

  concurrent(pbase .. "/echo", "python")

  test("python: client_shutdown() closes the open connections (1001)", function()
    local code
    local c = assert(websock.connect(pbase .. "/echo", {
      on_close = function(_, cc) code = cc end,
    }))
    assert_open(c)
    local old = websock.client_server()
    eq(websock.client_shutdown(), true)
    eq(code, 1001, "on_close code")
    eq(c.state, "closed")
    local cs = assert(websock.client_server())
    assert(cs ~= old, "a new client server")
    local d = assert(websock.connect(pbase .. "/echo"))
    assert(d:send("after"))
    expect(d, "after")
    d:close()
  end)

  local q = websock.connect(pbase .. "/quit")
  if q then q:wait_open(2000) end
end
peer:close()

local build = os.getenv("LWS2_BUILD_DIR")
local echo_bin = build and build .. "/examples/echo_server"
local f = echo_bin and io.open(echo_bin)
if f then
  f:close()
  -- a free port: ask a throwaway server
  local tmp = assert(websock.server{ port = 0 })
  assert(tmp:start())
  local port = tmp.port
  tmp:shutdown(); tmp:free()
  local pid = io.popen(echo_bin .. " --port " .. port .. " --max-message 4194304 " ..
                       ">/dev/null 2>&1 & echo $!"):read("*l")
  local url = "ws://127.0.0.1:" .. port .. "/"
  local c
  for _ = 1, 100 do
    c = websock.connect(url)
    if c and c:wait_open(2000) then c:close() break end
    os.execute("sleep 0.05")
  end
  echo_checks(url, "echo_server")
  concurrent(url, "echo_server")
  os.execute("kill " .. pid)
else
  print("  (no " .. tostring(echo_bin) .. ": the C echo_server checks are skipped)")
end

os.exit(T.failures == 0 and 0 or 1)
