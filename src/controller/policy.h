/*
 * policy.h - scaling policies as pure functions.
 *
 * policy_evaluate() maps (settings, state, input at time now) to a decision.
 * It does no I/O and reads no clock: time comes in input->now_ms. The
 * controller, the unit tests (virtual time) and the simulator call the same
 * code. State that must survive between evaluations (when the last
 * evaluation ran, the last scaling action for cooldown, the target policy's
 * recommendation history for its scale-down window) lives in struct
 * policy_state, owned by the caller; zero-initialise it before the first call
 * and release it with policy_state_reset().
 *
 * threshold (the seed's, simulation.md): every evaluation_period,
 *   if avg > up_threshold and n < max, or n < min: n -> max(min, 1, min(max, floor(n*up_factor)))
 *   else if avg < down_threshold and n > min, or n > max: n -> n - floor(min(n*down_factor, n-min))
 *   (clamped to [min, max]); no change within cooldown of the last action
 *   (a change forced by n < min or n > max ignores the cooldown).
 * target (Kubernetes HPA): every evaluation_period, r = avg/target;
 *   recommendation = n if |r-1| <= tolerance else ceil(n*r), clamped;
 *   a scale-down takes the highest recommendation of the last scale_down_window.
 * step (policy_step.c, AWS's step adjustments): every evaluation_period, the
 *   most extreme band of steps the load is in adds or removes a count or a
 *   percentage of the group; cooldown as threshold's.
 * predictive (asgd's own, policy_predictive.c): every evaluation_period,
 *   estimates the demand (avg_load x in_service), forecasts it lead ahead
 *   (the time a new instance needs to serve) from its trend and the periodic
 *   pattern found in its history (up to season long), and sizes the group for
 *   forecast / target; saturation (load 100 %) hides the demand, so it then
 *   plans for at least twice the serving count. Scale-ups are immediate; a
 *   scale-down takes the highest size needed within scale_down_window. Its
 *   cause carries the forecast: "forecast 7.4 instances in 60s (trend
 *   +0.9/min, pattern +1.2): 5 -> 8".
 */
#ifndef ASGD_POLICY_H
#define ASGD_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum policy_type {
    POLICY_THRESHOLD = 0,
    POLICY_TARGET = 1,
    POLICY_PREDICTIVE = 2,
    POLICY_STEP = 3
};

#define POLICY_STEPS_LEN    128 /* the steps text, NUL included */
#define POLICY_SCHEDULE_LEN 384 /* scheduled actions (schedule.h), NUL included */
#define POLICY_MAX_STEPS    8

struct policy_settings {
    int type; /* enum policy_type */
    /* threshold */
    double up_threshold;   /* 70 */
    double down_threshold; /* 20 */
    double up_factor;      /* 2 */
    double down_factor;    /* 0.5 */
    int64_t cooldown_ms;   /* threshold: 0 means evaluation_period */
    /* target */
    double target;                /* 60 */
    double tolerance;             /* 0.1 */
    int64_t scale_down_window_ms; /* 300 s */
    /* predictive (also uses target: the load to plan for, 70; scale_down_window, 120 s) */
    int64_t lead_ms;   /* how far ahead to plan: the boot time, 60 s */
    int64_t season_ms; /* the longest period looked for in the load, 24 h; 0: none */
    /* step (also uses evaluation_period, 60 s, and cooldown) */
    char steps[POLICY_STEPS_LEN]; /* ">70:+1, >85:+50%, <20:-1" */
    /* every type: a new instance's load counts in the average only this long after its
       launch; 0: once past the health grace period (policy_load_counts()) */
    int64_t warmup_ms;
    /* scheduled actions setting min/max/desired (schedule.h); "" none */
    char schedule[POLICY_SCHEDULE_LEN];
    /* all */
    int64_t evaluation_period_ms; /* threshold 60 s, target 15 s, predictive 5 s */
};

/* Defaults for a policy type (the values in the comments above). */
void policy_settings_default(struct policy_settings *s, int type);
const char *policy_type_name(int type);
int policy_type_parse(const char *name); /* -1 if unknown */

/*
 * The largest group a policy serves (the fleet table's capacity,
 * FLEET_DEFAULT_CAP, which the settings validator enforces on max_size).
 */
#define POLICY_MAX_SIZE 4096

/*
 * The target policy's scale-down window is kept whole, however long: its
 * recommendations are a sliding-window maximum (a deque of recommendations
 * in strictly decreasing value, oldest first). A recommendation is only kept
 * while no later one is at least as high, so the deque holds at most one
 * entry per distinct value, and values are sizes in [0, POLICY_MAX_SIZE]:
 * it never needs more than POLICY_WINDOW_CAP entries, at any window and
 * evaluation period. It is allocated on demand (a group of sizes 2..20 holds
 * at most 19), so a node with many groups does not pay for the worst case.
 */
#define POLICY_WINDOW_CAP (POLICY_MAX_SIZE + 1)

struct policy_window_entry {
    int64_t at_ms;
    int value;
};

/*
 * The predictive policy's memory, all of it here so that the policy stays a
 * pure function of (settings, this state, input): recent demand estimates
 * (the trend), the mean demand of every minute of the last two days (the
 * history a periodic pattern is found in), and the period found. The
 * controller keeps it in memory (a restart relearns within two periods); the
 * simulator starts it empty.
 */
#define POLICY_PRED_SAMPLES 64   /* recent estimates, one per evaluation */
#define POLICY_PRED_MINUTES 2880 /* two days of per-minute means */

struct policy_pred_state {
    struct {
        int64_t at_ms;
        double demand;
    } recent[POLICY_PRED_SAMPLES];
    int recent_n, recent_head;
    double minute[POLICY_PRED_MINUTES]; /* ring by absolute minute number */
    int64_t minutes;                    /* minutes recorded so far */
    int64_t acc_minute;                 /* the minute being averaged (absolute) */
    double acc;
    int acc_n;
    int period_min;           /* the period found, in minutes; 0: none */
    double period_corr;       /* its autocorrelation */
    int64_t period_checked_m; /* the minute it was last looked for */
};

struct policy_state {
    int64_t last_eval_ms;   /* 0: never evaluated */
    int64_t last_action_ms; /* 0: never acted */
    int evaluated;          /* at least one evaluation ran */
    /* target, predictive: the sizes that can still be the highest of scale_down_window
       (ring of window_cap entries, malloc'd; values strictly decreasing, oldest first) */
    struct policy_window_entry *window;
    int window_n, window_head, window_cap;
    struct policy_pred_state *pred; /* predictive: malloc'd at its first evaluation */
};

/*
 * Frees what st holds and zeroes it: the policy starts over. A zeroed state
 * needs nothing; one that was used must be reset (not memset) to be reused
 * or dropped. Out of memory, the policies degrade (a shorter window, no
 * forecast) and say so in the cause rather than fail.
 */
void policy_state_reset(struct policy_state *st);

struct policy_input {
    int64_t now_ms;
    int min_size, max_size;
    int current;     /* instances counted toward capacity: in service + booting */
    int in_service;  /* of those, serving (the load is theirs); predictive only */
    double avg_load; /* observed average load of in-service instances, 0..100; < 0: no data */
};

struct policy_decision {
    int evaluated;   /* 1 if the policy ran at this time (period elapsed) */
    int desired;     /* the new desired count (== current when no change) */
    int changed;     /* desired != current */
    char cause[256]; /* human text: "average load 83% > 70% for 60s: 2 -> 4" */
};

/* One band of the step policy: above (or below) load, add (remove) adjust instances or %. */
struct policy_step {
    int above;     /* 1: ">load:+adjust", 0: "<load:-adjust" */
    double load;   /* 0..100 */
    double adjust; /* signed: > 0 adds */
    int percent;   /* adjust is a percentage of the current size */
};

/*
 * Parses steps text (">70:+1, >85:+50%, <20:-1") into out[0..max). Returns
 * the number of steps, or -1 with the reason in err. Pure; the settings
 * validator uses it.
 */
int policy_steps_parse(const char *text, struct policy_step *out, int max, char *err,
                       size_t errlen);

/*
 * Instance warmup (policy_warmup.c): whether the load of an instance launched
 * at launched_ms counts in the average at now_ms. With warmup_ms > 0, from
 * warmup_ms after its launch, whatever the health grace period; with 0, as
 * before warmup existed: once past_grace (the controller's reckoning).
 */
int policy_load_counts(const struct policy_settings *s, int64_t launched_ms, int64_t now_ms,
                       int past_grace);

/* Always succeeds for valid settings; returns 0. */
int policy_evaluate(const struct policy_settings *s, struct policy_state *st,
                    const struct policy_input *in, struct policy_decision *out);

#endif
