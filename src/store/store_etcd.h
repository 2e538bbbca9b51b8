/*
 * store_etcd.h - private to the etcd backend (store_etcd.c: open, helpers,
 * watch and settings cache, fencing; store_etcd_groups.c: settings, spec,
 * groups, requests; store_etcd_rows.c: instances, intents, activities;
 * store_etcd_metrics.c: metric history). Called with
 * the handle's mutex held (store.c), arguments already checked. Key layout
 * and revisions: docs/internals/store.md.
 */
#ifndef ASGD_STORE_ETCD_H
#define ASGD_STORE_ETCD_H

#include <pthread.h>

#include "etcd/etcd.h"
#include "store/store_impl.h"

struct es_fence {
    char group[STORE_NAME_MAX];
    char *owner_key; /* full key, malloc'd */
    int64_t create_revision;
};

struct es_cached {
    struct group_settings g; /* g.revision = the settings key's version */
    int64_t mod_revision;
};

/* What this handle knows of a group's metric buckets (store_etcd_metrics.c). */
struct es_memo {
    char group[STORE_NAME_MAX];
    int64_t oldest_bucket; /* INT64_MIN: unknown (look at the next prune), INT64_MAX: none */
    int adds;              /* this handle writes the group's metrics: deletes ride along */
    int64_t pending_below; /* buckets below this wait for the next batch's txn; 0: none */
};

/* The backend's state behind st->be. */
struct es {
    struct etcd_settings cfg; /* strings below are owned copies */
    char *endpoints, *ca_file, *cert_file, *key_file;
    char *prefix;   /* no trailing '/' */
    struct etcd *h; /* used under the handle's mutex only */
    struct es_fence *fences;
    size_t n_fences;
    struct es_memo *memo; /* groups whose metrics this handle prunes */
    size_t n_memo, cap_memo;
    int pruned_once; /* the first prune scans every group */

    /* settings cache, fed by the watch thread and by this handle's own writes */
    pthread_mutex_t cmu;
    struct es_cached *cache;
    size_t n_cache, cap_cache;
    int64_t last_delete_rev; /* newest settings deletion seen: older reads are not cached */
    struct etcd_watch *watch;

    /* store_watch()'s callback; cbmu is held while it runs */
    pthread_mutex_t cbmu;
    store_watch_fn cb;
    void *cb_arg;
};
#define ES(st) ((struct es *)(st)->be)

/* Maps an etcd client failure to a STORE_E* code with operator text naming what. */
int es_err(struct store *st, int rc, const char *what);
/* prefix + formatted suffix, malloc'd; NULL when out of memory (st->err set). */
char *es_key(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Appends the fence compare of group (if this handle has one) to cmps[*n]
 * and the range of its owner key to fail[*nf]: returns 1 if added.
 */
int es_fence_add(struct store *st, const char *group, struct etcd_cmp *cmps, size_t *n,
                 struct etcd_op *fail, size_t *nf);
/*
 * After a txn that did not succeed: STORE_EFENCED (with text) if the fence
 * range in r->ops[fence_op] shows another owner key revision, else 0.
 */
int es_fence_check(struct store *st, const char *group, const struct etcd_txn_result *r,
                   size_t fence_op);
/* 64 random bits (getrandom), for key names that only have to be unique. */
uint64_t es_rand(void);
/* Parses JSON text of kv; NULL if malformed. */
json_t *es_json(const struct etcd_kv *kv);
/* JSON text of o (compact), or NULL (ENOMEM, st->err set). Does not steal o. */
char *es_dump(struct store *st, const json_t *o);
/* Copies string member key of o into dst[size] (truncated, terminated; "" when absent). */
void es_str(const json_t *o, const char *key, char *dst, size_t size);
int64_t es_i64(const json_t *o, const char *key);
/*
 * Every kv under the prefix key, page keys per request (paged by create
 * revision, every page at the first page's revision), values unless
 * keys_only. *out owns the kvs (es_kvs_free). 0 or STORE_E*.
 */
#define ES_PAGE         500 /* instances, intents, requests, index entries: < 1 KiB each */
#define ES_METRICS_PAGE 32  /* metric batches: up to ~200 KiB each (4096 instances) */
int es_range_all(struct store *st, const char *key, int64_t page, int keys_only,
                 struct etcd_kv **out, size_t *n);
/*
 * The same, handing each kv to fn as the pages arrive (memory: one page);
 * fn may take kv->key/value (set them NULL). A nonzero return stops and is
 * returned.
 */
typedef int (*es_kv_fn)(struct store *st, struct etcd_kv *kv, void *ctx);
int es_range_each(struct store *st, const char *key, int64_t page, int keys_only, es_kv_fn fn,
                  void *ctx);
void es_kvs_free(struct etcd_kv *kvs, size_t n);
/* Names of the groups with settings (sorted), as store_list_groups(). */
int es_group_names(struct store *st, char ***names, size_t *n);

/* The watch (started once, lazily) and the settings cache, under es->cmu (store_etcd.c). */
int es_ensure_watch(struct store *st);
/* 1 and *out when name is cached. */
int es_cache_get(struct es *e, const char *name, struct group_settings *out);
/* Caches g unless a newer value is cached; read_revision: the read's header revision, 0 for
 * this handle's own write. Only while the watch runs. */
void es_cache_put(struct es *e, const struct group_settings *g, int64_t mod_revision,
                  int64_t read_revision);
void es_cache_drop(struct es *e, const char *name, int64_t revision);
/* Parses settings kv (group module JSON) into *g, revision = the key's version; -1 + err. */
int es_settings_of(const struct etcd_kv *kv, struct group_settings *g, char *err, size_t errlen);

/* store_etcd_groups.c */
int es_get_settings(struct store *st, const char *name, struct group_settings *out);
int es_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                    int64_t *new_revision);
int es_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision);
int es_list_groups(struct store *st, char ***names, size_t *n);
int es_delete_group(struct store *st, const char *name);
int es_put_spec(struct store *st, const char *name, const char *text, int64_t expect_revision,
                int64_t *new_revision);
int es_get_spec(struct store *st, const char *name, char **text, int64_t *revision);
int es_request_add(struct store *st, const char *group, const char *kind, const char *json_text,
                   int64_t *id_out);
int es_request_list(struct store *st, const char *group, struct store_request **out, size_t *n);
int es_request_delete(struct store *st, const char *group, int64_t id);

/* store_etcd_rows.c and store_etcd_metrics.c */
int es_put_instance(struct store *st, const struct store_instance *inst);
int es_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                              int64_t terminated_at_ms);
int es_get_instance(struct store *st, const char *id, struct store_instance *out);
int es_delete_instance(struct store *st, const char *id);
int es_list_instances(struct store *st, const char *group, int include_terminated,
                      struct store_instance **out, size_t *n);
int es_intent_create(struct store *st, const char *token, const char *group, int count,
                     int64_t created_at_ms);
int es_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                       size_t n);
int es_intent_list_open(struct store *st, const char *group, struct store_intent **out, size_t *n);
int es_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out);
int es_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                     struct store_activity **out, size_t *n);
int es_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                   const struct store_metric_instance *inst, size_t ni);
int es_metrics_group_since(struct store *st, const char *group, int64_t since_ms, size_t max_rows,
                           struct store_metric_group **out, size_t *n);
int es_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                              int64_t since_ms, size_t max_rows, struct store_metric_instance **out,
                              size_t *n);
int es_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted);
/* Forgets what the handle knew of group's metrics (the group was deleted). */
void es_metrics_forget(struct store *st, const char *group);
/* Ops of a txn on group's keys under its fence (store_etcd_rows.c); *out may be NULL. */
int es_fenced_ops(struct store *st, const char *group, const struct etcd_op *ops, size_t n,
                  struct etcd_txn_result **out, const char *what);
/* Deletes the index keys of group's instances and intents (before the group's keys go). */
int es_delete_group_index(struct store *st, const char *group);

#endif
