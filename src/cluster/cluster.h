/*
 * cluster.h - membership of asgd nodes and exactly-one ownership of each
 * group, on etcd.
 *
 * Every node holds one etcd lease (TTL lease_ttl_ms, renewed every ttl/3 by
 * this module's keepalive thread) and, on that lease:
 *   P/nodes/<node>    {"node": N, "api": URL, "started_at_ms": T}
 *   P/owners/<group>  {"node": N, "lease": "<id>"}   created with a txn
 *                     "create if absent" (CREATE revision == 0)
 * The groups are the keys P/groups/<group>/settings, written by the store's
 * etcd backend (never by this module). The module watches P/groups/,
 * P/owners/ and P/nodes/ and keeps a cache of all three, so queries never
 * touch the network.
 *
 * Fencing: ownership is valid only until t_sent + ttl - margin (margin =
 * max(1 s, ttl/5)), where t_sent is the CLOCK_MONOTONIC time the last
 * successful keepalive (or the grant) was SENT. etcd cannot have expired the
 * lease before that instant, since it renewed it after we sent the request.
 * Past the deadline clu_may_act() answers 0 for every group at once, and the
 * worker thread calls on_lose() for each owned group. When renewals succeed
 * again the node takes back what is still its own (owner keys on its live
 * lease) or, when the lease is gone, grants a new one and acquires afresh.
 *
 * Balance: with G groups and N live nodes a node acquires free groups while
 * it owns fewer than ceil(G/N), and gives up one group (or a quarter of its
 * excess, when larger) per balance period (one ttl) while it owns more than
 * ceil(G/N), or more than floor(G/N) while another live node owns fewer
 * than floor(G/N) (so a joining node gets its share). A release calls
 * on_lose() first, then deletes the owner key conditioned on this node's
 * lease. See docs/internals/cluster.md.
 *
 * Threads: clu_new() starts three kinds of threads: the keepalive thread,
 * the worker thread (acquire, release, fencing; the ONLY thread that calls
 * on_acquire/on_lose) and one watch thread per prefix. Queries (clu_may_act,
 * clu_fence, clu_owner_of, clu_status, clu_ready, clu_node) are thread-safe
 * and take one mutex briefly. Callbacks run synchronously on the worker
 * thread and MUST NOT call any clu_* function of the same handle (they may
 * deadlock against clu_free(), and the answers would describe a state in
 * flux); they must return once the group's runtime is started/stopped.
 *
 * Errors: 0 on success or a negative CLU_E* code (clu_strerror()); clu_new()
 * writes operator text into its err buffer. Runtime etcd trouble is not an
 * error of any call: it shows in clu_ready() and clu_status().
 */
#ifndef ASGD_CLUSTER_H
#define ASGD_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CLU_NODE_MAX 128 /* node name, NUL included */
#define CLU_KEY_MAX  512 /* an owner key P/owners/<group>, NUL included */
#define CLU_URL_MAX  256 /* an api_advertise URL, NUL included */

enum clu_error {
    CLU_OK = 0,
    CLU_EINVAL = -1,   /* bad settings or argument (NULL, too long, ttl < 2 s) */
    CLU_ENOMEM = -2,   /* out of memory */
    CLU_ESYS = -3,     /* a thread could not be started */
    CLU_ENOTOWN = -4,  /* clu_fence(): this node does not (validly) own the group */
    CLU_ENOENT = -5,   /* clu_owner_of(): the group has no owner (or is unknown) */
    CLU_ETOOLONG = -6, /* an output buffer is too small for the answer */
};

/* Human text for a CLU_E* code ("unknown error" for others). Static storage. */
const char *clu_strerror(int code);

/*
 * Called on the worker thread. on_acquire: this node now owns `group`;
 * owner_key is the etcd key (P/owners/<group>) and owner_create_revision its
 * create_revision, the pair the store conditions its writes on. on_lose: the
 * node no longer owns `group` (released for balance, fencing deadline passed,
 * lease lost, group deleted, clu_free()); the runtime must be stopped when it
 * returns. Strings are valid only during the call. Must not call clu_*.
 */
typedef void (*clu_acquire_fn)(void *arg, const char *group, const char *owner_key,
                               int64_t owner_create_revision);
typedef void (*clu_lose_fn)(void *arg, const char *group);

struct clu_settings {
    const char *node;          /* this node's name; NULL or "" = the host name */
    const char *api_advertise; /* this node's API URL shown to the others; NULL = "" */
    const char *prefix;        /* key prefix; NULL or "" = "/asgd" (no trailing '/') */
    const char *endpoints;     /* etcd client URLs, comma-separated (required) */
    const char *ca_file;       /* TLS files passed to the etcd client; NULL = none */
    const char *cert_file;
    const char *key_file;
    int64_t lease_ttl_ms;      /* 0 = 5000; at least 2000 (etcd's minimum TTL) */
    clu_acquire_fn on_acquire; /* required */
    clu_lose_fn on_lose;       /* required */
    void *arg;                 /* passed to both callbacks */
};

struct clu;

/*
 * Copies the settings, lists the current groups, owners and nodes, starts
 * the threads and returns at once: the lease is granted, the node registered
 * and groups acquired by the threads (on_acquire may fire before clu_new()
 * returns). etcd being unreachable is not an error here: the node joins when
 * it can (clu_ready() says why not yet). Returns 0 and *out, or CLU_EINVAL /
 * CLU_ENOMEM / CLU_ESYS with text in err (*out untouched).
 */
int clu_new(const struct clu_settings *s, struct clu **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Leaves the cluster: calls on_lose() for every owned group, revokes the
 * lease (which deletes this node's key and owner keys at once, so the others
 * take over without waiting for the TTL), stops and joins the threads and
 * frees everything. NULL is a no-op. Must not be called from a callback.
 */
void clu_free(struct clu *c);

/* This node's name (the setting or the host name). Valid until clu_free(). */
const char *clu_node(const struct clu *c);

/*
 * 1 when this node owns `group` AND the fencing deadline has not passed, 0
 * otherwise (including NULL arguments). Cheap: one mutex, one lookup, one
 * clock read. The controller calls it before every provider call.
 */
int clu_may_act(struct clu *c, const char *group);

/*
 * The owner key and its create_revision for a group this node may act for,
 * the pair to condition a store write on (compare CREATE == *create_revision
 * on that key). Returns 0, CLU_ENOTOWN (not owned, or past the deadline),
 * CLU_ETOOLONG (key does not fit keylen) or CLU_EINVAL. Outputs written only
 * on success.
 */
int clu_fence(struct clu *c, const char *group, char *key, size_t keylen, int64_t *create_revision);

/*
 * The owner of any group, from the watch cache: its node name into node and
 * that node's advertised API URL into api (either buffer may be NULL with
 * length 0; api is "" when the node's key is gone). Returns 0, CLU_ENOENT (no
 * owner key), CLU_ETOOLONG or CLU_EINVAL.
 */
int clu_owner_of(struct clu *c, const char *group, char *node, size_t nodelen, char *api,
                 size_t apilen);

/*
 * The cluster view for the API, a new JSON object the caller json_decref()s
 * (NULL only when out of memory):
 * {"node", "api", "prefix", "lease_id" (string), "lease_ttl_ms",
 *  "last_renewal_age_ms" (-1 never), "deadline_left_ms" (<= 0 = fenced),
 *  "etcd": {"reachable": bool, "last_error": str, "unreachable_for_ms"},
 *  "owned": n, "groups_total": G, "nodes_alive": N,
 *  "etcd_requests": {"keepalive": n, "other": n} (sent since clu_new),
 *  "nodes": [{"name", "api", "started_at_ms", "alive": bool, "groups": n}],
 *  "groups": [{"name", "owner": str|null, "owner_api": str|null}]}
 */
json_t *clu_status(struct clu *c);

/*
 * 1 when the node holds a valid lease (before its fencing deadline), else 0
 * with the reason in why (e.g. "etcd unreachable since 12 s: <error>").
 * why may be NULL with len 0.
 */
int clu_ready(struct clu *c, char *why, size_t len);

/* --- test hooks (tests/unit/test_cluster.c only) ------------------------ */

/*
 * Simulates a crash: stops every thread WITHOUT calling on_lose(), revoking
 * the lease or deleting any key, then frees the handle. The node's keys
 * vanish from etcd only when the lease expires, as after kill -9.
 */
void clu__test_crash(struct clu *c);
/*
 * paused = 1 freezes the keepalive thread (no renewal is sent, as when the
 * process is stopped or partitioned); 0 lets it go on.
 */
void clu__test_pause(struct clu *c, int paused);

#endif
