/*
 * sim_whatif.c - two runs over one history, answered as JSON.
 *
 * The figures are sim_result_json()'s, parsed back, so the API says exactly
 * what `asgd simulate --json` says; the chart is the CLI's SVG, so the
 * dashboard and the terminal show the same picture.
 */
#include "sim/sim_whatif.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "sim/sim_plot.h"

#include "common/banned.h"

static json_t *settings_json(const struct group_settings *g)
{
    json_t *all = group_settings_to_json(g);
    if (all == NULL)
        return NULL;
    json_t *o =
        json_pack("{s:O, s:O, s:O}", "min_size", json_object_get(all, "min_size"), "max_size",
                  json_object_get(all, "max_size"), "policy", json_object_get(all, "policy"));
    json_decref(all);
    return o;
}

static int run(const struct group_settings *g, const struct sim_history *h, int64_t boot_s,
               int64_t poll_s, struct sim_rec *rec, struct sim_result *r, char *err, size_t errlen)
{
    struct sim_params p;
    sim_params_default(&p);
    p.min_size = g->min_size;
    p.max_size = g->max_size;
    p.policy = g->policy;
    p.boot_s = boot_s;
    p.poll_s = poll_s;
    p.on_second = sim_rec_second;
    p.arg = rec;
    return sim_run(&p, &h->trace, r, err, errlen);
}

static json_t *result_json(const struct sim_result *r)
{
    char buf[1024];
    sim_result_json(r, buf, sizeof(buf));
    return json_loads(buf, 0, NULL);
}

/* The chart as a string (open_memstream: the SVG's size is not known in advance). */
static char *svg_string(struct sim_rec *const *recs, const char *const *labels,
                        const struct sim_result *res)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    int rc = sim_plot_svg(f, recs, labels, res, 2);
    if (fclose(f) != 0 || rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

json_t *sim_whatif_json(const struct group_settings *current, const struct group_settings *proposed,
                        const struct sim_history *h, int64_t boot_s, int64_t poll_s, char *err,
                        size_t errlen)
{
    if (h->trace.n == 0) {
        util_set_err(err, errlen, "no recorded history");
        return NULL;
    }
    int64_t seconds = h->trace.t[h->trace.n - 1] + 1;
    struct sim_rec *rec[2] = {sim_rec_new(seconds, NULL, NULL), sim_rec_new(seconds, NULL, NULL)};
    struct sim_result res[2];
    json_t *out = NULL;
    char *svg = NULL;
    if (rec[0] == NULL || rec[1] == NULL) {
        util_set_err(err, errlen, "out of memory");
        goto done;
    }
    if (run(current, h, boot_s, poll_s, rec[0], &res[0], err, errlen) != 0 ||
        run(proposed, h, boot_s, poll_s, rec[1], &res[1], err, errlen) != 0)
        goto done;
    char lab[2][96];
    snprintf(lab[0], sizeof(lab[0]), "current (%s)", policy_type_name(current->policy.type));
    snprintf(lab[1], sizeof(lab[1]), "proposed (%s)", policy_type_name(proposed->policy.type));
    const char *labels[2] = {lab[0], lab[1]};
    svg = svg_string(rec, labels, res);
    json_t *t = json_array(), *dem = json_array(), *cap[2] = {json_array(), json_array()};
    size_t cols = sim_rec_columns(rec[0]);
    size_t step = cols > SIM_WHATIF_POINTS ? (cols + SIM_WHATIF_POINTS - 1) / SIM_WHATIF_POINTS : 1;
    int ok = t && dem && cap[0] && cap[1] && svg;
    for (size_t i = 0; ok && i < cols; i += step) {
        /* a point per step columns: the first's time, the highest of each */
        int64_t at = 0;
        double d = 0;
        int c[2] = {0, 0};
        for (size_t j = i; j < i + step && j < cols; j++) {
            for (int k = 0; k < 2; k++) {
                int64_t at_j;
                double dj;
                int cj, serving, viol;
                sim_rec_column(rec[k], j, &at_j, &dj, &cj, &serving, &viol);
                if (j == i)
                    at = at_j;
                if (cj > c[k])
                    c[k] = cj;
                if (dj > d)
                    d = dj;
            }
        }
        ok = json_array_append_new(t, json_integer(at)) == 0 &&
             json_array_append_new(dem, json_real(d)) == 0 &&
             json_array_append_new(cap[0], json_integer(c[0])) == 0 &&
             json_array_append_new(cap[1], json_integer(c[1])) == 0;
    }
    if (ok)
        out = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:{s:o*, s:o*}, s:{s:o*, s:o*}, "
                        "s:{s:o, s:o, s:o, s:o}, s:s}",
                        "samples", (json_int_t)h->samples, "saturated", (json_int_t)h->saturated,
                        "first_ms", (json_int_t)h->first_ms, "last_ms", (json_int_t)h->last_ms,
                        "boot_s", (json_int_t)boot_s, "poll_s", (json_int_t)poll_s, "current",
                        "settings", settings_json(current), "result", result_json(&res[0]),
                        "proposed", "settings", settings_json(proposed), "result",
                        result_json(&res[1]), "series", "t", t, "demand", dem, "current", cap[0],
                        "proposed", cap[1], "svg", svg);
    else {
        json_decref(t);
        json_decref(dem);
        json_decref(cap[0]);
        json_decref(cap[1]);
    }
    if (out == NULL)
        util_set_err(err, errlen, "out of memory");
done:
    free(svg);
    sim_rec_free(rec[0]);
    sim_rec_free(rec[1]);
    return out;
}
