#!/usr/bin/env node
// Browser test of examples/web/chat.html on a cluster: two chat servers on
// one Redis, page A on server A and page B on server B, chatting across
// them in Debian's headless Chromium driven by playwright-core (which never
// downloads a browser).
//
//   WEBSOCK_BUILD_DIR=/tmp/build node tests/browser/cluster.test.js
//   (or: tests/browser/run.sh BUILD_DIR)
//
// Env: WEBSOCK_BUILD_DIR   build directory (default <repo>/build)
//      BROWSER_CLUSTER     the pairs of servers to run, "A,B ..." of c, python
//                          and lua (default "c,c python,lua"); a pair with a
//                          server not built is skipped
//      CHROMIUM            browser binary (default /usr/bin/chromium)
//      BROWSER_ARTIFACTS   screenshots (default <repo>/build/test-artifacts/browser)
//
// Per pair: starts a redis-server of its own on a free loopback port (no
// persistence) and the two servers on it (--redis URL --cluster-ttl 1000,
// node numbers drawn from Redis), each serving the page with --port 0.
// Checks: a nick on each page, a nick held on the other server refused,
// say across, /msg across both ways, a room across (join, talk both ways,
// leave), then a screenshot of A and B to cluster-<A>-<B>-chat.png. Every
// wait is at most 10 s, the run at most 80 s. Ends with "N passed, N failed".
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");
const {
  REPO, BUILD, PAGE_FILE, ARTIFACTS, CHROMIUM, WAIT, BROWSER_ARGS,
  log, sleep, startServer, stop, killChildren, startRedis, Abort, Checks, assert,
  raw, waitRaw, countRaw, logText, waitState, setNick, say, joinRoom, screenshotPair,
} = require("./lib");

const OVERALL = 80000;
const TTL_MS = 1000;

const checks = new Checks();
const cleanups = [];
const skipped = [];

function serverSpec(kind, redisUrl) {
  const cluster = ["--redis", redisUrl, "--cluster-ttl", String(TTL_MS)];
  const specs = {
    c: {
      cmd: path.join(BUILD, "examples", "chat_server"),
      args: (port) => ["--port", String(port), "--web", PAGE_FILE, ...cluster],
      env: {},
      needs: [path.join(BUILD, "examples", "chat_server")],
    },
    python: {
      cmd: path.join(BUILD, "venv", "bin", "python"),
      args: (port) => [path.join(REPO, "examples", "python", "chat_server.py"), "--port", String(port), ...cluster],
      env: { PYTHONDONTWRITEBYTECODE: "1" },
      needs: [path.join(BUILD, "venv", "bin", "python")],
    },
    lua: {
      cmd: "lua5.4",
      args: (port) => [path.join(REPO, "examples", "lua", "chat_server.lua"), "--port", String(port), ...cluster],
      env: {
        LUA_PATH: path.join(BUILD, "lua", "share", "?.lua") + ";;",
        LUA_CPATH: path.join(BUILD, "lua", "5.4", "?.so") + ";;",
      },
      needs: [path.join(BUILD, "lua", "5.4")],
    },
  };
  const spec = specs[kind];
  if (!spec) throw new Error(`BROWSER_CLUSTER: unknown server ${JSON.stringify(kind)} (c, python or lua)`);
  return Object.assign({ name: kind }, spec);
}

// Does |step| every 100 ms until it resolves true; fails after WAIT.
async function eventually(what, step) {
  const t0 = Date.now();
  for (;;) {
    if (await step()) return;
    if (Date.now() - t0 > WAIT) throw new Error(`${what}: not within ${WAIT} ms`);
    await sleep(100);
  }
}

async function main() {
  const deadline = setTimeout(async () => {
    checks.fail(`overall time limit of ${OVERALL / 1000} s exceeded`);
    await finish();
  }, OVERALL);
  cleanups.push(() => clearTimeout(deadline));

  if (!fs.existsSync(CHROMIUM)) {
    checks.fail(`${CHROMIUM} not found (apt-get install -y chromium); no browser is downloaded`);
    return finish();
  }
  log(`browser cluster test: build dir ${BUILD}, browser ${CHROMIUM}`);
  const pairs = (process.env.BROWSER_CLUSTER || "c,c python,lua").split(/\s+/).filter(Boolean);
  for (const p of pairs) await runPair(p.split(",").map((s) => s.trim()));
  return finish();
}

async function runPair(pair) {
  const group = `cluster ${pair.join("+")}`;
  const name = pair.join("-");
  if (pair.length !== 2) {
    checks.fail(`${group}: BROWSER_CLUSTER pairs name two servers, A,B`);
    return;
  }
  let specs;
  try {
    specs = pair.map((k) => serverSpec(k, "redis://127.0.0.1:1"));
  } catch (e) {
    checks.fail(`${group}: ${e.message}`);
    return;
  }
  const missing = [].concat(...specs.map((s) => s.needs.filter((p) => !fs.existsSync(p))));
  if (missing.length) {
    skipped.push(`${group} (not built: ${missing.join(", ")})`);
    log(`skip - ${group}: not built (${missing.join(", ")})`);
    return;
  }
  if (fs.existsSync(ARTIFACTS)) {   // no stale screenshots from an earlier run
    for (const f of fs.readdirSync(ARTIFACTS)) {
      if (f.startsWith(`cluster-${name}-`) && f.endsWith(".png")) fs.rmSync(path.join(ARTIFACTS, f));
    }
  }

  let redis, srvA, srvB, context, A, B;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "lws2-chromium-"));
  const jsErrors = [];
  try {
    await check("redis-server and two chat servers start", async () => {
      redis = await startRedis();
      assert(redis, "redis-server not found (apt-get install -y redis-server)");
      [srvA, srvB] = await Promise.all(pair.map((k) => startServer(serverSpec(k, redis.url), 0)));
    });

    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: BROWSER_ARGS,
      viewport: { width: 640, height: 560 },
      timeout: WAIT * 3,
    });
    context.setDefaultTimeout(WAIT);
    const open = async (label, srv) => {
      const p = await context.newPage();
      p.on("pageerror", (e) => jsErrors.push(`${label}: ${e.message}`));
      await p.goto(`http://127.0.0.1:${srv.port}/`, { timeout: WAIT });
      return p;
    };

    await check("page A on server A and page B on server B get a welcome", async () => {
      [A, B] = await Promise.all([open("A", srvA), open("B", srvB)]);
      for (const p of [A, B]) {
        await waitState(p, "open");
        await p.waitForSelector('#log li[data-raw^="welcome #"]', { state: "attached", timeout: WAIT });
      }
    });

    await check("A takes nick alice on server A, B takes bob on server B", async () => {
      // A node that just started may still be connecting to Redis: its
      // /nick then says cluster-down, and the page lets you try again.
      for (const [p, nick] of [[A, "alice"], [B, "bob"]]) {
        await eventually(`nick ${nick}`, async () => {
          await setNick(p, nick);
          await p.waitForSelector(`${raw(`ok nick ${nick}`)}, ${raw(`error cluster-down ${nick}`)}`,
                                  { state: "attached", timeout: WAIT });
          if (await countRaw(p, `ok nick ${nick}`)) return true;
          await p.evaluate(() => { for (const li of document.querySelectorAll("#log li.error")) li.remove(); });
          return false;
        });
      }
      const st = await B.textContent("#status");
      assert(/online as bob/.test(st), `B's status is ${JSON.stringify(st)}`);
    });

    await check("A's say reaches B on the other server", async () => {
      // Each node subscribes to the others' broadcasts as it connects: say
      // until one comes through, then the line that counts.
      let k = 0;
      await eventually("a say across", async () => {
        await say(A, `knock ${++k}`);
        await sleep(150);
        return (await B.locator('#log li[data-raw^="say alice knock "]').count()) > 0;
      });
      await say(A, "hello from server A");
      await waitRaw(B, "say alice hello from server A");
      const line = await B.locator(raw("say alice hello from server A")).innerText();
      assert(/alice:\s*hello from server A/.test(line), `B shows ${JSON.stringify(line)}`);
    });

    await check("B asking for alice (held on server A) gets nick-taken and stays bob", async () => {
      await setNick(B, "alice");
      await waitRaw(B, "error nick-taken alice");
      const st = await B.textContent("#status");
      assert(/online as bob/.test(st), `B's status is ${JSON.stringify(st)}`);
      await say(B, "still bob?");
      const shown = await A.waitForSelector('#log li[data-raw$=" still bob?"]', { state: "attached", timeout: WAIT });
      const text = await shown.getAttribute("data-raw");
      // A refused /nick keeps the nick of before, on every server.
      assert(text === "say bob still bob?", `A got ${JSON.stringify(text)}`);
    });

    await check("/msg crosses both ways (private, ok msg)", async () => {
      await say(A, "/msg bob psst from A");
      await waitRaw(B, "msg alice psst from A");
      await waitRaw(A, "ok msg bob");
      const cls = await B.locator(raw("msg alice psst from A")).getAttribute("class");
      assert(/\bprivate\b/.test(cls || ""), `B's line has class ${cls}`);
      await say(B, "/msg alice and back from B");
      await waitRaw(A, "msg bob and back from B");
      await waitRaw(B, "ok msg alice");
      await say(A, "/msg carol anyone?");
      await waitRaw(A, "error no-such-user carol");
    });

    await check("a room across the servers: join, talk both ways, leave", async () => {
      await joinRoom(A, "lobby");
      await waitRaw(A, "ok join lobby");
      await joinRoom(B, "lobby");
      await waitRaw(B, "ok join lobby");
      // Server B subscribes to the room in Redis as B joins: A talks until
      // a line comes through.
      let k = 0;
      await eventually("a room line across", async () => {
        await say(A, `anyone in the lobby? ${++k}`);
        await sleep(150);
        return (await B.locator('#log li[data-raw^="room lobby alice anyone in the lobby? "]').count()) > 0;
      });
      await say(A, "tea in the lobby");
      await waitRaw(B, "room lobby alice tea in the lobby");
      assert(/#lobby/.test(await B.locator(raw("room lobby alice tea in the lobby")).innerText()),
             "B's room line does not show #lobby");
      await say(B, "coming from server B");   // B's target is the room it joined
      await waitRaw(A, "room lobby bob coming from server B");
      await B.waitForSelector('#log li.own.delivered[data-room="lobby"]', { state: "attached", timeout: WAIT });
      await B.bringToFront();
      await B.click('#targets button.leave[data-room="lobby"]');
      await waitRaw(B, "ok leave lobby");
      await say(A, "has bob left?");
      // A's later /msg to B comes after the room line would have (one
      // sender's lines keep their order across nodes).
      await say(A, "/msg bob after the room");
      await waitRaw(B, "msg alice after the room");
      assert(!(await logText(B)).includes("has bob left?"), "B heard the room after it left");
    });

    await check("screenshot of A and B", async () => {
      await say(B, "two servers, one chat");
      await waitRaw(A, "say bob two servers, one chat");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `cluster-${name}-chat.png`);
      await screenshotPair(context, A, B, file,
                           [`page A — alice, server A (${pair[0]})`, `page B — bob, server B (${pair[1]})`]);
      assert(fs.statSync(file).size > 1000, "screenshot is empty");
      log(`       screenshot: ${path.relative(REPO, file)}`);
    });

    await check("no JavaScript errors on the pages", async () => {
      assert(jsErrors.length === 0, jsErrors.join("; "));
    });
  } catch (e) {
    if (e instanceof Abort) log("       (remaining cluster checks not run)");
    else checks.fail(`${group}: ${e && e.stack || e}`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    for (const [label, p] of [["A", A], ["B", B]]) {
      if (!p) continue;
      const file = path.join(ARTIFACTS, `cluster-${name}-failure-${label}.png`);
      try {
        await p.bringToFront();
        await p.screenshot({ path: file, timeout: 5000 });
        log(`       page ${label} at failure: ${path.relative(REPO, file)}`);
      } catch (_) { /* page gone */ }
    }
    for (const [label, s] of [["A", srvA], ["B", srvB]]) {
      if (s && s.stderr().trim()) log(`       server ${label} stderr: ${s.stderr().trim().split("\n").join("\n       ")}`);
    }
  } finally {
    if (context) await context.close().catch(() => {});
    for (const [label, s] of [["A", srvA], ["B", srvB]]) {
      if (!s) continue;
      const code = await stop(s.proc);
      if (code !== 0) checks.fail(`${group}: server ${label} did not exit 0 on SIGTERM (${code})`);
    }
    if (redis) await stop(redis.proc);
    fs.rmSync(userDir, { recursive: true, force: true });
  }

  function check(what, fn) { return checks.check(group, what, fn); }
}

let finishing = false;
async function finish() {
  if (finishing) return;
  finishing = true;
  for (const f of cleanups) f();
  killChildren();
  if (skipped.length) log(`skipped: ${skipped.join("; ")}`);
  log(`${checks.passed} passed, ${checks.failed} failed`);
  process.exit(checks.failed || checks.passed === 0 ? 1 : 0);
}

process.on("SIGINT", () => { checks.failed++; finish(); });
process.on("SIGTERM", () => { checks.failed++; finish(); });
main().catch((e) => { checks.fail(`${e && e.stack || e}`); finish(); });
