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
local core = require("libwebsock2_core")

local pcall, type, tostring, tonumber, pairs, ipairs, select, setmetatable,
      error, rawget = pcall, type, tostring, tonumber, pairs, ipairs, select,
      setmetatable, error, rawget
local io_stderr = io.stderr

local c_poll, c_send, c_send_tag, c_broadcast, c_close, c_strerror =
  core.server_poll, core.server_send, core.server_send_tag,
  core.server_broadcast, core.server_close, core.strerror

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

------------------------------------------------------------------------------
-- Connections: a small object per open connection, handed to handlers.
--   conn.id, conn.tag, conn.path, conn.query, conn.remote_address,
--   conn.subprotocol, conn.server, conn.closed
------------------------------------------------------------------------------
local Conn = {}
Conn.__index = Conn

-- A connection from its first event record (OPEN gives path, query, ...).
-- Its tag is the record's, then whatever set_tag() gives it: the tag
-- snapshots of later records never overwrite it.
local function new_conn(srv, ev)
  return setmetatable({
    id = ev.id, tag = ev.tag, path = ev.path, query = ev.query,
    remote_address = ev.remote_addr, subprotocol = ev.subprotocol,
    server = srv,
  }, Conn)
end

function Conn:send(data, kind) return self.server:send(self.id, data, kind) end
function Conn:send_text(data) return self.server:send(self.id, data, "text") end
function Conn:send_binary(data) return self.server:send(self.id, data, "binary") end
function Conn:ping(data) return self.server:ping(self.id, data) end
function Conn:close(code, reason) return self.server:close(self.id, code, reason) end

--- Gives the connection a unique tag (nil removes it).
-- Returns true, or nil, "tag taken by another connection" / "no such client".
function Conn:set_tag(tag)
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

local NUMERIC_OPTIONS = {
  io_threads = true, agents = true, max_message_size = true,
  max_frame_size = true, max_handshake_size = true, handshake_timeout = true,
  max_outbound = true, idle_timeout = true, ping_interval = true,
  close_timeout = true, max_connections = true, fragment_size = true,
  control_events = true, agent_budget = true,
}
local FACADE_OPTIONS = {
  host = true, port = true, ws_paths = true, http_routes = true,
  tls_cert = true, tls_key = true, spread = true, reuse_port = true,
  log = true, max_batch = true, handlers = true,
}
-- The spread option: how accepted connections are spread over the I/O
-- threads (a connection stays on its thread for life).
local SPREADS = {
  least_connections = core.SPREAD_LEAST_CONNECTIONS, -- fewest open; ties in turn
  round_robin = core.SPREAD_ROUND_ROBIN,             -- each thread in turn
}
local EVENTS = {}
for _, name in pairs(EVENT_NAMES) do EVENTS[name] = true end

local function default_log(msg)
  io_stderr:write("libwebsock2: ", msg, "\n")
  io_stderr:flush()
end

local function configure(h, opts)
  local cfg = core.config_of(h)
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
--   handshake_timeout, max_outbound, idle_timeout, ping_interval,
--   close_timeout, max_connections, fragment_size (times in ms, sizes in
--   bytes), tls_cert + tls_key (PEM files: serve wss:// and https),
--   control_events (deliver ping/pong), ws_paths (list of allowed
--   WebSocket paths; default all), http_routes ({ ["/"] = "<html>..." } or
--   { ["/x"] = { body = ..., content_type = ... } }), handlers ({ message =
--   fn, ... }), log (function(msg) for handler errors; default stderr),
--   max_batch (most events one poll() dispatches; default 10000).
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
    _state = "new",          -- new | running | stopping | stopped | freed
    _polling = false,
    _log = opts.log or default_log,
    _max_batch = opts.max_batch or 10000,
    port = nil,
  }, Server)
  if opts.handlers then
    for ev, fn in pairs(opts.handlers) do self:on(ev, fn) end
  end
  return self
end

--- Sets the handler for an event (nil removes it); returns the server.
--   open(conn)  message(conn, data, kind)  close(conn, code, reason)
--   ping(conn, data)  pong(conn, data)  drain(conn)
function Server:on(event, fn)
  if not EVENTS[event] then error("unknown event '" .. tostring(event) .. "'", 2) end
  if fn ~= nil and type(fn) ~= "function" then
    error("handler must be a function", 2)
  end
  self._handlers[event] = fn
  return self
end

--- Binds, listens and starts the threads. Sets srv.port. true or nil, err.
function Server:start()
  if self._state ~= "new" then return nil, c_strerror(core.ERR_STATE) end
  local rc = core.server_start(self._s)
  if rc ~= 0 then return fail(rc) end
  self._state = "running"
  self.port = core.server_port(self._s)
  return true
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
  end
  return true
end

function Server:__tostring()
  return "websock server (" .. self._state .. ", port " .. tostring(self.port) .. ")"
end

--- The file descriptor readable while events are queued (for epoll,
-- cqueues, luv, ...: then call srv:poll(0)). fd or nil, err.
function Server:fd()
  local fd = core.server_event_fd(self._s)
  if fd < 0 then return fail(fd) end
  return fd
end

-- Handler call: pcall; on error log it and close the connection with 1011.
local function call(self, name, fn, conn, a, b)
  local ok, err = pcall(fn, conn, a, b)
  if not ok then
    self._log("error in '" .. name .. "' handler: " .. tostring(err))
    if name ~= "close" and conn then
      c_close(self._s, conn.id, core.CLOSE_INTERNAL_ERROR, "handler error")
    end
  end
end

-- The connection of an event record: a new one for OPEN, the known one
-- otherwise (made from the record if none is known), dropped from the
-- table and marked closed for CLOSE.
local function conn_of(self, ev, etype)
  local conns, id = self._conns, ev.id
  local conn = conns[id]
  if etype == "open" or not conn then
    conn = new_conn(self, ev)
    conns[id] = conn
  end
  if etype == "close" then
    conn.closed = true
    conns[id] = nil
  end
  return conn
end

local function dispatch(self, ev)
  local etype = EVENT_NAMES[ev.type]
  local conn = conn_of(self, ev, etype)
  local fn = self._handlers[etype]
  if not fn then return end
  if etype == "message" then
    call(self, "message", fn, conn, ev.data, KINDS[ev.opcode])
  elseif etype == "close" then
    call(self, "close", fn, conn, ev.close_code, ev.data)
  elseif etype == "open" or etype == "drain" then
    call(self, etype, fn, conn)
  else -- ping, pong
    call(self, etype, fn, conn, ev.data)
  end
end
-- For tests: hands one event record to the handlers as poll() does.
Server._dispatch = dispatch

--- Dispatches queued events to the handlers: waits up to timeout_ms
-- (default 0 = never blocks; -1 = until one comes) for the first event,
-- then takes whatever else is queued without waiting, at most max events
-- (default: the max_batch option). Returns the number dispatched, or nil,
-- err. A poll() while another poll() of this server is dispatching (from a
-- handler, or from another coroutine while a handler yields) returns 0:
-- one consumer at a time keeps per-connection order.
function Server:poll(timeout_ms, max)
  if self._polling then return 0 end
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  local s = self._s
  max = max or self._max_batch
  timeout_ms = timeout_ms or 0
  self._polling = true
  local n = 0
  local rc, ev = c_poll(s, timeout_ms)
  while rc == 1 do
    n = n + 1
    dispatch(self, ev)
    if n >= max then break end
    rc, ev = c_poll(s, 0)
  end
  self._polling = false
  if rc < 0 then return fail(rc) end
  return n
end

--- Pull style, without handlers: waits up to timeout_ms (default 0; -1 =
-- forever) for one event and returns it as a table { type = "open" |
-- "message" | "close" | "ping" | "pong" | "drain", id, conn, tag, data,
-- kind ("text" | "binary"), code (close code), reason (close reason),
-- path, query, remote_address, subprotocol }; false when none came in
-- time; nil, err on error. Connection objects are kept as with poll().
function Server:recv(timeout_ms)
  if self._polling then return false end
  if self._state == "freed" then return nil, c_strerror(core.ERR_INVALID) end
  local rc, ev = c_poll(self._s, timeout_ms or 0)
  if rc < 0 then return fail(rc) end
  if rc == 0 then return false end
  local etype = EVENT_NAMES[ev.type]
  local out = { type = etype, id = ev.id, conn = conn_of(self, ev, etype),
                tag = ev.tag, kind = KINDS[ev.opcode], path = ev.path,
                query = ev.query, remote_address = ev.remote_addr,
                subprotocol = ev.subprotocol }
  if etype == "close" then
    out.code, out.reason = ev.close_code, ev.data
  else
    out.data = ev.data
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

--- Gives connection id the unique tag (nil removes it). true or nil, err.
function Server:set_tag(id, tag)
  if tag ~= nil and type(tag) ~= "string" then tag = tostring(tag) end
  local rc = core.server_set_tag(self._s, id, tag)
  if rc ~= 0 then return fail(rc) end
  local conn = self._conns[id]
  if conn then conn.tag = tag end
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

return M
