/*
 * test_certs.h - TLS material for the unit tests that speak TLS (test_h2,
 * test_tls), made with the openssl command in a directory of the test's: two
 * CAs, "ca" and "rogue" (NAME.pem, NAME.key), and the certificates a test
 * names, each signed by one of them.
 *
 * Ownership: the files are the caller's (it made the directory and removes it).
 * Threads: none; runs commands with system(3).
 * Errors: -1 with the failing command on stderr.
 */
#ifndef ASGD_TEST_CERTS_H
#define ASGD_TEST_CERTS_H

#include <stddef.h>

/* One certificate to make: NAME.pem and NAME.key (mode 0600), signed by the CA named ca. */
struct test_cert {
    const char *name;
    const char *ca; /* "ca" or "rogue" */
};

/*
 * Makes the CAs and the n certificates in dir (which exists). Every
 * certificate is for IP 127.0.0.1 and DNS localhost, usable by a server and a
 * client, valid two days. Returns 0 or -1.
 */
int test_certs_make(const char *dir, const struct test_cert *certs, size_t n);

/* Runs cmd with sh in dir, its output discarded; returns system(3)'s status (0: success). */
int test_sh(const char *dir, const char *cmd);

#endif
