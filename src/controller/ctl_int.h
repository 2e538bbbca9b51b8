/*
 * ctl_int.h - the controller's state and the duties its tick calls, shared by
 * its files (not a public API: see ctl.h).
 *
 *   ctl.c         thread, public API, settings, operator requests, the tick
 *                 (one call per duty, in order), history, status
 *   ctl_cloud.c   provider calls: launch intents and tokens, terminations,
 *                 backoffs, describe/reconcile against the fleet table
 *   ctl_health.c  the census of the fleet, promotion to in-service, the panic
 *                 rule and the replacement of unhealthy instances
 *   ctl_scale.c   the load window, the policy, convergence on desired and
 *                 the choice of scale-in victims
 *
 * Everything here runs on the controller thread, except what struct ctl marks
 * "under mu".
 */
#ifndef ASGD_CTL_INT_H
#define ASGD_CTL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/ctl.h"
#include "controller/policy.h"
#include "fleet/fleet.h"
#include "store/store.h"

#define LOAD_WINDOW       4096 /* per-tick average samples kept (over an hour at 1 s) */
#define MAX_REQUESTS      256
#define RETRY_BASE_MS     1000
#define RETRY_MAX_MS      60000
#define CAPACITY_BACKOFF  60000
#define FATAL_BACKOFF     300000
#define VANISH_GRACE_MS   30000 /* a fresh launch may not be listed yet (eventual consistency) */
#define MAX_RETRY_BATCHES 64    /* launch calls that failed transiently, kept to re-send */

/* A lifecycle change not yet written to the store (ctl__flush_lifecycles()). */
struct lc_pending {
    char id[FLEET_ID_MAX];
    int lifecycle;
};

/* One provider-sized launch call: its token (the intent's key) and count. */
struct launch_batch {
    char token[64]; /* PROV_ID_MAX and STORE_ID_MAX: a resumed intent's token fits */
    int count;
};

struct term_request {
    char id[FLEET_ID_MAX];
    int decrement;
};

struct ctl {
    char *group;
    int health_from_provider;
    int64_t tick_ms, describe_every_ms, history_every_ms;
    int history_instances_max; /* see ctl_deps */
    int history_big;           /* the last sample left per-instance series out (logged once) */
    struct fleet *fleet;
    struct store *store;
    struct provider *prov;
    int (*may_act)(void *arg, const char *group);
    void *may_act_arg;
    void (*on_health)(void *arg, const char *group, const struct group_health *h);

    /* controller-thread state */
    int fenced;            /* last may_act() said no (logged once per change) */
    int64_t reconciled_ms; /* first ctl_reconcile(): adopted instances' grace starts there */
    struct group_settings settings;
    int have_settings;
    struct policy_state pstate;
    int policy_type;
    struct {
        int64_t at_ms;
        double avg;
    } window[LOAD_WINDOW];
    size_t win_head, win_n;
    int64_t last_describe_ms, last_history_ms, last_prune_ms, last_sweep_ms;
    int history_empty; /* the last history sample had no instance: the next empty one is skipped */
    int64_t launch_backoff_until, terminate_backoff_until;
    int launch_failures;
    /* launch calls that failed transiently: each re-sent alone with its own token and count
       (the first call may have reached the provider) before any new call is made */
    struct launch_batch retries[MAX_RETRY_BATCHES];
    size_t n_retries;
    int fitted_max; /* the max_size the fleet table was last fitted to (0: never) */
    /* lifecycle changes made to the fleet table this tick, written to the store in batches by
       ctl__flush_lifecycles() (one transaction, not one per instance: 10,000 instances turning
       in-service at once were 10,000 fsyncs) */
    struct lc_pending *lc_pend;
    size_t n_lc_pend, lc_pend_cap;
    struct store_activity *act_pend; /* activities of this tick, the same way (ctl__flush) */
    size_t n_act_pend, act_pend_cap;
    char fatal_msg[512]; /* last fatal provider error, logged once */
    struct fleet_slot *snap;
    size_t snap_cap;
    const struct fleet_slot **census_buf; /* census.replace and .retry_term, 2 * census_cap */
    size_t census_cap;
    /* partitions (issue 11): a panic stops replacements; a token bucket caps their rate */
    int panic; /* in panic since the last transition (logged once each way) */
    int panic_failing, panic_total;
    int64_t panic_ended_ms; /* grace periods count from here: the link heals unevenly */
    double repl_tokens;     /* replacements allowed now; refills max_replacements_per_minute */
    int64_t repl_refill_ms; /* when the bucket was last refilled; 0 = never (full) */
    int rate_limited;       /* the last tick held replacements back (logged once) */

    /* shared with other threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct term_request requests[MAX_REQUESTS];
    size_t n_requests;
    int woken, stopping, running;
    pthread_t thread;
    struct ctl_status status;
};

/* What one tick saw in the fleet table (ctl__census), handed to the duties after it. The
   pointers point into c->snap and live until the next snapshot. */
struct census {
    size_t n; /* slots in the snapshot */
    int in_service, pending, unhealthy, terminating, deregistered;
    int failing, down;                    /* for the panic rule (ctl_health.c) */
    double avg;                           /* average load of the counted instances, -1 when none */
    const struct fleet_slot **replace;    /* unhealthy past grace: to replace */
    const struct fleet_slot **retry_term; /* TERMINATING: the call is re-sent */
    size_t n_replace, n_retry;
    int panic;
};

/* ctl.c */
int ctl__may_act(struct ctl *c);
void ctl__activity(struct ctl *c, const char *kind, const char *status, int from, int to,
                   const char *detail, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* ctl_cloud.c */
size_t ctl__snapshot(struct ctl *c);
/* Sets s's lifecycle in the fleet table now; the store's copy follows at the next
   ctl__flush_lifecycles() (the end of the tick, or before a write that must come after it). */
int ctl__set_lifecycle(struct ctl *c, const struct fleet_slot *s, int lifecycle, int64_t now);
void ctl__flush_lifecycles(struct ctl *c);
/* Keeps a copy of *a for the next ctl__flush(); -1 (nothing kept) when out of memory. */
int ctl__defer_activity(struct ctl *c, const struct store_activity *a);
/* Writes what this tick deferred: lifecycles, then activities, each in one store batch. */
void ctl__flush(struct ctl *c);
int ctl__launch(struct ctl *c, int count, int64_t now, const char *why);
int ctl__terminate(struct ctl *c, const struct fleet_slot *const *victims, size_t n, int64_t now);
int ctl__sync(struct ctl *c, int64_t now, int strict);

/* ctl_health.c */
int ctl__census(struct ctl *c, int64_t now, struct census *cs);
void ctl__replace_unhealthy(struct ctl *c, struct census *cs, int64_t now);

/* ctl_scale.c */
void ctl__window_push(struct ctl *c, int64_t now, double avg);
void ctl__scale(struct ctl *c, const struct census *cs, int64_t now, struct policy_decision *d);
void ctl__converge(struct ctl *c, const struct census *cs, int64_t now);

#endif
