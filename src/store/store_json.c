/*
 * store_json.c - a group's policy and health settings as the JSON text of
 * the SQLite backend's policy and health columns (the etcd backend stores
 * the group module's whole-settings JSON, group_settings_to_json()).
 *
 * Reading is lenient on purpose: a key that is missing takes the policy's
 * default, so that a new policy parameter needs no migration; a value of the
 * wrong type is ignored the same way. Only a document that is not an object
 * (or names an unknown policy type) is refused: the caller reports it as
 * STORE_ECORRUPT.
 */
#include "store/store_impl.h"

#include <string.h>

#include <jansson.h>

#include "common/banned.h"

json_t *store_policy_to_json(const struct policy_settings *p)
{
    return json_pack("{s:s, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:s, s:I, s:s}",
                     "type", policy_type_name(p->type), "up_threshold", p->up_threshold,
                     "down_threshold", p->down_threshold, "up_factor", p->up_factor, "down_factor",
                     p->down_factor, "cooldown_ms", (json_int_t)p->cooldown_ms, "target", p->target,
                     "tolerance", p->tolerance, "scale_down_window_ms",
                     (json_int_t)p->scale_down_window_ms, "evaluation_period_ms",
                     (json_int_t)p->evaluation_period_ms, "lead_ms", (json_int_t)p->lead_ms,
                     "season_ms", (json_int_t)p->season_ms, "steps", p->steps, "warmup_ms",
                     (json_int_t)p->warmup_ms, "schedule", p->schedule);
}

json_t *store_health_to_json(const struct group_health *h)
{
    return json_pack("{s:s, s:I, s:I, s:i, s:i, s:I, s:i, s:i, s:I}", "type", h->type,
                     "interval_ms", (json_int_t)h->interval_ms, "timeout_ms",
                     (json_int_t)h->timeout_ms, "healthy_threshold", h->healthy_threshold,
                     "unhealthy_threshold", h->unhealthy_threshold, "grace_period_ms",
                     (json_int_t)h->grace_period_ms, "panic_threshold", h->panic_threshold,
                     "max_replacements_per_minute", h->max_replacements_per_minute,
                     "deregister_grace_ms", (json_int_t)h->deregister_grace_ms);
}

/* Number member key of obj into *d when present and numeric. */
static void get_num(const json_t *obj, const char *key, double *d)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_number(v))
        *d = json_number_value(v);
}

static void get_i64(const json_t *obj, const char *key, int64_t *i)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        *i = (int64_t)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) >= -9e18 && json_real_value(v) <= 9e18)
        *i = (int64_t)json_real_value(v);
}

static void get_int(const json_t *obj, const char *key, int *i)
{
    int64_t v = *i;
    get_i64(obj, key, &v);
    if (v >= -2147483647 && v <= 2147483647)
        *i = (int)v;
}

int store_policy_from_json(const json_t *o, struct policy_settings *p)
{
    if (!json_is_object(o))
        return -1;
    const char *type = json_string_value(json_object_get(o, "type"));
    int t = type ? policy_type_parse(type) : POLICY_THRESHOLD;
    if (t < 0)
        return -1;
    policy_settings_default(p, t);
    get_num(o, "up_threshold", &p->up_threshold);
    get_num(o, "down_threshold", &p->down_threshold);
    get_num(o, "up_factor", &p->up_factor);
    get_num(o, "down_factor", &p->down_factor);
    get_i64(o, "cooldown_ms", &p->cooldown_ms);
    get_num(o, "target", &p->target);
    get_num(o, "tolerance", &p->tolerance);
    get_i64(o, "scale_down_window_ms", &p->scale_down_window_ms);
    get_i64(o, "evaluation_period_ms", &p->evaluation_period_ms);
    get_i64(o, "lead_ms", &p->lead_ms);
    get_i64(o, "season_ms", &p->season_ms);
    get_i64(o, "warmup_ms", &p->warmup_ms);
    const char *sched = json_string_value(json_object_get(o, "schedule"));
    if (sched != NULL) {
        if (strlen(sched) >= sizeof(p->schedule))
            return -1;
        memset(p->schedule, 0, sizeof(p->schedule));
        snprintf(p->schedule, sizeof(p->schedule), "%s", sched);
    }
    const char *steps = json_string_value(json_object_get(o, "steps"));
    if (steps != NULL) {
        if (strlen(steps) >= sizeof(p->steps))
            return -1;
        memset(p->steps, 0, sizeof(p->steps));
        snprintf(p->steps, sizeof(p->steps), "%s", steps);
    }
    return 0;
}

int store_health_from_json(const json_t *o, struct group_health *h)
{
    if (!json_is_object(o))
        return -1;
    const char *type = json_string_value(json_object_get(o, "type"));
    snprintf(h->type, sizeof(h->type), "%s", type ? type : "agent");
    get_i64(o, "interval_ms", &h->interval_ms);
    get_i64(o, "timeout_ms", &h->timeout_ms);
    get_int(o, "healthy_threshold", &h->healthy_threshold);
    get_int(o, "unhealthy_threshold", &h->unhealthy_threshold);
    get_i64(o, "grace_period_ms", &h->grace_period_ms);
    /* settings newer than the row: their defaults */
    struct group_settings d;
    group_settings_default(&d, NULL);
    h->panic_threshold = d.health.panic_threshold;
    h->max_replacements_per_minute = d.health.max_replacements_per_minute;
    h->deregister_grace_ms = d.health.deregister_grace_ms;
    get_int(o, "panic_threshold", &h->panic_threshold);
    get_int(o, "max_replacements_per_minute", &h->max_replacements_per_minute);
    get_i64(o, "deregister_grace_ms", &h->deregister_grace_ms);
    return 0;
}

json_t *store_more_to_json(const struct group_settings *g)
{
    static const char *const fixed[] = {"name",   "min_size", "max_size", "desired_capacity",
                                        "policy", "health",   "revision", "updated_at"};
    json_t *o = group_settings_to_json(g);
    for (size_t i = 0; o && i < sizeof(fixed) / sizeof(fixed[0]); i++)
        json_object_del(o, fixed[i]);
    return o;
}

void store_more_from_json(const json_t *o, struct group_settings *g)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        /* one key at a time: one refused value does not lose the others */
        json_t *one = json_pack("{s:O}", k, v);
        struct group_settings t = *g;
        if (one && group_settings_apply_json(&t, one, NULL, 0) == 0)
            *g = t;
        json_decref(one);
    }
}
