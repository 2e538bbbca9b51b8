/*
 * fleet_internal.h - test hooks and the invariant checker of the fleet table.
 *
 * Not part of the contract in fleet.h: the unit tests (and asgd status, for
 * the checker) use these to prove the table survives crashes and keeps its
 * invariants. Nothing here is needed to use the table.
 */
#ifndef ASGD_FLEET_INTERNAL_H
#define ASGD_FLEET_INTERNAL_H

#include <stddef.h>

#include "fleet/fleet.h"

/*
 * Takes the table mutex and returns with it held (0, or FLEET_ESYS). Tests
 * fork a child that calls this and is then killed, to prove the robust mutex
 * recovers. A process that calls it must release with fleet__unlock_for_test().
 */
int fleet__lock_for_test(struct fleet *f);
int fleet__unlock_for_test(struct fleet *f);

/*
 * Crash injection for slot writes (0 = off). When set in a (forked) process,
 * the next slot write raises SIGKILL at that point:
 *   1 after the redo journal is written, before the slot's sequence turns odd;
 *   2 with the sequence odd and half of the slot's words written.
 * The next locker must then replay the journal (the slot shows the new data).
 */
extern int fleet__crash_point;

/*
 * Checks the table's invariants under the mutex: the used count matches the
 * slots in use, a slot is free iff its id hash is 0, ids are non-empty,
 * terminated and unique, lifecycle and health are in range, no sequence
 * counter is odd, the redo journal is closed. Returns 0, or FLEET_EINVAL with
 * a description of the first violation in err (errlen > 0).
 */
int fleet__check(struct fleet *f, char *err, size_t errlen);

/* Sequence counter of slot index (even when idle), for tests. 0 if out of range. */
uint32_t fleet__seq(const struct fleet *f, uint32_t index);

#endif
