/*
 * clock.h - time in milliseconds, and durations as operators write them.
 */
#ifndef ASGD_CLOCK_H
#define ASGD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC): for intervals and deadlines. */
int64_t clk_mono_ms(void);
/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait() on a condition
   variable whose clock is CLOCK_MONOTONIC (pthread_condattr_setclock). */
struct timespec clk_mono_after(int64_t ms);
/* Wall-clock milliseconds since the Unix epoch: for records shown to people. */
int64_t clk_wall_ms(void);
/*
 * Parses a duration: "500ms", "5s", "2m", "1h", "1.5s", or a bare number of
 * seconds ("30"). Stores milliseconds in *out_ms. Returns 0, or -1 when the
 * text is not a non-negative duration below ~68 years (nothing is stored).
 */
int clk_parse_duration(const char *text, int64_t *out_ms);
/* Formats ms as "2m", "5s", "500ms", "1.5s" into buf (always terminated). */
void clk_format_duration(int64_t ms, char *buf, unsigned long size);
/* Wall ms as ISO 8601 UTC with milliseconds, "2026-11-29T07:30:00.123Z", into buf (always
   terminated); "" for 0 or a negative time (never written). */
void clk_iso8601(int64_t wall_ms, char *buf, unsigned long size);

#endif
