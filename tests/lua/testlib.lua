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

return T
