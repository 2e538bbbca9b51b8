/*
 * Unit tests for controller/ctl: ControllerASG's decisions in virtual time,
 * over a real fleet table (shared memory) and a real SQLite store, with a
 * scripted provider standing in for the cloud so that its failures can be
 * injected call by call (the real providers have their own tests and the
 * integration tests run asgd against real processes and the EC2 stand-in).
 *
 * What is checked: launches go through a stored intent and a token; a launch
 * that failed transiently is re-sent with the SAME token (never a second
 * fleet); a fatal error is recorded once and backs off; a describe failure
 * never forgets instances; unhealthy instances past the grace period are
 * replaced, not ones inside it; scale-in order; a restart adopts and
 * launches nothing; an intent left open by a crash is re-sent with its token;
 * operator terminate requests; max_instance_lifetime never picks an instance
 * the health duty replaced in the same tick, nor does a scale-in pick one the
 * lifetime duty terminated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "controller/ctl.h"
#include "monitor.pb-c.h"
#include "rpc/rpc.h"
#include "controller/refresh.h"
#include "controller/policy.h"
#include "fleet/fleet.h"
#include "provider/provider.h"
#include "store/store.h"

#include "common/banned.h"

#define T0 1700000000000LL

/* ---- the scripted provider ---------------------------------------------------------------- */

struct fake {
    struct provider base;
    struct prov_list live;
    int next_id;
    int launch_rc[8]; /* rc of the next launch calls (0 = succeed), consumed in order */
    int n_launch_rc;
    int describe_rc;
    int terminate_rc[8]; /* rc of the next terminate calls (0 = succeed), consumed in order */
    int n_terminate_rc;
    int launch_calls, terminate_calls, describe_calls;
    char tokens[32][64];
    int counts[32];
    char terminated[64][PROV_ID_MAX];
    int n_terminated;
    char next_addr[8][64]; /* addresses of the next launched instances, if set */
    int n_next_addr;
    int64_t now;
    struct fleet **fleetp;  /* the fixture's table (reopened by some tests) */
    int launching_seen[32]; /* whether the table said a launch is in flight, by call */
};

/* The next scripted rc of a list of 8 (0 when the list is empty), taken off its front. */
static int next_rc(int *rcs, int *n)
{
    if (*n == 0)
        return 0;
    int rc = rcs[0];
    memmove(rcs, rcs + 1, 7 * sizeof(int));
    (*n)--;
    return rc;
}

static int fake_launch(struct provider *p, int count, const char *token, struct prov_list *out)
{
    struct fake *f = (struct fake *)p;
    int call = f->launch_calls++;
    if (call < 32) {
        snprintf(f->tokens[call], sizeof(f->tokens[call]), "%s", token);
        f->counts[call] = count;
        f->launching_seen[call] = f->fleetp && fleet_launching(*f->fleetp, clk_mono_ms());
    }
    int rc = next_rc(f->launch_rc, &f->n_launch_rc);
    if (rc != 0)
        return provider__fail(p, rc, "scripted failure %d", rc);
    int have = 0;
    for (size_t i = 0; i < f->live.n; i++)
        if (strcmp(f->live.items[i].launch_token, token) == 0) {
            assert_int_equal(prov_list_push(out, &f->live.items[i]), 0);
            have++;
        }
    while (have < count) {
        struct prov_instance in;
        memset(&in, 0, sizeof(in));
        snprintf(in.id, sizeof(in.id), "i-%03d", f->next_id);
        if (f->n_next_addr > 0) {
            snprintf(in.address, sizeof(in.address), "%s", f->next_addr[0]);
            memmove(f->next_addr, f->next_addr + 1, sizeof(f->next_addr) - sizeof(f->next_addr[0]));
            f->n_next_addr--;
        } else {
            snprintf(in.address, sizeof(in.address), "127.0.0.1:%d", 20000 + f->next_id);
        }
        snprintf(in.launch_token, sizeof(in.launch_token), "%s", token);
        f->next_id++;
        in.state = PROV_RUNNING;
        in.launched_at_ms = f->now;
        assert_int_equal(prov_list_push(&f->live, &in), 0);
        assert_int_equal(prov_list_push(out, &in), 0);
        have++;
    }
    return 0;
}

static int fake_terminate(struct provider *p, const char *const *ids, size_t n)
{
    struct fake *f = (struct fake *)p;
    f->terminate_calls++;
    int rc = next_rc(f->terminate_rc, &f->n_terminate_rc);
    if (rc != 0)
        return provider__fail(p, rc, "scripted terminate failure %d", rc);
    for (size_t k = 0; k < n; k++) {
        if (f->n_terminated < 64)
            snprintf(f->terminated[f->n_terminated++], PROV_ID_MAX, "%s", ids[k]);
        for (size_t i = 0; i < f->live.n; i++)
            if (strcmp(f->live.items[i].id, ids[k]) == 0) {
                f->live.items[i] = f->live.items[--f->live.n];
                break;
            }
    }
    return 0;
}

static int fake_describe(struct provider *p, struct prov_list *out)
{
    struct fake *f = (struct fake *)p;
    f->describe_calls++;
    if (f->describe_rc)
        return provider__fail(p, f->describe_rc, "scripted describe failure");
    for (size_t i = 0; i < f->live.n; i++)
        assert_int_equal(prov_list_push(out, &f->live.items[i]), 0);
    return 0;
}

static void fake_destroy(struct provider *p)
{
    struct fake *f = (struct fake *)p;
    prov_list_release(&f->live);
    free(f);
}

static const struct provider_ops fake_ops = {.name = "fake",
                                             .launch = fake_launch,
                                             .terminate = fake_terminate,
                                             .describe = fake_describe,
                                             .destroy = fake_destroy};
/* the same provider taking at most 4 launches and 3 terminations per call */
static const struct provider_ops fake_small_ops = {.name = "fake",
                                                   .launch = fake_launch,
                                                   .terminate = fake_terminate,
                                                   .describe = fake_describe,
                                                   .destroy = fake_destroy,
                                                   .max_launch = 4,
                                                   .max_terminate = 3};

/* ---- fixture -------------------------------------------------------------------------------- */

struct fx {
    char dir[64];
    char name[48];
    struct fleet *fleet;
    struct store *store;
    struct fake *prov;
    struct ctl *ctl;
};

/* A controller of the fixture's group; lc: its launch configuration (NULL: none). */
static struct ctl *make_ctl_lc(struct fx *x, const char *lc)
{
    struct ctl_deps deps = {
        .group = x->name,
        .describe_every_ms = 5000,
        .history_every_ms = 5000,
        .fleet = x->fleet,
        .store = x->store,
        .provider = &x->prov->base,
        .launch_config = lc,
    };
    char err[256];
    struct ctl *c = NULL;
    assert_int_equal(ctl_new(&deps, &c, err, sizeof(err)), 0);
    return c;
}

static struct ctl *make_ctl(struct fx *x)
{
    return make_ctl_lc(x, NULL);
}

static int setup(void **state)
{
    static int seq;
    struct fx *x = calloc(1, sizeof(*x));
    snprintf(x->dir, sizeof(x->dir), "/tmp/test-ctl-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->name, sizeof(x->name), "ctl-%ld-%d", (long)getpid(), seq++);
    char err[256];
    assert_int_equal(store_open(x->dir, &x->store, err, sizeof(err)), 0);
    assert_int_equal(fleet_open(x->name, 64, 1, &x->fleet), 0);
    x->prov = calloc(1, sizeof(*x->prov));
    x->prov->base.ops = &fake_ops;
    x->prov->now = T0;
    x->prov->fleetp = &x->fleet;

    struct group_settings g;
    memset(&g, 0, sizeof(g));
    snprintf(g.name, sizeof(g.name), "%s", x->name);
    g.min_size = 2;
    g.max_size = 6;
    g.desired_capacity = 2;
    policy_settings_default(&g.policy, POLICY_THRESHOLD);
    g.policy.evaluation_period_ms = 10000;
    g.policy.cooldown_ms = 10000;
    snprintf(g.health.type, sizeof(g.health.type), "agent");
    g.health.interval_ms = 1000;
    g.health.timeout_ms = 500;
    g.health.healthy_threshold = 2;
    g.health.unhealthy_threshold = 3;
    g.health.grace_period_ms = 30000;
    assert_int_equal(store_put_settings(x->store, &g, 0, NULL), 0);
    x->ctl = make_ctl(x);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    ctl_free(x->ctl);
    provider_free(&x->prov->base);
    fleet_close(x->fleet);
    fleet_unlink(x->name);
    store_close(x->store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

struct hl {
    int health;
    double load;
};

static void set_health_fn(struct fleet_slot *s, void *arg)
{
    const struct hl *h = arg;
    s->health = (uint8_t)h->health;
    s->load = h->load;
}

/* What MonitorS would write: every instance's health and load. */
static void monitor_says(struct fx *x, const char *id, int health, double load)
{
    struct fleet_slot snap[64];
    size_t n = fleet_snapshot(x->fleet, snap, 64);
    struct hl h = {health, load};
    for (size_t i = 0; i < n; i++)
        if (id == NULL || strcmp(snap[i].id, id) == 0)
            assert_int_equal(
                fleet_update(x->fleet, snap[i].index, snap[i].generation, set_health_fn, &h), 0);
}

static size_t slots(struct fx *x, struct fleet_slot *out)
{
    return fleet_snapshot(x->fleet, out, 64);
}

/* Activities of kind (and status, unless NULL) whose cause holds needle. */
static int activities_with(struct fx *x, const char *kind, const char *status, const char *needle)
{
    struct store_activity *a = NULL;
    size_t n = 0;
    assert_int_equal(store_activity_list(x->store, x->name, 0, 1000, &a, &n), 0);
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].kind, kind) == 0 && (!status || strcmp(a[i].status, status) == 0) &&
            strstr(a[i].cause, needle) != NULL)
            k++;
    store_activities_free(a);
    return k;
}

static int count_activities(struct fx *x, const char *kind)
{
    return activities_with(x, kind, NULL, "");
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void launches_min_through_an_intent(void **state)
{
    struct fx *x = *state;
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    assert_int_equal(ctl_tick(x->ctl, T0), 0);
    assert_int_equal(x->prov->launch_calls, 1);
    assert_int_equal(x->prov->counts[0], 2);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(s[0].lifecycle, FLEET_PENDING);
    /* the intent is closed with the ids */
    struct store_intent *open = NULL;
    size_t n = 9;
    assert_int_equal(store_intent_list_open(x->store, x->name, &open, &n), 0);
    assert_int_equal(n, 0);
    store_intents_free(open, n);
    /* a second tick launches nothing more */
    assert_int_equal(ctl_tick(x->ctl, T0 + 1000), 0);
    assert_int_equal(x->prov->launch_calls, 1);
    /* healthy -> in service */
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 50);
    assert_int_equal(ctl_tick(x->ctl, T0 + 2000), 0);
    slots(x, s);
    assert_int_equal(s[0].lifecycle, FLEET_IN_SERVICE);
    assert_int_equal(s[1].lifecycle, FLEET_IN_SERVICE);
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_int_equal(st.in_service, 2);
    assert_int_equal(st.desired, 2);
}

static void transient_failure_resends_same_token(void **state)
{
    struct fx *x = *state;
    x->prov->launch_rc[0] = PROV_ERETRY;
    x->prov->launch_rc[1] = PROV_ERETRY;
    x->prov->n_launch_rc = 2;
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    int64_t now = T0;
    for (int i = 0; i < 200 && x->prov->launch_calls < 3; i++, now += 1000)
        ctl_tick(x->ctl, now);
    assert_int_equal(x->prov->launch_calls, 3);
    assert_string_equal(x->prov->tokens[0], x->prov->tokens[1]);
    assert_string_equal(x->prov->tokens[1], x->prov->tokens[2]);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(x->prov->live.n, 2);
    /* and no further launch */
    ctl_tick(x->ctl, now + 1000);
    ctl_tick(x->ctl, now + 2000);
    assert_int_equal(x->prov->launch_calls, 3);
}

/* A launch above the provider's size goes out in calls of that size, each its own intent and
   token; one call failing transiently is re-sent alone with its token while the others stand. */
static void launches_in_provider_sized_calls(void **state)
{
    struct fx *x = *state;
    x->prov->base.ops = &fake_small_ops;
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.max_size = 12;
    g.desired_capacity = 10;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    x->prov->launch_rc[1] = PROV_ERETRY; /* the second call fails once */
    x->prov->n_launch_rc = 2;
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    ctl_tick(x->ctl, T0);
    assert_int_equal(x->prov->launch_calls, 3);
    assert_int_equal(x->prov->counts[0], 4);
    assert_int_equal(x->prov->counts[1], 4);
    assert_int_equal(x->prov->counts[2], 2);
    assert_string_not_equal(x->prov->tokens[0], x->prov->tokens[1]);
    assert_string_not_equal(x->prov->tokens[1], x->prov->tokens[2]);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 6);
    /* the failed call's intent stays open until it is re-sent */
    struct store_intent *open = NULL;
    size_t n = 0;
    assert_int_equal(store_intent_list_open(x->store, x->name, &open, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(open[0].token, x->prov->tokens[1]);
    assert_int_equal(open[0].count, 4);
    store_intents_free(open, n);
    int64_t now = T0;
    for (int i = 0; i < 200 && x->prov->launch_calls < 4; i++, now += 1000)
        ctl_tick(x->ctl, now);
    assert_int_equal(x->prov->launch_calls, 4);
    assert_string_equal(x->prov->tokens[3], x->prov->tokens[1]); /* alone, same token */
    assert_int_equal(x->prov->counts[3], 4);
    assert_int_equal(slots(x, s), 10);
    ctl_tick(x->ctl, now + 1000);
    assert_int_equal(x->prov->launch_calls, 4);
    /* scale in by 8: terminations in calls of at most 3 */
    int64_t rev;
    assert_int_equal(store_set_desired(x->store, x->name, 2, &rev), 0);
    ctl_tick(x->ctl, now + 2000);
    assert_int_equal(x->prov->terminate_calls, 3);
    assert_int_equal(x->prov->n_terminated, 8);
    assert_int_equal(slots(x, s), 2);
}

static void fatal_error_recorded_once_and_backs_off(void **state)
{
    struct fx *x = *state;
    for (int i = 0; i < 8; i++)
        x->prov->launch_rc[i] = PROV_EFATAL;
    x->prov->n_launch_rc = 8;
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    for (int i = 0; i < 120; i++) /* two minutes of ticks */
        ctl_tick(x->ctl, T0 + i * 1000);
    assert_int_equal(x->prov->launch_calls, 1);
    assert_int_equal(count_activities(x, "error"), 1);
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_int_equal(st.provider_ok, 0);
    /* after the backoff it tries again (a new token: the failed call launched nothing) */
    ctl_tick(x->ctl, T0 + 301000);
    assert_int_equal(x->prov->launch_calls, 2);
    assert_string_not_equal(x->prov->tokens[0], x->prov->tokens[1]);
    assert_int_equal(count_activities(x, "error"), 1); /* same message: not recorded again */
}

static void describe_failure_forgets_nothing(void **state)
{
    struct fx *x = *state;
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    x->prov->describe_rc = PROV_ERETRY;
    for (int i = 1; i < 60; i++)
        ctl_tick(x->ctl, T0 + i * 1000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    assert_true(x->prov->describe_calls > 3);
    assert_int_equal(x->prov->launch_calls, 1);
}

static void vanished_instance_is_replaced(void **state)
{
    struct fx *x = *state;
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    x->prov->now = T0 + 60000;
    /* the cloud lost one behind our back */
    x->prov->live.items[0] = x->prov->live.items[--x->prov->live.n];
    ctl_tick(x->ctl, T0 + 60000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(x->prov->launch_calls, 2);
    assert_int_equal(count_activities(x, "forget"), 1);
}

static void unhealthy_replaced_only_after_grace(void **state)
{
    struct fx *x = *state;
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 1000);
    struct fleet_slot s[64];
    slots(x, s);
    char victim[FLEET_ID_MAX];
    snprintf(victim, sizeof(victim), "%s", s[0].id);
    monitor_says(x, victim, FLEET_HEALTH_UNHEALTHY, -1);
    ctl_tick(x->ctl, T0 + 10000); /* inside the 30 s grace period */
    assert_int_equal(x->prov->terminate_calls, 0);
    x->prov->now = T0 + 31000;
    ctl_tick(x->ctl, T0 + 31000);
    assert_int_equal(x->prov->terminate_calls, 1);
    assert_string_equal(x->prov->terminated[0], victim);
    assert_int_equal(x->prov->launch_calls, 2);
    assert_int_equal(slots(x, s), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_not_equal(s[i].id, victim);
    assert_int_equal(count_activities(x, "replace"), 1);
}

/* At max_size, an unhealthy instance whose termination fails is still running at the
   provider: its replacement waits for the termination (terminate, then launch), so the group
   never runs more than max_size. */
static void replacement_waits_for_its_termination(void **state)
{
    struct fx *x = *state;
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.max_size = 2;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 1000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    monitor_says(x, s[0].id, FLEET_HEALTH_UNHEALTHY, -1);
    x->prov->terminate_rc[0] = PROV_ERETRY;
    x->prov->terminate_rc[1] = PROV_ERETRY;
    x->prov->n_terminate_rc = 2;
    x->prov->now = T0 + 31000;
    ctl_tick(x->ctl, T0 + 31000); /* replaced: the terminate fails */
    assert_int_equal(x->prov->terminate_calls, 1);
    assert_int_equal(x->prov->launch_calls, 1); /* no replacement yet */
    assert_int_equal((int)x->prov->live.n, 2);
    for (int64_t t = T0 + 32000; t < T0 + 34000; t += 1000)
        ctl_tick(x->ctl, t); /* within the backoff: neither retried nor replaced */
    assert_int_equal(x->prov->launch_calls, 1);
    int64_t t = T0 + 34000;
    for (; x->prov->terminate_calls < 3 && t < T0 + 200000; t += 1000) {
        x->prov->now = t;
        ctl_tick(x->ctl, t);
        assert_true((int)x->prov->live.n <= 2);
    }
    assert_int_equal(x->prov->terminate_calls, 3); /* the second retry went through */
    assert_int_equal(x->prov->launch_calls, 2);    /* and then the replacement */
    assert_int_equal((int)x->prov->live.n, 2);
    assert_int_equal(slots(x, s), 2);
}

static void scale_in_order(void **state)
{
    struct fx *x = *state;
    int64_t rev;
    ctl_reconcile(x->ctl, T0);
    assert_int_equal(store_set_desired(x->store, x->name, 5, &rev), 0);
    ctl_tick(x->ctl, T0); /* 5 launched at T0 */
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 1000);
    /* one more, newer and still booting; one unhealthy */
    assert_int_equal(store_set_desired(x->store, x->name, 6, &rev), 0);
    x->prov->now = T0 + 50000;
    ctl_tick(x->ctl, T0 + 50000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 6);
    char sick[FLEET_ID_MAX], newest[FLEET_ID_MAX];
    snprintf(sick, sizeof(sick), "%s", "i-002");
    snprintf(newest, sizeof(newest), "%s", "i-005");
    struct hl h = {FLEET_HEALTH_UNHEALTHY, -1};
    for (size_t i = 0; i < 6; i++)
        if (strcmp(s[i].id, sick) == 0)
            fleet_update(x->fleet, s[i].index, s[i].generation, set_health_fn, &h);
    /* scale in to 4: the unhealthy one, then the newest booting */
    assert_int_equal(store_set_desired(x->store, x->name, 4, &rev), 0);
    ctl_tick(x->ctl, T0 + 51000);
    assert_int_equal(x->prov->n_terminated, 2);
    assert_string_equal(x->prov->terminated[0], sick);
    assert_string_equal(x->prov->terminated[1], newest);
    /* to 3: the default policy (AWS's) now looks at the next instance hour; the four left
       were launched together, so one of them at random (victims.c, tested there) */
    assert_int_equal(store_set_desired(x->store, x->name, 3, &rev), 0);
    ctl_tick(x->ctl, T0 + 52000);
    assert_int_equal(x->prov->n_terminated, 3);
    const char *third = x->prov->terminated[2];
    assert_true(strcmp(third, "i-000") == 0 || strcmp(third, "i-001") == 0 ||
                strcmp(third, "i-003") == 0 || strcmp(third, "i-004") == 0);
}

static void restart_adopts_and_launches_nothing(void **state)
{
    struct fx *x = *state;
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    assert_int_equal(x->prov->launch_calls, 1);
    /* "crash": a new controller; the fleet table is gone too (reboot) */
    ctl_free(x->ctl);
    fleet_close(x->fleet);
    fleet_unlink(x->name);
    assert_int_equal(fleet_open(x->name, 64, 1, &x->fleet), 0);
    x->ctl = make_ctl(x);
    assert_int_equal(ctl_reconcile(x->ctl, T0 + 5000), 0);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    assert_true(s[0].adopted && s[1].adopted);
    ctl_tick(x->ctl, T0 + 6000);
    assert_int_equal(x->prov->launch_calls, 1);
    assert_int_equal(count_activities(x, "adopt"), 2);
}

static void open_intent_resent_with_its_token(void **state)
{
    struct fx *x = *state;
    /* a crash right after the intent was written, before the provider answered */
    assert_int_equal(store_intent_create(x->store, "asgd-crashed", x->name, 2, T0), 0);
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    assert_int_equal(x->prov->launch_calls, 1);
    assert_string_equal(x->prov->tokens[0], "asgd-crashed");
    ctl_tick(x->ctl, T0 + 1000);
    assert_int_equal(x->prov->launch_calls, 1);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    /* and had the provider already launched them, the same token returns the same ones */
    ctl_free(x->ctl);
    x->ctl = make_ctl(x);
    assert_int_equal(store_intent_create(x->store, "asgd-crashed-2", x->name, 0 + 1, T0), 0);
    x->prov->live.items[0].launch_token[0] = '\0';
    snprintf(x->prov->live.items[0].launch_token, PROV_ID_MAX, "asgd-crashed-2");
    assert_int_equal(ctl_reconcile(x->ctl, T0 + 2000), 0);
    assert_int_equal(x->prov->live.n, 2);
}

/* The fleet table says a launch is in flight exactly while the provider call runs and until
   its instances have slots (MonitorS holds the agents that register that early), whatever the
   call's outcome; a window a crashed controller left open is closed by the next reconcile. */
static void launch_window_spans_the_call(void **state)
{
    struct fx *x = *state;
    assert_false(fleet_launching(x->fleet, clk_mono_ms()));
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    assert_int_equal(ctl_tick(x->ctl, T0), 0);
    assert_int_equal(x->prov->launch_calls, 1);
    assert_int_equal(x->prov->launching_seen[0], 1);
    assert_false(fleet_launching(x->fleet, clk_mono_ms()));
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);

    /* failed calls, transient and fatal, close it too */
    int64_t rev;
    assert_int_equal(store_set_desired(x->store, x->name, 3, &rev), 0);
    x->prov->launch_rc[0] = PROV_ERETRY;
    x->prov->launch_rc[1] = PROV_EFATAL;
    x->prov->n_launch_rc = 2;
    int64_t now = T0 + 1000;
    for (int i = 0; i < 200 && x->prov->launch_calls < 3; i++, now += 1000)
        ctl_tick(x->ctl, now);
    assert_int_equal(x->prov->launch_calls, 3);
    assert_int_equal(x->prov->launching_seen[1], 1);
    assert_int_equal(x->prov->launching_seen[2], 1);
    assert_false(fleet_launching(x->fleet, clk_mono_ms()));

    /* a crash in the middle of a launch: the window stays open (until its deadline) and the
       intent too; the next controller closes the first and re-sends the second in a window */
    ctl_free(x->ctl);
    fleet_set_launching(x->fleet, clk_mono_ms() + 60000);
    x->ctl = make_ctl(x);
    assert_int_equal(ctl_reconcile(x->ctl, now), 0);
    assert_false(fleet_launching(x->fleet, clk_mono_ms()));
    assert_int_equal(store_intent_create(x->store, "asgd-crashed", x->name, 1, now), 0);
    ctl_free(x->ctl);
    fleet_set_launching(x->fleet, clk_mono_ms() + 60000);
    x->ctl = make_ctl(x);
    int calls = x->prov->launch_calls;
    assert_int_equal(ctl_reconcile(x->ctl, now), 0);
    assert_int_equal(x->prov->launch_calls, calls + 1);
    assert_string_equal(x->prov->tokens[calls], "asgd-crashed");
    assert_int_equal(x->prov->launching_seen[calls], 1);
    assert_false(fleet_launching(x->fleet, clk_mono_ms()));
}

static void operator_terminate(void **state)
{
    struct fx *x = *state;
    char err[256];
    int64_t rev;
    ctl_reconcile(x->ctl, T0);
    assert_int_equal(store_set_desired(x->store, x->name, 3, &rev), 0);
    ctl_tick(x->ctl, T0);
    assert_int_equal(ctl_request_terminate(x->ctl, "i-nope", 0, err, sizeof(err)), CTL_ENOENT);
    assert_non_null(strstr(err, "i-nope"));
    assert_int_equal(ctl_request_terminate(x->ctl, "i-001", 1, err, sizeof(err)), 0);
    ctl_tick(x->ctl, T0 + 1000);
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    assert_int_equal(g.desired_capacity, 2);
    assert_int_equal(x->prov->n_terminated, 1);
    assert_string_equal(x->prov->terminated[0], "i-001");
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    /* without decrement at min: replaced */
    assert_int_equal(ctl_request_terminate(x->ctl, "i-000", 1, err, sizeof(err)), 0);
    ctl_tick(x->ctl, T0 + 2000);
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    assert_int_equal(g.desired_capacity, 2); /* not below min */
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(x->prov->launch_calls, 2);
}

static int fence_ok = 1;
static int fence_calls;
static int fence_fn(void *arg, const char *group)
{
    (void)arg;
    (void)group;
    fence_calls++;
    return fence_ok;
}

/* A fenced controller (lease lost) calls no provider and writes nothing; it resumes when
   it may act again, re-sending the open intent's token. */
static void fenced_controller_does_nothing(void **state)
{
    struct fx *x = *state;
    ctl_free(x->ctl);
    struct ctl_deps deps = {
        .group = x->name,
        .fleet = x->fleet,
        .store = x->store,
        .provider = &x->prov->base,
        .may_act = fence_fn,
    };
    char err[256];
    assert_int_equal(ctl_new(&deps, &x->ctl, err, sizeof(err)), 0);
    fence_ok = 0;
    fence_calls = 0;
    assert_int_not_equal(ctl_reconcile(x->ctl, T0), 0);
    int64_t now = T0;
    for (int i = 0; i < 10; i++, now += 1000)
        assert_int_equal(ctl_tick(x->ctl, now), -1);
    assert_true(fence_calls >= 10);
    assert_int_equal(x->prov->launch_calls + x->prov->terminate_calls + x->prov->describe_calls, 0);
    assert_int_equal(count_activities(x, "launch"), 0);
    fence_ok = 1;
    assert_int_equal(ctl_reconcile(x->ctl, now), 0);
    assert_int_equal(ctl_tick(x->ctl, now), 0);
    assert_int_equal(x->prov->launch_calls, 1);
}

static void scales_on_load(void **state)
{
    struct fx *x = *state;
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 95);
    /* inside grace (30 s) the load does not count: no scale-out */
    for (int i = 1; i <= 25; i++)
        ctl_tick(x->ctl, T0 + i * 1000);
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    assert_int_equal(g.desired_capacity, 2);
    int64_t t = T0 + 26000;
    for (; t < T0 + 45000 && g.desired_capacity == 2; t += 1000) {
        x->prov->now = t;
        ctl_tick(x->ctl, t);
        assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    }
    assert_int_equal(g.desired_capacity, 4); /* the seed's factor 2 */
    assert_true(t - 1000 >= T0 + 30000);     /* only once the load counted */
    assert_int_equal(count_activities(x, "scale"), 1);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 4);
    /* the new ones are booting and inside their grace period: not replaced */
    assert_int_equal(x->prov->terminate_calls, 0);
}

static void warmup_counts_before_grace(void **state)
{
    struct fx *x = *state;
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.policy.warmup_ms = 5000; /* grace stays 30 s */
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 95);
    /* the load counts from 5 s after launch, inside the 30 s grace period */
    int64_t t = T0 + 1000;
    for (; t < T0 + 25000 && g.desired_capacity == 2; t += 1000) {
        x->prov->now = t;
        ctl_tick(x->ctl, t);
        assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    }
    assert_int_equal(g.desired_capacity, 4);
    assert_true(t - 1000 >= T0 + 5000 && t - 1000 < T0 + 30000);
}

/* ---- partitions, rate limit, deregistration (issue 11) ----------------------------------------
 */

/* Changes the stored settings: desired count and the health keys of issue 11. */
static void set_group(struct fx *x, int desired, int panic, int per_min, int64_t dereg_ms)
{
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.desired_capacity = desired;
    g.health.panic_threshold = panic;
    g.health.max_replacements_per_minute = per_min;
    g.health.deregister_grace_ms = dereg_ms;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
}

/* Starts a group of n instances, all healthy and in service, at T0 + 1 s. */
static void healthy_group(struct fx *x, int n)
{
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 1000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), (size_t)n);
    for (int i = 0; i < n; i++)
        assert_int_equal(s[i].lifecycle, FLEET_IN_SERVICE);
}

static void partition_panics_instead_of_replacing(void **state)
{
    struct fx *x = *state;
    set_group(x, 4, 50, 0, 30000);
    healthy_group(x, 4);
    int launches = x->prov->launch_calls;
    struct fleet_slot s[64];
    slots(x, s);
    /* 3 of 4 (75 % > 50 %) unreachable at once, past their grace period */
    for (int i = 0; i < 3; i++)
        monitor_says(x, s[i].id, FLEET_HEALTH_UNHEALTHY, -1);
    for (int t = 31; t <= 40; t++) {
        x->prov->now = T0 + t * 1000;
        ctl_tick(x->ctl, T0 + t * 1000);
    }
    assert_int_equal(x->prov->terminate_calls, 0);
    assert_int_equal(x->prov->launch_calls, launches);
    assert_int_equal(count_activities(x, "replace"), 0);
    assert_int_equal(count_activities(x, "panic"), 1); /* once, not once a tick */
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_int_equal(st.panic, 1);
    assert_int_equal(st.panic_failing, 3);
    assert_int_equal(st.panic_total, 4);

    /* they answer again, one by one: with 1 of 4 still failing the panic ends by itself;
       nothing was replaced, and the laggard gets a fresh grace period (30 s from the end, at
       41 s): its connection is still being re-made */
    monitor_says(x, s[1].id, FLEET_HEALTH_HEALTHY, 40);
    monitor_says(x, s[2].id, FLEET_HEALTH_HEALTHY, 40);
    for (int t = 41; t <= 70; t++) {
        x->prov->now = T0 + t * 1000;
        ctl_tick(x->ctl, T0 + t * 1000);
        ctl_get_status(x->ctl, &st);
        assert_int_equal(st.panic, 0);
    }
    assert_int_equal(count_activities(x, "panic"), 2);
    assert_int_equal(x->prov->terminate_calls, 0);
    assert_int_equal(slots(x, s), 4);
    /* still failing after that: replaced as usual */
    x->prov->now = T0 + 71000;
    ctl_tick(x->ctl, T0 + 71000);
    assert_int_equal(x->prov->terminate_calls, 1);
}

static void late_once_fn(struct fleet_slot *s, void *arg)
{
    (void)arg;
    s->consecutive_fail = 1; /* one check late, still healthy */
}

static void blip_is_no_panic(void **state)
{
    struct fx *x = *state;
    set_group(x, 4, 50, 0, 30000);
    healthy_group(x, 4);
    struct fleet_slot s[64];
    size_t n = slots(x, s);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fleet_update(x->fleet, s[i].index, s[i].generation, late_once_fn, NULL),
                         0);
    x->prov->now = T0 + 40000;
    ctl_tick(x->ctl, T0 + 40000);
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_int_equal(st.panic, 0);
    assert_int_equal(count_activities(x, "panic"), 0);
    assert_int_equal(x->prov->terminate_calls, 0);
}

static void replacements_are_rate_limited(void **state)
{
    struct fx *x = *state;
    set_group(x, 4, 0, 2, 30000); /* no panic: the rate limit alone */
    healthy_group(x, 4);
    monitor_says(x, NULL, FLEET_HEALTH_UNHEALTHY, -1);
    int64_t t = T0 + 31000;
    x->prov->now = t;
    ctl_tick(x->ctl, t);
    assert_int_equal(count_activities(x, "replace"), 2);
    for (int i = 1; i <= 20; i++) { /* 20 s: 2/min refills less than one */
        x->prov->now = t + i * 1000;
        ctl_tick(x->ctl, t + i * 1000);
    }
    assert_int_equal(count_activities(x, "replace"), 2);
    /* the group never shrank below desired meanwhile: the waiting ones stay live */
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 4);
    x->prov->now = t + 31000;
    ctl_tick(x->ctl, t + 31000); /* 30 s: one more token */
    assert_int_equal(count_activities(x, "replace"), 3);
    x->prov->now = t + 61000;
    ctl_tick(x->ctl, t + 61000);
    assert_int_equal(count_activities(x, "replace"), 4);
}

struct dereg_fx {
    int64_t at;
};

static void dereg_fn(struct fleet_slot *s, void *arg)
{
    const struct dereg_fx *d = arg;
    s->health = FLEET_HEALTH_DEREGISTERED;
    s->registered = 0;
    s->health_changed_ms = d->at;
    s->load = 99;
}

static void deregistered_waits_its_window(void **state)
{
    struct fx *x = *state;
    set_group(x, 2, 0, 0, 20000);
    healthy_group(x, 2);
    struct fleet_slot s[64];
    slots(x, s);
    struct dereg_fx d = {T0 + 40000};
    assert_int_equal(fleet_update(x->fleet, s[0].index, s[0].generation, dereg_fn, &d), 0);
    /* within the 20 s window: not replaced, not counted in the load, nothing launched */
    for (int t = 40; t <= 59; t++) {
        x->prov->now = T0 + t * 1000;
        ctl_tick(x->ctl, T0 + t * 1000);
    }
    assert_int_equal(x->prov->terminate_calls, 0);
    assert_int_equal(x->prov->launch_calls, 1);
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_int_equal(st.deregistered, 1);
    assert_int_equal(st.in_service, 1);
    assert_true(st.avg_load > 39 && st.avg_load < 41); /* its 99 is not counted */
    /* the window is over: replaced */
    x->prov->now = T0 + 60000;
    ctl_tick(x->ctl, T0 + 60000);
    assert_int_equal(x->prov->terminate_calls, 1);
    assert_string_equal(x->prov->terminated[0], s[0].id);
    assert_int_equal(count_activities(x, "replace"), 1);
}

static void deregistered_back_in_time_is_kept(void **state)
{
    struct fx *x = *state;
    set_group(x, 2, 0, 0, 20000);
    healthy_group(x, 2);
    struct fleet_slot s[64];
    slots(x, s);
    struct dereg_fx d = {T0 + 40000};
    assert_int_equal(fleet_update(x->fleet, s[0].index, s[0].generation, dereg_fn, &d), 0);
    ctl_tick(x->ctl, T0 + 45000);
    monitor_says(x, s[0].id, FLEET_HEALTH_HEALTHY, 40); /* its checks pass again */
    for (int t = 46; t <= 90; t++) {
        x->prov->now = T0 + t * 1000;
        ctl_tick(x->ctl, T0 + t * 1000);
    }
    assert_int_equal(x->prov->terminate_calls, 0);
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_int_equal(st.deregistered, 0);
    assert_int_equal(st.in_service, 2);
}

/* ---- suspended processes and the activity hook (issue 12) --------------------------------- */

static int skipped_with(struct fx *x, const char *kind, const char *needle)
{
    return activities_with(x, kind, "skipped", needle);
}

static void suspend(struct fx *x, const char *procs)
{
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    memset(g.suspended_processes, 0, sizeof g.suspended_processes);
    snprintf(g.suspended_processes, sizeof g.suspended_processes, "%s", procs);
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
}

static int hook_calls;
static char hook_last[64];
static void on_activity(void *arg, const struct group_settings *g, const struct store_activity *a)
{
    (void)arg;
    assert_non_null(g);
    hook_calls++;
    snprintf(hook_last, sizeof hook_last, "%s/%s", a->kind, a->status);
}

static void suspended_launch_and_terminate(void **state)
{
    struct fx *x = *state;
    healthy_group(x, 2);
    suspend(x, "Launch, Terminate");
    int64_t rev;
    assert_int_equal(store_set_desired(x->store, x->name, 4, &rev), 0);
    for (int i = 0; i < 5; i++)
        ctl_tick(x->ctl, T0 + 2000 + i * 1000);
    assert_int_equal(x->prov->launch_calls, 1); /* the first one only */
    /* once, not once a tick */
    assert_int_equal(skipped_with(x, "launch", "process Launch is suspended"), 1);
    struct ctl_status st;
    ctl_get_status(x->ctl, &st);
    assert_string_equal(st.suspended, "Launch, Terminate");
    /* another want: recorded again */
    assert_int_equal(store_set_desired(x->store, x->name, 3, &rev), 0);
    ctl_tick(x->ctl, T0 + 8000);
    assert_int_equal(skipped_with(x, "launch", "process Launch is suspended"), 2);
    /* resumed: it launches */
    suspend(x, "Terminate");
    ctl_tick(x->ctl, T0 + 9000);
    assert_int_equal(x->prov->launch_calls, 2);
    /* scale-in held by Terminate, then done once resumed */
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    assert_int_equal(store_set_desired(x->store, x->name, 2, &rev), 0);
    ctl_tick(x->ctl, T0 + 10000);
    ctl_tick(x->ctl, T0 + 11000);
    assert_int_equal(x->prov->n_terminated, 0);
    assert_int_equal(skipped_with(x, "terminate", "process Terminate is suspended"), 1);
    suspend(x, "");
    ctl_tick(x->ctl, T0 + 12000);
    assert_int_equal(x->prov->n_terminated, 1);
}

static void suspended_replacement_keeps_the_unhealthy(void **state)
{
    struct fx *x = *state;
    set_group(x, 2, 0, 0, 0);
    healthy_group(x, 2);
    suspend(x, "ReplaceUnhealthy");
    struct fleet_slot s[8];
    assert_int_equal(slots(x, s), 2);
    struct hl h = {FLEET_HEALTH_UNHEALTHY, -1};
    fleet_update(x->fleet, s[0].index, s[0].generation, set_health_fn, &h);
    for (int i = 0; i < 3; i++)
        ctl_tick(x->ctl, T0 + 100000 + i * 1000);
    assert_int_equal(x->prov->n_terminated, 0);
    assert_int_equal(x->prov->launch_calls, 1); /* not launched for either */
    assert_int_equal(skipped_with(x, "replace", "process ReplaceUnhealthy is suspended"), 1);
    suspend(x, "");
    ctl_tick(x->ctl, T0 + 104000);
    assert_int_equal(x->prov->n_terminated, 1);
}

static void max_lifetime_replaces_launching_first(void **state)
{
    struct fx *x = *state;
    set_group(x, 2, 0, 0, 30000);
    healthy_group(x, 2); /* launched at T0 */
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.max_instance_lifetime_ms = 60000;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    int64_t now = T0 + 59000;
    ctl_tick(x->ctl, now);
    assert_int_equal(x->prov->launch_calls, 1); /* not yet */
    /* expired: one extra first (a batch of max(1, 2/10)), nothing terminated */
    x->prov->now = now = T0 + 61000;
    ctl_tick(x->ctl, now);
    assert_int_equal(x->prov->launch_calls, 2);
    assert_int_equal(x->prov->n_terminated, 0);
    ctl_tick(x->ctl, now += 1000); /* the new one is not healthy yet: still nothing */
    assert_int_equal(x->prov->n_terminated, 0);
    struct fleet_slot s[8];
    for (int round = 0; round < 2; round++) {
        monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
        ctl_tick(x->ctl, now += 1000); /* in service: 3 healthy > 2: the oldest goes */
        ctl_tick(x->ctl, now += 1000);
        assert_int_equal(x->prov->n_terminated, round + 1);
        size_t n = slots(x, s);
        int healthy = 0;
        for (size_t i = 0; i < n; i++)
            healthy += s[i].lifecycle == FLEET_IN_SERVICE && s[i].health == FLEET_HEALTH_HEALTHY;
        assert_true(healthy >= 2); /* never below desired */
    }
    /* both originals replaced; the group is back at 2 and stays there */
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    for (int i = 0; i < 3; i++)
        ctl_tick(x->ctl, now += 1000);
    assert_int_equal(slots(x, s), 2);
    for (int i = 0; i < 2; i++)
        assert_true(s[i].launched_at_ms > T0);
    assert_int_equal(x->prov->n_terminated, 2);
    assert_int_equal(count_activities(x, "replace"), 2);
}

/* Sets the group's sizes and max_instance_lifetime (0: none). */
static void set_sizes(struct fx *x, int min, int desired, int64_t lifetime_ms)
{
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.min_size = min;
    g.desired_capacity = desired;
    g.max_instance_lifetime_ms = lifetime_ms;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
}

/* How many times the provider was asked to terminate id, and how many "replace" activities
   name it. */
static void times_replaced(struct fx *x, const char *id, int *terminated, int *activities)
{
    *terminated = 0;
    for (int i = 0; i < x->prov->n_terminated; i++)
        *terminated += strcmp(x->prov->terminated[i], id) == 0;
    struct store_activity *a = NULL;
    size_t n = 0;
    assert_int_equal(store_activity_list(x->store, x->name, 0, 1000, &a, &n), 0);
    *activities = 0;
    for (size_t i = 0; i < n; i++)
        *activities += strcmp(a[i].kind, "replace") == 0 && strstr(a[i].cause, id) != NULL;
    store_activities_free(a);
}

/* The oldest instance is past max_instance_lifetime AND unhealthy past its grace period: the
   health duty replaces it, and in the same tick (from the same snapshot) the lifetime duty,
   with a surplus of healthy instances over desired, must not pick it again: it is terminated
   once, recorded once, and the lifetime duty takes the next oldest instead. */
static void replaced_for_health_is_not_expired_too(void **state)
{
    struct fx *x = *state;
    set_sizes(x, 1, 1, 0);
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0); /* the oldest, launched at T0 */
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 1000);
    set_sizes(x, 1, 4, 0);
    x->prov->now = T0 + 5000; /* three more, launched 5 s later */
    ctl_tick(x->ctl, T0 + 5000);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 6000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 4);
    char oldest[FLEET_ID_MAX] = "";
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s[i].lifecycle, FLEET_IN_SERVICE);
        if (s[i].launched_at_ms == T0)
            snprintf(oldest, sizeof(oldest), "%s", s[i].id);
    }
    assert_string_not_equal(oldest, "");
    assert_int_equal(x->prov->n_terminated, 0);

    /* all four expired; desired 2, so 3 healthy (the oldest aside) are a surplus of one */
    set_sizes(x, 2, 2, 60000);
    monitor_says(x, oldest, FLEET_HEALTH_UNHEALTHY, -1);
    x->prov->now = T0 + 70000;
    ctl_tick(x->ctl, T0 + 70000);
    int term = 0, acts = 0;
    times_replaced(x, oldest, &term, &acts);
    assert_int_equal(term, 1);
    assert_int_equal(acts, 1);
    /* the surplus went all the same: one of the others, for its age */
    assert_int_equal(x->prov->n_terminated, 2);
    assert_int_equal(count_activities(x, "replace"), 2);
}

/* desired drops from 4 to 2 while all four are past max_instance_lifetime: the lifetime duty
   terminates the surplus (the two oldest), and convergence, in the same tick, must count them
   gone for its scale-in: it neither picks one of them again as a victim nor terminates a third
   (which would leave fewer healthy than desired). */
static void lifetime_and_scale_in_terminate_each_once(void **state)
{
    struct fx *x = *state;
    set_sizes(x, 1, 4, 0);
    healthy_group(x, 4); /* launched at T0 */
    struct fleet_slot s[64];
    int launches = x->prov->launch_calls;

    set_sizes(x, 2, 2, 60000);
    x->prov->now = T0 + 70000;
    ctl_tick(x->ctl, T0 + 70000);
    assert_int_equal(x->prov->n_terminated, 2);
    for (int i = 0; i < x->prov->n_terminated; i++) {
        int term = 0, acts = 0;
        times_replaced(x, x->prov->terminated[i], &term, &acts);
        assert_int_equal(term, 1);
        assert_int_equal(acts, 1);
    }
    assert_int_equal(count_activities(x, "terminate"), 0); /* no scale-in */
    size_t n = slots(x, s);
    int healthy = 0;
    for (size_t i = 0; i < n; i++)
        healthy += s[i].lifecycle == FLEET_IN_SERVICE && s[i].health == FLEET_HEALTH_HEALTHY;
    assert_int_equal(healthy, 2);
    assert_int_equal(n, 2);
    /* the next tick launches the lifetime's surge (one, launching first) and terminates none */
    ctl_tick(x->ctl, T0 + 71000);
    assert_int_equal(x->prov->launch_calls, launches + 1);
    assert_int_equal(x->prov->n_terminated, 2);
    assert_int_equal(slots(x, s), 3);
}

/* Instance refresh (ctl_refresh.c): 4 instances of an old launch config, max_size = desired
   (no room to launch first), min_healthy 50 %: replaced 2 at a time, never fewer than 2
   healthy in service, ending successful with every instance of the new config. */
static void refresh_replaces_within_the_floor(void **state)
{
    struct fx *x = *state;
    set_group(x, 4, 0, 0, 30000);
    healthy_group(x, 4); /* tokens without a launch config: all "old" below */
    ctl_free(x->ctl);
    x->ctl = make_ctl_lc(x, "lc2");
    int64_t now = T0 + 2000;
    ctl_reconcile(x->ctl, now);
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.max_size = 4;
    snprintf(g.instance_refresh, sizeof(g.instance_refresh), "st=pending min=50 warm=0");
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    struct fleet_slot s[64];
    int low = 99, ticks = 0;
    struct refresh r;
    memset(&r, 0, sizeof(r));
    while (ticks++ < 40) {
        x->prov->now = now += 1000;
        ctl_tick(x->ctl, now);
        size_t n = slots(x, s);
        int healthy = 0;
        for (size_t i = 0; i < n; i++)
            healthy += s[i].lifecycle == FLEET_IN_SERVICE && s[i].health == FLEET_HEALTH_HEALTHY;
        low = healthy < low ? healthy : low;
        monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
        assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
        assert_int_equal(refresh_parse(g.instance_refresh, &r), 0);
        if (r.status == REFRESH_SUCCESSFUL)
            break;
    }
    assert_int_equal(r.status, REFRESH_SUCCESSFUL);
    assert_int_equal(r.total, 4);
    assert_true(low >= 2);
    assert_int_equal(x->prov->n_terminated, 4);
    assert_int_equal(count_activities(x, "replace"), 4);
    /* the first call launched the originals; the replacements carry the new launch config */
    assert_true(x->prov->launch_calls >= 2);
    for (int i = 1; i < x->prov->launch_calls && i < 32; i++)
        assert_true(strncmp(x->prov->tokens[i], "asgd-lc2-", 9) == 0);
}

static void activity_hook_sees_every_activity(void **state)
{
    struct fx *x = *state;
    ctl_free(x->ctl);
    struct ctl_deps deps = {
        .group = x->name,
        .fleet = x->fleet,
        .store = x->store,
        .provider = &x->prov->base,
        .launch_config = "lc1",
        .on_activity = on_activity,
    };
    char err[256];
    assert_int_equal(ctl_new(&deps, &x->ctl, err, sizeof(err)), 0);
    hook_calls = 0;
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    assert_int_equal(hook_calls, count_activities(x, "launch"));
    assert_true(hook_calls >= 1);
    assert_string_equal(hook_last, "launch/ok");
    /* the token names the launch configuration */
    assert_true(strncmp(x->prov->tokens[0], "asgd-lc1-", 9) == 0);
}

/* ---- lifecycle (issue 12): hooks, protection, standby ---------------------------------------
 */

static void set_hooks(struct fx *x, int64_t launch_ms, const char *launch_def, int64_t term_ms)
{
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.hooks.launch_timeout_ms = launch_ms;
    snprintf(g.hooks.launch_default, sizeof(g.hooks.launch_default), "%s", launch_def);
    g.hooks.terminate_timeout_ms = term_ms;
    snprintf(g.hooks.terminate_default, sizeof(g.hooks.terminate_default), "abandon");
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
}

static const struct fleet_slot *slot_of(const struct fleet_slot *s, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].id, id) == 0)
            return &s[i];
    return NULL;
}

/* A launch hook holds healthy instances out of service until completed; its timeout applies
   the default result (abandon: terminated, and replaced); the wait survives a restart. */
static void launch_hook_holds_until_completed(void **state)
{
    struct fx *x = *state;
    char err[256];
    set_hooks(x, 5000, "abandon", 0);
    ctl_reconcile(x->ctl, T0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 1000);
    struct fleet_slot s[64];
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(s[0].lifecycle, FLEET_PENDING_WAIT);
    assert_int_equal(s[1].lifecycle, FLEET_PENDING_WAIT);
    assert_true(s[0].hook_deadline_ms == T0 + 5000);
    /* a restart adopts them back into the same wait */
    ctl_free(x->ctl);
    fleet_close(x->fleet);
    fleet_unlink(x->name);
    assert_int_equal(fleet_open(x->name, 64, 1, &x->fleet), 0);
    x->ctl = make_ctl(x);
    assert_int_equal(ctl_reconcile(x->ctl, T0 + 2000), 0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    ctl_tick(x->ctl, T0 + 2000);
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(slot_of(s, 2, "i-000")->lifecycle, FLEET_PENDING_WAIT);
    assert_true(slot_of(s, 2, "i-000")->hook_deadline_ms == T0 + 5000);
    /* completed: in service at the next ticks; the other one times out */
    assert_int_equal(ctl_set_protected(x->ctl, "i-000", 1, err, sizeof(err)), 0);
    assert_int_equal(ctl_complete_hook(x->ctl, "i-000", "continue", err, sizeof(err)), 0);
    assert_int_equal(ctl_complete_hook(x->ctl, "i-000", "bogus", err, sizeof(err)), CTL_EINVAL);
    ctl_tick(x->ctl, T0 + 3000);
    ctl_tick(x->ctl, T0 + 4000);
    assert_int_equal(slots(x, s), 2);
    assert_int_equal(slot_of(s, 2, "i-000")->lifecycle, FLEET_IN_SERVICE);
    assert_int_equal(slot_of(s, 2, "i-001")->lifecycle, FLEET_PENDING_WAIT);
    assert_int_equal(ctl_complete_hook(x->ctl, "i-000", "continue", err, sizeof(err)), CTL_ESTATE);
    x->prov->now = T0 + 6000;
    ctl_tick(x->ctl, T0 + 6000);
    assert_int_equal(x->prov->n_terminated, 1);
    assert_string_equal(x->prov->terminated[0], "i-001");
    assert_int_equal(count_activities(x, "hook"), 4); /* 2 waits, continue, timeout */
    /* the store row keeps the protection */
    struct store_instance row;
    assert_int_equal(store_get_instance(x->store, "i-000", &row), 0);
    assert_true(row.protect);
    assert_string_equal(row.lifecycle, "in-service");
}

/* Protected instances are never scale-in victims, but an unhealthy one is replaced; a terminate
   hook holds a victim in terminating:wait until completed. */
static void protection_and_terminate_hook(void **state)
{
    struct fx *x = *state;
    char err[256];
    int64_t rev;
    set_group(x, 4, 0, 0, 30000);
    healthy_group(x, 4);
    assert_int_equal(ctl_set_protected(x->ctl, "i-000", 1, err, sizeof(err)), 0);
    assert_int_equal(ctl_set_protected(x->ctl, "i-001", 1, err, sizeof(err)), 0);
    assert_int_equal(ctl_set_protected(x->ctl, "i-nope", 1, err, sizeof(err)), CTL_ENOENT);
    assert_int_equal(store_set_desired(x->store, x->name, 2, &rev), 0);
    ctl_tick(x->ctl, T0 + 2000);
    /* two are protected, so the other two go (in the termination policy's order) */
    assert_int_equal(x->prov->n_terminated, 2);
    int first2 = strcmp(x->prov->terminated[0], "i-002") == 0;
    assert_string_equal(x->prov->terminated[first2 ? 0 : 1], "i-002");
    assert_string_equal(x->prov->terminated[first2 ? 1 : 0], "i-003");
    set_hooks(x, 0, "abandon", 10000);
    ctl_tick(x->ctl, T0 + 3000);
    assert_int_equal(x->prov->n_terminated, 2);
    /* unhealthy and protected: replaced, through the terminate hook */
    monitor_says(x, "i-000", FLEET_HEALTH_UNHEALTHY, -1);
    ctl_tick(x->ctl, T0 + 40000);
    struct fleet_slot s[64];
    size_t n = slots(x, s);
    assert_int_equal(slot_of(s, n, "i-000")->lifecycle, FLEET_TERMINATING_WAIT);
    assert_int_equal(x->prov->n_terminated, 2);
    ctl_tick(x->ctl, T0 + 41000);
    assert_int_equal(x->prov->n_terminated, 2); /* still waiting */
    assert_int_equal(ctl_complete_hook(x->ctl, "i-000", "abandon", err, sizeof(err)), 0);
    ctl_tick(x->ctl, T0 + 42000);
    assert_int_equal(x->prov->n_terminated, 3);
    assert_string_equal(x->prov->terminated[2], "i-000");
}

/* ---- agents that drain (real gRPC servers answering MonitorC/Lifecycle) ---- */

struct drainer {
    const char *id;
    const char *drain; /* "done" | "failed" | "running" */
    int asked;
};

static grpc_status_code h_lifecycle(void *ctx, const struct rpc_request *req,
                                    struct rpc_reply *reply)
{
    struct drainer *d = ctx;
    LifecycleRequest *in = lifecycle_request__unpack(NULL, req->len, req->data);
    assert_non_null(in);
    assert_string_equal(in->state, "terminating:wait");
    lifecycle_request__free_unpacked(in, NULL);
    d->asked++;
    LifecycleReply out = LIFECYCLE_REPLY__INIT;
    out.drain = (char *)d->drain;
    out.detail = (char *)(strcmp(d->drain, "failed") == 0 ? "exit 3" : "");
    out.instance_id = (char *)d->id;
    reply->len = lifecycle_reply__get_packed_size(&out);
    reply->data = malloc(reply->len ? reply->len : 1);
    assert_non_null(reply->data);
    lifecycle_reply__pack(&out, reply->data);
    return GRPC_STATUS_OK;
}

/* Draining instances' agents are asked together once a tick: a drain done completes the hook
   with continue, a failed one with the default result (abandon), a running one and one whose
   agent never answers (a listener that does not speak) keep waiting for their timeout. */
static void draining_agents_asked_together(void **state)
{
    struct fx *x = *state;
    struct drainer d[3] = {{"i-000", "done", 0}, {"i-001", "failed", 0}, {"i-002", "running", 0}};
    struct rpc_server *srv[3];
    for (int i = 0; i < 3; i++) {
        struct rpc_server_opts o = RPC_SERVER_OPTS_INIT;
        srv[i] = rpc_server_new(&o);
        assert_non_null(srv[i]);
        assert_int_equal(rpc_server_add_method(srv[i], "/MonitorC/Lifecycle", h_lifecycle, &d[i]),
                         0);
        int port = 0;
        assert_int_equal(rpc_server_bind(srv[i], "127.0.0.1:0", &port), 0);
        assert_int_equal(rpc_server_start(srv[i]), 0);
        snprintf(x->prov->next_addr[i], sizeof(x->prov->next_addr[i]), "127.0.0.1:%d", port);
    }
    int mute = socket(AF_INET, SOCK_STREAM, 0); /* accepts (the kernel does), never answers */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(mute, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(mute, 8), 0);
    assert_int_equal(getsockname(mute, (struct sockaddr *)&sa, &sl), 0);
    snprintf(x->prov->next_addr[3], sizeof(x->prov->next_addr[3]), "127.0.0.1:%d",
             ntohs(sa.sin_port));
    x->prov->n_next_addr = 4;
    set_group(x, 4, 0, 0, 30000);
    healthy_group(x, 4);
    set_hooks(x, 0, "abandon", 60000);
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.min_size = 0;
    g.desired_capacity = 0;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    ctl_tick(x->ctl, T0 + 2000); /* all four to terminating:wait; their agents told at once */
    struct fleet_slot s[64];
    size_t n = slots(x, s);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s[i].lifecycle, FLEET_TERMINATING_WAIT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(d[i].asked, 1);
    assert_int_equal(x->prov->n_terminated, 0);
    ctl_tick(x->ctl, T0 + 3000); /* the answers: done -> continue, failed -> abandon */
    for (int i = 0; i < 3; i++)
        assert_int_equal(d[i].asked, 2);
    assert_int_equal(x->prov->n_terminated, 2);
    n = slots(x, s);
    assert_int_equal(n, 2);
    assert_int_equal(slot_of(s, n, "i-002")->lifecycle, FLEET_TERMINATING_WAIT);
    assert_int_equal(slot_of(s, n, "i-003")->lifecycle, FLEET_TERMINATING_WAIT);
    assert_int_equal(activities_with(x, "hook", NULL, "drain command succeeded"), 1);
    assert_int_equal(activities_with(x, "hook", NULL, "drain command failed (exit 3)"), 1);
    for (int i = 0; i < 3; i++)
        rpc_server_free(srv[i]);
    close(mute);
}

/* An instance parked in standby is not replaced for its age while parked. */
static void max_lifetime_leaves_standby_alone(void **state)
{
    struct fx *x = *state;
    char err[256];
    set_group(x, 2, 0, 0, 30000);
    healthy_group(x, 2); /* launched at T0 */
    assert_int_equal(ctl_standby(x->ctl, "i-000", 1, 0, err, sizeof(err)), 0);
    ctl_tick(x->ctl, T0 + 2000); /* parked; a replacement is launched */
    struct fleet_slot s[8];
    assert_int_equal(slot_of(s, slots(x, s), "i-000")->lifecycle, FLEET_STANDBY);
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.max_instance_lifetime_ms = 60000;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
    int64_t now = T0 + 61000;
    for (int i = 0; i < 6; i++) {
        x->prov->now = now;
        monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
        ctl_tick(x->ctl, now += 1000);
    }
    for (int i = 0; i < x->prov->n_terminated; i++)
        assert_string_not_equal(x->prov->terminated[i], "i-000");
    assert_true(x->prov->n_terminated >= 1); /* the old ones in service were replaced */
    size_t n = slots(x, s);
    assert_int_equal(slot_of(s, n, "i-000")->lifecycle, FLEET_STANDBY);
}

/* Standby leaves the count (a replacement is launched) and comes back raising desired. */
static void standby_round_trip(void **state)
{
    struct fx *x = *state;
    char err[256];
    healthy_group(x, 2);
    assert_int_equal(ctl_standby(x->ctl, "i-000", 0, 0, err, sizeof(err)), CTL_ESTATE);
    assert_int_equal(ctl_standby(x->ctl, "i-000", 1, 0, err, sizeof(err)), 0);
    ctl_tick(x->ctl, T0 + 2000);
    struct fleet_slot s[64];
    size_t n = slots(x, s);
    assert_int_equal(n, 3); /* the replacement */
    assert_int_equal(slot_of(s, n, "i-000")->lifecycle, FLEET_STANDBY);
    /* unhealthy in standby: not replaced */
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    monitor_says(x, "i-000", FLEET_HEALTH_UNHEALTHY, -1);
    ctl_tick(x->ctl, T0 + 40000);
    assert_int_equal(x->prov->n_terminated, 0);
    /* as another node's API forwards it */
    assert_int_equal(ctl_lifecycle_json(x->ctl, "{\"op\": \"nope\"}", err, sizeof(err)),
                     CTL_EINVAL);
    assert_int_equal(ctl_lifecycle_json(x->ctl, "not json", err, sizeof(err)), CTL_EINVAL);
    assert_int_equal(ctl_lifecycle_json(x->ctl,
                                        "{\"op\": \"exit-standby\", \"instance_id\": \"i-000\"}",
                                        err, sizeof(err)),
                     0);
    ctl_tick(x->ctl, T0 + 41000);
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    assert_int_equal(g.desired_capacity, 3);
    n = slots(x, s);
    assert_int_equal(slot_of(s, n, "i-000")->lifecycle, FLEET_PENDING);
    assert_int_equal(count_activities(x, "standby"), 2);
}

/* Rows of the metric history since t: the group's and the instances'. */
static void history_rows(struct fx *x, int64_t since, size_t *ng, size_t *ni)
{
    struct store_metric_group *mg = NULL;
    struct store_metric_instance *mi = NULL;
    assert_int_equal(store_metrics_group_since(x->store, x->name, since, 1000, &mg, ng), 0);
    assert_int_equal(store_metrics_instance_since(x->store, x->name, NULL, since, 1000, &mi, ni),
                     0);
    free(mg);
    free(mi);
}

static void set_history_max(struct fx *x, int v)
{
    struct group_settings g;
    assert_int_equal(store_get_settings(x->store, x->name, &g), 0);
    g.history_instances_max = v;
    assert_int_equal(store_put_settings(x->store, &g, g.revision, NULL), 0);
}

/* [group] history_instances_max: per-instance load history only while the group has at most
   that many instances (0: the default, 500; -1: never); the group's own rows always. */
static void history_per_instance_follows_the_setting(void **state)
{
    struct fx *x = *state;
    set_history_max(x, 1); /* the group has 2 */
    assert_int_equal(ctl_reconcile(x->ctl, T0), 0);
    ctl_tick(x->ctl, T0);
    monitor_says(x, NULL, FLEET_HEALTH_HEALTHY, 40);
    int64_t now = T0;
    for (int i = 1; i <= 12; i++) /* history every 5 s: rows at +5 s and +10 s */
        ctl_tick(x->ctl, now = T0 + i * 1000);
    size_t ng = 0, ni = 0;
    history_rows(x, T0 + 1, &ng, &ni);
    assert_true(ng >= 2);
    assert_int_equal(ni, 0);
    /* 2 allows the 2 instances: a row each per history period */
    set_history_max(x, 2);
    int64_t since = now + 1;
    for (int i = 1; i <= 6; i++)
        ctl_tick(x->ctl, now += 1000);
    history_rows(x, since, &ng, &ni);
    assert_int_equal(ni, 2 * ng);
    assert_true(ni >= 2);
    /* -1: never */
    set_history_max(x, -1);
    since = now + 1;
    for (int i = 1; i <= 6; i++)
        ctl_tick(x->ctl, now += 1000);
    history_rows(x, since, &ng, &ni);
    assert_true(ng >= 1);
    assert_int_equal(ni, 0);
    /* 0: the default (500) */
    set_history_max(x, 0);
    since = now + 1;
    for (int i = 1; i <= 6; i++)
        ctl_tick(x->ctl, now += 1000);
    history_rows(x, since, &ng, &ni);
    assert_true(ng >= 1);
    assert_int_equal(ni, 2 * ng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(launches_min_through_an_intent, setup, teardown),
        cmocka_unit_test_setup_teardown(transient_failure_resends_same_token, setup, teardown),
        cmocka_unit_test_setup_teardown(launches_in_provider_sized_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(launch_window_spans_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(fatal_error_recorded_once_and_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(describe_failure_forgets_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(vanished_instance_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(unhealthy_replaced_only_after_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(warmup_counts_before_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(replacement_waits_for_its_termination, setup, teardown),
        cmocka_unit_test_setup_teardown(scale_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_adopts_and_launches_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(open_intent_resent_with_its_token, setup, teardown),
        cmocka_unit_test_setup_teardown(operator_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(scales_on_load, setup, teardown),
        cmocka_unit_test_setup_teardown(fenced_controller_does_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(partition_panics_instead_of_replacing, setup, teardown),
        cmocka_unit_test_setup_teardown(blip_is_no_panic, setup, teardown),
        cmocka_unit_test_setup_teardown(replacements_are_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(deregistered_waits_its_window, setup, teardown),
        cmocka_unit_test_setup_teardown(deregistered_back_in_time_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(suspended_launch_and_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(suspended_replacement_keeps_the_unhealthy, setup, teardown),
        cmocka_unit_test_setup_teardown(activity_hook_sees_every_activity, setup, teardown),
        cmocka_unit_test_setup_teardown(max_lifetime_replaces_launching_first, setup, teardown),
        cmocka_unit_test_setup_teardown(max_lifetime_leaves_standby_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(replaced_for_health_is_not_expired_too, setup, teardown),
        cmocka_unit_test_setup_teardown(lifetime_and_scale_in_terminate_each_once, setup, teardown),
        cmocka_unit_test_setup_teardown(refresh_replaces_within_the_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(launch_hook_holds_until_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(protection_and_terminate_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(draining_agents_asked_together, setup, teardown),
        cmocka_unit_test_setup_teardown(standby_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(history_per_instance_follows_the_setting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
