/* Server configuration: create, set options, hand to websock_server_new(),
 * which copies it. Every setter returns 0 or WEBSOCK_ERR_INVALID (NULL
 * config or a value out of range). Thread: a config is not thread-safe; use
 * it from one thread at a time. */
#ifndef WEBSOCK_CONFIG_H
#define WEBSOCK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "export.h"
#include "request.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum websock_delivery {
  WEBSOCK_DELIVERY_DIRECT = 0, /* the event callback runs on agent threads
                                  (or the I/O thread when agents = 0) */
  WEBSOCK_DELIVERY_QUEUED = 1  /* events are queued for websock_server_poll()
                                  and signalled on websock_server_event_fd() */
};

/* How accepted connections are spread over the I/O threads. A connection
 * stays on its thread for life either way. */
enum websock_spread {
  WEBSOCK_SPREAD_LEAST_CONNECTIONS = 0, /* the thread with the fewest open
                                           connections; ties in turn */
  WEBSOCK_SPREAD_ROUND_ROBIN = 1        /* each thread in turn */
};

/* Creates a config with the documented defaults. Returns 0 and sets *out,
 * or WEBSOCK_ERR_INVALID / WEBSOCK_ERR_NOMEM leaving *out unchanged. */
WEBSOCK_EXTERN int websock_config_new(websock_config **out);
/* Frees |cfg|; NULL is a no-op. */
WEBSOCK_EXTERN void websock_config_free(websock_config *cfg);

/* Address to listen on (default "127.0.0.1"; "0.0.0.0" for all IPv4, "::"
 * for IPv6 and IPv4) and port (default 0: the system picks a free port,
 * see websock_server_port()). The host string is copied. */
WEBSOCK_EXTERN int websock_config_set_listen(websock_config *cfg,
                                             const char *host, int port);
/* Number of I/O threads, each with its own libevent event_base (1..256,
 * default 1). */
WEBSOCK_EXTERN int websock_config_set_io_threads(websock_config *cfg, int n);
/* Spreading policy, enum websock_spread (default LEAST_CONNECTIONS: keeps
 * the threads' connection counts even when connections come and go;
 * ROUND_ROBIN spreads each new wave of connections evenly even after one
 * thread's connections closed; see the README's benchmarks). */
WEBSOCK_EXTERN int websock_config_set_spread(websock_config *cfg, int policy);
/* Number of agent threads running callbacks (0..1024, default 0: callbacks
 * run inline on the I/O thread, the fastest mode for light handlers). In QUEUED
 * delivery agents are not used: the I/O threads queue events for the consumer
 * directly. */
WEBSOCK_EXTERN int websock_config_set_agents(websock_config *cfg, int n);
/* Delivery mode, enum websock_delivery (default DIRECT). */
WEBSOCK_EXTERN int websock_config_set_delivery(websock_config *cfg, int mode);
/* The event callback (DIRECT mode) and its user data. */
WEBSOCK_EXTERN int websock_config_set_event_callback(websock_config *cfg,
                                                     websock_event_cb cb,
                                                     void *user_data);
/* The handshake/HTTP hook (see request.h); NULL (the default) accepts
 * every valid upgrade on an allowed path and answers other requests from
 * the static routes, else with 426. */
WEBSOCK_EXTERN int
websock_config_set_handshake_callback(websock_config *cfg,
                                      websock_handshake_cb cb, void *user_data);

/* Hooks run on every agent thread (and I/O thread when agents = 0) as it
 * starts and before it ends, e.g. to keep per-thread binding state. */
typedef void (*websock_thread_cb)(websock_server *srv, void *user_data);
WEBSOCK_EXTERN int websock_config_set_thread_hooks(websock_config *cfg,
                                                   websock_thread_cb on_start,
                                                   websock_thread_cb on_stop,
                                                   void *user_data);

/* Deliver PING and PONG events (default 0: pongs are sent automatically
 * and control frames are not reported). */
WEBSOCK_EXTERN int websock_config_set_control_events(websock_config *cfg,
                                                     int enable);

/* Only accept upgrades on these paths (exact match, e.g. "/chat"; may be
 * called several times). Default: every path. Others get 404. */
WEBSOCK_EXTERN int websock_config_add_ws_path(websock_config *cfg,
                                              const char *path);
/* Serve |body| (copied) for GET |path| on plain HTTP requests when no hook
 * answered them, e.g. an HTML page next to the WebSocket endpoint. */
WEBSOCK_EXTERN int websock_config_add_http_route(websock_config *cfg,
                                                 const char *path,
                                                 const char *content_type,
                                                 const void *body,
                                                 size_t body_len);

/* Limits. Sizes in bytes, times in milliseconds. */
/* Largest request head (default 8192; 431 past it). */
WEBSOCK_EXTERN int websock_config_set_max_handshake_size(websock_config *cfg,
                                                         size_t bytes);
/* Time allowed from accept to a complete handshake (default 10000). */
WEBSOCK_EXTERN int websock_config_set_handshake_timeout(websock_config *cfg,
                                                        unsigned ms);
/* Largest message (default 1 MiB) and frame (default 0 = same as the
 * message limit) payload accepted; larger gets close 1009. */
WEBSOCK_EXTERN int websock_config_set_max_message_size(websock_config *cfg,
                                                       uint64_t bytes);
WEBSOCK_EXTERN int websock_config_set_max_frame_size(websock_config *cfg,
                                                     uint64_t bytes);
/* Outbound bytes queued per connection before sends fail with
 * WEBSOCK_ERR_BACKPRESSURE (default 8 MiB). One message larger than the
 * limit is still accepted into an empty queue. Reading from a client pauses
 * once its unsent replies plus its messages not yet handled by user code
 * pass half the limit, and resumes below a quarter, so a client that sends
 * faster than it reads slows itself down and its replies are not refused. */
WEBSOCK_EXTERN int websock_config_set_max_outbound(websock_config *cfg,
                                                   size_t bytes);
/* Close a connection that sent nothing for |ms| (default 0 = never). */
WEBSOCK_EXTERN int websock_config_set_idle_timeout(websock_config *cfg,
                                                   unsigned ms);
/* Send a ping to a connection that sent nothing for |ms| (default 0 =
 * never); combine with the idle timeout to drop half-open peers. */
WEBSOCK_EXTERN int websock_config_set_ping_interval(websock_config *cfg,
                                                    unsigned ms);
/* Close with 1011 (WEBSOCK_CLOSE_INTERNAL_ERROR, reason "keepalive ping
 * timeout") a connection that answered the keepalive ping with nothing,
 * not even a pong, for |ms| (default 0 = never; needs a ping interval).
 * Any frame from the peer counts as an answer. Checked at the periodic
 * sweep, so the close comes up to one sweep period (a quarter of the
 * shortest timeout, at most 1 s) late. */
WEBSOCK_EXTERN int websock_config_set_ping_timeout(websock_config *cfg,
                                                   unsigned ms);
/* Time to wait for the peer's close frame after ours, and for clients to
 * drain during a graceful stop (default 5000). */
WEBSOCK_EXTERN int websock_config_set_close_timeout(websock_config *cfg,
                                                    unsigned ms);
/* Most simultaneous connections; more get HTTP 503 (plain ws://) or are
 * closed at once (TLS). The default comes from the process's soft
 * RLIMIT_NOFILE when websock_config_new() runs: that limit minus 32 (a
 * reserve for the server's own descriptors and the application's files),
 * at least 16 and at most 100000 (so 992 under the usual limit of 1024,
 * 100000 when the limit is unlimited or above 100032). A larger value
 * lets connections run the process out of descriptors; the server then
 * stops accepting for a short while (100 ms, doubling up to 1.6 s, or
 * until a connection closes) instead of retrying at once, and answers each
 * waiting client 503 (TLS: closes it) through one spare descriptor that
 * each listening socket holds while the process is within 64 descriptors
 * of its limit. */
WEBSOCK_EXTERN int websock_config_set_max_connections(websock_config *cfg,
                                                      unsigned n);
/* The slow-consumer policy: a connection whose queued output (bytes it
 * has not read yet) was at or above half the outbound bound
 * (websock_config_set_max_outbound) at every check for |ms| is closed:
 * its output is dropped, its socket reset (no close frame: it would wait
 * behind the output the client does not read) and its CLOSE event reports
 * 1008 (WEBSOCK_CLOSE_POLICY: the client broke the server's policy by not
 * reading; 1013 "try again later" would tell it the server is overloaded
 * and invite a reconnect that does the same). The check runs at the
 * periodic sweep (at most 1 s apart, more often with short timeouts), so
 * the close comes up to about two sweep periods after |ms|. Writing
 * everything queued resets the clock. Default 30000; 0 turns the policy
 * off (a client that never reads then holds up to max_outbound until it
 * leaves or the idle timeout closes it). */
WEBSOCK_EXTERN int websock_config_set_slow_consumer_timeout(websock_config *cfg,
                                                            unsigned ms);
/* 1: every I/O thread listens on its own socket with SO_REUSEPORT, and
 * the kernel spreads new connections over them, so accepts no longer pass
 * through the first thread, and several processes (prefork servers, nginx
 * workers) may serve one port. The spreading policy does not apply then:
 * each thread serves what its own socket accepted. Default 0: one
 * listening socket on the first I/O thread, which hands each accepted
 * connection to a thread by the spreading policy. */
WEBSOCK_EXTERN int websock_config_set_reuse_port(websock_config *cfg,
                                                 int enable);

/* 1: no listening socket at all, a pure client: the loops and agents run
 * the connections websock_server_connect() makes (websock_server_port()
 * then gives 0). Default 0. */
WEBSOCK_EXTERN int websock_config_set_client_only(websock_config *cfg,
                                                  int enable);

/* Makes the server node |node| (1..1023, unique in the cluster; 0: drawn
 * at start, below) of the
 * cluster of every server configured with the same Redis,
 * "redis://[:password@]host[:port][/db]" (NULL: no cluster, the default).
 * Publishes, broadcasts, sends by id and by tag then reach connections on
 * every node; ids are node << 43 | n, unique cluster-wide; tags are unique
 * cluster-wide (websock_server_set_tag). One thread per server talks to
 * Redis, so no I/O or agent thread ever waits for it; while Redis is
 * unreachable, local delivery goes on, the other nodes' share of a
 * publish or broadcast is lost (counted in the stats), and a send to
 * another node's id or tag, or a set_tag, gives WEBSOCK_ERR_CLUSTER; the
 * link reconnects with back-off (0.1 s doubling to 5 s), subscribes again
 * and claims its tags again. websock_server_start() fails with
 * WEBSOCK_ERR_ADDRESS while a live node has the same number (it asks
 * Redis, waiting at most 1 s; a Redis that does not answer does not fail
 * the start). |node| 0 draws the lowest number no live node has from
 * Redis at start (websock_server_cluster_node() tells which), so start
 * then fails with WEBSOCK_ERR_CLUSTER when Redis does not answer within
 * 1 s. See docs/cluster-design.md. */
WEBSOCK_EXTERN int websock_config_set_cluster(websock_config *cfg,
                                              const char *redis_url, int node);
/* The prefix of the cluster's Redis channels (1..64 bytes, default
 * "websock"): clusters sharing one Redis keep apart by it. */
WEBSOCK_EXTERN int websock_config_set_cluster_prefix(websock_config *cfg,
                                                     const char *prefix);
/* How long a node stays alive in Redis without a beat (100..600000 ms,
 * default 9000). Nodes beat every ttl/3: the tags of a node that died
 * without a word (kill -9) are free for others at most ttl + ttl/10 after
 * its last beat (10 s by default), and its node number may start again
 * after the ttl. */
WEBSOCK_EXTERN int websock_config_set_cluster_ttl(websock_config *cfg,
                                                  unsigned ms);

/* Fairness of the agents: how many events of one connection an agent runs
 * in a row before it lets the other ready connections have their turn
 * (1..65536, default 32). A connection that floods cannot starve the
 * others; a larger budget means fewer switches between connections. */
WEBSOCK_EXTERN int websock_config_set_agent_budget(websock_config *cfg,
                                                   unsigned events);

/* 1 (the default): each agent thread that starts under the normal policy
 * (SCHED_OTHER) switches itself to SCHED_BATCH (Linux; elsewhere nothing
 * changes). A woken agent then does not preempt the thread running on its
 * core: on a core it shares with an I/O thread, the I/O thread ends its
 * iteration first and the agent runs a larger batch of events, with about
 * a third fewer context switches; on an idle core it runs at once as
 * before, and its share of the CPU is the same. 0 keeps the policy the
 * agents inherit. The on_thread_start hook runs after the switch, so it
 * may set any policy of its own. */
WEBSOCK_EXTERN int websock_config_set_agent_batch(websock_config *cfg,
                                                  int enable);

/* 1: the handshake hook runs on an agent thread instead of the I/O thread
 * (agents > 0 only), so a slow hook (a database or a Python lookup) never
 * holds up the other connections of that I/O thread. The request object is
 * a copy then, valid during the call as usual. Default 0. */
WEBSOCK_EXTERN int websock_config_set_handshake_on_agents(websock_config *cfg,
                                                          int enable);

/* Messages longer than |bytes| are sent as several frames of at most
 * |bytes| (default 0 = never fragment). */
WEBSOCK_EXTERN int websock_config_set_fragment_size(websock_config *cfg,
                                                    size_t bytes);

/* TLS (wss://). Without one of the two setters below the server speaks
 * plain ws://. When the library builds the context it uses TLS 1.2 or
 * newer, answers ALPN with "http/1.1" when the client offers it (and
 * proceeds without ALPN otherwise), refuses renegotiation, and records the
 * client's SNI name (websock_request_sni()). A client that fails the TLS
 * handshake (plain HTTP, garbage, an untrusted certificate) is dropped and
 * counted in rejected_total; the handshake timeout covers the TLS and the
 * HTTP handshake together. */

/* Serve TLS with the PEM certificate chain in |cert_chain_file| (server
 * certificate first, then intermediates) and the PEM private key in
 * |key_file|. Both names are copied; the files are read by
 * websock_server_new(), which fails with WEBSOCK_ERR_TLS when one cannot be
 * read or parsed or the key does not match the certificate (the reason is
 * in websock_tls_last_error()). Passing two NULLs turns file-based TLS off
 * again. Returns 0, WEBSOCK_ERR_INVALID (only one name given),
 * WEBSOCK_ERR_NOMEM. Thread: before websock_server_new(). */
WEBSOCK_EXTERN int websock_config_set_tls(websock_config *cfg,
                                          const char *cert_chain_file,
                                          const char *key_file);

/* permessage-deflate (RFC 7692): how compression uses memory. */
enum websock_deflate_mode {
  WEBSOCK_DEFLATE_OFF = 0, /* no compression (the default) */
  /* One compressor per I/O thread (and window size) for every connection:
   * we never keep context between messages, so a connection costs no
   * compressor memory at all, and a broadcast is compressed once per I/O
   * thread. Clients are asked to reset their context too, so none needs an
   * inflater of its own. */
  WEBSOCK_DEFLATE_SHARED = 1,
  /* A compressor per connection, made on its first compressed message,
   * that keeps context (better ratios for similar messages) at about
   * 2^(window_bits+2) + 2^(mem_level+9) bytes per connection (268 KiB at
   * 15/8, 9 KiB at 9/1), plus an inflater (up to 40 KiB) per client that
   * keeps its context. */
  WEBSOCK_DEFLATE_DEDICATED = 2
};
/* Offers permessage-deflate to clients that ask for it, with |mode| an
 * enum websock_deflate_mode, our compressors' largest window
 * |window_bits| (9..15, 0 = 15; a client may ask for a smaller one),
 * |mem_level| (1..9, 0 = 8), the zlib |level| (-1..9; 1, the fastest, is
 * the default: a ratio close to 6's at half the CPU) and |threshold|:
 * messages shorter than that many bytes go out uncompressed (64 is the
 * default; tiny messages gain nothing). Inflated messages are bounded by
 * the message size limit while they inflate (1009 past it), and a
 * compressed message counts against it too. Returns 0 or
 * WEBSOCK_ERR_INVALID. */
WEBSOCK_EXTERN int websock_config_set_deflate(websock_config *cfg, int mode,
                                              int window_bits, int mem_level,
                                              int level, size_t threshold);

/* Client certificates (mutual TLS) for websock_config_set_tls(). */
enum websock_tls_verify {
  WEBSOCK_TLS_VERIFY_NONE = 0,     /* ask for none (the default) */
  WEBSOCK_TLS_VERIFY_OPTIONAL = 1, /* ask; a client without one is let in,
                                      one with an untrusted one is not */
  WEBSOCK_TLS_VERIFY_REQUIRED = 2  /* a trusted certificate or no entry */
};
/* Verifies client certificates against the PEM CA certificates in
 * |ca_file| (copied; read by websock_server_new(), which fails with
 * WEBSOCK_ERR_TLS when it cannot), with |mode| an enum websock_tls_verify.
 * A client refused by the check never reaches the handshake hook; an
 * accepted one's certificate subject is in websock_request_tls_peer(). NONE
 * (|ca_file| may be NULL) turns it off. Applies to file-based TLS only (a
 * caller's SSL_CTX keeps its own settings). Returns 0, WEBSOCK_ERR_INVALID,
 * WEBSOCK_ERR_NOMEM. Thread: before websock_server_new(). */
WEBSOCK_EXTERN int websock_config_set_tls_verify_client(websock_config *cfg,
                                                        const char *ca_file,
                                                        int mode);

/* Supplies the passphrase of an encrypted private key: write it to |buf|
 * (at most |size| bytes, no NUL needed) and return its length, or -1 to
 * refuse. Called only inside websock_server_new(), on its thread. */
typedef int (*websock_tls_password_cb)(char *buf, int size, void *user_data);
/* Sets the passphrase callback for websock_config_set_tls() (NULL: none).
 * |user_data| is borrowed and must stay valid until websock_server_new()
 * returns. Returns 0 or WEBSOCK_ERR_INVALID. Thread: before
 * websock_server_new(). */
WEBSOCK_EXTERN int websock_config_set_tls_password_callback(
    websock_config *cfg, websock_tls_password_cb cb, void *user_data);

/* Serve TLS with the caller's OpenSSL context |ssl_ctx| (an SSL_CTX *,
 * already holding certificate and key; NULL turns it off). Borrowed: the
 * caller keeps ownership and must keep it alive until websock_server_free()
 * of every server made from this config; each server takes its own
 * reference (SSL_CTX_up_ref) in websock_server_new() and drops it in
 * websock_server_free(). The context's own settings (protocol versions,
 * ALPN, SNI callback) are used as they are; only the modes the transport
 * needs (partial writes, moving write buffer) are set on each connection.
 * Takes precedence over websock_config_set_tls(). Do not change the
 * context while servers use it. Returns 0 or WEBSOCK_ERR_INVALID.
 * Thread: before websock_server_new(). */
WEBSOCK_EXTERN int websock_config_set_tls_ctx(websock_config *cfg,
                                              struct ssl_ctx_st *ssl_ctx);

/* Why the last websock_server_new() on the calling thread failed with
 * WEBSOCK_ERR_TLS (file name and OpenSSL's reason); "" when it did not.
 * The string belongs to the thread and is overwritten by its next
 * websock_server_new(). Thread: any thread (per-thread value). */
WEBSOCK_EXTERN const char *websock_tls_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
