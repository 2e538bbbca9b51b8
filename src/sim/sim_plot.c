/*
 * sim_plot.c - per-second CSV rows and the SVG chart of simulated runs.
 *
 * The chart is for a person reading it in ten seconds: per panel, demand
 * (blue) against capacity paid for (grey, in service + booting) and capacity
 * serving (green, in service), the seconds in violation as red bands, and the
 * figures that matter in the title. Seconds are folded into at most
 * SIM_PLOT_BUCKETS columns: a column shows the highest demand and capacity
 * in it and the lowest in service, so a one-second spike or dip is never
 * averaged away.
 */
#include "sim/sim_plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

struct bucket {
    double demand_max;
    int cap_max;
    int serving_min;
    int violations;
    int seen;
};

struct sim_rec {
    int64_t seconds;
    size_t nb;
    struct bucket *b;
    FILE *csv;
    const char *label;
    int csv_error;
};

struct sim_rec *sim_rec_new(int64_t seconds, FILE *csv, const char *label)
{
    struct sim_rec *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->seconds = seconds > 0 ? seconds : 1;
    r->nb = r->seconds < SIM_PLOT_BUCKETS ? (size_t)r->seconds : SIM_PLOT_BUCKETS;
    r->b = calloc(r->nb, sizeof(*r->b));
    if (r->b == NULL) {
        free(r);
        return NULL;
    }
    r->csv = csv;
    r->label = label;
    return r;
}

void sim_rec_free(struct sim_rec *r)
{
    if (r == NULL)
        return;
    free(r->b);
    free(r);
}

int sim_csv_header(FILE *f, int with_label)
{
    return fprintf(f, "%st,demand,desired,in_service,booting,load,violation\n",
                   with_label ? "policy," : "") < 0
               ? -1
               : 0;
}

void sim_rec_second(void *arg, const struct sim_second *s)
{
    struct sim_rec *r = arg;
    if (r->csv != NULL && !r->csv_error) {
        int rc;
        if (r->label != NULL)
            rc = fprintf(r->csv, "%s,", r->label);
        else
            rc = 0;
        if (rc >= 0)
            rc = fprintf(r->csv, "%lld,%.6g,%d,%d,%d,%.4g,%d\n", (long long)s->t, s->demand,
                         s->desired, s->in_service, s->booting, s->load, s->violation);
        if (rc < 0)
            r->csv_error = 1;
    }
    if (s->t < 0 || s->t >= r->seconds)
        return;
    size_t i = (size_t)((double)s->t * (double)r->nb / (double)r->seconds);
    if (i >= r->nb)
        i = r->nb - 1;
    struct bucket *b = &r->b[i];
    int cap = s->in_service + s->booting;
    if (!b->seen) {
        b->demand_max = s->demand;
        b->cap_max = cap;
        b->serving_min = s->in_service;
        b->seen = 1;
    } else {
        if (s->demand > b->demand_max)
            b->demand_max = s->demand;
        if (cap > b->cap_max)
            b->cap_max = cap;
        if (s->in_service < b->serving_min)
            b->serving_min = s->in_service;
    }
    b->violations += s->violation;
}

size_t sim_rec_columns(const struct sim_rec *r)
{
    return r->nb;
}

void sim_rec_column(const struct sim_rec *r, size_t i, int64_t *t, double *demand, int *capacity,
                    int *in_service, int *violations)
{
    const struct bucket *b = &r->b[i < r->nb ? i : r->nb - 1];
    *t = (int64_t)ceil((double)i * (double)r->seconds / (double)r->nb);
    *demand = b->demand_max;
    *capacity = b->cap_max;
    *in_service = b->serving_min;
    *violations = b->violations;
}

/* Escapes <, >, & and quotes for SVG text. */
static void put_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* A "nice" step (1, 2 or 5 x 10^k) giving about n ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* Time axis labels: seconds, minutes or hours, whichever reads best. */
static void fmt_time(double s, double span, char *buf, size_t len)
{
    if (span >= 4 * 3600)
        snprintf(buf, len, "%gh", s / 3600);
    else if (span >= 240)
        snprintf(buf, len, "%gm", s / 60);
    else
        snprintf(buf, len, "%gs", s);
}

#define W      960.0
#define PH     240.0 /* panel height */
#define ML     56.0  /* margins */
#define MR     16.0
#define MT     44.0
#define MB     30.0
#define LEGEND 28.0

/* A polyline of a bucket series as steps: y(i) is held over bucket i. */
static void series(FILE *f, const struct sim_rec *r, int which, double y0, double ph, double ymax,
                   const char *color, double width)
{
    double pw = W - ML - MR;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" points=\"", color, width);
    for (size_t i = 0; i < r->nb; i++) {
        const struct bucket *b = &r->b[i];
        double v = which == 0   ? b->demand_max
                   : which == 1 ? (double)b->cap_max
                                : (double)b->serving_min;
        double x0 = ML + pw * (double)i / (double)r->nb;
        double x1 = ML + pw * (double)(i + 1) / (double)r->nb;
        double y = y0 + ph - ph * (v / ymax);
        fprintf(f, "%.1f,%.1f %.1f,%.1f ", x0, y, x1, y);
    }
    fputs("\"/>\n", f);
}

static void panel(FILE *f, const struct sim_rec *r, const char *label, const struct sim_result *res,
                  double top, double ymax)
{
    double pw = W - ML - MR, ph = PH - MT - MB, y0 = top + MT;
    char title[512];
    snprintf(title, sizeof(title),
             "%s: cost ratio %.3f, violations %.2f %%, %lld actions (%lld flaps), unserved %.1f",
             label, res->cost_ratio, res->violation_pct, (long long)res->actions,
             (long long)res->flaps, res->unserved);
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"14\" font-weight=\"bold\">", ML, top + 22);
    put_text(f, title);
    fputs("</text>\n", f);
    fprintf(f,
            "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#fafafa\" "
            "stroke=\"#999\"/>\n",
            ML, y0, pw, ph);
    /* violations: a red band over every column with at least one violation second */
    for (size_t i = 0; i < r->nb; i++) {
        if (r->b[i].violations == 0)
            continue;
        size_t j = i;
        while (j + 1 < r->nb && r->b[j + 1].violations > 0)
            j++;
        double x0 = ML + pw * (double)i / (double)r->nb;
        double x1 = ML + pw * (double)(j + 1) / (double)r->nb;
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%g\" width=\"%.1f\" height=\"%g\" fill=\"#e53935\" "
                "fill-opacity=\"0.25\"/>\n",
                x0, y0, x1 - x0 < 1 ? 1 : x1 - x0, ph);
        i = j;
    }
    /* y grid; the ticks are counted (k) and v = k * ys: a double counter that adds ys
       accumulates its rounding error (ys > 0: ymax >= 1, see sim_plot_svg) */
    double ys = nice_step(ymax, 5);
    for (int k = 0; k * ys <= ymax + 1e-9; k++) {
        double v = k * ys;
        double y = y0 + ph - ph * v / ymax;
        fprintf(f,
                "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%g\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
                ML, y, ML + pw, y, ML - 6, y + 4, v);
    }
    /* x ticks */
    double span = (double)r->seconds;
    double xs = nice_step(span, 8);
    if (span >= 4 * 3600 && xs < 3600)
        xs = 3600;
    for (int k = 0; k * xs <= span + 1e-9; k++) { /* counted, as the y grid (span >= 1) */
        double t = k * xs;
        double x = ML + pw * t / span;
        char lab[32];
        fmt_time(t, span, lab, sizeof(lab));
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#999\"/>"
                "<text x=\"%.1f\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
                x, y0 + ph, x, y0 + ph + 4, x, y0 + ph + 17, lab);
    }
    series(f, r, 1, y0, ph, ymax, "#757575", 1.5);
    series(f, r, 2, y0, ph, ymax, "#2e7d32", 1.5);
    series(f, r, 0, y0, ph, ymax, "#1565c0", 2);
    fprintf(f,
            "<text x=\"14\" y=\"%g\" font-size=\"11\" transform=\"rotate(-90 14 %g)\" "
            "text-anchor=\"middle\">instances</text>\n",
            y0 + ph / 2, y0 + ph / 2);
}

int sim_plot_svg(FILE *f, struct sim_rec *const *recs, const char *const *labels,
                 const struct sim_result *results, size_t n)
{
    /* one y scale for every panel, so that panels compare at a glance */
    double ymax = 1;
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < recs[k]->nb; i++) {
            if (recs[k]->b[i].demand_max > ymax)
                ymax = recs[k]->b[i].demand_max;
            if ((double)recs[k]->b[i].cap_max > ymax)
                ymax = recs[k]->b[i].cap_max;
        }
    ymax *= 1.08;
    double h = LEGEND + PH * (double)n;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
            "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, h, W, h);
    /* legend */
    static const struct {
        const char *color, *text;
    } legend[] = {{"#1565c0", "demand"},
                  {"#757575", "capacity paid (in service + booting)"},
                  {"#2e7d32", "in service"},
                  {"#e53935", "violation (demand > 80 % of in service)"}};
    double x = ML;
    for (size_t i = 0; i < sizeof(legend) / sizeof(legend[0]); i++) {
        fprintf(f,
                "<rect x=\"%g\" y=\"10\" width=\"14\" height=\"10\" fill=\"%s\"%s/>"
                "<text x=\"%g\" y=\"19\" font-size=\"12\">%s</text>\n",
                x, legend[i].color, i == 3 ? " fill-opacity=\"0.4\"" : "", x + 18, legend[i].text);
        x += 34 + 7.2 * (double)strlen(legend[i].text);
    }
    for (size_t k = 0; k < n; k++)
        panel(f, recs[k], labels[k], &results[k], LEGEND + PH * (double)k, ymax);
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
