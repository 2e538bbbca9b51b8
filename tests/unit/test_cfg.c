/*
 * Unit tests for common/cfg: the INI grammar (comments, quotes, whitespace,
 * long lines), syntax errors with their line, every typed getter with its
 * ranges and bad values, duplicate keys, unknown keys and sections, and
 * reading real files (present, missing, empty).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/banned.h"

static void load_ok(struct cfg *c, const char *text)
{
    char err[256];
    int rc = cfg_load_string(c, "t.ini", text, err, sizeof(err));
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
}

static void load_fails(const char *text, const char *expect)
{
    struct cfg c = CFG_INIT;
    char err[256] = "untouched";
    assert_int_equal(cfg_load_string(&c, "t.ini", text, err, sizeof(err)), -1);
    if (strstr(err, expect) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, expect);
    assert_int_equal(c.n, 0);
    assert_null(c.entries);
    cfg_release(&c);
}

static void grammar(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    load_ok(&c, "; leading comment\n"
                "# another\n"
                "\n"
                "  [group]   ; trailing comment\n"
                "name=web\n"
                "  spaced   =   value with  spaces   \n"
                "empty =\n"
                "inline = abc ; comment\n"
                "hash = abc # comment\n"
                "nocomment = a;b#c\n"
                "quoted = \"  keep ; # spaces  \"  ; and a comment\n"
                "escaped = \"say \\\"hi\\\" \\\\ ok\"\n"
                "crlf = yes\r\n"
                "[ other.sec-1 ]\n"
                "name = two\n");
    assert_int_equal(c.n_sections, 2);
    assert_string_equal(c.sections[0], "group");
    assert_int_equal(c.section_lines[0], 4);
    assert_string_equal(c.sections[1], "other.sec-1");
    const struct cfg_entry *e = cfg_find(&c, "group", "name");
    assert_non_null(e);
    assert_string_equal(e->value, "web");
    assert_int_equal(e->line, 5);
    assert_string_equal(cfg_find(&c, "group", "spaced")->value, "value with  spaces");
    assert_string_equal(cfg_find(&c, "group", "empty")->value, "");
    assert_string_equal(cfg_find(&c, "group", "inline")->value, "abc");
    assert_string_equal(cfg_find(&c, "group", "hash")->value, "abc");
    assert_string_equal(cfg_find(&c, "group", "nocomment")->value, "a;b#c");
    assert_string_equal(cfg_find(&c, "group", "quoted")->value, "  keep ; # spaces  ");
    assert_string_equal(cfg_find(&c, "group", "escaped")->value, "say \"hi\" \\ ok");
    assert_string_equal(cfg_find(&c, "group", "crlf")->value, "yes");
    assert_string_equal(cfg_find(&c, "other.sec-1", "name")->value, "two");
    assert_null(cfg_find(&c, "group", "absent"));
    assert_null(cfg_find(&c, "absent", "name"));
    assert_true(cfg_has_section(&c, "group"));
    assert_false(cfg_has_section(&c, "nope"));
    cfg_release(&c);
    cfg_release(&c); /* twice is harmless */
    cfg_release(NULL);
}

static void empty_input(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[64];
    load_ok(&c, "");
    assert_int_equal(c.n, 0);
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), 0);
    cfg_release(&c);
    load_ok(&c, "\n\n  ; only comments\n");
    assert_int_equal(c.n, 0);
    cfg_release(&c);
}

static void syntax_errors(void **state)
{
    (void)state;
    load_fails("key = 1\n", "t.ini:1: key: key outside any [section]");
    load_fails("\n[a]\nx = 1\njunk\n", "t.ini:4: syntax error");
    load_fails("[a\n", "t.ini:1: syntax error: section header without ']'");
    load_fails("[]\n", "t.ini:1: syntax error: invalid section name");
    load_fails("[a b]\n", "t.ini:1: syntax error: invalid section name");
    load_fails("[a] x\n", "t.ini:1: syntax error: text after section header");
    load_fails("[a]\n = 1\n", "t.ini:2: syntax error: invalid key name");
    load_fails("[a]\nmy key = 1\n", "t.ini:2: syntax error: invalid key name");
    load_fails("[a]\nx = \"open\n", "t.ini:2: [a] x: unterminated quoted value");
    load_fails("[a]\nx = \"q\" tail\n", "t.ini:2: [a] x: unexpected text after quoted value");
    load_fails("[a]\nx = 1\n\n x = 2\n", "t.ini:4: [a] x: duplicate key (first at line 2)");
    load_fails("[a]\n[b]\n[a]\n", "t.ini:3: [a]: section repeated (first at line 1)");
}

static void same_key_in_two_sections_is_fine(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    load_ok(&c, "[a]\nx=1\n[b]\nx=2\n");
    assert_string_equal(cfg_find(&c, "a", "x")->value, "1");
    assert_string_equal(cfg_find(&c, "b", "x")->value, "2");
    cfg_release(&c);
}

static void long_lines(void **state)
{
    (void)state;
    size_t n = CFG_VALUE_MAX; /* the longest value accepted */
    char *text = malloc(n + 64);
    assert_non_null(text);
    int off = snprintf(text, 64, "[s]\nlong = ");
    memset(text + off, 'x', n);
    memcpy(text + off + n, "\nafter = 1\n", 12);
    struct cfg c = CFG_INIT;
    load_ok(&c, text);
    const struct cfg_entry *e = cfg_find(&c, "s", "long");
    assert_non_null(e);
    assert_int_equal(strlen(e->value), n);
    assert_int_equal(cfg_find(&c, "s", "after")->line, 3);
    char *s = NULL;
    char err[128];
    assert_int_equal(cfg_get_str(&c, "s", "long", NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(strlen(s), n);
    free(s);
    /* a long bad value: the message is truncated, never overflows */
    long v;
    assert_int_equal(cfg_get_int(&c, "s", "long", 0, 0, 10, &v, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_memory_equal(err, "t.ini:2: [s] long: \"xxx", 23);
    cfg_release(&c);
    free(text);

    /* one byte more is refused at its line; a long comment line is fine */
    n = 200000;
    text = malloc(n + 64);
    assert_non_null(text);
    off = snprintf(text, 64, "[s]\nlong = ");
    memset(text + off, 'x', CFG_VALUE_MAX + 1);
    memcpy(text + off + CFG_VALUE_MAX + 1, "\n", 2);
    load_fails(text, "t.ini:2: [s] long: value too long (4097 bytes, at most 4096)");
    off = snprintf(text, 64, "[s]\n; ");
    memset(text + off, 'x', n);
    memcpy(text + off + n, "\na = 1\n", 8);
    load_ok(&c, text);
    assert_int_equal(cfg_find(&c, "s", "a")->line, 3);
    cfg_release(&c);
    free(text);
}

static void get_str(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[128], *s = NULL;
    load_ok(&c, "[a]\nx = hello\n");
    assert_int_equal(cfg_get_str(&c, "a", "x", "def", &s, err, sizeof(err)), 0);
    assert_string_equal(s, "hello");
    free(s);
    assert_int_equal(cfg_get_str(&c, "a", "y", "def", &s, err, sizeof(err)), 0);
    assert_string_equal(s, "def");
    free(s);
    assert_int_equal(cfg_get_str(&c, "a", "z", NULL, &s, err, sizeof(err)), 0);
    assert_null(s);
    cfg_release(&c);
}

static void get_int(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[128];
    long v = 0;
    load_ok(&c, "[a]\nok = 42\nneg = -3\nlow = 0\nhigh = 101\nword = ten\nfrac = 1.5\n"
                "empty =\nhuge = 99999999999999999999999\nspace = \" 4\"\nplus = +7\n");
    assert_int_equal(cfg_get_int(&c, "a", "ok", 1, 0, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cfg_get_int(&c, "a", "neg", 1, -10, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, -3);
    assert_int_equal(cfg_get_int(&c, "a", "absent", 7, 0, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 7);
    assert_int_equal(cfg_get_int(&c, "a", "plus", 1, 0, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 7);
    v = 5;
    assert_int_equal(cfg_get_int(&c, "a", "low", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:4: [a] low: 0 is out of range (1..100)");
    assert_int_equal(v, 5);
    assert_int_equal(cfg_get_int(&c, "a", "high", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:5: [a] high: 101 is out of range (1..100)");
    assert_int_equal(cfg_get_int(&c, "a", "word", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:6: [a] word: \"ten\" is not an integer");
    assert_int_equal(cfg_get_int(&c, "a", "frac", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:7: [a] frac: \"1.5\" is not an integer");
    assert_int_equal(cfg_get_int(&c, "a", "empty", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:8: [a] empty: \"\" is not an integer");
    assert_int_equal(cfg_get_int(&c, "a", "huge", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.ini:9: [a] huge: "));
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(cfg_get_int(&c, "a", "space", 1, 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:10: [a] space: \" 4\" is not an integer");
    assert_int_equal(v, 5);
    cfg_release(&c);
}

static void get_double(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[128];
    double v = 0;
    load_ok(&c, "[p]\nf = 0.5\ne = 1e1\nlow = -0.1\nnan = nan\ninf = inf\nhex = 0x10\n"
                "word = half\nempty =\nint = 2\n");
    assert_int_equal(cfg_get_double(&c, "p", "f", 1, 0, 1, &v, err, sizeof(err)), 0);
    assert_true(v == 0.5);
    assert_int_equal(cfg_get_double(&c, "p", "e", 1, 0, 100, &v, err, sizeof(err)), 0);
    assert_true(v == 10.0);
    assert_int_equal(cfg_get_double(&c, "p", "int", 1, 0, 100, &v, err, sizeof(err)), 0);
    assert_true(v == 2.0);
    assert_int_equal(cfg_get_double(&c, "p", "absent", 0.25, 0, 1, &v, err, sizeof(err)), 0);
    assert_true(v == 0.25);
    assert_int_equal(cfg_get_double(&c, "p", "low", 1, 0, 1, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:4: [p] low: -0.1 is out of range (0..1)");
    const char *bad[] = {"nan", "inf", "hex", "word", "empty"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cfg_get_double(&c, "p", bad[i], 1, -1e9, 1e9, &v, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not a number"));
        assert_non_null(strstr(err, bad[i]));
    }
    assert_true(v == 0.25);
    cfg_release(&c);
}

static void get_bool(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[160];
    int v = -1;
    load_ok(&c, "[b]\na = true\nb = No\nc = ON\nd = 0\ne = maybe\nf = 1\n");
    assert_int_equal(cfg_get_bool(&c, "b", "a", 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cfg_get_bool(&c, "b", "b", 1, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cfg_get_bool(&c, "b", "c", 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cfg_get_bool(&c, "b", "d", 1, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cfg_get_bool(&c, "b", "f", 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cfg_get_bool(&c, "b", "absent", 1, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cfg_get_bool(&c, "b", "e", 0, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.ini:6: [b] e: \"maybe\" is not a boolean"));
    cfg_release(&c);
}

static void get_duration(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[160];
    int64_t v = -1;
    load_ok(&c, "[h]\na = 500ms\nb = 5s\nc = 2m\nd = 30\ne = 5 parsecs\nf = 1h\ng = -1s\n");
    assert_int_equal(cfg_get_duration(&c, "h", "a", 0, 0, 3600000, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 500);
    assert_int_equal(cfg_get_duration(&c, "h", "b", 0, 0, 3600000, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(cfg_get_duration(&c, "h", "c", 0, 0, 3600000, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(cfg_get_duration(&c, "h", "d", 0, 0, 3600000, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(cfg_get_duration(&c, "h", "absent", 1234, 0, 3600000, &v, err, sizeof(err)),
                     0);
    assert_int_equal(v, 1234);
    assert_int_equal(cfg_get_duration(&c, "h", "e", 0, 0, 3600000, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.ini:6: [h] e: \"5 parsecs\" is not a duration"));
    assert_int_equal(cfg_get_duration(&c, "h", "g", 0, 0, 3600000, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.ini:8: [h] g: \"-1s\" is not a duration"));
    assert_int_equal(cfg_get_duration(&c, "h", "f", 0, 0, 120000, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:7: [h] f: 1h is out of range (0s..2m)");
    assert_int_equal(cfg_get_duration(&c, "h", "a", 0, 1000, 120000, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:2: [h] a: 500ms is out of range (1s..2m)");
    assert_int_equal(v, 1234);
    cfg_release(&c);
}

static void get_enum(void **state)
{
    (void)state;
    static const char *const kinds[] = {"threshold", "target", NULL};
    struct cfg c = CFG_INIT;
    char err[160];
    int v = -1;
    load_ok(&c, "[p]\ntype = target\nbad = Target\n");
    assert_int_equal(cfg_get_enum(&c, "p", "type", 0, kinds, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cfg_get_enum(&c, "p", "absent", 0, kinds, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cfg_get_enum(&c, "p", "bad", 0, kinds, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:3: [p] bad: \"Target\" is not one of: threshold, target");
    cfg_release(&c);
}

static void unused_keys_and_sections(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[160];
    long v;
    load_ok(&c, "[group]\nmin_size = 1\nmax_sise = 3\n[bogus]\nx = 1\n[empty]\n");
    assert_int_equal(cfg_get_int(&c, "group", "min_size", 0, 0, 10, &v, err, sizeof(err)), 0);
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:3: [group] max_sise: unknown key");
    /* asking for the key (even if absent) makes it known: the next problem is the section */
    assert_int_equal(cfg_get_int(&c, "group", "max_sise", 0, 0, 10, &v, err, sizeof(err)), 0);
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:4: [bogus]: unknown section");
    /* a section is known once a module asked about any key in it */
    cfg_find(&c, "bogus", "other");
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:5: [bogus] x: unknown key");
    cfg_find(&c, "bogus", "x");
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini:6: [empty]: unknown section");
    cfg_find(&c, "empty", "anything");
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), 0);
    cfg_release(&c);
}

static void error_at(void **state)
{
    (void)state;
    struct cfg c = CFG_INIT;
    char err[160];
    load_ok(&c, "[group]\nmin_size = 4\nmax_size = 2\n[policy]\n");
    cfg_error_at(&c, "group", "min_size", err, sizeof(err), "must be <= max_size (%d)", 2);
    assert_string_equal(err, "t.ini:2: [group] min_size: must be <= max_size (2)");
    /* absent key: the section's line */
    cfg_error_at(&c, "policy", "target", err, sizeof(err), "bad");
    assert_string_equal(err, "t.ini:4: [policy] target: bad");
    /* absent section: no line */
    cfg_error_at(&c, "health", "timeout", err, sizeof(err), "bad");
    assert_string_equal(err, "t.ini: [health] timeout: bad");
    cfg_error_at(&c, "group", NULL, err, sizeof(err), "bad");
    assert_string_equal(err, "t.ini:1: [group]: bad");
    /* truncation keeps the buffer terminated */
    char small[10];
    cfg_error_at(&c, "group", "min_size", small, sizeof(small), "x");
    assert_string_equal(small, "t.ini:2: ");
    cfg_release(&c);
}

static void files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_cfg.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/a.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[group]\nname = web\n", f);
    fclose(f);

    struct cfg c = CFG_INIT;
    assert_int_equal(cfg_load(&c, path, err, sizeof(err)), 0);
    assert_string_equal(c.path, path);
    char *s = NULL;
    assert_int_equal(cfg_get_str(&c, "group", "name", NULL, &s, err, sizeof(err)), 0);
    assert_string_equal(s, "web");
    free(s);
    long v;
    assert_int_equal(cfg_check_unused(&c, err, sizeof(err)), 0);
    assert_int_equal(cfg_get_int(&c, "group", "name", 0, 0, 1, &v, err, sizeof(err)), -1);
    char expect[512];
    snprintf(expect, sizeof(expect), "%s:2: [group] name: \"web\" is not an integer", path);
    assert_string_equal(err, expect);
    cfg_release(&c);

    /* a syntax error in a file names the file */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[group]\n\nname\n", f);
    fclose(f);
    assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect), "%s:3: syntax error", path);
    assert_non_null(strstr(err, expect));
    cfg_release(&c);

    /* an embedded NUL byte */
    f = fopen(path, "w");
    assert_non_null(f);
    fwrite("[g]\nx = a\0b\n", 1, 12, f);
    fclose(f);
    assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2: syntax error: NUL byte"));

    unlink(path);
    assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect), "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(err, expect);
    assert_int_equal(c.n, 0);
    cfg_release(&c);

    /* a directory cannot be read as a file */
    assert_int_equal(cfg_load(&c, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, dir));
    cfg_release(&c);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grammar),       cmocka_unit_test(empty_input),
        cmocka_unit_test(syntax_errors), cmocka_unit_test(same_key_in_two_sections_is_fine),
        cmocka_unit_test(long_lines),    cmocka_unit_test(get_str),
        cmocka_unit_test(get_int),       cmocka_unit_test(get_double),
        cmocka_unit_test(get_bool),      cmocka_unit_test(get_duration),
        cmocka_unit_test(get_enum),      cmocka_unit_test(unused_keys_and_sections),
        cmocka_unit_test(error_at),      cmocka_unit_test(files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
