/*
 * Unit tests for common/log's formats and common/sdnotify: what a log shipper
 * (json), the journal (native datagrams) and systemd (notify datagrams)
 * actually receive, read back from real files and sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sdnotify.h"
#include "support/test_tmp.h"

#include "common/banned.h"

/* Runs fn with stderr sent to a temp file; returns what was written (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    fn();
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    return out;
}

static void log_two_events(void)
{
    log_info("launched instance \"i-0abc\" at 10.0.0.5:50051 for group \"web\"");
    log_warn("a \"quoted\"\tword and a\nnewline, no subject");
}

static void subject_is_taken_from_the_quoted_word(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(
        log__subject("terminated instance \"i-1\" of group \"web.2\"", "group", out, sizeof out),
        1);
    assert_string_equal(out, "web.2");
    assert_int_equal(log__subject("instance \"i-1\" of group \"w\"", "instance", out, sizeof out),
                     1);
    assert_string_equal(out, "i-1");
    /* a longer word, an unquoted subject, an empty or unterminated quote: none */
    assert_int_equal(log__subject("subgroup \"x\", 3 groups: a", "group", out, sizeof out), 0);
    assert_int_equal(log__subject("group web", "group", out, sizeof out), 0);
    assert_int_equal(log__subject("group \"\" or group \"abc", "group", out, sizeof out), 0);
    /* a subject longer than the buffer is not cut into a wrong name */
    assert_int_equal(log__subject("group \"abcdefgh\"", "group", out, 4), 0);
}

static void json_lines_parse_with_fields(void **state)
{
    (void)state;
    assert_int_equal(log_set_format(LOG_FMT_JSON), 0);
    char *text = capture_stderr(log_two_events);
    assert_int_equal(log_set_format(LOG_FMT_TEXT), 0);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    *nl = '\0';
    json_error_t je;
    json_t *a = json_loads(text, 0, &je);
    json_t *b = json_loads(nl + 1, 0, &je);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(a, "tag")), "asgd");
    assert_string_equal(json_string_value(json_object_get(a, "group")), "web");
    assert_string_equal(json_string_value(json_object_get(a, "instance")), "i-0abc");
    assert_non_null(strstr(json_string_value(json_object_get(a, "ts")), "Z"));
    assert_string_equal(json_string_value(json_object_get(b, "msg")),
                        "a \"quoted\"\tword and a\nnewline, no subject");
    assert_null(json_object_get(b, "group"));
    json_decref(a);
    json_decref(b);
    free(text);
}

static void long_message_is_one_line(void **state)
{
    (void)state;
    size_t n = 5000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    char path[] = "/tmp/test-log-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    log_info("%s end", big);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    assert_non_null(strstr(out, "x end\n"));
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    free(out);
    free(big);
}

/* A datagram socket at a temp path; returns its fd, path in buf. */
static int bind_dgram(char *buf, size_t len)
{
    char dir[] = "/tmp/test-log-sock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    test_tmp_track(dir);
    snprintf(buf, len, "%s/socket", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", buf);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* The end of a passing test that bound path with bind_dgram(): its socket and dir go (a
 * failing assertion jumps past this: the dir stays, and test_tmp_end() names it). */
static void remove_dgram_dir(char *path)
{
    *strrchr(path, '/') = '\0';
    assert_int_equal(test_tmp_finish(path, 0), 0);
}

static void journal_datagrams_carry_fields(void **state)
{
    (void)state;
    char path[128];
    int fd = bind_dgram(path, sizeof path);
    setenv("ASGD_JOURNAL_SOCKET", path, 1);
    assert_int_equal(log_set_format(LOG_FMT_JOURNAL), 0);
    char *text = capture_stderr(log_two_events);
    assert_int_equal(log_set_format(LOG_FMT_TEXT), 0);
    assert_string_equal(text, ""); /* nothing on stderr while the journal takes it */
    free(text);

    char d[2048];
    ssize_t n = recv(fd, d, sizeof d - 1, MSG_DONTWAIT);
    assert_true(n > 0);
    d[n] = '\0';
    assert_non_null(strstr(d, "MESSAGE=launched instance \"i-0abc\" at"));
    assert_non_null(strstr(d, "\nPRIORITY=6\n"));
    assert_non_null(strstr(d, "\nSYSLOG_IDENTIFIER=asgd\n"));
    assert_non_null(strstr(d, "\nASGD_GROUP=web\n"));
    assert_non_null(strstr(d, "\nASGD_INSTANCE=i-0abc\n"));

    /* a message with a newline travels in the binary form: MESSAGE\n, LE64 length, bytes */
    n = recv(fd, d, sizeof d, MSG_DONTWAIT);
    assert_true(n > 0);
    const char *msg = "a \"quoted\"\tword and a\nnewline, no subject";
    size_t mlen = strlen(msg);
    assert_memory_equal(d, "MESSAGE\n", 8);
    uint64_t le = 0;
    for (int i = 0; i < 8; i++)
        le |= (uint64_t)(unsigned char)d[8 + i] << (8 * i);
    assert_int_equal(le, mlen);
    assert_memory_equal(d + 16, msg, mlen);
    assert_non_null(memmem(d, (size_t)n, "\nPRIORITY=4\n", 12));
    assert_null(memmem(d, (size_t)n, "ASGD_GROUP", 10));

    /* the journal gone: lines again, on stderr */
    close(fd);
    assert_int_equal(log_set_format(LOG_FMT_JOURNAL), 0);
    unlink(path);
    text = capture_stderr(log_two_events);
    assert_int_equal(log_set_format(LOG_FMT_TEXT), 0);
    assert_non_null(strstr(text, "info  [asgd] launched instance"));
    free(text);
    unsetenv("ASGD_JOURNAL_SOCKET");
    remove_dgram_dir(path);
}

static void auto_is_text_unless_stderr_is_the_journal(void **state)
{
    (void)state;
    setenv("JOURNAL_STREAM", "1:1", 1); /* some other stream: a child of a service */
    assert_int_equal(log_set_format(LOG_FMT_AUTO), 0);
    assert_int_equal(log_get_format(), LOG_FMT_TEXT);
    unsetenv("JOURNAL_STREAM");
    assert_int_equal(log_set_format(LOG_FMT_AUTO), 0);
    assert_int_equal(log_get_format(), LOG_FMT_TEXT);
    enum log_format f;
    assert_int_equal(log_format_parse("json", &f), 0);
    assert_int_equal(f, LOG_FMT_JSON);
    assert_int_equal(log_format_parse("xml", &f), -1);
}

static void notify_reaches_path_and_abstract_sockets(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdn_notify("READY=1"), 1); /* not under systemd: nothing to do */

    char path[128], d[256];
    int fd = bind_dgram(path, sizeof path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sdn_notifyf("READY=1\nSTATUS=%d groups", 2), 0);
    ssize_t n = recv(fd, d, sizeof d - 1, MSG_DONTWAIT);
    assert_int_equal(n, (ssize_t)strlen("READY=1\nSTATUS=2 groups"));
    d[n] = '\0';
    assert_string_equal(d, "READY=1\nSTATUS=2 groups");
    close(fd);
    remove_dgram_dir(path);

    /* abstract: '@' in the variable, a leading NUL and no trailing zeros on the wire */
    char name[64];
    snprintf(name, sizeof name, "@test-log-notify-%d", (int)getpid());
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    sa.sun_path[0] = '\0';
    assert_int_equal(
        bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
        0);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(sdn_notify("WATCHDOG=1"), 0);
    n = recv(fd, d, sizeof d - 1, MSG_DONTWAIT);
    assert_int_equal(n, 10);
    close(fd);

    setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
    assert_true(sdn_notify("READY=1") < 0);
    unsetenv("NOTIFY_SOCKET");
}

static void watchdog_usec_honours_the_pid(void **state)
{
    (void)state;
    char pid[32];
    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
    assert_int_equal(sdn_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    assert_int_equal(sdn_watchdog_usec(), 30000000);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(sdn_watchdog_usec(), 30000000);
    setenv("WATCHDOG_PID", "1", 1); /* meant for another process */
    assert_int_equal(sdn_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "-5", 1);
    assert_int_equal(sdn_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subject_is_taken_from_the_quoted_word),
        cmocka_unit_test(json_lines_parse_with_fields),
        cmocka_unit_test(long_message_is_one_line),
        cmocka_unit_test(journal_datagrams_carry_fields),
        cmocka_unit_test(auto_is_text_unless_stderr_is_the_journal),
        cmocka_unit_test(notify_reaches_path_and_abstract_sockets),
        cmocka_unit_test(watchdog_usec_honours_the_pid),
    };
    return test_tmp_end(cmocka_run_group_tests(tests, NULL, NULL));
}
