/*
 * sim.h - `asgd simulate`: a policy judged offline over a demand trace.
 *
 * sim_run() replays a trace through policy_evaluate() (the controller's own
 * code) in virtual time over the fleet model of
 * ../shared/design/simulation.md, one step per second, and fills the figures
 * that simulation.md's --json output names. Nothing here reads a clock or
 * sleeps; a run of a day's trace takes milliseconds.
 *
 * Choices simulation.md leaves open, made here:
 * - The trace must have a row at t = 0 (the demand before the first row would
 *   otherwise be undefined); t values must be distinct whole seconds >= 0;
 *   demand finite, >= 0 and at most SIM_MAX_DEMAND (so that no sum over a
 *   run can overflow to inf); t at most SIM_MAX_SECONDS; at most
 *   SIM_MAX_ROWS rows. "-" as a path reads standard input.
 * - seconds = T + 1 (steps t = 0..T inclusive); violation_pct = 100 *
 *   violation_s / seconds.
 * - ceil(demand / 0.8) in the oracle tolerates float noise of 1e-9
 *   (ceil(2.4 / 0.8) is 3, not 4), like policy.c's arithmetic.
 * - The policy sees now_ms = (t + 1) * 1000: policy_state uses 0 for
 *   "never", so virtual time starts at 1 s; only differences matter.
 * - cost_ratio is 0 (and JSON null) when oracle_cost is 0 (min 0, no demand);
 *   the JSON never holds inf or nan (null instead).
 * - Sizes are at most POLICY_MAX_SIZE, as for a real group.
 */
#ifndef ASGD_SIM_H
#define ASGD_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "controller/policy.h"

#define SIM_MAX_SECONDS (400LL * 24 * 3600) /* ~13 months of seconds */
#define SIM_MAX_ROWS    10000000
#define SIM_MAX_DEMAND  1e9 /* instance-equivalents */

/* A trace sorted by t; arrays owned by the struct (sim_trace_release()). */
struct sim_trace {
    size_t n;
    int64_t *t;     /* seconds, strictly increasing, t[0] == 0 */
    double *demand; /* instance-equivalents held from t[i] until t[i+1] */
};

#define SIM_TRACE_INIT                                                                             \
    {                                                                                              \
        0                                                                                          \
    }

/*
 * Parses CSV text with header "t,demand" (rows in any order; blank lines and
 * CRLF tolerated) into *out. name is used in messages ("NAME:LINE: why").
 * Returns 0, or -1 with the message in err; *out is then empty.
 */
int sim_trace_parse(const char *name, const char *text, size_t len, struct sim_trace *out,
                    char *err, size_t errlen);
/* Same from a file ("PATH: cannot open: ..." if it cannot be read). */
int sim_trace_load(const char *path, struct sim_trace *out, char *err, size_t errlen);
/* Frees the arrays; *tr becomes empty. NULL is a no-op. */
void sim_trace_release(struct sim_trace *tr);

/* One simulated second, after the policy acted (sim_params.on_second). */
struct sim_second {
    int64_t t;
    double demand;
    int desired;    /* in service + booting after this second's action */
    int in_service; /* serving this second */
    int booting;
    double load;   /* of every in-service instance, 0..100 */
    int violation; /* demand > 0.8 x in_service */
};

struct sim_params {
    int min_size, max_size;
    struct policy_settings policy;
    int64_t boot_s; /* launch to InService (default 60) */
    int64_t poll_s; /* the monitor's sampling interval (default 5, >= 1) */
    /* Optional: called for every change of desired, in order (verbose output). */
    void (*on_action)(void *arg, int64_t t, int from, int to, const char *cause);
    /* Optional: called once per simulated second, in order (--csv, --plot). */
    void (*on_second)(void *arg, const struct sim_second *s);
    void *arg; /* for both callbacks */
};

/* The model's defaults: min 2, max 20, threshold defaults, boot 60 s, poll 5 s, no callback. */
void sim_params_default(struct sim_params *p);

struct sim_result {
    int64_t seconds;      /* steps simulated: last t + 1 */
    double cost;          /* instance-seconds (InService + booting, every second) */
    int64_t violation_s;  /* seconds with demand > 0.8 x InService */
    double violation_pct; /* 100 x violation_s / seconds */
    double unserved;      /* sum over seconds of max(0, demand - InService) */
    int64_t actions;      /* changes of desired */
    int64_t flaps;        /* actions whose direction reverses the previous action's */
    double oracle_cost;   /* see simulation.md */
    double cost_ratio;    /* cost / oracle_cost (0 when oracle_cost is 0) */
};

/*
 * Runs the model. Fails (-1, message in err) on invalid parameters: min < 0,
 * min > max, boot_s < 0, poll_s < 1, an empty trace. *out is written only on
 * success.
 */
int sim_run(const struct sim_params *p, const struct sim_trace *tr, struct sim_result *out,
            char *err, size_t errlen);

/*
 * Formats r as one JSON object with simulation.md's keys, in its order.
 * Returns the length written (as snprintf: >= len means truncated).
 */
int sim_result_json(const struct sim_result *r, char *buf, size_t len);

#endif
