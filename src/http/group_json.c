/*
 * group_json.c - group settings to JSON and back, and their validation.
 *
 * PATCH /api/v1/group is the operator's remote control, so it is as strict as
 * the config file: a key we do not know, a number where a string belongs, a
 * fraction where a count belongs is refused with a message that names the key,
 * never silently ignored. Durations travel as the config file writes them
 * ("60s", "2m", "500ms"); a bare number is read as seconds.
 *
 * Pure functions: no I/O, no clock; unit-tested directly and through HTTP.
 */
#include "http/http_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "asgd/conf.h"
#include "common/clock.h"

#include "common/banned.h"

/* Exact duration text: "2m", "60s", or "1500ms" when not whole seconds. */
static void fmt_duration(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 != 0)
        snprintf(buf, len, "%lldms", (long long)ms);
    else
        clk_format_duration(ms, buf, len);
}

static json_t *duration_json(int64_t ms)
{
    char b[32];
    fmt_duration(ms, b, sizeof b);
    return json_string(b);
}

json_t *http__group_to_json(const struct group_settings *g)
{
    const struct policy_settings *p = &g->policy;
    const struct group_health *h = &g->health;
    json_t *policy = json_pack(
        "{s:s, s:f, s:f, s:f, s:f, s:o, s:o, s:f, s:f, s:o}", "type", policy_type_name(p->type),
        "up_threshold", p->up_threshold, "down_threshold", p->down_threshold, "up_factor",
        p->up_factor, "down_factor", p->down_factor, "cooldown", duration_json(p->cooldown_ms),
        "evaluation_period", duration_json(p->evaluation_period_ms), "target", p->target,
        "tolerance", p->tolerance, "scale_down_window", duration_json(p->scale_down_window_ms));
    json_t *health =
        json_pack("{s:s, s:o, s:o, s:i, s:i, s:o}", "type", h->type, "interval",
                  duration_json(h->interval_ms), "timeout", duration_json(h->timeout_ms),
                  "healthy_threshold", h->healthy_threshold, "unhealthy_threshold",
                  h->unhealthy_threshold, "grace_period", duration_json(h->grace_period_ms));
    if (!policy || !health) {
        json_decref(policy);
        json_decref(health);
        return NULL;
    }
    char at[40];
    http__iso8601(g->updated_at_ms, at, sizeof at);
    return json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:I, s:s}", "name", g->name, "min_size",
                     g->min_size, "max_size", g->max_size, "desired_capacity", g->desired_capacity,
                     "policy", policy, "health", health, "revision", (json_int_t)g->revision,
                     "updated_at", at);
}

/* ---- typed readers: each names the key in its message --------------------------------------- */

static int rd_int(const json_t *v, const char *key, int *out, char *err, size_t errlen)
{
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "%s: must be an integer", key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < -1000000000LL || x > 1000000000LL) {
        snprintf(err, errlen, "%s: %lld is out of range", key, (long long)x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int rd_num(const json_t *v, const char *key, double *out, char *err, size_t errlen)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        snprintf(err, errlen, "%s: must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int rd_dur(const json_t *v, const char *key, int64_t *out, char *err, size_t errlen)
{
    if (json_is_string(v)) {
        int64_t ms;
        if (clk_parse_duration(json_string_value(v), &ms)) {
            snprintf(err, errlen, "%s: \"%s\" is not a duration (like \"500ms\", \"30s\", \"2m\")",
                     key, json_string_value(v));
            return -1;
        }
        *out = ms;
        return 0;
    }
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (!isfinite(s) || s < 0 || s > 1e9) {
            snprintf(err, errlen, "%s: must be a non-negative number of seconds", key);
            return -1;
        }
        *out = (int64_t)llround(s * 1000.0);
        return 0;
    }
    snprintf(err, errlen, "%s: must be a duration string (\"30s\") or a number of seconds", key);
    return -1;
}

static int patch_policy(struct policy_settings *p, const json_t *obj, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "policy: must be an object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char key[96];
        snprintf(key, sizeof key, "policy.%s", k);
        int rc;
        if (strcmp(k, "type") == 0) {
            int t = json_is_string(v) ? policy_type_parse(json_string_value(v)) : -1;
            if (t < 0) {
                snprintf(err, errlen, "%s: must be \"threshold\" or \"target\"", key);
                return -1;
            }
            p->type = t;
            rc = 0;
        } else if (strcmp(k, "up_threshold") == 0 || strcmp(k, "scale_up_threshold") == 0)
            rc = rd_num(v, key, &p->up_threshold, err, errlen);
        else if (strcmp(k, "down_threshold") == 0 || strcmp(k, "scale_down_threshold") == 0)
            rc = rd_num(v, key, &p->down_threshold, err, errlen);
        else if (strcmp(k, "up_factor") == 0 || strcmp(k, "scale_up_factor") == 0)
            rc = rd_num(v, key, &p->up_factor, err, errlen);
        else if (strcmp(k, "down_factor") == 0 || strcmp(k, "scale_down_factor") == 0)
            rc = rd_num(v, key, &p->down_factor, err, errlen);
        else if (strcmp(k, "cooldown") == 0)
            rc = rd_dur(v, key, &p->cooldown_ms, err, errlen);
        else if (strcmp(k, "evaluation_period") == 0)
            rc = rd_dur(v, key, &p->evaluation_period_ms, err, errlen);
        else if (strcmp(k, "target") == 0)
            rc = rd_num(v, key, &p->target, err, errlen);
        else if (strcmp(k, "tolerance") == 0)
            rc = rd_num(v, key, &p->tolerance, err, errlen);
        else if (strcmp(k, "scale_down_window") == 0)
            rc = rd_dur(v, key, &p->scale_down_window_ms, err, errlen);
        else {
            snprintf(err, errlen,
                     "unknown key \"%s\" (policy keys: type, up_threshold, down_threshold, "
                     "up_factor, down_factor, cooldown, evaluation_period, target, tolerance, "
                     "scale_down_window)",
                     key);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

static int patch_health(struct group_health *h, const json_t *obj, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "health: must be an object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char key[96];
        snprintf(key, sizeof key, "health.%s", k);
        int rc;
        if (strcmp(k, "type") == 0) {
            const char *t = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(t, "agent") != 0 && strcmp(t, "ec2") != 0) {
                snprintf(err, errlen, "%s: must be \"agent\" or \"ec2\"", key);
                return -1;
            }
            snprintf(h->type, sizeof h->type, "%s", t);
            rc = 0;
        } else if (strcmp(k, "interval") == 0)
            rc = rd_dur(v, key, &h->interval_ms, err, errlen);
        else if (strcmp(k, "timeout") == 0)
            rc = rd_dur(v, key, &h->timeout_ms, err, errlen);
        else if (strcmp(k, "healthy_threshold") == 0)
            rc = rd_int(v, key, &h->healthy_threshold, err, errlen);
        else if (strcmp(k, "unhealthy_threshold") == 0)
            rc = rd_int(v, key, &h->unhealthy_threshold, err, errlen);
        else if (strcmp(k, "grace_period") == 0)
            rc = rd_dur(v, key, &h->grace_period_ms, err, errlen);
        else {
            snprintf(err, errlen,
                     "unknown key \"%s\" (health keys: type, interval, timeout, "
                     "healthy_threshold, unhealthy_threshold, grace_period)",
                     key);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

int http__group_patch(struct group_settings *g, const json_t *patch, int max_cap, char *err,
                      size_t errlen)
{
    if (!json_is_object(patch)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -1;
    }
    if (json_object_size(patch) == 0) {
        snprintf(err, errlen, "nothing to change: the object is empty");
        return -1;
    }
    int has_desired = 0, has_bounds = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        int rc;
        if (strcmp(k, "min_size") == 0) {
            rc = rd_int(v, k, &g->min_size, err, errlen);
            has_bounds = 1;
        } else if (strcmp(k, "max_size") == 0) {
            rc = rd_int(v, k, &g->max_size, err, errlen);
            has_bounds = 1;
        } else if (strcmp(k, "desired_capacity") == 0) {
            rc = rd_int(v, k, &g->desired_capacity, err, errlen);
            has_desired = 1;
        } else if (strcmp(k, "policy") == 0)
            rc = patch_policy(&g->policy, v, err, errlen);
        else if (strcmp(k, "health") == 0)
            rc = patch_health(&g->health, v, err, errlen);
        else if (strcmp(k, "revision") == 0)
            rc = 0; /* the caller's optimistic-locking check */
        else if (strcmp(k, "name") == 0 || strcmp(k, "updated_at") == 0 ||
                 strcmp(k, "in_service") == 0 || strcmp(k, "pending") == 0 ||
                 strcmp(k, "unhealthy") == 0 || strcmp(k, "terminating") == 0) {
            snprintf(err, errlen, "key \"%s\" is read-only", k);
            return -1;
        } else {
            snprintf(err, errlen,
                     "unknown key \"%s\" (settable: min_size, max_size, desired_capacity, "
                     "policy, health)",
                     k);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (has_bounds && !has_desired && g->min_size <= g->max_size) {
        if (g->desired_capacity < g->min_size)
            g->desired_capacity = g->min_size;
        if (g->desired_capacity > g->max_size)
            g->desired_capacity = g->max_size;
    }
    return http__group_validate(g, max_cap, err, errlen);
}

int http__group_validate(const struct group_settings *g, int max_cap, char *err, size_t errlen)
{
    if (g->min_size < 0) {
        snprintf(err, errlen, "min_size: %d must not be negative", g->min_size);
        return -1;
    }
    if (g->max_size < 0) {
        snprintf(err, errlen, "max_size: %d must not be negative", g->max_size);
        return -1;
    }
    if (g->min_size > g->max_size) {
        snprintf(err, errlen, "min_size %d > max_size %d", g->min_size, g->max_size);
        return -1;
    }
    if (max_cap > 0 && g->max_size > max_cap) {
        snprintf(err, errlen, "max_size: %d exceeds the fleet table's capacity of %d instances",
                 g->max_size, max_cap);
        return -1;
    }
    if (g->desired_capacity < g->min_size || g->desired_capacity > g->max_size) {
        snprintf(err, errlen, "desired_capacity %d is outside [min_size %d, max_size %d]",
                 g->desired_capacity, g->min_size, g->max_size);
        return -1;
    }
    /* everything else exactly as the config file is checked */
    const char *sec = NULL, *key = NULL;
    char why[384];
    if (conf_validate_group(g, &sec, &key, why, sizeof why)) {
        static const char *const alias[][2] = {{"scale_up_threshold", "up_threshold"},
                                               {"scale_down_threshold", "down_threshold"},
                                               {"scale_up_factor", "up_factor"},
                                               {"scale_down_factor", "down_factor"}};
        for (size_t i = 0; key && i < sizeof alias / sizeof alias[0]; i++)
            if (strcmp(key, alias[i][0]) == 0)
                key = alias[i][1];
        if (sec && key && strcmp(sec, "group") != 0)
            snprintf(err, errlen, "%s.%s: %s", sec, key, why);
        else if (key)
            snprintf(err, errlen, "%s: %s", key, why);
        else
            snprintf(err, errlen, "%s", why);
        return -1;
    }
    return 0;
}

static void diff_add(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void diff_add(char *out, size_t outlen, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 3 >= outlen)
        return;
    if (used) {
        snprintf(out + used, outlen - used, ", ");
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, outlen - used, fmt, ap);
    va_end(ap);
}

void http__group_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                      size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
#define DI(field, name)                                                                            \
    if (a->field != b->field)                                                                      \
    diff_add(out, outlen, "%s %d -> %d", name, (int)a->field, (int)b->field)
#define DD(field, name)                                                                            \
    if (a->field != b->field)                                                                      \
    diff_add(out, outlen, "%s %g -> %g", name, (double)a->field, (double)b->field)
#define DT(field, name)                                                                            \
    if (a->field != b->field) {                                                                    \
        char x_[32], y_[32];                                                                       \
        fmt_duration(a->field, x_, sizeof x_);                                                     \
        fmt_duration(b->field, y_, sizeof y_);                                                     \
        diff_add(out, outlen, "%s %s -> %s", name, x_, y_);                                        \
    }
    DI(min_size, "min_size");
    DI(max_size, "max_size");
    DI(desired_capacity, "desired_capacity");
    if (a->policy.type != b->policy.type)
        diff_add(out, outlen, "policy.type %s -> %s", policy_type_name(a->policy.type),
                 policy_type_name(b->policy.type));
    DD(policy.up_threshold, "policy.up_threshold");
    DD(policy.down_threshold, "policy.down_threshold");
    DD(policy.up_factor, "policy.up_factor");
    DD(policy.down_factor, "policy.down_factor");
    DT(policy.cooldown_ms, "policy.cooldown");
    DT(policy.evaluation_period_ms, "policy.evaluation_period");
    DD(policy.target, "policy.target");
    DD(policy.tolerance, "policy.tolerance");
    DT(policy.scale_down_window_ms, "policy.scale_down_window");
    if (strcmp(a->health.type, b->health.type) != 0)
        diff_add(out, outlen, "health.type %s -> %s", a->health.type, b->health.type);
    DT(health.interval_ms, "health.interval");
    DT(health.timeout_ms, "health.timeout");
    DI(health.healthy_threshold, "health.healthy_threshold");
    DI(health.unhealthy_threshold, "health.unhealthy_threshold");
    DT(health.grace_period_ms, "health.grace_period");
#undef DI
#undef DD
#undef DT
    if (!out[0])
        snprintf(out, outlen, "no change");
}
