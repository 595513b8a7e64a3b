/* SWIG interface of the Lua binding: swig -lua -nomoduleglobal websock.i
 *
 * Builds the C module `libwebsock2_core`, used only by the pure-Lua facade
 * libwebsock2.lua. The module never calls Lua from C: events come back as
 * return values of poll(), so Lua handlers run on the caller's own stack
 * and may yield. Functions return an int rc (0 / 1 = ok, < 0 =
 * WEBSOCK_ERR_*; strerror(rc) names it) plus extra values where noted. */
%module libwebsock2_core

%{
#include <math.h>
#include "lws2_lua.h"

/* Ids are < 2^53: integers on Lua 5.3+, exact doubles on 5.1/LuaJIT. */
static void lws2_push_id(lua_State *L, uint64_t id) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)id);
#else
  lua_pushnumber(L, (lua_Number)id);
#endif
}

static int lws2_to_id(lua_State *L, int idx, uint64_t *out) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    if (i < 0 || i > (lua_Integer)9007199254740991LL)
      return 0;
    *out = (uint64_t)i;
    return 1;
  }
#endif
  if (lua_type(L, idx) != LUA_TNUMBER)
    return 0;
  lua_Number n = lua_tonumber(L, idx);
  if (!(n >= 0 && n <= 9007199254740991.0) || floor(n) != n)
    return 0;
  *out = (uint64_t)n;
  return 1;
}

static const char *lws2_event_type_name(int t) {
  switch (t) {
  case WEBSOCK_EVENT_OPEN: return "open";
  case WEBSOCK_EVENT_MESSAGE: return "message";
  case WEBSOCK_EVENT_PING: return "ping";
  case WEBSOCK_EVENT_PONG: return "pong";
  case WEBSOCK_EVENT_CLOSE: return "close";
  case WEBSOCK_EVENT_DRAIN: return "drain";
  default: return "unknown";
  }
}

static void lws2_push_opt_string(lua_State *L, const char *s) {
  if (s)
    lua_pushstring(L, s);
  else
    lua_pushnil(L);
}

/* Pushes 10 values: type, id, tag, data, kind, close_code, path, query,
 * remote_addr, subprotocol. data is binary-safe (lua_pushlstring): the
 * message payload, the ping/pong payload or the close reason. */
static int lws2_push_event(lua_State *L, const websock_event *ev) {
  lua_pushstring(L, lws2_event_type_name(ev->type));
  lws2_push_id(L, ev->id);
  lws2_push_opt_string(L, ev->tag);
  if (ev->data || ev->length == 0)
    lua_pushlstring(L, ev->data ? (const char *)ev->data : "", ev->length);
  else
    lua_pushnil(L);
  if (ev->type == WEBSOCK_EVENT_MESSAGE)
    lua_pushstring(L, ev->opcode == WEBSOCK_OP_BINARY ? "binary" : "text");
  else
    lua_pushnil(L);
  if (ev->type == WEBSOCK_EVENT_CLOSE)
    lua_pushinteger(L, ev->close_code);
  else
    lua_pushnil(L);
  lws2_push_opt_string(L, ev->path);
  lws2_push_opt_string(L, ev->query);
  lws2_push_opt_string(L, ev->remote_addr);
  lws2_push_opt_string(L, ev->subprotocol);
  return 10;
}

static void lws2_set_u64(lua_State *L, const char *k, uint64_t v) {
  lua_pushnumber(L, (lua_Number)v);
#if LUA_VERSION_NUM >= 503
  if (v <= (uint64_t)9007199254740991ULL) {
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)v);
  }
#endif
  lua_setfield(L, -2, k);
}

static void lws2_set_u64_array(lua_State *L, const char *k, const uint64_t *a,
                               uint32_t n) {
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n && i < WEBSOCK_STATS_MAX_THREADS; i++) {
    lws2_push_id(L, a[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, k);
}

static void lws2_push_stats(lua_State *L, const websock_stats *s) {
  lua_createtable(L, 0, 20);
  lws2_set_u64(L, "connections", s->connections);
  lws2_set_u64(L, "connections_total", s->connections_total);
  lws2_set_u64(L, "accepted_total", s->accepted_total);
  lws2_set_u64(L, "rejected_total", s->rejected_total);
  lws2_set_u64(L, "messages_in", s->messages_in);
  lws2_set_u64(L, "messages_out", s->messages_out);
  lws2_set_u64(L, "bytes_in", s->bytes_in);
  lws2_set_u64(L, "bytes_out", s->bytes_out);
  lws2_set_u64(L, "pool_size", s->pool_size);
  lws2_set_u64(L, "pool_in_use", s->pool_in_use);
  lws2_set_u64(L, "pool_grows", s->pool_grows);
  lws2_set_u64(L, "pool_shrinks", s->pool_shrinks);
  lws2_set_u64(L, "event_path_allocs", s->event_path_allocs);
  lws2_set_u64(L, "io_threads", s->io_threads);
  lws2_set_u64(L, "agents", s->agents);
  lws2_set_u64_array(L, "loop_connections", s->loop_connections,
                     s->io_threads);
  lws2_set_u64_array(L, "loop_accepted", s->loop_accepted, s->io_threads);
  lws2_set_u64_array(L, "agent_events", s->agent_events, s->agents);
}
%}

/* Lua names without the lws2_ prefix: core.poll, core.send, ... */
%rename("%(strip:[lws2_])s") "";

/* ---- typemaps --------------------------------------------------------- */

/* Return codes and ports as Lua integers (5.3+ would get floats). */
%typemap(out) int {
  lua_pushinteger(L, (lua_Integer)$1);
  SWIG_arg++;
}

/* Connection ids. */
%typemap(in, checkfn="lua_isnumber") uint64_t {
  if (!lws2_to_id(L, $input, &$1)) {
    lua_pushfstring(L, "%s: argument %d: id must be an integer in [0, 2^53)",
                    "$symname", $argnum);
    SWIG_fail;
  }
}
%typemap(out) uint64_t {
  lws2_push_id(L, $1);
  SWIG_arg++;
}

/* Binary-safe payloads: any Lua string (embedded NULs kept) plus its
 * length; the core copies the bytes before returning. */
%typemap(in, checkfn="lua_isstring") (const char *data, size_t len),
                                     (const char *body, size_t body_len) {
  size_t n_ = 0;
  $1 = (char *)lua_tolstring(L, $input, &n_);
  $2 = n_;
}

/* find_tag: rc, id */
%typemap(in, numinputs=0) uint64_t *id (uint64_t tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) uint64_t *id {
  if (result == 0) {
    lws2_push_id(L, *$1);
    SWIG_arg++;
  }
}

/* get_tag: rc, tag (rc > 0) */
%typemap(in, numinputs=0) (char *buf, size_t cap) (char tmp[256]) {
  tmp[0] = 0;
  $1 = tmp;
  $2 = sizeof tmp;
}
%typemap(argout) (char *buf, size_t cap) {
  if (result > 0) {
    lua_pushlstring(L, $1, (size_t)result);
    SWIG_arg++;
  }
}

/* poll: rc, then (rc == 1) the 10 event values of lws2_push_event; the
 * event is copied into Lua values and freed at once. */
%typemap(in, numinputs=0) websock_event **out (websock_event *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) websock_event **out {
  if (result == 1 && *$1) {
    SWIG_arg += lws2_push_event(L, *$1);
    websock_event_free(*$1);
    *$1 = NULL;
  }
}

/* get_stats: rc, table */
%typemap(in, numinputs=0) websock_stats *out (websock_stats tmp) {
  memset(&tmp, 0, sizeof tmp);
  $1 = &tmp;
}
%typemap(argout) websock_stats *out {
  if (result == 0) {
    lws2_push_stats(L, $1);
    SWIG_arg++;
  }
}

/* ---- the handle -------------------------------------------------------- */

/* Opaque to SWIG users: created by new(), freed by free() (explicit,
 * idempotent) or by the garbage collector. */
%nodefaultctor lws2_server;
%nodefaultdtor lws2_server;
struct lws2_server {};
%extend lws2_server {
  ~lws2_server() { lws2_destroy($self); }
}
%newobject lws2_new;
%ignore lws2_destroy;

%include "lws2_lua.h"

/* ---- plain core functions and constants -------------------------------- */

%rename(strerror) websock_strerror;
const char *websock_strerror(int err);
%rename(version) websock_version;
const char *websock_version(void);

%constant int OP_TEXT = WEBSOCK_OP_TEXT;
%constant int OP_BINARY = WEBSOCK_OP_BINARY;
%constant int SPREAD_LEAST_CONNECTIONS = WEBSOCK_SPREAD_LEAST_CONNECTIONS;
%constant int SPREAD_ROUND_ROBIN = WEBSOCK_SPREAD_ROUND_ROBIN;
%constant int ERR_INVALID = WEBSOCK_ERR_INVALID;
%constant int ERR_STATE = WEBSOCK_ERR_STATE;
%constant int ERR_TLS = WEBSOCK_ERR_TLS;
%constant int ERR_NO_SUCH_CLIENT = WEBSOCK_ERR_NO_SUCH_CLIENT;
%constant int ERR_TAG_TAKEN = WEBSOCK_ERR_TAG_TAKEN;
%constant int ERR_BACKPRESSURE = WEBSOCK_ERR_BACKPRESSURE;
%constant int ERR_CLOSING = WEBSOCK_ERR_CLOSING;
%constant int ERR_TIMEOUT = WEBSOCK_ERR_TIMEOUT;
