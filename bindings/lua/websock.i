/* SWIG interface of the Lua binding: swig -lua -nomoduleglobal websock.i
 *
 * Builds the C module `libwebsock2_core`, used only by the pure-Lua facade
 * libwebsock2.lua. The public headers are %included as they are, with the
 * prefixes stripped: websock_server_send -> core.server_send,
 * WEBSOCK_ERR_INVALID -> core.ERR_INVALID, struct websock_stats ->
 * core.stats (SWIG userdata with one getter per field), ... Hidden are
 * what Lua must not call raw: the config and server lifecycle (the
 * lws2_server handle of lws2_lua.h owns both), callback setters (C never
 * calls Lua), raw pointers (user data, SSL_CTX) and the handshake-hook
 * request and upgrade functions (lws2_lua.h has the hook, in C, and the
 * queue of upgrades Lua answers).
 *
 * The module never calls Lua from C: events come back as return values of
 * core.server_poll(), so Lua handlers run on the caller's own stack and may
 * yield. An event is one table with the fields of ../event_record.i (the
 * one definition the Python binding uses too). Functions return an int rc
 * (0 / 1 = ok, < 0 = WEBSOCK_ERR_*; core.strerror(rc) names it) plus the
 * out-parameters where noted. */
%module libwebsock2_core

%{
#include <math.h>
#include "lws2_lua.h"
%}

%include "../event_record.i"

%{
/* Ids are < 2^53: integers on Lua 5.3+, exact doubles on 5.1/LuaJIT. */
static void lws2_push_id(lua_State *L, uint64_t id) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)id);
#else
  lua_pushnumber(L, (lua_Number)id);
#endif
}

/* Counters: integers where Lua has them and the value fits. */
static void lws2_push_u64(lua_State *L, uint64_t v) {
#if LUA_VERSION_NUM >= 503
  if (v <= (uint64_t)LUA_MAXINTEGER) {
    lua_pushinteger(L, (lua_Integer)v);
    return;
  }
#endif
  lua_pushnumber(L, (lua_Number)v);
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

static void lws2_push_opt_string(lua_State *L, const char *s) {
  if (s)
    lua_pushstring(L, s);
  else
    lua_pushnil(L);
}

/* The event record: a table with the fields of WSB_EVENT_FIELDS. data is
 * binary-safe (lua_pushlstring): the message payload, the ping/pong payload
 * or the close reason ("" when there is none). */
#define LWS2_INT(L, ev, f) lua_pushinteger(L, (lua_Integer)(ev)->f)
#define LWS2_ID(L, ev, f) lws2_push_id(L, (ev)->f)
#define LWS2_STR(L, ev, f) lws2_push_opt_string(L, (ev)->f)
#define LWS2_DATA(L, ev, f)                                                    \
  lua_pushlstring(L, (ev)->data ? (const char *)(ev)->data : "", (ev)->length)
#define LWS2_SET(field, kind, doc)                                             \
  LWS2_##kind(L, ev, field);                                                   \
  lua_setfield(L, -2, #field);

/* One more field than the shared record: user_data, when set, is the
 * ticket of the handshake the facade accepted (lws2_handshake_accept puts
 * it there; Lua cannot set user data otherwise), so OPEN finds its
 * request. */
static void lws2_push_event(lua_State *L, const websock_event *ev) {
  lua_createtable(L, 0, WSB_EVENT_NFIELDS + 1);
  WSB_EVENT_FIELDS(LWS2_SET)
  if (ev->user_data) {
    lws2_push_id(L, (uint64_t)(uintptr_t)ev->user_data);
    lua_setfield(L, -2, "user_data");
  }
}

/* The request of a deferred upgrade as a table: method, path, query,
 * origin, remote_addr, sni, tls_peer (nil when absent), headers (a list
 * of { name, value } in the order sent), subprotocols (the client's
 * offer, in its order), subprotocol (our choice, or nil). */
static void lws2_push_request(lua_State *L, const websock_request *req,
                              const char *chosen) {
  lua_createtable(L, 0, 10);
  lws2_push_opt_string(L, websock_request_method(req));
  lua_setfield(L, -2, "method");
  lws2_push_opt_string(L, websock_request_path(req));
  lua_setfield(L, -2, "path");
  lws2_push_opt_string(L, websock_request_query(req));
  lua_setfield(L, -2, "query");
  lws2_push_opt_string(L, websock_request_origin(req));
  lua_setfield(L, -2, "origin");
  lws2_push_opt_string(L, websock_request_remote_addr(req));
  lua_setfield(L, -2, "remote_addr");
  lws2_push_opt_string(L, websock_request_sni(req));
  lua_setfield(L, -2, "sni");
  lws2_push_opt_string(L, websock_request_tls_peer(req));
  lua_setfield(L, -2, "tls_peer");
  int n = websock_request_header_count(req);
  lua_createtable(L, n > 0 ? n : 0, 0);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 2, 0);
    lws2_push_opt_string(L, websock_request_header_name(req, i));
    lua_rawseti(L, -2, 1);
    lws2_push_opt_string(L, websock_request_header_value(req, i));
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "headers");
  n = websock_request_subprotocol_count(req);
  lua_createtable(L, n > 0 ? n : 0, 0);
  for (int i = 0; i < n; i++) {
    lws2_push_opt_string(L, websock_request_subprotocol(req, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "subprotocols");
  lws2_push_opt_string(L, chosen);
  lua_setfield(L, -2, "subprotocol");
}

/* What the module was built for, and a copy of it in the file's bytes so
 * the facade can read it from a module that fails to load in the wrong
 * interpreter ("undefined symbol: lua_rotate"): LUA_VERSION_NUM, e.g. 504
 * for Lua 5.4, 501 for LuaJIT and Lua 5.1. */
#define LWS2_STRINGIFY2(x) #x
#define LWS2_STRINGIFY(x) LWS2_STRINGIFY2(x)
__attribute__((used)) static const char lws2_abi_marker[] =
    "libwebsock2_core Lua ABI: " LWS2_STRINGIFY(LUA_VERSION_NUM) ";";
static int lws2_lua_abi(void) {
  (void)lws2_abi_marker;
  return LUA_VERSION_NUM;
}
%}

/* Lua names without the prefixes: core.new (lws2_new), core.server_send
 * (websock_server_send), core.ERR_INVALID (WEBSOCK_ERR_INVALID), ... */
%rename("%(regex:/^(lws2_|websock_|WEBSOCK_)(.*)$/\\2/)s") "";

/* ---- typemaps --------------------------------------------------------- */

/* Return codes, ports and counts as Lua integers (5.3+ would get floats). */
%typemap(out) int, unsigned int {
  lua_pushinteger(L, (lua_Integer)$1);
  SWIG_arg++;
}

/* Connection ids in, ids and counters out. */
%typemap(in, checkfn="lua_isnumber") uint64_t {
  if (!lws2_to_id(L, $input, &$1)) {
    lua_pushfstring(L, "%s: argument %d: id must be an integer in [0, 2^53)",
                    "$symname", $argnum);
    SWIG_fail;
  }
}
%typemap(out) uint64_t {
  lws2_push_u64(L, $1);
  SWIG_arg++;
}

/* Binary-safe payloads and topic names: any Lua string (embedded NULs
 * kept) plus its length; the core copies the bytes before returning. */
%typemap(in, checkfn="lua_isstring") (const void *data, size_t len),
                                     (const void *body, size_t body_len),
                                     (const void *topic, size_t topic_len) {
  size_t n_ = 0;
  $1 = (void *)lua_tolstring(L, $input, &n_);
  $2 = n_;
}

/* server_last_error: the text, then the errno of the failing call. */
%typemap(in, numinputs=0) int *err_no (int tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) int *err_no {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}

/* handshake_next: rc, then (rc == 1) the ticket and the request table
 * (lws2_push_request). */
%typemap(in, numinputs=0)
    (uint64_t *ticket, const websock_request **req, const char **subprotocol)
    (uint64_t t_ = 0, const websock_request *r_ = NULL, const char *s_ = NULL) {
  $1 = &t_;
  $2 = ($2_ltype)&r_; /* SWIG drops the const of its locals */
  $3 = ($3_ltype)&s_;
}
%typemap(argout)
    (uint64_t *ticket, const websock_request **req, const char **subprotocol) {
  if (result == 1 && *$2) {
    lws2_push_id(L, *$1);
    SWIG_arg++;
    lws2_push_request(L, (const websock_request *)*$2, (const char *)*$3);
    SWIG_arg++;
  }
}

/* handshake_reject: a body, or nil for the status's default text. */
%typemap(in, checkfn="SWIG_lua_isnilstring") (const void *opt_body,
                                              size_t opt_body_len) {
  size_t n_ = 0;
  $1 = lua_isnil(L, $input) ? NULL : (void *)lua_tolstring(L, $input, &n_);
  $2 = n_;
}

/* server_find_tag: rc, id (rc == 0) */
%typemap(in, numinputs=0) uint64_t *id (uint64_t tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) uint64_t *id {
  if (result == 0) {
    lws2_push_id(L, *$1);
    SWIG_arg++;
  }
}

/* server_get_tag: rc, tag (rc > 0) */
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

/* server_poll: rc, then (rc == 1) the event record (lws2_push_event); the
 * event is copied into Lua values and freed at once. */
%typemap(in, numinputs=0) websock_event **out (websock_event *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) websock_event **out {
  if (result == 1 && *$1) {
    lws2_push_event(L, *$1);
    SWIG_arg++;
    websock_event_free(*$1);
    *$1 = NULL;
  }
}

/* server_get_stats / server_get_loop_stats / server_get_agent_stats: rc,
 * then (rc == 0) a new core.stats / core.loop_stats / core.agent_stats
 * userdata, one getter per struct field. */
%typemap(in, numinputs=0) (websock_stats *out, size_t size) (websock_stats tmp),
    (websock_loop_stats *out, size_t size) (websock_loop_stats tmp),
    (websock_agent_stats *out, size_t size) (websock_agent_stats tmp) {
  memset(&tmp, 0, sizeof tmp);
  $1 = &tmp;
  $2 = sizeof tmp;
}
%typemap(argout) (websock_stats *out, size_t size),
                 (websock_loop_stats *out, size_t size),
                 (websock_agent_stats *out, size_t size) {
  if (result == 0) {
    $*1_ltype *copy_ = malloc(sizeof *copy_);
    if (!copy_) {
      lua_pushstring(L, "$symname: out of memory");
      SWIG_fail;
    }
    *copy_ = *$1;
    SWIG_NewPointerObj(L, copy_, $1_descriptor, 1);
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

/* Connect options (client.h): made by connect_options_new() and freed by
 * the garbage collector only (a connect copies what it needs, so the
 * facade just drops them). The user-data pointer stays in C: the facade
 * finds its connection objects by id. */
%nodefaultctor websock_connect_options;
%nodefaultdtor websock_connect_options;
struct websock_connect_options {};
%extend websock_connect_options {
  ~websock_connect_options() { websock_connect_options_free($self); }
}
%newobject websock_connect_options_new;
%ignore websock_connect_options_free;
%ignore websock_connect_options_set_user_data;

%include "lws2_lua.h"

/* core.lua_abi(): LUA_VERSION_NUM of the headers the module was built with. */
int lws2_lua_abi(void);

/* ---- the public headers -------------------------------------------------- */

/* Owned by the lws2_server handle. */
%ignore websock_config_new;
%ignore websock_config_free;
%ignore websock_server_new;
%ignore websock_server_free;
/* QUEUED delivery is what the binding is built on. */
%ignore websock_config_set_delivery;
/* C never calls Lua. */
%ignore websock_config_set_event_callback;
%ignore websock_config_set_thread_hooks;
%ignore websock_config_set_handshake_callback;
%ignore websock_config_set_tls_password_callback;
/* lws2_stop_accepting() calls it and also makes the hook refuse the
 * upgrades still on their way (503): one way to drain. */
%ignore websock_server_stop_accepting;
/* Blocks in C: Server:run() polls from Lua instead. */
%ignore websock_server_run;
/* server_poll copies every event into a table and frees it. */
%ignore websock_event_free;
%ignore websock_event;
/* Raw pointers Lua has no use for. */
%ignore websock_server_set_user_data;
%ignore websock_config_set_tls_ctx;
/* No request or upgrade handle reaches Lua: the hook is lws2's own (C),
 * and Lua reads a deferred upgrade's request as the table
 * lws2_handshake_next() returns and answers it by ticket. A later %rename
 * wins: these $ignore must follow the prefix %rename above. */
%rename("$ignore", regextarget=1) "^websock_request_";
%rename("$ignore", regextarget=1) "^websock_upgrade_";

%immutable;
%include <stdint.i>
%include "websock/export.h"
%include "websock/types.h"
%include "websock/version.h"
%include "websock/error.h"
%include "websock/event.h"
%include "websock/request.h"
%include "websock/config.h"
%include "websock/server.h"
/* server_connect: rc, then (rc == 0) the new connection's id (the
 * uint64_t *id typemap above); connect_error() names a refusal. */
%include "websock/client.h"
%mutable;
