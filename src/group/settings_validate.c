/*
 * settings_validate.c - THE validator of a group's settings (group.h): every
 * reader (the INI file, the API's JSON, the store's JSON) ends here, so what
 * one refuses the others refuse, for the same reason. The reason names the
 * key; callers place it (file:line, or the JSON path: validate_json()).
 */
#include "group/group_int.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/util.h"
#include "controller/schedule.h"
#include "fleet/fleet.h"

#include "common/banned.h"

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
    if (p->type != POLICY_THRESHOLD && p->type != POLICY_TARGET && p->type != POLICY_PREDICTIVE &&
        p->type != POLICY_STEP)
        FAIL("policy", "type", "unknown policy type %d", p->type);
    if (memchr(p->schedule, '\0', sizeof(p->schedule)) == NULL)
        FAIL("policy", "schedule", "too long (at most %zu bytes)", sizeof(p->schedule) - 1);
    {
        char why[300];
        if (sched_check(p->schedule, why, sizeof(why)) != 0)
            FAIL("policy", "schedule", "%s", why);
    }
    if (memchr(p->steps, '\0', sizeof(p->steps)) == NULL)
        FAIL("policy", "steps", "too long (at most %zu bytes)", sizeof(p->steps) - 1);
    {
        struct policy_step steps[POLICY_MAX_STEPS];
        char why[200];
        if (policy_steps_parse(p->steps, steps, POLICY_MAX_STEPS, why, sizeof(why)) < 0)
            FAIL("policy", "steps", "%s", why);
    }
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
    if (!dur_in(p->warmup_ms, 0, HOUR_MS)) {
        clk_format_duration(p->warmup_ms, a, sizeof(a));
        FAIL("policy", "warmup", "%s is out of range (0s..1h)", a);
    }
    if (!dur_in(p->lead_ms, 0, HOUR_MS)) {
        clk_format_duration(p->lead_ms, a, sizeof(a));
        FAIL("policy", "lead", "%s is out of range (0s..1h)", a);
    }
    if (!dur_in(p->season_ms, 0, 7 * DAY_MS) || (p->season_ms > 0 && p->season_ms < 60000)) {
        clk_format_duration(p->season_ms, a, sizeof(a));
        FAIL("policy", "season", "%s is out of range (0 or 1m..7d)", a);
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

    /* lists and strings: the readers canonicalize them; a struct built by hand is checked */
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        const char *f = (const char *)g + k->off;
        if ((k->kind != GROUP_K_LIST && k->kind != GROUP_K_STRING) || strcmp(k->key, "name") == 0)
            continue;
        if (memchr(f, '\0', k->size) == NULL)
            FAIL(k->section, k->key, "the value is too long (at most %zu bytes)", k->size - 1);
        char canon[GROUP_LIST_MAX];
        if (k->kind == GROUP_K_LIST &&
            (group_list_canon(k, f, canon, sizeof(canon), a, sizeof(a)) != 0 ||
             strcmp(canon, f) != 0))
            FAIL(k->section, k->key, "\"%.64s\" is not a list of: %s", f, k->desc);
    }
    if (g->history_instances_max < -1 || g->history_instances_max > FLEET_MAX_SIZE)
        FAIL("group", "history_instances_max", "%d is out of range (-1..%d; 0: %d, -1: never)",
             g->history_instances_max, FLEET_MAX_SIZE, GROUP_HISTORY_INSTANCES_MAX);
    if (g->metrics_instances_max < -1 || g->metrics_instances_max > FLEET_MAX_SIZE)
        FAIL("group", "metrics_instances_max", "%d is out of range (-1..%d; 0: %d, -1: never)",
             g->metrics_instances_max, FLEET_MAX_SIZE, GROUP_METRICS_INSTANCES_MAX);
    if (!dur_in(g->max_instance_lifetime_ms, 0, 365 * DAY_MS))
        FAIL("group", "max_instance_lifetime", "out of range (0s..365d)");
    const struct group_notify *nt = &g->notify;
    if (nt->url[0] && strncmp(nt->url, "http://", 7) != 0 && strncmp(nt->url, "https://", 8) != 0)
        FAIL("notify", "url", "\"%.64s\" must start with http:// or https://", nt->url);
    if (nt->max_retries < 0 || nt->max_retries > 100)
        FAIL("notify", "max_retries", "%d is out of range (0..100)", nt->max_retries);
    /* 0 is "the default" for the durations: a struct zeroed by hand stays valid */
    if (nt->retry_base_ms != 0 && !dur_in(nt->retry_base_ms, 10, HOUR_MS))
        FAIL("notify", "retry_base", "out of range (10ms..1h; 0: 1s)");
    if (nt->retry_max_ms != 0 && !dur_in(nt->retry_max_ms, nt->retry_base_ms, DAY_MS))
        FAIL("notify", "retry_max", "must be between retry_base and 24h (0: 5m)");
    if (nt->timeout_ms != 0 && !dur_in(nt->timeout_ms, 100, 60 * SEC_MS))
        FAIL("notify", "timeout", "out of range (100ms..1m; 0: 5s)");
    if (g->protect_new_instances != 0 && g->protect_new_instances != 1)
        FAIL("group", "protect_new_instances", "%d is not a boolean", g->protect_new_instances);
    const struct group_hooks *hk = &g->hooks;
    if (!dur_in(hk->launch_timeout_ms, 0, DAY_MS)) {
        clk_format_duration(hk->launch_timeout_ms, a, sizeof(a));
        FAIL("hooks", "launch_timeout", "%s is out of range (0s..24h)", a);
    }
    if (!dur_in(hk->terminate_timeout_ms, 0, DAY_MS)) {
        clk_format_duration(hk->terminate_timeout_ms, a, sizeof(a));
        FAIL("hooks", "terminate_timeout", "%s is out of range (0s..24h)", a);
    }
    if (memchr(hk->launch_default, '\0', sizeof(hk->launch_default)) == NULL ||
        (strcmp(hk->launch_default, "abandon") != 0 && strcmp(hk->launch_default, "continue") != 0))
        FAIL("hooks", "launch_default", "\"%.*s\" is not one of: abandon, continue",
             (int)sizeof(hk->launch_default) - 1, hk->launch_default);
    if (memchr(hk->terminate_default, '\0', sizeof(hk->terminate_default)) == NULL ||
        (strcmp(hk->terminate_default, "abandon") != 0 &&
         strcmp(hk->terminate_default, "continue") != 0))
        FAIL("hooks", "terminate_default", "\"%.*s\" is not one of: abandon, continue",
             (int)sizeof(hk->terminate_default) - 1, hk->terminate_default);
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
