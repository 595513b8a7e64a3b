"""Type stub of the SWIG extension libwebsock2._websock (private API).

Everything else in the module comes from the public C headers through SWIG
(bindings/python/websock.i %includes them): the functions keep their C
names (websock_server_send, websock_config_set_io_threads, ...), the enum
constants lose the WEBSOCK_ prefix (ERR_INVALID, EVENT_OPEN, OP_TEXT,
CLOSE_NORMAL, SPREAD_ROUND_ROBIN, VERSION_STRING, ...). They are not
repeated here: ``__getattr__`` types them as Any. Handles are opaque SWIG pointer
objects; ``None`` is passed as NULL and the core answers
WEBSOCK_ERR_INVALID. Functions with an out-parameter return ``[rc,
value]``.
"""
from typing import Any, List, NewType, Optional, Tuple, Union

ServerHandle = NewType("ServerHandle", object)   # websock_server *
Owner = NewType("Owner", object)                 # pyws_server *
Config = NewType("Config", object)               # websock_config *


class Event(tuple):  # the fields of bindings/event_record.i, in its order
    type: int
    id: int
    tag: Optional[str]
    opcode: int
    data: Union[str, bytes, None]  # str: TEXT message, CLOSE reason, TAG's tag
    close_code: int
    path: Optional[str]
    query: Optional[str]
    subprotocol: Optional[str]
    remote_addr: Optional[str]
    extensions: Optional[str]
    status: int  # TAG: 0 or the claim's ERR_* (ERR_TAG_TAKEN, ERR_CLUSTER); else 0


RequestHandle = NewType("RequestHandle", object)  # websock_request *, valid in the hook only
UpgradeHandle = NewType("UpgradeHandle", object)  # websock_upgrade *, completed once


def pyws_server_new(cfg: Config, handshake: int,
                    password: Union[str, bytes, None]) -> Owner: ...  # password: the TLS key's
def pyws_server_free(owner: Optional[Owner]) -> None: ...
def pyws_handle(owner: Optional[Owner]) -> ServerHandle: ...
def pyws_set_dispatch(owner: Owner, cb: Any) -> None: ...
# cb(request: RequestHandle) -> int: ACCEPT, an HTTP status or DEFER
def pyws_set_handshake(owner: Owner, cb: Any) -> None: ...
def pyws_poll_many(srv: Optional[ServerHandle], max: int) -> List[Event]: ...
# (is_upgrade, method, path, query, [(name, value), ...], origin, remote_addr,
#  sni, (subprotocol, ...), tls_peer, id); id is websock_request_id (the OPEN
#  event's id once accepted); raises InvalidArgument for a spent request
def pyws_request_read(req: Optional[RequestHandle]) -> Tuple[
    bool, str, str, Optional[str], List[Tuple[str, str]], Optional[str], Optional[str],
    Optional[str], Tuple[str, ...], Optional[str], int]: ...
def websock_request_defer(req: Optional[RequestHandle]) -> List[Any]: ...  # [rc, UpgradeHandle]
def websock_request_add_response_header(req: Optional[RequestHandle], name: str,
                                        value: str) -> int: ...
def websock_request_respond(req: Optional[RequestHandle], status: int,
                            content_type: Optional[str],
                            body: Union[str, bytes, bytearray, memoryview, None]) -> int: ...
def websock_upgrade_add_response_header(up: Optional[UpgradeHandle], name: str,
                                        value: str) -> int: ...
def websock_upgrade_accept(up: Optional[UpgradeHandle], subprotocol: Optional[str]) -> int: ...
def websock_upgrade_reject(up: Optional[UpgradeHandle], status: int,
                           content_type: Optional[str],
                           body: Union[str, bytes, bytearray, memoryview, None]) -> int: ...
# [text naming the address and the reason ("" if start did not fail so), errno]
def websock_server_last_error(srv: Optional[ServerHandle]) -> List[Any]: ...
ConnectOptions = NewType("ConnectOptions", object)  # websock_connect_options *


def websock_connect_options_new() -> Optional[ConnectOptions]: ...
def websock_connect_options_free(o: Optional[ConnectOptions]) -> None: ...
# [rc, id]; the reason of a failure in websock_connect_error() (this thread)
def websock_server_connect(srv: Optional[ServerHandle], url: str,
                           opts: Optional[ConnectOptions]) -> List[int]: ...
def websock_connect_error() -> str: ...
# Topics: the name is str (UTF-8) or bytes-like, 1..255 bytes (else ERR_INVALID);
# publish's message is str (text) or bytes-like (binary); except_id 0: nobody.
Topic = Union[str, bytes, bytearray, memoryview]
def websock_server_subscribe(srv: Optional[ServerHandle], id: int, topic: Topic) -> int: ...
def websock_server_unsubscribe(srv: Optional[ServerHandle], id: int, topic: Topic) -> int: ...
# 0, PENDING (1: a cluster's claim in Redis, answered by an EVENT_TAG) or ERR_*
def websock_server_set_tag(srv: Optional[ServerHandle], id: int, tag: Optional[str]) -> int: ...
def websock_config_set_cluster(cfg: Config, redis_url: Optional[str], node: int) -> int: ...
def websock_config_set_cluster_ttl(cfg: Config, ms: int) -> int: ...
# 1..1023, 0 without a cluster, ERR_STATE before start
def websock_server_cluster_node(srv: Optional[ServerHandle]) -> int: ...
def websock_server_publish(srv: Optional[ServerHandle], topic: Topic,
                           data: Union[str, bytes, bytearray, memoryview],
                           except_id: int) -> int: ...
def __getattr__(name: str) -> Any: ...
