-- The cluster through Redis from Lua, run by both lua5.4 and luajit (see
-- run.sh): a redis-server of the test's own on a free loopback port, two
-- servers of this Lua state as nodes 1 and 2 of one cluster (a third for
-- the drawn number and the Redis restart), and clients made with the
-- facade's websock.connect() (their recv() polls the servers). A publish
-- on node 1 reaches a member on node 2, a broadcast too, a send by id
-- crosses nodes; tags: set_tag's true, "pending" and the tag handler's
-- outcome, TAG_TAKEN at once on the other node, two nodes racing for one
-- tag (the loser's conn.tag its tag of before again, with and without a
-- handler), the pull style's tag event, a claim Redis refuses (a tag
-- planted in Redis for node 2, which node 1 has not heard of): the tag of
-- before held meanwhile and the connection's again after, or none, or a
-- tag given since; settling back to the held tag; the tag still being
-- claimed asked again (Redis paused: "pending" again, one event); a claim
-- in flight when Redis dies (ERR.CLUSTER, the tag of before again), a
-- tag lost to another node after a Redis restart (an unasked tag event);
-- the options (node, cluster_ttl), a node number drawn from Redis, and
-- ERR.CLUSTER from start() when Redis does not answer for the draw.
-- Prints "PASS name" / "FAIL name: why" lines.
local websock = require("libwebsock2")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local T = require("testlib")
local test, eq = T.test, T.eq
local now = websock.core.now_ms
local ERR = websock.ERR

-- A free port: a server on port 0 tells one, then lets it go.
local function free_port()
  local s = assert(websock.server{ host = "127.0.0.1", port = 0 })
  assert(s:start())
  local p = s.port
  s:shutdown()
  s:free()
  return p
end

local rport = free_port()
local pidfile = os.tmpname()
local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end
-- Starts the test's redis-server (again, after redis_kill: same port,
-- empty: no persistence) and waits until it answers.
local function redis_start()
  assert(sh(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no " ..
             "--daemonize yes --pidfile %s --logfile /dev/null"):format(rport, pidfile)))
  for _ = 1, 100 do
    if sh(("redis-cli -p %d ping >/dev/null 2>&1"):format(rport)) then return end
    sh("sleep 0.05")
  end
  error("redis-server did not answer")
end
-- Kills only the redis-server this test started (its pidfile).
local function redis_kill()
  sh(("[ -s %s ] && kill -9 $(cat %s) 2>/dev/null; rm -f %s"):format(pidfile, pidfile,
                                                                   pidfile))
end
redis_start()

local url = ("redis://127.0.0.1:%d"):format(rport)

-- The servers of this test, polled by pump().
local servers = {}

-- "sub T" subscribes, "pub T|DATA" publishes except the sender, "bc DATA"
-- broadcasts except the sender, "to ID|DATA" sends to ID, "id" tells the
-- connection's id; each answered ("ok", "err:...", or the id). Every tag
-- event goes to s.tag_events as { conn, tag, err, code, shown = conn.tag
-- in the handler }.
local function node(n, extra)
  local o = { host = "127.0.0.1", port = 0, cluster = url, node = n,
              cluster_prefix = "luatest" }
  for k, v in pairs(extra or {}) do o[k] = v end
  local s = assert(websock.server(o))
  s.tag_events = {}
  s:on("message", function(conn, data)
    local cmd, rest = data:match("^(%a+) ?(.*)$")
    local function reply(ok, err) conn:send(ok and "ok" or ("err:" .. tostring(err))) end
    if cmd == "id" then
      conn:send(tostring(conn.id))
    elseif cmd == "sub" then
      reply(conn:subscribe(rest))
    elseif cmd == "pub" then
      local t, d = rest:match("^([^|]*)|(.*)$")
      reply(s:publish(t, d, "text", conn))
    elseif cmd == "bc" then
      reply(s:broadcast(rest, "text", conn.id))
    elseif cmd == "to" then
      local id, d = rest:match("^(%d+)|(.*)$")
      reply(s:send(tonumber(id), d))
    end
  end)
  s:on("tag", function(conn, tag, err, code)
    local list = s.tag_events
    list[#list + 1] = { conn = conn, tag = tag, err = err, code = code, shown = conn.tag }
  end)
  local ok, err = s:start()
  if not ok then s:free(); error("node " .. tostring(n) .. " did not start: " .. tostring(err)) end
  servers[#servers + 1] = s
  return s
end

-- Polls every server (and websock.connect()'s) for ms, or until done().
local function pump(ms, done)
  local deadline = now() + ms
  repeat
    for _, s in ipairs(servers) do
      if s._state == "running" then s:poll(0) end
    end
    websock.poll(0)
    if done and done() then return true end
    sh("sleep 0.005")
  until now() >= deadline
  return done == nil
end

-- The first tag event of s for connection conn (and tag), within ms.
local function tag_event(s, conn, tag, ms)
  local found
  pump(ms or 5000, function()
    for i, e in ipairs(s.tag_events) do
      if e.conn == conn and (tag == nil or e.tag == tag) then
        found = table.remove(s.tag_events, i)
        return true
      end
    end
  end)
  return found
end

local function stat(s, name)
  local st = s:stats()
  return st and st[name]
end

-- The link up (the stats say so), within 10 s.
local function wait_up(s)
  return pump(10000, function() return stat(s, "cluster_up") == 1 end)
end

local function ask(c, cmd)
  assert(c:send(cmd))
  return c:recv(5000)
end

local function client(s)
  local c = assert(websock.connect(("ws://127.0.0.1:%d/"):format(s.port)))
  assert(c:wait_open(5000), "client did not open")
  local id = tonumber((ask(c, "id")))
  pump(1000, function() return s:connection(id) ~= nil end)
  return c, id, assert(s:connection(id), "no connection object for " .. tostring(id))
end

local function main()
  local n1, n2 = node(1), node(2)

  test("both nodes join the cluster", function()
    assert(wait_up(n1), "node 1's link did not come up")
    assert(wait_up(n2), "node 2's link did not come up")
    eq(n1.node, 1, "srv.node")
    eq(n2.node, 2, "srv.node")
  end)

  local a, ida, ca = client(n1)
  local b, idb, cb = client(n2)

  test("ids carry their node", function()
    eq(math.floor(ida / 2 ^ 43), 1, "node of a's id")
    eq(math.floor(idb / 2 ^ 43), 2, "node of b's id")
  end)

  test("a publish on node 1 reaches a member on node 2", function()
    eq(ask(b, "sub room"), "ok")
    -- node 2's SUBSCRIBE reaches Redis meanwhile
    pump(200)
    eq(ask(a, "pub room|hello"), "ok")
    eq(b:recv(5000), "hello")
  end)

  test("a broadcast on node 2 reaches node 1", function()
    eq(ask(b, "bc news"), "ok")
    eq(a:recv(5000), "news")
  end)

  test("a send by id crosses nodes", function()
    eq(ask(b, "to " .. ida .. "|psst"), "ok")
    eq(a:recv(5000), "psst")
  end)

  test("set_tag on a cluster node: true, \"pending\", conn.tag at once, then " ..
       "the tag handler's success", function()
    local ok, how = ca:set_tag("alice")
    eq(ok, true, "set_tag")
    eq(how, "pending", "second value")
    eq(ca.tag, "alice", "conn.tag at once")
    eq(n1:find_tag("alice"), ida, "held here at once")
    local e = assert(tag_event(n1, ca, "alice"), "no tag event")
    eq(e.err, nil, "err")
    eq(e.code, nil, "code")
    eq(e.shown, "alice", "conn.tag in the handler")
    eq(ca.tag, "alice", "conn.tag after")
    -- the tag it has already: settled at once
    ok, how = ca:set_tag("alice")
    eq(ok, true); eq(how, nil, "second value for the tag it has")
    -- srv:set_tag answers the same way
    local c2, id2, cc2 = client(n1)
    ok, how = n1:set_tag(id2, "alice2")
    eq(ok, true); eq(how, "pending")
    eq(cc2.tag, "alice2", "conn.tag by srv:set_tag")
    local e2 = assert(tag_event(n1, cc2, "alice2"), "no tag event for srv:set_tag")
    eq(e2.err, nil)
    c2:close()
  end)

  test("TAG_TAKEN at once on the other node once it knows the holder", function()
    assert(pump(5000, function() return n2:find_tag("alice") == ida end),
           "node 2's directory never showed alice")
    local ok, err, code = cb:set_tag("alice")
    eq(ok, nil, "set_tag")
    eq(err, websock.strerror(ERR.TAG_TAKEN), "err")
    eq(code, ERR.TAG_TAKEN, "code")
    eq(cb.tag, nil, "conn.tag")
    pump(300)
    eq(#n2.tag_events, 0, "tag events on node 2")
    -- and a send by tag crosses to the holder
    assert(n2:send_tag("alice", "to alice"))
    eq(a:recv(5000), "to alice")
  end)

  test("two nodes claim one tag at once: one wins; the loser's conn.tag is " ..
       "its tag of before again, with (node 1) and without (node 2) a tag " ..
       "handler", function()
    n2:on("tag", nil)
    local tried = 0
    for k = 1, 8 do
      local tag = "race" .. k
      -- their settled tags (a's "alice"; b none: refused at once above)
      local old_a, old_b = ca.tag, cb.tag
      local ok1, how1 = ca:set_tag(tag)
      local ok2, how2 = cb:set_tag(tag)
      if how1 == "pending" and how2 == "pending" then
        tried = k
        local e = assert(tag_event(n1, ca, tag), "no tag event on node 1")
        -- node 2's event, without a handler, settles cb.tag
        pump(3000, function()
          return n1:find_tag(tag) ~= nil and n2:find_tag(tag) ~= nil and
                 (e.code == nil) == (cb.tag == old_b)
        end)
        print("  " .. tag .. ": node " .. (e.code == nil and 1 or 2) .. " won")
        if e.code == nil then -- node 1 won
          eq(ca.tag, tag, "winner's conn.tag")
          eq(cb.tag, old_b, "loser's conn.tag (no handler): its tag of before")
          eq(n2:get_tag(idb), old_b or false, "loser's tag in the core")
          eq(n2:find_tag(tag), ida, "holder seen from node 2")
          -- the winner's tag of before is let go
          assert(pump(3000, function() return n1:find_tag(old_a) == nil end),
                 "the winner's old tag " .. old_a .. " still held")
        else
          eq(e.code, ERR.TAG_TAKEN, "loser's code")
          eq(e.err, websock.strerror(ERR.TAG_TAKEN), "loser's err")
          eq(e.shown, old_a, "conn.tag in the loser's handler: its tag of before")
          eq(ca.tag, old_a, "loser's conn.tag")
          eq(n1:get_tag(ida), old_a, "loser's tag in the core")
          eq(n1:find_tag(old_a), ida, "the loser still holds its old tag")
          eq(cb.tag, tag, "winner's conn.tag")
          eq(n1:find_tag(tag), idb, "holder seen from node 1")
        end
        break
      end
      assert(ok1 or ok2, "both refused " .. tag)
      -- one claim only: its answer settles before the next round
      if how1 == "pending" then assert(tag_event(n1, ca, tag), "no tag event") end
      pump(300)
    end
    assert(tried > 0, "never had both claims pending at once")
    n2:on("tag", function(conn, tag, err, code)
      local list = n2.tag_events
      list[#list + 1] = { conn = conn, tag = tag, err = err, code = code, shown = conn.tag }
    end)
  end)

  test("pull style: recv() gives the tag event (data = the tag, no err)", function()
    local ok, how = ca:set_tag("pulled")
    eq(ok, true); eq(how, "pending")
    local ev
    local deadline = now() + 5000
    repeat
      ev = n1:recv(50)
    until (ev and ev.type == "tag") or now() > deadline
    assert(ev and ev.type == "tag", "no tag event")
    eq(ev.data, "pulled", "data")
    eq(ev.err, nil, "err")
    eq(ev.code, nil, "code")
    eq(ev.conn, ca, "conn")
    eq(ca.tag, "pulled")
  end)

  -- A tag held in Redis by a connection of node 2 (alive) that node 1 has
  -- not heard of (nobody published it): node 1's claim of it is pending,
  -- and Redis refuses it, every time.
  local PLANTED_ID = 2 * 2 ^ 43 + 4242
  local function plant(tag)
    assert(sh(("redis-cli -p %d hset luatest:tags %s 2:%.0f >/dev/null"):format(
      rport, tag, PLANTED_ID)), "redis-cli hset")
    eq(n1:find_tag(tag), nil, "node 1 knew the planted " .. tag)
  end

  test("a claim Redis refuses: the tag of before is held meanwhile and is " ..
       "the connection's again after (conn.tag, the core, sends by tag)", function()
    eq(ca.tag, "pulled", "the tag of before")
    plant("planted1")
    local ok, how = ca:set_tag("planted1")
    eq(ok, true, "set_tag"); eq(how, "pending", "second value")
    eq(ca.tag, "planted1", "conn.tag at once")
    -- its tag of before still reaches it (held, or given back already)
    eq(n1:find_tag("pulled"), ida, "the tag of before, meanwhile")
    local e = assert(tag_event(n1, ca, "planted1"), "no tag event")
    eq(e.code, ERR.TAG_TAKEN, "code")
    eq(e.err, websock.strerror(ERR.TAG_TAKEN), "err")
    eq(e.shown, "pulled", "conn.tag in the handler: the tag of before")
    eq(ca.tag, "pulled", "conn.tag after")
    eq(n1:get_tag(ida), "pulled", "the core's tag")
    eq(n1:find_tag("pulled"), ida, "find_tag of the tag of before")
    assert(n1:send_tag("pulled", "still pulled"))
    eq(a:recv(5000), "still pulled", "a send by the tag of before")
    eq(n1:find_tag("planted1"), PLANTED_ID, "the holder, learnt from the refusal")
    -- now known on node 1: refused at once, nothing changes
    local err, code
    ok, err, code = ca:set_tag("planted1")
    eq(ok, nil); eq(code, ERR.TAG_TAKEN, "code at once"); eq(err, websock.strerror(ERR.TAG_TAKEN))
    eq(ca.tag, "pulled", "conn.tag after a refusal at once")
  end)

  test("a claim Redis refuses for a connection without a tag: none again; " ..
       "refused with a tag given since: that tag stays", function()
    plant("planted2")
    plant("planted3")
    local c2, id2, cc2 = client(n1)
    local ok, how = cc2:set_tag("planted2")
    eq(ok, true); eq(how, "pending")
    local e = assert(tag_event(n1, cc2, "planted2"), "no tag event")
    eq(e.code, ERR.TAG_TAKEN, "code")
    eq(e.shown, nil, "conn.tag in the handler")
    eq(cc2.tag, nil, "conn.tag after")
    eq(n1:get_tag(id2), false, "the core's tag")
    -- planted3 replaced at once by "later" (the held "pulled" stays held):
    -- the refusal of planted3 leaves "later"
    ok, how = ca:set_tag("planted3")
    eq(ok, true); eq(how, "pending")
    ok, how = ca:set_tag("later")
    eq(ok, true); eq(how, "pending")
    eq(ca.tag, "later")
    e = assert(tag_event(n1, ca, "planted3"), "no tag event for planted3")
    eq(e.code, ERR.TAG_TAKEN, "planted3's code")
    eq(e.shown, "later", "conn.tag in planted3's handler")
    e = assert(tag_event(n1, ca, "later"), "no tag event for later")
    eq(e.code, nil, "later's code")
    eq(ca.tag, "later", "conn.tag after")
    eq(n1:get_tag(ida), "later", "the core's tag")
    -- "later" is settled: the tag held till then is let go
    assert(pump(3000, function() return n1:find_tag("pulled") == nil end),
           "the tag of before still held")
    c2:close()
  end)

  test("the held tag asked for while a claim is pending settles back to it; " ..
       "the pull style's refusal shows the tag of before", function()
    plant("planted4")
    plant("planted5")
    local ok, how = ca:set_tag("planted4")
    eq(ok, true); eq(how, "pending")
    -- (given back already if Redis was quicker: the same answer)
    ok, how = ca:set_tag("later")
    eq(ok, true, "set_tag of the held tag"); eq(how, nil, "settled")
    eq(ca.tag, "later", "conn.tag")
    local e = assert(tag_event(n1, ca, "planted4"), "no tag event for planted4")
    eq(e.code, ERR.TAG_TAKEN, "code")
    eq(e.shown, "later", "conn.tag in the handler")
    eq(ca.tag, "later", "conn.tag after")
    eq(n1:get_tag(ida), "later", "the core's tag")
    eq(n1:find_tag("planted4"), PLANTED_ID, "planted4's holder")
    -- pull style
    ok, how = ca:set_tag("planted5")
    eq(ok, true); eq(how, "pending")
    local ev
    local deadline = now() + 5000
    repeat
      ev = n1:recv(50)
    until (ev and ev.type == "tag") or now() > deadline
    assert(ev and ev.type == "tag", "no tag event")
    eq(ev.data, "planted5", "data")
    eq(ev.code, ERR.TAG_TAKEN, "code")
    eq(ev.err, websock.strerror(ERR.TAG_TAKEN), "err")
    eq(ev.tag, "later", "the event's tag: the tag of before")
    eq(ev.conn, ca, "conn")
    eq(ca.tag, "later", "conn.tag")
  end)

  test("the tag still being claimed asked for again: true, \"pending\" " ..
       "again, one tag event; the tag of before reaches it meanwhile", function()
    -- Redis holds every client's commands for 2 s: the claim waits in it
    assert(sh(("redis-cli -p %d client pause 2000 all >/dev/null"):format(rport)),
           "client pause")
    local since = now()
    local ok, how = ca:set_tag("twice")
    eq(ok, true); eq(how, "pending")
    ok, how = ca:set_tag("twice")
    eq(ok, true, "asked again"); eq(how, "pending", "asked again while pending")
    eq(ca.tag, "twice")
    eq(n1:find_tag("later"), ida, "the tag of before, held")
    eq(n1:find_tag("twice"), ida, "the tag being claimed")
    assert(n1:send_tag("later", "to later"))
    eq(a:recv(1000), "to later", "a send by the held tag")
    assert(n1:send_tag("twice", "to twice"))
    eq(a:recv(1000), "to twice", "a send by the pending tag")
    assert(now() - since < 1900, "too slow: Redis may have answered meanwhile")
    local e = assert(tag_event(n1, ca, "twice", 10000), "no tag event")
    eq(e.code, nil, "code")
    eq(ca.tag, "twice")
    eq(tag_event(n1, ca, "twice", 500), nil, "a second tag event")
    assert(pump(3000, function() return n1:find_tag("later") == nil end),
           "the tag of before still held")
  end)

  test("option checks: node, cluster_ttl", function()
    local function refused(o, want)
      local s, err = websock.server(o)
      if s then s:free() end
      assert(not s, "accepted: " .. want)
      assert(err:find(want, 1, true), err)
    end
    refused({ cluster = "http://x", node = 1 }, "option cluster/node")
    refused({ cluster = url, node = 1024 }, "option node must be a whole number 1..1023")
    refused({ cluster = url, node = -1 }, "option node must be")
    refused({ cluster = url, node = 1.5 }, "option node must be")
    refused({ cluster = url, node = "2" }, "option node must be")
    refused({ node = 2 }, "option node needs option cluster")
    refused({ cluster = 5, node = 2 }, "option cluster must be a redis:// URL, got 5")
    refused({ cluster = url, cluster_ttl = 99 }, "option cluster_ttl must be a whole number of ms 100..600000")
    refused({ cluster = url, cluster_ttl = 600001 }, "cluster_ttl must be")
    refused({ cluster = url, cluster_ttl = 1000.5 }, "cluster_ttl must be")
    refused({ cluster = url, cluster_ttl = "1000" }, "cluster_ttl must be")
    refused({ cluster_ttl = 1000 }, "option cluster_ttl needs option cluster")
    for _, o in ipairs({ { cluster = url, cluster_ttl = 100 },
                         { cluster = url, cluster_ttl = 600000, node = 7 },
                         { cluster = url, node = 0 }, { cluster = url } }) do
      local s, err = websock.server(o)
      assert(s, err)
      s:free()
    end
  end)

  test("node omitted or 0: a free number drawn from Redis at start", function()
    local s3 = node(nil, { cluster_ttl = 1000 })
    local s4 = node(0)
    assert(s3.node and s4.node, "srv.node not set")
    assert(s3.node ~= 1 and s3.node ~= 2 and s4.node ~= 1 and s4.node ~= 2 and
           s3.node ~= s4.node, "drawn " .. s3.node .. " and " .. s4.node)
    assert(wait_up(s3), "the drawn node's link did not come up")
    local c3, id3 = client(s3)
    eq(math.floor(id3 / 2 ^ 43), s3.node, "node of its id")
    -- a send by id from node 1 reaches it
    assert(n1:send(id3, "to the drawn node"))
    eq(c3:recv(5000), "to the drawn node")
    c3:close()
    s3:shutdown(); s4:shutdown()
    table.remove(servers); table.remove(servers)
    s3:free(); s4:free()
  end)

  test("node omitted and Redis not answering: start gives nil, err, ERR.CLUSTER", function()
    local s = assert(websock.server{ host = "127.0.0.1", port = 0,
                                     cluster = ("redis://127.0.0.1:%d"):format(free_port()) })
    local ok, err, code = s:start()
    s:free()
    eq(ok, nil, "start")
    eq(code, ERR.CLUSTER, "code")
    assert(type(err) == "string" and err:find("Redis", 1, true), err)
  end)

  -- a holder on node 1 for the restart below
  local k, idk, ck = client(n1)
  test("a tag for the restart below", function()
    local ok, how = ck:set_tag("keep")
    eq(ok, true); eq(how, "pending")
    local e = assert(tag_event(n1, ck, "keep"), "no tag event")
    eq(e.code, nil)
  end)

  test("a claim in flight when Redis dies: the tag event's ERR.CLUSTER, " ..
       "conn.tag its tag of before; set_tag while down: ERR.CLUSTER at once", function()
    -- Redis holds every client's commands, so the claim waits in it
    assert(sh(("redis-cli -p %d client pause 20000 all >/dev/null"):format(rport)),
           "client pause")
    local ok, how = ca:set_tag("inflight")
    eq(ok, true); eq(how, "pending")
    pump(100)
    eq(ca.tag, "inflight", "conn.tag while the claim waits")
    redis_kill()
    local e = assert(tag_event(n1, ca, "inflight", 10000), "no tag event")
    eq(e.code, ERR.CLUSTER, "code")
    eq(e.err, websock.strerror(ERR.CLUSTER), "err")
    eq(e.shown, "twice", "conn.tag in the handler: its tag of before")
    eq(ca.tag, "twice", "conn.tag after")
    eq(n1:get_tag(ida), "twice", "the core's tag")
    assert(pump(10000, function() return stat(n1, "cluster_up") == 0 end), "link still up")
    local err, code
    ok, err, code = ca:set_tag("down")
    eq(ok, nil); eq(code, ERR.CLUSTER, "code"); eq(err, websock.strerror(ERR.CLUSTER))
    eq(ca.tag, "twice", "conn.tag")
  end)

  test("a tag lost to another node after a Redis restart: an unasked tag " ..
       "event with ERR.TAG_TAKEN, conn.tag cleared", function()
    -- While node 1 waits out its back-off, Redis comes back empty and a
    -- new node takes "keep" first; node 1's claim again then loses it.
    local done
    for attempt = 1, 3 do
      local since = now()
      pump(3200)
      redis_start()
      if stat(n1, "cluster_up") == 0 then
        local s5 = node(5)
        local ok = wait_up(s5)
        local c5, id5, cc5 = client(s5)
        local got, how = cc5:set_tag("keep")
        local e5 = how == "pending" and tag_event(s5, cc5, "keep")
        if ok and e5 and e5.code == nil and stat(n1, "cluster_up") == 0 then
          local e = assert(tag_event(n1, ck, "keep", 15000), "no unasked tag event")
          eq(e.code, ERR.TAG_TAKEN, "code")
          eq(e.err, websock.strerror(ERR.TAG_TAKEN), "err")
          eq(ck.tag, nil, "conn.tag")
          -- the tag crosses to its new holder
          assert(pump(5000, function() return n1:find_tag("keep") == id5 end),
                 "node 1 never saw the new holder")
          assert(n1:send_tag("keep", "to the new holder"))
          eq(c5:recv(5000), "to the new holder")
          done = true
        end
        c5:close()
        pump(100)
        s5:shutdown()
        table.remove(servers)
        s5:free()
        if done then break end
      end
      print("  attempt " .. attempt .. ": node 1 came back first (after " ..
            (now() - since) .. " ms); again")
      redis_kill()
      pump(500, function() return stat(n1, "cluster_up") == 0 end)
    end
    assert(done, "node 1 always reconnected before the new node claimed")
  end)

  a:close()
  b:close()
  k:close()
end

local ok, err = pcall(main)
if not ok then T.report("[" .. T.VM .. "] test_cluster", false, err) end
for _, s in ipairs(servers) do
  if s._state ~= "freed" then s:shutdown() end
end
websock.client_shutdown()
redis_kill()
os.exit(T.failures == 0 and 0 or 1)
