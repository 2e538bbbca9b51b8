/*
 * test_certs.c - the unit tests' TLS material (test_certs.h): P-256 keys, so
 * that making them costs milliseconds, not the seconds RSA would.
 */
#include "support/test_certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

int test_sh(const char *dir, const char *cmd)
{
    size_t len = strlen(dir) + strlen(cmd) + 64;
    char *full = malloc(len);
    if (full == NULL)
        return -1;
    snprintf(full, len, "cd '%s' && (%s) >/dev/null 2>&1", dir, cmd);
    int rc = system(full);
    free(full);
    return rc;
}

/* Runs cmd in dir; -1 with cmd on stderr when it fails. */
static int run(const char *dir, const char *cmd)
{
    if (test_sh(dir, cmd) == 0)
        return 0;
    fprintf(stderr, "test certificates in %s: failed: %s\n", dir, cmd);
    return -1;
}

int test_certs_make(const char *dir, const struct test_cert *certs, size_t n)
{
    const char *ca = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                     "-days 2 -addext basicConstraints=critical,CA:TRUE";
    char cmd[1024];
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "rogue" : "ca";
        snprintf(cmd, sizeof(cmd), "%s -keyout %s.key -out %s.pem -subj /CN=%s", ca, name, name,
                 name);
        if (run(dir, cmd))
            return -1;
    }
    if (run(dir, "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
                 "extendedKeyUsage=serverAuth,clientAuth\\n' > ext"))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *c = certs[i].name, *by = certs[i].ca;
        int w = snprintf(cmd, sizeof(cmd),
                         "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
                         "%s.key -out %s.csr -subj /CN=%s && chmod 600 %s.key && openssl x509 "
                         "-req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 2 "
                         "-extfile ext -out %s.pem",
                         c, c, c, c, c, by, by, c);
        if (w < 0 || (size_t)w >= sizeof(cmd)) {
            fprintf(stderr, "test certificates: name \"%s\" too long\n", c);
            return -1;
        }
        if (run(dir, cmd))
            return -1;
    }
    return 0;
}
