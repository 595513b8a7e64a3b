"""Builds a core config from keyword options (shared by the threaded and
the asyncio servers), :class:`TLS`, the ``ssl=`` option, and
:class:`Deflate`, the ``compression=`` option.

Every option is checked here before the core sees it, so that a bad value
raises :class:`InvalidArgument` naming the option and the values allowed
("io_threads must be an int in 1..256, not 0"); the ranges are those
documented in ``<websock/config.h>``, and the core checks them again."""
import os
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

from . import _websock as _ws
from ._errors import InvalidArgument, TLSError, check, error_for

HttpRoutes = Mapping[str, Tuple[str, Union[bytes, bytearray, memoryview, str]]]
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# The ``spread`` option: how accepted connections are spread over the I/O
# threads (a connection stays on its thread for life).
SPREADS: Dict[str, int] = {
    "least_connections": _ws.SPREAD_LEAST_CONNECTIONS,  # fewest open; ties in turn
    "round_robin": _ws.SPREAD_ROUND_ROBIN,              # each thread in turn
}

# The keepalive of websockets: a ping after this many seconds without a
# frame from the peer, and a close with 1011 when it then stays silent for
# as long again. None turns either off.
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0

_U32 = 2 ** 32 - 1
_U64 = 2 ** 64 - 1
_MAX_SECONDS = _U32 / 1000.0  # the core keeps times as unsigned milliseconds
# cluster_ttl: how long a node stays alive in Redis without a beat, in
# seconds as every time option (websock_config_set_cluster_ttl takes
# 100..600000 ms).
CLUSTER_TTL_MIN = 0.1
CLUSTER_TTL_MAX = 600.0
NODE_MAX = 1023  # node numbers 1..1023; 0 draws a free one from Redis

# Byte sizes: (option, setter, lowest, highest, what 0 means or "").
_SIZES = (
    ("max_message_size", "max_message_size", 1, _U64, ""),
    ("max_frame_size", "max_frame_size", 0, _U64, "0: the message limit"),
    ("max_outbound", "max_outbound", 1024, _U64, ""),
    ("max_connections", "max_connections", 1, _U32, ""),
    ("max_handshake_size", "max_handshake_size", 256, 1 << 20, ""),
    ("fragment_size", "fragment_size", 0, _U64, "0: never fragment"),
)
# Times in seconds: (option, setter, whether 0 is allowed (and means never)).
_TIMES = (
    ("handshake_timeout", "handshake_timeout", False),
    ("idle_timeout", "idle_timeout", True),
    ("ping_interval", "ping_interval", True),
    ("ping_timeout", "ping_timeout", True),
    ("close_timeout", "close_timeout", False),
    ("slow_consumer_timeout", "slow_consumer_timeout", True),
)


def invalid(message: str) -> InvalidArgument:
    """An :class:`InvalidArgument` with ``message``."""
    return error_for(InvalidArgument.code, message)  # type: ignore[return-value]


def check_int(name: str, value: Any, low: int, high: Optional[int] = None,
              unit: str = "") -> int:
    """``value`` when it is an int in ``low..high``, else InvalidArgument
    naming ``name`` and the range."""
    if (isinstance(value, bool) or not isinstance(value, int) or value < low or
            (high is not None and value > high)):
        if high is None or high >= _U32:
            allowed = "an int >= %d%s" % (low, " (%s)" % unit if unit else "")
        else:
            allowed = "an int in %d..%d%s" % (low, high, " (%s)" % unit if unit else "")
        raise invalid("%s must be %s, not %r" % (name, allowed, value))
    return value


def seconds_to_ms(name: str, value: Any, zero_ok: bool) -> int:
    """Milliseconds of ``value`` seconds, or InvalidArgument naming ``name``
    and the range (``zero_ok``: 0 is allowed and means never)."""
    low = 0.0 if zero_ok else 0.001
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and
          low <= value <= _MAX_SECONDS)
    ms = int(round(value * 1000)) if ok else 0
    if not ok or (ms == 0 and not zero_ok):
        raise invalid("%s must be seconds in %s..%.3f%s, not %r" % (
            name, "0" if zero_ok else "0.001", _MAX_SECONDS,
            " (0 or None: never)" if zero_ok else " (None: the default)", value))
    return ms


_VERIFY = {False: _ws.TLS_VERIFY_NONE, True: _ws.TLS_VERIFY_REQUIRED,
           "optional": _ws.TLS_VERIFY_OPTIONAL, "required": _ws.TLS_VERIFY_REQUIRED}


def cluster_ttl_ms(value: Any) -> int:
    """Milliseconds of the ``cluster_ttl`` option (seconds in 0.1..600),
    or InvalidArgument naming the range."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and
          CLUSTER_TTL_MIN <= value <= CLUSTER_TTL_MAX)
    if not ok:
        raise invalid("cluster_ttl must be seconds in %g..%g (None: the default, 9), not %r"
                      % (CLUSTER_TTL_MIN, CLUSTER_TTL_MAX, value))
    return int(round(value * 1000))


def _path(value: Any, what: str) -> str:
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return os.fsdecode(value)
    raise TypeError("%s must be a path (str, bytes or os.PathLike), not %s"
                    % (what, type(value).__name__))


class TLS:
    """The ``ssl=`` option of the servers: serve wss:// with the PEM
    certificate chain ``certfile`` (server certificate first) and the PEM
    private key ``keyfile`` (None: the key is in ``certfile``), decrypted
    with ``password`` (str, bytes, or a callable returning one, called once
    when the server is made) when it is encrypted.

    Client certificates (mutual TLS): ``verify_client=True`` (or
    ``"required"``) lets in only clients with a certificate signed by a CA
    of ``cafile`` (PEM); ``"optional"`` also lets in clients without one
    (but never one with an untrusted certificate); ``False`` (the default)
    asks for none. The verified subject is ``request.tls_peer``
    ("CN=alice,O=Example", RFC 2253) in ``process_request`` and on
    ``conn.request``.

    Why not an ``ssl.SSLContext``: the C core runs TLS on its own I/O
    threads with its own OpenSSL ``SSL_CTX``; Python's ``ssl`` module
    offers no way to hand over the ``SSL_CTX`` inside an ``SSLContext``
    (and the extension may be linked against another OpenSSL than
    Python's ``_ssl``), and its callbacks (``sni_callback``, password
    callables) would have to run Python code on those threads in the
    middle of a handshake. So the core builds its context from files."""

    __slots__ = ("certfile", "keyfile", "password", "cafile", "verify_client", "_mode")

    def __init__(self, certfile: PathLike, keyfile: Optional[PathLike] = None,
                 password: Union[None, str, bytes, Callable[[], Union[str, bytes]]] = None,
                 cafile: Optional[PathLike] = None,
                 verify_client: Union[bool, str] = False) -> None:
        self.certfile = _path(certfile, "certfile")
        self.keyfile = self.certfile if keyfile is None else _path(keyfile, "keyfile")
        if not (password is None or isinstance(password, (str, bytes, bytearray)) or
                callable(password)):
            raise TypeError("password must be str, bytes, a callable returning one, or None, "
                            "not %s" % type(password).__name__)
        self.password = password
        self.cafile = None if cafile is None else _path(cafile, "cafile")
        mode = _VERIFY.get(verify_client) if isinstance(verify_client, (bool, str)) else None
        if mode is None:
            raise invalid("verify_client must be False, True (required) or 'optional', not %r"
                          % (verify_client,))
        if mode != _ws.TLS_VERIFY_NONE and self.cafile is None:
            raise invalid("verify_client=%r needs cafile, the PEM file of the CAs that sign "
                          "the client certificates" % (verify_client,))
        if mode == _ws.TLS_VERIFY_NONE and self.cafile is not None:
            raise invalid("cafile is only read to verify client certificates: pass "
                          "verify_client=True or 'optional' with it")
        self.verify_client = verify_client
        self._mode = mode

    def _password_bytes(self) -> Optional[Union[str, bytes]]:
        pw = self.password
        if callable(pw):
            pw = pw()
            if not isinstance(pw, (str, bytes, bytearray)):
                raise TypeError("the password callable must return str or bytes, not %s"
                                % type(pw).__name__)
        return bytes(pw) if isinstance(pw, bytearray) else pw

    def __repr__(self) -> str:
        return "libwebsock2.TLS(%r, %r%s%s%s)" % (
            self.certfile, self.keyfile, ", password=..." if self.password is not None else "",
            ", cafile=%r" % self.cafile if self.cafile else "",
            ", verify_client=%r" % self.verify_client if self.verify_client else "")


# permessage-deflate's memory models (enum websock_deflate_mode).
DEFLATE_MODES: Dict[str, int] = {
    "shared": _ws.DEFLATE_SHARED,        # one compressor per I/O thread, no context kept
    "dedicated": _ws.DEFLATE_DEDICATED,  # a compressor per connection that keeps context
}


class Deflate:
    """The ``compression=`` option with control of permessage-deflate
    (RFC 7692) and its memory; ``compression="deflate"`` is ``Deflate()``,
    ``compression=None`` turns it off. Clients that offer the extension
    (browsers, websockets, ws) get it; the others are served uncompressed.

    ``mode``: ``"shared"`` (the default) keeps one compressor per I/O
    thread (and window size) for every connection and never keeps context
    between messages, so a connection costs no compressor memory at all
    and a broadcast is compressed once per I/O thread; the answer asks the
    clients to reset their context too (``server_no_context_takeover;
    client_no_context_takeover``), so no connection needs an inflater of
    its own. ``"dedicated"``: a compressor per connection, made on its
    first compressed message, that keeps context (better ratios for
    similar messages) at about 2^(window_bits+2) + 2^(mem_level+9) bytes
    per connection (268 KiB at 15/8, 9 KiB at 9/1), plus an inflater (up
    to 40 KiB) per client that keeps its context.

    ``window_bits``: our compressors' largest window, 9..15 (a client may
    ask for a smaller one); ``mem_level``: zlib's memLevel, 1..9;
    ``level``: zlib's level, -1..9 (1, the fastest, is the default: a
    ratio close to 6's at half the CPU; 0 stores, -1 is zlib's default);
    ``threshold``: messages shorter than that many bytes go out
    uncompressed (tiny messages gain nothing). Inflated messages count
    against ``max_message_size`` while they inflate (1009 past it). A
    value out of range raises :class:`InvalidArgument` naming it and its
    range ("window_bits must be an int in 9..15, not 8")."""

    __slots__ = ("mode", "window_bits", "mem_level", "level", "threshold")

    def __init__(self, mode: str = "shared", window_bits: int = 15, mem_level: int = 8,
                 level: int = 1, threshold: int = 64) -> None:
        if not isinstance(mode, str) or mode not in DEFLATE_MODES:
            raise invalid("mode must be %s, not %r" % (
                " or ".join(repr(name) for name in DEFLATE_MODES), mode))
        values = (("mode", mode),
                  ("window_bits", check_int("window_bits", window_bits, 9, 15)),
                  ("mem_level", check_int("mem_level", mem_level, 1, 9)),
                  ("level", check_int("level", level, -1, 9)),
                  ("threshold", check_int("threshold", threshold, 0, _U64, "bytes")))
        for name, value in values:
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("libwebsock2.Deflate is read-only: make a new one")

    def _key(self) -> Tuple[Any, ...]:
        return (self.mode, self.window_bits, self.mem_level, self.level, self.threshold)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Deflate) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return ("libwebsock2.Deflate(mode=%r, window_bits=%d, mem_level=%d, level=%d, "
                "threshold=%d)" % self._key())


def compression_option(compression: object) -> Optional[Deflate]:
    """``compression`` is ``"deflate"`` (websockets' default, and ours:
    :class:`Deflate` with its defaults), a :class:`Deflate`, or None (no
    compression, the C API's default)."""
    if compression is None or isinstance(compression, Deflate):
        return compression
    if isinstance(compression, str) and compression == "deflate":
        return Deflate()
    raise invalid("compression must be 'deflate', None or libwebsock2.Deflate(mode='shared' "
                  "or 'dedicated', window_bits=9..15, mem_level=1..9, level=-1..9, "
                  "threshold=bytes), not %r" % (compression,))


def tls_option(ssl: object) -> Optional[TLS]:
    """``ssl`` is None, a :class:`TLS`, a ``(certfile, keyfile)`` pair of
    PEM paths, or a mapping of TLS's keywords (``certfile``, ``keyfile``,
    ...)."""
    if ssl is None or isinstance(ssl, TLS):
        return ssl
    if isinstance(ssl, Mapping):
        return TLS(**ssl)
    if (isinstance(ssl, (tuple, list)) and len(ssl) == 2 and
            all(isinstance(p, (str, bytes)) or hasattr(p, "__fspath__") for p in ssl)):
        return TLS(ssl[0], ssl[1])
    raise TypeError(
        "ssl must be libwebsock2.TLS(certfile, keyfile, ...), (certfile, keyfile) or "
        "{'certfile': ..., 'keyfile': ...}, not %s; an ssl.SSLContext cannot be handed "
        "to the C core (see libwebsock2.TLS)" % type(ssl).__name__)


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
    agent_batch: bool = True,
    max_message_size: Optional[int] = None,
    max_frame_size: Optional[int] = None,
    max_outbound: Optional[int] = None,
    max_connections: Optional[int] = None,
    max_handshake_size: Optional[int] = None,
    fragment_size: Optional[int] = None,
    handshake_timeout: Optional[float] = None,
    idle_timeout: Optional[float] = None,
    ping_interval: Optional[float] = PING_INTERVAL,
    ping_timeout: Optional[float] = PING_TIMEOUT,
    close_timeout: Optional[float] = None,
    slow_consumer_timeout: Optional[float] = None,
    control_events: bool = True,
    ws_paths: Optional[Iterable[str]] = None,
    http_routes: Optional[HttpRoutes] = None,
    ssl: object = None,
    compression: object = "deflate",
    hook: bool = False,
    client_only: bool = False,
    cluster: Optional[str] = None,
    node: Optional[int] = None,
    cluster_prefix: Optional[str] = None,
    cluster_ttl: Optional[float] = None,
) -> object:
    """Returns the owner handle (``pyws_server``) of a new, unstarted core
    server. Raises :class:`InvalidArgument` (a ValueError) naming the option
    and its range for a bad value, TypeError for a bad ``ssl``, and
    :class:`TLSError` naming the file for TLS files the core cannot use.
    Sizes are bytes and times seconds; None keeps the core's default (for
    ``ping_interval`` and ``ping_timeout``: turns them off).
    ``compression``: ``"deflate"`` (the default, as in websockets; the C
    API's default is off), a :class:`Deflate`, or None.

    ``hook=True`` installs the handshake trampoline (it calls the callable
    given to ``pyws_set_handshake``) and, with agents in DIRECT delivery,
    runs it on the agents (websock_config_set_handshake_on_agents), so a
    slow Python handshake handler never holds up an I/O thread.

    ``client_only=True``: no listening socket (websock_config_set_client_only),
    a server that only runs the connections websock_server_connect makes.

    ``cluster="redis://[:password@]host[:port]"`` with ``node`` (1..1023, unique
    in the cluster; None or 0: a free number drawn from Redis at start;
    websock_config_set_cluster) makes the server a node of the cluster of
    every server on that Redis; ``cluster_prefix`` keeps clusters sharing
    one Redis apart; ``cluster_ttl`` (seconds, 0.1..600, default 9) is how
    long a node stays alive in Redis without a beat: the tags of a node
    that died without a word are free for the others at most ``cluster_ttl
    * 1.1`` after its last beat."""
    tls = tls_option(ssl)
    deflate = compression_option(compression)
    if not isinstance(host, str):
        raise TypeError("host must be str, not %s" % type(host).__name__)
    check_int("port", port, 0, 65535)
    policy = SPREADS.get(spread) if isinstance(spread, str) else None
    if policy is None:
        raise invalid("spread must be %s, not %r" % (
            " or ".join(repr(name) for name in SPREADS), spread))
    if reuse_port not in (True, False):
        raise invalid("reuse_port must be True or False, not %r" % (reuse_port,))
    if agent_batch not in (True, False):
        raise invalid("agent_batch must be True or False, not %r" % (agent_batch,))
    if cluster is None:
        for name, value in (("node", node), ("cluster_ttl", cluster_ttl)):
            if value is not None:
                raise invalid("%s needs cluster (a redis:// URL)" % name)
    else:
        if not isinstance(cluster, str):
            raise TypeError("cluster must be a str (redis://...), not %s"
                            % type(cluster).__name__)
        if node is None:
            node = 0
        check_int("node", node, 0, NODE_MAX, "0: a free number drawn from Redis at start")
    if cluster_prefix is not None and not isinstance(cluster_prefix, str):
        raise TypeError("cluster_prefix must be a str, not %s" % type(cluster_prefix).__name__)
    ttl_ms = cluster_ttl_ms(cluster_ttl) if cluster_ttl is not None else None
    check_int("io_threads", io_threads, 1, 256)
    check_int("agents", agents, 0, 1024)
    if agent_budget is not None:
        check_int("agent_budget", agent_budget, 1, 65536, "events")
    given = {
        "max_message_size": max_message_size, "max_frame_size": max_frame_size,
        "max_outbound": max_outbound, "max_connections": max_connections,
        "max_handshake_size": max_handshake_size, "fragment_size": fragment_size,
        "handshake_timeout": handshake_timeout, "idle_timeout": idle_timeout,
        "ping_interval": ping_interval, "ping_timeout": ping_timeout,
        "close_timeout": close_timeout, "slow_consumer_timeout": slow_consumer_timeout,
    }
    sizes = []
    for name, setter, low, high, zero in _SIZES:
        value = given[name]
        if value is not None:
            check_int(name, value, low, high, "bytes" + ("; " + zero if zero else ""))
            sizes.append((setter, value, name))
    for name, setter, zero_ok in _TIMES:
        value = given[name]
        if value is not None:
            sizes.append((setter, seconds_to_ms(name, value, zero_ok), name))
    password = tls._password_bytes() if tls else None
    rc, cfg = _ws.websock_config_new()
    check(rc, "config")
    try:
        check(_ws.websock_config_set_listen(cfg, host, port), "host/port")
        if client_only:
            check(_ws.websock_config_set_client_only(cfg, 1), "client_only")
        if cluster is not None:
            check(_ws.websock_config_set_cluster(cfg, cluster, node),
                  "cluster %r (redis://[:password@]host[:port])" % (cluster,))
        if cluster_prefix is not None:
            check(_ws.websock_config_set_cluster_prefix(cfg, cluster_prefix),
                  "cluster_prefix (1..64 bytes)")
        if ttl_ms is not None:
            check(_ws.websock_config_set_cluster_ttl(cfg, ttl_ms), "cluster_ttl")
        check(_ws.websock_config_set_io_threads(cfg, io_threads), "io_threads")
        check(_ws.websock_config_set_spread(cfg, policy), "spread")
        check(_ws.websock_config_set_reuse_port(cfg, 1 if reuse_port else 0), "reuse_port")
        check(_ws.websock_config_set_agents(cfg, 0 if queued else agents), "agents")
        if agent_budget is not None:
            check(_ws.websock_config_set_agent_budget(cfg, agent_budget), "agent_budget")
        check(_ws.websock_config_set_agent_batch(cfg, 1 if agent_batch else 0), "agent_batch")
        check(_ws.websock_config_set_delivery(
            cfg, _ws.DELIVERY_QUEUED if queued else _ws.DELIVERY_DIRECT), "delivery")
        check(_ws.websock_config_set_control_events(cfg, 1 if control_events else 0))
        for setter, value, name in sizes:
            check(getattr(_ws, "websock_config_set_" + setter)(cfg, value), name)
        for path in ws_paths or ():
            check(_ws.websock_config_add_ws_path(cfg, path), "ws_paths %r" % (path,))
        for path, route in (http_routes or {}).items():
            ctype, body = route
            if isinstance(body, str):
                body = body.encode("utf-8")
            check(_ws.websock_config_add_http_route(cfg, path, ctype, bytes(body)),
                  "http_routes %r" % (path,))
        if deflate is not None:
            check(_ws.websock_config_set_deflate(
                cfg, DEFLATE_MODES[deflate.mode], deflate.window_bits, deflate.mem_level,
                deflate.level, deflate.threshold), "compression")
        if tls:
            check(_ws.websock_config_set_tls(cfg, tls.certfile, tls.keyfile), "ssl")
            if tls.cafile is not None:
                check(_ws.websock_config_set_tls_verify_client(cfg, tls.cafile, tls._mode),
                      "ssl verify_client")
        on_agents = 1 if hook and agents > 0 and not queued else 0
        check(_ws.websock_config_set_handshake_on_agents(cfg, on_agents), "handshake_on_agents")
        try:
            return _ws.pyws_server_new(cfg, 1 if hook else 0, password)
        except TLSError as e:
            # The core names the file and the reason (e.g. key mismatch).
            raise TLSError("%s: %s" % (e.args[0] if e.args else "TLS",
                                       _ws.websock_tls_last_error())) from None
    finally:
        _ws.websock_config_free(cfg)


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


__all__ = ["make_server", "parse_remote", "HttpRoutes", "SPREADS", "TLS", "tls_option",
           "Deflate", "DEFLATE_MODES", "compression_option", "check_int", "seconds_to_ms",
           "invalid", "PING_INTERVAL", "PING_TIMEOUT", "cluster_ttl_ms", "CLUSTER_TTL_MIN",
           "CLUSTER_TTL_MAX", "NODE_MAX"]
