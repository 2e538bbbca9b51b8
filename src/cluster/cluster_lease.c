/*
 * cluster_lease.c - the node's lease (see cluster_int.h): the keepalive
 * thread that grants, renews and re-grants it and moves the fencing
 * deadline, and the record of whether etcd answers (note_ok / note_err,
 * shown by clu_ready() and clu_status()).
 *
 * Separate because it is the fencing path: the deadline counts from when a
 * renewal was SENT, and this thread must never wait on anything but etcd
 * and c->mu, so that ownership ends on time whatever the worker is doing.
 */
#include "cluster/cluster_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

static void abs_deadline(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* Waits on cond (mu held) until mono_ms at the latest. */
void clu__wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t mono_ms)
{
    struct timespec ts;
    abs_deadline(&ts, mono_ms);
    (void)pthread_cond_timedwait(cond, mu, &ts);
}

/* ---- etcd state (mu held) ----------------------------------------------- */

void clu__note_ok(struct clu *c)
{
    if (!c->reachable)
        log_info("cluster: etcd reachable again (node \"%s\")", c->node);
    c->reachable = 1;
    c->unreachable_since = 0;
}

void clu__note_err(struct clu *c, const char *what, int rc, const char *msg)
{
    char buf[sizeof(c->last_err)];
    snprintf(buf, sizeof(buf), "%s: %s (%s)", what, etcd_strerror(rc), msg);
    if (rc == ETCD_EUNAVAIL || rc == ETCD_ETIMEOUT) {
        if (c->reachable) {
            c->unreachable_since = clk_mono_ms();
            log_warn("cluster: etcd unreachable (node \"%s\"): %s", c->node, buf);
        }
        c->reachable = 0;
    } else if (strcmp(buf, c->last_err) != 0) {
        log_warn("cluster: %s", buf);
    }
    memcpy(c->last_err, buf, sizeof(buf));
}

int clu__lease_valid(const struct clu *c, int64_t now)
{
    return c->lease != 0 && now < c->deadline;
}

/* ---- keepalive thread ---------------------------------------------------- */

void *clu__ka_main(void *arg)
{
    struct clu *c = arg;
    int64_t ttl_s = (c->ttl_ms + 999) / 1000;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        if (c->paused) {
            pthread_cond_wait(&c->ka_cond, &c->mu);
            continue;
        }
        int64_t lease = c->lease;
        c->ka_now = 0;
        pthread_mutex_unlock(&c->mu);

        /* The deadline counts from before the request leaves: etcd renews
         * the lease when it receives it, later than t, so its expiry is
         * later than t + ttl whatever the network or etcd do. */
        int64_t t = clk_mono_ms(), id = 0, granted = 0, left = 0, next;
        int rc;
        if (lease == 0)
            rc = etcd_lease_grant(c->h_ka, ttl_s, &id, &granted);
        else
            rc = etcd_lease_keepalive(c->h_ka, lease, &left);

        pthread_mutex_lock(&c->mu);
        c->n_keepalive++;
        int64_t retry = c->ttl_ms / 6 < 250 ? 250 : c->ttl_ms / 6;
        if (rc == 0) {
            int was_valid = clu__lease_valid(c, clk_mono_ms());
            if (lease == 0) {
                c->lease = id;
                log_info("cluster: node \"%s\" holds lease %" PRIx64 " (ttl %" PRId64 " s)",
                         c->node, (uint64_t)id, granted);
            }
            /* etcd grants at least what we asked; should it ever answer
             * less, count from what it said */
            int64_t ttl_ms = c->ttl_ms, said = lease == 0 ? granted : left;
            if (said > 0 && said * 1000 < ttl_ms)
                ttl_ms = said * 1000;
            if (t + ttl_ms - c->margin_ms > c->deadline)
                c->deadline = t + ttl_ms - c->margin_ms;
            c->last_sent = t;
            c->last_ok = clk_mono_ms();
            log_debug("cluster: lease %" PRIx64 " renewed (sent at %" PRId64
                      ", answered in %" PRId64 " ms, deadline in %" PRId64 " ms)",
                      (uint64_t)c->lease, t, c->last_ok - t, c->deadline - c->last_ok);
            clu__note_ok(c);
            if (!was_valid) {
                c->dirty = 1;
                pthread_cond_signal(&c->w_cond);
            }
            next = t + c->ttl_ms / 3;
        } else if (rc == ETCD_ELEASE && lease != 0) {
            log_warn("cluster: lease %" PRIx64 " of node \"%s\" is gone on etcd: rejoining",
                     (uint64_t)lease, c->node);
            c->lease = 0;
            c->deadline = 0;
            c->dirty = 1;
            pthread_cond_signal(&c->w_cond);
            next = clk_mono_ms();
        } else {
            clu__note_err(c, lease ? "lease keepalive" : "lease grant", rc, etcd_errmsg(c->h_ka));
            next = clk_mono_ms() + retry;
            if (!clu__lease_valid(c, clk_mono_ms())) {
                c->dirty = 1; /* the worker fences (on_lose) */
                pthread_cond_signal(&c->w_cond);
            }
        }
        while (!c->stop && !c->paused && !c->ka_now && clk_mono_ms() < next)
            clu__wait_until(&c->ka_cond, &c->mu, next);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
