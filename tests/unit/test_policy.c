/*
 * Unit tests for controller/policy in virtual time: the seed's exact
 * threshold arithmetic over many (n, min, max, factor) combinations,
 * evaluation-period gating, cooldown, the [min, max] bounds, the target
 * policy's tolerance band and scale-down window, the cause strings, and a
 * self-test against a small reference model of simulation.md's fleet that
 * replays the CSV files of examples/traces/ through both policies and checks invariants
 * after every simulated second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/policy.h"
#include "common/banned.h"

#define T0 1000000 /* virtual epoch: any non-zero time works */

static struct policy_decision run_once(const struct policy_settings *s, int n, int min, int max,
                                       double avg)
{
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    struct policy_input in = {
        .now_ms = T0, .min_size = min, .max_size = max, .current = n, .avg_load = avg};
    struct policy_decision d;
    assert_int_equal(policy_evaluate(s, &st, &in, &d), 0);
    policy_state_reset(&st);
    return d;
}

static void defaults_and_names(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    assert_int_equal(s.type, POLICY_THRESHOLD);
    assert_true(s.up_threshold == 70 && s.down_threshold == 20);
    assert_true(s.up_factor == 2 && s.down_factor == 0.5);
    assert_int_equal(s.evaluation_period_ms, 60000);
    assert_int_equal(s.cooldown_ms, 0);
    policy_settings_default(&s, POLICY_TARGET);
    assert_int_equal(s.type, POLICY_TARGET);
    assert_true(s.target == 60 && s.tolerance == 0.1);
    assert_int_equal(s.evaluation_period_ms, 15000);
    assert_int_equal(s.scale_down_window_ms, 300000);
    assert_string_equal(policy_type_name(POLICY_THRESHOLD), "threshold");
    assert_string_equal(policy_type_name(POLICY_TARGET), "target");
    assert_string_equal(policy_type_name(7), "unknown");
    assert_int_equal(policy_type_parse("threshold"), POLICY_THRESHOLD);
    assert_int_equal(policy_type_parse("target"), POLICY_TARGET);
    assert_int_equal(policy_type_parse("Target"), -1);
    assert_int_equal(policy_type_parse(NULL), -1);
}

/* n -> max(min, 1, min(max, floor(n * f))) for load above the threshold */
static void threshold_up_arithmetic(void **state)
{
    (void)state;
    static const struct {
        int n, min, max;
        double f;
        int want;
    } cases[] = {
        {2, 1, 10, 2, 4},      {3, 1, 5, 2, 5},     {4, 1, 5, 2, 5},    {1, 1, 10, 2, 2},
        {2, 1, 10, 1.5, 3},    {3, 1, 10, 1.5, 4},  {1, 1, 10, 1.5, 1}, /* floor(1.5) = 1 */
        {0, 0, 5, 2, 1},                                                /* at least 1 */
        {5, 2, 100, 3, 15},    {7, 2, 100, 1.1, 7},                     /* floor(7.7) = 7 */
        {10, 2, 100, 1.1, 11}, {3, 1, 10, 1.34, 4},                     /* floor(4.02) */
        {3, 3, 10, 2, 6},      {9, 1, 10, 2, 10},
    };
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s.up_factor = cases[i].f;
        struct policy_decision d = run_once(&s, cases[i].n, cases[i].min, cases[i].max, 90);
        if (d.desired != cases[i].want)
            fail_msg("case %zu: n=%d min=%d max=%d f=%g: got %d want %d (%s)", i, cases[i].n,
                     cases[i].min, cases[i].max, cases[i].f, d.desired, cases[i].want, d.cause);
        assert_int_equal(d.evaluated, 1);
        assert_int_equal(d.changed, cases[i].want != cases[i].n);
        if (!d.changed)
            assert_non_null(strstr(d.cause, "yields no growth"));
    }
}

/* n -> n - floor(min(n * f, n - min)) for load below the threshold */
static void threshold_down_arithmetic(void **state)
{
    (void)state;
    static const struct {
        int n, min, max;
        double f;
        int want;
    } cases[] = {
        {5, 2, 10, 0.5, 3},   {3, 1, 10, 0.5, 2},  {4, 3, 10, 0.5, 3},
        {10, 1, 10, 0.25, 8}, {2, 0, 10, 0.5, 1},  {1, 0, 10, 0.5, 1}, /* floor(0.5) = 0 */
        {4, 1, 10, 0.5, 2},   {9, 1, 10, 0.5, 5},  {9, 8, 10, 0.5, 8},
        {6, 0, 10, 0.9, 1},   {10, 0, 10, 0.3, 7}, /* floor(3.0000000000000004): 3, not 2 */
    };
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s.down_factor = cases[i].f;
        struct policy_decision d = run_once(&s, cases[i].n, cases[i].min, cases[i].max, 5);
        if (d.desired != cases[i].want)
            fail_msg("case %zu: n=%d min=%d f=%g: got %d want %d (%s)", i, cases[i].n, cases[i].min,
                     cases[i].f, d.desired, cases[i].want, d.cause);
        assert_int_equal(d.changed, cases[i].want != cases[i].n);
        if (!d.changed)
            assert_non_null(strstr(d.cause, "yields no reduction"));
    }
}

static void threshold_band_and_limits(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    /* thresholds are strict: exactly 70 or 20 changes nothing */
    struct policy_decision d = run_once(&s, 3, 1, 10, 70);
    assert_int_equal(d.changed, 0);
    assert_string_equal(d.cause, "average load 70% within 20%..70%: 3 stays");
    d = run_once(&s, 3, 1, 10, 20);
    assert_int_equal(d.changed, 0);
    d = run_once(&s, 3, 1, 10, 70.5);
    assert_int_equal(d.desired, 6);
    assert_string_equal(d.cause, "average load 70.5% > 70% for 60s: 3 -> 6");
    /* at max: no up; at min: no down */
    d = run_once(&s, 5, 1, 5, 99);
    assert_int_equal(d.changed, 0);
    d = run_once(&s, 2, 2, 5, 1);
    assert_int_equal(d.changed, 0);
}

static void cause_strings(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    struct policy_decision d = run_once(&s, 2, 1, 10, 83);
    assert_string_equal(d.cause, "average load 83% > 70% for 60s: 2 -> 4");
    d = run_once(&s, 4, 2, 10, 12);
    assert_string_equal(d.cause, "average load 12% < 20% for 60s: 4 -> 2");
    d = run_once(&s, 0, 2, 10, -1);
    assert_string_equal(d.cause, "below minimum: 0 -> 2");
    assert_int_equal(d.desired, 2);
    /* above max, the seed's down step applies literally (then the clamp) */
    d = run_once(&s, 7, 1, 5, 50);
    assert_string_equal(d.cause, "above maximum: 7 -> 4");
    s.evaluation_period_ms = 10000;
    d = run_once(&s, 2, 1, 10, 83);
    assert_string_equal(d.cause, "average load 83% > 70% for 10s: 2 -> 4");

    policy_settings_default(&s, POLICY_TARGET);
    d = run_once(&s, 4, 1, 10, 90);
    assert_string_equal(d.cause, "target 60%: load 90% (ratio 1.50): 4 -> 6");
}

static void no_data(void **state)
{
    (void)state;
    struct policy_settings s;
    for (int type = 0; type < 2; type++) {
        policy_settings_default(&s, type);
        struct policy_decision d = run_once(&s, 3, 1, 10, -1);
        assert_int_equal(d.evaluated, 1);
        assert_int_equal(d.changed, 0);
        assert_int_equal(d.desired, 3);
        assert_non_null(strstr(d.cause, "no load data"));
        /* bounds still apply */
        d = run_once(&s, 0, 2, 10, -1);
        assert_int_equal(d.desired, 2);
        d = run_once(&s, 12, 2, 10, -1);
        assert_int_equal(d.desired, type == POLICY_THRESHOLD ? 6 : 10); /* 12 - floor(6) */
    }
}

static void bounds_for_both_policies(void **state)
{
    (void)state;
    struct policy_settings s;
    /*
     * threshold: n < min takes the seed's up step (at least min), n > max its down step
     * (at most max); target: n < min goes to min, n > max to max.
     */
    policy_settings_default(&s, POLICY_THRESHOLD);
    assert_int_equal(run_once(&s, 1, 3, 10, 50).desired, 3);
    assert_int_equal(run_once(&s, 2, 3, 10, 50).desired, 4); /* floor(2*2) = 4 >= 3 */
    assert_int_equal(run_once(&s, 2, 3, 3, 50).desired, 3);
    assert_int_equal(run_once(&s, 10, 1, 5, 50).desired, 5);
    assert_int_equal(run_once(&s, 6, 1, 5, 50).desired, 3); /* 6 - floor(min(3, 5)) */
    assert_int_equal(run_once(&s, 6, 4, 5, 50).desired, 4); /* 6 - floor(min(3, 2)) */
    policy_settings_default(&s, POLICY_TARGET);
    assert_int_equal(run_once(&s, 1, 3, 10, 60).desired, 3);
    assert_int_equal(run_once(&s, 8, 1, 5, 60).desired, 5);
    /* min == max pins the group */
    assert_int_equal(run_once(&s, 4, 4, 4, 100).desired, 4);
    assert_int_equal(run_once(&s, 4, 4, 4, 0).desired, 4);
}

static struct policy_decision step(const struct policy_settings *s, struct policy_state *st,
                                   int64_t now, int n, int min, int max, double avg)
{
    struct policy_input in = {
        .now_ms = now, .min_size = min, .max_size = max, .current = n, .avg_load = avg};
    struct policy_decision d;
    assert_int_equal(policy_evaluate(s, st, &in, &d), 0);
    return d;
}

static void evaluation_period_gating(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    /* the first call evaluates */
    struct policy_decision d = step(&s, &st, T0, 2, 1, 10, 50);
    assert_int_equal(d.evaluated, 1);
    assert_int_equal(d.changed, 0);
    /* load spikes, but the next evaluation is only due after 60 s */
    for (int64_t t = T0 + 1000; t < T0 + 60000; t += 1000) {
        d = step(&s, &st, t, 2, 1, 10, 95);
        assert_int_equal(d.evaluated, 0);
        assert_int_equal(d.changed, 0);
        assert_int_equal(d.desired, 2);
    }
    d = step(&s, &st, T0 + 60000, 2, 1, 10, 95);
    assert_int_equal(d.evaluated, 1);
    assert_int_equal(d.desired, 4);
    /* the 1 s ticks of the controller evaluate at 60 s intervals */
    int evals = 0;
    for (int64_t t = T0 + 61000; t <= T0 + 600000; t += 1000)
        evals += step(&s, &st, t, 4, 1, 10, 50).evaluated;
    assert_int_equal(evals, 9);
    policy_state_reset(&st);
}

static void cooldown(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    s.evaluation_period_ms = 10000;
    s.cooldown_ms = 30000;
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    struct policy_decision d = step(&s, &st, T0, 1, 1, 16, 95);
    assert_int_equal(d.desired, 2);
    d = step(&s, &st, T0 + 10000, 2, 1, 16, 95);
    assert_int_equal(d.evaluated, 1);
    assert_int_equal(d.changed, 0);
    assert_string_equal(d.cause, "average load 95% > 70%, but cooling down (20s left): 2 stays");
    d = step(&s, &st, T0 + 20000, 2, 1, 16, 5);
    assert_int_equal(d.changed, 0);
    assert_non_null(strstr(d.cause, "cooling down (10s left)"));
    d = step(&s, &st, T0 + 30000, 2, 1, 16, 95);
    assert_int_equal(d.desired, 4);
    /* the bounds ignore the cooldown and the period */
    d = step(&s, &st, T0 + 31000, 4, 1, 3, 95);
    assert_int_equal(d.desired, 2); /* 4 - floor(min(2, 3)) */
    assert_int_equal(d.changed, 1);
    /* and count as an action: the cooldown restarts */
    d = step(&s, &st, T0 + 40000, 2, 1, 16, 95);
    assert_int_equal(d.changed, 0);
    assert_non_null(strstr(d.cause, "cooling down (21s left)"));

    /* cooldown 0 means one evaluation period */
    policy_settings_default(&s, POLICY_THRESHOLD);
    s.evaluation_period_ms = 10000;
    policy_state_reset(&st);
    assert_int_equal(step(&s, &st, T0, 1, 1, 16, 95).desired, 2);
    assert_int_equal(step(&s, &st, T0 + 10000, 2, 1, 16, 95).desired, 4);
    assert_int_equal(step(&s, &st, T0 + 20000, 4, 1, 16, 95).desired, 8);
    assert_int_equal(step(&s, &st, T0 + 30000, 8, 1, 16, 95).desired, 16);
    policy_state_reset(&st);
}

static void target_arithmetic_and_tolerance(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_TARGET);
    static const struct {
        int n;
        double avg;
        int want;
    } cases[] = {
        {4, 60, 4},   {4, 65, 4},   {4, 66, 4},  /* |r-1| = 0.1: inside the band */
        {4, 54, 4},   {4, 67, 5},   {4, 53, 4},  /* ceil(3.53) = 4 */
        {4, 90, 6},   {5, 72, 6},   {3, 70, 4},  /* 5*72/60 is exactly 6 */
        {4, 100, 7},  {4, 0, 1},    {10, 30, 5}, /* clamped to min 1 */
        {6, 100, 10}, {9, 100, 10},              /* clamped to max 10 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_decision d = run_once(&s, cases[i].n, 1, 10, cases[i].avg);
        if (d.desired != cases[i].want)
            fail_msg("case %zu: n=%d avg=%g: got %d want %d (%s)", i, cases[i].n, cases[i].avg,
                     d.desired, cases[i].want, d.cause);
    }
    s.tolerance = 0;
    assert_int_equal(run_once(&s, 4, 1, 10, 61).desired, 5);
    s.target = 50;
    s.tolerance = 0.2;
    assert_int_equal(run_once(&s, 4, 1, 10, 60).desired, 4);
    assert_int_equal(run_once(&s, 4, 1, 10, 61).desired, 5);
    struct policy_decision d = run_once(&s, 4, 1, 10, 55);
    assert_string_equal(d.cause, "target 50%: load 55% (ratio 1.10) within tolerance 0.2: 4 stays");
}

static void target_scale_down_window(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_TARGET);
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    int n = 4;
    /* t = 0: scale-up is immediate */
    struct policy_decision d = step(&s, &st, T0, n, 1, 10, 90);
    assert_int_equal(d.desired, 6);
    n = d.desired;
    /* t = 15: on target (recommendation 6 recorded) */
    d = step(&s, &st, T0 + 15000, n, 1, 10, 60);
    assert_int_equal(d.changed, 0);
    /* from t = 30 load falls to 20%: recommendation 2, held by the 6s of t = 0 and 15 */
    for (int64_t t = 30000; t <= 300000; t += 15000) {
        d = step(&s, &st, T0 + t, n, 1, 10, 20);
        assert_int_equal(d.evaluated, 1);
        if (d.changed)
            fail_msg("t=%lld: scaled down inside the window: %s", (long long)t / 1000, d.cause);
    }
    assert_string_equal(d.cause, "target 60%: load 20% (ratio 0.33) recommends 2, held by 300s "
                                 "scale-down window: 6 stays");
    /* t = 315: the last 6 (t = 15) has left the window */
    d = step(&s, &st, T0 + 315000, n, 1, 10, 20);
    assert_int_equal(d.desired, 2);

    /* a window max between the recommendation and n: scale down to it */
    policy_state_reset(&st);
    d = step(&s, &st, T0, 8, 1, 10, 45); /* rec ceil(6.0) = 6 */
    assert_int_equal(d.desired, 6);
    d = step(&s, &st, T0 + 15000, 8, 1, 10, 15); /* rec 2, window max 6 */
    assert_int_equal(d.desired, 6);
    assert_string_equal(d.cause, "target 60%: load 15% (ratio 0.25): 8 -> 6 (recommends 2, "
                                 "highest in 300s window)");
    /* scale-up ignores the window */
    d = step(&s, &st, T0 + 30000, 6, 1, 10, 100);
    assert_int_equal(d.desired, 10);

    /* a window of 3600 s at 15 s (240 evaluations) is kept whole: the 9 recommended at
       the start holds every scale-down until it leaves the window, not after 64 periods */
    policy_settings_default(&s, POLICY_TARGET);
    s.scale_down_window_ms = 3600000;
    policy_state_reset(&st);
    step(&s, &st, T0, 5, 1, 10, 100); /* rec 9 */
    for (int i = 1; i < 240; i++) {
        d = step(&s, &st, T0 + i * 15000, 9, 1, 10, 40); /* rec 6 */
        assert_int_equal(d.desired, 9);
    }
    d = step(&s, &st, T0 + 240 * 15000, 9, 1, 10, 40);
    assert_int_equal(d.desired, 6);
    /* many distinct recommendations at 1 s: the deque never exceeds one entry per value */
    policy_settings_default(&s, POLICY_TARGET);
    s.evaluation_period_ms = 1000;
    s.scale_down_window_ms = 86400000;
    s.tolerance = 0;
    policy_state_reset(&st);
    for (int i = 0; i < 20000; i++) {
        d = step(&s, &st, T0 + i * 1000, 4000, 1, 4096, (double)(i % 97) + 1);
        assert_true(st.window_n <= POLICY_WINDOW_CAP);
    }
    assert_int_equal(d.desired, 4000); /* the window's highest (ceil(4000 * 97 / 60) > 4000) */
    policy_state_reset(&st);
}

static void target_not_due(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_TARGET);
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    assert_int_equal(step(&s, &st, T0, 4, 1, 10, 60).evaluated, 1);
    struct policy_decision d = step(&s, &st, T0 + 14999, 4, 1, 10, 100);
    assert_int_equal(d.evaluated, 0);
    assert_int_equal(d.changed, 0);
    d = step(&s, &st, T0 + 15000, 4, 1, 10, 100);
    assert_int_equal(d.desired, 7);
    policy_state_reset(&st);
}

/* ---- reference model of simulation.md --------------------------------------------------- */

struct trace {
    int n;
    int t[4096];
    double demand[4096];
};

static int read_trace(const char *path, struct trace *tr)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    tr->n = 0;
    if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "t,demand", 8) != 0) {
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL && tr->n < 4096) {
        char *end;
        long t = strtol(line, &end, 10);
        if (*end != ',')
            continue;
        tr->t[tr->n] = (int)t;
        tr->demand[tr->n] = strtod(end + 1, NULL);
        tr->n++;
    }
    fclose(f);
    /* rows may come in any order: sort by t (insertion sort, small) */
    for (int i = 1; i < tr->n; i++) {
        for (int j = i; j > 0 && tr->t[j - 1] > tr->t[j]; j--) {
            int tt = tr->t[j];
            tr->t[j] = tr->t[j - 1];
            tr->t[j - 1] = tt;
            double dd = tr->demand[j];
            tr->demand[j] = tr->demand[j - 1];
            tr->demand[j - 1] = dd;
        }
    }
    return tr->n > 0 ? 0 : -1;
}

struct model_result {
    long cost, violation_s, actions, evaluations;
    double unserved;
};

static struct model_result run_model(const struct trace *tr, const struct policy_settings *s,
                                     int min, int max, int boot_s, int poll_s)
{
    struct model_result r = {0};
    int in_service = min;
    int booting_at[256]; /* launch time of each booting instance, oldest first */
    int nboot = 0;
    double observed = -1;
    int row = 0;
    int last_t = tr->t[tr->n - 1];
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    int64_t last_action = -1;
    int cooldown_s = (int)((s->cooldown_ms > 0 ? s->cooldown_ms : s->evaluation_period_ms) / 1000);

    for (int t = 0; t <= last_t; t++) {
        while (row + 1 < tr->n && tr->t[row + 1] <= t)
            row++;
        double demand = tr->t[row] <= t ? tr->demand[row] : 0;
        /* 1. boot */
        int k = 0;
        while (k < nboot && booting_at[k] <= t - boot_s)
            k++;
        in_service += k;
        memmove(booting_at, booting_at + k, (size_t)(nboot - k) * sizeof(int));
        nboot -= k;
        /* 2-3. load and observation */
        double load = in_service > 0 ? fmin(100, 100 * demand / in_service) : demand > 0 ? 100 : 0;
        if (t % poll_s == 0)
            observed = load;
        /* 4. policy */
        int n = in_service + nboot;
        struct policy_input in = {.now_ms = T0 + (int64_t)t * 1000,
                                  .min_size = min,
                                  .max_size = max,
                                  .current = n,
                                  .avg_load = observed};
        struct policy_decision d;
        assert_int_equal(policy_evaluate(s, &st, &in, &d), 0);
        /* invariants of every decision */
        assert_true(d.desired >= min && d.desired <= max);
        assert_int_equal(d.changed, d.desired != n);
        assert_true(strlen(d.cause) > 0);
        if (d.evaluated) {
            r.evaluations++;
            assert_int_equal((t * 1000) % s->evaluation_period_ms, 0);
        }
        if (d.changed) {
            /* the model never leaves [min, max], so every change is load-based */
            assert_int_equal(d.evaluated, 1);
            assert_non_null(strstr(d.cause, "->"));
            if (s->type == POLICY_THRESHOLD) {
                if (last_action >= 0)
                    assert_true(t - last_action >= cooldown_s);
                if (d.desired > n) {
                    assert_true(observed > s->up_threshold);
                    int want = (int)floor(n * s->up_factor + 1e-9);
                    want = want > max ? max : want;
                    assert_int_equal(d.desired, want < min ? min : want);
                } else {
                    assert_true(observed < s->down_threshold);
                    double dd = fmin(n * s->down_factor, n - min);
                    assert_int_equal(d.desired, n - (int)floor(dd + 1e-9));
                }
            } else {
                assert_true(fabs(observed / s->target - 1) > s->tolerance);
                if (d.desired > n)
                    assert_true(observed > s->target);
                else
                    assert_true(observed < s->target);
            }
            last_action = t;
            r.actions++;
        }
        /* 5. act */
        if (d.desired > n) {
            for (int i = 0; i < d.desired - n; i++) {
                assert_true(nboot < 256);
                booting_at[nboot++] = t;
            }
        } else if (d.desired < n) {
            int drop = n - d.desired;
            int c = drop < nboot ? drop : nboot;
            nboot -= c; /* newest booting first */
            in_service -= drop - c;
        }
        assert_true(in_service >= 0 && nboot >= 0);
        assert_true(in_service + nboot >= min && in_service + nboot <= max);
        /* 6. account */
        r.cost += in_service + nboot;
        if (demand > 0.8 * in_service)
            r.violation_s++;
        if (demand > in_service)
            r.unserved += demand - in_service;
    }
    assert_true(r.cost >= (long)min * (last_t + 1));
    assert_true(r.cost <= (long)max * (last_t + 1));
    policy_state_reset(&st);
    return r;
}

static void reference_model_traces(void **state)
{
    (void)state;
    static const char *names[] = {"diurnal", "flash", "onoff", "ramp", "walk"};
    const char *src = getenv("ASGD_SOURCE_DIR");
    char path[1024];
    struct trace *tr = malloc(sizeof(*tr));
    assert_non_null(tr);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/examples/traces/%s.csv", src ? src : "..", names[i]);
        if (read_trace(path, tr) != 0)
            fail_msg("cannot read trace \"%s\"", path);
        for (int type = 0; type < 2; type++) {
            struct policy_settings s;
            policy_settings_default(&s, type);
            struct model_result r = run_model(tr, &s, 2, 10, 60, 5);
            /* every trace moves enough to make both policies act at least once */
            if (r.actions == 0)
                fail_msg("%s/%s: no scaling action", names[i], policy_type_name(type));
            assert_true(r.evaluations > 0);
            /* a different shape of group and faster parameters */
            s.evaluation_period_ms = type == POLICY_TARGET ? 5000 : 10000;
            s.cooldown_ms = type == POLICY_TARGET ? 0 : 30000;
            s.scale_down_window_ms = 60000;
            s.up_factor = 1.5;
            s.down_factor = 0.3;
            run_model(tr, &s, 1, 20, 30, 5);
            run_model(tr, &s, 3, 3, 0, 1);
        }
    }
    free(tr);
}

/* A hand-computed run of the reference model: threshold, min 1, max 4, boot 2 s, poll 1 s. */
static void reference_model_by_hand(void **state)
{
    (void)state;
    struct trace *tr = calloc(1, sizeof(*tr));
    assert_non_null(tr);
    /* demand 3 from t = 0 to 3, then 0 until t = 9 */
    tr->t[0] = 0;
    tr->demand[0] = 3;
    tr->t[1] = 4;
    tr->demand[1] = 0;
    tr->t[2] = 9;
    tr->demand[2] = 0;
    tr->n = 3;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_THRESHOLD);
    s.evaluation_period_ms = 3000;
    /*
     * t0: 1 in service, load 100 -> 1 -> 2 (1 booting)      cost 2, violation, unserved 2
     * t1: load 100, not due                                  cost 2, violation, unserved 2
     * t2: booting one is in service: load 100 (3/2 capped)   cost 2, violation, unserved 1
     * t3: due, load 100 > 70 -> 2 -> 4 (2 booting)           cost 4, violation, unserved 1
     * t4: demand 0                                           cost 4
     * t5: 2 boot -> 4 in service                             cost 4
     * t6: due, load 0 < 20: 4 -> 4 - floor(min(2, 3)) = 2    cost 2
     * t7, t8: cost 2 each; t9: due: 2 -> 1                   cost 1
     */
    struct model_result r = run_model(tr, &s, 1, 4, 2, 1);
    assert_int_equal(r.cost, 2 + 2 + 2 + 4 + 4 + 4 + 2 + 2 + 2 + 1);
    assert_int_equal(r.violation_s, 4);
    assert_true(fabs(r.unserved - 6) < 1e-9);
    assert_int_equal(r.actions, 4);
    free(tr);
}

/* ---- predictive ------------------------------------------------------------------------- */

static struct policy_decision pstep(const struct policy_settings *s, struct policy_state *st,
                                    int64_t now, int n, int serving, double avg)
{
    struct policy_input in = {.now_ms = now,
                              .min_size = 2,
                              .max_size = 20,
                              .current = n,
                              .in_service = serving,
                              .avg_load = avg};
    struct policy_decision d;
    assert_int_equal(policy_evaluate(s, st, &in, &d), 0);
    return d;
}

static void predictive_steady_and_saturated(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_PREDICTIVE);
    assert_int_equal(s.evaluation_period_ms, 5000);
    assert_true(s.target == 70 && s.lead_ms == 60000 && s.scale_down_window_ms == 120000);
    assert_string_equal(policy_type_name(POLICY_PREDICTIVE), "predictive");
    assert_int_equal(policy_type_parse("predictive"), POLICY_PREDICTIVE);
    struct policy_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    /* 50 % of 2: demand 1.0 needs ceil(1.0 / 0.7) = 2 */
    struct policy_decision d = pstep(&s, st, T0, 2, 2, 50);
    assert_int_equal(d.desired, 2);
    assert_string_equal(d.cause,
                        "forecast 1.0 instances in 60s (trend +0.0/min, no period found): 2 stays");
    /* the load is the serving instances': 60 % of 4 (2.4) needs 4, so of 6 (4 serving,
       2 booting) the 2 booting are not needed (not 60 % of 6 = 3.6, which needs 6) */
    d = pstep(&s, st, T0 + 5000, 6, 4, 60);
    assert_int_equal(d.desired, 4);
    /* saturated: 100 % of 3 hides the demand: plan for 3 x 3 */
    policy_state_reset(st);
    d = pstep(&s, st, T0, 3, 3, 100);
    assert_int_equal(d.desired, 9);
    assert_non_null(strstr(d.cause, ", saturated: 3 -> 9"));
    /* still saturated while the 6 boot: no second blind step on the same reading */
    d = pstep(&s, st, T0 + 5000, 9, 3, 100);
    assert_int_equal(d.desired, 9);
    /* none serving but load: the blind step still starts the group */
    policy_state_reset(st);
    struct policy_input in = {.now_ms = T0,
                              .min_size = 0,
                              .max_size = 20,
                              .current = 0,
                              .in_service = 0,
                              .avg_load = 100};
    assert_int_equal(policy_evaluate(&s, st, &in, &d), 0);
    assert_true(d.desired >= 1);
    policy_state_reset(st);
    free(st);
}

static void predictive_trend_and_window(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_PREDICTIVE);
    struct policy_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    /* a rise of 0.6 instance-equivalents a minute on 10 instances: at 6.3 (63 %, below 70 %
       now) the forecast 60 s ahead is 6.9, which needs ceil(6.9 / 0.7) = 10 -> grows early */
    int n = 10, grew_at = -1;
    for (int i = 0; i <= 36; i++) {
        double demand = 4.5 + 0.05 * i; /* +0.05 per 5 s */
        struct policy_decision d = pstep(&s, st, T0 + i * 5000, n, n, 100 * demand / n);
        if (d.changed && d.desired > n && grew_at < 0) {
            grew_at = i;
            assert_non_null(strstr(d.cause, "(trend +0.6/min"));
            assert_true(100 * demand / n < 70); /* before the load crossed the target */
        }
        n = d.desired;
    }
    assert_true(grew_at > 0);
    /* a drop: held for the scale-down window (120 s), then taken */
    policy_state_reset(st);
    struct policy_decision d = pstep(&s, st, T0, 10, 10, 60); /* 6.0 needs 9 */
    assert_int_equal(d.desired, 9);
    for (int64_t t = T0 + 5000; t < T0 + 120000; t += 5000) {
        d = pstep(&s, st, t, 9, 9, 200.0 / 9); /* 2.0 needs 3, the 9 of T0 holds */
        assert_int_equal(d.desired, 9);
        assert_non_null(strstr(d.cause, "needs 3, held by 120s scale-down window: 9 stays"));
    }
    d = pstep(&s, st, T0 + 120000, 9, 9, 200.0 / 9);
    assert_int_equal(d.desired, 3);
    policy_state_reset(st);
    free(st);
}

static void predictive_finds_a_period(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_PREDICTIVE);
    struct policy_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    /* on/off: 2 for 20 min, 9 for 20 min; the group follows (serving enough for the demand) */
    int n = 3, early = 0;
    for (int64_t t = 0; t < 4 * 3600; t += 5) {
        double demand = (t / 1200) % 2 ? 9 : 2;
        int serving = n;
        double load = serving ? 100 * demand / serving : 100;
        if (load > 100)
            load = 100;
        struct policy_decision d = pstep(&s, st, T0 + t * 1000, n, serving, load);
        /* after two periods: grows before the step up, while the demand is still 2 */
        if (t > 3 * 2400 && demand == 2 && d.desired > n && strstr(d.cause, "40-min pattern"))
            early++;
        n = d.desired;
    }
    assert_int_equal(st->pred->period_min, 40);
    assert_true(early >= 1);
    /* a steady ramp has no period */
    policy_state_reset(st);
    for (int64_t t = 0; t < 4 * 3600; t += 5)
        pstep(&s, st, T0 + t * 1000, 20, 20, 10 + 80.0 * (double)t / (4 * 3600));
    assert_int_equal(st->pred->period_min, 0);
    policy_state_reset(st);
    free(st);
}

/* ---- step ------------------------------------------------------------------------------- */

static void step_parsing(void **state)
{
    (void)state;
    struct policy_step st[POLICY_MAX_STEPS];
    char err[200];
    assert_int_equal(
        policy_steps_parse(">70:+1, >85:+50%, <20:-1", st, POLICY_MAX_STEPS, err, sizeof(err)), 3);
    assert_true(st[1].above && st[1].load == 85 && st[1].adjust == 50 && st[1].percent);
    assert_true(!st[2].above && st[2].adjust == -1 && !st[2].percent);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"", "no steps"},
        {">70:-1", "a step above a load adds (+), below removes (-)"},
        {"<20:+1", "a step above a load adds (+), below removes (-)"},
        {"70:+1", "step \"70:+1\" is not like"},
        {">170:+1", "is not like"},
        {">70:+1.5", "is not like"},
        {">70:+0", "is not like"},
        {">70:+1,", "empty or overlong step"},
        {">70:+1, >70:+2", "two steps above 70"},
        {">1:+1,>2:+1,>3:+1,>4:+1,>5:+1,>6:+1,>7:+1,>8:+1,>9:+1", "more than 8 steps"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(policy_steps_parse(bad[i].text, st, POLICY_MAX_STEPS, err, sizeof(err)),
                         -1);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].text, err, bad[i].want);
    }
}

static void step_bands(void **state)
{
    (void)state;
    struct policy_settings s;
    policy_settings_default(&s, POLICY_STEP);
    assert_string_equal(s.steps, ">70:+1, >85:+50%, <20:-1");
    assert_int_equal(s.evaluation_period_ms, 60000);
    snprintf(s.steps, sizeof(s.steps), "%s", ">60:+1, >80:+50%, <30:-1, <10:-50%");
    struct policy_state st;
    memset(&st, 0, sizeof(st));
    /* the highest band exceeded wins: 90 > 80: +50 % of 4 = 2 */
    struct policy_decision d = step(&s, &st, T0, 4, 1, 10, 90);
    assert_int_equal(d.desired, 6);
    assert_string_equal(d.cause, "step: load 90.0% > 80%: +50% = +2: 4 -> 6");
    /* within the period: nothing; then cooldown (= period) is over */
    assert_int_equal(step(&s, &st, T0 + 30000, 6, 1, 10, 90).evaluated, 0);
    d = step(&s, &st, T0 + 60000, 6, 1, 10, 65);
    assert_int_equal(d.desired, 7);
    /* a percentage rounds down but moves at least one: 50 % of 1 = 1 */
    policy_state_reset(&st);
    assert_int_equal(step(&s, &st, T0, 1, 1, 10, 95).desired, 2);
    /* the lowest band undercut wins: 5 < 10: -50 % of 7 = -3 */
    policy_state_reset(&st);
    d = step(&s, &st, T0, 7, 1, 10, 5);
    assert_int_equal(d.desired, 4);
    assert_string_equal(d.cause, "step: load 5.0% < 10%: -50% = -3: 7 -> 4");
    policy_state_reset(&st);
    assert_int_equal(step(&s, &st, T0, 7, 1, 10, 25).desired, 6);
    /* in no band, or clamped by the bounds */
    policy_state_reset(&st);
    d = step(&s, &st, T0, 7, 1, 10, 45);
    assert_int_equal(d.changed, 0);
    assert_string_equal(d.cause, "step: load 45.0% in no band: 7 stays");
    policy_state_reset(&st);
    assert_int_equal(step(&s, &st, T0, 9, 1, 10, 99).desired, 10);
    policy_state_reset(&st);
    assert_int_equal(step(&s, &st, T0, 2, 2, 10, 1).changed, 0); /* at min: no band applies */
    /* an explicit cooldown longer than the period */
    s.cooldown_ms = 180000;
    policy_state_reset(&st);
    step(&s, &st, T0, 4, 1, 10, 90);
    d = step(&s, &st, T0 + 60000, 6, 1, 10, 90);
    assert_int_equal(d.changed, 0);
    assert_non_null(strstr(d.cause, "but cooling down: 6 stays"));
    policy_state_reset(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_names),
        cmocka_unit_test(threshold_up_arithmetic),
        cmocka_unit_test(threshold_down_arithmetic),
        cmocka_unit_test(threshold_band_and_limits),
        cmocka_unit_test(cause_strings),
        cmocka_unit_test(no_data),
        cmocka_unit_test(bounds_for_both_policies),
        cmocka_unit_test(evaluation_period_gating),
        cmocka_unit_test(cooldown),
        cmocka_unit_test(target_arithmetic_and_tolerance),
        cmocka_unit_test(target_scale_down_window),
        cmocka_unit_test(target_not_due),
        cmocka_unit_test(reference_model_traces),
        cmocka_unit_test(reference_model_by_hand),
        cmocka_unit_test(predictive_steady_and_saturated),
        cmocka_unit_test(predictive_trend_and_window),
        cmocka_unit_test(predictive_finds_a_period),
        cmocka_unit_test(step_parsing),
        cmocka_unit_test(step_bands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
