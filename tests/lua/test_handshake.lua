-- The handshake, keepalive and mTLS in the Lua facade, run by both lua5.4
-- and luajit (see run.sh), over real sockets with hs_client.py (python3
-- websockets and raw sockets):
--   A: a handshake handler (token in Authorization -> accept, else 401
--      with a body and WWW-Authenticate; 302 with Location; an error ->
--      500), origins with websock.NO_ORIGIN, subprotocols chat.v2, chat.v1;
--   B: origins and subprotocols decided in C, without a handler;
--   K: keepalive (ping_interval 300 ms, ping_timeout 600 ms): a raw peer
--      that never answers the ping is closed with 1011;
--   T, O: TLS with client certificates, required and optional (when the
--      openssl command is there to make the certificates).
-- Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local python = os.getenv("LWS2_PYTHON") or "/usr/bin/python3"
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local VM, report, test, eq = T.VM, T.report, T.test, T.eq

local function sh(cmd)
  local a, _, c = os.execute(cmd)
  return a == true or a == 0 or c == 0
end

------------------------------------------------------------ option checks
test("handshake options are checked", function()
  local cases = {
    { { origins = "https://a.example" }, "option origins must be a list" },
    { { origins = {} }, "option origins is empty: every upgrade would get 403" },
    { { origins = { 42 } }, "option origins: 42 is not a string" },
    { { subprotocols = 7 }, "option subprotocols must be a list" },
    { { subprotocols = { "" } }, "option subprotocols:  is not a subprotocol name" },
    { { handshake = "yes" }, "option handshake must be a function(req)" },
    { { tls_verify_client = "maybe" }, 'option tls_verify_client must be "required", ' ..
                                       '"optional" or "none", got maybe' },
    { { tls_ca = "ca.pem" }, 'option tls_verify_client = "required" needs tls_ca ' ..
                             '(the CA file of the client certificates) and tls_cert/tls_key' },
    { { ping_timeout = -1 }, "option ping_timeout: invalid argument" },
    { { ping_timeout = "soon" }, "option ping_timeout must be a number" },
  }
  for _, c in ipairs(cases) do
    local s, e = websock.server(c[1])
    eq(s, nil, c[2])
    assert(e:sub(1, #c[2]) == c[2], ("expected %q, got %q"):format(c[2], e))
  end
  for _, ok in ipairs({ { ping_interval = 0, ping_timeout = 0 },
                        { ping_interval = false, ping_timeout = false },
                        { origins = { websock.NO_ORIGIN } },
                        { subprotocols = "chat.v1" },
                        { tls_verify_client = "none" } }) do
    local s, e = websock.server(ok)
    assert(s, e); s:free()
  end
  eq(tostring(websock.NO_ORIGIN), "websock.NO_ORIGIN")
end)

------------------------------------------------------------ certificates
local certs = os.tmpname()
os.remove(certs)
local have_tls = sh("command -v openssl >/dev/null 2>&1") and sh(([[
set -e; mkdir -p %s; cd %s
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key; key server.key; key alice.key; key mallory.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=lws2 test CA" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl req -new -key server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 2 -extfile san.ext 2>/dev/null
openssl req -new -key alice.key -out alice.csr -subj "/O=Example/CN=alice" 2>/dev/null
openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out alice.pem -days 2 2>/dev/null
openssl req -x509 -new -key mallory.key -out mallory.pem -days 2 -subj "/CN=mallory" 2>/dev/null
]]):format(certs, certs))

------------------------------------------------------------ the servers
local logs = {}
local function log(msg) logs[#logs + 1] = msg end
local seen = {}      -- requests the handler of A saw, by their X-Test header
local stopped = false

local A = assert(websock.server{
  host = "127.0.0.1", port = 0, log = log,
  origins = { "https://good.example", websock.NO_ORIGIN },
  subprotocols = { "chat.v2", "chat.v1" },
  http_routes = { ["/health"] = "ok" },
  handshake = function(req)
    local tag = req.headers["X-Test"]
    if tag then seen[tag] = req end
    if req.path == "/redirect" then
      return 302, "", { Location = "https://elsewhere.example/chat" }
    elseif req.path == "/boom" then
      error("boom in the handshake")
    elseif req.path == "/badheader" then
      return true, nil, { ["X-Bad"] = "a\r\nInjected: yes" }
    elseif req.path == "/forbidden" then
      return false
    elseif req.path == "/teapot" then
      return 418, "short and stout", { { "Content-Type", "text/x-tea" }, { "X-Pot", "1" },
                                       { "X-Pot", "2" } }
    end
    if req.headers.authorization ~= "Bearer good-token" then
      return 401, "missing or bad token", { ["WWW-Authenticate"] = 'Bearer realm="chat"' }
    end
    if req.query == "proto=v1" then req.subprotocol = "chat.v1" end
    if req.query == "proto=bogus" then req.subprotocol = "chat.v9" end
    return true, nil, { ["Set-Cookie"] = { "sid=42", "theme=dark" } }
  end,
})
A:on("message", function(conn, data)
  if data == "stop" then
    stopped = true
  elseif data == "info" then
    conn:send(("subprotocol=%s;x-test=%s;path=%s;origin=%s;req=%s"):format(
      tostring(conn.subprotocol), tostring(conn.headers and conn.headers["x-test"]),
      tostring(conn.request and conn.request.path), tostring(conn.origin),
      tostring(conn.request ~= nil)))
  else
    conn:send(data)
  end
end)

local B = assert(websock.server{
  host = "127.0.0.1", port = 0, log = log,
  origins = { "https://good.example" },
  subprotocols = { "chat.v2", "chat.v1" },
})
B:on("message", function(conn, data)
  if data == "info" then
    conn:send(("subprotocol=%s;req=%s"):format(tostring(conn.subprotocol),
                                               tostring(conn.request ~= nil)))
  else
    conn:send(data)
  end
end)

local K_closes = {}
local K = assert(websock.server{ host = "127.0.0.1", port = 0, log = log,
                                 ping_interval = 300, ping_timeout = 600 })
K:on("message", function(conn, data) conn:send(data) end)
K:on("close", function(conn, code, reason) K_closes[#K_closes + 1] = code .. " " .. reason end)

local servers = { A, B, K }
local tls_ports = "- -"
local function tls_server(mode)
  local s = assert(websock.server{
    host = "127.0.0.1", port = 0, log = log,
    tls_cert = certs .. "/server.pem", tls_key = certs .. "/server.key",
    tls_ca = certs .. "/ca.pem", tls_verify_client = mode,
    handshake = function(req)
      return true, nil, { ["X-Peer"] = req.tls_peer or "none" }
    end,
  })
  s:on("message", function(conn, data)
    conn:send("peer=" .. tostring(conn.tls_peer))
  end)
  servers[#servers + 1] = s
  return s
end
local TR, TO
if have_tls then
  TR, TO = tls_server("required"), tls_server("optional")
end

for _, s in ipairs(servers) do assert(s:start()) end
if have_tls then tls_ports = TR.port .. " " .. TO.port end

local out = os.tmpname()
os.execute(("%s %s/hs_client.py %d %d %d %s %s > %s 2>&1 &"):format(
  python, here, A.port, B.port, K.port, tls_ports, have_tls and certs or "-", out))

local deadline = os.time() + 90
while not stopped and os.time() <= deadline do
  for _, s in ipairs(servers) do assert(s:poll(5)) end
end

-- the client's last line
T.client_results(out, "handshake client finished", 200)

test("the handler's req: path, query, headers without case, origin, remote", function()
  local req = assert(seen["fields"], "no request with X-Test: fields")
  eq(req.method, "GET"); eq(req.path, "/chat"); eq(req.query, "room=1&x=%20y")
  eq(req.headers["x-test"], "fields"); eq(req.headers["X-TEST"], "fields")
  eq(req.headers.Authorization, "Bearer good-token")
  eq(req.headers["x-twice"], "one, two", "a header sent twice")
  eq(req.origin, "https://good.example")
  assert(req.remote_address:find("^127%.0%.0%.1:%d+$"), req.remote_address)
  eq(req.tls_peer, nil); eq(req.sni, nil)
  eq(table.concat(req.subprotocols, ","), "chat.v1,chat.v2", "offered, in the client's order")
  eq(req.subprotocol, "chat.v2", "our choice")
  eq(req.server, A)
  local names = {}
  for _, hv in ipairs(req.header_list) do names[#names + 1] = hv[1] end
  assert(table.concat(names, ","):find("X-Twice,X-Twice", 1, true), table.concat(names, ","))
end)

test("Origin refused in C: the handler never saw a foreign Origin", function()
  eq(seen["foreign"], nil, "request with a foreign Origin reached the handler")
  assert(seen["no-origin"], "the request without Origin reached the handler")
end)

test("handler errors and refused answers are logged, the client gets 500", function()
  local all = table.concat(logs, "\n")
  assert(all:find("error in 'handshake' handler: ", 1, true) and
         all:find("boom in the handshake", 1, true), all)
  assert(all:find("'handshake' handler: header X-Bad: invalid argument", 1, true), all)
  assert(all:find("'handshake' handler: accept with subprotocol chat.v9: invalid argument " ..
                  "(offered: chat.v1)", 1, true), all)
end)

test("keepalive: the silent raw peer was closed with 1011", function()
  local found = false
  for _, c in ipairs(K_closes) do
    if c:match("^1011 ") then found = true end
  end
  assert(found, table.concat(K_closes, " | "))
end)

test("the accepted requests were handed to their connections", function()
  local n = 0
  for _ in pairs(A._accepted.now) do n = n + 1 end
  for _ in pairs(A._accepted.old) do n = n + 1 end
  eq(n, 0, "requests kept after OPEN")
  eq(websock.core.handshake_pending(A._h), 0, "upgrades left unanswered")
end)

for _, s in ipairs(servers) do assert(s:shutdown()); s:free() end
if have_tls then sh("rm -rf " .. certs) end
report("[" .. VM .. "] mTLS certificates made with openssl", have_tls,
       "openssl failed or missing: TLS checks skipped")

os.exit(T.failures == 0 and 0 or 1)
