--- lws2_app: the libwebsock2 side of examples/openresty/nginx.conf, one
-- WebSocket server per nginx worker.
--
--   init_worker_by_lua_block { require("lws2_app").init_worker{ port = 8081 } }
--   content_by_lua_block     { require("lws2_app").http_send() }   -- /send
--   content_by_lua_block     { require("lws2_app").http_stats() }  -- /stats
--   exit_worker_by_lua_block { local app = package.loaded["lws2_app"]
--                              if app then app.exit_worker() end }
--
-- Every worker starts its own server with reuse_port on the one WebSocket
-- port (the kernel spreads new connections over all of them); a 10 ms
-- ngx.timer.every polls it without blocking (poll(0): handlers, handshake
-- answers and the srv:every timers run in that timer's coroutine, so they
-- may use cosockets).
--
-- A client lives in one worker, an HTTP request reaches any: the shared
-- dict lws2 maps each nick to its owner ("PID:ID"), each worker has a
-- mailbox list mail:PID that its server drains every 10 ms (srv:every),
-- so /send?tag=NICK reaches the client on whichever worker holds it. Keys
-- use the pid, not ngx.worker.id(): during a reload an old worker and the
-- new one of the same id run side by side.
--
-- permessage-deflate is on (deflate = true: one compressor per I/O
-- thread and no compressor memory per connection; browsers always ask for
-- it): chat and JSON traffic goes compressed. init_worker{ deflate =
-- false } turns it off, a table ({ mode = "dedicated", level = 6 }) tunes
-- it.
--
-- nginx -s reload / quit: the timer runs once more with premature = true;
-- the old worker stops accepting (the new workers take every new
-- connection), serves its clients up to drain_ms more (they may still
-- chat and receive /send), then closes the rest with 1001 and exits.
-- nginx -s stop: exit_worker() closes them at once.
--
-- The WebSocket protocol of the example: "welcome #ID" (or "welcome NAME
-- #ID" on /private), "/nick NAME" -> "ok nick NAME" | "error nick-taken
-- NAME", "/whoami" -> "worker ID pid PID", anything else is echoed.
-- /private needs "Authorization: Bearer TOKEN" with a token of the shared
-- dict (token:TOKEN -> user name; the demo token "demo-token" is alice's,
-- "slow-token" is bob's after a 2 s wait, standing in for an auth
-- service reached by a cosocket); others get 401.
local websock = require("libwebsock2")

local M = {}
local shared, srv, me, pid, drain_ms

local function owner_of(conn)
  return pid .. ":" .. string.format("%d", conn.id)
end

-- The handshake handler: it runs in its own timer (handshake_spawn), so a
-- slow token lookup holds up neither this worker's events nor nginx.
local function handshake(req)
  if req.path ~= "/private" then return true end
  local token = (req.headers.authorization or ""):match("^Bearer (%S+)$")
  local user = token and shared:get("token:" .. token)
  if user and user:match("^slow:") then
    ngx.sleep(2) -- an auth service's round trip
    user = user:sub(6)
  end
  if not user then
    return 401, "unknown token", { ["WWW-Authenticate"] = 'Bearer realm="lws2"' }
  end
  req.user = user -- conn.request.user in the handlers
  return true
end

local function on_open(conn)
  local user = conn.request and conn.request.user
  conn:send("welcome " .. (user and (user .. " ") or "") .. "#" ..
            string.format("%d", conn.id))
end

local function on_message(conn, data, kind)
  local nick = kind == "text" and data:match("^/nick (%S+)$")
  if nick then
    local ok = shared:safe_add("nick:" .. nick, owner_of(conn))
    if ok and not conn:set_tag(nick) then
      shared:delete("nick:" .. nick)
      ok = false
    end
    conn:send(ok and ("ok nick " .. nick) or ("error nick-taken " .. nick))
  elseif kind == "text" and data == "/whoami" then
    conn:send("worker " .. me .. " pid " .. pid)
  else
    conn:send(data, kind)
  end
end

local function on_close(conn)
  if conn.tag and shared:get("nick:" .. conn.tag) == owner_of(conn) then
    shared:delete("nick:" .. conn.tag)
  end
end

-- Sends other workers handed over for our tags.
local function drain_mailbox()
  local box = "mail:" .. pid
  for _ = 1, 1000 do
    local item = shared:lpop(box)
    if not item then break end
    local tag, text = item:match("^(%S+)\n(.*)$")
    local sent, err = srv:send_tag(tag, text)
    if not sent then ngx.log(ngx.INFO, "libwebsock2: send to ", tag, ": ", err) end
  end
end

local function publish_stats()
  if ngx.worker.exiting() then return end -- the new worker of this id does
  local st = srv:stats()
  if st then
    shared:set("stats:" .. me, table.concat({ st.connections, st.accepted_total,
                                              st.messages_in, st.messages_out }, " "))
  end
end

-- nginx -s reload / quit: drain, then stop; never blocks the worker long.
local function leave()
  ngx.log(ngx.NOTICE, "libwebsock2 worker ", me, " pid ", pid, " draining (up to ",
          drain_ms, " ms)")
  local ok, left = srv:drain_and_stop(drain_ms)
  drain_mailbox()
  shared:delete("mail:" .. pid)
  srv:free()
  package.loaded["libwebsock2.app"] = nil
  ngx.log(ngx.NOTICE, "libwebsock2 server stopped (", ok and tostring(left) or "?",
          " connections closed at the drain deadline)")
end

--- Starts this worker's server. opts: port, drain_ms (default 30000),
-- io_threads (default 2), deflate (the server option; default true).
function M.init_worker(opts)
  shared = ngx.shared.lws2
  me, pid = ngx.worker.id(), ngx.worker.pid()
  drain_ms = opts.drain_ms or 30000
  shared:safe_add("token:demo-token", "alice")
  shared:safe_add("token:slow-token", "slow:bob")
  local err
  srv, err = websock.server{
    host = "127.0.0.1",
    port = opts.port,
    io_threads = opts.io_threads or 2,
    reuse_port = true,      -- every worker's server on this port
    ws_paths = { "/chat", "/private" },
    close_timeout = 2000,   -- bounds the closing handshakes at the end
    deflate = opts.deflate == nil or opts.deflate, -- permessage-deflate, shared mode
    handshake = handshake,
    handshake_spawn = function(fn) return ngx.timer.at(0, fn) end,
    log = function(msg) ngx.log(ngx.ERR, msg) end,
  }
  if not srv then
    ngx.log(ngx.ERR, "libwebsock2: ", err)
    return
  end
  srv:on("open", on_open)
  srv:on("message", on_message)
  srv:on("close", on_close)
  local ok
  ok, err = srv:start()
  if not ok then
    ngx.log(ngx.ERR, "libwebsock2: start: ", err)
    srv:free()
    return
  end
  package.loaded["libwebsock2.app"] = srv -- for exit_worker and /send
  ngx.log(ngx.NOTICE, "libwebsock2 worker ", me, " listening on ", srv.port)
  srv:every(10, drain_mailbox)
  srv:every(100, publish_stats)
  publish_stats()
  local hdl, terr = ngx.timer.every(0.01, function(premature)
    if premature then return leave() end
    -- Never blocks: at most 1000 queued events per tick.
    local n, perr = srv:poll(0, 1000)
    if not n then ngx.log(ngx.ERR, "libwebsock2 poll: ", perr) end
  end)
  if not hdl then ngx.log(ngx.ERR, "libwebsock2: timer: ", terr) end
end

--- exit_worker_by_lua: after a graceful drain nothing is left; on
-- "nginx -s stop" the clients get 1001 here (bounded by close_timeout).
function M.exit_worker()
  local s = package.loaded["libwebsock2.app"]
  if s then
    s:shutdown()
    s:free()
    package.loaded["libwebsock2.app"] = nil
  end
end

--- /send?tag=NAME&text=TEXT -> 200 "sent" | 404 "no such client": sent
-- now when this worker owns the tag, else handed to the owner's mailbox
-- (X-Lws2-Via: direct | mailbox).
function M.http_send()
  local args = ngx.req.get_uri_args()
  local tag, text = args.tag, args.text
  if type(tag) ~= "string" or type(text) ~= "string" or not tag:match("^%S+$") then
    ngx.status = 400
    ngx.print("usage: /send?tag=NAME&text=TEXT")
    return
  end
  local dict = ngx.shared.lws2
  local owner = dict:get("nick:" .. tag)
  local owner_pid = owner and tonumber(owner:match("^(%d+):"))
  if not owner_pid then
    ngx.status = 404
    ngx.print("no such client")
    return
  end
  local s = package.loaded["libwebsock2.app"]
  if owner_pid == ngx.worker.pid() and s then
    ngx.header["X-Lws2-Via"] = "direct"
    local ok, err = s:send_tag(tag, text)
    if not ok then
      ngx.status = (err == "no such client") and 404 or 500
      ngx.print(err)
      return
    end
  else
    ngx.header["X-Lws2-Via"] = "mailbox"
    local len, err = dict:rpush("mail:" .. owner_pid, tag .. "\n" .. text)
    if not len then
      ngx.status = 503
      ngx.print(err)
      return
    end
  end
  ngx.print("sent")
end

--- /stats: totals over the workers, then one line per worker.
function M.http_stats()
  local dict = ngx.shared.lws2
  local total = { 0, 0, 0, 0 }
  local lines = {}
  for id = 0, ngx.worker.count() - 1 do
    local v = dict:get("stats:" .. id)
    if v then
      local f = {}
      for x in v:gmatch("%d+") do f[#f + 1] = tonumber(x) end
      for i = 1, 4 do total[i] = total[i] + f[i] end
      lines[#lines + 1] = ("worker %d connections %d accepted %d"):format(id, f[1], f[2])
    end
  end
  if #lines == 0 then
    ngx.status = 503
    return
  end
  ngx.say("connections ", total[1])
  ngx.say("accepted ", total[2])
  ngx.say("messages_in ", total[3])
  ngx.say("messages_out ", total[4])
  for _, line in ipairs(lines) do ngx.say(line) end
end

return M
