/*
 * log.h - the project's logger.
 *
 * One line per event on stderr: "2026-11-29T07:30:00.123Z info  [asgd] message".
 * The level check happens in the macro, before any argument is formatted, so a
 * disabled debug line costs one comparison. Messages are lowercase, say what
 * failed first and quote their subject (STYLE.md). Never pass a secret.
 * Thread-safe: each line is written with a single write(2) (or one datagram).
 *
 * Formats (log_set_format(); choose one before starting threads):
 *   text     the line above (the default)
 *   json     one JSON object per line for log shippers:
 *            {"ts":"...","level":"info","tag":"asgd","msg":"...","group":"web","instance":"i-1"}
 *   journal  systemd's native journal protocol: one datagram per event to
 *            /run/systemd/journal/socket ($ASGD_JOURNAL_SOCKET overrides it, for
 *            tests) with MESSAGE, PRIORITY (syslog: 3 error, 4 warn, 6 info,
 *            7 debug), SYSLOG_IDENTIFIER (the tag) and, when the message names
 *            them, ASGD_GROUP and ASGD_INSTANCE (taken from 'group "NAME"' and
 *            'instance "ID"', which every message quoting a subject uses). A
 *            datagram the socket refuses is written as a text line instead.
 *   auto     journal when $JOURNAL_STREAM says stderr is connected to the journal
 *            (systemd sets it for StandardError=journal) and the socket exists;
 *            text otherwise.
 */
#ifndef ASGD_LOG_H
#define ASGD_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_format { LOG_FMT_TEXT = 0, LOG_FMT_JSON, LOG_FMT_JOURNAL, LOG_FMT_AUTO };

extern int log__level;

/* Sets the minimum level printed (default LOG_LVL_INFO). */
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);
/* Sets the tag printed in brackets (not copied: pass a string literal). */
void log_set_tag(const char *tag);

/* Parses "text", "json", "journal", "auto". Returns 0, or -1 if unknown. */
int log_format_parse(const char *name, enum log_format *out);
/*
 * Chooses the output format (auto is resolved here). journal opens the
 * socket once; when it cannot, lines stay text and -1 is returned (the
 * caller may say so). Call before any thread logs. 0 on success.
 */
int log_set_format(enum log_format fmt);
/* The format in effect (never LOG_FMT_AUTO). */
enum log_format log_get_format(void);

/*
 * The subject quoted after word in msg ('group "web"' -> "web" for word
 * "group"), copied into out (len bytes, NUL-terminated). 1 found, 0 not.
 * (Exposed for the tests.)
 */
int log__subject(const char *msg, const char *word, char *out, size_t len);

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
