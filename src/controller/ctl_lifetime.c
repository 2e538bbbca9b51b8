/*
 * ctl_lifetime.c - [group] max_instance_lifetime: instances older than it
 * are replaced, a few at a time, launching first so the healthy count never
 * drops below desired (see ctl.h).
 *
 * Each tick: the expired instances (not leaving already: terminating,
 * draining or replaced for health this tick; not in standby; launched more
 * than the lifetime ago) are counted; c->surge asks convergence for up to a batch of
 * extra instances (max(1, desired / 10)); once the in-service healthy count
 * exceeds desired, that many expired instances (oldest first) are terminated
 * and recorded as "replace". The surge shrinks with the expired count, so the
 * group ends at desired again. Launch or Terminate suspended: nothing (the
 * suspension is recorded by the duty it holds).
 */
#include "controller/ctl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "group/group.h"

#include "common/banned.h"

static int older_first(const void *pa, const void *pb)
{
    const struct fleet_slot *a = *(const struct fleet_slot *const *)pa;
    const struct fleet_slot *b = *(const struct fleet_slot *const *)pb;
    return a->launched_at_ms < b->launched_at_ms ? -1 : a->launched_at_ms > b->launched_at_ms;
}

void ctl__lifetime(struct ctl *c, struct census *cs, int64_t now)
{
    const struct group_settings *g = &c->settings;
    int64_t life = g->max_instance_lifetime_ms;
    c->surge = 0;
    if (life <= 0 || cs->panic || g->desired_capacity == 0 ||
        group_process_suspended(g, GROUP_PROC_LAUNCH) ||
        group_process_suspended(g, GROUP_PROC_TERMINATE))
        return;
    const struct fleet_slot **old = calloc(cs->n ? cs->n : 1, sizeof(*old));
    if (old == NULL)
        return;
    size_t n_old = 0;
    int healthy = 0;
    for (size_t i = 0; i < cs->n; i++) {
        const struct fleet_slot *s = &c->snap[i];
        /* one the health duty replaced this tick (the snapshot predates it) is neither a
           healthy one nor expired: choosing it again would replace it twice */
        if (ctl__leaving(c, cs, s))
            continue;
        /* standby: out of service (AWS's lifetime counts time in service), kept as the operator
           parked it; it is replaced, if still old, once back (as the refresh does) */
        if (s->lifecycle == FLEET_STANDBY)
            continue;
        int ok = s->lifecycle == FLEET_IN_SERVICE &&
                 (c->health_from_provider || s->health == FLEET_HEALTH_HEALTHY);
        healthy += ok;
        if (now - s->launched_at_ms >= life)
            old[n_old++] = s;
    }
    if (n_old > 0) {
        int batch = g->desired_capacity / 10 > 1 ? g->desired_capacity / 10 : 1;
        c->surge = (int)n_old < batch ? (int)n_old : batch;
        /* the surplus of healthy instances over desired may go: oldest first */
        int k = healthy - g->desired_capacity;
        if (k > (int)n_old)
            k = (int)n_old;
        if (k > 0 && now >= c->terminate_backoff_until) {
            qsort(old, n_old, sizeof(*old), older_first);
            char life_s[32];
            group_format_duration(life, life_s, sizeof(life_s));
            for (int i = 0; i < k; i++) {
                log_info("replacing instance \"%s\" of group \"%s\": older than "
                         "max_instance_lifetime (%s)",
                         old[i]->id, c->group, life_s);
                ctl__activity(c, "replace", "ok", g->desired_capacity, g->desired_capacity, "",
                              "instance %s reached max_instance_lifetime %s (up %" PRId64
                              " s): replaced, %d healthy remain",
                              old[i]->id, life_s, (now - old[i]->launched_at_ms) / 1000,
                              healthy - i - 1);
            }
            ctl__terminate(c, old, (size_t)k, now);
            /* gone for convergence's scale-in, whatever the provider said (a failed call
               leaves them terminating, to be re-sent) */
            cs->left += k;
        }
    }
    free(old);
}
