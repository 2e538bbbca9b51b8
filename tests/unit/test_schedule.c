/*
 * Unit tests for scheduled actions (schedule.h) in virtual time: the syntax
 * and its errors, seconds/minutes/steps/weekdays, a zone across its DST
 * change (Europe/Paris from the system's TZif files), entries firing in the
 * same second, and the controller hook against a real SQLite store (the
 * settings written, desired following the bounds, the activity recorded,
 * nothing on the first tick).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controller/schedule.h"
#include "group/group.h"
#include "store/store.h"

#include "common/banned.h"

/* UTC ms of a calendar time. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000;
}

static struct sched *parse_ok(const char *text)
{
    char err[300];
    struct sched *s = sched_parse(text, err, sizeof(err));
    if (s == NULL)
        fail_msg("%s: %s", text, err);
    return s;
}

static void syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"0 8 * *: min=2", "the cron part must be 5 fields"},
        {"0 8 * * *", "expected \"CRON [ZONE]: min=N"},
        {"0 8 * * *: foo=1", "after ':' expected min=N"},
        {"0 8 * * *:", "after ':' expected min=N"},
        {"61 * * * *: min=1", "the cron part must be"},
        {"0 24 * * *: min=1", "the cron part must be"},
        {"*/0 * * * *: min=1", "the cron part must be"},
        {"5-2 * * * *: min=1", "the cron part must be"},
        {"0 8 * * *: min=5 max=3", "min 5 > max 3"},
        {"0 8 * * *: min=99999", "after ':' expected"},
    };
    char err[300];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(sched_parse(bad[i].text, err, sizeof(err)));
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("\"%s\": got \"%s\"", bad[i].text, err);
        assert_int_equal(sched_check(bad[i].text, err, sizeof(err)), -1);
    }
    /* a zone that does not exist: the syntax is fine, the controller's parse names it */
    assert_int_equal(sched_check("0 8 * * * Nowhere/Atlantis: min=1", err, sizeof(err)), 0);
    assert_null(sched_parse("0 8 * * * Nowhere/Atlantis: min=1", err, sizeof(err)));
    assert_non_null(strstr(err, "time zone \"Nowhere/Atlantis\": unknown"));
    assert_null(sched_parse("0 8 * * * ../etc/passwd: min=1", err, sizeof(err)));
    /* empty: no actions */
    struct sched *s = parse_ok("");
    struct sched_action a;
    assert_int_equal(sched_due(s, 0, utc(2026, 1, 1, 0, 0, 0), &a), 0);
    sched_free(s);
}

static void fires_in_utc(void **state)
{
    (void)state;
    struct sched *s = parse_ok("30 0 8 * * * UTC: min=4 max=10");
    struct sched_action a;
    int64_t t = utc(2026, 12, 2, 8, 0, 30);
    assert_int_equal(sched_due(s, t - 1000, t, &a), 1);
    assert_int_equal(a.at_ms, t);
    assert_true(a.min_size == 4 && a.max_size == 10 && a.desired == -1);
    assert_string_equal(a.what, "30 0 8 * * * UTC: min=4 max=10");
    assert_int_equal(sched_due(s, t, t + 1000, &a), 0); /* (after, until]: once */
    assert_int_equal(sched_due(s, t - 2000, t - 1, &a), 0);
    /* a jump over it (a late tick) still sees it */
    assert_int_equal(sched_due(s, t - 3600000, t + 3600000, &a), 1);
    sched_free(s);

    /* 5 fields: second 0; steps; a plain zone-less entry is UTC */
    s = parse_ok("*/15 * * * *: desired=3");
    int n = 0;
    for (int64_t x = utc(2026, 3, 1, 10, 0, 0); x < utc(2026, 3, 1, 11, 0, 0); x += 1000)
        n += sched_due(s, x - 1000, x, &a);
    assert_int_equal(n, 4);
    sched_free(s);
}

static void weekdays_and_days(void **state)
{
    (void)state;
    /* Monday to Friday at 09:00 UTC: 5 times in a week */
    struct sched *s = parse_ok("0 9 * * 1-5: min=3");
    struct sched_action a;
    int n = 0;
    for (int d = 0; d < 7; d++) {
        int64_t t = utc(2026, 11, 30, 9, 0, 0) + (int64_t)d * 86400000; /* 2026-11-30: Monday */
        n += sched_due(s, t - 1000, t, &a);
    }
    assert_int_equal(n, 5);
    sched_free(s);
    /* both day fields restricted: either matches (cron): the 1st, or any Sunday (0 or 7) */
    s = parse_ok("0 0 1 * 7: min=1");
    assert_int_equal(sched_due(s, utc(2026, 12, 1, 0, 0, 0) - 1000, utc(2026, 12, 1, 0, 0, 0), &a),
                     1); /* Tuesday the 1st */
    assert_int_equal(sched_due(s, utc(2026, 12, 6, 0, 0, 0) - 1000, utc(2026, 12, 6, 0, 0, 0), &a),
                     1); /* Sunday the 6th */
    assert_int_equal(sched_due(s, utc(2026, 12, 7, 0, 0, 0) - 1000, utc(2026, 12, 7, 0, 0, 0), &a),
                     0);
    sched_free(s);
}

static void zone_across_dst(void **state)
{
    (void)state;
    if (access("/usr/share/zoneinfo/Europe/Paris", R_OK) != 0)
        fail_msg("tzdata is not installed");
    struct sched *s = parse_ok("0 8 * * * Europe/Paris: min=4; 0 8 * * * UTC: max=9");
    struct sched_action a;
    /* winter: 08:00 in Paris is 07:00 UTC; summer (CEST): 06:00 UTC */
    int64_t w = utc(2026, 1, 15, 7, 0, 0), su = utc(2026, 7, 15, 6, 0, 0);
    assert_int_equal(sched_due(s, w - 1000, w, &a), 1);
    assert_true(a.min_size == 4 && a.max_size == -1);
    assert_int_equal(sched_due(s, w - 3601000, w - 3600000, &a), 0);
    assert_int_equal(sched_due(s, su - 1000, su, &a), 1);
    assert_int_equal(a.min_size, 4);
    /* the UTC entry at 08:00 UTC */
    assert_int_equal(sched_due(s, utc(2026, 7, 15, 8, 0, 0) - 1000, utc(2026, 7, 15, 8, 0, 0), &a),
                     1);
    assert_true(a.max_size == 9 && a.min_size == -1);
    sched_free(s);
    /* two entries in the same second: the later one wins for what it sets */
    s = parse_ok("0 12 * * *: min=2 max=5; 0 12 * * *: max=8 desired=6");
    int64_t t = utc(2026, 5, 5, 12, 0, 0);
    assert_int_equal(sched_due(s, t - 1000, t, &a), 1);
    assert_true(a.min_size == 2 && a.max_size == 8 && a.desired == 6);
    sched_free(s);
}

static void controller_hook(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-sched-XXXXXX", err[256];
    assert_non_null(mkdtemp(dir));
    struct store *st;
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    struct group_settings g;
    group_settings_default(&g, "sched");
    g.min_size = 2;
    g.max_size = 6;
    g.desired_capacity = 2;
    snprintf(g.policy.schedule, sizeof(g.policy.schedule), "%s",
             "0 9 * * *: min=4 max=8; 0 18 * * *: max=3");
    assert_int_equal(store_put_settings(st, &g, 0, NULL), 0);
    assert_int_equal(store_get_settings(st, "sched", &g), 0);
    struct sched_state ss;
    memset(&ss, 0, sizeof(ss));
    int64_t t9 = utc(2026, 12, 2, 9, 0, 0);
    /* the first tick only starts the clock, even at a firing second */
    assert_int_equal(sched_tick(&ss, st, &g, t9 - 500), 0);
    assert_int_equal(sched_tick(&ss, st, &g, t9 + 500), 1);
    assert_int_equal(store_get_settings(st, "sched", &g), 0);
    assert_true(g.min_size == 4 && g.max_size == 8 && g.desired_capacity == 4);
    assert_int_equal(sched_tick(&ss, st, &g, t9 + 1500), 0);
    /* 18:00: max 3 pulls min and desired down with it */
    int64_t t18 = utc(2026, 12, 2, 18, 0, 0);
    assert_int_equal(sched_tick(&ss, st, &g, t18 - 200), 0);
    assert_int_equal(sched_tick(&ss, st, &g, t18 + 800), 1);
    assert_int_equal(store_get_settings(st, "sched", &g), 0);
    assert_true(g.min_size == 3 && g.max_size == 3 && g.desired_capacity == 3);
    struct store_activity *acts;
    size_t n;
    assert_int_equal(store_activity_list(st, "sched", 0, 10, &acts, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(acts[0].kind, "schedule");
    assert_non_null(
        strstr(acts[0].cause, "scheduled \"0 18 * * *: max=3\": min 4 -> 3, max 8 -> 3"));
    store_activities_free(acts);
    sched_state_release(&ss);
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(syntax_errors),     cmocka_unit_test(fires_in_utc),
        cmocka_unit_test(weekdays_and_days), cmocka_unit_test(zone_across_dst),
        cmocka_unit_test(controller_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
