/*
 * test_tmp.h - the end of a unit test's temp dir: a passing test leaves nothing
 * in /tmp, a failing one keeps what a developer needs and says where (the rule
 * of the integration harness, tests/tools/testtmp.py).
 *
 * A test calls test_tmp_finish() where it would have removed its dir, after the
 * processes and handles that write into it are closed. A cmocka assertion that
 * fails jumps out of the test before that call, so a failing test's dir stays;
 * a dir registered with test_tmp_track() is then named by test_tmp_end(), which
 * main() calls with cmocka's result.
 *
 * Ownership: the dir is the caller's; nothing is allocated past the call.
 * Threads: none of its own; nftw(3) is not reentrant, call it from one thread.
 */
#ifndef ASGD_TEST_TMP_H
#define ASGD_TEST_TMP_H

/*
 * Removes path and everything under it (files, sockets, dirs; symbolic links
 * are removed, not followed). A path that does not exist is a success.
 * Returns 0, or -1 with errno set by the first removal that failed.
 */
int test_tmp_remove(const char *path);

/*
 * Removes dir with test_tmp_remove(), unless failed is nonzero or the
 * environment has ASGD_KEEP_TMP set (not empty, not "0"): then dir stays and
 * "kept DIR (why)" goes to stderr. Returns what test_tmp_remove() returned, 0
 * when the dir was kept.
 */
int test_tmp_finish(const char *dir, int failed);

/*
 * Registers dir (copied) for test_tmp_end(); test_tmp_finish() forgets it.
 * Returns 0, or -1 when out of memory (the dir is then simply not tracked).
 */
int test_tmp_track(const char *dir);

/*
 * The end of the run: every tracked dir still there goes through
 * test_tmp_finish(dir, failed) (removed after a passing run, kept and named
 * after a failing one), and the list is freed. Returns failed, so that main()
 * can end with `return test_tmp_end(cmocka_run_group_tests(...));`.
 */
int test_tmp_end(int failed);

#endif
