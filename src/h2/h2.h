/*
 * h2.h - a lean unary gRPC client over HTTP/2 (nghttp2) and epoll, for the
 * poller: thousands of persistent connections, one small call at a time on
 * each, one thread, one timer wheel.
 *
 * Why not rpc.h's client (gRPC core): measured on this machine, gRPC core's
 * channels cost 21-55 KiB each and its per-call timers and connection setup
 * collapse a poller of 10,000 agents at one poll a second (see
 * docs/internals/monitor.md). This client keeps per connection one struct
 * h2_conn of a few hundred bytes and a socket, and allocates nothing per
 * call: the HTTP/2 framing of a unary call is its own, header compression
 * (HPACK) is nghttp2's, one encoder and one decoder for all connections
 * (h2.c says why that is safe).
 *
 * The wire is exactly gRPC's (HTTP/2 with prior knowledge, plaintext "h2c"
 * as gRPC's insecure channels speak): POST with content-type
 * application/grpc, te: trailers, grpc-timeout, the 5-byte message framing
 * (uncompressed), the status from the grpc-status / grpc-message trailers
 * (or a trailers-only response), HTTP statuses mapped as gRPC does. So any
 * gRPC server answers it: monitorc (gRPC core), the seed's Python agents
 * (grpcio), bench_swarm.
 *
 * Connections connect on their first call and stay open. A connection that
 * fails to connect is retried with exponential backoff (opts); a call made
 * while its connection waits out its backoff fails at once with UNAVAILABLE
 * (gRPC's fail-fast). A connection the peer closes is reconnected by the
 * next call. A call's deadline covers connecting: when it passes, the call
 * ends with DEADLINE_EXCEEDED (a connection still connecting is dropped and
 * backs off; an open one stays and only the stream is reset).
 *
 * Timers: the client owns one wheel (h2_client_wheel()); call deadlines live
 * there, and the owner may arm its own timers in it (the poller's schedule):
 * they fire inside h2_client_poll().
 *
 * Transport: plaintext TCP (h2c), or TLS when opts->tls is set (OpenSSL,
 * context from tls_client_ctx_new(): the agent's certificate verified against
 * the CA bundle and its address or name, our certificate for mutual TLS,
 * ALPN "h2" required, :scheme https). The handshake counts as connecting (the
 * call's deadline covers it; a failure backs off like a refused connect) and
 * its failure is the call's UNAVAILABLE details: "TLS handshake failed:
 * certificate verify failed (certificate has expired)", ... After a reload of
 * the tls_conf (tls_conf_generation() moved), new connections use the new
 * material, open ones keep theirs.
 *
 * Threads: none of its own; one thread at a time uses a client and its
 * connections (the poller's thread, or mon_poll_once()'s caller).
 * Errors: 0 or a negative H2_E* code (h2_strerror()); a call's outcome is a
 * gRPC status code (<grpc/status.h>) given to its callback.
 */
#ifndef ASGD_H2_H
#define ASGD_H2_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

struct h2_client;
struct h2_conn;
struct tls_conf;
struct wheel;

enum {
    H2_EINVAL = -1,  /* bad argument (target not host:port, NULL, deadline) */
    H2_ENOMEM = -2,  /* allocation failed */
    H2_EBUSY = -3,   /* the connection has a call in flight already */
    H2_ETOOBIG = -4, /* request longer than H2_REQ_MAX */
    H2_ESYS = -5,    /* epoll could not be created */
};
/* A static English description of an H2_E* code. */
const char *h2_strerror(int code);

#define H2_REQ_MAX 64 /* largest request message (the poller's are 0-2 bytes) */

struct h2_opts {
    int backoff_initial_ms; /* first reconnect backoff after a failed connect; 0 = 100 */
    int backoff_max_ms;     /* backoff cap; 0 = 1000 */
    size_t max_message;     /* largest response accepted; 0 = 16 KiB (more: RESOURCE_EXHAUSTED) */
    struct tls_conf *tls;   /* TLS to every agent (borrowed: outlives the client; reloads are
                               picked up by new connections); NULL = plain text (h2c) */
};
#define H2_OPTS_INIT                                                                               \
    {                                                                                              \
        0, 0, 0, NULL                                                                              \
    }

/*
 * A call's outcome: status is a gRPC status (GRPC_STATUS_OK, DEADLINE_EXCEEDED,
 * UNAVAILABLE, UNIMPLEMENTED, ...); details the status message or what went
 * wrong ("" if nothing); data/len the response message (data non-NULL only
 * with status OK and a message; len 0 for an empty one). details and data are
 * borrowed: valid until the callback returns or starts another call on the
 * same connection. The callback runs inside h2_client_poll(); it may start a
 * call (on any connection) but must not free a connection or the client.
 */
typedef void (*h2_done_fn)(void *arg, grpc_status_code status, const char *details,
                           const uint8_t *data, size_t len);

/* Creates a client (epoll set, wheel, nghttp2 settings). opts NULL = defaults. Returns 0,
   H2_ENOMEM or H2_ESYS (*out untouched). Free with h2_client_free(). */
int h2_client_new(const struct h2_opts *opts, struct h2_client **out)
    __attribute__((warn_unused_result));

/* Frees the client; every connection must have been freed before. NULL is a no-op. */
void h2_client_free(struct h2_client *cl);

/* The client's timer wheel (times: clk_mono_ms()); borrowed. */
struct wheel *h2_client_wheel(struct h2_client *cl);

/*
 * Waits up to timeout_ms (0 = not at all) for socket events or the next timer,
 * then handles every ready event, fires due timers and delivers finished
 * calls. Returns how many events and timers it handled, or H2_ESYS if
 * epoll_wait failed (EINTR is not a failure).
 */
int h2_client_poll(struct h2_client *cl, int timeout_ms);

/* Calls started whose callback has not run yet. */
int h2_client_inflight(const struct h2_client *cl);

/* sizeof(struct h2_conn): what one connection costs in memory besides its socket (for the
   benchmarks' figures). */
size_t h2_conn_size(void);

/*
 * A connection to target "host:port": an IPv4 address, "[IPv6]" or a DNS name
 * (resolved with getaddrinfo() on each connect, which may block; the poller's
 * addresses are numeric). Nothing connects yet. Returns 0 or H2_EINVAL (not
 * host:port, or longer than 63 bytes) / H2_ENOMEM. Free with h2_conn_free().
 */
int h2_conn_new(struct h2_client *cl, const char *target, struct h2_conn **out)
    __attribute__((warn_unused_result));

/* Closes and frees a connection; a call in flight on it is dropped without its callback.
   NULL is a no-op. Not from a callback. */
void h2_conn_free(struct h2_conn *c);

/*
 * Starts one unary call of path ("/MonitorC/GetMetrics"; borrowed: must stay
 * valid until the callback, a string literal in practice) with req/len (at
 * most H2_REQ_MAX bytes, copied) and an absolute deadline deadline_ms
 * (clk_mono_ms() time, must be in the future). Connects first if needed.
 * Returns 0: cb fires exactly once, from h2_client_poll() (never from inside
 * this call), unless the connection is freed first. Returns H2_EBUSY (a call
 * in flight), H2_ETOOBIG, H2_EINVAL: cb never fires.
 */
int h2_call(struct h2_conn *c, const char *path, const uint8_t *req, size_t len,
            int64_t deadline_ms, h2_done_fn cb, void *arg) __attribute__((warn_unused_result));

/*
 * Called when the peer closes an open connection while no call is in flight on it (a close or
 * a GOAWAY: the agent's process stopped or restarts), so the owner may check the agent now
 * instead of at its next call. Runs inside h2_client_poll() with the rules of h2_done_fn; the
 * next call reconnects as usual. fn NULL: no notice (the default).
 */
typedef void (*h2_lost_fn)(void *arg);
void h2_conn_on_lost(struct h2_conn *c, h2_lost_fn fn, void *arg);

#endif
