/*
 * tls_warn.c - the poller's warning about agents reached in clear text.
 *
 * Plain text stays the default (loopback, tests, a private network the
 * operator trusts), but an operator should learn from the log, not from an
 * audit, that polls and answers cross a network unencrypted. One line per
 * group, at the first agent of that group at a non-loopback address, not one
 * per agent: a thousand agents make one warning.
 */
#include "common/log.h"
#include "monitor/mon-int.h"
#include "tls/tls.h"

#include "common/banned.h"

void mon__warn_cleartext(const struct mon *m, struct mon_group *g, const char *address)
{
    if (m->tls || g->cleartext_warned || tls_address_is_loopback(address))
        return;
    g->cleartext_warned = 1;
    log_warn("group \"%s\": agents are polled in clear text (first at %s): set [monitor] "
             "tls_ca_file (and tls_cert_file, tls_key_file) to use TLS",
             g->name[0] ? g->name : "default", address);
}
