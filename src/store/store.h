/*
 * store.h - asgd's durable state, behind one API with two backends: an
 * SQLite database per state directory (store_open(), one node, the default)
 * or an etcd cluster shared by the nodes of an asgd cluster
 * (store_open_etcd()). Every function below works on both; where the
 * backends differ (watch, fencing) the function says so.
 *
 * The store holds what must survive a restart of asgd: the group settings
 * (the source of truth once a group exists; the config file only seeds them),
 * the instances the group owns, the launch intents that make launches
 * idempotent across crashes, the activity history shown to operators and a
 * downsampled metric history for the dashboard's charts.
 *
 * SQLite: the database is DIR/asgd.db (0600, DIR 0700) in WAL mode (readers
 * never block the writer, a second handle or process can read while the
 * controller writes), with a busy timeout, so two handles on the same file
 * wait for each other instead of failing. A schema_version table records the
 * layout; store_open() applies the ordered migrations a database still lacks
 * and refuses a database written by a newer asgd (STORE_EVERSION).
 *
 * etcd: every write is one etcd transaction; writes for a group this handle
 * is fenced for (store_set_fence()) are conditioned on the group's owner key,
 * so a node that lost a group cannot write for it (STORE_EFENCED). Settings
 * reads come from a cache the handle's watch keeps fresh: another node's
 * write is seen within the watch's delay (milliseconds), and the settings
 * revision check catches a decision taken on a stale read. Keys and
 * revisions: docs/internals/store.md.
 *
 * Threads: calls on one handle are serialised by a mutex inside the handle,
 * but store_errmsg() then tells the last error of any thread; a thread that
 * needs exact messages opens its own handle (cheap, and WAL lets them run
 * concurrently). Nothing here is meant for a hot path: callers batch
 * (store_metrics_add() writes a whole batch in one transaction).
 *
 * Strings: every fixed-size char field below is NUL-terminated; text longer
 * than the field is truncated when read back, never overflowed. Input strings
 * must be shorter than their field (else STORE_EINVAL) unless said otherwise.
 * On etcd, group names, instance ids and launch tokens are parts of keys and
 * must not contain '/' (STORE_EINVAL).
 *
 * Errors: 0 on success, a negative STORE_E* code on failure
 * (store_strerror()), with text for the operator in store_errmsg(st). Output
 * arguments are written only on success. Any call on etcd may also return
 * STORE_EUNAVAIL (no quorum or no member reachable within the timeout: the
 * write may or may not have happened; keep instances running and retry) and
 * every write for a fenced group STORE_EFENCED (stop acting for the group). Lists are arrays the
 * caller frees with the matching store_*_free() (NULL is a no-op).
 */
#ifndef ASGD_STORE_H
#define ASGD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "group/group.h"

#define STORE_NAME_MAX   64  /* group name, NUL included */
#define STORE_ID_MAX     64  /* instance id, launch token, NUL included */
#define STORE_ADDR_MAX   64  /* "host:port", NUL included */
#define STORE_SHORT_MAX  32  /* provider, lifecycle, zone, kind, status, health type */
#define STORE_CAUSE_MAX  256 /* activity cause (policy_decision.cause fits) */
#define STORE_DETAIL_MAX 512 /* activity detail */

#define STORE_SPEC_MAX    (1024 * 1024) /* a group's spec text, bytes without the NUL */
#define STORE_REQUEST_MAX (64 * 1024)   /* a request's JSON text, bytes without the NUL */

/* Schema version this build writes; store_open() refuses a larger one. */
#define STORE_SCHEMA_VERSION                                                                       \
    4 /* 3: groups.more (every setting outside sizes, policy, health);                             \
         4: instances.protected, hook_deadline_ms, groups hook columns */

enum store_error {
    STORE_OK = 0,
    STORE_ENOENT = -1,    /* no such group / instance / intent */
    STORE_EEXIST = -2,    /* key already present (intent token) */
    STORE_EINVAL = -3,    /* bad argument from the caller (NULL, too long, out of range) */
    STORE_ECONFLICT = -4, /* settings revision changed since the caller read it */
    STORE_EVERSION = -5,  /* database schema newer than this build knows */
    STORE_ECORRUPT = -6,  /* not a database, or a malformed one */
    STORE_EIO = -7,       /* cannot create/open/write (permissions, disk full, busy too long) */
    STORE_ENOMEM = -8,
    STORE_EFENCED = -9,   /* etcd: this handle no longer owns the group (store_set_fence()):
                             nothing was written; stop acting for the group */
    STORE_EUNAVAIL = -10, /* etcd: no member reachable or no quorum: a write may or may not
                             have been applied; keep instances running and retry later */
    STORE_ENOTSUP = -11,  /* the backend does not do this (store_watch() on SQLite) */
};
/* Static text for a STORE_E* code ("unknown error" for others). */
const char *store_strerror(int code);

struct store;

/*
 * Opens (creating if needed) dir/asgd.db; dir itself is created (mode 0700)
 * if it does not exist, but not its parents, and an existing dir of ours
 * that group or others can use is narrowed to 0700; the database and its
 * -wal/-shm files are 0600. Migrates the schema to
 * STORE_SCHEMA_VERSION. On success *out owns the handle (store_close()). On
 * failure *out is untouched and err (if errlen > 0) holds a message naming
 * the file and the reason: unwritable dir -> STORE_EIO, not a database ->
 * STORE_ECORRUPT, newer schema -> STORE_EVERSION.
 */
int store_open(const char *dir, struct store **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Settings of the etcd backend (store_open_etcd()). Strings are copied. */
struct store_etcd_settings {
    const char *endpoints; /* "http://127.0.0.1:2379,http://h2:2379": comma-separated, required */
    const char *prefix;    /* key prefix, NULL or "": "/asgd" */
    const char *ca_file, *cert_file, *key_file; /* TLS (https endpoints), each may be NULL */
    int64_t timeout_ms;                         /* per request, <= 0: 5000 */
};

/*
 * Opens a handle on the etcd cluster at s->endpoints under s->prefix and
 * checks that a member answers (STORE_EUNAVAIL otherwise, with the endpoints
 * tried in err). The handle keeps a watch on the prefix (a thread) to keep
 * its settings cache fresh and to call store_watch()'s callback. Key layout
 * and revisions: docs/internals/store.md. store_schema_version() answers
 * STORE_SCHEMA_VERSION (etcd has no migrations: JSON values take defaults
 * for missing keys).
 */
int store_open_etcd(const struct store_etcd_settings *s, struct store **out, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/* Closes the database and frees the handle. NULL is a no-op. */
void store_close(struct store *st);
/* The last error's detail text for st (owned by st, valid until the next call). Never NULL. */
const char *store_errmsg(struct store *st);
/* Schema version of the open database (== STORE_SCHEMA_VERSION after open). */
int store_schema_version(struct store *st);

/* ---- group settings ------------------------------------------------------------------------- */

/*
 * Reads the settings of group name into *out. STORE_ENOENT if the group does
 * not exist yet (first start: seed it from the config file with
 * store_put_settings()).
 */
int store_get_settings(struct store *st, const char *name, struct group_settings *out)
    __attribute__((warn_unused_result));
/*
 * Creates or replaces the settings of group g->name (g->revision and
 * g->updated_at_ms are ignored on input). expect_revision < 0 writes
 * unconditionally; 0 requires that the group does not exist yet; > 0
 * requires that the stored revision is exactly that (optimistic locking for
 * the HTTP API's edits), else STORE_ECONFLICT. Checks 0 <= min <= desired <=
 * max (STORE_EINVAL otherwise). On success the new revision is stored in
 * *new_revision (may be NULL).
 */
int store_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                       int64_t *new_revision) __attribute__((warn_unused_result));
/*
 * Sets only desired_capacity of an existing group (the controller's scaling
 * decisions), bumping the revision. STORE_ENOENT if absent, STORE_EINVAL if
 * outside [min, max].
 */
int store_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision)
    __attribute__((warn_unused_result));
/* Names of every group, sorted. *names is an array of *n malloc'd strings: store_names_free(). */
int store_list_groups(struct store *st, char ***names, size_t *n)
    __attribute__((warn_unused_result));
void store_names_free(char **names, size_t n);

/*
 * Deletes group name and everything the store keeps for it: settings, spec,
 * instances, launch intents, pending requests, activities and metric
 * history (DELETE /api/v1/groups/{name}; terminating the instances first is
 * the caller's business). One transaction. STORE_ENOENT if the group has
 * neither settings nor spec. Not fenced (an API call), but a fenced owner's
 * later writes for the group fail with STORE_EFENCED once its owner key is
 * gone.
 */
int store_delete_group(struct store *st, const char *name) __attribute__((warn_unused_result));

/* ---- group spec ----------------------------------------------------------------------------- */

/*
 * The spec is the group's full definition as opaque text (the group
 * module's JSON: its [provider], [local], [ec2] keys ...), at most
 * STORE_SPEC_MAX bytes; the store never parses it. It has its own revision,
 * independent of the settings revision: expect_revision < 0 writes
 * unconditionally, 0 requires that no spec exists yet (else STORE_EEXIST),
 * > 0 requires exactly that revision (else STORE_ECONFLICT). The group's
 * settings need not exist. *new_revision (may be NULL) gets the new
 * revision. Not fenced.
 */
int store_put_spec(struct store *st, const char *name, const char *text, int64_t expect_revision,
                   int64_t *new_revision) __attribute__((warn_unused_result));
/*
 * Reads the spec of group name: *text is a malloc'd copy (caller frees),
 * *revision (may be NULL) its revision. STORE_ENOENT if none.
 */
int store_get_spec(struct store *st, const char *name, char **text, int64_t *revision)
    __attribute__((warn_unused_result));

/* ---- pending requests for a group's owner --------------------------------------------------- */

/*
 * A request is a mutation asked through a node that does not own the group
 * (kind "terminate" with {"instance_id": ..., "decrement": true}, ...): the
 * API records it, the owner lists, applies and deletes it. The store keeps
 * the text opaque.
 */
struct store_request {
    int64_t id; /* grows: newer = larger */
    char group[STORE_NAME_MAX];
    char kind[STORE_SHORT_MAX];
    int64_t created_at_ms;
    char *json; /* malloc'd, owned by the list */
};

/*
 * Appends a request for group (non-empty, need not exist) of kind
 * (non-empty) with json_text (at most STORE_REQUEST_MAX bytes). *id_out
 * (may be NULL) gets its id. Not fenced: any node may add.
 */
int store_request_add(struct store *st, const char *group, const char *kind, const char *json_text,
                      int64_t *id_out) __attribute__((warn_unused_result));
/* Pending requests of group, oldest first. *out: *n items, store_requests_free(*out, *n). */
int store_request_list(struct store *st, const char *group, struct store_request **out, size_t *n)
    __attribute__((warn_unused_result));
void store_requests_free(struct store_request *list, size_t n);
/* Deletes request id of group once applied. STORE_ENOENT if absent. Fenced. */
int store_request_delete(struct store *st, const char *group, int64_t id)
    __attribute__((warn_unused_result));

/* ---- change notification -------------------------------------------------------------------- */

enum store_change {
    STORE_CHANGE_SETTINGS = 1, /* settings written (also: group created) */
    STORE_CHANGE_SPEC,         /* spec written */
    STORE_CHANGE_REQUEST,      /* a request was added */
    STORE_CHANGE_DELETED,      /* the group's settings are gone (group deleted) */
};
typedef void (*store_watch_fn)(void *arg, const char *group, int what);

/*
 * etcd: from now on cb(arg, group, what) is called, from the handle's watch
 * thread, after any node (this handle included) changes a group's settings
 * or spec, adds a request or deletes the group; when the watch had to be
 * re-established (etcd down, compaction) cb is called with
 * STORE_CHANGE_SETTINGS for every group, since changes may have been missed.
 * cb must not block long; it may call store functions on any handle. NULL
 * cb stops the calls (when store_watch() returns, no call is running).
 * SQLite: STORE_ENOTSUP (one node: the writer is the caller itself).
 */
int store_watch(struct store *st, store_watch_fn cb, void *arg);

/* ---- fencing (etcd) ------------------------------------------------------------------------- */

/*
 * From now on every write this handle makes for group (instances, launch
 * intents, activities, desired capacity, metrics, request deletion) is
 * conditioned on etcd key owner_key (a full key, not under the prefix)
 * existing with create revision owner_create_revision: when it does not (the
 * lease expired, another node took the group), nothing is written and the
 * call returns STORE_EFENCED. Writes of settings, spec and request_add stay
 * unconditioned (API writes from any node; the settings revision still
 * guards them). Replaces an earlier fence of the group.
 * store_clear_fence() removes it. SQLite: recorded nowhere, returns 0 (one
 * node owns everything).
 */
int store_set_fence(struct store *st, const char *group, const char *owner_key,
                    int64_t owner_create_revision) __attribute__((warn_unused_result));
int store_clear_fence(struct store *st, const char *group);

/* ---- instances ------------------------------------------------------------------------------ */

struct store_instance {
    char id[STORE_ID_MAX];
    char group[STORE_NAME_MAX];
    char address[STORE_ADDR_MAX];
    char provider[STORE_SHORT_MAX];  /* "local" | "ec2" */
    char lifecycle[STORE_SHORT_MAX]; /* free text, e.g. fleet_lifecycle_name(): "pending", ... */
    int64_t launched_at_ms;
    char launch_token[STORE_ID_MAX]; /* "" if unknown (adopted) */
    int32_t pid;                     /* local provider, else 0 */
    char zone[STORE_SHORT_MAX];
    int64_t created_at_ms, updated_at_ms; /* set by the store (wall clock) */
    int64_t terminated_at_ms;             /* 0 while not terminated */
    /* lifecycle (issue 12): lifecycle may also be "pending:wait", "terminating:wait",
       "standby", "detached" */
    int protect;              /* scale-in protection */
    int64_t hook_deadline_ms; /* wall: a hook wait ends with its default result then; 0 none */
};

/*
 * Inserts inst, or replaces every field of the row with the same id (upsert;
 * created_at_ms of an existing row is kept). inst->id and inst->group must be
 * non-empty.
 */
int store_put_instance(struct store *st, const struct store_instance *inst)
    __attribute__((warn_unused_result));
/*
 * store_put_instance() for n instances at once: one transaction where the
 * backend has them (SQLite: one fsync for a launch of 1,000), else one write
 * each. All or nothing on SQLite; on etcd the rows before a failure stay.
 */
int store_put_instances(struct store *st, const struct store_instance *v, size_t n)
    __attribute__((warn_unused_result));
/*
 * store_set_instance_lifecycle() for n ids at once (as store_put_instances);
 * ids without a row are skipped, not an error.
 */
int store_set_instances_lifecycle(struct store *st, const char *const *ids, size_t n,
                                  const char *lifecycle, int64_t terminated_at_ms)
    __attribute__((warn_unused_result));
/*
 * Sets the lifecycle text (and terminated_at_ms, 0 to leave it unchanged) of
 * instance id. STORE_ENOENT if absent.
 */
int store_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                                 int64_t terminated_at_ms) __attribute__((warn_unused_result));
/* Reads one instance. STORE_ENOENT if absent. */
int store_get_instance(struct store *st, const char *id, struct store_instance *out)
    __attribute__((warn_unused_result));
/* Deletes instance id (its metric rows stay until pruned). STORE_ENOENT if absent. */
int store_delete_instance(struct store *st, const char *id);
/*
 * Lists the instances of group (NULL: all groups), oldest launch first;
 * terminated ones (terminated_at_ms != 0) only if include_terminated. *out is
 * a malloc'd array of *n items (NULL when *n == 0): store_instances_free().
 */
int store_list_instances(struct store *st, const char *group, int include_terminated,
                         struct store_instance **out, size_t *n)
    __attribute__((warn_unused_result));
void store_instances_free(struct store_instance *list);

/* ---- launch intents (idempotency across crashes) -------------------------------------------- */

enum store_intent_state { STORE_INTENT_OPEN = 0, STORE_INTENT_DONE, STORE_INTENT_FAILED };

struct store_intent {
    char token[STORE_ID_MAX];
    char group[STORE_NAME_MAX];
    int count;
    int64_t created_at_ms;
    int state;  /* enum store_intent_state */
    char **ids; /* instance ids known for this launch (malloc'd strings), n_ids of them */
    size_t n_ids;
};

/*
 * Records the intent to launch count instances with token, state OPEN, BEFORE
 * calling the provider. STORE_EEXIST if the token is already recorded.
 */
int store_intent_create(struct store *st, const char *token, const char *group, int count,
                        int64_t created_at_ms) __attribute__((warn_unused_result));
/*
 * Closes intent token with state DONE or FAILED and the ids it produced
 * (ids may be NULL when n == 0; replaces any ids stored before).
 * STORE_ENOENT if unknown, STORE_EINVAL for state OPEN or a bad id.
 */
int store_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                          size_t n) __attribute__((warn_unused_result));
/*
 * Lists OPEN intents of group (NULL: all), oldest first: after a crash, each
 * is retried with the same token (the provider returns the first call's
 * instances). *out: malloc'd array of *n, free with store_intents_free(*out, *n).
 */
int store_intent_list_open(struct store *st, const char *group, struct store_intent **out,
                           size_t *n) __attribute__((warn_unused_result));
void store_intents_free(struct store_intent *list, size_t n);

/* ---- activities ----------------------------------------------------------------------------- */

/* Kinds in use: "launch", "terminate", "scale", "replace", "error", "settings", "adopt", "forget".
 */
struct store_activity {
    int64_t id; /* assigned by store_activity_add() */
    char group[STORE_NAME_MAX];
    int64_t at_ms;
    char kind[STORE_SHORT_MAX];
    char cause[STORE_CAUSE_MAX]; /* "average load 83% > 70% for 60s: 2 -> 4" */
    int from_count, to_count;
    char status[STORE_SHORT_MAX]; /* "ok", "failed", "in-progress", ... */
    char detail[STORE_DETAIL_MAX];
};

/*
 * Appends activity a (a->id ignored); group and kind must be non-empty.
 * cause/detail are taken as NUL-terminated strings within their fields. The
 * new id is stored in *id_out (may be NULL). Ids grow: newer = larger.
 */
int store_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out)
    __attribute__((warn_unused_result));
/* n activities at once, in order (one transaction where the backend has them, as
   store_put_instances()). */
int store_activities_add(struct store *st, const struct store_activity *a, size_t n)
    __attribute__((warn_unused_result));
/*
 * Lists activities of group (NULL: all), newest first, at most limit
 * (1..10000), only those with id < before_id when before_id > 0 (paging:
 * pass the last id of the previous page). *out: malloc'd array of *n,
 * store_activities_free().
 */
int store_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                        struct store_activity **out, size_t *n) __attribute__((warn_unused_result));
void store_activities_free(struct store_activity *list);

/* ---- metric history (downsampled, for charts) ----------------------------------------------- */

struct store_metric_group {
    char group[STORE_NAME_MAX];
    int64_t at_ms;
    double avg_load; /* < 0: no data */
    int in_service;
    int desired;
};

struct store_metric_instance {
    char group[STORE_NAME_MAX];
    int64_t at_ms;
    char instance_id[STORE_ID_MAX];
    double load;
};

/*
 * Adds both batches (either may be empty) in ONE transaction: all rows or
 * none. Every row needs a non-empty group (and instance_id); a load that is
 * not finite (NaN: no data) is stored as -1.
 */
int store_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                      const struct store_metric_instance *inst, size_t ni)
    __attribute__((warn_unused_result));
/*
 * Group rows of group with at_ms >= since_ms, oldest first; when more than
 * max_rows (1..1000000) match, the NEWEST max_rows are returned. *out:
 * malloc'd, free().
 */
int store_metrics_group_since(struct store *st, const char *group, int64_t since_ms,
                              size_t max_rows, struct store_metric_group **out, size_t *n)
    __attribute__((warn_unused_result));
/* Same for per-instance rows of group; instance_id NULL: every instance. *out: free(). */
int store_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                                 int64_t since_ms, size_t max_rows,
                                 struct store_metric_instance **out, size_t *n)
    __attribute__((warn_unused_result));
/* Deletes metric rows (both kinds) with at_ms < older_than_ms; *deleted (may be NULL) counts them.
 */
int store_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted)
    __attribute__((warn_unused_result));

#endif
