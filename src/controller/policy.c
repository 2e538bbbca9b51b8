/*
 * policy.c - the scaling policies of policy.h, as pure arithmetic.
 *
 * Nothing here reads a clock or does I/O, so the controller (every 1 s tick),
 * the unit tests and `asgd simulate` (virtual time) get identical decisions
 * from identical inputs. The arithmetic follows ../shared/design/simulation.md
 * literally; the choices it leaves open are made here and stated in policy.h:
 *
 * - Bounds are enforced on every call, not only at evaluation times: n < min
 *   or n > max is corrected at once (seed formula, then clamped) and ignores
 *   the cooldown. Load-based changes happen only when the evaluation period
 *   has elapsed (the first call always evaluates).
 * - The seed's up-step floor(n * up_factor) can equal n (n = 1, factor 1.5):
 *   then nothing changes, as in the seed, and the cause says that the factor
 *   yields no growth. Likewise for a down-step that rounds to zero.
 * - Float noise: ratios such as 66/60 or 5*72/60 are compared and rounded
 *   with a 1e-9 slack, so "exactly at the tolerance" is inside the band and
 *   ceil(6.000000000000001) is 6. Other implementations of simulation.md
 *   should do the same to reproduce our figures.
 */
#include "controller/policy.h"
#include "controller/policy_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

#define EPS 1e-9

void policy_settings_default(struct policy_settings *s, int type)
{
    memset(s, 0, sizeof(*s));
    s->type = type == POLICY_TARGET || type == POLICY_PREDICTIVE || type == POLICY_STEP
                  ? type
                  : POLICY_THRESHOLD;
    snprintf(s->steps, sizeof(s->steps), "%s", ">70:+1, >85:+50%, <20:-1");
    s->up_threshold = 70;
    s->down_threshold = 20;
    s->up_factor = 2;
    s->down_factor = 0.5;
    s->cooldown_ms = 0;
    s->target = 60;
    s->tolerance = 0.1;
    s->scale_down_window_ms = 300000;
    s->lead_ms = 60000;
    s->season_ms = 86400000;
    s->evaluation_period_ms = s->type == POLICY_TARGET ? 15000 : 60000;
    if (s->type == POLICY_PREDICTIVE) {
        s->target = 70;
        s->scale_down_window_ms = 120000;
        s->evaluation_period_ms = 5000;
    }
}

const char *policy_type_name(int type)
{
    switch (type) {
    case POLICY_THRESHOLD:
        return "threshold";
    case POLICY_TARGET:
        return "target";
    case POLICY_PREDICTIVE:
        return "predictive";
    case POLICY_STEP:
        return "step";
    default:
        return "unknown";
    }
}

int policy_type_parse(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcmp(name, "threshold") == 0)
        return POLICY_THRESHOLD;
    if (strcmp(name, "target") == 0)
        return POLICY_TARGET;
    if (strcmp(name, "predictive") == 0)
        return POLICY_PREDICTIVE;
    if (strcmp(name, "step") == 0)
        return POLICY_STEP;
    return -1;
}

static int clamp(int x, int lo, int hi)
{
    if (x > hi)
        x = hi;
    if (x < lo)
        x = lo;
    return x;
}

/* "60s", "500ms", "1.5s": whole seconds stay seconds ("for 60s", not "for 1m"). */
void policy_fmt_dur(int64_t ms, char *buf, size_t size)
{
    if (ms % 1000 == 0)
        snprintf(buf, size, "%llds", (long long)(ms / 1000));
    else if (ms > 1000)
        snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
    else
        snprintf(buf, size, "%lldms", (long long)ms);
}

/* "83%" or "70.4%": one decimal only when it matters. */
static void fmt_pct(double v, char *buf, size_t size)
{
    if (fabs(v - nearbyint(v)) < 0.05)
        snprintf(buf, size, "%.0f%%", v);
    else
        snprintf(buf, size, "%.1f%%", v);
}

/* The seed's up step: max(min, 1, min(max, floor(n * f))). */
static int seed_up(int n, int min, int max, double f)
{
    double x = floor((double)n * f + EPS);
    int up = x > (double)max ? max : (int)x;
    if (up < 1)
        up = 1;
    if (up < min)
        up = min;
    return up;
}

/* The seed's down step: n - floor(min(n * f, n - min)). */
static int seed_down(int n, int min, double f)
{
    double d = (double)n * f;
    if (d > (double)(n - min))
        d = (double)(n - min);
    return n - (int)floor(d + EPS);
}

static void finish(struct policy_decision *out, int current, int desired)
{
    out->desired = desired;
    out->changed = desired != current;
}

/* Bounds: returns 1 when n was outside [min, max] and *out is filled. */
static int enforce_bounds(const struct policy_settings *s, struct policy_state *st,
                          const struct policy_input *in, struct policy_decision *out)
{
    int n = in->current;
    int d;
    if (n < in->min_size) {
        d = s->type == POLICY_THRESHOLD ? seed_up(n, in->min_size, in->max_size, s->up_factor)
                                        : in->min_size;
        d = clamp(d, in->min_size, in->max_size);
        snprintf(out->cause, sizeof(out->cause), "below minimum: %d -> %d", n, d);
    } else if (n > in->max_size) {
        d = s->type == POLICY_THRESHOLD ? seed_down(n, in->min_size, s->down_factor) : in->max_size;
        d = clamp(d, in->min_size, in->max_size);
        snprintf(out->cause, sizeof(out->cause), "above maximum: %d -> %d", n, d);
    } else {
        return 0;
    }
    finish(out, n, d);
    if (out->changed)
        st->last_action_ms = in->now_ms;
    return 1;
}

static void eval_threshold(const struct policy_settings *s, struct policy_state *st,
                           const struct policy_input *in, struct policy_decision *out)
{
    int n = in->current;
    char per[32], load[32], up[32], down[32];
    policy_fmt_dur(s->evaluation_period_ms, per, sizeof(per));
    fmt_pct(in->avg_load, load, sizeof(load));
    fmt_pct(s->up_threshold, up, sizeof(up));
    fmt_pct(s->down_threshold, down, sizeof(down));

    if (in->avg_load < 0) {
        snprintf(out->cause, sizeof(out->cause), "no load data: %d stays", n);
        finish(out, n, n);
        return;
    }
    int want_up = in->avg_load > s->up_threshold && n < in->max_size;
    int want_down = !want_up && in->avg_load < s->down_threshold && n > in->min_size;
    if (!want_up && !want_down) {
        snprintf(out->cause, sizeof(out->cause), "average load %s within %s..%s: %d stays", load,
                 down, up, n);
        finish(out, n, n);
        return;
    }
    int64_t cooldown = s->cooldown_ms > 0 ? s->cooldown_ms : s->evaluation_period_ms;
    if (st->last_action_ms != 0 && in->now_ms - st->last_action_ms < cooldown) {
        char left[32];
        policy_fmt_dur(cooldown - (in->now_ms - st->last_action_ms), left, sizeof(left));
        snprintf(out->cause, sizeof(out->cause),
                 "average load %s %s %s, but cooling down (%s left): %d stays", load,
                 want_up ? ">" : "<", want_up ? up : down, left, n);
        finish(out, n, n);
        return;
    }
    int d;
    if (want_up) {
        d = clamp(seed_up(n, in->min_size, in->max_size, s->up_factor), in->min_size, in->max_size);
        if (d == n)
            snprintf(out->cause, sizeof(out->cause),
                     "average load %s > %s for %s, but scale_up_factor %g yields no growth: %d "
                     "stays",
                     load, up, per, s->up_factor, n);
        else
            snprintf(out->cause, sizeof(out->cause), "average load %s > %s for %s: %d -> %d", load,
                     up, per, n, d);
    } else {
        d = clamp(seed_down(n, in->min_size, s->down_factor), in->min_size, in->max_size);
        if (d == n)
            snprintf(out->cause, sizeof(out->cause),
                     "average load %s < %s for %s, but scale_down_factor %g yields no reduction: "
                     "%d stays",
                     load, down, per, s->down_factor, n);
        else
            snprintf(out->cause, sizeof(out->cause), "average load %s < %s for %s: %d -> %d", load,
                     down, per, n, d);
    }
    finish(out, n, d);
    if (out->changed)
        st->last_action_ms = in->now_ms;
}

void policy_state_reset(struct policy_state *st)
{
    free(st->window);
    free(st->pred);
    memset(st, 0, sizeof(*st));
}

/* Drops the recommendations that left the window (now - window, now]. */
static void window_expire(struct policy_state *st, int64_t now, int64_t window)
{
    while (st->window_n > 0 && now - st->window[st->window_head].at_ms >= window) {
        st->window_head = (st->window_head + 1) % st->window_cap;
        st->window_n--;
    }
}

/* Doubles the ring (up to POLICY_WINDOW_CAP), oldest first at 0; 0 or -1 (out of memory). */
static int window_grow(struct policy_state *st)
{
    int cap = st->window_cap ? st->window_cap * 2 : 16;
    if (cap > POLICY_WINDOW_CAP)
        cap = POLICY_WINDOW_CAP;
    struct policy_window_entry *w = malloc((size_t)cap * sizeof(*w));
    if (w == NULL)
        return -1;
    for (int i = 0; i < st->window_n; i++)
        w[i] = st->window[(st->window_head + i) % st->window_cap];
    free(st->window);
    st->window = w;
    st->window_cap = cap;
    st->window_head = 0;
    return 0;
}

/* Adds a recommendation; older ones not above it can never be the maximum again. */
void policy_window_add(struct policy_state *st, int64_t at, int value)
{
    while (st->window_n > 0) {
        int last = (st->window_head + st->window_n - 1) % st->window_cap;
        if (st->window[last].value > value)
            break;
        st->window_n--;
    }
    if (st->window_n == st->window_cap &&
        (st->window_cap == POLICY_WINDOW_CAP || window_grow(st) != 0)) {
        if (st->window_cap == 0)
            return; /* out of memory before the first entry: no window */
        /* full (only values outside [0, POLICY_MAX_SIZE], or out of memory): forget the oldest */
        st->window_head = (st->window_head + 1) % st->window_cap;
        st->window_n--;
    }
    int idx = (st->window_head + st->window_n) % st->window_cap;
    st->window[idx].at_ms = at;
    st->window[idx].value = value;
    st->window_n++;
}

/* Highest recommendation made within (now - window, now]: the oldest kept. */
int policy_window_max(struct policy_state *st, int64_t now, int64_t window, int floor_v)
{
    window_expire(st, now, window);
    if (st->window_n > 0 && st->window[st->window_head].value > floor_v)
        return st->window[st->window_head].value;
    return floor_v;
}

static void eval_target(const struct policy_settings *s, struct policy_state *st,
                        const struct policy_input *in, struct policy_decision *out)
{
    int n = in->current;
    char tgt[32], load[32], win[32];
    fmt_pct(s->target, tgt, sizeof(tgt));
    fmt_pct(in->avg_load, load, sizeof(load));
    policy_fmt_dur(s->scale_down_window_ms, win, sizeof(win));

    if (in->avg_load < 0) {
        snprintf(out->cause, sizeof(out->cause), "target %s: no load data: %d stays", tgt, n);
        finish(out, n, n);
        return;
    }
    double r = in->avg_load / s->target;
    int rec;
    if (fabs(r - 1.0) <= s->tolerance + EPS) {
        rec = n;
    } else {
        double x = ceil((double)n * in->avg_load / s->target - EPS);
        rec = x > (double)in->max_size ? in->max_size : (int)x;
    }
    rec = clamp(rec, in->min_size, in->max_size);
    policy_window_add(st, in->now_ms, rec);
    int d = rec;
    if (rec < n)
        d = policy_window_max(st, in->now_ms, s->scale_down_window_ms, rec);
    if (d > n && rec < n)
        d = n; /* the window never turns a scale-down into a scale-up */
    if (d == n && rec == n)
        snprintf(out->cause, sizeof(out->cause),
                 "target %s: load %s (ratio %.2f) within tolerance %g: %d stays", tgt, load, r,
                 s->tolerance, n);
    else if (d == n)
        snprintf(out->cause, sizeof(out->cause),
                 "target %s: load %s (ratio %.2f) recommends %d, held by %s scale-down window: %d "
                 "stays",
                 tgt, load, r, rec, win, n);
    else if (d != rec)
        snprintf(out->cause, sizeof(out->cause),
                 "target %s: load %s (ratio %.2f): %d -> %d (recommends %d, highest in %s window)",
                 tgt, load, r, n, d, rec, win);
    else
        snprintf(out->cause, sizeof(out->cause), "target %s: load %s (ratio %.2f): %d -> %d", tgt,
                 load, r, n, d);
    finish(out, n, d);
    if (out->changed)
        st->last_action_ms = in->now_ms;
}

int policy_evaluate(const struct policy_settings *s, struct policy_state *st,
                    const struct policy_input *in, struct policy_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->desired = in->current;

    if (enforce_bounds(s, st, in, out))
        return 0;

    int due = !st->evaluated || in->now_ms - st->last_eval_ms >= s->evaluation_period_ms;
    if (!due) {
        snprintf(out->cause, sizeof(out->cause), "not due: %d stays", in->current);
        return 0;
    }
    st->evaluated = 1;
    st->last_eval_ms = in->now_ms;
    out->evaluated = 1;
    if (s->type == POLICY_TARGET)
        eval_target(s, st, in, out);
    else if (s->type == POLICY_PREDICTIVE)
        policy_predictive_eval(s, st, in, out);
    else if (s->type == POLICY_STEP)
        policy_step_eval(s, st, in, out);
    else
        eval_threshold(s, st, in, out);
    return 0;
}
