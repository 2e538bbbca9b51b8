/*
 * local_launch.c - the local provider's launch (see local.h, local_int.h):
 * launch tokens make it idempotent (instances a token already made count),
 * each new instance takes the first loopback address no record holds and no
 * other process listens on, is reserved by a pid file without a pid before
 * the spawn, and is waited for (its "ok" on --ready-fd) unless its simulated
 * boot is long.
 */
#include "provider/local_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

static int random_hex(char *buf, size_t nbytes)
{
    unsigned char raw[16];
    if (nbytes > sizeof(raw))
        nbytes = sizeof(raw);
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes)
        return -1;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(buf + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/*
 * 0 when host:port is already taken by some other process (what the agent
 * will do fails: SO_REUSEADDR, bind, listen gives EADDRINUSE), else 1. Other
 * errors say 1: the agent tries, and its failure is reported.
 */
static int port_free(uint32_t host, int port)
{
    if (port <= 0)
        return 1; /* each agent picks its own port */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(host);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0 ? 0 : errno;
    close(fd);
    return rc != EADDRINUSE;
}

/* Remembers (1) or forgets (0) that offset is taken; returns 1 when that changed. */
static int mark_taken(struct local_provider *lp, uint32_t off, int taken)
{
    for (size_t i = 0; i < lp->n_taken; i++) {
        if (lp->taken[i] != off)
            continue;
        if (!taken)
            lp->taken[i] = lp->taken[--lp->n_taken];
        return !taken;
    }
    if (!taken)
        return 0;
    if (lp->n_taken == lp->cap_taken) {
        size_t ncap = lp->cap_taken ? lp->cap_taken * 2 : 8;
        uint32_t *nv = realloc(lp->taken, ncap * sizeof(*nv));
        if (nv == NULL)
            return 1; /* cannot remember: log again next time */
        lp->taken = nv;
        lp->cap_taken = ncap;
    }
    lp->taken[lp->n_taken++] = off;
    return 1;
}

static int addr_in_use(const struct local_rec *recs, size_t n, const char *addr, int64_t now)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].address, addr) == 0 && local__rec_counts(&recs[i], now))
            return 1;
    return 0;
}

static int launch_one(struct local_provider *lp, const char *token, struct local_rec *recs,
                      size_t n_recs, struct local_rec *out)
{
    char host[INET_ADDRSTRLEN], addr[PROV_ADDR_MAX];
    uint32_t off;
    for (off = 0; off < LOCAL_MAX_ADDRS; off++) {
        struct in_addr ia = {htonl(lp->base_addr + off)};
        inet_ntop(AF_INET, &ia, host, sizeof(host));
        snprintf(addr, sizeof(addr), "%s:%d", host, lp->agent_port);
        if (addr_in_use(recs, n_recs, addr, clk_wall_ms()))
            continue;
        /* another process squatting there would make every agent fail: skip it */
        if (!port_free(lp->base_addr + off, lp->agent_port)) {
            if (mark_taken(lp, off, 1))
                log_warn("local: %s is already taken by another process: skipping it for the "
                         "instances of group \"%s\"",
                         addr, lp->group);
            continue;
        }
        if (mark_taken(lp, off, 0))
            log_info("local: %s is free again", addr);
        break;
    }
    if (off == LOCAL_MAX_ADDRS)
        return provider__fail(&lp->base, PROV_ECAPACITY, "no free loopback address");

    struct local_rec r;
    memset(&r, 0, sizeof(r));
    char hex[17] = {0};
    if (random_hex(hex, 4) != 0)
        return provider__fail(&lp->base, PROV_ERETRY, "getrandom failed: %s", strerror(errno));
    snprintf(r.id, sizeof(r.id), "%.40s-%s", lp->group, hex);
    snprintf(r.address, sizeof(r.address), "%s", addr);
    snprintf(r.token, sizeof(r.token), "%s", token);

    /* argv: agent --listen A --advertise A --instance-id ID [--monitor M] [--token-file F] extra */
    size_t argc = 0, cap = 14 + lp->n_extra;
    char **argv = calloc(cap, sizeof(*argv));
    if (argv == NULL)
        return provider__fail(&lp->base, PROV_ENOMEM, "out of memory");
    argv[argc++] = lp->agent_path;
    argv[argc++] = "--listen";
    argv[argc++] = addr;
    argv[argc++] = "--advertise";
    argv[argc++] = addr;
    argv[argc++] = "--instance-id";
    argv[argc++] = r.id;
    if (lp->monitor_address) {
        argv[argc++] = "--monitor";
        argv[argc++] = lp->monitor_address;
    }
    if (lp->token_file) {
        argv[argc++] = "--token-file";
        argv[argc++] = lp->token_file;
    }
    for (size_t i = 0; i < lp->n_extra; i++)
        argv[argc++] = lp->extra_args[i];
    int wait = lp->boot_delay_ms <= LOCAL_READY_MAX_BOOT_MS;
    if (wait) {
        /* after agent_args: a --ready-fd there must not take the pipe's place */
        argv[argc++] = "--ready-fd";
        argv[argc++] = "3";
    }
    argv[argc] = NULL;

    char log_path[4096];
    snprintf(log_path, sizeof(log_path), "%s/%s.log", lp->dir, r.id);
    r.launched_at_ms = clk_wall_ms();

    /* The reservation: durable before the spawn, so a restart after a crash
     * anywhere from here on counts this instance (and its address, and its
     * token) instead of launching another; see local.h. */
    r.pid = 0;
    r.starttime = 0;
    if (local__rec_write(lp, &r) != 0) {
        int e = errno;
        free(argv);
        return provider__fail(&lp->base, PROV_ERETRY, "cannot write pid file for \"%s\": %s", r.id,
                              strerror(e));
    }
    struct pidfile_plan plan;
    snprintf(plan.path, sizeof(plan.path), "%s/%s.pid", lp->dir, r.id);
    snprintf(plan.tmp, sizeof(plan.tmp), "%s/.%s.pid.spawn", lp->dir, r.id);
    snprintf(plan.head, sizeof(plan.head), "id=%s\n", r.id);
    snprintf(plan.tail, sizeof(plan.tail), "address=%s\nlaunched_at_ms=%" PRId64 "\ntoken=%s\n",
             r.address, r.launched_at_ms, r.token);

    int ready_fd = -1, written = 0;
    int pid = local__spawn_agent(lp, argv, log_path, &plan, wait ? &ready_fd : NULL, &written);
    int spawn_errno = errno;
    free(argv);
    if (pid < 0) {
        local__rec_remove(lp, r.id);
        return provider__fail(&lp->base, PROV_ERETRY, "cannot start \"%s\": %s", lp->agent_path,
                              strerror(spawn_errno));
    }
    r.pid = pid;
    char state;
    if (local__proc_stat(pid, &state, &r.starttime) != 0) {
        /* gone already: say why if it told us */
        char why[600] = "the agent exited at once (see its log)";
        if (ready_fd >= 0)
            local__wait_ready(ready_fd, 1000, why, sizeof(why));
        local__rec_remove(lp, r.id);
        return provider__fail(&lp->base, PROV_ERETRY, "instance \"%s\" at %s did not start: %s",
                              r.id, r.address, why);
    }
    /* the intermediate process normally wrote it; if it could not, we do */
    if (!written && local__rec_write(lp, &r) != 0) {
        int e = errno;
        if (ready_fd >= 0)
            close(ready_fd);
        kill(pid, SIGKILL);
        local__rec_remove(lp, r.id);
        return provider__fail(&lp->base, PROV_ERETRY, "cannot write pid file for \"%s\": %s", r.id,
                              strerror(e));
    }
    if (ready_fd >= 0) {
        char why[600];
        int ready = local__wait_ready(ready_fd, lp->boot_delay_ms + LOCAL_READY_TIMEOUT_MS, why,
                                      sizeof(why));
        if (ready == 0) {
            /* it will not serve: make sure it is gone, forget it, say why */
            if (local__rec_alive(&r))
                kill(pid, SIGKILL);
            local__rec_remove(lp, r.id);
            return provider__fail(&lp->base, PROV_ERETRY, "instance \"%s\" at %s did not start: %s",
                                  r.id, r.address, why);
        }
        if (ready < 0)
            log_warn("local: instance \"%s\" has not reported ready within %" PRId64
                     " ms; keeping it",
                     r.id, lp->boot_delay_ms + LOCAL_READY_TIMEOUT_MS);
    }
    *out = r;
    return 0;
}

int local__launch(struct provider *p, int count, const char *token, struct prov_list *out)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct local_rec *recs = NULL;
    size_t n = 0;
    int64_t now = clk_wall_ms();
    int rc = local__rec_list(lp, &recs, &n);
    if (rc != 0)
        return rc;

    /* Idempotency: instances already made by this token count toward count. */
    int have = 0;
    for (size_t i = 0; i < n && have < count; i++) {
        if (strcmp(recs[i].token, token) == 0 && local__rec_counts(&recs[i], now)) {
            struct prov_instance inst;
            local__fill_instance(lp, &recs[i], now, &inst);
            if ((rc = prov_list_push(out, &inst)) != 0)
                goto out;
            have++;
        }
    }
    while (have < count) {
        struct local_rec r;
        rc = launch_one(lp, token, recs, n, &r);
        if (rc != 0)
            goto out;
        /* remember it so the next one picks another address */
        struct local_rec *nv = realloc(recs, (n + 1) * sizeof(*nv));
        if (nv == NULL) {
            rc = provider__fail(p, PROV_ENOMEM, "out of memory");
            goto out;
        }
        recs = nv;
        recs[n++] = r;
        struct prov_instance inst;
        local__fill_instance(lp, &r, now, &inst);
        if ((rc = prov_list_push(out, &inst)) != 0)
            goto out;
        have++;
    }
out:
    free(recs);
    if (rc != 0)
        prov_list_release(out);
    return rc;
}
