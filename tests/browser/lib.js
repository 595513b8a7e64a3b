// Helpers shared by the browser tests (chat.test.js, cluster.test.js):
// child processes that print "listening on PORT", a counted check runner,
// and the chat page's selectors.
"use strict";

const { spawn } = require("child_process");
const fs = require("fs");
const net = require("net");
const path = require("path");

const REPO = path.resolve(__dirname, "..", "..");
const BUILD = path.resolve(REPO, process.env.WEBSOCK_BUILD_DIR || "build");
const PAGE_FILE = path.join(REPO, "examples", "web", "chat.html");
const ARTIFACTS = path.resolve(REPO, process.env.BROWSER_ARTIFACTS ||
                                     path.join("build", "test-artifacts", "browser"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 10000;  // every single wait
const BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run",
                      "--disable-quic", "--disable-dev-shm-usage"];

const children = new Set();  // running child processes, killed at the end

function log(s) { process.stdout.write(s + "\n"); }
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// ---- processes ----------------------------------------------------------------

// Starts spec = { name, cmd, args(port), env }; resolves { proc, port } once it
// prints "listening on PORT". Rejects with err.usage = true when it exits
// printing a usage message.
function startServer(spec, port) {
  return new Promise((resolve, reject) => {
    const proc = spawn(spec.cmd, spec.args(port), {
      cwd: REPO,
      env: Object.assign({}, process.env, spec.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(proc);
    let out = "", err = "", done = false;
    const finish = (e, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) { stop(proc); reject(e); } else resolve(v);
    };
    const timer = setTimeout(() => finish(new Error(
      `${spec.name} server printed no "listening on PORT" within ${WAIT} ms; stderr: ${err.trim()}`)), WAIT);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (\d+)/.exec(out);
      if (m) finish(null, { proc, port: Number(m[1]), stderr: () => err });
    });
    proc.stderr.on("data", (d) => { err += d; });
    proc.on("error", (e) => finish(new Error(`cannot start ${spec.cmd}: ${e.message}`)));
    proc.on("exit", (code, sig) => {
      children.delete(proc);
      const e = new Error(`${spec.name} server exited (${sig || code}) before listening: ${err.trim() || out.trim()}`);
      e.usage = /usage/i.test(err + out);
      finish(e);
    });
  });
}

// SIGTERM by pid, SIGKILL after 5 s; resolves with the exit code (or the
// signal's name) when the process is gone.
function stop(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode ?? proc.signalCode);
    const t = setTimeout(() => { try { process.kill(proc.pid, "SIGKILL"); } catch (_) {} }, 5000);
    proc.once("exit", (code, sig) => { clearTimeout(t); children.delete(proc); resolve(code ?? sig); });
    try { process.kill(proc.pid, "SIGTERM"); } catch (_) { clearTimeout(t); resolve(null); }
  });
}

function killChildren() {
  for (const p of children) { try { process.kill(p.pid, "SIGKILL"); } catch (_) {} }
}

// A free TCP port on 127.0.0.1 (free when asked: bind it soon).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Resolves true once something on 127.0.0.1:port answers "PING" with "+PONG".
function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(1000, () => done(false));
    s.on("error", () => done(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => { buf += d; if (buf.includes("\r\n")) done(buf.startsWith("+PONG")); });
  });
}

// redis-server of our own on a free loopback port, no persistence; resolves
// { proc, port, url } once it answers, or null when redis-server is missing.
async function startRedis() {
  const exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((p) => fs.existsSync(p));
  if (!exe) return null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn(exe, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                       { stdio: ["ignore", "ignore", "ignore"] });
    children.add(proc);
    proc.on("exit", () => children.delete(proc));
    const t0 = Date.now();
    while (Date.now() - t0 < WAIT && proc.exitCode === null) {
      if (await redisPing(port)) return { proc, port, url: `redis://127.0.0.1:${port}` };
      await sleep(30);
    }
    await stop(proc);  // the port was taken meanwhile, or it hung: again
  }
  throw new Error("redis-server did not start");
}

// ---- checks -------------------------------------------------------------------

class Abort extends Error {}

// Counts passed and failed checks; check() throws Abort after a failure so
// the caller skips the checks that depend on it.
class Checks {
  constructor() { this.passed = 0; this.failed = 0; }
  async check(group, name, fn) {
    const t0 = Date.now();
    try {
      await fn();
      this.passed++;
      log(`ok   - ${group}: ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      this.failed++;
      log(`FAIL - ${group}: ${name}\n       ${String(e && e.message || e).split("\n").join("\n       ")}`);
      throw new Abort(name);
    }
  }
  fail(what) { this.failed++; log(`FAIL - ${what}`); }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

// ---- the chat page ----------------------------------------------------------------

const raw = (text) => `#log li[data-raw=${JSON.stringify(text)}]`;
async function waitRaw(page, text) {
  await page.waitForSelector(raw(text), { state: "attached", timeout: WAIT });
}
async function countRaw(page, text) { return page.locator(raw(text)).count(); }
async function logText(page) { return page.locator("#log").innerText(); }
async function waitState(page, state) {
  await page.waitForSelector(`#status[data-state="${state}"]`, { state: "attached", timeout: WAIT });
}
// Pages share one window; only the front tab gets animation frames, which
// clicks and screenshots wait for, so bring the page to the front first.
async function setNick(page, nick) {
  await page.bringToFront();
  await page.fill("#nick", nick);
  await page.click("#nick-btn");
}
async function say(page, text) {
  await page.bringToFront();
  await page.fill("#input", text);
  await page.click("#send");
}
async function joinRoom(page, room) {
  await page.bringToFront();
  await page.fill("#room", room);
  await page.click("#join-btn");
}

// Screenshots of pages a and b side by side, labelled, into |file|.
async function screenshotPair(context, a, b, file, labels) {
  await a.bringToFront();
  const ia = await a.screenshot();
  await b.bringToFront();
  const ib = await b.screenshot();
  const vp = a.viewportSize();
  const shot = await context.newPage();
  await shot.setViewportSize({ width: vp.width * 2 + 36, height: vp.height + 58 });
  const img = (buf, label) =>
    `<figure><figcaption>${label}</figcaption><img src="data:image/png;base64,${buf.toString("base64")}"></figure>`;
  await shot.setContent(`<!doctype html><style>
      body{margin:0;padding:12px;background:#9aa5b1;display:flex;gap:12px;font:600 13px system-ui,"DejaVu Sans",sans-serif;color:#fff}
      figure{margin:0} figcaption{margin:0 0 6px 2px} img{display:block;border-radius:6px;box-shadow:0 2px 8px rgba(0,0,0,.25)}
    </style>${img(ia, labels[0])}${img(ib, labels[1])}`);
  await shot.screenshot({ path: file, fullPage: true });
  await shot.close();
}

module.exports = {
  REPO, BUILD, PAGE_FILE, ARTIFACTS, CHROMIUM, WAIT, BROWSER_ARGS,
  log, sleep, startServer, stop, killChildren, freePort, startRedis,
  Abort, Checks, assert,
  raw, waitRaw, countRaw, logText, waitState, setNick, say, joinRoom, screenshotPair,
};
