/*
 * bench/agent.c - what monitorc costs the instance it runs on.
 *
 * Measures, for the real build/bin/monitorc and, as the baseline in the same
 * run, for the seed-style Python agent (tests/tools/seed_agent.py, grpcio):
 *   - idle resident memory (VmRSS) and idle CPU (% of one core over 10 s; the kernel counts in 10
 * ms ticks),
 *   - agent CPU per poll while polled at 1,000 polls/s for 5 s, where a poll
 *     is the seed's pair GetStatus + GetMemoryUsage, sent by the async rpc
 *     client over one persistent channel (how MonitorS polls),
 *   - the poller's own CPU per poll (this process, i.e. MonitorS's side),
 *   - how long after an agent restart a persistent channel answers again,
 *     with rpc.h's settings (reconnect backoff, 100 ms backup poller) and, as
 *     its baseline, gRPC's defaults (measured in a child process, because
 *     gRPC reads the backup poller interval once per process).
 * Prints the numbers and the ratio baseline / monitorc. No thresholds: the
 * machine is shared and noisy (+-30 %). The baseline is skipped, and said
 * so, when /usr/bin/python3 with grpcio or the seed agent is missing.
 *
 * Environment: ASGD_BUILD_DIR (default: the parent of this program's
 * directory), ASGD_SOURCE_DIR (default: the parent of the build directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/clock.h"
#include "monitor.pb-c.h"
#include "rpc/rpc.h"
#include "support/bench_util.h"

#include "common/banned.h"

enum { RATE = 1000, LOAD_SECONDS = 5, IDLE_SECONDS = 10 };

struct figures {
    int ok;
    double rss_mb, anon_mb, idle_cpu_pct, polls_per_s, agent_us_per_poll, poller_us_per_poll;
    long failed;
};

/* KiB as MB; unknown (-1) stays negative */
static double mb_of(long kib)
{
    return kib < 0 ? -1 : (double)kib / 1024.0;
}

/* Starts argv with stdin from a pipe (kept open; *in_fd) and stdout to a pipe
 * if out_fd, else /dev/null. Returns the pid or -1. */
static pid_t spawn(char *const argv[], int *in_fd, int *out_fd)
{
    int in[2], out[2] = {-1, -1};
    if (pipe(in) != 0)
        return -1;
    if (out_fd && pipe(out) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(out_fd ? out[1] : devnull, 1);
        dup2(devnull, 2);
        close(in[1]);
        if (out_fd)
            close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    *in_fd = in[1];
    if (out_fd) {
        close(out[1]);
        *out_fd = out[0];
    }
    return pid;
}

static void stop(pid_t pid, int in_fd)
{
    close(in_fd);
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int ready(const char *target)
{
    uint8_t empty[1];
    int64_t end = clk_mono_ms() + 15000;
    while (clk_mono_ms() < end) {
        struct rpc_result r = RPC_RESULT_INIT;
        if (rpc_call_sync(target, "/MonitorC/GetStatus", empty, 0, 1000, &r) == 0 &&
            r.status == GRPC_STATUS_OK) {
            rpc_result_release(&r);
            return 1;
        }
        rpc_result_release(&r);
        usleep(100000);
    }
    return 0;
}

struct load_run {
    long done, failed;
};

static void on_done(void *arg, grpc_status_code st, const char *details, const uint8_t *data,
                    size_t len)
{
    struct load_run *lr = arg;
    lr->done++;
    if (st != GRPC_STATUS_OK)
        lr->failed++;
}

/* Measures one running agent at target, pid. */
static void measure(pid_t pid, const char *target, struct figures *f)
{
    memset(f, 0, sizeof(*f));
    if (!ready(target))
        return;
    sleep(1); /* let start-up work settle */
    double c0 = bench_proc_cpu_s(pid);
    sleep(IDLE_SECONDS);
    double c1 = bench_proc_cpu_s(pid);
    f->rss_mb = mb_of(bench_status_kib(pid, "VmRSS"));
    f->anon_mb = mb_of(bench_status_kib(pid, "RssAnon"));
    f->idle_cpu_pct = 100.0 * (c1 - c0) / IDLE_SECONDS;

    struct rpc_client *cl = rpc_client_new(NULL);
    struct rpc_channel *ch = rpc_channel_new(cl, target);
    Request rq = REQUEST__INIT;
    rq.code = 1;
    uint8_t *req = NULL;
    size_t len = 0;
    if (!cl || !ch || rpc_pack(&rq.base, &req, &len))
        goto out;
    struct load_run lr = {0, 0};
    long issued = 0;
    double a0 = bench_proc_cpu_s(pid), s0 = bench_self_cpu_s();
    int64_t t0 = clk_mono_ms(), end = t0 + LOAD_SECONDS * 1000;
    for (;;) {
        int64_t now = clk_mono_ms();
        if (now >= end)
            break;
        long due = (long)((now - t0) * RATE / 1000);
        while (issued < due && issued - lr.done / 2 < 2000) {
            if (rpc_client_call(cl, ch, "/MonitorC/GetStatus", req, len, 2000, on_done, &lr) ||
                rpc_client_call(cl, ch, "/MonitorC/GetMemoryUsage", req, len, 2000, on_done, &lr))
                lr.failed++;
            issued++;
        }
        rpc_client_poll(cl, 1);
    }
    while (rpc_client_inflight(cl) > 0 && clk_mono_ms() < end + 3000)
        rpc_client_poll(cl, 10);
    double elapsed = (double)(clk_mono_ms() - t0) / 1000.0;
    double a1 = bench_proc_cpu_s(pid), s1 = bench_self_cpu_s();
    long polls = lr.done / 2;
    if (polls > 0) {
        f->ok = 1;
        f->polls_per_s = (double)polls / (LOAD_SECONDS);
        f->agent_us_per_poll = 1e6 * (a1 - a0) / (double)polls;
        f->poller_us_per_poll = 1e6 * (s1 - s0) / (double)polls;
        f->failed = lr.failed;
    }
    (void)elapsed;
out:
    free(req);
    rpc_client_free(cl);
}

/* Time from an agent's restart (after kill -9 and 1.5 s of failing polls) until
 * a persistent channel with these options answers again, ms; -1 on failure. */
static double reconnect_ms(char *const argv[], const char *target, const struct rpc_client_opts *o)
{
    double result = -1;
    int in_fd = -1;
    pid_t pid = spawn(argv, &in_fd, NULL);
    if (pid < 0 || !ready(target))
        goto out;
    struct rpc_client *cl = rpc_client_new(o);
    struct rpc_channel *ch = rpc_channel_new(cl, target);
    struct load_run lr = {0, 0};
    uint8_t empty[1];
    if (!ch)
        goto done;
    rpc_client_call(cl, ch, "/MonitorC/GetStatus", empty, 0, 1000, on_done, &lr);
    while (rpc_client_inflight(cl) > 0)
        rpc_client_poll(cl, 100);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(in_fd);
    pid = -1;
    int64_t until = clk_mono_ms() + 1500;
    while (clk_mono_ms() < until) {
        rpc_client_call(cl, ch, "/MonitorC/GetStatus", empty, 0, 200, on_done, &lr);
        while (rpc_client_inflight(cl) > 0)
            rpc_client_poll(cl, 100);
        usleep(50000);
    }
    pid = spawn(argv, &in_fd, NULL);
    int64_t t0 = clk_mono_ms();
    while (pid > 0 && clk_mono_ms() - t0 < 30000) {
        long failed = lr.failed;
        rpc_client_call(cl, ch, "/MonitorC/GetStatus", empty, 0, 200, on_done, &lr);
        while (rpc_client_inflight(cl) > 0)
            rpc_client_poll(cl, 100);
        if (lr.failed == failed) {
            result = (double)(clk_mono_ms() - t0);
            break;
        }
        usleep(20000);
    }
done:
    rpc_client_free(cl);
out:
    if (pid > 0)
        stop(pid, in_fd);
    return result;
}

static void row(const char *name, int decimals, double a, double b, int have_b)
{
    char sa[32], sb[32];
    snprintf(sa, sizeof(sa), "%.*f", decimals, a);
    if (have_b)
        snprintf(sb, sizeof(sb), "%.*f", decimals, b);
    else
        snprintf(sb, sizeof(sb), "-");
    if (have_b && a > 0)
        printf("  %-28s %12s %12s %9.1fx\n", name, sa, sb, b / a);
    else
        printf("  %-28s %12s %12s %10s\n", name, sa, sb, "-");
}

/* The baseline of the reconnect figure runs in a child with gRPC's default
 * backup poller (5 s): gRPC reads it once per process. Prints ms. */
static double reconnect_default_child(const char *exe, char *const margv[])
{
    char cmd[2 * PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd),
             "GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS=5000 '%s' "
             "--reconnect-default '%s'",
             exe, margv[0]);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    double ms = -1;
    if (fscanf(p, "%lf", &ms) != 1)
        ms = -1;
    pclose(p);
    return ms;
}

int main(int argc, char **argv)
{
    char exe[PATH_MAX], build[PATH_MAX], src[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return 1;
    if (argc == 3 && strcmp(argv[1], "--reconnect-default") == 0) {
        char listen_arg[64], target[64];
        int port = bench_free_port();
        snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", port);
        snprintf(target, sizeof(target), "127.0.0.1:%d", port);
        char *margv[] = {argv[2],  "--listen", listen_arg,    "--instance-id", "bench",
                         "--load", "simulate", "--log-level", "warn",          NULL};
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        struct rpc_client_opts dflt = RPC_CLIENT_OPTS_INIT;
        dflt.reconnect_initial_ms = 1000;
        dflt.reconnect_min_ms = 20000;
        dflt.reconnect_max_ms = 120000;
        printf("%.0f\n", reconnect_ms(margv, target, &dflt));
        return 0;
    }
    exe[n] = '\0';
    const char *env_build = getenv("ASGD_BUILD_DIR");
    char copy[PATH_MAX]; /* dirname() writes into its argument */
    snprintf(copy, sizeof(copy), "%s", exe);
    snprintf(build, sizeof(build), "%s", env_build ? env_build : dirname(dirname(copy)));
    const char *env_src = getenv("ASGD_SOURCE_DIR");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", build);
    snprintf(src, sizeof(src), "%s", env_src ? env_src : dirname(tmp));

    char agent_bin[PATH_MAX + 32], seed[PATH_MAX + 48], pypath[2 * PATH_MAX + 64];
    snprintf(agent_bin, sizeof(agent_bin), "%s/bin/monitorc", build);
    snprintf(seed, sizeof(seed), "%s/tests/tools/seed_agent.py", src);
    snprintf(pypath, sizeof(pypath), "PYTHONPATH=%s/gen/py:%s/tests/tools", build, src);
    if (access(agent_bin, X_OK) != 0) {
        fprintf(stderr, "bench_agent: no monitorc at \"%s\" (set ASGD_BUILD_DIR)\n", agent_bin);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    /* monitorc */
    int port = bench_free_port();
    char listen_arg[64], target[64];
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", port);
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    char *margv[] = {agent_bin, "--listen", listen_arg,    "--instance-id", "bench",
                     "--load",  "simulate", "--log-level", "warn",          NULL};
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    int in_fd = -1;
    pid_t pid = spawn(margv, &in_fd, NULL);
    if (pid < 0) {
        fprintf(stderr, "bench_agent: cannot start monitorc\n");
        return 1;
    }
    struct figures c;
    measure(pid, target, &c);
    stop(pid, in_fd);
    /* how soon a poller sees a restarted agent: rpc.h's tuned reconnect backoff
     * vs gRPC's defaults (1 s initial, 20 s connect timeout, 120 s cap) */
    struct rpc_client_opts tuned = RPC_CLIENT_OPTS_INIT;
    double rc_tuned = reconnect_ms(margv, target, &tuned);
    double rc_dflt = reconnect_default_child(exe, margv);
    if (!c.ok) {
        fprintf(stderr, "bench_agent: monitorc did not answer\n");
        return 1;
    }

    /* baseline: the seed-style Python agent, same polls */
    struct figures py;
    memset(&py, 0, sizeof(py));
    if (access("/usr/bin/python3", X_OK) == 0 && access(seed, R_OK) == 0) {
        putenv(pypath);
        char *pargv[] = {"/usr/bin/python3", seed, "--listen", "127.0.0.1:0", NULL};
        int out_fd = -1;
        pid = spawn(pargv, &in_fd, &out_fd);
        if (pid > 0) {
            char line[32] = "";
            ssize_t got = 0, r;
            while (got < (ssize_t)sizeof(line) - 1 && (r = read(out_fd, line + got, 1)) == 1 &&
                   line[got] != '\n')
                got++;
            line[got] = '\0';
            long p = strtol(line, NULL, 10);
            if (p > 0 && p < 65536) {
                snprintf(target, sizeof(target), "127.0.0.1:%ld", p);
                measure(pid, target, &py);
            }
            close(out_fd);
            stop(pid, in_fd);
        }
    }

    printf("bench_agent: monitorc vs the seed-style Python agent (grpcio), measured in this run\n");
    printf("  poll = GetStatus + GetMemoryUsage, %d polls/s for %d s over one channel\n", RATE,
           LOAD_SECONDS);
    printf("  %-28s %12s %12s %10s\n", "", "monitorc", "seed agent", "seed/C");
    row("idle RSS (MB)", 1, c.rss_mb, py.rss_mb, py.ok);
    row("idle private memory (MB)", 1, c.anon_mb, py.anon_mb, py.ok);
    row("idle CPU (% of a core)", 2, c.idle_cpu_pct, py.idle_cpu_pct, py.ok);
    row("polls/s answered", 0, c.polls_per_s, py.polls_per_s, py.ok);
    row("agent CPU per poll (us)", 1, c.agent_us_per_poll, py.agent_us_per_poll, py.ok);
    row("poller CPU per poll (us)", 1, c.poller_us_per_poll, py.poller_us_per_poll, py.ok);
    printf("  failed calls: monitorc %ld, seed agent %ld\n", c.failed, py.failed);
    if (rc_tuned < 0 || rc_dflt < 0)
        printf("  (a reconnect figure of -1 means that run failed)\n");
    printf("  restarted agent answers a persistent channel again after: %.0f ms with rpc.h's\n"
           "  settings, %.0f ms with gRPC's defaults (ratio %.1fx)\n",
           rc_tuned, rc_dflt, rc_tuned > 0 ? rc_dflt / rc_tuned : 0.0);
    if (!py.ok)
        printf("  (baseline unavailable: needs /usr/bin/python3 with grpcio and %s)\n", seed);
    return 0;
}
