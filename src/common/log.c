/*
 * log.c - formats an event into one buffer and emits it with one write(2) (or
 * one datagram), so events from several threads (MonitorS, ControllerASG,
 * HTTP) never interleave. See log.h for the formats.
 *
 * The journal's native protocol is spoken directly (no libsystemd): "KEY=value\n"
 * fields in one datagram, and for a value holding a newline the binary form
 * "KEY\n" + 64-bit little-endian length + value + "\n". Events are capped at
 * LOG_MAX bytes, well under the datagram limit, so no memfd passing is needed.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"

#define LOG_MAX      (64 * 1024) /* one event at most; longer messages are cut */
#define JOURNAL_SOCK "/run/systemd/journal/socket"

int log__level = LOG_LVL_INFO;
static const char *log_tag = "asgd";
static enum log_format log_fmt = LOG_FMT_TEXT;
static int journal_fd = -1;
static struct sockaddr_un journal_addr;

static const char *const level_names[] = {
    [LOG_LVL_ERROR] = "error",
    [LOG_LVL_WARN] = "warn",
    [LOG_LVL_INFO] = "info",
    [LOG_LVL_DEBUG] = "debug",
};
_Static_assert(sizeof(level_names) / sizeof(level_names[0]) == LOG_LVL_DEBUG + 1,
               "one name per level");
/* syslog priorities, as the journal's PRIORITY field wants them */
static const char level_prio[] = {
    [LOG_LVL_ERROR] = '3',
    [LOG_LVL_WARN] = '4',
    [LOG_LVL_INFO] = '6',
    [LOG_LVL_DEBUG] = '7',
};
static const char *const format_names[] = {
    [LOG_FMT_TEXT] = "text",
    [LOG_FMT_JSON] = "json",
    [LOG_FMT_JOURNAL] = "journal",
    [LOG_FMT_AUTO] = "auto",
};

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

int log_format_parse(const char *name, enum log_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    }
    return -1;
}

enum log_format log_get_format(void)
{
    return log_fmt;
}

/* $JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it only counts while our
   stderr is still that stream (a child whose stderr was redirected inherits the variable). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int journal_open(void)
{
    const char *path = getenv("ASGD_JOURNAL_SOCKET");
    if (path == NULL || path[0] == '\0')
        path = JOURNAL_SOCK;
    size_t n = strlen(path);
    if (n >= sizeof(journal_addr.sun_path) || access(path, W_OK) != 0)
        return -1;
    memset(&journal_addr, 0, sizeof(journal_addr));
    journal_addr.sun_family = AF_UNIX;
    memcpy(journal_addr.sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (journal_fd >= 0)
        close(journal_fd);
    journal_fd = fd;
    return 0;
}

int log_set_format(enum log_format fmt)
{
    if (fmt == LOG_FMT_AUTO) {
        log_fmt = LOG_FMT_TEXT;
        if (stderr_is_journal() && journal_open() == 0)
            log_fmt = LOG_FMT_JOURNAL;
        return 0;
    }
    if (fmt == LOG_FMT_JOURNAL && journal_open() != 0) {
        log_fmt = LOG_FMT_TEXT;
        return -1;
    }
    log_fmt = fmt;
    return 0;
}

int log__subject(const char *msg, const char *word, char *out, size_t len)
{
    size_t wl = strlen(word);
    for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word)) {
        /* a whole word: 'group "x"', not 'subgroup "x"' */
        if (p != msg &&
            ((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z') || p[-1] == '_'))
            continue;
        if (p[wl] != ' ' || p[wl + 1] != '"')
            continue;
        const char *v = p + wl + 2, *end = strchr(v, '"');
        if (end == NULL || end == v)
            continue;
        size_t n = (size_t)(end - v);
        if (len == 0 || n >= len)
            return 0;
        memcpy(out, v, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

/* ---- one growable buffer per event, on the stack until it outgrows it ----------------------- */

struct lbuf {
    char *p;
    size_t n, cap;
    int full; /* LOG_MAX reached or out of memory: the rest is dropped */
    char stack[1024];
};

static void lb_init(struct lbuf *b)
{
    b->p = b->stack;
    b->n = 0;
    b->cap = sizeof(b->stack);
    b->full = 0;
}

static void lb_release(struct lbuf *b)
{
    if (b->p != b->stack)
        free(b->p);
}

/* Room for extra more bytes (and a NUL); 0, or -1 (b->full set). */
static int lb_reserve(struct lbuf *b, size_t extra)
{
    if (b->full)
        return -1;
    if (b->n + extra + 1 <= b->cap)
        return 0;
    if (b->n + extra + 1 > LOG_MAX) {
        b->full = 1;
        return -1;
    }
    size_t cap = b->cap * 2;
    while (cap < b->n + extra + 1)
        cap *= 2;
    if (cap > LOG_MAX)
        cap = LOG_MAX;
    char *p = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
    if (p == NULL) {
        b->full = 1;
        return -1;
    }
    if (b->p == b->stack)
        memcpy(p, b->stack, b->n);
    b->p = p;
    b->cap = cap;
    return 0;
}

static void lb_add(struct lbuf *b, const void *s, size_t n)
{
    if (lb_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void lb_str(struct lbuf *b, const char *s)
{
    lb_add(b, s, strlen(s));
}

static void lb_vprintf(struct lbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->full ? 0 : b->cap - b->n;
    int n = vsnprintf(b->p + b->n, room, fmt, ap);
    if (n >= 0 && (size_t)n < room) {
        b->n += (size_t)n;
    } else if (n >= 0 && lb_reserve(b, (size_t)n) == 0) {
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap2);
        b->n += (size_t)n;
    } else if (n >= 0 && b->cap > b->n + 1) {
        /* over LOG_MAX: keep what fits, cut */
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap2);
        b->n = b->cap - 1;
    }
    va_end(ap2);
}

static void lb_printf(struct lbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lb_printf(struct lbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lb_vprintf(b, fmt, ap);
    va_end(ap);
}

static void lb_json_str(struct lbuf *b, const char *s)
{
    lb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            lb_add(b, esc, 2);
        } else if (*p == '\n') {
            lb_add(b, "\\n", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            lb_add(b, esc, 6);
        } else {
            lb_add(b, p, 1);
        }
    }
    lb_add(b, "\"", 1);
}

/* A journal field: KEY=value\n, or the binary form when value holds a newline. */
static void lb_journal_field(struct lbuf *b, const char *key, const char *value)
{
    size_t n = strlen(value);
    lb_str(b, key);
    if (memchr(value, '\n', n) == NULL) {
        lb_add(b, "=", 1);
        lb_add(b, value, n);
    } else {
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)((uint64_t)n >> (8 * i));
        lb_add(b, "\n", 1);
        lb_add(b, le, 8);
        lb_add(b, value, n);
    }
    lb_add(b, "\n", 1);
}

static void write_all(const char *p, size_t n)
{
    ssize_t w = write(STDERR_FILENO, p, n);
    (void)w; /* nowhere to report a failed log write */
}

void log__write(enum log_level level, const char *fmt, ...)
{
    struct lbuf msg, out;
    struct timespec ts;
    struct tm tm;
    char stamp[48], day[32];

    va_list ap;
    va_start(ap, fmt);
    lb_init(&msg);
    lb_vprintf(&msg, fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof(stamp), "%s.%03ldZ", day, ts.tv_nsec / 1000000L);

    char group[128], inst[128];
    int has_group = log_fmt != LOG_FMT_TEXT && log__subject(msg.p, "group", group, sizeof group);
    int has_inst = log_fmt != LOG_FMT_TEXT && log__subject(msg.p, "instance", inst, sizeof inst);

    lb_init(&out);
    if (log_fmt == LOG_FMT_JOURNAL) {
        char prio[2] = {level_prio[level], '\0'};
        lb_journal_field(&out, "MESSAGE", msg.p);
        lb_journal_field(&out, "PRIORITY", prio);
        lb_journal_field(&out, "SYSLOG_IDENTIFIER", log_tag);
        if (has_group)
            lb_journal_field(&out, "ASGD_GROUP", group);
        if (has_inst)
            lb_journal_field(&out, "ASGD_INSTANCE", inst);
        if (!out.full && sendto(journal_fd, out.p, out.n, MSG_NOSIGNAL,
                                (struct sockaddr *)&journal_addr, sizeof(journal_addr)) >= 0)
            goto done;
        /* the journal refused it (gone, full, too big): the line still reaches stderr */
        out.n = 0;
        out.full = 0;
    }
    if (log_fmt == LOG_FMT_JSON) {
        lb_printf(&out, "{\"ts\":\"%s\",\"level\":\"%s\",\"tag\":", stamp, level_names[level]);
        lb_json_str(&out, log_tag);
        lb_str(&out, ",\"msg\":");
        lb_json_str(&out, msg.p);
        if (has_group) {
            lb_str(&out, ",\"group\":");
            lb_json_str(&out, group);
        }
        if (has_inst) {
            lb_str(&out, ",\"instance\":");
            lb_json_str(&out, inst);
        }
        lb_str(&out, "}");
    } else {
        lb_printf(&out, "%s %-5s [%s] ", stamp, level_names[level], log_tag);
        lb_add(&out, msg.p, msg.n);
    }
    if (out.full && out.n + 1 >= out.cap)
        out.n = out.cap - 2; /* cut at LOG_MAX: room for the newline */
    out.full = 0;
    lb_add(&out, "\n", 1);
    write_all(out.p, out.n);
done:
    lb_release(&out);
    lb_release(&msg);
}
