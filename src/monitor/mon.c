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
#include "tls/tls.h"

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

static int check_group(const struct mon_group_settings *gs, char *err, size_t errlen)
{
    if (gs->interval_ms < 10 || gs->interval_ms > 3600 * 1000) {
        seterr(err, errlen, "monitor: poll interval %lld ms out of range (10 ms .. 1 h)",
               (long long)gs->interval_ms);
        return MON_EINVAL;
    }
    if (gs->timeout_ms < 1) {
        seterr(err, errlen, "monitor: poll timeout must be positive");
        return MON_EINVAL;
    }
    if (gs->rise < 1 || gs->fall < 1 || gs->rise > 1000 || gs->fall > 1000) {
        seterr(err, errlen, "monitor: healthy/unhealthy thresholds must be 1..1000");
        return MON_EINVAL;
    }
    return MON_OK;
}

static void group_apply(struct mon_group *g, const struct mon_group_settings *gs)
{
    g->interval_ms = gs->interval_ms;
    /* a poll must end before the next one is due */
    g->timeout_ms = gs->timeout_ms < gs->interval_ms ? gs->timeout_ms : gs->interval_ms;
    g->rise = gs->rise;
    g->fall = gs->fall;
    g->registered_only = gs->registered_only != 0;
}

static struct mon_group *group_by_name(struct mon *m, const char *name)
{
    for (struct mon_group *g = m->groups; g; g = g->next)
        if (!g->removing && strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

static void group_free(struct mon_group *g)
{
    if (!g)
        return;
    free(g->targets);
    free(g->snap);
    free(g);
}

int mon__group_fit(struct mon_group *g)
{
    uint32_t cap = fleet_capacity(g->fleet);
    if (cap <= g->cap)
        return 0;
    struct mon_target **t = realloc(g->targets, cap * sizeof(*t));
    if (!t)
        return -1;
    memset(t + g->cap, 0, (cap - g->cap) * sizeof(*t));
    g->targets = t;
    struct fleet_slot *sn = realloc(g->snap, cap * sizeof(*sn));
    if (!sn)
        return -1; /* targets is larger already: harmless, cap still says the old size */
    g->snap = sn;
    g->cap = cap;
    return 0;
}

static int group_add(struct mon *m, const char *name, struct fleet *f,
                     const struct mon_group_settings *gs, char *err, size_t errlen)
{
    int rc = check_group(gs, err, errlen);
    if (rc)
        return rc;
    if (!name || strlen(name) >= sizeof(((struct mon_group *)0)->name) || !f) {
        seterr(err, errlen, "monitor: bad group name or no fleet table");
        return MON_EINVAL;
    }
    struct mon_group *g = calloc(1, sizeof(*g));
    if (!g)
        goto nomem;
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->fleet = f;
    group_apply(g, gs);
    g->cap = fleet_capacity(f);
    g->targets = calloc(g->cap ? g->cap : 1, sizeof(*g->targets));
    g->snap = calloc(g->cap ? g->cap : 1, sizeof(*g->snap));
    if (!g->targets || !g->snap)
        goto nomem;
    atomic_init(&g->rescan, 1);
    pthread_mutex_lock(&m->mu);
    if (group_by_name(m, name)) {
        pthread_mutex_unlock(&m->mu);
        group_free(g);
        seterr(err, errlen, "monitor: group \"%s\" is already watched", name);
        return MON_EINVAL;
    }
    struct mon_group **tail = &m->groups;
    while (*tail)
        tail = &(*tail)->next;
    *tail = g;
    pthread_mutex_unlock(&m->mu);
    return MON_OK;
nomem:
    group_free(g);
    seterr(err, errlen, "monitor: out of memory");
    return MON_ENOMEM;
}

int mon_add_group(struct mon *m, const char *name, struct fleet *f,
                  const struct mon_group_settings *gs)
{
    if (!m || !gs)
        return MON_EINVAL;
    return group_add(m, name, f, gs, m->errmsg, sizeof(m->errmsg));
}

int mon_set_group(struct mon *m, const char *name, const struct mon_group_settings *gs)
{
    if (!m || !name || !gs)
        return MON_EINVAL;
    int rc = check_group(gs, m->errmsg, sizeof(m->errmsg));
    if (rc)
        return rc;
    pthread_mutex_lock(&m->mu);
    struct mon_group *g = group_by_name(m, name);
    if (g)
        group_apply(g, gs);
    pthread_mutex_unlock(&m->mu);
    return g ? MON_OK : MON_EINVAL;
}

void mon__group_unlink(struct mon *m, struct mon_group *g)
{
    for (struct mon_group **pp = &m->groups; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            group_free(g);
            return;
        }
    }
}

void mon_remove_group(struct mon *m, const char *name)
{
    if (!m || !name)
        return;
    pthread_mutex_lock(&m->mu);
    struct mon_group *g = group_by_name(m, name);
    if (g) {
        g->removing = 1;
        if (!m->thread_running) {
            mon__poller_drop_group(m->poller, g);
            mon__group_unlink(m, g);
        } else {
            /* the poller drops it at the top of its next loop and signals */
            for (;;) {
                int still = 0;
                for (struct mon_group *x = m->groups; x; x = x->next)
                    still |= x == g;
                if (!still)
                    break;
                if (!m->thread_running) {
                    /* the poller stopped meanwhile: nobody else will drop it */
                    mon__poller_drop_group(m->poller, g);
                    mon__group_unlink(m, g);
                    break;
                }
                pthread_cond_wait(&m->cv, &m->mu);
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
}

struct mon_group *mon__group_find_instance(struct mon *m, const char *id, uint32_t *index)
{
    for (struct mon_group *g = m->groups; g; g = g->next) {
        if (g->removing)
            continue;
        if (fleet_find(g->fleet, id, index) == FLEET_OK)
            return g;
    }
    return NULL;
}

int mon_new(const struct mon_settings *s, struct fleet *f, struct mon **out, char *err,
            size_t errlen)
{
    if (!s || !out) {
        seterr(err, errlen, "monitor: missing settings");
        return MON_EINVAL;
    }
    struct mon_group_settings gs = {.interval_ms = s->interval_ms,
                                    .timeout_ms = s->timeout_ms,
                                    .rise = s->rise,
                                    .fall = s->fall};
    int rc = check_group(&gs, err, errlen);
    if (rc)
        return rc;
    if (s->listen && s->listen[0] && strlen(s->listen) > 255) {
        seterr(err, errlen, "monitor: listen address too long");
        return MON_EINVAL;
    }
    struct mon *m = calloc(1, sizeof(*m));
    if (!m)
        goto nomem;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->listen = strdup(s->listen ? s->listen : "");
    m->token = strdup(s->token ? s->token : "");
    if (!m->listen || !m->token)
        goto nomem;
    m->accept_unknown = s->accept_unknown != 0;
    m->on_foreign = s->on_foreign;
    m->foreign_arg = s->foreign_arg;
    m->tls = s->tls;
    m->interval_ms = s->interval_ms;
    m->timeout_ms = s->timeout_ms < s->interval_ms ? s->timeout_ms : s->interval_ms;
    m->rise = s->rise;
    m->fall = s->fall;
    m->max_inflight = s->max_inflight;
    atomic_init(&m->stop, 0);
    if (mon__poller_new(m, &m->poller))
        goto nomem;
    if (f) {
        rc = group_add(m, "", f, &gs, err, errlen);
        if (rc) {
            mon_free(m);
            return rc;
        }
    }
    *out = m;
    return MON_OK;
nomem:
    if (m) {
        free(m->listen);
        free(m->token);
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
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
    rlim_t cap = 0;
    pthread_mutex_lock(&m->mu);
    for (struct mon_group *g = m->groups; g; g = g->next)
        cap += g->cap;
    pthread_mutex_unlock(&m->mu);
    if (cap == 0)
        cap = FLEET_DEFAULT_CAP;
    rlim_t need = cap + FD_HEADROOM;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("open file limit %llu is below the %llu full fleet tables of %llu instances "
                 "need: raise it (ulimit -n, LimitNOFILE=)",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need,
                 (unsigned long long)cap);
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
    rc = tls_conf_has_cert(m->tls) ? rpc_server_bind_tls(srv, m->listen, m->tls, &m->port)
                                   : rpc_server_bind(srv, m->listen, &m->port);
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
    if (m->token[0] && m->listen[0] && !tls_conf_has_cert(m->tls) &&
        !tls_address_is_loopback(m->listen))
        log_warn("MonitorS listens on \"%s\" in clear text: agents' tokens cross the network "
                 "unencrypted (set [monitor] tls_cert_file and tls_key_file)",
                 m->listen);
    if (m->listen[0]) {
        int rc = mon__server_start(m);
        if (rc)
            return rc;
    }
    atomic_store(&m->stop, 0);
    int rc = pthread_create(&m->thread, NULL, mon__poller_thread, m);
    if (rc == 0)
        pthread_setname_np(m->thread, "asgd-poller"); /* per-thread CPU in top -H, benchmarks */
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
        pthread_mutex_lock(&m->mu);
        m->thread_running = 0;
        pthread_cond_broadcast(&m->cv); /* a mon_remove_group() waiting finishes itself */
        pthread_mutex_unlock(&m->mu);
    }
}

void mon_free(struct mon *m)
{
    if (!m)
        return;
    mon_stop(m);
    pthread_mutex_lock(&m->mu);
    while (m->groups) {
        struct mon_group *g = m->groups;
        if (m->poller)
            mon__poller_drop_group(m->poller, g);
        mon__group_unlink(m, g);
    }
    pthread_mutex_unlock(&m->mu);
    mon__poller_free(m->poller);
    free(m->listen);
    free(m->token);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
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
