/*
 * bench_monitor - how fast the monitor polls a fleet, against the seed's way.
 *
 * N instances (default 1000; argv[1]) in a real fleet table, served by a few
 * agents (rpc.h servers on loopback) in a child process, so that the CPU
 * figures are the poller side's alone; several instances share one agent,
 * each instance still has its own channel and TCP connection. Three
 * measurements in the same run:
 *   seed     one instance after another, a new channel per call, GetStatus +
 *            GetMemoryUsage (what the seed's Python MonitorS did), on a sample;
 *   seq      one instance after another over persistent channels, one call in
 *            flight at a time (the poller's code without its concurrency);
 *   monitor  mon_poll_once(): every instance's GetMetrics in flight at once on
 *            one completion queue, persistent channels.
 * Prints polls/s and the polling process's CPU per poll (user + system, all
 * of its threads, gRPC's included) and the ratios monitor/seed, monitor/seq.
 *
 * With BENCH_SWARM=1 the agents are one bench_swarm process (next to this
 * program) serving every instance on its own loopback address, as a real
 * fleet looks; BENCH_INTERVAL_MS sets the steady-state interval (default:
 * about 1,000 polls/s), BENCH_TIMEOUT_MS its deadline (500). The steady-state
 * line then also gives this process's RSS growth per instance and the
 * swarm's own CPU. Then (swarm, BENCH_KILL agents, default 100, 0 = skip)
 * it kills that many agents at once and prints how long until each was
 * unhealthy (p50/p99/max; fall = BENCH_FALL, default 2) and how many of the
 * others left HEALTHY meanwhile (flaps; there should be none).
 * BENCH_SETTLE_S waits that long after the warm-up before the window.
 * BENCH_BASELINE=0 skips seed and seq (gRPC core), so that the process's
 * RSS is the poller's alone: run N = 1,000 and 10,000 and compare the RSS
 * lines for (RSS@10k - RSS@1k) / 9,000.
 *
 * With BENCH_TLS=DIR the agents serve mutual TLS with DIR/srv.pem, DIR/srv.key
 * (an IP SAN 127.0.0.1) and DIR/ca.pem, and the monitor polls over TLS with
 * DIR/cli.pem, DIR/cli.key, DIR/ca.pem; the seed and seq measurements (plain
 * text clients of gRPC core) are skipped, and the baseline is the same poller
 * in clear text at the same N ("clear": mon_poll_once() rounds against the
 * same agents serving clear text: a second set of forked agents, or with
 * BENCH_SWARM a second bench_swarm on another port), so
 * the ratio printed is monitor/clear: what TLS costs the burst rounds. The
 * steady-state thread has no clear-text twin; its ratio is thread/monitor
 * (both over TLS). With BENCH_SWARM too, bench_swarm --tls DIR
 * serves them on its many addresses and the poller checks the name
 * BENCH_TLS_NAME (default "localhost", a DNS SAN of srv.pem) instead of the
 * address ([monitor] tls_server_name). bench_conn_mem measures what a TLS
 * connection costs against a plain one.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <libgen.h>
#include <limits.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "fleet/fleet.h"
#include "monitor.pb-c.h"
#include "monitor/mon.h"
#include "rpc/rpc.h"
#include "support/bench_util.h"
#include "support/grpc_server.h"
#include "tls/tls.h"

#include "common/banned.h"

#define AGENTS_MAX 64
#define PER_AGENT  250 /* instances served by one agent */

static struct tls_conf *tls_poller; /* BENCH_TLS=DIR; NULL: plain text */

static grpc_status_code h_metrics(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    (void)req;
    Metrics m = METRICS__INIT;
    m.cpu_load = 42;
    m.app_healthy = 1;
    return rpc_reply_pack(reply, &m.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static grpc_status_code h_status(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    (void)req;
    StatusResponse r = STATUS_RESPONSE__INIT;
    r.status = "OK";
    return rpc_reply_pack(reply, &r.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static grpc_status_code h_memory(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    (void)req;
    MemoryUsageResponse r = MEMORY_USAGE_RESPONSE__INIT;
    r.usage = 42;
    return rpc_reply_pack(reply, &r.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* proc_cpu_s of pid plus its direct children (bench_swarm's workers) */
static double tree_cpu_s(pid_t pid)
{
    double t = bench_proc_cpu_s(pid);
    DIR *d = opendir("/proc");
    if (!d)
        return t;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        int ppid = 0;
        if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == (int)pid)
            t += bench_proc_cpu_s((pid_t)strtol(e->d_name, NULL, 10));
    }
    closedir(d);
    return t;
}

/* Starts bench_swarm (next to argv0) serving n agents, over TLS with the files in tls_dir (NULL:
   clear text), on port (0: the swarm's default); fills addrs from its list. Returns its pid, or
   -1. *cmd gets a pipe to its stdin (commands). */
static pid_t swarm_start(const char *argv0, int n, const char *tls_dir, int port, char addrs[][64],
                         int *cmd)
{
    char self[PATH_MAX], bin[PATH_MAX + 32], list[64], nbuf[16], pbuf[16];
    snprintf(self, sizeof(self), "%s", argv0);
    snprintf(bin, sizeof(bin), "%s/bench_swarm", dirname(self));
    snprintf(list, sizeof(list), "/tmp/bench-swarm-%d-%d.list", (int)getpid(), port);
    snprintf(nbuf, sizeof(nbuf), "%d", n);
    snprintf(pbuf, sizeof(pbuf), "%d", port ? port : 50051);
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the swarm ends with this bench, however it ends */
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        if (tls_dir)
            execl(bin, bin, "-n", nbuf, "-p", pbuf, "-l", list, "--tls", tls_dir, (char *)NULL);
        else
            execl(bin, bin, "-n", nbuf, "-p", pbuf, "-l", list, (char *)NULL);
        fprintf(stderr, "bench_monitor: cannot run %s\n", bin);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    FILE *o = fdopen(out[0], "r");
    if (!o || !fgets(line, sizeof(line), o) || strncmp(line, "ready", 5) != 0) {
        fprintf(stderr, "bench_monitor: bench_swarm did not start\n");
        return -1;
    }
    /* the swarm's later output (command acknowledgements) is not read: keep o open, unread */
    FILE *l = fopen(list, "r");
    if (!l)
        return -1;
    char id[64], addr[64];
    for (int i = 0; i < n && fscanf(l, "%63s %63s", id, addr) == 2; i++)
        snprintf(addrs[i], 64, "%s", addr);
    fclose(l);
    unlink(list);
    *cmd = in[1];
    return pid;
}

struct result {
    double polls_per_s;
    double cpu_us_per_poll;
    long polls;
    long failures;
};

static void report(const char *name, const struct result *r)
{
    printf("%-8s %8ld polls  %10.0f polls/s  %8.1f us CPU/poll  %ld failed\n", name, r->polls,
           r->polls_per_s, r->cpu_us_per_poll, r->failures);
}

/* seed style: new channel per call, GetStatus then GetMemoryUsage, one instance at a time */
static void bench_seed(char addrs[][64], int n, struct result *r)
{
    Request rq = REQUEST__INIT;
    rq.code = 1;
    uint8_t buf[16];
    size_t len = request__pack(&rq, buf);
    double w0 = wall_s(), c0 = bench_self_cpu_s();
    long fails = 0;
    for (int i = 0; i < n; i++) {
        struct rpc_result res = RPC_RESULT_INIT;
        int ok = rpc_call_sync(addrs[i], "/MonitorC/GetStatus", buf, len, 1000, &res) == 0 &&
                 res.status == GRPC_STATUS_OK;
        rpc_result_release(&res);
        if (ok)
            ok = rpc_call_sync(addrs[i], "/MonitorC/GetMemoryUsage", buf, len, 1000, &res) == 0 &&
                 res.status == GRPC_STATUS_OK;
        rpc_result_release(&res);
        fails += !ok;
    }
    double w = wall_s() - w0, c = bench_self_cpu_s() - c0;
    r->polls = n;
    r->failures = fails;
    r->polls_per_s = n / w;
    r->cpu_us_per_poll = c * 1e6 / n;
}

static void seq_done(void *arg, grpc_status_code st, const char *d, const uint8_t *data, size_t len)
{
    (void)d;
    (void)data;
    (void)len;
    *(int *)arg = st == GRPC_STATUS_OK ? 1 : 2;
}

/* persistent channels, one call at a time */
static void bench_seq(char addrs[][64], int n, int rounds, struct result *r)
{
    struct rpc_client_opts o = RPC_CLIENT_OPTS_INIT;
    o.own_connection = 1;
    struct rpc_client *cl = rpc_client_new(&o);
    struct rpc_channel **ch = calloc((size_t)n, sizeof(*ch));
    if (!cl || !ch) {
        fprintf(stderr, "bench_monitor: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++)
        ch[i] = rpc_channel_new(cl, addrs[i]);
    double w0 = 0, c0 = 0;
    long fails = 0;
    for (int round = -1; round < rounds; round++) { /* round -1 connects (not timed) */
        if (round == 0) {
            w0 = wall_s();
            c0 = bench_self_cpu_s();
            fails = 0;
        }
        for (int i = 0; i < n; i++) {
            int done = 0;
            if (rpc_client_call(cl, ch[i], "/MonitorC/GetMetrics", NULL, 0, 1000, seq_done,
                                &done)) {
                fails++;
                continue;
            }
            while (!done)
                rpc_client_poll(cl, 1000);
            fails += done != 1;
        }
    }
    double w = wall_s() - w0, c = bench_self_cpu_s() - c0;
    r->polls = (long)n * rounds;
    r->failures = fails;
    r->polls_per_s = r->polls / w;
    r->cpu_us_per_poll = c * 1e6 / r->polls;
    rpc_client_free(cl);
    free(ch);
}

/* Starts a child with a few rpc.h agents, each serving many instances, over TLS with tls_dir's
   material (NULL: clear text); fills addrs. Returns the child's pid or -1; closing *down stops
   it once every child started after it, which holds a copy, is gone. Call it before this
   process uses gRPC (fork). */
static pid_t agents_start(int n, const char *tls_dir, char addrs[][64], int *nagents, int *down)
{
    static const struct test_method methods[] = {{"/MonitorC/GetMetrics", h_metrics, NULL},
                                                 {"/MonitorC/GetStatus", h_status, NULL},
                                                 {"/MonitorC/GetMemoryUsage", h_memory, NULL},
                                                 {NULL, NULL, NULL}};
    int ports[AGENTS_MAX];
    int agents = n / PER_AGENT < 4 ? 4 : n / PER_AGENT > AGENTS_MAX ? AGENTS_MAX : n / PER_AGENT;
    pid_t child = bench_agents_fork(methods, tls_dir, agents, ports, down);
    if (child < 0)
        return -1;
    for (int i = 0; i < n; i++)
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", ports[i % agents]);
    *nagents = agents;
    return child;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* rounds of mon_poll_once() over the n instances of f (one untimed round first: it connects
   every channel); polls/s, the CPU per poll of this process and the failures into r. */
static void bench_rounds(struct mon *m, struct fleet *f, int n, int rounds, struct result *r)
{
    struct fleet_slot sl;
    uint64_t failed0 = 0, failed1 = 0;
    mon_poll_once(m);
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0)
            failed0 += sl.polls_failed;
    double w0 = wall_s(), c0 = bench_self_cpu_s();
    for (int k = 0; k < rounds; k++)
        mon_poll_once(m);
    double w = wall_s() - w0, c = bench_self_cpu_s() - c0;
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0)
            failed1 += sl.polls_failed;
    r->polls = (long)n * rounds;
    r->failures = (long)(failed1 - failed0);
    r->polls_per_s = r->polls / w;
    r->cpu_us_per_poll = c * 1e6 / r->polls;
}

/* BENCH_TLS's baseline: the same poller (settings s without TLS) in clear text, on a fleet
   table of its own, against the clear-text agents at addrs. Returns 0 or -1 (said why). */
static int bench_clear(const struct mon_settings *s, char addrs[][64], int n, int rounds,
                       struct result *r)
{
    char name[64];
    snprintf(name, sizeof(name), "bench-mon-clear-%d", (int)getpid());
    (void)fleet_unlink(name);
    struct fleet *f = NULL;
    struct mon *m = NULL;
    struct mon_settings cs = *s;
    char err[256] = "";
    int rc = fleet_open(name, (uint32_t)n, 1, &f);
    for (int i = 0; rc == 0 && i < n; i++) {
        char id[32];
        uint32_t idx;
        snprintf(id, sizeof(id), "i-%06d", i); /* the ids the agents answer with */
        rc = fleet_alloc(f, id, addrs[i], clk_wall_ms(), &idx);
    }
    cs.tls = NULL;
    if (rc == 0 && mon_new(&cs, f, &m, err, sizeof(err)) != 0)
        rc = -1;
    if (rc == 0)
        bench_rounds(m, f, n, rounds, r);
    else
        fprintf(stderr, "bench_monitor: the clear-text baseline did not start %s\n", err);
    mon_free(m);
    fleet_close(f);
    (void)fleet_unlink(name);
    return rc == 0 ? 0 : -1;
}

/* Kills agents 0..k-1 of the swarm at once while the poller runs; prints how long each took
   to become unhealthy and how many of the others left HEALTHY (they should not). */
static void kill_and_watch(struct fleet *f, int n, int k, int swarm_cmd, int interval_ms)
{
    struct fleet_slot sl;
    int64_t *changed = calloc((size_t)n, sizeof(*changed));
    int64_t *took = calloc((size_t)k, sizeof(*took));
    if (!changed || !took) {
        free(changed);
        free(took);
        return;
    }
    int healthy0 = 0;
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0) {
            changed[i] = sl.health_changed_ms;
            healthy0 += sl.health == FLEET_HEALTH_HEALTHY;
        }
    char cmd[64];
    int len = snprintf(cmd, sizeof(cmd), "kill 0-%d\n", k - 1);
    int64_t t0 = clk_wall_ms();
    if (write(swarm_cmd, cmd, (size_t)len) != len) {
        fprintf(stderr, "bench_monitor: cannot command the swarm\n");
        free(changed);
        free(took);
        return;
    }
    int down = 0;
    while (down < k && clk_wall_ms() - t0 < 30000) {
        usleep(20 * 1000);
        down = 0;
        for (int i = 0; i < k; i++)
            if (fleet_read(f, (uint32_t)i, &sl) == 0 && sl.health == FLEET_HEALTH_UNHEALTHY)
                down++;
    }
    usleep((useconds_t)(3 * interval_ms) * 1000); /* a few more cycles for a flap to show */
    int flapped = 0;
    for (int i = 0; i < k; i++) {
        took[i] = INT64_MAX;
        if (fleet_read(f, (uint32_t)i, &sl) == 0 && sl.health == FLEET_HEALTH_UNHEALTHY)
            took[i] = sl.health_changed_ms - t0;
    }
    for (int i = k; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0 &&
            (sl.health != FLEET_HEALTH_HEALTHY || sl.health_changed_ms != changed[i]))
            flapped++;
    qsort(took, (size_t)k, sizeof(*took), cmp_i64);
    int p99 = (k * 99 + 99) / 100 - 1;
    printf("kill     %d of %d agents killed at once (%d were healthy): %d unhealthy, after "
           "p50 %lld ms, p99 %lld ms, max %lld ms; %d of the other %d flapped\n",
           k, n, healthy0, down, (long long)took[k / 2], (long long)took[p99],
           (long long)took[k - 1], flapped, n - k);
    free(changed);
    free(took);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 10;
    int seed_n = n < 300 ? n : 300;
    if (n < 1 || n > 100000 || rounds < 1) {
        fprintf(stderr, "usage: bench_monitor [instances (1000)] [rounds (10)]\n");
        return 2;
    }
    log_set_level(getenv("BENCH_LOG") ? LOG_LVL_INFO : LOG_LVL_WARN);
    /* both processes hold one fd per instance and connection */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    int use_swarm = getenv("BENCH_SWARM") && strcmp(getenv("BENCH_SWARM"), "1") == 0;
    const char *tls_dir = getenv("BENCH_TLS");
    if (tls_dir && tls_dir[0]) {
        /* the swarm's agents are on many addresses with one certificate: its name is checked */
        const char *name = getenv("BENCH_TLS_NAME") ? getenv("BENCH_TLS_NAME") : "localhost";
        tls_poller = bench_tls_load(tls_dir, "cli", use_swarm ? name : NULL);
        if (!tls_poller)
            return 1;
    } else {
        tls_dir = NULL;
    }
    char(*addrs)[64] = calloc((size_t)n, sizeof(*addrs));
    if (!addrs)
        return 1;
    int swarm_cmd = -1;
    pid_t child = -1;
    int agents = n;
    int down = -1;
    if (use_swarm) {
        child = swarm_start(argv[0], n, tls_dir, 0, addrs, &swarm_cmd);
        if (child < 0)
            return 1;
    } else {
        child = agents_start(n, tls_dir, addrs, &agents, &down);
        if (child < 0)
            return 1;
    }
    /* BENCH_BASELINE=0 skips the baselines, so that this process's RSS is the poller's alone
       (for RSS@10k - RSS@1k) */
    int baseline = !getenv("BENCH_BASELINE") || strcmp(getenv("BENCH_BASELINE"), "0") != 0;
    /* BENCH_TLS: the same agents in clear text for the same poller in clear text (a second
       swarm on another port, or forked agents), started now (fork, before this process uses
       gRPC) and stopped once measured */
    char(*clear_addrs)[64] = NULL;
    pid_t clear_child = -1;
    int clear_down = -1, clear_agents = 0, clear_cmd = -1;
    if (tls_poller && baseline) {
        clear_addrs = calloc((size_t)n, sizeof(*clear_addrs));
        if (!clear_addrs)
            return 1;
        int clear_port = bench_free_port(); /* -1: 0, the swarm's default port */
        if (use_swarm)
            clear_child = swarm_start(argv[0], n, NULL, clear_port > 0 ? clear_port : 0,
                                      clear_addrs, &clear_cmd);
        else
            clear_child = agents_start(n, NULL, clear_addrs, &clear_agents, &clear_down);
        if (clear_child < 0)
            return 1;
    }

    char name[64];
    snprintf(name, sizeof(name), "bench-mon-%d", (int)getpid());
    (void)fleet_unlink(name);
    struct fleet *f = NULL;
    int rc = fleet_open(name, (uint32_t)n, 1, &f);
    if (rc) {
        fprintf(stderr, "bench_monitor: fleet_open: %s\n", fleet_strerror(rc));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char id[32];
        uint32_t idx;
        snprintf(id, sizeof(id), "i-%06d", i);
        if (fleet_alloc(f, id, addrs[i], clk_wall_ms(), &idx)) {
            fprintf(stderr, "bench_monitor: fleet_alloc failed\n");
            return 1;
        }
    }
    struct mon_settings s;
    mon_settings_init(&s);
    s.listen = NULL;
    s.interval_ms = 10000;
    s.timeout_ms = 5000;
    s.tls = tls_poller;
    struct mon *m = NULL;
    char err[256];
    if (mon_new(&s, f, &m, err, sizeof(err))) {
        fprintf(stderr, "bench_monitor: %s\n", err);
        return 1;
    }

    printf("bench_monitor: %d instances on %d agents%s%s, %d rounds (seed: %d instances)\n", n,
           agents, use_swarm ? " (bench_swarm)" : "", tls_poller ? " over mutual TLS" : "", rounds,
           seed_n);
    struct result seed = {0}, seq = {0}, clear = {0}, async = {0};
    int have_seq = 0, have_clear = 0;
    if (baseline && !tls_poller) { /* plain text clients */
        bench_seed(addrs, seed_n, &seed);
        report("seed", &seed);
        bench_seq(addrs, n, rounds, &seq);
        report("seq", &seq);
        have_seq = 1;
    }
    if (clear_child > 0) {
        have_clear = bench_clear(&s, clear_addrs, n, rounds, &clear) == 0;
        if (have_clear)
            report("clear", &clear);
        if (use_swarm) {
            kill(clear_child, SIGTERM);
            close(clear_cmd);
        } else {
            close(clear_down); /* its agents stop (it holds the other child's down) */
        }
        waitpid(clear_child, NULL, 0);
    }

    bench_rounds(m, f, n, rounds, &async);
    report("monitor", &async);
    struct fleet_slot sl;
    if (have_seq) {
        printf("ratio monitor/seed: %.1fx polls/s, %.1fx less CPU per poll\n",
               async.polls_per_s / seed.polls_per_s, seed.cpu_us_per_poll / async.cpu_us_per_poll);
        printf("ratio monitor/seq:  %.1fx polls/s, %.1fx less CPU per poll\n",
               async.polls_per_s / seq.polls_per_s, seq.cpu_us_per_poll / async.cpu_us_per_poll);
    } else if (have_clear) {
        printf("ratio monitor/clear: %.2fx polls/s, %.2fx CPU per poll (TLS against the same "
               "poller in clear text, same N and rounds, this run%s)\n",
               async.polls_per_s / clear.polls_per_s, async.cpu_us_per_poll / clear.cpu_us_per_poll,
               use_swarm ? "; a clear-text bench_swarm" : "");
        if (clear.failures || async.failures)
            printf("(failed polls in either run: the ratio compares unlike work)\n");
    } else {
        printf("ratio monitor/baseline: not measured (%s)\n",
               baseline ? "the clear-text baseline failed" : "BENCH_BASELINE=0");
    }

    /* steady state: the real poller thread, every instance once per interval, the interval
       chosen for about 1000 polls/s (what two shared cores serve with the agents on them) */
    mon_free(m);
    m = NULL;
    s.interval_ms = n < 1000 ? 1000 : n;
    s.timeout_ms = 500;
    if (getenv("BENCH_INTERVAL_MS"))
        s.interval_ms = strtol(getenv("BENCH_INTERVAL_MS"), NULL, 10);
    if (getenv("BENCH_TIMEOUT_MS"))
        s.timeout_ms = strtol(getenv("BENCH_TIMEOUT_MS"), NULL, 10);
    s.fall = getenv("BENCH_FALL") ? (uint32_t)strtoul(getenv("BENCH_FALL"), NULL, 10) : 2;
    long rss0 = bench_status_kib(0, "VmRSS");
    if (mon_new(&s, f, &m, err, sizeof(err)) || mon_start(m)) {
        fprintf(stderr, "bench_monitor: cannot start the poller\n");
        return 1;
    }
    /* connect and spread: gRPC sets up a channel's connection on its first call, which costs
       far more than a poll; the window below starts once every instance has answered once
       (or after 60 s), and how long that took is printed */
    uint64_t *ok_before = calloc((size_t)n, sizeof(*ok_before));
    if (!ok_before)
        return 1;
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0)
            ok_before[i] = sl.polls_ok;
    double warm0 = wall_s();
    int answered = 0;
    while (wall_s() - warm0 < 60) {
        usleep(200 * 1000);
        answered = 0;
        for (int i = 0; i < n; i++)
            if (fleet_read(f, (uint32_t)i, &sl) == 0 && sl.polls_ok > ok_before[i])
                answered++;
        if (answered == n)
            break;
    }
    double warm = wall_s() - warm0;
    free(ok_before);
    /* one more interval for the spread to settle, or BENCH_SETTLE_S seconds (after a 10,000
       connection start the first cycles still carry the start's bunches) */
    int64_t settle = getenv("BENCH_SETTLE_S") ? strtol(getenv("BENCH_SETTLE_S"), NULL, 10) * 1000
                                              : s.interval_ms;
    usleep((useconds_t)settle * 1000);
    uint64_t ok0 = 0, ok1 = 0, bad0 = 0, bad1 = 0;
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0)
            ok0 += sl.polls_ok, bad0 += sl.polls_failed;
    long rss1 = bench_status_kib(0, "VmRSS");
    uint64_t def0 = atomic_load(&stats.polls_deferred);
    double sw0 = tree_cpu_s(child);
    double w0 = wall_s(), c0 = bench_self_cpu_s();
    int64_t span = 2 * s.interval_ms < 10000 ? 10000 : 2 * s.interval_ms;
    usleep((useconds_t)span * 1000);
    double w = wall_s() - w0, c = bench_self_cpu_s() - c0;
    double sw = tree_cpu_s(child) - sw0;
    uint64_t deferred = atomic_load(&stats.polls_deferred) - def0;
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0)
            ok1 += sl.polls_ok, bad1 += sl.polls_failed;
    int kill_n = getenv("BENCH_KILL") ? (int)strtol(getenv("BENCH_KILL"), NULL, 10) : 100;
    if (use_swarm && kill_n > 0 && kill_n < n)
        kill_and_watch(f, n, kill_n, swarm_cmd, (int)s.interval_ms);
    mon_stop(m);
    printf("thread   %d instances every %lld ms: %.0f polls/s (%llu failed), %.1f %% of one core, "
           "%.1f us CPU/poll\n",
           n, (long long)s.interval_ms, (double)(ok1 - ok0) / w, (unsigned long long)(bad1 - bad0),
           100.0 * c / w, ok1 > ok0 ? c * 1e6 / (double)(ok1 - ok0) : 0.0);
    printf("deferred %llu polls in the window (overload: neither ok nor failed)\n",
           (unsigned long long)deferred);
    printf("warm-up  %d of %d instances answered within %.1f s of the poller's start\n", answered,
           n, warm);
    printf("memory   RSS %ld KiB with the poller connected, %.1f KiB per instance over the process "
           "before it; agents' CPU %.1f %% of one core\n",
           rss1, (double)(rss1 - rss0) / n, 100.0 * sw / w);
    printf("ratio thread/monitor: %.2fx CPU per poll (1.0 = the raw unary limit of this run)\n",
           ok1 > ok0 ? (c * 1e6 / (double)(ok1 - ok0)) / async.cpu_us_per_poll : 0.0);
    if (have_seq)
        printf("ratio thread/seq:     %.2fx CPU per poll (seq = gRPC core's unary calls in this "
               "run)\n",
               ok1 > ok0 ? (c * 1e6 / (double)(ok1 - ok0)) / seq.cpu_us_per_poll : 0.0);
    else
        printf("ratio thread/seq:     not measured (%s)\n",
               tls_poller ? "BENCH_TLS: seq is a clear-text client; TLS against clear text is "
                            "the monitor/clear line"
                          : "BENCH_BASELINE=0");

    mon_free(m);
    fleet_close(f);
    (void)fleet_unlink(name);
    if (use_swarm) {
        kill(child, SIGTERM);
        close(swarm_cmd);
    } else {
        close(down); /* the child's agents stop */
    }
    waitpid(child, NULL, 0);
    free(addrs);
    free(clear_addrs);
    tls_conf_free(tls_poller);
    return 0;
}
