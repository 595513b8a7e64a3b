--- chat_server.lua: a small chat on the WebSocket path /chat, showing
-- ids, tags, send-by-tag and broadcast from Lua handlers.
--
--   lua5.4 examples/lua/chat_server.lua --port P [--host H]
--          [--io-threads N] [--agents M] [--no-deflate]
--
-- permessage-deflate is on (deflate = true: one compressor per I/O
-- thread, no compressor memory per connection; every browser asks for
-- it); --no-deflate turns it off.
--
-- Protocol (text messages):
--   server -> new client:   welcome #ID
--   /nick NAME              ok nick NAME | error nick-taken NAME
--   /msg NAME TEXT          NAME gets "msg FROM TEXT";
--                           sender gets ok msg NAME | error no-such-user NAME
--   anything else           every other client gets "say FROM TEXT"
-- FROM is the sender's nick, or #ID before it has one.
--
-- GET / serves the browser client examples/web/chat.html (found relative
-- to this script): open http://HOST:PORT/ in a browser.
local websock = require("libwebsock2")

local opts = { host = "127.0.0.1", ws_paths = { "/chat" }, deflate = true }
local names = { ["--port"] = "port", ["--host"] = "host",
                ["--io-threads"] = "io_threads", ["--agents"] = "agents",
                ["--tls-cert"] = "tls_cert", ["--tls-key"] = "tls_key" }
local i = 1
while i <= #arg do
  local key = names[arg[i]]
  if arg[i] == "--no-deflate" then -- the flag without a value
    opts.deflate = false
    i = i + 1
  elseif not key or arg[i + 1] == nil then
    io.stderr:write("usage: chat_server.lua --port P [--host H] [--io-threads N] [--agents M]"
      .. " [--tls-cert FILE --tls-key FILE] [--no-deflate]\n")
    os.exit(2)
  else
    local v = arg[i + 1]
    local text = key == "host" or key == "tls_cert" or key == "tls_key"
    opts[key] = text and v or tonumber(v)
    i = i + 2
  end
end
if not opts.port then io.stderr:write("--port is required\n"); os.exit(2) end

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

local function name_of(conn)
  return conn.tag or ("#" .. string.format("%d", conn.id))
end

srv:on("open", function(conn)
  conn:send("welcome #" .. string.format("%d", conn.id))
end)

srv:on("message", function(conn, text, kind)
  if kind ~= "text" then return end
  local from = name_of(conn)
  local nick = text:match("^/nick (.*)$")
  if nick and #text > 6 then
    nick = nick:match("^[^ ]*")
    local ok, _, code = conn:set_tag(nick)
    if ok then
      conn:send("ok nick " .. nick)
    elseif code == websock.ERR.TAG_TAKEN then
      conn:send("error nick-taken " .. nick)
    else
      conn:send("error bad-nick " .. nick)
    end
    return
  end
  local rest = text:match("^/msg (.*)$")
  if rest and #text > 5 then
    local to, body = rest:match("^([^ ]*) ?(.*)$")
    if srv:send_tag(to, "msg " .. from .. " " .. body) then
      conn:send("ok msg " .. to)
    else
      conn:send("error no-such-user " .. to)
    end
    return
  end
  srv:broadcast("say " .. from .. " " .. text, "text", conn.id)
end)

local ok
ok, err = srv:start()
if not ok then io.stderr:write("chat_server: ", err, "\n"); os.exit(1) end
websock.catch_signals()
print("listening on " .. srv.port)
io.stdout:flush()
ok, err = srv:run()
srv:free()
if not ok then io.stderr:write("chat_server: ", err, "\n"); os.exit(1) end
