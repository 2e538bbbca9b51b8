/*
 * simulate.c - POST /api/v1/groups/{name}/simulate (and /api/v1/simulate for
 * the single group): the group's current policy and a proposed one over the
 * group's recorded history, side by side (sim_whatif.h).
 *
 * Body: a settings PATCH as for PATCH /api/v1/groups/{name} (min_size,
 * max_size, policy: {...}) describing the proposal, plus optional "since"
 * (a duration, "24h" by default: the store keeps a day), "boot" and "poll"
 * (seconds, 60 and 5). Nothing is changed: the proposal is validated like a
 * PATCH and only simulated. Runs on the daemon's thread (http.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "http/http_int.h"
#include "sim/sim_whatif.h"

#include "common/banned.h"

#define SIM_ROWS 100000

/* "boot"/"poll": whole seconds in [lo, 86400]; absent: def. */
static int seconds(const json_t *v, const char *name, int64_t lo, int64_t def, int64_t *out,
                   struct http_reply *rep)
{
    if (v == NULL) {
        *out = def;
        return 0;
    }
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(x >= (double)lo && x <= 86400) || x != floor(x)) {
        http__error(rep, 400, "invalid request", "%s: must be whole seconds, %lld..86400", name,
                    (long long)lo);
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

void http__post_simulate(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    json_error_t je;
    json_t *body = r->body_len > 0 ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je)
                                   : json_object();
    struct store_metric_group *rows = NULL;
    struct sim_history h;
    memset(&h, 0, sizeof(h));
    json_t *out = NULL;
    char err[512];
    if (!json_is_object(body)) {
        http__error(rep, 400, "invalid request",
                    "the body must be a JSON object (a settings patch, "
                    "\"since\", \"boot\", \"poll\")");
        goto done;
    }
    int64_t boot_s, poll_s, since_ms = 24 * 3600 * 1000LL;
    if (seconds(json_object_get(body, "boot"), "boot", 0, 60, &boot_s, rep) != 0 ||
        seconds(json_object_get(body, "poll"), "poll", 1, 5, &poll_s, rep) != 0)
        goto done;
    const json_t *since = json_object_get(body, "since");
    if (since != NULL &&
        (!json_is_string(since) || clk_parse_duration(json_string_value(since), &since_ms) != 0 ||
         since_ms <= 0)) {
        http__error(rep, 400, "invalid request", "since: must be a duration like \"24h\"");
        goto done;
    }
    json_object_del(body, "boot");
    json_object_del(body, "poll");
    json_object_del(body, "since");

    struct group_settings current, proposed;
    int rc = store_get_settings(s->store, r->group, &current);
    if (rc != 0) {
        http__error(rep, rc == STORE_ENOENT ? 404 : 500, "not found",
                    "group \"%s\": cannot read its settings: %s", r->group, store_errmsg(s->store));
        goto done;
    }
    proposed = current;
    if (json_object_size(body) > 0 &&
        group_settings_patch(&proposed, body, err, sizeof(err)) != 0) {
        http__error(rep, 400, "invalid request", "%s", err);
        goto done;
    }
    size_t n = 0;
    rc = store_metrics_group_since(s->store, r->group, clk_wall_ms() - since_ms, SIM_ROWS, &rows,
                                   &n);
    if (rc != 0) {
        http__error(rep, 500, "internal error", "reading the metric history failed: %s",
                    store_errmsg(s->store));
        goto done;
    }
    if (n == 0) {
        http__error(rep, 409, "no history",
                    "group \"%s\" has no recorded history in the time asked for", r->group);
        goto done;
    }
    if (sim_history_from_rows(rows, n, &h, err, sizeof(err)) != 0 ||
        (out = sim_whatif_json(&current, &proposed, &h, boot_s, poll_s, err, sizeof(err))) ==
            NULL) {
        http__error(rep, 500, "internal error", "simulation failed: %s", err);
        goto done;
    }
    http__json(rep, 200, out);
done:
    sim_history_release(&h);
    free(rows);
    json_decref(body);
}
