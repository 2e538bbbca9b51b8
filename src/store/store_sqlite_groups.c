/*
 * store_sqlite_groups.c - the SQLite backend's group-level calls: settings
 * (policy and health as JSON columns), desired capacity, the group list and
 * deletion, the spec and the owner's pending requests (contract in store.h,
 * helpers in store_sqlite.h). The handle's mutex is held by the caller.
 */
#include "store/store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

/* ---- group settings ------------------------------------------------------------------------- */

/* Parses JSON text column col of s and hands the object to fn; -1 if not a JSON object. */
typedef int (*json_obj_fn)(const json_t *o, struct group_settings *g);
static int json_col(sqlite3_stmt *s, int col, struct group_settings *g, json_obj_fn fn)
{
    const char *text = (const char *)sqlite3_column_text(s, col);
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    int rc = o ? fn(o, g) : -1;
    json_decref(o);
    return rc;
}

static int policy_from_col(const json_t *o, struct group_settings *g)
{
    return store_policy_from_json(o, &g->policy);
}

static int health_from_col(const json_t *o, struct group_settings *g)
{
    return store_health_from_json(o, &g->health);
}

int sq_get_settings(struct store *st, const char *name, struct group_settings *out)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_GROUP_GET, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_DONE) {
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" has no settings in \"%s\"", name,
                           SQ(st)->path);
        goto out;
    }
    if (r != SQLITE_ROW) {
        rc = sq_db_err(st, r, "cannot read group settings");
        goto out;
    }
    struct group_settings g;
    memset(&g, 0, sizeof(g)); /* callers memcmp the policy: padding must be zero */
    sq_col_text(s, 0, g.name, sizeof(g.name));
    g.min_size = sqlite3_column_int(s, 1);
    g.max_size = sqlite3_column_int(s, 2);
    g.desired_capacity = sqlite3_column_int(s, 3);
    if (json_col(s, 4, &g, policy_from_col) != 0 || json_col(s, 5, &g, health_from_col) != 0) {
        rc = store_set_err(
            st, STORE_ECORRUPT,
            "group \"%s\": stored policy or health settings are not valid JSON in \"%s\"", name,
            SQ(st)->path);
        goto out;
    }
    g.revision = sqlite3_column_int64(s, 6);
    g.updated_at_ms = sqlite3_column_int64(s, 7);
    const char *more = (const char *)sqlite3_column_text(s, 8);
    json_t *mo = more ? json_loads(more, 0, NULL) : NULL;
    if (json_is_object(mo))
        store_more_from_json(mo, &g);
    json_decref(mo);
    *out = g;
out:
    sqlite3_reset(s);
    return rc;
}

/* Reads revision/min/max of name under the caller's transaction; STORE_ENOENT if absent. */
static int group_rev(struct store *st, const char *name, int64_t *rev, int *min, int *max)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_GROUP_REV, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        *rev = sqlite3_column_int64(s, 0);
        *min = sqlite3_column_int(s, 1);
        *max = sqlite3_column_int(s, 2);
    } else if (r == SQLITE_DONE) {
        rc = STORE_ENOENT;
    } else {
        rc = sq_db_err(st, r, "cannot read group settings");
    }
    sqlite3_reset(s);
    return rc;
}

/* 1 when text parses back into a value equal to j. */
static int dumped_same(const json_t *j, const char *text)
{
    json_t *back = json_loads(text, 0, NULL);
    int same = back != NULL && json_equal(back, j);
    json_decref(back);
    return same;
}

int sq_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                    int64_t *new_revision)
{
    char *policy = NULL, *health = NULL, *more = NULL;
    int rc = 0;
    json_t *pj = store_policy_to_json(&g->policy), *hj = store_health_to_json(&g->health);
    json_t *mj = store_more_to_json(g);
    policy = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    health = hj ? json_dumps(hj, JSON_COMPACT) : NULL;
    more = mj ? json_dumps(mj, JSON_COMPACT) : NULL;
    /* jansson's dump can lose a key when an allocation fails inside it and still return
       text (seen under the allocation-failure test): store only what reads back the same */
    int same = policy && health && more && dumped_same(pj, policy) && dumped_same(hj, health) &&
               dumped_same(mj, more);
    json_decref(pj);
    json_decref(hj);
    json_decref(mj);
    if (!same) {
        rc = store_set_err(st, STORE_ENOMEM, "cannot encode settings of group \"%s\"", g->name);
        goto out;
    }
    rc = sq_begin(st);
    if (rc)
        goto out;
    int64_t rev = 0;
    int mn, mx;
    rc = group_rev(st, g->name, &rev, &mn, &mx);
    if (rc == STORE_ENOENT) {
        rev = 0;
        rc = 0;
    }
    if (rc)
        goto out;
    if (expect_revision >= 0 && expect_revision != rev) {
        rc = store_set_err(
            st, STORE_ECONFLICT,
            "settings of group \"%s\" are at revision %lld, not %lld: reload and retry", g->name,
            (long long)rev, (long long)expect_revision);
        goto out;
    }
    sqlite3_stmt *s = sq_stmt(st, S_GROUP_PUT, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, g->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, g->min_size);
    sqlite3_bind_int(s, 3, g->max_size);
    sqlite3_bind_int(s, 4, g->desired_capacity);
    sqlite3_bind_text(s, 5, policy, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, health, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, rev + 1);
    sqlite3_bind_int64(s, 8, clk_wall_ms());
    sqlite3_bind_text(s, 9, more, -1, SQLITE_STATIC);
    rc = sq_step_done(st, s, "cannot write group settings");
    if (!rc)
        rc = sq_commit(st);
    if (!rc && new_revision)
        *new_revision = rev + 1;
out:
    if (rc)
        sq_rollback(st);
    free(policy);
    free(health);
    free(more);
    return rc;
}

int sq_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision)
{
    int rc = sq_begin(st);
    if (rc)
        goto out;
    int64_t rev = 0;
    int mn = 0, mx = 0;
    rc = group_rev(st, name, &rev, &mn, &mx);
    if (rc == STORE_ENOENT)
        store_set_err(st, rc, "group \"%s\" has no settings in \"%s\"", name, SQ(st)->path);
    if (rc)
        goto out;
    if (desired < mn || desired > mx) {
        rc = store_set_err(st, STORE_EINVAL, "group \"%s\": desired %d is outside [%d, %d]", name,
                           desired, mn, mx);
        goto out;
    }
    sqlite3_stmt *s = sq_stmt(st, S_GROUP_DESIRED, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, desired);
    sqlite3_bind_int64(s, 3, rev + 1);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = sq_step_done(st, s, "cannot write desired capacity");
    if (!rc)
        rc = sq_commit(st);
    if (!rc && new_revision)
        *new_revision = rev + 1;
out:
    if (rc)
        sq_rollback(st);
    return rc;
}

static int fill_group_name(struct store *st, sqlite3_stmt *s, void *elem)
{
    char name[STORE_NAME_MAX];
    sq_col_text(s, 0, name, sizeof(name));
    if ((*(char **)elem = strdup(name)) == NULL)
        return store_set_err(st, STORE_ENOMEM, "out of memory listing groups");
    return 0;
}

int sq_list_groups(struct store *st, char ***names, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_GROUP_NAMES, &rc);
    if (s)
        rc = sq_collect_rows(st, s, sizeof(char *), fill_group_name, &arr, &cnt,
                             "cannot list groups");
    if (rc) {
        store_names_free(arr, cnt);
    } else {
        *names = arr;
        *n = cnt;
    }
    return rc;
}

/* ---- group deletion ------------------------------------------------------------------------- */

int sq_delete_group(struct store *st, const char *name)
{
    static const char *const tables[] = {
        "groups",   "group_specs", "instances",     "launch_intents",
        "requests", "activities",  "metrics_group", "metrics_instance",
    };
    int rc = sq_begin(st);
    int found = 0;
    for (size_t i = 0; !rc && i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = ?1", tables[i],
                 i < 2 ? "name" : "group_name");
        sqlite3_stmt *s = NULL;
        int r = sqlite3_prepare_v2(SQ(st)->db, sql, -1, &s, NULL);
        if (r == SQLITE_OK) {
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
            r = sqlite3_step(s);
        }
        sqlite3_finalize(s);
        if (r != SQLITE_DONE)
            rc = sq_db_err(st, r, "cannot delete the group");
        else if (i < 2 && sqlite3_changes(SQ(st)->db) > 0)
            found = 1;
    }
    if (!rc && !found)
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" does not exist in \"%s\"", name,
                           SQ(st)->path);
    if (!rc)
        rc = sq_commit(st);
    if (rc)
        sq_rollback(st);
    return rc;
}

/* ---- spec ----------------------------------------------------------------------------------- */

int sq_put_spec(struct store *st, const char *name, const char *text, int64_t expect_revision,
                int64_t *new_revision)
{
    int rc = sq_begin(st);
    if (rc)
        return rc;
    int64_t rev = 0;
    sqlite3_stmt *s = sq_stmt(st, S_SPEC_REV, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        rev = sqlite3_column_int64(s, 0);
    else if (r != SQLITE_DONE)
        rc = sq_db_err(st, r, "cannot read group spec");
    sqlite3_reset(s);
    if (rc)
        goto out;
    if (expect_revision == 0 && rev != 0) {
        rc = store_set_err(st, STORE_EEXIST, "group \"%s\" already has a spec", name);
        goto out;
    }
    if (expect_revision >= 0 && expect_revision != rev) {
        rc = store_set_err(st, STORE_ECONFLICT,
                           "spec of group \"%s\" is at revision %lld, not %lld: reload and retry",
                           name, (long long)rev, (long long)expect_revision);
        goto out;
    }
    s = sq_stmt(st, S_SPEC_PUT, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, rev + 1);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = sq_step_done(st, s, "cannot write group spec");
    if (!rc)
        rc = sq_commit(st);
    if (!rc && new_revision)
        *new_revision = rev + 1;
out:
    if (rc)
        sq_rollback(st);
    return rc;
}

int sq_get_spec(struct store *st, const char *name, char **text, int64_t *revision)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_SPEC_GET, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        char *copy = strdup(t ? t : "");
        if (!copy) {
            rc = store_set_err(st, STORE_ENOMEM, "out of memory reading the spec of \"%s\"", name);
        } else {
            *text = copy;
            if (revision)
                *revision = sqlite3_column_int64(s, 1);
        }
    } else if (r == SQLITE_DONE) {
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" has no spec in \"%s\"", name,
                           SQ(st)->path);
    } else {
        rc = sq_db_err(st, r, "cannot read group spec");
    }
    sqlite3_reset(s);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------------- */

int sq_request_add(struct store *st, const char *group, const char *kind, const char *json_text,
                   int64_t *id_out)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_REQ_ADD, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, json_text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = sq_step_done(st, s, "cannot record request");
    if (!rc && id_out)
        *id_out = sqlite3_last_insert_rowid(SQ(st)->db);
    return rc;
}

static int fill_request(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_request *r = elem;
    r->id = sqlite3_column_int64(s, 0);
    sq_col_text(s, 1, r->group, sizeof(r->group));
    sq_col_text(s, 2, r->kind, sizeof(r->kind));
    r->created_at_ms = sqlite3_column_int64(s, 3);
    const char *t = (const char *)sqlite3_column_text(s, 4);
    if (!(r->json = strdup(t ? t : "")))
        return store_set_err(st, STORE_ENOMEM, "out of memory listing requests");
    return 0;
}

int sq_request_list(struct store *st, const char *group, struct store_request **out, size_t *n)
{
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_REQ_LIST, &rc);
    if (s) {
        sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
        rc = sq_collect_rows(st, s, sizeof(struct store_request), fill_request, &arr, &cnt,
                             "cannot list requests");
    }
    if (rc) {
        store_requests_free(arr, cnt);
    } else {
        *out = arr;
        *n = cnt;
    }
    return rc;
}

int sq_request_delete(struct store *st, const char *group, int64_t id)
{
    int rc = 0;
    sqlite3_stmt *s = sq_stmt(st, S_REQ_DELETE, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, id);
    rc = sq_step_done(st, s, "cannot delete request");
    if (!rc && sqlite3_changes(SQ(st)->db) == 0)
        rc = store_set_err(st, STORE_ENOENT, "no request %lld for group \"%s\"", (long long)id,
                           group);
    return rc;
}
