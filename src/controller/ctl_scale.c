/*
 * ctl_scale.c - the load window, the policy and convergence on desired (see
 * ctl_int.h).
 */
#include "controller/ctl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/stats.h"

#include "common/banned.h"

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

void ctl__window_push(struct ctl *c, int64_t now, double avg)
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

/* Runs the policy on the load window; a new desired capacity is stored and recorded with the
   policy's cause. d: the decision, for the status line. */
void ctl__scale(struct ctl *c, const struct census *cs, int64_t now, struct policy_decision *d)
{
    const struct group_settings *g = &c->settings;
    struct policy_input in = {
        .now_ms = now,
        .min_size = g->min_size,
        .max_size = g->max_size,
        .current = g->desired_capacity,
        .avg_load = window_average(c, now, g->policy.evaluation_period_ms),
    };
    memset(d, 0, sizeof(*d));
    /* in panic the load seen is only the reachable part's: hold the size until it is over */
    if (!cs->panic)
        policy_evaluate(&g->policy, &c->pstate, &in, d);
    if (d->changed && d->desired != g->desired_capacity) {
        int from = g->desired_capacity;
        int64_t rev;
        if (store_set_desired(c->store, c->group, d->desired, &rev) == 0) {
            c->settings.desired_capacity = d->desired;
            c->settings.revision = rev;
            log_info("group \"%s\": %s", c->group, d->cause);
            ctl__activity(c, "scale", "ok", from, d->desired, "", "%s", d->cause);
            if (d->desired > from)
                stats.scale_out_actions++;
            else
                stats.scale_in_actions++;
        } else {
            log_error("cannot store desired %d for group \"%s\": %s", d->desired, c->group,
                      store_errmsg(c->store));
        }
    }
}

/* Launches or terminates to reach the desired capacity; scale-in victims in victim order. */
void ctl__converge(struct ctl *c, const struct census *cs, int64_t now)
{
    int live = (int)cs->n - cs->terminating - (int)cs->n_replace - cs->standby;
    int desired = c->settings.desired_capacity;
    if (live < desired && now >= c->launch_backoff_until) {
        char why[128];
        snprintf(why, sizeof(why), "%d running, desired %d", live, desired);
        ctl__launch(c, desired - live, now, why);
    } else if (live > desired && now >= c->terminate_backoff_until) {
        const struct fleet_slot **cand = calloc(cs->n, sizeof(*cand));
        size_t k = 0;
        if (cand != NULL) {
            for (size_t i = 0; i < cs->n; i++) {
                const struct fleet_slot *s = &c->snap[i];
                int skip = s->lifecycle == FLEET_TERMINATING;
                for (size_t j = 0; j < cs->n_replace && !skip; j++)
                    skip = cs->replace[j] == s;
                if (!skip && k < cs->n)
                    cand[k++] = s;
            }
            k = ctl__scale_in_filter(cand, k); /* protection, standby (ctl_life.c) */
            qsort(cand, k, sizeof(*cand), victim_cmp);
            size_t extra = (size_t)(live - desired);
            if (extra > k)
                extra = k;
            for (size_t i = 0; i < extra; i++)
                ctl__activity(c, "terminate", "ok", live, desired, "",
                              "scale in: %d running, desired %d: terminate %s (%s)", live, desired,
                              cand[i]->id,
                              victim_rank(cand[i]) == 0   ? "unhealthy"
                              : victim_rank(cand[i]) == 1 ? "newest still booting"
                                                          : "oldest in service");
            ctl__terminate(c, cand, extra, now);
            free(cand);
        }
    }
}
