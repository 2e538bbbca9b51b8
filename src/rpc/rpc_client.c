/*
 * rpc_client.c - the asynchronous unary gRPC client of rpc.h (see
 * rpc_int.h), and the blocking helper on top of it.
 *
 * The client puts every call of every channel on one completion queue; each
 * call is a single batch of the six unary ops, whose tag is the call record.
 * Records sit on a list so that shutdown can cancel them and still fire each
 * callback exactly once (libuv's rule: a started request always completes).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "rpc/rpc_int.h"
#include "tls/tls.h"

#include "common/banned.h"

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
    rpc__grpc_init();
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
