/*
 * cluster.c - group ownership on etcd: one lease per node, owner keys
 * created if absent, a local fencing deadline, and balance by ceil(G/N).
 *
 * Workload: in steady state the only requests are the keepalives (one per
 * ttl/3 per node); the watches are long streams that carry changes, and the
 * worker wakes on them (or on its own timers) without asking etcd anything.
 * Bursts happen at start, at failover (one txn per group taken over) and at
 * rebalancing (one txn per group moved).
 *
 * Threads and locking: c->mu guards everything below "shared state". The
 * keepalive thread owns the lease's life (grant, renew, re-grant) and the
 * fencing deadline; the worker thread owns acquisition, release and the
 * callbacks; the watch threads only update the cache and wake the worker.
 * Each thread that talks to etcd has its own handle (etcd.h: one thread per
 * handle). No lock is held across a network call or a callback.
 *
 * Revisions: every cache entry remembers the etcd revision of the last
 * change applied to it. A watch event, a re-list or the answer to our own
 * txn is applied only if it is not older, so our own writes (applied at once
 * from the txn's answer) and their later echo on the watch agree, and a
 * re-list after a compaction cannot roll back something newer.
 */
#include "cluster/cluster.h"

#include <errno.h>
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
#include "etcd/etcd.h"

#include "common/banned.h"

enum { K_GROUPS = 0, K_OWNERS, K_NODES, K_COUNT };
enum { ACQUIRE_BATCH = 16 }; /* owner keys created per txn (etcd allows 128 ops) */
static const char *const kind_name[K_COUNT] = {"groups", "owners", "nodes"};

/* One group seen anywhere (settings key or owner key). Never freed before
 * clu_free(), so a pointer to it stays valid without the lock. */
struct cgroup {
    char *name;
    uint64_t order; /* hash(node, name): this node's preference order */
    int settings;   /* P/groups/<name>/settings exists */
    int64_t settings_rev;
    int owner_present; /* P/owners/<name> exists */
    char owner_node[CLU_NODE_MAX];
    int64_t owner_lease, owner_create, owner_rev;
    int owned; /* on_acquire called, on_lose not yet */
    int64_t owned_lease, owned_create, owned_rev;
    unsigned stamp; /* re-list sweep */
};

struct cnode {
    char name[CLU_NODE_MAX];
    char api[CLU_URL_MAX];
    int64_t started_at_ms, lease, rev;
    int present;
    int64_t seen_ms; /* when this node last appeared (local monotonic clock) */
    unsigned stamp;
    size_t count; /* scratch: groups owned, computed by the worker */
};

struct wctx {
    struct clu *c;
    int kind;
};

struct clu {
    /* immutable after clu_new() */
    char node[CLU_NODE_MAX];
    char api[CLU_URL_MAX];
    char *prefix, *k_groups, *k_owners, *k_nodes, *k_me, *endpoints, *ca, *cert, *key;
    struct etcd_settings es_ka, es_w; /* strings borrowed from above */
    int64_t ttl_ms, margin_ms, started_ms, started_wall_ms;
    clu_acquire_fn on_acquire;
    clu_lose_fn on_lose;
    void *arg;
    struct wctx wctx[K_COUNT];
    struct etcd *h_ka, *h_w; /* one per thread */
    pthread_t ka_thread, w_thread;
    int ka_started, w_started;

    /* shared state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t w_cond, ka_cond; /* CLOCK_MONOTONIC */
    int stop, crashed, paused, dirty, ka_now;
    int64_t lease, deadline, last_sent, last_ok;
    int reachable;
    int64_t unreachable_since;
    char last_err[256];
    int64_t name_taken;           /* lease of another holder of P/nodes/<node>, 0 = none */
    int64_t n_keepalive, n_other; /* requests sent to etcd (keepalive + grant, the rest) */
    struct cgroup **groups;       /* sorted by name */
    size_t n_groups, cap_groups;
    struct cnode *nodes;
    size_t n_nodes, cap_nodes;
    size_t n_owned;
    int relist[K_COUNT];
    unsigned stamp;

    /* worker-only state */
    int listed;
    struct etcd_watch *watch[K_COUNT];
    int64_t reg_lease; /* lease our node key is on; written under mu (clu_ready reads it) */
    int64_t reg_at, acquire_after, next_release;
    uint64_t rng;
};

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

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t order_of(const char *node, const char *group)
{
    uint64_t h = fnv1a(14695981039346656037ULL, node);
    h = fnv1a(h ^ 0x2f, group);
    /* finalizer (splitmix64) so nearby names spread */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static uint64_t rng_next(struct clu *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *join2(const char *a, const char *b)
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

static void set_text(char *dst, size_t len, const char *src, size_t srclen)
{
    if (srclen >= len)
        srclen = len - 1;
    memcpy(dst, src, srclen);
    dst[srclen] = '\0';
}

static void abs_deadline(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* Waits on cond (mu held) until mono_ms at the latest. */
static void wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t mono_ms)
{
    struct timespec ts;
    abs_deadline(&ts, mono_ms);
    (void)pthread_cond_timedwait(cond, mu, &ts);
}

/* ---- cache (mu held) ---------------------------------------------------- */

static int cmp_group_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(struct cgroup *const *)elem)->name);
}

static struct cgroup *group_find(struct clu *c, const char *name)
{
    struct cgroup **g = bsearch(name, c->groups, c->n_groups, sizeof(*c->groups), cmp_group_name);
    return g ? *g : NULL;
}

/* Finds or inserts (sorted). NULL only when out of memory. */
static struct cgroup *group_get(struct clu *c, const char *name)
{
    size_t lo = 0, hi = c->n_groups;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(name, c->groups[mid]->name);
        if (r == 0)
            return c->groups[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (c->n_groups == c->cap_groups) {
        size_t cap = c->cap_groups ? c->cap_groups * 2 : 64;
        struct cgroup **ng = realloc(c->groups, cap * sizeof(*ng));
        if (!ng)
            return NULL;
        c->groups = ng;
        c->cap_groups = cap;
    }
    struct cgroup *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->name = dup_str(name);
    if (!g->name) {
        free(g);
        return NULL;
    }
    g->order = order_of(c->node, name);
    memmove(c->groups + lo + 1, c->groups + lo, (c->n_groups - lo) * sizeof(*c->groups));
    c->groups[lo] = g;
    c->n_groups++;
    return g;
}

static struct cnode *node_find(struct clu *c, const char *name)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (strcmp(c->nodes[i].name, name) == 0)
            return &c->nodes[i];
    return NULL;
}

static struct cnode *node_get(struct clu *c, const char *name)
{
    struct cnode *n = node_find(c, name);
    if (n)
        return n;
    if (strlen(name) >= CLU_NODE_MAX)
        return NULL;
    if (c->n_nodes == c->cap_nodes) {
        size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 8;
        struct cnode *nn = realloc(c->nodes, cap * sizeof(*nn));
        if (!nn)
            return NULL;
        c->nodes = nn;
        c->cap_nodes = cap;
    }
    n = &c->nodes[c->n_nodes++];
    memset(n, 0, sizeof(*n));
    set_text(n->name, sizeof(n->name), name, strlen(name));
    return n;
}

/*
 * Splits a key of kind into its name: P/groups/<g>/settings -> g (other keys
 * under P/groups/ are the store's and give 0), P/owners/<g> -> g,
 * P/nodes/<n> -> n. Returns 1 with the name in out, 0 when not ours.
 */
static int key_name(const struct clu *c, int kind, const char *key, size_t key_len, char *out,
                    size_t outlen)
{
    const char *pre = kind == K_GROUPS ? c->k_groups : kind == K_OWNERS ? c->k_owners : c->k_nodes;
    size_t pl = strlen(pre);
    if (key_len <= pl || memcmp(key, pre, pl) != 0)
        return 0;
    const char *name = key + pl;
    size_t nl = key_len - pl;
    if (kind == K_GROUPS) {
        static const char suffix[] = "/settings";
        size_t sl = sizeof(suffix) - 1;
        if (nl <= sl || memcmp(name + nl - sl, suffix, sl) != 0)
            return 0;
        nl -= sl;
    }
    if (nl == 0 || nl >= outlen || memchr(name, '/', nl) || memchr(name, '\0', nl))
        return 0;
    memcpy(out, name, nl);
    out[nl] = '\0';
    return 1;
}

/* Applies a key of kind as present (kv != NULL) or absent at rev. */
static void apply(struct clu *c, int kind, const char *name, const struct etcd_kv *kv, int64_t rev)
{
    if (kind == K_NODES) {
        struct cnode *n = node_get(c, name);
        if (!n || rev < n->rev)
            return;
        n->rev = rev;
        n->stamp = c->stamp;
        if (kv && !n->present)
            n->seen_ms = clk_mono_ms();
        n->present = kv != NULL;
        if (!kv)
            return;
        n->lease = kv->lease;
        json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
        const char *api = j ? json_string_value(json_object_get(j, "api")) : NULL;
        json_t *st = j ? json_object_get(j, "started_at_ms") : NULL;
        set_text(n->api, sizeof(n->api), api ? api : "", api ? strlen(api) : 0);
        n->started_at_ms = json_is_integer(st) ? (int64_t)json_integer_value(st) : 0;
        json_decref(j);
        return;
    }
    struct cgroup *g = group_get(c, name);
    if (!g)
        return; /* out of memory: the next re-list or event repairs it */
    g->stamp = c->stamp;
    if (kind == K_GROUPS) {
        if (rev < g->settings_rev)
            return;
        g->settings_rev = rev;
        g->settings = kv != NULL;
        return;
    }
    if (rev < g->owner_rev)
        return;
    g->owner_rev = rev;
    g->owner_present = kv != NULL;
    if (!kv)
        return;
    g->owner_lease = kv->lease;
    g->owner_create = kv->create_revision;
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *node = j ? json_string_value(json_object_get(j, "node")) : NULL;
    set_text(g->owner_node, sizeof(g->owner_node), node ? node : "", node ? strlen(node) : 0);
    json_decref(j);
}

static void watch_cb(void *arg, const struct etcd_event *ev, size_t n, int64_t revision)
{
    struct wctx *w = arg;
    struct clu *c = w->c;
    char name[CLU_KEY_MAX];
    int relevant = 0;
    (void)revision;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].type == ETCD_EV_RESET) {
            c->relist[w->kind] = 1;
            relevant = 1;
            continue;
        }
        /* most of P/groups/ is the store's traffic: not worth a wake-up */
        if (!key_name(c, w->kind, ev[i].kv.key, ev[i].kv.key_len, name, sizeof(name)))
            continue;
        relevant = 1;
        apply(c, w->kind, name, ev[i].type == ETCD_EV_PUT ? &ev[i].kv : NULL,
              ev[i].kv.mod_revision);
    }
    if (relevant) {
        c->dirty = 1;
        pthread_cond_signal(&c->w_cond);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- etcd state (mu held) ----------------------------------------------- */

static void note_ok(struct clu *c)
{
    if (!c->reachable)
        log_info("cluster: etcd reachable again (node \"%s\")", c->node);
    c->reachable = 1;
    c->unreachable_since = 0;
}

static void note_err(struct clu *c, const char *what, int rc, const char *msg)
{
    char buf[sizeof(c->last_err)];
    snprintf(buf, sizeof(buf), "%s: %s (%s)", what, etcd_strerror(rc), msg);
    if (rc == ETCD_EUNAVAIL || rc == ETCD_ETIMEOUT) {
        if (c->reachable) {
            c->unreachable_since = clk_mono_ms();
            log_warn("cluster: etcd unreachable (node \"%s\"): %s", c->node, buf);
        }
        c->reachable = 0;
    } else if (strcmp(buf, c->last_err) != 0) {
        log_warn("cluster: %s", buf);
    }
    memcpy(c->last_err, buf, sizeof(buf));
}

static int lease_valid(const struct clu *c, int64_t now)
{
    return c->lease != 0 && now < c->deadline;
}

/* ---- keepalive thread ---------------------------------------------------- */

static void *ka_main(void *arg)
{
    struct clu *c = arg;
    int64_t ttl_s = (c->ttl_ms + 999) / 1000;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        if (c->paused) {
            pthread_cond_wait(&c->ka_cond, &c->mu);
            continue;
        }
        int64_t lease = c->lease;
        c->ka_now = 0;
        pthread_mutex_unlock(&c->mu);

        /* The deadline counts from before the request leaves: etcd renews
         * the lease when it receives it, later than t, so its expiry is
         * later than t + ttl whatever the network or etcd do. */
        int64_t t = clk_mono_ms(), id = 0, granted = 0, left = 0, next;
        int rc;
        if (lease == 0)
            rc = etcd_lease_grant(c->h_ka, ttl_s, &id, &granted);
        else
            rc = etcd_lease_keepalive(c->h_ka, lease, &left);

        pthread_mutex_lock(&c->mu);
        c->n_keepalive++;
        int64_t retry = c->ttl_ms / 6 < 250 ? 250 : c->ttl_ms / 6;
        if (rc == 0) {
            int was_valid = lease_valid(c, clk_mono_ms());
            if (lease == 0) {
                c->lease = id;
                log_info("cluster: node \"%s\" holds lease %" PRIx64 " (ttl %" PRId64 " s)",
                         c->node, (uint64_t)id, granted);
            }
            /* etcd grants at least what we asked; should it ever answer
             * less, count from what it said */
            int64_t ttl_ms = c->ttl_ms, said = lease == 0 ? granted : left;
            if (said > 0 && said * 1000 < ttl_ms)
                ttl_ms = said * 1000;
            if (t + ttl_ms - c->margin_ms > c->deadline)
                c->deadline = t + ttl_ms - c->margin_ms;
            c->last_sent = t;
            c->last_ok = clk_mono_ms();
            log_debug("cluster: lease %" PRIx64 " renewed (sent at %" PRId64
                      ", answered in %" PRId64 " ms, deadline in %" PRId64 " ms)",
                      (uint64_t)c->lease, t, c->last_ok - t, c->deadline - c->last_ok);
            note_ok(c);
            if (!was_valid) {
                c->dirty = 1;
                pthread_cond_signal(&c->w_cond);
            }
            next = t + c->ttl_ms / 3;
        } else if (rc == ETCD_ELEASE && lease != 0) {
            log_warn("cluster: lease %" PRIx64 " of node \"%s\" is gone on etcd: rejoining",
                     (uint64_t)lease, c->node);
            c->lease = 0;
            c->deadline = 0;
            c->dirty = 1;
            pthread_cond_signal(&c->w_cond);
            next = clk_mono_ms();
        } else {
            note_err(c, lease ? "lease keepalive" : "lease grant", rc, etcd_errmsg(c->h_ka));
            next = clk_mono_ms() + retry;
            if (!lease_valid(c, clk_mono_ms())) {
                c->dirty = 1; /* the worker fences (on_lose) */
                pthread_cond_signal(&c->w_cond);
            }
        }
        while (!c->stop && !c->paused && !c->ka_now && clk_mono_ms() < next)
            wait_until(&c->ka_cond, &c->mu, next);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- worker thread -------------------------------------------------------- */

/* Lists one prefix and applies it; returns 0 and the list's revision. */
static int list_kind(struct clu *c, int kind, int64_t *revision)
{
    const char *pre = kind == K_GROUPS ? c->k_groups : kind == K_OWNERS ? c->k_owners : c->k_nodes;
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.keys_only = kind == K_GROUPS; /* the store's data is under P/groups/ too */
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(c->h_w, pre, ETCD_NUL, &o, &r);
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc) {
        char what[32];
        snprintf(what, sizeof(what), "listing %s", kind_name[kind]);
        note_err(c, what, rc, etcd_errmsg(c->h_w));
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    note_ok(c);
    c->stamp++;
    char name[CLU_KEY_MAX];
    for (size_t i = 0; i < r->n_kvs; i++)
        if (key_name(c, kind, r->kvs[i].key, r->kvs[i].key_len, name, sizeof(name)))
            apply(c, kind, name, &r->kvs[i], r->kvs[i].mod_revision);
    /* what the list did not show is gone (unless something newer said otherwise) */
    if (kind == K_NODES) {
        for (size_t i = 0; i < c->n_nodes; i++)
            if (c->nodes[i].stamp != c->stamp && c->nodes[i].rev < r->revision) {
                c->nodes[i].present = 0;
                c->nodes[i].rev = r->revision;
            }
    } else {
        for (size_t i = 0; i < c->n_groups; i++) {
            struct cgroup *g = c->groups[i];
            if (g->stamp == c->stamp)
                continue;
            if (kind == K_GROUPS && g->settings_rev < r->revision) {
                g->settings = 0;
                g->settings_rev = r->revision;
            } else if (kind == K_OWNERS && g->owner_rev < r->revision) {
                g->owner_present = 0;
                g->owner_rev = r->revision;
            }
        }
    }
    c->relist[kind] = 0;
    pthread_mutex_unlock(&c->mu);
    *revision = r->revision;
    etcd_range_result_free(r);
    return 0;
}

static int start_watches(struct clu *c)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (c->watch[k])
            continue;
        int64_t rev;
        if (list_kind(c, k, &rev))
            return -1;
        const char *pre = k == K_GROUPS ? c->k_groups : k == K_OWNERS ? c->k_owners : c->k_nodes;
        char err[256];
        int rc = etcd_watch_start(&c->es_w, pre, ETCD_NUL, 1, rev + 1, watch_cb, &c->wctx[k],
                                  &c->watch[k], err, sizeof(err));
        if (rc) {
            log_error("cluster: cannot watch \"%s\": %s", pre, err);
            return -1;
        }
    }
    return 0;
}

static char *owner_value(const struct clu *c, int64_t lease)
{
    char id[32];
    snprintf(id, sizeof(id), "%" PRId64, lease);
    json_t *j = json_pack("{s:s, s:s}", "node", c->node, "lease", id);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* Marks g owned (mu held) and returns 1, or 0 when the lease changed. */
static int mark_owned(struct clu *c, struct cgroup *g, int64_t lease, int64_t create, int64_t rev)
{
    if (c->lease != lease || g->owned)
        return 0;
    g->owned = 1;
    g->owned_lease = lease;
    g->owned_create = create;
    g->owned_rev = rev;
    c->n_owned++;
    return 1;
}

/* Takes g if its owner key is absent, or back if it is already on our lease. */
static void try_acquire(struct clu *c, struct cgroup *g, int64_t lease)
{
    char *key = join2(c->k_owners, g->name);
    char *val = owner_value(c, lease);
    struct etcd_txn_result *r = NULL;
    if (!key || !val)
        goto out;
    struct etcd_cmp cmp = {.key = key,
                           .key_len = ETCD_NUL,
                           .target = ETCD_CMP_CREATE,
                           .result = ETCD_CMP_EQUAL,
                           .number = 0};
    struct etcd_op put = {.type = ETCD_OP_PUT,
                          .key = key,
                          .key_len = ETCD_NUL,
                          .value = val,
                          .value_len = ETCD_NUL,
                          .lease = lease};
    struct etcd_op get = {.type = ETCD_OP_RANGE, .key = key, .key_len = ETCD_NUL};
    int rc = etcd_txn(c->h_w, &cmp, 1, &put, 1, &get, 1, &r);
    int64_t create = 0, rev = 0;
    int mine = 0;
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc) {
        note_err(c, "acquire", rc, etcd_errmsg(c->h_w));
        if (rc == ETCD_ELEASE) {
            c->ka_now = 1; /* let the keepalive thread find out now */
            pthread_cond_signal(&c->ka_cond);
        }
    } else if (r->succeeded) {
        struct etcd_kv kv = {.key = key,
                             .value = val,
                             .value_len = strlen(val),
                             .lease = lease,
                             .create_revision = r->revision,
                             .mod_revision = r->revision};
        apply(c, K_OWNERS, g->name, &kv, r->revision);
        create = rev = r->revision;
        mine = mark_owned(c, g, lease, create, rev);
    } else if (r->n_ops == 1 && r->ops[0].range.n_kvs == 1) {
        const struct etcd_kv *kv = &r->ops[0].range.kvs[0];
        apply(c, K_OWNERS, g->name, kv, kv->mod_revision);
        if (kv->lease == lease) { /* ours from before the deadline passed */
            create = kv->create_revision;
            rev = kv->mod_revision;
            mine = mark_owned(c, g, lease, create, rev);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (mine) {
        log_info("cluster: node \"%s\" owns group \"%s\" (revision %" PRId64 ")", c->node, g->name,
                 create);
        c->on_acquire(c->arg, g->name, key, create);
    }
out:
    etcd_txn_result_free(r);
    free(key);
    free(val);
}

/*
 * Takes n free groups in one txn (all or none: every owner key must still be
 * absent). When another node took one of them first, tries each alone.
 */
static void acquire_batch(struct clu *c, struct cgroup **gs, size_t n, int64_t lease)
{
    if (n == 1) {
        try_acquire(c, gs[0], lease);
        return;
    }
    char *keys[ACQUIRE_BATCH] = {0};
    struct etcd_cmp cmps[ACQUIRE_BATCH];
    struct etcd_op puts[ACQUIRE_BATCH];
    int mine[ACQUIRE_BATCH] = {0};
    struct etcd_txn_result *r = NULL;
    char *val = owner_value(c, lease);
    int ok = val != NULL;
    for (size_t i = 0; i < n && ok; i++) {
        keys[i] = join2(c->k_owners, gs[i]->name);
        ok = keys[i] != NULL;
        cmps[i] = (struct etcd_cmp){.key = keys[i],
                                    .key_len = ETCD_NUL,
                                    .target = ETCD_CMP_CREATE,
                                    .result = ETCD_CMP_EQUAL};
        puts[i] = (struct etcd_op){.type = ETCD_OP_PUT,
                                   .key = keys[i],
                                   .key_len = ETCD_NUL,
                                   .value = val,
                                   .value_len = ETCD_NUL,
                                   .lease = lease};
    }
    int rc = ok ? etcd_txn(c->h_w, cmps, n, puts, n, NULL, 0, &r) : ETCD_ENOMEM;
    int lost_race = 0;
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc) {
        note_err(c, "acquire", rc, etcd_errmsg(c->h_w));
        if (rc == ETCD_ELEASE) {
            c->ka_now = 1;
            pthread_cond_signal(&c->ka_cond);
        }
    } else if (r->succeeded) {
        for (size_t i = 0; i < n; i++) {
            struct etcd_kv kv = {.value = val,
                                 .value_len = strlen(val),
                                 .lease = lease,
                                 .create_revision = r->revision,
                                 .mod_revision = r->revision};
            apply(c, K_OWNERS, gs[i]->name, &kv, r->revision);
            mine[i] = mark_owned(c, gs[i], lease, r->revision, r->revision);
        }
    } else {
        lost_race = 1;
    }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (mine[i]) {
            log_info("cluster: node \"%s\" owns group \"%s\" (revision %" PRId64 ")", c->node,
                     gs[i]->name, r->revision);
            c->on_acquire(c->arg, gs[i]->name, keys[i], r->revision);
        } else if (lost_race) {
            pthread_mutex_lock(&c->mu);
            int still_free = !gs[i]->owner_present;
            pthread_mutex_unlock(&c->mu);
            if (still_free)
                try_acquire(c, gs[i], lease);
        }
    }
    etcd_txn_result_free(r);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(val);
}

/* Deletes g's owner key if it is still on lease (a release, or a leftover). */
static void delete_owner(struct clu *c, struct cgroup *g, int64_t lease)
{
    char *key = join2(c->k_owners, g->name);
    if (!key)
        return;
    struct etcd_cmp cmp = {.key = key,
                           .key_len = ETCD_NUL,
                           .target = ETCD_CMP_LEASE,
                           .result = ETCD_CMP_EQUAL,
                           .number = lease};
    struct etcd_op del = {.type = ETCD_OP_DELETE, .key = key, .key_len = ETCD_NUL};
    struct etcd_txn_result *r = NULL;
    int rc = etcd_txn(c->h_w, &cmp, 1, &del, 1, NULL, 0, &r);
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc)
        note_err(c, "release", rc, etcd_errmsg(c->h_w));
    else if (r->succeeded)
        apply(c, K_OWNERS, g->name, NULL, r->revision);
    pthread_mutex_unlock(&c->mu);
    etcd_txn_result_free(r);
    free(key);
}

/* Un-owns g (mu held by the caller, released around the callback). */
static void lose(struct clu *c, struct cgroup *g, const char *why)
{
    g->owned = 0;
    c->n_owned--;
    pthread_mutex_unlock(&c->mu);
    log_info("cluster: node \"%s\" gives up group \"%s\": %s", c->node, g->name, why);
    c->on_lose(c->arg, g->name);
    pthread_mutex_lock(&c->mu);
}

static int cmp_order_asc(const void *a, const void *b)
{
    const struct cgroup *x = *(struct cgroup *const *)a, *y = *(struct cgroup *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One pass of the worker; returns when it wants to run again (mono ms). */
static int64_t step(struct clu *c)
{
    int64_t now = clk_mono_ms();
    if (!c->listed) {
        if (start_watches(c))
            return now + 500;
        c->listed = 1;
    }

    /* 1. fencing and losses: the deadline, a new lease, a deleted group or
     * an owner key that changed under us */
    pthread_mutex_lock(&c->mu);
    now = clk_mono_ms();
    int valid = lease_valid(c, now);
    int64_t lease = c->lease;
    for (size_t i = 0; i < c->n_groups && c->n_owned > 0; i++) {
        struct cgroup *g = c->groups[i];
        if (!g->owned)
            continue;
        if (!valid || g->owned_lease != lease)
            lose(c, g, c->lease == 0 ? "lease lost" : "lease not renewed in time (fenced)");
        else if (!g->settings)
            lose(c, g, "group deleted");
        else if (g->owner_rev > g->owned_rev &&
                 (!g->owner_present || g->owner_create != g->owned_create))
            lose(c, g, "owner key deleted or replaced");
        else
            continue;
        /* lose() let go of the lock: the array may have moved, start over */
        i = (size_t)-1;
        now = clk_mono_ms();
        valid = lease_valid(c, now) && c->lease == lease;
    }
    int64_t deadline = c->deadline;
    pthread_mutex_unlock(&c->mu);
    if (!valid)
        return now + 1000;

    /* a watch lost events (compaction): list that prefix again */
    for (int k = 0; k < K_COUNT; k++) {
        int64_t rev;
        pthread_mutex_lock(&c->mu);
        int need = c->relist[k];
        pthread_mutex_unlock(&c->mu);
        if (need && list_kind(c, k, &rev))
            return now + 500;
    }

    /* 2. this node's key on the current lease; then let the nodes starting
     * with us show up before counting (else the first one takes all) */
    if (c->reg_lease != lease) {
        json_t *j = json_pack("{s:s, s:s, s:I}", "node", c->node, "api", c->api, "started_at_ms",
                              (json_int_t)c->started_wall_ms);
        char *v = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        /* created if absent: a node key on another live lease means another
         * process runs under this name (or our previous incarnation, whose
         * key goes with its lease within a ttl): wait, do not share it */
        struct etcd_cmp cmp = {.key = c->k_me,
                               .key_len = ETCD_NUL,
                               .target = ETCD_CMP_CREATE,
                               .result = ETCD_CMP_EQUAL,
                               .number = 0};
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .key = c->k_me,
                              .key_len = ETCD_NUL,
                              .value = v,
                              .value_len = ETCD_NUL,
                              .lease = lease};
        struct etcd_op get = {.type = ETCD_OP_RANGE, .key = c->k_me, .key_len = ETCD_NUL};
        struct etcd_txn_result *r = NULL;
        int rc = v ? etcd_txn(c->h_w, &cmp, 1, &put, 1, &get, 1, &r) : ETCD_ENOMEM;
        int64_t other = 0;
        pthread_mutex_lock(&c->mu);
        c->n_other++;
        if (rc) {
            note_err(c, "node registration", rc, etcd_errmsg(c->h_w));
        } else if (r->succeeded) {
            struct etcd_kv kv = {.value = v, .value_len = strlen(v), .lease = lease};
            apply(c, K_NODES, c->node, &kv, r->revision);
        } else if (r->n_ops != 1 || r->ops[0].range.n_kvs != 1) {
            rc = -1; /* gone meanwhile: try again */
        } else if (r->ops[0].range.kvs[0].lease != lease) {
            other = r->ops[0].range.kvs[0].lease;
            if (c->name_taken != other)
                log_warn("cluster: node name \"%s\" is in use (lease %" PRIx64
                         "): waiting for that key to go",
                         c->node, (uint64_t)other);
            rc = -1;
        }
        c->name_taken = other;
        pthread_mutex_unlock(&c->mu);
        etcd_txn_result_free(r);
        free(v);
        if (rc)
            return now + (other ? c->ttl_ms / 3 : 500);
        pthread_mutex_lock(&c->mu);
        c->reg_lease = lease; /* written under mu: clu_ready() reads it */
        pthread_mutex_unlock(&c->mu);
        c->reg_at = now;
        c->next_release = now + c->ttl_ms;
    }
    int64_t settle = c->ttl_ms / 3 < 1000 ? c->ttl_ms / 3 : 1000;
    if (now < c->reg_at + settle)
        return c->reg_at + settle;

    /* 3. targets: hi = ceil(G/N), lo = floor(G/N) */
    pthread_mutex_lock(&c->mu);
    size_t G = 0, N = 0, nfree = 0, nleft = 0;
    for (size_t i = 0; i < c->n_nodes; i++) {
        c->nodes[i].count = 0;
        N += c->nodes[i].present;
    }
    struct cgroup **freel = malloc((c->n_groups + 1) * sizeof(*freel));
    struct cgroup **left = malloc((c->n_groups + 1) * sizeof(*left));
    struct cgroup **ownl = malloc((c->n_groups + 1) * sizeof(*ownl));
    struct cgroup **gone = malloc((c->n_groups + 1) * sizeof(*gone));
    size_t nown = 0, ngone = 0;
    if (!freel || !left || !ownl || !gone) {
        pthread_mutex_unlock(&c->mu);
        free(freel);
        free(left);
        free(ownl);
        free(gone);
        return now + 1000;
    }
    for (size_t i = 0; i < c->n_groups; i++) {
        struct cgroup *g = c->groups[i];
        int ours = g->owner_present && !g->owned && g->owner_lease == lease &&
                   strcmp(g->owner_node, c->node) == 0;
        if (!g->settings) {
            if (ours)
                gone[ngone++] = g; /* group deleted: our owner key goes too */
            continue;
        }
        G++;
        if (g->owned)
            ownl[nown++] = g;
        if (!g->owner_present) {
            freel[nfree++] = g;
            continue;
        }
        struct cnode *n = node_find(c, g->owner_node);
        if (n && n->present)
            n->count++;
        if (ours)
            left[nleft++] = g; /* our key, left from before a fencing */
    }
    if (N == 0)
        N = 1;
    size_t hi = (G + N - 1) / N, lo = G / N;
    /* a node below lo that has had time to settle (it acquires only after
     * settle; releasing to it earlier would leave groups without owner) */
    int starving = 0;
    for (size_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].present && strcmp(c->nodes[i].name, c->node) != 0 &&
            c->nodes[i].count < lo && now >= c->nodes[i].seen_ms + settle)
            starving = 1;
    size_t owned = c->n_owned;
    pthread_mutex_unlock(&c->mu);

    int64_t wake = now + 1000;
    if (deadline < wake)
        wake = deadline;

    /* 4. our leftover keys: take them back while under target, else free
     * them; the keys of deleted groups go */
    for (size_t i = 0; i < ngone && !c->stop; i++)
        delete_owner(c, gone[i], lease);
    for (size_t i = 0; i < nleft && !c->stop; i++) {
        if (owned < hi) {
            try_acquire(c, left[i], lease);
        } else {
            delete_owner(c, left[i], lease);
        }
        pthread_mutex_lock(&c->mu);
        owned = c->n_owned;
        pthread_mutex_unlock(&c->mu);
    }

    /* 5. acquire free groups, in this node's hashed order, after a short
     * jitter; a node at or above floor(G/N) waits longer so that the ones
     * below it (a joining node) get the free groups first */
    if (owned < hi && nfree > 0) {
        if (c->acquire_after == 0) {
            int64_t d = (int64_t)(rng_next(c) % 50) + (owned >= lo ? 150 : 0);
            c->acquire_after = now + d;
        }
        if (now < c->acquire_after) {
            if (c->acquire_after < wake)
                wake = c->acquire_after;
        } else {
            c->acquire_after = 0;
            qsort(freel, nfree, sizeof(*freel), cmp_order_asc);
            size_t i = 0;
            while (i < nfree && owned < hi) {
                /* the next few still free (the watch keeps the cache
                 * current), in one txn: after a failover hundreds of
                 * groups are taken in tens of commits, not hundreds */
                struct cgroup *batch[ACQUIRE_BATCH];
                size_t nb = 0;
                pthread_mutex_lock(&c->mu);
                int go = !c->stop && lease_valid(c, clk_mono_ms()) && c->lease == lease;
                for (; go && i < nfree && nb < ACQUIRE_BATCH && owned + nb < hi; i++)
                    if (!freel[i]->owner_present && freel[i]->settings)
                        batch[nb++] = freel[i];
                pthread_mutex_unlock(&c->mu);
                if (!go || nb == 0)
                    break;
                acquire_batch(c, batch, nb, lease);
                pthread_mutex_lock(&c->mu);
                owned = c->n_owned;
                pthread_mutex_unlock(&c->mu);
            }
            wake = clk_mono_ms() + 200; /* look again once the watch caught up */
        }
    } else {
        c->acquire_after = 0;
    }

    /* 6. release, a few per balance period (one ttl): above hi, or above lo
     * while another node is below lo. The runtime stops first (on_lose),
     * then the key goes, conditioned on our lease. */
    now = clk_mono_ms();
    if (owned > hi || (owned > lo && starving)) {
        if (now >= c->next_release) {
            size_t excess = owned > hi ? owned - hi : owned - lo;
            size_t k = excess / 4 ? excess / 4 : 1;
            /* give up the groups this node likes least */
            qsort(ownl, nown, sizeof(*ownl), cmp_order_asc);
            for (size_t i = nown; i > 0 && k > 0 && !c->stop; i--) {
                struct cgroup *g = ownl[i - 1];
                pthread_mutex_lock(&c->mu);
                int still = g->owned;
                if (still)
                    lose(c, g, "rebalancing");
                pthread_mutex_unlock(&c->mu);
                if (still) {
                    delete_owner(c, g, lease);
                    k--;
                }
            }
            c->next_release = clk_mono_ms() + c->ttl_ms;
        }
        if (c->next_release < wake)
            wake = c->next_release;
    }
    free(freel);
    free(left);
    free(ownl);
    free(gone);
    return wake;
}

static void *w_main(void *arg)
{
    struct clu *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        c->dirty = 0;
        pthread_mutex_unlock(&c->mu);

        int64_t wake = step(c);

        pthread_mutex_lock(&c->mu);
        while (!c->stop && !c->dirty && clk_mono_ms() < wake)
            wait_until(&c->w_cond, &c->mu, wake);
        pthread_mutex_unlock(&c->mu);
    }
    /* leaving (clu_free, not a crash): stop every runtime, then revoke the
     * lease so the others take over at once */
    pthread_mutex_lock(&c->mu);
    if (!c->crashed) {
        for (size_t i = 0; i < c->n_groups && c->n_owned > 0; i++)
            if (c->groups[i]->owned) {
                lose(c, c->groups[i], "node leaving");
                i = (size_t)-1; /* the array may have moved meanwhile */
            }
    }
    int64_t lease = c->crashed ? 0 : c->lease;
    pthread_mutex_unlock(&c->mu);
    if (lease) {
        int rc = etcd_lease_revoke(c->h_w, lease);
        if (rc && rc != ETCD_ELEASE)
            log_warn("cluster: cannot revoke lease %" PRIx64 " of node \"%s\": %s", (uint64_t)lease,
                     c->node, etcd_errmsg(c->h_w));
    }
    return NULL;
}

/* ---- public API ----------------------------------------------------------- */

static void *watch_stopper(void *arg)
{
    etcd_watch_stop(arg);
    return NULL;
}

/* A watch thread notices its stop flag only at curl's next progress call
 * (up to ~1 s when the stream is idle): stop the three side by side. */
static void stop_watches(struct clu *c)
{
    pthread_t t[K_COUNT];
    int started[K_COUNT] = {0};
    for (int k = 0; k < K_COUNT; k++)
        if (c->watch[k])
            started[k] = pthread_create(&t[k], NULL, watch_stopper, c->watch[k]) == 0;
    for (int k = 0; k < K_COUNT; k++) {
        if (started[k])
            pthread_join(t[k], NULL);
        else
            etcd_watch_stop(c->watch[k]);
        c->watch[k] = NULL;
    }
}

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
    stop_watches(c);
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
    *out = dup_str(s);
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

    set_text(c->node, sizeof(c->node), node, strlen(node));
    set_text(c->api, sizeof(c->api), api, strlen(api));
    c->ttl_ms = ttl;
    c->margin_ms = ttl / 5 > 1000 ? ttl / 5 : 1000;
    c->started_ms = clk_mono_ms();
    c->started_wall_ms = clk_wall_ms();
    c->on_acquire = s->on_acquire;
    c->on_lose = s->on_lose;
    c->arg = s->arg;
    c->reachable = 1;
    c->rng = order_of(c->node, "rng") ^ (uint64_t)c->started_ms ^ ((uint64_t)getpid() << 32);
    if (!c->rng)
        c->rng = 1;
    for (int k = 0; k < K_COUNT; k++)
        c->wctx[k] = (struct wctx){c, k};

    c->prefix = dup_str(prefix);
    c->k_groups = join2(prefix, "/groups/");
    c->k_owners = join2(prefix, "/owners/");
    c->k_nodes = join2(prefix, "/nodes/");
    c->k_me = c->k_nodes ? join2(c->k_nodes, c->node) : NULL;
    c->endpoints = dup_str(s->endpoints);
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
    if (pthread_create(&c->ka_thread, NULL, ka_main, c) != 0) {
        util_set_err(err, errlen, "cluster: cannot start the keepalive thread");
        destroy(c);
        return CLU_ESYS;
    }
    c->ka_started = 1;
    if (pthread_create(&c->w_thread, NULL, w_main, c) != 0) {
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
    struct cgroup *g = group_find(c, group);
    int r = g && g->owned && g->owned_lease == c->lease && lease_valid(c, clk_mono_ms());
    pthread_mutex_unlock(&c->mu);
    return r;
}

int clu_fence(struct clu *c, const char *group, char *key, size_t keylen, int64_t *create_revision)
{
    if (!c || !group || !key || !create_revision)
        return CLU_EINVAL;
    pthread_mutex_lock(&c->mu);
    struct cgroup *g = group_find(c, group);
    int rc = CLU_ENOTOWN;
    if (g && g->owned && g->owned_lease == c->lease && lease_valid(c, clk_mono_ms())) {
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
    struct cgroup *g = group_find(c, group);
    int rc = CLU_ENOENT;
    if (g && g->owner_present) {
        struct cnode *n = node_find(c, g->owner_node);
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
    int ok = lease_valid(c, now) && c->reg_lease == c->lease;
    if (lease_valid(c, now) && c->name_taken) {
        util_set_err(why, len, "node name \"%s\" is in use by another process (lease %" PRIx64 ")",
                     c->node, (uint64_t)c->name_taken);
    } else if (lease_valid(c, now) && !ok) {
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
        struct cnode *n = g->owner_present ? node_find(c, g->owner_node) : NULL;
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
