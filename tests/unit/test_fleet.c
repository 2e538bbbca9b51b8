/*
 * Unit tests for fleet/: the shared-memory fleet table.
 *
 * Behaviour of every call (alloc/find/read/update/free/snapshot, generations,
 * the error codes), then the properties the table exists for: readers never
 * see a torn slot while threads and another process write, a process killed
 * while holding the mutex or in the middle of a slot write does not wedge or
 * corrupt the table, and garbage written into the segment by someone else is
 * contained. The invariant checker (fleet__check) runs after the operations.
 * Every segment name carries the pid, so parallel test runs do not collide.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleet/fleet.h"
#include "fleet/fleet_internal.h"

#include "common/banned.h"

static char seg_name[64];

static const char *uname_for(const char *what)
{
    snprintf(seg_name, sizeof(seg_name), "test-%ld-%s", (long)getpid(), what);
    return seg_name;
}

static void check_invariants(struct fleet *f)
{
    char err[256];
    int rc = fleet__check(f, err, sizeof(err));
    if (rc != 0)
        fail_msg("fleet invariant violated: %s", err);
}

/* Segments this test created: unlinked after each test even when an assertion failed. */
static char created[16][96];
static int n_created;

static void remember(const char *name)
{
    if (n_created < 16)
        snprintf(created[n_created++], sizeof(created[0]), "%s", name);
}

static int unlink_created(void **state)
{
    (void)state;
    for (int i = 0; i < n_created; i++)
        (void)fleet_unlink(created[i]);
    n_created = 0;
    return 0;
}

static struct fleet *open_new(const char *name, uint32_t cap)
{
    remember(name);
    (void)fleet_unlink(name);
    struct fleet *f = NULL;
    assert_int_equal(fleet_open(name, cap, 1, &f), 0);
    assert_non_null(f);
    return f;
}

static void set_load(struct fleet_slot *s, void *arg)
{
    s->load = *(double *)arg;
    s->health = FLEET_HEALTH_HEALTHY;
}

static void break_id(struct fleet_slot *s, void *arg)
{
    (void)arg;
    s->id[0] = 'X';
    s->load = 99;
}

static void set_free(struct fleet_slot *s, void *arg)
{
    (void)arg;
    s->lifecycle = FLEET_FREE;
}

static void basic_operations(void **state)
{
    (void)state;
    const char *name = uname_for("basic");
    struct fleet *f = open_new(name, 4);
    assert_int_equal(fleet_capacity(f), 4);
    check_invariants(f);

    uint64_t g0 = fleet_membership_gen(f);
    uint32_t a, b;
    assert_int_equal(fleet_alloc(f, "i-a", "127.0.0.2:50051", 1000, &a), 0);
    assert_true(fleet_membership_gen(f) > g0);
    assert_int_equal(fleet_alloc(f, "i-b", NULL, 2000, &b), 0);
    assert_int_not_equal(a, b);
    assert_int_equal(fleet_alloc(f, "i-a", "x", 1, NULL), FLEET_EEXIST);
    check_invariants(f);

    struct fleet_slot s;
    assert_int_equal(fleet_read(f, a, &s), 0);
    assert_int_equal(s.index, a);
    assert_string_equal(s.id, "i-a");
    assert_string_equal(s.address, "127.0.0.2:50051");
    assert_int_equal(s.lifecycle, FLEET_PENDING);
    assert_int_equal(s.health, FLEET_HEALTH_UNKNOWN);
    assert_true(s.load < 0);
    assert_int_equal(s.launched_at_ms, 1000);
    assert_int_not_equal(s.generation, 0);
    uint32_t gen_a = s.generation;

    uint32_t idx = 99;
    assert_int_equal(fleet_find(f, "i-b", &idx), 0);
    assert_int_equal(idx, b);
    assert_int_equal(fleet_find(f, "i-zz", &idx), FLEET_ENOENT);

    double load = 42.5;
    assert_int_equal(fleet_update(f, a, gen_a, set_load, &load), 0);
    assert_int_equal(fleet_read(f, a, &s), 0);
    assert_true(s.load == 42.5);
    assert_int_equal(s.health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(fleet_update(f, a, gen_a + 1, set_load, &load), FLEET_ESTALE);

    /* the contract forbids changing id or freeing through update: nothing is published */
    assert_int_equal(fleet_update(f, a, gen_a, break_id, NULL), FLEET_EINVAL);
    assert_int_equal(fleet_update(f, a, gen_a, set_free, NULL), FLEET_EINVAL);
    assert_int_equal(fleet_read(f, a, &s), 0);
    assert_string_equal(s.id, "i-a");
    assert_true(s.load == 42.5);
    check_invariants(f);

    struct fleet_slot snap[4];
    assert_int_equal(fleet_snapshot(f, snap, 4), 2);
    assert_int_equal(fleet_snapshot(f, snap, 1), 2); /* reports the real count */
    assert_int_equal(fleet_snapshot(f, NULL, 0), 2);

    /* fill up, EFULL */
    uint32_t c, d;
    assert_int_equal(fleet_alloc(f, "i-c", "", 0, &c), 0);
    assert_int_equal(fleet_alloc(f, "i-d", "", 0, &d), 0);
    assert_int_equal(fleet_alloc(f, "i-e", "", 0, NULL), FLEET_EFULL);
    check_invariants(f);

    /* free: stale generation refused, then the slot is reused with a new generation */
    assert_int_equal(fleet_free(f, a, gen_a + 7), FLEET_ESTALE);
    assert_int_equal(fleet_free(f, a, gen_a), 0);
    assert_int_equal(fleet_free(f, a, gen_a), FLEET_ESTALE);
    assert_int_equal(fleet_read(f, a, &s), FLEET_ENOENT);
    assert_int_equal(fleet_find(f, "i-a", &idx), FLEET_ENOENT);
    assert_int_equal(fleet_update(f, a, gen_a, set_load, &load), FLEET_ESTALE);
    check_invariants(f);
    uint32_t e;
    assert_int_equal(fleet_alloc(f, "i-e", "", 0, &e), 0);
    assert_int_equal(e, a);
    assert_int_equal(fleet_read(f, e, &s), 0);
    assert_true(s.generation != gen_a);
    assert_int_equal(fleet_update(f, e, gen_a, set_load, &load), FLEET_ESTALE);
    assert_int_equal(fleet_free(f, e, gen_a), FLEET_ESTALE);
    check_invariants(f);

    /* out-of-range indexes */
    assert_int_equal(fleet_read(f, 4, &s), FLEET_EINVAL);
    assert_int_equal(fleet_update(f, 1000, 1, set_load, &load), FLEET_EINVAL);
    assert_int_equal(fleet_free(f, UINT32_MAX, 1), FLEET_EINVAL);

    /* heartbeats */
    assert_int_equal(fleet_last_heartbeat(f, 0), 0);
    fleet_heartbeat(f, 0, 111);
    fleet_heartbeat(f, 1, 222);
    fleet_heartbeat(f, 5, 333);
    assert_int_equal(fleet_last_heartbeat(f, 0), 111);
    assert_int_equal(fleet_last_heartbeat(f, 1), 222);
    assert_int_equal(fleet_last_heartbeat(f, 5), 0);

    /* a second mapping (as another process would have) sees the same data */
    struct fleet *g = NULL;
    assert_int_equal(fleet_open(name, 999, 0, &g), 0);
    assert_int_equal(fleet_capacity(g), 4); /* capacity only applies at creation */
    assert_int_equal(fleet_find(g, "i-b", &idx), 0);
    assert_int_equal(idx, b);
    assert_int_equal(fleet_last_heartbeat(g, 1), 222);
    assert_int_equal(fleet_membership_gen(g), fleet_membership_gen(f));
    assert_int_equal(fleet_free(g, c, 1), 0);
    assert_int_equal(fleet_read(f, c, &s), FLEET_ENOENT);
    fleet_close(g);
    /* create=1 on an existing segment attaches to it */
    assert_int_equal(fleet_open(name, 8, 1, &g), 0);
    assert_int_equal(fleet_snapshot(g, NULL, 0), 3);
    fleet_close(g);
    check_invariants(f);

    fleet_close(f);
    assert_int_equal(fleet_unlink(name), 0);
    assert_int_equal(fleet_unlink(name), FLEET_ENOENT);
    fleet_close(NULL);
}

/* The launch window the controller sets for MonitorS: open until its deadline (whole seconds,
   rounded up, so never shorter than asked), closed by 0, seen by every mapping, and a header
   word an older build left zero reads as "no launch". */
static void launch_window(void **state)
{
    (void)state;
    const char *name = uname_for("launch");
    struct fleet *f = open_new(name, 4);
    struct fleet *g = NULL;
    assert_int_equal(fleet_open(name, 0, 0, &g), 0);
    int64_t now = 5000000;                 /* a clk_mono_ms() value */
    assert_false(fleet_launching(f, now)); /* a fresh (zero-filled) header */
    fleet_set_launching(f, now + 1500);
    assert_true(fleet_launching(g, now));
    assert_true(fleet_launching(g, now + 1500 - 1));
    assert_true(fleet_launching(g, now + 1999));  /* rounded up to the second */
    assert_false(fleet_launching(g, now + 2000)); /* the deadline passed */
    fleet_set_launching(g, 0);
    assert_false(fleet_launching(f, now));
    fleet_set_launching(f, now - 5000); /* already over */
    assert_false(fleet_launching(g, now));
    fleet_set_launching(f, INT64_MAX); /* clamped, not wrapped */
    assert_true(fleet_launching(g, now));
    fleet_set_launching(NULL, now);
    assert_false(fleet_launching(NULL, now));
    check_invariants(f);
    fleet_close(g);
    fleet_close(f);
}

/* A table grows in place; another mapping (another process: a forked child here) sees the
   new slots at once, and writes from both sides land in the same table. */
static void table_grows_for_every_mapping(void **state)
{
    (void)state;
    const char *name = uname_for("grow");
    struct fleet *f = open_new(name, 8);
    struct fleet *g = NULL;
    assert_int_equal(fleet_open(name, 0, 0, &g), 0);
    uint32_t idx;
    char id[32];
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "i-%d", i);
        assert_int_equal(fleet_alloc(f, id, "", 1, &idx), 0);
    }
    assert_int_equal(fleet_alloc(f, "i-full", "", 1, &idx), FLEET_EFULL);
    uint64_t gen = fleet_membership_gen(g);
    assert_int_equal(fleet_grow(f, 5000), 0);
    assert_true(fleet_membership_gen(g) > gen); /* watchers rescan */
    assert_int_equal(fleet_capacity(f), 5000);
    assert_int_equal(fleet_capacity(g), 5000);
    assert_int_equal(fleet_grow(g, 100), 0); /* never shrinks */
    assert_int_equal(fleet_capacity(f), 5000);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child fills slots above the old end through the mapping it inherited */
        int bad = 0;
        for (int i = 8; i < 4000 && !bad; i++) {
            char cid[32];
            uint32_t ci;
            snprintf(cid, sizeof cid, "i-%d", i);
            bad = fleet_alloc(g, cid, "", 1, &ci) != 0;
        }
        _exit(bad);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(fleet_snapshot(f, NULL, 0), 4000);
    assert_int_equal(fleet_find(f, "i-3999", &idx), 0);
    assert_true(idx >= 8);
    struct fleet_slot s;
    assert_int_equal(fleet_read(f, idx, &s), 0);
    assert_string_equal(s.id, "i-3999");
    /* a third mapping opened after the growth sees it too */
    struct fleet *h = NULL;
    assert_int_equal(fleet_open(name, 0, 0, &h), 0);
    assert_int_equal(fleet_capacity(h), 5000);
    assert_int_equal(fleet_find(h, "i-3999", &idx), 0);
    check_invariants(f);
    assert_int_equal(fleet_grow(f, FLEET_MAX_SLOTS + 1), FLEET_ETOOBIG);
    assert_int_equal(fleet_capacity(f), 5000);
    fleet_close(h);
    fleet_close(g);
    fleet_close(f);
}

static void bad_arguments(void **state)
{
    (void)state;
    struct fleet *f = NULL;
    char too_long[202];
    memset(too_long, 'n', sizeof(too_long) - 1); /* 201 characters: over the 200 allowed */
    too_long[sizeof(too_long) - 1] = '\0';
    const char *bad[] = {"", "a/b", "a b", "..\n", "x\xc3\xa9", too_long};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(fleet_open(bad[i], 4, 1, &f), FLEET_EINVAL);
        assert_null(f);
    }
    assert_int_equal(fleet_open(NULL, 4, 1, &f), FLEET_EINVAL);
    assert_int_equal(fleet_unlink("a/b"), FLEET_EINVAL);
    assert_int_equal(fleet_open(uname_for("absent"), 4, 0, &f), FLEET_ENOENT);
    assert_null(f);
    assert_int_equal(fleet_open(uname_for("huge"), UINT32_MAX, 1, &f), FLEET_EINVAL);

    f = open_new(uname_for("args"), 0); /* 0 = default capacity */
    assert_int_equal(fleet_capacity(f), FLEET_DEFAULT_CAP);
    char longid[FLEET_ID_MAX + 1];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[FLEET_ID_MAX] = '\0';
    assert_int_equal(fleet_alloc(f, longid, "", 0, NULL), FLEET_EINVAL);
    longid[FLEET_ID_MAX - 1] = '\0'; /* exactly the longest that fits */
    uint32_t idx;
    assert_int_equal(fleet_alloc(f, longid, "", 0, &idx), 0);
    assert_int_equal(fleet_find(f, longid, NULL), 0);
    char longaddr[FLEET_ADDR_MAX + 4];
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    assert_int_equal(fleet_alloc(f, "i-1", longaddr, 0, NULL), FLEET_EINVAL);
    assert_int_equal(fleet_alloc(f, "", "", 0, NULL), FLEET_EINVAL);
    assert_int_equal(fleet_alloc(f, NULL, "", 0, NULL), FLEET_EINVAL);
    assert_int_equal(fleet_find(f, "", NULL), FLEET_EINVAL);
    assert_int_equal(fleet_update(f, idx, 1, NULL, NULL), FLEET_EINVAL);
    check_invariants(f);

    assert_string_equal(fleet_lifecycle_name(FLEET_IN_SERVICE), "in-service");
    assert_string_equal(fleet_lifecycle_name(99), "invalid");
    assert_string_equal(fleet_health_name(FLEET_HEALTH_UNHEALTHY), "unhealthy");
    assert_string_equal(fleet_health_name(-1), "invalid");
    assert_string_equal(fleet_strerror(FLEET_ESTALE),
                        "slot was freed or reused (stale generation)");
    assert_string_equal(fleet_strerror(12345), "unknown error");
    fleet_close(f);
    assert_int_equal(fleet_unlink(seg_name), 0);
}

/* ---- torn-read detection ---------------------------------------------------------------- */

/* A writer sets every numeric field and the address from one counter. */
static void stamp(struct fleet_slot *s, void *arg)
{
    int64_t c = *(int64_t *)arg;
    s->pid = (int32_t)c;
    s->launched_at_ms = c;
    s->in_service_at_ms = c;
    s->last_seen_ms = c;
    s->health_changed_ms = c;
    s->load = (double)c;
    s->cpu_pct = (double)c;
    s->mem_pct = (double)c;
    s->load1 = (double)c;
    s->consecutive_ok = (uint32_t)c;
    s->consecutive_fail = (uint32_t)c;
    s->polls_ok = (uint64_t)c;
    s->polls_failed = (uint64_t)c;
    s->last_rtt_us = c;
    s->registered = (uint8_t)c;
    s->app_healthy = (uint8_t)c;
    snprintf(s->address, sizeof(s->address), "addr-%lld-%0*d", (long long)c, (int)(c % 40), 0);
}

/* 1 if the slot is self-consistent (all fields from one counter), else 0. */
static int consistent(const struct fleet_slot *s)
{
    int64_t c = s->launched_at_ms;
    char addr[FLEET_ADDR_MAX];
    snprintf(addr, sizeof(addr), "addr-%lld-%0*d", (long long)c, (int)(c % 40), 0);
    return s->pid == (int32_t)c && s->in_service_at_ms == c && s->last_seen_ms == c &&
           s->health_changed_ms == c && s->load == (double)c && s->cpu_pct == (double)c &&
           s->mem_pct == (double)c && s->load1 == (double)c && s->consecutive_ok == (uint32_t)c &&
           s->consecutive_fail == (uint32_t)c && s->polls_ok == (uint64_t)c &&
           s->polls_failed == (uint64_t)c && s->last_rtt_us == c && s->registered == (uint8_t)c &&
           s->app_healthy == (uint8_t)c && strcmp(s->address, addr) == 0;
}

#define STRESS_SLOTS 4
#define WRITER_ITERS 20000
#define CHURN_ITERS  3000

struct stress {
    struct fleet *f;
    uint32_t idx[STRESS_SLOTS], gen[STRESS_SLOTS];
    int writers_left; /* atomic */
    long reads, torn; /* atomic */
};

struct writer_arg {
    struct stress *st;
    int worker;
};

static void *writer_thread(void *arg)
{
    struct writer_arg *wa = arg;
    struct stress *st = wa->st;
    for (int64_t c = 1; c <= WRITER_ITERS; c++) {
        int k = (int)(c % STRESS_SLOTS);
        int64_t v = c * 2 + wa->worker; /* distinct values per writer */
        if (fleet_update(st->f, st->idx[k], st->gen[k], stamp, &v) != 0)
            __atomic_fetch_add(&st->torn, 1000000, __ATOMIC_RELAXED);
    }
    __atomic_fetch_sub(&st->writers_left, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Allocates and frees other slots all the time, so snapshots race membership changes too. */
static void *churn_thread(void *arg)
{
    struct stress *st = arg;
    char id[32];
    for (int i = 0; i < CHURN_ITERS; i++) {
        snprintf(id, sizeof(id), "churn-%d", i);
        uint32_t idx;
        if (fleet_alloc(st->f, id, "", 0, &idx) != 0)
            continue;
        struct fleet_slot s;
        int64_t v = i;
        if (fleet_read(st->f, idx, &s) == 0) {
            (void)fleet_update(st->f, idx, s.generation, stamp, &v);
            (void)fleet_free(st->f, idx, s.generation);
        }
    }
    __atomic_fetch_sub(&st->writers_left, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *reader_thread(void *arg)
{
    struct stress *st = arg;
    struct fleet_slot snap[64];
    long reads = 0, torn = 0;
    while (__atomic_load_n(&st->writers_left, __ATOMIC_ACQUIRE) > 0 || reads < 1000) {
        for (int k = 0; k < STRESS_SLOTS; k++) {
            struct fleet_slot s;
            if (fleet_read(st->f, st->idx[k], &s) == 0) {
                reads++;
                torn += !consistent(&s);
            }
        }
        size_t n = fleet_snapshot(st->f, snap, 64);
        for (size_t i = 0; i < n && i < 64; i++) {
            reads++;
            torn += !consistent(&snap[i]) && snap[i].launched_at_ms != 0;
        }
    }
    __atomic_fetch_add(&st->reads, reads, __ATOMIC_RELAXED);
    __atomic_fetch_add(&st->torn, torn, __ATOMIC_RELAXED);
    return NULL;
}

static void stress_setup(struct stress *st, const char *name)
{
    memset(st, 0, sizeof(*st));
    st->f = open_new(name, 64);
    for (int k = 0; k < STRESS_SLOTS; k++) {
        char id[16];
        snprintf(id, sizeof(id), "i-%d", k);
        assert_int_equal(fleet_alloc(st->f, id, "", 0, &st->idx[k]), 0);
        struct fleet_slot s;
        assert_int_equal(fleet_read(st->f, st->idx[k], &s), 0);
        st->gen[k] = s.generation;
        int64_t zero = 0;
        assert_int_equal(fleet_update(st->f, st->idx[k], st->gen[k], stamp, &zero), 0);
    }
}

static void threads_never_see_torn_slots(void **state)
{
    (void)state;
    struct stress st;
    stress_setup(&st, uname_for("threads"));
    st.writers_left = 3;
    struct writer_arg wa[2] = {{&st, 0}, {&st, 1}};
    pthread_t tw[2], tc, tr[2];
    assert_int_equal(pthread_create(&tr[0], NULL, reader_thread, &st), 0);
    assert_int_equal(pthread_create(&tr[1], NULL, reader_thread, &st), 0);
    assert_int_equal(pthread_create(&tw[0], NULL, writer_thread, &wa[0]), 0);
    assert_int_equal(pthread_create(&tw[1], NULL, writer_thread, &wa[1]), 0);
    assert_int_equal(pthread_create(&tc, NULL, churn_thread, &st), 0);
    pthread_join(tw[0], NULL);
    pthread_join(tw[1], NULL);
    pthread_join(tc, NULL);
    pthread_join(tr[0], NULL);
    pthread_join(tr[1], NULL);
    print_message("  threads: %ld consistent reads, %ld torn\n", st.reads, st.torn);
    assert_int_equal(st.torn, 0);
    assert_true(st.reads > 1000);
    check_invariants(st.f);
    assert_int_equal(fleet_snapshot(st.f, NULL, 0), STRESS_SLOTS);
    fleet_close(st.f);
    assert_int_equal(fleet_unlink(seg_name), 0);
}

static void process_writer_never_tears(void **state)
{
    (void)state;
    char name[sizeof(seg_name) + 16];
    snprintf(name, sizeof(name), "%s", uname_for("proc"));
    struct stress st;
    stress_setup(&st, name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a separate process with its own mapping, as `asgd monitor` would be */
        struct fleet *g = NULL;
        if (fleet_open(name, 0, 0, &g) != 0)
            _exit(2);
        for (int64_t c = 1; c <= WRITER_ITERS * 2; c++) {
            int k = (int)(c % STRESS_SLOTS);
            if (fleet_update(g, st.idx[k], st.gen[k], stamp, &c) != 0)
                _exit(3);
        }
        fleet_close(g);
        _exit(0);
    }
    st.writers_left = 1;
    pthread_t tr[2];
    assert_int_equal(pthread_create(&tr[0], NULL, reader_thread, &st), 0);
    assert_int_equal(pthread_create(&tr[1], NULL, reader_thread, &st), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    __atomic_fetch_sub(&st.writers_left, 1, __ATOMIC_RELEASE);
    pthread_join(tr[0], NULL);
    pthread_join(tr[1], NULL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    print_message("  process: %ld consistent reads, %ld torn\n", st.reads, st.torn);
    assert_int_equal(st.torn, 0);
    struct fleet_slot s;
    assert_int_equal(fleet_read(st.f, st.idx[0], &s), 0);
    assert_int_equal(s.launched_at_ms, WRITER_ITERS * 2); /* the child's last write to slot 0 */
    check_invariants(st.f);
    fleet_close(st.f);
    assert_int_equal(fleet_unlink(name), 0);
}

/* ---- crashes ------------------------------------------------------------------------------ */

static pid_t fork_and_wait_ready(int (*child)(const char *name, void *arg), const char *name,
                                 void *arg)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        /* the child writes one byte when it reached the state under test */
        int rc = child(name, &p[1]);
        (void)arg;
        _exit(rc);
    }
    close(p[1]);
    char c;
    ssize_t n;
    do {
        n = read(p[0], &c, 1);
    } while (n == -1 && errno == EINTR);
    close(p[0]);
    return n == 1 ? pid : -pid;
}

static int child_lock_and_hang(const char *name, void *arg)
{
    struct fleet *g = NULL;
    if (fleet_open(name, 0, 0, &g) != 0)
        return 2;
    if (fleet__lock_for_test(g) != 0)
        return 3;
    if (write(*(int *)arg, "x", 1) != 1)
        return 4;
    for (;;)
        pause();
}

static void dead_lock_holder_is_recovered(void **state)
{
    (void)state;
    char name[sizeof(seg_name) + 16];
    snprintf(name, sizeof(name), "%s", uname_for("robust"));
    struct fleet *f = open_new(name, 8);
    uint32_t a;
    assert_int_equal(fleet_alloc(f, "i-before", "", 1, &a), 0);
    pid_t pid = fork_and_wait_ready(child_lock_and_hang, name, NULL);
    assert_true(pid > 0);
    /* the child holds the mutex now: kill it there */
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    uint32_t b;
    assert_int_equal(fleet_alloc(f, "i-after", "", 2, &b), 0);
    assert_int_equal(fleet_find(f, "i-before", NULL), 0);
    assert_int_equal(fleet_snapshot(f, NULL, 0), 2);
    check_invariants(f);
    /* and the mutex works normally afterwards */
    assert_int_equal(fleet_alloc(f, "i-third", "", 3, NULL), 0);
    check_invariants(f);
    fleet_close(f);
    assert_int_equal(fleet_unlink(name), 0);
}

struct crash_arg {
    int point;
    uint32_t index, generation;
    int alloc; /* crash during an alloc instead of an update */
};
static struct crash_arg crash;

static int child_crash_mid_write(const char *name, void *arg)
{
    struct fleet *g = NULL;
    if (fleet_open(name, 0, 0, &g) != 0)
        return 2;
    if (write(*(int *)arg, "x", 1) != 1)
        return 4;
    fleet__crash_point = crash.point;
    if (crash.alloc)
        return fleet_alloc(g, "i-crash", "10.0.0.9:1", 77, NULL) == 0 ? 5 : 6;
    int64_t v = 4242;
    (void)fleet_update(g, crash.index, crash.generation, stamp, &v);
    return 5; /* not reached: SIGKILL */
}

static void crash_during_write(int point, int alloc)
{
    char name[sizeof(seg_name) + 16];
    snprintf(name, sizeof(name), "%s-%d-%d", uname_for("c"), point, alloc);
    struct fleet *f = open_new(name, 8);
    uint32_t a;
    assert_int_equal(fleet_alloc(f, "i-a", "", 1, &a), 0);
    struct fleet_slot s;
    assert_int_equal(fleet_read(f, a, &s), 0);
    crash.point = point;
    crash.index = a;
    crash.generation = s.generation;
    crash.alloc = alloc;
    pid_t pid = fork_and_wait_ready(child_crash_mid_write, name, NULL);
    assert_true(pid > 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    if (point == 2 && !alloc)
        assert_true(fleet__seq(f, a) & 1u); /* left mid-write */
    /* a lock-free reader first: it must not spin forever, and must see the whole write */
    if (alloc) {
        uint32_t idx;
        assert_int_equal(fleet_alloc(f, "i-b", "", 1, NULL), 0); /* takes the mutex: recovery */
        assert_int_equal(fleet_find(f, "i-crash", &idx), 0);
        assert_int_equal(fleet_read(f, idx, &s), 0);
        assert_string_equal(s.address, "10.0.0.9:1");
        assert_int_equal(s.launched_at_ms, 77);
        assert_int_equal(fleet_snapshot(f, NULL, 0), 3);
    } else {
        /* point 1: the slot was not touched yet, a lock-free read sees the old content;
         * point 2: the reader finds the sequence odd, takes the mutex and recovers */
        assert_int_equal(fleet_read(f, a, &s), 0);
        assert_true(point == 1 ? s.launched_at_ms == 1 : consistent(&s));
        assert_int_equal(fleet__lock_for_test(f), 0); /* recovery replays the journal */
        assert_int_equal(fleet__unlock_for_test(f), 0);
        assert_int_equal(fleet_read(f, a, &s), 0);
        assert_true(consistent(&s));
        assert_int_equal(s.launched_at_ms, 4242);
        assert_string_equal(s.id, "i-a");
    }
    check_invariants(f);
    fleet_close(f);
    assert_int_equal(fleet_unlink(name), 0);
}

static void crash_after_journal(void **state)
{
    (void)state;
    crash_during_write(1, 0);
}

static void crash_mid_slot_write(void **state)
{
    (void)state;
    crash_during_write(2, 0);
}

static void crash_mid_alloc(void **state)
{
    (void)state;
    crash_during_write(2, 1);
}

/*
 * A writer process is killed with SIGKILL at random moments (wherever it is:
 * inside the mutex, mid-journal, mid-slot), 40 times; after each kill the
 * table recovers, keeps its invariants, and every slot reads whole.
 */
static void random_kills_never_corrupt(void **state)
{
    (void)state;
    char name[sizeof(seg_name) + 16];
    snprintf(name, sizeof(name), "%s", uname_for("kills"));
    struct stress st;
    stress_setup(&st, name);
    unsigned seed = (unsigned)getpid();
    int recovered_any = 0;
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct fleet *g = NULL;
            if (fleet_open(name, 0, 0, &g) != 0)
                _exit(2);
            char id[32];
            for (int64_t c = 1;; c++) {
                int k = (int)(c % STRESS_SLOTS);
                int64_t v = c + round * 1000000LL;
                (void)fleet_update(g, st.idx[k], st.gen[k], stamp, &v);
                snprintf(id, sizeof(id), "churn-%lld", (long long)(c % 8));
                uint32_t idx;
                if (c % 3 == 0 && fleet_alloc(g, id, "", 0, &idx) == 0) {
                    struct fleet_slot s;
                    if (fleet_read(g, idx, &s) == 0)
                        (void)fleet_free(g, idx, s.generation);
                }
            }
        }
        usleep((useconds_t)(200 + rand_r(&seed) % 3000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        for (int k = 0; k < STRESS_SLOTS; k++) {
            struct fleet_slot s;
            assert_int_equal(fleet_read(st.f, st.idx[k], &s), 0);
            if (!consistent(&s))
                fail_msg("round %d: slot %d torn after a kill", round, k);
        }
        check_invariants(st.f); /* takes the mutex: recovers if the child died holding it */
        uint32_t idx;
        assert_int_equal(fleet_alloc(st.f, "parent", "", 0, &idx), 0);
        struct fleet_slot s;
        assert_int_equal(fleet_read(st.f, idx, &s), 0);
        assert_int_equal(fleet_free(st.f, idx, s.generation), 0);
        check_invariants(st.f);
        recovered_any |= fleet_membership_gen(st.f) > 0;
    }
    assert_true(recovered_any);
    fleet_close(st.f);
    assert_int_equal(fleet_unlink(name), 0);
}

/* ---- distrust of the segment -------------------------------------------------------------- */

static void *raw_map(const char *name, size_t *size)
{
    char path[128];
    snprintf(path, sizeof(path), "/asgd-%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    *size = (size_t)sb.st_size;
    void *m = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    close(fd);
    return m;
}

static void garbage_in_segment_is_contained(void **state)
{
    (void)state;
    char name[sizeof(seg_name) + 16];
    snprintf(name, sizeof(name), "%s", uname_for("garbage"));
    struct fleet *f = open_new(name, 4);
    uint32_t a;
    assert_int_equal(fleet_alloc(f, "i-a", "addr", 1, &a), 0);
    size_t size;
    unsigned char *m = raw_map(name, &size);
    /* find the slot payload by its id and overwrite id/address without terminators */
    /* the last occurrence: the header's redo journal holds a copy of the last write too */
    unsigned char *id = NULL;
    for (unsigned char *p = m; (p = memmem(p, size - (size_t)(p - m), "i-a", 4)) != NULL; p++)
        id = p;
    assert_non_null(id);
    memset(id, 'Z', FLEET_ID_MAX + FLEET_ADDR_MAX);
    id[FLEET_ID_MAX + FLEET_ADDR_MAX] = 250;     /* lifecycle out of range */
    id[FLEET_ID_MAX + FLEET_ADDR_MAX + 1] = 250; /* health out of range */
    struct fleet_slot s;
    assert_int_equal(fleet_read(f, a, &s), 0);
    assert_int_equal(strlen(s.id), FLEET_ID_MAX - 1);
    assert_int_equal(strlen(s.address), FLEET_ADDR_MAX - 1);
    assert_true(s.lifecycle < FLEET_LIFECYCLE_COUNT);
    assert_true(s.health < FLEET_HEALTH_COUNT);
    char err[256];
    assert_int_equal(fleet__check(f, err, sizeof(err)), FLEET_EINVAL);
    assert_true(strlen(err) > 0);

    /* a header with a wrong magic / absurd capacity is refused on open */
    struct fleet *g = NULL;
    uint64_t magic;
    memcpy(&magic, m, sizeof(magic));
    uint64_t bad = magic ^ 1;
    memcpy(m, &bad, sizeof(bad));
    assert_int_equal(fleet_open(name, 0, 0, &g), FLEET_EVERSION);
    memcpy(m, &magic, sizeof(magic));
    uint32_t cap_bad = 0x7fffffff;
    uint32_t cap_good;
    memcpy(&cap_good, m + 16, sizeof(cap_good)); /* magic, layout, ready, then capacity */
    assert_int_equal(cap_good, 4);
    memcpy(m + 16, &cap_bad, sizeof(cap_bad));
    assert_int_equal(fleet_open(name, 0, 0, &g), FLEET_EVERSION);
    memcpy(m + 16, &cap_good, sizeof(cap_good));
    assert_int_equal(fleet_open(name, 0, 0, &g), 0);
    fleet_close(g);
    munmap(m, size);
    fleet_close(f);
    assert_int_equal(fleet_unlink(name), 0);
}

static void concurrent_create_is_safe(void **state)
{
    (void)state;
    char name[sizeof(seg_name) + 16];
    snprintf(name, sizeof(name), "%s", uname_for("race"));
    (void)fleet_unlink(name);
    remember(name);
    enum { N = 6 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct fleet *g = NULL;
            if (fleet_open(name, 16, 1, &g) != 0)
                _exit(2);
            char id[16];
            snprintf(id, sizeof(id), "i-%d", i);
            int rc = fleet_alloc(g, id, "", i, NULL);
            fleet_close(g);
            _exit(rc == 0 ? 0 : 3);
        }
    }
    for (int i = 0; i < N; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    struct fleet *f = NULL;
    assert_int_equal(fleet_open(name, 0, 0, &f), 0);
    assert_int_equal(fleet_capacity(f), 16);
    assert_int_equal(fleet_snapshot(f, NULL, 0), N);
    check_invariants(f);
    fleet_close(f);
    assert_int_equal(fleet_unlink(name), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(basic_operations, unlink_created),
        cmocka_unit_test_teardown(bad_arguments, unlink_created),
        cmocka_unit_test_teardown(launch_window, unlink_created),
        cmocka_unit_test_teardown(table_grows_for_every_mapping, unlink_created),
        cmocka_unit_test_teardown(threads_never_see_torn_slots, unlink_created),
        cmocka_unit_test_teardown(process_writer_never_tears, unlink_created),
        cmocka_unit_test_teardown(dead_lock_holder_is_recovered, unlink_created),
        cmocka_unit_test_teardown(crash_after_journal, unlink_created),
        cmocka_unit_test_teardown(crash_mid_slot_write, unlink_created),
        cmocka_unit_test_teardown(crash_mid_alloc, unlink_created),
        cmocka_unit_test_teardown(random_kills_never_corrupt, unlink_created),
        cmocka_unit_test_teardown(garbage_in_segment_is_contained, unlink_created),
        cmocka_unit_test_teardown(concurrent_create_is_safe, unlink_created),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
