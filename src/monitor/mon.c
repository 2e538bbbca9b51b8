/*
 * mon.c - the monitor's life cycle and its MonitorS server.
 *
 * mon_new() validates and copies the settings and creates the poller (so
 * that tests can drive mon_poll_once() without threads); mon_start() raises
 * the file-descriptor limit, serves MonitorS through rpc.h's unary server
 * (handlers run one at a time on the server's thread) and starts the poller
 * thread. The handlers only decode, call the registry and encode: a request
 * that does not decode is answered INVALID_ARGUMENT and changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"
#include "fleet/fleet.h"
#include "monitor/mon-int.h"
#include "rpc/rpc.h"

#include "common/banned.h"

/* fds beyond one per instance: server connections from registering agents, logs, sqlite, http */
#define FD_HEADROOM 256

void mon_settings_init(struct mon_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->listen = "127.0.0.1:50052";
    s->token = NULL;
    s->accept_unknown = 0;
    s->interval_ms = 2000;
    s->timeout_ms = 1000;
    s->rise = 2;
    s->fall = 3;
    s->max_inflight = 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int mon_new(const struct mon_settings *s, struct fleet *f, struct mon **out, char *err,
            size_t errlen)
{
    if (!s || !f || !out) {
        seterr(err, errlen, "monitor: missing settings or fleet table");
        return MON_EINVAL;
    }
    if (s->interval_ms < 10 || s->interval_ms > 3600 * 1000) {
        seterr(err, errlen, "monitor: poll interval %lld ms out of range (10 ms .. 1 h)",
               (long long)s->interval_ms);
        return MON_EINVAL;
    }
    if (s->timeout_ms < 1) {
        seterr(err, errlen, "monitor: poll timeout must be positive");
        return MON_EINVAL;
    }
    if (s->rise < 1 || s->fall < 1 || s->rise > 1000 || s->fall > 1000) {
        seterr(err, errlen, "monitor: healthy/unhealthy thresholds must be 1..1000");
        return MON_EINVAL;
    }
    if (s->listen && s->listen[0] && strlen(s->listen) > 255) {
        seterr(err, errlen, "monitor: listen address too long");
        return MON_EINVAL;
    }
    struct mon *m = calloc(1, sizeof(*m));
    if (!m)
        goto nomem;
    m->listen = strdup(s->listen ? s->listen : "");
    m->token = strdup(s->token ? s->token : "");
    if (!m->listen || !m->token)
        goto nomem;
    m->accept_unknown = s->accept_unknown != 0;
    m->interval_ms = s->interval_ms;
    /* a poll must end before the next one is due */
    m->timeout_ms = s->timeout_ms < s->interval_ms ? s->timeout_ms : s->interval_ms;
    m->rise = s->rise;
    m->fall = s->fall;
    m->max_inflight = s->max_inflight;
    m->fleet = f;
    atomic_init(&m->stop, 0);
    atomic_init(&m->rescan, 1);
    if (mon__poller_new(m, &m->poller))
        goto nomem;
    *out = m;
    return MON_OK;
nomem:
    if (m) {
        free(m->listen);
        free(m->token);
        free(m);
    }
    seterr(err, errlen, "monitor: out of memory");
    return MON_ENOMEM;
}

static void raise_nofile(struct mon *m)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("cannot raise the open file limit from %llu to %llu: %s",
                     (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    rlim_t need = (rlim_t)fleet_capacity(m->fleet) + FD_HEADROOM;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("open file limit %llu is below the %llu a full fleet table of %u instances "
                 "needs: raise it (ulimit -n, LimitNOFILE=)",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need,
                 fleet_capacity(m->fleet));
}

/* --- MonitorS handlers ---------------------------------------------------------------- */

static grpc_status_code h_register(void *ctx, const struct rpc_request *req,
                                   struct rpc_reply *reply)
{
    struct mon *m = ctx;
    RegisterRequest *rq = register_request__unpack(NULL, req->len, req->data);
    if (!rq) {
        snprintf(reply->details, sizeof(reply->details), "malformed RegisterRequest");
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    RegisterReply rp = REGISTER_REPLY__INIT;
    char msg[128];
    mon__register(m, rq, &rp, msg, sizeof(msg));
    register_request__free_unpacked(rq, NULL);
    if (rpc_reply_pack(reply, &rp.base)) {
        snprintf(reply->details, sizeof(reply->details), "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    return GRPC_STATUS_OK;
}

static grpc_status_code h_deregister(void *ctx, const struct rpc_request *req,
                                     struct rpc_reply *reply)
{
    struct mon *m = ctx;
    DeregisterRequest *rq = deregister_request__unpack(NULL, req->len, req->data);
    if (!rq) {
        snprintf(reply->details, sizeof(reply->details), "malformed DeregisterRequest");
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    DeregisterReply rp = DEREGISTER_REPLY__INIT;
    mon__deregister(m, rq, &rp);
    deregister_request__free_unpacked(rq, NULL);
    if (rpc_reply_pack(reply, &rp.base)) {
        snprintf(reply->details, sizeof(reply->details), "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    return GRPC_STATUS_OK;
}

int mon__server_start(struct mon *m)
{
    struct rpc_server_opts o = RPC_SERVER_OPTS_INIT;
    o.max_message = 4096; /* a RegisterRequest is a few hundred bytes */
    struct rpc_server *srv = rpc_server_new(&o);
    if (!srv) {
        snprintf(m->errmsg, sizeof(m->errmsg), "monitor: out of memory");
        return MON_ENOMEM;
    }
    int rc = rpc_server_add_method(srv, "/MonitorS/Register", h_register, m);
    if (!rc)
        rc = rpc_server_add_method(srv, "/MonitorS/Deregister", h_deregister, m);
    if (rc) {
        snprintf(m->errmsg, sizeof(m->errmsg), "monitor: cannot set up MonitorS: %s",
                 rpc_strerror(rc));
        rpc_server_free(srv);
        return MON_ENOMEM;
    }
    rc = rpc_server_bind(srv, m->listen, &m->port);
    if (rc) {
        snprintf(m->errmsg, sizeof(m->errmsg), "monitor: cannot listen on \"%s\": %s", m->listen,
                 rpc_server_errmsg(srv));
        rpc_server_free(srv);
        return MON_ELISTEN;
    }
    rc = rpc_server_start(srv);
    if (rc) {
        snprintf(m->errmsg, sizeof(m->errmsg), "monitor: cannot start MonitorS: %s",
                 rpc_strerror(rc));
        rpc_server_free(srv);
        m->port = 0;
        return MON_ESYS;
    }
    m->server = srv;
    return MON_OK;
}

void mon__server_stop(struct mon *m)
{
    if (!m->server)
        return;
    rpc_server_shutdown(m->server, 200);
    rpc_server_free(m->server);
    m->server = NULL;
    m->port = 0;
}

int mon_start(struct mon *m)
{
    if (!m)
        return MON_EINVAL;
    if (m->thread_running || m->server) {
        snprintf(m->errmsg, sizeof(m->errmsg), "monitor: already started");
        return MON_ESTATE;
    }
    raise_nofile(m);
    if (!m->token[0] && m->listen[0])
        log_warn("monitor has no token: registrations on \"%s\" are not authenticated", m->listen);
    if (m->listen[0]) {
        int rc = mon__server_start(m);
        if (rc)
            return rc;
    }
    atomic_store(&m->stop, 0);
    int rc = pthread_create(&m->thread, NULL, mon__poller_thread, m);
    if (rc) {
        snprintf(m->errmsg, sizeof(m->errmsg), "monitor: cannot start the poller thread: %s",
                 strerror(rc));
        mon__server_stop(m);
        return MON_ESYS;
    }
    m->thread_running = 1;
    if (m->listen[0])
        log_debug("monitor listening on \"%s\" (port %d), polling every %lld ms (timeout %lld ms, "
                  "rise %u, fall %u)",
                  m->listen, m->port, (long long)m->interval_ms, (long long)m->timeout_ms, m->rise,
                  m->fall);
    return MON_OK;
}

void mon_stop(struct mon *m)
{
    if (!m)
        return;
    /* registrations first, so none arrives for a poller that is going away */
    mon__server_stop(m);
    if (m->thread_running) {
        atomic_store(&m->stop, 1);
        pthread_join(m->thread, NULL);
        m->thread_running = 0;
    }
}

void mon_free(struct mon *m)
{
    if (!m)
        return;
    mon_stop(m);
    mon__poller_free(m->poller);
    free(m->listen);
    free(m->token);
    free(m);
}

const char *mon_errmsg(const struct mon *m)
{
    return m ? m->errmsg : "";
}

int mon_port(const struct mon *m)
{
    return m ? m->port : 0;
}

int mon_poll_once(struct mon *m)
{
    if (!m)
        return MON_EINVAL;
    if (m->thread_running)
        return MON_ESTATE;
    return mon__poller_round(m->poller);
}
