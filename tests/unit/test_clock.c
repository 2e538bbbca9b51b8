/* Unit tests for common/clock: duration parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/clock.h"

static void parses_units(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(clk_parse_duration("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(clk_parse_duration("5s", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(clk_parse_duration("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(clk_parse_duration("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(clk_parse_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(clk_parse_duration("30", &ms), 0);
    assert_int_equal(ms, 30000);
}

static void rejects_garbage(void **state)
{
    (void)state;
    int64_t ms = 42;
    const char *bad[] = {"", "-1s", "+1s", "5x", "s", "1e400", "nan", "5 s", "99999999999h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(clk_parse_duration(bad[i], &ms), -1);
        assert_int_equal(ms, 42);
    }
    assert_int_equal(clk_parse_duration(NULL, &ms), -1);
}

static void formats(void **state)
{
    (void)state;
    char buf[16];
    clk_format_duration(120000, buf, sizeof(buf));
    assert_string_equal(buf, "2m");
    clk_format_duration(5000, buf, sizeof(buf));
    assert_string_equal(buf, "5s");
    clk_format_duration(500, buf, sizeof(buf));
    assert_string_equal(buf, "500ms");
    clk_format_duration(1500, buf, sizeof(buf));
    assert_string_equal(buf, "1.5s");
}

static void monotonic_moves_forward(void **state)
{
    (void)state;
    int64_t a = clk_mono_ms(), b = clk_mono_ms();
    assert_true(b >= a);
    assert_true(clk_wall_ms() > 1700000000000LL);
}

static void iso8601_utc_with_ms(void **state)
{
    (void)state;
    char b[40];
    clk_iso8601(1764660600123LL, b, sizeof(b)); /* 2025-12-02T07:30:00.123Z */
    assert_string_equal(b, "2025-12-02T07:30:00.123Z");
    clk_iso8601(0, b, sizeof(b));
    assert_string_equal(b, "");
    clk_iso8601(1764660600005LL, b, 10); /* cut, still terminated */
    assert_string_equal(b, "2025-12-0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_units),
        cmocka_unit_test(rejects_garbage),
        cmocka_unit_test(formats),
        cmocka_unit_test(iso8601_utc_with_ms),
        cmocka_unit_test(monotonic_moves_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
