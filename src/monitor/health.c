/*
 * health.c - the rise/fall hysteresis that turns poll results into health.
 *
 * Kept pure (no clock, no table) so that unit tests can drive every sequence
 * of successes and failures, and so that the poller can apply it inside a
 * fleet_update() callback on the slot's own fields: the slot is then the one
 * place the state lives, and a Deregister that forces a slot UNHEALTHY is
 * seen by the next poll result without any other synchronisation.
 */
#include "monitor/mon.h"

#include "fleet/fleet.h"

#include "common/banned.h"

int mon_health_observe(uint8_t *health, uint32_t *ok, uint32_t *fail, int success, uint32_t rise,
                       uint32_t fall)
{
    uint8_t before = *health;

    if (rise == 0)
        rise = 1;
    if (fall == 0)
        fall = 1;
    if (success) {
        *fail = 0;
        if (*ok < UINT32_MAX)
            (*ok)++;
        if (*ok >= rise)
            *health = FLEET_HEALTH_HEALTHY;
    } else {
        *ok = 0;
        if (*fail < UINT32_MAX)
            (*fail)++;
        /* a deregistered agent is expected to be silent while it restarts: the controller
           ends that state after the group's deregister_grace, not the failed checks */
        if (*fail >= fall && *health != FLEET_HEALTH_DEREGISTERED)
            *health = FLEET_HEALTH_UNHEALTHY;
    }
    return *health != before;
}
