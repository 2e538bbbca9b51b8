/*
 * sim.c - the fleet model of simulation.md around the controller's policy.
 *
 * The model keeps counts, not instances: InService is a number, booting
 * instances are a FIFO of launch times (at most max_size of them), so a step
 * is O(1) amortised plus one policy_evaluate() call and a run over a month
 * of seconds takes well under a second. The step order is simulation.md's,
 * literally: boot, load, observe (every poll_s), decide, act, account.
 */
#include "sim/sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#include "common/banned.h"

#define EPS          1e-9
#define SIM_MAX_FILE (256L * 1024 * 1024)

#define set_err util_set_err

void sim_trace_release(struct sim_trace *tr)
{
    if (tr == NULL)
        return;
    free(tr->t);
    free(tr->demand);
    memset(tr, 0, sizeof(*tr));
}

struct row {
    int64_t t;
    double demand;
    int line;
};

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t ? 1 : 0;
}

/* Trims spaces, tabs and a CR at both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
        (*e)--;
}

static int parse_row(const char *name, int line, const char *s, const char *e, struct row *r,
                     char *err, size_t errlen)
{
    char buf[128];
    const char *comma = memchr(s, ',', (size_t)(e - s));
    if (comma == NULL) {
        set_err(err, errlen, "%s:%d: expected \"t,demand\"", name, line);
        return -1;
    }
    /* t */
    const char *a = s, *ae = comma;
    trim(&a, &ae);
    size_t n = (size_t)(ae - a);
    if (n == 0 || n >= sizeof(buf)) {
        set_err(err, errlen, "%s:%d: t is not a whole number of seconds", name, line);
        return -1;
    }
    memcpy(buf, a, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long t = strtoll(buf, &end, 10);
    if (*end != '\0' || errno == ERANGE || buf[0] == '+' || buf[0] == '-' || t < 0) {
        set_err(err, errlen, "%s:%d: t \"%s\" is not a whole number of seconds >= 0", name, line,
                buf);
        return -1;
    }
    if (t > SIM_MAX_SECONDS) {
        set_err(err, errlen, "%s:%d: t %lld is beyond the limit of %lld s", name, line, t,
                (long long)SIM_MAX_SECONDS);
        return -1;
    }
    /* demand */
    const char *b = comma + 1, *be = e;
    trim(&b, &be);
    n = (size_t)(be - b);
    if (n == 0 || n >= sizeof(buf)) {
        set_err(err, errlen, "%s:%d: demand is not a number", name, line);
        return -1;
    }
    memcpy(buf, b, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == 'e' || ch == 'E' || ch == '-' ||
              ch == '+')) {
            set_err(err, errlen, "%s:%d: demand \"%s\" is not a number", name, line, buf);
            return -1;
        }
    }
    errno = 0;
    double d = strtod(buf, &end);
    if (*end != '\0' || end == buf || !isfinite(d) || d < 0) {
        set_err(err, errlen, "%s:%d: demand \"%s\" is not a finite number >= 0", name, line, buf);
        return -1;
    }
    if (d > SIM_MAX_DEMAND) {
        set_err(err, errlen, "%s:%d: demand %s is beyond the limit of %g instance-equivalents",
                name, line, buf, SIM_MAX_DEMAND);
        return -1;
    }
    r->t = t;
    r->demand = d;
    r->line = line;
    return 0;
}

int sim_trace_parse(const char *name, const char *text, size_t len, struct sim_trace *out,
                    char *err, size_t errlen)
{
    struct row *rows = NULL;
    size_t n = 0, cap = 0;
    int line = 0, header = 0, rc = -1;
    const char *s = text, *end = text + len;

    memset(out, 0, sizeof(*out));
    if (name == NULL)
        name = "<trace>";
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *a = s, *ae = le;
        line++;
        s = nl ? nl + 1 : end;
        trim(&a, &ae);
        if (a == ae)
            continue;
        if (!header) {
            if (!((size_t)(ae - a) == 8 && memcmp(a, "t,demand", 8) == 0)) {
                set_err(err, errlen, "%s:%d: expected the header \"t,demand\"", name, line);
                goto out;
            }
            header = 1;
            continue;
        }
        if (n >= SIM_MAX_ROWS) {
            set_err(err, errlen, "%s:%d: more than %d rows", name, line, SIM_MAX_ROWS);
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            if (cap > SIM_MAX_ROWS)
                cap = SIM_MAX_ROWS;
            struct row *nr = realloc(rows, cap * sizeof(*nr));
            if (nr == NULL) {
                set_err(err, errlen, "%s: out of memory", name);
                goto out;
            }
            rows = nr;
        }
        if (parse_row(name, line, a, ae, &rows[n], err, errlen) != 0)
            goto out;
        n++;
    }
    if (!header) {
        set_err(err, errlen, "%s: empty trace (expected the header \"t,demand\")", name);
        goto out;
    }
    if (n == 0) {
        set_err(err, errlen, "%s: no rows after the header", name);
        goto out;
    }
    qsort(rows, n, sizeof(*rows), row_cmp);
    for (size_t i = 1; i < n; i++) {
        if (rows[i].t == rows[i - 1].t) {
            int l1 = rows[i].line < rows[i - 1].line ? rows[i].line : rows[i - 1].line;
            int l2 = rows[i].line < rows[i - 1].line ? rows[i - 1].line : rows[i].line;
            set_err(err, errlen, "%s:%d: t %lld repeated (first at line %d)", name, l2,
                    (long long)rows[i].t, l1);
            goto out;
        }
    }
    if (rows[0].t != 0) {
        set_err(err, errlen, "%s:%d: the trace must start at t = 0 (first t is %lld)", name,
                rows[0].line, (long long)rows[0].t);
        goto out;
    }
    out->t = malloc(n * sizeof(*out->t));
    out->demand = malloc(n * sizeof(*out->demand));
    if (out->t == NULL || out->demand == NULL) {
        set_err(err, errlen, "%s: out of memory", name);
        sim_trace_release(out);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        out->t[i] = rows[i].t;
        out->demand[i] = rows[i].demand;
    }
    out->n = n;
    rc = 0;
out:
    free(rows);
    return rc;
}

int sim_trace_load(const char *path, struct sim_trace *out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    int in = strcmp(path, "-") == 0;
    const char *name = in ? "<stdin>" : path;
    if (util_read_file(in ? "/dev/stdin" : path, (size_t)SIM_MAX_FILE, &buf, &len, err, errlen) !=
        0) {
        if (in)
            set_err(err, errlen, "<stdin>: cannot read the trace");
        return -1;
    }
    if (memchr(buf, '\0', len) != NULL) {
        set_err(err, errlen, "%s: not a text file (NUL byte)", name);
        goto out;
    }
    rc = sim_trace_parse(name, buf, len, out, err, errlen);
out:
    free(buf);
    return rc;
}

void sim_params_default(struct sim_params *p)
{
    memset(p, 0, sizeof(*p));
    p->min_size = 2;
    p->max_size = 20;
    policy_settings_default(&p->policy, POLICY_THRESHOLD);
    p->boot_s = 60;
    p->poll_s = 5;
}

static int needed(double demand, int min, int max)
{
    double x = ceil(demand / 0.8 - EPS);
    if (x > (double)max)
        return max < min ? min : max;
    int n = (int)x;
    if (n > max)
        n = max;
    if (n < min)
        n = min;
    return n;
}

int sim_run(const struct sim_params *p, const struct sim_trace *tr, struct sim_result *out,
            char *err, size_t errlen)
{
    if (p->min_size < 0 || p->max_size < p->min_size || p->max_size > POLICY_MAX_SIZE) {
        set_err(err, errlen, "invalid sizes: min %d, max %d (0 <= min <= max <= %d)", p->min_size,
                p->max_size, POLICY_MAX_SIZE);
        return -1;
    }
    if (p->boot_s < 0 || p->boot_s > SIM_MAX_SECONDS || p->poll_s < 1 ||
        p->poll_s > SIM_MAX_SECONDS) {
        set_err(err, errlen, "invalid timing: boot %llds, poll %llds", (long long)p->boot_s,
                (long long)p->poll_s);
        return -1;
    }
    if (tr == NULL || tr->n == 0 || tr->t[0] != 0) {
        set_err(err, errlen, "empty trace");
        return -1;
    }
    /* booting instances: a ring of launch times, oldest at head */
    int64_t *boot = malloc(((size_t)p->max_size + 1) * sizeof(*boot));
    if (boot == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    size_t bcap = (size_t)p->max_size + 1, bhead = 0, nboot = 0;
    struct policy_state state;
    memset(&state, 0, sizeof(state));
    struct policy_state *st = &state;
    struct sim_result r;
    memset(&r, 0, sizeof(r));
    int in_service = p->min_size;
    double observed = -1;
    int last_dir = 0;
    int prev_needed = p->min_size;
    size_t row = 0;
    int64_t last_t = tr->t[tr->n - 1];

    for (int64_t t = 0; t <= last_t; t++) {
        while (row + 1 < tr->n && tr->t[row + 1] <= t)
            row++;
        double demand = tr->demand[row];

        /* 1. boots complete */
        while (nboot > 0 && boot[bhead] <= t - p->boot_s) {
            bhead = (bhead + 1) % bcap;
            nboot--;
            in_service++;
        }
        /* 2. load of every in-service instance */
        double load;
        if (in_service > 0)
            load = fmin(100.0, 100.0 * demand / in_service);
        else
            load = demand > 0 ? 100.0 : 0.0;
        /* 3. the monitor's sample */
        if (t % p->poll_s == 0)
            observed = load;
        /* 4. the policy */
        int n = in_service + (int)nboot;
        struct policy_input in = {.now_ms = (t + 1) * 1000,
                                  .min_size = p->min_size,
                                  .max_size = p->max_size,
                                  .current = n,
                                  .in_service = in_service,
                                  .avg_load = observed};
        struct policy_decision d;
        policy_evaluate(&p->policy, st, &in, &d);
        int desired = d.desired;
        if (desired < p->min_size)
            desired = p->min_size;
        if (desired > p->max_size)
            desired = p->max_size;
        /* 5. act */
        if (desired != n) {
            int dir = desired > n ? 1 : -1;
            r.actions++;
            if (last_dir != 0 && dir != last_dir)
                r.flaps++;
            last_dir = dir;
            if (p->on_action != NULL)
                p->on_action(p->arg, t, n, desired, d.cause);
        }
        if (desired > n) {
            for (int i = 0; i < desired - n; i++) {
                boot[(bhead + nboot) % bcap] = t;
                nboot++;
            }
        } else if (desired < n) {
            int drop = n - desired;
            /* the newest booting instances first (the tail of the FIFO) */
            int c = drop < (int)nboot ? drop : (int)nboot;
            nboot -= (size_t)c;
            in_service -= drop - c;
        }
        /* 6. account */
        r.cost += in_service + (double)nboot;
        int violation = demand > 0.8 * in_service;
        r.violation_s += violation;
        if (demand > in_service)
            r.unserved += demand - in_service;
        int need = needed(demand, p->min_size, p->max_size);
        r.oracle_cost += need;
        if (need > prev_needed)
            r.oracle_cost += (double)(need - prev_needed) * (double)p->boot_s;
        prev_needed = need;
        if (p->on_second != NULL) {
            struct sim_second sec = {.t = t,
                                     .demand = demand,
                                     .desired = desired,
                                     .in_service = in_service,
                                     .booting = (int)nboot,
                                     .load = load,
                                     .violation = violation};
            p->on_second(p->arg, &sec);
        }
    }
    policy_state_reset(st);
    free(boot);
    r.seconds = last_t + 1;
    r.violation_pct = 100.0 * (double)r.violation_s / (double)r.seconds;
    r.cost_ratio = r.oracle_cost > 0 ? r.cost / r.oracle_cost : 0;
    *out = r;
    return 0;
}

/* A JSON number with prec significant digits (or 6 decimals when prec is 0), or null for
   what JSON cannot hold (inf, nan). */
static void json_num(char *buf, size_t len, int prec, double v)
{
    if (!isfinite(v))
        snprintf(buf, len, "null");
    else if (prec == 0)
        snprintf(buf, len, "%.6f", v);
    else
        snprintf(buf, len, "%.*g", prec, v);
}

int sim_result_json(const struct sim_result *r, char *buf, size_t len)
{
    char cost[64], pct[64], unserved[64], oracle[64], ratio[64];
    json_num(cost, sizeof(cost), 17, r->cost);
    json_num(pct, sizeof(pct), 6, r->violation_pct);
    json_num(unserved, sizeof(unserved), 0, r->unserved);
    json_num(oracle, sizeof(oracle), 17, r->oracle_cost);
    json_num(ratio, sizeof(ratio), 6, r->oracle_cost > 0 ? r->cost_ratio : NAN);
    return snprintf(buf, len,
                    "{\"seconds\": %lld, \"cost\": %s, \"violation_s\": %lld, "
                    "\"violation_pct\": %s, \"unserved\": %s, \"actions\": %lld, "
                    "\"flaps\": %lld, \"oracle_cost\": %s, \"cost_ratio\": %s}",
                    (long long)r->seconds, cost, (long long)r->violation_s, pct, unserved,
                    (long long)r->actions, (long long)r->flaps, oracle, ratio);
}
