/*
 * sim_cli.c - `asgd simulate`: options, the runs' settings, the output.
 *
 * Every run is the base settings (the group of -c, or the model's defaults)
 * plus edits given as KEY=VALUE: --set edits the base, each --variant or
 * --compare file makes one run, --sweep makes one run per grid point. An
 * edit goes through group_settings_patch(), the API's PATCH, so a simulated
 * group is always one the validator would accept and bad values get the
 * API's messages.
 */
#include "sim/sim_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "asgd/conf.h"
#include "common/clock.h"
#include "group/group.h"
#include "sim/sim.h"
#include "sim/sim_plot.h"
#include "sim/sim_store.h"

#include "common/banned.h"

#define MAX_RUNS   10000 /* a sweep grid's points at most */
#define LABEL_MAX  160
#define MAX_SWEEPS 2

struct run {
    char label[LABEL_MAX];
    struct sim_params p;
    struct sim_result r;
    struct sim_rec *rec;
    double key[MAX_SWEEPS]; /* sweep: the grid point */
};

struct sweep {
    const char *spec;
    char key[96];
    double from, to, step;
    size_t n;
};

struct cli {
    const char *config, *trace, *boot, *poll, *csv, *plot, *group, *since;
    int json, verbose, from_store;
    const char **sets, **variants, **compare;
    size_t n_sets, n_variants, n_compare;
    struct sweep sweeps[MAX_SWEEPS];
    size_t n_sweeps;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: asgd simulate --trace FILE|- [-c FILE] [--set KEY=VALUE]... [--boot S]\n"
            "       asgd simulate --from-store -c FILE [--group NAME] [--since 24h] [...]\n"
            "                     [--poll S] [--json] [-v] [--compare A.ini B.ini ...]\n"
            "                     [--variant KEY=VALUE[,KEY=VALUE...]]...\n"
            "                     [--sweep KEY=FROM:TO:STEP [--sweep KEY=FROM:TO:STEP]]\n"
            "                     [--csv FILE] [--plot FILE.svg]\n"
            "\n"
            "  --trace FILE     CSV \"t,demand\" (demand in instance-equivalents); - reads stdin\n"
            "  --from-store     the group's own recorded history instead (demand = average\n"
            "                   load x in service), with its current settings from the store\n"
            "  --group NAME     --from-store: the group (default: the file's first)\n"
            "  --since DUR      --from-store: how far back (24h; the store keeps 24 h)\n"
            "  -c FILE          the group's settings (else min 2, max 20, threshold defaults)\n"
            "  --set KEY=VALUE  change a setting: min, max, policy.type, policy.target,\n"
            "                   policy.scale_down_window=3600s, ... (the API's keys), boot, poll\n"
            "  --boot S         seconds from launch to in service (60)\n"
            "  --poll S         the monitor's sampling interval (5)\n"
            "  --compare F...   one run per config file (its first group), in one table\n"
            "  --variant SETS   one run with these comma-separated KEY=VALUE edits\n"
            "  --sweep K=A:B:S  one run per value of K from A to B by S (twice: a grid);\n"
            "                   prints the Pareto front of cost ratio and violations\n"
            "  --csv FILE       every simulated second (- for stdout)\n"
            "  --plot FILE.svg  demand against capacity, violations shaded, a panel per run\n"
            "  --json           JSON output\n"
            "  -v               every scaling action and its cause (on stderr with --json)\n");
}

/* ---- settings ---------------------------------------------------------------------------- */

/* "boot"/"poll": whole seconds, 0..86400 (poll >= 1). */
static int parse_seconds(const char *what, const char *text, int64_t lo, int64_t *out, char *err,
                         size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > 86400) {
        snprintf(err, errlen, "bad %s \"%s\" (whole seconds, %lld..86400)", what, text,
                 (long long)lo);
        return -1;
    }
    *out = v;
    return 0;
}

/*
 * Applies one KEY=VALUE to a run's settings and parameters. The value is
 * JSON when it parses as a number (a duration's number is seconds), else a
 * string ("3600s", "target").
 */
static int apply_set(struct group_settings *g, struct sim_params *p, const char *kv, char *err,
                     size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv || eq[1] == '\0') {
        snprintf(err, errlen, "bad setting \"%s\": expected KEY=VALUE (e.g. policy.target=55)", kv);
        return -1;
    }
    char key[96];
    size_t kn = (size_t)(eq - kv);
    if (kn >= sizeof(key)) {
        snprintf(err, errlen, "bad setting \"%.40s...\": key too long", kv);
        return -1;
    }
    memcpy(key, kv, kn);
    key[kn] = '\0';
    const char *val = eq + 1;
    if (strcmp(key, "boot") == 0)
        return parse_seconds("boot", val, 0, &p->boot_s, err, errlen);
    if (strcmp(key, "poll") == 0)
        return parse_seconds("poll", val, 1, &p->poll_s, err, errlen);

    const char *field = key;
    if (strcmp(key, "min") == 0)
        field = "min_size";
    else if (strcmp(key, "max") == 0)
        field = "max_size";
    else if (strcmp(key, "desired_capacity") == 0 || strcmp(key, "name") == 0 ||
             strncmp(key, "health.", 7) == 0) {
        snprintf(err, errlen, "bad setting \"%s\": %s does not change a simulation", kv, key);
        return -1;
    }
    const char *dot = strchr(field, '.');
    if (dot == NULL && strcmp(field, "min_size") != 0 && strcmp(field, "max_size") != 0) {
        snprintf(err, errlen,
                 "bad setting \"%s\": unknown key \"%s\" (min, max, policy.KEY, boot, "
                 "poll)",
                 kv, key);
        return -1;
    }
    if (dot != NULL &&
        (strncmp(field, "policy.", 7) != 0 || strchr(dot + 1, '.') != NULL || dot[1] == '\0')) {
        snprintf(err, errlen,
                 "bad setting \"%s\": unknown key \"%s\" (min, max, policy.KEY, boot, "
                 "poll)",
                 kv, key);
        return -1;
    }
    json_t *v = json_loads(val, JSON_DECODE_ANY, NULL);
    if (v == NULL || !json_is_number(v)) {
        json_decref(v);
        v = json_string(val);
    }
    json_t *patch = json_object();
    int rc = -1;
    char why[512];
    if (v == NULL || patch == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (dot != NULL) {
        const char *pk = dot + 1;
        json_t *pol = json_object();
        if (pol == NULL || json_object_set_new(patch, "policy", pol) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (strcmp(pk, "type") == 0 && json_is_string(v)) {
            int type = policy_type_parse(json_string_value(v));
            if (type < 0) {
                snprintf(err, errlen, "bad setting \"%s\": unknown policy type \"%s\"", kv,
                         json_string_value(v));
                goto out;
            }
            /* a new type starts from its own defaults (evaluation_period differs) */
            if (type != g->policy.type)
                policy_settings_default(&g->policy, type);
        }
        json_object_set(pol, pk, v);
    } else {
        json_object_set(patch, field, v);
    }
    /* min/max: desired follows (it plays no part in a simulation) */
    if (group_settings_patch(g, patch, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "bad setting \"%s\": %s", kv, why);
        goto out;
    }
    p->min_size = g->min_size;
    p->max_size = g->max_size;
    p->policy = g->policy;
    rc = 0;
out:
    json_decref(v);
    json_decref(patch);
    return rc;
}

/* A comma-separated list of KEY=VALUE edits. */
static int apply_sets(struct group_settings *g, struct sim_params *p, const char *list, char *err,
                      size_t errlen)
{
    char *copy = strdup(list);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    int any = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        rc = apply_set(g, p, tok, err, errlen);
        any = 1;
    }
    if (rc == 0 && !any) {
        snprintf(err, errlen, "bad --variant \"%s\": no KEY=VALUE in it", list);
        rc = -1;
    }
    free(copy);
    return rc;
}

/* KEY=FROM:TO:STEP, FROM <= TO, STEP > 0, at most MAX_RUNS values. */
static int parse_sweep(struct sweep *s, char *err, size_t errlen)
{
    const char *eq = strchr(s->spec, '=');
    size_t kn = eq ? (size_t)(eq - s->spec) : 0;
    char *end;
    if (eq == NULL || kn == 0 || kn >= sizeof(s->key))
        goto bad;
    memcpy(s->key, s->spec, kn);
    s->key[kn] = '\0';
    errno = 0;
    s->from = strtod(eq + 1, &end);
    if (end == eq + 1 || *end != ':')
        goto bad;
    const char *b = end + 1;
    s->to = strtod(b, &end);
    if (end == b || *end != ':')
        goto bad;
    const char *c = end + 1;
    s->step = strtod(c, &end);
    if (end == c || *end != '\0' || errno != 0)
        goto bad;
    if (!isfinite(s->from) || !isfinite(s->to) || !isfinite(s->step) || !(s->step > 0) ||
        s->to < s->from) {
        snprintf(err, errlen, "bad --sweep \"%s\": need FROM <= TO and STEP > 0", s->spec);
        return -1;
    }
    double n = floor((s->to - s->from) / s->step + 1e-9) + 1;
    if (n > MAX_RUNS) {
        snprintf(err, errlen, "bad --sweep \"%s\": %.0f values (at most %d)", s->spec, n, MAX_RUNS);
        return -1;
    }
    s->n = (size_t)n;
    return 0;
bad:
    snprintf(err, errlen,
             "bad --sweep \"%s\": expected KEY=FROM:TO:STEP (e.g. policy.target=50:80:5)", s->spec);
    return -1;
}

/* ---- options ----------------------------------------------------------------------------- */

static int push(const char ***list, size_t *n, const char *v)
{
    const char **nl = realloc(*list, (*n + 1) * sizeof(*nl));
    if (nl == NULL)
        return -1;
    nl[(*n)++] = v;
    *list = nl;
    return 0;
}

/* Returns 0, or the exit code (2) after printing why. */
static int parse_args(struct cli *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(field)                                                                                \
    do {                                                                                           \
        if (next == NULL)                                                                          \
            goto missing;                                                                          \
        c->field = next;                                                                           \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            TAKE(config);
        } else if (strncmp(a, "--config=", 9) == 0) {
            c->config = a + 9;
        } else if (strcmp(a, "--trace") == 0) {
            TAKE(trace);
        } else if (strcmp(a, "--group") == 0) {
            TAKE(group);
        } else if (strcmp(a, "--since") == 0) {
            TAKE(since);
        } else if (strcmp(a, "--from-store") == 0) {
            c->from_store = 1;
        } else if (strcmp(a, "--boot") == 0) {
            TAKE(boot);
        } else if (strcmp(a, "--poll") == 0) {
            TAKE(poll);
        } else if (strcmp(a, "--csv") == 0) {
            TAKE(csv);
        } else if (strcmp(a, "--plot") == 0) {
            TAKE(plot);
        } else if (strcmp(a, "--set") == 0 || strcmp(a, "--variant") == 0) {
            if (next == NULL)
                goto missing;
            if (push(a[2] == 's' ? &c->sets : &c->variants,
                     a[2] == 's' ? &c->n_sets : &c->n_variants, next) != 0)
                goto oom;
            i++;
        } else if (strcmp(a, "--sweep") == 0) {
            if (next == NULL)
                goto missing;
            if (c->n_sweeps == MAX_SWEEPS) {
                fprintf(stderr, "asgd: simulate: at most %d --sweep keys\n", MAX_SWEEPS);
                return 2;
            }
            c->sweeps[c->n_sweeps++].spec = next;
            i++;
        } else if (strcmp(a, "--compare") == 0) {
            if (next == NULL || next[0] == '-')
                goto missing;
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                if (push(&c->compare, &c->n_compare, argv[++i]) != 0)
                    goto oom;
            }
        } else if (strcmp(a, "--json") == 0) {
            c->json = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            c->verbose = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        } else {
            fprintf(stderr, "asgd: simulate: unknown option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
#undef TAKE
        continue;
    missing:
        fprintf(stderr, "asgd: simulate: %s needs a value\n", a);
        return 2;
    oom:
        fprintf(stderr, "asgd: simulate: out of memory\n");
        return 1;
    }
    if (c->from_store && (c->trace != NULL || c->config == NULL)) {
        fprintf(stderr, "asgd: simulate: --from-store needs -c FILE (the node's config, for its "
                        "store) and no --trace\n");
        return 2;
    }
    if (!c->from_store && (c->group != NULL || c->since != NULL)) {
        fprintf(stderr, "asgd: simulate: --group and --since go with --from-store\n");
        return 2;
    }
    if (c->trace == NULL && !c->from_store) {
        fprintf(stderr, "asgd: simulate needs --trace FILE (CSV with header t,demand; - for "
                        "stdin) or --from-store\n");
        usage(stderr);
        return 2;
    }
    if (c->n_sweeps > 0 && (c->n_compare > 0 || c->n_variants > 0)) {
        fprintf(stderr, "asgd: simulate: --sweep does not combine with --compare/--variant\n");
        return 2;
    }
    return 0;
}

/* ---- runs -------------------------------------------------------------------------------- */

static int load_group(const char *path, struct group_settings *g, char *err, size_t errlen)
{
    struct asgd_conf conf;
    memset(&conf, 0, sizeof(conf));
    int rc = conf_load(path, &conf, err, errlen);
    if (rc == 0 && conf.n_groups == 0) {
        snprintf(err, errlen, "%s: no group in the file", path);
        rc = -1;
    }
    if (rc == 0)
        *g = conf.groups[0].settings;
    conf_release(&conf);
    return rc;
}

/* --from-store: the group's history and its settings; a note on what was read (stderr). */
static int load_history(const struct cli *c, struct sim_history *h, char *err, size_t errlen)
{
    int64_t since_ms = 24 * 3600 * 1000LL;
    if (c->since != NULL && (clk_parse_duration(c->since, &since_ms) != 0 || since_ms <= 0)) {
        snprintf(err, errlen, "bad --since \"%s\" (a duration: 90m, 24h)", c->since);
        return -1;
    }
    struct asgd_conf conf;
    memset(&conf, 0, sizeof(conf));
    int rc = conf_load(c->config, &conf, err, errlen);
    const char *group = c->group;
    if (rc == 0 && group == NULL) {
        if (conf.n_groups == 0) {
            snprintf(err, errlen, "%s: no group in the file: name one with --group", c->config);
            rc = -1;
        } else {
            group = conf.groups[0].settings.name;
        }
    }
    if (rc == 0)
        rc = sim_history_load(&conf, group, clk_wall_ms() - since_ms, h, err, errlen);
    if (rc == 0)
        fprintf(stderr,
                "history of group \"%s\": %zu samples over %" PRId64 " s, %zu of them at 100 %% "
                "load (where the demand is only a lower bound)\n",
                group, h->samples, (h->last_ms - h->first_ms) / 1000, h->saturated);
    conf_release(&conf);
    return rc;
}

static void print_action(void *arg, int64_t t, int from, int to, const char *cause)
{
    FILE *out = arg;
    fprintf(out, "t=%-8" PRId64 " %d -> %d  %s\n", t, from, to, cause);
}

struct sink {
    struct sim_rec *rec;
    FILE *verbose;
    const char *label;
};

static void on_action(void *arg, int64_t t, int from, int to, const char *cause)
{
    struct sink *s = arg;
    if (s->verbose == NULL)
        return;
    if (s->label != NULL)
        fprintf(s->verbose, "[%s] ", s->label);
    print_action(s->verbose, t, from, to, cause);
}

static void on_second(void *arg, const struct sim_second *sec)
{
    struct sink *s = arg;
    sim_rec_second(s->rec, sec);
}

static const char *policy_label(const struct sim_params *p, char *buf, size_t len)
{
    snprintf(buf, len, "%s", policy_type_name(p->policy.type));
    return buf;
}

/* ---- output ------------------------------------------------------------------------------ */

static void json_run(FILE *out, const struct run *r, const struct cli *c)
{
    char buf[1024];
    sim_result_json(&r->r, buf, sizeof(buf));
    json_t *lab = json_string(r->label);
    char *ls = lab ? json_dumps(lab, JSON_ENCODE_ANY) : NULL;
    /* {"label": ..., "policy": ..., <the result's keys>} */
    fprintf(out, "{\"label\": %s, \"policy\": \"%s\", \"min\": %d, \"max\": %d, ", ls ? ls : "null",
            policy_type_name(r->p.policy.type), r->p.min_size, r->p.max_size);
    for (size_t k = 0; k < c->n_sweeps; k++)
        fprintf(out, "\"%s\": %.10g, ", c->sweeps[k].key, r->key[k]);
    /* the result's keys without its braces: the caller closes the object */
    size_t len = strlen(buf);
    if (len >= 2)
        fprintf(out, "%.*s", (int)(len - 2), buf + 1);
    free(ls);
    json_decref(lab);
}

/* The columns of the comparison, lower is better for all of them. */
static double col(const struct run *r, int k)
{
    switch (k) {
    case 0:
        return r->r.cost;
    case 1:
        return r->r.cost_ratio;
    case 2:
        return r->r.violation_pct;
    case 3:
        return r->r.unserved;
    case 4:
        return (double)r->r.actions;
    default:
        return (double)r->r.flaps;
    }
}

#define NCOL 6

static void print_table(const struct run *runs, size_t n)
{
    static const char *const head[NCOL] = {"cost",     "ratio",   "viol %",
                                           "unserved", "actions", "flaps"};
    static const int decimals[NCOL] = {0, 3, 2, 1, 0, 0};
    double best[NCOL];
    for (int k = 0; k < NCOL; k++) {
        best[k] = INFINITY;
        for (size_t i = 0; i < n; i++)
            if (col(&runs[i], k) < best[k])
                best[k] = col(&runs[i], k);
    }
    int lw = 6;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(runs[i].label) > lw)
            lw = (int)strlen(runs[i].label);
    printf("%-*s", lw, "policy");
    for (int k = 0; k < NCOL; k++)
        printf("  %11s", head[k]);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        printf("%-*s", lw, runs[i].label);
        for (int k = 0; k < NCOL; k++) {
            char v[64];
            snprintf(v, sizeof(v), "%.*f", decimals[k], col(&runs[i], k));
            /* the best of each column is marked with a star (all lower-is-better) */
            printf("  %10s%s", v, n > 1 && col(&runs[i], k) == best[k] ? "*" : " ");
        }
        printf("\n");
    }
    if (n > 1)
        printf("(* best of the column)\n");
}

/* Whether run i is on the Pareto front of (cost ratio, violation %). */
static int pareto(const struct run *runs, size_t n, size_t i)
{
    for (size_t j = 0; j < n; j++) {
        if (j == i)
            continue;
        int no_worse = runs[j].r.cost_ratio <= runs[i].r.cost_ratio &&
                       runs[j].r.violation_pct <= runs[i].r.violation_pct;
        int better = runs[j].r.cost_ratio < runs[i].r.cost_ratio ||
                     runs[j].r.violation_pct < runs[i].r.violation_pct;
        if (no_worse && better)
            return 0;
    }
    return 1;
}

static int by_ratio(const void *a, const void *b)
{
    const struct run *const *x = a, *const *y = b;
    double d = (*x)->r.cost_ratio - (*y)->r.cost_ratio;
    return d < 0 ? -1 : d > 0 ? 1 : 0;
}

static void print_sweep(const struct cli *c, const struct run *runs, size_t n)
{
    for (size_t k = 0; k < c->n_sweeps; k++)
        printf("%-24s", c->sweeps[k].key);
    printf("  %8s  %7s  %9s  %7s  %5s  %s\n", "ratio", "viol %", "unserved", "actions", "flaps",
           "pareto");
    size_t nf = 0;
    const struct run **front = calloc(n, sizeof(*front));
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < c->n_sweeps; k++)
            printf("%-24.10g", runs[i].key[k]);
        int pf = pareto(runs, n, i);
        printf("  %8.3f  %7.2f  %9.1f  %7" PRId64 "  %5" PRId64 "  %s\n", runs[i].r.cost_ratio,
               runs[i].r.violation_pct, runs[i].r.unserved, runs[i].r.actions, runs[i].r.flaps,
               pf ? "*" : "");
        if (pf && front != NULL)
            front[nf++] = &runs[i];
    }
    if (front == NULL)
        return;
    qsort(front, nf, sizeof(*front), by_ratio);
    printf("\nPareto front (no other point has both a lower cost ratio and fewer violations):\n");
    for (size_t i = 0; i < nf; i++) {
        printf("  ");
        for (size_t k = 0; k < c->n_sweeps; k++)
            printf("%s%s=%.10g", k ? ", " : "", c->sweeps[k].key, front[i]->key[k]);
        printf(": ratio %.3f, violations %.2f %%\n", front[i]->r.cost_ratio,
               front[i]->r.violation_pct);
    }
    free(front);
}

static void print_one(const struct run *r)
{
    printf("policy        %s (min %d, max %d, boot %" PRId64 " s, poll %" PRId64 " s)\n",
           policy_type_name(r->p.policy.type), r->p.min_size, r->p.max_size, r->p.boot_s,
           r->p.poll_s);
    printf("seconds       %" PRId64 "\n", r->r.seconds);
    printf("cost          %.0f instance-seconds (oracle %.0f, ratio %.3f)\n", r->r.cost,
           r->r.oracle_cost, r->r.cost_ratio);
    printf("violations    %" PRId64 " s (%.2f %%)\n", r->r.violation_s, r->r.violation_pct);
    printf("unserved      %.1f\n", r->r.unserved);
    printf("actions       %" PRId64 " (%" PRId64 " flaps)\n", r->r.actions, r->r.flaps);
}

/* ---- main -------------------------------------------------------------------------------- */

/* Builds the runs: base (no comparison), one per --compare/--variant, or the sweep grid. */
static int make_runs(struct cli *c, const struct group_settings *base_g,
                     const struct sim_params *base_p, struct run **out, size_t *nout, char *err,
                     size_t errlen)
{
    size_t n = 0;
    if (c->n_sweeps > 0) {
        n = 1;
        for (size_t k = 0; k < c->n_sweeps; k++) {
            if (parse_sweep(&c->sweeps[k], err, errlen) != 0)
                return -1;
            n *= c->sweeps[k].n;
        }
        if (n > MAX_RUNS) {
            snprintf(err, errlen, "the sweep has %zu points (at most %d)", n, MAX_RUNS);
            return -1;
        }
    } else {
        n = c->n_compare + c->n_variants;
        if (n == 0)
            n = 1;
    }
    struct run *runs = calloc(n, sizeof(*runs));
    if (runs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = runs;
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        struct group_settings g = *base_g;
        struct run *r = &runs[i];
        r->p = *base_p;
        char tmp[64];
        if (c->n_sweeps > 0) {
            size_t idx = i;
            char *lab = r->label;
            size_t left = sizeof(r->label);
            for (size_t k = c->n_sweeps; k-- > 0;) {
                const struct sweep *s = &c->sweeps[k];
                r->key[k] = s->from + s->step * (double)(idx % s->n);
                idx /= s->n;
            }
            for (size_t k = 0; k < c->n_sweeps; k++) {
                char kv[160];
                snprintf(kv, sizeof(kv), "%s=%.10g", c->sweeps[k].key, r->key[k]);
                if (apply_set(&g, &r->p, kv, err, errlen) != 0)
                    return -1;
                int w = snprintf(lab, left, "%s%s", k ? " " : "", kv);
                if (w > 0 && (size_t)w < left) {
                    lab += w;
                    left -= (size_t)w;
                }
            }
        } else if (i < c->n_compare) {
            if (load_group(c->compare[i], &g, err, errlen) != 0)
                return -1;
            r->p.min_size = g.min_size;
            r->p.max_size = g.max_size;
            r->p.policy = g.policy;
            /* the --set edits apply to every compared file too */
            for (size_t k = 0; k < c->n_sets; k++)
                if (apply_set(&g, &r->p, c->sets[k], err, errlen) != 0)
                    return -1;
            const char *slash = strrchr(c->compare[i], '/');
            snprintf(r->label, sizeof(r->label), "%s (%s)", slash ? slash + 1 : c->compare[i],
                     policy_label(&r->p, tmp, sizeof(tmp)));
        } else if (c->n_variants > 0) {
            const char *v = c->variants[i - c->n_compare];
            if (apply_sets(&g, &r->p, v, err, errlen) != 0)
                return -1;
            snprintf(r->label, sizeof(r->label), "%s", v);
        } else {
            snprintf(r->label, sizeof(r->label), "%s", policy_label(&r->p, tmp, sizeof(tmp)));
        }
    }
    return 0;
}

static FILE *open_out(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0)
        return stdout;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path, char *err, size_t errlen)
{
    if (f == NULL)
        return 0;
    int bad = ferror(f);
    if (f == stdout)
        return bad || fflush(f) != 0 ? (snprintf(err, errlen, "cannot write stdout"), -1) : 0;
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int sim_cli_main(int argc, char **argv)
{
    struct cli c;
    memset(&c, 0, sizeof(c));
    char err[1024];
    int rc = parse_args(&c, argc, argv);
    struct sim_trace tr = SIM_TRACE_INIT;
    struct run *runs = NULL;
    size_t n = 0;
    FILE *csv = NULL, *plot = NULL;
    struct sink *sinks = NULL;
    struct sim_history hist;
    memset(&hist, 0, sizeof(hist));
    if (rc != 0) {
        rc = rc < 0 ? 0 : rc;
        goto done;
    }
    rc = 1;

    struct group_settings g;
    struct sim_params p;
    sim_params_default(&p);
    if (c.from_store) {
        if (load_history(&c, &hist, err, sizeof(err)) != 0)
            goto fail;
        g = hist.settings;
        tr = hist.trace; /* moved: released once, through tr */
        memset(&hist.trace, 0, sizeof(hist.trace));
    } else if (c.config != NULL) {
        if (load_group(c.config, &g, err, sizeof(err)) != 0)
            goto fail;
    } else {
        /* the model's defaults (simulation.md): min 2, max 20 */
        group_settings_default(&g, "simulated");
        g.min_size = p.min_size;
        g.max_size = p.max_size;
        g.desired_capacity = p.min_size;
    }
    p.min_size = g.min_size;
    p.max_size = g.max_size;
    p.policy = g.policy;
    if (c.boot && parse_seconds("--boot", c.boot, 0, &p.boot_s, err, sizeof(err)) != 0)
        goto fail;
    if (c.poll && parse_seconds("--poll", c.poll, 1, &p.poll_s, err, sizeof(err)) != 0)
        goto fail;
    if (c.n_compare == 0)
        for (size_t k = 0; k < c.n_sets; k++)
            if (apply_set(&g, &p, c.sets[k], err, sizeof(err)) != 0)
                goto fail;
    if (make_runs(&c, &g, &p, &runs, &n, err, sizeof(err)) != 0)
        goto fail;
    if (!c.from_store && sim_trace_load(c.trace, &tr, err, sizeof(err)) != 0)
        goto fail;

    if (c.csv != NULL) {
        if ((csv = open_out(c.csv, err, sizeof(err))) == NULL)
            goto fail;
        sim_csv_header(csv, n > 1);
    }
    if (c.plot != NULL && (plot = open_out(c.plot, err, sizeof(err))) == NULL)
        goto fail;
    sinks = calloc(n, sizeof(*sinks));
    if (sinks == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (tr.n == 0) { /* both loaders refuse an empty trace; the last t below needs one row */
        snprintf(err, sizeof(err), "empty trace");
        goto fail;
    }
    int64_t seconds = tr.t[tr.n - 1] + 1;
    for (size_t i = 0; i < n; i++) {
        struct run *r = &runs[i];
        struct sink *s = &sinks[i];
        s->label = n > 1 ? r->label : NULL;
        s->verbose = c.verbose ? (c.json ? stderr : stdout) : NULL;
        r->p.arg = s;
        r->p.on_action = on_action;
        if (csv != NULL || plot != NULL) {
            r->rec = sim_rec_new(seconds, csv, n > 1 ? r->label : NULL);
            if (r->rec == NULL) {
                snprintf(err, sizeof(err), "out of memory");
                goto fail;
            }
            s->rec = r->rec;
            r->p.on_second = on_second;
        }
        if (sim_run(&r->p, &tr, &r->r, err, sizeof(err)) != 0)
            goto fail;
    }
    if (close_out(csv, c.csv, err, sizeof(err)) != 0) {
        csv = NULL;
        goto fail;
    }
    csv = NULL;
    if (plot != NULL) {
        struct sim_rec **recs = calloc(n, sizeof(*recs));
        const char **labels = calloc(n, sizeof(*labels));
        struct sim_result *res = calloc(n, sizeof(*res));
        int prc = -1;
        if (recs && labels && res) {
            for (size_t i = 0; i < n; i++) {
                recs[i] = runs[i].rec;
                labels[i] = runs[i].label;
                res[i] = runs[i].r;
            }
            prc = sim_plot_svg(plot, recs, labels, res, n);
        }
        free(recs);
        free(labels);
        free(res);
        int crc = close_out(plot, c.plot, err, sizeof(err));
        plot = NULL;
        if (prc != 0 || crc != 0) {
            if (crc == 0)
                snprintf(err, sizeof(err), "%s: cannot write the plot", c.plot);
            goto fail;
        }
    }

    if (c.json) {
        if (n == 1 && c.n_compare == 0 && c.n_variants == 0 && c.n_sweeps == 0) {
            char buf[1024];
            sim_result_json(&runs[0].r, buf, sizeof(buf));
            printf("%s\n", buf);
        } else {
            printf("[");
            for (size_t i = 0; i < n; i++) {
                printf(i ? ",\n " : "");
                json_run(stdout, &runs[i], &c);
                if (c.n_sweeps > 0)
                    printf(", \"pareto\": %s", pareto(runs, n, i) ? "true" : "false");
                printf("}");
            }
            printf("]\n");
        }
    } else if (c.n_sweeps > 0) {
        print_sweep(&c, runs, n);
    } else if (n == 1 && c.n_compare == 0 && c.n_variants == 0) {
        print_one(&runs[0]);
    } else {
        printf("trace %s (%" PRId64 " s), boot %" PRId64 " s, poll %" PRId64 " s\n",
               c.trace ? c.trace : "(the group's history)", seconds, p.boot_s, p.poll_s);
        print_table(runs, n);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "asgd: %s\n", err);
done:
    if (csv != NULL && csv != stdout)
        fclose(csv);
    if (plot != NULL && plot != stdout)
        fclose(plot);
    for (size_t i = 0; i < n; i++)
        sim_rec_free(runs[i].rec);
    free(runs);
    free(sinks);
    sim_trace_release(&tr);
    free(c.sets);
    free(c.variants);
    free(c.compare);
    return rc;
}
