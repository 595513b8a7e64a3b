--- echo_server.lua: echoes every message back with its type.
--
--   lua5.4 examples/lua/echo_server.lua --port P [--host H]
--          [--io-threads N] [--agents M] [--max-message BYTES]
--          [--deflate | --deflate-dedicated]
--
-- --deflate offers permessage-deflate with one compressor per I/O thread
-- (deflate = true), --deflate-dedicated with one per connection (deflate
-- = { mode = "dedicated" }); without them it echoes uncompressed, as the
-- C echo_server does for the benchmarks.
--
-- Needs libwebsock2 on package.path/package.cpath, e.g. from a build tree:
--   LUA_PATH="build/lua/share/?.lua;;" LUA_CPATH="build/lua/5.4/?.so;;"
-- (use build/lua/5.1 with luajit). Prints "listening on PORT"; stops
-- cleanly on SIGINT/SIGTERM.
local websock = require("libwebsock2")

local opts = { host = "127.0.0.1", port = nil }
local names = { ["--port"] = "port", ["--host"] = "host",
                ["--io-threads"] = "io_threads", ["--agents"] = "agents",
                ["--max-message"] = "max_message_size" }
local i = 1
local flags = { ["--deflate"] = true, ["--deflate-dedicated"] = { mode = "dedicated" } }
while i <= #arg do
  local key = names[arg[i]]
  if flags[arg[i]] then -- flags without a value
    opts.deflate = flags[arg[i]]
    i = i + 1
  elseif not key or arg[i + 1] == nil then
    io.stderr:write("usage: echo_server.lua --port P [--host H] [--io-threads N] ",
                    "[--agents M] [--max-message BYTES] [--deflate | --deflate-dedicated]\n")
    os.exit(2)
  else
    local v = arg[i + 1]
    opts[key] = (key == "host") and v or tonumber(v)
    i = i + 2
  end
end
if not opts.port then io.stderr:write("--port is required\n"); os.exit(2) end

local srv, err = websock.server(opts)
if not srv then io.stderr:write("echo_server: ", err, "\n"); os.exit(1) end
srv:on("message", function(conn, data, kind) conn:send(data, kind) end)

local ok
ok, err = srv:start()
if not ok then io.stderr:write("echo_server: ", err, "\n"); os.exit(1) end
websock.catch_signals()
print("listening on " .. srv.port)
io.stdout:flush()
ok, err = srv:run()
srv:free()
if not ok then io.stderr:write("echo_server: ", err, "\n"); os.exit(1) end
