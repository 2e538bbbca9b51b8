/*
 * api.c - the endpoints of API v1 about one group (r->group, resolved by
 * routes.c for both /api/v1/groups/{name}/... and the single-group routes).
 *
 * Live state (instances, health, load) comes from the fleet table when this
 * node runs the group, else from its owner's API (proxied, falling back to
 * the store's rows marked "live": false); durable state (settings,
 * activities, history) from the server's store handle.
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
#include "group/group_table.h"
#include "http/http_int.h"

#include "common/banned.h"

#define PATCH_RETRIES      5
#define INSTANCES_PAGE_MAX 1000
#define HISTORY_DEFAULT_MS (15 * 60 * 1000)
#define HISTORY_GROUP_ROWS 5000
#define HISTORY_INST_ROWS  50000

/* ---- helpers ---------------------------------------------------------------------------- */

struct fleet_slot *http__snapshot(struct fleet *f, size_t *n)
{
    /* room for the whole table at once: a second pass over a large table costs more than
       the memory of the unused slots */
    size_t cap = fleet_capacity(f) ? fleet_capacity(f) : 64;
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

static int load_settings(struct http_server *s, const char *group, struct group_settings *g,
                         struct http_reply *rep)
{
    int rc = store_get_settings(s->store, group, g);
    if (rc == STORE_ENOENT) {
        http__error(rep, 503, "not ready",
                    "group \"%s\" has no settings in the store yet (asgd is starting)", group);
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
    clk_iso8601(ms, b, sizeof b);
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

/* Counts of a fleet snapshot, or of the store's rows (lifecycle text). */
struct counts {
    int n, in_service, pending, terminating, unhealthy, with_load, standby, waiting, protect;
    double load_sum;
};

static void count_slots(const struct fleet_slot *slots, size_t n, struct counts *c)
{
    memset(c, 0, sizeof *c);
    c->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (slots[i].lifecycle == FLEET_IN_SERVICE) {
            c->in_service++;
            if (slots[i].load >= 0) {
                c->load_sum += slots[i].load;
                c->with_load++;
            }
        } else if (slots[i].lifecycle == FLEET_PENDING || slots[i].lifecycle == FLEET_PENDING_WAIT)
            c->pending++;
        else if (slots[i].lifecycle == FLEET_TERMINATING ||
                 slots[i].lifecycle == FLEET_TERMINATING_WAIT)
            c->terminating++;
        else if (slots[i].lifecycle == FLEET_STANDBY)
            c->standby++;
        c->waiting += slots[i].lifecycle == FLEET_PENDING_WAIT ||
                      slots[i].lifecycle == FLEET_TERMINATING_WAIT;
        c->protect += slots[i].protect != 0;
        if (slots[i].health == FLEET_HEALTH_UNHEALTHY)
            c->unhealthy++;
    }
}

static void count_rows(const struct store_instance *rows, size_t n, struct counts *c)
{
    memset(c, 0, sizeof *c);
    c->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].lifecycle, fleet_lifecycle_name(FLEET_IN_SERVICE)) == 0)
            c->in_service++;
        else if (strncmp(rows[i].lifecycle, "pending", 7) == 0)
            c->pending++;
        else if (strncmp(rows[i].lifecycle, "terminating", 11) == 0)
            c->terminating++;
        else if (strcmp(rows[i].lifecycle, fleet_lifecycle_name(FLEET_STANDBY)) == 0)
            c->standby++;
        c->waiting += strstr(rows[i].lifecycle, ":wait") != NULL;
        c->protect += rows[i].protect != 0;
    }
}

json_t *http__group_summary(struct http_server *s, const struct group_settings *g,
                            const struct http_group_ref *ref, int have_ref)
{
    json_t *j = http__group_to_json(g);
    if (!j)
        return NULL;
    struct counts c;
    int live = have_ref && ref->fleet;
    if (live) {
        size_t n = 0;
        struct fleet_slot *slots = http__snapshot(ref->fleet, &n);
        if (!slots && n) {
            json_decref(j);
            return NULL;
        }
        count_slots(slots, n, &c);
        free(slots);
    } else {
        struct store_instance *rows = NULL;
        size_t n = 0;
        if (store_list_instances(s->store, g->name, 0, &rows, &n) != 0) {
            rows = NULL;
            n = 0;
        }
        count_rows(rows, n, &c);
        store_instances_free(rows);
    }
    double avg = c.with_load ? c.load_sum / c.with_load : -1;
    json_object_set_new(j, "instances", json_integer(c.n));
    json_object_set_new(j, "in_service", json_integer(c.in_service));
    json_object_set_new(j, "pending", json_integer(c.pending));
    json_object_set_new(j, "terminating", json_integer(c.terminating));
    /* lifecycle (issue 12): standby, hook waits (within pending/terminating), protected */
    json_object_set_new(j, "standby", json_integer(c.standby));
    json_object_set_new(j, "hook_waiting", json_integer(c.waiting));
    json_object_set_new(j, "protected", json_integer(c.protect));
    /* health is known only where the group runs */
    json_object_set_new(j, "unhealthy", live ? json_integer(c.unhealthy) : json_null());
    if (live && ref->ctl) {
        struct ctl_status cs;
        ctl_get_status(ref->ctl, &cs);
        json_object_set_new(j, "average_load", load_json(cs.avg_load >= 0 ? cs.avg_load : avg));
        json_object_set_new(j, "last_decision", json_string(cs.last_decision));
        json_object_set_new(j, "last_tick_at", iso_json(cs.last_tick_ms));
        json_object_set_new(j, "provider_ok", json_boolean(cs.provider_ok));
        /* a likely partition: replacements stopped (issue 11) */
        json_object_set_new(j, "panic",
                            cs.panic
                                ? json_pack("{s:i, s:i, s:i}", "failing", cs.panic_failing, "total",
                                            cs.panic_total, "threshold", cs.panic_threshold)
                                : json_null());
        json_object_set_new(j, "deregistered", json_integer(cs.deregistered));
    } else if (live) {
        json_object_set_new(j, "average_load", load_json(avg));
        json_object_set_new(j, "last_decision", json_null());
        json_object_set_new(j, "last_tick_at", iso_json(fleet_last_heartbeat(ref->fleet, 1)));
        json_object_set_new(j, "provider_ok", json_null());
    } else {
        json_object_set_new(j, "average_load", json_null());
        json_object_set_new(j, "last_decision", json_null());
        json_object_set_new(j, "last_tick_at", json_null());
        json_object_set_new(j, "provider_ok", json_null());
    }
    const char *owner = have_ref && ref->owner_node[0] ? ref->owner_node
                        : live && s->node[0]           ? s->node
                                                       : NULL;
    json_object_set_new(j, "owner_node", owner ? json_string(owner) : json_null());
    json_object_set_new(j, "live", json_boolean(live));
    json_object_set_new(j, "read_only", json_boolean(s->token == NULL));
    return j;
}

/* May this request be forwarded to the group's owner? Not twice: a proxied request stops here. */
static const char *proxy_target(const struct http_req *r)
{
    if (!r->have_ref || r->ref->fleet || !r->ref->owner_api[0])
        return NULL;
    if (http__header(r, HTTP_PROXIED_HEADER))
        return NULL;
    return r->ref->owner_api;
}

/* The group's settings as JSON plus counts (live here, from the owner, or from the store). */
static json_t *group_view(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    struct group_settings g;
    if (load_settings(s, r->group, &g, rep))
        return NULL;
    const char *owner = proxy_target(r);
    char why[512] = "";
    if (owner) {
        struct http_buf path = HTTP_BUF_INIT;
        http__buf_printf(&path, "/api/v1/groups/");
        http__buf_escape(&path, r->group);
        json_t *remote = NULL;
        int rc = path.oom ? -1 : http__proxy_get(s, owner, path.p, &remote, why, sizeof why);
        http__buf_release(&path);
        if (rc == 0 && json_is_object(remote)) {
            json_object_set_new(remote, "read_only", json_boolean(s->token == NULL));
            return remote;
        }
        json_decref(remote);
        log_info("http: owner of group \"%s\" unreachable, answering from the store: %s", r->group,
                 why);
    }
    json_t *j = http__group_summary(s, &g, r->ref, r->have_ref);
    if (!j) {
        http__error(rep, 500, "internal error", "out of memory");
        return NULL;
    }
    if (why[0])
        json_object_set_new(j, "owner_error", json_string(why));
    return j;
}

/* ---- /api/v1/group ---------------------------------------------------------------------- */

void http__get_group(struct http_req *r, struct http_reply *rep)
{
    json_t *j = group_view(r, rep);
    if (j)
        http__json(rep, 200, j);
}

static int patch_edit(struct group_settings *g, const json_t *body, int max_cap, char *err,
                      size_t errlen)
{
    return http__group_patch(g, body, max_cap, err, errlen);
}

void http__change_settings(struct http_req *r, struct http_reply *rep, const json_t *body,
                           const json_t *want_rev, http__settings_edit edit)
{
    struct http_server *s = r->srv;
    /* the size check is the validator's (FLEET_MAX_SIZE); the table grows with max_size below */
    int max_cap = 0;
    struct group_settings old, neu;
    int rc = STORE_ECONFLICT;
    for (int attempt = 0; attempt < PATCH_RETRIES && rc == STORE_ECONFLICT; attempt++) {
        if (load_settings(s, r->group, &old, rep))
            return;
        if (want_rev && json_integer_value(want_rev) != old.revision) {
            http__error(rep, 409, "conflict",
                        "the settings changed since revision %lld (now %lld): read them again",
                        (long long)json_integer_value(want_rev), (long long)old.revision);
            return;
        }
        neu = old;
        char err[512];
        if (edit(&neu, body, max_cap, err, sizeof err)) {
            http__error(rep, 400, "invalid settings", "%s", err);
            return;
        }
        /* the table grows with max_size (the owner of a group run elsewhere grows its own
           when its controller reads the settings): a size it cannot take is refused here,
           in the words the daemon uses at start */
        if (r->ref->fleet &&
            group_table_fit(r->ref->fleet, r->group, neu.max_size, err, sizeof err) != 0) {
            http__error(rep, 400, "invalid settings", "%s", err);
            return;
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
            return;
        }
        if (rc == STORE_EINVAL) {
            http__error(rep, 400, "invalid settings", "%s", store_errmsg(s->store));
            return;
        }
        if (rc && rc != STORE_ECONFLICT) {
            store_fail(rep, s, rc, "saving the group settings");
            return;
        }
        if (rc == 0) {
            struct store_activity a = {0};
            snprintf(a.group, sizeof a.group, "%s", r->group);
            a.at_ms = clk_wall_ms();
            snprintf(a.kind, sizeof a.kind, "settings");
            snprintf(a.cause, sizeof a.cause, "settings changed through the API: %.200s", diff);
            a.from_count = old.desired_capacity;
            a.to_count = neu.desired_capacity;
            snprintf(a.status, sizeof a.status, "ok");
            if (store_activity_add(s->store, &a, NULL))
                log_warn("http: cannot record the settings change of group \"%s\": %s", r->group,
                         store_errmsg(s->store));
            log_info("http: group \"%s\" settings changed through the API: %s", r->group, diff);
            /* here: wake the controller; elsewhere the owner watches the store */
            if (r->ref->ctl)
                ctl_wake(r->ref->ctl);
        }
    }
    if (rc == STORE_ECONFLICT) {
        http__error(rep, 409, "conflict", "the settings kept changing; try again");
        return;
    }
    json_t *j = group_view(r, rep);
    if (j)
        http__json(rep, 200, j);
}

void http__patch_group(struct http_req *r, struct http_reply *rep)
{
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
    if (want_rev && !json_is_integer(want_rev))
        http__error(rep, 400, "invalid settings", "revision: must be an integer");
    else
        http__change_settings(r, rep, patch, want_rev, patch_edit);
    json_decref(patch);
}

/* ---- /api/v1/instances ------------------------------------------------------------------ */

static int cmp_store_inst(const void *a, const void *b)
{
    return strcmp(((const struct store_instance *)a)->id, ((const struct store_instance *)b)->id);
}

/* Bound of one instance's JSON from instance_json(): id and address (< 64 bytes, at most 6
   bytes each escaped) 2 x 380, provider and zone 2 x 188, 26 keys and their punctuation ~340,
   4 reals, 4 integers and 5 dates ~370, the rest < 100; rounded up twice over. */
#define INSTANCE_JSON_MAX 4096

/* The minutes of the dates in one answer, each formatted once ("2026-12-02T10:27:"): the
   five dates of each instance cost a gmtime and a strftime each, 17 % of the unpaged list's
   time at 10,000. Direct-mapped by minute; -1: none yet. */
struct iso_cache {
    int64_t minute[8];
    char prefix[8][17];
};

/* A date as iso_json() gives it (clk_iso8601's text, or null). */
static int buf_iso(struct http_buf *b, struct iso_cache *c, int64_t ms)
{
    if (ms <= 0)
        return HTTP_BUF_LIT(b, "null");
    char t[40];
    int64_t minute = ms / 60000;
    size_t k = (size_t)(minute & 7);
    if (c->minute[k] != minute) {
        clk_iso8601(minute * 60000, t, sizeof t);
        if (strlen(t) != 24) { /* past year 9999: clk_iso8601 decides */
            clk_iso8601(ms, t, sizeof t);
            return http__buf_json_str(b, t);
        }
        memcpy(c->prefix[k], t, sizeof c->prefix[k]);
        c->minute[k] = minute;
    }
    int sec = (int)(ms / 1000 % 60), milli = (int)(ms % 1000);
    t[0] = '"';
    memcpy(t + 1, c->prefix[k], 17);
    t[18] = (char)('0' + sec / 10);
    t[19] = (char)('0' + sec % 10);
    t[20] = '.';
    t[21] = (char)('0' + milli / 100);
    t[22] = (char)('0' + milli / 10 % 10);
    t[23] = (char)('0' + milli % 10);
    t[24] = 'Z';
    t[25] = '"';
    return http__buf_append(b, t, 26);
}

/* A load as load_json() gives it. */
static int buf_load(struct http_buf *b, double v)
{
    return v >= 0 ? http__buf_json_real(b, v) : HTTP_BUF_LIT(b, "null");
}

static int buf_bool(struct http_buf *b, int v)
{
    return v ? HTTP_BUF_LIT(b, "true") : HTTP_BUF_LIT(b, "false");
}

/*
 * Appends one instance from the fleet table (+ provider and zone from its store row: NULL if
 * none) as a JSON object: the one writer of the paged and the unpaged list. Written straight
 * into the answer rather than as a jansson object per instance, which cost ~13 us each (10,000:
 * 130 ms to build, dump and free); the keys, their order and the text are those the jansson
 * object gave (json_dumps JSON_COMPACT | JSON_REAL_PRECISION(12), as http__json). -1: b->oom.
 */
static int instance_json(struct http_buf *b, struct iso_cache *dates, const struct fleet_slot *x,
                         const char *provider, const char *zone)
{
    int rc = HTTP_BUF_LIT(b, "{\"id\":");
    rc |= http__buf_json_str(b, x->id);
    rc |= HTTP_BUF_LIT(b, ",\"address\":");
    rc |= http__buf_json_str(b, x->address);
    rc |= HTTP_BUF_LIT(b, ",\"lifecycle\":");
    rc |= http__buf_json_str(b, fleet_lifecycle_name(x->lifecycle));
    rc |= HTTP_BUF_LIT(b, ",\"health\":");
    rc |= http__buf_json_str(b, fleet_health_name(x->health));
    rc |= HTTP_BUF_LIT(b, ",\"load\":");
    rc |= buf_load(b, x->load);
    rc |= HTTP_BUF_LIT(b, ",\"cpu_pct\":");
    rc |= buf_load(b, x->cpu_pct);
    rc |= HTTP_BUF_LIT(b, ",\"mem_pct\":");
    rc |= buf_load(b, x->mem_pct);
    rc |= HTTP_BUF_LIT(b, ",\"load1\":");
    rc |= buf_load(b, x->load1);
    rc |= HTTP_BUF_LIT(b, ",\"launched_at\":");
    rc |= buf_iso(b, dates, x->launched_at_ms);
    rc |= HTTP_BUF_LIT(b, ",\"launched_at_ms\":");
    rc |= http__buf_json_int(b, (long long)x->launched_at_ms);
    rc |= HTTP_BUF_LIT(b, ",\"in_service_at\":");
    rc |= buf_iso(b, dates, x->in_service_at_ms);
    rc |= HTTP_BUF_LIT(b, ",\"last_seen_at\":");
    rc |= buf_iso(b, dates, x->last_seen_ms);
    rc |= HTTP_BUF_LIT(b, ",\"registered\":");
    rc |= buf_bool(b, x->registered);
    rc |= HTTP_BUF_LIT(b, ",\"app_healthy\":");
    rc |= buf_bool(b, x->app_healthy);
    rc |= HTTP_BUF_LIT(b, ",\"adopted\":");
    rc |= buf_bool(b, x->adopted);
    rc |= HTTP_BUF_LIT(b, ",\"seed_protocol\":");
    rc |= buf_bool(b, x->seed_protocol);
    rc |= HTTP_BUF_LIT(b, ",\"pid\":");
    rc |= http__buf_json_int(b, (long long)x->pid);
    /* as the signed JSON integers they always were */
    rc |= HTTP_BUF_LIT(b, ",\"polls_ok\":");
    rc |= http__buf_json_int(b, (long long)(json_int_t)x->polls_ok);
    rc |= HTTP_BUF_LIT(b, ",\"polls_failed\":");
    rc |= http__buf_json_int(b, (long long)(json_int_t)x->polls_failed);
    rc |= HTTP_BUF_LIT(b, ",\"rtt_ms\":");
    rc |= http__buf_json_real(b, (double)x->last_rtt_us / 1000.0);
    rc |= HTTP_BUF_LIT(b, ",\"live\":true,\"provider\":");
    rc |= http__buf_json_str(b, provider);
    rc |= HTTP_BUF_LIT(b, ",\"zone\":");
    rc |= http__buf_json_str(b, zone);
    /* lifecycle (issue 12): protection, and when a hook wait ends by its timeout */
    rc |= HTTP_BUF_LIT(b, ",\"protected\":");
    rc |= buf_bool(b, x->protect);
    /* since when it has been in its health state: how long an instance has been failing, and
       how fast a death was seen */
    rc |= HTTP_BUF_LIT(b, ",\"health_changed_at\":");
    rc |= buf_iso(b, dates, x->health_changed_ms);
    rc |= HTTP_BUF_LIT(b, ",\"hook_deadline_at\":");
    rc |= buf_iso(b, dates, x->hook_deadline_ms);
    rc |= HTTP_BUF_LIT(b, "}");
    return rc ? -1 : 0;
}

/* Answers the instances as a JSON array. -1 (nothing answered) when out of memory. */
static int instances_reply(struct http_reply *rep, const struct http_page_item *items, size_t n)
{
    struct http_buf b = HTTP_BUF_INIT;
    struct iso_cache dates;
    for (size_t k = 0; k < 8; k++)
        dates.minute[k] = -1;
    b.max = (n + 1) * INSTANCE_JSON_MAX;
    /* ~600 bytes an instance with EC2 ids and IPv4 addresses: one allocation, not a dozen
       copies while doubling */
    int rc = http__buf_reserve(&b, n * 640 + 2) | HTTP_BUF_LIT(&b, "[");
    for (size_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = HTTP_BUF_LIT(&b, ",");
        rc |= instance_json(&b, &dates, &items[i].slot, items[i].provider, items[i].zone);
    }
    rc |= HTTP_BUF_LIT(&b, "]");
    if (rc) {
        http__buf_release(&b);
        return -1;
    }
    rep->status = 200;
    rep->ctype = "application/json";
    rep->body = http__buf_take(&b, &rep->len);
    rep->body_static = 0;
    return 0;
}

/* One instance from the store alone (the owner cannot be asked): no health, no load. */
static json_t *row_json(const struct store_instance *x)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:i, s:s, s:s, s:b}", "id", x->id,
                  "address", x->address, "lifecycle", x->lifecycle, "health", json_null(), "load",
                  json_null(), "launched_at", iso_json(x->launched_at_ms), "in_service_at",
                  json_null(), "launched_at_ms", (json_int_t)x->launched_at_ms, "pid", (int)x->pid,
                  "provider", x->provider, "zone", x->zone, "live", 0);
    if (o)
        json_object_set_new(o, "protected", json_boolean(x->protect));
    return o;
}

/* Paging arguments: limit (0: all) and after (NULL: from the start). -1 and rep set if bad. */
static int paging(struct http_req *r, struct http_reply *rep, long long *limit, const char **after)
{
    *limit = 0;
    *after = http__query(r, "after");
    const char *q = http__query(r, "limit");
    if (q && parse_ll(q, 1, INSTANCES_PAGE_MAX, limit)) {
        http__error(rep, 400, "invalid request", "limit: \"%.64s\" is not an integer in [1, %d]", q,
                    INSTANCES_PAGE_MAX);
        return -1;
    }
    if (*after && (!**after || strlen(*after) >= STORE_ID_MAX)) {
        http__error(rep, 400, "invalid request", "after: must be an instance id (1 to %d bytes)",
                    STORE_ID_MAX - 1);
        return -1;
    }
    return 0;
}

/* Sets the Link header to the next page when the answer was cut at limit. */
static void link_next(struct http_req *r, struct http_reply *rep, long long limit,
                      const char *last_id)
{
    struct http_buf b = HTTP_BUF_INIT;
    http__buf_printf(&b, "<%s?limit=%lld&after=", r->path, limit);
    http__buf_escape(&b, last_id);
    http__buf_printf(&b, ">; rel=\"next\"");
    if (b.oom) {
        http__buf_release(&b);
        return;
    }
    free(rep->link);
    rep->link = http__buf_take(&b, NULL);
}

/* Answers from the store's rows (the group runs elsewhere and its owner cannot be asked). */
static void instances_from_store(struct http_req *r, struct http_reply *rep, long long limit,
                                 const char *after)
{
    struct http_server *s = r->srv;
    struct store_instance *rows = NULL;
    size_t n = 0;
    int rc = store_list_instances(s->store, r->group, 0, &rows, &n);
    if (rc) {
        store_fail(rep, s, rc, "listing the instances");
        return;
    }
    if (limit || after)
        qsort(rows, n, sizeof *rows, cmp_store_inst);
    json_t *arr = json_array();
    const char *last = NULL;
    size_t taken = 0, i = 0;
    for (; arr && i < n; i++) {
        if (after && strcmp(rows[i].id, after) <= 0)
            continue;
        if (limit && taken == (size_t)limit)
            break;
        json_t *o = row_json(&rows[i]);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
            break;
        }
        last = rows[i].id;
        taken++;
    }
    if (arr && limit && i < n && last)
        link_next(r, rep, limit, last);
    store_instances_free(rows);
    if (!arr) {
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    http__json(rep, 200, arr);
}

/* A page of a group this node runs, in id order (pager.c keeps the order between requests). */
static void instances_page(struct http_req *r, struct http_reply *rep, size_t limit,
                           const char *after)
{
    struct fleet *f = r->ref->fleet;
    if (!limit) /* only `after`: the rest of the table */
        limit = fleet_capacity(f) ? fleet_capacity(f) : 1;
    struct http_page_item *items = malloc(limit * sizeof *items);
    size_t n = 0;
    int more = 0;
    if (!items || http__pager_page(r->srv, f, r->group, after, limit, items, &n, &more) ||
        instances_reply(rep, items, n)) {
        free(items);
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    if (more && n)
        link_next(r, rep, (long long)limit, items[n - 1].slot.id);
    free(items);
}

/* Every instance of a group this node runs, in the table's order (the pager keeps provider
   and zone: reading the group's store rows for them cost each list ~10 ms at 10,000). */
static void instances_all(struct http_req *r, struct http_reply *rep)
{
    struct http_page_item *items = NULL;
    size_t n = 0;
    if (http__pager_all(r->srv, r->ref->fleet, r->group, &items, &n) ||
        instances_reply(rep, items, n))
        http__error(rep, 500, "internal error", "out of memory");
    free(items);
}

void http__get_instances(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    long long limit;
    const char *after;
    if (paging(r, rep, &limit, &after))
        return;
    if (!r->ref->fleet) {
        const char *owner = proxy_target(r);
        if (owner) {
            struct http_buf path = HTTP_BUF_INIT;
            http__buf_printf(&path, "/api/v1/groups/");
            http__buf_escape(&path, r->group);
            http__buf_printf(&path, "/instances");
            if (limit)
                http__buf_printf(&path, "?limit=%lld", limit);
            if (after) {
                http__buf_printf(&path, "%safter=", limit ? "&" : "?");
                http__buf_escape(&path, after);
            }
            json_t *remote = NULL;
            char why[512] = "";
            int rc = path.oom ? -1 : http__proxy_get(s, owner, path.p, &remote, why, sizeof why);
            http__buf_release(&path);
            if (rc == 0 && json_is_array(remote)) {
                /* the owner's page; our Link points to our own route */
                size_t k = json_array_size(remote);
                if (limit && k == (size_t)limit) {
                    const char *last =
                        json_string_value(json_object_get(json_array_get(remote, k - 1), "id"));
                    if (last)
                        link_next(r, rep, limit, last);
                }
                http__json(rep, 200, remote);
                return;
            }
            json_decref(remote);
            log_info("http: owner of group \"%s\" unreachable, listing from the store: %s",
                     r->group, why);
        }
        instances_from_store(r, rep, limit, after);
        return;
    }
    if (limit || after)
        instances_page(r, rep, (size_t)limit, after);
    else
        instances_all(r, rep);
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
    char err[256] = "";
    if (!r->ref->fleet) {
        /* another node runs the group: leave the request to it */
        if (!s->ops->request_terminate) {
            http__error(rep, 503, "unavailable",
                        "group \"%s\" is not run by this asgd and it cannot forward a terminate: "
                        "ask its owner%s%s",
                        r->group, r->ref->owner_api[0] ? " at " : "", r->ref->owner_api);
            return;
        }
        int rc =
            s->ops->request_terminate(s->ops_arg, r->group, r->param, decrement, err, sizeof err);
        if (rc) {
            int st = rc == -ENOENT   ? 404
                     : rc == -EINVAL ? 400
                     : rc == -EBUSY  ? 409
                     : rc == -EAGAIN ? 503
                                     : 500;
            http__error(rep, st,
                        st == 404   ? "not found"
                        : st == 400 ? "invalid request"
                        : st == 409 ? "conflict"
                        : st == 503 ? "unavailable"
                                    : "internal error",
                        "%s", err[0] ? err : "the terminate request was refused");
            return;
        }
        log_info("http: terminate of instance \"%s\" of group \"%s\" forwarded to its owner%s",
                 r->param, r->group, decrement ? " (decrementing desired)" : "");
        http__json(rep, 202,
                   json_pack("{s:s, s:s, s:b, s:s}", "id", r->param, "group", r->group,
                             "decrement_desired", decrement, "status",
                             "terminate requested from the owner"));
        return;
    }
    uint32_t idx;
    if (fleet_find(r->ref->fleet, r->param, &idx) != FLEET_OK) {
        http__error(rep, 404, "not found", "group \"%s\" has no instance \"%s\"", r->group,
                    r->param);
        return;
    }
    if (!r->ref->ctl) {
        http__error(rep, 503, "unavailable",
                    "no controller runs in this process: terminate through the controller's asgd");
        return;
    }
    int rc = ctl_request_terminate(r->ref->ctl, r->param, decrement, err, sizeof err);
    if (rc == CTL_ENOENT) {
        http__error(rep, 404, "not found", "group \"%s\" has no instance \"%s\"", r->group,
                    r->param);
        return;
    }
    log_info("http: terminate of instance \"%s\" of group \"%s\" requested through the API%s",
             r->param, r->group, decrement ? " (decrementing desired)" : "");
    http__json(rep, 202,
               json_pack("{s:s, s:s, s:b, s:s}", "id", r->param, "group", r->group,
                         "decrement_desired", decrement, "status", "terminate requested"));
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
    int rc = store_activity_list(s->store, r->group, before, (int)limit, &list, &n);
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
    int rc = store_metrics_group_since(s->store, r->group, since, HISTORY_GROUP_ROWS, &gm, &ng);
    if (rc == 0)
        rc = store_metrics_instance_since(s->store, r->group, NULL, since, HISTORY_INST_ROWS, &im,
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
