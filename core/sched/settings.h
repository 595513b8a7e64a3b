/* The server's settings: an immutable copy of the public websock_config.
 * Layer: sched (read by sched, net and api). */
#ifndef WEBSOCK_SCHED_SETTINGS_H
#define WEBSOCK_SCHED_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "websock.h"

/* Upper bounds of the thread counts (websock_config_set_io_threads/agents):
 * far above what one machine uses, low enough to catch a wrong value. */
#define WEBSOCK__MAX_IO_THREADS 256
#define WEBSOCK__MAX_AGENTS 1024

/* A static HTTP route served for GET requests (websock_config_add_http_route).
 */
typedef struct websock__route {
  struct websock__route *next;
  char *path;
  char *content_type;
  uint8_t *body;
  size_t body_len;
} websock__route;

typedef struct websock__settings {
  char *host;                /* listen address */
  int port;                  /* listen port, 0 = any */
  int io_threads;            /* number of event loops */
  int spread;                /* enum websock_spread */
  int agents;                /* agent threads, 0 = inline */
  int delivery;              /* enum websock_delivery */
  websock_event_cb event_cb; /* DIRECT mode callback */
  void *event_ud;
  websock_handshake_cb hs_cb; /* handshake/HTTP hook */
  void *hs_ud;
  websock_thread_cb on_thread_start; /* binding per-thread state hooks */
  websock_thread_cb on_thread_stop;
  void *thread_ud;
  int control_events;     /* deliver PING/PONG events */
  char **ws_paths;        /* allowed upgrade paths (NULL-terminated) */
  websock__route *routes; /* static HTTP routes */
  size_t max_handshake;   /* request head limit */
  unsigned handshake_timeout_ms;
  uint64_t max_message;
  uint64_t max_frame;
  size_t max_outbound;
  unsigned idle_timeout_ms;
  unsigned ping_interval_ms;
  unsigned ping_timeout_ms; /* keepalive ping unanswered this long: 1011 */
  unsigned close_timeout_ms;
  unsigned max_connections;
  size_t fragment_size;
  int deflate_mode;           /* enum websock_deflate_mode */
  int deflate_window_bits;    /* 9..15: our compressors' largest window */
  int deflate_mem_level;      /* 1..9 */
  int deflate_level;          /* -1..9 */
  size_t deflate_threshold;   /* shorter messages go out uncompressed */
  int reuse_port;             /* one SO_REUSEPORT listener per I/O thread */
  int client_only;            /* no listener: outgoing connections only */
  char *cluster_url;          /* redis://...: this server is a cluster node */
  int cluster_node;           /* its number, 1..1023; 0: drawn at start */
  char *cluster_prefix;       /* the channels' prefix, NULL: "websock" */
  unsigned cluster_ttl_ms;    /* a node's life in Redis without a beat;
                                 0: the default */
  unsigned agent_budget;      /* events of one connection per agent turn */
  int handshake_on_agents;    /* run the handshake hook on the agents */
  int agent_batch;            /* agents switch to SCHED_BATCH (Linux) */
  char *tls_cert;             /* PEM certificate chain file, or NULL */
  char *tls_key;              /* PEM private key file, or NULL */
  char *tls_client_ca;        /* PEM CAs for client certificates, or NULL */
  int tls_verify_client;      /* enum websock_tls_verify */
  struct ssl_ctx_st *tls_ctx; /* caller's SSL_CTX (borrowed), or NULL */
  websock_tls_password_cb tls_pw_cb; /* passphrase for an encrypted key */
  void *tls_pw_ud;
  unsigned slow_consumer_timeout_ms; /* close a connection whose output
                                        stays at half max_outbound or more
                                        this long; 0 = never */
} websock__settings;

#endif
