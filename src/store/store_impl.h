/*
 * store_impl.h - private: what store.c (dispatch and the checks common to
 * both backends) shares with the backends store_sqlite*.c and store_etcd.c.
 *
 * store.c validates every argument once (lengths, 0 <= min <= desired <=
 * max, NUL-terminated fields...), takes the handle's mutex, clears the
 * error text and only then calls the backend through st->ops: a backend
 * function may assume valid arguments and exclusive use of the handle
 * (except what it shares with its own threads, e.g. etcd's watch thread,
 * which it guards itself). Backends report errors with store_set_err().
 */
#ifndef ASGD_STORE_IMPL_H
#define ASGD_STORE_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

struct store_ops {
    const char *name; /* "sqlite" | "etcd" */
    int slash_free;   /* group names and ids must not contain '/' (they are key parts) */
    void (*close)(struct store *st);
    int (*get_settings)(struct store *st, const char *name, struct group_settings *out);
    int (*put_settings)(struct store *st, const struct group_settings *g, int64_t expect_revision,
                        int64_t *new_revision);
    int (*set_desired)(struct store *st, const char *name, int desired, int64_t *new_revision);
    int (*list_groups)(struct store *st, char ***names, size_t *n);
    int (*delete_group)(struct store *st, const char *name);
    int (*put_spec)(struct store *st, const char *name, const char *text, int64_t expect_revision,
                    int64_t *new_revision);
    int (*get_spec)(struct store *st, const char *name, char **text, int64_t *revision);
    int (*put_instance)(struct store *st, const struct store_instance *inst);
    int (*set_instance_lifecycle)(struct store *st, const char *id, const char *lifecycle,
                                  int64_t terminated_at_ms);
    int (*get_instance)(struct store *st, const char *id, struct store_instance *out);
    int (*delete_instance)(struct store *st, const char *id);
    int (*list_instances)(struct store *st, const char *group, int include_terminated,
                          struct store_instance **out, size_t *n);
    int (*intent_create)(struct store *st, const char *token, const char *group, int count,
                         int64_t created_at_ms);
    int (*intent_complete)(struct store *st, const char *token, int state, const char *const *ids,
                           size_t n);
    int (*intent_list_open)(struct store *st, const char *group, struct store_intent **out,
                            size_t *n);
    int (*activity_add)(struct store *st, const struct store_activity *a, int64_t *id_out);
    int (*activity_list)(struct store *st, const char *group, int64_t before_id, int limit,
                         struct store_activity **out, size_t *n);
    int (*metrics_add)(struct store *st, const struct store_metric_group *g, size_t ng,
                       const struct store_metric_instance *inst, size_t ni);
    int (*metrics_group_since)(struct store *st, const char *group, int64_t since_ms,
                               size_t max_rows, struct store_metric_group **out, size_t *n);
    int (*metrics_instance_since)(struct store *st, const char *group, const char *instance_id,
                                  int64_t since_ms, size_t max_rows,
                                  struct store_metric_instance **out, size_t *n);
    int (*metrics_prune)(struct store *st, int64_t older_than_ms, int64_t *deleted);
    int (*request_add)(struct store *st, const char *group, const char *kind, const char *json_text,
                       int64_t *id_out);
    int (*request_list)(struct store *st, const char *group, struct store_request **out, size_t *n);
    int (*request_delete)(struct store *st, const char *group, int64_t id);
    /* NULL: STORE_ENOTSUP. Called WITHOUT the handle's mutex (the backend waits for its thread). */
    int (*watch)(struct store *st, store_watch_fn cb, void *arg);
    /* NULL: accepted and ignored. owner_key NULL: clear. */
    int (*set_fence)(struct store *st, const char *group, const char *owner_key,
                     int64_t owner_create_revision);
    /* NULL: the writes of a batch (store_put_instances, store_set_instances_lifecycle,
       store_activities_add: store.c's batch_write()) are separate transactions. Else
       batch_begin() opens one transaction for them all and batch_end(ok) commits it (ok) or
       rolls it back. */
    int (*batch_begin)(struct store *st);
    int (*batch_end)(struct store *st, int ok);
};

struct store {
    const struct store_ops *ops;
    pthread_mutex_t mu; /* serialises the calls on this handle */
    int version;
    char err[512];
    void *be; /* the backend's state */
};

/* Writes the operator text of the current error into st->err; returns code. */
int store_set_err(struct store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 if s is a non-NULL string shorter than size (and non-empty when required). */
int store_str_ok(const char *s, size_t size, int nonempty);
/* A new handle for ops (mutex ready, be NULL); NULL when out of memory. */
struct store *store_new(const struct store_ops *ops);
/*
 * The open path both backends share: store_new(ops), then open(st, arg) (the
 * backend's connect/migrate, writing st->err on failure); on failure the
 * handle is closed and its message copied to err. Returns 0 with *out set, or
 * the STORE_E* code of the failure.
 */
int store__open_backend(const struct store_ops *ops, int (*open)(struct store *, const void *),
                        const void *arg, struct store **out, char *err, size_t errlen);
/* Frees what store_new() made (the backend has released be). */
void store_free(struct store *st);
/* Grows *arr (element size esz) to hold at least need elements; 0 or STORE_ENOMEM. */
int store_grow(void **arr, size_t *cap, size_t need, size_t esz);

/* Policy and health as JSON (store_json.c, SQLite columns): NULL when out of memory; from_json: 0
 * or -1 (malformed). */
json_t *store_policy_to_json(const struct policy_settings *p);
json_t *store_health_to_json(const struct group_health *h);
/* The settings outside the sizes, [policy] and [health] (the SQLite "more" column): the key
   table's JSON form of them (group_settings_to_json() without those). NULL when out of memory. */
json_t *store_more_to_json(const struct group_settings *g);
/* Applies such an object onto *g (its other settings already read). Lenient like the columns
   above: a key unknown or a value refused keeps the default (a newer build's row, a key
   removed). Never fails. */
void store_more_from_json(const json_t *o, struct group_settings *g);
int store_policy_from_json(const json_t *o, struct policy_settings *p);
int store_health_from_json(const json_t *o, struct group_health *h);

/* The SQLite backend (store_sqlite.c): opens dir/asgd.db into st. */
int store_sqlite_open(struct store *st, const char *dir);
extern const struct store_ops store_sqlite_ops;

#endif
