/*
 * Unit tests for notify: the activity -> event mapping, the signature (RFC
 * 4231 HMAC-SHA256 test vectors, as the receiver computes it), filtering by
 * [notify] url and events, and the bounded queue refusing (and counting) an
 * event when full. Delivery itself is tested against a real HTTP receiver in
 * tests/integration/test_asgd_suspend_notify.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/stats.h"
#include "group/group.h"
#include "notify/notify.h"
#include "store/store.h"
#include "common/banned.h"

static void event_names(void **state)
{
    (void)state;
    assert_string_equal(notify_event_name("launch", "ok"), "launch");
    assert_string_equal(notify_event_name("launch", "failed"), "failure");
    assert_null(notify_event_name("launch", "retrying"));
    assert_string_equal(notify_event_name("launch", "skipped"), "skipped");
    assert_string_equal(notify_event_name("terminate", "ok"), "terminate");
    assert_string_equal(notify_event_name("error", "failed"), "failure");
    assert_string_equal(notify_event_name("hook", "ok"), "hook");
    assert_string_equal(notify_event_name("scale", "ok"), "scale");
    assert_string_equal(notify_event_name("panic", "started"), "panic");
    assert_null(notify_event_name("adopt", "ok"));
    assert_null(notify_event_name("forget", "ok"));
}

static void signature_vectors(void **state)
{
    (void)state;
    char sig[96];
    /* RFC 4231 test case 2 */
    const char *data = "what do ya want for nothing?";
    notify_sign("Jefe", 4, data, strlen(data), sig, sizeof sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* test case 6: a key longer than the block is hashed first */
    unsigned char key[131];
    memset(key, 0xaa, sizeof key);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    notify_sign(key, sizeof key, d6, strlen(d6), sig, sizeof sig);
    assert_string_equal(sig,
                        "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void activity(struct store_activity *a, const char *kind, const char *status)
{
    memset(a, 0, sizeof *a);
    snprintf(a->group, sizeof a->group, "web");
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    snprintf(a->status, sizeof a->status, "%s", status);
    snprintf(a->cause, sizeof a->cause, "because");
    a->at_ms = 1795000000123LL;
}

static void filtering_and_full_queue(void **state)
{
    (void)state;
    struct notify *n = NULL;
    assert_int_equal(notify_new(1, &n), 0);
    struct group_settings g;
    group_settings_default(&g, "web");
    struct store_activity a;
    activity(&a, "launch", "ok");
    /* no url: nothing */
    assert_int_equal(notify_activity(n, &g, &a), 1);
    assert_int_equal(notify_activity(NULL, &g, &a), 1);
    /* a receiver that refuses connections (port 9 on loopback), retried in an hour */
    snprintf(g.notify.url, sizeof g.notify.url, "http://127.0.0.1:9/hook");
    g.notify.retry_base_ms = 3600 * 1000;
    g.notify.retry_max_ms = 3600 * 1000;
    /* not in the events list (default: launch, terminate, failure, hook) */
    activity(&a, "scale", "ok");
    assert_int_equal(notify_activity(n, &g, &a), 1);
    activity(&a, "adopt", "ok");
    assert_int_equal(notify_activity(n, &g, &a), 1);
    /* queued: the one slot is taken until the retry an hour away */
    activity(&a, "launch", "ok");
    assert_int_equal(notify_activity(n, &g, &a), 0);
    uint64_t dropped = stats.notify_dropped;
    activity(&a, "terminate", "ok");
    assert_int_equal(notify_activity(n, &g, &a), NOTIFY_EFULL);
    assert_int_equal(stats.notify_dropped, dropped + 1);
    assert_int_equal(notify_pending(n), 1);
    /* freeing with an event waiting drops it, no leak (ASan build) */
    notify_free(n);
    notify_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_names),
        cmocka_unit_test(signature_vectors),
        cmocka_unit_test(filtering_and_full_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
