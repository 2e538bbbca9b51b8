/*
 * Unit tests for controller/victims: every termination policy on hand-made
 * candidate sets, the order of the rules (unhealthy, zones, the list,
 * random), lists of several policies, the parser, and the pinned random
 * tie-break.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "controller/victims.h"
#include "common/banned.h"

#define NOW  (1000LL * 3600 * 1000) /* virtual wall clock: hour 1000 */
#define MIN  (60LL * 1000)
#define HOUR (60 * MIN)

/* Candidate i: id "i-<i>", launched ago_min minutes before NOW. */
static struct victim_cand cand(const char *id, int64_t ago_min, const char *zone, const char *lc)
{
    struct victim_cand c = {id, zone, lc, NOW - ago_min * MIN, 0, 0};
    return c;
}

/* The ids picked with policies pol (NULL: default), comma-joined into buf. */
static const char *pick(const int *pol, size_t npol, const char *cur_lc,
                        const struct victim_cand *c, size_t k, size_t n, char *buf, size_t len,
                        const char **why1)
{
    struct victims_in in = {pol, npol, cur_lc, NOW, 42};
    size_t out[16];
    const char *why[16];
    int got = victims_choose(&in, c, k, n, out, why);
    assert_int_equal(got, (int)(n < k ? n : k));
    buf[0] = '\0';
    for (int i = 0; i < got; i++) {
        size_t u = strlen(buf);
        snprintf(buf + u, len - u, "%s%s", i ? "," : "", c[out[i]].id);
    }
    if (why1)
        *why1 = got ? why[0] : NULL;
    return buf;
}

static void parse_lists(void **state)
{
    (void)state;
    int p[VICTIMS_MAX_POLICIES];
    assert_int_equal(victims_parse("", p, VICTIMS_MAX_POLICIES), 1);
    assert_int_equal(p[0], VICTIMS_DEFAULT);
    assert_int_equal(victims_parse("oldest_instance, closest_to_next_instance_hour, default", p,
                                   VICTIMS_MAX_POLICIES),
                     3);
    assert_int_equal(p[0], VICTIMS_OLDEST_INSTANCE);
    assert_int_equal(p[1], VICTIMS_CLOSEST_TO_NEXT_HOUR);
    assert_int_equal(p[2], VICTIMS_DEFAULT);
    assert_int_equal(victims_parse("newest_instance", p, 1), 1);
    assert_int_equal(p[0], VICTIMS_NEWEST_INSTANCE);
    assert_string_equal(victims_policy_names[VICTIMS_OLDEST_LAUNCH_CONFIG], "oldest_launch_config");
    assert_null(victims_policy_names[VICTIMS_POLICY_COUNT]);
}

static void oldest_and_newest(void **state)
{
    (void)state;
    struct victim_cand c[] = {cand("b", 30, NULL, NULL), cand("a", 90, NULL, NULL),
                              cand("c", 5, NULL, NULL), cand("d", 45, NULL, NULL)};
    char buf[128];
    const char *why;
    int oldest = VICTIMS_OLDEST_INSTANCE, newest = VICTIMS_NEWEST_INSTANCE;
    assert_string_equal(pick(&oldest, 1, NULL, c, 4, 2, buf, sizeof buf, &why), "a,d");
    assert_string_equal(why, "oldest instance");
    assert_string_equal(pick(&newest, 1, NULL, c, 4, 3, buf, sizeof buf, &why), "c,b,d");
    assert_string_equal(why, "newest instance");
    /* more than there are: all of them, once each */
    assert_string_equal(pick(&oldest, 1, NULL, c, 4, 9, buf, sizeof buf, NULL), "a,d,b,c");
}

static void oldest_launch_config(void **state)
{
    (void)state;
    /* v1 is not current (and one's is unknown); the tie among them is left to the next policy */
    struct victim_cand c[] = {cand("new1", 100, NULL, "v2"), cand("old1", 10, NULL, "v1"),
                              cand("new2", 200, NULL, "v2"), cand("unk", 20, NULL, "")};
    int pol[] = {VICTIMS_OLDEST_LAUNCH_CONFIG, VICTIMS_OLDEST_INSTANCE};
    char buf[128];
    const char *why;
    assert_string_equal(pick(pol, 2, "v2", c, 4, 3, buf, sizeof buf, &why), "unk,old1,new2");
    assert_string_equal(why, "oldest instance");
    /* alone it decides when one instance is not current */
    struct victim_cand d[] = {cand("x", 100, NULL, "v2"), cand("y", 10, NULL, "v1")};
    assert_string_equal(pick(pol, 1, "v2", d, 2, 1, buf, sizeof buf, &why), "y");
    assert_string_equal(why, "launch configuration not current");
    /* the current one unknown: it tells nothing apart, the next policy decides */
    assert_string_equal(pick(pol, 2, NULL, d, 2, 1, buf, sizeof buf, &why), "x");
}

static void closest_to_next_hour(void **state)
{
    (void)state;
    /* up 50 min (10 left), 1 h 55 min (5 left), 20 min (40 left), 2 h 1 min (59 left) */
    struct victim_cand c[] = {cand("a", 50, NULL, NULL), cand("b", 115, NULL, NULL),
                              cand("c", 20, NULL, NULL), cand("d", 121, NULL, NULL)};
    int pol = VICTIMS_CLOSEST_TO_NEXT_HOUR;
    char buf[128];
    const char *why;
    assert_string_equal(pick(&pol, 1, NULL, c, 4, 4, buf, sizeof buf, &why), "b,a,c,d");
    assert_string_equal(why, "closest to its next instance hour");
}

static void default_policy(void **state)
{
    (void)state;
    struct victim_cand c[] = {cand("svc-old", 100, NULL, "v2"), cand("boot-old", 3, NULL, "v2"),
                              cand("boot-new", 1, NULL, "v2"),  cand("sick", 50, NULL, "v2"),
                              cand("stale", 30, NULL, "v1"),    cand("svc", 119, NULL, "v2")};
    c[1].booting = c[2].booting = 1;
    c[3].unhealthy = 1;
    char buf[128];
    const char *why;
    /* unhealthy, booting newest first, not-current config, then next hour: svc (1 min left)
       before svc-old (20 min left) */
    assert_string_equal(pick(NULL, 0, "v2", c, 6, 6, buf, sizeof buf, &why),
                        "sick,boot-new,boot-old,stale,svc,svc-old");
    assert_string_equal(why, "unhealthy");
    int def = VICTIMS_DEFAULT;
    assert_string_equal(pick(&def, 1, "v2", c, 6, 6, buf, sizeof buf, NULL),
                        "sick,boot-new,boot-old,stale,svc,svc-old");
}

static void unhealthy_first_for_every_policy(void **state)
{
    (void)state;
    struct victim_cand c[] = {cand("old", 100, NULL, NULL), cand("sick", 5, NULL, NULL),
                              cand("new", 1, NULL, NULL)};
    c[1].unhealthy = 1;
    char buf[128];
    for (int p = 0; p < VICTIMS_POLICY_COUNT; p++)
        assert_string_equal(pick(&p, 1, NULL, c, 3, 1, buf, sizeof buf, NULL), "sick");
}

static void zones_balanced_first(void **state)
{
    (void)state;
    /* zone a has 3, b has 1: the oldest overall (b1) is spared until the zones are even */
    struct victim_cand c[] = {cand("a1", 10, "a", NULL), cand("b1", 500, "b", NULL),
                              cand("a2", 20, "a", NULL), cand("a3", 30, "a", NULL)};
    int pol = VICTIMS_OLDEST_INSTANCE;
    char buf[128];
    const char *why;
    assert_string_equal(pick(&pol, 1, NULL, c, 4, 3, buf, sizeof buf, &why), "a3,a2,b1");
    assert_string_equal(why, "oldest instance");
    /* even zones: the policy alone decides */
    struct victim_cand d[] = {cand("a1", 10, "a", NULL), cand("b1", 500, "b", NULL)};
    assert_string_equal(pick(&pol, 1, NULL, d, 2, 1, buf, sizeof buf, NULL), "b1");
    /* the zone alone decides when the policy ties */
    struct victim_cand e[] = {cand("a1", 10, "a", NULL), cand("b1", 10, "b", NULL),
                              cand("b2", 10, "b", NULL)};
    assert_string_equal(pick(&pol, 1, NULL, e, 3, 2, buf, sizeof buf, &why), "b1,a1");
    (void)why;
}

static void list_order_matters(void **state)
{
    (void)state;
    /* old config but newest, vs current config but oldest */
    struct victim_cand c[] = {cand("cur-old", 300, NULL, "v2"), cand("stale-new", 1, NULL, "v1")};
    int a[] = {VICTIMS_OLDEST_INSTANCE, VICTIMS_OLDEST_LAUNCH_CONFIG};
    int b[] = {VICTIMS_OLDEST_LAUNCH_CONFIG, VICTIMS_OLDEST_INSTANCE};
    char buf[128];
    assert_string_equal(pick(a, 2, "v2", c, 2, 1, buf, sizeof buf, NULL), "cur-old");
    assert_string_equal(pick(b, 2, "v2", c, 2, 1, buf, sizeof buf, NULL), "stale-new");
}

static void random_tie_is_pinned_by_seed(void **state)
{
    (void)state;
    struct victim_cand c[8];
    char ids[8][8];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof ids[i], "i-%d", i);
        c[i] = cand(ids[i], 10, NULL, NULL);
    }
    int pol = VICTIMS_OLDEST_INSTANCE;
    struct victims_in in = {&pol, 1, NULL, NOW, 1};
    size_t o1[8], o2[8];
    const char *why[8];
    assert_int_equal(victims_choose(&in, c, 8, 8, o1, why), 8);
    assert_string_equal(why[0], "random among equals");
    assert_int_equal(victims_choose(&in, c, 8, 8, o2, NULL), 8);
    assert_memory_equal(o1, o2, sizeof o1); /* same seed, same order */
    /* every candidate exactly once */
    int seen[8] = {0};
    for (int i = 0; i < 8; i++)
        seen[o1[i]]++;
    for (int i = 0; i < 8; i++)
        assert_int_equal(seen[i], 1);
    /* another seed gives another order for at least one of a few seeds */
    int differs = 0;
    for (uint64_t s = 2; s < 6 && !differs; s++) {
        in.seed = s;
        assert_int_equal(victims_choose(&in, c, 8, 8, o2, NULL), 8);
        differs = memcmp(o1, o2, sizeof o1) != 0;
    }
    assert_true(differs);
}

static void nothing_to_pick(void **state)
{
    (void)state;
    struct victims_in in = {NULL, 0, NULL, NOW, 0};
    size_t out[1];
    assert_int_equal(victims_choose(&in, NULL, 0, 3, out, NULL), 0);
    struct victim_cand c[] = {cand("a", 1, NULL, NULL)};
    assert_int_equal(victims_choose(&in, c, 1, 0, out, NULL), 0);
    const char *why[1];
    assert_int_equal(victims_choose(&in, c, 1, 1, out, why), 1);
    assert_string_equal(why[0], "last candidate");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_lists),
        cmocka_unit_test(oldest_and_newest),
        cmocka_unit_test(oldest_launch_config),
        cmocka_unit_test(closest_to_next_hour),
        cmocka_unit_test(default_policy),
        cmocka_unit_test(unhealthy_first_for_every_policy),
        cmocka_unit_test(zones_balanced_first),
        cmocka_unit_test(list_order_matters),
        cmocka_unit_test(random_tie_is_pinned_by_seed),
        cmocka_unit_test(nothing_to_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
