/*
 * daemon_reload.c - signals and reload (see daemon_int.h): the main
 * thread's sigwait() loop, SIGHUP's re-reading of the TLS files and of the
 * configuration (reload.h, whose hooks into the daemon are here).
 *
 * Separate because it is the one path that changes a running daemon's
 * configuration, and it all runs on the main thread: SIGHUP, `systemctl
 * reload` and POST /api/v1/reload (which raises SIGHUP, reload.h) all end
 * in the sigwait() loop here. It touches the files' groups only under d->mu.
 */
#include "asgd/daemon_int.h"

#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "asgd/reload.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "tls/tls.h"

#include "common/banned.h"

/* ---- reload (reload.h) ---------------------------------------------------------------------- */

static int reload_seed(void *arg, struct store *st, const struct group_conf *gc, char *err,
                       size_t errlen)
{
    (void)arg;
    return daemon_seed_group(st, gc, err, errlen);
}

/* One node: start it here. A cluster: only when this node owns it (a restart after a change
   of its provider part); ownership starts the others. */
static int reload_start(void *arg, struct store *st, const char *name)
{
    struct daemon *d = arg;
    if (!d->cluster)
        return daemon__start_group(d, st, name, NULL, 0);
    char key[CLU_KEY_MAX];
    int64_t rev = 0;
    if (d->clu == NULL || clu_fence(d->clu, name, key, sizeof(key), &rev) != 0)
        return 0;
    return daemon__start_group(d, st, name, key, rev);
}

static int reload_open_store(void *arg, struct store **out, char *err, size_t errlen)
{
    return daemon__open_store(arg, out, err, errlen);
}

/*
 * SIGHUP: re-read the TLS files of [monitor] and [api] (the paths of the running
 * configuration). A bad file is logged and the previous material stays in use.
 * (The SIGHUP reload of the configuration calls this too.)
 */
static void reload_tls(struct tls_conf *mon_tls, struct http_server *http)
{
    char err[512];
    if (mon_tls) {
        if (tls_conf_reload(mon_tls, err, sizeof(err)) != 0)
            log_error("reload: [monitor] TLS files not reloaded, the previous ones stay in use: "
                      "%s",
                      err);
        else
            log_info("reload: [monitor] TLS files re-read");
    }
    if (http && http_reload_tls(http, err, sizeof(err)) != 0)
        log_error("reload: [api] TLS files not reloaded, the previous ones stay in use: %s", err);
}

/* daemon.h: `asgd run`'s and the two-process mode's SIGHUP */
void daemon_sighup(struct reload_ctl *rc, struct tls_conf *mon_tls, struct http_server *http)
{
    sdn_notify("RELOADING=1"); /* systemctl reload waits for the READY=1 below */
    reload_tls(mon_tls, http); /* certificates: the next handshakes use them */
    if (rc)
        reload_ctl_run(rc); /* the files again (reload.h) */
    sdn_notify("READY=1");
}

int daemon__reload_new(struct daemon *d)
{
    struct reload_host rh = {
        .conf = &d->conf,
        .mu = &d->mu,
        .node = d->node,
        .cluster = d->cluster,
        .open_store = reload_open_store,
        .seed_group = reload_seed,
        .start_group = reload_start,
        .arg = d,
    };
    return reload_ctl_new(&rh, &d->reload) != 0 ? -1 : 0;
}

int daemon__wait_stop(struct daemon *d, const sigset_t *stop)
{
    int sig = 0;
    if (!(d->roles & DAEMON_ROLE_CONTROLLER)) {
        /* `asgd monitor`: the store is followed once a second; SIGHUP re-reads the TLS files
           (the controller process reloads the files into the store, which this follows) */
        for (;;) {
            struct timespec tick = {1, 0};
            sig = sigtimedwait(stop, NULL, &tick);
            if (sig == SIGHUP)
                daemon_sighup(NULL, d->mon_tls, NULL);
            else if (sig > 0)
                return sig;
            daemon__follow_store(d);
        }
    }
    while (sigwait(stop, &sig) != 0 || sig == SIGHUP) {
        if (sig == SIGHUP)
            daemon_sighup(d->reload, d->mon_tls, d->http);
        sig = 0;
    }
    return sig;
}
