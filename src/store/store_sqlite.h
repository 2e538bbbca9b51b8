/*
 * store_sqlite.h - private to the SQLite backend (store_sqlite.c: schema,
 * statements, helpers, open; store_sqlite_groups.c: settings, spec,
 * requests, group deletion; store_sqlite_rows.c: instances, intents,
 * activities, metrics). Called with the handle's mutex held (store.c),
 * arguments already checked.
 */
#ifndef ASGD_STORE_SQLITE_H
#define ASGD_STORE_SQLITE_H

#include <sqlite3.h>

#include "store/store_impl.h"

enum stmt_id {
    S_GROUP_GET,
    S_GROUP_REV,
    S_GROUP_PUT,
    S_GROUP_DESIRED,
    S_GROUP_NAMES,
    S_INST_PUT,
    S_INST_LIFECYCLE,
    S_INST_GET,
    S_INST_DELETE,
    S_INST_LIST,
    S_INTENT_CREATE,
    S_INTENT_COMPLETE,
    S_INTENT_OPEN,
    S_ACT_ADD,
    S_ACT_LIST,
    S_MG_ADD,
    S_MI_ADD,
    S_MG_SINCE,
    S_MI_SINCE,
    S_MG_PRUNE,
    S_MI_PRUNE,
    S_SPEC_GET,
    S_SPEC_REV,
    S_SPEC_PUT,
    S_REQ_ADD,
    S_REQ_LIST,
    S_REQ_DELETE,
    S_COUNT
};
/* The backend's state behind st->be. */
struct sq {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmts[S_COUNT];
};
#define SQ(st) ((struct sq *)(st)->be)

/* Records an SQLite failure of `what` on st and returns its STORE_E* code. */
int sq_db_err(struct store *st, int rc, const char *what);
/* Copies text column col into dst[size]: truncated, always terminated. */
void sq_col_text(sqlite3_stmt *s, int col, char *dst, size_t size);
/* The cached statement id, reset and unbound; NULL with st->err set (*rc_out) on failure. */
sqlite3_stmt *sq_stmt(struct store *st, enum stmt_id id, int *rc_out);
int sq_exec(struct store *st, const char *sql, const char *what);
int sq_begin(struct store *st); /* BEGIN IMMEDIATE */
int sq_commit(struct store *st);
void sq_rollback(struct store *st); /* only if a transaction is open */
void sq_bind_text_or_null(sqlite3_stmt *s, int i, const char *t);
/* Steps a statement that returns no row; 0 or the mapped error. */
int sq_step_done(struct store *st, sqlite3_stmt *s, const char *what);

/*
 * The shared half of every list query: steps s to its end, appending one
 * zeroed element of esz bytes per row and letting fill() read the row into it.
 * On success *arr holds *cnt elements (NULL when none). On failure the error
 * (ENOMEM, fill()'s, or the database's, described by what) is returned and
 * *arr keeps the *cnt elements read so far, for the caller's own free
 * function (elements own memory for some lists). s is reset either way.
 */
typedef int (*row_fill_fn)(struct store *st, sqlite3_stmt *s, void *elem);
int sq_collect_rows(struct store *st, sqlite3_stmt *s, size_t esz, row_fill_fn fill, void **arr,
                    size_t *cnt, const char *what);

/* store_sqlite_groups.c */
int sq_get_settings(struct store *st, const char *name, struct group_settings *out);
int sq_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                    int64_t *new_revision);
int sq_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision);
int sq_list_groups(struct store *st, char ***names, size_t *n);
int sq_delete_group(struct store *st, const char *name);
int sq_put_spec(struct store *st, const char *name, const char *text, int64_t expect_revision,
                int64_t *new_revision);
int sq_get_spec(struct store *st, const char *name, char **text, int64_t *revision);
int sq_request_add(struct store *st, const char *group, const char *kind, const char *json_text,
                   int64_t *id_out);
int sq_request_list(struct store *st, const char *group, struct store_request **out, size_t *n);
int sq_request_delete(struct store *st, const char *group, int64_t id);

/* store_sqlite_rows.c */
int sq_put_instance(struct store *st, const struct store_instance *inst);
int sq_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                              int64_t terminated_at_ms);
int sq_get_instance(struct store *st, const char *id, struct store_instance *out);
int sq_delete_instance(struct store *st, const char *id);
int sq_list_instances(struct store *st, const char *group, int include_terminated,
                      struct store_instance **out, size_t *n);
int sq_intent_create(struct store *st, const char *token, const char *group, int count,
                     int64_t created_at_ms);
int sq_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                       size_t n);
int sq_intent_list_open(struct store *st, const char *group, struct store_intent **out, size_t *n);
int sq_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out);
int sq_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                     struct store_activity **out, size_t *n);
int sq_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                   const struct store_metric_instance *inst, size_t ni);
int sq_metrics_group_since(struct store *st, const char *group, int64_t since_ms, size_t max_rows,
                           struct store_metric_group **out, size_t *n);
int sq_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                              int64_t since_ms, size_t max_rows, struct store_metric_instance **out,
                              size_t *n);
int sq_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted);

#endif
