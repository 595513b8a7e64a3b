/* TLS with OpenSSL: the server context (certificate, key, ALPN, protocol
 * floor) and the non-blocking read/write/handshake/shutdown calls that
 * conn.c uses in place of recv()/send() on wss:// connections. Layer: net.
 */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

/* Why the last context set-up on this thread failed: websock_server_new()
 * returns only WEBSOCK_ERR_TLS, and a file name plus OpenSSL's reason is
 * what an operator needs to fix the configuration. */
static _Thread_local char tls_error[512];

const char *websock__tls_last_error(void) {
  return tls_error;
}

/* Records "<what> '<file>': <reason>" with the oldest queued OpenSSL error
 * (the root cause; later entries only say which call failed). */
static void tls_fail(const char *what, const char *file) {
  unsigned long e = ERR_peek_error();
  char reason[256] = "unknown OpenSSL error";
  if (e)
    ERR_error_string_n(e, reason, sizeof reason);
  snprintf(tls_error, sizeof tls_error, "%s '%s': %s", what, file ? file : "",
           reason);
  ERR_clear_error();
}

/* Fails early with the system's reason when a file cannot be opened, which
 * is clearer than OpenSSL's for the common "wrong path" mistake. */
static int tls_readable(const char *what, const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) {
    snprintf(tls_error, sizeof tls_error, "%s '%s': %s", what, file,
             strerror(errno));
    return 0;
  }
  fclose(f);
  return 1;
}

/* OpenSSL's password callback has a read/write flag our public one does
 * not need; the settings carry the user's callback and data. */
static int tls_password(char *buf, int size, int rwflag, void *ud) {
  (void)rwflag;
  const websock__settings *st = ud;
  if (!st->tls_pw_cb || size <= 0)
    return -1;
  int n = st->tls_pw_cb(buf, size, st->tls_pw_ud);
  return n >= 0 && n <= size ? n : -1;
}

/* Picks "http/1.1" when the client offers it. Any other offer is answered
 * without ALPN rather than with a fatal alert: the WebSocket handshake is
 * HTTP/1.1 whatever the client listed. */
static int tls_alpn_select(SSL *ssl, const unsigned char **out,
                           unsigned char *outlen, const unsigned char *in,
                           unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *sel = NULL, sel_len = 0;
  if (SSL_select_next_proto(&sel, &sel_len, ours, sizeof ours - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  *outlen = sel_len;
  return SSL_TLSEXT_ERR_OK;
}

/* Mutual TLS: client certificates checked against the CA file, and the
 * CA names sent in the certificate request so a client knows which of
 * its certificates to present. */
static int tls_verify_clients(SSL_CTX *ctx, const websock__settings *st) {
  if (!tls_readable("cannot read client CA file", st->tls_client_ca))
    return WEBSOCK_ERR_TLS;
  if (SSL_CTX_load_verify_locations(ctx, st->tls_client_ca, NULL) != 1) {
    tls_fail("bad client CA file (PEM)", st->tls_client_ca);
    return WEBSOCK_ERR_TLS;
  }
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(st->tls_client_ca);
  if (names)
    SSL_CTX_set_client_CA_list(ctx, names);
  int mode = SSL_VERIFY_PEER;
  if (st->tls_verify_client == WEBSOCK_TLS_VERIFY_REQUIRED)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, NULL);
  /* Session resumption would skip the check for a resumed session's
   * context; keep it simple and give every connection the full check. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return 0;
}

static int tls_ctx_from_files(const websock__settings *st, SSL_CTX **out) {
  if (!tls_readable("cannot read certificate chain", st->tls_cert) ||
      !tls_readable("cannot read private key", st->tls_key))
    return WEBSOCK_ERR_TLS;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    tls_fail("cannot create SSL_CTX", NULL);
    return WEBSOCK_ERR_NOMEM;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
  /* Always ours: without a callback OpenSSL would prompt on the terminal
   * for an encrypted key, and a server must fail instead. */
  SSL_CTX_set_default_passwd_cb(ctx, tls_password);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)st);
  int rc = 0;
  if (SSL_CTX_use_certificate_chain_file(ctx, st->tls_cert) != 1) {
    tls_fail("bad certificate chain (PEM)", st->tls_cert);
    rc = WEBSOCK_ERR_TLS;
  } else if (SSL_CTX_use_PrivateKey_file(ctx, st->tls_key, SSL_FILETYPE_PEM) !=
             1) {
    /* Loading compares the key with the certificate already: name that
     * case plainly, it is the usual mistake. */
    int mismatch =
        ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    tls_fail(mismatch ? "private key does not match the certificate"
                      : "cannot load private key (PEM; encrypted without "
                        "the right password?)",
             st->tls_key);
    rc = WEBSOCK_ERR_TLS;
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    tls_fail("private key does not match the certificate", st->tls_key);
    rc = WEBSOCK_ERR_TLS;
  } else if (st->tls_verify_client) {
    rc = tls_verify_clients(ctx, st);
  }
  /* The key is loaded: the user's callback is not needed any more, and the
   * context must not keep pointing into the settings. */
  SSL_CTX_set_default_passwd_cb(ctx, NULL);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
  if (rc) {
    SSL_CTX_free(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}

int websock__tls_ctx_new(const websock__settings *st, SSL_CTX **out) {
  *out = NULL;
  tls_error[0] = 0;
  if (st->tls_ctx) {
    SSL_CTX *ctx = st->tls_ctx;
    if (SSL_CTX_up_ref(ctx) != 1) {
      snprintf(tls_error, sizeof tls_error, "SSL_CTX_up_ref failed");
      return WEBSOCK_ERR_TLS;
    }
    *out = ctx;
    return 0;
  }
  if (!st->tls_cert)
    return 0;
  return tls_ctx_from_files(st, out);
}

void websock__tls_ctx_free(SSL_CTX *ctx) {
  SSL_CTX_free(ctx);
}

int websock__tls_client_ctx_new(const char *ca_file, int verify,
                                SSL_CTX **out) {
  *out = NULL;
  tls_error[0] = 0;
  if (verify && ca_file && !tls_readable("cannot read CA file", ca_file))
    return WEBSOCK_ERR_TLS;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    tls_fail("cannot create SSL_CTX", NULL);
    return WEBSOCK_ERR_NOMEM;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  /* The handshake is HTTP/1.1 whatever else a server speaks. */
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
  if (verify) {
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
      tls_fail(ca_file ? "bad CA file (PEM)" : "cannot load the system CAs",
               ca_file);
      SSL_CTX_free(ctx);
      return WEBSOCK_ERR_TLS;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  *out = ctx;
  return 0;
}

/* Modes every connection's SSL object gets (see websock__tls_new). */
static void tls_set_modes(SSL *ssl) {
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
}

SSL *websock__tls_client_new(SSL_CTX *ctx, int fd, const char *host,
                             int host_is_ip, int verify) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl)
    return NULL;
  /* SNI carries host names only (RFC 6066 section 3); SSL_set1_host takes
   * an IP address as one. */
  if (SSL_set_fd(ssl, fd) != 1 ||
      (!host_is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) ||
      (verify && SSL_set1_host(ssl, host) != 1)) {
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_connect_state(ssl);
  tls_set_modes(ssl);
  return ssl;
}

void websock__tls_failure(SSL *ssl, char *out, size_t cap) {
  long v = SSL_get_verify_result(ssl);
  unsigned long e = ERR_peek_error();
  if (v != X509_V_OK) {
    snprintf(out, cap, "certificate verify failed (%s)",
             X509_verify_cert_error_string(v));
  } else if (e) {
    const char *r = ERR_reason_error_string(e);
    snprintf(out, cap, "%s", r ? r : "handshake failed");
  } else {
    snprintf(out, cap,
             "handshake failed (the server closed the "
             "connection)");
  }
  ERR_clear_error();
}

SSL *websock__tls_new(SSL_CTX *ctx, int fd) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl)
    return NULL;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_accept_state(ssl);
  /* conn.c writes from a buffer that may grow and move between a WANT
   * result and the retry, and wants every record written to count: set
   * these even on a caller's context. RELEASE_BUFFERS gives OpenSSL's
   * record buffers back while a connection is idle: 32 KiB -> 15 KiB per
   * idle wss connection, for 2-3% of busy throughput (bench, 5 rounds),
   * the right trade for mostly idle WebSocket clients. */
  tls_set_modes(ssl);
  return ssl;
}

/* Maps SSL_get_error() for a failed call to our codes. */
static int tls_status(SSL *ssl, int r) {
  switch (SSL_get_error(ssl, r)) {
  case SSL_ERROR_WANT_READ:
    return WEBSOCK__IO_WANT_READ;
  case SSL_ERROR_WANT_WRITE:
    return WEBSOCK__IO_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN:
    return WEBSOCK__IO_EOF;
  default:
    return WEBSOCK__IO_ERROR;
  }
}

int websock__tls_handshake(SSL *ssl) {
  /* SSL_get_error() reads this thread's error queue: it must hold only
   * what the call below left there. */
  ERR_clear_error();
  int r = SSL_do_handshake(ssl);
  if (r == 1)
    return WEBSOCK__IO_OK;
  int s = tls_status(ssl, r);
  return s == WEBSOCK__IO_EOF ? WEBSOCK__IO_ERROR : s;
}

int websock__tls_read(SSL *ssl, uint8_t *buf, size_t cap, size_t *got) {
  size_t total = 0;
  /* SSL_read returns at most one record (16 KiB); keep going so one wake-up
   * drains the socket and OpenSSL's buffer instead of leaving plaintext
   * behind that no readiness event would ever announce. */
  while (total < cap) {
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(ssl, buf + total, cap - total, &n);
    if (r == 1) {
      total += n;
      continue;
    }
    *got = total;
    return tls_status(ssl, r);
  }
  *got = total;
  return WEBSOCK__IO_OK;
}

long websock__tls_write(SSL *ssl, const uint8_t *p, size_t n) {
  size_t w = 0;
  ERR_clear_error();
  int r = SSL_write_ex(ssl, p, n, &w);
  if (r == 1)
    return (long)w;
  int s = tls_status(ssl, r);
  return s == WEBSOCK__IO_EOF ? WEBSOCK__IO_ERROR : s;
}

void websock__tls_shutdown(SSL *ssl) {
  /* One call queues and tries to send our close_notify; waiting for the
   * peer's would need another round trip the server does not care about.
   * A write to a reset peer cannot raise SIGPIPE here: the I/O threads
   * block every signal. */
  ERR_clear_error();
  SSL_shutdown(ssl);
  ERR_clear_error();
}

const char *websock__tls_sni(SSL *ssl) {
  return ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

size_t websock__tls_peer_subject(SSL *ssl, char *out, size_t cap) {
  if (!ssl || cap == 0)
    return 0;
  X509 *cert = SSL_get1_peer_certificate(ssl);
  if (!cert)
    return 0;
  size_t n = 0;
  BIO *bio =
      SSL_get_verify_result(ssl) == X509_V_OK ? BIO_new(BIO_s_mem()) : NULL;
  if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
                                XN_FLAG_RFC2253) >= 0) {
    int got = BIO_read(bio, out, (int)cap - 1);
    n = got > 0 ? (size_t)got : 0;
    out[n] = 0;
  }
  BIO_free(bio);
  X509_free(cert);
  return n;
}
