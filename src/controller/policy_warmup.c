/*
 * policy_warmup.c - instance warmup: when a new instance's load counts.
 *
 * A booting application reports a load that says little about the demand
 * (idle while it warms its caches, or busy compiling). The health grace
 * period was the only gate; warmup is the policy's own, so an operator can
 * give a slow health check a long grace without blinding the policy, or the
 * reverse. Pure.
 */
#include "controller/policy.h"

#include "common/banned.h"

int policy_load_counts(const struct policy_settings *s, int64_t launched_ms, int64_t now_ms,
                       int past_grace)
{
    if (s->warmup_ms <= 0)
        return past_grace;
    return now_ms - launched_ms >= s->warmup_ms;
}
