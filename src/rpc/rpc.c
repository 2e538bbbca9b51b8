/*
 * rpc.c - unary gRPC server and asynchronous client over the gRPC core C API.
 *
 * The server keeps `preposted` grpc_server_request_call()s outstanding and
 * re-posts one each time a call arrives, so bursts never wait for a request
 * slot. A known method takes two batches (initial metadata + receive, then
 * message + status + close); an unknown one takes a single batch that answers
 * UNIMPLEMENTED without reading the request. Everything runs on one serving
 * thread draining one completion queue, which is why handlers must be quick.
 *
 * The client puts every call of every channel on one completion queue; each
 * call is a single batch of the six unary ops, whose tag is the call record.
 * Records sit on a list so that shutdown can cancel them and still fire each
 * callback exactly once (libuv's rule: a started request always completes).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "common/clock.h"
#include "common/log.h"
#include "rpc/rpc.h"
#include "tls/tls.h"
#include "common/banned.h"

const char *rpc_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case RPC_EINVAL:
        return "invalid argument";
    case RPC_ENOMEM:
        return "out of memory";
    case RPC_EBIND:
        return "cannot listen on address";
    case RPC_ESTATE:
        return "wrong state for this operation";
    case RPC_ESHUTDOWN:
        return "shut down";
    case RPC_EGRPC:
        return "grpc refused the operation";
    case RPC_ETOOBIG:
        return "message too large";
    default:
        return "unknown error";
    }
}

int rpc_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    if (!msg || !out || !len)
        return RPC_EINVAL;
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return RPC_ENOMEM;
    *len = protobuf_c_message_pack(msg, buf);
    *out = buf;
    return 0;
}

int rpc_reply_pack(struct rpc_reply *reply, const ProtobufCMessage *msg)
{
    if (!reply)
        return RPC_EINVAL;
    return rpc_pack(msg, &reply->data, &reply->len);
}

/*
 * A client channel's connection attempt is only driven while some thread
 * polls a completion queue with a call pending on that channel, or by gRPC's
 * "backup poller" (every 5 s by default). A poller whose calls to a restarted
 * agent fail fast has no call pending, so the reconnect used to complete only
 * on the backup poller's tick: 3-8 s after the agent came back, whatever the
 * reconnect backoff. gRPC reads the interval from the environment once, at
 * its first grpc_init(): set 100 ms there unless the operator chose a value.
 */
/*
 * Debian's libabsl is built without NDEBUG, so every absl::Mutex that gRPC
 * takes runs abseil's deadlock detector (a global graph of lock ids under a
 * global lock): ~17 % of a 5,000-instance poller's CPU samples were in
 * GraphCycles::GetId/InsertEdge. abseil has no environment knob for it, only
 * absl::SetMutexDeadlockDetectionMode(), a C++ function: it is looked up by
 * its mangled name (the inline namespace is Debian's "debian3"; the plain one
 * is what an upstream build exports) and called with kIgnore (0). Where
 * neither exists the detector is either compiled out or unreachable: nothing
 * to do. ASGD_ABSL_DEADLOCK_DETECTION=1 leaves it on (for debugging gRPC
 * lock order).
 */
static void absl_deadlock_detection_off(void)
{
    const char *keep = getenv("ASGD_ABSL_DEADLOCK_DETECTION");
    if (keep && strcmp(keep, "1") == 0)
        return;
    static const char *const names[] = {
        "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
        "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        if (sym) {
            void (*set_mode)(int);
            memcpy(&set_mode, &sym,
                   sizeof(set_mode)); /* object to function pointer, as POSIX allows */
            set_mode(0);              /* absl::OnDeadlockCycle::kIgnore */
            return;
        }
    }
}

static void set_backup_poll(void)
{
    setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 0);
    absl_deadlock_detection_off();
}

static void rpc_grpc_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_backup_poll);
    grpc_init();
}

static gpr_timespec ms_from_now(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Copies a byte buffer into one contiguous slice (caller unrefs). */
static grpc_slice buffer_to_slice(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    return s;
}

static void slice_to_cstr(grpc_slice s, char *buf, size_t size)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= size)
        n = size - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(s), n);
    buf[n] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

struct method_entry {
    char *name;
    size_t len;
    rpc_handler_fn fn;
    void *ctx;
};

enum srv_call_state { SC_REQUESTED, SC_RECEIVING, SC_FINISHING };

struct srv_call {
    struct rpc_server *srv;
    enum srv_call_state state;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array req_md;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    const struct method_entry *method;
    int cancelled;
};

enum srv_phase { SP_NEW, SP_RUNNING, SP_DONE };

/* One TLS listening address: gRPC asks fetch_tls() for a newer certificate before each
   handshake; gen is the tls_conf generation it was last given. */
struct srv_tls {
    struct tls_conf *tls;
    pthread_mutex_t mu;
    uint64_t gen; /* under mu */
    struct srv_tls *next;
};

struct rpc_server {
    struct rpc_server_opts opts;
    grpc_server *server;
    grpc_completion_queue *cq;
    struct method_entry *methods;
    size_t nmethods;
    int nbound;
    int active; /* srv_call records alive; touched by the serving thread only */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum srv_phase phase;   /* under mu */
    int shutdown_requested; /* under mu */
    int64_t cancel_at_ms;   /* under mu */
    int has_thread, joined;
    pthread_t thread;
    int grpc_ref;
    char shutdown_tag;
    char err[256];
    struct srv_tls *tls; /* TLS addresses; freed after grpc_server_destroy */
};

struct rpc_server *rpc_server_new(const struct rpc_server_opts *opts)
{
    struct rpc_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    if (opts)
        srv->opts = *opts;
    if (srv->opts.max_message == 0)
        srv->opts.max_message = RPC_DEFAULT_MAX_MESSAGE;
    if (srv->opts.preposted <= 0)
        srv->opts.preposted = 32;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    rpc_grpc_init();
    srv->grpc_ref = 1;

    int maxmsg =
        srv->opts.max_message > (size_t)0x7fffffff ? 0x7fffffff : (int)srv->opts.max_message;
    grpc_arg args[4];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = maxmsg;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = maxmsg;
    /* gRPC sets SO_REUSEPORT by default: a second agent on the same port would
     * then "bind" and steal half the connections. Refuse instead. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    /* a client opening thousands of streams on one connection queues them, it
     * does not grow our memory without bound */
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = (char *)GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[3].value.integer = 100;
    grpc_channel_args chargs = {4, args};
    srv->server = grpc_server_create(&chargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    if (!srv->server || !srv->cq) {
        rpc_server_free(srv);
        return NULL;
    }
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    srv->err[0] = '\0';
    return srv;
}

int rpc_server_add_method(struct rpc_server *srv, const char *method, rpc_handler_fn fn, void *ctx)
{
    if (!srv || !method || method[0] != '/' || !fn)
        return RPC_EINVAL;
    if (srv->phase != SP_NEW)
        return RPC_ESTATE;
    for (size_t i = 0; i < srv->nmethods; i++)
        if (strcmp(srv->methods[i].name, method) == 0)
            return RPC_EINVAL;
    struct method_entry *m = realloc(srv->methods, (srv->nmethods + 1) * sizeof(*m));
    if (!m)
        return RPC_ENOMEM;
    srv->methods = m;
    char *name = strdup(method);
    if (!name)
        return RPC_ENOMEM;
    m[srv->nmethods].name = name;
    m[srv->nmethods].len = strlen(name);
    m[srv->nmethods].fn = fn;
    m[srv->nmethods].ctx = ctx;
    srv->nmethods++;
    return 0;
}

/* Adds addr with creds (released here). */
static int bind_creds(struct rpc_server *srv, const char *addr, grpc_server_credentials *creds,
                      int *port)
{
    int p = grpc_server_add_http2_port(srv->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (p == 0) {
        snprintf(srv->err, sizeof(srv->err), "cannot listen on \"%s\" (in use or invalid)", addr);
        return RPC_EBIND;
    }
    srv->nbound++;
    if (port)
        *port = p;
    return 0;
}

int rpc_server_bind(struct rpc_server *srv, const char *addr, int *port)
{
    if (!srv || !addr || !addr[0])
        return RPC_EINVAL;
    if (srv->phase != SP_NEW)
        return RPC_ESTATE;
    return bind_creds(srv, addr, grpc_insecure_server_credentials_create(), port);
}

static grpc_ssl_certificate_config_reload_status fetch_tls(void *arg,
                                                           grpc_ssl_server_certificate_config **cfg)
{
    struct srv_tls *st = arg;
    grpc_ssl_certificate_config_reload_status rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    pthread_mutex_lock(&st->mu);
    if (tls_conf_generation(st->tls) != st->gen) {
        struct tls_pem pem = TLS_PEM_INIT;
        rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL; /* gRPC then keeps the previous one */
        if (tls_conf_pem(st->tls, &pem) == 0) {
            grpc_ssl_pem_key_cert_pair pair = {pem.key, pem.cert};
            /* copies the strings */
            *cfg = grpc_ssl_server_certificate_config_create(pem.ca, &pair, 1);
            if (*cfg) {
                if (st->gen)
                    log_info("rpc server: new TLS certificate in use");
                st->gen = pem.generation;
                rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
            }
        }
        tls_pem_release(&pem);
    }
    pthread_mutex_unlock(&st->mu);
    return rs;
}

int rpc_server_bind_tls(struct rpc_server *srv, const char *addr, struct tls_conf *tls, int *port)
{
    if (!srv || !addr || !addr[0] || !tls_conf_has_cert(tls))
        return RPC_EINVAL;
    if (srv->phase != SP_NEW)
        return RPC_ESTATE;
    struct srv_tls *st = calloc(1, sizeof(*st));
    if (!st)
        return RPC_ENOMEM;
    st->tls = tls;
    pthread_mutex_init(&st->mu, NULL);
    st->next = srv->tls;
    srv->tls = st; /* freed with the server whatever happens: gRPC may hold it */
    grpc_ssl_client_certificate_request_type req =
        tls_conf_has_ca(tls) ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch_tls, st);
    grpc_server_credentials *creds = o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
    if (!creds) { /* the first fetch failed: unusable material */
        snprintf(srv->err, sizeof(srv->err), "cannot use the TLS certificate for \"%s\"", addr);
        return RPC_EBIND;
    }
    return bind_creds(srv, addr, creds, port);
}

const char *rpc_server_errmsg(const struct rpc_server *srv)
{
    return srv ? srv->err : "no server";
}

static void srv_call_free(struct srv_call *sc)
{
    struct rpc_server *srv = sc->srv;
    if (sc->call)
        grpc_call_unref(sc->call);
    grpc_call_details_destroy(&sc->details);
    grpc_metadata_array_destroy(&sc->req_md);
    if (sc->recv_buf)
        grpc_byte_buffer_destroy(sc->recv_buf);
    if (sc->send_buf)
        grpc_byte_buffer_destroy(sc->send_buf);
    free(sc);
    srv->active--;
}

static int srv_shutting_down(struct rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int r = srv->shutdown_requested;
    pthread_mutex_unlock(&srv->mu);
    return r;
}

/* Posts one request slot. Returns 0 or -1 (logged). */
static int srv_request_one(struct rpc_server *srv)
{
    struct srv_call *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        log_error("rpc server: cannot allocate a call slot");
        return -1;
    }
    sc->srv = srv;
    sc->state = SC_REQUESTED;
    grpc_call_details_init(&sc->details);
    grpc_metadata_array_init(&sc->req_md);
    srv->active++;
    grpc_call_error e = grpc_server_request_call(srv->server, &sc->call, &sc->details, &sc->req_md,
                                                 srv->cq, srv->cq, sc);
    if (e != GRPC_CALL_OK) {
        log_error("rpc server: request_call failed (%d)", (int)e);
        srv_call_free(sc);
        return -1;
    }
    return 0;
}

static const struct method_entry *srv_find(struct rpc_server *srv, grpc_slice name)
{
    size_t n = GRPC_SLICE_LENGTH(name);
    const uint8_t *p = GRPC_SLICE_START_PTR(name);
    for (size_t i = 0; i < srv->nmethods; i++)
        if (srv->methods[i].len == n && memcmp(srv->methods[i].name, p, n) == 0)
            return &srv->methods[i];
    return NULL;
}

/* Final batch: optional message, status, close. Frees sc if it cannot start. */
static void srv_finish(struct srv_call *sc, grpc_status_code status, const char *details,
                       uint8_t *data, size_t len)
{
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (sc->state == SC_REQUESTED) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    if (status == GRPC_STATUS_OK) {
        grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
        sc->send_buf = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = sc->send_buf;
    }
    grpc_slice det = grpc_slice_from_copied_string(details ? details : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    ops[n++].data.send_status_from_server.status_details = (details && details[0]) ? &det : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &sc->cancelled;
    sc->state = SC_FINISHING;
    grpc_call_error e = grpc_call_start_batch(sc->call, ops, n, sc, NULL);
    grpc_slice_unref(det);
    if (e != GRPC_CALL_OK) {
        log_warn("rpc server: cannot answer call (%d)", (int)e);
        srv_call_free(sc);
    }
}

static void srv_dispatch(struct srv_call *sc)
{
    struct rpc_server *srv = sc->srv;
    grpc_slice body = grpc_empty_slice();
    if (!sc->recv_buf) {
        /* the client half-closed without a message (or it was rejected as too large) */
        srv_finish(sc, GRPC_STATUS_INVALID_ARGUMENT, "missing request message", NULL, 0);
        return;
    }
    body = buffer_to_slice(sc->recv_buf);
    char *peer = grpc_call_get_peer(sc->call);
    char method[256];
    slice_to_cstr(sc->details.method, method, sizeof(method));
    static const uint8_t empty[1];
    struct rpc_request req = {
        .method = method,
        .data = GRPC_SLICE_LENGTH(body) ? GRPC_SLICE_START_PTR(body) : empty,
        .len = GRPC_SLICE_LENGTH(body),
        .peer = peer ? peer : "",
    };
    struct rpc_reply reply;
    memset(&reply, 0, sizeof(reply));
    grpc_status_code st = sc->method->fn(sc->method->ctx, &req, &reply);
    if (peer)
        gpr_free(peer);
    grpc_slice_unref(body);
    if (st == GRPC_STATUS_OK && reply.len > srv->opts.max_message) {
        st = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(reply.details, sizeof(reply.details), "response too large");
    }
    reply.details[sizeof(reply.details) - 1] = '\0';
    srv_finish(sc, st, reply.details, reply.data, reply.len);
    free(reply.data);
}

static void srv_on_event(struct rpc_server *srv, struct srv_call *sc, int ok)
{
    switch (sc->state) {
    case SC_REQUESTED: {
        if (!ok) { /* server shutting down: the slot is returned unused */
            srv_call_free(sc);
            return;
        }
        if (!srv_shutting_down(srv))
            srv_request_one(srv);
        sc->method = srv_find(srv, sc->details.method);
        if (!sc->method) {
            char name[128];
            slice_to_cstr(sc->details.method, name, sizeof(name));
            log_debug("rpc server: unknown method \"%s\"", name);
            srv_finish(sc, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL, 0);
            return;
        }
        grpc_op ops[2];
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &sc->recv_buf;
        sc->state = SC_RECEIVING;
        if (grpc_call_start_batch(sc->call, ops, 2, sc, NULL) != GRPC_CALL_OK) {
            log_warn("rpc server: cannot start receiving a call");
            srv_call_free(sc);
        }
        return;
    }
    case SC_RECEIVING:
        if (!ok) { /* cancelled, deadline, broken connection, or too large */
            srv_call_free(sc);
            return;
        }
        srv_dispatch(sc);
        return;
    case SC_FINISHING:
        srv_call_free(sc);
        return;
    }
}

static void srv_loop(struct rpc_server *srv)
{
    int notified = 0, cancelled_all = 0, sd = 0;
    for (;;) {
        /* idle: wake once a second; shutting down: often enough to cancel on time */
        grpc_event ev = grpc_completion_queue_next(srv->cq, ms_from_now(sd ? 20 : 1000), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            if (ev.tag == &srv->shutdown_tag)
                notified = 1;
            else
                srv_on_event(srv, ev.tag, ev.success);
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        pthread_mutex_lock(&srv->mu);
        sd = srv->shutdown_requested;
        int64_t cancel_at = srv->cancel_at_ms;
        pthread_mutex_unlock(&srv->mu);
        if (sd && !cancelled_all && clk_mono_ms() >= cancel_at) {
            grpc_server_cancel_all_calls(srv->server);
            cancelled_all = 1;
        }
        if (notified && srv->active == 0)
            break;
    }
}

static int srv_begin(struct rpc_server *srv)
{
    if (!srv)
        return RPC_EINVAL;
    pthread_mutex_lock(&srv->mu);
    int bad = srv->phase != SP_NEW || srv->nbound == 0 || srv->shutdown_requested;
    if (!bad)
        srv->phase = SP_RUNNING;
    pthread_mutex_unlock(&srv->mu);
    if (bad) {
        snprintf(srv->err, sizeof(srv->err), "server already started or no address bound");
        return RPC_ESTATE;
    }
    grpc_server_start(srv->server);
    for (int i = 0; i < srv->opts.preposted; i++)
        if (srv_request_one(srv) != 0)
            break;
    if (srv->active == 0) {
        snprintf(srv->err, sizeof(srv->err), "cannot post any call slot");
        return RPC_EGRPC;
    }
    return 0;
}

static void srv_end(struct rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->phase = SP_DONE;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

static void *srv_thread(void *arg)
{
    struct rpc_server *srv = arg;
    srv_loop(srv);
    srv_end(srv);
    return NULL;
}

int rpc_server_start(struct rpc_server *srv)
{
    int rc = srv_begin(srv);
    if (rc)
        return rc;
    if (pthread_create(&srv->thread, NULL, srv_thread, srv) != 0) {
        snprintf(srv->err, sizeof(srv->err), "cannot create the serving thread");
        /* serve nothing: shut down synchronously on this thread */
        pthread_mutex_lock(&srv->mu);
        srv->shutdown_requested = 1;
        srv->cancel_at_ms = 0;
        pthread_mutex_unlock(&srv->mu);
        grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
        srv_loop(srv);
        srv_end(srv);
        return RPC_ENOMEM;
    }
    srv->has_thread = 1;
    return 0;
}

int rpc_server_run(struct rpc_server *srv)
{
    int rc = srv_begin(srv);
    if (rc)
        return rc;
    srv_loop(srv);
    srv_end(srv);
    return 0;
}

void rpc_server_shutdown(struct rpc_server *srv, int grace_ms)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->mu);
    if (srv->phase == SP_NEW) {
        srv->shutdown_requested = 1;
        pthread_mutex_unlock(&srv->mu);
        return;
    }
    if (!srv->shutdown_requested && srv->phase == SP_RUNNING) {
        srv->shutdown_requested = 1;
        srv->cancel_at_ms = clk_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
        grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    }
    while (srv->phase != SP_DONE)
        pthread_cond_wait(&srv->cv, &srv->mu);
    int join = srv->has_thread && !srv->joined;
    srv->joined = 1;
    pthread_mutex_unlock(&srv->mu);
    if (join)
        pthread_join(srv->thread, NULL);
}

void rpc_server_free(struct rpc_server *srv)
{
    if (!srv)
        return;
    rpc_server_shutdown(srv, 0);
    if (srv->server)
        grpc_server_destroy(srv->server);
    if (srv->cq) {
        grpc_completion_queue_shutdown(srv->cq);
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
        }
        grpc_completion_queue_destroy(srv->cq);
    }
    for (size_t i = 0; i < srv->nmethods; i++)
        free(srv->methods[i].name);
    free(srv->methods);
    while (srv->tls) {
        struct srv_tls *st = srv->tls;
        srv->tls = st->next;
        pthread_mutex_destroy(&st->mu);
        free(st);
    }
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    if (srv->grpc_ref)
        grpc_shutdown();
    free(srv);
}

/* ------------------------------------------------------------------------ */
/* Client                                                                   */
/* ------------------------------------------------------------------------ */

struct cl_call {
    struct cl_call *prev, *next;
    grpc_call *call;
    rpc_done_fn cb;
    void *arg;
    grpc_byte_buffer *send_buf;
    grpc_byte_buffer *recv_buf;
    grpc_metadata_array init_md;
    grpc_metadata_array trail_md;
    grpc_status_code status;
    grpc_slice details;
};

/* Methods registered with gRPC per channel: a registered call reuses gRPC's prepared :path
   instead of building it for every call (a poller calls the same one to three methods). */
#define RPC_REGISTERED_MAX 4

struct rpc_channel {
    struct rpc_client *cl;
    struct rpc_channel *prev, *next;
    grpc_channel *ch;
    char *target;
    char *reg_method[RPC_REGISTERED_MAX]; /* under cl->mu; malloc'd */
    void *reg_handle[RPC_REGISTERED_MAX];
};

/* gRPC's registered-call handle of method on ch, registering it on first use; NULL when the
   table is full or out of memory (the caller then makes an unregistered call). cl->mu held. */
static void *registered(struct rpc_channel *ch, const char *method)
{
    for (int i = 0; i < RPC_REGISTERED_MAX; i++) {
        if (!ch->reg_method[i]) {
            char *m = strdup(method);
            if (!m)
                return NULL;
            void *h = grpc_channel_register_call(ch->ch, m, NULL, NULL);
            if (!h) {
                free(m);
                return NULL;
            }
            ch->reg_method[i] = m;
            ch->reg_handle[i] = h;
            return h;
        }
        if (strcmp(ch->reg_method[i], method) == 0)
            return ch->reg_handle[i];
    }
    return NULL;
}

struct rpc_client {
    struct rpc_client_opts opts;
    grpc_completion_queue *cq;
    grpc_arg args[16];
    grpc_channel_args chargs;
    pthread_mutex_t mu;
    struct cl_call *calls;        /* under mu */
    struct rpc_channel *channels; /* under mu */
    int inflight;                 /* under mu */
    int shutdown;                 /* under mu */
    int drained;
    grpc_channel_credentials *creds; /* TLS: built from opts.tls at creds_gen; under mu */
    uint64_t creds_gen;
};

static void set_int_arg(grpc_arg *a, const char *key, int v)
{
    a->type = GRPC_ARG_INTEGER;
    a->key = (char *)key;
    a->value.integer = v;
}

struct rpc_client *rpc_client_new(const struct rpc_client_opts *opts)
{
    struct rpc_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    if (opts)
        cl->opts = *opts;
    if (cl->opts.reconnect_initial_ms <= 0)
        cl->opts.reconnect_initial_ms = 200;
    if (cl->opts.reconnect_min_ms <= 0)
        cl->opts.reconnect_min_ms = 200;
    if (cl->opts.reconnect_max_ms <= 0)
        cl->opts.reconnect_max_ms = 1000;
    if (cl->opts.max_message == 0)
        cl->opts.max_message = RPC_DEFAULT_MAX_MESSAGE;
    int maxmsg = cl->opts.max_message > (size_t)0x7fffffff ? 0x7fffffff : (int)cl->opts.max_message;
    size_t n = 0;
    set_int_arg(&cl->args[n++], GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                cl->opts.reconnect_initial_ms);
    set_int_arg(&cl->args[n++], GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, cl->opts.reconnect_min_ms);
    set_int_arg(&cl->args[n++], GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, cl->opts.reconnect_max_ms);
    set_int_arg(&cl->args[n++], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, maxmsg);
    set_int_arg(&cl->args[n++], GRPC_ARG_ENABLE_RETRIES, 0);
    if (cl->opts.own_connection)
        set_int_arg(&cl->args[n++], GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    /* Thousands of channels each carrying a few hundred bytes a second: gRPC's defaults are
       sized for one busy channel. No channelz node and trace per channel (CPU on every call,
       memory per channel), no BDP pings (a ping per burst of data, and the flow-control window
       they grow), a 16 KiB stream window and small TCP read chunks (gRPC reads into 8 KiB..64
       KiB slices per connection by default). */
    set_int_arg(&cl->args[n++], GRPC_ARG_ENABLE_CHANNELZ, 0);
    set_int_arg(&cl->args[n++], GRPC_ARG_MAX_CHANNEL_TRACE_EVENT_MEMORY_PER_NODE, 0);
    set_int_arg(&cl->args[n++], GRPC_ARG_HTTP2_BDP_PROBE, 0);
    set_int_arg(&cl->args[n++], GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16384);
    set_int_arg(&cl->args[n++], GRPC_ARG_TCP_READ_CHUNK_SIZE, 2048);
    set_int_arg(&cl->args[n++], GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 1024);
    set_int_arg(&cl->args[n++], GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 16384);
    set_int_arg(&cl->args[n++], GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, 4096);
    const char *override = tls_conf_server_name(cl->opts.tls);
    if (override) { /* the name checked in every server's certificate */
        cl->args[n].type = GRPC_ARG_STRING;
        cl->args[n].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        cl->args[n++].value.string = (char *) override;
    }
    cl->chargs.num_args = n;
    cl->chargs.args = cl->args;
    pthread_mutex_init(&cl->mu, NULL);
    rpc_grpc_init();
    cl->cq = grpc_completion_queue_create_for_next(NULL);
    if (!cl->cq) {
        pthread_mutex_destroy(&cl->mu);
        grpc_shutdown();
        free(cl);
        return NULL;
    }
    return cl;
}

/*
 * The credentials of a new channel, borrowed (cl->mu held; the channel takes its own
 * reference): plaintext, or TLS from the client's tls_conf, rebuilt when it was reloaded.
 * One object serves every channel made between two reloads. NULL when the material cannot
 * be copied.
 */
static grpc_channel_credentials *channel_creds(struct rpc_client *cl)
{
    if (!cl->opts.tls) {
        if (!cl->creds)
            cl->creds = grpc_insecure_credentials_create();
        return cl->creds;
    }
    if (!cl->creds || tls_conf_generation(cl->opts.tls) != cl->creds_gen) {
        struct tls_pem pem = TLS_PEM_INIT;
        if (tls_conf_pem(cl->opts.tls, &pem) == 0) {
            grpc_ssl_pem_key_cert_pair pair = {pem.key, pem.cert};
            /* copies the strings; NULL roots: gRPC's default roots */
            grpc_channel_credentials *c =
                grpc_ssl_credentials_create_ex(pem.ca, pem.cert ? &pair : NULL, NULL, NULL);
            if (c) {
                if (cl->creds)
                    grpc_channel_credentials_release(cl->creds);
                cl->creds = c;
                cl->creds_gen = pem.generation;
            }
        }
        tls_pem_release(&pem);
    }
    return cl->creds;
}

struct rpc_channel *rpc_channel_new(struct rpc_client *cl, const char *target)
{
    if (!cl || !target || !target[0])
        return NULL;
    struct rpc_channel *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->cl = cl;
    ch->target = strdup(target);
    pthread_mutex_lock(&cl->mu);
    grpc_channel_credentials *creds = channel_creds(cl);
    ch->ch = ch->target && creds ? grpc_channel_create(target, creds, &cl->chargs) : NULL;
    pthread_mutex_unlock(&cl->mu);
    if (!ch->ch) {
        free(ch->target);
        free(ch);
        return NULL;
    }
    pthread_mutex_lock(&cl->mu);
    ch->next = cl->channels;
    if (cl->channels)
        cl->channels->prev = ch;
    cl->channels = ch;
    pthread_mutex_unlock(&cl->mu);
    return ch;
}

const char *rpc_channel_target(const struct rpc_channel *ch)
{
    return ch ? ch->target : "";
}

void rpc_channel_free(struct rpc_channel *ch)
{
    if (!ch)
        return;
    struct rpc_client *cl = ch->cl;
    pthread_mutex_lock(&cl->mu);
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        cl->channels = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    pthread_mutex_unlock(&cl->mu);
    /* calls hold their own reference on the channel stack: they run on */
    grpc_channel_destroy(ch->ch);
    for (int i = 0; i < RPC_REGISTERED_MAX; i++)
        free(ch->reg_method[i]);
    free(ch->target);
    free(ch);
}

static void cl_call_free(struct cl_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    if (c->send_buf)
        grpc_byte_buffer_destroy(c->send_buf);
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    grpc_metadata_array_destroy(&c->init_md);
    grpc_metadata_array_destroy(&c->trail_md);
    grpc_slice_unref(c->details);
    free(c);
}

static void cl_unlink(struct rpc_client *cl, struct cl_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        cl->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

int rpc_client_call(struct rpc_client *cl, struct rpc_channel *ch, const char *method,
                    const uint8_t *req, size_t len, int deadline_ms, rpc_done_fn cb, void *arg)
{
    if (!cl || !ch || !method || method[0] != '/' || (!req && len) || deadline_ms <= 0 || !cb)
        return RPC_EINVAL;
    if (len > cl->opts.max_message)
        return RPC_ETOOBIG;
    struct cl_call *c = calloc(1, sizeof(*c));
    if (!c)
        return RPC_ENOMEM;
    c->cb = cb;
    c->arg = arg;
    c->status = GRPC_STATUS_UNKNOWN;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->init_md);
    grpc_metadata_array_init(&c->trail_md);

    pthread_mutex_lock(&cl->mu);
    if (cl->shutdown) {
        pthread_mutex_unlock(&cl->mu);
        cl_call_free(c);
        return RPC_ESHUTDOWN;
    }
    void *reg = registered(ch, method);
    if (reg) {
        c->call = grpc_channel_create_registered_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cl->cq,
                                                      reg, ms_from_now(deadline_ms), NULL);
    } else {
        grpc_slice msl = grpc_slice_from_copied_string(method);
        c->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cl->cq, msl, NULL,
                                           ms_from_now(deadline_ms), NULL);
        grpc_slice_unref(msl);
    }
    if (!c->call) {
        pthread_mutex_unlock(&cl->mu);
        cl_call_free(c);
        return RPC_EGRPC;
    }
    grpc_slice body = grpc_slice_from_copied_buffer((const char *)req, len);
    c->send_buf = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send_buf;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv_buf;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trail_md;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    /* linked before the batch starts: the poller may complete it at once */
    c->next = cl->calls;
    if (cl->calls)
        cl->calls->prev = c;
    cl->calls = c;
    cl->inflight++;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, 6, c, NULL);
    if (e != GRPC_CALL_OK) {
        cl_unlink(cl, c);
        cl->inflight--;
        pthread_mutex_unlock(&cl->mu);
        cl_call_free(c);
        return RPC_EGRPC;
    }
    pthread_mutex_unlock(&cl->mu);
    return 0;
}

/*
 * gRPC reports a failed TLS handshake as "failed to connect to all addresses; last error:
 * UNKNOWN: ipv4:127.0.0.1:5001: Ssl handshake failed: SSL_ERROR_SSL: error:0A000086:SSL
 * routines::certificate verify failed": too long for a log line's reason, with OpenSSL's
 * reason (what the operator needs) at the very end. Keep that part.
 */
static void shorten_tls_details(char *details, size_t size)
{
    const char *hs = strstr(details, "Ssl handshake failed");
    if (!hs)
        return;
    const char *why = strstr(hs, "routines::");
    why = why ? why + strlen("routines::") : hs + strlen("Ssl handshake failed");
    while (*why == ':' || *why == ' ')
        why++;
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "TLS handshake failed%s%s", *why ? ": " : "", why);
    snprintf(details, size, "%s", tmp);
}

static void cl_complete(struct rpc_client *cl, struct cl_call *c, int ok)
{
    pthread_mutex_lock(&cl->mu);
    cl_unlink(cl, c);
    cl->inflight--;
    pthread_mutex_unlock(&cl->mu);

    char details[256];
    grpc_status_code st = c->status;
    if (!ok) {
        st = GRPC_STATUS_INTERNAL;
        snprintf(details, sizeof(details), "call failed");
    } else {
        slice_to_cstr(c->details, details, sizeof(details));
        if (cl->opts.tls)
            shorten_tls_details(details, sizeof(details));
    }
    if (st == GRPC_STATUS_OK && c->recv_buf) {
        grpc_slice s = buffer_to_slice(c->recv_buf);
        static const uint8_t empty[1];
        size_t n = GRPC_SLICE_LENGTH(s);
        c->cb(c->arg, st, details, n ? GRPC_SLICE_START_PTR(s) : empty, n);
        grpc_slice_unref(s);
    } else {
        if (st == GRPC_STATUS_OK) { /* OK without a message breaks the unary contract */
            st = GRPC_STATUS_INTERNAL;
            snprintf(details, sizeof(details), "no response message");
        }
        c->cb(c->arg, st, details, NULL, 0);
    }
    cl_call_free(c);
}

int rpc_client_poll(struct rpc_client *cl, int timeout_ms)
{
    if (!cl)
        return RPC_EINVAL;
    if (cl->drained)
        return RPC_ESHUTDOWN;
    int fired = 0;
    gpr_timespec dl = timeout_ms > 0 ? ms_from_now(timeout_ms) : gpr_inf_past(GPR_CLOCK_MONOTONIC);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cl->cq, dl, NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        cl_complete(cl, ev.tag, ev.success);
        fired++;
        dl = gpr_inf_past(GPR_CLOCK_MONOTONIC);
    }
    return fired;
}

int rpc_client_inflight(const struct rpc_client *cl)
{
    if (!cl)
        return 0;
    pthread_mutex_t *mu = (pthread_mutex_t *)&cl->mu;
    pthread_mutex_lock(mu);
    int n = cl->inflight;
    pthread_mutex_unlock(mu);
    return n;
}

void rpc_client_shutdown(struct rpc_client *cl)
{
    if (!cl || cl->drained)
        return;
    pthread_mutex_lock(&cl->mu);
    cl->shutdown = 1;
    for (struct cl_call *c = cl->calls; c; c = c->next)
        grpc_call_cancel(c->call, NULL);
    pthread_mutex_unlock(&cl->mu);
    while (rpc_client_inflight(cl) > 0)
        rpc_client_poll(cl, 100);
    grpc_completion_queue_shutdown(cl->cq);
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(cl->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    cl->drained = 1;
}

void rpc_client_free(struct rpc_client *cl)
{
    if (!cl)
        return;
    rpc_client_shutdown(cl);
    while (cl->channels)
        rpc_channel_free(cl->channels);
    grpc_completion_queue_destroy(cl->cq);
    if (cl->creds)
        grpc_channel_credentials_release(cl->creds);
    pthread_mutex_destroy(&cl->mu);
    grpc_shutdown();
    free(cl);
}

/* ------------------------------------------------------------------------ */
/* Blocking helper                                                          */
/* ------------------------------------------------------------------------ */

void rpc_result_release(struct rpc_result *res)
{
    if (!res)
        return;
    free(res->data);
    struct rpc_result init = RPC_RESULT_INIT;
    *res = init;
}

struct sync_state {
    struct rpc_result *out;
    int done;
    int nomem;
};

static void sync_done(void *arg, grpc_status_code status, const char *details, const uint8_t *data,
                      size_t len)
{
    struct sync_state *s = arg;
    s->done = 1;
    s->out->status = status;
    snprintf(s->out->details, sizeof(s->out->details), "%s", details);
    if (data) {
        s->out->data = malloc(len ? len : 1);
        if (!s->out->data) {
            s->nomem = 1;
            return;
        }
        memcpy(s->out->data, data, len);
        s->out->len = len;
    }
}

int rpc_call_sync(const char *target, const char *method, const uint8_t *req, size_t len,
                  int deadline_ms, struct rpc_result *out)
{
    return rpc_call_sync_tls(target, NULL, method, req, len, deadline_ms, out);
}

int rpc_call_sync_tls(const char *target, struct tls_conf *tls, const char *method,
                      const uint8_t *req, size_t len, int deadline_ms, struct rpc_result *out)
{
    if (!target || !method || !out || deadline_ms <= 0)
        return RPC_EINVAL;
    struct rpc_result init = RPC_RESULT_INIT;
    *out = init;
    struct rpc_client_opts o = RPC_CLIENT_OPTS_INIT;
    o.own_connection = 1;
    o.tls = tls;
    struct rpc_client *cl = rpc_client_new(&o);
    if (!cl)
        return RPC_ENOMEM;
    int rc = 0;
    struct rpc_channel *ch = rpc_channel_new(cl, target);
    if (!ch) {
        rc = RPC_EINVAL;
        goto out;
    }
    struct sync_state st = {out, 0, 0};
    rc = rpc_client_call(cl, ch, method, req, len, deadline_ms, sync_done, &st);
    if (rc)
        goto out;
    while (!st.done)
        rpc_client_poll(cl, 1000);
    if (st.nomem) {
        rpc_result_release(out);
        rc = RPC_ENOMEM;
    }
out:
    rpc_client_free(cl);
    return rc;
}
