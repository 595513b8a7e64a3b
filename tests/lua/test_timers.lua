-- Timers of the Lua facade (srv:every, srv:after), run by both lua5.4 and
-- luajit (see run.sh): they fire from run() and poll() without a client,
-- cancel() stops them, a late one is not made up for, an error is logged.
-- Counts are checked loosely: the machine may be loaded. Prints "PASS
-- name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local test, eq = T.test, T.eq
local now = websock.core.now_ms

test("every and after fire from run(); a timer stops the server", function()
  local logs = {}
  local s = assert(websock.server{ port = 0, log = function(m) logs[#logs + 1] = m end })
  local ticks, once, cancelled_ticks, boom = 0, 0, 0, 0
  local t0 = now()
  local tick
  tick = s:every(20, function(t)
    ticks = ticks + 1
    if t ~= tick then error("fn(timer) got " .. tostring(t)) end
  end)
  local victim = s:every(10, function() cancelled_ticks = cancelled_ticks + 1 end)
  victim:cancel()
  s:every(30, function(t) boom = boom + 1; if boom == 2 then t:cancel() end; error("tick failed") end)
  s:after(50, function() once = once + 1 end)
  s:after(400, function() s:stop() end)
  local ok, err = s:run{ interval = 1000 } -- the timers cut the 1 s wait short
  assert(ok, err)
  local took = now() - t0
  assert(took >= 390, "run() returned after " .. took .. " ms")
  assert(took < 20000, "run() took " .. took .. " ms")
  assert(ticks >= 3, "every(20) fired " .. ticks .. " times in " .. took .. " ms")
  assert(ticks <= took / 20 + 1, "every(20) fired " .. ticks .. " times in " .. took .. " ms")
  eq(once, 1, "after(50)"); eq(cancelled_ticks, 0, "a cancelled timer")
  eq(boom, 2, "a failing timer that cancels itself the second time")
  eq(#logs, 2, "logged errors")
  assert(logs[1]:find("^error in timer: .*tick failed"), logs[1])
  assert(tick:cancel()); assert(tick:cancel())
  s:free()
end)

test("poll(-1) returns when a timer is due; poll(0) runs due timers", function()
  local s = assert(websock.server{ port = 0 })
  assert(s:start())
  local fired = false
  s:after(100, function() fired = true end)
  local t0 = now()
  eq(s:poll(-1), 0, "events")
  assert(fired, "the timer did not fire")
  assert(now() - t0 >= 95, "returned after " .. (now() - t0) .. " ms")
  local n = 0
  s:after(0, function() n = n + 1 end)
  eq(s:poll(0), 0); eq(n, 1, "after(0) from poll(0)")
  assert(s:shutdown()); s:free()
end)

test("a late every() is not made up for", function()
  local s = assert(websock.server{ port = 0 })
  assert(s:start())
  local n = 0
  s:every(10, function() n = n + 1 end)
  os.execute("sleep 0.3") -- 30 periods pass without a poll
  s:poll(0)
  eq(n, 1, "calls after a late poll")
  assert(s:shutdown()); s:free()
end)

test("a timer may drain_and_stop() the server: run() then returns", function()
  local s = assert(websock.server{ port = 0 })
  local ok, left
  s:after(50, function() ok, left = s:drain_and_stop(100) end)
  local t0 = now()
  assert(s:run{ interval = 1000 })
  eq(ok, true, "drain_and_stop"); eq(left, 0, "connections left")
  assert(now() - t0 < 10000, "took " .. (now() - t0) .. " ms")
  local again, err = s:start()
  eq(again, nil); assert(err)
  s:free()
end)

test("timer arguments are checked", function()
  local s = assert(websock.server{})
  eq(pcall(s.every, s, 0, function() end), false)
  eq(pcall(s.every, s, -5, function() end), false)
  eq(pcall(s.after, s, "soon", function() end), false)
  eq(pcall(s.after, s, 10, "fn"), false)
  local ok, e = pcall(s.every, s, 0, function() end)
  assert(tostring(e):find("every: ms must be at least 1", 1, true), e)
  s:free()
end)

test("take_signal(): the last caught signal, then nil", function()
  eq(websock.take_signal(), nil, "before any signal")
  assert(websock.catch_signals())
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^%d+")
  f:close()
  os.execute("kill -TERM " .. pid)
  local got
  for _ = 1, 100 do
    got = websock.take_signal()
    if got then break end
    os.execute("sleep 0.02")
  end
  eq(got, 15, "SIGTERM")
  eq(websock.take_signal(), nil, "taken")
end)

print(("%d failed"):format(T.failures))
os.exit(T.failures == 0 and 0 or 1)
