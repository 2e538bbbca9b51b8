/*
 * pager.c - pages of a group's instances in id order, without sorting the table per request.
 *
 * `GET /api/v1/instances?limit=100` at 10,000 instances used to copy every slot, sort them all
 * by id and read each row of the page from the store: ~10 ms idle, 70 ms on a busy machine,
 * all of it on the one HTTP thread the dashboard also waits on. Membership changes far less
 * often than anyone reads a page (never in steady state), so the sorted ids are kept per group
 * and rebuilt only when fleet_membership_gen() moved; a page is then a binary search for
 * `after` and `limit` slot reads. An instance's provider and zone (store columns that never
 * change over its life) are read from the store once, the first time a page shows it, and
 * carried across rebuilds.
 *
 * The cache is keyed by the fleet handle and checked against what it serves: a slot that no
 * longer holds the id the index says (the table was replaced under the same address, or
 * membership moved between the generation read and the copy) makes the page rebuild once and
 * start again, so a stale index can cost time but never a wrong row.
 *
 * Threads: the HTTP thread only (handlers run one at a time, see server.c). Memory: one entry
 * (~140 bytes) per instance of the PAGER_GROUPS groups paged most recently.
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "http/http_int.h"

#include "common/banned.h"

#define PAGER_GROUPS 8 /* groups whose index is kept (least recently paged dropped first) */

struct pager_entry {
    char id[FLEET_ID_MAX];
    uint32_t index;
    uint8_t known; /* provider and zone were read from the store */
    char provider[STORE_SHORT_MAX];
    char zone[STORE_SHORT_MAX];
};

struct pager_group {
    const struct fleet *fleet; /* identity only: never dereferenced after the request */
    uint64_t gen;              /* fleet_membership_gen() the entries were built at */
    struct pager_entry *e;     /* sorted by id */
    size_t n;
    uint64_t used; /* the pager's clock at the last page (LRU) */
};

struct http_pager {
    struct pager_group g[PAGER_GROUPS];
    uint64_t clock;
};

struct http_pager *http__pager_new(void)
{
    return calloc(1, sizeof(struct http_pager));
}

void http__pager_free(struct http_pager *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < PAGER_GROUPS; i++)
        free(p->g[i].e);
    free(p);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct pager_entry *)a)->id, ((const struct pager_entry *)b)->id);
}

/* The group's cache line: its own, else the least recently used one, emptied. */
static struct pager_group *line_for(struct http_pager *p, const struct fleet *f)
{
    struct pager_group *lru = &p->g[0];
    for (size_t i = 0; i < PAGER_GROUPS; i++) {
        if (p->g[i].fleet == f && p->g[i].e)
            return &p->g[i];
        if (p->g[i].used < lru->used)
            lru = &p->g[i];
    }
    free(lru->e);
    memset(lru, 0, sizeof *lru);
    lru->fleet = f;
    return lru;
}

/* Rebuilds g's index from the table; what the old index knew of the store is kept. -1: ENOMEM */
static int rebuild(struct pager_group *g, struct fleet *f)
{
    /* the generation first: a change during the copy leaves an older number, so the next
       page rebuilds again rather than trusting a copy that missed it */
    uint64_t gen = fleet_membership_gen(f);
    size_t n = 0;
    struct fleet_slot *slots = http__snapshot(f, &n);
    if (!slots && n)
        return -1;
    struct pager_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e) {
        free(slots);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(e[i].id, slots[i].id, sizeof e[i].id);
        e[i].id[sizeof e[i].id - 1] = '\0';
        e[i].index = slots[i].index;
    }
    free(slots);
    if (n > 1)
        qsort(e, n, sizeof *e, cmp_entry);
    /* both sorted: one merge pass carries provider and zone over */
    size_t j = 0;
    for (size_t i = 0; i < n && j < g->n; i++) {
        int c = 1;
        while (j < g->n && (c = strcmp(g->e[j].id, e[i].id)) < 0)
            j++;
        if (j < g->n && c == 0 && g->e[j].known) {
            e[i].known = 1;
            memcpy(e[i].provider, g->e[j].provider, sizeof e[i].provider);
            memcpy(e[i].zone, g->e[j].zone, sizeof e[i].zone);
        }
    }
    free(g->e);
    g->e = e;
    g->n = n;
    g->gen = gen;
    return 0;
}

/* First entry whose id sorts after `after` (0 when after is NULL). */
static size_t first_after(const struct pager_group *g, const char *after)
{
    size_t lo = 0, hi = g->n;
    if (!after)
        return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(g->e[mid].id, after) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void learn_store(struct http_server *s, struct pager_entry *e)
{
    struct store_instance row;
    /* not found yet (the row is written after the slot on some paths): asked again next page */
    if (store_get_instance(s->store, e->id, &row) != 0)
        return;
    memcpy(e->provider, row.provider, sizeof e->provider);
    memcpy(e->zone, row.zone, sizeof e->zone);
    e->known = 1;
}

int http__pager_page(struct http_server *s, struct fleet *f, const char *after, size_t limit,
                     struct http_page_item *out, size_t *n_out, int *more)
{
    struct http_pager *p = s->pager;
    *n_out = 0;
    *more = 0;
    if (!p)
        return -1;
    struct pager_group *g = line_for(p, f);
    g->used = ++p->clock;
    int rebuilt = 0;
    if (!g->e || g->gen != fleet_membership_gen(f)) {
        if (rebuild(g, f))
            return -1;
        rebuilt = 1;
    }
    for (;;) {
        size_t k = 0, i = first_after(g, after);
        int stale = 0;
        for (; i < g->n && k < limit; i++) {
            struct pager_entry *e = &g->e[i];
            if (fleet_read(f, e->index, &out[k].slot) != 0 || strcmp(out[k].slot.id, e->id)) {
                stale = 1;
                continue;
            }
            if (!e->known)
                learn_store(s, e);
            out[k].provider = e->known ? e->provider : NULL;
            out[k].zone = e->known ? e->zone : NULL;
            k++;
        }
        if (stale && !rebuilt) {
            if (rebuild(g, f))
                return -1;
            rebuilt = 1;
            continue;
        }
        *n_out = k;
        *more = i < g->n;
        return 0;
    }
}
