/*
 * schedule_tick.c - the controller's hook for scheduled actions (schedule.h):
 * apply an entry that fired to the stored settings. Apart from the pure
 * parser in schedule.c so that the validator (and the fuzz targets that link
 * it) need no store.
 */
#include "controller/schedule.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"

#include "common/banned.h"

int sched_tick(struct sched_state *st, struct store *store, const struct group_settings *g,
               int64_t now_ms)
{
    const char *text = g->policy.schedule;
    if (!st->have || strncmp(st->text, text, sizeof(st->text)) != 0) {
        sched_free(st->parsed);
        st->parsed = NULL;
        st->have = 1; /* a schedule that failed is logged once, not every tick */
        snprintf(st->text, sizeof(st->text), "%s", text);
        char err[256];
        st->parsed = sched_parse(text, err, sizeof(err));
        if (st->parsed == NULL) {
            log_error("group \"%s\": schedule not applied: %s", g->name, err);
            st->last_ms = now_ms;
            return -1;
        }
    }
    if (st->parsed == NULL)
        return 0;
    int64_t after = st->last_ms;
    st->last_ms = now_ms;
    struct sched_action a;
    if (after == 0 || !sched_due(st->parsed, after, now_ms, &a))
        return 0;
    struct group_settings n = *g;
    if (a.min_size >= 0)
        n.min_size = a.min_size;
    if (a.max_size >= 0)
        n.max_size = a.max_size;
    if (a.min_size >= 0 && a.max_size < 0 && n.max_size < n.min_size)
        n.max_size = n.min_size;
    if (a.max_size >= 0 && a.min_size < 0 && n.min_size > n.max_size)
        n.min_size = n.max_size;
    if (a.desired >= 0)
        n.desired_capacity = a.desired;
    /* as a PATCH of the bounds: desired follows into the new range */
    if (n.desired_capacity < n.min_size)
        n.desired_capacity = n.min_size;
    if (n.desired_capacity > n.max_size)
        n.desired_capacity = n.max_size;
    if (n.min_size == g->min_size && n.max_size == g->max_size &&
        n.desired_capacity == g->desired_capacity)
        return 0;
    int64_t rev;
    if (store_put_settings(store, &n, g->revision, &rev) != 0) {
        log_warn("group \"%s\": scheduled action \"%s\" not applied: %s", g->name, a.what,
                 store_errmsg(store));
        return -1;
    }
    log_info("group \"%s\": scheduled action \"%s\": min %d, max %d, desired %d", g->name, a.what,
             n.min_size, n.max_size, n.desired_capacity);
    struct store_activity act;
    memset(&act, 0, sizeof(act));
    snprintf(act.group, sizeof(act.group), "%s", g->name);
    act.at_ms = now_ms;
    snprintf(act.kind, sizeof(act.kind), "schedule");
    snprintf(act.status, sizeof(act.status), "ok");
    act.from_count = g->desired_capacity;
    act.to_count = n.desired_capacity;
    snprintf(act.cause, sizeof(act.cause), "scheduled \"%.150s\": min %d -> %d, max %d -> %d",
             a.what, g->min_size, n.min_size, g->max_size, n.max_size);
    if (store_activity_add(store, &act, NULL) != 0)
        log_warn("cannot record activity for group \"%s\": %s", g->name, store_errmsg(store));
    return 1;
}
