/*
 * policy_step.c - step scaling (AWS's step adjustments): bands of average
 * load, each with its own adjustment.
 *
 *   [policy] type = step
 *            steps = >70:+1, >85:+50%, <20:-1
 *
 * ">T:+A" applies when the load is above T, "<T:-A" when below; of the
 * bands that apply the most extreme one wins (the highest ">" threshold
 * exceeded, else the lowest "<" one undercut), so bands nest like AWS's
 * lower/upper bounds without having to tile the range. A is a count or a
 * percentage of the current size (then at least one instance, as AWS's
 * MinAdjustmentMagnitude of 1). Like threshold, it runs every
 * evaluation_period and rests for cooldown after an action.
 */
#include "controller/policy_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

#define EPS 1e-9

static int parse_one(const char *s, const char *e, struct policy_step *out, char *err,
                     size_t errlen)
{
    char buf[64];
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof(buf)) {
        snprintf(err, errlen, "empty or overlong step (expected like \">85:+2\" or \"<20:-10%%\")");
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *p = buf, *end;
    if (*p != '>' && *p != '<')
        goto bad;
    out->above = *p == '>';
    p++;
    errno = 0;
    out->load = strtod(p, &end);
    if (end == p || *end != ':' || errno != 0 || !(out->load >= 0 && out->load <= 100))
        goto bad;
    p = end + 1;
    if (*p != '+' && *p != '-')
        goto bad;
    int sign = *p == '+' ? 1 : -1;
    p++;
    out->adjust = strtod(p, &end);
    if (end == p || errno != 0 || !(out->adjust > 0 && out->adjust <= 10000))
        goto bad;
    out->percent = *end == '%';
    if (out->percent)
        end++;
    if (*end != '\0')
        goto bad;
    if (!out->percent && out->adjust != floor(out->adjust))
        goto bad;
    if ((sign > 0) != (out->above != 0)) {
        snprintf(err, errlen, "step \"%s\": a step above a load adds (+), below removes (-)", buf);
        return -1;
    }
    out->adjust *= sign;
    return 0;
bad:
    snprintf(err, errlen,
             "step \"%s\" is not like \">85:+2\" or \"<20:-10%%\" (load 0..100, a whole count or "
             "a percentage)",
             buf);
    return -1;
}

int policy_steps_parse(const char *text, struct policy_step *out, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *s = text;
    if (text == NULL || strspn(text, " \t") == strlen(text)) {
        snprintf(err, errlen, "no steps (expected like \">70:+1, >85:+50%%, <20:-1\")");
        return -1;
    }
    for (;;) {
        const char *comma = strchr(s, ',');
        const char *e = comma ? comma : s + strlen(s);
        if (n == max) {
            snprintf(err, errlen, "more than %d steps", max);
            return -1;
        }
        if (parse_one(s, e, &out[n], err, errlen) != 0)
            return -1;
        for (int i = 0; i < n; i++)
            if (out[i].above == out[n].above && out[i].load == out[n].load) {
                snprintf(err, errlen, "two steps %s %g", out[n].above ? "above" : "below",
                         out[n].load);
                return -1;
            }
        n++;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return n;
}

void policy_step_eval(const struct policy_settings *s, struct policy_state *st,
                      const struct policy_input *in, struct policy_decision *out)
{
    struct policy_step steps[POLICY_MAX_STEPS];
    char err[160], why[96];
    int n = in->current;
    out->desired = n;
    out->changed = 0;
    int ns = policy_steps_parse(s->steps, steps, POLICY_MAX_STEPS, err, sizeof(err));
    if (ns < 0) { /* the validator refuses such settings: only a caller skipping it gets here */
        snprintf(out->cause, sizeof(out->cause), "step: bad steps (%.120s): %d stays", err, n);
        return;
    }
    if (in->avg_load < 0) {
        snprintf(out->cause, sizeof(out->cause), "step: no load data: %d stays", n);
        return;
    }
    const struct policy_step *win = NULL;
    for (int i = 0; i < ns; i++)
        if (steps[i].above && in->avg_load > steps[i].load && n < in->max_size &&
            (win == NULL || steps[i].load > win->load))
            win = &steps[i];
    for (int i = 0; win == NULL && i < ns; i++)
        if (!steps[i].above && in->avg_load < steps[i].load && n > in->min_size)
            win = &steps[i];
    for (int i = 0; win != NULL && !win->above && i < ns; i++)
        if (!steps[i].above && in->avg_load < steps[i].load && steps[i].load < win->load)
            win = &steps[i];
    if (win == NULL) {
        snprintf(out->cause, sizeof(out->cause), "step: load %.1f%% in no band: %d stays",
                 in->avg_load, n);
        return;
    }
    int delta;
    if (win->percent) {
        double d = (double)n * fabs(win->adjust) / 100.0;
        delta = (int)floor(d + EPS);
        if (delta < 1)
            delta = 1;
        snprintf(why, sizeof(why), "%s%g%% = %s%d", win->adjust > 0 ? "+" : "-", fabs(win->adjust),
                 win->adjust > 0 ? "+" : "-", delta);
    } else {
        delta = (int)fabs(win->adjust);
        snprintf(why, sizeof(why), "%+d", (int)win->adjust);
    }
    int64_t cooldown = s->cooldown_ms > 0 ? s->cooldown_ms : s->evaluation_period_ms;
    if (st->last_action_ms != 0 && in->now_ms - st->last_action_ms < cooldown) {
        snprintf(out->cause, sizeof(out->cause),
                 "step: load %.1f%% %s %g%% (%s), but cooling down: %d stays", in->avg_load,
                 win->above ? ">" : "<", win->load, why, n);
        return;
    }
    long d = win->above ? (long)n + delta : (long)n - delta;
    if (d > in->max_size)
        d = in->max_size;
    if (d < in->min_size)
        d = in->min_size;
    snprintf(out->cause, sizeof(out->cause), "step: load %.1f%% %s %g%%: %s: %d -> %ld",
             in->avg_load, win->above ? ">" : "<", win->load, why, n, d);
    out->desired = (int)d;
    out->changed = out->desired != n;
    if (out->changed)
        st->last_action_ms = in->now_ms;
}
