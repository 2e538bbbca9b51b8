/*
 * settings.c - a group's settings: the key table, defaults, lists, names and
 * lookups (THE validator is settings_validate.c, the JSON form (to, from,
 * PATCH) settings_json.c, the diff settings_diff.c; group_int.h lists them).
 *
 * Every reader goes through one table (group_keys[]), so a key added there
 * is read from the INI file (conf.c via group_settings_read_cfg()), from the
 * API's JSON and from the store's JSON alike, and the one validator decides
 * what is acceptable for all of them: a setting the file would refuse is
 * refused by the API too, with the same reason.
 */
#include "group/group_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/util.h"
#include "controller/victims.h"
#include "fleet/fleet.h"

#include "common/banned.h"

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
    {"group", "history_instances_max", "history_instances_max", GROUP_K_INT,
     OFF(history_instances_max), 0, -1, FLEET_MAX_SIZE, NULL, "500",
     "per-instance load history (the dashboard's charts) is recorded while the group has at most "
     "this many instances (0: 500, -1: never)"},
    {"group", "metrics_instances_max", "metrics_instances_max", GROUP_K_INT,
     OFF(metrics_instances_max), 0, -1, FLEET_MAX_SIZE, NULL, "1000",
     "/metrics has per-instance series while the group has at most this many instances (0: 1000, "
     "-1: never)"},
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
    g->history_instances_max = GROUP_HISTORY_INSTANCES_MAX;
    g->metrics_instances_max = GROUP_METRICS_INSTANCES_MAX;
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
