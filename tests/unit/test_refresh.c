/*
 * Unit tests for controller/refresh: the state's text form round-trips (what
 * a restarted asgd reads back is what was written), the start request's
 * checks, and the status helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "controller/refresh.h"
#include "common/banned.h"

static void test_round_trip(void **state)
{
    (void)state;
    struct refresh r, back;
    memset(&r, 0, sizeof(r));
    r.status = REFRESH_PAUSED;
    r.min_healthy = 50;
    r.warmup_ms = 60000;
    r.checkpoints[0] = 20;
    r.checkpoints[1] = 50;
    r.n_checkpoints = 2;
    r.next_checkpoint = 1;
    r.total = 6;
    r.left = 3;
    r.started_ms = 1796187562428;
    r.updated_ms = 1796187563000;
    snprintf(r.target, sizeof(r.target), "c3d4c3d4c3d4c3d4");
    snprintf(r.from, sizeof(r.from), "a1b2");
    snprintf(r.reason, sizeof(r.reason), "a reason with spaces = and words");
    char text[512];
    assert_int_equal(refresh_format(&r, text, sizeof(text)), 0);
    assert_int_equal(refresh_parse(text, &back), 0);
    assert_memory_equal(&r, &back, sizeof(r));
    assert_int_equal(refresh_percent(&back), 50);
    assert_int_equal(refresh_active(back.status), 1);
    assert_string_equal(refresh_status_name(back.status), "paused_at_checkpoint");
    /* too small a buffer is refused, not truncated */
    assert_int_equal(refresh_format(&r, text, 20), -1);
    /* "" is no refresh; garbage is refused */
    assert_int_equal(refresh_parse("", &back), 0);
    assert_int_equal(back.status, REFRESH_NONE);
    assert_int_equal(refresh_parse("st=bogus", &back), -1);
    assert_int_equal(refresh_parse("st=in_progress min=150", &back), -1);
    assert_int_equal(refresh_parse("st=in_progress cp=50,x", &back), -1);
    assert_int_equal(refresh_parse("st=in_progress to=0123456789abcdef0", &back), -1);
    /* a key a newer asgd wrote is skipped */
    assert_int_equal(refresh_parse("st=successful total=4 left=0 newkey=7", &back), 0);
    assert_int_equal(back.status, REFRESH_SUCCESSFUL);
    assert_int_equal(refresh_active(back.status), 0);
    assert_int_equal(refresh_percent(&back), 100);
}

static void test_request(void **state)
{
    (void)state;
    struct refresh r;
    char err[256];
    json_t *b = json_loads(
        "{\"min_healthy_percentage\": 50, \"instance_warmup\": \"90s\", \"checkpoints\": [25, 50]}",
        0, NULL);
    assert_int_equal(refresh_from_request(b, 1000, &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, REFRESH_PENDING);
    assert_int_equal(r.min_healthy, 50);
    assert_int_equal(r.warmup_ms, 90000);
    assert_int_equal(r.n_checkpoints, 2);
    assert_int_equal(r.checkpoints[1], 50);
    json_decref(b);
    /* defaults: 90 %, no warmup, no checkpoint */
    assert_int_equal(refresh_from_request(NULL, 1000, &r, err, sizeof(err)), 0);
    assert_int_equal(r.min_healthy, 90);
    assert_int_equal(r.n_checkpoints, 0);
    static const char *const bad[] = {
        "{\"min_healthy_percentage\": 101}",
        "{\"instance_warmup\": \"soon\"}",
        "{\"checkpoints\": [50, 20]}",
        "{\"checkpoints\": [0]}",
        "{\"checkpoints\": [1,2,3,4,5,6,7,8,9]}",
        "{\"max_healthy_percentage\": 110}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = json_loads(bad[i], 0, NULL);
        assert_non_null(b);
        err[0] = '\0';
        assert_int_equal(refresh_from_request(b, 1000, &r, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        json_decref(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
