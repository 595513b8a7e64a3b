/* SWIG interface of the Python binding of libwebsock2 (module
 * libwebsock2._websock).
 *
 * The public headers are %included as they are: every function, enum
 * constant (WEBSOCK_ stripped: ERR_INVALID, EVENT_OPEN, OP_TEXT, ...) and
 * struct (websock_stats, websock_loop_stats, ..., read through the proxy
 * classes of the shadow module libwebsock2.websock) comes from them. Hidden
 * are only what Python cannot use raw: callback setters (the trampolines
 * below replace them), server new/free/run/poll (the owner and the queue
 * drain below replace them) and raw pointers (user data, SSL_CTX). Typemaps
 * turn out-parameters into return values: f(..., T *out) returns [rc,
 * value].
 *
 * The handshake hook reaches Python as one call of the owner's handshake
 * callable with the request as a SWIG pointer that is valid during that
 * call only (the trampoline clears it on return, so a kept one passes NULL
 * and gets WEBSOCK_ERR_INVALID, never freed memory); pyws_request_read
 * copies everything the request says into Python objects at once.
 *
 * permessage-deflate is websock_config_set_deflate with the constants of
 * enum websock_deflate_mode (DEFLATE_OFF, DEFLATE_SHARED,
 * DEFLATE_DEDICATED), from <websock/config.h> like every other option;
 * the Python layer (_config.py: compression=, libwebsock2.Deflate) checks
 * the values first so that an error names the argument.
 *
 * Events reach Python as one named record, libwebsock2.Event (a struct
 * sequence), with the fields of ../event_record.i, the one definition the
 * Lua binding uses too.
 *
 * Topics (websock_server_subscribe / _unsubscribe / _publish) take the
 * name as one argument, str (UTF-8) or bytes-like (the topic typemap), and
 * publish its message as one str / bytes-like argument like a send.
 *
 * Client mode (<websock/client.h>) is wrapped as it is: connect options
 * (all but the user data pointer) and websock_server_connect returning
 * [rc, id]; the Python layer (_client.py) does the rest.
 *
 * Build with: swig -python -threads -Iinclude -I<generated include dir>
 * Every wrapper releases the GIL except those marked %nothread (they touch
 * Python objects). */
%module(package="libwebsock2") websock

%{
#define SWIG_FILE_WITH_INIT
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "websock.h"
%}

%include "../event_record.i"

%{
/* ---- the event record ------------------------------------------------- */

static PyTypeObject *pyws_event_type; /* libwebsock2.Event, made at import */

#define PYWS_FIELD_DESC(field, kind, doc) {#field, doc},
static PyStructSequence_Field pyws_event_fields[] = {
    WSB_EVENT_FIELDS(PYWS_FIELD_DESC){NULL, NULL}};
static PyStructSequence_Desc pyws_event_desc = {
    "libwebsock2.Event",
    "One event of a connection (see websock_event in <websock/event.h>).",
    pyws_event_fields, WSB_EVENT_NFIELDS};

static PyObject *pyws_str_or_none(const char *s) {
  if (!s)
    Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* data: str for TEXT messages, close reasons and the tag of a TAG event
 * (decoded as the tag field is), bytes for BINARY messages and PING/PONG
 * payloads, None otherwise. */
static PyObject *pyws_event_data(const websock_event *ev) {
  const char *p = ev->data ? (const char *)ev->data : "";
  Py_ssize_t n = (Py_ssize_t)ev->length;
  switch (ev->type) {
  case WEBSOCK_EVENT_MESSAGE:
    if (ev->opcode == WEBSOCK_OP_TEXT)
      return PyUnicode_DecodeUTF8(p, n, "surrogateescape");
    return PyBytes_FromStringAndSize(p, n);
  case WEBSOCK_EVENT_CLOSE:
  case WEBSOCK_EVENT_TAG:
    return PyUnicode_DecodeUTF8(p, n, "replace");
  case WEBSOCK_EVENT_PING:
  case WEBSOCK_EVENT_PONG:
    return PyBytes_FromStringAndSize(p, n);
  default:
    Py_RETURN_NONE;
  }
}

#define PYWS_INT(ev, f) PyLong_FromLong((ev)->f)
#define PYWS_ID(ev, f) PyLong_FromUnsignedLongLong((ev)->f)
#define PYWS_STR(ev, f) pyws_str_or_none((ev)->f)
#define PYWS_DATA(ev, f) pyws_event_data(ev)
#define PYWS_PUT(field, kind, doc)                                             \
  if (ok) {                                                                    \
    PyObject *v_ = PYWS_##kind(ev, field);                                     \
    if (v_)                                                                    \
      PyStructSequence_SET_ITEM(r, i, v_);                                     \
    else                                                                       \
      ok = 0;                                                                  \
    i++;                                                                       \
  }

/* The record of |ev|, or NULL with an exception set. Needs the GIL. */
static PyObject *pyws_event_record(const websock_event *ev) {
  PyObject *r = PyStructSequence_New(pyws_event_type);
  if (!r)
    return NULL;
  Py_ssize_t i = 0;
  int ok = 1;
  WSB_EVENT_FIELDS(PYWS_PUT)
  if (!ok) {
    Py_DECREF(r); /* the fields not set are NULL: fine for the dealloc */
    return NULL;
  }
  return r;
}

/* ---- the owner object ------------------------------------------------ */

typedef struct pyws_server {
  websock_server *srv;        /* the core server, NULL once freed */
  PyObject *dispatch;         /* callable(event) for DIRECT mode, or NULL */
  PyInterpreterState *interp; /* interpreter the agent threads attach to */
  /* callable(request pointer) -> int answer of the handshake hook, or NULL
   * (the hook then answers WEBSOCK_ACCEPT without taking the GIL). Set and
   * cleared with the GIL; read atomically without it first. */
  PyObject *handshake;
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
    PyObject *rec = pyws_event_record(ev);
    PyObject *r = rec ? PyObject_CallFunctionObjArgs(cb, rec, NULL) : NULL;
    if (!r)
      PyErr_WriteUnraisable(cb); /* the Python dispatcher catches; last resort */
    Py_XDECREF(r);
    Py_XDECREF(rec);
    Py_DECREF(cb);
  }
  if (ts)
    PyEval_SaveThread();
  else
    PyGILState_Release(gs);
}

/* The handshake hook: on an agent (pinned thread state) for upgrades when
 * the config runs it there, else on the I/O thread (pinned with agents =
 * 0, PyGILState_Ensure otherwise). The Python callable gets the request as
 * a non-owning SWIG pointer and returns the hook's answer (0, a status,
 * WEBSOCK_DEFER); the Python layer catches its handler's exceptions, so a
 * failure here is a last resort: 500. */
static int pyws_handshake(websock_server *srv, websock_request *req, void *ud) {
  pyws_server *o = (pyws_server *)ud;
  (void)srv;
  if (!o || !__atomic_load_n(&o->handshake, __ATOMIC_ACQUIRE))
    return WEBSOCK_ACCEPT; /* no handler: the core's default answer */
  if (pyws_finalizing())
    return 503;
  PyThreadState *ts = pyws_tstate;
  PyGILState_STATE gs = PyGILState_UNLOCKED;
  if (ts)
    PyEval_RestoreThread(ts);
  else
    gs = PyGILState_Ensure();
  int answer = WEBSOCK_ACCEPT;
  PyObject *cb = o->handshake; /* again, now under the GIL */
  if (cb) {
    Py_INCREF(cb);
    PyObject *p =
        SWIG_NewPointerObj(SWIG_as_voidptr(req), SWIGTYPE_p_websock_request,
                           SWIG_POINTER_NOSHADOW);
    PyObject *r = p ? PyObject_CallFunctionObjArgs(cb, p, NULL) : NULL;
    if (p) {
      if (SwigPyObject_Check(p))
        ((SwigPyObject *)p)->ptr = NULL; /* a kept pointer goes NULL */
      Py_DECREF(p);
    }
    long v = r ? PyLong_AsLong(r) : -1;
    if (!r || (v == -1 && PyErr_Occurred())) {
      PyErr_WriteUnraisable(cb);
      answer = 500;
    } else {
      answer = (int)v;
    }
    Py_XDECREF(r);
    Py_DECREF(cb);
  }
  if (ts)
    PyEval_SaveThread();
  else
    PyGILState_Release(gs);
  return answer;
}

/* Raises the libwebsock2.Error subclass of a negative |rc| and returns -1;
 * returns 0 for rc >= 0. Needs the GIL. */
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

/* The passphrase of an encrypted TLS key, borrowed from the Python
 * argument of pyws_server_new for the one websock_server_new call that
 * reads the key (the core calls this only there, on that thread). */
typedef struct pyws_password {
  const char *ptr;
  size_t len;
} pyws_password;

static int pyws_tls_password(char *buf, int size, void *ud) {
  const pyws_password *pw = (const pyws_password *)ud;
  if (!pw || size < 0 || pw->len > (size_t)size)
    return -1; /* longer than OpenSSL's buffer: refuse, never cut it */
  memcpy(buf, pw->ptr, pw->len);
  return (int)pw->len;
}

/* Creates the server from |cfg| with the trampoline and the thread hooks,
 * and with the handshake trampoline when |handshake| is 1 (where it runs is
 * the config's websock_config_set_handshake_on_agents); |password| (None
 * for none; str as UTF-8, or bytes) unlocks an encrypted TLS key. The
 * Python layer set every other option. */
static pyws_server *pyws_server_new(websock_config *cfg, int handshake,
                                    const char *password, size_t password_len) {
  pyws_server *o = calloc(1, sizeof *o);
  if (!o) {
    PyErr_NoMemory();
    return NULL;
  }
  o->interp = PyThreadState_GetInterpreter(PyThreadState_Get());
  websock_config_set_event_callback(cfg, pyws_trampoline, o);
  websock_config_set_thread_hooks(cfg, pyws_on_thread_start,
                                  pyws_on_thread_stop, o);
  websock_config_set_handshake_callback(cfg, handshake ? pyws_handshake : NULL,
                                        handshake ? o : NULL);
  pyws_password pw = {password, password_len};
  websock_config_set_tls_password_callback(
      cfg, password ? pyws_tls_password : NULL, password ? &pw : NULL);
  int rc = websock_server_new(&o->srv, cfg);
  websock_config_set_tls_password_callback(cfg, NULL, NULL); /* &pw dies */
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

/* The handshake callable (None: the hook answers as if there were none). */
static void pyws_set_handshake(pyws_server *o, PyObject *cb) {
  if (!o)
    return;
  PyObject *old = o->handshake;
  if (cb == Py_None)
    cb = NULL;
  Py_XINCREF(cb);
  __atomic_store_n(&o->handshake, cb, __ATOMIC_RELEASE);
  Py_XDECREF(old);
}

/* Everything the request |req| says, copied: (is_upgrade, method, path,
 * query, headers, origin, remote_addr, sni, subprotocols, tls_peer, id)
 * with headers a list of (name, value) pairs in their order, subprotocols
 * a tuple in the client's order, tls_peer the verified client
 * certificate's subject, id the connection's (websock_request_id: the
 * OPEN event's id once accepted) and None for what is missing. NULL with
 * an exception for a NULL |req| (InvalidArgument: a pointer kept past its
 * hook call). */
static PyObject *pyws_request_read(const websock_request *req) {
  if (!req) {
    pyws_check(WEBSOCK_ERR_INVALID);
    return NULL;
  }
  int nh = websock_request_header_count(req);
  int np = websock_request_subprotocol_count(req);
  PyObject *headers = PyList_New(nh > 0 ? nh : 0);
  PyObject *protos = PyTuple_New(np > 0 ? np : 0);
  PyObject *r = NULL;
  if (!headers || !protos)
    goto out;
  for (int i = 0; i < nh; i++) {
    PyObject *pair = Py_BuildValue(
        "(NN)", pyws_str_or_none(websock_request_header_name(req, i)),
        pyws_str_or_none(websock_request_header_value(req, i)));
    if (!pair)
      goto out;
    PyList_SET_ITEM(headers, i, pair);
  }
  for (int i = 0; i < np; i++) {
    PyObject *name = pyws_str_or_none(websock_request_subprotocol(req, i));
    if (!name)
      goto out;
    PyTuple_SET_ITEM(protos, i, name);
  }
  r = Py_BuildValue("(ONNNONNNONN)",
                    websock_request_is_upgrade(req) ? Py_True : Py_False,
                    pyws_str_or_none(websock_request_method(req)),
                    pyws_str_or_none(websock_request_path(req)),
                    pyws_str_or_none(websock_request_query(req)), headers,
                    pyws_str_or_none(websock_request_origin(req)),
                    pyws_str_or_none(websock_request_remote_addr(req)),
                    pyws_str_or_none(websock_request_sni(req)), protos,
                    pyws_str_or_none(websock_request_tls_peer(req)),
                    PyLong_FromUnsignedLongLong(websock_request_id(req)));
out:
  Py_XDECREF(headers);
  Py_XDECREF(protos);
  return r;
}

/* Stops, joins and frees the core server (GIL released meanwhile), then
 * drops the dispatcher. Never call it from a callback. */
static void pyws_server_free(pyws_server *o) {
  if (!o)
    return;
  websock_server *s = o->srv;
  o->srv = NULL;
  if (s) {
    Py_BEGIN_ALLOW_THREADS websock_server_free(s);
    Py_END_ALLOW_THREADS
  }
  pyws_set_dispatch(o, NULL);
  pyws_set_handshake(o, NULL);
  free(o);
}

/* QUEUED mode: up to |max| events already queued, as a list of records
 * (maybe empty). Never waits. */
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
    PyObject *rec = pyws_event_record(ev);
    websock_event_free(ev);
    if (!rec || PyList_Append(list, rec) < 0) {
      Py_XDECREF(rec);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(rec);
  }
  return list;
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

/* Every typemap's pyws_payload starts as this (have_view 0): the wrapper
 * releases each one at its fail label, also when an earlier argument
 * failed before this one was converted. */
static const pyws_payload pyws_payload_none;

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

/* A topic name: as a payload, with an error that names the topic. */
static int pyws_topic_get(PyObject *o, pyws_payload *p) {
  p->have_view = 0;
  if (!PyUnicode_Check(o) && !PyObject_CheckBuffer(o)) {
    PyErr_Format(PyExc_TypeError,
                 "topic must be str or a bytes-like object, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  return pyws_payload_get(o, p);
}
%}

%include <stdint.i>

/* ---- payload typemaps ---------------------------------------------------- */

/* (opcode, data, len) from one str / bytes-like argument. */
%typemap(in) (int opcode, const void *data, size_t len)
    (pyws_payload pl = pyws_payload_none) {
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

/* (data, len) from one str / bytes-like argument (ping payloads). */
%typemap(in) (const void *data, size_t len)
    (pyws_payload pl = pyws_payload_none) {
  if (pyws_payload_get($input, &pl) < 0)
    SWIG_fail;
  $1 = (void *)pl.ptr;
  $2 = (size_t)pl.len;
}
%typemap(freearg) (const void *data, size_t len) {
  pyws_payload_release(&pl$argnum);
}

/* Topic names (subscribe, unsubscribe, publish): str as UTF-8, or any
 * bytes-like object as it is; the core checks the length (1..255 bytes,
 * else WEBSOCK_ERR_INVALID, which the Python layer words). */
%typemap(in) (const void *topic, size_t topic_len)
    (pyws_payload pl = pyws_payload_none) {
  if (pyws_topic_get($input, &pl) < 0)
    SWIG_fail;
  $1 = (void *)pl.ptr;
  $2 = (size_t)pl.len;
}
%typemap(freearg) (const void *topic, size_t topic_len) {
  pyws_payload_release(&pl$argnum);
}

/* HTTP bodies (routes, plain answers, refusals): the same, and None for
 * (NULL, 0), which gives a refusal the status's default text. */
%typemap(in) (const void *body, size_t body_len)
    (pyws_payload pl = pyws_payload_none) {
  pl.have_view = 0;
  if ($input == Py_None) {
    $1 = NULL;
    $2 = 0;
  } else {
    if (pyws_payload_get($input, &pl) < 0)
      SWIG_fail;
    $1 = (void *)pl.ptr;
    $2 = (size_t)pl.len;
  }
}
%typemap(freearg) (const void *body, size_t body_len) {
  pyws_payload_release(&pl$argnum);
}

/* The TLS key's passphrase for pyws_server_new: None for none, str as
 * UTF-8, or bytes-like; held until after the call. */
%typemap(in) (const char *password, size_t password_len)
    (pyws_payload pl = pyws_payload_none) {
  pl.have_view = 0;
  if ($input == Py_None) {
    $1 = NULL;
    $2 = 0;
  } else {
    if (pyws_payload_get($input, &pl) < 0)
      SWIG_fail;
    $1 = (char *)pl.ptr;
    $2 = (size_t)pl.len;
  }
}
%typemap(freearg) (const char *password, size_t password_len) {
  pyws_payload_release(&pl$argnum);
}

/* ---- out-parameters: f(...) returns [rc, value] ------------------------- */

/* websock_server_last_error: [text, errno]. */
%typemap(in, numinputs=0) int *err_no (int tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) int *err_no {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromLong(*$1));
}

/* websock_config_new: [rc, config or None]. */
%typemap(in, numinputs=0) websock_config **out (websock_config *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) websock_config **out {
  $result = SWIG_Python_AppendOutput($result,
      *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, 0) : SWIG_Py_Void());
}

/* websock_request_defer: [rc, handle or None]. The handle is a plain
 * pointer: the Python layer completes it exactly once. */
%typemap(in, numinputs=0) websock_upgrade **out (websock_upgrade *tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) websock_upgrade **out {
  $result = SWIG_Python_AppendOutput($result,
      *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, 0) : SWIG_Py_Void());
}

/* websock_upgrade_accept: no user data from Python (its first argument
 * list is (handle, subprotocol)). */
%typemap(in, numinputs=0) void *user_data {
  $1 = NULL;
}

/* websock_server_find_tag: [rc, id]. */
%typemap(in, numinputs=0) uint64_t *id (uint64_t tmp = 0) {
  $1 = &tmp;
}
%typemap(argout) uint64_t *id {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromUnsignedLongLong(*$1));
}

/* websock_server_get_tag: [rc, tag or None]. */
%typemap(in, numinputs=0) (char *buf, size_t cap) (char tmp[256]) {
  tmp[0] = 0;
  $1 = tmp;
  $2 = sizeof tmp;
}
%typemap(argout) (char *buf, size_t cap) {
  $result = SWIG_Python_AppendOutput($result, result > 0
      ? PyUnicode_DecodeUTF8($1, result, "replace") : SWIG_Py_Void());
}

/* websock_server_get_stats / _get_loop_stats / _get_agent_stats: [rc,
 * struct or None]; the struct is a new websock_stats / websock_loop_stats /
 * websock_agent_stats proxy (the shadow module libwebsock2.websock must be
 * imported for its class). */
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
  PyObject *o_ = NULL;
  if (result == 0) {
    $*1_ltype *copy_ = malloc(sizeof *copy_);
    if (!copy_) {
      PyErr_NoMemory();
      SWIG_fail;
    }
    *copy_ = *$1;
    o_ = SWIG_NewPointerObj(copy_, $1_descriptor, SWIG_POINTER_OWN);
  } else {
    o_ = SWIG_Py_Void();
  }
  $result = SWIG_Python_AppendOutput($result, o_);
}

/* ---- the public headers -------------------------------------------------- */

/* Replaced by the owner object, its trampoline and thread hooks. */
%ignore websock_server_new;
%ignore websock_server_free;
%ignore websock_config_set_event_callback;
%ignore websock_config_set_thread_hooks;
/* Blocks in C, where Ctrl-C cannot reach Python: serve_forever() waits in
 * Python instead. */
%ignore websock_server_run;
/* Replaced by pyws_poll_many (records; the events are freed at once). */
%ignore websock_server_poll;
%ignore websock_event_free;
%ignore websock_event;
/* Raw pointers Python has no use for. */
%ignore websock_server_set_user_data;
%ignore websock_request_set_user_data;
%ignore websock_config_set_tls_ctx;
%ignore websock_config_set_tls_password_callback;
/* Client mode: the Python layer keeps its own per-connection state. */
%ignore websock_connect_options_set_user_data;
/* Constants without the WEBSOCK_ prefix: ERR_INVALID, EVENT_OPEN, ...
 * (a later %rename wins: the $ignore below must follow this one). */
%rename("%(strip:[WEBSOCK_])s") "";
/* Replaced by the handshake trampoline (pyws_server_new). */
%ignore websock_config_set_handshake_callback;

%immutable;
%include "websock/export.h"
%include "websock/types.h"
%include "websock/version.h"
%include "websock/error.h"
%include "websock/event.h"
%include "websock/request.h"
%include "websock/config.h"
%include "websock/server.h"
/* Client mode: websock_server_connect(srv, url, opts) returns [rc, id]
 * (the uint64_t *id typemap above); websock_connect_error() the reason of
 * the last failed one on this thread. */
%include "websock/client.h"
%mutable;

/* ---- helpers ------------------------------------------------------------- */

typedef struct pyws_server pyws_server;

/* Those touching Python objects keep the GIL (%nothread) and release it
 * themselves around blocking core calls. */
%nothread;
/* A NULL return carries a Python exception (set by pyws_check). */
%exception pyws_server_new {
  $action
  if (!result)
    SWIG_fail;
}
pyws_server *pyws_server_new(websock_config *cfg, int handshake,
                             const char *password, size_t password_len);
void pyws_server_free(pyws_server *o);
void pyws_set_dispatch(pyws_server *o, PyObject *cb);
void pyws_set_handshake(pyws_server *o, PyObject *cb);
PyObject *pyws_poll_many(websock_server *srv, int max);
/* A NULL return carries a Python exception. */
%exception pyws_request_read {
  $action
  if (!result)
    SWIG_fail;
}
PyObject *pyws_request_read(const websock_request *req);
%clearnothread;

websock_server *pyws_handle(pyws_server *o);

%init %{
  pyws_event_type = PyStructSequence_NewType(&pyws_event_desc);
  if (!pyws_event_type)
    return NULL;
  Py_INCREF(pyws_event_type); /* one for the module, one for the static */
  if (PyModule_AddObject(m, "Event", (PyObject *)pyws_event_type) < 0) {
    Py_DECREF(pyws_event_type);
    return NULL;
  }
%}
