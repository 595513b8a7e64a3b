-- What the Lua test scripts share (see run.sh): PASS/FAIL reporting, a
-- test runner that tags each name with the VM, and an equality check.
-- T.failures counts the failed checks; scripts exit with it.
local T = { failures = 0, VM = jit and jit.version or _VERSION }

function T.report(name, ok, why)
  if ok then
    print("PASS " .. name)
  else
    T.failures = T.failures + 1
    print("FAIL " .. name .. ": " .. tostring(why))
  end
  io.stdout:flush()
end

function T.test(name, fn)
  local ok, err = pcall(fn)
  T.report("[" .. T.VM .. "] " .. name, ok, err)
end

function T.eq(a, b, what)
  if a ~= b then
    error((what or "value") .. ": expected " .. tostring(b) .. ", got " .. tostring(a), 2)
  end
end

-- Waits (up to |tries| x 50 ms, running |each| between tries when given)
-- for the helper client writing to the file |out| to end with DONE, relays
-- its PASS/FAIL lines tagged with the VM (a FAIL counts), and reports
-- whether it finished as |what|.
function T.client_results(out, what, tries, each)
  local text = ""
  for _ = 1, tries do
    local f = io.open(out)
    text = f and f:read("*a") or ""
    if f then f:close() end
    if text:find("DONE") then break end
    if each then each() end
    os.execute("sleep 0.05")
  end
  os.remove(out)
  for line in text:gmatch("[^\n]+") do
    local status, name = line:match("^(%u+) (.*)$")
    if status == "PASS" or status == "FAIL" then
      print(status .. " [" .. T.VM .. "] client: " .. name)
      if status == "FAIL" then T.failures = T.failures + 1 end
    elseif line ~= "DONE" then
      print("  client: " .. line)
    end
  end
  T.report("[" .. T.VM .. "] " .. what, text:find("DONE") ~= nil, "no DONE")
end

return T
