/*
 * bench_util.c - the measuring helpers the benchmarks share (see bench_util.h).
 */
#include "support/bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
