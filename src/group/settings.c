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
#include <strings.h>
#include <time.h>

#include "common/clock.h"
#include "common/util.h"
#include "controller/victims.h"
#include "controller/schedule.h"
#include "fleet/fleet.h"

#include "common/banned.h"

#define SEC_MS  1000LL
#define HOUR_MS (3600LL * 1000)
#define DAY_MS  (24 * HOUR_MS)

static const char *const policy_types[] = {"threshold", "target", "predictive", "step", NULL};
static const char *const health_types[] = {"agent", "ec2", NULL};
/* AWS's process names; AZRebalance is accepted for scripts written for AWS but has no duty
   here (asgd does no zone rebalancing yet) */
static const char *const processes[] = {GROUP_PROC_LAUNCH,
                                        GROUP_PROC_TERMINATE,
                                        GROUP_PROC_HEALTH_CHECK,
                                        GROUP_PROC_REPLACE_UNHEALTHY,
                                        GROUP_PROC_SCHEDULED_ACTIONS,
                                        GROUP_PROC_ALARM_NOTIFICATION,
                                        GROUP_PROC_AZ_REBALANCE,
                                        NULL};
/* notify event names (src/notify/notify.h maps activities onto them) */
static const char *const notify_events[] = {"launch", "terminate", "replace", "failure", "hook",
                                            "scale",  "skipped",   "panic",   NULL};
static const char *const hook_results[] = {"abandon", "continue", NULL};

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
    {"group", "protect_new_instances", "protect_new_instances", GROUP_K_BOOL,
     OFF(protect_new_instances), 0, 0, 1, NULL, "false",
     "new instances start protected from scale-in (PATCH an instance to change it)"},
    {"policy", "type", "type", GROUP_K_ENUM, OFF(policy.type), 0, 0, 0, policy_types, "threshold",
     "scaling policy: threshold | target | predictive | step"},
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
     OFF(policy.evaluation_period_ms), 0, 100, (double)DAY_MS, NULL,
     "60s (target: 15s, predictive: 5s)", "how often the policy runs"},
    {"policy", "target", "target", GROUP_K_DOUBLE, OFF(policy.target), 0, 0, 100, NULL,
     "60 (predictive: 70)", "target: average load (%) to hold"},
    {"policy", "tolerance", "tolerance", GROUP_K_DOUBLE, OFF(policy.tolerance), 0, 0, 1, NULL,
     "0.1", "target: relative deviation tolerated without action"},
    {"policy", "scale_down_window", "scale_down_window", GROUP_K_DURATION,
     OFF(policy.scale_down_window_ms), 0, 0, (double)DAY_MS, NULL, "300s (predictive: 120s)",
     "target: a scale-down takes the highest recommendation of this window"},
    {"policy", "lead", "lead", GROUP_K_DURATION, OFF(policy.lead_ms), 0, 0, (double)HOUR_MS, NULL,
     "60s", "predictive: how far ahead to plan (an instance's boot time)"},
    {"policy", "season", "season", GROUP_K_DURATION, OFF(policy.season_ms), 0, 0,
     (double)(7 * DAY_MS), NULL, "24h",
     "predictive: the period of the load's pattern, learned after one whole period (0: none)"},
    {"policy", "steps", "steps", GROUP_K_STRING, OFF(policy.steps), SZ(policy.steps), 0, 0, NULL,
     ">70:+1, >85:+50%, <20:-1",
     "step: bands of load, each adding or removing a count or a % of the group"},
    {"policy", "warmup", "warmup", GROUP_K_DURATION, OFF(policy.warmup_ms), 0, 0, (double)HOUR_MS,
     NULL, "0", "a new instance's load counts after this (0: after [health] grace_period)"},
    {"policy", "schedule", "schedule", GROUP_K_STRING, OFF(policy.schedule), SZ(policy.schedule), 0,
     0, NULL, "(none)",
     "scheduled actions: \"CRON [ZONE]: min=N max=N desired=N; ...\" (e.g. 0 8 * * 1-5 "
     "Europe/Paris: min=4)"},
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
    {"group", "termination_policy", "termination_policy", GROUP_K_LIST, OFF(termination_policy),
     SZ(termination_policy), 0, 0, victims_policy_names, "default",
     "scale-in victims: default | oldest_instance | newest_instance | oldest_launch_config | "
     "closest_to_next_instance_hour, a list applied in order (zones balanced first)"},
    {"group", "suspended_processes", "suspended_processes", GROUP_K_LIST, OFF(suspended_processes),
     SZ(suspended_processes), 0, 0, processes, "",
     "processes not run: Launch, Terminate, HealthCheck, ReplaceUnhealthy, ScheduledActions, "
     "AlarmNotification (the scaling policy), AZRebalance"},
    {"group", "max_instance_lifetime", "max_instance_lifetime", GROUP_K_DURATION,
     OFF(max_instance_lifetime_ms), 0, 0, 365 * (double)DAY_MS, NULL, "0",
     "instances older than this are replaced, a few at a time, launching first (0: never)"},
    {"group", "instance_refresh", "instance_refresh", GROUP_K_STRING, OFF(instance_refresh),
     SZ(instance_refresh), 0, 0, NULL, "",
     "the instance refresh's state, written by POST .../instance-refresh and the controller "
     "(not meant to be edited: docs/instance-refresh.md)"},
    {"notify", "url", "url", GROUP_K_STRING, OFF(notify.url), SZ(notify.url), 0, 0, NULL, "",
     "webhook receiving the group's events as JSON (http:// or https://; empty: off)"},
    {"notify", "secret_file", "secret_file", GROUP_K_STRING, OFF(notify.secret_file),
     SZ(notify.secret_file), 0, 0, NULL, "",
     "file holding the HMAC-SHA256 key of the X-Asgd-Signature header (empty: unsigned)"},
    {"notify", "events", "events", GROUP_K_LIST, OFF(notify.events), SZ(notify.events), 0, 0,
     notify_events, "launch, terminate, failure, hook",
     "events sent: launch, terminate, replace, failure, hook, scale, skipped, panic"},
    {"notify", "max_retries", "max_retries", GROUP_K_INT, OFF(notify.max_retries), 0, 0, 100, NULL,
     "5", "retries after a failed delivery, then the event is dead-lettered"},
    {"notify", "retry_base", "retry_base", GROUP_K_DURATION, OFF(notify.retry_base_ms), 0, 10,
     (double)HOUR_MS, NULL, "1s", "first retry delay, doubled each retry"},
    {"notify", "retry_max", "retry_max", GROUP_K_DURATION, OFF(notify.retry_max_ms), 0, 10,
     (double)DAY_MS, NULL, "5m", "longest retry delay"},
    {"notify", "timeout", "timeout", GROUP_K_DURATION, OFF(notify.timeout_ms), 0, 100, 60 * SEC_MS,
     NULL, "5s", "one delivery attempt's time limit"},
    {"hooks", "launch_timeout", "launch_timeout", GROUP_K_DURATION, OFF(hooks.launch_timeout_ms), 0,
     0, (double)DAY_MS, NULL, "0",
     "launch hook: a new instance waits in pending:wait this long at most (0: no hook)"},
    {"hooks", "launch_default", "launch_default", GROUP_K_ENUM, OFF(hooks.launch_default),
     SZ(hooks.launch_default), 0, 0, hook_results, "abandon",
     "launch hook timed out: abandon (terminate it) | continue (put it in service)"},
    {"hooks", "terminate_timeout", "terminate_timeout", GROUP_K_DURATION,
     OFF(hooks.terminate_timeout_ms), 0, 0, (double)DAY_MS, NULL, "0",
     "terminate hook: a leaving instance waits (drains) in terminating:wait this long at most "
     "(0: no hook)"},
    {"hooks", "terminate_default", "terminate_default", GROUP_K_ENUM, OFF(hooks.terminate_default),
     SZ(hooks.terminate_default), 0, 0, hook_results, "abandon",
     "terminate hook timed out: abandon | continue (the instance is terminated either way)"},
};
const size_t group_n_keys = sizeof(group_keys) / sizeof(group_keys[0]);

int group_section_nested(const char *sec)
{
    if (strcmp(sec, "group") == 0)
        return 0;
    for (size_t i = 0; i < group_n_keys; i++)
        if (strcmp(group_keys[i].section, sec) == 0)
            return 1;
    return 0;
}

int group_list_canon(const struct group_key *k, const char *text, char *out, size_t outlen,
                     char *err, size_t errlen)
{
    char buf[GROUP_LIST_MAX];
    size_t used = 0;
    buf[0] = '\0';
    for (const char *p = text; *p;) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        const char *word = NULL;
        for (int i = 0; k->choices[i] && !word; i++)
            if (strlen(k->choices[i]) == n && strncasecmp(p, k->choices[i], n) == 0)
                word = k->choices[i];
        if (word == NULL) {
            char all[256] = "";
            for (int i = 0; k->choices[i]; i++) {
                size_t u = strlen(all);
                snprintf(all + u, sizeof(all) - u, "%s%s", i ? ", " : "", k->choices[i]);
            }
            util_set_err(err, errlen, "\"%.*s\" is not one of: %s", (int)(n > 64 ? 64 : n), p, all);
            return -1;
        }
        p += n;
        if (group_list_has(buf, word))
            continue;
        int w = snprintf(buf + used, sizeof(buf) - used, "%s%s", used ? ", " : "", word);
        if (w < 0 || (size_t)w >= sizeof(buf) - used || used + (size_t)w >= outlen) {
            util_set_err(err, errlen, "the list is too long");
            return -1;
        }
        used += (size_t)w;
    }
    memset(out, 0, outlen); /* equal settings compare equal byte for byte */
    snprintf(out, outlen, "%s", buf);
    return 0;
}

int group_list_has(const char *list, const char *word)
{
    size_t n = strlen(word);
    if (list == NULL)
        return 0;
    for (const char *p = list; *p;) {
        size_t m = strcspn(p, ",");
        if (m == n && strncmp(p, word, n) == 0)
            return 1;
        p += m;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return 0;
}

int group_process_suspended(const struct group_settings *g, const char *proc)
{
    return group_list_has(g->suspended_processes, proc);
}

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
    snprintf(g->termination_policy, sizeof(g->termination_policy), "%s", "default");
    snprintf(g->notify.events, sizeof(g->notify.events), "%s", "launch, terminate, failure, hook");
    g->notify.max_retries = 5;
    g->notify.retry_base_ms = 1 * SEC_MS;
    g->notify.retry_max_ms = 300 * SEC_MS;
    g->notify.timeout_ms = 5 * SEC_MS;
    snprintf(g->hooks.launch_default, sizeof(g->hooks.launch_default), "%s", "abandon");
    snprintf(g->hooks.terminate_default, sizeof(g->hooks.terminate_default), "%s", "abandon");
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
    case GROUP_K_BOOL:
        return json_boolean(*(const int *)f);
    case GROUP_K_DOUBLE:
        return json_real(*(const double *)f);
    case GROUP_K_DURATION:
        group_format_duration(*(const int64_t *)f, b, sizeof(b));
        return json_string(b);
    case GROUP_K_ENUM:
        if (k->size)
            return json_string((const char *)f);
        return json_string(policy_type_name(*(const int *)f));
    case GROUP_K_LIST: {
        json_t *a = json_array();
        const char *p = (const char *)f;
        while (a && *p) {
            size_t n = strcspn(p, ",");
            if (json_array_append_new(a, json_stringn(p, n)) != 0) {
                json_decref(a);
                return NULL;
            }
            p += n;
            while (*p == ',' || *p == ' ')
                p++;
        }
        return a;
    }
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
    json_t *top = json_object(), *nested = json_object();
    if (!top || !nested)
        goto oom;
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        json_t *obj = top;
        if (group_section_nested(k->section)) {
            obj = json_object_get(nested, k->section);
            if (obj == NULL &&
                (json_object_set_new(nested, k->section, obj = json_object()) != 0 || obj == NULL))
                goto oom;
        }
        if (json_object_set_new(obj, k->json, value_json(g, k)) != 0)
            goto oom;
    }
    /* the sizes come before the nested objects, as docs/api.md shows them */
    if (json_object_update(top, nested) != 0)
        goto oom;
    json_decref(nested);
    nested = NULL;
    char at[40];
    iso8601(g->updated_at_ms, at, sizeof at);
    if (json_object_set_new(top, "revision", json_integer((json_int_t)g->revision)) != 0 ||
        json_object_set_new(top, "updated_at", json_string(at)) != 0)
        goto oom;
    return top;
oom:
    json_decref(top);
    json_decref(nested);
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
    case GROUP_K_BOOL:
        if (!json_is_boolean(v)) {
            util_set_err(err, errlen, "%s: must be true or false", path);
            return -1;
        }
        *(int *)f = json_is_true(v);
        return 0;
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
            char list[160] = "";
            size_t at = 0;
            for (int i = 0; k->choices[i] && at < sizeof(list); i++) {
                int w = snprintf(list + at, sizeof(list) - at, "%s\"%s\"",
                                 i == 0              ? ""
                                 : k->choices[i + 1] ? ", "
                                                     : " or ",
                                 k->choices[i]);
                if (w > 0)
                    at += (size_t)w;
            }
            util_set_err(err, errlen, "%s: must be %s", path, list);
            return -1;
        }
        if (k->size) {
            memset(f, 0, k->size); /* equal settings compare equal byte for byte */
            snprintf((char *)f, k->size, "%s", k->choices[idx]);
        } else
            *(int *)f = idx;
        return 0;
    }
    case GROUP_K_LIST: {
        char text[GROUP_LIST_MAX * 2] = "", why[320];
        size_t used = 0;
        if (json_is_string(v))
            snprintf(text, sizeof(text), "%s", json_string_value(v));
        else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e) || used + json_string_length(e) + 2 >= sizeof(text)) {
                    util_set_err(err, errlen, "%s: must be an array of strings (at most %zu bytes)",
                                 path, k->size - 1);
                    return -1;
                }
                used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", i ? "," : "",
                                         json_string_value(e));
            }
        } else {
            util_set_err(err, errlen, "%s: must be an array of strings", path);
            return -1;
        }
        if (group_list_canon(k, text, (char *)f, k->size, why, sizeof(why)) != 0) {
            util_set_err(err, errlen, "%s: %s", path, why);
            return -1;
        }
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
        if (group_section_nested(k))
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
            util_set_err(
                err, errlen,
                "unknown key \"%.64s\" (settable: min_size, max_size, desired_capacity, "
                "termination_policy, suspended_processes, max_instance_lifetime, policy, health, "
                "notify)",
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

int group_settings_apply_json(struct group_settings *g, const json_t *obj, char *err, size_t errlen)
{
    int bounds = 0, desired = 0;
    if (!json_is_object(obj)) {
        util_set_err(err, errlen, "the settings must be a JSON object");
        return -1;
    }
    return apply(g, obj, MODE_PATCH, &bounds, &desired, err, errlen);
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
    case GROUP_K_BOOL:
        snprintf(buf, len, "%s", *(const int *)f ? "true" : "false");
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
    case GROUP_K_LIST:
        snprintf(buf, len, "[%s]", (const char *)f);
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
    case GROUP_K_BOOL:
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

/* The bytes a key's value takes in struct group_settings. */
static size_t key_size(const struct group_key *k)
{
    switch (k->kind) {
    case GROUP_K_INT:
        return sizeof(int);
    case GROUP_K_DOUBLE:
        return sizeof(double);
    case GROUP_K_DURATION:
        return sizeof(int64_t);
    case GROUP_K_ENUM:
        return k->size ? k->size : sizeof(int);
    default:
        return k->size;
    }
}

int group_settings_apply_changes(struct group_settings *dst, const struct group_settings *a,
                                 const struct group_settings *b)
{
    int n = 0, bounds = 0, desired = 0;
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        if (strcmp(k->key, "name") == 0 && strcmp(k->section, "group") == 0)
            continue;
        if (same(a, b, k))
            continue;
        memcpy(field(dst, k), cfield(b, k), key_size(k));
        n++;
        if (strcmp(k->section, "group") == 0) {
            if (strcmp(k->key, "desired_capacity") == 0)
                desired = 1;
            else
                bounds = 1;
        }
    }
    /* as a PATCH: new bounds carry desired along */
    if (bounds && !desired && dst->min_size <= dst->max_size) {
        if (dst->desired_capacity < dst->min_size)
            dst->desired_capacity = dst->min_size;
        if (dst->desired_capacity > dst->max_size)
            dst->desired_capacity = dst->max_size;
    }
    return n;
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
        char x[GROUP_LIST_MAX + 2], y[GROUP_LIST_MAX + 2];
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
