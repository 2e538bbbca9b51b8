/*
 * test_swarm_poller - the real poller thread against 2,000 agents of one bench_swarm.
 *
 * Behaviour, not timing: every instance becomes healthy; 100 agents killed at
 * once all become unhealthy; 20 hung agents (never answering) become unhealthy
 * too; none of the other 1,880 ever leaves HEALTHY (its health_changed_ms does
 * not move), whatever the machine's load (overload is deferred, never a
 * failure). Waits are generous (minutes) and only bound a hang.
 *
 * Needs build/bench/bench_swarm (ASGD_BUILD_DIR); skipped when it is missing
 * (libnghttp2-dev absent). Uses 127.79.0.1 onwards and a free port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "fleet/fleet.h"
#include "monitor/mon.h"
#include "common/banned.h"

enum { N = 2000, KILLED = 100, HUNG = 20, DROPPING = 20 };

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
        getsockname(fd, (struct sockaddr *)&sa, &len))
        return -1;
    close(fd);
    return ntohs(sa.sin_port);
}

/* all of idx[lo..hi) in health h; returns how many are */
static int count_health(struct fleet *f, int lo, int hi, int h)
{
    int n = 0;
    struct fleet_slot sl;
    for (int i = lo; i < hi; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0 && sl.health == h)
            n++;
    return n;
}

static void swarm_kills_are_detected_and_nobody_flaps(void **state)
{
    (void)state;
    const char *bld = getenv("ASGD_BUILD_DIR");
    char bin[512], list[128], nbuf[16], pbuf[16];
    snprintf(bin, sizeof(bin), "%s/bench/bench_swarm", bld ? bld : "build");
    if (access(bin, X_OK) != 0)
        skip();
    snprintf(list, sizeof(list), "/tmp/test-swarm-poller-%d.list", (int)getpid());
    snprintf(nbuf, sizeof(nbuf), "%d", N);
    int port = free_port();
    assert_true(port > 0);
    snprintf(pbuf, sizeof(pbuf), "%d", port);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl(bin, bin, "-n", nbuf, "-b", "127.79.0.1", "-p", pbuf, "-l", list, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    FILE *o = fdopen(out[0], "r");
    assert_non_null(o);
    char line[128] = "";
    assert_non_null(fgets(line, sizeof(line), o));
    assert_int_equal(strncmp(line, "ready", 5), 0);

    char name[64];
    snprintf(name, sizeof(name), "test-swarm-%d", (int)getpid());
    (void)fleet_unlink(name);
    struct fleet *f = NULL;
    assert_int_equal(fleet_open(name, N, 1, &f), 0);
    FILE *l = fopen(list, "r");
    assert_non_null(l);
    char id[64], addr[64];
    for (int i = 0; i < N; i++) {
        uint32_t idx;
        assert_int_equal(fscanf(l, "%63s %63s", id, addr), 2);
        assert_int_equal(fleet_alloc(f, id, addr, clk_wall_ms(), &idx), 0);
        assert_int_equal((int)idx, i);
    }
    fclose(l);
    unlink(list);

    struct mon_settings s;
    mon_settings_init(&s);
    s.listen = NULL;
    s.interval_ms = 1000;
    s.timeout_ms = 500;
    s.rise = 2;
    s.fall = 2;
    struct mon *m = NULL;
    char err[256];
    assert_int_equal(mon_new(&s, f, &m, err, sizeof(err)), 0);
    assert_int_equal(mon_start(m), 0);

    /* every instance healthy */
    int64_t t0 = clk_mono_ms();
    while (count_health(f, 0, N, FLEET_HEALTH_HEALTHY) < N && clk_mono_ms() - t0 < 180000)
        usleep(200 * 1000);
    assert_int_equal(count_health(f, 0, N, FLEET_HEALTH_HEALTHY), N);

    /* remember when each survivor last changed, then kill and hang some */
    int64_t *changed = calloc(N, sizeof(*changed));
    assert_non_null(changed);
    struct fleet_slot sl;
    for (int i = 0; i < N; i++) {
        assert_int_equal(fleet_read(f, (uint32_t)i, &sl), 0);
        changed[i] = sl.health_changed_ms;
    }
    /* and some that close their connection after every answer: still healthy, and polled
       once an interval plus at most one early poll (a closed connection brings the next poll
       forward once an interval, never in a loop) */
    uint64_t *polls0 = calloc(DROPPING, sizeof(*polls0));
    assert_non_null(polls0);
    for (int i = 0; i < DROPPING; i++) {
        assert_int_equal(fleet_read(f, (uint32_t)(KILLED + HUNG + i), &sl), 0);
        polls0[i] = sl.polls_ok + sl.polls_failed;
    }
    int64_t td = clk_mono_ms();
    char cmd[96];
    int len = snprintf(cmd, sizeof(cmd), "kill 0-%d\nhang %d-%d\ndrop %d-%d\n", KILLED - 1, KILLED,
                       KILLED + HUNG - 1, KILLED + HUNG, KILLED + HUNG + DROPPING - 1);
    assert_int_equal(write(in[1], cmd, (size_t)len), len);
    assert_non_null(fgets(line, sizeof(line), o)); /* "ok kill ..." */
    assert_int_equal(strncmp(line, "ok kill", 7), 0);

    t0 = clk_mono_ms();
    while (count_health(f, 0, KILLED + HUNG, FLEET_HEALTH_UNHEALTHY) < KILLED + HUNG &&
           clk_mono_ms() - t0 < 120000)
        usleep(100 * 1000);
    assert_int_equal(count_health(f, 0, KILLED, FLEET_HEALTH_UNHEALTHY), KILLED);
    assert_int_equal(count_health(f, KILLED, KILLED + HUNG, FLEET_HEALTH_UNHEALTHY), HUNG);
    sleep(3); /* a few more cycles for a flap to show */
    int flapped = 0;
    for (int i = KILLED + HUNG; i < N; i++) {
        assert_int_equal(fleet_read(f, (uint32_t)i, &sl), 0);
        if (sl.health != FLEET_HEALTH_HEALTHY || sl.health_changed_ms != changed[i])
            flapped++;
    }
    assert_int_equal(flapped, 0);
    int64_t secs = (clk_mono_ms() - td) / 1000 + 1;
    for (int i = 0; i < DROPPING; i++) {
        assert_int_equal(fleet_read(f, (uint32_t)(KILLED + HUNG + i), &sl), 0);
        uint64_t polls = sl.polls_ok + sl.polls_failed - polls0[i];
        assert_true(polls >= 2);
        assert_true(polls <= (uint64_t)(2 * secs + 2));
    }
    free(polls0);

    mon_stop(m);
    mon_free(m);
    fleet_close(f);
    (void)fleet_unlink(name);
    free(changed);
    close(in[1]); /* the swarm keeps serving on EOF: end it */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    fclose(o);
}

int main(void)
{
    log_set_level(getenv("MON_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(swarm_kills_are_detected_and_nobody_flaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
