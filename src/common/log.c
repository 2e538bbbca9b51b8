/*
 * log.c - formats a line into one buffer and writes it with one write(2), so
 * lines from several threads (MonitorS, ControllerASG, HTTP) never interleave.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"

int log__level = LOG_LVL_INFO;
static const char *log_tag = "asgd";

static const char *const level_names[] = {
    [LOG_LVL_ERROR] = "error",
    [LOG_LVL_WARN] = "warn",
    [LOG_LVL_INFO] = "info",
    [LOG_LVL_DEBUG] = "debug",
};
_Static_assert(sizeof(level_names) / sizeof(level_names[0]) == LOG_LVL_DEBUG + 1,
               "one name per level");

void log_set_level(enum log_level level)
{
    log__level = (int)level;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_tag(const char *tag)
{
    log_tag = tag;
}

void log__write(enum log_level level, const char *fmt, ...)
{
    char stackbuf[1024];
    char *line = stackbuf;
    struct timespec ts;
    struct tm tm;
    char stamp[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    int head = snprintf(stackbuf, sizeof(stackbuf), "%s.%03ldZ %-5s [%s] ", stamp,
                        ts.tv_nsec / 1000000L, level_names[level], log_tag);
    if (head < 0)
        return;

    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int body = vsnprintf(stackbuf + head, sizeof(stackbuf) - (size_t)head, fmt, ap);
    va_end(ap);
    if (body < 0) {
        va_end(ap2);
        return;
    }
    size_t total = (size_t)head + (size_t)body + 1; /* + newline */
    if (total >= sizeof(stackbuf)) {
        /* Long line: format again into a heap buffer of the exact size. */
        line = malloc(total + 1);
        if (line == NULL) {
            va_end(ap2);
            line = stackbuf;
            total = sizeof(stackbuf) - 1;
            stackbuf[total - 1] = '\n';
            goto out_write;
        }
        memcpy(line, stackbuf, (size_t)head);
        vsnprintf(line + head, total - (size_t)head, fmt, ap2);
    }
    va_end(ap2);
    line[total - 1] = '\n';
out_write:;
    ssize_t w = write(STDERR_FILENO, line, total);
    (void)w;
    if (line != stackbuf)
        free(line);
}
