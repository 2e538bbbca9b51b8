/*
 * Tests of the monitor against real gRPC: a real fleet table (a shared-memory
 * segment named after the pid), real agents served by rpc.h on ephemeral
 * loopback ports inside this process (a new-protocol agent answering
 * GetMetrics, a seed agent answering only GetStatus/GetMemoryUsage, a stuck
 * one that accepts TCP and never speaks HTTP/2), and MonitorS called over
 * gRPC with rpc_call_sync(). Polls are driven with mon_poll_once() so that
 * results are deterministic; one test runs the real poller thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "fleet/fleet.h"
#include "monitor.pb-c.h"
#include "monitor/mon.h"
#include "rpc/rpc.h"
#include "common/banned.h"

#define TOKEN "t0ken-for-tests"

/* --- fake agents ------------------------------------------------------------------------ */

struct agent {
    struct rpc_server *srv;
    int port;
    char address[64];
    char id[64];       /* what GetMetrics answers as instance_id */
    int seed;          /* only GetStatus / GetMemoryUsage */
    atomic_int app_ok; /* GetStatus "OK" / Metrics.app_healthy */
    atomic_int load;   /* percent */
    atomic_int calls;
    int delay_ms; /* GetMetrics sleeps this long */
};

/* calls being answered right now across all fake agents, and the most ever seen */
static atomic_int busy_now, busy_peak;

static grpc_status_code h_metrics(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    struct agent *a = ctx;
    (void)req;
    atomic_fetch_add(&a->calls, 1);
    if (a->delay_ms) {
        int now = atomic_fetch_add(&busy_now, 1) + 1;
        int peak = atomic_load(&busy_peak);
        while (now > peak && !atomic_compare_exchange_weak(&busy_peak, &peak, now))
            ;
        usleep((useconds_t)a->delay_ms * 1000);
        atomic_fetch_sub(&busy_now, 1);
    }
    Metrics m = METRICS__INIT;
    m.instance_id = a->id;
    m.cpu_load = atomic_load(&a->load);
    m.mem_used_pct = 33.5;
    m.load1 = 0.25;
    m.app_healthy = atomic_load(&a->app_ok) != 0;
    return rpc_reply_pack(reply, &m.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static grpc_status_code h_status(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    struct agent *a = ctx;
    atomic_fetch_add(&a->calls, 1);
    Request *in = request__unpack(NULL, req->len, req->data);
    if (!in)
        return GRPC_STATUS_INVALID_ARGUMENT;
    request__free_unpacked(in, NULL);
    StatusResponse r = STATUS_RESPONSE__INIT;
    r.status = atomic_load(&a->app_ok) ? "OK" : "NOT OK";
    return rpc_reply_pack(reply, &r.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static grpc_status_code h_memory(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    struct agent *a = ctx;
    (void)req;
    atomic_fetch_add(&a->calls, 1);
    MemoryUsageResponse r = MEMORY_USAGE_RESPONSE__INIT;
    r.usage = atomic_load(&a->load);
    return rpc_reply_pack(reply, &r.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

/* Starts (or restarts, on a->port if set) the agent's server. */
static void agent_start(struct agent *a)
{
    a->srv = rpc_server_new(NULL);
    assert_non_null(a->srv);
    assert_int_equal(rpc_server_add_method(a->srv, "/MonitorC/GetStatus", h_status, a), 0);
    assert_int_equal(rpc_server_add_method(a->srv, "/MonitorC/GetMemoryUsage", h_memory, a), 0);
    if (!a->seed)
        assert_int_equal(rpc_server_add_method(a->srv, "/MonitorC/GetMetrics", h_metrics, a), 0);
    char bind[64];
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", a->port);
    int port = 0;
    assert_int_equal(rpc_server_bind(a->srv, bind, &port), 0);
    if (a->port)
        assert_int_equal(port, a->port);
    a->port = port;
    snprintf(a->address, sizeof(a->address), "127.0.0.1:%d", port);
    assert_int_equal(rpc_server_start(a->srv), 0);
}

static struct agent *agent_new(const char *id, int seed, int load)
{
    struct agent *a = calloc(1, sizeof(*a));
    assert_non_null(a);
    snprintf(a->id, sizeof(a->id), "%s", id);
    a->seed = seed;
    atomic_init(&a->app_ok, 1);
    atomic_init(&a->load, load);
    atomic_init(&a->calls, 0);
    agent_start(a);
    return a;
}

static void agent_kill(struct agent *a)
{
    rpc_server_shutdown(a->srv, 0);
    rpc_server_free(a->srv);
    a->srv = NULL;
}

static void agent_free(struct agent *a)
{
    if (!a)
        return;
    if (a->srv)
        agent_kill(a);
    free(a);
}

/* --- fixture ---------------------------------------------------------------------------- */

struct fx {
    char name[64];
    struct fleet *f;
    struct mon *m;
};

static struct fx *fx_new(const char *tag, struct mon_settings *s)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    snprintf(x->name, sizeof(x->name), "montest-%s-%d", tag, (int)getpid());
    (void)fleet_unlink(x->name);
    assert_int_equal(fleet_open(x->name, 32, 1, &x->f), 0);
    char err[256] = "";
    int rc = mon_new(s, x->f, &x->m, err, sizeof(err));
    if (rc)
        fail_msg("mon_new: %s", err);
    return x;
}

static void fx_free(struct fx *x)
{
    mon_free(x->m);
    fleet_close(x->f);
    (void)fleet_unlink(x->name);
    free(x);
}

static struct mon_settings poll_settings(void)
{
    struct mon_settings s;
    mon_settings_init(&s);
    s.listen = NULL; /* poller only */
    s.token = TOKEN;
    s.interval_ms = 2000;
    s.timeout_ms = 1000;
    s.rise = 2;
    s.fall = 3;
    return s;
}

static uint32_t add_slot(struct fx *x, const char *id, const char *address)
{
    uint32_t idx = 0;
    assert_int_equal(fleet_alloc(x->f, id, address, clk_wall_ms(), &idx), 0);
    return idx;
}

static struct fleet_slot slot_of(struct fx *x, uint32_t idx)
{
    struct fleet_slot s;
    assert_int_equal(fleet_read(x->f, idx, &s), 0);
    return s;
}

/* --- settings --------------------------------------------------------------------------- */

static void rejects_bad_settings(void **state)
{
    (void)state;
    struct fleet *f = NULL;
    char name[64];
    snprintf(name, sizeof(name), "montest-set-%d", (int)getpid());
    (void)fleet_unlink(name);
    assert_int_equal(fleet_open(name, 4, 1, &f), 0);
    struct mon_settings s = poll_settings();
    struct mon *m = NULL;
    char err[256] = "";
    s.interval_ms = 0;
    assert_int_equal(mon_new(&s, f, &m, err, sizeof(err)), MON_EINVAL);
    assert_non_null(strstr(err, "interval"));
    assert_null(m);
    s = poll_settings();
    s.rise = 0;
    assert_int_equal(mon_new(&s, f, &m, err, sizeof(err)), MON_EINVAL);
    s = poll_settings();
    s.timeout_ms = 0;
    assert_int_equal(mon_new(&s, f, &m, err, sizeof(err)), MON_EINVAL);
    /* no table: a monitor of the groups added later */
    s = poll_settings();
    assert_int_equal(mon_new(&s, NULL, &m, err, sizeof(err)), 0);
    mon_free(m);
    m = NULL;
    mon_free(NULL);
    mon_stop(NULL);
    /* an address nobody can bind */
    s = poll_settings();
    s.listen = "256.1.1.1:1";
    assert_int_equal(mon_new(&s, f, &m, err, sizeof(err)), 0);
    assert_int_equal(mon_start(m), MON_ELISTEN);
    assert_non_null(strstr(mon_errmsg(m), "256.1.1.1:1"));
    mon_free(m);
    fleet_close(f);
    (void)fleet_unlink(name);
}

/* --- polling ---------------------------------------------------------------------------- */

static void healthy_after_rise_unhealthy_after_fall(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    struct fx *x = fx_new("rise", &s);
    struct agent *a = agent_new("i-1", 0, 42);
    uint32_t idx = add_slot(x, "i-1", a->address);

    assert_int_equal(mon_poll_once(x->m), 1);
    struct fleet_slot sl = slot_of(x, idx);
    assert_int_equal(sl.health, FLEET_HEALTH_UNKNOWN);
    assert_int_equal(sl.consecutive_ok, 1);
    assert_true(sl.last_seen_ms > 0);
    assert_int_equal(mon_poll_once(x->m), 1);
    sl = slot_of(x, idx);
    assert_int_equal(sl.health, FLEET_HEALTH_HEALTHY);
    assert_true(sl.load == 42.0);
    assert_true(sl.mem_pct == 33.5);
    assert_true(sl.load1 == 0.25);
    assert_int_equal(sl.app_healthy, 1);
    assert_int_equal(sl.seed_protocol, 0);
    assert_int_equal(sl.polls_ok, 2);
    assert_true(sl.last_rtt_us > 0);

    /* the agent dies: fall - 1 failures keep it healthy, the fall-th makes it unhealthy */
    agent_kill(a);
    assert_int_equal(mon_poll_once(x->m), 1);
    assert_int_equal(mon_poll_once(x->m), 1);
    sl = slot_of(x, idx);
    assert_int_equal(sl.health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(sl.consecutive_fail, 2);
    assert_int_equal(mon_poll_once(x->m), 1);
    sl = slot_of(x, idx);
    assert_int_equal(sl.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(sl.polls_failed, 3);
    assert_true(sl.load == 42.0); /* the last known load stays */

    /* restarted on the same port: healthy again once the channel reconnects */
    agent_start(a);
    int rounds = 0;
    do {
        usleep(100 * 1000);
        assert_int_equal(mon_poll_once(x->m), 1);
        sl = slot_of(x, idx);
    } while (sl.health != FLEET_HEALTH_HEALTHY && ++rounds < 100);
    assert_int_equal(sl.health, FLEET_HEALTH_HEALTHY);
    assert_true(sl.consecutive_ok >= 2);

    agent_free(a);
    fx_free(x);
}

static void unhealthy_app_and_wrong_instance_fail(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    s.rise = 1;
    s.fall = 1;
    struct fx *x = fx_new("app", &s);
    struct agent *a = agent_new("i-app", 0, 10);
    struct agent *b = agent_new("i-somebody-else", 0, 10);
    uint32_t ia = add_slot(x, "i-app", a->address);
    uint32_t ib = add_slot(x, "i-b", b->address);

    assert_int_equal(mon_poll_once(x->m), 2);
    assert_int_equal(slot_of(x, ia).health, FLEET_HEALTH_HEALTHY);
    /* an agent answering with another instance's id is not the instance we want */
    assert_int_equal(slot_of(x, ib).health, FLEET_HEALTH_UNHEALTHY);

    atomic_store(&a->app_ok, 0);
    atomic_store(&a->load, 77);
    assert_int_equal(mon_poll_once(x->m), 2);
    struct fleet_slot sl = slot_of(x, ia);
    assert_int_equal(sl.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(sl.app_healthy, 0);
    assert_true(sl.load == 77.0); /* the agent answered: its load is still recorded */

    atomic_store(&a->app_ok, 1);
    assert_int_equal(mon_poll_once(x->m), 2);
    assert_int_equal(slot_of(x, ia).health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(slot_of(x, ia).app_healthy, 1);

    /* an agent that cannot measure its load (cpu_load -1) is alive, its load unknown */
    atomic_store(&a->load, -1);
    assert_int_equal(mon_poll_once(x->m), 2);
    sl = slot_of(x, ia);
    assert_int_equal(sl.health, FLEET_HEALTH_HEALTHY);
    assert_true(sl.load < 0);
    atomic_store(&a->load, 250); /* out of range: clamped */
    assert_int_equal(mon_poll_once(x->m), 2);
    assert_true(slot_of(x, ia).load == 100.0);

    agent_free(a);
    agent_free(b);
    fx_free(x);
}

static void seed_agent_through_seed_methods(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    struct fx *x = fx_new("seed", &s);
    struct agent *a = agent_new("i-seed", 1, 64);
    uint32_t idx = add_slot(x, "i-seed", a->address);

    assert_int_equal(mon_poll_once(x->m), 1);
    /* GetMetrics (UNIMPLEMENTED), then GetStatus and GetMemoryUsage */
    assert_int_equal(atomic_load(&a->calls), 2);
    assert_int_equal(mon_poll_once(x->m), 1);
    assert_int_equal(atomic_load(&a->calls), 4); /* remembered: no GetMetrics any more */
    struct fleet_slot sl = slot_of(x, idx);
    assert_int_equal(sl.seed_protocol, 1);
    assert_int_equal(sl.health, FLEET_HEALTH_HEALTHY);
    assert_true(sl.load == 64.0);

    /* "NOT OK" is a failed check */
    atomic_store(&a->app_ok, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mon_poll_once(x->m), 1);
    sl = slot_of(x, idx);
    assert_int_equal(sl.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(sl.app_healthy, 0);
    assert_int_equal(sl.seed_protocol, 1);

    agent_free(a);
    fx_free(x);
}

/* --- a seed agent in Python (grpcio, GetStatus + GetMemoryUsage only) ---------------------- */

extern char **environ;

struct pyagent {
    pid_t pid;
    int in_fd; /* its stdin: closing it stops the agent */
    int port;
};

static void pyagent_start(struct pyagent *pa, int load)
{
    const char *src = getenv("ASGD_SOURCE_DIR");
    const char *bld = getenv("ASGD_BUILD_DIR");
    char script[1024], pypath[1100], loadarg[16];
    snprintf(script, sizeof(script), "%s/tests/tools/seed_agent.py", src ? src : "..");
    snprintf(pypath, sizeof(pypath), "PYTHONPATH=%s/gen/py", bld ? bld : "../build");
    snprintf(loadarg, sizeof(loadarg), "%d", load);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {"/usr/bin/python3", script, "--load", loadarg, NULL};
    char *envp[] = {pypath, "PATH=/usr/bin:/bin", NULL};
    assert_int_equal(posix_spawn(&pa->pid, argv[0], &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    pa->in_fd = in[1];
    char line[32] = "";
    size_t n = 0;
    while (n + 1 < sizeof(line)) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    pa->port = (int)strtol(line, NULL, 10);
    if (pa->port <= 0)
        fail_msg("seed_agent.py did not start (output \"%s\")", line);
}

static void pyagent_kill(struct pyagent *pa)
{
    if (pa->pid > 0) {
        kill(pa->pid, SIGKILL);
        waitpid(pa->pid, NULL, 0);
        pa->pid = 0;
    }
    if (pa->in_fd >= 0)
        close(pa->in_fd);
    pa->in_fd = -1;
}

static void python_seed_agent(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    s.timeout_ms = 1000; /* a Python process on a busy machine */
    s.interval_ms = 1000;
    struct fx *x = fx_new("py", &s);
    struct pyagent pa = {0, -1, 0};
    pyagent_start(&pa, 58);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", pa.port);
    uint32_t idx = add_slot(x, "i-py", addr);

    assert_int_equal(mon_poll_once(x->m), 1);
    assert_int_equal(mon_poll_once(x->m), 1);
    struct fleet_slot sl = slot_of(x, idx);
    assert_int_equal(sl.seed_protocol, 1);
    assert_int_equal(sl.health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(sl.app_healthy, 1);
    assert_true(sl.load == 58.0);

    /* kill -9 of the agent process: unhealthy after fall polls */
    pyagent_kill(&pa);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mon_poll_once(x->m), 1);
    sl = slot_of(x, idx);
    assert_int_equal(sl.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(sl.consecutive_fail, 3);
    fx_free(x);
}

/* A TCP listener that never answers: connections hang in the HTTP/2 handshake. */
static int stuck_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t l = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void stuck_agent_does_not_hold_others(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    s.rise = 1;
    s.fall = 1;
    struct fx *x = fx_new("stuck", &s);
    int port = 0;
    int fd = stuck_listener(&port);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct agent *a = agent_new("i-fine", 0, 5);
    uint32_t istuck = add_slot(x, "i-stuck", addr);
    uint32_t ifine = add_slot(x, "i-fine", a->address);
    /* an address with nothing behind it at all */
    uint32_t idown = add_slot(x, "i-down", "127.0.0.1:1");

    assert_int_equal(mon_poll_once(x->m), 3);
    struct fleet_slot st = slot_of(x, istuck);
    assert_int_equal(st.health, FLEET_HEALTH_UNHEALTHY);
    assert_int_equal(st.polls_failed, 1);
    assert_int_equal(slot_of(x, ifine).health, FLEET_HEALTH_HEALTHY);
    assert_int_equal(slot_of(x, idown).health, FLEET_HEALTH_UNHEALTHY);

    close(fd);
    agent_free(a);
    fx_free(x);
}

static void membership_changes_are_followed(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    struct fx *x = fx_new("members", &s);
    struct agent *a = agent_new("i-a", 0, 1);
    struct agent *b = agent_new("i-b", 0, 2);

    assert_int_equal(mon_poll_once(x->m), 0); /* empty table */
    uint32_t ia = add_slot(x, "i-a", a->address);
    uint32_t inoaddr = add_slot(x, "i-b", ""); /* address not known yet: not polled */
    assert_int_equal(mon_poll_once(x->m), 1);
    struct fleet_slot sl = slot_of(x, ia);
    assert_int_equal(fleet_free(x->f, ia, sl.generation), 0);
    assert_int_equal(mon_poll_once(x->m), 0);
    assert_int_equal(slot_of(x, inoaddr).polls_ok + slot_of(x, inoaddr).polls_failed, 0);
    /* the slot of i-a reused by another instance: a new target with the new address */
    uint32_t ic = add_slot(x, "i-b2", b->address);
    (void)ic;
    assert_int_equal(mon_poll_once(x->m), 1);

    agent_free(a);
    agent_free(b);
    fx_free(x);
}

static void max_inflight_caps_concurrency(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    s.max_inflight = 1;
    struct fx *x = fx_new("cap", &s);
    struct agent *ag[3];
    uint32_t idx[3];
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "i-cap%d", i);
        ag[i] = agent_new(id, 0, 10 + i);
        ag[i]->delay_ms = 30;
        idx[i] = add_slot(x, id, ag[i]->address);
    }
    atomic_store(&busy_now, 0);
    atomic_store(&busy_peak, 0);
    assert_int_equal(mon_poll_once(x->m), 3);
    assert_int_equal(atomic_load(&busy_peak), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(slot_of(x, idx[i]).polls_ok, 1);
        assert_int_equal(atomic_load(&ag[i]->calls), 1);
        agent_free(ag[i]);
    }
    fx_free(x);
}

static void counts_stats(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    struct fx *x = fx_new("stats", &s);
    struct agent *a = agent_new("i-st", 0, 10);
    add_slot(x, "i-st", a->address);
    add_slot(x, "i-st-down", "127.0.0.1:1");
    uint64_t polls = atomic_load(&stats.poll_count), fails = atomic_load(&stats.poll_failures);
    assert_int_equal(mon_poll_once(x->m), 2);
    assert_int_equal(atomic_load(&stats.poll_count) - polls, 2);
    assert_int_equal(atomic_load(&stats.poll_failures) - fails, 1);
    agent_free(a);
    fx_free(x);
}

static void raises_fd_limit(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= 64) {
        print_message("  hard fd limit %llu: nothing to raise\n", (unsigned long long)rl.rlim_max);
        skip();
    }
    struct rlimit low = {64, rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct mon_settings s = poll_settings();
    struct fx *x = fx_new("fds", &s);
    assert_int_equal(mon_start(x->m), 0);
    struct rlimit now;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_true(now.rlim_cur == rl.rlim_max);
    fx_free(x);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* --- MonitorS ----------------------------------------------------------------------------- */

static int call_register(int port, const char *id, const char *addr, const char *token,
                         RegisterReply **out)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    RegisterRequest rq = REGISTER_REQUEST__INIT;
    rq.instance_id = (char *)id;
    rq.address = (char *)addr;
    rq.token = (char *)token;
    rq.agent_version = "test";
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(rpc_pack(&rq.base, &buf, &len), 0);
    struct rpc_result res = RPC_RESULT_INIT;
    assert_int_equal(rpc_call_sync(target, "/MonitorS/Register", buf, len, 5000, &res), 0);
    free(buf);
    int st = res.status;
    *out = NULL;
    if (st == GRPC_STATUS_OK) {
        *out = register_reply__unpack(NULL, res.len, res.data);
        assert_non_null(*out);
    }
    rpc_result_release(&res);
    return st;
}

static int call_deregister(int port, const char *id, const char *token, int *ok)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    DeregisterRequest rq = DEREGISTER_REQUEST__INIT;
    rq.instance_id = (char *)id;
    rq.token = (char *)token;
    rq.reason = "shutdown";
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(rpc_pack(&rq.base, &buf, &len), 0);
    struct rpc_result res = RPC_RESULT_INIT;
    assert_int_equal(rpc_call_sync(target, "/MonitorS/Deregister", buf, len, 5000, &res), 0);
    free(buf);
    int st = res.status;
    if (st == GRPC_STATUS_OK) {
        DeregisterReply *r = deregister_reply__unpack(NULL, res.len, res.data);
        assert_non_null(r);
        *ok = r->ok;
        deregister_reply__free_unpacked(r, NULL);
    }
    rpc_result_release(&res);
    return st;
}

static struct mon_settings server_settings(int accept_unknown)
{
    struct mon_settings s = poll_settings();
    s.listen = "127.0.0.1:0";
    s.accept_unknown = accept_unknown;
    s.interval_ms = 60000; /* the poller stays out of the way */
    s.timeout_ms = 1000;
    return s;
}

static void register_checks_token_and_id(void **state)
{
    (void)state;
    struct mon_settings s = server_settings(0);
    struct fx *x = fx_new("reg", &s);
    assert_int_equal(mon_start(x->m), 0);
    assert_int_equal(mon_start(x->m), MON_ESTATE);
    int port = mon_port(x->m);
    assert_true(port > 0);
    uint32_t idx = add_slot(x, "i-known", "");
    uint64_t gen = fleet_membership_gen(x->f);
    RegisterReply *r = NULL;
    uint64_t refused0 = atomic_load(&stats.registrations_refused);
    uint64_t accepted0 = atomic_load(&stats.registrations_accepted);

    /* wrong, missing and prefix tokens: refused, table untouched */
    const char *bad[] = {"wrong", "", "t0ken-for-test", TOKEN "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(call_register(port, "i-known", "127.0.0.9:50051", bad[i], &r), 0);
        assert_false(r->accepted);
        assert_string_equal(r->message, "bad token");
        register_reply__free_unpacked(r, NULL);
        struct fleet_slot sl = slot_of(x, idx);
        assert_int_equal(sl.registered, 0);
        assert_string_equal(sl.address, "");
    }
    /* unknown id refused without accept_unknown; nothing allocated */
    assert_int_equal(call_register(port, "i-unknown", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_string_equal(r->message, "unknown instance");
    register_reply__free_unpacked(r, NULL);
    uint32_t dummy;
    assert_int_equal(fleet_find(x->f, "i-unknown", &dummy), FLEET_ENOENT);
    assert_true(fleet_membership_gen(x->f) == gen);
    /* malformed ids and addresses */
    assert_int_equal(call_register(port, "i-known\"; rm", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(call_register(port, "i-known", "127.0.0.9", TOKEN, &r), 0);
    assert_false(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(slot_of(x, idx).registered, 0);

    /* the right token: registered, the empty address filled, the interval returned */
    assert_int_equal(call_register(port, "i-known", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    assert_int_equal(r->poll_interval_ms, 60000);
    register_reply__free_unpacked(r, NULL);
    struct fleet_slot sl = slot_of(x, idx);
    assert_int_equal(sl.registered, 1);
    assert_string_equal(sl.address, "127.0.0.9:50051");
    /* a later claim does not move an instance the table already has an address for */
    assert_int_equal(call_register(port, "i-known", "127.0.0.10:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_string_equal(slot_of(x, idx).address, "127.0.0.9:50051");

    assert_int_equal(atomic_load(&stats.registrations_refused) - refused0, 7);
    assert_int_equal(atomic_load(&stats.registrations_accepted) - accepted0, 2);

    /* Deregister: wrong token refused; right token marks it deregistered (a restart's
       reconnect window: the controller neither counts nor replaces it yet) */
    int ok = -1;
    assert_int_equal(call_deregister(port, "i-known", "nope", &ok), 0);
    assert_int_equal(ok, 0);
    assert_int_equal(slot_of(x, idx).registered, 1);
    assert_int_equal(call_deregister(port, "i-nobody", TOKEN, &ok), 0);
    assert_int_equal(ok, 0);
    assert_int_equal(call_deregister(port, "i-known", TOKEN, &ok), 0);
    assert_int_equal(ok, 1);
    sl = slot_of(x, idx);
    assert_int_equal(sl.registered, 0);
    assert_int_equal(sl.health, FLEET_HEALTH_DEREGISTERED);
    assert_int_equal(sl.lifecycle, FLEET_PENDING); /* the controller owns the life cycle */
    assert_true(sl.health_changed_ms > 0);
    /* registering again within the window: back to normal, the checks decide again */
    assert_int_equal(call_register(port, "i-known", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    sl = slot_of(x, idx);
    assert_int_equal(sl.registered, 1);
    assert_int_equal(sl.health, FLEET_HEALTH_UNKNOWN);

    mon_stop(x->m);
    mon_stop(x->m);
    fx_free(x);
}

static void accept_unknown_allocates_pending(void **state)
{
    (void)state;
    struct mon_settings s = server_settings(1);
    struct fx *x = fx_new("unk", &s);
    assert_int_equal(mon_start(x->m), 0);
    int port = mon_port(x->m);
    RegisterReply *r = NULL;

    assert_int_equal(call_register(port, "i-new", "", TOKEN, &r), 0);
    assert_false(r->accepted); /* no address, nothing to poll */
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(call_register(port, "i-new", "127.0.0.7:50051", "bad", &r), 0);
    assert_false(r->accepted);
    register_reply__free_unpacked(r, NULL);
    uint32_t idx;
    assert_int_equal(fleet_find(x->f, "i-new", &idx), FLEET_ENOENT);

    assert_int_equal(call_register(port, "i-new", "127.0.0.7:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(fleet_find(x->f, "i-new", &idx), 0);
    struct fleet_slot sl = slot_of(x, idx);
    assert_int_equal(sl.lifecycle, FLEET_PENDING);
    assert_int_equal(sl.registered, 1);
    assert_string_equal(sl.address, "127.0.0.7:50051");
    /* registering again is idempotent */
    assert_int_equal(call_register(port, "i-new", "127.0.0.7:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(fleet_snapshot(x->f, NULL, 0), 1);

    fx_free(x);
}

/* An agent that registers before the controller has recorded the launch that made it (the
   launch call has not returned yet) is held, not refused, while the fleet table says a launch
   is in flight: not accepted, told to retry shortly, and nothing is written or remembered.
   Without a launch in flight, or once its deadline has passed, an unknown id is refused as
   before; once the controller has allocated the slot and closed the window, it is accepted. */
static void unknown_held_only_during_a_launch(void **state)
{
    (void)state;
    struct mon_settings s = server_settings(0);
    struct fx *x = fx_new("early", &s);
    assert_int_equal(mon_start(x->m), 0);
    int port = mon_port(x->m);
    uint32_t iknown = add_slot(x, "i-known", "");
    uint64_t gen = fleet_membership_gen(x->f);
    RegisterReply *r = NULL;
    uint32_t idx;

    /* no launch in flight: refused */
    assert_int_equal(call_register(port, "i-early", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_int_equal(r->retry_after_ms, 0);
    assert_string_equal(r->message, "unknown instance");
    register_reply__free_unpacked(r, NULL);

    /* a launch in flight: held */
    uint64_t held0 = atomic_load(&stats.registrations_held);
    uint64_t refused0 = atomic_load(&stats.registrations_refused);
    fleet_set_launching(x->f, clk_mono_ms() + 60000);
    assert_int_equal(call_register(port, "i-early", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_true(r->retry_after_ms > 0 && r->retry_after_ms <= 1000);
    assert_non_null(strstr(r->message, "held"));
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(fleet_find(x->f, "i-early", &idx), FLEET_ENOENT);
    /* the token and the id are still checked first: refused, not held */
    assert_int_equal(call_register(port, "i-early", "127.0.0.9:50051", "wrong", &r), 0);
    assert_false(r->accepted);
    assert_int_equal(r->retry_after_ms, 0);
    assert_string_equal(r->message, "bad token");
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(call_register(port, "i-early\"x", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_int_equal(r->retry_after_ms, 0);
    register_reply__free_unpacked(r, NULL);
    /* a known instance registers as usual meanwhile */
    assert_int_equal(call_register(port, "i-known", "127.0.0.8:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    assert_int_equal(r->retry_after_ms, 0);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(slot_of(x, iknown).registered, 1);

    /* a flood of random ids while the window is open: each is held, nothing is kept (the
       table is untouched and, once the window closes, every one of them is refused) */
    enum { FLOOD = 1000 };
    char ids[FLOOD][24];
    for (int i = 0; i < FLOOD; i++) {
        snprintf(ids[i], sizeof(ids[i]), "i-flood-%08x", (unsigned)rand());
        assert_int_equal(call_register(port, ids[i], "127.0.0.9:1", TOKEN, &r), 0);
        assert_false(r->accepted);
        assert_true(r->retry_after_ms > 0);
        register_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(atomic_load(&stats.registrations_held) - held0, FLOOD + 1);
    assert_int_equal(atomic_load(&stats.registrations_refused) - refused0, 2);
    assert_true(fleet_membership_gen(x->f) == gen);
    assert_int_equal(fleet_snapshot(x->f, NULL, 0), 1);

    /* the controller records the launch (the slot), then closes the window: accepted */
    uint32_t iearly = add_slot(x, "i-early", "");
    fleet_set_launching(x->f, 0);
    for (int i = 0; i < FLOOD; i += FLOOD / 20) {
        assert_int_equal(call_register(port, ids[i], "127.0.0.9:1", TOKEN, &r), 0);
        assert_false(r->accepted);
        assert_int_equal(r->retry_after_ms, 0);
        assert_string_equal(r->message, "unknown instance");
        register_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(call_register(port, "i-early", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    struct fleet_slot sl = slot_of(x, iearly);
    assert_int_equal(sl.registered, 1);
    assert_string_equal(sl.address, "127.0.0.9:50051");

    /* a window whose deadline has passed (its controller died mid-launch): refused again */
    fleet_set_launching(x->f, clk_mono_ms() - 2000);
    assert_int_equal(call_register(port, "i-late", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_int_equal(r->retry_after_ms, 0);
    register_reply__free_unpacked(r, NULL);

    /* a launch in flight in another group of the monitor holds too (the id says no group) */
    char name2[64];
    snprintf(name2, sizeof(name2), "montest-early2-%d", (int)getpid());
    (void)fleet_unlink(name2);
    struct fleet *f2 = NULL;
    assert_int_equal(fleet_open(name2, 32, 1, &f2), 0);
    struct mon_group_settings gs = {.interval_ms = 60000, .timeout_ms = 1000, .rise = 1, .fall = 1};
    assert_int_equal(mon_add_group(x->m, "g2", f2, &gs), 0);
    fleet_set_launching(f2, clk_mono_ms() + 60000);
    assert_int_equal(call_register(port, "i-late", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_true(r->retry_after_ms > 0);
    register_reply__free_unpacked(r, NULL);
    /* not once that group is no longer watched */
    mon_remove_group(x->m, "g2");
    assert_int_equal(call_register(port, "i-late", "127.0.0.9:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_int_equal(r->retry_after_ms, 0);
    register_reply__free_unpacked(r, NULL);

    mon_stop(x->m);
    fleet_close(f2);
    (void)fleet_unlink(name2);
    fx_free(x);
}

/* With accept_unknown, an unknown agent is held during a launch too (it may be the launch's,
   whose slot the controller is about to allocate) and only adopted once no launch is in
   flight: the controller's slot, not a second one. */
static void accept_unknown_waits_for_the_launch(void **state)
{
    (void)state;
    struct mon_settings s = server_settings(1);
    struct fx *x = fx_new("unkearly", &s);
    assert_int_equal(mon_start(x->m), 0);
    int port = mon_port(x->m);
    RegisterReply *r = NULL;
    uint32_t idx;

    fleet_set_launching(x->f, clk_mono_ms() + 60000);
    assert_int_equal(call_register(port, "i-mine", "127.0.0.7:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    assert_true(r->retry_after_ms > 0);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(call_register(port, "i-other", "127.0.0.6:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(fleet_snapshot(x->f, NULL, 0), 0);

    uint32_t imine = add_slot(x, "i-mine", "127.0.0.7:50051"); /* the launch is recorded */
    fleet_set_launching(x->f, 0);
    assert_int_equal(call_register(port, "i-mine", "127.0.0.7:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(slot_of(x, imine).registered, 1);
    assert_int_equal(slot_of(x, imine).adopted, 0);
    /* and an instance no launch made is adopted as accept_unknown says, after the window */
    assert_int_equal(call_register(port, "i-other", "127.0.0.6:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(fleet_find(x->f, "i-other", &idx), 0);
    assert_int_equal(fleet_snapshot(x->f, NULL, 0), 2);

    fx_free(x);
}

static void hostile_clients_do_not_crash_it(void **state)
{
    (void)state;
    struct mon_settings s = server_settings(1);
    struct fx *x = fx_new("hostile", &s);
    assert_int_equal(mon_start(x->m), 0);
    int port = mon_port(x->m);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);

    /* bytes that are not a RegisterRequest */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80, 0x01};
    struct rpc_result res = RPC_RESULT_INIT;
    assert_int_equal(rpc_call_sync(target, "/MonitorS/Register", junk, sizeof(junk), 5000, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_INVALID_ARGUMENT);
    rpc_result_release(&res);
    assert_int_equal(rpc_call_sync(target, "/MonitorS/Deregister", junk, sizeof(junk), 5000, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_INVALID_ARGUMENT);
    rpc_result_release(&res);
    /* larger than MonitorS accepts (4 KiB), within what the client may send */
    uint8_t *big = calloc(1, 10000);
    assert_non_null(big);
    assert_int_equal(rpc_call_sync(target, "/MonitorS/Register", big, 10000, 5000, &res), 0);
    assert_int_not_equal(res.status, GRPC_STATUS_OK);
    rpc_result_release(&res);
    free(big);
    /* a method that does not exist */
    assert_int_equal(rpc_call_sync(target, "/MonitorS/Drop", NULL, 0, 5000, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_UNIMPLEMENTED);
    rpc_result_release(&res);
    /* raw garbage on the TCP port (not HTTP/2 at all) */
    for (int i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        const char g[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02PRI * HTTP/2.0\r\n\r\n";
        (void)!write(fd, g, sizeof(g));
        close(fd);
    }
    /* a Register with fields far too long */
    char longid[300];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    RegisterReply *r = NULL;
    assert_int_equal(call_register(port, longid, "127.0.0.7:50051", TOKEN, &r), 0);
    assert_false(r->accepted);
    register_reply__free_unpacked(r, NULL);
    assert_int_equal(fleet_snapshot(x->f, NULL, 0), 0);
    /* still serving */
    assert_int_equal(call_register(port, "i-after", "127.0.0.7:50051", TOKEN, &r), 0);
    assert_true(r->accepted);
    register_reply__free_unpacked(r, NULL);

    fx_free(x);
}

/* --- the poller thread -------------------------------------------------------------------- */

static int wait_health(struct fx *x, uint32_t idx, int health, int64_t limit_ms, int64_t *took)
{
    int64_t t0 = clk_mono_ms();
    while (clk_mono_ms() - t0 < limit_ms) {
        if (slot_of(x, idx).health == health) {
            *took = clk_mono_ms() - t0;
            return 1;
        }
        usleep(5 * 1000);
    }
    return 0;
}

static void poller_thread_detects_death_and_restart(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    s.interval_ms = 100;
    s.timeout_ms = 50;
    s.rise = 2;
    s.fall = 3;
    struct fx *x = fx_new("thread", &s);
    struct agent *a = agent_new("i-t", 0, 12);
    uint32_t idx = add_slot(x, "i-t", a->address);
    assert_int_equal(mon_start(x->m), 0);
    assert_int_equal(mon_poll_once(x->m), MON_ESTATE);
    assert_int_equal(mon_port(x->m), 0); /* no server */

    int64_t took = 0;
    assert_true(wait_health(x, idx, FLEET_HEALTH_HEALTHY, 10000, &took));
    print_message("  healthy %lld ms after start (interval 100 ms, rise 2)\n", (long long)took);
    agent_kill(a);
    assert_true(wait_health(x, idx, FLEET_HEALTH_UNHEALTHY, 10000, &took));
    print_message("  unhealthy %lld ms after the agent died (fall 3, timeout 50 ms)\n",
                  (long long)took);
    agent_start(a);
    assert_true(wait_health(x, idx, FLEET_HEALTH_HEALTHY, 10000, &took));
    print_message("  healthy %lld ms after the agent restarted\n", (long long)took);
    assert_true(fleet_last_heartbeat(x->f, 0) > 0);

    /* a slot freed while its poll hangs in flight, and its id re-allocated elsewhere: the
       stale result is dropped (FLEET_ESTALE), the new slot is polled */
    int sport = 0;
    int sfd = stuck_listener(&sport);
    char saddr[64];
    snprintf(saddr, sizeof(saddr), "127.0.0.1:%d", sport);
    uint32_t is = add_slot(x, "i-s", saddr);
    assert_true(wait_health(x, is, FLEET_HEALTH_UNHEALTHY, 10000, &took));
    usleep(20 * 1000); /* the next poll is in flight now (it hangs for its 50 ms deadline) */
    assert_int_equal(fleet_free(x->f, is, slot_of(x, is).generation), 0);
    struct agent *c = agent_new("i-s", 0, 3);
    uint32_t is2 = add_slot(x, "i-s", c->address);
    assert_true(wait_health(x, is2, FLEET_HEALTH_HEALTHY, 10000, &took));
    close(sfd);

    /* a slot added while running is picked up; freeing it is followed */
    struct agent *b = agent_new("i-u", 0, 1);
    uint32_t ib = add_slot(x, "i-u", b->address);
    assert_true(wait_health(x, ib, FLEET_HEALTH_HEALTHY, 10000, &took));
    assert_int_equal(fleet_free(x->f, ib, slot_of(x, ib).generation), 0);
    usleep(300 * 1000);

    mon_stop(x->m);
    assert_int_equal(mon_poll_once(x->m), 2); /* stopped: the synchronous round works again */
    agent_free(a);
    agent_free(b);
    agent_free(c);
    fx_free(x);
}

/* Two groups on one monitor: each table polled with its own settings; a group removed while
   the poller runs is never touched again; registered_only polls registered agents only. */
static void many_groups_one_poller(void **state)
{
    (void)state;
    struct mon_settings s = poll_settings();
    s.interval_ms = 100;
    s.timeout_ms = 50;
    struct fx *x = fx_new("g1", &s); /* first group "" from mon_new */
    char name2[64];
    snprintf(name2, sizeof(name2), "montest-g2-%d", (int)getpid());
    (void)fleet_unlink(name2);
    struct fleet *f2 = NULL;
    assert_int_equal(fleet_open(name2, 32, 1, &f2), 0);
    struct mon_group_settings gs = {.interval_ms = 100, .timeout_ms = 50, .rise = 1, .fall = 1};
    assert_int_equal(mon_add_group(x->m, "g2", f2, &gs), 0);
    assert_int_equal(mon_add_group(x->m, "g2", f2, &gs), MON_EINVAL); /* already watched */
    struct mon_group_settings bad = gs;
    bad.interval_ms = 1;
    assert_int_equal(mon_add_group(x->m, "g3", f2, &bad), MON_EINVAL);
    assert_int_equal(mon_set_group(x->m, "nope", &gs), MON_EINVAL);

    struct agent *a = agent_new("i-ga", 0, 10);
    struct agent *b = agent_new("i-gb", 0, 20);
    uint32_t ia = add_slot(x, "i-ga", a->address);
    uint32_t ib = 0;
    assert_int_equal(fleet_alloc(f2, "i-gb", b->address, clk_wall_ms(), &ib), 0);
    assert_int_equal(mon_poll_once(x->m), 2);
    struct fleet_slot sb;
    assert_int_equal(fleet_read(f2, ib, &sb), 0);
    assert_int_equal(sb.health, FLEET_HEALTH_HEALTHY);             /* rise 1 in group g2 */
    assert_int_equal(slot_of(x, ia).health, FLEET_HEALTH_UNKNOWN); /* rise 2 in the first */

    /* registered_only: g2's agent is not polled until it registers */
    gs.registered_only = 1;
    assert_int_equal(mon_set_group(x->m, "g2", &gs), 0);
    mon_remove_group(x->m, "g2");
    assert_int_equal(mon_add_group(x->m, "g2", f2, &gs), 0);
    assert_int_equal(mon_poll_once(x->m), 1);

    /* removed while the poller thread runs: afterwards its table is never written */
    assert_int_equal(mon_start(x->m), 0);
    usleep(300 * 1000);
    mon_remove_group(x->m, "g2");
    gs.registered_only = 0;
    assert_int_equal(fleet_read(f2, ib, &sb), 0);
    uint64_t polls = sb.polls_ok + sb.polls_failed;
    usleep(400 * 1000);
    assert_int_equal(fleet_read(f2, ib, &sb), 0);
    assert_int_equal(sb.polls_ok + sb.polls_failed, polls);
    assert_true(slot_of(x, ia).polls_ok >= 2); /* the other group goes on */
    mon_remove_group(x->m, "g2");              /* not watched: no-op */
    mon_stop(x->m);

    fleet_close(f2);
    (void)fleet_unlink(name2);
    agent_free(a);
    agent_free(b);
    fx_free(x);
}

/* --- real monitorc processes ---------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t l = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static pid_t spawn_monitorc(const char *bin, const char *id, int port, int monport,
                            const char *token_file, const char *load_file, const char *log)
{
    char listen[64], mon[64], load[1100];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(mon, sizeof(mon), "127.0.0.1:%d", monport);
    snprintf(load, sizeof(load), "file:%s", load_file);
    char *argv[] = {(char *)bin,
                    "--listen",
                    listen,
                    "--instance-id",
                    (char *)id,
                    "--monitor",
                    mon,
                    "--token-file",
                    (char *)token_file,
                    "--load",
                    load,
                    "--log-level",
                    "info",
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

struct want {
    int registered; /* -1 = any */
    int health;     /* -1 = any */
    double load;    /* < 0 = any */
};

static int wait_slot(struct fx *x, uint32_t idx, struct want w, int64_t limit_ms, int64_t *took)
{
    int64_t t0 = clk_mono_ms();
    while (clk_mono_ms() - t0 < limit_ms) {
        struct fleet_slot sl = slot_of(x, idx);
        if ((w.registered < 0 || sl.registered == w.registered) &&
            (w.health < 0 || sl.health == w.health) && (w.load < 0 || sl.load == w.load)) {
            *took = clk_mono_ms() - t0;
            return 1;
        }
        usleep(5 * 1000);
    }
    return 0;
}

static void real_monitorc_processes(void **state)
{
    (void)state;
    const char *bld = getenv("ASGD_BUILD_DIR");
    char bin[1024];
    snprintf(bin, sizeof(bin), "%s/bin/monitorc", bld ? bld : "../build");
    if (access(bin, X_OK) != 0) {
        print_message("  %s not built: skipped\n", bin);
        skip();
    }
    char dir[] = "/tmp/montest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char tok[64], badtok[64], loadf[64], log[64];
    snprintf(tok, sizeof(tok), "%s/token", dir);
    snprintf(badtok, sizeof(badtok), "%s/badtoken", dir);
    snprintf(loadf, sizeof(loadf), "%s/load", dir);
    snprintf(log, sizeof(log), "%s/agents.log", dir);
    write_file(tok, TOKEN "\n");
    write_file(badtok, "not-the-token\n");
    write_file(loadf, "37\n");

    struct mon_settings s = server_settings(0);
    s.interval_ms = 200;
    s.timeout_ms = 150;
    s.rise = 2;
    s.fall = 3;
    struct fx *x = fx_new("real", &s);
    /* the controller's view: launched, address not known yet */
    uint32_t idx = add_slot(x, "i-real", "");
    uint32_t irogue = add_slot(x, "i-rogue", "");
    assert_int_equal(mon_start(x->m), 0);
    int monport = mon_port(x->m);
    int port = free_port();

    int64_t took = 0;
    pid_t pid = spawn_monitorc(bin, "i-real", port, monport, tok, loadf, log);
    pid_t rogue = spawn_monitorc(bin, "i-rogue", free_port(), monport, badtok, loadf, log);
    assert_true(wait_slot(x, idx, (struct want){1, FLEET_HEALTH_HEALTHY, 37}, 20000, &took));
    print_message("  monitorc registered and healthy %lld ms after spawn\n", (long long)took);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_string_equal(slot_of(x, idx).address, addr);
    assert_int_equal(slot_of(x, idx).seed_protocol, 0);

    write_file(loadf, "81\n");
    assert_true(wait_slot(x, idx, (struct want){-1, -1, 81}, 20000, &took));

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_true(wait_slot(x, idx, (struct want){-1, FLEET_HEALTH_UNHEALTHY, -1}, 20000, &took));
    print_message("  kill -9: unhealthy after %lld ms (interval 200 ms, timeout 150 ms, fall 3)\n",
                  (long long)took);

    pid = spawn_monitorc(bin, "i-real", port, monport, tok, loadf, log);
    assert_true(wait_slot(x, idx, (struct want){-1, FLEET_HEALTH_HEALTHY, -1}, 20000, &took));
    print_message("  restarted: healthy after %lld ms (rise 2)\n", (long long)took);

    /* a clean stop deregisters: not registered and DEREGISTERED (its reconnect window) without
       waiting for fall polls; the failed polls that follow do not make it unhealthy */
    kill(pid, SIGTERM);
    assert_true(wait_slot(x, idx, (struct want){0, FLEET_HEALTH_DEREGISTERED, -1}, 20000, &took));
    print_message("  SIGTERM: deregistered after %lld ms\n", (long long)took);
    usleep(1000 * 1000); /* 5 intervals of failed polls, fall 3 */
    assert_int_equal(slot_of(x, idx).health, FLEET_HEALTH_DEREGISTERED);
    waitpid(pid, NULL, 0);

    /* the agent with the wrong token never got in */
    struct fleet_slot sr = slot_of(x, irogue);
    assert_int_equal(sr.registered, 0);
    assert_string_equal(sr.address, "");
    kill(rogue, SIGKILL);
    waitpid(rogue, NULL, 0);

    fx_free(x);
    unlink(tok);
    unlink(badtok);
    unlink(loadf);
    unlink(log);
    rmdir(dir);
}

int main(void)
{
    log_set_level(getenv("MON_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_bad_settings),
        cmocka_unit_test(healthy_after_rise_unhealthy_after_fall),
        cmocka_unit_test(unhealthy_app_and_wrong_instance_fail),
        cmocka_unit_test(seed_agent_through_seed_methods),
        cmocka_unit_test(python_seed_agent),
        cmocka_unit_test(stuck_agent_does_not_hold_others),
        cmocka_unit_test(membership_changes_are_followed),
        cmocka_unit_test(max_inflight_caps_concurrency),
        cmocka_unit_test(counts_stats),
        cmocka_unit_test(raises_fd_limit),
        cmocka_unit_test(register_checks_token_and_id),
        cmocka_unit_test(accept_unknown_allocates_pending),
        cmocka_unit_test(unknown_held_only_during_a_launch),
        cmocka_unit_test(accept_unknown_waits_for_the_launch),
        cmocka_unit_test(hostile_clients_do_not_crash_it),
        cmocka_unit_test(poller_thread_detects_death_and_restart),
        cmocka_unit_test(many_groups_one_poller),
        cmocka_unit_test(real_monitorc_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
