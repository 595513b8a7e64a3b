/* The event record of the Python and the Lua binding, defined once.
 *
 * Both bindings deliver an event as one named record with these fields, in
 * this order: the fields of websock_event (include/websock/event.h) that a
 * binding needs, under the same names and in the struct's order (length
 * goes with data; user_data and server stay in C). Python builds a
 * struct sequence (libwebsock2.Event: a tuple with named fields), Lua a
 * table with these keys.
 *
 * %include this file from a binding's .i; the C block lands in the
 * generated wrapper. A binding defines one macro per kind of value:
 *   <prefix>_INT(ev, field)   an int field
 *   <prefix>_ID(ev, field)    the connection id, always < 2^53
 *   <prefix>_STR(ev, field)   a C string, NULL for none
 *   <prefix>_DATA(ev, field)  ev->data and ev->length: the message payload,
 *                             the ping/pong payload or the close reason
 * and expands WSB_EVENT_FIELDS(X): X(field, kind, doc) for each field. */
%{
#define WSB_EVENT_FIELDS(X)                                                    \
  X(type, INT, "event type: one of the EVENT_* constants")                    \
  X(id, ID, "connection id, unique for the server's life")                    \
  X(tag, STR, "the connection's tag when the event was queued, or none")      \
  X(opcode, INT, "MESSAGE: OP_TEXT or OP_BINARY; else 0")                     \
  X(data, DATA, "MESSAGE/PING/PONG payload, CLOSE reason")                    \
  X(close_code, INT, "CLOSE: the close code; else 0")                         \
  X(path, STR, "OPEN: request path without the query")                        \
  X(query, STR, "OPEN: query string without '?', or none")                    \
  X(subprotocol, STR, "OPEN: the chosen subprotocol, or none")                \
  X(remote_addr, STR, "OPEN: peer address \"ip:port\" / \"[ip6]:port\"")   \
  X(extensions, STR, "OPEN: the extension agreed (permessage-deflate; ...)") \
  X(status, INT, "TAG: 0 or the claim's negative error code; else 0")

/* The number of fields. */
#define WSB_EVENT_COUNT_ONE(field, kind, doc) +1
#define WSB_EVENT_NFIELDS (0 WSB_EVENT_FIELDS(WSB_EVENT_COUNT_ONE))
%}
