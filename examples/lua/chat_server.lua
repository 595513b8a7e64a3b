--- chat_server.lua: a small chat on the WebSocket path /chat, showing
-- ids, tags, send-by-tag, topics and broadcast from Lua handlers, alone or
-- as a node of a cluster through Redis.
--
--   lua5.4 examples/lua/chat_server.lua --port P [--host H]
--          [--io-threads N] [--agents M] [--tls-cert FILE --tls-key FILE]
--          [--no-deflate]
--          [--redis redis://HOST:PORT [--node N] [--cluster-ttl MS]]
--
-- --port 0 takes a free port; it prints "listening on PORT" once up and
-- stops cleanly on SIGINT/SIGTERM. permessage-deflate is on (deflate =
-- true: one compressor per I/O thread, no compressor memory per
-- connection; every browser asks for it); --no-deflate turns it off.
--
-- --redis makes it a node of the cluster of every chat server on that
-- Redis: nicks are unique across the nodes, and /msg, rooms and say reach
-- the clients of every node. --node N (1..1023) is its node number;
-- without it (or 0) it draws a free one from Redis at start (and fails to
-- start when Redis does not answer). --cluster-ttl MS (100..600000,
-- default 9000): how soon the nicks of a node that died without a word
-- are free again (within MS + MS/10).
--
-- Protocol (text messages):
--   server -> new client:   welcome #ID
--   /nick NAME              ok nick NAME | error nick-taken NAME (held by
--                           a client of any node) | error cluster-down NAME
--                           (Redis unreachable) | error bad-nick NAME; on a
--                           cluster the answer may come a moment later
--                           (once Redis answered the claim); a refused
--                           /nick keeps the nick of before; a /nick sent
--                           while one waits for Redis waits its turn (one
--                           claim at a time), so /nick lines get one
--                           answer each, in the order sent, as on a
--                           single server
--                           later, unasked: error nick-lost NAME (after a
--                           Redis restart another node's client got it)
--   /msg NAME TEXT          NAME (on whichever node) gets "msg FROM TEXT";
--                           sender gets ok msg NAME | error no-such-user
--                           NAME | error cluster-down NAME
--   /join ROOM              ok join ROOM (ROOM: a topic, 1..255 bytes)
--                           | error too-many-rooms ROOM (64 per client)
--   /leave ROOM             ok leave ROOM
--   /room ROOM TEXT         every other member of ROOM (on any node) gets
--                           "room ROOM FROM TEXT"; the sender ok room ROOM
--                           | error not-in-room ROOM
--                           (/join, /leave, /room without a name or with
--                           one over 255 bytes: error bad-room)
--   anything else           every other client of every node gets
--                           "say FROM TEXT"
-- FROM is the sender's confirmed nick, or #ID before it has one (and
-- again once it lost it). A /nick waiting for Redis changes nothing yet:
-- the nick of before is still the client's (sends to it reach it), so FROM
-- stays that nick until Redis confirmed the new one, and stays it when
-- Redis refuses the new one.
--
-- GET / serves the browser client examples/web/chat.html (found relative
-- to this script): open http://HOST:PORT/ in a browser.
local websock = require("libwebsock2")

local ROOMS_MAX = 64 -- rooms one client may be in

local USAGE = "usage: chat_server.lua --port P [--host H] [--io-threads N] [--agents M]" ..
              " [--tls-cert FILE --tls-key FILE] [--no-deflate]" ..
              " [--redis URL [--node N] [--cluster-ttl MS]]\n"
local opts = { host = "127.0.0.1", ws_paths = { "/chat" }, deflate = true }
local names = { ["--port"] = "port", ["--host"] = "host",
                ["--io-threads"] = "io_threads", ["--agents"] = "agents",
                ["--tls-cert"] = "tls_cert", ["--tls-key"] = "tls_key",
                ["--redis"] = "cluster", ["--node"] = "node",
                ["--cluster-ttl"] = "cluster_ttl" }
local TEXT_VALUES = { host = true, tls_cert = true, tls_key = true, cluster = true }
local i = 1
while i <= #arg do
  local key = names[arg[i]]
  if arg[i] == "--no-deflate" then -- the flag without a value
    opts.deflate = false
    i = i + 1
  elseif not key or arg[i + 1] == nil then
    io.stderr:write(USAGE)
    os.exit(2)
  else
    local v = arg[i + 1]
    if TEXT_VALUES[key] then
      opts[key] = v
    else
      opts[key] = tonumber(v)
      if not opts[key] then
        io.stderr:write("chat_server: ", arg[i], " needs a number, got ", v, "\n", USAGE)
        os.exit(2)
      end
    end
    i = i + 2
  end
end
if not opts.port then io.stderr:write("--port is required\n", USAGE); os.exit(2) end
if (opts.node ~= nil or opts.cluster_ttl ~= nil) and not opts.cluster then
  io.stderr:write("chat_server: --node and --cluster-ttl need --redis\n", USAGE)
  os.exit(2)
end

-- The page is examples/web/chat.html: ../web/ from this script's directory.
local function load_page()
  local dir = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
  local path = dir .. "/../web/chat.html"
  local f, ferr = io.open(path, "rb")
  if not f then
    io.stderr:write("chat_server: cannot read page: ", tostring(ferr),
                    "; serving a stub page\n")
    return "<!doctype html><title>chat</title><p>chat.html not found</p>"
  end
  local body = f:read("*a")  -- "*a": Lua 5.1 and LuaJIT too
  f:close()
  return body
end
opts.http_routes = {
  ["/"] = { body = load_page(), content_type = "text/html; charset=utf-8" },
}

local srv, err = websock.server(opts)
if not srv then io.stderr:write("chat_server: ", err, "\n"); os.exit(1) end

-- What the chat keeps per client, by connection id (dropped on close):
--   nick     the confirmed nick (nil before it has one): FROM
--   asks     its /nick lines not answered yet, in the order sent (the
--            names): on a cluster the first one's claim waits for Redis,
--            the others wait for it
--   rooms    room -> true for the rooms it joined; nrooms their number
local clients = {}

local function id_text(conn) return string.format("%d", conn.id) end

local function client_of(conn)
  local c = clients[conn.id]
  if not c then
    c = { asks = {}, rooms = {}, nrooms = 0 }
    clients[conn.id] = c
  end
  return c
end

local function name_of(conn)
  return client_of(conn).nick or ("#" .. id_text(conn))
end

-- The first /nick waiting has its outcome (code nil: success): its
-- answer, in its turn. A refusal leaves the nick of before.
local function answered(conn, c, code)
  local nick = table.remove(c.asks, 1)
  if not code then
    c.nick = nick -- confirmed
    conn:send("ok nick " .. nick)
  elseif code == websock.ERR.TAG_TAKEN then
    conn:send("error nick-taken " .. nick)
  elseif code == websock.ERR.CLUSTER then
    conn:send("error cluster-down " .. nick)
  else
    conn:send("error bad-nick " .. nick)
  end
end

-- Asks for the /nick lines waiting, in turn, one claim at a time, until
-- one waits for Redis (the tag handler answers it then): every /nick is
-- answered as on one server, in order, and a refused one leaves the nick
-- of before (a claim released by a later set_tag would give the client
-- back the nick of before the released one instead).
local function next_nicks(conn, c)
  while c.asks[1] do
    local ok, how, code = conn:set_tag(c.asks[1])
    if ok and how == "pending" then
      -- held here, Redis to confirm. The old nick stays the client's (and
      -- FROM) until then, and after a refusal.
      return
    end
    -- settled at once: no cluster, the nick it has, or refused (set_tag
    -- refuses an empty or too long nick: bad-nick)
    answered(conn, c, not ok and code or nil)
  end
end

local function on_nick(conn, nick)
  local c = client_of(conn)
  c.asks[#c.asks + 1] = nick
  if #c.asks == 1 then -- else a claim is in flight: this one waits its turn
    next_nicks(conn, c)
  end
end

-- A room name: the first word of |rest|, 1..255 bytes; the text after it.
local function room_args(rest)
  local room, text = rest:match("^([^ ]*) ?(.*)$")
  if #room == 0 or #room > 255 then return nil end
  return room, text
end

local function on_room(conn, cmd, rest)
  local room, text = room_args(rest)
  if not room then
    conn:send("error bad-room")
    return
  end
  local c = client_of(conn)
  if cmd == "join" then
    if not c.rooms[room] then
      local ok = c.nrooms < ROOMS_MAX and conn:subscribe(room)
      if not ok then
        conn:send("error too-many-rooms " .. room)
        return
      end
      c.rooms[room], c.nrooms = true, c.nrooms + 1
    end
    conn:send("ok join " .. room)
  elseif cmd == "leave" then
    if c.rooms[room] then
      conn:unsubscribe(room)
      c.rooms[room], c.nrooms = nil, c.nrooms - 1
    end
    conn:send("ok leave " .. room)
  elseif not c.rooms[room] then
    conn:send("error not-in-room " .. room)
  else
    srv:publish(room, "room " .. room .. " " .. name_of(conn) .. " " .. text, "text", conn)
    conn:send("ok room " .. room)
  end
end

srv:on("open", function(conn)
  client_of(conn)
  conn:send("welcome #" .. id_text(conn))
end)

srv:on("close", function(conn)
  clients[conn.id] = nil -- its nick and its topics went with it
end)

-- A cluster's answer about a nick: Redis' answer to the claim in flight
-- (code nil: granted; refused, the connection has its nick of before
-- again, still the confirmed one), or unasked when the nick was lost to
-- another node's client (after a Redis restart).
srv:on("tag", function(conn, nick, _, code)
  local c = client_of(conn)
  if c.asks[1] == nick then
    answered(conn, c, code)
    return next_nicks(conn, c)
  end
  if code then
    if c.nick == nick then c.nick = nil end
    conn:send("error nick-lost " .. nick)
  end
end)

srv:on("message", function(conn, text, kind)
  if kind ~= "text" then return end
  local nick = text:match("^/nick (.*)$")
  if nick and #text > 6 then
    return on_nick(conn, nick:match("^[^ ]*"))
  end
  local rest = text:match("^/msg (.*)$")
  if rest and #text > 5 then
    local to, body = rest:match("^([^ ]*) ?(.*)$")
    local ok, _, code = srv:send_tag(to, "msg " .. name_of(conn) .. " " .. body)
    if ok then
      conn:send("ok msg " .. to)
    elseif code == websock.ERR.CLUSTER then
      conn:send("error cluster-down " .. to)
    else
      conn:send("error no-such-user " .. to)
    end
    return
  end
  local cmd
  cmd, rest = text:match("^/(%l+) (.*)$")
  if cmd == "join" or cmd == "leave" or cmd == "room" then
    return on_room(conn, cmd, rest)
  end
  srv:broadcast("say " .. name_of(conn) .. " " .. text, "text", conn.id)
end)

local ok
ok, err = srv:start()
if not ok then io.stderr:write("chat_server: ", err, "\n"); os.exit(1) end
websock.catch_signals()
if srv.node then
  io.stderr:write("chat_server: cluster node ", srv.node, "\n")
end
print("listening on " .. srv.port)
io.stdout:flush()
ok, err = srv:run()
srv:free()
if not ok then io.stderr:write("chat_server: ", err, "\n"); os.exit(1) end
