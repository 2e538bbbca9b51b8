/*
 * wheel.c - the hashed timer wheel of wheel.h.
 *
 * Slot i holds every timer whose due time is congruent to i modulo
 * WHEEL_SLOTS. wheel_run() visits the slots of the milliseconds elapsed
 * since its last call (at most one turn) and fires what is due; a timer
 * due more than a turn later is met and skipped once per turn. Each slot's
 * list is detached before its timers run, so a callback that re-arms a
 * timer into the slot being run does not make the run loop forever.
 */
#include "h2/wheel.h"

#include "common/banned.h"

#define MASK (WHEEL_SLOTS - 1)

void wheel_init(struct wheel *w, int64_t now_ms)
{
    for (size_t i = 0; i < WHEEL_SLOTS; i++)
        w->slot[i] = NULL;
    w->tick = now_ms;
    w->count = 0;
}

static void link_into(struct wheel_timer **head, struct wheel_timer *t)
{
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    t->pprev = head;
    *head = t;
}

static void unlink_timer(struct wheel_timer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

void wheel_add(struct wheel *w, struct wheel_timer *t, int64_t due_ms, wheel_fn fn)
{
    if (t->pprev)
        unlink_timer(t);
    else
        w->count++;
    t->due_ms = due_ms;
    t->fn = fn;
    /* a time already past goes into the slot run next */
    int64_t at = due_ms < w->tick ? w->tick : due_ms;
    link_into(&w->slot[(uint64_t)at & MASK], t);
}

void wheel_del(struct wheel *w, struct wheel_timer *t)
{
    if (!t->pprev)
        return;
    unlink_timer(t);
    w->count--;
}

size_t wheel_run(struct wheel *w, int64_t now_ms)
{
    size_t fired = 0;
    if (now_ms < w->tick)
        return 0;
    /* after a long pause every slot is visited once, not once per elapsed turn */
    int64_t from = w->tick, to = now_ms;
    if (to - from >= WHEEL_SLOTS)
        from = to - WHEEL_SLOTS + 1;
    for (int64_t tick = from; tick <= to; tick++) {
        struct wheel_timer **head = &w->slot[(uint64_t)tick & MASK];
        /* a timer a callback arms for a time already past must land in a slot still ahead */
        w->tick = tick + 1;
        if (!*head)
            continue;
        struct wheel_timer *list = *head;
        *head = NULL;
        list->pprev = &list;
        while (list) {
            struct wheel_timer *t = list;
            unlink_timer(t);
            if (t->due_ms <= now_ms) {
                w->count--;
                fired++;
                t->fn(t, now_ms); /* may re-arm t or touch other timers of list */
            } else {
                link_into(head, t); /* a later turn */
            }
        }
    }
    w->tick = now_ms + 1;
    return fired;
}

int64_t wheel_next(const struct wheel *w, int64_t now_ms, int64_t limit_ms)
{
    if (!w->count)
        return limit_ms;
    int64_t from = w->tick < now_ms ? w->tick : now_ms;
    if (limit_ms - from >= WHEEL_SLOTS)
        limit_ms = from + WHEEL_SLOTS - 1;
    for (int64_t tick = from; tick < limit_ms; tick++) {
        int64_t best = limit_ms;
        for (const struct wheel_timer *t = w->slot[(uint64_t)tick & MASK]; t; t = t->next)
            if (t->due_ms < best)
                best = t->due_ms;
        /* a timer already due fires at the next wheel_run() whose time reaches w->tick */
        if (best < limit_ms)
            return best > w->tick ? best : w->tick;
    }
    return limit_ms;
}
