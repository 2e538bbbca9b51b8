/*
 * agent.h - the pieces of monitorc, the per-instance agent (MonitorC).
 *
 * monitorc answers MonitorS's polls (GetStatus, GetMemoryUsage, Ping,
 * GetMetrics) from a cached state that background threads keep fresh:
 *   - a load source (proc | simulate | file:PATH) sampled about once a second,
 *   - an application health probe over HTTP (libcurl, with a timeout),
 *   - a registration loop that registers with MonitorS (retry, exponential
 *     backoff with jitter), re-registers when MonitorS stops polling or
 *     periodically (so a restarted MonitorS learns about us again), and
 *     deregisters on shutdown with a bounded wait.
 * The gRPC handlers never block: they only copy the cached state.
 *
 * Parsers and the simulation are pure (text in, numbers out; time injected) so
 * the unit tests drive them with fixture files and virtual time.
 * Errors: 0 on success, -1 on failure with a reason in err (always
 * NUL-terminated) where an err buffer is taken.
 */
#ifndef ASGD_AGENT_H
#define ASGD_AGENT_H

/* The most MonitorS addresses --monitor takes (the nodes of a cluster). */
#define AGENT_REG_MAX_MONITORS 16

#include <stddef.h>
#include <stdint.h>

struct rpc_server;
struct tls_conf;

/* ------------------------------------------------------------------------ */
/* /proc parsers (pure)                                                     */
/* ------------------------------------------------------------------------ */

/* Cumulative CPU jiffies from the aggregate "cpu" line of /proc/stat. */
struct agent_cpu_times {
    uint64_t busy;  /* user+nice+system+irq+softirq+steal */
    uint64_t total; /* busy + idle + iowait */
};

/* Parses /proc/stat text. Returns 0, or -1 if the "cpu " line is missing or malformed. */
int agent_proc_parse_stat(const char *text, struct agent_cpu_times *out);
/* CPU utilisation 0..100 between two readings (prev may be all zero: since boot).
 * Returns -1 when no time passed or the counters went backwards. */
double agent_cpu_percent(const struct agent_cpu_times *prev, const struct agent_cpu_times *cur);
/* Memory in use, percent 0..100 = 100 * (MemTotal - MemAvailable) / MemTotal.
 * Returns 0, or -1 if MemTotal/MemAvailable are missing or inconsistent. */
int agent_proc_parse_meminfo(const char *text, double *used_pct);
/* First field of /proc/loadavg. Returns 0, or -1 if malformed. */
int agent_proc_parse_loadavg(const char *text, double *load1);
/* The content of a file: load source: one number 0..100 (integer or decimal,
 * surrounding whitespace allowed). Returns 0, or -1 (nothing stored) otherwise. */
int agent_parse_load_value(const char *text, double *out);

/* ------------------------------------------------------------------------ */
/* Simulated load (pure, virtual time)                                      */
/* ------------------------------------------------------------------------ */

/*
 * A load that drifts between min and max: a sine of the given period plus a
 * bounded random walk, followed at no more than max_rate percentage points
 * per second. It never jumps, whatever the interval between samples.
 */
struct agent_sim_params {
    double min, max;   /* range, 0 <= min < max <= 100 (default 10, 90) */
    int64_t period_ms; /* sine period (default 10 min) */
    double max_rate;   /* bound on the change, points per second (default 2) */
    uint64_t seed;     /* random walk seed (default: from the clock and pid) */
};
/* Parses "min=10,max=90,period=10m,rate=2,seed=7" (any subset, any order; NULL
 * or "" = defaults). Returns 0, or -1 with the reason in err. */
int agent_sim_parse(const char *params, struct agent_sim_params *out, char *err, size_t errlen);

struct agent_sim {
    struct agent_sim_params p;
    double value, walk;
    int64_t last_ms;
    int started;
    uint64_t rng;
};
/* Initialises a simulation (value type; nothing to release). */
void agent_sim_init(struct agent_sim *s, const struct agent_sim_params *p);
/* Advances to now_ms (monotonic; earlier times do not move it) and returns the load. */
double agent_sim_step(struct agent_sim *s, int64_t now_ms);

/* ------------------------------------------------------------------------ */
/* Load sources                                                             */
/* ------------------------------------------------------------------------ */

/* One measurement. Unknown values are negative. */
struct agent_sample {
    int valid;             /* 1 when `load` could be measured; else error says why */
    double load;           /* 0..100: what GetMemoryUsage reports (CPU for proc) */
    double cpu_load;       /* 0..100, -1 unknown */
    double mem_used_pct;   /* 0..100, -1 unknown */
    double load1;          /* load average, -1 unknown */
    int64_t sampled_at_ms; /* wall clock */
    char error[200];
};

struct agent_load;

/*
 * Creates a load source from a --load spec: "proc", "simulate",
 * "simulate:PARAMS" (see agent_sim_parse) or "file:PATH". proc_root is the
 * directory holding stat, meminfo and loadavg (NULL = "/proc"; tests pass a
 * fixture directory); the simulate and file sources still report memory and
 * load1 from it when readable. Returns NULL with the reason in err on a bad
 * spec. A missing file: PATH is not an error here (the samples say so).
 * Free with agent_load_free().
 */
struct agent_load *agent_load_new(const char *spec, const char *proc_root, char *err,
                                  size_t errlen);
/* Takes one sample at monotonic time now_ms into *out. Returns 0 when
 * out->valid, -1 otherwise (out->error set). Not thread-safe per source. */
int agent_load_sample(struct agent_load *l, int64_t now_ms, struct agent_sample *out);
/* How often the agent should sample this source, ms. */
int agent_load_interval_ms(const struct agent_load *l);
/* NULL is a no-op. */
void agent_load_free(struct agent_load *l);

/* ------------------------------------------------------------------------ */
/* Shared state and the MonitorC service                                    */
/* ------------------------------------------------------------------------ */

struct agent_state;

/* Creates the state for instance_id (copied). NULL on allocation failure. */
struct agent_state *agent_state_new(const char *instance_id);
void agent_state_free(struct agent_state *st);
const char *agent_state_instance_id(const struct agent_state *st);
void agent_state_set_sample(struct agent_state *st, const struct agent_sample *s);
void agent_state_get_sample(struct agent_state *st, struct agent_sample *out);
void agent_state_set_app_healthy(struct agent_state *st, int healthy);
int agent_state_app_healthy(struct agent_state *st);
void agent_state_set_draining(struct agent_state *st, int draining);
/* Monotonic ms of the last MonitorC call answered (0 = none yet). */
int64_t agent_state_last_poll_ms(struct agent_state *st);

/* ------------------------------------------------------------------------ */
/* Drain command (--on-terminate, drain.c; issue 12, docs/lifecycle.md)     */
/* ------------------------------------------------------------------------ */

enum agent_drain_state {
    AGENT_DRAIN_NONE = 0,
    AGENT_DRAIN_RUNNING,
    AGENT_DRAIN_DONE,
    AGENT_DRAIN_FAILED
};
struct agent_drain;
/* A drain of `/bin/sh -c cmd` (copied), killed after timeout_ms (0: never). NULL: no memory. */
struct agent_drain *agent_drain_new(const char *cmd, int64_t timeout_ms, struct agent_state *st);
/* Starts the command unless it already started (thread-safe, returns at once). */
void agent_drain_start(struct agent_drain *d);
/* The state, and why it failed in detail. Thread-safe. */
int agent_drain_state(struct agent_drain *d, char *detail, size_t len);
/* Kills a running command, waits for its waiter thread, frees. NULL is a no-op. */
void agent_drain_free(struct agent_drain *d);
/* The drain MonitorC/Lifecycle starts (NULL: none; borrowed, must outlive the server). */
void agent_state_set_drain(struct agent_state *st, struct agent_drain *d);

/*
 * Registers the MonitorC handlers on srv:
 *   GetStatus      -> "OK" while the app is healthy, else "NOT OK"
 *   GetMemoryUsage -> current load rounded 0..100; UNAVAILABLE with the reason
 *                     when the load cannot be measured (e.g. missing file)
 *   Ping           -> Pong{seq echoed, instance_id, uptime_ms}
 *   GetMetrics     -> Metrics (cpu_load -1 when unknown; draining while leaving)
 *   Lifecycle      -> LifecycleReply{drain, detail, pid, instance_id}; state
 *                     "terminating:wait" marks the agent draining and starts
 *                     the drain command (agent_state_set_drain), once
 * Undecodable requests get INVALID_ARGUMENT. st must outlive srv.
 * Returns 0 or a negative RPC_E* code.
 */
int agent_service_register(struct rpc_server *srv, struct agent_state *st);

/* ------------------------------------------------------------------------ */
/* Background workers                                                       */
/* ------------------------------------------------------------------------ */

/* Samples `load` into st every agent_load_interval_ms on its own thread,
 * logging transitions between valid and invalid. NULL on failure. */
struct agent_sampler;
struct agent_sampler *agent_sampler_start(struct agent_load *load, struct agent_state *st);
/* Stops and joins the thread, frees the sampler (not load). NULL is a no-op. */
void agent_sampler_stop(struct agent_sampler *s);

/*
 * One HTTP GET of url with a total timeout. Returns 1 when it answered 2xx in
 * time, 0 otherwise (reason in err: "timeout", "HTTP 503", ...).
 */
int agent_http_check(const char *url, int timeout_ms, char *err, size_t errlen);

/* Probes url every interval_ms on its own thread and stores the result in st
 * (transitions logged). The caller did curl_global_init. NULL on failure. */
struct agent_health;
struct agent_health *agent_health_start(const char *url, int timeout_ms, int interval_ms,
                                        struct agent_state *st);
void agent_health_stop(struct agent_health *h);

/*
 * Fetches the EC2 instance id over IMDSv2 (PUT /latest/api/token, then GET
 * /latest/meta-data/instance-id) within timeout_ms in total. Honors
 * AWS_EC2_METADATA_DISABLED=true (returns -1 at once) and
 * AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254).
 * Accepts only ids made of [A-Za-z0-9-], up to 64 characters.
 * Returns 0 with the id in out, or -1.
 */
int agent_imds_instance_id(char *out, size_t size, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Registration                                                             */
/* ------------------------------------------------------------------------ */

/* Exponential backoff with "equal jitter": attempt n waits a random time in
 * [c/2, c] where c = min(cap_ms, base_ms * 2^n). Value type. */
struct agent_backoff {
    int64_t base_ms, cap_ms;
    int attempt;
};
void agent_backoff_init(struct agent_backoff *b, int64_t base_ms, int64_t cap_ms);
/* Returns the next delay (>= 1 ms) using rnd as the random source, and counts the attempt. */
int64_t agent_backoff_next(struct agent_backoff *b, uint64_t rnd);
void agent_backoff_reset(struct agent_backoff *b);

struct agent_reg_opts {
    const char *monitor;     /* MonitorS "host:port", or several comma-separated (every node
                                of a cluster, at most AGENT_REG_MAX_MONITORS); copied */
    const char *address;     /* what MonitorS should poll, "host:port" (copied) */
    const char *token;       /* shared secret, may be NULL (copied; never logged) */
    int64_t backoff_base_ms; /* first retry delay; 0 = 500 */
    int64_t backoff_cap_ms;  /* longest retry delay; 0 = 30 s */
    int64_t refresh_ms;      /* re-register this often even when all is well; 0 = 60 s */
    int64_t silence_ms;      /* re-register after this long without polls; 0 = max(3 x the
                                poll interval MonitorS announced, 5 s) */
    int call_timeout_ms;     /* deadline of one Register call; 0 = 2 s */
    struct tls_conf *tls;    /* NULL: plaintext; else Register/Deregister over TLS (rpc.h's
                                rpc_client_opts.tls); borrowed, outlives the registration */
};

struct agent_reg;
/* Starts the registration thread. NULL on failure (allocation, thread). */
struct agent_reg *agent_reg_start(const struct agent_reg_opts *o, struct agent_state *st);
/* 1 after an accepted Register (until Deregister). Thread-safe. */
int agent_reg_registered(struct agent_reg *r);
/* Register calls made so far. Thread-safe. */
int agent_reg_attempts(struct agent_reg *r);
/*
 * Stops the thread; then, if the agent ever got registered, sends Deregister
 * with `reason` and waits at most timeout_ms for the answer. Returns 0 when
 * MonitorS acknowledged, -1 when it did not (or no Deregister was needed:
 * then 1). Frees r. NULL returns 1.
 */
int agent_reg_stop(struct agent_reg *r, const char *reason, int timeout_ms);

#endif
