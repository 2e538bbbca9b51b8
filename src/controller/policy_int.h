/*
 * policy_int.h - what the policies of src/controller/ share (not for other
 * modules): the scale-down window (a sliding-window maximum, policy.h) and
 * the duration format of the causes. Pure, like policy.h.
 */
#ifndef ASGD_POLICY_INT_H
#define ASGD_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "controller/policy.h"

/* Adds a size to the window; older ones not above it can never be the maximum again. */
void policy_window_add(struct policy_state *st, int64_t at, int value);
/* The highest size added within (now - window, now], at least floor_v. */
int policy_window_max(struct policy_state *st, int64_t now, int64_t window, int floor_v);
/* "60s", "500ms", "1.5s". */
void policy_fmt_dur(int64_t ms, char *buf, size_t size);

/* The step policy (policy_step.c). */
void policy_step_eval(const struct policy_settings *s, struct policy_state *st,
                      const struct policy_input *in, struct policy_decision *out);

/* The predictive policy (policy_predictive.c), run by policy_evaluate() when due. */
void policy_predictive_eval(const struct policy_settings *s, struct policy_state *st,
                            const struct policy_input *in, struct policy_decision *out);

#endif
