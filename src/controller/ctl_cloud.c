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

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "group/group_table.h"
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

/* The store row of a provider instance. */
static void store_row_of(struct ctl *c, const struct prov_instance *pi, const char *lifecycle,
                         struct store_instance *out)
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
    *out = si;
}

static void set_pid_fn(struct fleet_slot *s, void *arg)
{
    const struct prov_instance *pi = arg;
    s->pid = pi->pid;
    if (s->address[0] == '\0' && pi->address[0] != '\0')
        snprintf(s->address, sizeof(s->address), "%s", pi->address);
}

/* Puts a provider instance into the fleet table and the store: into *row when not NULL (the
   caller writes a launch's rows in one batch: new instances), else at once, where a row from
   before a restart gives back the instance's wait, standby or protection (ctl__restore).
   Returns 0, 1 when the instance had a slot already (nothing written), or a FLEET_E* code. */
static int track_instance(struct ctl *c, const struct prov_instance *pi, struct store_instance *row)
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
    if (row) {
        store_row_of(c, pi, "pending", row);
        return 0;
    }
    struct store_instance one, prev;
    int had = store_get_instance(c->store, pi->id, &prev) == 0 && prev.terminated_at_ms == 0;
    store_row_of(c, pi, "pending", &one);
    if (store_put_instance(c->store, &one) != 0)
        log_warn("cannot store instance \"%s\": %s", pi->id, store_errmsg(c->store));
    if (had)
        ctl__restore(c, pi->id, &prev);
    return 0;
}

int ctl__track(struct ctl *c, const struct prov_instance *pi)
{
    return track_instance(c, pi, NULL);
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
    if (rc != 0)
        return rc;
    if (c->n_lc_pend == c->lc_pend_cap) {
        size_t cap = c->lc_pend_cap ? 2 * c->lc_pend_cap : 256;
        struct lc_pending *np = realloc(c->lc_pend, cap * sizeof(*np));
        if (np == NULL) { /* no room to defer it: write it now */
            if (store_set_instance_lifecycle(c->store, s->id, fleet_lifecycle_name(lifecycle), 0) !=
                0)
                log_debug("instance \"%s\" lifecycle not stored: %s", s->id,
                          store_errmsg(c->store));
            return 0;
        }
        c->lc_pend = np;
        c->lc_pend_cap = cap;
    }
    struct lc_pending *p = &c->lc_pend[c->n_lc_pend++];
    snprintf(p->id, sizeof(p->id), "%s", s->id);
    p->lifecycle = lifecycle;
    return 0;
}

/* Writes a list of ids with one lifecycle text in one store batch. */
static void store_lifecycles(struct ctl *c, const char *const *ids, size_t n, const char *lc,
                             int64_t terminated_at)
{
    if (n > 0 && store_set_instances_lifecycle(c->store, ids, n, lc, terminated_at) != 0)
        log_warn("lifecycle \"%s\" of %zu instance%s of group \"%s\" not stored: %s", lc, n,
                 n == 1 ? "" : "s", c->group, store_errmsg(c->store));
}

void ctl__flush_lifecycles(struct ctl *c)
{
    if (c->n_lc_pend == 0)
        return;
    const char **ids = calloc(c->n_lc_pend, sizeof(*ids));
    size_t run = 0;
    for (size_t i = 0; i < c->n_lc_pend; i++) {
        const struct lc_pending *p = &c->lc_pend[i];
        if (ids == NULL) { /* out of memory: one by one */
            if (store_set_instance_lifecycle(c->store, p->id, fleet_lifecycle_name(p->lifecycle),
                                             0) != 0)
                log_debug("instance \"%s\" lifecycle not stored", p->id);
            continue;
        }
        /* runs of the same lifecycle in order: a later change of an instance lands later */
        if (run > 0 && c->lc_pend[i - 1].lifecycle != p->lifecycle) {
            store_lifecycles(c, ids, run, fleet_lifecycle_name(c->lc_pend[i - 1].lifecycle), 0);
            run = 0;
        }
        ids[run++] = p->id;
    }
    if (ids != NULL && run > 0)
        store_lifecycles(c, ids, run, fleet_lifecycle_name(c->lc_pend[c->n_lc_pend - 1].lifecycle),
                         0);
    free(ids);
    c->n_lc_pend = 0;
}

/* The instance is gone for good: free its slot, close its store row. */
static void forget_instance(struct ctl *c, const struct fleet_slot *s, int64_t now)
{
    fleet_free(c->fleet, s->index, s->generation);
    ctl__flush_lifecycles(c); /* an earlier change of it must not land after "terminated" */
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

/*
 * The fleet table holds max_size instances: grown here when the stored max_size
 * went up (through the API of this node or another). Called before anything
 * that adds instances to the table. A table that cannot grow is logged once per
 * size; the launches that do not fit fail on a full table and are retried.
 */
static void fit_table(struct ctl *c)
{
    int want = c->settings.max_size;
    if (!c->have_settings) {
        struct group_settings g;
        if (store_get_settings(c->store, c->group, &g) != 0)
            return;
        want = g.max_size;
    }
    if (want == c->fitted_max)
        return;
    char err[256];
    if (group_table_fit(c->fleet, c->group, want, err, sizeof(err)) != 0)
        log_error("%s", err); /* names the group, the size and the cause */
    c->fitted_max = want;
}

int ctl__defer_activity(struct ctl *c, const struct store_activity *a)
{
    if (c->n_act_pend == c->act_pend_cap) {
        size_t cap = c->act_pend_cap ? 2 * c->act_pend_cap : 16;
        struct store_activity *np = realloc(c->act_pend, cap * sizeof(*np));
        if (np == NULL)
            return -1;
        c->act_pend = np;
        c->act_pend_cap = cap;
    }
    c->act_pend[c->n_act_pend++] = *a;
    return 0;
}

void ctl__flush(struct ctl *c)
{
    ctl__flush_lifecycles(c);
    if (c->n_act_pend > 0 && store_activities_add(c->store, c->act_pend, c->n_act_pend) != 0)
        log_warn("cannot record %zu activities of group \"%s\": %s", c->n_act_pend, c->group,
                 store_errmsg(c->store));
    c->n_act_pend = 0;
    if (c->act_pend_cap > 1024) { /* a burst (thousands replaced at once) is not kept */
        free(c->act_pend);
        c->act_pend = NULL;
        c->act_pend_cap = 0;
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
    /* An instance may boot and register before this call returns and its slot exists (a
       local agent does, an EC2 one can): while the table says a launch is in flight,
       MonitorS asks an agent it does not know to retry shortly instead of refusing it. The
       window closes below once every slot of the call exists, so an agent that retries
       after that either finds its slot or was not launched by us. */
    int64_t window = LAUNCH_WINDOW_MS + (int64_t)count * LAUNCH_WINDOW_PER_INSTANCE_MS;
    fleet_set_launching(
        c->fleet, clk_mono_ms() + (window < LAUNCH_WINDOW_MAX_MS ? window : LAUNCH_WINDOW_MAX_MS));
    int rc = provider_launch(c->prov, count, token, &got);
    stats_count_provider(STATS_OP_LAUNCH, stats_result_of(rc));
    if (rc != 0) {
        fleet_set_launching(c->fleet, 0);
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
    /* the rows of the whole call in one store batch: one transaction for 1,000 instances */
    struct store_instance *rows = calloc(got.n ? got.n : 1, sizeof(*rows));
    unsigned char *fresh = calloc(got.n ? got.n : 1, 1); /* tracked now: hooks apply */
    size_t nrows = 0;
    for (size_t i = 0; i < got.n; i++) {
        if (ids)
            ids[i] = got.items[i].id;
        if (got.items[i].launch_token[0] == '\0')
            snprintf(got.items[i].launch_token, sizeof(got.items[i].launch_token), "%s", token);
        if (got.items[i].launched_at_ms == 0)
            got.items[i].launched_at_ms = now;
        int trc = track_instance(c, &got.items[i], rows ? &rows[nrows] : NULL);
        if (trc == 0 && rows)
            nrows++;
        if (fresh)
            fresh[i] = trc == 0;
        log_info("launched instance \"%s\" at %s for group \"%s\"", got.items[i].id,
                 got.items[i].address[0] ? got.items[i].address : "(address pending)", c->group);
    }
    fleet_set_launching(c->fleet, 0); /* every slot of the call exists (or never will) */
    if (nrows > 0 && store_put_instances(c->store, rows, nrows) != 0)
        log_warn("cannot store the %zu instances of launch \"%s\": %s", nrows, token,
                 store_errmsg(c->store));
    free(rows);
    /* after the rows exist: the launch hook's wait and protect_new_instances (ctl_life.c) */
    for (size_t i = 0; fresh && i < got.n; i++)
        if (fresh[i])
            ctl__launched(c, got.items[i].id, now);
    free(fresh);
    stats.launched_instances += got.n;
    if (store_intent_complete(c->store, token, STORE_INTENT_DONE, ids, ids ? got.n : 0) != 0)
        log_warn("cannot close intent \"%s\": %s", token, store_errmsg(c->store));
    free(ids);
    prov_list_release(&got);
    return 0;
}

/* Sends one launch call and records it in the activity log. */
static int send_batch(struct ctl *c, const struct launch_batch *b, int k, int of, int64_t now,
                      const char *why)
{
    int rc = launch_with_token(c, b->token, b->count, now);
    char part[48] = "";
    if (of > 1)
        snprintf(part, sizeof(part), " (call %d of %d)", k, of);
    ctl__activity(c, "launch", rc == 0 ? "ok" : (rc == PROV_ERETRY ? "retrying" : "failed"), 0,
                  b->count, rc == 0 ? "" : provider_errmsg(c->prov), "launch %d instance%s%s: %s",
                  b->count, b->count == 1 ? "" : "s", part, why);
    return rc;
}

/*
 * Launches count instances in calls of at most the provider's size, each call
 * its own intent and token, so progress is made (and written down) call by
 * call. A call that failed transiently may have reached the provider (a
 * timeout after the request left), so its intent stays open and the call is
 * re-sent ALONE with the same token and count before anything new: the
 * provider then answers with what the first call made instead of making more.
 * One failed call leaves the others going; two transient failures in a row
 * (the provider is down or throttling) or a fatal/capacity error stop the
 * rest until the backoff ends. Returns 0, or the first provider error.
 */
int ctl__launch(struct ctl *c, int count, int64_t now, const char *why)
{
    if (!ctl__may_act(c))
        return PROV_ERETRY;
    fit_table(c);
    int max = provider_max_launch(c->prov);
    int first_rc = 0, in_a_row = 0, stop = 0;
    size_t keep = 0, pending = c->n_retries;
    int calls = (int)pending + (count > 0 ? count / max + (count % max != 0) : 0), k = 0;
    for (size_t i = 0; i < pending; i++) {
        struct launch_batch b = c->retries[i];
        count -= b.count; /* in flight: counts toward what was asked */
        int rc = stop ? PROV_ERETRY : send_batch(c, &b, ++k, calls, now, why);
        if (rc == PROV_ERETRY)
            c->retries[keep++] = b;
        if (rc != 0 && first_rc == 0)
            first_rc = rc;
        in_a_row = rc == PROV_ERETRY ? in_a_row + 1 : 0;
        if ((rc != 0 && rc != PROV_ERETRY) || in_a_row >= 2)
            stop = 1;
    }
    c->n_retries = keep;
    while (!stop && count > 0 && c->n_retries < MAX_RETRY_BATCHES) {
        struct launch_batch b;
        b.count = count < max ? count : max;
        if (new_token(c, b.token, sizeof(b.token)) != 0)
            return first_rc ? first_rc : -1;
        if (store_intent_create(c->store, b.token, c->group, b.count, now) != 0) {
            log_error("cannot record launch intent for group \"%s\": %s (not launching)", c->group,
                      store_errmsg(c->store));
            return first_rc ? first_rc : -1;
        }
        count -= b.count;
        int rc = send_batch(c, &b, ++k, calls, now, why);
        if (rc == PROV_ERETRY)
            c->retries[c->n_retries++] = b;
        if (rc != 0 && first_rc == 0)
            first_rc = rc;
        in_a_row = rc == PROV_ERETRY ? in_a_row + 1 : 0;
        if ((rc != 0 && rc != PROV_ERETRY) || in_a_row >= 2)
            stop = 1;
    }
    return first_rc;
}

/* Terminates the slots given in calls of at most the provider's size; frees the ones the
   provider confirmed. A failed call leaves its slots TERMINATING (the census re-sends them
   after the backoff) and the other calls going, unless the error is fatal. */
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
        if (victims[i]->lifecycle != FLEET_TERMINATING) /* (else the census counted it) */
            c->term_unconfirmed++;
        ctl__set_lifecycle(c, victims[i], FLEET_TERMINATING, now);
    }
    if (n == 0 || !ctl__may_act(c)) {
        free(ids);
        free(go);
        return n == 0 ? 0 : PROV_ERETRY;
    }
    /* what led here (a replace, scale-in or hook activity, the TERMINATING state) is in the
       store before the instances go: a reader never sees one gone without its cause */
    ctl__flush(c);
    size_t max = provider_max_terminate(c->prov);
    int first_rc = 0, in_a_row = 0;
    for (size_t off = 0; off < n && in_a_row < 2; off += max) {
        size_t m = n - off < max ? n - off : max;
        int rc = provider_terminate(c->prov, ids + off, m);
        stats_count_provider(STATS_OP_TERMINATE, stats_result_of(rc));
        if (rc != 0) {
            provider_failed(c, "terminate", rc, now, &c->terminate_backoff_until);
            if (first_rc == 0)
                first_rc = rc;
            if (rc == PROV_EFATAL || rc == PROV_ENOMEM)
                break;
            in_a_row++;
            continue;
        }
        in_a_row = 0;
        provider_ok(c, 1);
        c->term_unconfirmed = c->term_unconfirmed > (int)m ? c->term_unconfirmed - (int)m : 0;
        for (size_t i = off; i < off + m; i++) {
            log_info("terminated instance \"%s\" of group \"%s\"", victims[i]->id, c->group);
            fleet_free(c->fleet, victims[i]->index, victims[i]->generation);
        }
        ctl__flush_lifecycles(c); /* "terminating" before "terminated" */
        store_lifecycles(c, ids + off, m, "terminated", now);
        stats.terminated_instances += m;
    }
    free(ids);
    free(go);
    return first_rc;
}

/* ---- reconciliation with the provider ----------------------------------------------------- */

/*
 * Lookups by id during a sync: the provider's list sorted in place and the
 * snapshot's slots as a sorted pointer array, so comparing a fleet of n with a
 * listing of n costs n log n, not n * n (10,000 instances: 10^5 compares
 * instead of 10^8 every describe).
 */
static int cmp_prov_id(const void *a, const void *b)
{
    return strcmp(((const struct prov_instance *)a)->id, ((const struct prov_instance *)b)->id);
}

static int cmp_slot_ptr_id(const void *a, const void *b)
{
    return strcmp((*(const struct fleet_slot *const *)a)->id,
                  (*(const struct fleet_slot *const *)b)->id);
}

/* Index of id in l (sorted by cmp_prov_id), or -1. */
static int find_in(const struct prov_list *l, const char *id)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(l->items[mid].id, id);
        if (d == 0)
            return (int)mid;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Whether id had a slot in the snapshot (sv: n slot pointers sorted by cmp_slot_ptr_id). */
static int in_snapshot(const struct fleet_slot *const *sv, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(sv[mid]->id, id);
        if (d == 0)
            return 1;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
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
    fit_table(c); /* before adopting what runs */
    if (rc != 0) {
        /* never forget instances because the provider could not answer */
        if (rc == PROV_EFATAL)
            provider_failed(c, "describe", rc, now, &c->launch_backoff_until);
        else
            log_warn("describe failed for group \"%s\": %s", c->group, provider_errmsg(c->prov));
        return rc;
    }
    size_t n = ctl__snapshot(c);
    if (live.n > 1)
        qsort(live.items, live.n, sizeof(*live.items), cmp_prov_id);
    const struct fleet_slot **sv = calloc(n ? n : 1, sizeof(*sv));
    if (sv == NULL) {
        prov_list_release(&live);
        log_warn("describe of group \"%s\" not compared: out of memory", c->group);
        return PROV_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        sv[i] = &c->snap[i];
    if (n > 1)
        qsort(sv, n, sizeof(*sv), cmp_slot_ptr_id);
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
        if (pi->state == PROV_STOPPING && strict && !in_snapshot(sv, n, pi->id)) {
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
        if (in_snapshot(sv, n, pi->id))
            continue;
        if (track_instance(c, pi, NULL) == 0 && fleet_find(c->fleet, pi->id, &idx) == 0) {
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
            if (find_in(&live, rows[i].id) < 0 && !in_snapshot(sv, n, rows[i].id))
                if (store_set_instance_lifecycle(c->store, rows[i].id, "terminated", now) != 0)
                    log_debug("cannot close instance row \"%s\"", rows[i].id);
        }
        store_instances_free(rows);
    }
    free(sv);
    prov_list_release(&live);
    ctl__flush(c);
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
    /* A launch window left open by a crash (its deadline bounds it otherwise): what that
       launch made is in the table now, adopted by the sync; a re-sent intent below opens
       its own window. */
    fleet_set_launching(c->fleet, 0);
    /* launches that may have been sent before a crash: re-send with the same token */
    struct store_intent *open = NULL;
    size_t n = 0;
    if (store_intent_list_open(c->store, c->group, &open, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            log_info("resuming launch intent \"%s\" (%d instance%s) of group \"%s\"", open[i].token,
                     open[i].count, open[i].count == 1 ? "" : "s", c->group);
            int lrc = launch_with_token(c, open[i].token, open[i].count, now);
            if (lrc == PROV_ERETRY && c->n_retries < MAX_RETRY_BATCHES) {
                /* re-sent (alone, same token) before any new launch */
                struct launch_batch *b = &c->retries[c->n_retries++];
                snprintf(b->token, sizeof(b->token), "%s", open[i].token);
                b->count = open[i].count;
            }
        }
        store_intents_free(open, n);
    }
    ctl__flush(c);
    return 0;
}
