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
from typing import Any, List, NewType, Optional, Union

ServerHandle = NewType("ServerHandle", object)   # websock_server *
Owner = NewType("Owner", object)                 # pyws_server *
Config = NewType("Config", object)               # websock_config *


class Event(tuple):  # the fields of bindings/event_record.i, in its order
    type: int
    id: int
    tag: Optional[str]
    opcode: int
    data: Union[str, bytes, None]
    close_code: int
    path: Optional[str]
    query: Optional[str]
    subprotocol: Optional[str]
    remote_addr: Optional[str]


def pyws_server_new(cfg: Config) -> Owner: ...
def pyws_server_free(owner: Optional[Owner]) -> None: ...
def pyws_handle(owner: Optional[Owner]) -> ServerHandle: ...
def pyws_set_dispatch(owner: Owner, cb: Any) -> None: ...
def pyws_poll_many(srv: Optional[ServerHandle], max: int) -> List[Event]: ...
def __getattr__(name: str) -> Any: ...
