/*
 * settings.c - a group's settings: defaults, the key table, THE validator,
 * and their JSON form (to, from, PATCH, diff).
 *
 * Every reader goes through one table (group_keys[]), so a key added there
 * is read from the INI file (conf.c via group_settings_read_cfg()), from the
 * API's JSON and from the store's JSON alike, and the one validator decides
 * what is acceptable for all of them: a setting the file would refuse is
 * refused by the API too, with the same reason.
 */
#include "group/group.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/util.h"
#include "fleet/fleet.h"

#include "common/banned.h"

#define SEC_MS  1000LL
#define HOUR_MS (3600LL * 1000)
#define DAY_MS  (24 * HOUR_MS)

static const char *const policy_types[] = {"threshold", "target", NULL};
static const char *const health_types[] = {"agent", "ec2", NULL};

#define OFF(f) offsetof(struct group_settings, f)
#define SZ(f)  sizeof(((struct group_settings *)0)->f)

/* Ranges are what a single value may be when read (the file reports them at
 * the value's line); how values fit together is group_settings_validate()'s. */
const struct group_key group_keys[] = {
    {"group", "name", "name", GROUP_K_STRING, OFF(name), SZ(name), 1, GROUP_NAME_LEN, NULL,
     "default", "the group's name: 1..48 letters, digits, '-', '_', '.'"},
    {"group", "min_size", "min_size", GROUP_K_INT, OFF(min_size), 0, 0, FLEET_MAX_SIZE, NULL, "1",
     "fewest instances"},
    {"group", "max_size", "max_size", GROUP_K_INT, OFF(max_size), 0, 0, 1000000000, NULL,
     "max(min_size, 1)", "most instances (at most 100000; the fleet table is sized from it)"},
    {"group", "desired_capacity", "desired_capacity", GROUP_K_INT, OFF(desired_capacity), 0, 0,
     1000000000, NULL, "min_size", "instances wanted now (the policy changes it)"},
    {"policy", "type", "type", GROUP_K_ENUM, OFF(policy.type), 0, 0, 0, policy_types, "threshold",
     "scaling policy: threshold | target"},
    {"policy", "scale_up_threshold", "up_threshold", GROUP_K_DOUBLE, OFF(policy.up_threshold), 0, 0,
     100, NULL, "70", "threshold: average load (%) above which the group grows"},
    {"policy", "scale_down_threshold", "down_threshold", GROUP_K_DOUBLE, OFF(policy.down_threshold),
     0, 0, 100, NULL, "20", "threshold: average load (%) below which the group shrinks"},
    {"policy", "scale_up_factor", "up_factor", GROUP_K_DOUBLE, OFF(policy.up_factor), 0, 0, 100,
     NULL, "2", "threshold: growth factor (> 1)"},
    {"policy", "scale_down_factor", "down_factor", GROUP_K_DOUBLE, OFF(policy.down_factor), 0, 0, 1,
     NULL, "0.5", "threshold: share of instances removed (0..1)"},
    {"policy", "cooldown", "cooldown", GROUP_K_DURATION, OFF(policy.cooldown_ms), 0, 0,
     (double)DAY_MS, NULL, "0",
     "threshold: quiet time after a scaling action (0: evaluation_period)"},
    {"policy", "evaluation_period", "evaluation_period", GROUP_K_DURATION,
     OFF(policy.evaluation_period_ms), 0, 100, (double)DAY_MS, NULL, "60s (target: 15s)",
     "how often the policy runs"},
    {"policy", "target", "target", GROUP_K_DOUBLE, OFF(policy.target), 0, 0, 100, NULL, "60",
     "target: average load (%) to hold"},
    {"policy", "tolerance", "tolerance", GROUP_K_DOUBLE, OFF(policy.tolerance), 0, 0, 1, NULL,
     "0.1", "target: relative deviation tolerated without action"},
    {"policy", "scale_down_window", "scale_down_window", GROUP_K_DURATION,
     OFF(policy.scale_down_window_ms), 0, 0, (double)DAY_MS, NULL, "300s",
     "target: a scale-down takes the highest recommendation of this window"},
    {"health", "type", "type", GROUP_K_ENUM, OFF(health.type), SZ(health.type), 0, 0, health_types,
     "agent", "health check: agent (the instance's monitorc) | ec2 (instance status)"},
    {"health", "interval", "interval", GROUP_K_DURATION, OFF(health.interval_ms), 0, 10,
     (double)HOUR_MS, NULL, "2s", "time between health checks"},
    {"health", "timeout", "timeout", GROUP_K_DURATION, OFF(health.timeout_ms), 0, 1,
     (double)HOUR_MS, NULL, "1s", "a check not answered within this fails (< interval)"},
    {"health", "healthy_threshold", "healthy_threshold", GROUP_K_INT, OFF(health.healthy_threshold),
     0, 1, 1000, NULL, "2", "consecutive passes before an instance is in service"},
    {"health", "unhealthy_threshold", "unhealthy_threshold", GROUP_K_INT,
     OFF(health.unhealthy_threshold), 0, 1, 1000, NULL, "3",
     "consecutive failures before an instance is replaced"},
    {"health", "grace_period", "grace_period", GROUP_K_DURATION, OFF(health.grace_period_ms), 0, 0,
     (double)DAY_MS, NULL, "30s", "failed checks are ignored this long after launch"},
    {"health", "panic_threshold", "panic_threshold", GROUP_K_INT, OFF(health.panic_threshold), 0, 0,
     100, NULL, "50",
     "more than this share (%) failing at once is a partition: nothing is replaced (0: off)"},
    {"health", "max_replacements_per_minute", "max_replacements_per_minute", GROUP_K_INT,
     OFF(health.max_replacements_per_minute), 0, 0, 100000, NULL, "10",
     "unhealthy instances replaced per minute at most (0: no limit)"},
    {"health", "deregister_grace", "deregister_grace", GROUP_K_DURATION,
     OFF(health.deregister_grace_ms), 0, 0, (double)DAY_MS, NULL, "30s",
     "a deregistered agent (restarting) is neither counted nor replaced this long"},
};
const size_t group_n_keys = sizeof(group_keys) / sizeof(group_keys[0]);

const struct group_key *group_key_find(const char *section, const char *key, int json)
{
    for (size_t i = 0; i < group_n_keys; i++)
        if (strcmp(group_keys[i].section, section) == 0 &&
            strcmp(json ? group_keys[i].json : group_keys[i].key, key) == 0)
            return &group_keys[i];
    return NULL;
}

int group_name_valid(const char *name)
{
    if (name == NULL)
        return 0;
    size_t n = strlen(name);
    if (n == 0 || n > GROUP_NAME_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

void group_settings_default(struct group_settings *g, const char *name)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name ? name : "default");
    g->min_size = 1;
    g->max_size = 1;
    g->desired_capacity = 1;
    policy_settings_default(&g->policy, POLICY_THRESHOLD);
    snprintf(g->health.type, sizeof(g->health.type), "%s", "agent");
    g->health.interval_ms = 2 * SEC_MS;
    g->health.timeout_ms = 1 * SEC_MS;
    g->health.healthy_threshold = 2;
    g->health.unhealthy_threshold = 3;
    g->health.grace_period_ms = 30 * SEC_MS;
    g->health.panic_threshold = 50;
    g->health.max_replacements_per_minute = 10;
    g->health.deregister_grace_ms = 30 * SEC_MS;
}

void group_format_duration(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 != 0)
        snprintf(buf, len, "%lldms", (long long)ms);
    else
        clk_format_duration(ms, buf, len);
}

/* ---- the validator ------------------------------------------------------------------------ */

/* The reason alone; the caller places it. */
#define FAIL(s, k, ...)                                                                            \
    do {                                                                                           \
        if (sec)                                                                                   \
            *sec = (s);                                                                            \
        if (key)                                                                                   \
            *key = (k);                                                                            \
        util_set_err(err, errlen, __VA_ARGS__);                                                    \
        return -1;                                                                                 \
    } while (0)

static int dur_in(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

int group_settings_validate(const struct group_settings *g, const char **sec, const char **key,
                            char *err, size_t errlen)
{
    char a[32], b[32], c[32];
    /* name is a fixed buffer: a missing NUL is refused, never read past */
    if (memchr(g->name, '\0', sizeof(g->name)) == NULL || !group_name_valid(g->name))
        FAIL("group", "name", "\"%.*s\" is not a valid name (1..%d letters, digits, '-', '_', '.')",
             GROUP_NAME_LEN, g->name, GROUP_NAME_LEN);
    if (g->min_size < 0 || g->min_size > FLEET_MAX_SIZE)
        FAIL("group", "min_size", "%d is out of range (0..%d)", g->min_size, FLEET_MAX_SIZE);
    if (g->max_size < 0)
        FAIL("group", "max_size", "%d is out of range (0..%d)", g->max_size, FLEET_MAX_SIZE);
    if (g->max_size > FLEET_MAX_SIZE)
        FAIL("group", "max_size", "%d exceeds the most instances a group can have (%d)",
             g->max_size, FLEET_MAX_SIZE);
    /* these two reasons name their key themselves: the API has always said it so */
    if (g->min_size > g->max_size)
        FAIL("group", "min_size", "min_size %d > max_size %d", g->min_size, g->max_size);
    if (g->desired_capacity < g->min_size || g->desired_capacity > g->max_size)
        FAIL("group", "desired_capacity",
             "desired_capacity %d is outside [min_size %d, max_size %d]", g->desired_capacity,
             g->min_size, g->max_size);

    const struct policy_settings *p = &g->policy;
    if (p->type != POLICY_THRESHOLD && p->type != POLICY_TARGET)
        FAIL("policy", "type", "unknown policy type %d", p->type);
    if (!(p->up_threshold >= 0 && p->up_threshold <= 100))
        FAIL("policy", "scale_up_threshold", "%g is out of range (0..100)", p->up_threshold);
    if (!(p->down_threshold >= 0 && p->down_threshold <= 100))
        FAIL("policy", "scale_down_threshold", "%g is out of range (0..100)", p->down_threshold);
    if (!(p->down_threshold < p->up_threshold))
        FAIL("policy", "scale_down_threshold", "%g must be below scale_up_threshold (%g)",
             p->down_threshold, p->up_threshold);
    if (!(p->up_factor > 1 && p->up_factor <= 100))
        FAIL("policy", "scale_up_factor", "%g must be greater than 1 (and at most 100)",
             p->up_factor);
    if (!(p->down_factor > 0 && p->down_factor < 1))
        FAIL("policy", "scale_down_factor", "%g must be between 0 and 1 (exclusive)",
             p->down_factor);
    if (!(p->target > 0 && p->target <= 100))
        FAIL("policy", "target", "%g must be above 0 and at most 100", p->target);
    if (!(p->tolerance >= 0 && p->tolerance < 1))
        FAIL("policy", "tolerance", "%g must be at least 0 and below 1", p->tolerance);
    if (!dur_in(p->evaluation_period_ms, 100, DAY_MS)) {
        clk_format_duration(p->evaluation_period_ms, a, sizeof(a));
        FAIL("policy", "evaluation_period", "%s is out of range (100ms..24h)", a);
    }
    if (!dur_in(p->cooldown_ms, 0, DAY_MS)) {
        clk_format_duration(p->cooldown_ms, a, sizeof(a));
        FAIL("policy", "cooldown", "%s is out of range (0s..24h)", a);
    }
    if (!dur_in(p->scale_down_window_ms, 0, DAY_MS)) {
        clk_format_duration(p->scale_down_window_ms, a, sizeof(a));
        FAIL("policy", "scale_down_window", "%s is out of range (0s..24h)", a);
    }

    const struct group_health *h = &g->health;
    if (memchr(h->type, '\0', sizeof(h->type)) == NULL ||
        (strcmp(h->type, "agent") != 0 && strcmp(h->type, "ec2") != 0))
        FAIL("health", "type", "\"%.*s\" is not one of: agent, ec2", (int)sizeof(h->type) - 1,
             h->type);
    if (!dur_in(h->interval_ms, 10, HOUR_MS)) {
        clk_format_duration(h->interval_ms, a, sizeof(a));
        FAIL("health", "interval", "%s is out of range (10ms..1h)", a);
    }
    if (!dur_in(h->timeout_ms, 1, HOUR_MS)) {
        clk_format_duration(h->timeout_ms, a, sizeof(a));
        FAIL("health", "timeout", "%s is out of range (1ms..1h)", a);
    }
    if (h->timeout_ms >= h->interval_ms) {
        clk_format_duration(h->timeout_ms, b, sizeof(b));
        clk_format_duration(h->interval_ms, c, sizeof(c));
        FAIL("health", "timeout", "%s must be shorter than interval (%s)", b, c);
    }
    if (h->healthy_threshold < 1 || h->healthy_threshold > 1000)
        FAIL("health", "healthy_threshold", "%d is out of range (1..1000)", h->healthy_threshold);
    if (h->unhealthy_threshold < 1 || h->unhealthy_threshold > 1000)
        FAIL("health", "unhealthy_threshold", "%d is out of range (1..1000)",
             h->unhealthy_threshold);
    if (!dur_in(h->grace_period_ms, 0, DAY_MS)) {
        clk_format_duration(h->grace_period_ms, a, sizeof(a));
        FAIL("health", "grace_period", "%s is out of range (0s..24h)", a);
    }
    if (h->panic_threshold < 0 || h->panic_threshold > 100)
        FAIL("health", "panic_threshold", "%d is out of range (0..100)", h->panic_threshold);
    if (h->max_replacements_per_minute < 0 || h->max_replacements_per_minute > 100000)
        FAIL("health", "max_replacements_per_minute", "%d is out of range (0..100000)",
             h->max_replacements_per_minute);
    if (!dur_in(h->deregister_grace_ms, 0, DAY_MS)) {
        clk_format_duration(h->deregister_grace_ms, a, sizeof(a));
        FAIL("health", "deregister_grace", "%s is out of range (0s..24h)", a);
    }
    return 0;
}

/* The JSON path of an INI section/key: "max_size", "policy.up_threshold". */
static void json_path(const char *sec, const char *key, char *buf, size_t len)
{
    const struct group_key *k = (sec && key) ? group_key_find(sec, key, 0) : NULL;
    const char *jk = k ? k->json : key;
    if (sec && jk && strcmp(sec, "group") != 0)
        snprintf(buf, len, "%s.%s", sec, jk);
    else
        snprintf(buf, len, "%s", jk ? jk : "");
}

int group_settings_validate_json(const struct group_settings *g, char *err, size_t errlen)
{
    const char *sec = NULL, *key = NULL;
    char why[384], path[96];
    if (group_settings_validate(g, &sec, &key, why, sizeof(why)) == 0)
        return 0;
    json_path(sec, key, path, sizeof(path));
    size_t n = strlen(path);
    if (path[0] && !(strncmp(why, path, n) == 0 && why[n] == ' '))
        util_set_err(err, errlen, "%s: %s", path, why);
    else
        util_set_err(err, errlen, "%s", why);
    return -1;
}

/* ---- to JSON ------------------------------------------------------------------------------ */

static void *field(struct group_settings *g, const struct group_key *k)
{
    return (char *)g + k->off;
}

static const void *cfield(const struct group_settings *g, const struct group_key *k)
{
    return (const char *)g + k->off;
}

static json_t *value_json(const struct group_settings *g, const struct group_key *k)
{
    const void *f = cfield(g, k);
    char b[32];
    switch (k->kind) {
    case GROUP_K_INT:
        return json_integer(*(const int *)f);
    case GROUP_K_DOUBLE:
        return json_real(*(const double *)f);
    case GROUP_K_DURATION:
        group_format_duration(*(const int64_t *)f, b, sizeof(b));
        return json_string(b);
    case GROUP_K_ENUM:
        if (k->size)
            return json_string((const char *)f);
        return json_string(policy_type_name(*(const int *)f));
    default:
        return json_string((const char *)f);
    }
}

/* "2026-11-29T07:30:00.123Z"; "" when never written (0). */
static void iso8601(int64_t wall_ms, char *buf, size_t len)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    if (wall_ms <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "%s", "");
        return;
    }
    char day[40];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%.20s.%03dZ", day, (int)(wall_ms % 1000));
}

static int parse_iso8601(const char *s, int64_t *out)
{
    if (s[0] == '\0') {
        *out = 0;
        return 0;
    }
    struct tm tm;
    int ms = 0, n = 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
        s[n] != '\0' || ms < 0)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

json_t *group_settings_to_json(const struct group_settings *g)
{
    json_t *top = json_object(), *policy = json_object(), *health = json_object();
    if (!top || !policy || !health)
        goto oom;
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        json_t *obj = strcmp(k->section, "policy") == 0   ? policy
                      : strcmp(k->section, "health") == 0 ? health
                                                          : top;
        if (json_object_set_new(obj, k->json, value_json(g, k)) != 0)
            goto oom;
    }
    /* the sizes come before the nested objects, as docs/api.md shows them */
    if (json_object_set_new(top, "policy", policy) != 0) {
        policy = NULL;
        goto oom;
    }
    policy = NULL;
    if (json_object_set_new(top, "health", health) != 0) {
        health = NULL;
        goto oom;
    }
    health = NULL;
    char at[40];
    iso8601(g->updated_at_ms, at, sizeof at);
    if (json_object_set_new(top, "revision", json_integer((json_int_t)g->revision)) != 0 ||
        json_object_set_new(top, "updated_at", json_string(at)) != 0)
        goto oom;
    return top;
oom:
    json_decref(top);
    json_decref(policy);
    json_decref(health);
    return NULL;
}

/* ---- from JSON ---------------------------------------------------------------------------- */

/* Reads one value of key k into *g; path names it in messages. */
static int read_value(struct group_settings *g, const struct group_key *k, const json_t *v,
                      const char *path, char *err, size_t errlen)
{
    void *f = field(g, k);
    switch (k->kind) {
    case GROUP_K_INT: {
        if (!json_is_integer(v)) {
            util_set_err(err, errlen, "%s: must be an integer", path);
            return -1;
        }
        json_int_t x = json_integer_value(v);
        if (x < -1000000000LL || x > 1000000000LL) {
            util_set_err(err, errlen, "%s: %lld is out of range", path, (long long)x);
            return -1;
        }
        *(int *)f = (int)x;
        return 0;
    }
    case GROUP_K_DOUBLE:
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            util_set_err(err, errlen, "%s: must be a number", path);
            return -1;
        }
        *(double *)f = json_number_value(v);
        return 0;
    case GROUP_K_DURATION:
        if (json_is_string(v)) {
            int64_t ms;
            if (clk_parse_duration(json_string_value(v), &ms)) {
                util_set_err(err, errlen,
                             "%s: \"%.64s\" is not a duration (like \"500ms\", \"30s\", \"2m\")",
                             path, json_string_value(v));
                return -1;
            }
            *(int64_t *)f = ms;
            return 0;
        }
        if (json_is_number(v)) {
            double s = json_number_value(v);
            if (!isfinite(s) || s < 0 || s > 1e9) {
                util_set_err(err, errlen, "%s: must be a non-negative number of seconds", path);
                return -1;
            }
            *(int64_t *)f = (int64_t)llround(s * 1000.0);
            return 0;
        }
        util_set_err(err, errlen, "%s: must be a duration string (\"30s\") or a number of seconds",
                     path);
        return -1;
    case GROUP_K_ENUM: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        int idx = -1;
        for (int i = 0; s && k->choices[i]; i++)
            if (strcmp(s, k->choices[i]) == 0)
                idx = i;
        if (idx < 0) {
            util_set_err(err, errlen, "%s: must be \"%s\" or \"%s\"", path, k->choices[0],
                         k->choices[1]);
            return -1;
        }
        if (k->size) {
            memset(f, 0, k->size); /* equal settings compare equal byte for byte */
            snprintf((char *)f, k->size, "%s", k->choices[idx]);
        } else
            *(int *)f = idx;
        return 0;
    }
    default: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (s == NULL || strlen(s) >= k->size) {
            util_set_err(err, errlen, "%s: must be a string of at most %zu bytes", path,
                         k->size - 1);
            return -1;
        }
        memset(f, 0, k->size);
        snprintf((char *)f, k->size, "%s", s);
        return 0;
    }
    }
}

/* The JSON key of section sec (policy/health) named k, accepting the INI names as aliases. */
static const struct group_key *find_json_key(const char *sec, const char *k)
{
    const struct group_key *gk = group_key_find(sec, k, 1);
    return gk ? gk : group_key_find(sec, k, 0);
}

static void key_list(const char *sec, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < group_n_keys; i++) {
        if (strcmp(group_keys[i].section, sec) != 0)
            continue;
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", group_keys[i].json);
    }
}

static int read_section(struct group_settings *g, const char *sec, const json_t *obj, char *err,
                        size_t errlen)
{
    if (!json_is_object(obj)) {
        util_set_err(err, errlen, "%s: must be an object", sec);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char path[96];
        snprintf(path, sizeof path, "%s.%.64s", sec, k);
        const struct group_key *gk = find_json_key(sec, k);
        if (gk == NULL) {
            char keys[256];
            key_list(sec, keys, sizeof keys);
            util_set_err(err, errlen, "unknown key \"%s\" (%s keys: %s)", path, sec, keys);
            return -1;
        }
        if (read_value(g, gk, v, path, err, errlen) != 0)
            return -1;
    }
    return 0;
}

enum { MODE_FULL, MODE_PATCH };

/* Applies the top-level object; see group_settings_from_json/_patch for the two modes. */
static int apply(struct group_settings *g, const json_t *j, int mode, int *bounds, int *desired,
                 char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        const struct group_key *gk = group_key_find("group", k, 1);
        int rc;
        if (strcmp(k, "policy") == 0 || strcmp(k, "health") == 0)
            rc = read_section(g, k, v, err, errlen);
        else if (strcmp(k, "revision") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                util_set_err(err, errlen, "revision: must be a non-negative integer");
                return -1;
            }
            if (mode == MODE_FULL)
                g->revision = (int64_t)json_integer_value(v);
            rc = 0;
        } else if (mode == MODE_FULL && strcmp(k, "updated_at") == 0) {
            if (!json_is_string(v) || parse_iso8601(json_string_value(v), &g->updated_at_ms)) {
                util_set_err(err, errlen,
                             "updated_at: must be a time like \"2026-11-29T07:30:00.123Z\"");
                return -1;
            }
            rc = 0;
        } else if (mode == MODE_PATCH &&
                   (strcmp(k, "name") == 0 || strcmp(k, "updated_at") == 0 ||
                    strcmp(k, "in_service") == 0 || strcmp(k, "pending") == 0 ||
                    strcmp(k, "unhealthy") == 0 || strcmp(k, "terminating") == 0)) {
            util_set_err(err, errlen, "key \"%s\" is read-only", k);
            return -1;
        } else if (gk != NULL) {
            rc = read_value(g, gk, v, k, err, errlen);
            if (strcmp(k, "desired_capacity") == 0)
                *desired = 1;
            else if (strcmp(k, "min_size") == 0 || strcmp(k, "max_size") == 0)
                *bounds = 1;
        } else {
            util_set_err(err, errlen,
                         "unknown key \"%.64s\" (settable: min_size, max_size, desired_capacity, "
                         "policy, health)",
                         k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

int group_settings_from_json(const json_t *j, struct group_settings *g, char *err, size_t errlen)
{
    if (!json_is_object(j)) {
        util_set_err(err, errlen, "group settings: must be a JSON object");
        return -1;
    }
    const json_t *name = json_object_get(j, "name");
    if (!json_is_string(name) || !group_name_valid(json_string_value(name))) {
        util_set_err(err, errlen,
                     "name: must be a valid group name (1..%d letters, digits, '-', "
                     "'_', '.')",
                     GROUP_NAME_LEN);
        return -1;
    }
    group_settings_default(g, json_string_value(name));
    /* the policy type first: its defaults apply to the policy keys absent */
    const json_t *pol = json_object_get(j, "policy");
    const json_t *pt = json_is_object(pol) ? json_object_get(pol, "type") : NULL;
    if (pt != NULL) {
        const struct group_key *k = group_key_find("policy", "type", 0);
        if (read_value(g, k, pt, "policy.type", err, errlen) != 0)
            return -1;
        policy_settings_default(&g->policy, g->policy.type);
    }
    /* as in the file: max_size and desired_capacity default to follow min_size */
    const json_t *mn = json_object_get(j, "min_size");
    if (json_is_integer(mn) && json_integer_value(mn) >= 0 &&
        json_integer_value(mn) <= FLEET_MAX_SIZE) {
        int m = (int)json_integer_value(mn);
        g->max_size = m > 1 ? m : 1;
        g->desired_capacity = m;
    }
    int bounds = 0, desired = 0;
    if (apply(g, j, MODE_FULL, &bounds, &desired, err, errlen) != 0)
        return -1;
    return group_settings_validate_json(g, err, errlen);
}

int group_settings_patch(struct group_settings *g, const json_t *patch, char *err, size_t errlen)
{
    if (!json_is_object(patch)) {
        util_set_err(err, errlen, "the body must be a JSON object");
        return -1;
    }
    if (json_object_size(patch) == 0) {
        util_set_err(err, errlen, "nothing to change: the object is empty");
        return -1;
    }
    int bounds = 0, desired = 0;
    if (apply(g, patch, MODE_PATCH, &bounds, &desired, err, errlen) != 0)
        return -1;
    /* AWS UpdateAutoScalingGroup: new bounds carry desired along */
    if (bounds && !desired && g->min_size <= g->max_size) {
        if (g->desired_capacity < g->min_size)
            g->desired_capacity = g->min_size;
        if (g->desired_capacity > g->max_size)
            g->desired_capacity = g->max_size;
    }
    return group_settings_validate_json(g, err, errlen);
}

/* ---- diff --------------------------------------------------------------------------------- */

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

/* A value as the diff shows it: ints and doubles as numbers, durations as text. */
static void diff_text(const struct group_settings *g, const struct group_key *k, char *buf,
                      size_t len)
{
    const void *f = cfield(g, k);
    switch (k->kind) {
    case GROUP_K_INT:
        snprintf(buf, len, "%d", *(const int *)f);
        break;
    case GROUP_K_DOUBLE:
        snprintf(buf, len, "%g", *(const double *)f);
        break;
    case GROUP_K_DURATION:
        group_format_duration(*(const int64_t *)f, buf, len);
        break;
    case GROUP_K_ENUM:
        snprintf(buf, len, "%s", k->size ? (const char *)f : policy_type_name(*(const int *)f));
        break;
    default:
        snprintf(buf, len, "%s", (const char *)f);
        break;
    }
}

/* Whether a and b hold the same value of k (numbers compared exactly, not as printed). */
static int same(const struct group_settings *a, const struct group_settings *b,
                const struct group_key *k)
{
    const void *x = cfield(a, k), *y = cfield(b, k);
    switch (k->kind) {
    case GROUP_K_INT:
        return *(const int *)x == *(const int *)y;
    case GROUP_K_DOUBLE:
        return *(const double *)x == *(const double *)y;
    case GROUP_K_DURATION:
        return *(const int64_t *)x == *(const int64_t *)y;
    case GROUP_K_ENUM:
        if (!k->size)
            return *(const int *)x == *(const int *)y;
        return strncmp(x, y, k->size) == 0;
    default:
        return strncmp(x, y, k->size) == 0;
    }
}

void group_settings_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                         size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        if (strcmp(k->key, "name") == 0 && strcmp(k->section, "group") == 0)
            continue; /* a group's identity, not a setting */
        if (same(a, b, k))
            continue;
        char x[GROUP_NAME_MAX], y[GROUP_NAME_MAX];
        diff_text(a, k, x, sizeof x);
        diff_text(b, k, y, sizeof y);
        if (strcmp(k->section, "group") == 0)
            diff_add(out, outlen, "%s %s -> %s", k->json, x, y);
        else
            diff_add(out, outlen, "%s.%s %s -> %s", k->section, k->json, x, y);
    }
    if (!out[0])
        snprintf(out, outlen, "no change");
}
