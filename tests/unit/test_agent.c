/*
 * Unit tests for the agent: /proc parsers against fixture files
 * (tests/fixtures/proc) and hostile text, the three load sources, the
 * simulated load's bound on change per second (virtual time), the backoff
 * schedule, and registration against a real in-process MonitorS stand-in
 * served by the rpc layer (refusals, retry, re-registration when polls stop,
 * deregistration). cwd is tests/ (CTest), or ASGD_SOURCE_DIR says where.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/clock.h"
#include "monitor.pb-c.h"
#include "rpc/rpc.h"
#include "common/banned.h"

static void fixture_dir(char *buf, size_t size)
{
    const char *src = getenv("ASGD_SOURCE_DIR");
    if (src)
        snprintf(buf, size, "%s/tests/fixtures/proc", src);
    else
        snprintf(buf, size, "fixtures/proc");
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    const char *names[] = {"stat", "meminfo", "loadavg", "load"};
    char path[512];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* --- parsers ------------------------------------------------------------ */

static void parses_fixture_files(void **state)
{
    (void)state;
    char dir[400], path[512];
    fixture_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/stat", dir);
    char *text = slurp(path);
    struct agent_cpu_times t;
    assert_int_equal(agent_proc_parse_stat(text, &t), 0);
    assert_int_equal(t.busy, 1700);
    assert_int_equal(t.total, 10000);
    free(text);

    snprintf(path, sizeof(path), "%s/meminfo", dir);
    text = slurp(path);
    double v = -1;
    assert_int_equal(agent_proc_parse_meminfo(text, &v), 0);
    assert_true(fabs(v - 25.0) < 1e-9);
    free(text);

    snprintf(path, sizeof(path), "%s/loadavg", dir);
    text = slurp(path);
    assert_int_equal(agent_proc_parse_loadavg(text, &v), 0);
    assert_true(fabs(v - 0.75) < 1e-9);
    free(text);

    struct agent_cpu_times a = {100, 1000}, b = {400, 2000}, zero = {0, 0};
    assert_true(fabs(agent_cpu_percent(&a, &b) - 30.0) < 1e-9);
    assert_true(fabs(agent_cpu_percent(&zero, &a) - 10.0) < 1e-9);
    assert_true(agent_cpu_percent(&b, &a) < 0); /* backwards */
    assert_true(agent_cpu_percent(&a, &a) < 0); /* no time */
}

static void rejects_hostile_proc_text(void **state)
{
    (void)state;
    struct agent_cpu_times t = {7, 7};
    const char *bad_stat[] = {"",
                              "cpu0 1 2 3 4\n",
                              "cpu  x y z\n",
                              "cpu  1 2\n",
                              "cpu  -1 2 3 4\n",
                              "cpu  18446744073709551615 18446744073709551615 1 1 1 1 1 1\n",
                              "cpu  99999999999999999999999 1 1 1\n",
                              "intr 1 2 3\n"};
    for (size_t i = 0; i < sizeof(bad_stat) / sizeof(bad_stat[0]); i++)
        assert_int_equal(agent_proc_parse_stat(bad_stat[i], &t), -1);
    assert_int_equal(agent_proc_parse_stat(NULL, &t), -1);
    /* old kernels: only four fields */
    assert_int_equal(agent_proc_parse_stat("cpu  10 0 10 80\n", &t), 0);
    assert_int_equal(t.busy, 20);
    assert_int_equal(t.total, 100);

    double v = 42;
    const char *bad_mem[] = {"",
                             "MemTotal: 100 kB\n",
                             "MemAvailable: 10 kB\n",
                             "MemTotal: 0 kB\nMemAvailable: 0 kB\n",
                             "MemTotal: 10 kB\nMemAvailable: 20 kB\n",
                             "MemTotal: abc kB\nMemAvailable: 1 kB\n",
                             "XMemTotal: 10\n"};
    for (size_t i = 0; i < sizeof(bad_mem) / sizeof(bad_mem[0]); i++)
        assert_int_equal(agent_proc_parse_meminfo(bad_mem[i], &v), -1);
    assert_true(v == 42);
    /* a huge total with almost everything used: at most 100 (fuzz_proc found 100 + 1 ulp) */
    assert_int_equal(agent_proc_parse_meminfo("MemTotal:777777777777777777\nMemAvailable:4\n", &v),
                     0);
    assert_true(v <= 100.0 && v > 99.9);
    v = 42;

    const char *bad_load[] = {"", "abc", "-1 2 3", "nan 1 1", "inf 1 1", "1x 2 3", " "};
    for (size_t i = 0; i < sizeof(bad_load) / sizeof(bad_load[0]); i++)
        assert_int_equal(agent_proc_parse_loadavg(bad_load[i], &v), -1);

    const char *bad_val[] = {"",
                             "abc",
                             "-1",
                             "101",
                             "1e2",
                             "0x10",
                             "nan",
                             "inf",
                             "1.2.3",
                             "50 50",
                             "50%",
                             ".",
                             "999999999999999999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_val) / sizeof(bad_val[0]); i++)
        assert_int_equal(agent_parse_load_value(bad_val[i], &v), -1);
    assert_true(v == 42);
    assert_int_equal(agent_parse_load_value(" 37.5\n", &v), 0);
    assert_true(v == 37.5);
    assert_int_equal(agent_parse_load_value("100", &v), 0);
    assert_int_equal(agent_parse_load_value("0", &v), 0);
    assert_true(v == 0);
}

/* --- load sources ---------------------------------------------------------- */

static void proc_source_uses_deltas(void **state)
{
    (void)state;
    char dir[400];
    fixture_dir(dir, sizeof(dir));
    char err[256];
    struct agent_load *l = agent_load_new("proc", dir, err, sizeof(err));
    assert_non_null(l);
    struct agent_sample s;
    assert_int_equal(agent_load_sample(l, 1000, &s), 0);
    assert_true(s.valid);
    assert_true(fabs(s.load - 17.0) < 1e-9); /* first sample: since boot */
    assert_true(fabs(s.mem_used_pct - 25.0) < 1e-9);
    assert_true(fabs(s.load1 - 0.75) < 1e-9);
    assert_true(s.sampled_at_ms > 0);
    agent_load_free(l);

    /* a private copy whose counters move between two samples */
    char tmpl[] = "/tmp/test_agent_proc_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    write_file(tmpl, "stat", "cpu  1000 50 450 8000 300 20 30 150 0 0\n");
    write_file(tmpl, "meminfo", "MemTotal: 1000 kB\nMemAvailable: 900 kB\n");
    write_file(tmpl, "loadavg", "2.50 1.00 0.50 1/100 42\n");
    l = agent_load_new("proc", tmpl, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(agent_load_sample(l, 1000, &s), 0);
    write_file(tmpl, "stat", "cpu  1300 50 450 8500 500 20 30 150 0 0\n");
    assert_int_equal(agent_load_sample(l, 2000, &s), 0);
    assert_true(fabs(s.load - 30.0) < 1e-9);
    assert_true(fabs(s.mem_used_pct - 10.0) < 1e-9);
    assert_true(fabs(s.load1 - 2.5) < 1e-9);
    /* garbage in stat: the sample says so, the source survives */
    write_file(tmpl, "stat", "\x01\x02 garbage");
    assert_int_equal(agent_load_sample(l, 3000, &s), -1);
    assert_false(s.valid);
    assert_non_null(strstr(s.error, "stat"));
    agent_load_free(l);
    remove_dir(tmpl);

    /* no /proc at all */
    l = agent_load_new("proc", "/nonexistent-proc-root", err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(agent_load_sample(l, 1000, &s), -1);
    assert_non_null(strstr(s.error, "cannot read"));
    assert_true(s.mem_used_pct < 0 && s.load1 < 0);
    agent_load_free(l);
}

static void file_source_follows_the_file(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/test_agent_file_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char spec[512], err[256], fix[400];
    fixture_dir(fix, sizeof(fix));
    snprintf(spec, sizeof(spec), "file:%s/load", tmpl);
    struct agent_load *l = agent_load_new(spec, fix, err, sizeof(err));
    assert_non_null(l);
    assert_true(agent_load_interval_ms(l) <= 1000);
    struct agent_sample s;
    /* missing file: the metric says so */
    assert_int_equal(agent_load_sample(l, 0, &s), -1);
    assert_false(s.valid);
    assert_non_null(strstr(s.error, "cannot read load file"));
    assert_true(fabs(s.mem_used_pct - 25.0) < 1e-9); /* memory still from the proc root */
    write_file(tmpl, "load", "42\n");
    assert_int_equal(agent_load_sample(l, 500, &s), 0);
    assert_true(s.load == 42 && s.cpu_load == 42);
    write_file(tmpl, "load", "73.5");
    assert_int_equal(agent_load_sample(l, 1000, &s), 0);
    assert_true(s.load == 73.5);
    write_file(tmpl, "load",
               "lots of garbage that is not a number at all, and long, very long....");
    assert_int_equal(agent_load_sample(l, 1500, &s), -1);
    assert_non_null(strstr(s.error, "does not hold a number"));
    write_file(tmpl, "load", "7");
    assert_int_equal(agent_load_sample(l, 2000, &s), 0);
    assert_true(s.load == 7);
    agent_load_free(l);
    remove_dir(tmpl);
}

static void bad_specs_are_refused(void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {"cpu",
                         "file:",
                         "simulate:min=50,max=40",
                         "simulate:max=101",
                         "simulate:rate=0",
                         "simulate:period=10ms",
                         "simulate:bogus=1",
                         "simulate:min",
                         "simulate:min=abc",
                         "simulate:seed=-1",
                         "procfoo"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(agent_load_new(bad[i], NULL, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    struct agent_load *l = agent_load_new(NULL, NULL, err, sizeof(err)); /* default: proc */
    assert_non_null(l);
    agent_load_free(l);
    agent_load_free(NULL);
    struct agent_sim_params p;
    assert_int_equal(
        agent_sim_parse("min=20,max=60,period=2m,rate=0.5,seed=9", &p, err, sizeof(err)), 0);
    assert_true(p.min == 20 && p.max == 60 && p.period_ms == 120000 && p.max_rate == 0.5 &&
                p.seed == 9);
}

/* --- simulation ------------------------------------------------------------ */

static void check_sim(const struct agent_sim_params *p, int irregular, int must_span)
{
    struct agent_sim s;
    agent_sim_init(&s, p);
    uint64_t rng = 12345;
    int64_t t = 5000;
    double prev = agent_sim_step(&s, t);
    double lo = prev, hi = prev;
    int64_t end = t + 4 * p->period_ms;
    while (t < end) {
        int64_t dt = 100;
        if (irregular) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            dt = (int64_t)((rng >> 33) % 5000); /* 0..5 s, including zero */
        }
        t += dt;
        double v = agent_sim_step(&s, t);
        assert_true(v >= p->min - 1e-9 && v <= p->max + 1e-9);
        assert_true(fabs(v - prev) <= p->max_rate * (double)dt / 1000.0 + 1e-9);
        prev = v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* it really moves: over four periods it spans at least half its range */
    if (must_span)
        assert_true(hi - lo >= (p->max - p->min) / 2);
    else
        assert_true(hi - lo > 0);
    /* time going backwards does not move it */
    assert_true(agent_sim_step(&s, t - 10000) == prev);
}

static void simulated_load_is_bounded_per_second(void **state)
{
    (void)state;
    struct agent_sim_params p = {10, 90, 600000, 2.0, 1};
    check_sim(&p, 0, 1);
    check_sim(&p, 1, 1);
    struct agent_sim_params fast = {0, 100, 60000, 5.0, 99};
    check_sim(&fast, 0, 1);
    check_sim(&fast, 1, 1);
    struct agent_sim_params slow = {40, 60, 20000, 0.1, 7}; /* the rate binds all the time */
    check_sim(&slow, 1, 0);

    /* the source wraps it */
    char err[256];
    struct agent_load *l =
        agent_load_new("simulate:min=30,max=40,rate=1,seed=3", "/nonexistent", err, sizeof(err));
    assert_non_null(l);
    struct agent_sample s;
    assert_int_equal(agent_load_sample(l, 0, &s), 0);
    double prev = s.load;
    for (int64_t t = 250; t <= 60000; t += 250) {
        assert_int_equal(agent_load_sample(l, t, &s), 0);
        assert_true(s.load >= 30 && s.load <= 40);
        assert_true(fabs(s.load - prev) <= 0.25 + 1e-9);
        prev = s.load;
    }
    agent_load_free(l);
}

/* --- backoff --------------------------------------------------------------- */

static void backoff_grows_with_jitter_and_caps(void **state)
{
    (void)state;
    struct agent_backoff b;
    agent_backoff_init(&b, 500, 30000);
    int64_t ceil = 500;
    for (int i = 0; i < 40; i++) {
        int64_t lo = agent_backoff_next(&b, 0);
        b.attempt--; /* same attempt again, other end of the jitter */
        int64_t hi = agent_backoff_next(&b, UINT64_MAX - 1);
        assert_true(lo >= ceil / 2 && lo <= ceil);
        assert_true(hi >= ceil / 2 && hi <= ceil);
        assert_true(lo >= 1);
        ceil = ceil * 2 > 30000 ? 30000 : ceil * 2;
    }
    /* jitter spreads agents out */
    agent_backoff_reset(&b);
    for (int i = 0; i < 5; i++)
        agent_backoff_next(&b, 0);
    int64_t a1 = agent_backoff_next(&b, 1), a2;
    b.attempt--;
    a2 = agent_backoff_next(&b, 7777);
    assert_true(a1 != a2);
    agent_backoff_reset(&b);
    assert_true(agent_backoff_next(&b, 123) <= 500);
    /* degenerate parameters stay sane */
    agent_backoff_init(&b, 0, 0);
    for (int i = 0; i < 2000; i++)
        assert_true(agent_backoff_next(&b, (uint64_t)i * 977) >= 1);
}

/* --- registration against a MonitorS stand-in ------------------------------ */

struct standin {
    pthread_mutex_t mu;
    int registers, deregisters;
    int refuse_first; /* answer accepted=false to this many Registers */
    int hold_first;   /* then hold this many (accepted=false, retry_after_ms) */
    int unavailable_first;
    char last_id[64], last_addr[64], last_token[64], last_reason[64], last_version[32];
    struct rpc_server *srv;
    char target[64];
};

static grpc_status_code s_register(void *ctx, const struct rpc_request *req,
                                   struct rpc_reply *reply)
{
    struct standin *s = ctx;
    RegisterRequest *rq = register_request__unpack(NULL, req->len, req->data);
    if (!rq)
        return GRPC_STATUS_INVALID_ARGUMENT;
    pthread_mutex_lock(&s->mu);
    s->registers++;
    snprintf(s->last_id, sizeof(s->last_id), "%s", rq->instance_id);
    snprintf(s->last_addr, sizeof(s->last_addr), "%s", rq->address);
    snprintf(s->last_token, sizeof(s->last_token), "%s", rq->token);
    snprintf(s->last_version, sizeof(s->last_version), "%s", rq->agent_version);
    int unavailable = s->unavailable_first > 0;
    if (unavailable)
        s->unavailable_first--;
    int refuse = !unavailable && s->refuse_first > 0;
    if (refuse)
        s->refuse_first--;
    int hold = !unavailable && !refuse && s->hold_first > 0;
    if (hold)
        s->hold_first--;
    pthread_mutex_unlock(&s->mu);
    register_request__free_unpacked(rq, NULL);
    if (unavailable) {
        snprintf(reply->details, sizeof(reply->details), "starting up");
        return GRPC_STATUS_UNAVAILABLE;
    }
    RegisterReply rp = REGISTER_REPLY__INIT;
    rp.accepted = !refuse && !hold;
    rp.message = refuse ? "unknown instance" : hold ? "held: a launch is in flight" : "registered";
    rp.poll_interval_ms = 100;
    rp.retry_after_ms = hold ? 50 : 0;
    return rpc_reply_pack(reply, &rp.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static grpc_status_code s_deregister(void *ctx, const struct rpc_request *req,
                                     struct rpc_reply *reply)
{
    struct standin *s = ctx;
    DeregisterRequest *rq = deregister_request__unpack(NULL, req->len, req->data);
    if (!rq)
        return GRPC_STATUS_INVALID_ARGUMENT;
    pthread_mutex_lock(&s->mu);
    s->deregisters++;
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", rq->reason);
    snprintf(s->last_token, sizeof(s->last_token), "%s", rq->token);
    pthread_mutex_unlock(&s->mu);
    deregister_request__free_unpacked(rq, NULL);
    DeregisterReply rp = DEREGISTER_REPLY__INIT;
    rp.ok = 1;
    return rpc_reply_pack(reply, &rp.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static void standin_start(struct standin *s, int port)
{
    s->srv = rpc_server_new(NULL);
    assert_non_null(s->srv);
    assert_int_equal(rpc_server_add_method(s->srv, "/MonitorS/Register", s_register, s), 0);
    assert_int_equal(rpc_server_add_method(s->srv, "/MonitorS/Deregister", s_deregister, s), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    int bound = 0;
    assert_int_equal(rpc_server_bind(s->srv, addr, &bound), 0);
    snprintf(s->target, sizeof(s->target), "127.0.0.1:%d", bound);
    assert_int_equal(rpc_server_start(s->srv), 0);
}

static void standin_stop(struct standin *s)
{
    rpc_server_shutdown(s->srv, 0);
    rpc_server_free(s->srv);
    s->srv = NULL;
}

static int counter(struct standin *s, int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static int wait_for(struct standin *s, int *field, int want, int64_t ms)
{
    int64_t end = clk_mono_ms() + ms;
    while (counter(s, field) < want && clk_mono_ms() < end)
        usleep(20000);
    return counter(s, field) >= want;
}

static int port_of(const char *target)
{
    const char *colon = strrchr(target, ':');
    assert_non_null(colon);
    long p = strtol(colon + 1, NULL, 10);
    assert_true(p > 0 && p < 65536);
    return (int)p;
}

/* whether r is registered within ms (checked every 10 ms) */
static int registered_within(struct agent_reg *r, int ms)
{
    int64_t end = clk_mono_ms() + ms;
    while (!agent_reg_registered(r) && clk_mono_ms() < end)
        usleep(10000);
    return agent_reg_registered(r);
}

static void registers_with_retry_and_deregisters(void **state)
{
    (void)state;
    struct standin s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    s.unavailable_first = 2;
    s.refuse_first = 1;
    standin_start(&s, 0);
    struct agent_state *st = agent_state_new("i-unit");
    struct agent_reg_opts o = {0};
    o.monitor = s.target;
    o.address = "127.0.0.9:5555";
    o.token = "s3cret";
    o.backoff_base_ms = 20;
    o.backoff_cap_ms = 100;
    o.refresh_ms = 600000;
    o.silence_ms = 600000;
    struct agent_reg *r = agent_reg_start(&o, st);
    assert_non_null(r);
    /* two UNAVAILABLE, one refusal, then accepted */
    assert_true(wait_for(&s, &s.registers, 4, 10000));
    assert_true(registered_within(r, 5000));
    assert_int_equal(agent_reg_attempts(r), 4);
    assert_string_equal(s.last_id, "i-unit");
    assert_string_equal(s.last_addr, "127.0.0.9:5555");
    assert_string_equal(s.last_token, "s3cret");
    assert_true(s.last_version[0] != '\0');
    usleep(200000);
    assert_int_equal(counter(&s, &s.registers), 4); /* registered: no more calls */
    assert_int_equal(agent_reg_stop(r, "unit test", 2000), 0);
    assert_int_equal(counter(&s, &s.deregisters), 1);
    assert_string_equal(s.last_reason, "unit test");
    standin_stop(&s);
    agent_state_free(st);
    pthread_mutex_destroy(&s.mu);
}

/* A held registration (asgd has not recorded this instance's launch yet) is asked again after
   the time MonitorS said, not after the backoff of a failure: with a backoff of 20 s, five holds
   and then an acceptance take well under a second. */
static void held_registration_retried_without_backoff(void **state)
{
    (void)state;
    struct standin s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    s.hold_first = 5;
    standin_start(&s, 0);
    struct agent_state *st = agent_state_new("i-early");
    struct agent_reg_opts o = {0};
    o.monitor = s.target;
    o.address = "127.0.0.9:5558";
    o.backoff_base_ms = 20000;
    o.backoff_cap_ms = 20000;
    o.refresh_ms = 600000;
    o.silence_ms = 600000;
    struct agent_reg *r = agent_reg_start(&o, st);
    assert_non_null(r);
    assert_true(registered_within(r, 8000)); /* a failure's first backoff is 10..20 s */
    assert_int_equal(agent_reg_attempts(r), 6);
    assert_int_equal(agent_reg_stop(r, "bye", 2000), 0);
    standin_stop(&s);
    agent_state_free(st);
    pthread_mutex_destroy(&s.mu);
}

static void reregisters_after_monitor_restart(void **state)
{
    (void)state;
    struct standin s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    standin_start(&s, 0);
    int port = port_of(s.target);
    struct agent_state *st = agent_state_new("i-restart");
    struct agent_reg_opts o = {0};
    o.monitor = s.target;
    o.address = "127.0.0.9:5556";
    o.backoff_base_ms = 20;
    o.backoff_cap_ms = 200;
    o.refresh_ms = 600000;
    o.silence_ms = 300; /* nobody polls in this test: register again after 300 ms */
    struct agent_reg *r = agent_reg_start(&o, st);
    assert_non_null(r);
    assert_true(wait_for(&s, &s.registers, 1, 5000));
    /* MonitorS goes away and comes back empty on the same port */
    standin_stop(&s);
    usleep(500000);
    s.registers = 0;
    standin_start(&s, port);
    assert_true(wait_for(&s, &s.registers, 1, 10000));
    assert_int_equal(agent_reg_stop(r, "bye", 2000), 0);
    standin_stop(&s);
    agent_state_free(st);
    pthread_mutex_destroy(&s.mu);
}

static void monitor_down_all_along(void **state)
{
    (void)state;
    struct agent_state *st = agent_state_new("i-alone");
    struct agent_reg_opts o = {0};
    o.monitor = "127.0.0.1:1";
    o.address = "127.0.0.9:5557";
    o.backoff_base_ms = 10;
    o.backoff_cap_ms = 50;
    struct agent_reg *r = agent_reg_start(&o, st);
    assert_non_null(r);
    int64_t end = clk_mono_ms() + 5000;
    while (agent_reg_attempts(r) < 3 && clk_mono_ms() < end)
        usleep(10000);
    assert_true(agent_reg_attempts(r) >= 3);
    assert_false(agent_reg_registered(r));
    /* never registered: nothing to deregister */
    assert_int_equal(agent_reg_stop(r, "bye", 500), 1);
    assert_int_equal(agent_reg_stop(NULL, "bye", 500), 1);
    assert_null(agent_reg_start(NULL, st));
    agent_state_free(st);
}

/* ---- drain command and MonitorC/Lifecycle (issue 12) ---------------------------------------- */

/* The drain state once it left "running" (or after timeout_ms). */
static int drain_wait(struct agent_drain *d, char *detail, size_t len, int64_t timeout_ms)
{
    int64_t end = clk_mono_ms() + timeout_ms;
    int s;
    while ((s = agent_drain_state(d, detail, len)) == AGENT_DRAIN_RUNNING && clk_mono_ms() < end)
        usleep(10000);
    return s;
}

static void drain_command_outcomes(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-drain-XXXXXX", cmd[256], file[128], detail[160];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/drained", dir);
    snprintf(cmd, sizeof(cmd), "sleep 0.2; echo drained > %s", file);
    struct agent_state *st = agent_state_new("i-drain");
    struct agent_drain *d = agent_drain_new(cmd, 0, st);
    assert_int_equal(agent_drain_state(d, detail, sizeof(detail)), AGENT_DRAIN_NONE);
    agent_drain_start(d);
    agent_drain_start(d); /* once only */
    assert_int_equal(drain_wait(d, detail, sizeof(detail), 5000), AGENT_DRAIN_DONE);
    assert_int_equal(access(file, F_OK), 0);
    agent_drain_free(d);
    /* a failing command says how it failed */
    d = agent_drain_new("exit 7", 0, st);
    agent_drain_start(d);
    assert_int_equal(drain_wait(d, detail, sizeof(detail), 5000), AGENT_DRAIN_FAILED);
    assert_non_null(strstr(detail, "exit status 7"));
    agent_drain_free(d);
    /* --drain-timeout kills the command's whole process group */
    d = agent_drain_new("sleep 30 & sleep 30", 200, st);
    int64_t t0 = clk_mono_ms();
    agent_drain_start(d);
    assert_int_equal(drain_wait(d, detail, sizeof(detail), 5000), AGENT_DRAIN_FAILED);
    assert_true(clk_mono_ms() - t0 < 3000);
    assert_non_null(strstr(detail, "timed out"));
    agent_drain_free(d);
    agent_state_free(st);
    unlink(file);
    rmdir(dir);
}

/* asgd's call: terminating:wait starts the drain and marks the agent draining (GetMetrics). */
static void lifecycle_rpc_starts_the_drain(void **state)
{
    (void)state;
    struct agent_state *st = agent_state_new("i-life");
    struct agent_drain *d = agent_drain_new("sleep 0.3", 0, st);
    agent_state_set_drain(st, d);
    struct rpc_server *srv = rpc_server_new(NULL);
    assert_non_null(srv);
    assert_int_equal(agent_service_register(srv, st), 0);
    int port = 0;
    assert_int_equal(rpc_server_bind(srv, "127.0.0.1:0", &port), 0);
    assert_int_equal(rpc_server_start(srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    const char *states[] = {"", "terminating:wait"};
    const char *want[] = {"none", "running"};
    for (int k = 0; k < 2; k++) {
        LifecycleRequest rq = LIFECYCLE_REQUEST__INIT;
        rq.state = (char *)states[k];
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(rpc_pack(&rq.base, &buf, &len), 0);
        struct rpc_result res = RPC_RESULT_INIT;
        assert_int_equal(rpc_call_sync(target, "/MonitorC/Lifecycle", buf, len, 5000, &res), 0);
        free(buf);
        assert_int_equal(res.status, GRPC_STATUS_OK);
        LifecycleReply *r = lifecycle_reply__unpack(NULL, res.len, res.data);
        assert_non_null(r);
        assert_string_equal(r->drain, want[k]);
        assert_string_equal(r->instance_id, "i-life");
        assert_int_equal(r->pid, getpid());
        lifecycle_reply__free_unpacked(r, NULL);
        rpc_result_release(&res);
    }
    MetricsRequest mq = METRICS_REQUEST__INIT;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(rpc_pack(&mq.base, &buf, &len), 0);
    struct rpc_result res = RPC_RESULT_INIT;
    assert_int_equal(rpc_call_sync(target, "/MonitorC/GetMetrics", buf, len, 5000, &res), 0);
    free(buf);
    Metrics *m = metrics__unpack(NULL, res.len, res.data);
    assert_non_null(m);
    assert_true(m->draining);
    metrics__free_unpacked(m, NULL);
    rpc_result_release(&res);
    char detail[160];
    assert_int_equal(drain_wait(d, detail, sizeof(detail), 5000), AGENT_DRAIN_DONE);
    rpc_server_shutdown(srv, 500);
    rpc_server_free(srv);
    agent_drain_free(d);
    agent_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_fixture_files),
        cmocka_unit_test(drain_command_outcomes),
        cmocka_unit_test(lifecycle_rpc_starts_the_drain),
        cmocka_unit_test(rejects_hostile_proc_text),
        cmocka_unit_test(proc_source_uses_deltas),
        cmocka_unit_test(file_source_follows_the_file),
        cmocka_unit_test(bad_specs_are_refused),
        cmocka_unit_test(simulated_load_is_bounded_per_second),
        cmocka_unit_test(backoff_grows_with_jitter_and_caps),
        cmocka_unit_test(registers_with_retry_and_deregisters),
        cmocka_unit_test(held_registration_retried_without_backoff),
        cmocka_unit_test(reregisters_after_monitor_restart),
        cmocka_unit_test(monitor_down_all_along),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
