#!/usr/bin/env bash
# Installs what is missing, builds libwebsock2 and runs the main example:
# the chat server with its web page on http://127.0.0.1:${PORT:-8080}/
# (WebSocket on /chat). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target chat_server echo_server
PORT=${PORT:-8080}
echo "chat: open http://127.0.0.1:$PORT/ in a browser (WebSocket ws://127.0.0.1:$PORT/chat); Ctrl-C stops"
exec build/examples/chat_server --port "$PORT" --io-threads 2 --agents 2 \
  --web examples/web/chat.html
