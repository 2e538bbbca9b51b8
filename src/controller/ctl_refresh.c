/*
 * ctl_refresh.c - the instance refresh (issue 12 item 5,
 * docs/instance-refresh.md): instances whose launch configuration differs
 * from the group's current one (c->launch_config) are replaced in batches,
 * never leaving fewer healthy in-service instances than min_healthy_percentage
 * of desired, pausing at checkpoints.
 *
 * It stands on max_instance_lifetime's mechanism (ctl_lifetime.c): c->surge
 * asks convergence for extra instances where max_size leaves room (launch
 * first), and old instances are terminated only while the healthy count
 * stays at or above the floor (terminate first within it: convergence then
 * launches their replacements). A new instance counts as healthy only
 * instance_warmup after it entered service. The state lives in the group's
 * settings (refresh.h); each tick re-counts the old instances from the store
 * rows' launch tokens, so a restarted asgd continues where it was.
 */
#include "controller/ctl_int.h"
#include "controller/refresh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "group/group.h"

#include "common/banned.h"

static int older_first(const void *pa, const void *pb)
{
    const struct fleet_slot *a = *(const struct fleet_slot *const *)pa;
    const struct fleet_slot *b = *(const struct fleet_slot *const *)pb;
    return a->launched_at_ms < b->launched_at_ms ? -1 : a->launched_at_ms > b->launched_at_ms;
}

/* Writes *r into the stored settings when it changed (the revision guards an API edit made
   meanwhile: the write is then dropped and the next tick works from the new state). */
static void save(struct ctl *c, struct refresh *r, int64_t now)
{
    char text[GROUP_REFRESH_MAX];
    r->updated_ms = now;
    if (refresh_format(r, text, sizeof(text)) != 0)
        return;
    struct refresh old;
    if (refresh_parse(c->settings.instance_refresh, &old) == 0) {
        old.updated_ms = now;
        char prev[GROUP_REFRESH_MAX];
        if (refresh_format(&old, prev, sizeof(prev)) == 0 && strcmp(prev, text) == 0)
            return;
    }
    struct group_settings g = c->settings;
    snprintf(g.instance_refresh, sizeof(g.instance_refresh), "%s", text);
    int64_t rev;
    int rc = store_put_settings(c->store, &g, c->settings.revision, &rev);
    if (rc == 0) {
        c->settings = g;
        c->settings.revision = rev;
    } else if (rc != STORE_ECONFLICT) {
        log_warn("group \"%s\": cannot store the instance refresh's state: %s", c->group,
                 store_errmsg(c->store));
    }
}

static const char *row_token(const struct store_instance *rows, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].id, id) == 0)
            return rows[i].launch_token;
    return NULL;
}

void ctl__refresh(struct ctl *c, struct census *cs, int64_t now)
{
    const struct group_settings *g = &c->settings;
    struct refresh r;
    /* before the first describe the adopted instances are not all tracked: counting them then
       would find nothing to replace */
    if (g->instance_refresh[0] == '\0' || c->reconciled_ms == 0)
        return;
    if (refresh_parse(g->instance_refresh, &r) != 0 ||
        (r.status != REFRESH_PENDING && r.status != REFRESH_IN_PROGRESS &&
         r.status != REFRESH_ROLLBACK_IN_PROGRESS))
        return;
    int rollback = r.status == REFRESH_ROLLBACK_IN_PROGRESS;
    if (rollback && !r.rb_counted && strcmp(r.from, c->launch_config) != 0) {
        /* asgd keeps no copy of the previous launch settings: the operator restores them */
        snprintf(r.reason, sizeof(r.reason),
                 "waiting for the previous launch settings (launch config %.16s): restore them "
                 "and reload",
                 r.from);
        save(c, &r, now);
        return;
    }
    if (c->launch_config[0] == '\0') {
        r.status = REFRESH_FAILED;
        snprintf(r.reason, sizeof(r.reason), "the provider gives no launch configuration");
        ctl__activity(c, "refresh", "failed", g->desired_capacity, g->desired_capacity, "",
                      "instance refresh failed: %s", r.reason);
        save(c, &r, now);
        return;
    }
    struct store_instance *rows = NULL;
    size_t n_rows = 0;
    if (store_list_instances(c->store, c->group, 0, &rows, &n_rows) != 0) {
        log_warn("group \"%s\": instance refresh: cannot list instances: %s", c->group,
                 store_errmsg(c->store));
        return;
    }
    const struct fleet_slot **old = calloc(cs->n ? cs->n : 1, sizeof(*old));
    const struct fleet_slot **go = calloc(cs->n ? cs->n : 1, sizeof(*go));
    if (old == NULL || go == NULL)
        goto out;
    size_t n_old = 0, n_go = 0;
    int healthy = 0, warming = 0, left = 0, present = 0;
    char from[REFRESH_LC_MAX] = "";
    for (size_t i = 0; i < cs->n; i++) {
        const struct fleet_slot *s = &c->snap[i];
        /* an instance the health duty replaces this tick is gone already (the snapshot
           predates it); one without a live store row was just terminated or not yet written:
           neither is counted, or it would be "old" and terminated twice */
        if (s->lifecycle == FLEET_STANDBY || ctl__leaving(c, cs, s))
            continue;
        const char *tok = row_token(rows, n_rows, s->id);
        if (tok == NULL)
            continue;
        present++;
        char lc[REFRESH_LC_MAX];
        ctl__token_launch_config(tok, lc, sizeof(lc));
        int is_old = strcmp(lc, c->launch_config) != 0;
        int ok = s->lifecycle == FLEET_IN_SERVICE &&
                 (c->health_from_provider || s->health == FLEET_HEALTH_HEALTHY);
        if (ok && !is_old && now - s->in_service_at_ms < r.warmup_ms) {
            ok = 0; /* warming up: not counted yet */
            warming++;
        } else if (!ok && !is_old) {
            warming++;
        }
        healthy += ok;
        if (is_old && !s->protect) { /* protected instances are left alone (documented) */
            left++;
            if (from[0] == '\0')
                snprintf(from, sizeof(from), "%s", lc[0] ? lc : "unknown");
            if (ok)
                old[n_old++] = s;
            else
                go[n_go++] = s; /* not healthy: replacing it costs no healthy capacity */
        }
    }
    if (r.status == REFRESH_PENDING) {
        r.status = REFRESH_IN_PROGRESS;
        r.total = left;
        snprintf(r.target, sizeof(r.target), "%s", c->launch_config);
        snprintf(r.from, sizeof(r.from), "%s", from);
        ctl__activity(c, "refresh", "ok", g->desired_capacity, g->desired_capacity, "",
                      "instance refresh started: %d instance%s to replace (launch config %s → "
                      "%s), min healthy %d %%",
                      left, left == 1 ? "" : "s", from[0] ? from : "-", c->launch_config,
                      r.min_healthy);
    }
    if (rollback && !r.rb_counted) {
        /* the previous launch settings are back: the new config's instances go */
        snprintf(r.from, sizeof(r.from), "%s", r.target);
        snprintf(r.target, sizeof(r.target), "%s", c->launch_config);
        r.rb_counted = 1;
        r.total = left;
        r.next_checkpoint = r.n_checkpoints; /* a rollback does not pause */
        r.reason[0] = '\0';
        ctl__activity(c, "refresh", "ok", g->desired_capacity, g->desired_capacity, "",
                      "instance refresh rollback: %d instance%s of launch config %s to replace "
                      "by launch config %s",
                      left, left == 1 ? "" : "s", r.from, r.target);
    }
    if (strcmp(r.target, c->launch_config) != 0) {
        /* the launch settings changed again mid-way: the new ones are rolled out */
        snprintf(r.target, sizeof(r.target), "%s", c->launch_config);
        if (left > r.total)
            r.total = left;
    }
    r.left = left;
    int pct = refresh_percent(&r);
    /* a batch is done when its replacements are launched and warmed up */
    int settled = warming == 0 && present >= g->desired_capacity;
    if (left == 0 && settled) {
        r.status = rollback ? REFRESH_ROLLED_BACK : REFRESH_SUCCESSFUL;
        ctl__activity(c, "refresh", "ok", g->desired_capacity, g->desired_capacity, "",
                      "instance refresh %s: %d instance%s replaced (launch config %s)",
                      rollback ? "rolled back" : "successful", r.total, r.total == 1 ? "" : "s",
                      r.target);
        save(c, &r, now);
        goto out;
    }
    if (r.next_checkpoint < r.n_checkpoints && pct >= r.checkpoints[r.next_checkpoint] &&
        left > 0 && settled) {
        r.status = REFRESH_PAUSED;
        ctl__activity(c, "refresh", "ok", g->desired_capacity, g->desired_capacity, "",
                      "instance refresh paused at checkpoint %d %% (%d of %d replaced): resume "
                      "to go on",
                      r.checkpoints[r.next_checkpoint], r.total - left, r.total);
        save(c, &r, now);
        goto out;
    }
    save(c, &r, now);
    /* past a checkpoint's percentage but its batch not settled yet: wait for it */
    if (r.next_checkpoint < r.n_checkpoints && pct >= r.checkpoints[r.next_checkpoint])
        goto out;
    if (cs->panic || g->desired_capacity == 0 || group_process_suspended(g, GROUP_PROC_LAUNCH) ||
        group_process_suspended(g, GROUP_PROC_TERMINATE))
        goto out;
    int desired = g->desired_capacity;
    int floor = (desired * r.min_healthy + 99) / 100;
    int batch = desired - floor > 1 ? desired - floor : 1;
    /* launch first where max_size leaves room */
    int room = g->max_size - desired - c->surge;
    int surge = left < batch ? left : batch;
    if (surge > room)
        surge = room > 0 ? room : 0;
    c->surge += surge;
    /* terminate old healthy ones only down to the floor; unhealthy old ones cost nothing */
    int k = healthy - floor;
    if (k > (int)n_old)
        k = (int)n_old;
    if (now < c->terminate_backoff_until)
        goto out;
    if (k > 0) {
        qsort(old, n_old, sizeof(*old), older_first);
        for (int i = 0; i < k; i++)
            go[n_go++] = old[i];
    }
    for (size_t i = 0; i < n_go; i++) {
        int done = r.total - left + (int)i + 1;
        log_info("instance refresh of group \"%s\": replacing \"%s\"", c->group, go[i]->id);
        ctl__activity(c, "replace", "ok", desired, desired, "",
                      "instance refresh%s %d %%: replaced %s (launch config %s → %s)",
                      rollback ? " rollback" : "", r.total ? done * 100 / r.total : 100, go[i]->id,
                      r.from[0] ? r.from : "-", r.target);
    }
    if (n_go > 0)
        ctl__terminate(c, go, n_go, now);
    cs->left += (int)n_go; /* gone for convergence's scale-in (none is standby) */
out:
    free(old);
    free(go);
    store_instances_free(rows);
}
