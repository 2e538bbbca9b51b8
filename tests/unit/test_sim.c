/*
 * Unit tests for sim: the trace reader (order, blank lines, CRLF, every kind
 * of bad row with its line), two small traces whose every figure was
 * computed by hand (threshold and target policies), the oracle, flaps, the
 * JSON output, the action callback, bad parameters, and the sample traces
 * in examples/traces/ with invariants over their figures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/sim.h"
#include "common/banned.h"

static void parse_ok(const char *text, struct sim_trace *tr)
{
    char err[256];
    if (sim_trace_parse("t.csv", text, strlen(text), tr, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static void trace_parsing(void **state)
{
    (void)state;
    struct sim_trace tr = SIM_TRACE_INIT;
    parse_ok("t,demand\r\n120, 3\r\n\r\n0,1.5\r\n60 ,0\r\n", &tr);
    assert_int_equal(tr.n, 3);
    assert_int_equal(tr.t[0], 0);
    assert_int_equal(tr.t[1], 60);
    assert_int_equal(tr.t[2], 120);
    assert_true(tr.demand[0] == 1.5 && tr.demand[1] == 0 && tr.demand[2] == 3);
    sim_trace_release(&tr);
    sim_trace_release(&tr);
    sim_trace_release(NULL);
    parse_ok("t,demand\n0,2", &tr); /* no final newline */
    assert_int_equal(tr.n, 1);
    sim_trace_release(&tr);
}

static void trace_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "t.csv: empty trace"},
        {"time,load\n0,1\n", "t.csv:1: expected the header \"t,demand\""},
        {"t,demand\n", "t.csv: no rows after the header"},
        {"t,demand\n0 1\n", "t.csv:2: expected \"t,demand\""},
        {"t,demand\n0,1\n1.5,2\n", "t.csv:3: t \"1.5\" is not a whole number"},
        {"t,demand\n0,1\n-5,2\n", "t.csv:3: t \"-5\" is not a whole number of seconds >= 0"},
        {"t,demand\n0,1\n,2\n", "t.csv:3: t is not a whole number"},
        {"t,demand\n0,abc\n", "t.csv:2: demand \"abc\" is not a number"},
        {"t,demand\n0,nan\n", "t.csv:2: demand \"nan\" is not a number"},
        {"t,demand\n0,-1\n", "t.csv:2: demand \"-1\" is not a finite number >= 0"},
        {"t,demand\n0,1e999\n", "t.csv:2: demand \"1e999\" is not a finite number"},
        /* a sum over a run could overflow to inf (not JSON) */
        {"t,demand\n0,1e308\n", "t.csv:2: demand 1e308 is beyond the limit of 1e+09"},
        {"t,demand\n0,\n", "t.csv:2: demand is not a number"},
        {"t,demand\n0,1\n60,2\n\n60,3\n", "t.csv:5: t 60 repeated (first at line 3)"},
        {"t,demand\n60,1\n120,2\n", "t.csv:2: the trace must start at t = 0"},
        {"t,demand\n0,1\n99999999999,1\n", "t.csv:3: t 99999999999 is beyond the limit"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sim_trace tr = SIM_TRACE_INIT;
        char err[256] = "";
        int rc =
            sim_trace_parse("t.csv", cases[i].text, strlen(cases[i].text), &tr, err, sizeof(err));
        if (rc != -1)
            fail_msg("case %zu accepted", i);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got \"%s\", want prefix \"%s\"", i, err, cases[i].want);
        assert_int_equal(tr.n, 0);
        assert_null(tr.t);
    }
}

static void trace_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_sim.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[512], want[512];
    snprintf(path, sizeof(path), "%s/x.csv", dir);
    struct sim_trace tr = SIM_TRACE_INIT;
    assert_int_equal(sim_trace_load(path, &tr, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("t,demand\n0,1\n10,x\n", f);
    fclose(f);
    assert_int_equal(sim_trace_load(path, &tr, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:3: demand \"x\" is not a number", path);
    assert_string_equal(err, want);
    f = fopen(path, "w");
    assert_non_null(f);
    fwrite("t,demand\n0,1\0\n", 1, 15, f);
    fclose(f);
    assert_int_equal(sim_trace_load(path, &tr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "NUL byte"));
    unlink(path);
    rmdir(dir);
}

struct log {
    int n;
    int64_t t[16];
    int from[16], to[16];
};

static void on_action(void *arg, int64_t t, int from, int to, const char *cause)
{
    struct log *l = arg;
    assert_true(l->n < 16);
    assert_non_null(strstr(cause, "->"));
    l->t[l->n] = t;
    l->from[l->n] = from;
    l->to[l->n] = to;
    l->n++;
}

/*
 * Threshold, period 3 s, min 1, max 4, boot 2 s, poll 1 s; demand 3 for t = 0..3, then 0 to t = 9.
 *   t0: 1 in service, load 100: 1 -> 2 (booting)     cost 2, violation, unserved 2
 *   t1: not due                                       cost 2, violation, unserved 2
 *   t2: boot done, 2 in service, load 100             cost 2, violation, unserved 1
 *   t3: due, load 100: 2 -> 4                         cost 4, violation, unserved 1
 *   t4: demand 0                                      cost 4
 *   t5: both boots done                               cost 4
 *   t6: due, load 0: 4 -> 4 - floor(min(2, 3)) = 2    cost 2
 *   t7, t8                                            cost 2, 2
 *   t9: due: 2 -> 1                                   cost 1
 * cost 25, violations 4 of 10 s, unserved 6, actions 4 (up up down down: 1 flap).
 * Oracle: needed 4 (ceil(3 / 0.8)) for t0..3, then 1: 16 + 6 = 22, plus 3 units x boot 2 s = 28.
 */
static void hand_computed_threshold(void **state)
{
    (void)state;
    struct sim_trace tr = SIM_TRACE_INIT;
    parse_ok("t,demand\n9,0\n0,3\n4,0\n", &tr);
    struct sim_params p;
    sim_params_default(&p);
    p.min_size = 1;
    p.max_size = 4;
    p.boot_s = 2;
    p.poll_s = 1;
    p.policy.evaluation_period_ms = 3000;
    struct log l = {0};
    p.on_action = on_action;
    p.arg = &l;
    struct sim_result r;
    char err[128];
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
    assert_int_equal(r.seconds, 10);
    assert_true(r.cost == 25);
    assert_int_equal(r.violation_s, 4);
    assert_true(fabs(r.violation_pct - 40) < 1e-9);
    assert_true(fabs(r.unserved - 6) < 1e-9);
    assert_int_equal(r.actions, 4);
    assert_int_equal(r.flaps, 1);
    assert_true(r.oracle_cost == 28);
    assert_true(fabs(r.cost_ratio - 25.0 / 28.0) < 1e-12);
    assert_int_equal(l.n, 4);
    int64_t want_t[] = {0, 3, 6, 9};
    int want_from[] = {1, 2, 4, 2}, want_to[] = {2, 4, 2, 1};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(l.t[i], want_t[i]);
        assert_int_equal(l.from[i], want_from[i]);
        assert_int_equal(l.to[i], want_to[i]);
    }
    char json[512];
    int n = sim_result_json(&r, json, sizeof(json));
    assert_true(n > 0 && (size_t)n < sizeof(json));
    assert_string_equal(json, "{\"seconds\": 10, \"cost\": 25, \"violation_s\": 4, "
                              "\"violation_pct\": 40, \"unserved\": 6.000000, \"actions\": 4, "
                              "\"flaps\": 1, \"oracle_cost\": 28, \"cost_ratio\": 0.892857}");
    sim_trace_release(&tr);
}

/*
 * Target 50 %, tolerance 0, period 1 s, window 0, min 1, max 10, boot 0, poll 1;
 * demand 1 (t0..2), 3 (t3..5), 0 (t6..8).
 *   t0: 1 in service, load 100, ratio 2: 1 -> 2      cost 2, violation (1 > 0.8)
 *   t1: 2 in service, load 50: stays                 cost 2
 *   t2:                                              cost 2
 *   t3: load 100: 2 -> 4                             cost 4, violation, unserved 1
 *   t4: 4 in service, load 75, ratio 1.5: 4 -> 6     cost 6
 *   t5: 6 in service, load 50                        cost 6
 *   t6: load 0: recommendation 0, min 1: 6 -> 1      cost 1
 *   t7, t8                                           cost 1, 1
 * cost 25, violations 2 of 9 s, unserved 1, actions 4, flaps 1.
 * Oracle: needed 2 (ceil 1.25), 4 (ceil 3.75), 1: 6 + 12 + 3 = 21, boot 0 -> 21.
 */
static void hand_computed_target(void **state)
{
    (void)state;
    struct sim_trace tr = SIM_TRACE_INIT;
    parse_ok("t,demand\n0,1\n3,3\n6,0\n8,0\n", &tr);
    struct sim_params p;
    sim_params_default(&p);
    p.min_size = 1;
    p.max_size = 10;
    p.boot_s = 0;
    p.poll_s = 1;
    policy_settings_default(&p.policy, POLICY_TARGET);
    p.policy.target = 50;
    p.policy.tolerance = 0;
    p.policy.evaluation_period_ms = 1000;
    p.policy.scale_down_window_ms = 0;
    struct sim_result r;
    char err[128];
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
    assert_int_equal(r.seconds, 9);
    assert_true(r.cost == 25);
    assert_int_equal(r.violation_s, 2);
    assert_true(fabs(r.violation_pct - 200.0 / 9) < 1e-9);
    assert_true(fabs(r.unserved - 1) < 1e-9);
    assert_int_equal(r.actions, 4);
    assert_int_equal(r.flaps, 1);
    assert_true(r.oracle_cost == 21);
    /* the default 300 s window holds the scale-down at t6: cost 6 + 6 + 6 instead of 1 + 1 + 1 */
    p.policy.scale_down_window_ms = 300000;
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
    assert_true(r.cost == 40);
    assert_int_equal(r.actions, 3);
    assert_int_equal(r.flaps, 0);
    sim_trace_release(&tr);
}

/* Scale-in cancels booting instances first: no cost for what never booted. */
static void cancel_booting_first(void **state)
{
    (void)state;
    struct sim_trace tr = SIM_TRACE_INIT;
    /* demand 4 at t0 (2 -> 4, booting for 100 s), 0 from t1; period 1 s, cooldown 1 s */
    parse_ok("t,demand\n0,4\n1,0\n5,0\n", &tr);
    struct sim_params p;
    sim_params_default(&p);
    p.min_size = 2;
    p.max_size = 8;
    p.boot_s = 100;
    p.poll_s = 1;
    p.policy.evaluation_period_ms = 1000;
    struct sim_result r;
    char err[128];
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
    /* t0: 2 -> 4 (cost 4); t1: load 0, 4 -> 2 cancels both booting (cost 2); t2..5 cost 2 */
    assert_true(r.cost == 4 + 2 * 5);
    assert_int_equal(r.actions, 2);
    assert_int_equal(r.flaps, 1);
    /* violation at t0: 4 > 0.8 x 2 */
    assert_int_equal(r.violation_s, 1);
    /* oracle: t0 needs 5 (3 up x 100 s), then 2: 5 + 2 x 5 + 300 */
    assert_true(r.oracle_cost == 5 + 10 + 300);
    sim_trace_release(&tr);
}

static void zero_everything(void **state)
{
    (void)state;
    struct sim_trace tr = SIM_TRACE_INIT;
    parse_ok("t,demand\n0,0\n10,0\n", &tr);
    struct sim_params p;
    sim_params_default(&p);
    p.min_size = 0;
    p.max_size = 3;
    struct sim_result r;
    char err[128], json[512];
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
    assert_true(r.cost == 0 && r.oracle_cost == 0 && r.cost_ratio == 0);
    assert_int_equal(r.violation_s, 0);
    sim_result_json(&r, json, sizeof(json));
    assert_non_null(strstr(json, "\"cost_ratio\": null}"));
    /* what JSON cannot hold is null, never inf or nan */
    struct sim_result inf = r;
    inf.unserved = INFINITY;
    inf.cost = NAN;
    sim_result_json(&inf, json, sizeof(json));
    assert_non_null(strstr(json, "\"unserved\": null"));
    assert_non_null(strstr(json, "\"cost\": null"));
    assert_null(strstr(json, "inf"));
    assert_null(strstr(json, "nan"));
    /* demand with no instance at all: load 100, the seed's "at least 1" starts the group */
    sim_trace_release(&tr);
    parse_ok("t,demand\n0,0.5\n100,0.5\n", &tr);
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
    assert_int_equal(r.actions, 1);
    assert_int_equal(r.violation_s, 60); /* t0..59: none in service until the boot ends */
    sim_trace_release(&tr);
}

static void bad_params(void **state)
{
    (void)state;
    struct sim_trace tr = SIM_TRACE_INIT;
    parse_ok("t,demand\n0,1\n", &tr);
    struct sim_params p;
    struct sim_result r = {.seconds = 77};
    char err[128];
    sim_params_default(&p);
    p.min_size = 3;
    p.max_size = 2;
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), -1);
    assert_string_equal(err, "invalid sizes: min 3, max 2 (0 <= min <= max <= 4096)");
    sim_params_default(&p);
    p.max_size = POLICY_MAX_SIZE + 1;
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), -1);
    sim_params_default(&p);
    p.poll_s = 0;
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), -1);
    sim_params_default(&p);
    p.boot_s = -1;
    assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), -1);
    struct sim_trace empty = SIM_TRACE_INIT;
    sim_params_default(&p);
    assert_int_equal(sim_run(&p, &empty, &r, err, sizeof(err)), -1);
    assert_int_equal(r.seconds, 77);
    sim_trace_release(&tr);
}

static void sample_traces(void **state)
{
    (void)state;
    static const char *names[] = {"diurnal", "flash", "onoff", "ramp", "walk"};
    const char *src = getenv("ASGD_SOURCE_DIR");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[1024], err[512], json[512];
        snprintf(path, sizeof(path), "%s/examples/traces/%s.csv", src ? src : "..", names[i]);
        struct sim_trace tr = SIM_TRACE_INIT;
        if (sim_trace_load(path, &tr, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        for (int type = 0; type < 2; type++) {
            struct sim_params p;
            sim_params_default(&p);
            p.min_size = 2;
            p.max_size = 10;
            policy_settings_default(&p.policy, type);
            struct sim_result r;
            assert_int_equal(sim_run(&p, &tr, &r, err, sizeof(err)), 0);
            assert_int_equal(r.seconds, tr.t[tr.n - 1] + 1);
            assert_true(r.cost >= 2.0 * r.seconds && r.cost <= 10.0 * r.seconds);
            assert_true(r.oracle_cost >= 2.0 * r.seconds);
            assert_true(r.violation_s >= 0 && r.violation_s <= r.seconds);
            assert_true(r.violation_pct >= 0 && r.violation_pct <= 100);
            assert_true(r.unserved >= 0);
            assert_true(r.actions > 0);
            assert_true(r.flaps < r.actions);
            assert_true(r.cost_ratio > 0 && isfinite(r.cost_ratio));
            sim_result_json(&r, json, sizeof(json));
            print_message("%-8s %-9s %s\n", names[i], policy_type_name(type), json);
            /* the same run twice gives the same figures (no hidden state) */
            struct sim_result r2;
            assert_int_equal(sim_run(&p, &tr, &r2, err, sizeof(err)), 0);
            assert_memory_equal(&r, &r2, sizeof(r));
        }
        sim_trace_release(&tr);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trace_parsing),        cmocka_unit_test(trace_errors),
        cmocka_unit_test(trace_files),          cmocka_unit_test(hand_computed_threshold),
        cmocka_unit_test(hand_computed_target), cmocka_unit_test(cancel_booting_first),
        cmocka_unit_test(zero_everything),      cmocka_unit_test(bad_params),
        cmocka_unit_test(sample_traces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
