/*
 * ctl_cloud.c - the controller's provider calls (see ctl_int.h).
 *
 * Crash safety: a launch is first written down as an intent with a fresh
 * token, then sent to the provider with that token; an intent still open
 * after a crash is re-sent with the same token, which the provider answers
 * with the instances of the first call. Membership is re-read from the
 * provider at start (ctl_reconcile), so a restart adopts what runs and
 * forgets what vanished, and never launches because it restarted.
 */
#include "controller/ctl_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/stats.h"
#include "provider/provider.h"

#include "common/banned.h"

/* "asgd-<launch config>-<random>" (or "asgd-<random>" without one): see ctl_deps.launch_config */
static int new_token(const struct ctl *c, char *buf, size_t size)
{
    unsigned char raw[12];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    int off = c->launch_config[0] ? snprintf(buf, size, "asgd-%s-", c->launch_config)
                                  : snprintf(buf, size, "asgd-");
    for (size_t i = 0; i < sizeof(raw) && (size_t)off + 3 <= size; i++)
        off += snprintf(buf + off, size - (size_t)off, "%02x", raw[i]);
    return 0;
}

void ctl__token_launch_config(const char *token, char *out, size_t len)
{
    const char *p = token && strncmp(token, "asgd-", 5) == 0 ? token + 5 : NULL;
    const char *dash = p ? strchr(p, '-') : NULL;
    if (dash == NULL || len == 0) {
        if (len)
            out[0] = '\0';
        return;
    }
    size_t n = (size_t)(dash - p);
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
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

int ctl__track(struct ctl *c, const struct prov_instance *pi)
{
    uint32_t idx;
    int rc = fleet_alloc(c->fleet, pi->id, pi->address, pi->launched_at_ms, &idx);
    if (rc == FLEET_EEXIST)
        return 1;
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
    /* a row from before a restart keeps the instance's wait, standby or protection */
    struct store_instance prev;
    int had = store_get_instance(c->store, pi->id, &prev) == 0 && prev.terminated_at_ms == 0;
    store_instance_from(c, pi, "pending");
    if (had)
        ctl__restore(c, pi->id, &prev);
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

int ctl__set_lifecycle(struct ctl *c, const struct fleet_slot *s, int lifecycle, int64_t now)
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

size_t ctl__snapshot(struct ctl *c)
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
            ctl__activity(c, "error", "failed", 0, 0, msg, "%s failed: %s", what,
                          prov_strerror(rc));
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
        ctl__activity(c, "error", "failed", 0, 0, msg, "%s failed: insufficient capacity", what);
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
    if (!ctl__may_act(c))
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
        if (ctl__track(c, &got.items[i]) == 0)
            ctl__launched(c, got.items[i].id, now); /* launch hook, protect_new_instances */
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
int ctl__launch(struct ctl *c, int count, int64_t now, const char *why)
{
    char token[48];
    if (c->retry_token[0]) {
        snprintf(token, sizeof(token), "%s", c->retry_token);
        count = c->retry_count;
    } else {
        if (new_token(c, token, sizeof(token)) != 0)
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
    ctl__activity(c, "launch", rc == 0 ? "ok" : (rc == PROV_ERETRY ? "retrying" : "failed"), 0,
                  count, rc == 0 ? "" : provider_errmsg(c->prov), "launch %d instance%s: %s", count,
                  count == 1 ? "" : "s", why);
    return rc;
}

/* Terminates the slots given; frees the ones the provider confirmed. */
int ctl__terminate(struct ctl *c, const struct fleet_slot *const *victims, size_t n, int64_t now)
{
    if (n == 0)
        return 0;
    const char **ids = calloc(n, sizeof(*ids));
    const struct fleet_slot **go = calloc(n, sizeof(*go));
    if (ids == NULL || go == NULL) {
        free(ids);
        free(go);
        return -1;
    }
    /* a terminate hook holds new victims in terminating:wait (ctl_life.c) */
    n = ctl__hold_for_hook(c, victims, n, go, now);
    victims = go;
    for (size_t i = 0; i < n; i++) {
        ids[i] = victims[i]->id;
        ctl__set_lifecycle(c, victims[i], FLEET_TERMINATING, now);
    }
    if (n == 0 || !ctl__may_act(c)) {
        free(ids);
        free(go);
        return n == 0 ? 0 : PROV_ERETRY;
    }
    int rc = provider_terminate(c->prov, ids, n);
    stats_count_provider(STATS_OP_TERMINATE, stats_result_of(rc));
    free(ids);
    if (rc != 0) {
        provider_failed(c, "terminate", rc, now, &c->terminate_backoff_until);
        free(go);
        return rc;
    }
    provider_ok(c, 1);
    for (size_t i = 0; i < n; i++) {
        log_info("terminated instance \"%s\" of group \"%s\"", victims[i]->id, c->group);
        forget_instance(c, victims[i], now);
    }
    stats.terminated_instances += n;
    free(go);
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
int ctl__sync(struct ctl *c, int64_t now, int strict)
{
    struct prov_list live = PROV_LIST_INIT;
    if (!ctl__may_act(c))
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
    size_t n = ctl__snapshot(c);
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
                ctl__activity(c, "forget", "ok", 0, 0, "",
                              "instance %s vanished: the provider no longer lists it", s->id);
            }
            forget_instance(c, s, now);
        } else if (k >= 0 && live.items[k].state == PROV_STOPPING &&
                   s->lifecycle != FLEET_TERMINATING) {
            log_warn("instance \"%s\" of group \"%s\" is shutting down behind our back", s->id,
                     c->group);
            ctl__set_lifecycle(c, s, FLEET_TERMINATING, now);
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
            int trc = ctl__may_act(c) ? provider_terminate(c->prov, &id, 1) : PROV_ERETRY;
            stats_count_provider(STATS_OP_TERMINATE, stats_result_of(trc));
            log_warn("terminating stopped instance \"%s\" of group \"%s\"%s", pi->id, c->group,
                     trc == 0 ? "" : ": failed, will retry at the next start");
            if (trc == 0)
                ctl__activity(c, "terminate", "ok", 0, 0, "",
                              "instance %s was found stopped at start: terminated", pi->id);
            continue;
        }
        if (pi->state == PROV_GONE || pi->state == PROV_STOPPING)
            continue;
        if (fleet_find(c->fleet, pi->id, &idx) == 0)
            continue;
        if (ctl__track(c, pi) == 0 && fleet_find(c->fleet, pi->id, &idx) == 0) {
            struct fleet_slot s;
            if (fleet_read(c->fleet, idx, &s) == 0)
                fleet_update(c->fleet, idx, s.generation, adopt_fn, NULL);
            log_info("adopted running instance \"%s\" at %s into group \"%s\"", pi->id, pi->address,
                     c->group);
            ctl__activity(c, "adopt", "ok", 0, 0, "", "adopted running instance %s", pi->id);
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
    int rc = ctl__sync(c, now, 1);
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
