/*
 * rpc_server.c - the unary gRPC server of rpc.h (see rpc_int.h).
 *
 * The server keeps `preposted` grpc_server_request_call()s outstanding and
 * re-posts one each time a call arrives, so bursts never wait for a request
 * slot. A known method takes two batches (initial metadata + receive, then
 * message + status + close); an unknown one takes a single batch that answers
 * UNIMPLEMENTED without reading the request. Everything runs on one serving
 * thread draining one completion queue, which is why handlers must be quick.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "common/clock.h"
#include "common/log.h"
#include "rpc/rpc_int.h"
#include "tls/tls.h"

#include "common/banned.h"

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
    rpc__grpc_init();
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
    if (!sc->recv_buf) {
        /* the client half-closed without a message (or it was rejected as too large) */
        srv_finish(sc, GRPC_STATUS_INVALID_ARGUMENT, "missing request message", NULL, 0);
        return;
    }
    grpc_slice body = buffer_to_slice(sc->recv_buf);
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
