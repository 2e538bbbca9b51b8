/*
 * store.c - the store's public API (store.h): argument checks common to both
 * backends, done once here, then dispatch through the handle's vtable to
 * store_sqlite*.c or store_etcd.c under the handle's mutex.
 *
 * Why checks live here: the contract (lengths, 0 <= min <= desired <= max,
 * non-empty ids, NUL-terminated fields) is the same whatever keeps the data,
 * and a second copy per backend would drift. A backend only reports what its
 * storage says (missing rows, conflicts, I/O, fencing).
 */
#include "store/store_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

#define ACTIVITY_LIMIT  10000
#define METRIC_ROWS_MAX 1000000

/* ---- shared helpers ------------------------------------------------------------------------- */

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK:
        return "success";
    case STORE_ENOENT:
        return "not found";
    case STORE_EEXIST:
        return "already exists";
    case STORE_EINVAL:
        return "invalid argument";
    case STORE_ECONFLICT:
        return "changed concurrently (revision mismatch)";
    case STORE_EVERSION:
        return "database schema is newer than this asgd";
    case STORE_ECORRUPT:
        return "database is corrupt or not a database";
    case STORE_EIO:
        return "cannot read or write the database";
    case STORE_ENOMEM:
        return "out of memory";
    case STORE_EFENCED:
        return "not the owner of the group any more";
    case STORE_EUNAVAIL:
        return "store unavailable (etcd unreachable or without quorum)";
    case STORE_ENOTSUP:
        return "not supported by this store backend";
    default:
        return "unknown error";
    }
}

int store_set_err(struct store *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof(st->err), fmt, ap);
    va_end(ap);
    return code;
}

int store_str_ok(const char *s, size_t size, int nonempty)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, size);
    return n < size && (!nonempty || n > 0);
}

int store_grow(void **arr, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * esz);
    if (!p)
        return STORE_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

struct store *store_new(const struct store_ops *ops)
{
    struct store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return NULL;
    }
    st->ops = ops;
    return st;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    pthread_mutex_destroy(&st->mu);
    free(st);
}

const char *store_errmsg(struct store *st)
{
    if (!st)
        return "no store";
    return st->err[0] ? st->err : "no error";
}

/*
 * store_str_ok() for a group name or an id: the etcd backend builds keys
 * from them ("P/groups/<g>/instances/<id>"), where a '/' would put one
 * group inside another's prefix.
 */
static int key_ok(const struct store *st, const char *s, size_t size, int nonempty)
{
    return store_str_ok(s, size, nonempty) && (!st->ops->slash_free || !strchr(s, '/'));
}

static void lock(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    st->err[0] = '\0';
}

static void unlock(struct store *st)
{
    pthread_mutex_unlock(&st->mu);
}

/* ---- open / close --------------------------------------------------------------------------- */

static int open_sqlite(struct store *st, const void *dir)
{
    return store_sqlite_open(st, dir);
}

int store_open(const char *dir, struct store **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!dir || !*dir || !out) {
        if (err && errlen)
            snprintf(err, errlen, "store: no state directory given");
        return STORE_EINVAL;
    }
    return store__open_backend(&store_sqlite_ops, open_sqlite, dir, out, err, errlen);
}

int store__open_backend(const struct store_ops *ops, int (*open)(struct store *, const void *),
                        const void *arg, struct store **out, char *err, size_t errlen)
{
    struct store *st = store_new(ops);
    if (!st) {
        if (err && errlen)
            snprintf(err, errlen, "store: out of memory");
        return STORE_ENOMEM;
    }
    int rc = open(st, arg);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", st->err);
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    st->ops->close(st);
    store_free(st);
}

int store_schema_version(struct store *st)
{
    return st ? st->version : 0;
}

/* ---- group settings ------------------------------------------------------------------------- */

int store_get_settings(struct store *st, const char *name, struct group_settings *out)
{
    if (!st || !out || !key_ok(st, name, STORE_NAME_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->get_settings(st, name, out);
    unlock(st);
    return rc;
}

static int settings_valid(struct store *st, const struct group_settings *g)
{
    if (!key_ok(st, g->name, sizeof(g->name), 1))
        return store_set_err(st, STORE_EINVAL, "group name is empty or too long");
    if (g->min_size < 0 || g->min_size > g->max_size || g->desired_capacity < g->min_size ||
        g->desired_capacity > g->max_size)
        return store_set_err(st, STORE_EINVAL,
                             "group \"%s\": need 0 <= min (%d) <= desired (%d) <= max (%d)",
                             g->name, g->min_size, g->desired_capacity, g->max_size);
    const struct policy_settings *p = &g->policy;
    if (!isfinite(p->up_threshold) || !isfinite(p->down_threshold) || !isfinite(p->up_factor) ||
        !isfinite(p->down_factor) || !isfinite(p->target) || !isfinite(p->tolerance))
        return store_set_err(st, STORE_EINVAL, "group \"%s\": a policy number is not finite",
                             g->name);
    if (g->policy.type != POLICY_THRESHOLD && g->policy.type != POLICY_TARGET &&
        g->policy.type != POLICY_PREDICTIVE && g->policy.type != POLICY_STEP)
        return store_set_err(st, STORE_EINVAL, "group \"%s\": unknown policy type %d", g->name,
                             g->policy.type);
    if (!store_str_ok(g->health.type, sizeof(g->health.type), 0))
        return store_set_err(st, STORE_EINVAL, "group \"%s\": health type too long", g->name);
    const struct group_health *h = &g->health;
    if (h->interval_ms < 0 || h->timeout_ms < 0 || h->grace_period_ms < 0 ||
        h->healthy_threshold < 0 || h->unhealthy_threshold < 0)
        return store_set_err(st, STORE_EINVAL, "group \"%s\": negative health setting", g->name);
    return 0;
}

int store_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                       int64_t *new_revision)
{
    if (!st || !g)
        return STORE_EINVAL;
    lock(st);
    int rc = settings_valid(st, g);
    if (!rc)
        rc = st->ops->put_settings(st, g, expect_revision, new_revision);
    unlock(st);
    return rc;
}

int store_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision)
{
    if (!st || !key_ok(st, name, STORE_NAME_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->set_desired(st, name, desired, new_revision);
    unlock(st);
    return rc;
}

int store_list_groups(struct store *st, char ***names, size_t *n)
{
    if (!st || !names || !n)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->list_groups(st, names, n);
    unlock(st);
    return rc;
}

void store_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int store_delete_group(struct store *st, const char *name)
{
    if (!st || !key_ok(st, name, STORE_NAME_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->delete_group(st, name);
    unlock(st);
    return rc;
}

/* ---- spec ----------------------------------------------------------------------------------- */

int store_put_spec(struct store *st, const char *name, const char *text, int64_t expect_revision,
                   int64_t *new_revision)
{
    if (!st || !key_ok(st, name, STORE_NAME_MAX, 1) || !text)
        return STORE_EINVAL;
    lock(st);
    int rc;
    if (strnlen(text, STORE_SPEC_MAX + 1) > STORE_SPEC_MAX)
        rc = store_set_err(st, STORE_EINVAL, "spec of group \"%s\" is longer than %d bytes", name,
                           STORE_SPEC_MAX);
    else
        rc = st->ops->put_spec(st, name, text, expect_revision, new_revision);
    unlock(st);
    return rc;
}

int store_get_spec(struct store *st, const char *name, char **text, int64_t *revision)
{
    if (!st || !key_ok(st, name, STORE_NAME_MAX, 1) || !text)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->get_spec(st, name, text, revision);
    unlock(st);
    return rc;
}

/* ---- batches -------------------------------------------------------------------------------- */

/* Checks or writes row i of a batch (rows: the caller's array, or its arguments). */
typedef int (*batch_row_fn)(struct store *st, const void *rows, size_t i);

/*
 * A batch of n rows under the handle's mutex: every row checked first (valid, unless NULL),
 * then all written as one backend transaction when the backend has batches (else each its
 * own), stopping at the first error; the transaction commits only when every row was
 * written. Nothing to write is success.
 */
static int batch_write(struct store *st, const void *rows, size_t n, batch_row_fn valid,
                       batch_row_fn write)
{
    if (n == 0)
        return 0;
    lock(st);
    int rc = 0;
    for (size_t i = 0; valid && i < n && !rc; i++)
        rc = valid(st, rows, i);
    if (!rc && st->ops->batch_begin)
        rc = st->ops->batch_begin(st);
    int in_batch = !rc && st->ops->batch_begin;
    for (size_t i = 0; i < n && !rc; i++)
        rc = write(st, rows, i);
    if (in_batch) {
        int erc = st->ops->batch_end(st, rc == 0);
        if (!rc)
            rc = erc;
    }
    unlock(st);
    return rc;
}

/* ---- instances ------------------------------------------------------------------------------ */

static int instance_valid(struct store *st, const struct store_instance *in)
{
    if (!key_ok(st, in->id, sizeof(in->id), 1) || !key_ok(st, in->group, sizeof(in->group), 1))
        return store_set_err(st, STORE_EINVAL, "instance id and group must be non-empty and fit");
    if (!store_str_ok(in->address, sizeof(in->address), 0) ||
        !store_str_ok(in->provider, sizeof(in->provider), 0) ||
        !store_str_ok(in->lifecycle, sizeof(in->lifecycle), 0) ||
        !store_str_ok(in->launch_token, sizeof(in->launch_token), 0) ||
        !store_str_ok(in->zone, sizeof(in->zone), 0))
        return store_set_err(st, STORE_EINVAL, "instance \"%s\": a text field is not terminated",
                             in->id);
    return 0;
}

int store_put_instance(struct store *st, const struct store_instance *in)
{
    if (!st || !in)
        return STORE_EINVAL;
    lock(st);
    int rc = instance_valid(st, in);
    if (!rc)
        rc = st->ops->put_instance(st, in);
    unlock(st);
    return rc;
}

static int instance_row_valid(struct store *st, const void *rows, size_t i)
{
    return instance_valid(st, &((const struct store_instance *)rows)[i]);
}

static int instance_row_put(struct store *st, const void *rows, size_t i)
{
    return st->ops->put_instance(st, &((const struct store_instance *)rows)[i]);
}

int store_put_instances(struct store *st, const struct store_instance *v, size_t n)
{
    if (!st || (!v && n))
        return STORE_EINVAL;
    return batch_write(st, v, n, instance_row_valid, instance_row_put);
}

struct lifecycle_rows {
    const char *const *ids;
    const char *lifecycle;
    int64_t terminated_at_ms;
};

static int lifecycle_row(struct store *st, const void *rows, size_t i)
{
    const struct lifecycle_rows *r = rows;
    int rc = st->ops->set_instance_lifecycle(st, r->ids[i], r->lifecycle, r->terminated_at_ms);
    return rc == STORE_ENOENT ? 0 : rc; /* a row never written (or swept): nothing to update */
}

int store_set_instances_lifecycle(struct store *st, const char *const *ids, size_t n,
                                  const char *lifecycle, int64_t terminated_at_ms)
{
    if (!st || (!ids && n) || !store_str_ok(lifecycle, STORE_SHORT_MAX, 0))
        return STORE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!key_ok(st, ids[i], STORE_ID_MAX, 1))
            return STORE_EINVAL;
    struct lifecycle_rows rows = {ids, lifecycle, terminated_at_ms};
    return batch_write(st, &rows, n, NULL, lifecycle_row);
}

int store_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                                 int64_t terminated_at_ms)
{
    if (!st || !key_ok(st, id, STORE_ID_MAX, 1) || !store_str_ok(lifecycle, STORE_SHORT_MAX, 0))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->set_instance_lifecycle(st, id, lifecycle, terminated_at_ms);
    unlock(st);
    return rc;
}

int store_get_instance(struct store *st, const char *id, struct store_instance *out)
{
    if (!st || !out || !key_ok(st, id, STORE_ID_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->get_instance(st, id, out);
    unlock(st);
    return rc;
}

int store_delete_instance(struct store *st, const char *id)
{
    if (!st || !key_ok(st, id, STORE_ID_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->delete_instance(st, id);
    unlock(st);
    return rc;
}

int store_list_instances(struct store *st, const char *group, int include_terminated,
                         struct store_instance **out, size_t *n)
{
    if (!st || !out || !n || (group && !key_ok(st, group, STORE_NAME_MAX, 0)))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->list_instances(st, group, include_terminated, out, n);
    unlock(st);
    return rc;
}

void store_instances_free(struct store_instance *list)
{
    free(list);
}

/* ---- launch intents ------------------------------------------------------------------------- */

int store_intent_create(struct store *st, const char *token, const char *group, int count,
                        int64_t created_at_ms)
{
    if (!st || !key_ok(st, token, STORE_ID_MAX, 1) || !key_ok(st, group, STORE_NAME_MAX, 1) ||
        count < 0)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->intent_create(st, token, group, count, created_at_ms);
    unlock(st);
    return rc;
}

int store_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                          size_t n)
{
    if (!st || !key_ok(st, token, STORE_ID_MAX, 1) ||
        (state != STORE_INTENT_DONE && state != STORE_INTENT_FAILED) || (n && !ids))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        if (!store_str_ok(ids[i], STORE_ID_MAX, 1))
            rc = store_set_err(st, STORE_EINVAL,
                               "launch intent \"%s\": instance id %zu is empty or too long", token,
                               i);
    if (!rc)
        rc = st->ops->intent_complete(st, token, state, ids, n);
    unlock(st);
    return rc;
}

int store_intent_list_open(struct store *st, const char *group, struct store_intent **out,
                           size_t *n)
{
    if (!st || !out || !n || (group && !key_ok(st, group, STORE_NAME_MAX, 0)))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->intent_list_open(st, group, out, n);
    unlock(st);
    return rc;
}

void store_intents_free(struct store_intent *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < list[i].n_ids; k++)
            free(list[i].ids[k]);
        free(list[i].ids);
    }
    free(list);
}

/* ---- activities ----------------------------------------------------------------------------- */

static int activity_valid(struct store *st, const struct store_activity *a)
{
    if (!key_ok(st, a->group, sizeof(a->group), 1) || !store_str_ok(a->kind, sizeof(a->kind), 1) ||
        !store_str_ok(a->cause, sizeof(a->cause), 0) ||
        !store_str_ok(a->status, sizeof(a->status), 0) ||
        !store_str_ok(a->detail, sizeof(a->detail), 0))
        return store_set_err(st, STORE_EINVAL,
                             "activity: group and kind must be non-empty, every text field "
                             "terminated");
    return 0;
}

int store_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out)
{
    if (!st || !a)
        return STORE_EINVAL;
    lock(st);
    int rc = activity_valid(st, a);
    if (!rc)
        rc = st->ops->activity_add(st, a, id_out);
    unlock(st);
    return rc;
}

static int activity_row_valid(struct store *st, const void *rows, size_t i)
{
    return activity_valid(st, &((const struct store_activity *)rows)[i]);
}

static int activity_row_add(struct store *st, const void *rows, size_t i)
{
    return st->ops->activity_add(st, &((const struct store_activity *)rows)[i], NULL);
}

int store_activities_add(struct store *st, const struct store_activity *a, size_t n)
{
    if (!st || (!a && n))
        return STORE_EINVAL;
    return batch_write(st, a, n, activity_row_valid, activity_row_add);
}

int store_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                        struct store_activity **out, size_t *n)
{
    if (!st || !out || !n || limit < 1 || limit > ACTIVITY_LIMIT ||
        (group && !key_ok(st, group, STORE_NAME_MAX, 0)))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->activity_list(st, group, before_id, limit, out, n);
    unlock(st);
    return rc;
}

void store_activities_free(struct store_activity *list)
{
    free(list);
}

/* ---- metric history ------------------------------------------------------------------------- */

int store_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                      const struct store_metric_instance *inst, size_t ni)
{
    if (!st || (ng && !g) || (ni && !inst))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    for (size_t i = 0; !rc && i < ng; i++)
        if (!key_ok(st, g[i].group, sizeof(g[i].group), 1))
            rc =
                store_set_err(st, STORE_EINVAL, "metric row %zu: group empty or not terminated", i);
    for (size_t i = 0; !rc && i < ni; i++)
        if (!key_ok(st, inst[i].group, sizeof(inst[i].group), 1) ||
            !key_ok(st, inst[i].instance_id, sizeof(inst[i].instance_id), 1))
            rc = store_set_err(st, STORE_EINVAL,
                               "instance metric row %zu: group or id empty or not terminated", i);
    if (!rc && (ng || ni))
        rc = st->ops->metrics_add(st, g, ng, inst, ni);
    unlock(st);
    return rc;
}

int store_metrics_group_since(struct store *st, const char *group, int64_t since_ms,
                              size_t max_rows, struct store_metric_group **out, size_t *n)
{
    if (!st || !out || !n || !key_ok(st, group, STORE_NAME_MAX, 1) || max_rows < 1 ||
        max_rows > METRIC_ROWS_MAX)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->metrics_group_since(st, group, since_ms, max_rows, out, n);
    unlock(st);
    return rc;
}

int store_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                                 int64_t since_ms, size_t max_rows,
                                 struct store_metric_instance **out, size_t *n)
{
    if (!st || !out || !n || !key_ok(st, group, STORE_NAME_MAX, 1) ||
        (instance_id && !key_ok(st, instance_id, STORE_ID_MAX, 1)) || max_rows < 1 ||
        max_rows > METRIC_ROWS_MAX)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->metrics_instance_since(st, group, instance_id, since_ms, max_rows, out, n);
    unlock(st);
    return rc;
}

int store_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted)
{
    if (!st)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->metrics_prune(st, older_than_ms, deleted);
    unlock(st);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------------- */

int store_request_add(struct store *st, const char *group, const char *kind, const char *json_text,
                      int64_t *id_out)
{
    if (!st || !key_ok(st, group, STORE_NAME_MAX, 1) || !store_str_ok(kind, STORE_SHORT_MAX, 1) ||
        !json_text)
        return STORE_EINVAL;
    lock(st);
    int rc;
    if (strnlen(json_text, STORE_REQUEST_MAX + 1) > STORE_REQUEST_MAX)
        rc = store_set_err(st, STORE_EINVAL, "request for group \"%s\" is longer than %d bytes",
                           group, STORE_REQUEST_MAX);
    else
        rc = st->ops->request_add(st, group, kind, json_text, id_out);
    unlock(st);
    return rc;
}

int store_request_list(struct store *st, const char *group, struct store_request **out, size_t *n)
{
    if (!st || !key_ok(st, group, STORE_NAME_MAX, 1) || !out || !n)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->request_list(st, group, out, n);
    unlock(st);
    return rc;
}

void store_requests_free(struct store_request *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i].json);
    free(list);
}

int store_request_delete(struct store *st, const char *group, int64_t id)
{
    if (!st || !key_ok(st, group, STORE_NAME_MAX, 1) || id <= 0)
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->request_delete(st, group, id);
    unlock(st);
    return rc;
}

/* ---- watch and fencing ---------------------------------------------------------------------- */

int store_watch(struct store *st, store_watch_fn cb, void *arg)
{
    if (!st)
        return STORE_EINVAL;
    if (!st->ops->watch)
        return STORE_ENOTSUP;
    /* without the mutex: the backend waits for its watch thread, which may be inside a call */
    return st->ops->watch(st, cb, arg);
}

int store_set_fence(struct store *st, const char *group, const char *owner_key,
                    int64_t owner_create_revision)
{
    if (!st || !key_ok(st, group, STORE_NAME_MAX, 1) || !owner_key || !*owner_key ||
        owner_create_revision <= 0)
        return STORE_EINVAL;
    lock(st);
    int rc =
        st->ops->set_fence ? st->ops->set_fence(st, group, owner_key, owner_create_revision) : 0;
    unlock(st);
    return rc;
}

int store_clear_fence(struct store *st, const char *group)
{
    if (!st || !key_ok(st, group, STORE_NAME_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = st->ops->set_fence ? st->ops->set_fence(st, group, NULL, 0) : 0;
    unlock(st);
    return rc;
}
