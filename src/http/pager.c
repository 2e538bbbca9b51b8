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
 * carried across rebuilds: one look-up each for a few, one read of the group's rows when a
 * page (or the whole list) meets many it does not know yet.
 *
 * The unpaged list is served from the same index in the table's order (what the API has
 * always given without paging): rebuild() keeps, besides the id order, each entry's place in
 * the snapshot. At 10,000 instances that list used to read all 10,000 store rows per request.
 *
 * The cache is keyed by the fleet handle and checked against what it serves: a slot that no
 * longer holds the id the index says (the table was replaced under the same address, or
 * membership moved between the generation read and the copy) makes the page rebuild once and
 * start again, so a stale index can cost time but never a wrong row.
 *
 * Threads: the HTTP thread only (handlers run one at a time, see server.c). Memory: one entry
 * (~150 bytes) per instance of the PAGER_GROUPS groups listed most recently.
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "http/http_int.h"

#include "common/banned.h"

#define PAGER_GROUPS 8  /* groups whose index is kept (least recently paged dropped first) */
#define PAGER_BULK   16 /* more unknown entries than this in one answer: read the group's rows */

struct pager_entry {
    char id[FLEET_ID_MAX];
    uint32_t index;
    uint32_t rank; /* place in the snapshot (the table's order) while building */
    uint8_t known; /* provider and zone were read from the store */
    char provider[STORE_SHORT_MAX];
    char zone[STORE_SHORT_MAX];
};

struct pager_group {
    const struct fleet *fleet; /* identity only: never dereferenced after the request */
    uint64_t gen;              /* fleet_membership_gen() the entries were built at */
    struct pager_entry *e;     /* sorted by id */
    uint32_t *by_slot;         /* positions in e in the table's order */
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
    for (size_t i = 0; i < PAGER_GROUPS; i++) {
        free(p->g[i].e);
        free(p->g[i].by_slot);
    }
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
    free(lru->by_slot);
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
    uint32_t *by_slot = malloc((n ? n : 1) * sizeof *by_slot);
    if (!e || !by_slot) {
        free(e);
        free(by_slot);
        free(slots);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(e[i].id, slots[i].id, sizeof e[i].id);
        e[i].id[sizeof e[i].id - 1] = '\0';
        e[i].index = slots[i].index;
        e[i].rank = (uint32_t)i;
    }
    free(slots);
    if (n > 1)
        qsort(e, n, sizeof *e, cmp_entry);
    for (size_t i = 0; i < n; i++)
        by_slot[e[i].rank] = (uint32_t)i;
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
    free(g->by_slot);
    g->e = e;
    g->by_slot = by_slot;
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

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const struct store_instance *)a)->id, ((const struct store_instance *)b)->id);
}

static void know(struct pager_entry *e, const struct store_instance *row)
{
    memcpy(e->provider, row->provider, sizeof e->provider);
    memcpy(e->zone, row->zone, sizeof e->zone);
    e->provider[sizeof e->provider - 1] = '\0';
    e->zone[sizeof e->zone - 1] = '\0';
    e->known = 1;
}

static void learn_store(struct http_server *s, struct pager_entry *e)
{
    struct store_instance row;
    /* not found yet (the row is written after the slot on some paths): asked again next page */
    if (store_get_instance(s->store, e->id, &row) != 0)
        return;
    know(e, &row);
}

/* Every entry of g the group's rows name learns its provider and zone, from one read of the
   rows (a query each would cost 10,000 of them for the first list of a large group, and a
   round trip each on etcd). The others are asked again by the next answer that shows them. */
static void learn_group(struct http_server *s, struct pager_group *g, const char *group)
{
    struct store_instance *rows = NULL;
    size_t n = 0;
    if (store_list_instances(s->store, group, 0, &rows, &n) != 0)
        return;
    if (n > 1)
        qsort(rows, n, sizeof *rows, cmp_row);
    size_t j = 0;
    for (size_t i = 0; i < g->n && j < n; i++) {
        int c = 1;
        while (j < n && (c = strcmp(rows[j].id, g->e[i].id)) < 0)
            j++;
        if (j < n && c == 0 && !g->e[i].known)
            know(&g->e[i], &rows[j]);
    }
    store_instances_free(rows);
}

/* Entry at position i of the answer's order: the id order, or the table's (by_slot). */
static struct pager_entry *entry_at(struct pager_group *g, int table_order, size_t i)
{
    return &g->e[table_order ? g->by_slot[i] : i];
}

/* Makes provider and zone known for positions [from, to) of the order, as far as the store
   has them. Returns 1 when the entries still unknown are to be asked one by one. */
static int learn(struct http_server *s, struct pager_group *g, const char *group, int table_order,
                 size_t from, size_t to)
{
    size_t unknown = 0;
    for (size_t i = from; i < to && unknown <= PAGER_BULK; i++)
        unknown += !entry_at(g, table_order, i)->known;
    if (unknown <= PAGER_BULK)
        return 1;
    learn_group(s, g, group);
    return 0;
}

/* Fills item from e's slot: 0, or 1 when the slot no longer holds e's id (a stale index). */
static int take(struct http_server *s, struct fleet *f, struct pager_entry *e, int ask,
                struct http_page_item *item)
{
    if (fleet_read(f, e->index, &item->slot) != 0 || strcmp(item->slot.id, e->id) != 0)
        return 1;
    if (!e->known && ask)
        learn_store(s, e);
    item->provider = e->known ? e->provider : NULL;
    item->zone = e->known ? e->zone : NULL;
    return 0;
}

/* g's index for f, rebuilt when membership moved since it was built. NULL on ENOMEM. */
static struct pager_group *index_for(struct http_pager *p, struct fleet *f, int *rebuilt)
{
    struct pager_group *g = line_for(p, f);
    g->used = ++p->clock;
    *rebuilt = 0;
    if (!g->e || g->gen != fleet_membership_gen(f)) {
        if (rebuild(g, f))
            return NULL;
        *rebuilt = 1;
    }
    return g;
}

int http__pager_page(struct http_server *s, struct fleet *f, const char *group, const char *after,
                     size_t limit, struct http_page_item *out, size_t *n_out, int *more)
{
    struct http_pager *p = s->pager;
    int rebuilt;
    *n_out = 0;
    *more = 0;
    struct pager_group *g = p ? index_for(p, f, &rebuilt) : NULL;
    if (!g)
        return -1;
    for (;;) {
        size_t k = 0, i = first_after(g, after);
        int ask = learn(s, g, group, 0, i, g->n - i < limit ? g->n : i + limit);
        int stale = 0;
        for (; i < g->n && k < limit; i++) {
            if (take(s, f, &g->e[i], ask, &out[k]))
                stale = 1;
            else
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

int http__pager_all(struct http_server *s, struct fleet *f, const char *group,
                    struct http_page_item **out, size_t *n_out)
{
    struct http_pager *p = s->pager;
    int rebuilt;
    *out = NULL;
    *n_out = 0;
    struct pager_group *g = p ? index_for(p, f, &rebuilt) : NULL;
    if (!g)
        return -1;
    for (;;) {
        struct http_page_item *items = malloc((g->n ? g->n : 1) * sizeof *items);
        if (!items)
            return -1;
        int ask = learn(s, g, group, 1, 0, g->n);
        size_t k = 0;
        int stale = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (take(s, f, entry_at(g, 1, i), ask, &items[k]))
                stale = 1;
            else
                k++;
        }
        if (stale && !rebuilt) {
            free(items);
            if (rebuild(g, f))
                return -1;
            rebuilt = 1;
            continue;
        }
        *out = items;
        *n_out = k;
        return 0;
    }
}
