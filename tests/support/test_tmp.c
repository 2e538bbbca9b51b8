/*
 * test_tmp.c - recursive removal of a test's temp dir, and the keep-or-remove
 * rule that every test follows (see test_tmp.h). nftw(3) walks depth first, so
 * each directory is empty by the time it is removed.
 */
#define _XOPEN_SOURCE 700
#include "support/test_tmp.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

int test_tmp_remove(const char *path)
{
    int rc = nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0 && errno == ENOENT)
        return 0;
    return rc == 0 ? 0 : -1;
}

/* the dirs registered with test_tmp_track() and not finished yet */
static char **tracked;
static size_t n_tracked;

static void untrack(const char *dir)
{
    for (size_t i = 0; i < n_tracked; i++) {
        if (strcmp(tracked[i], dir) == 0) {
            free(tracked[i]);
            tracked[i] = tracked[--n_tracked];
            return;
        }
    }
}

int test_tmp_track(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return -1;
    char **grown = realloc(tracked, (n_tracked + 1) * sizeof(*tracked));
    if (!grown) {
        free(copy);
        return -1;
    }
    tracked = grown;
    tracked[n_tracked++] = copy;
    return 0;
}

int test_tmp_end(int failed)
{
    while (n_tracked > 0) {
        char *dir = tracked[n_tracked - 1];
        tracked[n_tracked - 1] = NULL;
        n_tracked--;
        if (access(dir, F_OK) == 0)
            test_tmp_finish(dir, failed);
        free(dir);
    }
    free(tracked);
    tracked = NULL;
    return failed;
}

int test_tmp_finish(const char *dir, int failed)
{
    untrack(dir);
    const char *keep = getenv("ASGD_KEEP_TMP");
    int keep_all = keep && *keep && strcmp(keep, "0") != 0;
    if (failed || keep_all) {
        fprintf(stderr, "kept %s (%s)\n", dir, failed ? "the test failed" : "ASGD_KEEP_TMP is set");
        return 0;
    }
    return test_tmp_remove(dir);
}
