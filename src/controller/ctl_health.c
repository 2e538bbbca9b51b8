/*
 * ctl_health.c - what the tick sees in the fleet and what it does about the
 * unhealthy (see ctl_int.h): the census (one pass over the snapshot: counts,
 * promotion of healthy booted instances, the load average, the instances to
 * replace), the panic rule and the replacement rate limit.
 */
#include "controller/ctl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/stats.h"

#include "common/banned.h"

/* census.replace and .retry_term hold up to n slots each: grown with the fleet, kept. */
static int census_reserve(struct ctl *c, size_t n)
{
    if (n <= c->census_cap)
        return 0;
    size_t cap = n + 64;
    const struct fleet_slot **nb = realloc(c->census_buf, 2 * cap * sizeof(*nb));
    if (nb == NULL)
        return -1;
    c->census_buf = nb;
    c->census_cap = cap;
    return 0;
}

int ctl__census(struct ctl *c, int64_t now, struct census *cs)
{
    const struct group_settings *g = &c->settings;
    size_t n = ctl__snapshot(c);
    memset(cs, 0, sizeof(*cs));
    if (census_reserve(c, n) != 0)
        return -1;
    cs->n = n;
    cs->replace = c->census_buf;
    cs->retry_term = c->census_buf + c->census_cap;
    int counted = 0;
    double load_sum = 0;
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
        /* a completed launch hook starts the grace period anew (docs/lifecycle.md) */
        if (s->wait_ended_ms > since)
            since = s->wait_ended_ms;
        int past_grace = now - since >= g->health.grace_period_ms;
        cs->protected_n += s->protect != 0;
        if (s->lifecycle == FLEET_TERMINATING) {
            cs->terminating++;
            cs->retry_term[cs->n_retry++] = s;
            continue;
        }
        /* hooks and standby (ctl_life.c): out of the load, never replaced; a pending:wait
           instance is live (it counts toward desired), the others are not */
        if (s->lifecycle == FLEET_TERMINATING_WAIT) {
            cs->terminating++;
            cs->terminating_wait++;
            continue;
        }
        if (s->lifecycle == FLEET_PENDING_WAIT) {
            cs->pending++;
            cs->pending_wait++;
            continue;
        }
        if (s->lifecycle == FLEET_STANDBY) {
            cs->standby++;
            continue;
        }
        if (s->lifecycle == FLEET_PENDING && healthy) {
            ctl__set_lifecycle(c, s, FLEET_IN_SERVICE, now);
            s->lifecycle = FLEET_IN_SERVICE;
            log_info("instance \"%s\" of group \"%s\" is in service", s->id, c->group);
        }
        /* a deregistered agent (restarting) has its reconnect window; after it, it is
           unhealthy like any other */
        int dereg = !c->health_from_provider && s->health == FLEET_HEALTH_DEREGISTERED;
        int dereg_over = dereg && now - s->health_changed_ms >= g->health.deregister_grace_ms;
        if (!c->health_from_provider && s->lifecycle == FLEET_IN_SERVICE &&
            (s->health == FLEET_HEALTH_UNHEALTHY || s->consecutive_fail > 0)) {
            cs->failing++;
            cs->down += s->health == FLEET_HEALTH_UNHEALTHY;
        }
        if (!c->health_from_provider && past_grace &&
            (s->health == FLEET_HEALTH_UNHEALTHY || dereg_over ||
             (s->lifecycle == FLEET_PENDING && s->health != FLEET_HEALTH_HEALTHY && !dereg))) {
            cs->unhealthy++;
            cs->replace[cs->n_replace++] = s;
            continue;
        }
        if (dereg) {
            cs->deregistered++; /* live (no substitute launched), not in the load */
            continue;
        }
        if (s->lifecycle == FLEET_IN_SERVICE) {
            cs->in_service++;
            if (policy_load_counts(&g->policy, s->launched_at_ms, now, past_grace) &&
                s->load >= 0 && (c->health_from_provider || s->health == FLEET_HEALTH_HEALTHY)) {
                load_sum += s->load;
                counted++;
            }
        } else {
            cs->pending++;
        }
    }
    cs->avg = counted ? load_sum / counted : -1;
    c->term_unconfirmed = (int)cs->n_retry;
    return 0;
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
        ctl__activity(c, "panic", "started", failing, total, "",
                      "%d of %d instances (%d%%) fail their health checks at once (panic_threshold "
                      "%d%%): replacements stopped",
                      failing, total, failing * 100 / total, th);
    } else if (!panic && c->panic) {
        c->panic_ended_ms = now;
        log_info("group \"%s\": panic over: %d of %d instances fail their checks now; "
                 "replacing again",
                 c->group, failing, total);
        ctl__activity(c, "panic", "ended", failing, total, "",
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

/* Replaces the unhealthy instances the census found (unless the panic rule or the rate limit
   holds them back), and re-sends terminations that did not go through. */
int ctl__leaving(struct ctl *c, const struct census *cs, const struct fleet_slot *s)
{
    if (s->lifecycle == FLEET_TERMINATING || s->lifecycle == FLEET_TERMINATING_WAIT)
        return 1;
    /* census fills replace in snapshot order: the pointers ascend (a binary search, as a
       duty asks this of every slot of a fleet that may have many to replace) */
    size_t lo = 0, hi = cs->n_replace;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cs->replace[mid] == s)
            return 1;
        if (cs->replace[mid] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* the snapshot predates this tick's duties: a hook that ended, or any other termination
       since, shows only in the table (the slot freed or reused, or terminating) */
    struct fleet_slot live;
    if (fleet_read(c->fleet, s->index, &live) != 0 || live.generation != s->generation)
        return 1;
    return live.lifecycle == FLEET_TERMINATING || live.lifecycle == FLEET_TERMINATING_WAIT;
}

void ctl__replace_unhealthy(struct ctl *c, struct census *cs, int64_t now)
{
    const struct group_settings *g = &c->settings;
    /* a partition is not a fleet death: in panic, replace nothing (the unhealthy stay live,
       so nothing is launched for them either); else at most the rate limit's share */
    cs->panic = update_panic(c, cs->failing, cs->down, (int)cs->n - cs->terminating, now);
    if (cs->panic || (c->panic_ended_ms && now - c->panic_ended_ms < g->health.grace_period_ms)) {
        cs->n_replace = 0; /* (the loop above saw the panic's end only from the next tick on) */
    } else if (cs->n_replace > 0) {
        size_t allowed = repl_allowed(c, now);
        if (cs->n_replace > allowed) {
            if (!c->rate_limited)
                log_warn("group \"%s\": %zu unhealthy instances to replace, at most %d a "
                         "minute (max_replacements_per_minute): replacing %zu now",
                         c->group, cs->n_replace, g->health.max_replacements_per_minute, allowed);
            c->rate_limited = 1;
            cs->n_replace = allowed;
        } else {
            c->rate_limited = 0;
        }
    } else {
        c->rate_limited = 0;
    }

    /* suspended: the unhealthy stay, counted as live (nothing is launched for them either) */
    if (cs->n_replace > 0 && (ctl__suspended(c, CTL_PROC_HEALTH_CHECK, (int64_t)cs->n_replace,
                                             "replace", "replacement of %zu unhealthy instance%s",
                                             cs->n_replace, cs->n_replace == 1 ? "" : "s") ||
                              ctl__suspended(c, CTL_PROC_REPLACE_UNHEALTHY, (int64_t)cs->n_replace,
                                             "replace", "replacement of %zu unhealthy instance%s",
                                             cs->n_replace, cs->n_replace == 1 ? "" : "s") ||
                              ctl__suspended(c, CTL_PROC_TERMINATE_REPLACE, (int64_t)cs->n_replace,
                                             "replace", "replacement of %zu unhealthy instance%s",
                                             cs->n_replace, cs->n_replace == 1 ? "" : "s")))
        cs->n_replace = 0;
    /* replace the unhealthy ones past their grace period */
    if (cs->n_replace > 0 && now >= c->terminate_backoff_until) {
        if (g->health.max_replacements_per_minute > 0)
            c->repl_tokens -= (double)cs->n_replace;
        for (size_t i = 0; i < cs->n_replace; i++) {
            const struct fleet_slot *s = cs->replace[i];
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
            ctl__activity(c, "replace", "ok", g->desired_capacity, g->desired_capacity, "",
                          "instance %s %s", s->id, why);
            stats.replacements++;
        }
        ctl__terminate(c, cs->replace, cs->n_replace, now);
    }
    if (cs->n_retry > 0 && now >= c->terminate_backoff_until)
        ctl__terminate(c, cs->retry_term, cs->n_retry, now);
}
