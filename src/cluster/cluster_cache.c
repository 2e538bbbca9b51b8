/*
 * cluster_cache.c - the module's view of etcd (see cluster_int.h): groups,
 * owners and nodes, listed once and then kept current by one watch per
 * prefix, so that queries and the worker's decisions never ask etcd.
 *
 * Separate because it is the one place that turns etcd keys and events into
 * cache entries, under one rule: a change is applied only when it is not
 * older than what the entry has (revisions), whether it comes from a watch,
 * a re-list after a compaction, or the answer to our own txn. Everything
 * here that touches the cache runs with c->mu held (or takes it).
 */
#include "cluster/cluster_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

static const char *const kind_name[K_COUNT] = {"groups", "owners", "nodes"};

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t clu__order_of(const char *node, const char *group)
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

/* ---- cache (mu held) ---------------------------------------------------- */

static int cmp_group_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(struct cgroup *const *)elem)->name);
}

struct cgroup *clu__group_find(struct clu *c, const char *name)
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
    g->name = clu__dup_str(name);
    if (!g->name) {
        free(g);
        return NULL;
    }
    g->order = clu__order_of(c->node, name);
    memmove(c->groups + lo + 1, c->groups + lo, (c->n_groups - lo) * sizeof(*c->groups));
    c->groups[lo] = g;
    c->n_groups++;
    return g;
}

struct cnode *clu__node_find(struct clu *c, const char *name)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (strcmp(c->nodes[i].name, name) == 0)
            return &c->nodes[i];
    return NULL;
}

static struct cnode *node_get(struct clu *c, const char *name)
{
    struct cnode *n = clu__node_find(c, name);
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
    clu__set_text(n->name, sizeof(n->name), name, strlen(name));
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
void clu__apply(struct clu *c, int kind, const char *name, const struct etcd_kv *kv, int64_t rev)
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
        clu__set_text(n->api, sizeof(n->api), api ? api : "", api ? strlen(api) : 0);
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
    clu__set_text(g->owner_node, sizeof(g->owner_node), node ? node : "", node ? strlen(node) : 0);
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
        clu__apply(c, w->kind, name, ev[i].type == ETCD_EV_PUT ? &ev[i].kv : NULL,
                   ev[i].kv.mod_revision);
    }
    if (relevant) {
        c->dirty = 1;
        pthread_cond_signal(&c->w_cond);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Lists one prefix and applies it; returns 0 and the list's revision. */
int clu__list_kind(struct clu *c, int kind, int64_t *revision)
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
        clu__note_err(c, what, rc, etcd_errmsg(c->h_w));
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    clu__note_ok(c);
    c->stamp++;
    char name[CLU_KEY_MAX];
    for (size_t i = 0; i < r->n_kvs; i++)
        if (key_name(c, kind, r->kvs[i].key, r->kvs[i].key_len, name, sizeof(name)))
            clu__apply(c, kind, name, &r->kvs[i], r->kvs[i].mod_revision);
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

int clu__start_watches(struct clu *c)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (c->watch[k])
            continue;
        int64_t rev;
        if (clu__list_kind(c, k, &rev))
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

static void *watch_stopper(void *arg)
{
    etcd_watch_stop(arg);
    return NULL;
}

/* A watch thread notices its stop flag only at curl's next progress call
 * (up to ~1 s when the stream is idle): stop the three side by side. */
void clu__stop_watches(struct clu *c)
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
