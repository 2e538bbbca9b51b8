/*
 * etcd.h - a client of etcd's v3 API (etcd 3.4), for asgd's cluster mode:
 * key-value reads and writes, transactions, leases and watches.
 *
 * Transport: etcd's JSON gateway on the client port (POST /v3/kv/range, ...),
 * over libcurl with jansson, not gRPC. Every unary call is one HTTP request on
 * the libcurl we already link (keep-alive reuses the connection), there is no
 * generated code nor .proto to ship, and curl gives TLS, timeouts and
 * connection reuse for free. The gateway's costs, handled here: keys and
 * values are base64 in JSON, 64-bit integers travel as JSON strings, fields
 * at their zero value are omitted, and the bidirectional streams (lease
 * keep-alive, watch) become one request per renewal and one long streaming
 * response per watch. docs/internals/etcd.md has the details.
 *
 * Keys and values are byte strings: a pointer and a length. A length of
 * ETCD_NUL means "the pointer is a NUL-terminated string" (a convenience for
 * text keys). Keys and values returned to the caller are allocated with one
 * extra NUL byte after their length, so text can be used as a C string
 * directly; binary data may contain NULs, so use the lengths for it.
 *
 * Endpoints and failover: a handle has the settings' endpoint list and
 * remembers the one that last answered. A connection error, a timeout, a 5xx
 * or an answer that etcd cannot serve now (no leader, request timed out:
 * gRPC codes UNAVAILABLE / DEADLINE_EXCEEDED in the gateway's JSON) moves the
 * call to the next endpoint, round after round, until the call's deadline
 * (call_timeout_ms). Each attempt has its own deadline (attempt_timeout_ms).
 * A call that failed after a timeout may still have been applied by etcd,
 * and a retried write may be applied twice: write your writes so that is
 * harmless (a put of the same value, a txn conditioned on what you read).
 *
 * Threads: one handle is used by one thread at a time (it holds one curl
 * handle and the last error text). Threads create their own handles: it is
 * cheap (no connection is made before the first call). A watch runs in its
 * own thread with its own curl handle and calls back from that thread.
 *
 * Errors: 0 on success, a negative ETCD_E* code on failure
 * (etcd_strerror()), with text for the operator (which endpoint, what failed)
 * in etcd_errmsg(h). Output arguments are written only on success. Results
 * that own memory are freed with their one *_free() function (NULL is a no-op).
 */
#ifndef ASGD_ETCD_H
#define ASGD_ETCD_H

#include <stddef.h>
#include <stdint.h>

/* Length meaning "NUL-terminated string" for any key/value argument. */
#define ETCD_NUL ((size_t)-1)

enum etcd_error {
    ETCD_OK = 0,
    /* No endpoint could serve the call within its deadline: every member down
     * or unreachable, or the reachable ones without quorum (no leader, request
     * timed out). Transient: retry later. */
    ETCD_EUNAVAIL = -1,
    /* Every attempt of the call ran out of time without any endpoint refusing
     * or answering (e.g. members reachable but stalled). Transient. Callers
     * usually treat it like ETCD_EUNAVAIL. */
    ETCD_ETIMEOUT = -2,
    /* The requested revision was compacted (range at an old revision, watch
     * from an old revision: the watch reports it as an ETCD_EV_RESET event). */
    ETCD_ECOMPACTED = -3,
    /* The lease does not exist (never granted, expired, or revoked): put with
     * that lease, keepalive, revoke, timetolive. */
    ETCD_ELEASE = -4,
    /* A reply we cannot parse (not HTTP, not JSON, no header revision, bad
     * base64, absurd numbers, wrong types, truncated, too large). Never
     * trusted, never a crash. A reply that is not JSON moves the call to the
     * next endpoint (the code is returned if none served it); a JSON reply
     * with bad fields is returned at once. */
    ETCD_EPROTO = -5,
    /* A bad argument from the caller (NULL, empty key, bad settings), or a
     * request etcd rejected as invalid (future revision, key too large...). */
    ETCD_EINVAL = -6,
    ETCD_ENOMEM = -7,
};
/* Static text for an ETCD_E* code ("unknown error" for others). */
const char *etcd_strerror(int code);

/* ---- settings and handles ---------------------------------------------- */

struct etcd_settings {
    /* Comma-separated base URLs, "http://127.0.0.1:2379,http://...". Required.
     * https:// URLs use the TLS files below. */
    const char *endpoints;
    const char *ca_file;   /* NULL: system CAs (curl's CURLOPT_CAINFO) */
    const char *cert_file; /* NULL: no client certificate (CURLOPT_SSLCERT) */
    const char *key_file;  /* NULL: no client key (CURLOPT_SSLKEY) */
    /* Deadline of one HTTP attempt on one endpoint; <= 0: 2000 ms. */
    int attempt_timeout_ms;
    /* Deadline of a whole call, all endpoints and rounds; <= 0: 5000 ms.
     * Never shorter than one attempt. */
    int call_timeout_ms;
    /* Watches only: a stream on which nothing arrived for this long is
     * dropped and reopened (next endpoint), so a dead or stalled member is
     * noticed. Watches ask etcd for progress notifications, and
     * scripts/etcd-cluster starts members that send them every 1 s; against
     * another etcd an idle healthy stream is just reopened, resuming where it
     * was (no event lost). <= 0: 5000 ms. */
    int watch_idle_timeout_ms;
};

struct etcd;

/*
 * Creates a handle from s (copied: s and its strings may be freed after the
 * call). No connection is made yet. On success *out owns the handle
 * (etcd_free()). On failure (*out untouched): ETCD_EINVAL for an empty or
 * malformed endpoint list (err says why), ETCD_ENOMEM.
 */
int etcd_new(const struct etcd_settings *s, struct etcd **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Frees the handle and closes its connection. NULL is a no-op. */
void etcd_free(struct etcd *h);
/* The last error's text (owned by h, valid until the next call on h). Never NULL. */
const char *etcd_errmsg(const struct etcd *h);
/* The endpoint URL the handle uses now (last one that answered). Never NULL. */
const char *etcd_endpoint(const struct etcd *h);

/* ---- key-value ---------------------------------------------------------- */

struct etcd_kv {
    char *key; /* owned by the result; key_len bytes plus a NUL */
    size_t key_len;
    char *value; /* owned by the result; value_len bytes plus a NUL ("" when keys_only) */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease; /* 0: no lease */
};

enum etcd_sort_order { ETCD_SORT_NONE = 0, ETCD_SORT_ASCEND, ETCD_SORT_DESCEND };
enum etcd_sort_target {
    ETCD_SORT_KEY = 0,
    ETCD_SORT_VERSION,
    ETCD_SORT_CREATE,
    ETCD_SORT_MOD,
    ETCD_SORT_VALUE,
};

/* Options of a range; all zero (ETCD_RANGE_OPTS_INIT) = the one key, whole. */
struct etcd_range_opts {
    int prefix;       /* nonzero: every key starting with key (range_end = prefix + 1);
                       * an empty prefix (key_len 0) is every key */
    int64_t limit;    /* max kvs returned, 0 = no limit (then see more / count) */
    int keys_only;    /* values not returned */
    int count_only;   /* only count is returned, no kvs */
    int64_t revision; /* read at this revision (ETCD_ECOMPACTED if compacted), 0 = latest */
    int64_t min_create_revision, max_create_revision; /* filters, 0 = none */
    int64_t min_mod_revision, max_mod_revision;       /* filters, 0 = none */
    enum etcd_sort_order sort_order;
    enum etcd_sort_target sort_target;
    int serializable; /* nonzero: answer from the member's local state (may be stale) */
};
#define ETCD_RANGE_OPTS_INIT                                                                       \
    {                                                                                              \
        0                                                                                          \
    }

struct etcd_range_result {
    struct etcd_kv *kvs; /* n_kvs entries, owned */
    size_t n_kvs;
    int more;         /* more keys than limit matched */
    int64_t count;    /* keys matching in total (not limited) */
    int64_t revision; /* the store's revision the read saw (header.revision) */
};

/*
 * Reads one key, or a prefix (opts->prefix), with opts (NULL = defaults). A
 * missing key is success with n_kvs == 0. On success *out owns a result
 * freed with etcd_range_result_free(). key_len may be 0 only with prefix.
 */
int etcd_range(struct etcd *h, const void *key, size_t key_len, const struct etcd_range_opts *opts,
               struct etcd_range_result **out) __attribute__((warn_unused_result));
/* Frees a range result and its kvs. NULL is a no-op. */
void etcd_range_result_free(struct etcd_range_result *r);

/*
 * Writes key = value, attached to lease (0: none; an unknown lease gives
 * ETCD_ELEASE). revision (may be NULL) receives the revision of the write.
 */
int etcd_put(struct etcd *h, const void *key, size_t key_len, const void *value, size_t value_len,
             int64_t lease, int64_t *revision) __attribute__((warn_unused_result));

/*
 * Deletes one key, or every key under a prefix (prefix nonzero; an empty
 * prefix deletes everything). deleted (may be NULL) receives how many keys
 * went (0 is success), revision (may be NULL) the store's revision after.
 */
int etcd_delete(struct etcd *h, const void *key, size_t key_len, int prefix, int64_t *deleted,
                int64_t *revision) __attribute__((warn_unused_result));

/*
 * Compacts the history: revisions before revision are forgotten (watches and
 * reads at them get ETCD_ECOMPACTED). For maintenance and tests; etcd can
 * also compact by itself (--auto-compaction-*). An already compacted
 * revision gives ETCD_ECOMPACTED.
 */
int etcd_compact(struct etcd *h, int64_t revision) __attribute__((warn_unused_result));

/* ---- transactions ------------------------------------------------------- */

enum etcd_cmp_target {
    ETCD_CMP_VALUE = 0,
    ETCD_CMP_CREATE, /* create_revision: 0 means "key absent" */
    ETCD_CMP_MOD,    /* mod_revision */
    ETCD_CMP_VERSION,
    ETCD_CMP_LEASE,
};
enum etcd_cmp_result { ETCD_CMP_EQUAL = 0, ETCD_CMP_NOT_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS };

/* One comparison: "key's target RESULT operand". Borrowed pointers. */
struct etcd_cmp {
    const void *key;
    size_t key_len;
    enum etcd_cmp_target target;
    enum etcd_cmp_result result;
    int64_t number;    /* operand for CREATE, MOD, VERSION, LEASE */
    const void *value; /* operand for VALUE */
    size_t value_len;
};

enum etcd_op_type { ETCD_OP_RANGE = 0, ETCD_OP_PUT, ETCD_OP_DELETE };

/* One operation of a txn branch. Borrowed pointers. */
struct etcd_op {
    enum etcd_op_type type;
    const void *key;
    size_t key_len;
    const void *value;                   /* PUT */
    size_t value_len;                    /* PUT */
    int64_t lease;                       /* PUT, 0: none */
    int prefix;                          /* DELETE; RANGE when range is NULL */
    const struct etcd_range_opts *range; /* RANGE: options, NULL = one key or prefix, whole */
};

struct etcd_op_result {
    enum etcd_op_type type;
    struct etcd_range_result range; /* RANGE: kvs, more, count (revision: the txn's) */
    int64_t deleted;                /* DELETE: keys deleted */
    int64_t revision;               /* PUT / DELETE: header revision of the op */
};

struct etcd_txn_result {
    int succeeded;              /* the compares held: success ops ran, else failure ops */
    int64_t revision;           /* the store's revision after the txn */
    struct etcd_op_result *ops; /* results of the branch that ran, in order */
    size_t n_ops;
};

/*
 * Runs "if all cmps hold then success ops else failure ops" atomically. Any
 * array may be empty (pointer NULL with count 0). On success (the txn ran,
 * whichever branch) *out owns a result freed with etcd_txn_result_free().
 * A put with an unknown lease in the branch that runs gives ETCD_ELEASE.
 *
 * Create-if-absent bound to a lease (ownership):
 *   cmp  {key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, .number = 0}
 *   then {ETCD_OP_PUT, key, me, .lease = L}   else {ETCD_OP_RANGE, key}
 * succeeded == 0 -> ops[0].range.kvs[0] is the current holder.
 */
int etcd_txn(struct etcd *h, const struct etcd_cmp *cmps, size_t n_cmps,
             const struct etcd_op *success, size_t n_success, const struct etcd_op *failure,
             size_t n_failure, struct etcd_txn_result **out) __attribute__((warn_unused_result));
/* Frees a txn result. NULL is a no-op. */
void etcd_txn_result_free(struct etcd_txn_result *r);

/* ---- leases ------------------------------------------------------------- */

/*
 * Grants a lease of ttl_s seconds (>= 1; etcd may raise it to its minimum).
 * *id receives the lease id, granted_ttl (may be NULL) the TTL etcd granted.
 * A grant retried after a timeout may leave an unused lease: it expires.
 */
int etcd_lease_grant(struct etcd *h, int64_t ttl_s, int64_t *id, int64_t *granted_ttl)
    __attribute__((warn_unused_result));
/*
 * Renews the lease once (one request; call it every ttl/3). ttl (may be
 * NULL) receives the renewed TTL in seconds, always >= 1 on success. An
 * expired, revoked or unknown lease gives ETCD_ELEASE (never success with
 * ttl 0): the keys attached to it are gone.
 */
int etcd_lease_keepalive(struct etcd *h, int64_t id, int64_t *ttl)
    __attribute__((warn_unused_result));
/* Revokes the lease, deleting its keys. Unknown lease: ETCD_ELEASE (also
 * when a retry follows a revoke that timed out but was applied: for a caller
 * that wants the lease gone, ETCD_ELEASE is success). */
int etcd_lease_revoke(struct etcd *h, int64_t id) __attribute__((warn_unused_result));
/*
 * Remaining ttl (seconds, may be 0 just before expiry) and granted_ttl of a
 * lease; either may be NULL. Expired or unknown lease: ETCD_ELEASE.
 */
int etcd_lease_timetolive(struct etcd *h, int64_t id, int64_t *ttl, int64_t *granted_ttl)
    __attribute__((warn_unused_result));

/* ---- watches ------------------------------------------------------------ */

enum etcd_event_type {
    ETCD_EV_PUT = 0,
    ETCD_EV_DELETE,
    /* The watch could not resume: the revision it needed was compacted.
     * Events were lost; re-list (etcd_range) and from then on ignore events
     * whose kv.mod_revision <= your list's revision. kv is empty (key and
     * value ""), the batch's revision is the compaction revision. The watch
     * goes on from the compaction revision (the oldest one etcd still has),
     * so events after your re-list are not lost; some may repeat it. */
    ETCD_EV_RESET,
};

struct etcd_event {
    enum etcd_event_type type;
    /* PUT: the new kv. DELETE: key, mod_revision = the deletion's revision,
     * empty value, other fields 0. Pointers valid during the callback only. */
    struct etcd_kv kv;
    /* The key's previous mod_revision (0 when it did not exist or etcd no
     * longer had it). */
    int64_t prev_revision;
};

/*
 * Called from the watch thread with a batch of n events in revision order,
 * and the revision of the batch (header revision). Events and their memory
 * belong to the watch: copy what you keep. The callback must not call
 * etcd_watch_stop() on its own watch; it may use its own etcd handle.
 */
typedef void (*etcd_watch_cb)(void *arg, const struct etcd_event *events, size_t n,
                              int64_t revision);

struct etcd_watch;

/*
 * Watches key (or every key under it when prefix is nonzero) from
 * start_revision (0: from the next change), in a new thread with its own
 * connection. On a broken, failed or idle (watch_idle_timeout_ms) stream it
 * reconnects to the next endpoint (short backoff once a round failed) and
 * resumes at the last delivered revision + 1, so no event is lost nor
 * repeated; only a compaction loses events, reported as ETCD_EV_RESET.
 * It keeps trying until stopped, logging (warn) when a stream that was up
 * ends and when every endpoint failed in a row; etcd_watch_revision() tells
 * how far it got, etcd_watch_connected() whether a stream is up.
 * On success *out owns the watch (etcd_watch_stop()). On failure (bad
 * settings or key: ETCD_EINVAL, ETCD_ENOMEM, thread creation failure:
 * ETCD_ENOMEM) no thread runs and cb is never called; err says why.
 */
int etcd_watch_start(const struct etcd_settings *s, const void *key, size_t key_len, int prefix,
                     int64_t start_revision, etcd_watch_cb cb, void *arg, struct etcd_watch **out,
                     char *err, size_t errlen) __attribute__((warn_unused_result));
/*
 * Stops the watch: its thread is joined (the callback is not running and will
 * not run after this returns), then everything is freed. NULL is a no-op.
 */
void etcd_watch_stop(struct etcd_watch *w);
/*
 * The revision the watch has seen up to (events delivered, or the stream's
 * header revision when it was created or notified progress); 0 before its
 * first answer. Safe from any thread.
 */
int64_t etcd_watch_revision(struct etcd_watch *w);
/* 1 when the watch's stream is open and was created by etcd, 0 while it reconnects. Any thread. */
int etcd_watch_connected(struct etcd_watch *w);

#endif
