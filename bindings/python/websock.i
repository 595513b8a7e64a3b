/* SWIG interface of the Python binding of libwebsock2 (module
 * libwebsock2._websock). Only what the pure-Python package needs:
 *
 *  - config setters (plain wrappers, the GIL is released by -threads),
 *  - a small owner struct (pyws_server) that pins the Python dispatcher and
 *    the interpreter, with a C trampoline for DIRECT mode,
 *  - send/broadcast/ping/... taking str (text) or any bytes-like (binary),
 *  - queued-mode poll helpers returning tuples,
 *  - a stats helper returning a dict.
 *
 * Build with: swig -python -threads -Iinclude
 * Every wrapper releases the GIL except those marked %nothread (they touch
 * Python objects). */
%module(package="libwebsock2") websock

%{
#define SWIG_FILE_WITH_INIT
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "websock.h"

/* ---- the owner object ------------------------------------------------ */

typedef struct pyws_server {
  websock_server *srv;          /* the core server, NULL once freed */
  PyObject *dispatch;           /* callable(ev_tuple) for DIRECT mode, or NULL */
  PyInterpreterState *interp;   /* interpreter the agent threads attach to */
} pyws_server;

/* The thread state pinned to this agent / I/O thread by the start hook. */
static _Thread_local PyThreadState *pyws_tstate = NULL;

#if PY_VERSION_HEX < 0x03090000
#define PyThreadState_GetInterpreter(ts) ((ts)->interp)
#endif

static int pyws_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

static void pyws_on_thread_start(websock_server *srv, void *ud) {
  pyws_server *o = (pyws_server *)ud;
  (void)srv;
  if (pyws_tstate || !o || !o->interp || pyws_finalizing())
    return;
  /* One thread state per core thread for its whole life: creating one per
   * event (PyGILState_Ensure on a thread Python does not know) costs ~40x. */
  PyThreadState *ts = PyThreadState_New(o->interp);
  if (!ts)
    return;
  pyws_tstate = ts;
}

static void pyws_on_thread_stop(websock_server *srv, void *ud) {
  (void)srv;
  (void)ud;
  PyThreadState *ts = pyws_tstate;
  pyws_tstate = NULL;
  if (!ts)
    return;
  if (pyws_finalizing())
    return; /* taking the GIL now could hang or end the thread: leak it */
  PyEval_RestoreThread(ts);
  PyThreadState_Clear(ts);
  PyThreadState_DeleteCurrent(); /* also releases the GIL */
}

static PyObject *pyws_str_or_none(const char *s) {
  if (!s)
    Py_RETURN_NONE;
  PyObject *r = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
  return r;
}

/* Builds the event tuple:
 * (type, id, tag, opcode, data, close_code, path, query, subprotocol,
 *  remote_addr). data is str for TEXT messages and close reasons, bytes for
 * BINARY messages and PING/PONG payloads, None otherwise. Needs the GIL. */
static PyObject *pyws_event_tuple(const websock_event *ev) {
  PyObject *data;
  const char *p = ev->data ? (const char *)ev->data : "";
  Py_ssize_t n = (Py_ssize_t)ev->length;
  switch (ev->type) {
  case WEBSOCK_EVENT_MESSAGE:
    if (ev->opcode == WEBSOCK_OP_TEXT)
      data = PyUnicode_DecodeUTF8(p, n, "surrogateescape");
    else
      data = PyBytes_FromStringAndSize(p, n);
    break;
  case WEBSOCK_EVENT_CLOSE:
    data = PyUnicode_DecodeUTF8(p, n, "replace");
    break;
  case WEBSOCK_EVENT_PING:
  case WEBSOCK_EVENT_PONG:
    data = PyBytes_FromStringAndSize(p, n);
    break;
  default:
    data = Py_None;
    Py_INCREF(data);
  }
  if (!data)
    return NULL;
  PyObject *t = PyTuple_New(10);
  if (!t) {
    Py_DECREF(data);
    return NULL;
  }
  PyTuple_SET_ITEM(t, 0, PyLong_FromLong(ev->type));
  PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLongLong(ev->id));
  PyTuple_SET_ITEM(t, 2, pyws_str_or_none(ev->tag));
  PyTuple_SET_ITEM(t, 3, PyLong_FromLong(ev->opcode));
  PyTuple_SET_ITEM(t, 4, data);
  PyTuple_SET_ITEM(t, 5, PyLong_FromLong(ev->close_code));
  PyTuple_SET_ITEM(t, 6, pyws_str_or_none(ev->path));
  PyTuple_SET_ITEM(t, 7, pyws_str_or_none(ev->query));
  PyTuple_SET_ITEM(t, 8, pyws_str_or_none(ev->subprotocol));
  PyTuple_SET_ITEM(t, 9, pyws_str_or_none(ev->remote_addr));
  for (int i = 0; i < 10; i++)
    if (!PyTuple_GET_ITEM(t, i)) {
      Py_DECREF(t);
      return NULL;
    }
  return t;
}

/* DIRECT mode: runs on agent threads (or I/O threads with agents = 0). */
static void pyws_trampoline(websock_server *srv, const websock_event *ev,
                            void *ud) {
  pyws_server *o = (pyws_server *)ud;
  (void)srv;
  if (!o || pyws_finalizing())
    return;
  PyThreadState *ts = pyws_tstate;
  PyGILState_STATE gs = PyGILState_UNLOCKED;
  if (ts)
    PyEval_RestoreThread(ts);
  else
    gs = PyGILState_Ensure(); /* a thread without a pinned state */
  PyObject *cb = o->dispatch;
  if (cb) {
    Py_INCREF(cb);
    PyObject *t = pyws_event_tuple(ev);
    PyObject *r = t ? PyObject_CallFunctionObjArgs(cb, t, NULL) : NULL;
    if (!r)
      PyErr_WriteUnraisable(cb); /* the Python dispatcher catches; last resort */
    Py_XDECREF(r);
    Py_XDECREF(t);
    Py_DECREF(cb);
  }
  if (ts)
    PyEval_SaveThread();
  else
    PyGILState_Release(gs);
}

static int pyws_check(int rc) {
  if (rc < 0) {
    PyObject *args = Py_BuildValue("(is)", rc, websock_strerror(rc));
    PyObject *mod = PyImport_ImportModule("libwebsock2._errors");
    PyObject *fn = mod ? PyObject_GetAttrString(mod, "_raise_from_c") : NULL;
    if (fn && args) {
      PyObject *r = PyObject_Call(fn, args, NULL);
      Py_XDECREF(r); /* sets the exception */
    }
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_RuntimeError, websock_strerror(rc));
    Py_XDECREF(fn);
    Py_XDECREF(mod);
    Py_XDECREF(args);
    return -1;
  }
  return 0;
}

/* Creates the config + server. delivery: 0 direct, 1 queued. Keys of
 * |opts| are mapped by the Python layer already; here only scalars. */
static pyws_server *pyws_server_new(websock_config *cfg) {
  pyws_server *o = calloc(1, sizeof *o);
  if (!o) {
    PyErr_NoMemory();
    return NULL;
  }
  o->interp = PyThreadState_GetInterpreter(PyThreadState_Get());
  websock_config_set_event_callback(cfg, pyws_trampoline, o);
  websock_config_set_thread_hooks(cfg, pyws_on_thread_start,
                                  pyws_on_thread_stop, o);
  int rc = websock_server_new(&o->srv, cfg);
  if (pyws_check(rc)) {
    free(o);
    return NULL;
  }
  return o;
}

static websock_server *pyws_handle(pyws_server *o) { return o ? o->srv : NULL; }

static void pyws_set_dispatch(pyws_server *o, PyObject *cb) {
  if (!o)
    return;
  PyObject *old = o->dispatch;
  if (cb == Py_None)
    cb = NULL;
  Py_XINCREF(cb);
  o->dispatch = cb;
  Py_XDECREF(old);
}

/* Stops, joins and frees the core server (GIL released meanwhile), then
 * drops the dispatcher. Never call it from a callback. */
static void pyws_server_free(pyws_server *o) {
  if (!o)
    return;
  websock_server *s = o->srv;
  o->srv = NULL;
  if (s) {
    Py_BEGIN_ALLOW_THREADS
    websock_server_free(s);
    Py_END_ALLOW_THREADS
  }
  pyws_set_dispatch(o, NULL);
  free(o);
}

/* QUEUED mode: one event as a tuple, None when none came within
 * |timeout_ms|. Raises on errors. */
static PyObject *pyws_poll(websock_server *srv, int timeout_ms) {
  websock_event *ev = NULL;
  int rc;
  if (timeout_ms == 0) {
    rc = websock_server_poll(srv, 0, &ev);
  } else {
    Py_BEGIN_ALLOW_THREADS
    rc = websock_server_poll(srv, timeout_ms, &ev);
    Py_END_ALLOW_THREADS
  }
  if (pyws_check(rc))
    return NULL;
  if (rc == 0)
    Py_RETURN_NONE;
  PyObject *t = pyws_event_tuple(ev);
  websock_event_free(ev);
  return t;
}

/* QUEUED mode: up to |max| events already queued, as a list (maybe empty).
 * Never waits. */
static PyObject *pyws_poll_many(websock_server *srv, int max) {
  PyObject *list = PyList_New(0);
  if (!list)
    return NULL;
  for (int i = 0; i < max; i++) {
    websock_event *ev = NULL;
    int rc = websock_server_poll(srv, 0, &ev);
    if (rc < 0) {
      Py_DECREF(list);
      pyws_check(rc);
      return NULL;
    }
    if (rc == 0)
      break;
    PyObject *t = pyws_event_tuple(ev);
    websock_event_free(ev);
    if (!t || PyList_Append(list, t) < 0) {
      Py_XDECREF(t);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(t);
  }
  return list;
}

/* The connection's tag as str, None when it has none; raises on errors. */
static PyObject *pyws_get_tag(websock_server *srv, uint64_t id) {
  char buf[256];
  int rc = websock_server_get_tag(srv, id, buf, sizeof buf);
  if (pyws_check(rc))
    return NULL;
  if (rc == 0)
    Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(buf, rc, "replace");
}

/* The id holding |tag|, or a negative error code. */
static long long pyws_find_tag(websock_server *srv, const char *tag) {
  uint64_t id = 0;
  int rc = websock_server_find_tag(srv, tag, &id);
  return rc < 0 ? (long long)rc : (long long)id;
}

#define PYWS_SET(d, name, value)                                               \
  do {                                                                         \
    PyObject *v_ = (value);                                                    \
    if (!v_ || PyDict_SetItemString((d), (name), v_) < 0) {                    \
      Py_XDECREF(v_);                                                          \
      Py_DECREF(d);                                                            \
      return NULL;                                                             \
    }                                                                          \
    Py_DECREF(v_);                                                             \
  } while (0)

static PyObject *pyws_u64_list(const uint64_t *a, unsigned n) {
  if (n > WEBSOCK_STATS_MAX_THREADS)
    n = WEBSOCK_STATS_MAX_THREADS;
  PyObject *l = PyList_New(n);
  if (!l)
    return NULL;
  for (unsigned i = 0; i < n; i++) {
    PyObject *v = PyLong_FromUnsignedLongLong(a[i]);
    if (!v) {
      Py_DECREF(l);
      return NULL;
    }
    PyList_SET_ITEM(l, i, v);
  }
  return l;
}

static PyObject *pyws_stats(websock_server *srv) {
  websock_stats st;
  if (pyws_check(websock_server_get_stats(srv, &st)))
    return NULL;
  PyObject *d = PyDict_New();
  if (!d)
    return NULL;
#define U(f) PYWS_SET(d, #f, PyLong_FromUnsignedLongLong(st.f))
  U(connections);
  U(connections_total);
  U(accepted_total);
  U(rejected_total);
  U(messages_in);
  U(messages_out);
  U(bytes_in);
  U(bytes_out);
  U(pool_size);
  U(pool_in_use);
  U(pool_grows);
  U(pool_shrinks);
  U(event_path_allocs);
  U(io_threads);
  U(agents);
#undef U
  PYWS_SET(d, "loop_connections", pyws_u64_list(st.loop_connections, st.io_threads));
  PYWS_SET(d, "loop_accepted", pyws_u64_list(st.loop_accepted, st.io_threads));
  PYWS_SET(d, "agent_events", pyws_u64_list(st.agent_events, st.agents));
  return d;
}

static websock_config *pyws_config_new(void) {
  websock_config *c = NULL;
  int rc = websock_config_new(&c);
  if (pyws_check(rc))
    return NULL;
  return c;
}

/* Payload conversion for the in/freearg typemaps below: str -> UTF-8 text,
 * any other object with the buffer protocol -> binary. The buffer is held
 * until after the call (freearg). */
typedef struct pyws_payload {
  Py_buffer view;
  int have_view;
  const char *ptr;
  Py_ssize_t len;
  int opcode;
} pyws_payload;

static int pyws_payload_get(PyObject *o, pyws_payload *p) {
  p->have_view = 0;
  if (PyUnicode_Check(o)) {
    p->ptr = PyUnicode_AsUTF8AndSize(o, &p->len); /* cached in the str */
    if (!p->ptr)
      return -1;
    p->opcode = WEBSOCK_OP_TEXT;
    return 0;
  }
  if (PyObject_GetBuffer(o, &p->view, PyBUF_SIMPLE) < 0) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError,
                 "payload must be str or a bytes-like object, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  p->have_view = 1;
  p->ptr = (const char *)p->view.buf;
  p->len = p->view.len;
  p->opcode = WEBSOCK_OP_BINARY;
  return 0;
}

static void pyws_payload_release(pyws_payload *p) {
  if (p->have_view) {
    PyBuffer_Release(&p->view);
    p->have_view = 0;
  }
}
%}

%include <stdint.i>

/* ---- payload typemaps ---------------------------------------------------- */

/* (opcode, data, len) from one str / bytes-like argument. */
%typemap(in) (int opcode, const void *data, size_t len) (pyws_payload pl) {
  if (pyws_payload_get($input, &pl) < 0)
    SWIG_fail;
  $1 = pl.opcode;
  $2 = (void *)pl.ptr;
  $3 = (size_t)pl.len;
}
%typemap(freearg) (int opcode, const void *data, size_t len) {
  pyws_payload_release(&pl$argnum);
}
%typemap(typecheck) (int opcode, const void *data, size_t len) {
  $1 = PyUnicode_Check($input) || PyObject_CheckBuffer($input);
}

/* (data, len) from one str / bytes-like argument (ping, HTTP bodies). */
%typemap(in) (const void *data, size_t len) (pyws_payload pl),
             (const void *body, size_t body_len) (pyws_payload pl) {
  if (pyws_payload_get($input, &pl) < 0)
    SWIG_fail;
  $1 = (void *)pl.ptr;
  $2 = (size_t)pl.len;
}
%typemap(freearg) (const void *data, size_t len),
                  (const void *body, size_t body_len) {
  pyws_payload_release(&pl$argnum);
}

/* Negative results stay plain ints; the Python layer maps them. */

/* ---- the core API, selected ------------------------------------------- */

typedef struct websock_config websock_config;
typedef struct websock_server websock_server;
typedef struct pyws_server pyws_server;

const char *websock_version(void);
const char *websock_strerror(int err);

int websock_config_set_listen(websock_config *cfg, const char *host, int port);
int websock_config_set_io_threads(websock_config *cfg, int n);
int websock_config_set_spread(websock_config *cfg, int policy);
int websock_config_set_agents(websock_config *cfg, int n);
int websock_config_set_delivery(websock_config *cfg, int mode);
int websock_config_set_control_events(websock_config *cfg, int enable);
int websock_config_add_ws_path(websock_config *cfg, const char *path);
int websock_config_add_http_route(websock_config *cfg, const char *path,
                                  const char *content_type,
                                  const void *body, size_t body_len);
int websock_config_set_max_handshake_size(websock_config *cfg, size_t bytes);
int websock_config_set_handshake_timeout(websock_config *cfg, unsigned ms);
int websock_config_set_max_message_size(websock_config *cfg, uint64_t bytes);
int websock_config_set_max_frame_size(websock_config *cfg, uint64_t bytes);
int websock_config_set_max_outbound(websock_config *cfg, size_t bytes);
int websock_config_set_idle_timeout(websock_config *cfg, unsigned ms);
int websock_config_set_ping_interval(websock_config *cfg, unsigned ms);
int websock_config_set_close_timeout(websock_config *cfg, unsigned ms);
int websock_config_set_max_connections(websock_config *cfg, unsigned n);
int websock_config_set_fragment_size(websock_config *cfg, size_t bytes);
int websock_config_set_tls(websock_config *cfg, const char *cert_chain_file,
                           const char *key_file);
const char *websock_tls_last_error(void);
void websock_config_free(websock_config *cfg);

int websock_server_start(websock_server *srv);
int websock_server_port(const websock_server *srv);
int websock_server_stop(websock_server *srv);
int websock_server_join(websock_server *srv);
int websock_server_send(websock_server *srv, uint64_t id, int opcode,
                        const void *data, size_t len);
int websock_server_send_tag(websock_server *srv, const char *tag, int opcode,
                            const void *data, size_t len);
int websock_server_broadcast(websock_server *srv, int opcode, const void *data,
                             size_t len, uint64_t except_id);
int websock_server_ping(websock_server *srv, uint64_t id, const void *data,
                        size_t len);
int websock_server_close(websock_server *srv, uint64_t id, int code,
                         const char *reason);
int websock_server_close_tag(websock_server *srv, const char *tag, int code,
                             const char *reason);
int websock_server_set_tag(websock_server *srv, uint64_t id, const char *tag);
int websock_server_event_fd(websock_server *srv);

/* Helpers. Those touching Python objects keep the GIL (%nothread) and
 * release it themselves around blocking core calls. */
%nothread;
websock_config *pyws_config_new(void);
/* A NULL return carries a Python exception (set by pyws_check). */
%exception pyws_server_new {
  $action
  if (!result)
    SWIG_fail;
}
pyws_server *pyws_server_new(websock_config *cfg);
void pyws_server_free(pyws_server *o);
void pyws_set_dispatch(pyws_server *o, PyObject *cb);
PyObject *pyws_poll(websock_server *srv, int timeout_ms);
PyObject *pyws_poll_many(websock_server *srv, int max);
PyObject *pyws_get_tag(websock_server *srv, uint64_t id);
PyObject *pyws_stats(websock_server *srv);
%clearnothread;

websock_server *pyws_handle(pyws_server *o);
long long pyws_find_tag(websock_server *srv, const char *tag);

%constant int EVENT_OPEN = WEBSOCK_EVENT_OPEN;
%constant int EVENT_MESSAGE = WEBSOCK_EVENT_MESSAGE;
%constant int EVENT_PING = WEBSOCK_EVENT_PING;
%constant int EVENT_PONG = WEBSOCK_EVENT_PONG;
%constant int EVENT_CLOSE = WEBSOCK_EVENT_CLOSE;
%constant int EVENT_DRAIN = WEBSOCK_EVENT_DRAIN;
%constant int OP_TEXT = WEBSOCK_OP_TEXT;
%constant int OP_BINARY = WEBSOCK_OP_BINARY;
%constant int DELIVERY_DIRECT = WEBSOCK_DELIVERY_DIRECT;
%constant int DELIVERY_QUEUED = WEBSOCK_DELIVERY_QUEUED;
%constant int SPREAD_LEAST_CONNECTIONS = WEBSOCK_SPREAD_LEAST_CONNECTIONS;
%constant int SPREAD_ROUND_ROBIN = WEBSOCK_SPREAD_ROUND_ROBIN;
