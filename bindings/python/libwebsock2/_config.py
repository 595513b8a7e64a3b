"""Builds a core config from keyword options (shared by the threaded and
the asyncio servers)."""
import os
from typing import Dict, Iterable, Mapping, Optional, Tuple, Union

from . import _websock as _ws
from ._errors import TLSError, check

HttpRoutes = Mapping[str, Tuple[str, Union[bytes, bytearray, memoryview, str]]]

# The ``spread`` option: how accepted connections are spread over the I/O
# threads (a connection stays on its thread for life).
SPREADS: Dict[str, int] = {
    "least_connections": _ws.SPREAD_LEAST_CONNECTIONS,  # fewest open; ties in turn
    "round_robin": _ws.SPREAD_ROUND_ROBIN,              # each thread in turn
}


def _ms(seconds: Optional[float], what: str) -> Optional[int]:
    if seconds is None:
        return None
    if seconds < 0:
        raise ValueError("%s must be >= 0" % what)
    return int(round(seconds * 1000))


def make_server(
    *,
    host: str,
    port: int,
    io_threads: int = 1,
    agents: int,
    queued: bool,
    spread: str = "least_connections",
    reuse_port: bool = False,
    agent_budget: Optional[int] = None,
    max_message_size: Optional[int] = None,
    max_frame_size: Optional[int] = None,
    max_outbound: Optional[int] = None,
    max_connections: Optional[int] = None,
    max_handshake_size: Optional[int] = None,
    fragment_size: Optional[int] = None,
    handshake_timeout: Optional[float] = None,
    idle_timeout: Optional[float] = None,
    ping_interval: Optional[float] = None,
    close_timeout: Optional[float] = None,
    control_events: bool = False,
    ws_paths: Optional[Iterable[str]] = None,
    http_routes: Optional[HttpRoutes] = None,
    ssl: object = None,
    hook: bool = False,
) -> object:
    """Returns the owner handle (``pyws_server``) of a new, unstarted core
    server. Raises the mapped :class:`libwebsock2.Error` on bad options, and
    ValueError on a bad ``port``, ``spread`` (one of :data:`SPREADS`) or
    ``reuse_port`` (True or False: every I/O thread listens on its own
    SO_REUSEPORT socket, and several servers may share one port).

    ``hook=True`` installs the handshake trampoline (it calls the callable
    given to ``pyws_set_handshake``) and, with agents in DIRECT delivery,
    runs it on the agents (websock_config_set_handshake_on_agents), so a
    slow Python handshake handler never holds up an I/O thread."""
    tls = _tls_files(ssl)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError("port must be an int in 0..65535")
    policy = SPREADS.get(spread) if isinstance(spread, str) else None
    if policy is None:
        raise ValueError("spread must be %s, not %r" % (
            " or ".join(repr(name) for name in SPREADS), spread))
    if reuse_port not in (True, False):
        raise ValueError("reuse_port must be True or False, not %r" % (reuse_port,))
    rc, cfg = _ws.websock_config_new()
    check(rc, "config")
    try:
        check(_ws.websock_config_set_listen(cfg, host, port), "host/port")
        check(_ws.websock_config_set_io_threads(cfg, io_threads), "io_threads (1..64)")
        check(_ws.websock_config_set_spread(cfg, policy), "spread")
        check(_ws.websock_config_set_reuse_port(cfg, 1 if reuse_port else 0), "reuse_port")
        check(_ws.websock_config_set_agents(cfg, 0 if queued else agents), "agents (0..64)")
        if agent_budget is not None:
            if agent_budget < 0:
                raise ValueError("agent_budget must be >= 0")
            check(_ws.websock_config_set_agent_budget(cfg, agent_budget),
                  "agent_budget (1..65536)")
        check(_ws.websock_config_set_delivery(
            cfg, _ws.DELIVERY_QUEUED if queued else _ws.DELIVERY_DIRECT), "delivery")
        check(_ws.websock_config_set_control_events(cfg, 1 if control_events else 0))
        sizes = (
            (_ws.websock_config_set_max_message_size, max_message_size, "max_message_size"),
            (_ws.websock_config_set_max_frame_size, max_frame_size, "max_frame_size"),
            (_ws.websock_config_set_max_outbound, max_outbound, "max_outbound"),
            (_ws.websock_config_set_max_connections, max_connections, "max_connections"),
            (_ws.websock_config_set_max_handshake_size, max_handshake_size, "max_handshake_size"),
            (_ws.websock_config_set_fragment_size, fragment_size, "fragment_size"),
            (_ws.websock_config_set_handshake_timeout, _ms(handshake_timeout, "handshake_timeout"),
             "handshake_timeout"),
            (_ws.websock_config_set_idle_timeout, _ms(idle_timeout, "idle_timeout"), "idle_timeout"),
            (_ws.websock_config_set_ping_interval, _ms(ping_interval, "ping_interval"),
             "ping_interval"),
            (_ws.websock_config_set_close_timeout, _ms(close_timeout, "close_timeout"),
             "close_timeout"),
        )
        for setter, value, name in sizes:
            if value is not None:
                if value < 0:
                    raise ValueError("%s must be >= 0" % name)
                check(setter(cfg, value), name)
        for path in ws_paths or ():
            check(_ws.websock_config_add_ws_path(cfg, path), "ws_paths %r" % (path,))
        for path, route in (http_routes or {}).items():
            ctype, body = route
            if isinstance(body, str):
                body = body.encode("utf-8")
            check(_ws.websock_config_add_http_route(cfg, path, ctype, bytes(body)),
                  "http_routes %r" % (path,))
        if tls:
            check(_ws.websock_config_set_tls(cfg, tls[0], tls[1]), "ssl")
        on_agents = 1 if hook and agents > 0 and not queued else 0
        check(_ws.websock_config_set_handshake_on_agents(cfg, on_agents), "handshake_on_agents")
        try:
            return _ws.pyws_server_new(cfg, 1 if hook else 0)
        except TLSError as e:
            # The core names the file and the reason (e.g. key mismatch).
            raise TLSError("%s: %s" % (e.args[0] if e.args else "TLS",
                                       _ws.websock_tls_last_error())) from None
    finally:
        _ws.websock_config_free(cfg)


def _tls_files(ssl: object) -> Optional[Tuple[str, str]]:
    """``ssl`` is None, a ``(certfile, keyfile)`` pair of PEM paths, or a
    mapping with ``certfile`` and ``keyfile`` keys."""
    if ssl is None:
        return None
    if isinstance(ssl, dict):
        ssl = (ssl.get("certfile"), ssl.get("keyfile"))
    if (isinstance(ssl, (tuple, list)) and len(ssl) == 2 and
            all(isinstance(p, (str, bytes)) or hasattr(p, "__fspath__") for p in ssl)):
        return (os.fsdecode(ssl[0]), os.fsdecode(ssl[1]))
    raise TypeError(
        "ssl must be (certfile, keyfile) or {'certfile': ..., 'keyfile': ...}; "
        "an ssl.SSLContext cannot be handed to the C core")


def parse_remote(addr: Optional[str]) -> Optional[Tuple[str, int]]:
    """"1.2.3.4:5" / "[::1]:5" -> (host, port)."""
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return (host, int(port))
    except ValueError:
        return (addr, 0)


__all__ = ["make_server", "parse_remote", "HttpRoutes", "SPREADS"]
