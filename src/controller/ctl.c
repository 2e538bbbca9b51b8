/*
 * ctl.c - ControllerASG (see ctl.h).
 *
 * Workload: one tick a second over a snapshot of the fleet table (thousands of
 * slots at most), one settings read from SQLite, and provider calls only when
 * something must change (plus a describe every few seconds). The slow parts
 * (provider calls) happen on this thread alone; MonitorS keeps polling.
 *
 * Crash safety: a launch is first written down as an intent with a fresh
 * token, then sent to the provider with that token; an intent still open
 * after a crash is re-sent with the same token, which the provider answers
 * with the instances of the first call. Membership is re-read from the
 * provider at start (ctl_reconcile), so a restart adopts what runs and
 * forgets what vanished, and never launches because it restarted.
 */
#include "controller/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "controller/policy.h"
#include "controller/schedule.h"
#include "fleet/fleet.h"
#include "provider/provider.h"
#include "store/store.h"

#include "common/banned.h"

#define LOAD_WINDOW      4096 /* per-tick average samples kept (over an hour at 1 s) */
#define MAX_REQUESTS     256
#define RETRY_BASE_MS    1000
#define RETRY_MAX_MS     60000
#define CAPACITY_BACKOFF 60000
#define FATAL_BACKOFF    300000
#define VANISH_GRACE_MS  30000 /* a fresh launch may not be listed yet (eventual consistency) */

struct term_request {
    char id[FLEET_ID_MAX];
    int decrement;
};

struct ctl {
    char *group;
    int health_from_provider;
    int64_t tick_ms, describe_every_ms, history_every_ms;
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
    char retry_token[48]; /* a launch that failed transiently: re-sent with the same token */
    int retry_count;
    char fatal_msg[512]; /* last fatal provider error, logged once */
    struct fleet_slot *snap;
    size_t snap_cap;
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

/* ---- small helpers ------------------------------------------------------------------------ */

/* 1 when this node may still act for the group (see ctl_deps.may_act); logs changes. */
static int may_act(struct ctl *c)
{
    int ok = c->may_act == NULL || c->may_act(c->may_act_arg, c->group);
    if (!ok && !c->fenced)
        log_warn("group \"%s\": not the owner any more (lease not renewed in time): no "
                 "provider call and no store write",
                 c->group);
    else if (ok && c->fenced)
        log_info("group \"%s\": owner again, acting", c->group);
    c->fenced = !ok;
    return ok;
}

static void activity(struct ctl *c, const char *kind, const char *status, int from, int to,
                     const char *detail, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void activity(struct ctl *c, const char *kind, const char *status, int from, int to,
                     const char *detail, const char *fmt, ...)
{
    struct store_activity a;
    memset(&a, 0, sizeof(a));
    snprintf(a.group, sizeof(a.group), "%s", c->group);
    a.at_ms = clk_wall_ms();
    snprintf(a.kind, sizeof(a.kind), "%s", kind);
    snprintf(a.status, sizeof(a.status), "%s", status);
    snprintf(a.detail, sizeof(a.detail), "%s", detail ? detail : "");
    a.from_count = from;
    a.to_count = to;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a.cause, sizeof(a.cause), fmt, ap);
    va_end(ap);
    if (store_activity_add(c->store, &a, NULL) != 0)
        log_warn("cannot record activity for group \"%s\": %s", c->group, store_errmsg(c->store));
}

static int new_token(char *buf, size_t size)
{
    unsigned char raw[12];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    int off = snprintf(buf, size, "asgd-");
    for (size_t i = 0; i < sizeof(raw) && (size_t)off + 3 <= size; i++)
        off += snprintf(buf + off, size - (size_t)off, "%02x", raw[i]);
    return 0;
}

static void store_instance_from(struct ctl *c, const struct prov_instance *pi,
                                const char *lifecycle)
{
    struct store_instance si;
    memset(&si, 0, sizeof(si));
    snprintf(si.id, sizeof(si.id), "%s", pi->id);
    snprintf(si.group, sizeof(si.group), "%s", c->group);
    snprintf(si.address, sizeof(si.address), "%s", pi->address);
    snprintf(si.provider, sizeof(si.provider), "%s", provider_name(c->prov));
    snprintf(si.lifecycle, sizeof(si.lifecycle), "%s", lifecycle);
    snprintf(si.launch_token, sizeof(si.launch_token), "%s", pi->launch_token);
    snprintf(si.zone, sizeof(si.zone), "%s", pi->zone);
    si.launched_at_ms = pi->launched_at_ms;
    si.pid = pi->pid;
    if (store_put_instance(c->store, &si) != 0)
        log_warn("cannot store instance \"%s\": %s", pi->id, store_errmsg(c->store));
}

static void set_pid_fn(struct fleet_slot *s, void *arg)
{
    const struct prov_instance *pi = arg;
    s->pid = pi->pid;
    if (s->address[0] == '\0' && pi->address[0] != '\0')
        snprintf(s->address, sizeof(s->address), "%s", pi->address);
}

/* Puts a provider instance into the fleet table (if absent) and the store. */
static int track_instance(struct ctl *c, const struct prov_instance *pi)
{
    uint32_t idx;
    int rc = fleet_alloc(c->fleet, pi->id, pi->address, pi->launched_at_ms, &idx);
    if (rc == FLEET_EEXIST)
        return 0;
    if (rc != 0) {
        log_error("cannot track instance \"%s\" in the fleet table: %s", pi->id,
                  fleet_strerror(rc));
        return rc;
    }
    struct fleet_slot s;
    if (fleet_read(c->fleet, idx, &s) == 0) {
        struct prov_instance copy = *pi;
        fleet_update(c->fleet, idx, s.generation, set_pid_fn, &copy);
    }
    store_instance_from(c, pi, "pending");
    return 0;
}

struct lc_arg {
    int lifecycle;
    int64_t now;
    int adopted;
};

static void set_lifecycle_fn(struct fleet_slot *s, void *arg)
{
    const struct lc_arg *a = arg;
    s->lifecycle = (uint8_t)a->lifecycle;
    if (a->lifecycle == FLEET_IN_SERVICE && s->in_service_at_ms == 0)
        s->in_service_at_ms = a->now;
    if (a->adopted)
        s->adopted = 1;
}

static int set_lifecycle(struct ctl *c, const struct fleet_slot *s, int lifecycle, int64_t now)
{
    struct lc_arg a = {lifecycle, now, 0};
    int rc = fleet_update(c->fleet, s->index, s->generation, set_lifecycle_fn, &a);
    if (rc == 0 &&
        store_set_instance_lifecycle(c->store, s->id, fleet_lifecycle_name(lifecycle), 0) != 0)
        log_debug("instance \"%s\" lifecycle not stored: %s", s->id, store_errmsg(c->store));
    return rc;
}

/* The instance is gone for good: free its slot, close its store row. */
static void forget_instance(struct ctl *c, const struct fleet_slot *s, int64_t now)
{
    fleet_free(c->fleet, s->index, s->generation);
    if (store_set_instance_lifecycle(c->store, s->id, "terminated", now) != 0)
        log_debug("instance \"%s\" not in the store: %s", s->id, store_errmsg(c->store));
}

static size_t take_snapshot(struct ctl *c)
{
    for (;;) {
        size_t n = fleet_snapshot(c->fleet, c->snap, c->snap_cap);
        if (n <= c->snap_cap)
            return n;
        size_t cap = n + 64;
        struct fleet_slot *ns = realloc(c->snap, cap * sizeof(*ns));
        if (ns == NULL)
            return c->snap_cap; /* partial view; next tick tries again */
        c->snap = ns;
        c->snap_cap = cap;
    }
}

/* ---- provider calls ----------------------------------------------------------------------- */

/* Classifies a failed provider call: logs fatal errors once, sets backoffs. */
static void provider_failed(struct ctl *c, const char *what, int rc, int64_t now,
                            int64_t *backoff_until)
{
    const char *msg = provider_errmsg(c->prov);
    if (rc == PROV_EFATAL) {
        if (strcmp(c->fatal_msg, msg) != 0) {
            snprintf(c->fatal_msg, sizeof(c->fatal_msg), "%s", msg);
            log_error("%s failed for group \"%s\": %s (not retrying for %ds; fix the settings "
                      "or credentials)",
                      what, c->group, msg, FATAL_BACKOFF / 1000);
            activity(c, "error", "failed", 0, 0, msg, "%s failed: %s", what, prov_strerror(rc));
        }
        *backoff_until = now + FATAL_BACKOFF;
        pthread_mutex_lock(&c->mu);
        c->status.provider_ok = 0;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->launch_failures++;
    int64_t delay = rc == PROV_ECAPACITY ? CAPACITY_BACKOFF : RETRY_BASE_MS;
    if (rc != PROV_ECAPACITY) {
        int shift = c->launch_failures < 6 ? c->launch_failures : 6;
        delay = RETRY_BASE_MS << shift;
        if (delay > RETRY_MAX_MS)
            delay = RETRY_MAX_MS;
    }
    unsigned r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = 0;
    delay = delay / 2 + (int64_t)(r % (unsigned)(delay / 2 + 1)); /* jitter */
    *backoff_until = now + delay;
    log_warn("%s failed for group \"%s\": %s (retry in %" PRId64 " ms)", what, c->group, msg,
             delay);
    if (rc == PROV_ECAPACITY)
        activity(c, "error", "failed", 0, 0, msg, "%s failed: insufficient capacity", what);
}

/*
 * A call succeeded. Only a launch or terminate clears a fatal error: a describe
 * that works says nothing about a launch that is refused (a bad image id).
 */
static void provider_ok(struct ctl *c, int mutating)
{
    c->launch_failures = 0;
    if (!mutating)
        return;
    if (c->fatal_msg[0]) {
        log_info("provider calls for group \"%s\" succeed again", c->group);
        c->fatal_msg[0] = '\0';
    }
    pthread_mutex_lock(&c->mu);
    c->status.provider_ok = 1;
    pthread_mutex_unlock(&c->mu);
}

/* Sends (or re-sends) the launch of intent token; tracks what it made. */
static int launch_with_token(struct ctl *c, const char *token, int count, int64_t now)
{
    struct prov_list got = PROV_LIST_INIT;
    if (!may_act(c))
        return PROV_ERETRY; /* the intent stays open: the next owner re-sends its token */
    int rc = provider_launch(c->prov, count, token, &got);
    stats_count_provider(STATS_OP_LAUNCH, stats_result_of(rc));
    if (rc != 0) {
        provider_failed(c, "launch", rc, now, &c->launch_backoff_until);
        if (rc != PROV_ERETRY) {
            /* the call certainly did not launch: close the intent */
            if (store_intent_complete(c->store, token, STORE_INTENT_FAILED, NULL, 0) != 0)
                log_warn("cannot close intent \"%s\": %s", token, store_errmsg(c->store));
        }
        return rc;
    }
    provider_ok(c, 1);
    const char **ids = calloc(got.n ? got.n : 1, sizeof(*ids));
    for (size_t i = 0; i < got.n; i++) {
        if (ids)
            ids[i] = got.items[i].id;
        if (got.items[i].launch_token[0] == '\0')
            snprintf(got.items[i].launch_token, sizeof(got.items[i].launch_token), "%s", token);
        if (got.items[i].launched_at_ms == 0)
            got.items[i].launched_at_ms = now;
        track_instance(c, &got.items[i]);
        log_info("launched instance \"%s\" at %s for group \"%s\"", got.items[i].id,
                 got.items[i].address[0] ? got.items[i].address : "(address pending)", c->group);
    }
    stats.launched_instances += got.n;
    if (store_intent_complete(c->store, token, STORE_INTENT_DONE, ids, ids ? got.n : 0) != 0)
        log_warn("cannot close intent \"%s\": %s", token, store_errmsg(c->store));
    free(ids);
    prov_list_release(&got);
    return 0;
}

/*
 * Launches count instances. A launch that failed transiently may have reached
 * the provider (a timeout after the request left), so its intent stays open
 * and the next attempt re-sends the SAME token and count: the provider then
 * answers with what the first call made instead of making more.
 */
static int launch(struct ctl *c, int count, int64_t now, const char *why)
{
    char token[48];
    if (c->retry_token[0]) {
        snprintf(token, sizeof(token), "%s", c->retry_token);
        count = c->retry_count;
    } else {
        if (new_token(token, sizeof(token)) != 0)
            return -1;
        if (store_intent_create(c->store, token, c->group, count, now) != 0) {
            log_error("cannot record launch intent for group \"%s\": %s (not launching)", c->group,
                      store_errmsg(c->store));
            return -1;
        }
    }
    int rc = launch_with_token(c, token, count, now);
    if (rc == PROV_ERETRY) {
        snprintf(c->retry_token, sizeof(c->retry_token), "%s", token);
        c->retry_count = count;
    } else {
        c->retry_token[0] = '\0';
    }
    activity(c, "launch", rc == 0 ? "ok" : (rc == PROV_ERETRY ? "retrying" : "failed"), 0, count,
             rc == 0 ? "" : provider_errmsg(c->prov), "launch %d instance%s: %s", count,
             count == 1 ? "" : "s", why);
    return rc;
}

/* Terminates the slots given; frees the ones the provider confirmed. */
static int terminate_slots(struct ctl *c, const struct fleet_slot *const *victims, size_t n,
                           int64_t now)
{
    if (n == 0)
        return 0;
    const char **ids = calloc(n, sizeof(*ids));
    if (ids == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        ids[i] = victims[i]->id;
        set_lifecycle(c, victims[i], FLEET_TERMINATING, now);
    }
    if (!may_act(c)) {
        free(ids);
        return PROV_ERETRY;
    }
    int rc = provider_terminate(c->prov, ids, n);
    stats_count_provider(STATS_OP_TERMINATE, stats_result_of(rc));
    free(ids);
    if (rc != 0) {
        provider_failed(c, "terminate", rc, now, &c->terminate_backoff_until);
        return rc;
    }
    provider_ok(c, 1);
    for (size_t i = 0; i < n; i++) {
        log_info("terminated instance \"%s\" of group \"%s\"", victims[i]->id, c->group);
        forget_instance(c, victims[i], now);
    }
    stats.terminated_instances += n;
    return 0;
}

/* ---- reconciliation with the provider ----------------------------------------------------- */

static int find_in(const struct prov_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].id, id) == 0)
            return (int)i;
    return -1;
}

static void adopt_fn(struct fleet_slot *s, void *arg)
{
    (void)arg;
    s->adopted = 1;
}

/*
 * Compares the fleet table with what the provider says exists. strict: also
 * forget instances launched moments ago (used at start-up, when nothing can be
 * in flight).
 */
static int sync_with_provider(struct ctl *c, int64_t now, int strict)
{
    struct prov_list live = PROV_LIST_INIT;
    if (!may_act(c))
        return PROV_ERETRY;
    int rc = provider_describe(c->prov, &live);
    stats_count_provider(STATS_OP_DESCRIBE, stats_result_of(rc));
    if (rc != 0) {
        /* never forget instances because the provider could not answer */
        if (rc == PROV_EFATAL)
            provider_failed(c, "describe", rc, now, &c->launch_backoff_until);
        else
            log_warn("describe failed for group \"%s\": %s", c->group, provider_errmsg(c->prov));
        return rc;
    }
    size_t n = take_snapshot(c);
    for (size_t i = 0; i < n; i++) {
        const struct fleet_slot *s = &c->snap[i];
        int k = find_in(&live, s->id);
        int gone = k < 0 || live.items[k].state == PROV_GONE;
        if (gone && (strict || now - s->launched_at_ms > VANISH_GRACE_MS ||
                     s->lifecycle == FLEET_TERMINATING || k >= 0)) {
            if (s->lifecycle != FLEET_TERMINATING) {
                log_warn("instance \"%s\" of group \"%s\" vanished (not listed by the %s "
                         "provider)",
                         s->id, c->group, provider_name(c->prov));
                activity(c, "forget", "ok", 0, 0, "",
                         "instance %s vanished: the provider no longer lists it", s->id);
            }
            forget_instance(c, s, now);
        } else if (k >= 0 && live.items[k].state == PROV_STOPPING &&
                   s->lifecycle != FLEET_TERMINATING) {
            log_warn("instance \"%s\" of group \"%s\" is shutting down behind our back", s->id,
                     c->group);
            set_lifecycle(c, s, FLEET_TERMINATING, now);
        } else if (k >= 0 && s->address[0] == '\0' && live.items[k].address[0]) {
            struct prov_instance copy = live.items[k];
            fleet_update(c->fleet, s->index, s->generation, set_pid_fn, &copy);
        }
    }
    for (size_t k = 0; k < live.n; k++) {
        uint32_t idx;
        const struct prov_instance *pi = &live.items[k];
        if (pi->state == PROV_STOPPING && strict && fleet_find(c->fleet, pi->id, &idx) != 0) {
            /* a stopped machine of the group found at start: it serves nobody and still
             * costs its volumes; terminate it (an ASG treats stopped as unhealthy) */
            const char *id = pi->id;
            int trc = may_act(c) ? provider_terminate(c->prov, &id, 1) : PROV_ERETRY;
            stats_count_provider(STATS_OP_TERMINATE, stats_result_of(trc));
            log_warn("terminating stopped instance \"%s\" of group \"%s\"%s", pi->id, c->group,
                     trc == 0 ? "" : ": failed, will retry at the next start");
            if (trc == 0)
                activity(c, "terminate", "ok", 0, 0, "",
                         "instance %s was found stopped at start: terminated", pi->id);
            continue;
        }
        if (pi->state == PROV_GONE || pi->state == PROV_STOPPING)
            continue;
        if (fleet_find(c->fleet, pi->id, &idx) == 0)
            continue;
        if (track_instance(c, pi) == 0 && fleet_find(c->fleet, pi->id, &idx) == 0) {
            struct fleet_slot s;
            if (fleet_read(c->fleet, idx, &s) == 0)
                fleet_update(c->fleet, idx, s.generation, adopt_fn, NULL);
            log_info("adopted running instance \"%s\" at %s into group \"%s\"", pi->id, pi->address,
                     c->group);
            activity(c, "adopt", "ok", 0, 0, "", "adopted running instance %s", pi->id);
        }
    }
    /* store rows of instances that exist nowhere any more: at start, then a slow sweep (a
       list of the group's rows is a store read; a cluster store serves every group) */
    struct store_instance *rows = NULL;
    size_t nrows = 0;
    int sweep = strict || now - c->last_sweep_ms >= 60000;
    if (sweep)
        c->last_sweep_ms = now;
    if (sweep && store_list_instances(c->store, c->group, 0, &rows, &nrows) == 0) {
        for (size_t i = 0; i < nrows; i++) {
            uint32_t idx;
            if (find_in(&live, rows[i].id) < 0 && fleet_find(c->fleet, rows[i].id, &idx) != 0)
                if (store_set_instance_lifecycle(c->store, rows[i].id, "terminated", now) != 0)
                    log_debug("cannot close instance row \"%s\"", rows[i].id);
        }
        store_instances_free(rows);
    }
    prov_list_release(&live);
    c->last_describe_ms = now;
    provider_ok(c, 0);
    return 0;
}

int ctl_reconcile(struct ctl *c, int64_t now)
{
    if (c->reconciled_ms == 0)
        c->reconciled_ms = now;
    int rc = sync_with_provider(c, now, 1);
    if (rc != 0)
        return rc;
    /* launches that may have been sent before a crash: re-send with the same token */
    struct store_intent *open = NULL;
    size_t n = 0;
    if (store_intent_list_open(c->store, c->group, &open, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            log_info("resuming launch intent \"%s\" (%d instance%s) of group \"%s\"", open[i].token,
                     open[i].count, open[i].count == 1 ? "" : "s", c->group);
            launch_with_token(c, open[i].token, open[i].count, now);
        }
        store_intents_free(open, n);
    }
    return 0;
}

/* ---- the tick ----------------------------------------------------------------------------- */

static double window_average(struct ctl *c, int64_t now, int64_t period_ms)
{
    double sum = 0;
    int k = 0;
    for (size_t i = 0; i < c->win_n; i++) {
        size_t at = (c->win_head + LOAD_WINDOW - 1 - i) % LOAD_WINDOW;
        if (c->window[at].at_ms <= now - period_ms)
            break;
        sum += c->window[at].avg;
        k++;
    }
    return k ? sum / k : -1;
}

static void window_push(struct ctl *c, int64_t now, double avg)
{
    if (avg < 0) {
        return;
    }
    c->window[c->win_head].at_ms = now;
    c->window[c->win_head].avg = avg;
    c->win_head = (c->win_head + 1) % LOAD_WINDOW;
    if (c->win_n < LOAD_WINDOW)
        c->win_n++;
}

static int load_settings(struct ctl *c)
{
    struct group_settings g;
    int rc = store_get_settings(c->store, c->group, &g);
    if (rc != 0) {
        if (c->have_settings)
            return 0; /* keep the last good settings */
        log_error("cannot read settings of group \"%s\": %s", c->group, store_errmsg(c->store));
        return rc;
    }
    if (!c->have_settings || g.policy.type != c->policy_type ||
        memcmp(&g.policy, &c->settings.policy, sizeof(g.policy)) != 0) {
        policy_state_reset(&c->pstate);
        c->policy_type = g.policy.type;
    }
    if (c->have_settings && g.revision != c->settings.revision)
        log_info("settings of group \"%s\" changed (revision %" PRId64 "): min %d, max %d, "
                 "desired %d",
                 c->group, g.revision, g.min_size, g.max_size, g.desired_capacity);
    int health_changed =
        !c->have_settings || memcmp(&g.health, &c->settings.health, sizeof(g.health)) != 0;
    c->settings = g;
    c->have_settings = 1;
    if (health_changed && c->on_health)
        c->on_health(c->may_act_arg, c->group, &c->settings.health);
    return 0;
}

static void handle_requests(struct ctl *c, int64_t now)
{
    struct term_request reqs[MAX_REQUESTS];
    size_t n;
    pthread_mutex_lock(&c->mu);
    n = c->n_requests;
    memcpy(reqs, c->requests, n * sizeof(reqs[0]));
    c->n_requests = 0;
    pthread_mutex_unlock(&c->mu);

    for (size_t i = 0; i < n; i++) {
        uint32_t idx;
        struct fleet_slot s;
        if (fleet_find(c->fleet, reqs[i].id, &idx) != 0 || fleet_read(c->fleet, idx, &s) != 0)
            continue;
        int from = c->settings.desired_capacity, to = from;
        if (reqs[i].decrement && from > c->settings.min_size) {
            to = from - 1;
            if (store_set_desired(c->store, c->group, to, &c->settings.revision) == 0)
                c->settings.desired_capacity = to;
            else
                to = from;
        }
        const struct fleet_slot *v = &s;
        activity(c, "terminate", "ok", from, to, "", "operator asked to terminate %s%s", s.id,
                 reqs[i].decrement ? " and decrement desired" : " (it will be replaced)");
        terminate_slots(c, &v, 1, now);
    }
}

/* Victim order for scale-in: unhealthy first, then the newest still booting, then the oldest. */
static int victim_rank(const struct fleet_slot *s)
{
    if (s->health == FLEET_HEALTH_UNHEALTHY || s->health == FLEET_HEALTH_DEREGISTERED)
        return 0;
    if (s->lifecycle == FLEET_PENDING)
        return 1;
    return 2;
}

static int victim_cmp(const void *pa, const void *pb)
{
    const struct fleet_slot *a = *(const struct fleet_slot *const *)pa;
    const struct fleet_slot *b = *(const struct fleet_slot *const *)pb;
    int ra = victim_rank(a), rb = victim_rank(b);
    if (ra != rb)
        return ra - rb;
    if (ra == 1) /* newest booting first */
        return a->launched_at_ms > b->launched_at_ms ? -1 : a->launched_at_ms < b->launched_at_ms;
    return a->launched_at_ms < b->launched_at_ms ? -1 : a->launched_at_ms > b->launched_at_ms;
}

/*
 * The panic rule (like Envoy's panic routing): when more than panic_threshold
 * percent of the group's instances fail their checks at the same time, the
 * likely cause is asgd's own network (a partition), not that many instances
 * died at once; replacing them all would only churn the fleet. An instance is
 * failing when it is in service and UNHEALTHY or has failed its latest checks
 * (consecutive_fail > 0: counting the ones not yet at the unhealthy threshold
 * keeps the first instance to cross it from being replaced before the others
 * follow). At least 2 must fail and 1 be UNHEALTHY: a group of one cannot tell
 * a partition from a death. Returns 1 in panic; logs and records transitions.
 */
static int update_panic(struct ctl *c, int failing, int down, int total, int64_t now)
{
    int th = c->settings.health.panic_threshold;
    /* down: how many of them are UNHEALTHY already; none means nothing would be replaced, and a
       blip (every check late once: asgd itself stalled) is no panic worth a log line */
    int panic = th > 0 && down > 0 && failing >= 2 && total > 0 &&
                (int64_t)failing * 100 > (int64_t)th * total;
    if (panic && !c->panic) {
        log_warn("group \"%s\": PANIC: %d of %d instances (%d%%) fail their health checks at "
                 "once, above panic_threshold %d%%: asgd's own network may be cut; not replacing "
                 "any until they answer again",
                 c->group, failing, total, failing * 100 / total, th);
        activity(c, "panic", "started", failing, total, "",
                 "%d of %d instances (%d%%) fail their health checks at once (panic_threshold "
                 "%d%%): replacements stopped",
                 failing, total, failing * 100 / total, th);
    } else if (!panic && c->panic) {
        c->panic_ended_ms = now;
        log_info("group \"%s\": panic over: %d of %d instances fail their checks now; "
                 "replacing again",
                 c->group, failing, total);
        activity(c, "panic", "ended", failing, total, "",
                 "panic over: %d of %d instances fail their health checks", failing, total);
    }
    c->panic = panic;
    c->panic_failing = failing;
    c->panic_total = total;
    return panic;
}

/* How many replacements the rate limit allows now (token bucket of max_replacements_per_minute
   per minute, burst the same); the caller takes what it uses with repl_take(). */
static size_t repl_allowed(struct ctl *c, int64_t now)
{
    int per_min = c->settings.health.max_replacements_per_minute;
    if (per_min <= 0)
        return SIZE_MAX;
    if (c->repl_refill_ms == 0 || now < c->repl_refill_ms) {
        c->repl_tokens = per_min;
    } else {
        c->repl_tokens += (double)(now - c->repl_refill_ms) * per_min / 60000.0;
        if (c->repl_tokens > per_min)
            c->repl_tokens = per_min;
    }
    c->repl_refill_ms = now;
    return c->repl_tokens >= 1 ? (size_t)c->repl_tokens : 0;
}

int ctl_tick(struct ctl *c, int64_t now)
{
    if (!may_act(c))
        return -1;
    if (load_settings(c) != 0)
        return -1;
    if (sched_tick(&c->sched, c->store, &c->settings, now) > 0 && load_settings(c) != 0)
        return -1;
    const struct group_settings *g = &c->settings;
    fleet_heartbeat(c->fleet, 1, now);

    handle_requests(c, now);

    if (now - c->last_describe_ms >= c->describe_every_ms && now >= c->launch_backoff_until)
        sync_with_provider(c, now, 0);

    size_t n = take_snapshot(c);
    int in_service = 0, pending = 0, unhealthy = 0, terminating = 0, counted = 0;
    int deregistered = 0, failing = 0, down = 0;
    double load_sum = 0;
    const struct fleet_slot **replace = calloc(n ? n : 1, sizeof(*replace));
    const struct fleet_slot **retry_term = calloc(n ? n : 1, sizeof(*retry_term));
    size_t n_replace = 0, n_retry = 0;
    if (replace == NULL || retry_term == NULL) {
        free(replace);
        free(retry_term);
        return -1;
    }

    for (size_t i = 0; i < n; i++) {
        struct fleet_slot *s = &c->snap[i];
        int healthy = c->health_from_provider ? 1 : s->health == FLEET_HEALTH_HEALTHY;
        /* an instance adopted at start (a restart, or a failover to this node with a fresh
           fleet table) has its health decided anew: the grace period counts from then */
        int64_t since = s->launched_at_ms;
        if (s->adopted && c->reconciled_ms > since)
            since = c->reconciled_ms;
        /* after a panic (a partition) the agents come back one by one as their connections
           are re-made: the ones still failing get a fresh grace period, as adopted ones do */
        if (c->panic_ended_ms > since)
            since = c->panic_ended_ms;
        int past_grace = now - since >= g->health.grace_period_ms;
        if (s->lifecycle == FLEET_TERMINATING) {
            terminating++;
            retry_term[n_retry++] = s;
            continue;
        }
        if (s->lifecycle == FLEET_PENDING && healthy) {
            set_lifecycle(c, s, FLEET_IN_SERVICE, now);
            s->lifecycle = FLEET_IN_SERVICE;
            log_info("instance \"%s\" of group \"%s\" is in service", s->id, c->group);
        }
        /* a deregistered agent (restarting) has its reconnect window; after it, it is
           unhealthy like any other */
        int dereg = !c->health_from_provider && s->health == FLEET_HEALTH_DEREGISTERED;
        int dereg_over = dereg && now - s->health_changed_ms >= g->health.deregister_grace_ms;
        if (!c->health_from_provider && s->lifecycle == FLEET_IN_SERVICE &&
            (s->health == FLEET_HEALTH_UNHEALTHY || s->consecutive_fail > 0)) {
            failing++;
            down += s->health == FLEET_HEALTH_UNHEALTHY;
        }
        if (!c->health_from_provider && past_grace &&
            (s->health == FLEET_HEALTH_UNHEALTHY || dereg_over ||
             (s->lifecycle == FLEET_PENDING && s->health != FLEET_HEALTH_HEALTHY && !dereg))) {
            unhealthy++;
            replace[n_replace++] = s;
            continue;
        }
        if (dereg) {
            deregistered++; /* live (no substitute launched), not in the load */
            continue;
        }
        if (s->lifecycle == FLEET_IN_SERVICE) {
            in_service++;
            if (policy_load_counts(&g->policy, s->launched_at_ms, now, past_grace) &&
                s->load >= 0 && (c->health_from_provider || s->health == FLEET_HEALTH_HEALTHY)) {
                load_sum += s->load;
                counted++;
            }
        } else {
            pending++;
        }
    }
    double avg = counted ? load_sum / counted : -1;
    window_push(c, now, avg);

    /* a partition is not a fleet death: in panic, replace nothing (the unhealthy stay live,
       so nothing is launched for them either); else at most the rate limit's share */
    int panic = update_panic(c, failing, down, (int)n - terminating, now);
    if (panic || (c->panic_ended_ms && now - c->panic_ended_ms < g->health.grace_period_ms)) {
        n_replace = 0; /* (the loop above saw the panic's end only from the next tick on) */
    } else if (n_replace > 0) {
        size_t allowed = repl_allowed(c, now);
        if (n_replace > allowed) {
            if (!c->rate_limited)
                log_warn("group \"%s\": %zu unhealthy instances to replace, at most %d a "
                         "minute (max_replacements_per_minute): replacing %zu now",
                         c->group, n_replace, g->health.max_replacements_per_minute, allowed);
            c->rate_limited = 1;
            n_replace = allowed;
        } else {
            c->rate_limited = 0;
        }
    } else {
        c->rate_limited = 0;
    }

    /* replace the unhealthy ones past their grace period */
    if (n_replace > 0 && now >= c->terminate_backoff_until) {
        if (g->health.max_replacements_per_minute > 0)
            c->repl_tokens -= (double)n_replace;
        for (size_t i = 0; i < n_replace; i++) {
            const struct fleet_slot *s = replace[i];
            char why[160];
            if (s->health == FLEET_HEALTH_DEREGISTERED)
                snprintf(why, sizeof(why),
                         "deregistered and not back within deregister_grace (%" PRId64 " ms)",
                         g->health.deregister_grace_ms);
            else if (s->lifecycle == FLEET_PENDING)
                snprintf(why, sizeof(why), "did not become healthy within the grace period");
            else
                snprintf(why, sizeof(why), "unhealthy: %u consecutive failed checks",
                         s->consecutive_fail);
            log_warn("replacing instance \"%s\" of group \"%s\": %s", s->id, c->group, why);
            activity(c, "replace", "ok", g->desired_capacity, g->desired_capacity, "",
                     "instance %s %s", s->id, why);
            stats.replacements++;
        }
        terminate_slots(c, replace, n_replace, now);
    }
    if (n_retry > 0 && now >= c->terminate_backoff_until)
        terminate_slots(c, retry_term, n_retry, now);

    /* the policy */
    struct policy_input in = {
        .now_ms = now,
        .min_size = g->min_size,
        .max_size = g->max_size,
        /* in service + booting (policy.h), as the simulator counts: not desired_capacity */
        .current = (int)n - terminating - (int)n_replace,
        .in_service = in_service,
        .avg_load = window_average(c, now, g->policy.evaluation_period_ms),
    };
    struct policy_decision d;
    memset(&d, 0, sizeof(d));
    /* in panic the load seen is only the reachable part's: hold the size until it is over;
       while the fleet converges on a desired count set outside the policy (API, a launch
       retried) the policy waits, as it never sees that state in the simulator */
    if (!panic && in.current == g->desired_capacity)
        policy_evaluate(&g->policy, &c->pstate, &in, &d);
    if (d.changed && d.desired != g->desired_capacity) {
        int from = g->desired_capacity;
        int64_t rev;
        if (store_set_desired(c->store, c->group, d.desired, &rev) == 0) {
            c->settings.desired_capacity = d.desired;
            c->settings.revision = rev;
            log_info("group \"%s\": %s", c->group, d.cause);
            activity(c, "scale", "ok", from, d.desired, "", "%s", d.cause);
            if (d.desired > from)
                stats.scale_out_actions++;
            else
                stats.scale_in_actions++;
        } else {
            log_error("cannot store desired %d for group \"%s\": %s", d.desired, c->group,
                      store_errmsg(c->store));
        }
    }

    /* converge on desired */
    int live = (int)n - terminating - (int)n_replace;
    int desired = c->settings.desired_capacity;
    if (live < desired && now >= c->launch_backoff_until) {
        char why[128];
        snprintf(why, sizeof(why), "%d running, desired %d", live, desired);
        launch(c, desired - live, now, why);
    } else if (live > desired && now >= c->terminate_backoff_until) {
        const struct fleet_slot **cand = calloc((size_t)live, sizeof(*cand));
        size_t k = 0;
        if (cand != NULL) {
            for (size_t i = 0; i < n; i++) {
                const struct fleet_slot *s = &c->snap[i];
                int skip = s->lifecycle == FLEET_TERMINATING;
                for (size_t j = 0; j < n_replace && !skip; j++)
                    skip = replace[j] == s;
                if (!skip && k < (size_t)live)
                    cand[k++] = s;
            }
            qsort(cand, k, sizeof(*cand), victim_cmp);
            size_t extra = (size_t)(live - desired);
            if (extra > k)
                extra = k;
            for (size_t i = 0; i < extra; i++)
                activity(c, "terminate", "ok", live, desired, "",
                         "scale in: %d running, desired %d: terminate %s (%s)", live, desired,
                         cand[i]->id,
                         victim_rank(cand[i]) == 0   ? "unhealthy"
                         : victim_rank(cand[i]) == 1 ? "newest still booting"
                                                     : "oldest in service");
            terminate_slots(c, cand, extra, now);
            free(cand);
        }
    }

    /* metric history for the charts; an empty group writes one empty sample, not one per
       period (an estate of idle groups costs the store nothing) */
    if (now - c->last_history_ms >= c->history_every_ms && n == 0 && c->history_empty &&
        c->settings.desired_capacity == 0)
        c->last_history_ms = now;
    if (now - c->last_history_ms >= c->history_every_ms) {
        c->history_empty = n == 0;
        struct store_metric_group mg;
        memset(&mg, 0, sizeof(mg));
        snprintf(mg.group, sizeof(mg.group), "%s", c->group);
        mg.at_ms = now;
        mg.avg_load = avg;
        mg.in_service = in_service;
        mg.desired = c->settings.desired_capacity;
        struct store_metric_instance *mi = calloc(n ? n : 1, sizeof(*mi));
        size_t ni = 0;
        for (size_t i = 0; mi && i < n; i++) {
            if (c->snap[i].load < 0)
                continue;
            snprintf(mi[ni].group, sizeof(mi[ni].group), "%s", c->group);
            snprintf(mi[ni].instance_id, sizeof(mi[ni].instance_id), "%s", c->snap[i].id);
            mi[ni].at_ms = now;
            mi[ni].load = c->snap[i].load;
            ni++;
        }
        if (store_metrics_add(c->store, &mg, 1, mi, ni) != 0)
            log_warn("cannot store metric history: %s", store_errmsg(c->store));
        free(mi);
        c->last_history_ms = now;
        /* pruning is a write too (a cluster store counts them): every 10 minutes is plenty */
        if (now - c->last_prune_ms >= 600 * 1000) {
            if (store_metrics_prune(c->store, now - 24 * 3600 * 1000LL, NULL) != 0)
                log_debug("metric prune failed");
            c->last_prune_ms = now;
        }
    }

    pthread_mutex_lock(&c->mu);
    c->status.desired = c->settings.desired_capacity;
    c->status.in_service = in_service;
    c->status.pending = pending;
    c->status.unhealthy = unhealthy;
    c->status.terminating = terminating;
    c->status.deregistered = deregistered;
    c->status.panic = panic;
    c->status.panic_failing = failing;
    c->status.panic_total = (int)n - terminating;
    c->status.panic_threshold = g->health.panic_threshold;
    c->status.avg_load = avg;
    c->status.last_tick_ms = now;
    if (d.evaluated)
        snprintf(c->status.last_decision, sizeof(c->status.last_decision), "%s", d.cause);
    pthread_mutex_unlock(&c->mu);

    free(replace);
    free(retry_term);
    return 0;
}

/* ---- thread and public API ---------------------------------------------------------------- */

static void *ctl_main(void *arg)
{
    struct ctl *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        pthread_mutex_unlock(&c->mu);
        ctl_tick(c, clk_wall_ms());
        pthread_mutex_lock(&c->mu);
        if (c->stopping)
            break;
        if (!c->woken) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(c->tick_ms / 1000);
            ts.tv_nsec += (long)(c->tick_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (!c->woken && !c->stopping &&
                   pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT) {
            }
        }
        c->woken = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int ctl_new(const struct ctl_deps *deps, struct ctl **out, char *err, size_t errlen)
{
    if (deps->group == NULL || deps->fleet == NULL || deps->store == NULL ||
        deps->provider == NULL) {
        snprintf(err, errlen, "controller: group, fleet, store and provider are required");
        return CTL_EINVAL;
    }
    struct ctl *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->group = strdup(deps->group)) == NULL) {
        free(c);
        snprintf(err, errlen, "controller: out of memory");
        return CTL_ENOMEM;
    }
    c->health_from_provider = deps->health_from_provider;
    c->tick_ms = deps->tick_ms > 0 ? deps->tick_ms : 1000;
    c->describe_every_ms = deps->describe_every_ms > 0 ? deps->describe_every_ms : 5000;
    c->history_every_ms = deps->history_every_ms > 0 ? deps->history_every_ms : 5000;
    c->fleet = deps->fleet;
    c->store = deps->store;
    c->prov = deps->provider;
    c->may_act = deps->may_act;
    c->may_act_arg = deps->may_act_arg;
    c->on_health = deps->on_health;
    c->status.avg_load = -1;
    c->status.provider_ok = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = c;
    return 0;
}

int ctl_start(struct ctl *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->running) {
        pthread_mutex_unlock(&c->mu);
        return CTL_ESTATE;
    }
    c->stopping = 0;
    int rc = pthread_create(&c->thread, NULL, ctl_main, c);
    c->running = rc == 0;
    pthread_mutex_unlock(&c->mu);
    return rc == 0 ? 0 : CTL_ENOMEM;
}

void ctl_stop(struct ctl *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    if (!c->running) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->stopping = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->running = 0;
}

void ctl_free(struct ctl *c)
{
    if (c == NULL)
        return;
    ctl_stop(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->snap);
    free(c->group);
    sched_state_release(&c->sched);
    policy_state_reset(&c->pstate);
    free(c);
}

int ctl_request_terminate(struct ctl *c, const char *id, int decrement_desired, char *err,
                          size_t errlen)
{
    uint32_t idx;
    if (id == NULL || strlen(id) >= FLEET_ID_MAX || fleet_find(c->fleet, id, &idx) != 0) {
        snprintf(err, errlen, "no instance \"%s\" in group \"%s\"", id ? id : "", c->group);
        return CTL_ENOENT;
    }
    pthread_mutex_lock(&c->mu);
    if (c->n_requests == MAX_REQUESTS) {
        pthread_mutex_unlock(&c->mu);
        snprintf(err, errlen, "too many pending terminate requests; try again");
        return CTL_ESTATE;
    }
    snprintf(c->requests[c->n_requests].id, FLEET_ID_MAX, "%s", id);
    c->requests[c->n_requests].decrement = decrement_desired;
    c->n_requests++;
    c->woken = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void ctl_wake(struct ctl *c)
{
    pthread_mutex_lock(&c->mu);
    c->woken = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void ctl_get_status(struct ctl *c, struct ctl_status *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->status;
    pthread_mutex_unlock(&c->mu);
}
