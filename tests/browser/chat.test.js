#!/usr/bin/env node
// Browser test of examples/web/chat.html against the C, Python and Lua chat
// servers, in Debian's headless Chromium driven by playwright-core (which
// never downloads a browser).
//
//   WEBSOCK_BUILD_DIR=/tmp/build node tests/browser/chat.test.js
//   (or: tests/browser/run.sh BUILD_DIR)
//
// Env: WEBSOCK_BUILD_DIR   build directory (default <repo>/build)
//      BROWSER_SERVERS     comma list to run a subset (default c,python,lua)
//      CHROMIUM            browser binary (default /usr/bin/chromium)
//      BROWSER_ARTIFACTS   screenshots (default <repo>/build/test-artifacts/browser)
//
// For each server: start it with --port 0 on 127.0.0.1, open three pages
// (A = alice, B = bob, C = no nick), check broadcast, private messages,
// the nick-taken error and a room (join, talk, leave), save a screenshot of A and B side by side to
// build/test-artifacts/browser/<server>-chat.png, then stop the server,
// check the pages show that, restart it on the same port and check they
// reconnect and restore their nicks and rooms. Ends with "N passed, N failed".
"use strict";

const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");
const {
  REPO, BUILD, PAGE_FILE, ARTIFACTS, CHROMIUM, WAIT, BROWSER_ARGS,
  log, sleep, startServer, stop, killChildren, Abort, Checks, assert,
  raw, waitRaw, countRaw, logText, waitState, setNick, say, joinRoom, screenshotPair,
} = require("./lib");

const OVERALL = 115000;      // the whole run

const checks = new Checks();
const skipped = [];
const cleanups = [];
const check = (server, name, fn) => checks.check(server, name, fn);

// ---- servers ----------------------------------------------------------------
function serverSpecs() {
  const luaEnv = {
    LUA_PATH: path.join(BUILD, "lua", "share", "?.lua") + ";;",
    LUA_CPATH: path.join(BUILD, "lua", "5.4", "?.so") + ";;",
  };
  return [
    {
      name: "c",
      cmd: path.join(BUILD, "examples", "chat_server"),
      args: (port) => ["--port", String(port), "--web", PAGE_FILE],
      env: {},
      needs: [path.join(BUILD, "examples", "chat_server")],
      deflate: true, // permessage-deflate is on by default
    },
    {
      name: "python",
      cmd: path.join(BUILD, "venv", "bin", "python"),
      args: (port) => [path.join(REPO, "examples", "python", "chat_server.py"), "--port", String(port)],
      env: { PYTHONDONTWRITEBYTECODE: "1" },
      needs: [path.join(BUILD, "venv", "bin", "python")],
    },
    {
      name: "lua",
      cmd: "lua5.4",
      args: (port) => [path.join(REPO, "examples", "lua", "chat_server.lua"), "--port", String(port)],
      env: luaEnv,
      needs: [path.join(BUILD, "lua", "5.4")],
    },
  ];
}

function httpGet(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, timeout: WAIT }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("timeout", () => req.destroy(new Error("GET timed out")));
    req.on("error", reject);
  });
}

async function runServer(browserArgs, spec) {
  if (fs.existsSync(ARTIFACTS)) {   // no stale screenshots from an earlier run
    for (const f of fs.readdirSync(ARTIFACTS)) {
      if (f.startsWith(`${spec.name}-`) && f.endsWith(".png")) fs.rmSync(path.join(ARTIFACTS, f));
    }
  }
  const missing = spec.needs.filter((p) => !fs.existsSync(p));
  if (missing.length) {
    skipped.push(`${spec.name} (not built: ${missing.join(", ")})`);
    log(`skip - ${spec.name}: not built (${missing.join(", ")})`);
    return;
  }
  let srv;
  try {
    srv = await startServer(spec, 0);
  } catch (e) {
    if (spec.name === "c" && e.usage) {
      skipped.push("c (chat_server does not accept --web FILE yet)");
      log(`skip - c: ${spec.cmd} does not accept --web FILE yet (exited with usage)`);
      return;
    }
    checks.fail(`${spec.name}: server start\n       ${e.message}`);
    return;
  }
  const port = srv.port;
  const base = `http://127.0.0.1:${port}/`;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "lws2-chromium-"));
  let context, A, B, C;
  const jsErrors = [];
  try {
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: browserArgs,
      viewport: { width: 640, height: 560 },
      timeout: WAIT * 3,
    });
    context.setDefaultTimeout(WAIT);
    const open = async (label) => {
      const p = await context.newPage();
      p.on("pageerror", (e) => jsErrors.push(`${label}: ${e.message}`));
      await p.goto(base, { timeout: WAIT });
      return p;
    };

    await check(spec.name, "GET / serves examples/web/chat.html", async () => {
      const r = await httpGet(port, "/");
      assert(r.status === 200, `status ${r.status}`);
      assert(/^text\/html/.test(r.headers["content-type"] || ""), `content-type ${r.headers["content-type"]}`);
      assert(r.body.equals(fs.readFileSync(PAGE_FILE)), "body differs from examples/web/chat.html");
    });

    await check(spec.name, "three pages connect and get a welcome", async () => {
      [A, B, C] = await Promise.all([open("A"), open("B"), open("C")]);
      for (const p of [A, B, C]) {
        await waitState(p, "open");
        await p.waitForSelector('#log li[data-raw^="welcome #"]', { state: "attached", timeout: WAIT });
      }
      assert((await A.title()).includes("chat"), "page title");
    });

    if (spec.deflate) {
      await check(spec.name, "Chromium negotiated permessage-deflate", async () => {
        const ext = await A.evaluate(() => window.chatSocket.extensions);
        assert(/^permessage-deflate/.test(ext), `extensions ${JSON.stringify(ext)}`);
      });
    }

    await check(spec.name, "A sets nick alice, B sets nick bob", async () => {
      await setNick(A, "alice");
      await setNick(B, "bob");
      await waitRaw(A, "ok nick alice");
      await waitRaw(B, "ok nick bob");
      const st = await A.textContent("#status");
      assert(/online as alice/.test(st), `A's status is ${JSON.stringify(st)}`);
    });

    await check(spec.name, "A's broadcast reaches B and C, shown as 'alice: ...'", async () => {
      await say(A, "hello everyone");
      await waitRaw(B, "say alice hello everyone");
      await waitRaw(C, "say alice hello everyone");
      const line = await B.locator(raw("say alice hello everyone")).innerText();
      assert(/alice:\s*hello everyone/.test(line), `B shows ${JSON.stringify(line)}`);
      const own = await A.locator("#log li.own").last().innerText();
      assert(/you:\s*hello everyone/.test(own), `A's own line is ${JSON.stringify(own)}`);
    });

    await check(spec.name, "A's /msg bob reaches only B (highlighted); A sees ok msg bob", async () => {
      await say(A, "/msg bob secret");
      await waitRaw(B, "msg alice secret");
      await waitRaw(A, "ok msg bob");
      const cls = await B.locator(raw("msg alice secret")).getAttribute("class");
      assert(/\bprivate\b/.test(cls || ""), `B's line has class ${cls}`);
    });

    await check(spec.name, "C asking for nick alice shows the nick-taken error", async () => {
      await setNick(C, "alice");
      await waitRaw(C, "error nick-taken alice");
      const li = C.locator(raw("error nick-taken alice"));
      assert(/\berror\b/.test((await li.getAttribute("class")) || ""), "not styled as an error");
      assert(/taken/i.test(await li.innerText()), "error text does not say 'taken'");
      const color = await li.evaluate((el) => getComputedStyle(el).color);
      assert(/rgb\((1[5-9]\d|2\d\d), \d{1,2}, \d{1,2}\)/.test(color), `error colour ${color} is not red`);
    });

    await check(spec.name, "no echo of A's broadcast to A; C never saw the private message", async () => {
      await sleep(300);
      assert(await countRaw(A, "say alice hello everyone") === 0, "A got its own broadcast back");
      assert(!(await logText(C)).includes("secret"), "C saw the private message");
      assert(await countRaw(C, "msg alice secret") === 0, "C got msg alice secret");
    });

    await check(spec.name, "rooms: A and B join lobby, A talks there (B sees it tagged #lobby, C does not), B leaves", async () => {
      await joinRoom(A, "lobby");
      await waitRaw(A, "ok join lobby");
      await joinRoom(B, "lobby");
      await waitRaw(B, "ok join lobby");
      await B.waitForSelector('#targets button.target[data-room="lobby"][aria-pressed="true"]',
                              { state: "attached", timeout: WAIT });
      await say(A, "tea in the lobby?");   // the room just joined is the target
      await waitRaw(B, "room lobby alice tea in the lobby?");
      const li = B.locator(raw("room lobby alice tea in the lobby?"));
      assert(/#lobby/.test(await li.innerText()), `B shows ${JSON.stringify(await li.innerText())}`);
      await A.waitForSelector('#log li.own.delivered[data-room="lobby"]', { state: "attached", timeout: WAIT });
      await B.bringToFront();
      await B.click('#targets button.leave[data-room="lobby"]');
      await waitRaw(B, "ok leave lobby");
      assert(await B.locator('#targets button.target[data-room="lobby"]').count() === 0, "B still shows the lobby chip");
      await say(A, "anyone left?");
      await A.waitForFunction(() => document.querySelectorAll('#log li.own.delivered[data-room="lobby"]').length === 2,
                              null, { timeout: WAIT });
      await A.click('#targets button.target[data-room=""]');   // back to everyone
      await say(A, "back to everyone");
      await waitRaw(B, "say alice back to everyone");
      await waitRaw(C, "say alice back to everyone");
      assert(!(await logText(B)).includes("anyone left?"), "B heard the room after it left");
      assert(!(await logText(C)).includes("tea in the lobby"), "C heard a room it is not in");
    });

    await check(spec.name, "screenshot of A and B", async () => {
      await say(B, "hi alice, the new page looks great");
      await waitRaw(A, "say bob hi alice, the new page looks great");
      await say(A, "/msg carol are you there?");
      await waitRaw(A, "error no-such-user carol");
      await say(B, "/msg alice lunch at noon?");
      await waitRaw(A, "msg bob lunch at noon?");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `${spec.name}-chat.png`);
      await screenshotPair(context, A, B, file, ["page A — alice", "page B — bob"]);
      assert(fs.statSync(file).size > 1000, "screenshot is empty");
      log(`       screenshot: ${path.relative(REPO, file)}`);
    });

    await check(spec.name, "server stops: pages show offline and reconnecting", async () => {
      await stop(srv.proc);
      await waitState(A, "closed");
      await waitState(C, "closed");
      const s = await A.textContent("#status");
      assert(/reconnecting in/.test(s), `status is ${JSON.stringify(s)}`);
      assert(await A.isDisabled("#send"), "send button stays enabled while offline");
    });

    await check(spec.name, "server back on the same port: pages reconnect and restore nicks and rooms", async () => {
      const t0 = Date.now();
      for (;;) {   // the port may linger briefly after the stop
        try { srv = await startServer(spec, port); break; } catch (e) {
          if (Date.now() - t0 > WAIT) throw e;
          await sleep(250);
        }
      }
      const before = await countRaw(A, "ok nick alice");
      await waitState(A, "open");
      await waitState(B, "open");
      await A.waitForFunction((n) => document.querySelectorAll('#log li[data-raw="ok nick alice"]').length > n,
                             before, { timeout: WAIT });
      await B.waitForFunction(() => document.querySelectorAll('#log li[data-raw="ok nick bob"]').length > 1,
                              null, { timeout: WAIT });
      // A was in the lobby: it joins it again (B left it).
      await A.waitForFunction(() => document.querySelectorAll('#log li[data-raw="ok join lobby"]').length > 1,
                              null, { timeout: WAIT });
      assert(await countRaw(B, "ok join lobby") === 1, "B joined the lobby again after leaving it");
      await say(B, "welcome back");
      await waitRaw(A, "say bob welcome back");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await A.bringToFront();
      await A.screenshot({ path: path.join(ARTIFACTS, `${spec.name}-reconnected.png`) });
    });

    await check(spec.name, "no JavaScript errors on the pages", async () => {
      assert(jsErrors.length === 0, jsErrors.join("; "));
    });
  } catch (e) {
    if (e instanceof Abort) log(`       (remaining ${spec.name} checks not run)`);
    else checks.fail(`${spec.name}: ${e && e.stack || e}`);
    // What the pages showed, for debugging.
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    for (const [label, p] of [["A", A], ["B", B], ["C", C]]) {
      if (!p) continue;
      const file = path.join(ARTIFACTS, `${spec.name}-failure-${label}.png`);
      try {
        await p.bringToFront();
        await p.screenshot({ path: file, timeout: 5000 });
        log(`       page ${label} at failure: ${path.relative(REPO, file)}`);
      } catch (_) { /* page gone */ }
    }
  } finally {
    if (context) await context.close().catch(() => {});
    await stop(srv.proc);
    fs.rmSync(userDir, { recursive: true, force: true });
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
  const browserArgs = BROWSER_ARGS;
  const only = (process.env.BROWSER_SERVERS || "").split(",").map((s) => s.trim()).filter(Boolean);
  log(`browser test: build dir ${BUILD}, browser ${CHROMIUM}`);
  for (const spec of serverSpecs()) {
    if (only.length && !only.includes(spec.name)) continue;
    await runServer(browserArgs, spec);
  }
  return finish();
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
