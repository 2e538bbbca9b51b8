/*
 * main.c - monitorc, the agent every instance of a group runs (MonitorC).
 *
 * It answers MonitorS's polls over gRPC (wire-compatible with the seed's
 * agent: /MonitorC/GetStatus and /MonitorC/GetMemoryUsage, plus Ping and
 * GetMetrics), measures or simulates the load, checks the local application
 * over HTTP, and registers with MonitorS. The main thread only parses flags,
 * starts the workers and waits for SIGTERM/SIGINT; then it deregisters (with
 * a bounded wait), stops serving and exits 0.
 *
 * Exit codes: 0 after a signal, 1 when it cannot start (no memory, threads),
 * 2 on a usage error, 3 when it cannot listen on --listen (address in use,
 * not assignable, ...). With --ready-fd N it writes one line to fd N once it
 * serves ("ok") or the reason it cannot ("cannot listen on ...: ..."), then
 * closes it: the local provider waits for that line to tell a failed launch
 * (and why) from a started one.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/util.h"
#include "rpc/rpc.h"
#include "tls/tls.h"
#include "common/banned.h"

#ifndef ASGD_VERSION
#define ASGD_VERSION "dev"
#endif

static const char usage_text[] =
    "usage: monitorc [options]\n"
    "\n"
    "The asgd agent (MonitorC): answers MonitorS's polls over gRPC with this\n"
    "instance's liveness and load, and registers with MonitorS.\n"
    "\n"
    "  --listen ADDR:PORT      where to serve gRPC (default 0.0.0.0:50051)\n"
    "  --instance-id ID        instance id (default: EC2 id from IMDSv2 within 1 s,\n"
    "                          else the host name)\n"
    "  --advertise ADDR:PORT   address MonitorS should poll (default: the listen\n"
    "                          address, with the host name for a wildcard address)\n"
    "  --monitor HOST:PORT[,HOST:PORT...]  MonitorS to register with (every node of an\n"
    "                          asgd cluster; the next one is tried when one fails)\n"
    "  --token-file PATH       file holding the registration token\n"
    "  --app-url URL           GetStatus is \"OK\" only while this answers 2xx\n"
    "  --app-timeout DURATION  timeout of one application check (default 2s)\n"
    "  --load SOURCE           proc (default) | simulate[:min=10,max=90,period=10m,rate=2]\n"
    "                          | file:PATH (a number 0..100, re-read twice a second)\n"
    "  --tls-cert FILE         serve over TLS with this certificate chain (PEM), and\n"
    "                          present it to MonitorS; Register goes over TLS\n"
    "  --tls-key FILE          the certificate's private key (PEM)\n"
    "  --tls-ca FILE           CA bundle: MonitorS is verified against it, and pollers\n"
    "                          must present a certificate it signed (mutual TLS)\n"
    "  --tls-server-name NAME  the name MonitorS's certificate must carry (default: the\n"
    "                          --monitor host or IP address)\n"
    "                          Certificate files are re-read on SIGHUP.\n"
    "  --log-level LEVEL       error | warn | info (default) | debug\n"
    "  --log-format FMT        text | json | journal | auto (default: journal under\n"
    "                          systemd, else text)\n"
    "  --on-terminate CMD      run `sh -c CMD` when asgd puts this instance in\n"
    "                          terminating:wait (a terminate hook): asgd completes the\n"
    "                          hook when it exits 0, else applies the hook's default\n"
    "  --drain-timeout DURATION  kill CMD after this long (default: none; the hook's\n"
    "                          own timeout still applies)\n"
    "  --ready-fd N            write \"ok\" or the startup error to fd N, then close it\n"
    "  --help                  this text\n"
    "  --version               the version\n";

struct opts {
    const char *listen;
    const char *instance_id;
    const char *advertise;
    const char *monitor;
    const char *token_file;
    const char *app_url;
    int64_t app_timeout_ms;
    const char *load;
    int ready_fd; /* -1: none */
    struct tls_files tls;
    const char *on_terminate;
    int64_t drain_timeout_ms;
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "monitorc: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see monitorc --help)\n");
    va_end(ap);
    return 2;
}

/* "host:port", "[v6]:port": a non-empty host and a port 0..65535. */
static int hostport_valid(const char *s, int allow_zero)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(s) > 255)
        return 0;
    for (const char *p = s; p < colon; p++)
        if (*p == ' ' || *p == '/' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || port < (allow_zero ? 0 : 1) || port > 65535 || colon[1] == '+' ||
        colon[1] == '-')
        return 0;
    return 1;
}

static int id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* Reads the token (first line, trimmed, at most 1 KiB). Returns 0 or -1 with err. */
static int read_token(const char *path, char *out, size_t size, char *err, size_t errlen)
{
    util_warn_exposed_secret(path, "registration token");
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot read token file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, size - 1, f);
    int big = !feof(f) && fgetc(f) != EOF;
    fclose(f);
    out[n] = '\0';
    char *nl = strpbrk(out, "\r\n");
    if (nl)
        *nl = '\0';
    n = strlen(out);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        out[--n] = '\0';
    if (big && !nl) {
        snprintf(err, errlen, "token file \"%s\" is too long", path);
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "token file \"%s\" is empty", path);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    enum {
        O_LISTEN = 256,
        O_ID,
        O_ADV,
        O_MON,
        O_TOKEN,
        O_APP,
        O_APPTO,
        O_LOAD,
        O_LOG,
        O_LOGFMT,
        O_VER,
        O_READY,
        O_TLS_CERT,
        O_TLS_KEY,
        O_TLS_CA,
        O_TLS_NAME,
        O_ONTERM,
        O_DRAINTO
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"instance-id", required_argument, NULL, O_ID},
        {"advertise", required_argument, NULL, O_ADV},
        {"monitor", required_argument, NULL, O_MON},
        {"token-file", required_argument, NULL, O_TOKEN},
        {"app-url", required_argument, NULL, O_APP},
        {"app-timeout", required_argument, NULL, O_APPTO},
        {"load", required_argument, NULL, O_LOAD},
        {"log-level", required_argument, NULL, O_LOG},
        {"log-format", required_argument, NULL, O_LOGFMT},
        {"ready-fd", required_argument, NULL, O_READY},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"tls-ca", required_argument, NULL, O_TLS_CA},
        {"tls-server-name", required_argument, NULL, O_TLS_NAME},
        {"on-terminate", required_argument, NULL, O_ONTERM},
        {"drain-timeout", required_argument, NULL, O_DRAINTO},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VER},
        {NULL, 0, NULL, 0},
    };
    o->listen = "0.0.0.0:50051";
    o->app_timeout_ms = 2000;
    o->load = "proc";
    o->ready_fd = -1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            if (!hostport_valid(optarg, 1))
                return usage_error("--listen \"%s\" is not ADDR:PORT", optarg);
            o->listen = optarg;
            break;
        case O_ID:
            if (!id_valid(optarg))
                return usage_error("--instance-id \"%s\" must be 1-63 of [A-Za-z0-9._-]", optarg);
            o->instance_id = optarg;
            break;
        case O_ADV:
            if (!hostport_valid(optarg, 0))
                return usage_error("--advertise \"%s\" is not ADDR:PORT", optarg);
            o->advertise = optarg;
            break;
        case O_MON: {
            /* HOST:PORT[,HOST:PORT...]: every MonitorS of an asgd cluster */
            size_t n = 0;
            for (const char *p = optarg;; n++) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                char one[256];
                if (len == 0 || len >= sizeof(one))
                    return usage_error("--monitor \"%s\": an empty or too long address", optarg);
                memcpy(one, p, len);
                one[len] = '\0';
                if (!hostport_valid(one, 0))
                    return usage_error("--monitor \"%s\" is not HOST:PORT", one);
                if (!comma)
                    break;
                p = comma + 1;
            }
            if (n + 1 > AGENT_REG_MAX_MONITORS)
                return usage_error("--monitor: at most %d addresses", AGENT_REG_MAX_MONITORS);
            o->monitor = optarg;
            break;
        }
        case O_TOKEN:
            o->token_file = optarg;
            break;
        case O_APP:
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                return usage_error("--app-url \"%s\" must start with http:// or https://", optarg);
            o->app_url = optarg;
            break;
        case O_APPTO:
            if (clk_parse_duration(optarg, &o->app_timeout_ms) || o->app_timeout_ms < 1 ||
                o->app_timeout_ms > 60000)
                return usage_error("--app-timeout \"%s\" must be a duration up to 60s", optarg);
            break;
        case O_LOAD:
            o->load = optarg;
            break;
        case O_TLS_CERT:
            o->tls.cert_file = optarg;
            break;
        case O_TLS_KEY:
            o->tls.key_file = optarg;
            break;
        case O_TLS_CA:
            o->tls.ca_file = optarg;
            break;
        case O_TLS_NAME:
            o->tls.server_name = optarg;
            break;
        case O_ONTERM:
            if (optarg[0] == '\0')
                return usage_error("--on-terminate needs a command");
            o->on_terminate = optarg;
            break;
        case O_DRAINTO:
            if (clk_parse_duration(optarg, &o->drain_timeout_ms) || o->drain_timeout_ms < 1 ||
                o->drain_timeout_ms > 86400000)
                return usage_error("--drain-timeout \"%s\" must be a duration up to 24h", optarg);
            break;
        case O_READY: {
            char *end;
            errno = 0;
            long fd = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || fd < 3 || fd > 1023)
                return usage_error("--ready-fd \"%s\" must be a descriptor number 3..1023", optarg);
            o->ready_fd = (int)fd;
            break;
        }
        case O_LOG: {
            enum log_level lv;
            if (log_level_parse(optarg, &lv))
                return usage_error("--log-level \"%s\": want error, warn, info or debug", optarg);
            log_set_level(lv);
            break;
        }
        case O_LOGFMT: {
            enum log_format lf;
            if (log_format_parse(optarg, &lf))
                return usage_error("--log-format \"%s\": want text, json, journal or auto", optarg);
            if (log_set_format(lf) != 0)
                fprintf(stderr, "monitorc: --log-format journal: no journal socket; text lines\n");
            break;
        }
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case O_VER:
            printf("monitorc %s\n", ASGD_VERSION);
            return 0;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    /* the agent is a TLS server: its certificate is what TLS needs first */
    if ((o->tls.ca_file || o->tls.key_file || o->tls.server_name) && !o->tls.cert_file)
        return usage_error("--tls-ca, --tls-key and --tls-server-name need --tls-cert");
    if (o->tls.cert_file && !o->tls.key_file)
        return usage_error("--tls-cert needs --tls-key");
    return -1; /* go on */
}

/* 1 when every address of the --monitor list is a loopback address. */
static int monitors_loopback(const char *list)
{
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[256];
        snprintf(one, sizeof(one), "%.*s", (int)len, p);
        if (!tls_address_is_loopback(one))
            return 0;
        if (!comma)
            return 1;
        p = comma + 1;
    }
}

/* One line to the --ready-fd descriptor (if any), which is then closed. */
__attribute__((format(printf, 2, 3))) static void ready_report(int *fd, const char *fmt, ...)
{
    if (*fd < 0)
        return;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(*fd, line, (size_t)n);
    (void)w; /* nobody listening any more: nothing to do */
    close(*fd);
    *fd = -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    log_set_tag("monitorc");
    sdn_init();
    (void)log_set_format(LOG_FMT_AUTO); /* --log-format overrides it */
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;

    char err[512];
    char token[1024] = "";
    if (o.token_file && read_token(o.token_file, token, sizeof(token), err, sizeof(err)))
        return usage_error("%s", err);
    struct tls_conf *tls = NULL;
    if (o.tls.cert_file && tls_conf_new(&o.tls, &tls, err, sizeof(err)) != 0)
        return usage_error("%s", err);
    struct agent_load *load = agent_load_new(o.load, NULL, err, sizeof(err));
    if (!load) {
        tls_conf_free(tls);
        return usage_error("--load: %s", err);
    }

    /* Signals go to this thread only: block them before gRPC and the workers
     * start their threads, then wait for them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* libcurl (and the TLS library behind it, several MB of RSS) only when used */
    int use_curl = o.app_url != NULL || o.instance_id == NULL;
    if (use_curl)
        curl_global_init(CURL_GLOBAL_DEFAULT);

    int exit_code = 1;
    struct agent_state *st = NULL;
    struct agent_sampler *sampler = NULL;
    struct agent_health *health = NULL;
    struct rpc_server *srv = NULL;
    struct agent_reg *reg = NULL;
    struct agent_drain *drain = NULL;

    char id[128];
    if (o.instance_id) {
        snprintf(id, sizeof(id), "%s", o.instance_id);
    } else if (agent_imds_instance_id(id, sizeof(id), 1000) == 0) {
        log_info("instance id \"%s\" from the EC2 instance metadata service", id);
    } else {
        if (gethostname(id, sizeof(id)) != 0 || !id[0])
            snprintf(id, sizeof(id), "unknown-host");
        id[sizeof(id) - 1] = '\0';
        log_info("no instance metadata: using the host name \"%s\" as instance id", id);
    }

    st = agent_state_new(id);
    if (!st)
        goto out;
    if (o.on_terminate) {
        if ((drain = agent_drain_new(o.on_terminate, o.drain_timeout_ms, st)) == NULL)
            goto out;
        agent_state_set_drain(st, drain);
    }
    /* the first rpc object sets gRPC's environment (rpc.h): before any worker
     * thread exists that might read the environment (libcurl does) */
    struct rpc_server_opts so = RPC_SERVER_OPTS_INIT;
    so.max_message = 4096; /* every MonitorC request is a few bytes */
    srv = rpc_server_new(&so);
    if (!srv || agent_service_register(srv, st)) {
        log_error("cannot create the gRPC server");
        goto out;
    }
    sampler = agent_sampler_start(load, st);
    if (!sampler) {
        log_error("cannot start the load sampler");
        goto out;
    }
    if (o.app_url) {
        /* "OK" only once the application has answered */
        agent_state_set_app_healthy(st, 0);
        health = agent_health_start(o.app_url, (int)o.app_timeout_ms, 2000, st);
        if (!health) {
            log_error("cannot start the application health check");
            goto out;
        }
    }

    int port = 0;
    if (tls ? rpc_server_bind_tls(srv, o.listen, tls, &port)
            : rpc_server_bind(srv, o.listen, &port)) {
        /* the message names the address and says why */
        log_error("%s (exit code 3)", rpc_server_errmsg(srv));
        ready_report(&o.ready_fd, "%s", rpc_server_errmsg(srv));
        exit_code = 3;
        goto out;
    }
    if (rpc_server_start(srv)) {
        log_error("cannot start the gRPC server: %s", rpc_server_errmsg(srv));
        ready_report(&o.ready_fd, "cannot start the gRPC server: %s", rpc_server_errmsg(srv));
        goto out;
    }
    log_info("monitorc %s serving MonitorC on %s (port %d%s) as \"%s\", load %s", ASGD_VERSION,
             o.listen, port,
             !tls                   ? ""
             : tls_conf_has_ca(tls) ? ", TLS, client certificates required"
                                    : ", TLS",
             id, o.load);
    if (!tls && o.token_file && o.monitor && !monitors_loopback(o.monitor))
        log_warn("the registration token goes to MonitorS at \"%s\" in clear text: use "
                 "--tls-cert/--tls-key/--tls-ca",
                 o.monitor);
    ready_report(&o.ready_fd, "ok");
    sdn_notifyf("READY=1\nSTATUS=serving MonitorC on %s as \"%s\"", o.listen, id);

    char advertise[300];
    if (o.advertise) {
        snprintf(advertise, sizeof(advertise), "%s", o.advertise);
    } else {
        const char *colon = strrchr(o.listen, ':');
        size_t hlen = (size_t)(colon - o.listen);
        int wildcard = (hlen == 7 && strncmp(o.listen, "0.0.0.0", 7) == 0) ||
                       (hlen == 4 && strncmp(o.listen, "[::]", 4) == 0) || hlen == 0;
        if (wildcard) {
            char host[256];
            if (gethostname(host, sizeof(host)) != 0)
                snprintf(host, sizeof(host), "localhost");
            host[sizeof(host) - 1] = '\0';
            snprintf(advertise, sizeof(advertise), "%s:%d", host, port);
        } else {
            snprintf(advertise, sizeof(advertise), "%.*s:%d", (int)hlen, o.listen, port);
        }
    }

    if (o.monitor) {
        struct agent_reg_opts ro = {0};
        ro.monitor = o.monitor;
        ro.address = advertise;
        ro.token = token[0] ? token : NULL;
        ro.tls = tls;
        reg = agent_reg_start(&ro, st);
        if (!reg) {
            log_error("cannot start registration with \"%s\"", o.monitor);
            goto out;
        }
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (!tls)
                log_info("SIGHUP ignored (nothing to reload)");
            else if (tls_conf_reload(tls, err, sizeof(err)) != 0)
                log_error("SIGHUP: TLS files not reloaded, the previous ones stay in use: %s", err);
            else
                log_info("SIGHUP: TLS certificate files reloaded");
            continue;
        }
        log_info("received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        sdn_notify("STOPPING=1");
        break;
    }
    agent_state_set_draining(st, 1);
    if (reg) {
        agent_reg_stop(reg, "agent stopping", 2000);
        reg = NULL;
    }
    exit_code = 0;

out:
    ready_report(&o.ready_fd, "cannot start (see the agent's log)");
    if (reg)
        agent_reg_stop(reg, "agent failed", 1000);
    if (srv) {
        rpc_server_shutdown(srv, 500);
        rpc_server_free(srv);
    }
    agent_health_stop(health);
    agent_sampler_stop(sampler);
    agent_drain_free(drain); /* after the server: no handler can start it any more */
    agent_state_free(st);
    agent_load_free(load);
    tls_conf_free(tls);
    if (use_curl)
        curl_global_cleanup();
    explicit_bzero(token, sizeof(token));
    if (exit_code == 0)
        log_info("stopped");
    return exit_code;
}
