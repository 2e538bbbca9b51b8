/*
 * bench_conn_mem - what one agent connection of the poller costs in memory and CPU, clear text
 * against mutual TLS, measured in the same run.
 *
 * For each N (argv; default 1,000 and 5,000) and each transport, a fresh process of this
 * program (so that its heap holds nothing but this one measurement, and OpenSSL's allocator
 * hooks are installed before OpenSSL allocates anything) starts one bench_swarm of N agents
 * (each on its own loopback address; with TLS, bench_swarm --tls with a certificate for the
 * name "localhost", checked by the poller as [monitor] tls_server_name), runs the real poller
 * thread (mon_start(): interval BENCH_INTERVAL_MS, default 2,000; new TLS connections at the
 * poller's own connect rate) until every agent answered once, waits one more interval, and
 * reads:
 *   RSS      growth of the process's resident memory over the process before the poller,
 *            per connection (what an operator sees);
 *   heap     growth of the bytes malloc has handed out (mallinfo2: live allocations only, no
 *            freed-but-resident memory), per connection;
 *   OpenSSL  bytes and allocations OpenSSL holds (CRYPTO_set_mem_functions), per connection;
 *   trim     RSS growth per connection after malloc_trim(0) (RSS - trim: memory malloc had
 *            freed but still held);
 *   CPU      user + system CPU per poll in the steady state (a window of two intervals), and
 *            per connection for the warm-up (the connect, the handshake, the first poll).
 * Then prints the ratios TLS / clear text for each N, and what the agent's certificate alone
 * costs as a handshake leaves it in every connection's session (decoded, its key and extension
 * caches filled by the verification): OpenSSL 3.0 has no call to drop it from an open one.
 *
 * BENCH_AGENTS=grpc serves the instances from gRPC core servers instead (what monitorc is
 * made of; 250 instances on each, on 127.0.0.1), in a child process of the measurement.
 * BENCH_TLS_KEY=rsa makes RSA-2048 certificates instead of P-256. BENCH_SITES=K prints, for
 * each TLS run, the K OpenSSL source lines holding the most bytes per connection (the
 * counting then adds 16 bytes to each of OpenSSL's blocks, which shows in RSS and heap).
 * The counting costs CPU too (an atomic add and malloc_usable_size() per OpenSSL allocation,
 * a few per poll): BENCH_COUNT=0 leaves OpenSSL's allocator alone (its column is then 0).
 * "bench_conn_mem --one plain|tls N CERTDIR" is one measurement alone (e.g. under heaptrack);
 * its result line starts with "result".
 */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/clock.h"
#include "common/log.h"
#include "fleet/fleet.h"
#include "monitor.pb-c.h"
#include "monitor/mon.h"
#include "rpc/rpc.h"
#include "support/bench_util.h"
#include "support/grpc_server.h"
#include "tls/tls.h"

#include "common/banned.h"

/* --- OpenSSL's allocations, counted ------------------------------------------------------- */

/* Counted as malloc's usable size of each block (no header: the process's RSS stays what it
   would be without the counting). With BENCH_SITES each block carries a header instead, with
   its size and the index of the source line that allocated it (16 bytes: the caller's
   alignment stays malloc's); RSS then grows by the headers. */
struct hdr {
    size_t size;
    size_t site;
};

#define SITES_MAX 2048
static struct site {
    const char *file; /* OpenSSL passes string literals: compared by address */
    int line;
    long long bytes, allocs;
} sites[SITES_MAX];
static size_t nsites;
static int by_site; /* blocks carry a struct hdr */
static pthread_mutex_t sites_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_llong ossl_bytes, ossl_allocs;

static size_t site_of(const char *file, int line)
{
    pthread_mutex_lock(&sites_mu);
    size_t i = 0;
    while (i < nsites && (sites[i].file != file || sites[i].line != line))
        i++;
    if (i == nsites && nsites < SITES_MAX) {
        sites[i].file = file;
        sites[i].line = line;
        nsites++;
    }
    pthread_mutex_unlock(&sites_mu);
    return i; /* SITES_MAX: not tracked by line (the table is full), still counted */
}

static void count(size_t site, long long bytes, long long allocs)
{
    atomic_fetch_add(&ossl_bytes, bytes);
    atomic_fetch_add(&ossl_allocs, allocs);
    if (!by_site || site >= SITES_MAX)
        return;
    pthread_mutex_lock(&sites_mu);
    sites[site].bytes += bytes;
    sites[site].allocs += allocs;
    pthread_mutex_unlock(&sites_mu);
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
    if (!by_site) {
        void *p = malloc(n);
        if (p)
            count(0, (long long)malloc_usable_size(p), 1);
        return p;
    }
    struct hdr *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->size = n;
    h->site = site_of(file, line);
    count(h->site, (long long)n, 1);
    return h + 1;
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (!p)
        return;
    if (!by_site) {
        count(0, -(long long)malloc_usable_size(p), -1);
        free(p);
        return;
    }
    struct hdr *h = (struct hdr *)p - 1;
    count(h->site, -(long long)h->size, -1);
    free(h);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return ossl_malloc(n, file, line);
    if (!n) {
        ossl_free(p, file, line);
        return NULL;
    }
    if (!by_site) {
        long long was = (long long)malloc_usable_size(p);
        void *q = realloc(p, n);
        if (q)
            count(0, (long long)malloc_usable_size(q) - was, 0);
        return q;
    }
    struct hdr *old = (struct hdr *)p - 1;
    size_t was = old->size, site = old->site;
    struct hdr *h = realloc(old, sizeof(*h) + n);
    if (!h)
        return NULL;
    h->size = n;
    count(site, (long long)n - (long long)was, 0); /* stays with the line that allocated it */
    return h + 1;
}

/* --- measuring ------------------------------------------------------------------------------ */

static long long heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long long)(mi.uordblks + mi.hblkhd); /* arenas' live chunks + mmap'd blocks */
}

/* Starts bench_swarm (next to argv0) with n agents on base, port; fills addrs. Its pid, or -1. */
static pid_t swarm_start(const char *argv0, int n, const char *tls_dir, const char *base, int port,
                         char (*addrs)[64])
{
    char self[PATH_MAX], bin[PATH_MAX + 32], list[64], nbuf[16], pbuf[16];
    snprintf(self, sizeof(self), "%s", argv0);
    char *slash = strrchr(self, '/');
    snprintf(bin, sizeof(bin), "%.*s/bench_swarm", slash ? (int)(slash - self) : 1,
             slash ? self : ".");
    snprintf(list, sizeof(list), "/tmp/bench-conn-mem-%d.list", (int)getpid());
    snprintf(nbuf, sizeof(nbuf), "%d", n);
    snprintf(pbuf, sizeof(pbuf), "%d", port);
    int out[2];
    if (pipe(out))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        unsetenv("LD_PRELOAD"); /* a profiler of this process (heaptrack) is not the swarm's */
        dup2(out[1], 1);
        close(out[0]);
        if (tls_dir)
            execl(bin, bin, "-n", nbuf, "-b", base, "-p", pbuf, "-l", list, "--tls", tls_dir,
                  (char *)NULL);
        else
            execl(bin, bin, "-n", nbuf, "-b", base, "-p", pbuf, "-l", list, (char *)NULL);
        fprintf(stderr, "bench_conn_mem: cannot run %s\n", bin);
        _exit(127);
    }
    close(out[1]);
    char line[64] = "";
    FILE *o = fdopen(out[0], "r");
    if (!o || !fgets(line, sizeof(line), o) || strncmp(line, "ready", 5) != 0) {
        fprintf(stderr, "bench_conn_mem: bench_swarm did not start\n");
        return -1;
    }
    /* the swarm says nothing more: o stays open, unread, until this process ends */
    FILE *l = fopen(list, "r");
    if (!l)
        return -1;
    char id[64], addr[64];
    int got = 0;
    while (got < n && fscanf(l, "%63s %63s", id, addr) == 2)
        snprintf(addrs[got++], 64, "%s", addr);
    fclose(l);
    unlink(list);
    return got == n ? pid : -1;
}

static grpc_status_code h_metrics(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    (void)req;
    Metrics m = METRICS__INIT;
    m.cpu_load = 42;
    m.app_healthy = 1;
    return rpc_reply_pack(reply, &m.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

/* BENCH_AGENTS=grpc: a child process serving the n instances from gRPC core servers (as
   monitorc does), PER_SERVER instances each on 127.0.0.1, with DIR's srv certificate when tls;
   fills addrs. Its pid, or -1; closing *down stops it. */
#define PER_SERVER  250
#define SERVERS_MAX 64
static pid_t grpc_agents_start(int n, int tls, const char *dir, char (*addrs)[64], int *down)
{
    static const struct test_method methods[] = {{"/MonitorC/GetMetrics", h_metrics, NULL},
                                                 {NULL, NULL, NULL}};
    int servers = n / PER_SERVER < 4 ? 4 : n / PER_SERVER;
    if (servers > SERVERS_MAX)
        servers = SERVERS_MAX;
    int ports[SERVERS_MAX];
    pid_t pid = bench_agents_fork(methods, tls ? dir : NULL, servers, ports, down);
    if (pid < 0)
        return -1;
    for (int i = 0; i < n; i++)
        snprintf(addrs[i], 64, "127.0.0.1:%d", ports[i % servers]);
    return pid;
}

static uint64_t sum_ok(struct fleet *f, int n, int *answered)
{
    uint64_t ok = 0;
    int a = 0;
    struct fleet_slot sl;
    for (int i = 0; i < n; i++)
        if (fleet_read(f, (uint32_t)i, &sl) == 0) {
            ok += sl.polls_ok;
            a += sl.polls_ok > 0;
        }
    if (answered)
        *answered = a;
    return ok;
}

static int cmp_site(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    return (y->bytes > x->bytes) - (y->bytes < x->bytes);
}

/* One measurement (a process of its own): prints a "result" line. Returns the exit status. */
static int one(const char *argv0, int tls, int n, const char *dir)
{
    log_set_level(LOG_LVL_WARN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    int64_t interval =
        getenv("BENCH_INTERVAL_MS") ? strtol(getenv("BENCH_INTERVAL_MS"), NULL, 10) : 2000;
    char(*addrs)[64] = calloc((size_t)n, sizeof(*addrs));
    if (!addrs || interval < 100)
        return 1;
    /* an address block and port of our own: other swarms may run on this machine */
    char base[32];
    snprintf(base, sizeof(base), "127.%d.0.1", 100 + (int)(getpid() % 100));
    int port = 20000 + (int)(getpid() % 20000);
    int grpc_agents = getenv("BENCH_AGENTS") && strcmp(getenv("BENCH_AGENTS"), "grpc") == 0;
    int down = -1;
    pid_t swarm = grpc_agents ? grpc_agents_start(n, tls, dir, addrs, &down)
                              : swarm_start(argv0, n, tls ? dir : NULL, base, port, addrs);
    if (swarm < 0) {
        free(addrs);
        return 1;
    }
    struct tls_conf *t = NULL;
    int rc = 1;
    char err[512];
    if (tls && !(t = bench_tls_load(dir, "cli", "localhost")))
        goto out_swarm;
    char name[64];
    snprintf(name, sizeof(name), "bench-conn-mem-%d", (int)getpid());
    (void)fleet_unlink(name);
    struct fleet *f = NULL;
    if (fleet_open(name, (uint32_t)n, 1, &f))
        goto out_tls;
    for (int i = 0; i < n; i++) {
        char id[32];
        uint32_t idx;
        snprintf(id, sizeof(id), "i-%06d", i);
        if (fleet_alloc(f, id, addrs[i], clk_wall_ms(), &idx))
            goto out_fleet;
    }
    struct mon_settings s;
    mon_settings_init(&s);
    s.listen = NULL;
    s.interval_ms = interval;
    s.timeout_ms = interval / 2;
    s.tls = t;
    struct mon *m = NULL;
    if (mon_new(&s, f, &m, err, sizeof(err))) {
        fprintf(stderr, "bench_conn_mem: %s\n", err);
        goto out_fleet;
    }
    long rss0 = bench_status_kib(0, "VmRSS");
    long long heap0 = heap_bytes(), ob0 = atomic_load(&ossl_bytes), oa0 = atomic_load(&ossl_allocs);
    double c0 = bench_self_cpu_s();
    if (mon_start(m)) {
        fprintf(stderr, "bench_conn_mem: cannot start the poller\n");
        goto out_mon;
    }
    int answered = 0;
    int64_t t0 = clk_mono_ms();
    while (clk_mono_ms() - t0 < 120000) {
        usleep(100 * 1000);
        (void)sum_ok(f, n, &answered);
        if (answered == n)
            break;
    }
    double warm_cpu = bench_self_cpu_s() - c0;
    int64_t warm_ms = clk_mono_ms() - t0;
    usleep((useconds_t)interval * 1000); /* one interval more: every connection settled */
    uint64_t ok0 = sum_ok(f, n, NULL);
    c0 = bench_self_cpu_s();
    usleep((useconds_t)(2 * interval) * 1000);
    double poll_cpu = bench_self_cpu_s() - c0;
    uint64_t polls = sum_ok(f, n, NULL) - ok0;
    long rss1 = bench_status_kib(0, "VmRSS");
    long long heap1 = heap_bytes(), ob1 = atomic_load(&ossl_bytes), oa1 = atomic_load(&ossl_allocs);
    malloc_trim(0);
    long rss2 = bench_status_kib(0, "VmRSS");
    printf("result %d %s %d %.2f %.2f %.2f %.1f %.2f %.2f %.1f %lld\n", n, tls ? "tls" : "plain",
           answered, (double)(rss1 - rss0) / n, (double)(heap1 - heap0) / 1024.0 / n,
           (double)(ob1 - ob0) / 1024.0 / n, (double)(oa1 - oa0) / n, (double)(rss2 - rss0) / n,
           polls ? poll_cpu * 1e6 / (double)polls : 0.0, warm_cpu * 1e6 / n, (long long)warm_ms);
    int top = getenv("BENCH_SITES") ? (int)strtol(getenv("BENCH_SITES"), NULL, 10) : 0;
    if (tls && top > 0) {
        pthread_mutex_lock(&sites_mu);
        qsort(sites, nsites, sizeof(sites[0]), cmp_site);
        for (int i = 0; i < top && (size_t)i < nsites && sites[i].bytes > 0; i++)
            printf("  %8.0f B %5.1f allocs per connection  %s:%d\n", (double)sites[i].bytes / n,
                   (double)sites[i].allocs / n, sites[i].file, sites[i].line);
        pthread_mutex_unlock(&sites_mu);
    }
    fflush(stdout);
    rc = answered == n ? 0 : 1;
    mon_stop(m);
out_mon:
    mon_free(m);
out_fleet:
    fleet_close(f);
    (void)fleet_unlink(name);
out_tls:
    tls_conf_free(t);
out_swarm:
    if (down >= 0)
        close(down); /* the gRPC servers stop */
    else
        kill(swarm, SIGTERM);
    waitpid(swarm, NULL, 0);
    free(addrs);
    return rc;
}

/* The agent's certificate decoded n times, as the handshake's verification leaves it: prints
   "cert <bytes> <allocations>" per copy. Returns the exit status. */
static int cert_cost(int n, const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/srv.pem", dir);
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    unsigned char *der = NULL;
    int len = x ? i2d_X509(x, &der) : -1;
    X509_free(x);
    X509 **xs = calloc((size_t)n, sizeof(*xs));
    if (len <= 0 || !xs) {
        OPENSSL_free(der);
        free(xs);
        return 1;
    }
    long long b0 = atomic_load(&ossl_bytes), a0 = atomic_load(&ossl_allocs);
    for (int i = 0; i < n; i++) {
        const unsigned char *p = der;
        xs[i] = d2i_X509(NULL, &p, len);
        if (xs[i]) { /* what verifying it fills in: the key, the extensions, the name check */
            (void)X509_get0_pubkey(xs[i]);
            (void)X509_check_purpose(xs[i], -1, 0);
            (void)X509_check_host(xs[i], "localhost", 0, 0, NULL);
        }
    }
    printf("cert %.1f %.1f\n", (double)(atomic_load(&ossl_bytes) - b0) / n,
           (double)(atomic_load(&ossl_allocs) - a0) / n);
    for (int i = 0; i < n; i++)
        X509_free(xs[i]);
    free(xs);
    OPENSSL_free(der);
    return 0;
}

/* --- the runs ------------------------------------------------------------------------------- */

struct res {
    int ok;
    double rss, heap, ossl, allocs, trimmed, poll_us, conn_us;
};

/* Runs "--one" in a process of its own; its other lines are passed through. */
static int run_one(const char *self, const char *mode, int n, const char *dir, struct res *r)
{
    int out[2];
    if (pipe(out))
        return -1;
    char nbuf[16];
    snprintf(nbuf, sizeof(nbuf), "%d", n);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(self, self, "--one", mode, nbuf, dir, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *o = fdopen(out[0], "r");
    char line[512];
    memset(r, 0, sizeof(*r));
    while (o && fgets(line, sizeof(line), o)) {
        int gn, answered;
        char got[8];
        long long warm_ms;
        if (sscanf(line, "result %d %7s %d %lf %lf %lf %lf %lf %lf %lf %lld", &gn, got, &answered,
                   &r->rss, &r->heap, &r->ossl, &r->allocs, &r->trimmed, &r->poll_us, &r->conn_us,
                   &warm_ms) == 11)
            r->ok = answered == n;
        else if (sscanf(line, "cert %lf %lf", &r->ossl, &r->allocs) == 2)
            r->ok = 1;
        else
            fputs(line, stdout);
    }
    if (o)
        fclose(o);
    int st = 0;
    waitpid(pid, &st, 0);
    return r->ok && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The CA, the agents' certificate (DNS localhost) and the poller's, in dir. 0 or -1. */
static int make_certs(const char *dir, int rsa)
{
    const char *kind =
        rsa ? "rsa -pkeyopt rsa_keygen_bits:2048" : "ec -pkeyopt ec_paramgen_curve:P-256";
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl req -x509 -newkey %s -nodes -days 2 -addext "
             "basicConstraints=critical,CA:TRUE -keyout ca.key -out ca.pem -subj /CN=bench-ca && "
             "printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth,clientAuth\\n' "
             "> ext && for c in srv cli; do openssl req -newkey %s -nodes -keyout $c.key -out "
             "$c.csr -subj /CN=$c && openssl x509 -req -in $c.csr -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -days 2 -extfile ext -out $c.pem || exit 1; done",
             dir, kind, kind);
    char full[1100];
    snprintf(full, sizeof(full), "(%s) >/dev/null 2>&1", cmd);
    return system(full) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--one") == 0) {
        /* before anything allocates through OpenSSL (nothing has yet: a fresh process) */
        by_site = getenv("BENCH_SITES") != NULL;
        int counted = !getenv("BENCH_COUNT") || strcmp(getenv("BENCH_COUNT"), "0") != 0;
        if (counted && !CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
            fprintf(stderr, "bench_conn_mem: OpenSSL's allocations cannot be counted\n");
        int n = (int)strtol(argv[3], NULL, 10);
        if (strcmp(argv[2], "cert") == 0)
            return n > 0 ? cert_cost(n, argv[4]) : 2;
        return one(argv[0], strcmp(argv[2], "tls") == 0, n, argv[4]);
    }
    int ns[8] = {1000, 5000}, nn = 2;
    if (argc > 1) {
        nn = 0;
        for (int i = 1; i < argc && nn < 8; i++) {
            ns[nn] = (int)strtol(argv[i], NULL, 10);
            if (ns[nn] < 1 || ns[nn] > 9000) {
                fprintf(stderr, "usage: bench_conn_mem [N (1..9000)]... (default 1000 5000)\n");
                return 2;
            }
            nn++;
        }
    }
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0)
        return 1;
    self[sl] = '\0';
    int rsa = getenv("BENCH_TLS_KEY") && strcmp(getenv("BENCH_TLS_KEY"), "rsa") == 0;
    char dir[] = "/tmp/bench-conn-mem-XXXXXX";
    if (!mkdtemp(dir) || make_certs(dir, rsa)) {
        fprintf(stderr, "bench_conn_mem: cannot make certificates (openssl) in %s\n", dir);
        return 1;
    }
    int grpc_agents = getenv("BENCH_AGENTS") && strcmp(getenv("BENCH_AGENTS"), "grpc") == 0;
    printf("bench_conn_mem: the poller's memory per agent connection, clear text and mutual TLS "
           "(%s certificates, OpenSSL %s), %s agents\n",
           rsa ? "RSA-2048" : "P-256", OpenSSL_version(OPENSSL_VERSION_STRING),
           grpc_agents ? "gRPC core" : "bench_swarm");
    printf("%6s %-6s %9s %9s %12s %9s %10s %10s %11s\n", "N", "mode", "RSS KiB", "heap KiB",
           "OpenSSL KiB", "allocs", "trim KiB", "us/poll", "us/connect");
    int rc = 0;
    for (int i = 0; i < nn; i++) {
        struct res r[2];
        for (int tls = 0; tls < 2; tls++) {
            if (run_one(self, tls ? "tls" : "plain", ns[i], dir, &r[tls])) {
                fprintf(stderr, "bench_conn_mem: the %s run at %d failed\n",
                        tls ? "TLS" : "clear-text", ns[i]);
                rc = 1;
            }
            printf("%6d %-6s %9.2f %9.2f %12.2f %9.1f %10.2f %10.1f %11.1f\n", ns[i],
                   tls ? "tls" : "plain", r[tls].rss, r[tls].heap, r[tls].ossl, r[tls].allocs,
                   r[tls].trimmed, r[tls].poll_us, r[tls].conn_us);
            fflush(stdout);
        }
        printf("ratio  tls/plain at %d: %.1fx RSS, %.1fx heap, %.2fx CPU per poll; a TLS "
               "connection costs %.1f KiB more\n",
               ns[i], r[1].rss / (r[0].rss > 0 ? r[0].rss : 1),
               r[1].heap / (r[0].heap > 0 ? r[0].heap : 1),
               r[1].poll_us / (r[0].poll_us > 0 ? r[0].poll_us : 1), r[1].rss - r[0].rss);
    }
    struct res cert;
    int counted = !getenv("BENCH_COUNT") || strcmp(getenv("BENCH_COUNT"), "0") != 0;
    if (counted && run_one(self, "cert", 1000, dir, &cert) == 0)
        printf("cert   the agent's certificate alone, as a handshake leaves it in the session: "
               "%.2f KiB in %.0f allocations of OpenSSL's\n",
               cert.ossl / 1024.0, cert.allocs);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
