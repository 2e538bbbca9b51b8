/*
 * service.c - the MonitorC service and the state it answers from.
 *
 * MonitorS polls every agent every few seconds and the seed's clients open a
 * new connection per call, so a handler must answer in microseconds: it takes
 * the state mutex, copies a few numbers and packs a small message. The values
 * come from the sampler thread (load) and the health thread (application);
 * neither ever runs inside a handler.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "monitor.pb-c.h"
#include "rpc/rpc.h"
#include "common/banned.h"

struct agent_state {
    pthread_mutex_t mu;
    char *instance_id;
    int64_t started_ms;
    struct agent_sample sample; /* under mu */
    int app_healthy;            /* under mu */
    int draining;               /* under mu */
    int64_t last_poll_ms;       /* under mu */
    struct agent_drain *drain;  /* set before serving; NULL: no --on-terminate */
};

struct agent_state *agent_state_new(const char *instance_id)
{
    struct agent_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->instance_id = strdup(instance_id ? instance_id : "");
    if (!st->instance_id) {
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->started_ms = clk_mono_ms();
    st->app_healthy = 1;
    st->sample.cpu_load = st->sample.mem_used_pct = st->sample.load1 = -1;
    snprintf(st->sample.error, sizeof(st->sample.error), "no sample yet");
    return st;
}

void agent_state_free(struct agent_state *st)
{
    if (!st)
        return;
    pthread_mutex_destroy(&st->mu);
    free(st->instance_id);
    free(st);
}

const char *agent_state_instance_id(const struct agent_state *st)
{
    return st->instance_id;
}

void agent_state_set_sample(struct agent_state *st, const struct agent_sample *s)
{
    pthread_mutex_lock(&st->mu);
    st->sample = *s;
    pthread_mutex_unlock(&st->mu);
}

void agent_state_get_sample(struct agent_state *st, struct agent_sample *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->sample;
    pthread_mutex_unlock(&st->mu);
}

void agent_state_set_app_healthy(struct agent_state *st, int healthy)
{
    pthread_mutex_lock(&st->mu);
    st->app_healthy = healthy;
    pthread_mutex_unlock(&st->mu);
}

int agent_state_app_healthy(struct agent_state *st)
{
    pthread_mutex_lock(&st->mu);
    int h = st->app_healthy;
    pthread_mutex_unlock(&st->mu);
    return h;
}

void agent_state_set_draining(struct agent_state *st, int draining)
{
    pthread_mutex_lock(&st->mu);
    st->draining = draining;
    pthread_mutex_unlock(&st->mu);
}

void agent_state_set_drain(struct agent_state *st, struct agent_drain *d)
{
    st->drain = d;
}

int64_t agent_state_last_poll_ms(struct agent_state *st)
{
    pthread_mutex_lock(&st->mu);
    int64_t t = st->last_poll_ms;
    pthread_mutex_unlock(&st->mu);
    return t;
}

static void polled(struct agent_state *st)
{
    int64_t now = clk_mono_ms();
    pthread_mutex_lock(&st->mu);
    int64_t since = st->last_poll_ms ? now - st->last_poll_ms : -1;
    st->last_poll_ms = now;
    pthread_mutex_unlock(&st->mu);
    /* --log-level debug: one line per poll, so the poll rate can be read at the agent */
    log_debug("polled (%lld ms since the previous poll)", (long long)since);
}

static grpc_status_code reply_with(struct rpc_reply *reply, const ProtobufCMessage *m)
{
    if (rpc_reply_pack(reply, m)) {
        snprintf(reply->details, sizeof(reply->details), "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    return GRPC_STATUS_OK;
}

static grpc_status_code bad_request(struct rpc_reply *reply, const char *what)
{
    snprintf(reply->details, sizeof(reply->details), "malformed %s", what);
    return GRPC_STATUS_INVALID_ARGUMENT;
}

static grpc_status_code h_get_status(void *ctx, const struct rpc_request *req,
                                     struct rpc_reply *reply)
{
    struct agent_state *st = ctx;
    Request *in = request__unpack(NULL, req->len, req->data);
    if (!in)
        return bad_request(reply, "Request");
    request__free_unpacked(in, NULL);
    polled(st);
    StatusResponse out = STATUS_RESPONSE__INIT;
    out.status = agent_state_app_healthy(st) ? "OK" : "NOT OK";
    return reply_with(reply, &out.base);
}

static grpc_status_code h_get_memory_usage(void *ctx, const struct rpc_request *req,
                                           struct rpc_reply *reply)
{
    struct agent_state *st = ctx;
    Request *in = request__unpack(NULL, req->len, req->data);
    if (!in)
        return bad_request(reply, "Request");
    request__free_unpacked(in, NULL);
    polled(st);
    struct agent_sample s;
    agent_state_get_sample(st, &s);
    if (!s.valid) {
        snprintf(reply->details, sizeof(reply->details), "load unavailable: %.140s", s.error);
        return GRPC_STATUS_UNAVAILABLE;
    }
    MemoryUsageResponse out = MEMORY_USAGE_RESPONSE__INIT;
    long v = lround(s.load);
    out.usage = (int32_t)(v < 0 ? 0 : v > 100 ? 100 : v);
    return reply_with(reply, &out.base);
}

static grpc_status_code h_ping(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    struct agent_state *st = ctx;
    PingRequest *in = ping_request__unpack(NULL, req->len, req->data);
    if (!in)
        return bad_request(reply, "PingRequest");
    polled(st);
    Pong out = PONG__INIT;
    out.seq = in->seq;
    out.instance_id = st->instance_id;
    out.uptime_ms = clk_mono_ms() - st->started_ms;
    ping_request__free_unpacked(in, NULL);
    return reply_with(reply, &out.base);
}

static grpc_status_code h_get_metrics(void *ctx, const struct rpc_request *req,
                                      struct rpc_reply *reply)
{
    struct agent_state *st = ctx;
    MetricsRequest *in = metrics_request__unpack(NULL, req->len, req->data);
    if (!in)
        return bad_request(reply, "MetricsRequest");
    metrics_request__free_unpacked(in, NULL);
    polled(st);
    pthread_mutex_lock(&st->mu);
    struct agent_sample s = st->sample;
    int healthy = st->app_healthy, draining = st->draining;
    pthread_mutex_unlock(&st->mu);
    Metrics out = METRICS__INIT;
    out.instance_id = st->instance_id;
    out.cpu_load = s.valid ? s.load : -1;
    out.mem_used_pct = s.mem_used_pct;
    out.load1 = s.load1;
    out.app_healthy = healthy;
    out.draining = draining;
    out.sampled_at_ms = s.sampled_at_ms;
    return reply_with(reply, &out.base);
}

/* asgd's controller: the instance's lifecycle state, answered with the drain's progress. */
static grpc_status_code h_lifecycle(void *ctx, const struct rpc_request *req,
                                    struct rpc_reply *reply)
{
    static const char *const names[] = {"none", "running", "done", "failed"};
    struct agent_state *st = ctx;
    LifecycleRequest *in = lifecycle_request__unpack(NULL, req->len, req->data);
    if (!in)
        return bad_request(reply, "LifecycleRequest");
    int leaving = in->state && strcmp(in->state, "terminating:wait") == 0;
    lifecycle_request__free_unpacked(in, NULL);
    if (leaving) {
        int was;
        pthread_mutex_lock(&st->mu);
        was = st->draining;
        st->draining = 1; /* from now on its load is not counted (MonitorS) */
        pthread_mutex_unlock(&st->mu);
        if (!was)
            log_info("asgd: this instance is in terminating:wait: draining");
        if (st->drain)
            agent_drain_start(st->drain);
    }
    char detail[160] = "";
    int ds = st->drain ? agent_drain_state(st->drain, detail, sizeof(detail)) : AGENT_DRAIN_NONE;
    LifecycleReply out = LIFECYCLE_REPLY__INIT;
    out.drain = (char *)names[ds];
    out.detail = detail;
    out.pid = (int32_t)getpid();
    out.instance_id = st->instance_id;
    return reply_with(reply, &out.base);
}

int agent_service_register(struct rpc_server *srv, struct agent_state *st)
{
    static const struct {
        const char *name;
        rpc_handler_fn fn;
    } methods[] = {
        {"/MonitorC/GetStatus", h_get_status},
        {"/MonitorC/GetMemoryUsage", h_get_memory_usage},
        {"/MonitorC/Ping", h_ping},
        {"/MonitorC/GetMetrics", h_get_metrics},
        {"/MonitorC/Lifecycle", h_lifecycle},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int rc = rpc_server_add_method(srv, methods[i].name, methods[i].fn, st);
        if (rc)
            return rc;
    }
    return 0;
}
