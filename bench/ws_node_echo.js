#!/usr/bin/env node
// Echo server on Node's `ws` package, a benchmark comparison row for
// permessage-deflate (issue 14). Text stays text, binary stays binary.
//
//   node bench/ws_node_echo.js --port P [--modules DIR] [--no-deflate]
//        [--level N] [--threshold BYTES] [--server-no-context-takeover]
//
// `ws` is not vendored: install it outside the tree, e.g.
//   npm install --prefix /tmp/libwebsock2-bench-node ws@8.23.0
// and pass --modules /tmp/libwebsock2-bench-node/node_modules (or set
// WSBENCH_NODE_MODULES). With no flags it runs `perMessageDeflate: true`,
// ws's defaults: zlib level 6 (Z_DEFAULT_COMPRESSION), messages under
// 1024 bytes uncompressed, context kept on both sides unless the client
// asks otherwise, a deflate and an inflate stream per connection, made
// on first use.
'use strict';

const path = require('path');

function parseArgs(argv) {
  const opt = {port: 0, modules: process.env.WSBENCH_NODE_MODULES || '',
               deflate: true, level: null, threshold: null, snct: false};
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage();
      return argv[++i];
    };
    if (a === '--port') opt.port = parseInt(val(), 10);
    else if (a === '--modules') opt.modules = val();
    else if (a === '--no-deflate') opt.deflate = false;
    else if (a === '--level') opt.level = parseInt(val(), 10);
    else if (a === '--threshold') opt.threshold = parseInt(val(), 10);
    else if (a === '--server-no-context-takeover') opt.snct = true;
    else usage();
  }
  if (!(opt.port > 0 && opt.port < 65536)) usage();
  return opt;
}

function usage() {
  console.error('usage: ws_node_echo.js --port P [--modules DIR] ' +
                '[--no-deflate] [--level N] [--threshold BYTES] ' +
                '[--server-no-context-takeover]');
  process.exit(2);
}

function loadWs(modules) {
  const dirs = [modules, path.join(__dirname, 'node_modules'),
                '/tmp/libwebsock2-bench-node/node_modules'].filter(Boolean);
  for (const d of dirs) {
    try {
      return require(require.resolve('ws', {paths: [d]}));
    } catch (e) {
      // try the next place
    }
  }
  console.error('ws_node_echo: cannot find the `ws` package in ' +
                dirs.join(', '));
  process.exit(3);
}

function main() {
  const opt = parseArgs(process.argv);
  const {WebSocketServer} = loadWs(opt.modules);
  let pmd = opt.deflate;
  if (pmd && (opt.level !== null || opt.threshold !== null || opt.snct)) {
    pmd = {};
    if (opt.level !== null) pmd.zlibDeflateOptions = {level: opt.level};
    if (opt.threshold !== null) pmd.threshold = opt.threshold;
    if (opt.snct) pmd.serverNoContextTakeover = true;
  }
  const wss = new WebSocketServer({host: '127.0.0.1', port: opt.port,
                                   perMessageDeflate: pmd, backlog: 4096,
                                   maxPayload: 16 * 1024 * 1024,
                                   clientTracking: false});
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, {binary: isBinary}));
    ws.on('error', () => {});
  });
  wss.on('listening', () => console.log(`listening on ${opt.port}`));
  wss.on('error', (e) => {
    console.error(`ws_node_echo: ${e.message}`);
    process.exit(1);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => process.exit(0));
  }
}

main();
