/*
 * sim_store.c - the group's recorded history (metric rows) as a trace.
 *
 * One row per recorded sample, t in whole seconds from the first; two
 * samples within the same second keep the later one (the trace's t must be
 * distinct). Reading goes through the store's ordinary API, so SQLite and
 * etcd stores both work and a running asgd is not disturbed.
 */
#include "sim/sim_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "store/store.h"

#include "common/banned.h"

#define MAX_SAMPLES 1000000
#define SAT_LOAD    99.5

static int open_store(const struct asgd_conf *conf, struct store **st, char *err, size_t errlen)
{
    if (conf->store.type != CONF_STORE_ETCD)
        return store_open(conf->store.dir, st, err, errlen) == 0 ? 0 : -1;
    size_t len = 1;
    for (size_t i = 0; i < conf->store.n_etcd_endpoints; i++)
        len += strlen(conf->store.etcd_endpoints[i]) + 1;
    char *eps = calloc(1, len);
    if (eps == NULL) {
        util_set_err(err, errlen, "out of memory");
        return -1;
    }
    size_t at = 0;
    for (size_t i = 0; i < conf->store.n_etcd_endpoints; i++) {
        int w = snprintf(eps + at, len - at, "%s%s", i ? "," : "", conf->store.etcd_endpoints[i]);
        if (w > 0)
            at += (size_t)w;
    }
    struct store_etcd_settings es = {
        .endpoints = eps,
        .prefix = conf->store.etcd_prefix,
        .ca_file = conf->store.etcd_ca_file,
        .cert_file = conf->store.etcd_cert_file,
        .key_file = conf->store.etcd_key_file,
    };
    int rc = store_open_etcd(&es, st, err, errlen) == 0 ? 0 : -1;
    free(eps);
    return rc;
}

int sim_history_from_rows(const struct store_metric_group *rows, size_t n, struct sim_history *h,
                          char *err, size_t errlen)
{
    sim_trace_release(&h->trace);
    h->samples = h->saturated = 0;
    if (n == 0) {
        util_set_err(err, errlen, "no recorded history in the time asked for");
        return -1;
    }
    h->trace.t = malloc(n * sizeof(*h->trace.t));
    h->trace.demand = malloc(n * sizeof(*h->trace.demand));
    if (h->trace.t == NULL || h->trace.demand == NULL) {
        sim_trace_release(&h->trace);
        util_set_err(err, errlen, "out of memory");
        return -1;
    }
    h->first_ms = rows[0].at_ms;
    h->last_ms = rows[n - 1].at_ms;
    double prev = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t = (rows[i].at_ms - h->first_ms + 500) / 1000;
        double d;
        if (rows[i].avg_load >= 0 && isfinite(rows[i].avg_load))
            d = rows[i].avg_load / 100.0 * (double)rows[i].in_service;
        else
            d = rows[i].in_service > 0 ? prev : 0;
        if (rows[i].avg_load >= SAT_LOAD)
            h->saturated++;
        if (d > SIM_MAX_DEMAND)
            d = SIM_MAX_DEMAND;
        prev = d;
        if (k > 0 && h->trace.t[k - 1] >= t) {
            h->trace.demand[k - 1] = d; /* same second: the later sample */
            continue;
        }
        h->trace.t[k] = t;
        h->trace.demand[k] = d;
        k++;
    }
    h->trace.n = k;
    h->samples = n;
    return 0;
}

void sim_history_release(struct sim_history *h)
{
    if (h == NULL)
        return;
    sim_trace_release(&h->trace);
    memset(h, 0, sizeof(*h));
}

int sim_history_load(const struct asgd_conf *conf, const char *group, int64_t since_ms,
                     struct sim_history *h, char *err, size_t errlen)
{
    struct store *st = NULL;
    struct store_metric_group *rows = NULL;
    size_t n = 0;
    int rc = -1;
    memset(h, 0, sizeof(*h));
    if (open_store(conf, &st, err, errlen) != 0)
        return -1;
    int src = store_get_settings(st, group, &h->settings);
    if (src != 0) {
        util_set_err(err, errlen, "group \"%s\": cannot read its settings from the store: %s",
                     group, store_errmsg(st));
        goto out;
    }
    if (store_metrics_group_since(st, group, since_ms, MAX_SAMPLES, &rows, &n) != 0) {
        util_set_err(err, errlen, "group \"%s\": cannot read its history: %s", group,
                     store_errmsg(st));
        goto out;
    }
    if (n == 0) {
        util_set_err(err, errlen, "group \"%s\": no recorded history in the time asked for", group);
        goto out;
    }
    if (sim_history_from_rows(rows, n, h, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        sim_trace_release(&h->trace);
    free(rows);
    store_close(st);
    return rc;
}
