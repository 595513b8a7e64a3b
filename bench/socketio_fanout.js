#!/usr/bin/env node
// socketio_fanout: the comparison row of bench/cluster's three-node fan-out
// (issue 16), on socket.io with its Redis adapter. It runs a redis-server
// of its own on a free 127.0.0.1 port (or uses --redis-port P), three
// socket.io servers, each in a process of its own (child_process.fork:
// every socket.io node is one event loop in a real deployment), with
// @socket.io/redis-adapter on that Redis, websocket transport only, and
// spreads N receivers (socket.io-client, websocket only, a connection of
// its own each) over them in turn: receiver i on server i % 3 + 1, so
// N - 2 * floor(N / 3), floor(N / 3) and floor(N / 3) of them, as
// bench/cluster puts its subscribers. The receivers live in --client-procs
// client processes (forked too; receiver i in process i % C, so with the
// default C = 3 each client process holds one server's receivers: one
// process for 10,000 socket.io-client sockets is the slowest, see
// bench/README.md), connect with at most --batch (200) handshakes in flight
// in all, and each joins the one room (an acknowledged 'join').
//
// One publisher socket on server 1 (in this, the coordinating process)
// emits 'pub'; server 1's handler does io.to(room).emit('m', payload): the
// receivers on server 1 get it from there, those on servers 2 and 3 through
// Redis (the adapter's PUBLISH, their PSUBSCRIBE). As bench/cluster does,
// probes go first until every receiver has had one; then --warmup rounds
// (5) that are checked but not counted (V8 compiles the hot paths during
// the first rounds: the run-long servers of a deployment have that behind
// them), then R rounds (20, --quick 5), one publish at a time (the next
// 2 ms after the last receipt of the one before). Each message is a
// --size (32) character string: "m", its sequence number, the time of its
// send (process.hrtime.bigint(), CLOCK_MONOTONIC on Linux, so one clock for
// every process of the machine: checked at the start, each child's reading
// must fall between two of the coordinator's), then a pattern of its
// sequence number; on the wire a text frame of 42 bytes with the default
// size (42["m","..."]). Every delivery is checked (length, pattern, per
// receiver the next sequence number: none lost, duplicated or reordered),
// every round must reach all N receivers within 5 s, and the whole run
// must end within --timeout seconds (120 with --quick, 600 otherwise);
// anything else makes the program exit 1. The children, and Redis when it
// is ours, are killed by their PIDs at the end, also on failure (a
// SIGKILL of this process itself leaves them: the children exit when
// their IPC channel closes, Redis does not).
//
// Reported, as bench/cluster's fan-out cells: per round the time from the
// send to the last receiver's receipt (p50 / p99 / max over the rounds,
// p99 = the sorted rounds' [floor((R - 1) * 0.99)]), that time per server's
// receivers (p50), and each delivery's latency p50 / p99 (histogram of 1/8
// of a power of two wide buckets, the same as bench/cluster's), as a line
// and a markdown row of bench/cluster's fan-out table; then the versions
// and each process's CPU time per round.
//
//   node bench/socketio_fanout.js [--quick] [--receivers N] [--rounds R]
//        [--warmup W] [--client-procs C] [--batch B] [--size B]
//        [--redis-port P] [--redis-server PATH] [--timeout SEC]
//        [--modules DIR]
//
// With --redis-port the adapter's channels are named sio-fanout-<pid>#...,
// apart from anyone else's on that Redis.
//
// The packages are not vendored: install them outside the tree,
//   mkdir -p /tmp/libwebsock2-bench-node &&
//   cp bench/package.json bench/package-lock.json \
//      /tmp/libwebsock2-bench-node/ &&
//   npm ci --prefix /tmp/libwebsock2-bench-node
// and pass --modules /tmp/libwebsock2-bench-node/node_modules (or set
// WSBENCH_NODE_MODULES or NODE_PATH; bench/node_modules and
// /tmp/libwebsock2-bench-node/node_modules are looked in too).
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const PKGS = ['socket.io', 'socket.io-client', '@socket.io/redis-adapter',
              'redis'];
const ROOM = 'fanout';
const NODES = 3;
const ROUND_TIMEOUT_MS = 5000;
const GAP_MS = 2;
const now = () => process.hrtime.bigint();

// ---- options ------------------------------------------------------------

function usage() {
  console.error('usage: socketio_fanout.js [--quick] [--receivers N] ' +
                '[--rounds R] [--warmup W] [--client-procs C] [--batch B] ' +
                '[--size B] ' +
                '[--redis-port P] [--redis-server PATH] [--timeout SEC] ' +
                '[--modules DIR]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = {quick: false, receivers: null, rounds: null, warmup: 5,
             procs: 3,
             batch: 200, size: 32, redisPort: 0,
             redisServer: 'redis-server', timeout: null,
             modules: process.env.WSBENCH_NODE_MODULES || '',
             role: 'main', node: 0, idx: 0, first: 0, key: ''};
  const int = (s) => {
    if (!/^[0-9]+$/.test(s)) usage();
    return parseInt(s, 10);
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage();
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--receivers') o.receivers = int(val());
    else if (a === '--rounds') o.rounds = int(val());
    else if (a === '--warmup') o.warmup = int(val());
    else if (a === '--client-procs') o.procs = int(val());
    else if (a === '--batch') o.batch = int(val());
    else if (a === '--size') o.size = int(val());
    else if (a === '--redis-port') o.redisPort = int(val());
    else if (a === '--redis-server') o.redisServer = val();
    else if (a === '--timeout') o.timeout = int(val());
    else if (a === '--modules') o.modules = val();
    // the children's
    else if (a === '--role') o.role = val();
    else if (a === '--node') o.node = int(val());
    else if (a === '--idx') o.idx = int(val());
    else if (a === '--key') o.key = val();
    else usage();
  }
  if (o.receivers === null) o.receivers = o.quick ? 1000 : 10000;
  if (o.rounds === null) o.rounds = o.quick ? 5 : 20;
  if (o.timeout === null) o.timeout = o.quick ? 120 : 600;
  if (o.receivers < NODES || o.rounds < 1 || o.procs < 1 || o.batch < 1 ||
      o.size < 24 || o.size > 1000 || o.redisPort > 65535 || o.timeout < 1)
    usage();
  if (o.procs > o.receivers) o.procs = o.receivers;
  return o;
}

const O = parseArgs(process.argv);

// ---- modules ------------------------------------------------------------

function findModules(given) {
  const dirs = [given, ...(process.env.NODE_PATH || '').split(path.delimiter),
                path.join(__dirname, 'node_modules'),
                '/tmp/libwebsock2-bench-node/node_modules'].filter(Boolean);
  for (const d of dirs) {
    if (PKGS.every((p) => fs.existsSync(path.join(d, p, 'package.json'))))
      return path.resolve(d);
  }
  console.error('socketio_fanout: cannot find ' + PKGS.join(', ') + ' in ' +
                dirs.join(', ') + ' (mkdir -p /tmp/libwebsock2-bench-node && ' +
                'cp bench/package.json bench/package-lock.json ' +
                '/tmp/libwebsock2-bench-node/ && npm ci --prefix ' +
                '/tmp/libwebsock2-bench-node)');
  process.exit(3);
}

const MODULES = findModules(O.modules);
const load = (name) => require(path.join(MODULES, name));
const version = (name) => JSON.parse(
    fs.readFileSync(path.join(MODULES, name, 'package.json'), 'utf8')).version;

// ---- histograms: bench/cluster.c's buckets ------------------------------

const NBUCKETS = 320;

function bucketOf(ns) {
  if (ns < 8) return Math.max(0, Math.floor(ns));
  const lg = Math.floor(Math.log2(ns));
  // Math.log2 may round up just below a power of two
  const l = (2 ** lg > ns) ? lg - 1 : lg;
  const sub = Math.floor(ns / 2 ** (l - 3)) & 7;
  const b = (l - 2) * 8 + sub;
  return b < NBUCKETS ? b : NBUCKETS - 1;
}

function bucketNs(b) {
  if (b < 8) return b;
  const lg = Math.floor(b / 8) + 2, sub = b % 8;
  return (1 + (sub + 0.5) / 8) * 2 ** lg;
}

function histPct(h, p) {
  const total = h.reduce((a, b) => a + b, 0);
  if (!total) return 0;
  const want = Math.ceil(p * total);
  let seen = 0;
  for (let b = 0; b < NBUCKETS; b++) {
    seen += h[b];
    if (seen >= want && h[b]) return bucketNs(b);
  }
  return bucketNs(NBUCKETS - 1);
}

// ---- messages -----------------------------------------------------------

function pattern(seq, from, to) {
  let s = '';
  for (let i = from; i < to; i++)
    s += String.fromCharCode(97 + (seq * 31 + i) % 26);
  return s;
}

function payloadMake(seq, t) {
  const head = 'm' + seq + '.' + t + '.';
  if (head.length > O.size)
    throw new Error(`--size ${O.size} is too small for "${head}"`);
  return head + pattern(seq, head.length, O.size);
}

const PROBE = 'p'.repeat(O.size);

// Returns [seq, send time (BigInt)] or a string saying what is wrong.
function payloadCheck(p) {
  if (typeof p !== 'string') return 'not a string';
  if (p.length !== O.size) return `length ${p.length}, want ${O.size}`;
  const m = /^m([0-9]+)\.([0-9]+)\./.exec(p);
  if (!m) return 'no header';
  const seq = parseInt(m[1], 10);
  if (p.slice(m[0].length) !== pattern(seq, m[0].length, O.size))
    return `corrupt pattern (seq ${seq})`;
  return [seq, BigInt(m[2])];
}

// ---- a server node (a child) ---------------------------------------------

async function serverMain() {
  const http = require('http');
  const {Server} = load('socket.io');
  const {createAdapter} = load('@socket.io/redis-adapter');
  const {createClient} = load('redis');
  const pub = createClient({socket: {host: '127.0.0.1', port: O.redisPort}});
  const sub = pub.duplicate();
  for (const c of [pub, sub])
    c.on('error', (e) => die(`server ${O.node + 1}: redis: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    transports: ['websocket'], serveClient: false,
    adapter: createAdapter(pub, sub, {key: O.key})});
  let publishes = 0;
  io.on('connection', (socket) => {
    socket.on('join', (room, ack) => {
      socket.join(room);
      if (typeof ack === 'function') ack();
    });
    socket.on('pub', (room, payload) => {
      publishes++;
      io.to(room).emit('m', payload);
    });
  });
  process.on('message', (m) => {
    if (m.t === 'clock') {
      process.send({t: 'clock', now: String(now())});
    } else if (m.t === 'stats') {
      const r = io.of('/').adapter.rooms.get(ROOM);
      process.send({t: 'stats', members: r ? r.size : 0,
                    clients: io.engine.clientsCount, publishes,
                    rss: process.memoryUsage().rss,
                    cpu: process.cpuUsage()});
    }
  });
  httpServer.listen(0, '127.0.0.1', 4096, () => {
    process.send({t: 'ready', port: httpServer.address().port});
  });
}

// ---- a client process (a child): receivers ------------------------------

async function clientsMain() {
  const {io} = load('socket.io-client');
  let ports = null, ids = null;
  const recv = []; // {sock, node, next}
  const hist = new Array(NBUCKETS).fill(0);
  const rounds = new Map(); // seq -> {count, max: [per node ns]}
  let warmLeft = 0, deliveries = 0, warmSent = false;

  const bad = (r, why) => die(`client ${O.idx}: receiver ${r.i} (server ` +
                              `${r.node + 1}): ${why}`);
  function onMessage(r, p) {
    const t = now();
    if (typeof p === 'string' && p[0] === 'p') {
      if (p !== PROBE) bad(r, `a corrupt probe (length ${p.length})`);
      if (r.next !== 0) bad(r, 'a probe after a round\'s message');
      if (!r.warm) {
        r.warm = true;
        if (--warmLeft === 0 && !warmSent) {
          warmSent = true;
          process.send({t: 'warm'});
        }
      }
      return;
    }
    const c = payloadCheck(p);
    if (typeof c === 'string') bad(r, c);
    const [seq, sent] = c;
    if (seq !== r.next)
      bad(r, `out of sequence: got ${seq}, want ${r.next}` +
             (seq < r.next ? ' (a duplicate)' : ' (one lost)'));
    if (seq >= O.warmup + O.rounds)
      bad(r, `a sequence number never sent: ${seq}`);
    r.next++;
    deliveries++;
    const d = Number(t - sent);
    if (seq >= O.warmup) hist[bucketOf(d > 0 ? d : 0)]++;
    let st = rounds.get(seq);
    if (!st) {
      rounds.set(seq, st = {count: 0, max: [-1, -1, -1], timer: null});
      st.timer = setTimeout(() => die(
          `client ${O.idx}: message ${seq} reached ${st.count} of its ` +
          `${recv.length} receivers in ${ROUND_TIMEOUT_MS / 1000 - 1} s`),
          ROUND_TIMEOUT_MS - 1000);
    }
    st.count++;
    if (d > st.max[r.node]) st.max[r.node] = d;
    if (st.count === recv.length) {
      clearTimeout(st.timer);
      process.send({t: 'round', seq, max: st.max});
      rounds.delete(seq);
    }
  }

  function connectOne(i) {
    const node = i % NODES;
    return new Promise((resolve) => {
      const sock = io(`http://127.0.0.1:${ports[node]}`, {
        transports: ['websocket'], forceNew: true, reconnection: false,
        timeout: 60000});
      const r = {i, node, sock, next: 0, warm: false, joined: false};
      sock.on('connect_error', (e) => bad(r, `connect error: ${e.message}`));
      sock.on('disconnect', (why) => bad(r, `disconnected: ${why}`));
      sock.on('m', (p) => onMessage(r, p));
      sock.on('connect', () => {
        sock.emit('join', ROOM, () => {
          r.joined = true;
          resolve(r);
        });
      });
    });
  }

  async function connectAll() {
    const t0 = now();
    let next = 0;
    const lanes = Math.max(1, Math.ceil(O.batch / O.procs));
    async function lane() {
      while (next < ids.length) {
        const i = ids[next++];
        recv.push(await connectOne(i));
      }
    }
    await Promise.all(Array.from({length: lanes}, lane));
    warmLeft = recv.length;
    process.send({t: 'connected', n: recv.length,
                  ms: Number(now() - t0) / 1e6});
  }

  process.on('message', (m) => {
    if (m.t === 'clock') {
      process.send({t: 'clock', now: String(now())});
    } else if (m.t === 'connect') {
      ports = m.ports;
      ids = [];
      for (let i = O.idx; i < O.receivers; i += O.procs) ids.push(i);
      connectAll().catch((e) => die(`client ${O.idx}: ${e.stack || e}`));
    } else if (m.t === 'stats') {
      process.send({t: 'stats', cpu: process.cpuUsage()});
    } else if (m.t === 'final') {
      const notDone = recv.filter((r) => r.next !== O.warmup + O.rounds)
                          .length;
      process.send({t: 'final', deliveries, hist, notDone,
                    rss: process.memoryUsage().rss,
                    cpu: process.cpuUsage()});
    }
  });
  process.send({t: 'ready'});
}

// ---- the coordinator ----------------------------------------------------

const children = []; // {proc, name, waiters}
let redisProc = null;

function killAll() {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      try { process.kill(c.proc.pid, 'SIGKILL'); } catch (e) { /* gone */ }
    }
  }
  if (redisProc && redisProc.exitCode === null &&
      redisProc.signalCode === null) {
    try { process.kill(redisProc.pid, 'SIGKILL'); } catch (e) { /* gone */ }
  }
}

function die(msg) {
  console.error('socketio_fanout: ' + msg);
  process.exit(1);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

async function startRedis() {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const p = childProcess.spawn(O.redisServer, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no'], {stdio: ['ignore', 'ignore', 'inherit']});
    redisProc = p;
    let exited = false, spawnErr = null;
    p.on('exit', () => { exited = true; });
    p.on('error', (e) => { spawnErr = e; exited = true; });
    const t0 = Date.now();
    while (!exited && Date.now() - t0 < 10000) {
      if (await redisPing(port)) return port;
      await sleep(20);
    }
    if (spawnErr) die(`cannot run ${O.redisServer}: ${spawnErr.message}`);
    if (!exited) die(`redis-server on port ${port} not answering in 10 s`);
    redisProc = null; // the port was taken meanwhile: another one
  }
  die('redis-server would not start');
}

// A child of ours; its messages go to the waiters of their type, in order.
function forkChild(name, args) {
  const proc = childProcess.fork(__filename, [...args, '--modules', MODULES],
                                 {stdio: ['ignore', 'inherit', 'inherit',
                                          'ipc']});
  const c = {proc, name, queue: new Map(), waiters: new Map(), onMsg: null};
  proc.on('exit', (code, sig) => {
    if (!shuttingDown)
      die(`${name} (pid ${proc.pid}) exited (${sig || code})`);
  });
  proc.on('message', (m) => {
    if (c.onMsg && c.onMsg(m)) return;
    const w = c.waiters.get(m.t);
    if (w && w.length) return w.shift()(m);
    if (!c.queue.has(m.t)) c.queue.set(m.t, []);
    c.queue.get(m.t).push(m);
  });
  children.push(c);
  return c;
}

function waitFor(c, type, ms, what) {
  const q = c.queue.get(type);
  if (q && q.length) return Promise.resolve(q.shift());
  return new Promise((resolve) => {
    const timer = setTimeout(
        () => die(`${c.name}: no ${what || type} in ${ms / 1000} s`), ms);
    if (!c.waiters.has(type)) c.waiters.set(type, []);
    c.waiters.get(type).push((m) => { clearTimeout(timer); resolve(m); });
  });
}

// Each child's reading must fall between two of ours: one clock.
async function clockCheck(c) {
  for (let i = 0; i < 3; i++) {
    const t0 = now();
    c.proc.send({t: 'clock'});
    const m = await waitFor(c, 'clock', 5000);
    const t2 = now(), t1 = BigInt(m.now);
    if (!(t0 <= t1 && t1 <= t2))
      die(`${c.name}'s clock is not ours: ${t0} <= ${t1} <= ${t2} fails ` +
          '(process.hrtime.bigint() differs between processes)');
  }
}

let shuttingDown = false;

// CPU (user + system) microseconds each of |cs| has used so far.
async function cpuOf(cs) {
  const out = [];
  for (const c of cs) {
    c.proc.send({t: 'stats'});
    const m = await waitFor(c, 'stats', 5000);
    out.push(m.cpu.user + m.cpu.system);
  }
  return out;
}

function pct(sorted, p) {
  return sorted[Math.floor((sorted.length - 1) * p)];
}

async function main() {
  const t0 = Date.now();
  const deadline = setTimeout(() => die(`not done in ${O.timeout} s`),
                              O.timeout * 1000);
  process.on('exit', killAll);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.on(s, () => die(`got ${s}`));
  process.on('uncaughtException', (e) => die(e.stack || String(e)));
  process.on('unhandledRejection', (e) => die((e && e.stack) || String(e)));

  const versions = {
    node: process.version, 'socket.io': version('socket.io'),
    'socket.io-client': version('socket.io-client'),
    '@socket.io/redis-adapter': version('@socket.io/redis-adapter'),
    redis: version('redis')};
  const own = !O.redisPort;
  const redisPort = own ? await startRedis() : O.redisPort;
  if (!own && !(await redisPing(redisPort)))
    die(`no Redis answering on 127.0.0.1:${redisPort}`);
  let redisVersion = '?';
  try {
    redisVersion = childProcess.execFileSync(O.redisServer, ['--version'],
        {encoding: 'utf8'}).match(/v=(\S+)/)[1];
  } catch (e) { /* not known */ }
  const key = `sio-fanout-${process.pid}`;
  console.log(`socketio_fanout: ${O.receivers} receivers, ${O.rounds} ` +
              `rounds after ${O.warmup} warm-up rounds, ${O.size}-character ` +
              `messages; Redis ${redisVersion} ` +
              `on 127.0.0.1:${redisPort}` +
              (own ? ` (ours, pid ${redisProc.pid})` : ' (given)') +
              `; 3 server processes, ${O.procs} client processes, ` +
              `${O.batch} connects in flight; load average ` +
              os.loadavg().map((x) => x.toFixed(2)).join(', '));

  // servers
  const servers = [];
  for (let k = 0; k < NODES; k++)
    servers.push(forkChild(`server ${k + 1}`, [
      '--role', 'server', '--node', String(k), '--redis-port',
      String(redisPort), '--key', key, '--timeout', String(O.timeout)]));
  const ports = [];
  for (const s of servers) ports.push((await waitFor(s, 'ready', 20000)).port);

  // clients
  const clients = [];
  for (let j = 0; j < O.procs; j++)
    clients.push(forkChild(`client ${j}`, [
      '--role', 'clients', '--idx', String(j), '--receivers',
      String(O.receivers), '--rounds', String(O.rounds), '--warmup',
      String(O.warmup), '--client-procs',
      String(O.procs), '--batch', String(O.batch), '--size',
      String(O.size), '--timeout', String(O.timeout)]));
  for (const c of clients) await waitFor(c, 'ready', 20000);
  for (const c of [...servers, ...clients]) await clockCheck(c);

  // connect the receivers
  const tc = now();
  for (const c of clients) c.proc.send({t: 'connect', ports});
  const conn = [];
  for (const c of clients)
    conn.push(await waitFor(c, 'connected', O.timeout * 1000, 'connections'));
  const connectMs = Number(now() - tc) / 1e6;

  // the publisher, on server 1
  const {io} = load('socket.io-client');
  const publisher = io(`http://127.0.0.1:${ports[0]}`, {
    transports: ['websocket'], forceNew: true, reconnection: false});
  publisher.on('connect_error', (e) => die(`publisher: ${e.message}`));
  publisher.on('disconnect', (why) => {
    if (!shuttingDown) die(`publisher disconnected: ${why}`);
  });
  await new Promise((r) => publisher.on('connect', r));

  const stats0 = [];
  for (const s of servers) {
    s.proc.send({t: 'stats'});
    stats0.push(await waitFor(s, 'stats', 5000));
  }
  const on = stats0.map((s) => s.members);
  const want = [0, 1, 2].map((k) => Math.floor(O.receivers / NODES) +
                                    (k < O.receivers % NODES ? 1 : 0));
  if (on.some((x, k) => x !== want[k]))
    die(`the servers' rooms hold ${on.join(' + ')}, want ${want.join(' + ')}`);

  // probes until every receiver has had one
  let warm = 0;
  const warmDone = new Promise((resolve) => {
    for (const c of clients) {
      waitFor(c, 'warm', 20000, 'probe at every receiver').then(() => {
        if (++warm === clients.length) resolve();
      });
    }
  });
  let warmed = false;
  warmDone.then(() => { warmed = true; });
  while (!warmed) {
    publisher.emit('pub', ROOM, PROBE);
    await Promise.race([warmDone, sleep(50)]);
  }
  await sleep(200);
  const cpu0 = await cpuOf([...servers, ...clients]);

  // the rounds, the first --warmup of them not counted
  const last = [], nodeLast = [[], [], []], warmLast = [];
  for (let r = 0; r < O.warmup + O.rounds; r++) {
    const reports = clients.map((c) => waitFor(c, 'round', ROUND_TIMEOUT_MS,
        `all receipts of round ${r}`));
    const t = now();
    publisher.emit('pub', ROOM, payloadMake(r, t));
    const got = await Promise.all(reports);
    let all = -1;
    const per = [-1, -1, -1];
    for (const m of got) {
      if (m.seq !== r) die(`round ${r}: a report of round ${m.seq}`);
      for (let k = 0; k < NODES; k++) {
        per[k] = Math.max(per[k], m.max[k]);
        all = Math.max(all, m.max[k]);
      }
    }
    if (r < O.warmup) {
      warmLast.push(all);
    } else {
      last.push(all);
      for (let k = 0; k < NODES; k++) nodeLast[k].push(per[k]);
    }
    await sleep(GAP_MS);
  }

  const cpu1 = await cpuOf([...servers, ...clients]);
  const cpuRound = cpu1.map((x, i) => (x - cpu0[i]) / (O.warmup + O.rounds));

  // anything late (a duplicate) shows in the next 300 ms
  await sleep(300);
  const hist = new Array(NBUCKETS).fill(0);
  let deliveries = 0, cpuClients = 0, rssClients = 0;
  for (const c of clients) {
    c.proc.send({t: 'final'});
    const m = await waitFor(c, 'final', 5000);
    if (m.notDone) die(`${c.name}: ${m.notDone} receivers missed a round`);
    deliveries += m.deliveries;
    for (let b = 0; b < NBUCKETS; b++) hist[b] += m.hist[b];
    cpuClients += (m.cpu.user + m.cpu.system) / 1e6;
    rssClients += m.rss;
  }
  const total = O.receivers * (O.warmup + O.rounds);
  if (deliveries !== total) die(`${deliveries} deliveries, want ${total}`);
  const stats = [];
  for (const s of servers) {
    s.proc.send({t: 'stats'});
    stats.push(await waitFor(s, 'stats', 5000));
  }
  if (stats[0].publishes < O.warmup + O.rounds)
    die(`server 1 counted ${stats[0].publishes} publishes`);

  const sorted = [...last].sort((a, b) => a - b);
  const ms = (ns) => (ns / 1e6).toFixed(2);
  const p50 = pct(sorted, 0.5), p99 = pct(sorted, 0.99);
  const max = sorted[sorted.length - 1];
  const nodeP50 = nodeLast.map((a) => [...a].sort((x, y) => x - y))
                          .map((a) => (a[0] < 0 ? null : pct(a, 0.5)));
  const loadAvg = os.loadavg().map((x) => x.toFixed(2)).join(', ');
  const label = `socket.io ${versions['socket.io']} + redis-adapter ` +
                `${versions['@socket.io/redis-adapter']}, node 1 → nodes ` +
                '1, 2, 3';
  console.log(
      `fan-out ${label}, ${on.join('+')} receivers (connected in ` +
      `${connectMs.toFixed(0)} ms, the client processes' ` +
      conn.map((m) => m.ms.toFixed(0)).join(' / ') + ' ms): last receipt ' +
      `p50 ${ms(p50)} ms, p99 ${ms(p99)} ms, max ${ms(max)} ms; the nodes' ` +
      'last p50 ' +
      nodeP50.map((x) => (x === null ? '–' : ms(x))).join(' / ') +
      ` ms; each delivery p50/p99 ${(histPct(hist, 0.5) / 1e3).toFixed(0)} / ` +
      `${(histPct(hist, 0.99) / 1e3).toFixed(0)} us; ${deliveries} ` +
      'deliveries, all checked');
  console.log('rounds, last receipt ms: ' + last.map(ms).join(' ') +
              (O.warmup ? `; the ${O.warmup} warm-up rounds before (not ` +
                          `counted): ${warmLast.map(ms).join(' ')}` : ''));
  console.log(`\n| fan-out of one publish (${O.rounds} rounds) | receivers | ` +
              'last receipt p50 / p99 / max ms | nodes 1 / 2 / 3\'s last, ' +
              'p50 ms | each delivery p50 / p99 ms |\n' +
              '|---|---|---:|---:|---:|');
  console.log(`| ${label} | ${on.join(' + ')} | ${ms(p50)} / ${ms(p99)} / ` +
              `${ms(max)} | ` +
              nodeP50.map((x) => (x === null ? '–' : ms(x))).join(' / ') +
              ` | ${ms(histPct(hist, 0.5))} / ${ms(histPct(hist, 0.99))} |\n`);
  console.log(
      `versions: Node ${versions.node}, socket.io ${versions['socket.io']}, ` +
      `socket.io-client ${versions['socket.io-client']}, ` +
      `@socket.io/redis-adapter ${versions['@socket.io/redis-adapter']}, ` +
      `redis (node-redis) ${versions.redis}, redis-server ${redisVersion}; ` +
      'each socket.io server a process of its own (child_process.fork), ' +
      `the receivers in ${O.procs} client process` +
      (O.procs > 1 ? 'es' : '') + ', the publisher in the coordinator');
  console.log(
      'CPU s (user + sys) since start: servers ' +
      stats.map((s) => ((s.cpu.user + s.cpu.system) / 1e6).toFixed(1))
           .join(' / ') +
      `, clients ${cpuClients.toFixed(1)}; RSS MB: servers ` +
      stats.map((s) => (s.rss / 1048576).toFixed(0)).join(' / ') +
      `, clients ${(rssClients / 1048576).toFixed(0)}; ` +
      `load average ${loadAvg};` +
      ` ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);
  console.log('CPU ms per round (warm-up rounds included): servers ' +
              cpuRound.slice(0, NODES).map((x) => (x / 1e3).toFixed(1))
                      .join(' / ') + ', client processes ' +
              cpuRound.slice(NODES).map((x) => (x / 1e3).toFixed(1))
                      .join(' / '));

  shuttingDown = true;
  clearTimeout(deadline);
  publisher.close();
  const reaped = redisProc ? new Promise((r) => redisProc.on('exit', r))
                           : Promise.resolve();
  killAll();
  await Promise.race([reaped, sleep(2000)]);
  process.exit(0);
}

if (O.role === 'server' || O.role === 'clients') {
  // A child: gone with its parent, and never past the run's own bound.
  process.on('disconnect', () => process.exit(1));
  setTimeout(() => process.exit(1), (O.timeout + 30) * 1000).unref();
  process.on('uncaughtException', (e) => die(e.stack || String(e)));
  process.on('unhandledRejection', (e) => die((e && e.stack) || String(e)));
  (O.role === 'server' ? serverMain : clientsMain)()
      .catch((e) => die(e.stack || String(e)));
} else if (O.role === 'main') {
  main().catch((e) => die(e.stack || String(e)));
} else {
  usage();
}
