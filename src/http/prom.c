/*
 * prom.c - the /metrics page in the Prometheus text exposition format 0.0.4.
 *
 * Every family has HELP and TYPE lines, counters end in _total, durations are
 * in seconds, label values are escaped (\\, \", \n), so `promtool check
 * metrics` accepts the page. Per-instance series carry an instance_id label
 * (not "instance": Prometheus sets that one to the scrape target).
 */
#include "http/http_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/banned.h"

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

int http__prom_render(struct http_buf *b, const struct http_prom_input *in)
{
    const char *g = in->group;
    int counts[FLEET_LIFECYCLE_COUNT] = {0};
    int healthy = 0, unhealthy = 0;
    for (size_t i = 0; i < in->n_slots; i++) {
        const struct fleet_slot *s = &in->slots[i];
        if (s->lifecycle < FLEET_LIFECYCLE_COUNT)
            counts[s->lifecycle]++;
        if (s->health == FLEET_HEALTH_HEALTHY)
            healthy++;
        else if (s->health == FLEET_HEALTH_UNHEALTHY)
            unhealthy++;
    }

    family(b, "asgd_up", "gauge", "1 while asgd serves this page.");
    gsample(b, "asgd_up", g, 1);

    if (in->settings) {
        family(b, "asgd_desired_capacity", "gauge", "Desired number of instances.");
        gsample(b, "asgd_desired_capacity", g, in->settings->desired_capacity);
        family(b, "asgd_min_size", "gauge", "Minimum group size.");
        gsample(b, "asgd_min_size", g, in->settings->min_size);
        family(b, "asgd_max_size", "gauge", "Maximum group size.");
        gsample(b, "asgd_max_size", g, in->settings->max_size);
    }

    family(b, "asgd_instances", "gauge", "Instances of the group by lifecycle state.");
    static const int lcv[] = {FLEET_PENDING, FLEET_IN_SERVICE, FLEET_TERMINATING};
    for (int i = 0; i < 3; i++) {
        http__buf_printf(b, "asgd_instances{group=\"");
        label(b, g);
        http__buf_printf(b, "\",lifecycle=\"%s\"} %d\n", fleet_lifecycle_name(lcv[i]),
                         counts[lcv[i]]);
    }
    family(b, "asgd_instances_by_health", "gauge", "Instances of the group by health.");
    http__buf_printf(b, "asgd_instances_by_health{group=\"");
    label(b, g);
    http__buf_printf(b, "\",health=\"healthy\"} %d\n", healthy);
    http__buf_printf(b, "asgd_instances_by_health{group=\"");
    label(b, g);
    http__buf_printf(b, "\",health=\"unhealthy\"} %d\n", unhealthy);
    http__buf_printf(b, "asgd_instances_by_health{group=\"");
    label(b, g);
    http__buf_printf(b, "\",health=\"unknown\"} %d\n", (int)in->n_slots - healthy - unhealthy);

    if (in->ctl && in->ctl->avg_load >= 0) {
        family(b, "asgd_average_load", "gauge",
               "Average load (0-100) of in-service instances as the policy last saw it.");
        gsample(b, "asgd_average_load", g, in->ctl->avg_load);
    }

    family(b, "asgd_instance_load", "gauge", "Load (0-100) each instance last reported.");
    for (size_t i = 0; i < in->n_slots; i++) {
        const struct fleet_slot *s = &in->slots[i];
        if (s->load < 0 || !isfinite(s->load))
            continue;
        http__buf_printf(b, "asgd_instance_load{group=\"");
        label(b, g);
        http__buf_printf(b, "\",instance_id=\"");
        label(b, s->id);
        http__buf_printf(b, "\"} %.17g\n", s->load);
    }
    family(b, "asgd_instance_healthy", "gauge",
           "1 if the instance is healthy, 0 if unhealthy or not yet decided.");
    for (size_t i = 0; i < in->n_slots; i++) {
        const struct fleet_slot *s = &in->slots[i];
        http__buf_printf(b, "asgd_instance_healthy{group=\"");
        label(b, g);
        http__buf_printf(b, "\",instance_id=\"");
        label(b, s->id);
        http__buf_printf(b, "\",lifecycle=\"%s\"} %d\n", fleet_lifecycle_name(s->lifecycle),
                         s->health == FLEET_HEALTH_HEALTHY ? 1 : 0);
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
        family(b, "asgd_registrations_total", "counter", "Agent registrations by result.");
        http__buf_printf(b, "asgd_registrations_total{result=\"accepted\"} %llu\n",
                         (unsigned long long)ld(&st->registrations_accepted));
        http__buf_printf(b, "asgd_registrations_total{result=\"refused\"} %llu\n",
                         (unsigned long long)ld(&st->registrations_refused));

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
    }

    if (in->ctl) {
        family(b, "asgd_controller_last_tick_timestamp_seconds", "gauge",
               "Wall-clock time of the controller's last iteration.");
        gsample(b, "asgd_controller_last_tick_timestamp_seconds", g,
                (double)in->ctl->last_tick_ms / 1000.0);
        family(b, "asgd_provider_ok", "gauge",
               "0 after a fatal provider error until a provider call succeeds again.");
        gsample(b, "asgd_provider_ok", g, in->ctl->provider_ok ? 1 : 0);
    }

    family(b, "asgd_build_info", "gauge", "Version of this asgd.");
    http__buf_printf(b, "asgd_build_info{version=\"%s\"} 1\n", ASGD_VERSION);
    return b->oom ? -1 : 0;
}
