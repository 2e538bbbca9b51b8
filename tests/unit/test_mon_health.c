/*
 * Unit tests for the monitor's pure pieces: the rise/fall health hysteresis
 * (UNKNOWN start, rise, fall, flapping, saturation), the constant-time token
 * comparison and the host:port validation used by Register.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fleet/fleet.h"
#include "monitor/mon.h"

struct hs {
    uint8_t health;
    uint32_t ok, fail;
};

/* Feeds a string of 'o' (success) / 'x' (failure); returns the number of transitions. */
static int feed(struct hs *h, const char *seq, uint32_t rise, uint32_t fall)
{
    int changes = 0;
    for (const char *p = seq; *p; p++)
        changes += mon_health_observe(&h->health, &h->ok, &h->fail, *p == 'o', rise, fall);
    return changes;
}

static void unknown_until_rise(void **state)
{
    (void)state;
    struct hs h = {FLEET_HEALTH_UNKNOWN, 0, 0};
    assert_int_equal(feed(&h, "o", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_UNKNOWN);
    assert_int_equal(h.ok, 1);
    assert_int_equal(mon_health_observe(&h.health, &h.ok, &h.fail, 1, 2, 3), 1);
    assert_int_equal(h.health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(h.ok, 2);
    assert_int_equal(h.fail, 0);
}

static void unknown_until_fall(void **state)
{
    (void)state;
    struct hs h = {FLEET_HEALTH_UNKNOWN, 0, 0};
    assert_int_equal(feed(&h, "xx", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_UNKNOWN);
    assert_int_equal(feed(&h, "x", 2, 3), 1);
    assert_int_equal(h.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(h.fail, 3);
    assert_int_equal(h.ok, 0);
}

static void fall_then_rise(void **state)
{
    (void)state;
    struct hs h = {FLEET_HEALTH_UNKNOWN, 0, 0};
    assert_int_equal(feed(&h, "oo", 2, 3), 1);
    assert_int_equal(feed(&h, "xx", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(feed(&h, "x", 2, 3), 1);
    assert_int_equal(h.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(feed(&h, "xxxx", 2, 3), 0); /* staying down is no transition */
    assert_int_equal(feed(&h, "o", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(feed(&h, "o", 2, 3), 1);
    assert_int_equal(h.health, FLEET_HEALTH_HEALTHY);
}

static void flapping_never_flips(void **state)
{
    (void)state;
    struct hs h = {FLEET_HEALTH_UNKNOWN, 0, 0};
    assert_int_equal(feed(&h, "oxoxoxoxoxox", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_UNKNOWN);
    assert_int_equal(feed(&h, "oo", 2, 3), 1);
    /* two failures, one success, repeated: never three failures in a row */
    assert_int_equal(feed(&h, "xxoxxoxxoxxo", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(feed(&h, "xxx", 2, 3), 1);
    /* one success between failures keeps it down with rise 2 */
    assert_int_equal(feed(&h, "oxoxoxox", 2, 3), 0);
    assert_int_equal(h.health, FLEET_HEALTH_UNHEALTHY);
}

static void rise_fall_one(void **state)
{
    (void)state;
    struct hs h = {FLEET_HEALTH_UNKNOWN, 0, 0};
    /* rise = fall = 1 (and 0 counts as 1): every result decides */
    assert_int_equal(feed(&h, "o", 1, 1), 1);
    assert_int_equal(feed(&h, "x", 0, 0), 1);
    assert_int_equal(h.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(feed(&h, "oxox", 1, 1), 4);
}

static void forced_unhealthy_needs_rise(void **state)
{
    (void)state;
    /* what Deregister does to a healthy slot: health UNHEALTHY, ok = 0 */
    struct hs h = {FLEET_HEALTH_HEALTHY, 0, 0};
    h.health = FLEET_HEALTH_UNHEALTHY;
    assert_int_equal(feed(&h, "o", 3, 3), 0);
    assert_int_equal(feed(&h, "oo", 3, 3), 1);
    assert_int_equal(h.health, FLEET_HEALTH_HEALTHY);
}

/* a deregistered agent restarting: silence keeps it DEREGISTERED (the controller ends the
   window), rise passes make it healthy */
static void deregistered_not_failed_by_silence(void **state)
{
    (void)state;
    uint8_t h = FLEET_HEALTH_DEREGISTERED;
    uint32_t ok = 0, fail = 0;
    for (int i = 0; i < 10; i++)
        assert_int_equal(mon_health_observe(&h, &ok, &fail, 0, 2, 3), 0);
    assert_int_equal(h, FLEET_HEALTH_DEREGISTERED);
    assert_int_equal(mon_health_observe(&h, &ok, &fail, 1, 2, 3), 0);
    assert_int_equal(mon_health_observe(&h, &ok, &fail, 1, 2, 3), 1);
    assert_int_equal(h, FLEET_HEALTH_HEALTHY);
}

static void counters_saturate(void **state)
{
    (void)state;
    struct hs h = {FLEET_HEALTH_HEALTHY, UINT32_MAX, 0};
    assert_int_equal(feed(&h, "o", 2, 3), 0);
    assert_int_equal(h.ok, UINT32_MAX);
    h = (struct hs){FLEET_HEALTH_UNHEALTHY, 0, UINT32_MAX};
    assert_int_equal(feed(&h, "x", 2, 3), 0);
    assert_int_equal(h.fail, UINT32_MAX);
    assert_int_equal(h.health, FLEET_HEALTH_UNHEALTHY);
}

static void token_compare(void **state)
{
    (void)state;
    assert_true(mon_token_equal("s3cret", "s3cret"));
    assert_false(mon_token_equal("s3creT", "s3cret"));
    assert_false(mon_token_equal("s3cre", "s3cret"));
    assert_false(mon_token_equal("s3cret!", "s3cret"));
    assert_false(mon_token_equal("", "s3cret"));
    assert_false(mon_token_equal(NULL, "s3cret"));
    assert_true(mon_token_equal("", ""));
    assert_true(mon_token_equal(NULL, NULL));
    /* an embedded difference after a common prefix of the secret's length */
    assert_false(mon_token_equal("s3cretX", "s3cret"));
}

static void address_validation(void **state)
{
    (void)state;
    const char *good[] = {"127.0.0.2:50051", "10.0.0.1:1",
                          "localhost:65535", "ip-10-0-0-1.ec2.internal:50051",
                          "[::1]:50051",     "[fe80::1%eth0]:80"};
    const char *bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":50051",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:5x",
        "127.0.0.1:-1",
        "host name:80",
        "host:80:90",
        "[::1:80",
        "::1:80",
        "a\nb:80",
        "h/x:80",
        "127.0.0.1:+80",
        "127.0.0.1:0080000",
        "a-very-long-host-name-that-does-not-fit-in-the-fleet-slot.example.com:50051",
        NULL};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(mon_address_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(mon_address_valid(bad[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_until_rise), cmocka_unit_test(unknown_until_fall),
        cmocka_unit_test(fall_then_rise),     cmocka_unit_test(flapping_never_flips),
        cmocka_unit_test(rise_fall_one),      cmocka_unit_test(forced_unhealthy_needs_rise),
        cmocka_unit_test(counters_saturate),  cmocka_unit_test(token_compare),
        cmocka_unit_test(address_validation), cmocka_unit_test(deregistered_not_failed_by_silence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
