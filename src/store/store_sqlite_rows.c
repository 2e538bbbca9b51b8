/*
 * store_sqlite_rows.c - the SQLite backend's per-group rows: instances,
 * launch intents, activities and metric history (store.h has the contract,
 * store_sqlite.h the helpers). Each write is one statement or one
 * transaction; the handle's mutex is held by the caller (store.c).
 */
#include "store/store_sqlite.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

int sq_put_instance(struct store *st, const struct store_instance *in)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INST_PUT, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, in->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, in->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, in->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, in->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, in->lifecycle, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, in->launched_at_ms);
    sqlite3_bind_text(s, 7, in->launch_token, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 8, in->pid);
    sqlite3_bind_text(s, 9, in->zone, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, clk_wall_ms());
    sqlite3_bind_int64(s, 11, in->terminated_at_ms);
    sqlite3_bind_int(s, 12, in->protect ? 1 : 0);
    sqlite3_bind_int64(s, 13, in->hook_deadline_ms);
    rc = sq_step_done(st, s, "cannot write instance");
out:
    return rc;
}

int sq_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                              int64_t terminated_at_ms)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INST_LIFECYCLE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, lifecycle, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, terminated_at_ms);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = sq_step_done(st, s, "cannot update instance");
    if (!rc && sqlite3_changes(SQ(st)->db) == 0)
        rc = store_set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
out:
    return rc;
}

static void row_instance(sqlite3_stmt *s, struct store_instance *o)
{
    memset(o, 0, sizeof(*o));
    sq_col_text(s, 0, o->id, sizeof(o->id));
    sq_col_text(s, 1, o->group, sizeof(o->group));
    sq_col_text(s, 2, o->address, sizeof(o->address));
    sq_col_text(s, 3, o->provider, sizeof(o->provider));
    sq_col_text(s, 4, o->lifecycle, sizeof(o->lifecycle));
    o->launched_at_ms = sqlite3_column_int64(s, 5);
    sq_col_text(s, 6, o->launch_token, sizeof(o->launch_token));
    o->pid = sqlite3_column_int(s, 7);
    sq_col_text(s, 8, o->zone, sizeof(o->zone));
    o->created_at_ms = sqlite3_column_int64(s, 9);
    o->updated_at_ms = sqlite3_column_int64(s, 10);
    o->terminated_at_ms = sqlite3_column_int64(s, 11);
    o->protect = sqlite3_column_int(s, 12);
    o->hook_deadline_ms = sqlite3_column_int64(s, 13);
}

int sq_get_instance(struct store *st, const char *id, struct store_instance *out)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INST_GET, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        row_instance(s, out);
    else if (r == SQLITE_DONE)
        rc = store_set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
    else
        rc = sq_db_err(st, r, "cannot read instance");
    sqlite3_reset(s);
out:
    return rc;
}

int sq_delete_instance(struct store *st, const char *id)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INST_DELETE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    rc = sq_step_done(st, s, "cannot delete instance");
    if (!rc && sqlite3_changes(SQ(st)->db) == 0)
        rc = store_set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
out:
    return rc;
}

static int fill_instance(struct store *st, sqlite3_stmt *s, void *elem)
{
    (void)st;
    row_instance(s, elem);
    return 0;
}

int sq_list_instances(struct store *st, const char *group, int include_terminated,
                      struct store_instance **out, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INST_LIST, &rc);
    if (s) {
        sq_bind_text_or_null(s, 1, group);
        sqlite3_bind_int(s, 2, include_terminated ? 1 : 0);
        rc = sq_collect_rows(st, s, sizeof(struct store_instance), fill_instance, &arr, &cnt,
                             "cannot list instances");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    return rc;
}

int sq_intent_create(struct store *st, const char *token, const char *group, int count,
                     int64_t created_at_ms)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INTENT_CREATE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, group, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, count);
    sqlite3_bind_int64(s, 4, created_at_ms);
    sqlite3_bind_int64(s, 5, clk_wall_ms());
    rc = sq_step_done(st, s, "cannot record launch intent");
    if (rc == STORE_EEXIST)
        store_set_err(st, rc, "launch intent \"%s\" already recorded", token);
out:
    return rc;
}

int sq_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                       size_t n)
{
    int rc = 0;
    char *text = NULL;
    json_t *arr = json_array();
    if (!arr) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, json_string(ids[i])) != 0) {
            rc = store_set_err(st, STORE_EINVAL,
                               "launch intent \"%s\": instance id %zu is not UTF-8", token, i);
            goto out;
        }
    }
    text = json_dumps(arr, JSON_COMPACT);
    if (!text) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory");
        goto out;
    }
    sqlite3_stmt *s = sq_stmt(st, S_INTENT_COMPLETE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, state == STORE_INTENT_DONE ? "done" : "failed", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = sq_step_done(st, s, "cannot complete launch intent");
    if (!rc && sqlite3_changes(SQ(st)->db) == 0)
        rc = store_set_err(st, STORE_ENOENT, "no launch intent \"%s\"", token);
out:
    json_decref(arr);
    free(text);
    return rc;
}

/* Parses a JSON array of id strings into it->ids; bad entries are skipped with a warning. */
static int intent_ids(struct store *st, struct store_intent *it, const char *text)
{
    json_error_t je;
    json_t *a = text ? json_loads(text, 0, &je) : NULL;
    if (!json_is_array(a)) {
        log_warn("store \"%s\": launch intent \"%s\" has unreadable instance ids, ignoring them",
                 SQ(st)->path, it->token);
        json_decref(a);
        return 0;
    }
    size_t n = json_array_size(a);
    if (n) {
        it->ids = calloc(n, sizeof(*it->ids));
        if (!it->ids) {
            json_decref(a);
            return STORE_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(a, i));
        if (!id || !store_str_ok(id, STORE_ID_MAX, 1)) {
            log_warn("store \"%s\": launch intent \"%s\": skipping invalid instance id %zu",
                     SQ(st)->path, it->token, i);
            continue;
        }
        if (!(it->ids[it->n_ids] = strdup(id))) {
            json_decref(a);
            return STORE_ENOMEM;
        }
        it->n_ids++;
    }
    json_decref(a);
    return 0;
}

static int fill_intent(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_intent *it = elem;
    sq_col_text(s, 0, it->token, sizeof(it->token));
    sq_col_text(s, 1, it->group, sizeof(it->group));
    it->count = sqlite3_column_int(s, 2);
    it->created_at_ms = sqlite3_column_int64(s, 3);
    it->state = STORE_INTENT_OPEN;
    if (intent_ids(st, it, (const char *)sqlite3_column_text(s, 4)) != 0)
        return store_set_err(st, STORE_ENOMEM, "out of memory listing launch intents");
    return 0;
}

int sq_intent_list_open(struct store *st, const char *group, struct store_intent **out, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_INTENT_OPEN, &rc);
    if (s) {
        sq_bind_text_or_null(s, 1, group);
        rc = sq_collect_rows(st, s, sizeof(struct store_intent), fill_intent, &arr, &cnt,
                             "cannot list launch intents");
    }
    if (rc) {
        store_intents_free(arr, cnt);
    } else {
        *out = arr;
        *n = cnt;
    }
    return rc;
}

int sq_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_ACT_ADD, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, a->group, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->at_ms);
    sqlite3_bind_text(s, 3, a->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, a->cause, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, a->from_count);
    sqlite3_bind_int(s, 6, a->to_count);
    sqlite3_bind_text(s, 7, a->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, a->detail, -1, SQLITE_STATIC);
    rc = sq_step_done(st, s, "cannot record activity");
    if (!rc && id_out)
        *id_out = sqlite3_last_insert_rowid(SQ(st)->db);
out:
    return rc;
}

static int fill_activity(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_activity *a = elem;
    (void)st;
    a->id = sqlite3_column_int64(s, 0);
    sq_col_text(s, 1, a->group, sizeof(a->group));
    a->at_ms = sqlite3_column_int64(s, 2);
    sq_col_text(s, 3, a->kind, sizeof(a->kind));
    sq_col_text(s, 4, a->cause, sizeof(a->cause));
    a->from_count = sqlite3_column_int(s, 5);
    a->to_count = sqlite3_column_int(s, 6);
    sq_col_text(s, 7, a->status, sizeof(a->status));
    sq_col_text(s, 8, a->detail, sizeof(a->detail));
    return 0;
}

int sq_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                     struct store_activity **out, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_ACT_LIST, &rc);
    if (s) {
        sq_bind_text_or_null(s, 1, group);
        sqlite3_bind_int64(s, 2, before_id);
        sqlite3_bind_int(s, 3, limit);
        rc = sq_collect_rows(st, s, sizeof(struct store_activity), fill_activity, &arr, &cnt,
                             "cannot list activities");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    return rc;
}

int sq_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                   const struct store_metric_instance *inst, size_t ni)
{
    int rc = 0;
    rc = sq_begin(st);
    if (rc)
        goto out;
    sqlite3_stmt *s = sq_stmt(st, S_MG_ADD, &rc);
    for (size_t i = 0; s && !rc && i < ng; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, g[i].group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, g[i].at_ms);
        sqlite3_bind_double(s, 3, isfinite(g[i].avg_load) ? g[i].avg_load : -1);
        sqlite3_bind_int(s, 4, g[i].in_service);
        sqlite3_bind_int(s, 5, g[i].desired);
        rc = sq_step_done(st, s, "cannot add group metrics");
    }
    if (!s)
        goto out;
    s = rc ? NULL : sq_stmt(st, S_MI_ADD, &rc);
    for (size_t i = 0; s && !rc && i < ni; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, inst[i].group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, inst[i].at_ms);
        sqlite3_bind_text(s, 3, inst[i].instance_id, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 4, isfinite(inst[i].load) ? inst[i].load : -1);
        rc = sq_step_done(st, s, "cannot add instance metrics");
    }
    if (!rc)
        rc = sq_commit(st);
out:
    if (rc)
        sq_rollback(st);
    return rc;
}

static int fill_metric_group(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_metric_group *m = elem;
    (void)st;
    sq_col_text(s, 0, m->group, sizeof(m->group));
    m->at_ms = sqlite3_column_int64(s, 1);
    m->avg_load = sqlite3_column_double(s, 2);
    m->in_service = sqlite3_column_int(s, 3);
    m->desired = sqlite3_column_int(s, 4);
    return 0;
}

int sq_metrics_group_since(struct store *st, const char *group, int64_t since_ms, size_t max_rows,
                           struct store_metric_group **out, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_MG_SINCE, &rc);
    if (s) {
        sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, since_ms);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)max_rows);
        rc = sq_collect_rows(st, s, sizeof(struct store_metric_group), fill_metric_group, &arr,
                             &cnt, "cannot read group metrics");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    return rc;
}

static int fill_metric_instance(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_metric_instance *m = elem;
    (void)st;
    sq_col_text(s, 0, m->group, sizeof(m->group));
    m->at_ms = sqlite3_column_int64(s, 1);
    sq_col_text(s, 2, m->instance_id, sizeof(m->instance_id));
    m->load = sqlite3_column_double(s, 3);
    return 0;
}

int sq_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                              int64_t since_ms, size_t max_rows, struct store_metric_instance **out,
                              size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_MI_SINCE, &rc);
    if (s) {
        sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, since_ms);
        sq_bind_text_or_null(s, 3, instance_id);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)max_rows);
        rc = sq_collect_rows(st, s, sizeof(struct store_metric_instance), fill_metric_instance,
                             &arr, &cnt, "cannot read instance metrics");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    return rc;
}

int sq_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted)
{
    int64_t total = 0;
    int rc = sq_begin(st);
    if (rc)
        goto out;
    enum stmt_id ids[2] = {S_MG_PRUNE, S_MI_PRUNE};
    for (int i = 0; !rc && i < 2; i++) {
        sqlite3_stmt *s = sq_stmt(st, ids[i], &rc);
        if (!s)
            break;
        sqlite3_bind_int64(s, 1, older_than_ms);
        rc = sq_step_done(st, s, "cannot prune metrics");
        if (!rc)
            total += sqlite3_changes(SQ(st)->db);
    }
    if (!rc)
        rc = sq_commit(st);
    if (!rc && deleted)
        *deleted = total;
out:
    if (rc)
        sq_rollback(st);
    return rc;
}
