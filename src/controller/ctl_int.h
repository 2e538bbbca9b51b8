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
 *                 the choice of scale-in victims (victims.c chooses)
 *   ctl_lifetime.c max_instance_lifetime: replacing old instances, launch
 *                 first
 *   ctl_refresh.c the instance refresh (refresh.h): replacing instances of an
 *                 old launch config in batches, over ctl_lifetime's surge
 *   ctl_suspend.c suspended processes: the check each duty makes, and its
 *                 "skipped" activity
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
#include "controller/schedule.h"
#include "fleet/fleet.h"
#include "store/store.h"

#define LOAD_WINDOW       4096 /* per-tick average samples kept (over an hour at 1 s) */
#define MAX_REQUESTS      256
#define RETRY_BASE_MS     1000
#define RETRY_MAX_MS      60000
#define CAPACITY_BACKOFF  60000
#define FATAL_BACKOFF     300000
#define VANISH_GRACE_MS   30000 /* a fresh launch may not be listed yet (eventual consistency) */
#define LAUNCH_CONFIG_MAX 17    /* ctl_deps.launch_config, NUL included */
#define MAX_RETRY_BATCHES 64    /* launch calls that failed transiently, kept to re-send */
/* How long the fleet table says a launch is in flight (fleet_set_launching) at most: longer
   than a launch call takes (the local provider waits for each agent it starts to be ready),
   short enough that a controller that died in the middle of one and is not restarted leaves
   MonitorS answering unknown agents "retry" rather than "refused" only for a while
   (ctl_cloud.c). A call that outlasts it still works: its early agents are refused and
   retry with backoff, as they did before the window existed. */
#define LAUNCH_WINDOW_MS              60000
#define LAUNCH_WINDOW_PER_INSTANCE_MS 2000
#define LAUNCH_WINDOW_MAX_MS          600000

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

/* The processes a group can suspend (group.h's GROUP_PROC_* names, in this order). */
enum ctl_proc {
    CTL_PROC_LAUNCH,
    CTL_PROC_TERMINATE,
    CTL_PROC_HEALTH_CHECK,
    CTL_PROC_REPLACE_UNHEALTHY,
    CTL_PROC_ALARM_NOTIFICATION,
    CTL_PROC_TERMINATE_REPLACE, /* Terminate again, as it holds replacements (its own memory) */
    CTL_PROC_COUNT,
};

/* An operator's request, applied on the controller thread (kind REQ_TERMINATE by default). */
enum ctl_req_kind { REQ_TERMINATE = 0, REQ_HOOK, REQ_PROTECT, REQ_STANDBY, REQ_DETACH, REQ_ATTACH };
struct term_request {
    char id[FLEET_ID_MAX]; /* REQ_ATTACH: the instance id or agent address given */
    int decrement;
    int kind; /* enum ctl_req_kind */
    int arg;  /* REQ_HOOK: enum hook_action; REQ_PROTECT: on; REQ_STANDBY: enter;
                 REQ_ATTACH: the agent's pid (local) */
    char address[FLEET_ADDR_MAX]; /* REQ_ATTACH: the agent's host:port, "" for an EC2 id */
};
enum hook_action { HOOK_CONTINUE, HOOK_ABANDON, HOOK_HEARTBEAT };

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
    void (*on_activity)(void *arg, const struct group_settings *g, const struct store_activity *a);
    void *on_activity_arg;
    char launch_config[LAUNCH_CONFIG_MAX]; /* "" when the caller gave none */
    struct tls_conf *agent_tls;            /* borrowed; NULL: plain text (ctl_deps) */
    struct h2_client *drain_cl;            /* asks draining agents (ctl_drain.c); lazily made */

    /* controller-thread state */
    int fenced;            /* last may_act() said no (logged once per change) */
    int64_t reconciled_ms; /* first ctl_reconcile(): adopted instances' grace starts there */
    struct group_settings settings;
    int have_settings;
    struct policy_state pstate;
    struct sched_state sched; /* scheduled actions (schedule.h) */
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
    /* suspended processes: what each held-back duty wanted when its "skipped" activity was
       recorded (CTL_SKIP_NONE: nothing recorded since it last ran) */
    int64_t skipped_want[CTL_PROC_COUNT];
    int surge; /* extra instances convergence launches to replace expired ones (ctl_lifetime.c) */
    /* instances set TERMINATING whose termination the provider has not confirmed yet (a call
       failed or is to be retried): still running there, so launches leave room for them under
       max_size. Counted by the census, kept current by ctl__terminate() during the tick */
    int term_unconfirmed;

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
    int pending_wait, terminating_wait, standby, protected_n; /* lifecycle (ctl_life.c) */
    int failing, down;                    /* for the panic rule (ctl_health.c) */
    double avg;                           /* average load of the counted instances, -1 when none */
    const struct fleet_slot **replace;    /* unhealthy past grace: to replace */
    const struct fleet_slot **retry_term; /* TERMINATING: the call is re-sent */
    size_t n_replace, n_retry;
    int panic;
    int left; /* live in the snapshot, terminated since by a later duty (lifetime, refresh):
                 convergence scales in only what is left after them (ctl__converge) */
};

/* Instances that count toward desired: all but the terminating (draining included), the ones
   being replaced and the standby. */
static inline int census_live(const struct census *cs)
{
    return (int)cs->n - cs->terminating - (int)cs->n_replace - cs->standby;
}

/* ctl_drain.c: what the agents of instances in terminating:wait say of their drain */
struct ctl_drain_answer {
    int result;       /* 1: the drain command succeeded, -1: it failed, 0: running or no answer */
    char detail[200]; /* why it failed */
};
/* Asks the n agents at once and waits one deadline (500 ms) at most for all of them; out[i]
   answers slots[i] (out NULL: only telling them). 0, or -1 when nothing could be asked (every
   out[i] then says 0). */
int ctl__drain_ask(struct ctl *c, const struct fleet_slot *const *slots, size_t n,
                   struct ctl_drain_answer *out);
/* Frees the client of ctl__drain_ask(), if any. */
void ctl__drain_free(struct ctl *c);

/* ctl.c */
int ctl__may_act(struct ctl *c);
void ctl__activity(struct ctl *c, const char *kind, const char *status, int from, int to,
                   const char *detail, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* ctl_suspend.c */
#define CTL_SKIP_NONE INT64_MIN
/*
 * Whether process proc is suspended. When it is, records one activity
 * (kind, status "skipped", cause "<what> skipped: process P is suspended")
 * unless one was recorded for the same want already; when it is not, forgets
 * the last want. want: what the duty wanted (a count, a desired capacity).
 */
int ctl__suspended(struct ctl *c, int proc, int64_t want, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ctl_lifetime.c: max_instance_lifetime (sets c->surge, terminates the surplus expired and
   counts them in cs->left) */
void ctl__lifetime(struct ctl *c, struct census *cs, int64_t now);
/* ctl_refresh.c: the instance refresh (adds to c->surge and cs->left; call after
   ctl__lifetime) */
void ctl__refresh(struct ctl *c, struct census *cs, int64_t now);

/* ctl_cloud.c */
/* The launch configuration a token carries (ctl_deps.launch_config), or "" into out. */
void ctl__token_launch_config(const char *token, char *out, size_t len);
size_t ctl__snapshot(struct ctl *c);
/* Sets s's lifecycle in the fleet table now; the store's copy follows at the next
   ctl__flush_lifecycles() (the end of the tick, or before a write that must come after it). */
int ctl__set_lifecycle(struct ctl *c, const struct fleet_slot *s, int lifecycle, int64_t now);
/* Puts a provider instance into the fleet table and the store: 0 tracked now, 1 already
   tracked, < 0 error. A store row it had before (a restart) gives back its lifecycle state. */
struct prov_instance;
int ctl__track(struct ctl *c, const struct prov_instance *pi);
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
/*
 * 1 when s (a slot of this tick's snapshot) is already leaving the group: terminating or
 * draining (terminating:wait), among the instances ctl__replace_unhealthy replaces this tick,
 * or terminated since the snapshot was taken (its slot freed, reused or terminating in the
 * fleet table). A duty that chooses instances to terminate after the health duty (lifetime,
 * refresh, convergence's scale-in) skips these, or it would terminate one instance twice.
 */
int ctl__leaving(struct ctl *c, const struct census *cs, const struct fleet_slot *s);

/* ctl_life.c: hooks, protection, standby, detach, attach (issue 12) */
int ctl__queue(struct ctl *c, const struct term_request *rq, char *err, size_t errlen);
void ctl__life_request(struct ctl *c, const struct term_request *rq, int64_t now);
void ctl__hooks(struct ctl *c, const struct census *cs, int64_t now);
/* After a launch: the launch hook (pending:wait) and protect_new_instances for slot idx. */
void ctl__launched(struct ctl *c, const char *id, int64_t now);
/* Adoption of an instance that has a store row: its wait, standby and protection come back. */
void ctl__restore(struct ctl *c, const char *id, const struct store_instance *row);
/* Writes the slot's lifecycle, protection and hook deadline into its store row. */
void ctl__persist(struct ctl *c, const struct fleet_slot *s);
/* The victims the terminate hook holds go to terminating:wait; the rest are copied to go. */
size_t ctl__hold_for_hook(struct ctl *c, const struct fleet_slot *const *victims, size_t n,
                          const struct fleet_slot **go, int64_t now);
/* 1 when scale-in may pick s: not protected, not standby, not draining in terminating:wait
   (checked before the termination policies see the candidates). */
int ctl__scale_in_candidate(const struct fleet_slot *s);

/* ctl_scale.c */
void ctl__window_push(struct ctl *c, int64_t now, double avg);
void ctl__scale(struct ctl *c, const struct census *cs, int64_t now, struct policy_decision *d);
void ctl__converge(struct ctl *c, const struct census *cs, int64_t now);

#endif
