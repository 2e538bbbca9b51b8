/*
 * api.c - the endpoints of API v1, /metrics and the health probes.
 *
 * Live state (instances, health, load) comes from the fleet table, durable
 * state (settings, activities, history) from the server's own store handle.
 * Settings edits go through the store with optimistic locking (the controller
 * also writes desired_capacity when it scales): on a revision conflict the
 * patch is re-applied to the fresh settings, so an operator's change to min
 * never undoes a scaling decision made a millisecond earlier.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "http/http_int.h"

#include "common/banned.h"

#define PATCH_RETRIES      5
#define READY_TICK_MAX_MS  10000
#define HISTORY_DEFAULT_MS (15 * 60 * 1000)
#define HISTORY_GROUP_ROWS 5000
#define HISTORY_INST_ROWS  50000

/* ---- helpers ---------------------------------------------------------------------------- */

/* Snapshot of the fleet table into a malloc'd array (*n items); NULL + *n = 0 when empty. */
static struct fleet_slot *snapshot(struct fleet *f, size_t *n)
{
    size_t cap = 64;
    for (;;) {
        struct fleet_slot *a = malloc(cap * sizeof *a);
        if (!a) {
            *n = 0;
            return NULL;
        }
        size_t got = fleet_snapshot(f, a, cap);
        if (got <= cap) {
            *n = got;
            return a;
        }
        free(a);
        cap = got + 16;
    }
}

static void store_fail(struct http_reply *rep, struct http_server *s, int rc, const char *what)
{
    log_warn("http: %s failed: %s", what, store_errmsg(s->store));
    http__error(rep, 500, "internal error", "%s failed: %s (%s)", what, store_strerror(rc),
                store_errmsg(s->store));
}

static int load_settings(struct http_server *s, struct group_settings *g, struct http_reply *rep)
{
    int rc = store_get_settings(s->store, s->group, g);
    if (rc == STORE_ENOENT) {
        http__error(rep, 503, "not ready",
                    "group \"%s\" has no settings in the store yet (asgd is starting)", s->group);
        return -1;
    }
    if (rc) {
        store_fail(rep, s, rc, "reading the group settings");
        return -1;
    }
    return 0;
}

static json_t *iso_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char b[40];
    http__iso8601(ms, b, sizeof b);
    return json_string(b);
}

static json_t *load_json(double v)
{
    return v >= 0 ? json_real(v) : json_null();
}

/* Parses a whole decimal integer; -1 if s is not one. */
static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The group's settings as JSON plus live counts; NULL (and rep set) on failure. */
static json_t *group_view(struct http_server *s, struct http_reply *rep)
{
    struct group_settings g;
    if (load_settings(s, &g, rep))
        return NULL;
    json_t *j = http__group_to_json(&g);
    size_t n = 0;
    struct fleet_slot *slots = snapshot(s->fleet, &n);
    if (!j || (!slots && n)) {
        json_decref(j);
        free(slots);
        http__error(rep, 500, "internal error", "out of memory");
        return NULL;
    }
    int in_service = 0, pending = 0, terminating = 0, unhealthy = 0, with_load = 0;
    double load_sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (slots[i].lifecycle == FLEET_IN_SERVICE) {
            in_service++;
            if (slots[i].load >= 0) {
                load_sum += slots[i].load;
                with_load++;
            }
        } else if (slots[i].lifecycle == FLEET_PENDING)
            pending++;
        else if (slots[i].lifecycle == FLEET_TERMINATING)
            terminating++;
        if (slots[i].health == FLEET_HEALTH_UNHEALTHY)
            unhealthy++;
    }
    free(slots);
    double avg = with_load ? load_sum / with_load : -1;
    json_object_set_new(j, "instances", json_integer((json_int_t)n));
    json_object_set_new(j, "in_service", json_integer(in_service));
    json_object_set_new(j, "pending", json_integer(pending));
    json_object_set_new(j, "terminating", json_integer(terminating));
    json_object_set_new(j, "unhealthy", json_integer(unhealthy));
    if (s->ctl) {
        struct ctl_status cs;
        ctl_get_status(s->ctl, &cs);
        json_object_set_new(j, "average_load", load_json(cs.avg_load >= 0 ? cs.avg_load : avg));
        json_object_set_new(j, "last_decision", json_string(cs.last_decision));
        json_object_set_new(j, "last_tick_at", iso_json(cs.last_tick_ms));
        json_object_set_new(j, "provider_ok", json_boolean(cs.provider_ok));
    } else {
        json_object_set_new(j, "average_load", load_json(avg));
        json_object_set_new(j, "last_decision", json_null());
        json_object_set_new(j, "last_tick_at", iso_json(fleet_last_heartbeat(s->fleet, 1)));
        json_object_set_new(j, "provider_ok", json_null());
    }
    json_object_set_new(j, "read_only", json_boolean(s->token == NULL));
    return j;
}

/* ---- /api/v1/group ---------------------------------------------------------------------- */

void http__get_group(struct http_req *r, struct http_reply *rep)
{
    json_t *j = group_view(r->srv, rep);
    if (j)
        http__json(rep, 200, j);
}

void http__patch_group(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    json_error_t je;
    json_t *patch = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!patch) {
        if (r->body_len == 0)
            http__error(rep, 400, "invalid JSON", "the request has no body: send a JSON object");
        else
            http__error(rep, 400, "invalid JSON", "line %d, column %d: %s", je.line, je.column,
                        je.text);
        return;
    }
    json_t *want_rev = json_object_get(patch, "revision");
    if (want_rev && !json_is_integer(want_rev)) {
        http__error(rep, 400, "invalid settings", "revision: must be an integer");
        goto out;
    }
    int max_cap = (int)fleet_capacity(s->fleet);
    struct group_settings old, neu;
    int rc = STORE_ECONFLICT;
    for (int attempt = 0; attempt < PATCH_RETRIES && rc == STORE_ECONFLICT; attempt++) {
        if (load_settings(s, &old, rep))
            goto out;
        if (want_rev && json_integer_value(want_rev) != old.revision) {
            http__error(rep, 409, "conflict",
                        "the settings changed since revision %lld (now %lld): read them again",
                        (long long)json_integer_value(want_rev), (long long)old.revision);
            goto out;
        }
        neu = old;
        char err[512];
        if (http__group_patch(&neu, patch, max_cap, err, sizeof err)) {
            http__error(rep, 400, "invalid settings", "%s", err);
            goto out;
        }
        char diff[STORE_CAUSE_MAX];
        http__group_diff(&old, &neu, diff, sizeof diff);
        if (strcmp(diff, "no change") == 0) {
            rc = 0;
            break;
        }
        rc = store_put_settings(s->store, &neu, old.revision, NULL);
        if (rc == STORE_ECONFLICT && want_rev) {
            http__error(rep, 409, "conflict", "the settings changed meanwhile: read them again");
            goto out;
        }
        if (rc == STORE_EINVAL) {
            http__error(rep, 400, "invalid settings", "%s", store_errmsg(s->store));
            goto out;
        }
        if (rc && rc != STORE_ECONFLICT) {
            store_fail(rep, s, rc, "saving the group settings");
            goto out;
        }
        if (rc == 0) {
            struct store_activity a = {0};
            snprintf(a.group, sizeof a.group, "%s", s->group);
            a.at_ms = clk_wall_ms();
            snprintf(a.kind, sizeof a.kind, "settings");
            snprintf(a.cause, sizeof a.cause, "settings changed through the API: %.200s", diff);
            a.from_count = old.desired_capacity;
            a.to_count = neu.desired_capacity;
            snprintf(a.status, sizeof a.status, "ok");
            if (store_activity_add(s->store, &a, NULL))
                log_warn("http: cannot record the settings change of group \"%s\": %s", s->group,
                         store_errmsg(s->store));
            log_info("http: group \"%s\" settings changed through the API: %s", s->group, diff);
            if (s->ctl)
                ctl_wake(s->ctl);
        }
    }
    if (rc == STORE_ECONFLICT) {
        http__error(rep, 409, "conflict", "the settings kept changing; try again");
        goto out;
    }
    json_t *j = group_view(s, rep);
    if (j)
        http__json(rep, 200, j);
out:
    json_decref(patch);
}

/* ---- /api/v1/instances ------------------------------------------------------------------ */

static int cmp_store_inst(const void *a, const void *b)
{
    return strcmp(((const struct store_instance *)a)->id, ((const struct store_instance *)b)->id);
}

void http__get_instances(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    size_t n = 0, nstored = 0;
    struct fleet_slot *slots = snapshot(s->fleet, &n);
    json_t *arr = json_array();
    if ((!slots && n) || !arr) {
        free(slots);
        json_decref(arr);
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    /* provider and zone live in the store: one query, then a binary search per instance */
    struct store_instance *stored = NULL;
    if (store_list_instances(s->store, s->group, 0, &stored, &nstored) != 0) {
        stored = NULL;
        nstored = 0;
    }
    if (nstored > 1)
        qsort(stored, nstored, sizeof *stored, cmp_store_inst);
    for (size_t i = 0; i < n; i++) {
        const struct fleet_slot *x = &slots[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:b, s:b, s:b, s:b, "
            "s:i, s:I, s:I, s:f}",
            "id", x->id, "address", x->address, "lifecycle", fleet_lifecycle_name(x->lifecycle),
            "health", fleet_health_name(x->health), "load", load_json(x->load), "cpu_pct",
            load_json(x->cpu_pct), "mem_pct", load_json(x->mem_pct), "load1", load_json(x->load1),
            "launched_at", iso_json(x->launched_at_ms), "launched_at_ms",
            (json_int_t)x->launched_at_ms, "in_service_at", iso_json(x->in_service_at_ms),
            "last_seen_at", iso_json(x->last_seen_ms), "registered", x->registered, "app_healthy",
            x->app_healthy, "adopted", x->adopted, "seed_protocol", x->seed_protocol, "pid",
            (int)x->pid, "polls_ok", (json_int_t)x->polls_ok, "polls_failed",
            (json_int_t)x->polls_failed, "rtt_ms", (double)x->last_rtt_us / 1000.0);
        if (!o || json_array_append_new(arr, o)) {
            free(slots);
            store_instances_free(stored);
            json_decref(arr);
            http__error(rep, 500, "internal error", "out of memory");
            return;
        }
        struct store_instance key;
        memset(&key, 0, sizeof key);
        snprintf(key.id, sizeof key.id, "%s", x->id);
        const struct store_instance *si =
            nstored ? bsearch(&key, stored, nstored, sizeof *stored, cmp_store_inst) : NULL;
        json_object_set_new(o, "provider", si ? json_string(si->provider) : json_null());
        json_object_set_new(o, "zone", si ? json_string(si->zone) : json_null());
    }
    free(slots);
    store_instances_free(stored);
    http__json(rep, 200, arr);
}

void http__post_terminate(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    int decrement = 0;
    if (r->body_len > 0) {
        json_error_t je;
        json_t *b = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!b) {
            http__error(rep, 400, "invalid JSON", "line %d, column %d: %s", je.line, je.column,
                        je.text);
            return;
        }
        if (!json_is_object(b)) {
            json_decref(b);
            http__error(rep, 400, "invalid request", "the body must be a JSON object");
            return;
        }
        const char *k;
        json_t *v;
        json_object_foreach(b, k, v)
        {
            if (strcmp(k, "decrement_desired") != 0) {
                http__error(rep, 400, "invalid request",
                            "unknown key \"%s\" (accepted: decrement_desired)", k);
                json_decref(b);
                return;
            }
            if (!json_is_boolean(v)) {
                http__error(rep, 400, "invalid request",
                            "decrement_desired: must be true or false");
                json_decref(b);
                return;
            }
            decrement = json_is_true(v);
        }
        json_decref(b);
    }
    uint32_t idx;
    if (fleet_find(s->fleet, r->param, &idx) != FLEET_OK) {
        http__error(rep, 404, "not found", "group \"%s\" has no instance \"%s\"", s->group,
                    r->param);
        return;
    }
    if (!s->ctl) {
        http__error(rep, 503, "unavailable",
                    "no controller runs in this process: terminate through the controller's asgd");
        return;
    }
    char err[256] = "";
    int rc = ctl_request_terminate(s->ctl, r->param, decrement, err, sizeof err);
    if (rc == CTL_ENOENT) {
        http__error(rep, 404, "not found", "group \"%s\" has no instance \"%s\"", s->group,
                    r->param);
        return;
    }
    if (rc == CTL_ESTATE) {
        http__error(rep, 409, "conflict", "%s",
                    err[0] ? err : "the instance cannot be terminated now");
        return;
    }
    if (rc == CTL_EINVAL) {
        http__error(rep, 400, "invalid request", "%s", err[0] ? err : "invalid request");
        return;
    }
    if (rc) {
        http__error(rep, 500, "internal error", "%s", err[0] ? err : "terminate request failed");
        return;
    }
    log_info("http: terminate of instance \"%s\" requested through the API%s", r->param,
             decrement ? " (decrementing desired)" : "");
    http__json(rep, 202,
               json_pack("{s:s, s:b, s:s}", "id", r->param, "decrement_desired", decrement,
                         "status", "terminate requested"));
}

/* ---- /api/v1/activities ----------------------------------------------------------------- */

void http__get_activities(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    long long limit = 50, before = 0;
    const char *q = http__query(r, "limit");
    if (q && parse_ll(q, 1, 1000, &limit)) {
        http__error(rep, 400, "invalid request", "limit: \"%s\" is not an integer in [1, 1000]", q);
        return;
    }
    q = http__query(r, "before");
    if (q && parse_ll(q, 1, INT64_MAX, &before)) {
        http__error(rep, 400, "invalid request", "before: \"%s\" is not a positive activity id", q);
        return;
    }
    struct store_activity *list = NULL;
    size_t n = 0;
    int rc = store_activity_list(s->store, s->group, before, (int)limit, &list, &n);
    if (rc) {
        store_fail(rep, s, rc, "reading the activities");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const struct store_activity *a = &list[i];
        json_t *o = json_pack(
            "{s:I, s:o, s:I, s:s, s:s, s:i, s:i, s:s, s:s}", "id", (json_int_t)a->id, "at",
            iso_json(a->at_ms), "at_ms", (json_int_t)a->at_ms, "kind", a->kind, "cause", a->cause,
            "from", a->from_count, "to", a->to_count, "status", a->status, "detail", a->detail);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    store_activities_free(list);
    if (!arr) {
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    http__json(rep, 200, arr);
}

/* ---- /api/v1/metrics/history ------------------------------------------------------------ */

void http__get_history(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    int64_t now = clk_wall_ms();
    int64_t since = now - HISTORY_DEFAULT_MS;
    const char *q = http__query(r, "since");
    if (q) {
        long long v;
        int64_t d;
        if (parse_ll(q, 0, INT64_MAX, &v) == 0)
            since = v; /* epoch milliseconds */
        else if (clk_parse_duration(q, &d) == 0)
            since = now - d; /* "10m": the last ten minutes */
        else {
            http__error(rep, 400, "invalid request",
                        "since: \"%s\" is neither epoch milliseconds nor a duration like \"10m\"",
                        q);
            return;
        }
    }
    struct store_metric_group *gm = NULL;
    struct store_metric_instance *im = NULL;
    size_t ng = 0, ni = 0;
    int rc = store_metrics_group_since(s->store, s->group, since, HISTORY_GROUP_ROWS, &gm, &ng);
    if (rc == 0)
        rc = store_metrics_instance_since(s->store, s->group, NULL, since, HISTORY_INST_ROWS, &im,
                                          &ni);
    if (rc) {
        free(gm);
        store_fail(rep, s, rc, "reading the metric history");
        return;
    }
    json_t *garr = json_array(), *inst = json_object();
    int ok = garr && inst;
    for (size_t i = 0; ok && i < ng; i++) {
        json_t *o = json_pack("{s:I, s:o, s:i, s:i}", "t", (json_int_t)gm[i].at_ms, "avg_load",
                              load_json(gm[i].avg_load), "in_service", gm[i].in_service, "desired",
                              gm[i].desired);
        ok = o && json_array_append_new(garr, o) == 0;
    }
    for (size_t i = 0; ok && i < ni; i++) {
        json_t *series = json_object_get(inst, im[i].instance_id);
        if (!series) {
            series = json_array();
            ok = series && json_object_set_new(inst, im[i].instance_id, series) == 0;
        }
        if (ok) {
            json_t *pt = json_pack("[I, o]", (json_int_t)im[i].at_ms, load_json(im[i].load));
            ok = pt && json_array_append_new(series, pt) == 0;
        }
    }
    free(gm);
    free(im);
    if (!ok) {
        json_decref(garr);
        json_decref(inst);
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    http__json(rep, 200,
               json_pack("{s:I, s:I, s:o, s:o}", "since_ms", (json_int_t)since, "now_ms",
                         (json_int_t)now, "group", garr, "instances", inst));
}

/* ---- /metrics, probes ------------------------------------------------------------------- */

void http__get_metrics(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    struct group_settings g;
    int have = store_get_settings(s->store, s->group, &g) == 0;
    size_t n = 0;
    struct fleet_slot *slots = snapshot(s->fleet, &n);
    struct ctl_status cs;
    if (s->ctl)
        ctl_get_status(s->ctl, &cs);
    struct http_prom_input in = {
        .group = s->group,
        .settings = have ? &g : NULL,
        .slots = slots,
        .n_slots = slots ? n : 0,
        .ctl = s->ctl ? &cs : NULL,
        .stats = &stats,
    };
    struct http_buf b = HTTP_BUF_INIT;
    int rc = http__prom_render(&b, &in);
    free(slots);
    if (rc) {
        http__buf_release(&b);
        http__error(rep, 500, "internal error", "out of memory while rendering metrics");
        return;
    }
    rep->status = 200;
    rep->ctype = "text/plain; version=0.0.4; charset=utf-8";
    rep->body = http__buf_take(&b, &rep->len);
}

void http__get_healthz(struct http_req *r, struct http_reply *rep)
{
    http__json(rep, 200, json_pack("{s:s, s:s}", "status", "ok", "version", ASGD_VERSION));
}

void http__get_readyz(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    struct group_settings g;
    int rc = store_get_settings(s->store, s->group, &g);
    if (rc) {
        http__error(rep, 503, "not ready", "the group settings cannot be read: %s",
                    rc == STORE_ENOENT ? "not seeded yet" : store_errmsg(s->store));
        return;
    }
    int64_t now = clk_wall_ms(), last;
    if (s->ctl) {
        struct ctl_status cs;
        ctl_get_status(s->ctl, &cs);
        last = cs.last_tick_ms;
    } else {
        last = fleet_last_heartbeat(s->fleet, 1);
    }
    if (last <= 0) {
        http__error(rep, 503, "not ready", "the controller has not completed a tick yet");
        return;
    }
    if (now - last > READY_TICK_MAX_MS) {
        http__error(rep, 503, "not ready", "the controller's last tick was %lld ms ago",
                    (long long)(now - last));
        return;
    }
    http__json(rep, 200,
               json_pack("{s:s, s:o}", "status", "ready", "last_tick_at", iso_json(last)));
}
