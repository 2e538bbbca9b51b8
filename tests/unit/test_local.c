/*
 * Unit tests for provider/local: real detached processes. The "agent" is a
 * small shell script (it ignores monitorc's flags and sleeps), so these tests
 * check the provider itself: the idempotency token, addresses, pid files,
 * describe pruning dead processes, terminate with SIGTERM then SIGKILL, a
 * recycled pid never mistaken for ours, and the constructor's errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "provider/local.h"

#include "common/banned.h"

struct fx {
    char dir[64];
    char agent[128];
    char stubborn[128];
    struct provider *p;
};

static void write_script(const char *path, const char *body)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\n%s\n", body);
    fclose(fp);
    assert_int_equal(chmod(path, 0755), 0);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    snprintf(x->dir, sizeof(x->dir), "/tmp/test-local-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->agent, sizeof(x->agent), "%s/agent.sh", x->dir);
    snprintf(x->stubborn, sizeof(x->stubborn), "%s/stubborn.sh", x->dir);
    /* like monitorc: "ok" on --ready-fd 3 once serving */
    write_script(x->agent, "echo ok >&3; exec 3>&-; exec sleep 300");
    write_script(x->stubborn, "echo ok >&3; exec 3>&-; trap '' TERM; while :; do sleep 1; done");
    struct local_settings s = {
        .group = "web",
        .state_dir = x->dir,
        .agent_path = x->agent,
        .agent_args = "--load  file:/nonexistent   --log-level warn",
        .address_base = "127.3.4.2",
        .agent_port = 50051,
        .kill_timeout_ms = 500,
    };
    char err[256];
    assert_int_equal(provider_local_new(&s, &x->p, err, sizeof(err)), 0);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    struct prov_list l = PROV_LIST_INIT;
    if (provider_describe(x->p, &l) == 0) {
        for (size_t i = 0; i < l.n; i++)
            if (l.items[i].pid > 0) /* 0: a reservation (kill(0) would hit us) */
                kill(l.items[i].pid, SIGKILL);
    }
    prov_list_release(&l);
    provider_free(x->p);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

static int alive(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[2] != 'Z';
}

static void launch_is_idempotent_by_token(void **state)
{
    struct fx *x = *state;
    struct prov_list a = PROV_LIST_INIT, b = PROV_LIST_INIT, d = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 2, "tok-1", &a), 0);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.items[0].address, "127.3.4.2:50051");
    assert_string_equal(a.items[1].address, "127.3.4.3:50051");
    assert_true(strncmp(a.items[0].id, "web-", 4) == 0);
    assert_true(alive(a.items[0].pid) && alive(a.items[1].pid));
    /* the same token again: the same two, nothing new */
    assert_int_equal(provider_launch(x->p, 2, "tok-1", &b), 0);
    assert_int_equal(b.n, 2);
    assert_true(strcmp(a.items[0].id, b.items[0].id) == 0 ||
                strcmp(a.items[0].id, b.items[1].id) == 0);
    assert_int_equal(provider_describe(x->p, &d), 0);
    assert_int_equal(d.n, 2);
    prov_list_release(&a);
    prov_list_release(&b);
    prov_list_release(&d);
}

static void describe_prunes_dead_and_terminate_kills(void **state)
{
    struct fx *x = *state;
    struct prov_list a = PROV_LIST_INIT, d = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 3, "tok-2", &a), 0);
    kill(a.items[0].pid, SIGKILL);
    for (int i = 0; i < 100 && alive(a.items[0].pid); i++)
        usleep(10000);
    assert_int_equal(provider_describe(x->p, &d), 0);
    assert_int_equal(d.n, 2);
    prov_list_release(&d);
    /* the freed address is reused */
    struct prov_list c = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 1, "tok-3", &c), 0);
    assert_string_equal(c.items[0].address, a.items[0].address);
    const char *ids[] = {a.items[1].id, c.items[0].id, "web-doesnotexist", "../../etc/passwd"};
    assert_int_equal(provider_terminate(x->p, ids, 4), 0);
    assert_false(alive(a.items[1].pid));
    assert_false(alive(c.items[0].pid));
    assert_int_equal(provider_describe(x->p, &d), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].id, a.items[2].id);
    prov_list_release(&a);
    prov_list_release(&c);
    prov_list_release(&d);
}

static void terminate_escalates_to_sigkill(void **state)
{
    struct fx *x = *state;
    struct local_settings s = {
        .group = "web",
        .state_dir = x->dir,
        .agent_path = x->stubborn,
        .address_base = "127.3.5.2",
        .agent_port = 50051,
        .kill_timeout_ms = 300,
    };
    struct provider *p = NULL;
    char err[256];
    assert_int_equal(provider_local_new(&s, &p, err, sizeof(err)), 0);
    struct prov_list a = PROV_LIST_INIT;
    assert_int_equal(provider_launch(p, 1, "tok-4", &a), 0);
    usleep(200000); /* let the trap be installed */
    const char *ids[] = {a.items[0].id};
    assert_int_equal(provider_terminate(p, ids, 1), 0);
    for (int i = 0; i < 100 && alive(a.items[0].pid); i++)
        usleep(10000);
    assert_false(alive(a.items[0].pid));
    prov_list_release(&a);
    provider_free(p);
}

static void recycled_pid_is_not_ours(void **state)
{
    struct fx *x = *state;
    /* a pid file naming a live process that is not ours (pid 1, wrong start time) */
    char path[256];
    snprintf(path, sizeof(path), "%s/local/web-forged.pid", x->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "id=web-forged\npid=%d\nstarttime=1\naddress=127.3.4.9:50051\n"
            "launched_at_ms=1\ntoken=t\n",
            (int)getppid());
    fclose(fp);
    struct prov_list d = PROV_LIST_INIT;
    assert_int_equal(provider_describe(x->p, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(access(path, F_OK), -1); /* forgotten */
    /* garbage pid files are ignored */
    snprintf(path, sizeof(path), "%s/local/junk.pid", x->dir);
    fp = fopen(path, "w");
    fprintf(fp, "pid=notanumber\n\x01\x02garbage without newline");
    fclose(fp);
    assert_int_equal(provider_describe(x->p, &d), 0);
    assert_int_equal(d.n, 0);
    prov_list_release(&d);
}

static void constructor_errors(void **state)
{
    struct fx *x = *state;
    struct provider *p = NULL;
    char err[256];
    struct local_settings s = {.group = "web",
                               .state_dir = x->dir,
                               .agent_path = x->agent,
                               .address_base = "8.8.8.8",
                               .agent_port = 1};
    assert_int_equal(provider_local_new(&s, &p, err, sizeof(err)), PROV_EINVAL);
    assert_non_null(strstr(err, "8.8.8.8"));
    s.address_base = "127.0.0.2";
    s.agent_path = "/nonexistent/monitorc";
    assert_int_equal(provider_local_new(&s, &p, err, sizeof(err)), PROV_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/monitorc"));
    s.agent_path = x->agent;
    s.state_dir = "/proc/forbidden";
    assert_true(provider_local_new(&s, &p, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/proc/forbidden"));
    assert_null(p);
    struct prov_list l = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 0, "t", &l), PROV_EINVAL);
    assert_int_equal(provider_launch(x->p, 1,
                                     "a-token-that-is-far-too-long-for-any-provider-to-accept-"
                                     "at-all-really",
                                     &l),
                     PROV_EINVAL);
    assert_string_equal(provider_name(x->p), "local");
    provider_free(NULL);
}

/* A listener of another process on the next address: skipped, the next free one is used. */
static void taken_address_is_skipped(void **state)
{
    struct fx *x = *state;
    int sq = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sq >= 0);
    int one = 1;
    setsockopt(sq, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(50051)};
    inet_pton(AF_INET, "127.3.4.2", &sa.sin_addr);
    assert_int_equal(bind(sq, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(sq, 1), 0);
    struct prov_list a = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 2, "tok-sq", &a), 0);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.items[0].address, "127.3.4.3:50051");
    assert_string_equal(a.items[1].address, "127.3.4.4:50051");
    prov_list_release(&a);
    /* once the squatter leaves, its address is used again */
    close(sq);
    assert_int_equal(provider_launch(x->p, 1, "tok-sq2", &a), 0);
    assert_string_equal(a.items[0].address, "127.3.4.2:50051");
    prov_list_release(&a);
}

/* An agent that says why it cannot serve fails the launch with that reason; nothing is left. */
static void agent_startup_failure_is_the_launch_error(void **state)
{
    struct fx *x = *state;
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/bad.sh", x->dir);
    write_script(bad, "echo 'cannot listen on \"127.3.4.2:50051\" (in use)' >&3; exit 3");
    struct local_settings s = {
        .group = "web",
        .state_dir = x->dir,
        .agent_path = bad,
        .address_base = "127.3.4.2",
        .agent_port = 50051,
    };
    struct provider *p = NULL;
    char err[256];
    assert_int_equal(provider_local_new(&s, &p, err, sizeof(err)), 0);
    struct prov_list a = PROV_LIST_INIT, d = PROV_LIST_INIT;
    assert_int_equal(provider_launch(p, 1, "tok-bad", &a), PROV_ERETRY);
    assert_int_equal(a.n, 0);
    assert_non_null(strstr(provider_errmsg(p), "did not start: cannot listen on"));
    assert_int_equal(provider_describe(p, &d), 0);
    assert_int_equal(d.n, 0);
    /* silent death (exit before a word) is a failure too */
    write_script(bad, "exit 1");
    assert_int_equal(provider_launch(p, 1, "tok-bad2", &a), PROV_ERETRY);
    assert_non_null(strstr(provider_errmsg(p), "exited before serving"));
    provider_free(p);
}

/* Pid files and logs are the operator's alone; the directory too. */
static void files_are_private(void **state)
{
    struct fx *x = *state;
    struct prov_list a = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 1, "tok-mode", &a), 0);
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/local", x->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/local/%s.pid", x->dir, a.items[0].id);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    snprintf(path, sizeof(path), "%s/local/%s.log", x->dir, a.items[0].id);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    prov_list_release(&a);
}

static void write_reservation(const struct fx *x, const char *id, const char *token,
                              long long launched_at_ms)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/local/%s.pid", x->dir, id);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "id=%s\npid=0\nstarttime=0\naddress=127.3.4.2:50051\nlaunched_at_ms=%lld\n"
            "token=%s\n",
            id, launched_at_ms, token);
    fclose(fp);
}

/* A pid file written before a spawn that a crash interrupted: counted while it may still
 * come true (the re-sent launch returns it), dropped once stale. */
static void reservation_counts_then_expires(void **state)
{
    struct fx *x = *state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    write_reservation(x, "web-0000aaaa", "tok-crash", now);
    write_reservation(x, "web-0000bbbb", "tok-old", now - 60000);
    struct prov_list d = PROV_LIST_INIT, a = PROV_LIST_INIT;
    assert_int_equal(provider_describe(x->p, &d), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].id, "web-0000aaaa");
    assert_int_equal(d.items[0].state, PROV_PENDING);
    assert_int_equal(d.items[0].pid, 0);
    prov_list_release(&d);
    /* the re-sent launch: nothing spawned, the reservation returned */
    assert_int_equal(provider_launch(x->p, 1, "tok-crash", &a), 0);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.items[0].id, "web-0000aaaa");
    prov_list_release(&a);
    /* its address is in use: another launch goes to the next one */
    assert_int_equal(provider_launch(x->p, 1, "tok-next", &a), 0);
    assert_string_equal(a.items[0].address, "127.3.4.3:50051");
    assert_true(alive(a.items[0].pid));
    prov_list_release(&a);
    /* the stale one is gone for good */
    char path[256];
    snprintf(path, sizeof(path), "%s/local/web-0000bbbb.pid", x->dir);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* The pid file exists as soon as the agent does, written by the spawn itself. */
static void pid_file_names_the_agent(void **state)
{
    struct fx *x = *state;
    struct prov_list a = PROV_LIST_INIT;
    assert_int_equal(provider_launch(x->p, 1, "tok-pf", &a), 0);
    char path[256], buf[512];
    snprintf(path, sizeof(path), "%s/local/%s.pid", x->dir, a.items[0].id);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char want[64];
    snprintf(want, sizeof(want), "pid=%d\n", a.items[0].pid);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "token=tok-pf\n"));
    assert_null(strstr(buf, "starttime=0\n"));
    prov_list_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(launch_is_idempotent_by_token, setup, teardown),
        cmocka_unit_test_setup_teardown(describe_prunes_dead_and_terminate_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(terminate_escalates_to_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(recycled_pid_is_not_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(constructor_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(taken_address_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(agent_startup_failure_is_the_launch_error, setup, teardown),
        cmocka_unit_test_setup_teardown(files_are_private, setup, teardown),
        cmocka_unit_test_setup_teardown(reservation_counts_then_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(pid_file_names_the_agent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
