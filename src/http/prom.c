/*
 * prom.c - the /metrics page in the Prometheus text exposition format 0.0.4.
 *
 * Every family has HELP and TYPE lines, counters end in _total, durations are
 * in seconds, label values are escaped (\\, \", \n), so `promtool check
 * metrics` accepts the page. Per-instance series carry an instance_id label
 * (not "instance": Prometheus sets that one to the scrape target). Every
 * per-group family has one sample per group this node runs, labelled group;
 * the process-wide counters (polls, provider calls, scaling actions) are
 * counted by the stats module for the whole process and carry no group.
 * Per-instance series are written only for groups of at most
 * metrics_instances_max instances (a group setting, 1,000 by default; a
 * comment line says which groups were left out): a scrape of a
 * 10,000-instance group would be 20,000 series of which the by-health and
 * by-lifecycle counts already say what alerting needs.
 */
#include "http/http_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/banned.h"

/* The group's metrics_instances_max (0, or settings unknown: the default; -1: never). */
static int instances_max(const struct http_prom_group *G)
{
    int max = G->settings ? G->settings->metrics_instances_max : 0;
    return max ? max : GROUP_METRICS_INSTANCES_MAX;
}

/* Whether the group's per-instance series are written. */
static int per_instance(const struct http_prom_group *G)
{
    int max = instances_max(G);
    return max >= 0 && G->n_slots <= (size_t)max;
}

/* Appends s as a label value (escaped). */
static void label(struct http_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            http__buf_append(b, "\\\\", 2);
        else if (*s == '"')
            http__buf_append(b, "\\\"", 2);
        else if (*s == '\n')
            http__buf_append(b, "\\n", 2);
        else
            http__buf_append(b, s, 1);
    }
}

static void family(struct http_buf *b, const char *name, const char *type, const char *help)
{
    http__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{group="g"} value */
static void gsample(struct http_buf *b, const char *name, const char *group, double v)
{
    http__buf_printf(b, "%s{group=\"", name);
    label(b, group);
    http__buf_printf(b, "\"} %.17g\n", v);
}

static uint64_t ld(const atomic_uint_fast64_t *a)
{
    return (uint64_t)atomic_load_explicit((atomic_uint_fast64_t *)a, memory_order_relaxed);
}

/* Counts of one group's instances by lifecycle and health. */
struct gcounts {
    int lc[FLEET_LIFECYCLE_COUNT];
    int healthy, unhealthy;
};

static void count(const struct http_prom_group *g, struct gcounts *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < g->n_slots; i++) {
        const struct fleet_slot *s = &g->slots[i];
        if (s->lifecycle < FLEET_LIFECYCLE_COUNT)
            c->lc[s->lifecycle]++;
        if (s->health == FLEET_HEALTH_HEALTHY)
            c->healthy++;
        else if (s->health == FLEET_HEALTH_UNHEALTHY)
            c->unhealthy++;
    }
}

/* name{group="g",key="value"} n */
static void glsample(struct http_buf *b, const char *name, const char *group, const char *key,
                     const char *value, int n)
{
    http__buf_printf(b, "%s{group=\"", name);
    label(b, group);
    http__buf_printf(b, "\",%s=\"%s\"} %d\n", key, value, n);
}

/* One family, one sample per group that has the value (has() false: skipped). */
#define PER_GROUP(name, type, help, cond, value)                                                   \
    do {                                                                                           \
        int any_ = 0;                                                                              \
        for (size_t i_ = 0; i_ < in->n_groups; i_++) {                                             \
            const struct http_prom_group *G = &in->groups[i_];                                     \
            (void)G;                                                                               \
            if (!(cond))                                                                           \
                continue;                                                                          \
            if (!any_++)                                                                           \
                family(b, name, type, help);                                                       \
            gsample(b, name, G->group, (double)(value));                                           \
        }                                                                                          \
    } while (0)

int http__prom_render(struct http_buf *b, const struct http_prom_input *in)
{
    family(b, "asgd_up", "gauge", "1 while asgd serves this page.");
    http__buf_printf(b, "asgd_up 1\n");
    family(b, "asgd_groups", "gauge", "Groups this asgd runs.");
    http__buf_printf(b, "asgd_groups %zu\n", in->n_groups);

    PER_GROUP("asgd_desired_capacity", "gauge", "Desired number of instances.", G->settings,
              G->settings->desired_capacity);
    PER_GROUP("asgd_min_size", "gauge", "Minimum group size.", G->settings, G->settings->min_size);
    PER_GROUP("asgd_max_size", "gauge", "Maximum group size.", G->settings, G->settings->max_size);

    if (in->n_groups) {
        family(b, "asgd_instances", "gauge", "Instances of the group by lifecycle state.");
        static const int lcv[] = {FLEET_PENDING,      FLEET_IN_SERVICE,       FLEET_TERMINATING,
                                  FLEET_PENDING_WAIT, FLEET_TERMINATING_WAIT, FLEET_STANDBY};
        for (size_t i = 0; i < in->n_groups; i++) {
            struct gcounts c;
            count(&in->groups[i], &c);
            for (size_t k = 0; k < sizeof(lcv) / sizeof(lcv[0]); k++)
                glsample(b, "asgd_instances", in->groups[i].group, "lifecycle",
                         fleet_lifecycle_name(lcv[k]), c.lc[lcv[k]]);
        }
        family(b, "asgd_instances_by_health", "gauge", "Instances of the group by health.");
        for (size_t i = 0; i < in->n_groups; i++) {
            struct gcounts c;
            count(&in->groups[i], &c);
            const char *g = in->groups[i].group;
            glsample(b, "asgd_instances_by_health", g, "health", "healthy", c.healthy);
            glsample(b, "asgd_instances_by_health", g, "health", "unhealthy", c.unhealthy);
            glsample(b, "asgd_instances_by_health", g, "health", "unknown",
                     (int)in->groups[i].n_slots - c.healthy - c.unhealthy);
        }
    }

    PER_GROUP("asgd_average_load", "gauge",
              "Average load (0-100) of in-service instances as the policy last saw it.",
              G->ctl && G->ctl->avg_load >= 0, G->ctl->avg_load);

    if (in->n_groups) {
        for (size_t k = 0; k < in->n_groups; k++)
            if (!per_instance(&in->groups[k])) {
                http__buf_printf(b, "# per-instance series of group \"");
                label(b, in->groups[k].group);
                if (instances_max(&in->groups[k]) < 0)
                    http__buf_printf(b, "\" left out: metrics_instances_max is -1\n");
                else
                    http__buf_printf(b, "\" left out: %zu instances (more than %d)\n",
                                     in->groups[k].n_slots, instances_max(&in->groups[k]));
            }
        family(b, "asgd_instance_load", "gauge", "Load (0-100) each instance last reported.");
        for (size_t k = 0; k < in->n_groups; k++) {
            const struct http_prom_group *G = &in->groups[k];
            for (size_t i = 0; per_instance(G) && i < G->n_slots; i++) {
                const struct fleet_slot *s = &G->slots[i];
                if (s->load < 0 || !isfinite(s->load))
                    continue;
                http__buf_printf(b, "asgd_instance_load{group=\"");
                label(b, G->group);
                http__buf_printf(b, "\",instance_id=\"");
                label(b, s->id);
                http__buf_printf(b, "\"} %.17g\n", s->load);
            }
        }
        family(b, "asgd_instance_healthy", "gauge",
               "1 if the instance is healthy, 0 if unhealthy or not yet decided.");
        for (size_t k = 0; k < in->n_groups; k++) {
            const struct http_prom_group *G = &in->groups[k];
            for (size_t i = 0; per_instance(G) && i < G->n_slots; i++) {
                const struct fleet_slot *s = &G->slots[i];
                http__buf_printf(b, "asgd_instance_healthy{group=\"");
                label(b, G->group);
                http__buf_printf(b, "\",instance_id=\"");
                label(b, s->id);
                http__buf_printf(b, "\",lifecycle=\"%s\"} %d\n", fleet_lifecycle_name(s->lifecycle),
                                 s->health == FLEET_HEALTH_HEALTHY ? 1 : 0);
            }
        }
    }

    const struct stats *st = in->stats;
    if (st) {
        family(b, "asgd_poll_duration_seconds", "histogram",
               "Round-trip time of MonitorS polls to the agents.");
        uint64_t cum = 0;
        for (int i = 0; i < STATS_POLL_BUCKETS; i++) {
            cum += ld(&st->poll_bucket[i]);
            http__buf_printf(b, "asgd_poll_duration_seconds_bucket{le=\"%g\"} %llu\n",
                             (double)stats_poll_bounds_us[i] / 1e6, (unsigned long long)cum);
        }
        cum += ld(&st->poll_bucket[STATS_POLL_BUCKETS]);
        uint64_t count = ld(&st->poll_count);
        /* buckets and count are separate atomics: keep +Inf == count as the format requires */
        if (count < cum)
            count = cum;
        http__buf_printf(b, "asgd_poll_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                         (unsigned long long)count);
        http__buf_printf(b, "asgd_poll_duration_seconds_sum %.6f\n",
                         (double)ld(&st->poll_sum_us) / 1e6);
        http__buf_printf(b, "asgd_poll_duration_seconds_count %llu\n", (unsigned long long)count);

        family(b, "asgd_poll_failures_total", "counter", "Polls that failed or timed out.");
        http__buf_printf(b, "asgd_poll_failures_total %llu\n",
                         (unsigned long long)ld(&st->poll_failures));
        family(b, "asgd_polls_deferred_total", "counter",
               "Polls the poller could not run or judge in time (overload): neither a success "
               "nor a failure.");
        http__buf_printf(b, "asgd_polls_deferred_total %llu\n",
                         (unsigned long long)ld(&st->polls_deferred));
        family(b, "asgd_registrations_total", "counter", "Agent registrations by result.");
        http__buf_printf(b, "asgd_registrations_total{result=\"accepted\"} %llu\n",
                         (unsigned long long)ld(&st->registrations_accepted));
        http__buf_printf(b, "asgd_registrations_total{result=\"refused\"} %llu\n",
                         (unsigned long long)ld(&st->registrations_refused));
        http__buf_printf(b, "asgd_registrations_total{result=\"held\"} %llu\n",
                         (unsigned long long)ld(&st->registrations_held));

        family(b, "asgd_provider_calls_total", "counter",
               "Provider calls by operation and result.");
        for (int op = 0; op < STATS_OP_COUNT; op++)
            for (int res = 0; res < STATS_RES_COUNT; res++)
                http__buf_printf(b, "asgd_provider_calls_total{op=\"%s\",result=\"%s\"} %llu\n",
                                 stats_op_name((enum stats_prov_op)op),
                                 stats_result_name((enum stats_prov_result)res),
                                 (unsigned long long)ld(&st->provider_calls[op][res]));

        family(b, "asgd_scaling_actions_total", "counter",
               "Scaling decisions carried out, by direction.");
        http__buf_printf(b, "asgd_scaling_actions_total{direction=\"out\"} %llu\n",
                         (unsigned long long)ld(&st->scale_out_actions));
        http__buf_printf(b, "asgd_scaling_actions_total{direction=\"in\"} %llu\n",
                         (unsigned long long)ld(&st->scale_in_actions));
        family(b, "asgd_replacements_total", "counter", "Unhealthy instances replaced.");
        http__buf_printf(b, "asgd_replacements_total %llu\n",
                         (unsigned long long)ld(&st->replacements));
        family(b, "asgd_instances_launched_total", "counter", "Instances launched.");
        http__buf_printf(b, "asgd_instances_launched_total %llu\n",
                         (unsigned long long)ld(&st->launched_instances));
        family(b, "asgd_instances_terminated_total", "counter", "Instances terminated.");
        http__buf_printf(b, "asgd_instances_terminated_total %llu\n",
                         (unsigned long long)ld(&st->terminated_instances));
        family(b, "asgd_notify_events_total", "counter",
               "Webhook events by result: delivered, failed (attempts), dead_letter (given up "
               "after max_retries), dropped (queue full).");
        http__buf_printf(b, "asgd_notify_events_total{result=\"delivered\"} %llu\n",
                         (unsigned long long)ld(&st->notify_delivered));
        http__buf_printf(b, "asgd_notify_events_total{result=\"failed\"} %llu\n",
                         (unsigned long long)ld(&st->notify_failed));
        http__buf_printf(b, "asgd_notify_events_total{result=\"dead_letter\"} %llu\n",
                         (unsigned long long)ld(&st->notify_dead_letter));
        http__buf_printf(b, "asgd_notify_events_total{result=\"dropped\"} %llu\n",
                         (unsigned long long)ld(&st->notify_dropped));
    }
    /* suspended processes: one sample per group and suspended process (none: no sample) */
    for (size_t i = 0, any = 0; i < in->n_groups; i++) {
        const struct group_settings *gs = in->groups[i].settings;
        for (const char *p = gs ? gs->suspended_processes : ""; *p;) {
            size_t len = strcspn(p, ",");
            char proc[32];
            snprintf(proc, sizeof proc, "%.*s", (int)(len < sizeof proc ? len : sizeof proc - 1),
                     p);
            if (!any++)
                family(b, "asgd_process_suspended", "gauge",
                       "1 for each process suspended in the group (suspended_processes).");
            glsample(b, "asgd_process_suspended", in->groups[i].group, "process", proc, 1);
            p += len;
            while (*p == ',' || *p == ' ')
                p++;
        }
    }

    PER_GROUP("asgd_controller_last_tick_timestamp_seconds", "gauge",
              "Wall-clock time of the controller's last iteration.", G->ctl,
              G->ctl->last_tick_ms / 1000.0);
    PER_GROUP("asgd_provider_ok", "gauge",
              "0 after a fatal provider error until a provider call succeeds again.", G->ctl,
              G->ctl->provider_ok ? 1 : 0);

    family(b, "asgd_build_info", "gauge", "Version of this asgd.");
    http__buf_printf(b, "asgd_build_info{version=\"%s\"} 1\n", ASGD_VERSION);
    return b->oom ? -1 : 0;
}
