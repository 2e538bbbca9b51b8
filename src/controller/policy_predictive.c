/*
 * policy_predictive.c - asgd's own policy: size the group for the demand
 * expected when a new instance is ready, not for the demand now.
 *
 * Why: an instance serves lead (its boot time) after it is asked for, so a
 * policy that reacts to the load now is always lead late on a rise, and one
 * that holds a fixed headroom pays for it on every slow wave. Here:
 *
 * - The demand (instance-equivalents) is estimated each evaluation as
 *   avg_load x in_service: the load is the serving instances' only.
 * - Its trend is the least-squares slope of the estimates of the last
 *   TREND_MS; a rise is extrapolated lead ahead, a fall is not (shrinking
 *   early costs violations, shrinking late only costs instance-seconds).
 * - A periodic pattern (a daily wave, on/off shifts) is looked for every 10
 *   minutes in the per-minute history: the lag of highest autocorrelation,
 *   up to season (24 h). Once one is found, what the demand did one period
 *   ago over the next lead is expected again: the group grows before the
 *   wave or the shift, not with it.
 * - Saturation: at 100 % load the estimate is only a lower bound (the
 *   unserved part is invisible), so the group then plans for at least
 *   SAT_FACTOR x the serving count; while that many are booting it waits for
 *   them instead of doubling again on the same blind reading.
 * - Size = ceil(forecast / target), at once when it grows; a scale-down
 *   takes the highest size needed within scale_down_window (a dip shorter
 *   than that is not worth a boot when it ends).
 *
 * Pure: no clock, no I/O; everything remembered is in policy_state.pred.
 */
#include "controller/policy_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

#define EPS        1e-9
#define TREND_MS   120000 /* the slope's window */
#define SAT_LOAD   99.5   /* a reading this high is saturated */
#define SAT_FACTOR 3.0

static int clamp(int x, int lo, int hi)
{
    return x > hi ? hi : x < lo ? lo : x;
}

static void recent_add(struct policy_pred_state *p, int64_t now, double demand)
{
    int idx = (p->recent_head + p->recent_n) % POLICY_PRED_SAMPLES;
    if (p->recent_n == POLICY_PRED_SAMPLES) {
        idx = p->recent_head;
        p->recent_head = (p->recent_head + 1) % POLICY_PRED_SAMPLES;
    } else {
        p->recent_n++;
    }
    p->recent[idx].at_ms = now;
    p->recent[idx].demand = demand;
}

/* Least-squares slope (per second) of the estimates within TREND_MS; 0 with too few. */
static double trend(const struct policy_pred_state *p, int64_t now)
{
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    int64_t oldest = now;
    for (int i = 0; i < p->recent_n; i++) {
        int idx = (p->recent_head + i) % POLICY_PRED_SAMPLES;
        int64_t at = p->recent[idx].at_ms;
        if (now - at > TREND_MS)
            continue;
        double x = (double)(at - now) / 1000.0, y = p->recent[idx].demand;
        n++;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        if (at < oldest)
            oldest = at;
    }
    double den = n * sxx - sx * sx;
    if (n < 3 || now - oldest < TREND_MS / 4 || fabs(den) < EPS)
        return 0;
    return (n * sxy - sx * sy) / den;
}

/* The per-minute history, minute m (absolute) ago-safe: callers stay within what was kept. */
static double minute_at(const struct policy_pred_state *p, int64_t m)
{
    return p->minute[m % POLICY_PRED_MINUTES];
}

/*
 * Looks for a period in the per-minute history: the lag (5 min .. season,
 * at most half the history) whose autocorrelation is highest, provided it is
 * >= 0.6 and the correlation fell by at least 0.3 somewhere before it (a
 * trend or a random walk correlates at every short lag: that is no period).
 */
static void find_period(const struct policy_settings *s, struct policy_pred_state *p, int64_t now_m)
{
    p->period_checked_m = now_m;
    p->period_min = 0;
    p->period_corr = 0;
    int64_t len = p->minutes < POLICY_PRED_MINUTES ? p->minutes : POLICY_PRED_MINUTES;
    int64_t max_lag = s->season_ms / 60000;
    if (max_lag > len / 2)
        max_lag = len / 2;
    int64_t last = now_m - 1; /* the newest complete minute */
    double lowest = 1, best = 0;
    int best_lag = 0;
    for (int64_t lag = 5; lag <= max_lag; lag++) {
        int64_t n = len - lag;
        double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (int64_t i = 0; i < n; i++) {
            double x = minute_at(p, last - i), y = minute_at(p, last - i - lag);
            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
        }
        double vx = n * sxx - sx * sx, vy = n * syy - sy * sy;
        if (vx <= EPS || vy <= EPS)
            continue;
        double c = (n * sxy - sx * sy) / sqrt(vx * vy);
        if (c < lowest)
            lowest = c;
        if (c >= 0.6 && c - lowest >= 0.3 && c > best + 0.02) {
            best = c;
            best_lag = (int)lag;
        }
    }
    p->period_min = best_lag;
    p->period_corr = best;
}

/* Records the estimate in the per-minute history (a minute with no estimate repeats the last). */
static void minute_add(const struct policy_settings *s, struct policy_pred_state *p, int64_t now,
                       double demand)
{
    int64_t m = now / 60000;
    if (p->acc_n > 0 && m != p->acc_minute) {
        double mean = p->acc / p->acc_n;
        int64_t gap = m - p->acc_minute;
        if (gap > POLICY_PRED_MINUTES)
            gap = POLICY_PRED_MINUTES;
        for (int64_t k = 0; k < gap; k++)
            p->minute[(p->acc_minute + k) % POLICY_PRED_MINUTES] = mean;
        p->minutes += gap;
        p->acc = 0;
        p->acc_n = 0;
        if (s->season_ms > 0 && m - p->period_checked_m >= 10)
            find_period(s, p, m);
    }
    p->acc_minute = m;
    p->acc += demand;
    p->acc_n++;
}

/* The pattern's expected rise from now to lead ahead: what happened one period ago. */
static double pattern(const struct policy_settings *s, const struct policy_pred_state *p,
                      int64_t now)
{
    int64_t P = p->period_min, m = now / 60000;
    /* one minute more than lead: a rise recorded while saturated shows late and low */
    int64_t ahead = (s->lead_ms + 59999) / 60000 + 2;
    if (P == 0 || P <= ahead || p->minutes < P + ahead + 1)
        return 0;
    double then = minute_at(p, m - P), peak = then;
    for (int64_t k = 1; k <= ahead; k++)
        if (minute_at(p, m - P + k) > peak)
            peak = minute_at(p, m - P + k);
    return peak - then;
}

void policy_predictive_eval(const struct policy_settings *s, struct policy_state *st,
                            const struct policy_input *in, struct policy_decision *out)
{
    int n = in->current, serving = in->in_service;
    if (st->pred == NULL && (st->pred = calloc(1, sizeof(*st->pred))) == NULL) {
        snprintf(out->cause, sizeof(out->cause), "predictive: out of memory: %d stays", n);
        out->desired = n;
        out->changed = 0;
        return;
    }
    struct policy_pred_state *p = st->pred;
    double u = s->target / 100.0;
    char lead[32];
    policy_fmt_dur(s->lead_ms, lead, sizeof(lead));
    if (in->avg_load < 0) {
        snprintf(out->cause, sizeof(out->cause), "predictive: no load data: %d stays", n);
        out->desired = n;
        out->changed = 0;
        return;
    }
    int saturated = in->avg_load >= SAT_LOAD && (serving > 0 || in->avg_load > 0);
    double demand = in->avg_load / 100.0 * (double)serving;
    recent_add(p, in->now_ms, demand);
    double slope = trend(p, in->now_ms);
    minute_add(s, p, in->now_ms, demand);
    double pat = pattern(s, p, in->now_ms);

    /* only rises are planned for: shrinking early costs violations, late only money */
    double rise = slope > 0 ? slope * (double)s->lead_ms / 1000.0 : 0;
    double forecast = demand + (rise > pat ? rise : pat);
    double need_d = ceil(forecast / u - EPS);
    if (saturated) {
        /* blind: at least SAT_FACTOR x the serving count (one instance if none serves) */
        double blind = ceil((serving > 0 ? (double)serving : 0.5) * SAT_FACTOR - EPS);
        if (blind > need_d)
            need_d = blind;
    }
    int need = need_d > (double)in->max_size ? in->max_size : (int)need_d;
    need = clamp(need, in->min_size, in->max_size);
    policy_window_add(st, in->now_ms, need);

    char why[160];
    char per[48] = "no period found";
    if (p->period_min > 0)
        snprintf(per, sizeof(per), "%d-min pattern %+.1f", p->period_min, pat);
    snprintf(why, sizeof(why), "forecast %.1f instances in %s (trend %+.1f/min, %s)%s", forecast,
             lead, slope * 60.0, per, saturated ? ", saturated" : "");
    int d = n;
    if (need > n) {
        d = need;
    } else if (need < n) {
        d = policy_window_max(st, in->now_ms, s->scale_down_window_ms, need);
        if (d > n)
            d = n;
    }
    if (d == n && need < n) {
        char win[32];
        policy_fmt_dur(s->scale_down_window_ms, win, sizeof(win));
        snprintf(out->cause, sizeof(out->cause),
                 "%.150s: needs %d, held by %.20s scale-down window: %d "
                 "stays",
                 why, need, win, n);
    } else if (d == n) {
        snprintf(out->cause, sizeof(out->cause), "%.150s: %d stays", why, n);
    } else {
        snprintf(out->cause, sizeof(out->cause), "%.150s: %d -> %d", why, n, d);
    }
    out->desired = d;
    out->changed = d != n;
    if (out->changed)
        st->last_action_ms = in->now_ms;
}
