#!/usr/bin/python3
"""Echo server on Debian's python3-websockets (asyncio), a benchmark
comparison row. Run with /usr/bin/python3 (Debian's interpreter)."""
import argparse
import asyncio
import signal

import websockets


async def echo(ws, *_path):
    # Text stays text, binary stays binary: websockets hands us str/bytes.
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def serve(port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port,
                                compression=None, ping_interval=None,
                                max_size=16 * 1024 * 1024, backlog=4096):
        print(f"listening on {port}", flush=True)
        await stop


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
