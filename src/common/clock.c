#include "common/clock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/banned.h"

int64_t clk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec clk_mono_after(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int64_t clk_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int clk_parse_duration(const char *text, int64_t *out_ms)
{
    static const struct {
        const char *suffix;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
    char *end;

    if (text == NULL || *text == '\0' || *text == '-' || *text == '+')
        return -1;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || !isfinite(v) || v < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            double ms = v * units[i].ms;
            if (ms > 2147483647000.0)
                return -1;
            *out_ms = (int64_t)llround(ms);
            return 0;
        }
    }
    return -1;
}

void clk_format_duration(int64_t ms, char *buf, unsigned long size)
{
    if (ms % 3600000 == 0 && ms >= 3600000)
        snprintf(buf, size, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms >= 60000)
        snprintf(buf, size, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%llds", (long long)(ms / 1000));
    else if (ms > 1000)
        snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
    else
        snprintf(buf, size, "%lldms", (long long)ms);
}

void clk_iso8601(int64_t wall_ms, char *buf, unsigned long size)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    char day[40];
    if (size == 0)
        return;
    if (wall_ms <= 0 || !gmtime_r(&t, &tm) ||
        strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, size, "%.20s.%03dZ", day, (int)(wall_ms % 1000));
}
