/*
 * store_etcd.c - the etcd backend of the store (contract in store.h, key
 * layout and revisions in docs/internals/store.md): open, the helpers of
 * every store_etcd*.c, the watch that keeps the settings cache fresh and
 * calls store_watch()'s callback, and fencing. Settings, spec, groups and
 * requests are in store_etcd_groups.c; instances, intents and activities in
 * store_etcd_rows.c; metric history in store_etcd_metrics.c.
 *
 * Revisions: the revision of a group's settings (and of its spec) is the
 * etcd *version* of its key: 1 after the first put, +1 on every put, 0 when
 * absent, exactly SQLite's numbering, and a txn compare on VERSION is the
 * optimistic lock. Every write is one etcd txn (one revision): a write of
 * several keys (settings and the group index, an instance and its id index,
 * a metric batch of several groups) is one request.
 *
 * Fencing: a handle fenced for group G adds to every txn writing G's keys a
 * compare "CREATE revision of the owner key == the one the owner was given",
 * and to the failure branch a range of the owner key, so a failed txn tells
 * whether the fence or another compare failed.
 *
 * Threads: the store's mutex serialises calls (and the etcd handle es->h);
 * the watch thread only touches the cache (es->cmu) and the callback
 * (es->cbmu, held while the callback runs, so store_watch(NULL) can wait
 * for a running call). No lock is taken while holding another.
 */
#include "store/store_etcd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define CAS_RETRIES 8 /* read-modify-write attempts before giving up with ECONFLICT */

/* ---- helpers shared with store_etcd_rows.c -------------------------------------------------- */

int es_err(struct store *st, int rc, const char *what)
{
    struct es *e = ES(st);
    const char *detail = e && e->h ? etcd_errmsg(e->h) : etcd_strerror(rc);
    switch (rc) {
    case ETCD_EUNAVAIL:
    case ETCD_ETIMEOUT:
        return store_set_err(st, STORE_EUNAVAIL, "%s: etcd unavailable (%s)", what, detail);
    case ETCD_ENOMEM:
        return store_set_err(st, STORE_ENOMEM, "%s: out of memory", what);
    case ETCD_EINVAL:
        return store_set_err(st, STORE_EINVAL, "%s: refused by etcd (%s)", what, detail);
    default:
        return store_set_err(st, STORE_EIO, "%s: %s", what, detail);
    }
}

char *es_key(struct store *st, const char *fmt, ...)
{
    struct es *e = ES(st);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t plen = strlen(e->prefix);
    char *k = n < 0 ? NULL : malloc(plen + (size_t)n + 1);
    if (!k) {
        store_set_err(st, STORE_ENOMEM, "out of memory building a key");
        return NULL;
    }
    memcpy(k, e->prefix, plen);
    va_start(ap, fmt);
    vsnprintf(k + plen, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return k;
}

static const struct es_fence *fence_of(struct es *e, const char *group)
{
    for (size_t i = 0; i < e->n_fences; i++)
        if (strcmp(e->fences[i].group, group) == 0)
            return &e->fences[i];
    return NULL;
}

int es_fence_add(struct store *st, const char *group, struct etcd_cmp *cmps, size_t *n,
                 struct etcd_op *fail, size_t *nf)
{
    const struct es_fence *f = fence_of(ES(st), group);
    if (!f)
        return 0;
    cmps[*n] = (struct etcd_cmp){.key = f->owner_key,
                                 .key_len = ETCD_NUL,
                                 .target = ETCD_CMP_CREATE,
                                 .result = ETCD_CMP_EQUAL,
                                 .number = f->create_revision};
    (*n)++;
    fail[*nf] = (struct etcd_op){.type = ETCD_OP_RANGE, .key = f->owner_key, .key_len = ETCD_NUL};
    (*nf)++;
    return 1;
}

int es_fence_check(struct store *st, const char *group, const struct etcd_txn_result *r,
                   size_t fence_op)
{
    const struct es_fence *f = fence_of(ES(st), group);
    if (!f || r->succeeded || fence_op >= r->n_ops)
        return 0;
    const struct etcd_range_result *rr = &r->ops[fence_op].range;
    int64_t now = rr->n_kvs ? rr->kvs[0].create_revision : 0;
    if (now == f->create_revision)
        return 0;
    return store_set_err(st, STORE_EFENCED,
                         "not the owner of group \"%s\" any more: owner key \"%s\" %s (we hold "
                         "create revision %lld): nothing written",
                         group, f->owner_key, now ? "was re-created" : "is gone",
                         (long long)f->create_revision);
}

uint64_t es_rand(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        /* no entropy source: time and address still differ between writers */
        static uint64_t n;
        v = (uint64_t)clk_mono_ms() * 6364136223846793005ULL + (uint64_t)getpid() +
            __atomic_add_fetch(&n, 1, __ATOMIC_RELAXED);
    }
    return v;
}

json_t *es_json(const struct etcd_kv *kv)
{
    json_error_t je;
    return kv->value ? json_loadb(kv->value, kv->value_len, 0, &je) : NULL;
}

char *es_dump(struct store *st, const json_t *o)
{
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (!t)
        store_set_err(st, STORE_ENOMEM, "out of memory encoding a value");
    return t;
}

void es_str(const json_t *o, const char *key, char *dst, size_t size)
{
    const char *s = json_string_value(json_object_get(o, key));
    snprintf(dst, size, "%s", s ? s : "");
}

int64_t es_i64(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) >= -9e18 && json_real_value(v) <= 9e18)
        return (int64_t)json_real_value(v);
    return 0;
}

void es_kvs_free(struct etcd_kv *kvs, size_t n)
{
    if (!kvs)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

int es_range_each(struct store *st, const char *key, int64_t page, int keys_only, es_kv_fn fn,
                  void *ctx)
{
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.limit = page;
    o.keys_only = keys_only;
    o.sort_order = ETCD_SORT_ASCEND;
    o.sort_target = ETCD_SORT_CREATE;
    for (;;) {
        struct etcd_range_result *r = NULL;
        int rc = etcd_range(ES(st)->h, key, ETCD_NUL, &o, &r);
        if (rc)
            return es_err(st, rc, "cannot list keys");
        for (size_t i = 0; !rc && i < r->n_kvs; i++)
            rc = fn(st, &r->kvs[i], ctx);
        int more = !rc && r->more && r->n_kvs > 0;
        if (more) {
            o.min_create_revision = r->kvs[r->n_kvs - 1].create_revision + 1;
            o.revision = r->revision; /* every page from the same snapshot */
        }
        etcd_range_result_free(r);
        if (rc)
            return rc;
        if (!more)
            return 0;
    }
}

struct all_ctx {
    struct etcd_kv *kvs;
    size_t n, cap;
};

/* Moves kv into the list (the page's result no longer owns its strings). */
static int collect_kv(struct store *st, struct etcd_kv *kv, void *p)
{
    struct all_ctx *c = p;
    if (store_grow((void **)&c->kvs, &c->cap, c->n + 1, sizeof(*c->kvs)))
        return store_set_err(st, STORE_ENOMEM, "out of memory listing keys");
    c->kvs[c->n++] = *kv;
    kv->key = kv->value = NULL;
    return 0;
}

int es_range_all(struct store *st, const char *key, int64_t page, int keys_only,
                 struct etcd_kv **out, size_t *n)
{
    struct all_ctx c = {0};
    int rc = es_range_each(st, key, page, keys_only, collect_kv, &c);
    if (rc) {
        es_kvs_free(c.kvs, c.n);
        return rc;
    }
    if (c.n == 0) {
        free(c.kvs);
        c.kvs = NULL;
    }
    *out = c.kvs;
    *n = c.n;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int es_group_names(struct store *st, char ***names, size_t *n)
{
    char *k = es_key(st, "/index/groups/");
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, ES_PAGE, 1, &kvs, &nk);
    size_t klen = strlen(k);
    free(k);
    if (rc)
        return rc;
    char **arr = nk ? calloc(nk, sizeof(*arr)) : NULL;
    size_t cnt = 0;
    if (nk && !arr) {
        es_kvs_free(kvs, nk);
        return store_set_err(st, STORE_ENOMEM, "out of memory listing groups");
    }
    for (size_t i = 0; !rc && i < nk; i++) {
        if (kvs[i].key_len <= klen)
            continue;
        if (!(arr[cnt] = strdup(kvs[i].key + klen)))
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing groups");
        else
            cnt++;
    }
    es_kvs_free(kvs, nk);
    if (rc) {
        store_names_free(arr, cnt);
        return rc;
    }
    if (cnt)
        qsort(arr, cnt, sizeof(*arr), cmp_names);
    else {
        free(arr);
        arr = NULL;
    }
    *names = arr;
    *n = cnt;
    return 0;
}

/* ---- settings cache and watch --------------------------------------------------------------- */

static struct es_cached *cache_find(struct es *e, const char *name)
{
    for (size_t i = 0; i < e->n_cache; i++)
        if (strcmp(e->cache[i].g.name, name) == 0)
            return &e->cache[i];
    return NULL;
}

/* Inserts or refreshes name's entry unless the cache already has a newer one. Under cmu. */
static void cache_put(struct es *e, const struct group_settings *g, int64_t mod_revision)
{
    struct es_cached *c = cache_find(e, g->name);
    if (c) {
        if (c->mod_revision <= mod_revision) {
            c->g = *g;
            c->mod_revision = mod_revision;
        }
        return;
    }
    if (store_grow((void **)&e->cache, &e->cap_cache, e->n_cache + 1, sizeof(*e->cache)))
        return; /* a cache miss later, nothing worse */
    e->cache[e->n_cache].g = *g;
    e->cache[e->n_cache].mod_revision = mod_revision;
    e->n_cache++;
}

static void cache_drop(struct es *e, const char *name, int64_t revision)
{
    struct es_cached *c = cache_find(e, name);
    if (c)
        *c = e->cache[--e->n_cache];
    if (revision > e->last_delete_rev)
        e->last_delete_rev = revision;
}

static void notify(struct es *e, const char *group, int what)
{
    pthread_mutex_lock(&e->cbmu);
    if (e->cb)
        e->cb(e->cb_arg, group, what);
    pthread_mutex_unlock(&e->cbmu);
}

/*
 * Parses settings JSON of kv (the group module's form, group_settings_to_json())
 * into *g, revision = the key's version (authoritative over the copy in the
 * JSON); -1 if malformed or invalid, with the reason in err.
 */
int es_settings_of(const struct etcd_kv *kv, struct group_settings *g, char *err, size_t errlen)
{
    json_t *o = es_json(kv);
    int rc = o ? group_settings_from_json(o, g, err, errlen) : -1;
    if (!o)
        snprintf(err, errlen, "not JSON");
    json_decref(o);
    if (rc == 0)
        g->revision = kv->version;
    return rc;
}

/*
 * The watch thread's view of one key: which group and what changed, from
 * "PREFIX/groups/<g>/settings", ".../spec", ".../requests/<id>"; 0 for
 * keys nobody is told about (instances, metrics...).
 */
static int classify(const struct es *e, const struct etcd_kv *kv, char *group, size_t size)
{
    size_t plen = strlen(e->prefix);
    static const char groups[] = "/groups/";
    if (kv->key_len <= plen + sizeof(groups) - 1 || memcmp(kv->key, e->prefix, plen) != 0 ||
        memcmp(kv->key + plen, groups, sizeof(groups) - 1) != 0)
        return 0;
    const char *g = kv->key + plen + sizeof(groups) - 1;
    const char *end = kv->key + kv->key_len;
    static const struct {
        const char *suffix;
        int what;
        int is_dir;
    } kinds[] = {{"/settings", STORE_CHANGE_SETTINGS, 0},
                 {"/spec", STORE_CHANGE_SPEC, 0},
                 {"/requests/", STORE_CHANGE_REQUEST, 1}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t sl = strlen(kinds[i].suffix);
        const char *at = NULL;
        if (!kinds[i].is_dir) {
            if ((size_t)(end - g) > sl && memcmp(end - sl, kinds[i].suffix, sl) == 0)
                at = end - sl;
        } else {
            /* the request id has no '/': the last '/' ends the directory name */
            const char *slash = memrchr(g, '/', (size_t)(end - g));
            if (slash && slash - g >= (ptrdiff_t)sl - 1 &&
                memcmp(slash - (sl - 1), kinds[i].suffix, sl) == 0)
                at = slash - (sl - 1);
        }
        if (!at || at == g || (size_t)(at - g) >= size)
            continue;
        memcpy(group, g, (size_t)(at - g));
        group[at - g] = '\0';
        return kinds[i].what;
    }
    return 0;
}

static void watch_cb(void *arg, const struct etcd_event *ev, size_t n, int64_t revision)
{
    struct es *e = arg;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].type == ETCD_EV_RESET) {
            /* events were lost: forget the cache, tell about every group we knew */
            pthread_mutex_lock(&e->cmu);
            size_t nc = e->n_cache;
            char(*names)[STORE_NAME_MAX] = nc ? calloc(nc, STORE_NAME_MAX) : NULL;
            for (size_t k = 0; names && k < nc; k++)
                memcpy(names[k], e->cache[k].g.name, STORE_NAME_MAX);
            e->n_cache = 0;
            if (revision > e->last_delete_rev)
                e->last_delete_rev = revision;
            pthread_mutex_unlock(&e->cmu);
            log_warn("store etcd: watch lost events (compaction): settings cache dropped");
            for (size_t k = 0; names && k < nc; k++)
                notify(e, names[k], STORE_CHANGE_SETTINGS);
            free(names);
            continue;
        }
        char group[STORE_NAME_MAX], why[256] = "";
        int what = classify(e, &ev[i].kv, group, sizeof(group));
        if (!what)
            continue;
        if (what == STORE_CHANGE_SETTINGS) {
            struct group_settings g;
            if (ev[i].type == ETCD_EV_DELETE) {
                pthread_mutex_lock(&e->cmu);
                cache_drop(e, group, ev[i].kv.mod_revision);
                pthread_mutex_unlock(&e->cmu);
                what = STORE_CHANGE_DELETED;
            } else if (es_settings_of(&ev[i].kv, &g, why, sizeof(why)) == 0 &&
                       strcmp(g.name, group) == 0) {
                pthread_mutex_lock(&e->cmu);
                cache_put(e, &g, ev[i].kv.mod_revision);
                pthread_mutex_unlock(&e->cmu);
            } else {
                log_warn("store etcd: unreadable settings for group \"%s\" ignored: %s", group,
                         why);
                continue;
            }
        } else if (ev[i].type == ETCD_EV_DELETE) {
            continue; /* a spec or request going away is the owner's own doing */
        }
        notify(e, group, what);
    }
}

/* Starts the watch on PREFIX/groups/ once (lazily: only handles that read settings need it). */
static int ensure_watch(struct store *st)
{
    struct es *e = ES(st);
    if (e->watch)
        return 0;
    char *k = es_key(st, "/groups/");
    if (!k)
        return STORE_ENOMEM;
    /* the current revision, so the watch starts right after it: nothing falls in between */
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.count_only = 1;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(e->h, k, ETCD_NUL, &o, &r);
    if (rc) {
        free(k);
        return es_err(st, rc, "cannot start watching the groups");
    }
    int64_t rev = r->revision;
    etcd_range_result_free(r);
    char err[256];
    rc = etcd_watch_start(&e->cfg, k, ETCD_NUL, 1, rev + 1, watch_cb, e, &e->watch, err,
                          sizeof(err));
    free(k);
    if (rc)
        return store_set_err(st, rc == ETCD_ENOMEM ? STORE_ENOMEM : STORE_EIO,
                             "cannot start watching the groups: %s", err);
    return 0;
}

static int es_watch(struct store *st, store_watch_fn cb, void *arg)
{
    struct es *e = ES(st);
    pthread_mutex_lock(&e->cbmu);
    e->cb = cb;
    e->cb_arg = arg;
    pthread_mutex_unlock(&e->cbmu);
    if (!cb)
        return 0;
    pthread_mutex_lock(&st->mu);
    int rc = ensure_watch(st);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* ---- the cache and watch for store_etcd_groups.c -------------------------------------------- */

int es_ensure_watch(struct store *st)
{
    return ensure_watch(st);
}

int es_cache_get(struct es *e, const char *name, struct group_settings *out)
{
    pthread_mutex_lock(&e->cmu);
    const struct es_cached *c = cache_find(e, name);
    if (c)
        *out = c->g;
    pthread_mutex_unlock(&e->cmu);
    return c != NULL;
}

void es_cache_put(struct es *e, const struct group_settings *g, int64_t mod_revision,
                  int64_t read_revision)
{
    pthread_mutex_lock(&e->cmu);
    if (e->watch && (read_revision == 0 || read_revision >= e->last_delete_rev))
        cache_put(e, g, mod_revision);
    pthread_mutex_unlock(&e->cmu);
}

void es_cache_drop(struct es *e, const char *name, int64_t revision)
{
    pthread_mutex_lock(&e->cmu);
    cache_drop(e, name, revision);
    pthread_mutex_unlock(&e->cmu);
}

/* ---- open / close --------------------------------------------------------------------------- */

static void es_close(struct store *st)
{
    struct es *e = ES(st);
    if (!e)
        return;
    etcd_watch_stop(e->watch);
    etcd_free(e->h);
    for (size_t i = 0; i < e->n_fences; i++)
        free(e->fences[i].owner_key);
    free(e->fences);
    free(e->memo);
    free(e->cache);
    free(e->endpoints);
    free(e->ca_file);
    free(e->cert_file);
    free(e->key_file);
    free(e->prefix);
    pthread_mutex_destroy(&e->cmu);
    pthread_mutex_destroy(&e->cbmu);
    free(e);
    st->be = NULL;
}

extern const struct store_ops store_etcd_ops;

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s || !*s)
        return 0;
    return (*out = strdup(s)) ? 0 : -1;
}

static int open_etcd(struct store *st, const void *arg)
{
    const struct store_etcd_settings *s = arg;
    struct es *e = calloc(1, sizeof(*e));
    if (!e)
        return store_set_err(st, STORE_ENOMEM, "store: out of memory");
    pthread_mutex_init(&e->cmu, NULL);
    pthread_mutex_init(&e->cbmu, NULL);
    st->be = e;
    const char *prefix = s->prefix && *s->prefix ? s->prefix : "/asgd";
    size_t plen = strlen(prefix);
    while (plen > 1 && prefix[plen - 1] == '/')
        plen--;
    e->prefix = strndup(prefix, plen);
    if (!e->prefix || dup_opt(s->endpoints, &e->endpoints) || dup_opt(s->ca_file, &e->ca_file) ||
        dup_opt(s->cert_file, &e->cert_file) || dup_opt(s->key_file, &e->key_file))
        return store_set_err(st, STORE_ENOMEM, "store: out of memory");
    int64_t t = s->timeout_ms > 0 ? s->timeout_ms : 5000;
    e->cfg.endpoints = e->endpoints;
    e->cfg.ca_file = e->ca_file;
    e->cfg.cert_file = e->cert_file;
    e->cfg.key_file = e->key_file;
    e->cfg.call_timeout_ms = (int)(t > 600000 ? 600000 : t);
    /* several attempts per call: a dead member costs one attempt, then the next is tried */
    e->cfg.attempt_timeout_ms = e->cfg.call_timeout_ms / 3 > 0 ? e->cfg.call_timeout_ms / 3 : 1;
    char err[256];
    int rc = etcd_new(&e->cfg, &e->h, err, sizeof(err));
    if (rc)
        return store_set_err(st, rc == ETCD_ENOMEM ? STORE_ENOMEM : STORE_EINVAL,
                             "store: etcd endpoints \"%s\": %s", s->endpoints, err);
    /* one read now, so a wrong address or a cluster without quorum is an error at open */
    char *k = es_key(st, "/index/groups/");
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.count_only = 1;
    struct etcd_range_result *r = NULL;
    rc = etcd_range(e->h, k, ETCD_NUL, &o, &r);
    free(k);
    etcd_range_result_free(r);
    if (rc)
        return es_err(st, rc, "store: cannot read from etcd");
    st->version = STORE_SCHEMA_VERSION;
    return 0;
}

int store_open_etcd(const struct store_etcd_settings *s, struct store **out, char *err,
                    size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!s || !s->endpoints || !*s->endpoints || !out) {
        if (err && errlen)
            snprintf(err, errlen, "store: no etcd endpoints given");
        return STORE_EINVAL;
    }
    return store__open_backend(&store_etcd_ops, open_etcd, s, out, err, errlen);
}

/* ---- fencing -------------------------------------------------------------------------------- */

static int es_set_fence(struct store *st, const char *group, const char *owner_key,
                        int64_t owner_create_revision)
{
    struct es *e = ES(st);
    for (size_t i = 0; i < e->n_fences; i++) {
        if (strcmp(e->fences[i].group, group) != 0)
            continue;
        if (!owner_key) {
            free(e->fences[i].owner_key);
            e->fences[i] = e->fences[--e->n_fences];
            return 0;
        }
        char *k = strdup(owner_key);
        if (!k)
            return store_set_err(st, STORE_ENOMEM, "out of memory setting a fence");
        free(e->fences[i].owner_key);
        e->fences[i].owner_key = k;
        e->fences[i].create_revision = owner_create_revision;
        return 0;
    }
    if (!owner_key)
        return 0;
    struct es_fence *f = realloc(e->fences, (e->n_fences + 1) * sizeof(*f));
    if (!f)
        return store_set_err(st, STORE_ENOMEM, "out of memory setting a fence");
    e->fences = f;
    f = &e->fences[e->n_fences];
    snprintf(f->group, sizeof(f->group), "%s", group);
    if (!(f->owner_key = strdup(owner_key)))
        return store_set_err(st, STORE_ENOMEM, "out of memory setting a fence");
    f->create_revision = owner_create_revision;
    e->n_fences++;
    return 0;
}

const struct store_ops store_etcd_ops = {
    .name = "etcd",
    .slash_free = 1,
    .close = es_close,
    .get_settings = es_get_settings,
    .put_settings = es_put_settings,
    .set_desired = es_set_desired,
    .list_groups = es_list_groups,
    .delete_group = es_delete_group,
    .put_spec = es_put_spec,
    .get_spec = es_get_spec,
    .put_instance = es_put_instance,
    .set_instance_lifecycle = es_set_instance_lifecycle,
    .get_instance = es_get_instance,
    .delete_instance = es_delete_instance,
    .list_instances = es_list_instances,
    .intent_create = es_intent_create,
    .intent_complete = es_intent_complete,
    .intent_list_open = es_intent_list_open,
    .activity_add = es_activity_add,
    .activity_list = es_activity_list,
    .metrics_add = es_metrics_add,
    .metrics_group_since = es_metrics_group_since,
    .metrics_instance_since = es_metrics_instance_since,
    .metrics_prune = es_metrics_prune,
    .request_add = es_request_add,
    .request_list = es_request_list,
    .request_delete = es_request_delete,
    .watch = es_watch,
    .set_fence = es_set_fence,
};
