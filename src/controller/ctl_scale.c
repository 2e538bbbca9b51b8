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
#include "controller/victims.h"

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

/* Runs the policy on the load window; a new desired capacity is stored and recorded with the
   policy's cause. d: the decision, for the status line. */
void ctl__scale(struct ctl *c, const struct census *cs, int64_t now, struct policy_decision *d)
{
    const struct group_settings *g = &c->settings;
    struct policy_input in = {
        .now_ms = now,
        .min_size = g->min_size,
        .max_size = g->max_size,
        /* in service + booting (policy.h), as the simulator counts: not desired_capacity */
        .current = census_live(cs),
        .in_service = cs->in_service,
        .avg_load = window_average(c, now, g->policy.evaluation_period_ms),
    };
    memset(d, 0, sizeof(*d));
    /* in panic the load seen is only the reachable part's: hold the size until it is over;
       while the fleet converges on a desired count set outside the policy (API, a launch
       retried) the policy waits, as it never sees that state in the simulator */
    if (!cs->panic && in.current == g->desired_capacity) {
        /* AlarmNotification suspended: the policy observes the load as usual, but its decision
           is only recorded as skipped and its cooldown does not start (the state holds heap
           memory: restore the one field, never a struct copy) */
        int64_t last_action = c->pstate.last_action_ms;
        policy_evaluate(&g->policy, &c->pstate, &in, d);
        if (d->changed && d->desired != g->desired_capacity &&
            ctl__suspended(c, CTL_PROC_ALARM_NOTIFICATION, d->desired, "scale", "%s", d->cause)) {
            c->pstate.last_action_ms = last_action;
            d->changed = 0;
            size_t len = strlen(d->cause);
            snprintf(d->cause + len, sizeof(d->cause) - len, " (not applied: %s suspended)",
                     GROUP_PROC_ALARM_NOTIFICATION);
        }
    }
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

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_instance *)a)->id, ((const struct store_instance *)b)->id);
}

/* The scale-in candidates (live, not leaving already: ctl__leaving) as victims.h wants them,
   with zone and launch configuration from the instances' store rows. */
static void pick_victims(struct ctl *c, const struct census *cs, int live, int desired, int64_t now)
{
    const struct fleet_slot **slot = calloc((size_t)live, sizeof(*slot));
    struct victim_cand *cand = calloc((size_t)live, sizeof(*cand));
    char(*lc)[LAUNCH_CONFIG_MAX] = calloc((size_t)live, sizeof(*lc));
    size_t *out = calloc((size_t)live, sizeof(*out));
    const char **why = calloc((size_t)live, sizeof(*why));
    struct store_instance *rows = NULL;
    size_t nrows = 0, k = 0;
    if (!slot || !cand || !lc || !out || !why)
        goto out;
    /* one store read per scale-in (not per tick): rows give the zone and the launch token */
    if (store_list_instances(c->store, c->group, 0, &rows, &nrows) != 0)
        nrows = 0;
    if (nrows > 1)
        qsort(rows, nrows, sizeof(*rows), row_cmp);
    for (size_t i = 0; i < cs->n && k < (size_t)live; i++) {
        const struct fleet_slot *s = &c->snap[i];
        /* protected, standby and draining instances are never scale-in victims, nor the
           ones already leaving (terminated by the health, lifetime or refresh duty) */
        if (!ctl__scale_in_candidate(s) || ctl__leaving(c, cs, s))
            continue;
        struct store_instance key;
        memset(&key, 0, sizeof(key));
        snprintf(key.id, sizeof(key.id), "%s", s->id);
        const struct store_instance *row =
            nrows ? bsearch(&key, rows, nrows, sizeof(*rows), row_cmp) : NULL;
        if (row)
            ctl__token_launch_config(row->launch_token, lc[k], sizeof(lc[k]));
        slot[k] = s;
        cand[k] = (struct victim_cand){
            .id = s->id,
            .zone = row ? row->zone : "",
            .launch_config = lc[k],
            .launched_at_ms = s->launched_at_ms,
            .unhealthy =
                s->health == FLEET_HEALTH_UNHEALTHY || s->health == FLEET_HEALTH_DEREGISTERED,
            .booting = s->lifecycle == FLEET_PENDING,
        };
        k++;
    }
    int pol[VICTIMS_MAX_POLICIES];
    struct victims_in in = {
        .policies = pol,
        .n_policies = victims_parse(c->settings.termination_policy, pol, VICTIMS_MAX_POLICIES),
        .launch_config = c->launch_config,
        .now_ms = now,
        .seed = (uint64_t)now,
    };
    int n = victims_choose(&in, cand, k, (size_t)(live - desired), out, why);
    for (int i = 0; i < n; i++) {
        ctl__activity(c, "terminate", "ok", live, desired, "",
                      "scale in: %d running, desired %d: terminate %s (%s; termination_policy %s)",
                      live, desired, slot[out[i]]->id, why[i], c->settings.termination_policy);
    }
    /* the victims in pick order, for one terminate call */
    const struct fleet_slot **victims = calloc(n > 0 ? (size_t)n : 1, sizeof(*victims));
    if (victims) {
        for (int i = 0; i < n; i++)
            victims[i] = slot[out[i]];
        ctl__terminate(c, victims, n > 0 ? (size_t)n : 0, now);
        free(victims);
    }
out:
    store_instances_free(rows);
    free(slot);
    free(cand);
    free(lc);
    free(out);
    free(why);
}

/* Launches or terminates to reach the desired capacity (unless the process is suspended). */
void ctl__converge(struct ctl *c, const struct census *cs, int64_t now)
{
    int live = census_live(cs);
    int desired = c->settings.desired_capacity + c->surge; /* + replacements of expired ones */
    if (live < desired && now >= c->launch_backoff_until) {
        if (ctl__suspended(c, CTL_PROC_LAUNCH, desired, "launch",
                           "launch of %d instance%s (%d "
                           "running, desired %d)",
                           desired - live, desired - live == 1 ? "" : "s", live, desired))
            return;
        /* the ones being terminated still run until the provider confirms it: launching their
           replacements first would take the group past max_size (terminate, then launch) */
        int want = desired - live;
        int room = c->settings.max_size - live - c->term_unconfirmed;
        if (want > room) {
            log_debug("group \"%s\": launching %d of %d: %d terminations not confirmed yet "
                      "(max_size %d)",
                      c->group, room > 0 ? room : 0, want, c->term_unconfirmed,
                      c->settings.max_size);
            want = room;
        }
        if (want <= 0)
            return;
        char why[128];
        snprintf(why, sizeof(why), "%d running, desired %d%s", live, desired,
                 c->surge ? " (replacing instances past max_instance_lifetime)" : "");
        ctl__launch(c, want, now, why);
        return;
    }
    /* the instances the lifetime and refresh duties terminated this tick still count for the
       launches above (those duties pace their replacements through c->surge), not here: a
       scale-in takes only what is left after them, or it would go below desired or pick one of
       them a second time */
    live -= cs->left;
    if (live > desired && now >= c->terminate_backoff_until) {
        if (ctl__suspended(c, CTL_PROC_TERMINATE, desired, "terminate",
                           "scale in of %d instance%s (%d running, desired %d)", live - desired,
                           live - desired == 1 ? "" : "s", live, desired))
            return;
        pick_victims(c, cs, live, desired, now);
    }
}
