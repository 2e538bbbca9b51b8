/*
 * bench_util.c - the measuring helpers the benchmarks share (see bench_util.h).
 */
#include "support/bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"

double bench_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double bench_proc_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the name in parentheses may hold spaces: the fields start after the last ')';
       from there: state(3) ... utime(14) stime(15) */
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long bench_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t fl = strlen(field);
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':' &&
            sscanf(line + fl + 1, "%ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

int bench_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

struct tls_conf *bench_tls_load(const char *dir, const char *who, const char *server_name)
{
    char ca[512], cert[512], key[512], err[512];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/%s.pem", dir, who);
    snprintf(key, sizeof(key), "%s/%s.key", dir, who);
    struct tls_files f = {ca, cert, key, server_name};
    struct tls_conf *t = NULL;
    if (tls_conf_new(&f, &t, err, sizeof(err)) != 0)
        fprintf(stderr, "BENCH_TLS %s: %s\n", dir, err);
    return t;
}

/* the child of bench_agents_fork(): never returns */
static _Noreturn void agents_child(const struct test_method *methods, const char *tls_dir,
                                   int nservers, int up, int down)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct tls_conf *t = tls_dir ? bench_tls_load(tls_dir, "srv", NULL) : NULL;
    struct rpc_server **srv = calloc((size_t)nservers, sizeof(*srv));
    int *ports = calloc((size_t)nservers, sizeof(*ports));
    if ((tls_dir && !t) || !srv || !ports)
        _exit(1);
    struct test_server_opts so = {.tls = t, .methods = methods};
    for (int i = 0; i < nservers; i++) {
        srv[i] = test_server_start(&so, &ports[i], NULL, 0);
        if (!srv[i]) {
            fprintf(stderr, "bench: cannot start gRPC server %d\n", i);
            _exit(1);
        }
    }
    ssize_t want = (ssize_t)(sizeof(*ports) * (size_t)nservers);
    if (write(up, ports, (size_t)want) != want)
        _exit(1);
    char c;
    while (read(down, &c, 1) > 0)
        ;
    for (int i = 0; i < nservers; i++)
        rpc_server_free(srv[i]);
    free(srv);
    free(ports);
    tls_conf_free(t);
    _exit(0);
}

pid_t bench_agents_fork(const struct test_method *methods, const char *tls_dir, int nservers,
                        int *ports, int *down)
{
    int up[2], dn[2];
    if (pipe(up)) {
        perror("bench: pipe");
        return -1;
    }
    if (pipe(dn)) {
        perror("bench: pipe");
        close(up[0]);
        close(up[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench: fork");
        close(up[0]);
        close(up[1]);
        close(dn[0]);
        close(dn[1]);
        return -1;
    }
    if (pid == 0) {
        close(up[0]);
        close(dn[1]);
        agents_child(methods, tls_dir, nservers, up[1], dn[0]);
    }
    close(up[1]);
    close(dn[0]);
    ssize_t want = (ssize_t)(sizeof(*ports) * (size_t)nservers);
    ssize_t got = read(up[0], ports, (size_t)want);
    close(up[0]);
    if (got != want) {
        fprintf(stderr, "bench: the gRPC servers did not start\n");
        close(dn[1]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *down = dn[1];
    return pid;
}

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

static int one_group_get(void *arg, const char *name, struct http_group_ref *out)
{
    if (strcmp(name, "bench") != 0)
        return -ENOENT;
    out->fleet = arg;
    return 0;
}

int bench_http_start(struct store *st, struct fleet *f, struct http_server **srv, char *base,
                     size_t baselen, char *err, size_t errlen)
{
    static const struct http_node_ops ops = {.group_get = one_group_get};
    struct http_deps d = {
        .listen = "127.0.0.1:0", .token = "t", .store = st, .ops = &ops, .ops_arg = f};
    if (http_start(&d, srv, err, errlen))
        return -1;
    snprintf(base, baselen, "http://127.0.0.1:%u", (unsigned)http_bound_port(*srv));
    return 0;
}
