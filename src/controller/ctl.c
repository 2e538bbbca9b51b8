/*
 * ctl.c - ControllerASG (see ctl.h): its thread, public API and the tick.
 *
 * Workload: one tick a second over a snapshot of the fleet table (thousands of
 * slots at most), one settings read from the store, and provider calls only
 * when something must change (plus a describe every few seconds). The slow
 * parts (provider calls) happen on this thread alone; MonitorS keeps polling.
 * The tick calls one function per duty, in order (ctl_int.h maps the files).
 */
#include "controller/ctl_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

/* ---- small helpers ------------------------------------------------------------------------ */

/* 1 when this node may still act for the group (see ctl_deps.may_act); logs changes. */
int ctl__may_act(struct ctl *c)
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

void ctl__activity(struct ctl *c, const char *kind, const char *status, int from, int to,
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
    /* written with the others of this tick (ctl__flush), or now when it cannot be kept; a
       deferred one has no store id yet (a webhook's event id carries its own random part) */
    if (ctl__defer_activity(c, &a) != 0 && store_activity_add(c->store, &a, &a.id) != 0)
        log_warn("cannot record activity for group \"%s\": %s", c->group, store_errmsg(c->store));
    if (c->on_activity)
        c->on_activity(c->on_activity_arg, &c->settings, &a);
}

/* ---- duties of the tick -------------------------------------------------------------------- */

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
    /* byte equality is value equality here: policy_settings_default() zeroes the struct and
       store_policy_from_json() zeroes each string before writing it (store_json.c) */
    if (!c->have_settings || g.policy.type != c->policy_type ||
        // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): zeroed padding, see above
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
        if (reqs[i].kind != REQ_TERMINATE) {
            ctl__life_request(c, &reqs[i], now); /* hooks, protection, standby... */
            continue;
        }
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
        ctl__activity(c, "terminate", "ok", from, to, "", "operator asked to terminate %s%s", s.id,
                      reqs[i].decrement ? " and decrement desired" : " (it will be replaced)");
        ctl__terminate(c, &v, 1, now);
    }
}

/* Metric history for the charts; an empty group writes one empty sample, not one per period
   (an estate of idle groups costs the store nothing). */
static void record_history(struct ctl *c, const struct census *cs, int64_t now)
{
    if (now - c->last_history_ms >= c->history_every_ms && cs->n == 0 && c->history_empty &&
        c->settings.desired_capacity == 0)
        c->last_history_ms = now;
    if (now - c->last_history_ms >= c->history_every_ms) {
        c->history_empty = cs->n == 0;
        struct store_metric_group mg;
        memset(&mg, 0, sizeof(mg));
        snprintf(mg.group, sizeof(mg.group), "%s", c->group);
        mg.at_ms = now;
        mg.avg_load = cs->avg;
        mg.in_service = cs->in_service;
        mg.desired = c->settings.desired_capacity;
        /* ctl_deps' override, else the group's history_instances_max (0: the default) */
        int hmax =
            c->history_instances_max ? c->history_instances_max : c->settings.history_instances_max;
        if (hmax == 0)
            hmax = GROUP_HISTORY_INSTANCES_MAX;
        int per_instance = hmax >= 0 && cs->n <= (size_t)hmax;
        if ((!per_instance) != c->history_big)
            log_info("group \"%s\": %zu instances, per-instance load history %s (at most %d)",
                     c->group, cs->n, per_instance ? "on again" : "off", hmax);
        c->history_big = !per_instance;
        struct store_metric_instance *mi = calloc(per_instance && cs->n ? cs->n : 1, sizeof(*mi));
        size_t ni = 0;
        for (size_t i = 0; mi && per_instance && i < cs->n; i++) {
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
}

/* What ctl_get_status() answers, from this tick. */
static void publish_status(struct ctl *c, const struct census *cs, const struct policy_decision *d,
                           int64_t now)
{
    pthread_mutex_lock(&c->mu);
    c->status.desired = c->settings.desired_capacity;
    c->status.in_service = cs->in_service;
    c->status.pending = cs->pending;
    c->status.unhealthy = cs->unhealthy;
    c->status.terminating = cs->terminating;
    c->status.deregistered = cs->deregistered;
    c->status.pending_wait = cs->pending_wait;
    c->status.terminating_wait = cs->terminating_wait;
    c->status.standby = cs->standby;
    c->status.protected_n = cs->protected_n;
    c->status.panic = cs->panic;
    c->status.panic_failing = cs->failing;
    c->status.panic_total = (int)cs->n - cs->terminating;
    c->status.panic_threshold = c->settings.health.panic_threshold;
    c->status.avg_load = cs->avg;
    c->status.last_tick_ms = now;
    snprintf(c->status.suspended, sizeof(c->status.suspended), "%s",
             c->settings.suspended_processes);
    if (d->evaluated)
        snprintf(c->status.last_decision, sizeof(c->status.last_decision), "%s", d->cause);
    pthread_mutex_unlock(&c->mu);
}

/* Scheduled actions ([policy] schedule): 1 when one changed the stored settings. Actions due
   while ScheduledActions is suspended are skipped, not run late at resume (as AWS does). */
static int run_schedule(struct ctl *c, int64_t now)
{
    if (group_process_suspended(&c->settings, GROUP_PROC_SCHEDULED_ACTIONS)) {
        c->sched.last_ms = now;
        return 0;
    }
    return sched_tick(&c->sched, c->store, &c->settings, now);
}

int ctl_tick(struct ctl *c, int64_t now)
{
    if (!ctl__may_act(c))
        return -1;
    if (load_settings(c) != 0)
        return -1;
    if (run_schedule(c, now) > 0 && load_settings(c) != 0)
        return -1;
    fleet_heartbeat(c->fleet, 1, now);
    handle_requests(c, now);
    if (now - c->last_describe_ms >= c->describe_every_ms && now >= c->launch_backoff_until)
        ctl__sync(c, now, 0);

    struct census cs;
    if (ctl__census(c, now, &cs) != 0)
        return -1;
    ctl__window_push(c, now, cs.avg);
    ctl__replace_unhealthy(c, &cs, now);
    ctl__hooks(c, &cs, now);
    struct policy_decision d;
    ctl__scale(c, &cs, now, &d);
    ctl__lifetime(c, &cs, now);
    ctl__refresh(c, &cs, now);
    ctl__converge(c, &cs, now);
    ctl__flush(c);
    record_history(c, &cs, now);
    publish_status(c, &cs, &d, now);
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
    c->history_instances_max = deps->history_instances_max; /* 0: the group's setting */
    c->fleet = deps->fleet;
    c->store = deps->store;
    c->prov = deps->provider;
    c->may_act = deps->may_act;
    c->may_act_arg = deps->may_act_arg;
    c->on_health = deps->on_health;
    c->on_activity = deps->on_activity;
    c->on_activity_arg = deps->on_activity_arg;
    c->agent_tls = deps->agent_tls;
    if (deps->launch_config)
        snprintf(c->launch_config, sizeof(c->launch_config), "%s", deps->launch_config);
    for (int i = 0; i < CTL_PROC_COUNT; i++)
        c->skipped_want[i] = CTL_SKIP_NONE;
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
    if (rc == 0)
        pthread_setname_np(c->thread, "asgd-ctl"); /* per-thread CPU in top -H, benchmarks */
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
    ctl__drain_free(c);
    free(c->snap);
    free(c->census_buf);
    free(c->lc_pend);
    free(c->act_pend);
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
    struct term_request rq;
    memset(&rq, 0, sizeof(rq));
    snprintf(rq.id, sizeof(rq.id), "%s", id);
    rq.decrement = decrement_desired;
    return ctl__queue(c, &rq, err, errlen);
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
