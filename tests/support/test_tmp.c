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

int test_tmp_finish(const char *dir, int failed)
{
    const char *keep = getenv("ASGD_KEEP_TMP");
    int keep_all = keep && *keep && strcmp(keep, "0") != 0;
    if (failed || keep_all) {
        fprintf(stderr, "kept %s (%s)\n", dir, failed ? "the test failed" : "ASGD_KEEP_TMP is set");
        return 0;
    }
    return test_tmp_remove(dir);
}
