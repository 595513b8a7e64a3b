/* TLS server tests over real sockets with an OpenSSL client: SNI seen by
 * the handshake hook, ALPN, configuration errors and encrypted keys, a
 * borrowed SSL_CTX, plain clients and stalled handshakes on the TLS port,
 * and plaintext left inside OpenSSL when reading pauses. Keys and
 * certificates are generated at run time into a temporary directory. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <websock.h>

#include "wsclient.h"

/* ---- throwaway keys and a self-signed certificate --------------------- */

static char dir[64];
static char cert_file[128], key_file[128], other_key_file[128],
    enc_key_file[128];

/* Runs before Check does, so no ck_assert here. */
static void need(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "test set-up failed: %s\n", what);
    exit(1);
  }
}

static EVP_PKEY *make_key(void) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  need(k != NULL, "EC key");
  return k;
}

static void write_key(const char *path, EVP_PKEY *k, const char *pass) {
  FILE *f = fopen(path, "w");
  need(f != NULL, path);
  need(PEM_write_PrivateKey(f, k, pass ? EVP_aes_128_cbc() : NULL,
                            (const unsigned char *)pass,
                            pass ? (int)strlen(pass) : 0, NULL, NULL) == 1,
       path);
  fclose(f);
}

static void make_files(void) {
  if (dir[0])
    return;
  snprintf(dir, sizeof dir, "/tmp/websock-tls-XXXXXX");
  need(mkdtemp(dir) != NULL, "mkdtemp");
  snprintf(cert_file, sizeof cert_file, "%s/cert.pem", dir);
  snprintf(key_file, sizeof key_file, "%s/key.pem", dir);
  snprintf(other_key_file, sizeof other_key_file, "%s/other.pem", dir);
  snprintf(enc_key_file, sizeof enc_key_file, "%s/enc.pem", dir);
  EVP_PKEY *k = make_key(), *other = make_key();
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, k);
  need(X509_sign(x, k, EVP_sha256()) > 0, "X509_sign");
  FILE *f = fopen(cert_file, "w");
  need(f != NULL, cert_file);
  PEM_write_X509(f, x);
  fclose(f);
  write_key(key_file, k, NULL);
  write_key(other_key_file, other, NULL);
  write_key(enc_key_file, k, "s3cret");
  X509_free(x);
  EVP_PKEY_free(k);
  EVP_PKEY_free(other);
}

static void remove_files(void) {
  if (!dir[0])
    return;
  unlink(cert_file);
  unlink(key_file);
  unlink(other_key_file);
  unlink(enc_key_file);
  rmdir(dir);
}

/* ---- a blocking TLS WebSocket client ---------------------------------- */

typedef struct tcli {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
} tcli;

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct timeval tv = {10, 0}; /* bounds every blocking read and write */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void tcli_free(tcli *c) {
  if (!c)
    return;
  SSL_free(c->ssl);
  SSL_CTX_free(c->ctx);
  close(c->fd);
  free(c);
}

/* TLS handshake (no certificate check: the test certificate is
 * self-signed); |alpn| is in wire format or NULL. NULL when it fails. */
static tcli *tcli_connect(int port, const char *sni, const char *alpn,
                          unsigned max_fragment) {
  tcli *c = calloc(1, sizeof *c);
  c->fd = tcp_connect(port);
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (max_fragment)
    SSL_CTX_set_max_send_fragment(c->ctx, max_fragment);
  if (alpn)
    SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)alpn,
                            (unsigned)strlen(alpn));
  c->ssl = SSL_new(c->ctx);
  SSL_set_fd(c->ssl, c->fd);
  if (sni)
    SSL_set_tlsext_host_name(c->ssl, sni);
  if (SSL_connect(c->ssl) != 1) {
    ERR_clear_error();
    tcli_free(c);
    return NULL;
  }
  return c;
}

static void tcli_write(tcli *c, const void *p, size_t n) {
  ck_assert_int_eq(SSL_write(c->ssl, p, (int)n), (int)n);
}

static void tcli_read(tcli *c, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    int r = SSL_read(c->ssl, (char *)p + got, (int)(n - got));
    ck_assert_int_gt(r, 0);
    got += (size_t)r;
  }
}

/* Sends the upgrade request and returns the HTTP status. */
static int tcli_upgrade(tcli *c, const char *path) {
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: "
                   "websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                   "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
                   "13\r\n\r\n",
                   path);
  tcli_write(c, req, (size_t)n);
  char head[1024];
  size_t len = 0;
  while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
    ck_assert_uint_lt(len, sizeof head);
    tcli_read(c, head + len, 1);
    len++;
  }
  return atoi(head + 9);
}

/* Builds one masked client frame into |out|; returns its size. */
static size_t frame(uint8_t *out, int opcode, const void *p, size_t n) {
  size_t h = 0;
  out[h++] = (uint8_t)(0x80 | opcode);
  if (n < 126) {
    out[h++] = (uint8_t)(0x80 | n);
  } else if (n < 65536) {
    out[h++] = 0x80 | 126;
    out[h++] = (uint8_t)(n >> 8);
    out[h++] = (uint8_t)n;
  } else {
    out[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  static const uint8_t mask[4] = {1, 2, 3, 4};
  memcpy(out + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < n; i++)
    out[h + i] = ((const uint8_t *)p)[i] ^ mask[i & 3];
  return h + n;
}

static void tcli_send(tcli *c, int opcode, const void *p, size_t n) {
  uint8_t *b = malloc(n + 14);
  tcli_write(c, b, frame(b, opcode, p, n));
  free(b);
}

/* Reads one unmasked server frame; returns the opcode, payload in *out
 * (malloc'd, NUL-terminated) and its length in *n. */
static int tcli_recv(tcli *c, char **out, size_t *n) {
  uint8_t h[8];
  tcli_read(c, h, 2);
  int opcode = h[0] & 0x0f;
  uint64_t len = h[1] & 0x7f;
  if (len == 126) {
    tcli_read(c, h, 2);
    len = (uint64_t)h[0] << 8 | h[1];
  } else if (len == 127) {
    tcli_read(c, h, 8);
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | h[i];
  }
  char *p = malloc(len + 1);
  tcli_read(c, p, len);
  p[len] = 0;
  *out = p;
  *n = len;
  return opcode;
}

/* ---- the server under test -------------------------------------------- */

static pthread_mutex_t sni_mu = PTHREAD_MUTEX_INITIALIZER;
static char sni_seen[256];
static atomic_int filler_msgs;

static int sni_hook(websock_server *srv, websock_request *req, void *ud) {
  (void)srv;
  (void)ud;
  const char *s = websock_request_sni(req);
  pthread_mutex_lock(&sni_mu);
  snprintf(sni_seen, sizeof sni_seen, "%s", s ? s : "(null)");
  pthread_mutex_unlock(&sni_mu);
  return 0;
}

/* Echo, except: "big" gets 1 MiB back, "sleep" stalls this loop a while,
 * "done" reports how many binary messages came, binary is only counted. */
static void on_event(websock_server *srv, const websock_event *ev, void *ud) {
  (void)ud;
  if (ev->type != WEBSOCK_EVENT_MESSAGE)
    return;
  if (ev->opcode == WEBSOCK_OP_BINARY) {
    atomic_fetch_add(&filler_msgs, 1);
    return;
  }
  if (ev->length == 3 && memcmp(ev->data, "big", 3) == 0) {
    static char big[1 << 20];
    websock_server_send(srv, ev->id, WEBSOCK_OP_BINARY, big, sizeof big);
  } else if (ev->length == 5 && memcmp(ev->data, "sleep", 5) == 0) {
    usleep(200000);
  } else if (ev->length == 4 && memcmp(ev->data, "done", 4) == 0) {
    char b[32];
    int n = snprintf(b, sizeof b, "done:%d", atomic_load(&filler_msgs));
    websock_server_send(srv, ev->id, WEBSOCK_OP_TEXT, b, (size_t)n);
  } else {
    websock_server_send(srv, ev->id, ev->opcode, ev->data, ev->length);
  }
}

static websock_config *tls_config(void) {
  make_files();
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_tls(cfg, cert_file, key_file), 0);
  websock_config_set_event_callback(cfg, on_event, NULL);
  websock_config_set_close_timeout(cfg, 1000);
  return cfg;
}

static websock_server *start(websock_config *cfg, int *port) {
  websock_server *srv;
  int rc = websock_server_new(&srv, cfg);
  ck_assert_msg(rc == 0, "new: %s %s", websock_strerror(rc),
                websock_tls_last_error());
  ck_assert_int_eq(websock_server_start(srv), 0);
  *port = websock_server_port(srv);
  return srv;
}

/* Connects, upgrades and checks an echo. */
static void check_echo(int port) {
  tcli *c = tcli_connect(port, "localhost", NULL, 0);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(tcli_upgrade(c, "/"), 101);
  tcli_send(c, WEBSOCK_OP_TEXT, "hello", 5);
  char *p;
  size_t n;
  ck_assert_int_eq(tcli_recv(c, &p, &n), WEBSOCK_OP_TEXT);
  ck_assert_str_eq(p, "hello");
  free(p);
  tcli_free(c);
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_sni_and_alpn) {
  websock_config *cfg = tls_config();
  websock_config_set_handshake_callback(cfg, sni_hook, NULL);
  int port;
  websock_server *srv = start(cfg, &port);
  websock_config_free(cfg);

  tcli *c = tcli_connect(port, "sni.example.test", "\x08http/1.1", 0);
  ck_assert_ptr_nonnull(c);
  const unsigned char *sel;
  unsigned sel_len;
  SSL_get0_alpn_selected(c->ssl, &sel, &sel_len);
  ck_assert_uint_eq(sel_len, 8);
  ck_assert_int_eq(memcmp(sel, "http/1.1", 8), 0);
  ck_assert_int_eq(tcli_upgrade(c, "/"), 101);
  pthread_mutex_lock(&sni_mu);
  ck_assert_str_eq(sni_seen, "sni.example.test");
  pthread_mutex_unlock(&sni_mu);
  tcli_free(c);

  /* No SNI; an ALPN list without http/1.1 is answered without ALPN. */
  c = tcli_connect(port, NULL, "\x02h2", 0);
  ck_assert_ptr_nonnull(c);
  SSL_get0_alpn_selected(c->ssl, &sel, &sel_len);
  ck_assert_uint_eq(sel_len, 0);
  ck_assert_int_eq(tcli_upgrade(c, "/"), 101);
  pthread_mutex_lock(&sni_mu);
  ck_assert_str_eq(sni_seen, "(null)");
  pthread_mutex_unlock(&sni_mu);
  tcli_free(c);
  websock_server_free(srv);
}
END_TEST

static int pw_cb(char *buf, int size, void *ud) {
  const char *pw = ud;
  int n = (int)strlen(pw);
  if (n > size)
    return -1;
  memcpy(buf, pw, (size_t)n);
  return n;
}

START_TEST(test_config_errors) {
  make_files();
  websock_config *cfg;
  websock_server *srv = NULL;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  ck_assert_int_eq(websock_config_set_tls(NULL, cert_file, key_file),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_tls(cfg, cert_file, NULL),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_tls(cfg, NULL, key_file),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_tls_ctx(NULL, NULL), WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_tls_password_callback(NULL, NULL, NULL),
                   WEBSOCK_ERR_INVALID);

  /* Missing file: refused at new, with the file named. */
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing.pem", dir);
  ck_assert_int_eq(websock_config_set_tls(cfg, missing, key_file), 0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  ck_assert_ptr_null(srv);
  ck_assert_ptr_nonnull(strstr(websock_tls_last_error(), missing));
  ck_assert_int_eq(websock_config_set_tls(cfg, cert_file, missing), 0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  ck_assert_ptr_nonnull(strstr(websock_tls_last_error(), missing));
  /* Not PEM at all. */
  ck_assert_int_eq(websock_config_set_tls(cfg, "/dev/null", key_file), 0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  /* A key that is not the certificate's. */
  ck_assert_int_eq(websock_config_set_tls(cfg, cert_file, other_key_file), 0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  ck_assert_ptr_nonnull(strstr(websock_tls_last_error(), "does not match"));
  /* An encrypted key: no callback or a wrong password fails (and never
   * prompts on a terminal), the right one works. */
  ck_assert_int_eq(websock_config_set_tls(cfg, cert_file, enc_key_file), 0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  ck_assert_int_eq(
      websock_config_set_tls_password_callback(cfg, pw_cb, (void *)"wrong"), 0);
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  ck_assert_int_eq(
      websock_config_set_tls_password_callback(cfg, pw_cb, (void *)"s3cret"),
      0);
  websock_config_set_event_callback(cfg, on_event, NULL);
  int port;
  srv = start(cfg, &port);
  ck_assert_str_eq(websock_tls_last_error(), "");
  check_echo(port);
  websock_server_free(srv);
  /* Two NULLs turn TLS off again: a plain client works. */
  ck_assert_int_eq(websock_config_set_tls(cfg, NULL, NULL), 0);
  srv = start(cfg, &port);
  wsc *w = wsc_connect(port, "/", NULL);
  ck_assert_ptr_nonnull(w);
  wsc_free(w);
  websock_server_free(srv);
  websock_config_free(cfg);
}
END_TEST

START_TEST(test_borrowed_ctx) {
  make_files();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx, cert_file), 1);
  ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM),
                   1);
  websock_config *cfg;
  ck_assert_int_eq(websock_config_new(&cfg), 0);
  /* The caller's context wins over files, which are then never read. */
  websock_config_set_tls(cfg, "/nonexistent.pem", "/nonexistent.pem");
  ck_assert_int_eq(websock_config_set_tls_ctx(cfg, ctx), 0);
  websock_config_set_event_callback(cfg, on_event, NULL);
  int port;
  websock_server *a = start(cfg, &port);
  check_echo(port);
  int port_b;
  websock_server *b = start(cfg, &port_b); /* two servers, one context */
  check_echo(port_b);
  websock_config_free(cfg);
  websock_server_free(a);
  websock_server_free(b);
  /* Each server dropped exactly its own reference: still ours to use. */
  SSL *ssl = SSL_new(ctx);
  ck_assert_ptr_nonnull(ssl);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_plain_client_rejected) {
  websock_config *cfg = tls_config();
  int port;
  websock_server *srv = start(cfg, &port);
  websock_config_free(cfg);
  websock_stats st;
  for (int i = 0; i < 3; i++) {
    int status = 0;
    ck_assert_ptr_null(wsc_connect(port, "/", &status));
    check_echo(port); /* others are not affected */
  }
  for (int i = 0; i < 500; i++) {
    websock_server_get_stats(srv, &st, sizeof st);
    if (st.rejected_total >= 3)
      break;
    usleep(2000);
  }
  ck_assert_uint_eq(st.rejected_total, 3);
  ck_assert_uint_eq(st.connections_total, 3);
  websock_server_free(srv);
}
END_TEST

START_TEST(test_stalled_handshake_times_out) {
  websock_config *cfg = tls_config();
  websock_config_set_handshake_timeout(cfg, 300);
  int port;
  websock_server *srv = start(cfg, &port);
  websock_config_free(cfg);
  /* A TLS record header and nothing more; then one that sends nothing. */
  int half = tcp_connect(port), mute = tcp_connect(port);
  ck_assert_int_eq(send(half, "\x16\x03\x01\x02\x00", 5, 0), 5);
  check_echo(port);
  int fds[2] = {half, mute};
  for (int i = 0; i < 2; i++) {
    struct pollfd p = {fds[i], POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    char b[64];
    ck_assert_int_le(recv(fds[i], b, sizeof b, 0), 0); /* EOF or reset */
    close(fds[i]);
  }
  /* A TLS client that completes TLS but never sends its request too. */
  tcli *c = tcli_connect(port, "localhost", NULL, 0);
  ck_assert_ptr_nonnull(c);
  char b;
  ck_assert_int_le(SSL_read(c->ssl, &b, 1), 0);
  tcli_free(c);
  websock_server_free(srv);
}
END_TEST

/* Reading pauses for backpressure right when the loop buffer is full and
 * part of a record is left inside OpenSSL with nothing more on the socket:
 * the resume must still deliver the rest ("done"). */
START_TEST(test_resume_with_buffered_plaintext) {
  websock_config *cfg = tls_config();
  websock_config_set_max_outbound(cfg, 64 * 1024);
  int port;
  websock_server *srv = start(cfg, &port);
  websock_config_free(cfg);
  atomic_store(&filler_msgs, 0);
  /* 16000-byte records do not line up with the 256 KiB loop buffer. */
  tcli *c = tcli_connect(port, "localhost", NULL, 16000);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(tcli_upgrade(c, "/"), 101);
  /* The loop sleeps first, so the stream piles up on the socket. */
  tcli_send(c, WEBSOCK_OP_TEXT, "sleep", 5);
  usleep(50000);
  enum { TOTAL = 17 * 16000 };
  uint8_t *stream = malloc(TOTAL);
  size_t len = frame(stream, WEBSOCK_OP_TEXT, "big", 3);
  size_t filler = TOTAL - len - 10 - 14; /* "done" frame is 10 bytes */
  uint8_t *zeros = calloc(1, filler);
  len += frame(stream + len, WEBSOCK_OP_BINARY, zeros, filler);
  len += frame(stream + len, WEBSOCK_OP_TEXT, "done", 4);
  ck_assert_uint_eq(len, TOTAL);
  tcli_write(c, stream, len);
  char *p;
  size_t n;
  ck_assert_int_eq(tcli_recv(c, &p, &n), WEBSOCK_OP_BINARY);
  ck_assert_uint_eq(n, 1 << 20);
  free(p);
  ck_assert_int_eq(tcli_recv(c, &p, &n), WEBSOCK_OP_TEXT);
  ck_assert_str_eq(p, "done:1");
  free(p);
  free(stream);
  free(zeros);
  tcli_free(c);
  websock_server_free(srv);
}
END_TEST

START_TEST(test_stop_sends_1001) {
  websock_config *cfg = tls_config();
  websock_config_set_io_threads(cfg, 2);
  websock_config_set_agents(cfg, 2);
  int port;
  websock_server *srv = start(cfg, &port);
  websock_config_free(cfg);
  tcli *c = tcli_connect(port, "localhost", NULL, 0);
  ck_assert_int_eq(tcli_upgrade(c, "/"), 101);
  websock_stats st;
  for (int i = 0; i < 500; i++) {
    websock_server_get_stats(srv, &st, sizeof st);
    if (st.connections == 1)
      break;
    usleep(2000);
  }
  websock_server_stop(srv);
  char *p;
  size_t n;
  ck_assert_int_eq(tcli_recv(c, &p, &n), 8);
  ck_assert_uint_ge(n, 2);
  ck_assert_int_eq((uint8_t)p[0] << 8 | (uint8_t)p[1], 1001);
  tcli_send(c, 8, p, 2);
  free(p);
  ck_assert_int_eq(websock_server_join(srv), 0);
  /* The server ended TLS properly: close_notify, then EOF. */
  char b;
  ck_assert_int_eq(SSL_read(c->ssl, &b, 1), 0);
  ck_assert_int_eq(SSL_get_error(c->ssl, 0), SSL_ERROR_ZERO_RETURN);
  tcli_free(c);
  websock_server_free(srv);
}
END_TEST

/* ---- client certificates (mutual TLS) --------------------------------- */

static char peer_seen[256];

static int peer_hook(websock_server *srv, websock_request *req, void *ud) {
  (void)srv;
  (void)ud;
  const char *p = websock_request_tls_peer(req);
  pthread_mutex_lock(&sni_mu);
  snprintf(peer_seen, sizeof peer_seen, "%s", p ? p : "(none)");
  pthread_mutex_unlock(&sni_mu);
  return 0;
}

/* TLS connect, presenting |cert|/|key| when not NULL, then the upgrade:
 * the HTTP status, or -1 when TLS failed at any step (with TLS 1.3 a
 * refused client certificate shows on the first read, not in connect). */
static int mtls_upgrade(int port, const char *cert, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (cert) {
    need(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) == 1, cert);
    need(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, key);
  }
  int fd = tcp_connect(port);
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  static const char req[] =
      "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  char head[1024];
  int status = -1, n = 0;
  if (SSL_connect(ssl) == 1 &&
      SSL_write(ssl, req, (int)sizeof req - 1) == (int)sizeof req - 1 &&
      (n = SSL_read(ssl, head, (int)sizeof head - 1)) > 12) {
    head[n] = 0;
    status = atoi(head + 9);
  }
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return status;
}

START_TEST(test_client_certificates) {
  /* The self-signed test certificate is its own CA: a client presenting
   * it verifies; one presenting the same name with another key does not. */
  websock_config *cfg = tls_config();
  ck_assert_int_eq(websock_config_set_tls_verify_client(cfg, NULL, 2),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_tls_verify_client(cfg, cert_file, 3),
                   WEBSOCK_ERR_INVALID);
  ck_assert_int_eq(websock_config_set_tls_verify_client(
                       cfg, "/nonexistent/ca.pem", WEBSOCK_TLS_VERIFY_REQUIRED),
                   0);
  websock_server *srv;
  ck_assert_int_eq(websock_server_new(&srv, cfg), WEBSOCK_ERR_TLS);
  ck_assert_ptr_nonnull(strstr(websock_tls_last_error(), "client CA"));
  ck_assert_int_eq(websock_config_set_tls_verify_client(
                       cfg, cert_file, WEBSOCK_TLS_VERIFY_REQUIRED),
                   0);
  websock_config_set_handshake_callback(cfg, peer_hook, NULL);
  int port;
  srv = start(cfg, &port);
  ck_assert_int_eq(mtls_upgrade(port, cert_file, key_file), 101);
  pthread_mutex_lock(&sni_mu);
  ck_assert_str_eq(peer_seen, "CN=localhost");
  pthread_mutex_unlock(&sni_mu);
  ck_assert_int_eq(mtls_upgrade(port, NULL, NULL), -1);
  websock_server_free(srv);
  /* Optional: no certificate is let in, with no subject to show. */
  ck_assert_int_eq(websock_config_set_tls_verify_client(
                       cfg, cert_file, WEBSOCK_TLS_VERIFY_OPTIONAL),
                   0);
  srv = start(cfg, &port);
  ck_assert_int_eq(mtls_upgrade(port, NULL, NULL), 101);
  pthread_mutex_lock(&sni_mu);
  ck_assert_str_eq(peer_seen, "(none)");
  pthread_mutex_unlock(&sni_mu);
  ck_assert_int_eq(mtls_upgrade(port, cert_file, key_file), 101);
  websock_server_free(srv);
  websock_config_free(cfg);
}
END_TEST

static Suite *tls_suite(void) {
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("tls");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sni_and_alpn);
  tcase_add_test(tc, test_config_errors);
  tcase_add_test(tc, test_borrowed_ctx);
  tcase_add_test(tc, test_plain_client_rejected);
  tcase_add_test(tc, test_stalled_handshake_times_out);
  tcase_add_test(tc, test_resume_with_buffered_plaintext);
  tcase_add_test(tc, test_stop_sends_1001);
  tcase_add_test(tc, test_client_certificates);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  make_files(); /* once, in this process, whatever CK_FORK says */
  SRunner *sr = srunner_create(tls_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  remove_files();
  return failed ? 1 : 0;
}
