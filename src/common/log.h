/*
 * log.h - the project's logger.
 *
 * One line per event on stderr: "2026-11-29T07:30:00.123Z info  [asgd] message".
 * The level check happens in the macro, before any argument is formatted, so a
 * disabled debug line costs one comparison. Messages are lowercase, say what
 * failed first and quote their subject (STYLE.md). Never pass a secret.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef ASGD_LOG_H
#define ASGD_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log__level;

/* Sets the minimum level printed (default LOG_LVL_INFO). */
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);
/* Sets the tag printed in brackets (not copied: pass a string literal). */
void log_set_tag(const char *tag);

void log__write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if (log__level >= (lvl))                                                                   \
            log__write((lvl), __VA_ARGS__);                                                        \
    } while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
