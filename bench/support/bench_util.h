/*
 * bench_util.h - what the benchmarks (the programs in bench/) share: CPU and memory of a
 * process read from the kernel, and the one-group node the HTTP benchmarks
 * put behind the real server.
 *
 * Errors: the readers return -1 when the figure cannot be read (the process
 * is gone, /proc is not mounted); a benchmark prints that as unknown.
 */
#ifndef ASGD_BENCH_UTIL_H
#define ASGD_BENCH_UTIL_H

#include <sys/types.h>

#include "http/http.h"
#include "support/grpc_server.h"
#include "tls/tls.h"

/* user + system CPU seconds of this process, all its threads */
double bench_self_cpu_s(void);

/* user + system CPU seconds of another process (/proc/PID/stat), -1 if unknown */
double bench_proc_cpu_s(pid_t pid);

/* a "Field:  N kB" line of /proc/PID/status in KiB (pid 0: this process), e.g.
   "VmRSS" (every resident page) or "RssAnon" (private memory); -1 if unknown */
long bench_status_kib(pid_t pid, const char *field);

/* a TCP port free on 127.0.0.1 right now (bound, read, closed), -1 if none */
int bench_free_port(void);

/* The TLS material DIR/ca.pem, DIR/<who>.pem, DIR/<who>.key (who: "srv" or "cli" as
   tests/tools/tlsca.py and the benchmarks' BENCH_TLS make them); server_name: the name to
   check in the peer's certificate, or NULL. NULL with the reason on stderr. */
struct tls_conf *bench_tls_load(const char *dir, const char *who, const char *server_name);

/* Forks a child serving methods from nservers rpc.h servers on 127.0.0.1, over mutual TLS
   with DIR's "srv" material when tls_dir is not NULL (loaded in the child: this process holds
   none of it); ports[0..nservers) get their ports. The child runs until *down, the write end
   of a pipe the caller owns, is closed (every process forked later holds a copy: it must be
   gone too). Returns the child's pid, or -1 with the reason on stderr. Call it before this
   process starts gRPC (fork). */
pid_t bench_agents_fork(const struct test_method *methods, const char *tls_dir, int nservers,
                        int *ports, int *down);

/* monotonic clock in milliseconds, as a double (sub-millisecond timings) */
double bench_now_ms(void);

/* the median of v[0..n) (n > 0); sorts v */
double bench_median(double *v, size_t n);

/* Starts the real HTTP server on a loopback port for a node running one group named "bench"
   with fleet table f and store st (both the caller's, to outlive the server): what bench_http
   and bench_instances serve. base gets "http://127.0.0.1:PORT". 0, or -1 with err set; the
   caller frees *srv with http_free(). */
int bench_http_start(struct store *st, struct fleet *f, struct http_server **srv, char *base,
                     size_t baselen, char *err, size_t errlen);

#endif
