/* Unit tests for common/util: mkdir -p with a private leaf, exposed secret files, token files
   (created by processes that race), base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

#include "common/banned.h"

static int mode_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (int)(sb.st_mode & 07777);
}

static void mkdir_p_makes_a_private_leaf(void **state)
{
    (void)state;
    char base[] = "/tmp/test-util-XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(base));
    snprintf(path, sizeof(path), "%s/a/b/state", base);
    assert_int_equal(util_mkdir_p(path, 0700, err, sizeof(err)), 0);
    assert_int_equal(mode_of(path), 0700);
    /* an existing, wider leaf (an older version made it 0755) is narrowed */
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(util_mkdir_p(path, 0700, err, sizeof(err)), 0);
    assert_int_equal(mode_of(path), 0700);
    /* a file in the way is an error that names the path */
    char file[160];
    snprintf(file, sizeof(file), "%s/file", base);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(util_mkdir_p(file, 0700, err, sizeof(err)), -1);
    assert_non_null(strstr(err, file));
    assert_non_null(strstr(err, "not a directory"));
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    assert_int_equal(system(cmd), 0);
}

static void exposed_secret_is_reported(void **state)
{
    (void)state;
    char path[] = "/tmp/test-util-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(util_warn_exposed_secret(path, "test token"), 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(util_warn_exposed_secret(path, "test token"), 1);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(util_warn_exposed_secret(path, "test token"), 1);
    /* write-only for others is no exposure of the secret */
    assert_int_equal(chmod(path, 0622), 0);
    assert_int_equal(util_warn_exposed_secret(path, "test token"), 0);
    unlink(path);
    assert_int_equal(util_warn_exposed_secret(path, "test token"), 0);
}

/* A token file: created 0600 with a fresh token when asked, read back trimmed; an empty or
   missing one is an error naming the file. */
static void token_file_created_and_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-util-tok-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = util_path_join(dir, "t.token");
    assert_non_null(path);
    char err[256] = "";
    char *a = NULL, *b = NULL;
    assert_int_equal(util_token_file(path, 0, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.token"));
    assert_int_equal(util_token_file(path, 1, &a, err, sizeof(err)), 0);
    assert_int_equal(strlen(a), 48);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(util_token_file(path, 1, &b, err, sizeof(err)), 0); /* not re-created */
    assert_string_equal(a, b);
    free(a);
    free(b);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("  \r\n", fp);
    fclose(fp);
    assert_int_equal(util_token_file(path, 1, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty token file"));
    fp = fopen(path, "w");
    fputs("secret \r\nignored\n", fp);
    fclose(fp);
    assert_int_equal(util_token_file(path, 0, &a, err, sizeof(err)), 0);
    assert_string_equal(a, "secret");
    free(a);
    unlink(path);
    rmdir(dir);
    free(path);
}

#define RACERS 4
#define ROUNDS 40

/*
 * asgd monitor and asgd controller start at once on a fresh state directory: each may find
 * no token file and create one. Every process must end with the same token, and none may
 * fail ("File exists") or read a file the other is still writing ("empty token file").
 * RACERS processes are released together by closing a pipe they all block on, ROUNDS times.
 */
static void token_file_racing_creators_agree(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-util-race-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/agent.token", dir);
    for (int round = 0; round < ROUNDS; round++) {
        int gate[2], back[2];
        assert_int_equal(pipe(gate), 0);
        assert_int_equal(pipe(back), 0);
        pid_t kids[RACERS];
        for (int k = 0; k < RACERS; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0) {
                close(gate[1]);
                close(back[0]);
                char c;
                (void)!read(gate[0], &c, 1); /* EOF: the parent released everyone */
                char *tok = NULL, err[256] = "", line[300];
                int rc = util_token_file(path, 1, &tok, err, sizeof(err));
                int n = snprintf(line, sizeof(line), "%s\n", rc == 0 ? tok : err);
                (void)!write(back[1], line, (size_t)n);
                free(tok);
                _exit(rc == 0 ? 0 : 1);
            }
        }
        close(gate[0]);
        close(back[1]);
        close(gate[1]); /* go */
        char buf[RACERS * 300 + 1];
        size_t got = 0;
        ssize_t r;
        while (got < sizeof(buf) - 1 && (r = read(back[0], buf + got, sizeof(buf) - 1 - got)) > 0)
            got += (size_t)r;
        buf[got] = '\0';
        close(back[0]);
        for (int k = 0; k < RACERS; k++) {
            int st = 0;
            assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("round %d: a creator failed: %s", round, buf);
        }
        /* one line per process, all the same token */
        const char *first = buf;
        int lines = 0;
        for (char *l = buf, *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1, lines++) {
            *nl = '\0';
            if (strcmp(l, first) != 0)
                fail_msg("round %d: tokens differ: %s and %s", round, first, l);
        }
        assert_int_equal(lines, RACERS);
        assert_int_equal((int)strlen(first), 48);
        assert_int_equal(mode_of(path), 0600);
        unlink(path);
    }
    rmdir(dir); /* fails if a temporary file was left behind */
    struct stat sb;
    assert_int_equal(stat(dir, &sb), -1);
}

/* RFC 4648's test vectors, padding included. */
static void base64_rfc4648_vectors(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *b = util_base64((const unsigned char *)in[i], strlen(in[i]));
        assert_non_null(b);
        assert_string_equal(b, want[i]);
        free(b);
    }
    const unsigned char bin[] = {0xff, 0xfe, 0x00};
    char *b = util_base64(bin, sizeof(bin));
    assert_string_equal(b, "//4A");
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mkdir_p_makes_a_private_leaf),
        cmocka_unit_test(exposed_secret_is_reported),
        cmocka_unit_test(token_file_created_and_read),
        cmocka_unit_test(token_file_racing_creators_agree),
        cmocka_unit_test(base64_rfc4648_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
