--- libwebsock2: a multi-threaded WebSocket server for Lua 5.4, LuaJIT and
-- OpenResty.
--
-- The C core (libwebsock2_core, SWIG) runs the network on its own threads
-- and queues events; this pure-Lua facade takes them with poll() and calls
-- your handlers on the calling Lua thread. C never calls Lua, so handlers
-- are ordinary Lua functions: they may yield (the coroutine that called
-- srv:poll()/srv:run() is the one that yields; pcall is yieldable in Lua
-- 5.2+ and LuaJIT), e.g. OpenResty cosocket calls or ngx.sleep inside a
-- handler run from an ngx.timer.
--
--   local websock = require("libwebsock2")
--   local srv = assert(websock.server{ host = "127.0.0.1", port = 0 })
--   srv:on("message", function(conn, data, kind) conn:send(data, kind) end)
--   assert(srv:start()); print(srv.port)
--   srv:run()
--
-- Client mode: websock.connect(url, opts) (on a shared client-only
-- server) and srv:connect(url, opts) return a connection at once; its
-- OPEN, messages and CLOSE (for a connect that failed: 1006 and a reason
-- naming the stage) come through poll() like any event, and conn:recv()
-- / conn:wait_open() drive the poll loop themselves (ngx.sleep inside
-- OpenResty).
--
-- Errors: functions return a true value on success, or nil, a message
-- (websock_strerror's text, e.g. "no such client") and the numeric code
-- (compare with websock.ERR.*). Misuse (a wrong argument type) raises a
-- Lua error, as the standard library does.
--
-- The C module is SWIG's wrapping of the public headers (see websock.i):
-- core.server_send is websock_server_send, core.ERR_INVALID is
-- WEBSOCK_ERR_INVALID, core.stats is struct websock_stats. Error names,
-- event types, opcodes and stats fields are read from it here, never
-- copied.
local pcall, type, tostring, tonumber, pairs, ipairs, select, setmetatable,
      error, rawget = pcall, type, tostring, tonumber, pairs, ipairs, select,
      setmetatable, error, rawget
local io_stderr = io.stderr

-- The C module is built once per Lua ABI (lua/5.4/ for Lua 5.4, lua/5.1/
-- for LuaJIT and OpenResty). Loaded into the other interpreter it fails
-- with the linker's "undefined symbol: lua_rotate"; the module's file
-- says what it was built for ("libwebsock2_core Lua ABI: 504;"), so the
-- error can name the mismatch.
local VM_ABI, VM_NAME
do
  local major, minor = _VERSION:match("(%d+)%.(%d+)")
  VM_ABI = tonumber(major) * 100 + tonumber(minor)
  local jit = rawget(_G, "jit")
  VM_NAME = jit and jit.version and (jit.version .. " (the Lua 5.1 ABI)") or _VERSION
end

local function abi_name(abi)
  if abi == 501 then return "the Lua 5.1 ABI (LuaJIT, OpenResty, Lua 5.1)" end
  return ("Lua %d.%d"):format(math.floor(abi / 100), abi % 100)
end

local function abi_mismatch(path, abi)
  return ("libwebsock2: %s was built for %s, but this is %s: put the module " ..
          "built for this interpreter (lua/%d.%d/libwebsock2_core.so of the build " ..
          "tree, or lib/lua/%d.%d/ of an install) first on package.cpath")
         :format(path, abi_name(abi), VM_NAME, math.floor(VM_ABI / 100), VM_ABI % 100,
                 math.floor(VM_ABI / 100), VM_ABI % 100)
end

local function load_core()
  local ok, mod = pcall(require, "libwebsock2_core")
  if ok then
    local abi = type(mod) == "table" and mod.lua_abi and mod.lua_abi()
    if abi and abi ~= VM_ABI then
      error(abi_mismatch(package.searchpath and
                         package.searchpath("libwebsock2_core", package.cpath) or
                         "libwebsock2_core", abi), 0)
    end
    return mod
  end
  local path = package.searchpath and package.searchpath("libwebsock2_core", package.cpath)
  local f = path and io.open(path, "rb")
  if f then
    local bytes = f:read("*a")
    f:close()
    local abi = tonumber(bytes:match("libwebsock2_core Lua ABI: (%d+);"))
    if abi and abi ~= VM_ABI then error(abi_mismatch(path, abi), 0) end
  end
  error(mod, 0)
end
local core = load_core()

local c_poll, c_send, c_send_tag, c_broadcast, c_close, c_strerror, c_get_tag =
  core.server_poll, core.server_send, core.server_send_tag,
  core.server_broadcast, core.server_close, core.strerror, core.server_get_tag

local M = {
  -- the version of the C library (project() in CMakeLists.txt)
  _VERSION = core.version(),
  core = core,
}

-- The constants of a prefix: { SUFFIX = value } for every core.PREFIX_SUFFIX.
local function constants(prefix)
  local t = {}
  for name, value in pairs(core) do
    local suffix = type(name) == "string" and name:match("^" .. prefix .. "_(.+)$")
    if suffix and type(value) == "number" then t[suffix] = value end
  end
  return t
end

--- Error codes (the third value after nil, err), every WEBSOCK_ERR_* of
-- error.h: websock.ERR.NO_SUCH_CLIENT, websock.ERR.TAG_TAKEN, ...
M.ERR = constants("ERR")

-- Event type -> handler name ("open", "message", ...), opcode -> message
-- kind ("text", "binary") and back.
local EVENT_NAMES, KINDS, OPCODES = {}, {}, {}
for name, value in pairs(constants("EVENT")) do EVENT_NAMES[value] = name:lower() end
for name, value in pairs(constants("OP")) do
  KINDS[value] = name:lower()
  OPCODES[name:lower()] = value
end
local OP_TEXT = core.OP_TEXT
-- set_tag's "held here, being claimed in Redis" (error.h's WEBSOCK_PENDING)
local PENDING = core.PENDING

local function opcode_of(kind, level)
  if kind == nil then return OP_TEXT end
  local op = OPCODES[kind]
  if not op then
    error("kind must be \"text\" or \"binary\", got " .. tostring(kind),
          (level or 2) + 1)
  end
  return op
end

local function fail(rc)
  return nil, c_strerror(rc), rc
end

--- The version of the loaded C library ("0.1.0").
function M.version() return core.version() end

--- The message for a WEBSOCK_ERR_* code.
function M.strerror(rc) return c_strerror(rc) end

--- Catch SIGINT and SIGTERM (plain Lua programs only, never inside nginx):
-- srv:run() then stops the server and returns when one arrives (checked at
-- least every `interval` ms, default 100). Returns true or nil, err.
function M.catch_signals()
  local rc = core.catch_signals()
  if rc ~= 0 then return fail(rc) end
  M._signals = true
  return true
end

--- The number of the last caught signal (nil when none), and clears it.
function M.take_signal()
  local s = core.take_signal()
  if s ~= 0 then return s end
  return nil
end

--- The sentinel for `origins`: allows a request without an Origin header
-- (what non-browser clients send), e.g.
-- origins = { "https://example.com", websock.NO_ORIGIN }.
M.NO_ORIGIN = setmetatable({}, { __tostring = function() return "websock.NO_ORIGIN" end })

------------------------------------------------------------------------------
-- Connections: a small object per open connection, handed to handlers.
--   conn.id, conn.tag, conn.path, conn.query, conn.remote_address,
--   conn.subprotocol, conn.server, conn.closed; with a handshake handler
--   also conn.request (the handler's req), conn.headers, conn.origin,
--   conn.tls_peer
------------------------------------------------------------------------------
local Conn = {}
Conn.__index = Conn

-- The request a handshake handler accepted under ticket |t| (the OPEN
-- event's user_data), taken out of the server's table.
local function accepted_request(srv, t)
  if not t then return nil end
  local acc = srv._accepted
  local req = acc.now[t] or acc.old[t]
  acc.now[t], acc.old[t] = nil, nil
  return req
end

-- A connection from its first event record (OPEN gives path, query, ...).
-- Its tag is the record's, then whatever set_tag() gives it: the tag
-- snapshots of later records never overwrite it.
local function new_conn(srv, ev)
  local req = accepted_request(srv, ev.user_data)
  return setmetatable({
    id = ev.id, tag = ev.tag, path = ev.path, query = ev.query,
    remote_address = ev.remote_addr, subprotocol = ev.subprotocol,
    extensions = ev.extensions,
    server = srv, request = req, headers = req and req.headers,
    origin = req and req.origin, tls_peer = req and req.tls_peer,
  }, Conn)
end

function Conn:send(data, kind) return self.server:send(self.id, data, kind) end
function Conn:send_text(data) return self.server:send(self.id, data, "text") end
function Conn:send_binary(data) return self.server:send(self.id, data, "binary") end
function Conn:ping(data) return self.server:ping(self.id, data) end
function Conn:close(code, reason) return self.server:close(self.id, code, reason) end
--- Topics: joins / leaves |topic| (a string of 1..255 bytes, any bytes).
-- true, or nil, err, code (see Server:subscribe).
function Conn:subscribe(topic) return self.server:subscribe(self.id, topic) end
function Conn:unsubscribe(topic) return self.server:unsubscribe(self.id, topic) end

--- Gives the connection a unique tag (nil removes it).
-- Returns true (settled), true, "pending" (a cluster node: the tag is
-- held here at once, Redis' answer comes as a "tag" event; a refusal gives
-- the connection its tag of before back), or nil, "tag taken by another
-- connection" / "no such client" / ..., code.
function Conn:set_tag(tag)
  if tag ~= nil and type(tag) ~= "string" then tag = tostring(tag) end
  local ok, err, rc = self.server:set_tag(self.id, tag)
  if ok then self.tag = tag end
  return ok, err, rc
end

function Conn:__tostring()
  return "websock connection #" .. tostring(self.id) ..
         (self.tag and (" (" .. self.tag .. ")") or "")
end

M.Connection = Conn

------------------------------------------------------------------------------
-- Server
------------------------------------------------------------------------------
local Server = {}
Server.__index = Server
M.Server = Server
-- Every server of this Lua state (weak): a client's recv() in plain Lua
-- polls the others too while it waits.
local LIVE = setmetatable({}, { __mode = "k" })

local NUMERIC_OPTIONS = {
  io_threads = true, agents = true, max_message_size = true,
  max_frame_size = true, max_handshake_size = true, handshake_timeout = true,
  max_outbound = true, idle_timeout = true, ping_interval = true,
  ping_timeout = true, close_timeout = true, max_connections = true,
  fragment_size = true, control_events = true, agent_budget = true,
}
-- Keepalive as in the websockets library: a ping after 20 s of silence,
-- and close 1011 when nothing answers it within 20 s more (0 or false
-- turns either off).
local DEFAULTS = { ping_interval = 20000, ping_timeout = 20000 }
local FACADE_OPTIONS = {
  host = true, port = true, ws_paths = true, http_routes = true,
  tls_cert = true, tls_key = true, tls_ca = true, tls_verify_client = true,
  spread = true, reuse_port = true, log = true, max_batch = true,
  handlers = true, origins = true, subprotocols = true, handshake = true,
  handshake_spawn = true, deflate = true, client_only = true,
  cluster = true, node = true, cluster_prefix = true, cluster_ttl = true,
}
-- tls_verify_client: enum websock_tls_verify.
local TLS_VERIFY = {
  none = core.TLS_VERIFY_NONE,
  optional = core.TLS_VERIFY_OPTIONAL,
  required = core.TLS_VERIFY_REQUIRED,
}
-- The spread option: how accepted connections are spread over the I/O
-- threads (a connection stays on its thread for life).
local SPREADS = {
  least_connections = core.SPREAD_LEAST_CONNECTIONS, -- fewest open; ties in turn
  round_robin = core.SPREAD_ROUND_ROBIN,             -- each thread in turn
}
local EVENTS = {}
for _, name in pairs(EVENT_NAMES) do EVENTS[name] = true end

-- The deflate option: permessage-deflate (RFC 7692) with the memory model
-- of enum websock_deflate_mode and the ranges of websock_config_set_deflate
-- (config.h). Every field is optional.
local DEFLATE_MODES = {
  shared = core.DEFLATE_SHARED,       -- one compressor per I/O thread, no context kept
  dedicated = core.DEFLATE_DEDICATED, -- one per connection, context kept
}
local DEFLATE_FIELDS = {
  -- name, lowest, highest, default passed to the core, the range as told
  { "window_bits", 9, 15, 0, "9..15 (default 15)" },
  { "mem_level", 1, 9, 0, "1..9 (default 8)" },
  { "level", -1, 9, 1, "-1..9 (default 1)" },
  { "threshold", 0, 2 ^ 53, 64, "of bytes >= 0 (default 64)" },
}
local DEFLATE_KEYS = { mode = true }
for _, f in ipairs(DEFLATE_FIELDS) do DEFLATE_KEYS[f[1]] = true end

-- A value as an error message shows it: strings quoted.
local function shown(x)
  if type(x) == "string" then return ("%q"):format(x) end
  return tostring(x)
end

local function is_whole(x, lo, hi)
  return type(x) == "number" and x == x and x >= lo and x <= hi and math.floor(x) == x
end

-- Checks the deflate option and sets it on cfg: true (shared mode with the
-- defaults), false/nil (off, the default) or a table { mode = "shared" |
-- "dedicated", window_bits = 9..15, mem_level = 1..9, level = -1..9,
-- threshold = bytes }. Returns true, or nil and a message naming the
-- field and its range.
local function configure_deflate(cfg, v)
  if v == nil or v == false then return true end
  if v == true then v = {} end
  if type(v) ~= "table" then
    return nil, "option deflate must be true, false or a table { mode = \"shared\" | " ..
                "\"dedicated\", window_bits =, mem_level =, level =, threshold = }, got " ..
                shown(v)
  end
  for k in pairs(v) do
    if not DEFLATE_KEYS[k] then
      return nil, "option deflate: unknown field '" .. tostring(k) ..
                  "' (mode, window_bits, mem_level, level, threshold)"
    end
  end
  local mode = v.mode == nil and "shared" or v.mode
  local m = DEFLATE_MODES[mode]
  if not m then
    return nil, "option deflate.mode must be \"shared\" or \"dedicated\", got " ..
                shown(mode)
  end
  local args = {}
  for i, f in ipairs(DEFLATE_FIELDS) do
    local name, lo, hi, default, range = f[1], f[2], f[3], f[4], f[5]
    local x = v[name]
    if x == nil then
      x = default
    elseif not is_whole(x, lo, hi) then
      return nil, ("option deflate.%s must be a whole number %s, got %s")
                  :format(name, range, shown(x))
    end
    args[i] = x
  end
  local rc = core.config_set_deflate(cfg, m, args[1], args[2], args[3], args[4])
  if rc ~= 0 then return nil, "option deflate: " .. c_strerror(rc) end
  return true
end

local function default_log(msg)
  io_stderr:write("libwebsock2: ", msg, "\n")
  io_stderr:flush()
end

local function configure(h, opts)
  local cfg = core.config_of(h)
  for k, v in pairs(DEFAULTS) do
    if opts[k] == nil then
      local rc = core.set_option(h, k, v)
      if rc ~= 0 then return nil, "option " .. k .. ": " .. c_strerror(rc) end
    end
  end
  for k, v in pairs(opts) do
    if NUMERIC_OPTIONS[k] then
      if type(v) == "boolean" then v = v and 1 or 0 end
      if type(v) ~= "number" then
        return nil, "option " .. k .. " must be a number"
      end
      local rc = core.set_option(h, k, v)
      if rc ~= 0 then return nil, "option " .. k .. ": " .. c_strerror(rc) end
    elseif not FACADE_OPTIONS[k] then
      return nil, "unknown option '" .. tostring(k) .. "'"
    end
  end
  if opts.host ~= nil or opts.port ~= nil then
    local port = opts.port or 0
    if type(port) ~= "number" then return nil, "option port must be a number" end
    local rc = core.config_set_listen(cfg, opts.host or "127.0.0.1", port)
    if rc ~= 0 then return nil, "option host/port: " .. c_strerror(rc) end
  end
  if opts.client_only ~= nil then
    if type(opts.client_only) ~= "boolean" then
      return nil, "option client_only must be true or false, got " .. shown(opts.client_only)
    end
    if opts.client_only and (opts.host ~= nil or opts.port ~= nil) then
      return nil, "option client_only: a pure client listens nowhere (no host or port)"
    end
    local rc = core.config_set_client_only(cfg, opts.client_only and 1 or 0)
    if rc ~= 0 then return nil, "option client_only: " .. c_strerror(rc) end
  end
  if opts.cluster ~= nil or opts.node ~= nil then
    -- A node of the cluster of every server on that Redis (README: the
    -- cluster): publish, broadcast, sends by id and tags reach every node.
    -- node omitted or 0: the server draws a free number from Redis at
    -- start (which then fails with ERR.CLUSTER when Redis does not answer).
    if opts.cluster == nil then
      return nil, "option node needs option cluster (a redis:// URL)"
    end
    if type(opts.cluster) ~= "string" then
      return nil, "option cluster must be a redis:// URL, got " .. shown(opts.cluster)
    end
    local node = opts.node
    if node == nil then node = 0 end
    if not is_whole(node, 0, 1023) then
      return nil, "option node must be a whole number 1..1023, or 0 (or omitted) to " ..
                  "draw a free one from Redis at start, got " .. shown(opts.node)
    end
    local rc = core.config_set_cluster(cfg, opts.cluster, node)
    if rc ~= 0 then
      return nil, "option cluster/node: " .. c_strerror(rc) ..
                  " (redis://[:password@]host[:port], node 1..1023 or 0)", rc
    end
  end
  if opts.cluster_ttl ~= nil then
    if opts.cluster == nil then
      return nil, "option cluster_ttl needs option cluster (a redis:// URL)"
    end
    if not is_whole(opts.cluster_ttl, 100, 600000) then
      return nil, "option cluster_ttl must be a whole number of ms 100..600000, got " ..
                  shown(opts.cluster_ttl)
    end
    local rc = core.config_set_cluster_ttl(cfg, opts.cluster_ttl)
    if rc ~= 0 then return nil, "option cluster_ttl: " .. c_strerror(rc), rc end
  end
  if opts.cluster_prefix ~= nil then
    local rc = core.config_set_cluster_prefix(cfg, tostring(opts.cluster_prefix))
    if rc ~= 0 then return nil, "option cluster_prefix: " .. c_strerror(rc), rc end
  end
  do
    local ok, err = configure_deflate(cfg, opts.deflate)
    if not ok then return nil, err end
  end
  if opts.spread ~= nil then
    local policy = SPREADS[opts.spread]
    if not policy then
      return nil, "option spread must be \"least_connections\" or " ..
                  "\"round_robin\", got " .. tostring(opts.spread)
    end
    local rc = core.set_option(h, "spread", policy)
    if rc ~= 0 then return nil, "option spread: " .. c_strerror(rc) end
  end
  if opts.reuse_port ~= nil then
    local v = opts.reuse_port
    if type(v) ~= "boolean" then
      return nil, "option reuse_port must be true or false, got " .. tostring(v)
    end
    local rc = core.config_set_reuse_port(cfg, v and 1 or 0)
    if rc ~= 0 then return nil, "option reuse_port: " .. c_strerror(rc) end
  end
  if opts.tls_cert ~= nil or opts.tls_key ~= nil then
    if type(opts.tls_cert) ~= "string" or type(opts.tls_key) ~= "string" then
      return nil, "options tls_cert and tls_key must both be file names"
    end
    local rc = core.config_set_tls(cfg, opts.tls_cert, opts.tls_key)
    if rc ~= 0 then return nil, "option tls_cert/tls_key: " .. c_strerror(rc) end
  end
  if opts.tls_ca ~= nil or opts.tls_verify_client ~= nil then
    local ca, how = opts.tls_ca, opts.tls_verify_client
    if how == nil then how = "required" end
    local mode = TLS_VERIFY[how]
    if not mode then
      return nil, "option tls_verify_client must be \"required\", \"optional\" " ..
                  "or \"none\", got " .. tostring(how)
    end
    if ca ~= nil and type(ca) ~= "string" then
      return nil, "option tls_ca must be a file name"
    end
    if mode ~= TLS_VERIFY.none and (ca == nil or opts.tls_cert == nil) then
      return nil, "option tls_verify_client = \"" .. how .. "\" needs tls_ca " ..
                  "(the CA file of the client certificates) and tls_cert/tls_key"
    end
    local rc = core.config_set_tls_verify_client(cfg, ca, mode)
    if rc ~= 0 then return nil, "option tls_ca/tls_verify_client: " .. c_strerror(rc) end
  end
  local origins = opts.origins
  if origins ~= nil then
    if type(origins) ~= "table" then
      return nil, "option origins must be a list of Origin values (websock.NO_ORIGIN " ..
                  "for a request without one)"
    end
    local rc = 0
    for _, o in ipairs(origins) do
      if o == M.NO_ORIGIN then
        rc = core.add_origin(h, nil)
      elseif type(o) == "string" then
        rc = core.add_origin(h, o)
      else
        return nil, "option origins: " .. tostring(o) .. " is not a string " ..
                    "(websock.NO_ORIGIN allows a request without Origin)"
      end
      if rc ~= 0 then return nil, "option origins: " .. c_strerror(rc) end
    end
    if #origins == 0 then
      return nil, "option origins is empty: every upgrade would get 403"
    end
  end
  local protos = opts.subprotocols
  if type(protos) == "string" then protos = { protos } end
  if protos ~= nil then
    if type(protos) ~= "table" then return nil, "option subprotocols must be a list" end
    for _, p in ipairs(protos) do
      if type(p) ~= "string" or p == "" then
        return nil, "option subprotocols: " .. tostring(p) .. " is not a subprotocol name"
      end
      local rc = core.add_subprotocol(h, p)
      if rc ~= 0 then return nil, "option subprotocols: " .. c_strerror(rc) end
    end
  end
  if opts.handshake ~= nil then
    if type(opts.handshake) ~= "function" then
      return nil, "option handshake must be a function(req)"
    end
    local rc = core.set_handshake_handler(h, 1)
    if rc ~= 0 then return nil, "option handshake: " .. c_strerror(rc) end
  end
  if opts.handshake_spawn ~= nil and type(opts.handshake_spawn) ~= "function" then
    return nil, "option handshake_spawn must be a function(fn)"
  end
  local paths = opts.ws_paths
  if type(paths) == "string" then paths = { paths } end
  if paths ~= nil then
    if type(paths) ~= "table" then return nil, "option ws_paths must be a list" end
    for _, p in ipairs(paths) do
      local rc = core.config_add_ws_path(cfg, tostring(p))
      if rc ~= 0 then return nil, "ws_paths " .. tostring(p) .. ": " .. c_strerror(rc) end
    end
  end
  local routes = opts.http_routes
  if routes ~= nil then
    if type(routes) ~= "table" then return nil, "option http_routes must be a table" end
    for path, r in pairs(routes) do
      local body, ctype
      if type(r) == "table" then
        body, ctype = r.body or r[1], r.content_type or r[2]
      else
        body = r
      end
      if type(body) ~= "string" then
        return nil, "http_routes " .. tostring(path) .. ": body must be a string"
      end
      if ctype == nil then
        ctype = body:match("^%s*<") and "text/html; charset=utf-8"
                or "text/plain; charset=utf-8"
      end
      local rc = core.config_add_http_route(cfg, tostring(path), ctype, body)
      if rc ~= 0 then return nil, "http_routes " .. tostring(path) .. ": " .. c_strerror(rc) end
    end
  end
  return true
end

--- Creates a server (no thread starts, no socket opens until start()).
-- opts: host ("127.0.0.1"), port (0 = any free port), io_threads, agents,
--   spread (how accepted connections are spread over the io_threads:
--   "least_connections", the default, to the thread with the fewest open
--   connections, ties in turn; "round_robin", each thread in turn),
--   reuse_port (true: every I/O thread listens on its own SO_REUSEPORT
--   socket and keeps what it accepted, spread does not apply; several
--   servers, e.g. one per OpenResty worker, may then share one port),
--   agent_budget (events of one connection an agent runs in a row before
--   the other ready connections get their turn, 1..65536, default 32;
--   agents only: this queued-mode server has none, so it is only checked),
--   max_message_size, max_frame_size, max_handshake_size,
--   handshake_timeout, max_outbound, idle_timeout, close_timeout,
--   max_connections, fragment_size (times in ms, sizes in bytes),
--   ping_interval (ms of silence before a keepalive ping, default 20000),
--   ping_timeout (ms more without any answer before close 1011 "keepalive
--   ping timeout", default 20000; 0 or false turns either off),
--   tls_cert + tls_key (PEM files: serve wss:// and https), tls_ca (PEM
--   CA file the client certificates must chain to) + tls_verify_client
--   ("required", the default with tls_ca; "optional": a client without a
--   certificate is let in; "none"), control_events (deliver ping/pong),
--   ws_paths (list of allowed WebSocket paths; default all), origins (list
--   of allowed Origin values, websock.NO_ORIGIN for a request without one;
--   others get 403, with the websockets library's body), subprotocols (ours in order of
--   preference: the first the client offered is chosen), handshake
--   (function(req) deciding each upgrade: return true to accept, or an
--   HTTP status, a body and a table of headers; see answer() below),
--   handshake_spawn (function(fn) that runs fn apart and returns true, e.g.
--   function(fn) return ngx.timer.at(0, fn) end in OpenResty; default:
--   the handler runs inside poll()), http_routes
--   ({ ["/"] = "<html>..." } or { ["/x"] = { body = ..., content_type = ...
--   } }), deflate (permessage-deflate, RFC 7692: true offers it to the
--   clients that ask, shared mode with the defaults; or a table { mode =
--   "shared" (one compressor per I/O thread, no context kept between
--   messages: no compressor memory per connection) | "dedicated" (one per
--   connection, keeping context: better ratios, ~268 KiB per connection
--   at 15/8), window_bits = 9..15 (default 15), mem_level = 1..9 (default
--   8), level = -1..9 (zlib's; default 1), threshold = bytes (shorter
--   messages go out uncompressed; default 64) }; default off),
--   handlers ({ message = fn, ... }), log (function(msg) for handler
--   errors; default stderr), max_batch (most events one poll() dispatches;
--   default 10000), cluster ("redis://[:password@]host[:port][/db]": a
--   node of the cluster of every server on that Redis), node (1..1023,
--   unique in the cluster; 0 or omitted: a free number drawn from Redis at
--   start, srv.node then tells it), cluster_prefix (Redis channel prefix,
--   1..64 bytes, default "websock"), cluster_ttl (ms a node stays alive in
--   Redis without a beat, 100..600000, default 9000: a killed node's tags
--   are free within ttl + ttl/10).
-- Returns the server, or nil, err.
function M.server(opts)
  opts = opts or {}
  if type(opts) ~= "table" then return nil, "options must be a table" end
  local h = core.new()
  if not h then return nil, "out of memory" end
  local ok, err = configure(h, opts)
  if not ok then core.free(h); return nil, err end
  local rc = core.create(h)
  if rc == core.ERR_TLS then
    local why = core.tls_last_error()
    core.free(h)
    return nil, c_strerror(rc) .. ": " .. tostring(why), rc
  end
  if rc ~= 0 then core.free(h); return fail(rc) end
  local self = setmetatable({
    _h = h,                  -- the lws2_server handle: owns the C server
    _s = core.server_of(h),  -- the websock_server (nil once freed)
    _handlers = {},
    _conns = {},
    _dialing = {},           -- outgoing connections before their OPEN, by id
    _state = "new",          -- new | running | stopping | stopped | freed
    _polling = false,
    _log = opts.log or default_log,
    _max_batch = opts.max_batch or 10000,
    _handshake = opts.handshake, -- function(req), or nil
    _spawn = opts.handshake_spawn, -- function(fn) running fn apart, or nil
    -- requests accepted by the handshake handler, by ticket, until their
    -- OPEN event: two generations, the older dropped after a minute (a
    -- client that left after the 101 never opens)
    _accepted = { now = {}, old = {}, since = core.now_ms() },
    _timers = {},            -- srv:every / srv:after, in no order
    _close_timeout = opts.close_timeout or 5000,
    port = nil,
  }, Server)
  if opts.handlers then
    for ev, fn in pairs(opts.handlers) do self:on(ev, fn) end
  end
  LIVE[self] = true
  return self
end

--- Sets the handler for an event (nil removes it); returns the server.
--   open(conn)  message(conn, data, kind)  close(conn, code, reason)
--   ping(conn, data)  pong(conn, data)  drain(conn)
--   tag(conn, tag, err, code)  (a cluster node: the outcome of a set_tag
--     that returned true, "pending"; err nil when the connection holds tag
--     cluster-wide, else "tag taken by another connection" (code
--     ERR.TAG_TAKEN: another node won) or the Redis link's error
--     (ERR.CLUSTER): the tag is then no longer the connection's, which
--     has its tag of before the set_tag again (conn.tag shows it, or nil
--     when it had none). Also comes with an error, unasked, when a tag is
--     lost to another node after a Redis restart.)
function Server:on(event, fn)
  if not EVENTS[event] then error("unknown event '" .. tostring(event) .. "'", 2) end
  if fn ~= nil and type(fn) ~= "function" then
    error("handler must be a function", 2)
  end
  self._handlers[event] = fn
  return self
end

--- Binds, listens and starts the threads. Sets srv.port (and srv.node on
-- a cluster node: its number, drawn from Redis for node 0). true, or nil,
-- err, code, errno: when it cannot listen, err names the address and the
-- reason as the C API does ("cannot listen on 127.0.0.1:8080: address
-- already in use", code websock.ERR.ADDRESS, errno 98 = EADDRINUSE; a
-- host that does not resolve gives errno 0).
function Server:start()
  if self._state ~= "new" then return nil, c_strerror(core.ERR_STATE) end
  local rc = core.server_start(self._s)
  if rc ~= 0 then
    local why, errno = core.server_last_error(self._s)
    if why and why ~= "" then return nil, why, rc, errno end
    return fail(rc)
  end
  self._state = "running"
  self.port = core.server_port(self._s)
  -- the node number of a cluster node: the one given, or the one drawn
  local node = core.server_cluster_node and core.server_cluster_node(self._s)
  self.node = node and node > 0 and node or nil
  return true
end

--- Stops taking new connections while the open ones go on
-- (websock_server_stop_accepting): the I/O threads close their listening
-- sockets within a moment (with reuse_port the other servers on the port
-- take every new connection; without, connects are refused) and an
-- upgrade that still arrives on a connection accepted before gets 503.
-- For a graceful hand-over, e.g. an nginx worker leaving on reload.
-- Idempotent. true or nil, err, code.
function Server:stop_accepting()
  if self._state ~= "running" then return nil, c_strerror(core.ERR_STATE) end
  local rc = core.stop_accepting(self._h)
  if rc ~= 0 then return fail(rc) end
  return true
end

-- A sleep that lets nginx run meanwhile, where the phase allows it.
local YIELDING_PHASES = { timer = true, content = true, access = true,
                          rewrite = true, ssl_cert = true, ssl_session_fetch = true }
local function nginx_sleep()
  local ngx = rawget(_G, "ngx")
  if ngx and ngx.sleep and ngx.get_phase and YIELDING_PHASES[ngx.get_phase()] then
    return ngx.sleep
  end
end

--- A graceful end in two steps: stop_accepting(), then keep dispatching
-- events (handlers and timers run) until every connection has closed or
-- timeout_ms passed; then stop() (the rest get 1001) and join(). Inside
-- OpenResty (a timer, or a request handler) it waits with ngx.sleep, so
-- the worker goes on serving meanwhile; elsewhere it blocks in poll().
-- Returns true and the number of connections still open at the deadline
-- (closed with 1001), or nil, err.
function Server:drain_and_stop(timeout_ms)
  if self._polling then
    error("drain_and_stop() from a handler: call it from a timer " ..
          "(srv:after(0, fn)) or outside poll()", 2)
  end
  if self._state == "new" then return self:shutdown() end
  if self._state ~= "running" then return self:join() end
  local ok, err = self:stop_accepting()
  if not ok then return nil, err end
  local sleep = nginx_sleep()
  local function open_now()
    local st = self:stats()
    return st and st.connections or 0
  end
  local function wait_until(deadline)
    while open_now() > 0 do
      local left = deadline - core.now_ms()
      if left <= 0 then break end
      if sleep then
        self:poll(0)
        sleep(0.01)
      else
        self:poll(left < 50 and left or 50)
      end
    end
  end
  wait_until(core.now_ms() + (timeout_ms or 0))
  local left = open_now()
  self:stop()
  if sleep then
    -- the 1001 handshakes, without blocking the worker in join()
    wait_until(core.now_ms() + self._close_timeout)
  end
  ok, err = self:join()
  if not ok then return nil, err end
  return true, left
end

--- Begins a graceful stop and returns at once (safe inside handlers);
-- run() returns soon after. Then join() (or run() returning) finishes it.
function Server:stop()
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  if self._state == "running" then self._state = "stopping" end
  local rc = core.server_stop(self._s)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Waits for the threads to end, then dispatches the events still queued
-- (close events). A running server is stopped first: nothing else on this
-- Lua thread could stop it while join blocks. Do not call it from a
-- handler. true or nil, err.
function Server:join()
  if self._state == "new" then return nil, c_strerror(core.ERR_STATE) end
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  if self._state == "running" then
    local ok, err = self:stop()
    if not ok then return ok, err end
  end
  local rc = core.server_join(self._s)
  if rc ~= 0 then return fail(rc) end
  self._state = "stopped"
  if not self._polling then
    repeat local n = self:poll(0) until not n or n == 0
  end
  return true
end

--- stop() + join().
function Server:shutdown()
  local ok, err = self:stop()
  if not ok then return ok, err end
  if self._state == "new" then self._state = "stopped"; return true end
  return self:join()
end

--- Stops, joins and frees the C server now (the garbage collector would do
-- it too). Every later call returns nil, err.
function Server:free()
  if self._state ~= "freed" then
    self._s = nil
    core.free(self._h)
    self._state = "freed"
    self._conns = {}
    self._dialing = {}
    self._timers = {}
  end
  return true
end

function Server:__tostring()
  return "websock server (" .. self._state .. ", port " .. tostring(self.port) .. ")"
end

--- The file descriptor readable while events (or, with a handshake
-- handler, upgrades) are queued, for epoll, cqueues, luv, ...: then call
-- srv:poll(0). Timers are not in it: poll(0) at least as often as the
-- shortest timer. fd or nil, err.
function Server:fd()
  local fd = core.event_fd(self._h)
  if fd < 0 then return fail(fd) end
  return fd
end

-- Handler call: pcall; on error log it and close the connection with 1011.
local function call(self, name, fn, conn, a, b, c)
  local ok, err = pcall(fn, conn, a, b, c)
  if not ok then
    self._log("error in '" .. name .. "' handler: " .. tostring(err))
    if name ~= "close" and conn then
      c_close(self._s, conn.id, core.CLOSE_INTERNAL_ERROR, "handler error")
    end
  end
end

-- After a TAG event (Redis' answer to a claim, or a tag lost unasked):
-- conn.tag as the core has it now. On an error that is the tag the
-- connection had before the refused set_tag, kept meanwhile (or none; a
-- tag given since stays). The core is asked rather than trusting the
-- record's snapshot (ev.tag: the tag when the event was queued), so that
-- a set_tag made after the event was queued but before it got here is not
-- undone; once the connection is gone the snapshot is all there is.
local function tag_settled(srv, conn, ev)
  local rc, tag = c_get_tag(srv._s, ev.id)
  if rc >= 0 then
    conn.tag = tag -- (nil: none)
  elseif ev.status ~= 0 and conn.tag == ev.data then
    conn.tag = ev.tag
  end
end

-- The connection of an event record: a new one for OPEN, the known one
-- otherwise (made from the record if none is known), dropped from the
-- table and marked closed for CLOSE.
-- An outgoing connection (srv:connect) is known from the connect on: its
-- first event (OPEN, or the CLOSE of a connect that failed) moves it from
-- srv._dialing to srv._conns.
local function conn_of(self, ev, etype)
  local conns, id = self._conns, ev.id
  local conn = conns[id]
  local out = self._dialing[id]
  if out then
    self._dialing[id] = nil
    conn = out
    conns[id] = conn
    if etype == "open" then out:_opened(ev) end
  elseif etype == "open" or not conn then
    conn = new_conn(self, ev)
    conns[id] = conn
  end
  if etype == "close" then
    conn.closed = true
    conns[id] = nil
    if conn.outgoing then
      conn.state, conn.close_code, conn.close_reason = "closed", ev.close_code, ev.data
    end
  elseif etype == "tag" then
    tag_settled(self, conn, ev)
  end
  return conn
end

-- The outcome of a TAG event: nil on success, else the message and code.
local function tag_outcome(ev)
  local st = ev.status
  if st == 0 or st == nil then return nil end
  return c_strerror(st), st
end

local function dispatch(self, ev)
  local etype = EVENT_NAMES[ev.type]
  local conn = conn_of(self, ev, etype)
  local own = conn._on
  local fn = own and own[etype] or self._handlers[etype]
  if not fn then
    -- an outgoing connection without a message handler keeps its
    -- messages for conn:recv()
    local box = conn._inbox
    if box and etype == "message" then
      box.last = box.last + 1
      box[box.last] = { ev.data, KINDS[ev.opcode] }
    end
    return
  end
  if etype == "message" then
    call(self, "message", fn, conn, ev.data, KINDS[ev.opcode])
  elseif etype == "close" then
    call(self, "close", fn, conn, ev.close_code, ev.data)
  elseif etype == "open" or etype == "drain" then
    call(self, etype, fn, conn)
  elseif etype == "tag" then
    local err, code = tag_outcome(ev)
    call(self, "tag", fn, conn, ev.data, err, code)
  else -- ping, pong
    call(self, etype, fn, conn, ev.data)
  end
end
-- For tests: hands one event record to the handlers as poll() does.
Server._dispatch = dispatch

------------------------------------------------------------------------------
-- The handshake handler: the C hook deferred the upgrade (Origin and
-- subprotocol were checked in C already); its request comes here as a
-- table, the handler decides, and the answer goes back by ticket.
------------------------------------------------------------------------------

-- Header names are looked up without regard to case:
-- req.headers["authorization"] == req.headers.Authorization. A header
-- sent more than once gives its values joined with ", " (RFC 9110), except
-- Cookie, joined with "; ".
local Headers = {
  __index = function(t, k)
    if type(k) == "string" then return rawget(t, k:lower()) end
  end,
}

local function new_request(srv, raw)
  local headers = setmetatable({}, Headers)
  for _, hv in ipairs(raw.headers) do
    local name, value = hv[1]:lower(), hv[2]
    local old = rawget(headers, name)
    if old then
      value = old .. (name == "cookie" and "; " or ", ") .. value
    end
    headers[name] = value
  end
  return {
    method = raw.method, path = raw.path, query = raw.query,
    origin = raw.origin, remote_address = raw.remote_addr, sni = raw.sni,
    tls_peer = raw.tls_peer, headers = headers, header_list = raw.headers,
    subprotocols = raw.subprotocols, subprotocol = raw.subprotocol,
    server = srv,
  }
end

-- Adds the handler's headers to the answer of ticket t: { name = value }
-- (value a string or a list of strings) or a list of { name, value }.
-- Content-Type is the body's, passed apart. Returns the content type, or
-- nil, err.
local function add_headers(h, t, headers)
  local ctype
  local function add(name, value)
    name, value = tostring(name), tostring(value)
    if name:lower() == "content-type" then ctype = value; return true end
    local rc = core.handshake_header(h, t, name, value)
    if rc ~= 0 then return nil, "header " .. name .. ": " .. c_strerror(rc) end
    return true
  end
  if headers == nil then return true end
  if type(headers) ~= "table" then return nil, "headers must be a table" end
  for _, pair in ipairs(headers) do
    if type(pair) ~= "table" then return nil, "headers list: { name, value } pairs" end
    local ok, err = add(pair[1], pair[2])
    if not ok then return nil, err end
  end
  for name, value in pairs(headers) do
    if type(name) == "string" then
      local list = type(value) == "table" and value or { value }
      for _, v in ipairs(list) do
        local ok, err = add(name, v)
        if not ok then return nil, err end
      end
    end
  end
  return ctype or true
end

-- The handler's answer to one upgrade: true accepts (req.subprotocol, our
-- choice unless the handler changed it, goes into the 101); a number
-- answers with that HTTP status, the body and headers given; false or
-- nothing refuses with 403. An error in the handler, or an answer the core
-- refuses, gives 500 and is logged.
local function answer(self, t, req, ok, a, b, c)
  local h = self._h
  local why
  if not ok then
    why = "error in 'handshake' handler: " .. tostring(a)
  elseif a == true then
    local ctype, err = add_headers(h, t, c)
    if ctype then
      local rc = core.handshake_accept(h, t, req.subprotocol)
      if rc == 0 then
        local acc = self._accepted
        acc.now[t] = req
        return
      end
      if rc ~= core.ERR_INVALID and rc ~= core.ERR_NOMEM then return end -- gone
      why = "'handshake' handler: accept with subprotocol " .. tostring(req.subprotocol) ..
            ": " .. c_strerror(rc) .. " (offered: " .. table.concat(req.subprotocols, ", ") .. ")"
    else
      why = "'handshake' handler: " .. err
    end
  else
    local status = (a == false or a == nil) and 403 or a
    if type(status) ~= "number" then
      why = "'handshake' handler returned " .. tostring(a) ..
            " (true, or an HTTP status, a body and headers)"
    elseif b ~= nil and type(b) ~= "string" then
      why = "'handshake' handler: the body must be a string, got " .. type(b)
    else
      local ctype, err = add_headers(h, t, c)
      if ctype then
        local rc = core.handshake_reject(h, t, status, ctype ~= true and ctype or nil, b)
        if rc ~= core.ERR_INVALID and rc ~= core.ERR_NOMEM then return end
        why = "'handshake' handler: status " .. tostring(status) .. ": " .. c_strerror(rc) ..
              " (200..599 but 101)"
      else
        why = "'handshake' handler: " .. err
      end
    end
  end
  self._log(why)
  if core.handshake_reject(h, t, 500, nil, nil) ~= 0 then
    core.handshake_reject(h, t, 503, nil, nil) -- the ticket must be spent
  end
end

-- Runs the handler for up to |max| waiting upgrades; returns how many.
-- With handshake_spawn each runs apart (its own light thread or timer):
-- the answer goes by ticket, so a handler that waits for an auth service
-- holds up neither the events nor the other handshakes.
local function take_handshakes(self, max)
  local h, fn, spawn, n = self._h, self._handshake, self._spawn, 0
  local acc = self._accepted
  local now = core.now_ms()
  if now - acc.since > 60000 then
    acc.old, acc.now, acc.since = acc.now, {}, now
  end
  while n < max do
    local rc, t, raw = core.handshake_next(h)
    if rc ~= 1 then break end
    n = n + 1
    local req = new_request(self, raw)
    local function run() answer(self, t, req, pcall(fn, req)) end
    local ok, started, why = true, true, nil
    if spawn then ok, started, why = pcall(spawn, run) end
    if not spawn then
      run()
    elseif not ok or not started then
      self._log("handshake_spawn failed (" .. tostring(ok and why or started) ..
                "): the handler runs in poll()")
      run()
    end
  end
  return n
end

------------------------------------------------------------------------------
-- Timers: srv:every(ms, fn) and srv:after(ms, fn), run by poll() (and so
-- by run(), drain_and_stop() and an OpenResty timer's poll(0)).
------------------------------------------------------------------------------
local Timer = {}
Timer.__index = Timer

--- Stops the timer; it never fires again. Returns true.
function Timer:cancel()
  if not self.cancelled then
    self.cancelled = true
    local list = self.server._timers
    for i = #list, 1, -1 do
      if list[i] == self then table.remove(list, i) break end
    end
  end
  return true
end

local function add_timer(self, ms, fn, every, level)
  if type(ms) ~= "number" or ms < 0 or ms ~= ms then
    error("timer: ms must be a number >= 0, got " .. tostring(ms), level)
  end
  if every and ms < 1 then error("every: ms must be at least 1", level) end
  if type(fn) ~= "function" then error("timer: fn must be a function", level) end
  local t = setmetatable({ server = self, due = core.now_ms() + ms, fn = fn,
                           interval = every and ms or nil, cancelled = false }, Timer)
  local list = self._timers
  list[#list + 1] = t
  return t
end

--- Calls fn(timer) every ms milliseconds (first after ms), from poll()
-- (run(), drain_and_stop()). Late calls are not made up for: when poll()
-- ran late, the next call is ms after this one. Returns the timer
-- (timer:cancel() stops it). An error in fn is logged. fn runs outside
-- the handlers' one-at-a-time guard: it may call srv:poll(),
-- srv:drain_and_stop() or srv:stop().
function Server:every(ms, fn) return add_timer(self, ms, fn, true, 3) end

--- Calls fn(timer) once, ms milliseconds from now, from poll().
function Server:after(ms, fn) return add_timer(self, ms, fn, false, 3) end

-- Runs the due timers; returns the ms until the next one is due (nil:
-- no timer).
local function run_timers(self)
  local list = self._timers
  if #list == 0 then return nil end
  local now = core.now_ms()
  local due = {}
  for _, t in ipairs(list) do
    if t.due <= now then due[#due + 1] = t end
  end
  for _, t in ipairs(due) do
    if not t.cancelled then
      if t.interval then
        t.due = t.due + t.interval
        if t.due <= now then t.due = now + t.interval end
      else
        t:cancel()
      end
      local ok, err = pcall(t.fn, t)
      if not ok then self._log("error in timer: " .. tostring(err)) end
    end
  end
  if #list == 0 then return nil end
  now = core.now_ms()
  local next_ms
  for _, t in ipairs(list) do
    local d = t.due - now
    if not next_ms or d < next_ms then next_ms = d end
  end
  return next_ms > 0 and next_ms or 0
end

--- Dispatches queued events to the handlers: runs the due timers and the
-- handshake handler, waits up to timeout_ms (default 0 = never blocks;
-- -1 = until something comes; never past the next timer) for the first
-- event, then takes whatever else is queued without waiting, at most max
-- events (default: the max_batch option). Returns the number of events
-- dispatched, or nil, err. A poll() while another poll() of this server is
-- dispatching (from a handler, or from another coroutine while a handler
-- yields) returns 0: one consumer at a time keeps per-connection order.
function Server:poll(timeout_ms, max)
  if self._polling then return 0 end
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  local s = self._s
  max = max or self._max_batch
  local wait = timeout_ms or 0
  -- Timers run outside the one-consumer guard: one may poll() itself, or
  -- call drain_and_stop().
  local next_timer = run_timers(self)
  if self._polling then return 0 end -- a timer is polling meanwhile
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  if next_timer and (wait < 0 or wait > next_timer) then wait = next_timer end
  self._polling = true
  self._poller = coroutine.running()
  local rc, ev
  if self._handshake then
    if wait ~= 0 then core.wait(self._h, wait) end
    take_handshakes(self, max)
    rc, ev = c_poll(s, 0)
  else
    rc, ev = c_poll(s, wait)
  end
  local n = 0
  while rc == 1 do
    n = n + 1
    dispatch(self, ev)
    if n >= max then break end
    rc, ev = c_poll(s, 0)
  end
  self._polling = false
  if next_timer then run_timers(self) end
  if rc < 0 then return fail(rc) end
  return n
end

--- Pull style, without handlers: waits up to timeout_ms (default 0; -1 =
-- forever) for one event and returns it as a table { type = "open" |
-- "message" | "close" | "ping" | "pong" | "drain" | "tag", id, conn, tag,
-- data (for "tag": the tag claimed), kind ("text" | "binary"), code (close
-- code; "tag": the error code, nil on success), reason (close reason), err
-- ("tag": the error message, nil on success), path, query,
-- remote_address, subprotocol }; false when none came in
-- time; nil, err on error. Connection objects are kept as with poll(); a
-- handshake handler still runs (inside recv), timers do not.
function Server:recv(timeout_ms)
  if self._polling then return false end
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  local rc, ev
  if self._handshake then
    self._polling = true
    self._poller = coroutine.running()
    local deadline = (timeout_ms or 0) > 0 and core.now_ms() + timeout_ms
    repeat
      take_handshakes(self, self._max_batch)
      rc, ev = c_poll(self._s, 0)
      if rc ~= 0 then break end
      local left = timeout_ms or 0
      if deadline then
        left = deadline - core.now_ms()
        if left <= 0 then break end
      end
      if left == 0 then break end
      core.wait(self._h, left)
    until false
    self._polling = false
  else
    rc, ev = c_poll(self._s, timeout_ms or 0)
  end
  if rc < 0 then return fail(rc) end
  if rc == 0 then return false end
  local etype = EVENT_NAMES[ev.type]
  local out = { type = etype, id = ev.id, conn = conn_of(self, ev, etype),
                tag = ev.tag, kind = KINDS[ev.opcode], path = ev.path,
                query = ev.query, remote_address = ev.remote_addr,
                subprotocol = ev.subprotocol, extensions = ev.extensions }
  if etype == "close" then
    out.code, out.reason = ev.close_code, ev.data
  else
    out.data = ev.data
    if etype == "tag" then out.err, out.code = tag_outcome(ev) end
  end
  return out
end

--- Starts the server if needed, then polls and dispatches until stop() is
-- called (by a handler, or on SIGINT/SIGTERM after websock.catch_signals()),
-- joins the threads, dispatches the last events and returns true (or nil,
-- err). opts.interval: longest wait per poll in ms (default 100).
function Server:run(opts)
  local interval = (opts and opts.interval) or 100
  if self._state == "new" then
    local ok, err = self:start()
    if not ok then return nil, err end
  end
  while self._state == "running" do
    local n, err = self:poll(interval)
    if not n then return nil, err end
    if M._signals and core.take_signal() ~= 0 then self:stop() end
  end
  if self._state == "stopping" then return self:join() end
  return true
end

--- Sends a message to connection id; kind "text" (default) or "binary".
-- true, or nil, err, code ("no such client", "connection is closing",
-- "outbound queue full", "text is not valid UTF-8", ...).
function Server:send(id, data, kind)
  local rc = c_send(self._s, id, opcode_of(kind), data)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- As send(), addressed by tag.
function Server:send_tag(tag, data, kind)
  local rc = c_send_tag(self._s, tag, opcode_of(kind), data)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Sends to every open connection except except_id (optional).
function Server:broadcast(data, kind, except_id)
  local rc = c_broadcast(self._s, opcode_of(kind), data, except_id or 0)
  if rc ~= 0 then return fail(rc) end
  return true
end

-- Topics: a name is a Lua string of 1..255 bytes (NUL bytes and all,
-- compared byte for byte; a number counts as its string). Other types
-- raise, as a wrong argument type does everywhere; a bad length gives
-- nil, "invalid argument", ERR.INVALID from the core.
local function topic_arg(topic, level)
  local t = type(topic)
  if t == "string" then return topic end
  if t == "number" then return tostring(topic) end
  error("topic must be a string, got " .. t, (level or 2) + 1)
end

--- Makes connection id a member of topic (a no-op when it is one
-- already). Non-blocking, from any handler or timer. true, or nil, err,
-- code: "invalid argument" (topic of 0 or over 255 bytes), "no such
-- client" (unknown or ended id), "connection is closing", ...
function Server:subscribe(id, topic)
  local rc = core.server_subscribe(self._s, id, topic_arg(topic))
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Ends connection id's membership of topic (a no-op when it is none).
-- true, or nil, err, code as for subscribe. A connection leaves all its
-- topics when it ends: nothing to do in a close handler.
function Server:unsubscribe(id, topic)
  local rc = core.server_unsubscribe(self._s, id, topic_arg(topic))
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Sends data to every member of topic; kind "text" (default) or
-- "binary"; except: a connection object or an id to leave out (e.g. the
-- sender), nil for none. Encoded once, like a broadcast; returns true once
-- posted (a topic without members is no error), or nil, err, code
-- ("invalid argument", "text is not valid UTF-8", "the server is not
-- running", ...).
function Server:publish(topic, data, kind, except)
  topic = topic_arg(topic)
  local op = opcode_of(kind)
  local skip = 0
  if except ~= nil and except ~= false then
    if type(except) == "table" then
      skip = except.id
    else
      skip = except
    end
    if type(skip) ~= "number" then
      error("publish: except must be a connection or an id, got " .. type(except), 2)
    end
  end
  local rc = core.server_publish(self._s, topic, op, data, skip)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Pings connection id (payload up to 125 bytes, optional).
function Server:ping(id, data)
  local rc = core.server_ping(self._s, id, data or "")
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Starts the close handshake (code default 1000, reason optional).
function Server:close(id, code, reason)
  local rc = c_close(self._s, id, code or core.CLOSE_NORMAL, reason)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- As close(), addressed by tag.
function Server:close_tag(tag, code, reason)
  local rc = core.server_close_tag(self._s, tag, code or core.CLOSE_NORMAL, reason)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- Gives connection id the unique tag (nil removes it). Returns true when
-- it is settled, or nil, err, code ("tag taken by another connection",
-- "no such client", "the cluster's Redis link is down", ...). On a
-- cluster node a tag no node is known to hold is held here at once and
-- claimed in Redis: true, "pending" (also when asked again for the tag
-- still being claimed); the outcome comes later as the connection's "tag"
-- event (handler tag(conn, tag, err, code), in order with its other
-- events), and conn.tag shows the tag meanwhile. Until then its tag of
-- before stays its too (sends by tag to either reach it): let go on
-- success; on an error it is the connection's tag again (conn.tag shows
-- it, or nil when it had none), as a refused set_tag leaves a single
-- server's connection. Asking for that tag of before while the claim is
-- pending settles back to it (true).
function Server:set_tag(id, tag)
  if tag ~= nil and type(tag) ~= "string" then tag = tostring(tag) end
  local rc = core.server_set_tag(self._s, id, tag)
  if rc < 0 then return fail(rc) end
  local conn = self._conns[id]
  if conn then conn.tag = tag end
  if rc == PENDING then return true, "pending" end
  return true
end

--- The tag of connection id: tag, or false when it has none, or nil, err.
function Server:get_tag(id)
  local rc, tag = core.server_get_tag(self._s, id)
  if rc < 0 then return fail(rc) end
  return tag or false
end

--- The id holding tag, or nil, "no such client".
function Server:find_tag(tag)
  local rc, id = core.server_find_tag(self._s, tag)
  if rc ~= 0 then return fail(rc) end
  return id
end

--- The connection object for id (nil when not open or not yet polled).
function Server:connection(id)
  return self._conns[id]
end

-- The fields of a SWIG struct (core.stats, core.loop_stats, ...): the
-- names of its getters.
local function struct_fields(obj)
  local names = {}
  for name in pairs(getmetatable(obj)[".get"]) do names[#names + 1] = name end
  return names
end
local STATS_FIELDS = struct_fields(core.stats())
-- Per-thread lists: "<prefix>_<field>" for every field of the struct of
-- that kind of thread, one entry per thread; the number of threads is the
-- websock_stats field named.
local THREAD_KINDS = {
  { "loop", core.server_get_loop_stats, struct_fields(core.loop_stats()), "io_threads" },
  { "agent", core.server_get_agent_stats, struct_fields(core.agent_stats()), "agents" },
}

--- A snapshot of the counters: every field of websock_stats
-- (connections, connections_total, accepted_total, rejected_total,
-- messages_in, messages_out, bytes_in, bytes_out, pool_size, pool_in_use,
-- pool_grows, pool_shrinks, event_path_allocs, io_threads, agents,
-- ready_connections, ready_wait_max_ns, ...), for every field of
-- websock_loop_stats a list per I/O thread (loop_connections{},
-- loop_accepted{}, loop_events{}) and for every field of
-- websock_agent_stats a list per agent (agent_events{}, agent_busy_ns{};
-- empty: this server runs no agents). Or nil, err.
function Server:stats()
  local s = self._s
  local rc, st = core.server_get_stats(s)
  if rc ~= 0 then return fail(rc) end
  local t = {}
  for _, name in ipairs(STATS_FIELDS) do t[name] = st[name] end
  for _, k in ipairs(THREAD_KINDS) do
    local prefix, get, fields = k[1], k[2], k[3]
    local lists = {}
    for _, name in ipairs(fields) do
      lists[name] = {}
      t[prefix .. "_" .. name] = lists[name]
    end
    for i = 1, t[k[4]] do
      local rc2, ts = get(s, i - 1)
      if rc2 ~= 0 then return fail(rc2) end
      for _, name in ipairs(fields) do lists[name][i] = ts[name] end
    end
  end
  return t
end


------------------------------------------------------------------------------
-- Client mode: outgoing ws:// and wss:// connections (client.h).
--   websock.connect(url, opts)   on a hidden client-only server, shared by
--                                every connect without a server
--   srv:connect(url, opts)       on srv: its loops, its handlers
-- Both return at once with a connection object (state "connecting"); its
-- OPEN, or the CLOSE of a connect that failed (code 1006, the reason
-- naming the stage), comes through poll() like any event.
------------------------------------------------------------------------------
local Client = setmetatable({}, { __index = Conn })
Client.__index = Client
M.Client = Client

-- Handler options of a connect: on_open, on_message, on_close, on_drain,
-- on_ping, on_pong (the server's handler names with "on_").
local CONNECT_OPTIONS = {
  subprotocols = true, headers = true, timeout = true, tls_ca = true,
  tls_verify = true, deflate = true, max_message = true,
}

-- Applies the connect options to a new websock_connect_options; returns
-- it and the connection's own handlers, or nil, err.
local function connect_options(opts)
  local on = {}
  for k, v in pairs(opts) do
    local ev = type(k) == "string" and k:match("^on_(.+)$")
    if ev and EVENTS[ev] then
      if type(v) ~= "function" then
        return nil, "option " .. k .. " must be a function"
      end
      on[ev] = v
    elseif not CONNECT_OPTIONS[k] then
      return nil, "unknown connect option '" .. tostring(k) .. "'"
    end
  end
  local o = core.connect_options_new()
  if not o then return nil, "out of memory" end
  local protos = opts.subprotocols
  if type(protos) == "string" then protos = { protos } end
  if protos ~= nil then
    if type(protos) ~= "table" then return nil, "option subprotocols must be a list" end
    for _, p in ipairs(protos) do
      if type(p) ~= "string" or core.connect_options_add_subprotocol(o, p) ~= 0 then
        return nil, "option subprotocols: " .. shown(p) ..
                    " is not a subprotocol name (a token; at most 16 of them)"
      end
    end
  end
  local headers = opts.headers
  if headers ~= nil then
    if type(headers) ~= "table" then
      return nil, "option headers must be a table { name = value } or a list of { name, value }"
    end
    local function add(name, value)
      if type(name) ~= "string" or (type(value) ~= "string" and type(value) ~= "number") then
        return nil, "option headers: " .. shown(name) .. " = " .. shown(value) ..
                    ": names and values must be strings"
      end
      if core.connect_options_add_header(o, name, tostring(value)) ~= 0 then
        return nil, "option headers: " .. shown(name) .. " refused (not a token, a value " ..
                    "with CR/LF or control characters, one the handshake writes itself: " ..
                    "Host, Upgrade, Connection, Sec-WebSocket-*; or over 8 KiB in all)"
      end
      return true
    end
    for _, pair in ipairs(headers) do
      if type(pair) ~= "table" then return nil, "option headers: list entries are { name, value }" end
      local ok, err = add(pair[1], pair[2])
      if not ok then return nil, err end
    end
    for name, value in pairs(headers) do
      if type(name) ~= "number" then
        local list = type(value) == "table" and value or { value }
        for _, v in ipairs(list) do
          local ok, err = add(name, v)
          if not ok then return nil, err end
        end
      end
    end
  end
  if opts.timeout ~= nil then
    if not is_whole(opts.timeout, 1, 3600000) or
       core.connect_options_set_timeout_ms(o, opts.timeout) ~= 0 then
      return nil, "option timeout must be a whole number of ms 1..3600000, got " ..
                  shown(opts.timeout)
    end
  end
  if opts.tls_ca ~= nil then
    if type(opts.tls_ca) ~= "string" then return nil, "option tls_ca must be a file name" end
    local rc = core.connect_options_set_tls_ca_file(o, opts.tls_ca)
    if rc ~= 0 then return nil, "option tls_ca: " .. c_strerror(rc) end
  end
  for _, name in ipairs({ "tls_verify", "deflate" }) do
    local v = opts[name]
    if v ~= nil then
      if type(v) ~= "boolean" then
        return nil, "option " .. name .. " must be true or false, got " .. shown(v)
      end
      local set = name == "deflate" and core.connect_options_set_deflate
                  or core.connect_options_set_tls_verify
      local rc = set(o, v and 1 or 0)
      if rc ~= 0 then return nil, "option " .. name .. ": " .. c_strerror(rc) end
    end
  end
  if opts.max_message ~= nil then
    if not is_whole(opts.max_message, 0, 2 ^ 53 - 1) then
      return nil, "option max_message must be a whole number of bytes (0: the server's " ..
                  "max_message_size), got " .. shown(opts.max_message)
    end
    local rc = core.connect_options_set_max_message_size(o, opts.max_message)
    if rc ~= 0 then return nil, "option max_message: " .. c_strerror(rc) end
  end
  return o, on
end

--- Opens an outgoing connection from this (running) server to url
-- ("ws://host[:port][/path][?query]", "wss://...", "ws://[::1]:8080/").
-- opts: subprotocols (list to offer, in order of preference), headers
-- ({ name = value } or a list of { name, value }), timeout (ms for
-- resolve + connect + TLS + 101, default 10000), tls_ca (PEM file;
-- default the system's CAs), tls_verify (false: accept any certificate,
-- tests only), deflate (true: offer permessage-deflate), max_message
-- (bytes; default the server's max_message_size), and handlers on_open,
-- on_message, on_close, on_drain, on_ping, on_pong (in place of the
-- server's handler of that event for this connection).
-- Returns the connection at once (conn.state "connecting"), or nil, err,
-- code when the connect is refused at once (a bad URL or option, the
-- server not running).
function Server:connect(url, opts)
  if type(url) ~= "string" then error("connect: url must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("connect: opts must be a table", 2) end
  if self._state ~= "running" then
    return nil, "the server is not running", core.ERR_STATE
  end
  local o, on = connect_options(opts or {})
  if not o then return nil, on, core.ERR_INVALID end
  local rc, id = core.server_connect(self._s, url, o)
  if rc ~= 0 then
    local why = core.connect_error()
    return nil, (why and why ~= "") and why or c_strerror(rc), rc
  end
  local conn = setmetatable({
    id = id, url = url, server = self, outgoing = true, state = "connecting",
    opened = false, _on = next(on) and on or nil,
    _inbox = { first = 1, last = 0 },
  }, Client)
  self._dialing[id] = conn
  return conn
end

-- OPEN reached Lua (conn_of): the fields of the event, then what was asked
-- before it (sends, a close).
function Client:_opened(ev)
  self.state, self.opened = "open", true
  self.tag, self.path, self.query = ev.tag, ev.path, ev.query
  self.subprotocol, self.remote_address = ev.subprotocol, ev.remote_addr
  self.extensions = ev.extensions
  local srv = self.server
  local pending, close = self._pending, self._close_req
  self._pending, self._close_req = nil, nil
  for _, p in ipairs(pending or {}) do
    local rc = c_send(srv._s, self.id, p[2], p[1])
    if rc ~= 0 then
      srv._log("send queued before OPEN of connection #" .. tostring(self.id) ..
               " failed: " .. c_strerror(rc))
    end
  end
  if close then c_close(srv._s, self.id, close[1], close[2]) end
end

--- Sends a message (kind "text", the default, or "binary"). Before OPEN
-- the message waits in Lua and goes out when OPEN is dispatched (dropped
-- if the connect fails). true, or nil, err, code.
function Client:send(data, kind)
  if self.state == "connecting" then
    local op = opcode_of(kind)
    if type(data) ~= "string" then
      if type(data) ~= "number" then error("send: data must be a string", 2) end
      data = tostring(data)
    end
    local list = self._pending or {}
    self._pending = list
    list[#list + 1] = { data, op }
    return true
  end
  return self.server:send(self.id, data, kind)
end
function Client:send_text(data) return self:send(data, "text") end
function Client:send_binary(data) return self:send(data, "binary") end

--- Starts the close handshake (code default 1000, reason optional); before
-- OPEN the close is sent as soon as it opens. true or nil, err, code.
function Client:close(code, reason)
  if self.state == "connecting" then
    self._close_req = { code or core.CLOSE_NORMAL, reason }
    return true
  end
  return self.server:close(self.id, code, reason)
end

-- Drives the poll loop of srv until done() is true or timeout_ms (nil or
-- < 0: no limit) passed. Inside OpenResty (a phase that may yield) it
-- polls without blocking and waits with ngx.sleep, so the worker goes on
-- meanwhile; elsewhere it blocks in srv:poll(). Returns true, false on
-- timeout, or nil, err.
local function wait_for(srv, done, timeout_ms)
  if done() then return true end
  local sleep = nginx_sleep()
  if srv._polling and (not sleep or srv._poller == coroutine.running()) then
    return nil, "cannot wait inside a handler of the connection's own server " ..
                "(the poll() running the handler dispatches its events): use " ..
                "on_message, or websock.connect()'s own server"
  end
  local deadline = timeout_ms and timeout_ms >= 0 and core.now_ms() + timeout_ms
  local nap = 0.001
  while true do
    if srv._state == "freed" then return nil, "the server was freed" end
    local running = srv._state == "running"
    local left = deadline and deadline - core.now_ms()
    if left and left <= 0 then return false end
    local n, err
    if sleep then
      n, err = srv:poll(0)
      if n == 0 and not done() then
        sleep(nap)
        nap = nap < 0.008 and nap * 2 or 0.01
      else
        nap = 0.001
      end
    else
      -- the other servers of this Lua state go on too (an in-process
      -- peer, a bridge's other side): poll(0) each, and wait on srv for
      -- at most 10 ms between rounds
      local most, others = 1000, {}
      for other in pairs(LIVE) do
        if other ~= srv and other._state == "running" and not other._polling then
          others[#others + 1] = other
        end
      end
      for _, other in ipairs(others) do
        other:poll(0)
        most = 10
      end
      if done() then return true end
      n, err = srv:poll(running and (left and (left < most and left or most) or most) or 0)
    end
    if not n then return nil, err end
    if done() then return true end
    if not running and n == 0 then return nil, "the server is not running" end
  end
end

--- Waits up to timeout_ms (nil: no limit) for the connection's fate:
-- true once it opened (conn.subprotocol is then the server's choice), or
-- nil, reason, code when the connect failed ("connect: Connection refused
-- (127.0.0.1 port 1)", "resolve: ...", "tls: ...", "handshake: HTTP 404
-- Not Found", "timeout: ..."; code 1006), or nil, "timeout" (still
-- connecting).
function Client:wait_open(timeout_ms)
  local ok, err = wait_for(self.server, function() return self.state ~= "connecting" end,
                           timeout_ms)
  if ok == nil then return nil, err end
  if self.opened then return true end
  if self.state == "closed" then return nil, self.close_reason, self.close_code end
  return nil, "timeout"
end

--- The next message: data, kind ("text" | "binary"); nil, "timeout" after
-- timeout_ms (nil: no limit); nil, "closed", code, reason once closed and
-- every message was taken (a connect that failed: code 1006 and its
-- reason). Messages are kept for recv() only on a connection without a
-- message handler. Waits as wait_open() does: driving the server's
-- poll(), or yielding with ngx.sleep inside OpenResty.
function Client:recv(timeout_ms)
  local box = self._inbox
  if (self._on and self._on.message) or self.server._handlers.message then
    return nil, "this connection's messages go to its message handler"
  end
  local ok, err = wait_for(self.server, function()
    return box.first <= box.last or self.state == "closed"
  end, timeout_ms)
  if ok == nil then return nil, err end
  if box.first <= box.last then
    local m = box[box.first]
    box[box.first] = nil
    box.first = box.first + 1
    return m[1], m[2]
  end
  if self.state == "closed" then return nil, "closed", self.close_code, self.close_reason end
  return nil, "timeout"
end

function Client:__tostring()
  return "websock client connection #" .. tostring(self.id) .. " to " .. self.url ..
         " (" .. self.state .. ")"
end

-- The hidden client-only server of websock.connect(), made on first use.
local client_srv

--- The server websock.connect() uses: a client-only server (no listening
-- socket) made and started on first use, shared by every such connect.
-- opts (only before it exists): server options (io_threads,
-- max_message_size, ping_interval, deflate, log, ...). Drive it with its
-- poll() / run() / fd() when you use handlers; conn:recv() and
-- conn:wait_open() poll it themselves. Returns the server or nil, err.
function M.client_server(opts)
  if client_srv and client_srv._state == "running" then
    if opts ~= nil then return nil, "the client server exists already" end
    return client_srv
  end
  local ngx = rawget(_G, "ngx")
  if ngx and ngx.get_phase and ngx.get_phase() == "init" then
    -- threads started in the master would not survive the fork
    return nil, "websock.connect() in init_by_lua*: connect from a worker " ..
                "(init_worker_by_lua*, a timer, a request handler)"
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.client_only = true
  local srv, err = M.server(o)
  if not srv then return nil, err end
  local ok, err2 = srv:start()
  if not ok then srv:free(); return nil, err2 end
  client_srv = srv
  return srv
end

--- Opens an outgoing connection on the shared client-only server
-- (websock.client_server()); see Server:connect for url and opts.
-- Returns the connection at once, or nil, err, code.
function M.connect(url, opts)
  if type(url) ~= "string" then error("connect: url must be a string", 2) end
  local srv, err = M.client_server()
  if not srv then return nil, err end
  return srv:connect(url, opts)
end

--- Closes every connection of websock.connect()'s server (1001), stops,
-- joins and frees it (the close handlers run); the next connect makes a
-- new one. For an nginx worker's exit_worker_by_lua, or the end of a
-- program that wants its clients closed before it exits. Returns true.
function M.client_shutdown()
  local srv = client_srv
  client_srv = nil
  if srv then
    srv:shutdown()
    srv:free()
  end
  return true
end

--- Dispatches the events of websock.connect()'s server (its poll()); 0
-- when it does not exist yet.
function M.poll(timeout_ms, max)
  if not client_srv then return 0 end
  return client_srv:poll(timeout_ms, max)
end

return M
