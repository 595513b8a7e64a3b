"""libwebsock2: a multi-threaded WebSocket server and client (C core on libevent).

Threaded API::

    import libwebsock2

    srv = libwebsock2.Server(port=8765, io_threads=2, agents=2)

    @srv.on_message
    def echo(conn, msg):
        conn.send(msg)          # str -> text frame, bytes -> binary frame

    srv.serve_forever()         # Ctrl-C or SIGTERM: a graceful stop

Client (threads)::

    with libwebsock2.connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hi")
        print(ws.recv())

asyncio API (``libwebsock2.aio.serve``, ``libwebsock2.aio.connect``): see :mod:`libwebsock2.aio` (``import libwebsock2`` then
``libwebsock2.aio.serve(...)`` works too).
"""
import importlib
from typing import Any

from . import _websock
from ._config import TLS, Deflate
from ._errors import (AddressError, BadUtf8, Backpressure, Closing, ConnectionClosed,
                      ConnectionClosedError, ConnectionClosedOK, Error, InvalidArgument,
                      NoMemory, NoSuchClient, RecursiveCall, ClusterError, StateError,
                      SystemCallError,
                      TagTaken, TLSError, TooBig, error_for, InvalidURI, ConnectError,
                      ConnectionFailed, TLSHandshakeError, InvalidHandshake, InvalidStatus,
                      OpenTimeout)
from ._client import ClientConnection, connect
from ._handshake import DEFER, Headers, Request, Upgrade
from ._server import Connection, Payload, Server

# The version of the C library (websock_version(); project() in
# CMakeLists.txt is its one source).
__version__: str = _websock.websock_version()


def core_version() -> str:
    """Version of the C core compiled into the extension."""
    return _websock.websock_version()


__all__ = [
    "Server", "Connection", "Payload", "Request", "Upgrade", "Headers", "DEFER", "TLS",
    "Deflate",
    "Error", "InvalidArgument", "NoMemory", "StateError", "NoSuchClient", "TagTaken",
    "Backpressure", "Closing", "ConnectionClosed", "ConnectionClosedOK",
    "ConnectionClosedError", "TooBig", "BadUtf8", "AddressError", "SystemCallError",
    "TLSError", "RecursiveCall", "ClusterError", "error_for", "core_version", "aio",
    "connect", "ClientConnection", "InvalidURI", "ConnectError", "ConnectionFailed",
    "TLSHandshakeError", "InvalidHandshake", "InvalidStatus", "OpenTimeout",
]


def __getattr__(name: str) -> Any:
    # `libwebsock2.aio` without importing asyncio for threaded users. Not
    # `from . import aio`: that asks this module for the attribute first,
    # which lands here again (RecursionError) before the submodule is
    # imported; import_module imports it and binds it on the package.
    if name == "aio":
        return importlib.import_module(__name__ + ".aio")
    raise AttributeError("module 'libwebsock2' has no attribute %r" % name)
