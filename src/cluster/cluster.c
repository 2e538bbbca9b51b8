/*
 * cluster.c - group ownership on etcd (see cluster.h; cluster_int.h says how
 * the module is cut and how its threads share the state): the public API.
 *
 * This file holds what the callers touch: clu_new() (settings checked and
 * copied, the etcd handles, the threads started), clu_free() (threads
 * stopped, everything freed), the queries (clu_may_act, clu_fence,
 * clu_owner_of, clu_ready, clu_status), which read the cache under c->mu
 * and never touch the network, and the test hooks. The threads' work is in
 * cluster_lease.c (keepalive), cluster_own.c (worker) and cluster_cache.c
 * (watches and cache).
 */
#include "cluster/cluster_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"

#include "common/banned.h"

const char *clu_strerror(int code)
{
    switch (code) {
    case CLU_OK:
        return "success";
    case CLU_EINVAL:
        return "invalid argument";
    case CLU_ENOMEM:
        return "out of memory";
    case CLU_ESYS:
        return "system error";
    case CLU_ENOTOWN:
        return "group not owned by this node";
    case CLU_ENOENT:
        return "group has no owner";
    case CLU_ETOOLONG:
        return "buffer too small";
    default:
        return "unknown error";
    }
}

/* ---- small helpers ------------------------------------------------------ */

char *clu__dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *clu__join2(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *d = malloc(la + lb + 1);
    if (!d)
        return NULL;
    memcpy(d, a, la);
    memcpy(d + la, b, lb + 1);
    return d;
}

static int copy_out(char *dst, size_t len, const char *src)
{
    if (!dst)
        return 0;
    size_t n = strlen(src);
    if (n >= len)
        return CLU_ETOOLONG;
    memcpy(dst, src, n + 1);
    return 0;
}

void clu__set_text(char *dst, size_t len, const char *src, size_t srclen)
{
    if (srclen >= len)
        srclen = len - 1;
    memcpy(dst, src, srclen);
    dst[srclen] = '\0';
}

/* ---- public API ----------------------------------------------------------- */

static void destroy(struct clu *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->ka_cond);
    pthread_cond_broadcast(&c->w_cond);
    pthread_mutex_unlock(&c->mu);
    /* keepalive first, so the lease the worker revokes no longer changes */
    if (c->ka_started)
        pthread_join(c->ka_thread, NULL);
    if (c->w_started)
        pthread_join(c->w_thread, NULL);
    clu__stop_watches(c);
    etcd_free(c->h_ka);
    etcd_free(c->h_w);
    for (size_t i = 0; i < c->n_groups; i++) {
        free(c->groups[i]->name);
        free(c->groups[i]);
    }
    free(c->groups);
    free(c->nodes);
    free(c->prefix);
    free(c->k_groups);
    free(c->k_owners);
    free(c->k_nodes);
    free(c->k_me);
    free(c->endpoints);
    free(c->ca);
    free(c->cert);
    free(c->key);
    pthread_cond_destroy(&c->ka_cond);
    pthread_cond_destroy(&c->w_cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int opt_dup(const char *s, char **out)
{
    *out = NULL;
    if (!s || !*s)
        return 0;
    *out = clu__dup_str(s);
    return *out ? 0 : -1;
}

int clu_new(const struct clu_settings *s, struct clu **out, char *err, size_t errlen)
{
    if (!s || !out || !s->on_acquire || !s->on_lose || !s->endpoints || !*s->endpoints) {
        util_set_err(err, errlen, "cluster: endpoints and both callbacks are required");
        return CLU_EINVAL;
    }
    int64_t ttl = s->lease_ttl_ms ? s->lease_ttl_ms : 5000;
    if (ttl < 2000 || ttl > 3600000) {
        util_set_err(err, errlen, "cluster: lease_ttl %" PRId64 " ms out of range (2 s .. 1 h)",
                     ttl);
        return CLU_EINVAL;
    }
    char host[CLU_NODE_MAX] = "";
    const char *node = s->node;
    if (!node || !*node) {
        if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) {
            util_set_err(err, errlen, "cluster: no node name and no host name");
            return CLU_EINVAL;
        }
        node = host;
    }
    if (strlen(node) >= CLU_NODE_MAX || strchr(node, '/')) {
        util_set_err(err, errlen, "cluster: node name \"%s\" too long or contains '/'", node);
        return CLU_EINVAL;
    }
    const char *api = s->api_advertise ? s->api_advertise : "";
    if (strlen(api) >= CLU_URL_MAX) {
        util_set_err(err, errlen, "cluster: api_advertise too long (max %d bytes)",
                     CLU_URL_MAX - 1);
        return CLU_EINVAL;
    }
    const char *prefix = s->prefix && *s->prefix ? s->prefix : "/asgd";
    if (strlen(prefix) > 200) {
        util_set_err(err, errlen, "cluster: prefix too long (max 200 bytes)");
        return CLU_EINVAL;
    }

    struct clu *c = calloc(1, sizeof(*c));
    if (!c) {
        util_set_err(err, errlen, "cluster: out of memory");
        return CLU_ENOMEM;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->w_cond, &ca);
    pthread_cond_init(&c->ka_cond, &ca);
    pthread_condattr_destroy(&ca);

    clu__set_text(c->node, sizeof(c->node), node, strlen(node));
    clu__set_text(c->api, sizeof(c->api), api, strlen(api));
    c->ttl_ms = ttl;
    c->margin_ms = ttl / 5 > 1000 ? ttl / 5 : 1000;
    c->started_ms = clk_mono_ms();
    c->started_wall_ms = clk_wall_ms();
    c->on_acquire = s->on_acquire;
    c->on_lose = s->on_lose;
    c->arg = s->arg;
    c->reachable = 1;
    c->rng = clu__order_of(c->node, "rng") ^ (uint64_t)c->started_ms ^ ((uint64_t)getpid() << 32);
    if (!c->rng)
        c->rng = 1;
    for (int k = 0; k < K_COUNT; k++)
        c->wctx[k] = (struct wctx){c, k};

    c->prefix = clu__dup_str(prefix);
    c->k_groups = clu__join2(prefix, "/groups/");
    c->k_owners = clu__join2(prefix, "/owners/");
    c->k_nodes = clu__join2(prefix, "/nodes/");
    c->k_me = c->k_nodes ? clu__join2(c->k_nodes, c->node) : NULL;
    c->endpoints = clu__dup_str(s->endpoints);
    if (!c->prefix || !c->k_groups || !c->k_owners || !c->k_nodes || !c->k_me || !c->endpoints ||
        opt_dup(s->ca_file, &c->ca) || opt_dup(s->cert_file, &c->cert) ||
        opt_dup(s->key_file, &c->key)) {
        util_set_err(err, errlen, "cluster: out of memory");
        destroy(c);
        return CLU_ENOMEM;
    }
    /* The keepalive must answer within a fraction of the ttl, to renew
     * again (another member) before the deadline; the worker may wait
     * longer (it is not on the fencing path). */
    struct etcd_settings es = {
        .endpoints = c->endpoints, .ca_file = c->ca, .cert_file = c->cert, .key_file = c->key};
    c->es_ka = es;
    c->es_ka.attempt_timeout_ms = (int)(ttl / 6 < 300 ? 300 : ttl / 6);
    c->es_ka.call_timeout_ms = (int)(ttl / 3);
    c->es_w = es;
    c->es_w.attempt_timeout_ms = (int)(ttl / 3 < 1000 ? 1000 : ttl / 3);
    c->es_w.call_timeout_ms = (int)(ttl / 2 < 1000 ? 1000 : ttl / 2);
    /* a watch on a stalled member must be dropped well before failover is
     * due; etcd should send progress notifications more often than this
     * (scripts/etcd-cluster: every 1 s), else idle watches are reopened */
    c->es_w.watch_idle_timeout_ms = (int)ttl;
    char e[256];
    int rc = etcd_new(&c->es_ka, &c->h_ka, e, sizeof(e));
    if (rc == 0)
        rc = etcd_new(&c->es_w, &c->h_w, e, sizeof(e));
    if (rc) {
        util_set_err(err, errlen, "cluster: etcd client: %s", e);
        destroy(c);
        return rc == ETCD_ENOMEM ? CLU_ENOMEM : CLU_EINVAL;
    }
    if (pthread_create(&c->ka_thread, NULL, clu__ka_main, c) != 0) {
        util_set_err(err, errlen, "cluster: cannot start the keepalive thread");
        destroy(c);
        return CLU_ESYS;
    }
    c->ka_started = 1;
    if (pthread_create(&c->w_thread, NULL, clu__w_main, c) != 0) {
        util_set_err(err, errlen, "cluster: cannot start the worker thread");
        destroy(c);
        return CLU_ESYS;
    }
    c->w_started = 1;
    log_info("cluster: node \"%s\" joining (prefix \"%s\", lease ttl %" PRId64 " ms)", c->node,
             c->prefix, ttl);
    *out = c;
    return 0;
}

void clu_free(struct clu *c)
{
    destroy(c);
}

void clu__test_crash(struct clu *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->crashed = 1;
    pthread_mutex_unlock(&c->mu);
    destroy(c);
}

void clu__test_pause(struct clu *c, int paused)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->paused = paused != 0;
    pthread_cond_broadcast(&c->ka_cond);
    pthread_mutex_unlock(&c->mu);
}

const char *clu_node(const struct clu *c)
{
    return c ? c->node : "";
}

int clu_may_act(struct clu *c, const char *group)
{
    if (!c || !group)
        return 0;
    pthread_mutex_lock(&c->mu);
    struct cgroup *g = clu__group_find(c, group);
    int r = g && g->owned && g->owned_lease == c->lease && clu__lease_valid(c, clk_mono_ms());
    pthread_mutex_unlock(&c->mu);
    return r;
}

int clu_fence(struct clu *c, const char *group, char *key, size_t keylen, int64_t *create_revision)
{
    if (!c || !group || !key || !create_revision)
        return CLU_EINVAL;
    pthread_mutex_lock(&c->mu);
    struct cgroup *g = clu__group_find(c, group);
    int rc = CLU_ENOTOWN;
    if (g && g->owned && g->owned_lease == c->lease && clu__lease_valid(c, clk_mono_ms())) {
        if (strlen(c->k_owners) + strlen(g->name) >= keylen) {
            rc = CLU_ETOOLONG;
        } else {
            snprintf(key, keylen, "%s%s", c->k_owners, g->name);
            *create_revision = g->owned_create;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int clu_owner_of(struct clu *c, const char *group, char *node, size_t nodelen, char *api,
                 size_t apilen)
{
    if (!c || !group)
        return CLU_EINVAL;
    pthread_mutex_lock(&c->mu);
    struct cgroup *g = clu__group_find(c, group);
    int rc = CLU_ENOENT;
    if (g && g->owner_present) {
        struct cnode *n = clu__node_find(c, g->owner_node);
        rc = copy_out(node, nodelen, g->owner_node);
        if (rc == 0)
            rc = copy_out(api, apilen, n && n->present ? n->api : "");
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int clu_ready(struct clu *c, char *why, size_t len)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    int64_t now = clk_mono_ms();
    int ok = clu__lease_valid(c, now) && c->reg_lease == c->lease;
    if (clu__lease_valid(c, now) && c->name_taken) {
        util_set_err(why, len, "node name \"%s\" is in use by another process (lease %" PRIx64 ")",
                     c->node, (uint64_t)c->name_taken);
    } else if (clu__lease_valid(c, now) && !ok) {
        util_set_err(why, len, "joining: registering node \"%s\" (last error: %s)", c->node,
                     c->last_err[0] ? c->last_err : "none");
    } else if (!ok) {
        const char *last = c->last_err[0] ? c->last_err : "none";
        if (!c->reachable)
            util_set_err(why, len, "etcd unreachable since %" PRId64 " s: %s",
                         (now - c->unreachable_since) / 1000, last);
        else if (c->lease == 0)
            util_set_err(why, len, "joining: no etcd lease yet (last error: %s)", last);
        else
            util_set_err(why, len,
                         "lease not renewed in time (fencing deadline passed %" PRId64
                         " ms ago; last error: %s)",
                         now - c->deadline, last);
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

json_t *clu_status(struct clu *c)
{
    if (!c)
        return NULL;
    json_t *o = json_object(), *nodes = json_array(), *groups = json_array();
    if (!o || !nodes || !groups) {
        json_decref(o);
        json_decref(nodes);
        json_decref(groups);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    int64_t now = clk_mono_ms();
    char id[32];
    snprintf(id, sizeof(id), "%" PRId64, c->lease);
    size_t G = 0, N = 0;
    for (size_t i = 0; i < c->n_nodes; i++)
        c->nodes[i].count = 0;
    for (size_t i = 0; i < c->n_groups; i++) {
        struct cgroup *g = c->groups[i];
        if (!g->settings)
            continue;
        G++;
        struct cnode *n = g->owner_present ? clu__node_find(c, g->owner_node) : NULL;
        if (n)
            n->count++;
        json_array_append_new(
            groups, json_pack("{s:s, s:o, s:o}", "name", g->name, "owner",
                              g->owner_present ? json_string(g->owner_node) : json_null(),
                              "owner_api", n && n->present ? json_string(n->api) : json_null()));
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        struct cnode *n = &c->nodes[i];
        N += n->present;
        json_array_append_new(nodes,
                              json_pack("{s:s, s:s, s:I, s:b, s:I}", "name", n->name, "api", n->api,
                                        "started_at_ms", (json_int_t)n->started_at_ms, "alive",
                                        n->present, "groups", (json_int_t)n->count));
    }
    json_t *etcd = json_pack("{s:b, s:s, s:I}", "reachable", c->reachable, "last_error",
                             c->last_err, "unreachable_for_ms",
                             (json_int_t)(c->reachable ? 0 : now - c->unreachable_since));
    json_object_set_new(o, "node", json_string(c->node));
    json_object_set_new(o, "api", json_string(c->api));
    json_object_set_new(o, "prefix", json_string(c->prefix));
    json_object_set_new(o, "lease_id", json_string(id));
    json_object_set_new(o, "lease_ttl_ms", json_integer(c->ttl_ms));
    json_object_set_new(o, "last_renewal_age_ms",
                        json_integer(c->last_sent ? now - c->last_sent : -1));
    json_object_set_new(o, "deadline_left_ms", json_integer(c->lease ? c->deadline - now : 0));
    json_object_set_new(o, "etcd", etcd ? etcd : json_null());
    json_object_set_new(o, "owned", json_integer((json_int_t)c->n_owned));
    json_object_set_new(o, "etcd_requests",
                        json_pack("{s:I, s:I}", "keepalive", (json_int_t)c->n_keepalive, "other",
                                  (json_int_t)c->n_other));
    json_object_set_new(o, "groups_total", json_integer((json_int_t)G));
    json_object_set_new(o, "nodes_alive", json_integer((json_int_t)N));
    pthread_mutex_unlock(&c->mu);
    json_object_set_new(o, "nodes", nodes);
    json_object_set_new(o, "groups", groups);
    return o;
}
