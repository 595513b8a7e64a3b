-- permessage-deflate in the Lua facade (the deflate option), run by both
-- lua5.4 and luajit (see run.sh): the option's checks, then five echo
-- servers over real sockets with deflate_client.py (python3-websockets,
-- which negotiates deflate by default, and raw zlib clients):
--   S: deflate = true (shared mode, the defaults), "bcast:TEXT" broadcasts;
--   D: deflate = { mode = "dedicated", window_bits = 10, mem_level = 4,
--      level = 9, threshold = 0 }, max_message_size = 100000;
--   H: deflate = true with a handshake handler and a subprotocol;
--   O: deflate = false;  N: no deflate option (off by default).
-- Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local python = os.getenv("LWS2_PYTHON") or "/usr/bin/python3"
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local VM, report, test, eq = T.VM, T.report, T.test, T.eq

------------------------------------------------------------ option checks
test("deflate options are checked, naming the field and its range", function()
  local cases = {
    { "yes", 'option deflate must be true, false or a table { mode = "shared" | ' ..
             '"dedicated", window_bits =, mem_level =, level =, threshold = }, got "yes"' },
    { 1, "option deflate must be true, false or a table" },
    { { mode = "fast" }, 'option deflate.mode must be "shared" or "dedicated", got "fast"' },
    { { mode = "off" }, 'option deflate.mode must be "shared" or "dedicated", got "off"' },
    { { mode = 1 }, 'option deflate.mode must be "shared" or "dedicated", got 1' },
    { { window_bits = 8 }, "option deflate.window_bits must be a whole number 9..15 " ..
                           "(default 15), got 8" },
    { { window_bits = 16 }, "option deflate.window_bits must be a whole number 9..15" },
    { { window_bits = 0 }, "option deflate.window_bits must be a whole number 9..15" },
    { { window_bits = 12.5 }, "option deflate.window_bits must be a whole number 9..15" },
    { { mem_level = 0 }, "option deflate.mem_level must be a whole number 1..9 " ..
                         "(default 8), got 0" },
    { { mem_level = 10 }, "option deflate.mem_level must be a whole number 1..9" },
    { { level = -2 }, "option deflate.level must be a whole number -1..9 (default 1), got -2" },
    { { level = 10 }, "option deflate.level must be a whole number -1..9" },
    { { level = "9" }, 'option deflate.level must be a whole number -1..9 (default 1), got "9"' },
    { { threshold = -1 }, "option deflate.threshold must be a whole number of bytes >= 0 " ..
                          "(default 64), got -1" },
    { { threshold = 0 / 0 }, "option deflate.threshold must be a whole number of bytes" },
    { { windowbits = 10 }, "option deflate: unknown field 'windowbits' " ..
                           "(mode, window_bits, mem_level, level, threshold)" },
  }
  for _, c in ipairs(cases) do
    local s, e = websock.server{ deflate = c[1] }
    eq(s, nil, c[2])
    assert(e and e:sub(1, #c[2]) == c[2], ("expected %q, got %q"):format(c[2], tostring(e)))
  end
  for _, ok in ipairs({ true, false, {}, { mode = "shared" }, { mode = "dedicated" },
                        { mode = "dedicated", window_bits = 9, mem_level = 1, level = -1,
                          threshold = 0 },
                        { window_bits = 15, mem_level = 9, level = 0, threshold = 2 ^ 40 } }) do
    local s, e = websock.server{ deflate = ok }
    assert(s, e); s:free()
  end
end)

------------------------------------------------------------ the servers
local logs = {}
local function log(msg) logs[#logs + 1] = msg end
local stopped = false

local sent = {} -- payload bytes each server's handler sent, by server
local function echo_server(opts)
  opts.host, opts.port, opts.log = "127.0.0.1", 0, log
  local s = assert(websock.server(opts))
  sent[s] = 0
  s:on("message", function(conn, data, kind)
    sent[s] = sent[s] + #data
    local text = kind == "text" and data:match("^bcast:(.*)$")
    if data == "stop" then
      stopped = true
      conn:send("bye")
    elseif text then
      assert(s:broadcast(text))
    else
      local ok, err = conn:send(data, kind)
      if not ok then log("send: " .. tostring(err)) end
    end
  end)
  return s
end

local S = echo_server{ deflate = true, io_threads = 2 }
local D = echo_server{ deflate = { mode = "dedicated", window_bits = 10, mem_level = 4,
                                   level = 9, threshold = 0 },
                       max_message_size = 100000 }
local H = echo_server{
  deflate = true, subprotocols = { "chat" },
  handshake = function(req) return true, nil, { ["X-Handshake"] = "lua" } end,
}
local O = echo_server{ deflate = false }
local N = echo_server{}
local servers = { S, D, H, O, N }
for _, s in ipairs(servers) do assert(s:start()) end

local out = os.tmpname()
os.execute(("%s %s/deflate_client.py %d %d %d %d %d > %s 2>&1 &"):format(
  python, here, S.port, D.port, H.port, O.port, N.port, out))

local deadline = os.time() + 170
while not stopped and os.time() <= deadline do
  for _, s in ipairs(servers) do assert(s:poll(5)) end
end

T.client_results(out, "deflate client finished", 200, function()
  for _, s in ipairs(servers) do s:poll(0) end
end)

test("compression shows on the wire: S wrote far fewer bytes than it echoed, N more", function()
  local function out(srv) return assert(srv:stats()).bytes_out end
  assert(sent[S] > 1500000, "S echoed only " .. sent[S] .. " bytes")
  assert(out(S) < sent[S] / 2, ("S: %d bytes on the wire for %d bytes of messages")
                                  :format(out(S), sent[S]))
  assert(out(N) > sent[N], ("N: %d bytes on the wire for %d bytes of messages")
                              :format(out(N), sent[N]))
end)

test("no handler error or refused send was logged", function()
  eq(#logs, 0, "log lines: " .. table.concat(logs, " | "))
end)

for _, s in ipairs(servers) do assert(s:shutdown()); s:free() end
os.exit(T.failures == 0 and 0 or 1)
