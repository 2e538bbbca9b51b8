/*
 * bench_fleet - what the fleet table's guarantees cost.
 *
 * The table gives lock-free consistent reads, crash-safe writes (robust
 * mutex + redo journal) and works across processes. The baseline is the
 * simplest thing that is correct inside one process: an array of the same
 * slots behind one ordinary pthread mutex, readers and writers both locking.
 * Measured in the same run, on a table of N slots (default 4096; argv[1]):
 *   update    one slot's fields changed (MonitorS recording a poll);
 *   read      one slot copied consistently;
 *   snapshot  every slot copied (the controller's tick);
 *   find      an id looked up in a full table (registration);
 *   contended reads per second while one writer thread updates without pause
 *             (readers of the table never wait; baseline readers queue on the mutex).
 * Prints ns per operation and the ratio table/baseline (lower is better for
 * ns; for contended reads, higher is better).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet/fleet.h"

#include "common/banned.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- baseline ---- */
struct base {
    pthread_mutex_t mu;
    struct fleet_slot *slots;
    uint32_t n;
};

static void bump(struct fleet_slot *s, void *arg)
{
    (void)arg;
    s->polls_ok++;
    s->load = (double)(s->polls_ok % 100);
    s->last_seen_ms = (int64_t)s->polls_ok;
}

static void base_update(struct base *b, uint32_t i)
{
    pthread_mutex_lock(&b->mu);
    bump(&b->slots[i], NULL);
    pthread_mutex_unlock(&b->mu);
}

static void base_read(struct base *b, uint32_t i, struct fleet_slot *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->slots[i];
    pthread_mutex_unlock(&b->mu);
}

static size_t base_snapshot(struct base *b, struct fleet_slot *out)
{
    pthread_mutex_lock(&b->mu);
    memcpy(out, b->slots, b->n * sizeof(*out));
    pthread_mutex_unlock(&b->mu);
    return b->n;
}

static int base_find(struct base *b, const char *id)
{
    int r = -1;
    pthread_mutex_lock(&b->mu);
    for (uint32_t i = 0; i < b->n; i++)
        if (strcmp(b->slots[i].id, id) == 0) {
            r = (int)i;
            break;
        }
    pthread_mutex_unlock(&b->mu);
    return r;
}

/* ---- contended ---- */
struct contend {
    struct fleet *f;
    struct base *b;
    uint32_t n, *gen;
    volatile int stop;
};

static void *writer(void *arg)
{
    struct contend *c = arg;
    uint32_t i = 0;
    while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
        if (c->f)
            (void)fleet_update(c->f, i, c->gen[i], bump, NULL);
        else
            base_update(c->b, i);
        i = (i + 1) % c->n;
    }
    return NULL;
}

static double contended_reads(struct contend *c, double seconds)
{
    pthread_t t;
    c->stop = 0;
    if (pthread_create(&t, NULL, writer, c) != 0)
        return 0;
    struct fleet_slot s;
    long reads = 0;
    double t0 = now_s(), t1;
    uint32_t i = 0;
    do {
        for (int k = 0; k < 1000; k++) {
            if (c->f)
                (void)fleet_read(c->f, i, &s);
            else
                base_read(c->b, i, &s);
            i = (i + 1) % c->n;
        }
        reads += 1000;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    return (double)reads / (t1 - t0);
}

int main(int argc, char **argv)
{
    uint32_t n = 4096;
    if (argc > 1) {
        char *end;
        long v = strtol(argv[1], &end, 10);
        if (*end || v < 16 || v > 100000) {
            fprintf(stderr, "usage: bench_fleet [slots 16..100000]\n");
            return 2;
        }
        n = (uint32_t)v;
    }
    char name[64];
    snprintf(name, sizeof(name), "bench-%ld", (long)getpid());
    struct fleet *f = NULL;
    if (fleet_open(name, n, 1, &f) != 0) {
        fprintf(stderr, "bench_fleet: cannot create the fleet table\n");
        return 1;
    }
    struct base b;
    pthread_mutex_init(&b.mu, NULL);
    b.n = n;
    b.slots = calloc(n, sizeof(*b.slots));
    struct fleet_slot *snap = calloc(n, sizeof(*snap));
    uint32_t *gen = calloc(n, sizeof(*gen));
    if (!b.slots || !snap || !gen)
        return 1;
    for (uint32_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "i-%08x", i * 2654435761u);
        uint32_t idx;
        if (fleet_alloc(f, id, "127.0.0.1:50051", 0, &idx) != 0 || idx != i)
            return 1;
        struct fleet_slot s;
        if (fleet_read(f, i, &s) != 0)
            return 1;
        gen[i] = s.generation;
        b.slots[i] = s;
    }

    const long iters = 2000000;
    double t0, tf, tb;
    printf("bench_fleet: %u slots of %zu bytes\n", n, sizeof(struct fleet_slot));

    t0 = now_s();
    for (long k = 0; k < iters; k++)
        (void)fleet_update(f, (uint32_t)(k % n), gen[k % n], bump, NULL);
    tf = (now_s() - t0) / (double)iters * 1e9;
    t0 = now_s();
    for (long k = 0; k < iters; k++)
        base_update(&b, (uint32_t)(k % n));
    tb = (now_s() - t0) / (double)iters * 1e9;
    printf("  update    table %7.1f ns   baseline %7.1f ns   ratio %.2f\n", tf, tb, tf / tb);

    struct fleet_slot s;
    t0 = now_s();
    for (long k = 0; k < iters; k++)
        (void)fleet_read(f, (uint32_t)(k % n), &s);
    tf = (now_s() - t0) / (double)iters * 1e9;
    t0 = now_s();
    for (long k = 0; k < iters; k++)
        base_read(&b, (uint32_t)(k % n), &s);
    tb = (now_s() - t0) / (double)iters * 1e9;
    printf("  read      table %7.1f ns   baseline %7.1f ns   ratio %.2f\n", tf, tb, tf / tb);

    const long snaps = 2000;
    t0 = now_s();
    for (long k = 0; k < snaps; k++)
        (void)fleet_snapshot(f, snap, n);
    tf = (now_s() - t0) / (double)snaps * 1e6;
    t0 = now_s();
    for (long k = 0; k < snaps; k++)
        (void)base_snapshot(&b, snap);
    tb = (now_s() - t0) / (double)snaps * 1e6;
    printf("  snapshot  table %7.1f us   baseline %7.1f us   ratio %.2f\n", tf, tb, tf / tb);

    const long finds = 20000;
    char id[32];
    long found = 0; /* used, so that no search can be optimised away */
    t0 = now_s();
    for (long k = 0; k < finds; k++) {
        snprintf(id, sizeof(id), "i-%08x", (uint32_t)(k % n) * 2654435761u);
        uint32_t idx;
        found += fleet_find(f, id, &idx) == 0 ? (long)idx : -1000000;
    }
    tf = (now_s() - t0) / (double)finds * 1e6;
    t0 = now_s();
    for (long k = 0; k < finds; k++) {
        snprintf(id, sizeof(id), "i-%08x", (uint32_t)(k % n) * 2654435761u);
        found -= base_find(&b, id);
    }
    tb = (now_s() - t0) / (double)finds * 1e6;
    printf("  find      table %7.1f us   baseline %7.1f us   ratio %.2f%s\n", tf, tb, tf / tb,
           found ? "   (MISMATCH)" : "");

    struct contend cf = {f, NULL, n, gen, 0}, cb = {NULL, &b, n, gen, 0};
    double rf = contended_reads(&cf, 1.0), rb = contended_reads(&cb, 1.0);
    printf("  contended reads/s with one busy writer: table %.2fM   baseline %.2fM   ratio %.2f\n",
           rf / 1e6, rb / 1e6, rf / rb);

    fleet_close(f);
    (void)fleet_unlink(name);
    free(b.slots);
    free(snap);
    free(gen);
    return 0;
}
