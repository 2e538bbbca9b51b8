/*
 * cluster_own.c - the worker thread (see cluster_int.h): fencing losses,
 * this node's registration, acquisition of free groups and release for
 * balance, and the on_acquire / on_lose callbacks (only ever called here).
 *
 * Separate because it is the module's decision-making: one step() pass
 * reads the cache, computes the targets ceil(G/N) and floor(G/N), and
 * writes owner keys with txns conditioned on what it read (create if
 * absent, delete if still on our lease). It never holds c->mu across a
 * network call or a callback.
 */
#include "cluster/cluster_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

/* ---- worker thread -------------------------------------------------------- */

static uint64_t rng_next(struct clu *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static char *owner_value(const struct clu *c, int64_t lease)
{
    char id[32];
    snprintf(id, sizeof(id), "%" PRId64, lease);
    json_t *j = json_pack("{s:s, s:s}", "node", c->node, "lease", id);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* Marks g owned (mu held) and returns 1, or 0 when the lease changed. */
static int mark_owned(struct clu *c, struct cgroup *g, int64_t lease, int64_t create, int64_t rev)
{
    if (c->lease != lease || g->owned)
        return 0;
    g->owned = 1;
    g->owned_lease = lease;
    g->owned_create = create;
    g->owned_rev = rev;
    c->n_owned++;
    return 1;
}

/* Takes g if its owner key is absent, or back if it is already on our lease. */
static void try_acquire(struct clu *c, struct cgroup *g, int64_t lease)
{
    char *key = clu__join2(c->k_owners, g->name);
    char *val = owner_value(c, lease);
    struct etcd_txn_result *r = NULL;
    if (!key || !val)
        goto out;
    struct etcd_cmp cmp = {.key = key,
                           .key_len = ETCD_NUL,
                           .target = ETCD_CMP_CREATE,
                           .result = ETCD_CMP_EQUAL,
                           .number = 0};
    struct etcd_op put = {.type = ETCD_OP_PUT,
                          .key = key,
                          .key_len = ETCD_NUL,
                          .value = val,
                          .value_len = ETCD_NUL,
                          .lease = lease};
    struct etcd_op get = {.type = ETCD_OP_RANGE, .key = key, .key_len = ETCD_NUL};
    int rc = etcd_txn(c->h_w, &cmp, 1, &put, 1, &get, 1, &r);
    int64_t create = 0, rev = 0;
    int mine = 0;
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc) {
        clu__note_err(c, "acquire", rc, etcd_errmsg(c->h_w));
        if (rc == ETCD_ELEASE) {
            c->ka_now = 1; /* let the keepalive thread find out now */
            pthread_cond_signal(&c->ka_cond);
        }
    } else if (r->succeeded) {
        struct etcd_kv kv = {.key = key,
                             .value = val,
                             .value_len = strlen(val),
                             .lease = lease,
                             .create_revision = r->revision,
                             .mod_revision = r->revision};
        clu__apply(c, K_OWNERS, g->name, &kv, r->revision);
        create = rev = r->revision;
        mine = mark_owned(c, g, lease, create, rev);
    } else if (r->n_ops == 1 && r->ops[0].range.n_kvs == 1) {
        const struct etcd_kv *kv = &r->ops[0].range.kvs[0];
        clu__apply(c, K_OWNERS, g->name, kv, kv->mod_revision);
        if (kv->lease == lease) { /* ours from before the deadline passed */
            create = kv->create_revision;
            rev = kv->mod_revision;
            mine = mark_owned(c, g, lease, create, rev);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (mine) {
        log_info("cluster: node \"%s\" owns group \"%s\" (revision %" PRId64 ")", c->node, g->name,
                 create);
        c->on_acquire(c->arg, g->name, key, create);
    }
out:
    etcd_txn_result_free(r);
    free(key);
    free(val);
}

/*
 * Takes n free groups in one txn (all or none: every owner key must still be
 * absent). When another node took one of them first, tries each alone.
 */
static void acquire_batch(struct clu *c, struct cgroup **gs, size_t n, int64_t lease)
{
    if (n == 1) {
        try_acquire(c, gs[0], lease);
        return;
    }
    char *keys[ACQUIRE_BATCH] = {0};
    struct etcd_cmp cmps[ACQUIRE_BATCH];
    struct etcd_op puts[ACQUIRE_BATCH];
    int mine[ACQUIRE_BATCH] = {0};
    struct etcd_txn_result *r = NULL;
    char *val = owner_value(c, lease);
    int ok = val != NULL;
    for (size_t i = 0; i < n && ok; i++) {
        keys[i] = clu__join2(c->k_owners, gs[i]->name);
        ok = keys[i] != NULL;
        cmps[i] = (struct etcd_cmp){.key = keys[i],
                                    .key_len = ETCD_NUL,
                                    .target = ETCD_CMP_CREATE,
                                    .result = ETCD_CMP_EQUAL};
        puts[i] = (struct etcd_op){.type = ETCD_OP_PUT,
                                   .key = keys[i],
                                   .key_len = ETCD_NUL,
                                   .value = val,
                                   .value_len = ETCD_NUL,
                                   .lease = lease};
    }
    int rc = ok ? etcd_txn(c->h_w, cmps, n, puts, n, NULL, 0, &r) : ETCD_ENOMEM;
    int lost_race = 0;
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc) {
        clu__note_err(c, "acquire", rc, etcd_errmsg(c->h_w));
        if (rc == ETCD_ELEASE) {
            c->ka_now = 1;
            pthread_cond_signal(&c->ka_cond);
        }
    } else if (r->succeeded) {
        for (size_t i = 0; i < n; i++) {
            struct etcd_kv kv = {.value = val,
                                 .value_len = strlen(val),
                                 .lease = lease,
                                 .create_revision = r->revision,
                                 .mod_revision = r->revision};
            clu__apply(c, K_OWNERS, gs[i]->name, &kv, r->revision);
            mine[i] = mark_owned(c, gs[i], lease, r->revision, r->revision);
        }
    } else {
        lost_race = 1;
    }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (mine[i]) {
            log_info("cluster: node \"%s\" owns group \"%s\" (revision %" PRId64 ")", c->node,
                     gs[i]->name, r->revision);
            c->on_acquire(c->arg, gs[i]->name, keys[i], r->revision);
        } else if (lost_race) {
            pthread_mutex_lock(&c->mu);
            int still_free = !gs[i]->owner_present;
            pthread_mutex_unlock(&c->mu);
            if (still_free)
                try_acquire(c, gs[i], lease);
        }
    }
    etcd_txn_result_free(r);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(val);
}

/* Deletes g's owner key if it is still on lease (a release, or a leftover). */
static void delete_owner(struct clu *c, struct cgroup *g, int64_t lease)
{
    char *key = clu__join2(c->k_owners, g->name);
    if (!key)
        return;
    struct etcd_cmp cmp = {.key = key,
                           .key_len = ETCD_NUL,
                           .target = ETCD_CMP_LEASE,
                           .result = ETCD_CMP_EQUAL,
                           .number = lease};
    struct etcd_op del = {.type = ETCD_OP_DELETE, .key = key, .key_len = ETCD_NUL};
    struct etcd_txn_result *r = NULL;
    int rc = etcd_txn(c->h_w, &cmp, 1, &del, 1, NULL, 0, &r);
    pthread_mutex_lock(&c->mu);
    c->n_other++;
    if (rc)
        clu__note_err(c, "release", rc, etcd_errmsg(c->h_w));
    else if (r->succeeded)
        clu__apply(c, K_OWNERS, g->name, NULL, r->revision);
    pthread_mutex_unlock(&c->mu);
    etcd_txn_result_free(r);
    free(key);
}

/* Un-owns g (mu held by the caller, released around the callback). */
static void lose(struct clu *c, struct cgroup *g, const char *why)
{
    g->owned = 0;
    c->n_owned--;
    pthread_mutex_unlock(&c->mu);
    log_info("cluster: node \"%s\" gives up group \"%s\": %s", c->node, g->name, why);
    c->on_lose(c->arg, g->name);
    pthread_mutex_lock(&c->mu);
}

static int cmp_order_asc(const void *a, const void *b)
{
    const struct cgroup *x = *(struct cgroup *const *)a, *y = *(struct cgroup *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One pass of the worker; returns when it wants to run again (mono ms). */
static int64_t step(struct clu *c)
{
    int64_t now = clk_mono_ms();
    if (!c->listed) {
        if (clu__start_watches(c))
            return now + 500;
        c->listed = 1;
    }

    /* 1. fencing and losses: the deadline, a new lease, a deleted group or
     * an owner key that changed under us */
    pthread_mutex_lock(&c->mu);
    now = clk_mono_ms();
    int valid = clu__lease_valid(c, now);
    int64_t lease = c->lease;
    for (size_t i = 0; i < c->n_groups && c->n_owned > 0; i++) {
        struct cgroup *g = c->groups[i];
        if (!g->owned)
            continue;
        if (!valid || g->owned_lease != lease)
            lose(c, g, c->lease == 0 ? "lease lost" : "lease not renewed in time (fenced)");
        else if (!g->settings)
            lose(c, g, "group deleted");
        else if (g->owner_rev > g->owned_rev &&
                 (!g->owner_present || g->owner_create != g->owned_create))
            lose(c, g, "owner key deleted or replaced");
        else
            continue;
        /* lose() let go of the lock: the array may have moved, start over */
        i = (size_t)-1;
        now = clk_mono_ms();
        valid = clu__lease_valid(c, now) && c->lease == lease;
    }
    int64_t deadline = c->deadline;
    pthread_mutex_unlock(&c->mu);
    if (!valid)
        return now + 1000;

    /* a watch lost events (compaction): list that prefix again */
    for (int k = 0; k < K_COUNT; k++) {
        int64_t rev;
        pthread_mutex_lock(&c->mu);
        int need = c->relist[k];
        pthread_mutex_unlock(&c->mu);
        if (need && clu__list_kind(c, k, &rev))
            return now + 500;
    }

    /* 2. this node's key on the current lease; then let the nodes starting
     * with us show up before counting (else the first one takes all) */
    if (c->reg_lease != lease) {
        json_t *j = json_pack("{s:s, s:s, s:I}", "node", c->node, "api", c->api, "started_at_ms",
                              (json_int_t)c->started_wall_ms);
        char *v = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        /* created if absent: a node key on another live lease means another
         * process runs under this name (or our previous incarnation, whose
         * key goes with its lease within a ttl): wait, do not share it */
        struct etcd_cmp cmp = {.key = c->k_me,
                               .key_len = ETCD_NUL,
                               .target = ETCD_CMP_CREATE,
                               .result = ETCD_CMP_EQUAL,
                               .number = 0};
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .key = c->k_me,
                              .key_len = ETCD_NUL,
                              .value = v,
                              .value_len = ETCD_NUL,
                              .lease = lease};
        struct etcd_op get = {.type = ETCD_OP_RANGE, .key = c->k_me, .key_len = ETCD_NUL};
        struct etcd_txn_result *r = NULL;
        int rc = v ? etcd_txn(c->h_w, &cmp, 1, &put, 1, &get, 1, &r) : ETCD_ENOMEM;
        int64_t other = 0;
        pthread_mutex_lock(&c->mu);
        c->n_other++;
        if (rc) {
            clu__note_err(c, "node registration", rc, etcd_errmsg(c->h_w));
        } else if (r->succeeded) {
            struct etcd_kv kv = {.value = v, .value_len = strlen(v), .lease = lease};
            clu__apply(c, K_NODES, c->node, &kv, r->revision);
        } else if (r->n_ops != 1 || r->ops[0].range.n_kvs != 1) {
            rc = -1; /* gone meanwhile: try again */
        } else if (r->ops[0].range.kvs[0].lease != lease) {
            other = r->ops[0].range.kvs[0].lease;
            if (c->name_taken != other)
                log_warn("cluster: node name \"%s\" is in use (lease %" PRIx64
                         "): waiting for that key to go",
                         c->node, (uint64_t)other);
            rc = -1;
        }
        c->name_taken = other;
        pthread_mutex_unlock(&c->mu);
        etcd_txn_result_free(r);
        free(v);
        if (rc)
            return now + (other ? c->ttl_ms / 3 : 500);
        pthread_mutex_lock(&c->mu);
        c->reg_lease = lease; /* written under mu: clu_ready() reads it */
        pthread_mutex_unlock(&c->mu);
        c->reg_at = now;
        c->next_release = now + c->ttl_ms;
    }
    int64_t settle = c->ttl_ms / 3 < 1000 ? c->ttl_ms / 3 : 1000;
    if (now < c->reg_at + settle)
        return c->reg_at + settle;

    /* 3. targets: hi = ceil(G/N), lo = floor(G/N) */
    pthread_mutex_lock(&c->mu);
    size_t G = 0, N = 0, nfree = 0, nleft = 0;
    for (size_t i = 0; i < c->n_nodes; i++) {
        c->nodes[i].count = 0;
        N += c->nodes[i].present;
    }
    struct cgroup **freel = malloc((c->n_groups + 1) * sizeof(*freel));
    struct cgroup **left = malloc((c->n_groups + 1) * sizeof(*left));
    struct cgroup **ownl = malloc((c->n_groups + 1) * sizeof(*ownl));
    struct cgroup **gone = malloc((c->n_groups + 1) * sizeof(*gone));
    size_t nown = 0, ngone = 0;
    if (!freel || !left || !ownl || !gone) {
        pthread_mutex_unlock(&c->mu);
        free(freel);
        free(left);
        free(ownl);
        free(gone);
        return now + 1000;
    }
    for (size_t i = 0; i < c->n_groups; i++) {
        struct cgroup *g = c->groups[i];
        int ours = g->owner_present && !g->owned && g->owner_lease == lease &&
                   strcmp(g->owner_node, c->node) == 0;
        if (!g->settings) {
            if (ours)
                gone[ngone++] = g; /* group deleted: our owner key goes too */
            continue;
        }
        G++;
        if (g->owned)
            ownl[nown++] = g;
        if (!g->owner_present) {
            freel[nfree++] = g;
            continue;
        }
        struct cnode *n = clu__node_find(c, g->owner_node);
        if (n && n->present)
            n->count++;
        if (ours)
            left[nleft++] = g; /* our key, left from before a fencing */
    }
    if (N == 0)
        N = 1;
    size_t hi = (G + N - 1) / N, lo = G / N;
    /* a node below lo that has had time to settle (it acquires only after
     * settle; releasing to it earlier would leave groups without owner) */
    int starving = 0;
    for (size_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].present && strcmp(c->nodes[i].name, c->node) != 0 &&
            c->nodes[i].count < lo && now >= c->nodes[i].seen_ms + settle)
            starving = 1;
    size_t owned = c->n_owned;
    pthread_mutex_unlock(&c->mu);

    int64_t wake = now + 1000;
    if (deadline < wake)
        wake = deadline;

    /* 4. our leftover keys: take them back while under target, else free
     * them; the keys of deleted groups go */
    for (size_t i = 0; i < ngone && !c->stop; i++)
        delete_owner(c, gone[i], lease);
    for (size_t i = 0; i < nleft && !c->stop; i++) {
        if (owned < hi) {
            try_acquire(c, left[i], lease);
        } else {
            delete_owner(c, left[i], lease);
        }
        pthread_mutex_lock(&c->mu);
        owned = c->n_owned;
        pthread_mutex_unlock(&c->mu);
    }

    /* 5. acquire free groups, in this node's hashed order, after a short
     * jitter; a node at or above floor(G/N) waits longer so that the ones
     * below it (a joining node) get the free groups first */
    if (owned < hi && nfree > 0) {
        if (c->acquire_after == 0) {
            int64_t d = (int64_t)(rng_next(c) % 50) + (owned >= lo ? 150 : 0);
            c->acquire_after = now + d;
        }
        if (now < c->acquire_after) {
            if (c->acquire_after < wake)
                wake = c->acquire_after;
        } else {
            c->acquire_after = 0;
            qsort(freel, nfree, sizeof(*freel), cmp_order_asc);
            size_t i = 0;
            while (i < nfree && owned < hi) {
                /* the next few still free (the watch keeps the cache
                 * current), in one txn: after a failover hundreds of
                 * groups are taken in tens of commits, not hundreds */
                struct cgroup *batch[ACQUIRE_BATCH];
                size_t nb = 0;
                pthread_mutex_lock(&c->mu);
                int go = !c->stop && clu__lease_valid(c, clk_mono_ms()) && c->lease == lease;
                for (; go && i < nfree && nb < ACQUIRE_BATCH && owned + nb < hi; i++)
                    if (!freel[i]->owner_present && freel[i]->settings)
                        batch[nb++] = freel[i];
                pthread_mutex_unlock(&c->mu);
                if (!go || nb == 0)
                    break;
                acquire_batch(c, batch, nb, lease);
                pthread_mutex_lock(&c->mu);
                owned = c->n_owned;
                pthread_mutex_unlock(&c->mu);
            }
            wake = clk_mono_ms() + 200; /* look again once the watch caught up */
        }
    } else {
        c->acquire_after = 0;
    }

    /* 6. release, a few per balance period (one ttl): above hi, or above lo
     * while another node is below lo. The runtime stops first (on_lose),
     * then the key goes, conditioned on our lease. */
    now = clk_mono_ms();
    if (owned > hi || (owned > lo && starving)) {
        if (now >= c->next_release) {
            size_t excess = owned > hi ? owned - hi : owned - lo;
            size_t k = excess / 4 ? excess / 4 : 1;
            /* give up the groups this node likes least */
            qsort(ownl, nown, sizeof(*ownl), cmp_order_asc);
            for (size_t i = nown; i > 0 && k > 0 && !c->stop; i--) {
                struct cgroup *g = ownl[i - 1];
                pthread_mutex_lock(&c->mu);
                int still = g->owned;
                if (still)
                    lose(c, g, "rebalancing");
                pthread_mutex_unlock(&c->mu);
                if (still) {
                    delete_owner(c, g, lease);
                    k--;
                }
            }
            c->next_release = clk_mono_ms() + c->ttl_ms;
        }
        if (c->next_release < wake)
            wake = c->next_release;
    }
    free(freel);
    free(left);
    free(ownl);
    free(gone);
    return wake;
}

void *clu__w_main(void *arg)
{
    struct clu *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        c->dirty = 0;
        pthread_mutex_unlock(&c->mu);

        int64_t wake = step(c);

        pthread_mutex_lock(&c->mu);
        while (!c->stop && !c->dirty && clk_mono_ms() < wake)
            clu__wait_until(&c->w_cond, &c->mu, wake);
        pthread_mutex_unlock(&c->mu);
    }
    /* leaving (clu_free, not a crash): stop every runtime, then revoke the
     * lease so the others take over at once */
    pthread_mutex_lock(&c->mu);
    if (!c->crashed) {
        for (size_t i = 0; i < c->n_groups && c->n_owned > 0; i++)
            if (c->groups[i]->owned) {
                lose(c, c->groups[i], "node leaving");
                i = (size_t)-1; /* the array may have moved meanwhile */
            }
    }
    int64_t lease = c->crashed ? 0 : c->lease;
    pthread_mutex_unlock(&c->mu);
    if (lease) {
        int rc = etcd_lease_revoke(c->h_w, lease);
        if (rc && rc != ETCD_ELEASE)
            log_warn("cluster: cannot revoke lease %" PRIx64 " of node \"%s\": %s", (uint64_t)lease,
                     c->node, etcd_errmsg(c->h_w));
    }
    return NULL;
}
