/*
 * store_etcd_metrics.c - the etcd backend's metric history (contract in
 * store.h, layout in docs/internals/store.md).
 *
 * One key per group per store_metrics_add() batch, in 10-minute buckets:
 *   PREFIX/groups/<g>/metrics/<12-digit bucket>/<20-digit newest at_ms>-<random>
 * (bucket = newest at_ms / 600000), value
 *   {"g": [[at_ms, avg_load, in_service, desired]...], "i": [[at_ms, id, load]...]}.
 * A batch of a steady group is one put: one write per history period.
 *
 * Pruning works by whole buckets: a bucket goes when all of it is older
 * than the bound (one delete-prefix op per bucket), so rows may outlive the
 * bound by up to 10 minutes. And it writes nothing of its own for the
 * groups this handle writes metrics for: the deletes ride in the next
 * batch's txn (the write budget of a steady group is exactly its metric
 * batches), while this handle's reads already skip the pruned buckets.
 * Groups the handle only knows from its first prune (every group with
 * settings) are pruned at once, in their own txn.
 */
#include "store/store_etcd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define BUCKET_MS   600000LL /* 10 minutes */
#define MAX_DELETES 48       /* bucket deletes riding in one batch txn (etcd allows 128 ops) */
#define MAX_GROUPS  48       /* groups in one store_metrics_add() batch */

static int64_t bucket_of(int64_t at_ms)
{
    return at_ms < 0 ? 0 : at_ms / BUCKET_MS;
}

static struct es_memo *memo_of(struct es *e, const char *group, int add)
{
    for (size_t i = 0; i < e->n_memo; i++)
        if (strcmp(e->memo[i].group, group) == 0)
            return &e->memo[i];
    if (!add || store_grow((void **)&e->memo, &e->cap_memo, e->n_memo + 1, sizeof(*e->memo)))
        return NULL;
    struct es_memo *m = &e->memo[e->n_memo++];
    memset(m, 0, sizeof(*m));
    snprintf(m->group, sizeof(m->group), "%s", group);
    m->oldest_bucket = INT64_MIN;
    return m;
}

void es_metrics_forget(struct store *st, const char *group)
{
    struct es *e = ES(st);
    struct es_memo *m = memo_of(e, group, 0);
    if (m)
        *m = e->memo[--e->n_memo];
}

/* Rows older than this are pruned but maybe not deleted yet: this handle's reads skip them. */
static int64_t hidden_below(struct es *e, const char *group)
{
    const struct es_memo *m = memo_of(e, group, 0);
    return m && m->pending_below ? m->pending_below * BUCKET_MS : INT64_MIN;
}

static double finite_or(double v)
{
    return isfinite(v) ? v : -1;
}

/* ---- add ------------------------------------------------------------------------------------ */

struct batch {
    const char *group;
    json_t *val;
    int64_t newest;
    char *key, *text;
    char *dels[MAX_DELETES]; /* bucket prefixes deleted with this batch */
    size_t n_dels;
    int64_t dels_below; /* pending_below once the txn succeeded */
};

static void batches_free(struct batch *b, size_t n)
{
    for (size_t i = 0; b && i < n; i++) {
        json_decref(b[i].val);
        free(b[i].key);
        free(b[i].text);
        for (size_t k = 0; k < b[i].n_dels; k++)
            free(b[i].dels[k]);
    }
    free(b);
}

/* Groups the rows by group into JSON values (in order of appearance). */
static int build_batches(struct store *st, const struct store_metric_group *g, size_t ng,
                         const struct store_metric_instance *inst, size_t ni, struct batch *b,
                         size_t *nb)
{
    for (size_t i = 0; i < ng + ni; i++) {
        const char *grp = i < ng ? g[i].group : inst[i - ng].group;
        int64_t at = i < ng ? g[i].at_ms : inst[i - ng].at_ms;
        size_t d = 0;
        while (d < *nb && strcmp(b[d].group, grp) != 0)
            d++;
        if (d == *nb) {
            if (*nb == MAX_GROUPS)
                return store_set_err(st, STORE_EINVAL, "a metric batch may hold at most %d groups",
                                     MAX_GROUPS);
            b[d].group = grp;
            b[d].newest = at;
            if (!(b[d].val = json_pack("{s:[], s:[]}", "g", "i")))
                return store_set_err(st, STORE_ENOMEM, "out of memory adding metrics");
            (*nb)++;
        }
        if (at > b[d].newest)
            b[d].newest = at;
        json_t *row = i < ng ? json_pack("[I, f, i, i]", (json_int_t)at, finite_or(g[i].avg_load),
                                         g[i].in_service, g[i].desired)
                             : json_pack("[I, s, f]", (json_int_t)at, inst[i - ng].instance_id,
                                         finite_or(inst[i - ng].load));
        if (!row || json_array_append_new(json_object_get(b[d].val, i < ng ? "g" : "i"), row))
            return store_set_err(st, STORE_EINVAL, "metric row %zu cannot be encoded (UTF-8?)", i);
    }
    return 0;
}

int es_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                   const struct store_metric_instance *inst, size_t ni)
{
    struct es *e = ES(st);
    struct batch *b = calloc(MAX_GROUPS, sizeof(*b));
    size_t nb = 0;
    struct etcd_op *ops = calloc(MAX_GROUPS * (1 + MAX_DELETES), sizeof(*ops));
    struct etcd_cmp cmps[MAX_GROUPS];
    struct etcd_op fail[MAX_GROUPS];
    size_t nops = 0, nc = 0, nf = 0, n_dels = 0;
    struct etcd_txn_result *r = NULL;
    int rc = 0;
    if (!b || !ops) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory adding metrics");
        goto out;
    }
    if ((rc = build_batches(st, g, ng, inst, ni, b, &nb)) != 0)
        goto out;
    for (size_t d = 0; d < nb; d++) {
        b[d].key = es_key(st, "/groups/%s/metrics/%012lld/%020lld-%016llx", b[d].group,
                          (long long)bucket_of(b[d].newest), (long long)b[d].newest,
                          (unsigned long long)es_rand());
        b[d].text = es_dump(st, b[d].val);
        if (!b[d].key || !b[d].text) {
            rc = STORE_ENOMEM;
            goto out;
        }
        ops[nops++] = (struct etcd_op){.type = ETCD_OP_PUT,
                                       .key = b[d].key,
                                       .key_len = ETCD_NUL,
                                       .value = b[d].text,
                                       .value_len = ETCD_NUL};
        es_fence_add(st, b[d].group, cmps, &nc, fail, &nf);
        /* pruned buckets of the group go in the same txn */
        const struct es_memo *m = memo_of(e, b[d].group, 0);
        if (m && m->pending_below && m->oldest_bucket != INT64_MIN) {
            int64_t from = m->oldest_bucket, to = m->pending_below;
            for (int64_t k = from; k < to && b[d].n_dels < MAX_DELETES && n_dels < MAX_DELETES;
                 k++) {
                char *p = es_key(st, "/groups/%s/metrics/%012lld/", b[d].group, (long long)k);
                if (!p) {
                    rc = STORE_ENOMEM;
                    goto out;
                }
                b[d].dels[b[d].n_dels++] = p;
                n_dels++;
                ops[nops++] = (struct etcd_op){
                    .type = ETCD_OP_DELETE, .key = p, .key_len = ETCD_NUL, .prefix = 1};
                b[d].dels_below = k + 1;
            }
        }
    }
    rc = etcd_txn(e->h, cmps, nc, ops, nops, fail, nf, &r);
    if (rc) {
        rc = es_err(st, rc, "cannot add metrics");
        goto out;
    }
    if (!r->succeeded) {
        /* fences were added in group order: the i-th fenced group has failure op i */
        size_t fi = 0;
        for (size_t d = 0; !rc && d < nb; d++) {
            struct etcd_cmp c1[1];
            struct etcd_op f1[1];
            size_t x = 0, y = 0;
            if (es_fence_add(st, b[d].group, c1, &x, f1, &y))
                rc = es_fence_check(st, b[d].group, r, fi++);
        }
        if (!rc)
            rc = store_set_err(st, STORE_EIO, "metric batch refused by etcd");
        goto out;
    }
    for (size_t d = 0; d < nb; d++) {
        struct es_memo *m = memo_of(e, b[d].group, 1);
        if (!m)
            continue;
        m->adds = 1;
        if (b[d].n_dels) {
            m->oldest_bucket = b[d].dels_below;
            if (m->oldest_bucket >= m->pending_below)
                m->pending_below = 0;
        }
        int64_t nb_bucket = bucket_of(b[d].newest);
        if (m->oldest_bucket == INT64_MAX ||
            (m->oldest_bucket != INT64_MIN && nb_bucket < m->oldest_bucket && !m->pending_below))
            m->oldest_bucket = nb_bucket;
    }
out:
    etcd_txn_result_free(r);
    batches_free(b, nb);
    free(ops);
    return rc;
}

/* ---- reads ---------------------------------------------------------------------------------- */

/*
 * The narrowest key prefix holding every bucket of group from since_ms on:
 * the digits that the 12-digit buckets of since_ms and of a day from now
 * have in common (keys after now do not exist).
 */
static char *metrics_prefix(struct store *st, const char *group, int64_t since_ms)
{
    char a[32], b[32];
    snprintf(a, sizeof(a), "%012lld", (long long)bucket_of(since_ms));
    snprintf(b, sizeof(b), "%012lld", (long long)bucket_of(clk_wall_ms() + 86400000LL));
    size_t n = 0;
    while (a[n] && a[n] == b[n])
        n++;
    a[n] = '\0';
    return es_key(st, "/groups/%s/metrics/%s", group, a);
}

/* Every batch of group that may hold rows >= since_ms, handed to fn with the visible floor. */
typedef int (*batch_fn)(struct store *st, const json_t *val, int64_t floor, void *ctx);

struct each_ctx {
    int64_t floor;
    batch_fn fn;
    void *ctx;
};

static int batch_kv(struct store *st, struct etcd_kv *kv, void *p)
{
    struct each_ctx *c = p;
    /* the key names the batch's newest row: older batches hold nothing we want */
    const char *slash = memrchr(kv->key, '/', kv->key_len);
    if (slash && strtoll(slash + 1, NULL, 10) < c->floor)
        return 0;
    json_t *v = es_json(kv);
    int rc = json_is_object(v) ? c->fn(st, v, c->floor, c->ctx) : 0;
    json_decref(v);
    return rc;
}

static int each_batch(struct store *st, const char *group, int64_t since_ms, batch_fn fn, void *ctx)
{
    int64_t hidden = hidden_below(ES(st), group);
    struct each_ctx c = {.floor = since_ms > hidden ? since_ms : hidden, .fn = fn, .ctx = ctx};
    char *k = metrics_prefix(st, group, c.floor);
    if (!k)
        return STORE_ENOMEM;
    /* page by page: a day of batches of a large group does not fit in memory at once */
    int rc = es_range_each(st, k, ES_METRICS_PAGE, 0, batch_kv, &c);
    free(k);
    return rc;
}

/* Sorted, the newest max of the *n elements (size esz) kept at the front. */
static void keep_newest(void *arr, size_t *n, size_t max, size_t esz,
                        int (*cmp)(const void *, const void *))
{
    if (*n)
        qsort(arr, *n, esz, cmp);
    if (*n > max) {
        memmove(arr, (char *)arr + (*n - max) * esz, max * esz);
        *n = max;
    }
}

static int cmp_mg(const void *a, const void *b);
static int cmp_mi(const void *a, const void *b);

struct mg_ctx {
    const char *group;
    size_t max_rows;
    struct store_metric_group *arr;
    size_t n, cap;
};

static int mg_batch(struct store *st, const json_t *val, int64_t floor, void *p)
{
    struct mg_ctx *c = p;
    json_t *rows = json_object_get(val, "g");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *r = json_array_get(rows, i);
        int64_t at = (int64_t)json_integer_value(json_array_get(r, 0));
        if (at < floor)
            continue;
        if (store_grow((void **)&c->arr, &c->cap, c->n + 1, sizeof(*c->arr)))
            return store_set_err(st, STORE_ENOMEM, "out of memory reading metrics");
        struct store_metric_group *m = &c->arr[c->n++];
        memset(m, 0, sizeof(*m));
        snprintf(m->group, sizeof(m->group), "%s", c->group);
        m->at_ms = at;
        m->avg_load = json_number_value(json_array_get(r, 1));
        m->in_service = (int)json_integer_value(json_array_get(r, 2));
        m->desired = (int)json_integer_value(json_array_get(r, 3));
    }
    if (c->n > 2 * c->max_rows) /* older rows cannot make the cut any more */
        keep_newest(c->arr, &c->n, c->max_rows, sizeof(*c->arr), cmp_mg);
    return 0;
}

static int cmp_mg(const void *a, const void *b)
{
    const struct store_metric_group *x = a, *y = b;
    return x->at_ms == y->at_ms ? 0 : x->at_ms < y->at_ms ? -1 : 1;
}

int es_metrics_group_since(struct store *st, const char *group, int64_t since_ms, size_t max_rows,
                           struct store_metric_group **out, size_t *n)
{
    struct mg_ctx c = {.group = group, .max_rows = max_rows};
    int rc = each_batch(st, group, since_ms, mg_batch, &c);
    if (rc) {
        free(c.arr);
        return rc;
    }
    keep_newest(c.arr, &c.n, max_rows, sizeof(*c.arr), cmp_mg);
    if (!c.n) {
        free(c.arr);
        c.arr = NULL;
    }
    *out = c.arr;
    *n = c.n;
    return 0;
}

struct mi_ctx {
    const char *group, *id;
    size_t max_rows;
    struct store_metric_instance *arr;
    size_t n, cap;
};

static int mi_batch(struct store *st, const json_t *val, int64_t floor, void *p)
{
    struct mi_ctx *c = p;
    json_t *rows = json_object_get(val, "i");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *r = json_array_get(rows, i);
        int64_t at = (int64_t)json_integer_value(json_array_get(r, 0));
        const char *id = json_string_value(json_array_get(r, 1));
        if (at < floor || !id || (c->id && strcmp(c->id, id) != 0))
            continue;
        if (store_grow((void **)&c->arr, &c->cap, c->n + 1, sizeof(*c->arr)))
            return store_set_err(st, STORE_ENOMEM, "out of memory reading metrics");
        struct store_metric_instance *m = &c->arr[c->n++];
        memset(m, 0, sizeof(*m));
        snprintf(m->group, sizeof(m->group), "%s", c->group);
        m->at_ms = at;
        snprintf(m->instance_id, sizeof(m->instance_id), "%s", id);
        m->load = json_number_value(json_array_get(r, 2));
    }
    if (c->n > 2 * c->max_rows)
        keep_newest(c->arr, &c->n, c->max_rows, sizeof(*c->arr), cmp_mi);
    return 0;
}

static int cmp_mi(const void *a, const void *b)
{
    const struct store_metric_instance *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return strcmp(x->instance_id, y->instance_id);
}

int es_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                              int64_t since_ms, size_t max_rows, struct store_metric_instance **out,
                              size_t *n)
{
    struct mi_ctx c = {.group = group, .id = instance_id, .max_rows = max_rows};
    int rc = each_batch(st, group, since_ms, mi_batch, &c);
    if (rc) {
        free(c.arr);
        return rc;
    }
    keep_newest(c.arr, &c.n, max_rows, sizeof(*c.arr), cmp_mi);
    if (!c.n) {
        free(c.arr);
        c.arr = NULL;
    }
    *out = c.arr;
    *n = c.n;
    return 0;
}

/* ---- prune ---------------------------------------------------------------------------------- */

struct survey_ctx {
    size_t dir;    /* length of the group's metrics prefix */
    int64_t bound; /* buckets below it are counted */
    int64_t floor; /* buckets below it were counted by an earlier prune */
    int64_t oldest;
    int64_t *rows; /* NULL: not counted (keys only) */
};

static int survey_kv(struct store *st, struct etcd_kv *kv, void *p)
{
    (void)st;
    struct survey_ctx *c = p;
    int64_t bk = kv->key_len > c->dir ? strtoll(kv->key + c->dir, NULL, 10) : 0;
    if (bk < c->oldest)
        c->oldest = bk;
    if (!c->rows || bk >= c->bound || bk < c->floor)
        return 0;
    json_t *v = es_json(kv);
    *c->rows += (int64_t)(json_array_size(json_object_get(v, "g")) +
                          json_array_size(json_object_get(v, "i")));
    json_decref(v);
    return 0;
}

/*
 * Looks at group's metric keys: learns the oldest bucket and, when rows is
 * not NULL, adds the rows of the buckets below bound_bucket (values are
 * read only then; page by page either way).
 */
static int survey(struct store *st, struct es_memo *m, int64_t bound_bucket, int64_t *rows)
{
    char *k = es_key(st, "/groups/%s/metrics/", m->group);
    if (!k)
        return STORE_ENOMEM;
    struct survey_ctx c = {.dir = strlen(k),
                           .bound = bound_bucket,
                           .floor = m->pending_below,
                           .oldest = INT64_MAX,
                           .rows = rows};
    int rc = es_range_each(st, k, rows ? ES_METRICS_PAGE : ES_PAGE, rows == NULL, survey_kv, &c);
    free(k);
    if (!rc)
        m->oldest_bucket = c.oldest;
    return rc;
}

/* Deletes buckets [oldest, below) of group now, in txns of at most MAX_DELETES ops. */
static int delete_buckets(struct store *st, struct es_memo *m, int64_t below)
{
    int rc = 0;
    while (!rc && m->oldest_bucket < below) {
        struct etcd_op ops[MAX_DELETES];
        char *keys[MAX_DELETES];
        size_t n = 0;
        for (int64_t k = m->oldest_bucket; k < below && n < MAX_DELETES; k++) {
            if (!(keys[n] = es_key(st, "/groups/%s/metrics/%012lld/", m->group, (long long)k))) {
                rc = STORE_ENOMEM;
                break;
            }
            ops[n] = (struct etcd_op){
                .type = ETCD_OP_DELETE, .key = keys[n], .key_len = ETCD_NUL, .prefix = 1};
            n++;
        }
        if (!rc && n)
            rc = es_fenced_ops(st, m->group, ops, n, NULL, "cannot prune metrics");
        if (!rc)
            m->oldest_bucket += (int64_t)n;
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
    }
    return rc;
}

int es_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted)
{
    struct es *e = ES(st);
    int rc = 0;
    if (!e->pruned_once) {
        /* the first prune of a handle looks at every group; later ones at what it writes */
        char **names = NULL;
        size_t nn = 0;
        if ((rc = es_group_names(st, &names, &nn)) != 0)
            return rc;
        for (size_t i = 0; i < nn; i++)
            memo_of(e, names[i], 1);
        store_names_free(names, nn);
        e->pruned_once = 1;
    }
    int64_t bound = older_than_ms < 0 ? 0 : older_than_ms / BUCKET_MS;
    int64_t rows = 0;
    for (size_t i = 0; !rc && i < e->n_memo; i++) {
        struct es_memo *m = &e->memo[i];
        if (m->oldest_bucket != INT64_MIN && m->oldest_bucket >= bound)
            continue; /* nothing old enough: no request at all */
        if (bound <= m->pending_below)
            continue; /* already pruned that far, the deletes wait for the next batch */
        if (deleted || m->oldest_bucket == INT64_MIN)
            rc = survey(st, m, bound, deleted ? &rows : NULL);
        if (rc || m->oldest_bucket >= bound)
            continue;
        if (m->adds)
            m->pending_below = bound; /* rides in the next batch; hidden from our reads now */
        else
            rc = delete_buckets(st, m, bound);
    }
    if (!rc && deleted)
        *deleted = rows;
    return rc;
}
