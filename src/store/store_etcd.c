/*
 * store_etcd.c - the etcd backend of the store (contract in store.h, key
 * layout and revisions in docs/internals/store.md): open, the watch that
 * keeps the settings cache fresh and calls store_watch()'s callback, group
 * settings, spec, group list and deletion, requests and fencing. Instances,
 * intents, activities and metrics are in store_etcd_rows.c.
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

#define PAGE        500 /* kvs per range request when listing */
#define CAS_RETRIES 8   /* read-modify-write attempts before giving up with ECONFLICT */

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

int es_range_all(struct store *st, const char *key, struct etcd_kv **out, size_t *n)
{
    struct etcd_kv *all = NULL;
    size_t cnt = 0, cap = 0;
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.limit = PAGE;
    o.sort_order = ETCD_SORT_ASCEND;
    o.sort_target = ETCD_SORT_CREATE;
    for (;;) {
        struct etcd_range_result *r = NULL;
        int rc = etcd_range(ES(st)->h, key, ETCD_NUL, &o, &r);
        if (rc) {
            es_kvs_free(all, cnt);
            return es_err(st, rc, "cannot list keys");
        }
        if (store_grow((void **)&all, &cap, cnt + r->n_kvs + 1, sizeof(*all))) {
            etcd_range_result_free(r);
            es_kvs_free(all, cnt);
            return store_set_err(st, STORE_ENOMEM, "out of memory listing \"%s\"", key);
        }
        for (size_t i = 0; i < r->n_kvs; i++) {
            all[cnt++] = r->kvs[i];
            r->kvs[i].key = r->kvs[i].value = NULL; /* moved */
        }
        int more = r->more && r->n_kvs > 0;
        if (more) {
            o.min_create_revision = all[cnt - 1].create_revision + 1;
            o.revision = r->revision; /* every page from the same snapshot */
        }
        etcd_range_result_free(r);
        if (!more)
            break;
    }
    if (cnt == 0) {
        free(all);
        all = NULL;
    }
    *out = all;
    *n = cnt;
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
    int rc = es_range_all(st, k, &kvs, &nk);
    size_t klen = strlen(k);
    free(k);
    if (rc)
        return rc;
    char **arr = nk ? calloc(nk, sizeof(*arr)) : NULL;
    size_t cnt = 0;
    if (nk && !arr)
        rc = store_set_err(st, STORE_ENOMEM, "out of memory listing groups");
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
static int settings_of(const struct etcd_kv *kv, struct group_settings *g, char *err, size_t errlen)
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
            } else if (settings_of(&ev[i].kv, &g, why, sizeof(why)) == 0 &&
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

static int open_etcd(struct store *st, const struct store_etcd_settings *s)
{
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
    struct store *st = store_new(&store_etcd_ops);
    if (!st) {
        if (err && errlen)
            snprintf(err, errlen, "store: out of memory");
        return STORE_ENOMEM;
    }
    int rc = open_etcd(st, s);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", st->err);
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* ---- settings ------------------------------------------------------------------------------- */

/* Reads name's settings from etcd (not the cache) into *g; *mod (may be NULL) its mod revision. */
static int read_settings(struct store *st, const char *name, struct group_settings *g, int64_t *mod)
{
    struct es *e = ES(st);
    char *k = es_key(st, "/groups/%s/settings", name);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(e->h, k, ETCD_NUL, NULL, &r);
    free(k);
    if (rc)
        return es_err(st, rc, "cannot read group settings");
    char why[256] = "";
    if (r->n_kvs == 0)
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" has no settings in etcd", name);
    else if (settings_of(&r->kvs[0], g, why, sizeof(why)) != 0)
        rc = store_set_err(st, STORE_ECORRUPT,
                           "group \"%s\": stored settings in etcd are not valid: %s", name, why);
    if (!rc) {
        snprintf(g->name, sizeof(g->name), "%s", name);
        if (mod)
            *mod = r->kvs[0].mod_revision;
        pthread_mutex_lock(&e->cmu);
        if (e->watch && r->revision >= e->last_delete_rev)
            cache_put(e, g, r->kvs[0].mod_revision);
        pthread_mutex_unlock(&e->cmu);
    }
    etcd_range_result_free(r);
    return rc;
}

static int es_get_settings(struct store *st, const char *name, struct group_settings *out)
{
    struct es *e = ES(st);
    int rc = ensure_watch(st);
    if (rc && rc != STORE_EUNAVAIL)
        return rc;
    if (!rc && etcd_watch_connected(e->watch)) {
        pthread_mutex_lock(&e->cmu);
        const struct es_cached *c = cache_find(e, name);
        if (c)
            *out = c->g;
        pthread_mutex_unlock(&e->cmu);
        if (c)
            return 0;
    }
    return read_settings(st, name, out, NULL);
}

/*
 * Writes g as name's settings if the key's version is still `version` (0:
 * absent), plus whatever the fence of the group asks when fenced. *done is
 * 1 when written, 0 when the version moved (re-read and retry); errors and
 * EFENCED are returned.
 */
static int cas_settings(struct store *st, const struct group_settings *g, int64_t version,
                        int fenced, int *done)
{
    struct es *e = ES(st);
    *done = 0;
    char *k = es_key(st, "/groups/%s/settings", g->name);
    char *ik = es_key(st, "/index/groups/%s", g->name);
    struct group_settings w = *g;
    w.updated_at_ms = clk_wall_ms();
    w.revision = version + 1; /* the copy in the JSON, for people reading etcd */
    json_t *o = group_settings_to_json(&w);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!k || !ik || !val) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory writing settings");
        goto out;
    }
    struct etcd_cmp cmps[2] = {{.key = k,
                                .key_len = ETCD_NUL,
                                .target = ETCD_CMP_VERSION,
                                .result = ETCD_CMP_EQUAL,
                                .number = version}};
    size_t nc = 1, nf = 0;
    struct etcd_op ok[2] = {
        {.type = ETCD_OP_PUT, .key = k, .key_len = ETCD_NUL, .value = val, .value_len = ETCD_NUL},
        {.type = ETCD_OP_PUT, .key = ik, .key_len = ETCD_NUL, .value = "", .value_len = 0}};
    struct etcd_op fail[1];
    if (fenced)
        es_fence_add(st, g->name, cmps, &nc, fail, &nf);
    struct etcd_txn_result *r = NULL;
    rc = etcd_txn(e->h, cmps, nc, ok, 2, fail, nf, &r);
    if (rc) {
        rc = es_err(st, rc, "cannot write group settings");
        goto out;
    }
    if (r->succeeded) {
        *done = 1;
        pthread_mutex_lock(&e->cmu);
        if (e->watch)
            cache_put(e, &w, r->revision);
        pthread_mutex_unlock(&e->cmu);
    } else if (fenced) {
        rc = es_fence_check(st, g->name, r, 0);
    }
    etcd_txn_result_free(r);
out:
    free(k);
    free(ik);
    free(val);
    return rc;
}

/* The current version of key (0 when absent). */
static int key_version(struct store *st, const char *key, int64_t *version)
{
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.keys_only = 1;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, key, ETCD_NUL, &o, &r);
    if (rc)
        return es_err(st, rc, "cannot read a revision");
    *version = r->n_kvs ? r->kvs[0].version : 0;
    etcd_range_result_free(r);
    return 0;
}

static int es_put_settings(struct store *st, const struct group_settings *g,
                           int64_t expect_revision, int64_t *new_revision)
{
    char *k = es_key(st, "/groups/%s/settings", g->name);
    if (!k)
        return STORE_ENOMEM;
    int rc = 0;
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        int64_t v = expect_revision;
        if (expect_revision < 0 && (rc = key_version(st, k, &v)) != 0)
            break;
        int done = 0;
        rc = cas_settings(st, g, v, 0, &done);
        if (rc || done) {
            if (!rc && new_revision)
                *new_revision = v + 1;
            break;
        }
        if (expect_revision >= 0) {
            int64_t now = 0;
            if ((rc = key_version(st, k, &now)) == 0)
                rc = store_set_err(st, STORE_ECONFLICT,
                                   "settings of group \"%s\" are at revision %lld, not %lld: "
                                   "reload and retry",
                                   g->name, (long long)now, (long long)expect_revision);
            break;
        }
        rc = store_set_err(st, STORE_ECONFLICT,
                           "settings of group \"%s\" kept changing while writing them", g->name);
    }
    free(k);
    return rc;
}

static int es_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision)
{
    int rc = 0;
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        struct group_settings g;
        if ((rc = read_settings(st, name, &g, NULL)) != 0)
            return rc;
        if (desired < g.min_size || desired > g.max_size)
            return store_set_err(st, STORE_EINVAL, "group \"%s\": desired %d is outside [%d, %d]",
                                 name, desired, g.min_size, g.max_size);
        g.desired_capacity = desired;
        int done = 0;
        rc = cas_settings(st, &g, g.revision, 1, &done);
        if (rc)
            return rc;
        if (done) {
            if (new_revision)
                *new_revision = g.revision + 1;
            return 0;
        }
    }
    return store_set_err(st, STORE_ECONFLICT,
                         "settings of group \"%s\" kept changing while setting desired", name);
}

static int es_list_groups(struct store *st, char ***names, size_t *n)
{
    return es_group_names(st, names, n);
}

static int es_delete_group(struct store *st, const char *name)
{
    struct es *e = ES(st);
    char *sk = es_key(st, "/groups/%s/settings", name);
    char *pk = es_key(st, "/groups/%s/spec", name);
    char *dir = es_key(st, "/groups/%s/", name);
    char *ik = es_key(st, "/index/groups/%s", name);
    int rc = 0;
    if (!sk || !pk || !dir || !ik) {
        rc = STORE_ENOMEM;
        goto out;
    }
    int64_t v1 = 0, v2 = 0;
    if ((rc = key_version(st, sk, &v1)) != 0 || (rc = key_version(st, pk, &v2)) != 0)
        goto out;
    if (!v1 && !v2) {
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" does not exist in etcd", name);
        goto out;
    }
    /* the id indexes first: a leftover index entry is harmless, a missing one is not */
    if ((rc = es_delete_group_index(st, name)) != 0)
        goto out;
    struct etcd_op ops[2] = {
        {.type = ETCD_OP_DELETE, .key = dir, .key_len = ETCD_NUL, .prefix = 1},
        {.type = ETCD_OP_DELETE, .key = ik, .key_len = ETCD_NUL},
    };
    struct etcd_txn_result *r = NULL;
    rc = etcd_txn(e->h, NULL, 0, ops, 2, NULL, 0, &r);
    if (rc) {
        rc = es_err(st, rc, "cannot delete the group");
        goto out;
    }
    pthread_mutex_lock(&e->cmu);
    cache_drop(e, name, r->revision);
    pthread_mutex_unlock(&e->cmu);
    etcd_txn_result_free(r);
out:
    free(sk);
    free(pk);
    free(dir);
    free(ik);
    return rc;
}

/* ---- spec ----------------------------------------------------------------------------------- */

static int es_put_spec(struct store *st, const char *name, const char *text,
                       int64_t expect_revision, int64_t *new_revision)
{
    char *k = es_key(st, "/groups/%s/spec", name);
    if (!k)
        return STORE_ENOMEM;
    int rc = 0;
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        int64_t v = expect_revision;
        if (expect_revision < 0 && (rc = key_version(st, k, &v)) != 0)
            break;
        struct etcd_cmp cmp = {.key = k,
                               .key_len = ETCD_NUL,
                               .target = ETCD_CMP_VERSION,
                               .result = ETCD_CMP_EQUAL,
                               .number = v};
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .key = k,
                              .key_len = ETCD_NUL,
                              .value = text,
                              .value_len = ETCD_NUL};
        struct etcd_txn_result *r = NULL;
        rc = etcd_txn(ES(st)->h, &cmp, 1, &put, 1, NULL, 0, &r);
        if (rc) {
            rc = es_err(st, rc, "cannot write group spec");
            break;
        }
        int ok = r->succeeded;
        etcd_txn_result_free(r);
        if (ok) {
            if (new_revision)
                *new_revision = v + 1;
            break;
        }
        if (expect_revision >= 0) {
            int64_t now = 0;
            if ((rc = key_version(st, k, &now)) != 0)
                break;
            if (expect_revision == 0)
                rc = store_set_err(st, STORE_EEXIST, "group \"%s\" already has a spec", name);
            else
                rc = store_set_err(st, STORE_ECONFLICT,
                                   "spec of group \"%s\" is at revision %lld, not %lld: reload "
                                   "and retry",
                                   name, (long long)now, (long long)expect_revision);
            break;
        }
        rc = store_set_err(st, STORE_ECONFLICT, "spec of group \"%s\" kept changing", name);
    }
    free(k);
    return rc;
}

static int es_get_spec(struct store *st, const char *name, char **text, int64_t *revision)
{
    char *k = es_key(st, "/groups/%s/spec", name);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, k, ETCD_NUL, NULL, &r);
    free(k);
    if (rc)
        return es_err(st, rc, "cannot read group spec");
    if (r->n_kvs == 0) {
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" has no spec in etcd", name);
    } else {
        char *copy = strndup(r->kvs[0].value, r->kvs[0].value_len);
        if (!copy) {
            rc = store_set_err(st, STORE_ENOMEM, "out of memory reading a spec");
        } else {
            *text = copy;
            if (revision)
                *revision = r->kvs[0].version;
        }
    }
    etcd_range_result_free(r);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------------- */

static int es_request_add(struct store *st, const char *group, const char *kind,
                          const char *json_text, int64_t *id_out)
{
    int64_t now = clk_wall_ms();
    /* the key only has to be unique: the id is its create revision */
    char *k = es_key(st, "/groups/%s/requests/%020lld-%016llx", group, (long long)now,
                     (unsigned long long)es_rand());
    json_t *o = json_pack("{s:s, s:I, s:s}", "kind", kind, "created_at_ms", (json_int_t)now, "body",
                          json_text);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!k || !val) {
        rc = store_set_err(st, o ? STORE_ENOMEM : STORE_EINVAL,
                           "cannot encode request for group \"%s\" (body must be UTF-8)", group);
    } else {
        int64_t rev = 0;
        rc = etcd_put(ES(st)->h, k, ETCD_NUL, val, ETCD_NUL, 0, &rev);
        if (rc)
            rc = es_err(st, rc, "cannot record request");
        else if (id_out)
            *id_out = rev;
    }
    free(k);
    free(val);
    return rc;
}

static int es_request_list(struct store *st, const char *group, struct store_request **out,
                           size_t *n)
{
    char *k = es_key(st, "/groups/%s/requests/", group);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, &kvs, &nk);
    free(k);
    if (rc)
        return rc;
    struct store_request *arr = nk ? calloc(nk, sizeof(*arr)) : NULL;
    size_t cnt = 0;
    if (nk && !arr)
        rc = store_set_err(st, STORE_ENOMEM, "out of memory listing requests");
    for (size_t i = 0; !rc && i < nk; i++) {
        json_t *o = es_json(&kvs[i]);
        const char *body = json_string_value(json_object_get(o, "body"));
        if (!body) {
            log_warn("store etcd: unreadable request \"%s\" ignored", kvs[i].key);
            json_decref(o);
            continue;
        }
        struct store_request *q = &arr[cnt];
        q->id = kvs[i].create_revision;
        snprintf(q->group, sizeof(q->group), "%s", group);
        es_str(o, "kind", q->kind, sizeof(q->kind));
        q->created_at_ms = es_i64(o, "created_at_ms");
        if (!(q->json = strdup(body)))
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing requests");
        else
            cnt++;
        json_decref(o);
    }
    es_kvs_free(kvs, nk);
    if (rc) {
        store_requests_free(arr, cnt);
        return rc;
    }
    if (!cnt) {
        free(arr);
        arr = NULL;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

static int es_request_delete(struct store *st, const char *group, int64_t id)
{
    struct es *e = ES(st);
    char *dir = es_key(st, "/groups/%s/requests/", group);
    if (!dir)
        return STORE_ENOMEM;
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.keys_only = 1;
    o.min_create_revision = id;
    o.max_create_revision = id;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(e->h, dir, ETCD_NUL, &o, &r);
    free(dir);
    if (rc)
        return es_err(st, rc, "cannot find the request");
    if (r->n_kvs == 0) {
        etcd_range_result_free(r);
        return store_set_err(st, STORE_ENOENT, "no request %lld for group \"%s\"", (long long)id,
                             group);
    }
    struct etcd_cmp cmps[2] = {{.key = r->kvs[0].key,
                                .key_len = r->kvs[0].key_len,
                                .target = ETCD_CMP_CREATE,
                                .result = ETCD_CMP_EQUAL,
                                .number = id}};
    size_t nc = 1, nf = 0;
    struct etcd_op fail[1];
    es_fence_add(st, group, cmps, &nc, fail, &nf);
    struct etcd_op del = {
        .type = ETCD_OP_DELETE, .key = r->kvs[0].key, .key_len = r->kvs[0].key_len};
    struct etcd_txn_result *t = NULL;
    rc = etcd_txn(e->h, cmps, nc, &del, 1, fail, nf, &t);
    etcd_range_result_free(r);
    if (rc)
        return es_err(st, rc, "cannot delete the request");
    if (!t->succeeded) {
        rc = es_fence_check(st, group, t, 0);
        if (!rc)
            rc = store_set_err(st, STORE_ENOENT, "no request %lld for group \"%s\"", (long long)id,
                               group);
    }
    etcd_txn_result_free(t);
    return rc;
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
