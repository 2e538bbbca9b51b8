/*
 * cluster_int.h - the cluster module's state and what its files share (not a
 * public API: see cluster.h).
 *
 *   cluster.c        public API: clu_new / clu_free, the queries, status,
 *                    test hooks
 *   cluster_cache.c  the cache of groups, owners and nodes: lists, watches,
 *                    applying keys by revision
 *   cluster_lease.c  the keepalive thread (lease, fencing deadline) and
 *                    etcd's reachability
 *   cluster_own.c    the worker thread: registration, acquire, release,
 *                    balance, the callbacks
 *
 * Workload: in steady state the only requests are the keepalives (one per
 * ttl/3 per node); the watches are long streams that carry changes, and the
 * worker wakes on them (or on its own timers) without asking etcd anything.
 * Bursts happen at start, at failover (one txn per group taken over) and at
 * rebalancing (one txn per group moved).
 *
 * Threads and locking: c->mu guards everything below "shared state". The
 * keepalive thread owns the lease's life (grant, renew, re-grant) and the
 * fencing deadline; the worker thread owns acquisition, release and the
 * callbacks; the watch threads only update the cache and wake the worker.
 * Each thread that talks to etcd has its own handle (etcd.h: one thread per
 * handle). No lock is held across a network call or a callback.
 *
 * Revisions: every cache entry remembers the etcd revision of the last
 * change applied to it. A watch event, a re-list or the answer to our own
 * txn is applied only if it is not older, so our own writes (applied at once
 * from the txn's answer) and their later echo on the watch agree, and a
 * re-list after a compaction cannot roll back something newer.
 *
 * Errors: the helpers below that can fail return 0 or -1 / an ETCD_E* code
 * and record etcd's text with clu__note_err() (clu_ready() shows it).
 */
#ifndef ASGD_CLUSTER_INT_H
#define ASGD_CLUSTER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "etcd/etcd.h"

enum { K_GROUPS = 0, K_OWNERS, K_NODES, K_COUNT };
enum { ACQUIRE_BATCH = 16 }; /* owner keys created per txn (etcd allows 128 ops) */

/* One group seen anywhere (settings key or owner key). Never freed before
 * clu_free(), so a pointer to it stays valid without the lock. */
struct cgroup {
    char *name;
    uint64_t order; /* hash(node, name): this node's preference order */
    int settings;   /* P/groups/<name>/settings exists */
    int64_t settings_rev;
    int owner_present; /* P/owners/<name> exists */
    char owner_node[CLU_NODE_MAX];
    int64_t owner_lease, owner_create, owner_rev;
    int owned; /* on_acquire called, on_lose not yet */
    int64_t owned_lease, owned_create, owned_rev;
    unsigned stamp; /* re-list sweep */
};

struct cnode {
    char name[CLU_NODE_MAX];
    char api[CLU_URL_MAX];
    int64_t started_at_ms, lease, rev;
    int present;
    int64_t seen_ms; /* when this node last appeared (local monotonic clock) */
    unsigned stamp;
    size_t count; /* scratch: groups owned, computed by the worker */
};

struct wctx {
    struct clu *c;
    int kind;
};

struct clu {
    /* immutable after clu_new() */
    char node[CLU_NODE_MAX];
    char api[CLU_URL_MAX];
    char *prefix, *k_groups, *k_owners, *k_nodes, *k_me, *endpoints, *ca, *cert, *key;
    struct etcd_settings es_ka, es_w; /* strings borrowed from above */
    int64_t ttl_ms, margin_ms, started_ms, started_wall_ms;
    clu_acquire_fn on_acquire;
    clu_lose_fn on_lose;
    void *arg;
    struct wctx wctx[K_COUNT];
    struct etcd *h_ka, *h_w; /* one per thread */
    pthread_t ka_thread, w_thread;
    int ka_started, w_started;

    /* shared state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t w_cond, ka_cond; /* CLOCK_MONOTONIC */
    int stop, crashed, paused, dirty, ka_now;
    int64_t lease, deadline, last_sent, last_ok;
    int reachable;
    int64_t unreachable_since;
    char last_err[256];
    int64_t name_taken;           /* lease of another holder of P/nodes/<node>, 0 = none */
    int64_t n_keepalive, n_other; /* requests sent to etcd (keepalive + grant, the rest) */
    struct cgroup **groups;       /* sorted by name */
    size_t n_groups, cap_groups;
    struct cnode *nodes;
    size_t n_nodes, cap_nodes;
    size_t n_owned;
    int relist[K_COUNT];
    unsigned stamp;

    /* worker-only state */
    int listed;
    struct etcd_watch *watch[K_COUNT];
    int64_t reg_lease; /* lease our node key is on; written under mu (clu_ready reads it) */
    int64_t reg_at, acquire_after, next_release;
    uint64_t rng;
};

/* ---- cluster.c: small helpers ---------------------------------------------- */

/* malloc'd copies (NULL when out of memory): s; a followed by b. */
char *clu__dup_str(const char *s);
char *clu__join2(const char *a, const char *b);
/* Copies srclen bytes of src into dst (len > 0), cut to fit, NUL-terminated. */
void clu__set_text(char *dst, size_t len, const char *src, size_t srclen);

/* ---- cluster_cache.c: the cache (mu held unless said) ------------------- */

/* hash(node, group): this node's preference order of a group (low first). */
uint64_t clu__order_of(const char *node, const char *group);
/* The group or node of that name in the cache, or NULL. */
struct cgroup *clu__group_find(struct clu *c, const char *name);
struct cnode *clu__node_find(struct clu *c, const char *name);
/* Applies a key of kind (K_*) as present (kv != NULL) or absent at rev. */
void clu__apply(struct clu *c, int kind, const char *name, const struct etcd_kv *kv, int64_t rev);
/* Lists one prefix and applies it (takes mu); returns 0 and the list's revision. */
int clu__list_kind(struct clu *c, int kind, int64_t *revision);
/* Lists and starts the watches not running yet (worker thread). 0 or -1. */
int clu__start_watches(struct clu *c);
/* Stops the watches side by side (mu not held). */
void clu__stop_watches(struct clu *c);

/* ---- cluster_lease.c: the lease and etcd's state ------------------------- */

/* Waits on cond (mu held) until mono_ms at the latest. */
void clu__wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t mono_ms);
/* etcd answered (mu held). */
void clu__note_ok(struct clu *c);
/* etcd call what failed with rc and text msg (mu held): logged on change. */
void clu__note_err(struct clu *c, const char *what, int rc, const char *msg);
/* 1 when the node holds a lease and now is before its fencing deadline (mu held). */
int clu__lease_valid(const struct clu *c, int64_t now);
/* The keepalive thread (pthread_create's start routine; arg: the struct clu). */
void *clu__ka_main(void *arg);

/* ---- cluster_own.c: the worker ------------------------------------------- */

/* The worker thread (pthread_create's start routine; arg: the struct clu). */
void *clu__w_main(void *arg);

#endif
