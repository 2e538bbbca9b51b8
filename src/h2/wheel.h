/*
 * wheel.h - one hashed timer wheel for many timers at millisecond resolution.
 *
 * Workload: the poller's thousands of targets each hold a timer for their
 * next poll and one for the deadline of the call in flight, re-armed every
 * interval; a sorted structure (heap, tree) would cost O(log n) per re-arm
 * and a scan of every target per tick O(n). The wheel costs O(1) to add,
 * move or cancel a timer and O(timers in the slot) per elapsed millisecond:
 * WHEEL_SLOTS one-millisecond slots; a timer due further out than one turn
 * stays in its slot and is skipped until its turn comes.
 *
 * Timers are intrusive (struct wheel_timer lives inside its owner's struct),
 * so adding one never allocates. Times are monotonic milliseconds
 * (clk_mono_ms()). A timer fires once; its callback may add, move or cancel
 * any timer, itself included.
 *
 * Threads: none of its own; one thread uses a wheel at a time.
 * Errors: none (nothing here can fail).
 */
#ifndef ASGD_WHEEL_H
#define ASGD_WHEEL_H

#include <stddef.h>
#include <stdint.h>

#define WHEEL_SLOTS 4096 /* one turn: 4.096 s (a power of two) */

struct wheel_timer;
typedef void (*wheel_fn)(struct wheel_timer *t, int64_t now_ms);

/* Embedded in its owner; zero it (or WHEEL_TIMER_INIT) before first use. Fields are the
   wheel's: read due_ms only while pending. */
struct wheel_timer {
    struct wheel_timer *next, **pprev; /* pprev NULL = not pending */
    int64_t due_ms;
    wheel_fn fn;
};
#define WHEEL_TIMER_INIT                                                                           \
    {                                                                                              \
        NULL, NULL, 0, NULL                                                                        \
    }

struct wheel {
    struct wheel_timer *slot[WHEEL_SLOTS];
    int64_t tick; /* the next millisecond whose slot has not been run */
    size_t count; /* timers pending */
};

/* Sets up an empty wheel whose time starts at now_ms. */
void wheel_init(struct wheel *w, int64_t now_ms);

/* Arms t to call fn at due_ms (a time already past fires at the next wheel_run()); a timer
   already pending is moved. */
void wheel_add(struct wheel *w, struct wheel_timer *t, int64_t due_ms, wheel_fn fn);

/* Disarms t; a timer not pending is left alone. */
void wheel_del(struct wheel *w, struct wheel_timer *t);

/* 1 when t is armed. */
static inline int wheel_pending(const struct wheel_timer *t)
{
    return t->pprev != NULL;
}

/* Fires every timer due at or before now_ms, oldest slot first. Returns how many fired.
   A timer a callback arms for a time already past goes into the next slot: it fires later
   in this run if that slot is not past now_ms, else in the next run. */
size_t wheel_run(struct wheel *w, int64_t now_ms);

/* When the next wheel_run() would fire a pending timer (its due time, or the wheel's next
   millisecond for one already due), if that is before limit_ms; else limit_ms.
   Costs one look per millisecond up to limit_ms: keep limit_ms - now_ms small (~100). */
int64_t wheel_next(const struct wheel *w, int64_t now_ms, int64_t limit_ms);

#endif
