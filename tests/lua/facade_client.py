"""What the Python clients of test_facade.lua share (run with
/usr/bin/python3 websockets): "PASS name" / "FAIL name: why" lines, and the
ending that sends "stop" on a fresh connection so the Lua side's srv:run()
returns, prints "DONE" and exits 0 only if every check passed."""
import asyncio
import sys

import websockets

_ok_all = True


def report(name, ok, why=""):
    global _ok_all
    _ok_all = _ok_all and ok
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


def run_then_stop(main, timeout, stop_url):
    """Runs the coroutine function |main| for at most |timeout| seconds,
    then stops the Lua server at |stop_url| whatever happened."""
    try:
        asyncio.run(asyncio.wait_for(main(), timeout))
    finally:
        async def stop():
            async with websockets.connect(stop_url) as ws:
                await ws.send("stop")
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except Exception:  # noqa: BLE001
                    pass
        try:
            asyncio.run(asyncio.wait_for(stop(), 10))
        except Exception as e:  # noqa: BLE001
            print("stop failed: %s" % e, flush=True)
        print("DONE", flush=True)
    sys.exit(0 if _ok_all else 1)
