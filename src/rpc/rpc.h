/*
 * rpc.h - a small unary gRPC server and an asynchronous unary client over the
 * gRPC core C API (libgrpc 1.51), carrying opaque message bytes (protobuf-c
 * packs and unpacks them; see rpc_pack()).
 *
 * Workload. The server side answers monitorc's four MonitorC methods and
 * asgd's MonitorS Register/Deregister: small messages, a handful of calls per
 * second per agent, handlers that return at once. The asynchronous client
 * (many persistent channels, many calls in flight on ONE completion queue,
 * driven by rpc_client_poll()) was MonitorS's poller's; the poller now uses
 * its own lighter client (src/h2/h2.h) and this one serves benchmarks and
 * tests. monitorc itself uses the blocking helper rpc_call_sync() for
 * Register/Deregister.
 *
 * Either side may speak TLS with material from tls.h (rpc_server_bind_tls,
 * rpc_client_opts.tls, rpc_call_sync_tls), re-read without restarting.
 *
 * Method names are full gRPC paths without a proto package, as the seed's
 * clients send them: "/MonitorC/GetStatus", "/MonitorS/Register".
 *
 * Status codes are gRPC's (grpc_status_code from <grpc/status.h>:
 * GRPC_STATUS_OK = 0, GRPC_STATUS_UNIMPLEMENTED, GRPC_STATUS_DEADLINE_EXCEEDED,
 * GRPC_STATUS_UNAVAILABLE, GRPC_STATUS_CANCELLED, ...). Functions of this
 * module return 0 on success or a negative RPC_E* code (rpc_strerror()).
 *
 * gRPC's global state is reference counted: every rpc_server_new() /
 * rpc_client_new() / rpc_call_sync() takes a reference (grpc_init) and the
 * matching _free drops it, so callers never call grpc_init themselves.
 * gRPC starts its own threads: a program that wants signals delivered to one
 * thread must block them (pthread_sigmask) before creating any rpc object.
 * The first rpc object created sets GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS
 * to 100 in the environment (unless already set) before gRPC reads it: with
 * gRPC's 5 s default a persistent channel sees a restarted agent 3-8 s late.
 * Create it before other threads that call getenv/setenv start.
 */
#ifndef ASGD_RPC_H
#define ASGD_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

/* Error codes returned by this module (never a gRPC status). */
enum {
    RPC_EINVAL = -1,    /* bad argument (NULL, empty method, duplicate method, ...) */
    RPC_ENOMEM = -2,    /* allocation failed */
    RPC_EBIND = -3,     /* cannot listen on the address (in use, bad syntax, ...) */
    RPC_ESTATE = -4,    /* wrong life-cycle state (started twice, bind after start, ...) */
    RPC_ESHUTDOWN = -5, /* the object is shutting down or shut down */
    RPC_EGRPC = -6,     /* gRPC refused an operation (call or batch could not start) */
    RPC_ETOOBIG = -7,   /* message larger than the configured cap */
};
/* Returns a static English description of an RPC_E* code ("unknown error" otherwise). */
const char *rpc_strerror(int code);

/* Default cap on one message in either direction, both sides: 64 KiB. */
#define RPC_DEFAULT_MAX_MESSAGE (64 * 1024)

/*
 * Packs a protobuf-c message into a new malloc'd buffer. On success stores the
 * buffer in *out (caller frees with free(); an empty proto3 message gives a
 * non-NULL 1-byte allocation and *len = 0) and returns 0. Returns RPC_EINVAL
 * for NULL arguments, RPC_ENOMEM on allocation failure (*out untouched).
 */
int rpc_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

struct rpc_server;
struct tls_conf;

/* One incoming request, valid only during the handler call (borrowed). */
struct rpc_request {
    const char *method;  /* "/MonitorC/GetStatus" */
    const uint8_t *data; /* request bytes; never NULL (an empty message gives len 0) */
    size_t len;
    const char *peer; /* gRPC peer string, e.g. "ipv4:127.0.0.1:41234"; never NULL */
};

/*
 * What a handler produces. The server zeroes it before the call.
 * On GRPC_STATUS_OK the handler sets data/len to a malloc'd response (use
 * rpc_reply_pack()); the server frees data whatever the status. data NULL with
 * status OK sends an empty message. details is the status message sent with a
 * non-OK status (truncated to fit; "" sends no details).
 */
struct rpc_reply {
    uint8_t *data;
    size_t len;
    char details[160];
};

/*
 * A method handler. Called on the serving thread, one call at a time (handlers
 * never run concurrently with each other), so it must return quickly: a slow
 * handler delays every other call. Returns the gRPC status to send; a non-OK
 * status sends no message. ctx is the pointer given to rpc_server_add_method.
 */
typedef grpc_status_code (*rpc_handler_fn)(void *ctx, const struct rpc_request *req,
                                           struct rpc_reply *reply);

/* Packs msg into reply->data/len. Returns 0, or RPC_ENOMEM / RPC_EINVAL. */
int rpc_reply_pack(struct rpc_reply *reply, const ProtobufCMessage *msg);

struct rpc_server_opts {
    size_t max_message; /* largest request accepted, bytes; 0 = RPC_DEFAULT_MAX_MESSAGE.
                           Larger requests fail with RESOURCE_EXHAUSTED, handler not called. */
    int preposted;      /* calls requested from gRPC in advance; 0 = 32 */
};
/* Also fixed for every server: at most 100 concurrent streams per connection
 * (more wait in gRPC's queue), and no SO_REUSEPORT (a second server on a port
 * in use fails with RPC_EBIND instead of sharing it). */
#define RPC_SERVER_OPTS_INIT                                                                       \
    {                                                                                              \
        0, 0                                                                                       \
    }

/*
 * Creates a server (not yet listening). opts may be NULL for defaults.
 * Returns NULL only on allocation failure. Free with rpc_server_free().
 */
struct rpc_server *rpc_server_new(const struct rpc_server_opts *opts);

/*
 * Registers handler fn for the full method name (copied). Must be called
 * before rpc_server_start/run. Requests for methods nobody registered are
 * answered UNIMPLEMENTED. Returns 0, RPC_EINVAL (NULL, name not starting with
 * '/', already registered), RPC_ESTATE (already started) or RPC_ENOMEM.
 */
int rpc_server_add_method(struct rpc_server *srv, const char *method, rpc_handler_fn fn, void *ctx);

/*
 * Adds a plaintext HTTP/2 listening address, "0.0.0.0:50051", "127.0.0.5:0",
 * "[::]:50051". Port 0 picks a free port. Stores the bound port in *port if
 * port is not NULL. May be called several times before start. Returns 0,
 * RPC_EBIND (detail in rpc_server_errmsg), RPC_ESTATE (after start) or RPC_EINVAL.
 */
int rpc_server_bind(struct rpc_server *srv, const char *addr, int *port);

/*
 * Starts serving on a new thread owned by the server. Returns 0, RPC_ESTATE
 * (no address bound, already started) or RPC_EGRPC / RPC_ENOMEM.
 */
int rpc_server_start(struct rpc_server *srv);

/*
 * Alternative to rpc_server_start: serves on the calling thread and returns 0
 * once rpc_server_shutdown() (from another thread) has completed the shutdown.
 * Returns RPC_ESTATE / RPC_EGRPC at once if the server cannot start.
 */
int rpc_server_run(struct rpc_server *srv);

/*
 * Stops the server: no new calls are accepted; calls in progress get up to
 * grace_ms to finish, then are cancelled. Returns when the serving loop has
 * ended (joins the thread of rpc_server_start; waits for rpc_server_run to
 * return). Thread-safe, idempotent, not async-signal-safe; must not be called
 * from a handler. A server never started returns at once.
 */
void rpc_server_shutdown(struct rpc_server *srv, int grace_ms);

/*
 * Like rpc_server_bind, but the address speaks TLS with tls's certificate
 * and key (required). When tls has a CA file, clients must present a
 * certificate that chains to it (mutual TLS); else none is asked for.
 * tls is borrowed and must outlive the server: it is consulted on every new
 * connection, so a tls_conf_reload() applies to the next handshake without
 * restarting the server (connections already open keep their session).
 * Same returns as rpc_server_bind; RPC_EINVAL also when tls has no
 * certificate, RPC_EBIND when gRPC refuses the credentials (detail in
 * rpc_server_errmsg).
 */
int rpc_server_bind_tls(struct rpc_server *srv, const char *addr, struct tls_conf *tls, int *port);

/* Last error detail ("bind \"1.2.3.4:5\" failed"); never NULL, owned by srv. */
const char *rpc_server_errmsg(const struct rpc_server *srv);

/* Shuts down (grace 0) if needed and frees everything. NULL is a no-op. */
void rpc_server_free(struct rpc_server *srv);

/* ------------------------------------------------------------------------ */
/* Asynchronous client                                                      */
/* ------------------------------------------------------------------------ */

struct rpc_client;
struct rpc_channel;

struct rpc_client_opts {
    int reconnect_initial_ms; /* first reconnect backoff; 0 = 200 */
    int reconnect_min_ms;     /* minimum connect attempt timeout; 0 = 200 */
    int reconnect_max_ms;     /* backoff cap; 0 = 1000 (an agent restart is seen within ~1 s) */
    size_t max_message;       /* largest response accepted and request sent;
                                 0 = RPC_DEFAULT_MAX_MESSAGE */
    int own_connection;       /* 1 = each channel gets its own TCP connection
                                 (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL); 0 = channels to the
                                 same target share one */
    struct tls_conf *tls;     /* NULL: plaintext. Else channels speak TLS: the server is
                                 verified against tls's CA file (the system roots without
                                 one) and its name (the target's host, an IP address
                                 matching an IP SAN, or tls's server-name override); tls's
                                 certificate is presented when the server asks (mutual
                                 TLS). Borrowed: must outlive the client. Channels created
                                 after a tls_conf_reload() use the new material; existing
                                 channels keep theirs. */
};
#define RPC_CLIENT_OPTS_INIT                                                                       \
    {                                                                                              \
        0, 0, 0, 0, 0, NULL                                                                        \
    }

/*
 * Completion callback. status is the gRPC status (GRPC_STATUS_OK on success;
 * DEADLINE_EXCEEDED, UNAVAILABLE, UNIMPLEMENTED, CANCELLED, ...). details is
 * the status message ("" if none), data/len the response bytes (data non-NULL
 * only when status is OK and a message arrived; len 0 for an empty message).
 * All three are borrowed for the duration of the callback. The callback runs
 * inside rpc_client_poll() (or rpc_client_shutdown()) on that caller's thread;
 * it may call rpc_client_call() to start further calls, but not
 * rpc_client_poll/shutdown/free.
 */
typedef void (*rpc_done_fn)(void *arg, grpc_status_code status, const char *details,
                            const uint8_t *data, size_t len);

/*
 * Creates a client with one completion queue. opts may be NULL for defaults.
 * Returns NULL on allocation failure. Free with rpc_client_free().
 */
struct rpc_client *rpc_client_new(const struct rpc_client_opts *opts);

/*
 * Creates a persistent channel to target ("127.0.0.5:50051", "host:port",
 * "dns:///host:port"; copied). Connection is lazy: the first call connects,
 * and a lost connection is retried with the client's backoff. Returns NULL on
 * allocation failure or bad arguments. The channel belongs to the client:
 * free it with rpc_channel_free() or let rpc_client_free() free it.
 * Thread-safe.
 */
struct rpc_channel *rpc_channel_new(struct rpc_client *cl, const char *target);

/* The target string given to rpc_channel_new (owned by the channel). */
const char *rpc_channel_target(const struct rpc_channel *ch);

/*
 * Frees a channel. Calls already started on it are unaffected: they complete
 * (or are cancelled by shutdown) and their callbacks fire as usual. NULL is a
 * no-op. Thread-safe.
 */
void rpc_channel_free(struct rpc_channel *ch);

/*
 * Starts one unary call of method on ch with the request bytes (copied; the
 * caller keeps req) and a deadline of deadline_ms (> 0) from now.
 * Returns 0 when the call started: then cb fires EXACTLY ONCE, from
 * rpc_client_poll() or rpc_client_shutdown(). Returns a negative RPC_E* code
 * when it did not start (RPC_EINVAL, RPC_ETOOBIG, RPC_ESHUTDOWN, RPC_ENOMEM,
 * RPC_EGRPC): then cb NEVER fires. Thread-safe; any number of calls may be in
 * flight at once.
 */
int rpc_client_call(struct rpc_client *cl, struct rpc_channel *ch, const char *method,
                    const uint8_t *req, size_t len, int deadline_ms, rpc_done_fn cb, void *arg);

/*
 * Drives completions: waits up to timeout_ms (0 = do not wait) for the first
 * completion, then handles every completion already available without
 * waiting, firing their callbacks on this thread. Returns the number of
 * callbacks fired (0 on timeout), or RPC_ESHUTDOWN after shutdown.
 * One thread at a time may poll a client.
 */
int rpc_client_poll(struct rpc_client *cl, int timeout_ms);

/* Number of calls started and whose callback has not fired yet. Thread-safe. */
int rpc_client_inflight(const struct rpc_client *cl);

/*
 * Cancels every call in flight and fires their callbacks (status CANCELLED,
 * or whatever status they had already reached) before returning; afterwards
 * rpc_client_call returns RPC_ESHUTDOWN and rpc_client_poll RPC_ESHUTDOWN.
 * Call it from the polling thread (or when no thread polls). Idempotent.
 */
void rpc_client_shutdown(struct rpc_client *cl);

/* Shuts down if needed, frees remaining channels and the client. NULL is a no-op. */
void rpc_client_free(struct rpc_client *cl);

/* ------------------------------------------------------------------------ */
/* Blocking helper                                                          */
/* ------------------------------------------------------------------------ */

/* Outcome of rpc_call_sync. Release with rpc_result_release(). */
struct rpc_result {
    grpc_status_code status;
    char details[160]; /* status message, "" if none (truncated) */
    uint8_t *data;     /* response bytes (malloc'd) when status is OK, else NULL */
    size_t len;
};
#define RPC_RESULT_INIT                                                                            \
    {                                                                                              \
        GRPC_STATUS_UNKNOWN, "", NULL, 0                                                           \
    }

/* Frees res->data and resets res to RPC_RESULT_INIT. NULL is a no-op. */
void rpc_result_release(struct rpc_result *res);

/*
 * One unary call that blocks the calling thread until it completes or
 * deadline_ms passes. Uses a new short-lived channel to target with the
 * default client options (no rpc_client needed), so it is thread-safe and
 * independent of any poller. Returns 0 when the call ran (its outcome,
 * possibly a non-OK gRPC status such as UNAVAILABLE or DEADLINE_EXCEEDED, is
 * in *out; release it), or a negative RPC_E* code when it could not be started
 * (*out then holds no allocation). Cap on the response: RPC_DEFAULT_MAX_MESSAGE.
 */
int rpc_call_sync(const char *target, const char *method, const uint8_t *req, size_t len,
                  int deadline_ms, struct rpc_result *out);

/* rpc_call_sync over TLS (tls as in rpc_client_opts.tls; NULL: plaintext). */
int rpc_call_sync_tls(const char *target, struct tls_conf *tls, const char *method,
                      const uint8_t *req, size_t len, int deadline_ms, struct rpc_result *out);

#endif
