/*
 * fleet.c - the fleet table in POSIX shared memory (contract in fleet.h).
 *
 * Workload: MonitorS updates every slot once per poll interval (thousands of
 * writes per second for a large fleet), the controller snapshots the whole
 * table once per tick, the HTTP API and `asgd status` read it at will. Writes
 * are serialised by one robust process-shared mutex; reads take no lock.
 *
 * Segment layout: a header (magic, layout version, capacity, membership
 * generation, heartbeats, the mutex, a one-slot redo journal) then
 * `capacity` slots. A slot is a sequence counter, an id hash (0 = free) and
 * the payload (struct fleet_slot) stored as 64-bit words. Every access to the
 * words of a slot is an __atomic load/store (acquire/release per word, the
 * fence-free variant in Boehm's "Can seqlocks get along with programming
 * language memory models?"): a reader racing a writer performs no
 * data race in the C11 sense and sanitizers stay quiet; the sequence check
 * throws away any copy that overlapped a write.
 *
 * Crashes: another process may die anywhere, including in the middle of a
 * slot write. Before touching a slot a writer records the slot's new content
 * in the journal; whoever next takes the mutex gets EOWNERDEAD, replays the
 * journal (the write becomes whole), repairs what cannot be replayed, and
 * marks the mutex consistent. A reader that finds a sequence counter odd for
 * too long takes the mutex itself, which performs that recovery if the writer
 * is dead (or simply waits for a live one).
 *
 * Distrust: the segment is writable by any process of the same user, so every
 * index, count and string read from it is bounds-checked or re-terminated
 * before use.
 */
#include "fleet/fleet.h"
#include "fleet/fleet_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#include "common/banned.h"

#define FLEET_MAGIC    0x5445454c46445341ull /* "ASDFLEET" little-endian */
#define FLEET_LAYOUT   2u                    /* 2: hook and standby states, protect, hook times */
#define FLEET_NAME_MAX 200 /* a shm name may have 255; node.group names in a cluster */
#define FLEET_MAX_CAP  (1u << 20)
#define SLOT_WORDS     (sizeof(struct fleet_slot) / sizeof(uint64_t))
#define OPEN_WAIT_MS   2000 /* how long an attacher waits for the creator to finish */
#define READ_SPINS     4096 /* sequence retries before a reader takes the mutex */

_Static_assert(sizeof(struct fleet_slot) % sizeof(uint64_t) == 0, "slot must be whole words");
_Static_assert(_Alignof(struct fleet_slot) <= _Alignof(uint64_t), "slot alignment");

struct shslot {
    uint32_t seq;    /* odd while a write is in progress */
    uint32_t idhash; /* FNV-1a of id (never 0) while used, 0 when free */
    uint64_t words[SLOT_WORDS];
};

struct shhdr {
    uint64_t magic;
    uint32_t layout;
    uint32_t ready; /* 1 once the creator finished initialising */
    uint32_t capacity;
    uint32_t slot_size;
    uint32_t mutex_size;
    /* CLOCK_MONOTONIC second until which the controller has a launch in flight, 0 = none
       (fleet_set_launching). Was padding, which creators zeroed: older builds read and
       write around it, so the layout version stays. */
    uint32_t launching_until_s;
    uint64_t total_size;
    uint64_t membership_gen;
    int64_t heartbeat[2];
    /* under the mutex */
    uint32_t used;
    uint32_t next_hint;
    uint32_t j_valid; /* the journal holds a write that may not have reached its slot */
    uint32_t j_index;
    uint32_t j_hash;
    uint32_t pad1;
    uint64_t j_words[SLOT_WORDS];
    pthread_mutex_t lock;
};

#define HDR_SIZE (((sizeof(struct shhdr) + 63) / 64) * 64)

struct fleet {
    struct shhdr *hdr;
    struct shslot *slots;
    uint32_t reserve_cap; /* slots the mapping covers: hdr->capacity never exceeds it here */
    size_t map_size;
    int fd; /* kept open: fleet_grow() extends the segment */
};

int fleet__crash_point;

/* ---- small helpers ---------------------------------------------------------------------- */

static uint32_t id_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h ? h : 1;
}

static int name_valid(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name);
    if (n == 0 || n > FLEET_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

static void shm_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "/asgd-%s", name);
}

static size_t seg_size(uint32_t cap)
{
    return HDR_SIZE + (size_t)cap * sizeof(struct shslot);
}

/*
 * The table's capacity now. The mapping reserves address space for
 * FLEET_MAX_SLOTS (or the creation size, if larger) slots, so a table grown
 * by any process (fleet_grow) is visible to every process at once without a
 * remap; the value read from the segment is clamped to what this mapping
 * covers. Callers read it once per operation: it only ever grows.
 */
static uint32_t cap_now(const struct fleet *f)
{
    uint32_t c = __atomic_load_n(&f->hdr->capacity, __ATOMIC_ACQUIRE);
    return c < f->reserve_cap ? c : f->reserve_cap;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/*
 * Word copies of a slot payload. The seqlock needs the payload stores to stay
 * after the "odd" store of the sequence and the payload loads to stay before
 * the second load of it. Release stores and acquire loads per word give
 * exactly that without fences (which ThreadSanitizer cannot model); on x86
 * and for relaxed-enough ARM code they cost the same as plain moves.
 */
static void words_load(const uint64_t *src, uint64_t *dst)
{
    for (size_t i = 0; i < SLOT_WORDS; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_ACQUIRE);
}

static void words_store(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&dst[i], src[i], __ATOMIC_RELEASE);
}

/* Makes a copied slot safe to use whatever the segment held: strings terminated, enums in range. */
static void slot_sanitize(struct fleet_slot *s)
{
    s->id[FLEET_ID_MAX - 1] = '\0';
    s->address[FLEET_ADDR_MAX - 1] = '\0';
    if (s->lifecycle >= FLEET_LIFECYCLE_COUNT)
        s->lifecycle = FLEET_PENDING;
    if (s->health >= FLEET_HEALTH_COUNT)
        s->health = FLEET_HEALTH_UNKNOWN;
}

/* Payload of a slot read under the mutex (no concurrent writer). */
static void slot_get_locked(const struct shslot *sl, struct fleet_slot *out)
{
    uint64_t w[SLOT_WORDS];
    words_load(sl->words, w);
    memcpy(out, w, sizeof(*out));
}

/*
 * Publishes new content of slot index: sequence odd, words, sequence even.
 * Works from an odd sequence too (recovery of an interrupted write).
 */
static void slot_publish(struct fleet *f, uint32_t index, const uint64_t *w, uint32_t hash)
{
    struct shslot *sl = &f->slots[index];
    uint32_t seq = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
    if (!(seq & 1u)) {
        seq++;
        __atomic_store_n(&sl->seq, seq, __ATOMIC_RELAXED);
    }
    if (fleet__crash_point == 2) {
        words_store(sl->words, w, SLOT_WORDS / 2);
        raise(SIGKILL);
    }
    __atomic_store_n(&sl->idhash, hash, __ATOMIC_RELAXED);
    words_store(sl->words, w, SLOT_WORDS);
    __atomic_store_n(&sl->seq, seq + 1, __ATOMIC_RELEASE);
}

/* Writes slot index under the mutex, through the redo journal. */
static void slot_write(struct fleet *f, uint32_t index, const struct fleet_slot *s)
{
    uint64_t w[SLOT_WORDS];
    memcpy(w, s, sizeof(w));
    uint32_t hash = s->lifecycle == FLEET_FREE ? 0 : id_hash(s->id);
    struct shhdr *h = f->hdr;
    words_store(h->j_words, w, SLOT_WORDS);
    __atomic_store_n(&h->j_index, index, __ATOMIC_RELAXED);
    __atomic_store_n(&h->j_hash, hash, __ATOMIC_RELAXED);
    __atomic_store_n(&h->j_valid, 1u, __ATOMIC_RELEASE);
    if (fleet__crash_point == 1)
        raise(SIGKILL);
    slot_publish(f, index, w, hash);
    __atomic_store_n(&h->j_valid, 0u, __ATOMIC_RELEASE);
}

/*
 * Called with the mutex held after its previous owner died: replays the
 * journal, repairs slots left mid-write without one, recounts. Everything
 * read here comes from the segment and is checked before use.
 */
static void recover(struct fleet *f)
{
    struct shhdr *h = f->hdr;
    unsigned replayed = 0, repaired = 0;
    if (__atomic_load_n(&h->j_valid, __ATOMIC_ACQUIRE)) {
        uint32_t idx = __atomic_load_n(&h->j_index, __ATOMIC_RELAXED);
        if (idx < cap_now(f)) {
            uint64_t w[SLOT_WORDS];
            struct fleet_slot s;
            words_load(h->j_words, w);
            memcpy(&s, w, sizeof(s));
            slot_sanitize(&s);
            s.index = idx;
            if (s.lifecycle != FLEET_FREE && s.id[0] == '\0')
                s.lifecycle = FLEET_FREE;
            memcpy(w, &s, sizeof(w));
            slot_publish(f, idx, w, s.lifecycle == FLEET_FREE ? 0 : id_hash(s.id));
            replayed = 1;
        }
        __atomic_store_n(&h->j_valid, 0u, __ATOMIC_RELEASE);
    }
    uint32_t used = 0;
    for (uint32_t i = 0, cap = cap_now(f); i < cap; i++) {
        struct shslot *sl = &f->slots[i];
        struct fleet_slot s;
        slot_get_locked(sl, &s);
        struct fleet_slot orig = s;
        uint32_t seq = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
        slot_sanitize(&s);
        s.index = i;
        if (s.lifecycle != FLEET_FREE && s.id[0] == '\0')
            s.lifecycle = FLEET_FREE;
        uint32_t hash = s.lifecycle == FLEET_FREE ? 0 : id_hash(s.id);
        /* the bytes are what the shared words hold: a byte that differs (even padding) is worth
           a republish, which is idempotent */
        // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): bytes on purpose, see above
        if ((seq & 1u) || memcmp(&s, &orig, sizeof(s)) != 0 ||
            __atomic_load_n(&sl->idhash, __ATOMIC_RELAXED) != hash) {
            uint64_t w[SLOT_WORDS];
            memcpy(w, &s, sizeof(w));
            slot_publish(f, i, w, hash);
            repaired++;
        }
        if (s.lifecycle != FLEET_FREE)
            used++;
    }
    h->used = used;
    if (h->next_hint >= cap_now(f))
        h->next_hint = 0;
    __atomic_fetch_add(&h->membership_gen, 1, __ATOMIC_RELEASE);
    log_warn("fleet table: recovered the lock of a dead writer (journal replayed: %u, slots "
             "repaired: %u, in use: %u)",
             replayed, repaired, used);
}

static int lock(struct fleet *f)
{
    int rc = pthread_mutex_lock(&f->hdr->lock);
    if (rc == EOWNERDEAD) {
        recover(f);
        rc = pthread_mutex_consistent(&f->hdr->lock);
    }
    if (rc) {
        errno = rc;
        return FLEET_ESYS;
    }
    return 0;
}

static void unlock(struct fleet *f)
{
    pthread_mutex_unlock(&f->hdr->lock);
}

/*
 * Lock-free consistent copy of slot index. Returns 0, or FLEET_ENOENT when
 * free. After READ_SPINS failed attempts (a writer died mid-write, or is
 * descheduled) it takes the mutex once, which recovers a dead writer.
 */
static int slot_read(const struct fleet *cf, uint32_t index, struct fleet_slot *out)
{
    struct fleet *f = (struct fleet *)cf; /* the mapping is writable; only recovery writes */
    struct shslot *sl = &f->slots[index];
    uint64_t w[SLOT_WORDS];
    for (unsigned spin = 0;; spin++) {
        uint32_t s1 = __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE);
        if (!(s1 & 1u)) {
            words_load(sl->words, w);
            uint32_t s2 = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
            if (s1 == s2)
                break;
        }
        if (spin > 0 && spin % READ_SPINS == 0) {
            if (lock(f) == 0)
                unlock(f);
        } else if (spin > 16) {
            sched_yield();
        }
    }
    memcpy(out, w, sizeof(*out));
    if (out->lifecycle == FLEET_FREE)
        return FLEET_ENOENT;
    slot_sanitize(out);
    out->index = index;
    return 0;
}

/* ---- open / close --------------------------------------------------------------------------- */

/* Address space mapped for a table of cap slots: room for it to grow to FLEET_MAX_SLOTS. */
static uint32_t reserve_for(uint32_t cap)
{
    return cap > FLEET_MAX_SLOTS ? cap : FLEET_MAX_SLOTS;
}

/*
 * Gives the segment the size of cap slots, with its pages allocated (tmpfs
 * full is an error here, not a SIGBUS at the first write to a slot).
 */
static int size_segment(int fd, uint32_t cap)
{
    size_t size = seg_size(cap);
    if (ftruncate(fd, (off_t)size) == -1)
        return FLEET_ESYS;
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        errno = rc;
        return FLEET_ESYS;
    }
    return 0;
}

/* Zeroed payloads with their index, for slots [from, to) of a zero-filled segment. */
static void init_slots(struct shslot *slots, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        struct fleet_slot s;
        memset(&s, 0, sizeof(s));
        s.index = i;
        memcpy(slots[i].words, &s, sizeof(s));
    }
}

static int init_segment(int fd, uint32_t cap, struct fleet *f)
{
    size_t size = seg_size(cap), map = seg_size(reserve_for(cap));
    int src = size_segment(fd, cap);
    if (src != 0)
        return src;
    void *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return FLEET_ESYS;
    struct shhdr *h = m;
    /* ftruncate zero-filled everything: free slots, sequence 0, generation 0. */
    h->layout = FLEET_LAYOUT;
    h->capacity = cap;
    h->slot_size = (uint32_t)sizeof(struct shslot);
    h->mutex_size = (uint32_t)sizeof(pthread_mutex_t);
    h->total_size = size;
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (!rc)
        rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (!rc)
        rc = pthread_mutex_init(&h->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc) {
        munmap(m, map);
        errno = rc;
        return FLEET_ESYS;
    }
    struct shslot *slots = (struct shslot *)((char *)m + HDR_SIZE);
    init_slots(slots, 0, cap);
    __atomic_store_n(&h->magic, FLEET_MAGIC, __ATOMIC_RELAXED);
    __atomic_store_n(&h->ready, 1u, __ATOMIC_RELEASE);
    f->hdr = h;
    f->slots = slots;
    f->reserve_cap = reserve_for(cap);
    f->map_size = map;
    return 0;
}

/* Maps an existing segment after its creator has finished; validates everything. */
static int attach_segment(int fd, struct fleet *f)
{
    int64_t waited = 0;
    struct stat st;
    for (;;) {
        if (fstat(fd, &st) == -1)
            return FLEET_ESYS;
        if ((size_t)st.st_size >= HDR_SIZE)
            break;
        if (waited >= OPEN_WAIT_MS) {
            errno = ETIMEDOUT;
            return FLEET_ESYS;
        }
        sleep_ms(1);
        waited++;
    }
    struct shhdr *h = mmap(NULL, HDR_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED)
        return FLEET_ESYS;
    while (__atomic_load_n(&h->ready, __ATOMIC_ACQUIRE) != 1u) {
        if (waited >= OPEN_WAIT_MS) {
            munmap(h, HDR_SIZE);
            errno = ETIMEDOUT;
            return FLEET_ESYS;
        }
        sleep_ms(1);
        waited++;
    }
    uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_RELAXED);
    uint32_t layout = h->layout, cap = h->capacity;
    uint32_t slot_size = h->slot_size, mutex_size = h->mutex_size;
    uint64_t total = h->total_size;
    munmap(h, HDR_SIZE);
    /* total and capacity may be read across a concurrent fleet_grow(): only the file must
       hold what the capacity read says */
    (void)total;
    if (magic != FLEET_MAGIC || layout != FLEET_LAYOUT || slot_size != sizeof(struct shslot) ||
        mutex_size != sizeof(pthread_mutex_t) || cap == 0 || cap > FLEET_MAX_CAP)
        return FLEET_EVERSION;
    if (fstat(fd, &st) == -1)
        return FLEET_ESYS;
    if ((uint64_t)st.st_size < seg_size(cap))
        return FLEET_EVERSION;
    size_t map = seg_size(reserve_for(cap));
    void *m = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return FLEET_ESYS;
    f->hdr = m;
    f->slots = (struct shslot *)((char *)m + HDR_SIZE);
    f->reserve_cap = reserve_for(cap);
    f->map_size = map;
    return 0;
}

int fleet_open(const char *name, uint32_t capacity, int create, struct fleet **out)
{
    if (!name_valid(name) || !out || capacity > FLEET_MAX_CAP)
        return FLEET_EINVAL;
    if (capacity == 0)
        capacity = FLEET_DEFAULT_CAP;
    char path[FLEET_NAME_MAX + 16];
    shm_path(name, path, sizeof(path));
    struct fleet *f = calloc(1, sizeof(*f));
    if (!f) {
        errno = ENOMEM;
        return FLEET_ESYS;
    }
    int rc = FLEET_ESYS, fd = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (create) {
            fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
            if (fd >= 0) {
                rc = init_segment(fd, capacity, f);
                if (rc) {
                    int e = errno;
                    shm_unlink(path);
                    errno = e;
                }
                goto out;
            }
            if (errno != EEXIST)
                goto out;
        }
        fd = shm_open(path, O_RDWR, 0);
        if (fd < 0) {
            if (errno == ENOENT && create)
                continue; /* unlinked between our two opens: race again */
            rc = errno == ENOENT ? FLEET_ENOENT : FLEET_ESYS;
            goto out;
        }
        rc = attach_segment(fd, f);
        if (rc == FLEET_ESYS && errno == ETIMEDOUT && create && attempt == 0) {
            /* the creator died before finishing: the segment is unusable, replace it */
            log_warn("fleet table \"%s\": segment never became ready, recreating it", name);
            shm_unlink(path);
            close(fd);
            fd = -1;
            continue;
        }
        goto out;
    }
out:
    if (rc) {
        if (fd >= 0) {
            int e = errno;
            close(fd);
            errno = e;
        }
        free(f);
        return rc;
    }
    f->fd = fd;
    *out = f;
    return 0;
}

void fleet_close(struct fleet *f)
{
    if (!f)
        return;
    munmap(f->hdr, f->map_size);
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

int fleet_unlink(const char *name)
{
    if (!name_valid(name))
        return FLEET_EINVAL;
    char path[FLEET_NAME_MAX + 16];
    shm_path(name, path, sizeof(path));
    if (shm_unlink(path) == -1)
        return errno == ENOENT ? FLEET_ENOENT : FLEET_ESYS;
    return 0;
}

uint32_t fleet_capacity(const struct fleet *f)
{
    return cap_now(f);
}

int fleet_grow(struct fleet *f, uint32_t capacity)
{
    if (!f || capacity == 0)
        return FLEET_EINVAL;
    if (capacity <= cap_now(f))
        return 0;
    if (capacity > f->reserve_cap)
        return FLEET_ETOOBIG;
    int rc = lock(f);
    if (rc)
        return rc;
    uint32_t cur = cap_now(f);
    if (capacity > cur) {
        rc = size_segment(f->fd, capacity);
        if (rc == 0) {
            init_slots(f->slots, cur, capacity);
            __atomic_store_n(&f->hdr->total_size, seg_size(capacity), __ATOMIC_RELAXED);
            __atomic_store_n(&f->hdr->capacity, capacity, __ATOMIC_RELEASE);
            __atomic_fetch_add(&f->hdr->membership_gen, 1, __ATOMIC_RELEASE);
        }
    }
    unlock(f);
    return rc;
}

uint64_t fleet_membership_gen(const struct fleet *f)
{
    return __atomic_load_n(&f->hdr->membership_gen, __ATOMIC_ACQUIRE);
}

/* ---- slots ---------------------------------------------------------------------------------- */

/*
 * Index of id among used slots. locked: the caller holds the mutex (plain
 * copies, no sequence retries that could wait on ourselves).
 */
static int find_slot(const struct fleet *f, const char *id, uint32_t hash, int locked,
                     uint32_t *index_out)
{
    for (uint32_t i = 0, cap = cap_now(f); i < cap; i++) {
        if (__atomic_load_n(&f->slots[i].idhash, __ATOMIC_RELAXED) != hash)
            continue;
        struct fleet_slot s;
        int rc;
        if (locked) {
            slot_get_locked(&f->slots[i], &s);
            slot_sanitize(&s);
            rc = s.lifecycle == FLEET_FREE ? FLEET_ENOENT : 0;
        } else {
            rc = slot_read(f, i, &s);
        }
        if (rc == 0 && strcmp(s.id, id) == 0) {
            *index_out = i;
            return 0;
        }
    }
    return FLEET_ENOENT;
}

int fleet_alloc(struct fleet *f, const char *id, const char *address, int64_t launched_at_ms,
                uint32_t *index_out)
{
    if (!f || !id || !id[0] || strlen(id) >= FLEET_ID_MAX)
        return FLEET_EINVAL;
    if (!address)
        address = "";
    if (strlen(address) >= FLEET_ADDR_MAX)
        return FLEET_EINVAL;
    uint32_t hash = id_hash(id), idx;
    int rc = lock(f);
    if (rc)
        return rc;
    if (find_slot(f, id, hash, 1, &idx) == 0) {
        rc = FLEET_EEXIST;
        goto out;
    }
    struct shhdr *h = f->hdr;
    uint32_t cap = cap_now(f);
    uint32_t start = h->next_hint < cap ? h->next_hint : 0;
    rc = FLEET_EFULL;
    for (uint32_t k = 0; k < cap; k++) {
        uint32_t i = (start + k) % cap;
        if (__atomic_load_n(&f->slots[i].idhash, __ATOMIC_RELAXED) != 0)
            continue;
        struct fleet_slot s;
        slot_get_locked(&f->slots[i], &s);
        if (s.lifecycle != FLEET_FREE)
            continue; /* inconsistent hash: leave it for recovery, never overwrite */
        uint32_t gen = s.generation + 1;
        memset(&s, 0, sizeof(s));
        s.index = i;
        s.generation = gen ? gen : 1;
        snprintf(s.id, sizeof(s.id), "%s", id);
        snprintf(s.address, sizeof(s.address), "%s", address);
        s.lifecycle = FLEET_PENDING;
        s.health = FLEET_HEALTH_UNKNOWN;
        s.launched_at_ms = launched_at_ms;
        s.load = -1;
        s.cpu_pct = -1;
        s.mem_pct = -1;
        s.load1 = -1;
        slot_write(f, i, &s);
        h->used++;
        h->next_hint = (i + 1) % cap;
        __atomic_fetch_add(&h->membership_gen, 1, __ATOMIC_RELEASE);
        if (index_out)
            *index_out = i;
        rc = 0;
        break;
    }
out:
    unlock(f);
    return rc;
}

/* Checks (index, generation) under the mutex; fills *cur with the live slot. */
static int live_slot(struct fleet *f, uint32_t index, uint32_t generation, struct fleet_slot *cur)
{
    if (index >= cap_now(f))
        return FLEET_EINVAL;
    slot_get_locked(&f->slots[index], cur);
    if (cur->lifecycle == FLEET_FREE || cur->generation != generation)
        return FLEET_ESTALE;
    slot_sanitize(cur);
    cur->index = index;
    return 0;
}

int fleet_free(struct fleet *f, uint32_t index, uint32_t generation)
{
    if (!f)
        return FLEET_EINVAL;
    int rc = lock(f);
    if (rc)
        return rc;
    struct fleet_slot s;
    rc = live_slot(f, index, generation, &s);
    if (rc)
        goto out;
    memset(&s, 0, sizeof(s));
    s.index = index;
    s.generation = generation;
    s.lifecycle = FLEET_FREE;
    slot_write(f, index, &s);
    if (f->hdr->used > 0)
        f->hdr->used--;
    __atomic_fetch_add(&f->hdr->membership_gen, 1, __ATOMIC_RELEASE);
out:
    unlock(f);
    return rc;
}

int fleet_find(const struct fleet *f, const char *id, uint32_t *index_out)
{
    if (!f || !id || !id[0] || strlen(id) >= FLEET_ID_MAX)
        return FLEET_EINVAL;
    uint32_t idx;
    int rc = find_slot(f, id, id_hash(id), 0, &idx);
    if (rc == 0 && index_out)
        *index_out = idx;
    return rc;
}

int fleet_read(const struct fleet *f, uint32_t index, struct fleet_slot *out)
{
    if (!f || !out || index >= cap_now(f))
        return FLEET_EINVAL;
    struct fleet_slot s;
    int rc = slot_read(f, index, &s);
    if (rc)
        return rc;
    *out = s;
    return 0;
}

size_t fleet_snapshot(const struct fleet *f, struct fleet_slot *out, size_t max)
{
    if (!f)
        return 0;
    size_t n = 0;
    for (uint32_t i = 0, cap = cap_now(f); i < cap; i++) {
        if (__atomic_load_n(&f->slots[i].idhash, __ATOMIC_RELAXED) == 0)
            continue;
        struct fleet_slot s;
        if (slot_read(f, i, &s) != 0)
            continue;
        if (n < max && out)
            out[n] = s;
        n++;
    }
    return n;
}

int fleet_update(struct fleet *f, uint32_t index, uint32_t generation,
                 void (*fn)(struct fleet_slot *slot, void *arg), void *arg)
{
    if (!f || !fn)
        return FLEET_EINVAL;
    int rc = lock(f);
    if (rc)
        return rc;
    struct fleet_slot cur, next;
    rc = live_slot(f, index, generation, &cur);
    if (rc)
        goto out;
    next = cur;
    fn(&next, arg);
    if (next.index != cur.index || next.generation != cur.generation ||
        memcmp(next.id, cur.id, sizeof(cur.id)) != 0 || next.lifecycle == FLEET_FREE ||
        next.lifecycle >= FLEET_LIFECYCLE_COUNT || next.health >= FLEET_HEALTH_COUNT) {
        rc = FLEET_EINVAL; /* the contract forbids these changes: publish nothing */
        goto out;
    }
    next.address[FLEET_ADDR_MAX - 1] = '\0';
    slot_write(f, index, &next);
out:
    unlock(f);
    return rc;
}

void fleet_heartbeat(struct fleet *f, int role, int64_t now_ms)
{
    if (!f || role < 0 || role > 1)
        return;
    __atomic_store_n(&f->hdr->heartbeat[role], now_ms, __ATOMIC_RELEASE);
}

int64_t fleet_last_heartbeat(const struct fleet *f, int role)
{
    if (!f || role < 0 || role > 1)
        return 0;
    return __atomic_load_n(&f->hdr->heartbeat[role], __ATOMIC_ACQUIRE);
}

void fleet_set_launching(struct fleet *f, int64_t until_mono_ms)
{
    if (!f)
        return;
    uint32_t s = 0;
    if (until_mono_ms > 0) {
        int64_t secs = until_mono_ms / 1000 + (until_mono_ms % 1000 != 0); /* never early */
        s = secs > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)secs;
    }
    /* release: a reader that sees the window closed also sees the slots allocated before */
    __atomic_store_n(&f->hdr->launching_until_s, s, __ATOMIC_RELEASE);
}

int fleet_launching(const struct fleet *f, int64_t now_mono_ms)
{
    if (!f)
        return 0;
    uint32_t s = __atomic_load_n(&f->hdr->launching_until_s, __ATOMIC_ACQUIRE);
    return s != 0 && now_mono_ms < (int64_t)s * 1000;
}

/* ---- names ---------------------------------------------------------------------------------- */

static const char *const lifecycle_names[] = {
    [FLEET_FREE] = "free",
    [FLEET_PENDING] = "pending",
    [FLEET_IN_SERVICE] = "in-service",
    [FLEET_TERMINATING] = "terminating",
    [FLEET_PENDING_WAIT] = "pending:wait",
    [FLEET_TERMINATING_WAIT] = "terminating:wait",
    [FLEET_STANDBY] = "standby",
};
_Static_assert(sizeof(lifecycle_names) / sizeof(lifecycle_names[0]) == FLEET_LIFECYCLE_COUNT,
               "lifecycle names");

static const char *const health_names[] = {
    [FLEET_HEALTH_UNKNOWN] = "unknown",
    [FLEET_HEALTH_HEALTHY] = "healthy",
    [FLEET_HEALTH_UNHEALTHY] = "unhealthy",
    [FLEET_HEALTH_DEREGISTERED] = "deregistered",
};
_Static_assert(sizeof(health_names) / sizeof(health_names[0]) == FLEET_HEALTH_COUNT,
               "health names");

const char *fleet_lifecycle_name(int lifecycle)
{
    if (lifecycle < 0 || lifecycle >= FLEET_LIFECYCLE_COUNT)
        return "invalid";
    return lifecycle_names[lifecycle];
}

int fleet_lifecycle_parse(const char *name)
{
    for (int i = FLEET_PENDING; name && i < FLEET_LIFECYCLE_COUNT; i++)
        if (strcmp(name, lifecycle_names[i]) == 0)
            return i;
    return -1;
}

const char *fleet_health_name(int health)
{
    if (health < 0 || health >= FLEET_HEALTH_COUNT)
        return "invalid";
    return health_names[health];
}

const char *fleet_strerror(int code)
{
    switch (code) {
    case FLEET_OK:
        return "success";
    case FLEET_ENOENT:
        return "no such instance or segment";
    case FLEET_EEXIST:
        return "instance already has a slot";
    case FLEET_EFULL:
        return "fleet table is full";
    case FLEET_ESTALE:
        return "slot was freed or reused (stale generation)";
    case FLEET_EINVAL:
        return "invalid argument";
    case FLEET_ESYS:
        return "system call failed";
    case FLEET_EVERSION:
        return "segment has another layout version";
    case FLEET_ETOOBIG:
        return "capacity above what the table can grow to";
    default:
        return "unknown error";
    }
}

/* ---- test hooks and invariants -------------------------------------------------------------- */

int fleet__lock_for_test(struct fleet *f)
{
    return lock(f);
}

int fleet__unlock_for_test(struct fleet *f)
{
    return pthread_mutex_unlock(&f->hdr->lock) ? FLEET_ESYS : 0;
}

uint32_t fleet__seq(const struct fleet *f, uint32_t index)
{
    if (index >= cap_now(f))
        return 0;
    return __atomic_load_n(&f->slots[index].seq, __ATOMIC_ACQUIRE);
}

int fleet__check(struct fleet *f, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    int rc = lock(f);
    if (rc) {
        snprintf(err, errlen, "cannot lock: %s", strerror(errno));
        return rc;
    }
    rc = FLEET_EINVAL;
    uint32_t used = 0;
    if (__atomic_load_n(&f->hdr->j_valid, __ATOMIC_ACQUIRE)) {
        snprintf(err, errlen, "journal left open");
        goto out;
    }
    for (uint32_t i = 0, cap = cap_now(f); i < cap; i++) {
        const struct shslot *sl = &f->slots[i];
        struct fleet_slot s;
        slot_get_locked(sl, &s);
        uint32_t seq = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
        uint32_t hash = __atomic_load_n(&sl->idhash, __ATOMIC_RELAXED);
        if (seq & 1u) {
            snprintf(err, errlen, "slot %u: odd sequence %u", i, seq);
            goto out;
        }
        if (s.index != i) {
            snprintf(err, errlen, "slot %u: holds index %u", i, s.index);
            goto out;
        }
        if (s.lifecycle >= FLEET_LIFECYCLE_COUNT || s.health >= FLEET_HEALTH_COUNT) {
            snprintf(err, errlen, "slot %u: lifecycle %u / health %u out of range", i, s.lifecycle,
                     s.health);
            goto out;
        }
        if (s.lifecycle == FLEET_FREE) {
            if (hash != 0 || s.id[0] != '\0') {
                snprintf(err, errlen, "slot %u: free but has id or hash", i);
                goto out;
            }
            continue;
        }
        used++;
        if (memchr(s.id, '\0', sizeof(s.id)) == NULL || s.id[0] == '\0' ||
            memchr(s.address, '\0', sizeof(s.address)) == NULL) {
            snprintf(err, errlen, "slot %u: id or address not terminated or empty", i);
            goto out;
        }
        if (hash != id_hash(s.id)) {
            snprintf(err, errlen, "slot %u: id hash does not match \"%s\"", i, s.id);
            goto out;
        }
        if (s.generation == 0) {
            snprintf(err, errlen, "slot %u: used with generation 0", i);
            goto out;
        }
        for (uint32_t j = i + 1, cap2 = cap_now(f); j < cap2; j++) {
            if (__atomic_load_n(&f->slots[j].idhash, __ATOMIC_RELAXED) != hash)
                continue;
            struct fleet_slot o;
            slot_get_locked(&f->slots[j], &o);
            o.id[FLEET_ID_MAX - 1] = '\0';
            if (o.lifecycle != FLEET_FREE && strcmp(o.id, s.id) == 0) {
                snprintf(err, errlen, "slots %u and %u: both hold \"%s\"", i, j, s.id);
                goto out;
            }
        }
    }
    if (used != f->hdr->used) {
        snprintf(err, errlen, "used count %u but %u slots in use", f->hdr->used, used);
        goto out;
    }
    rc = 0;
out:
    unlock(f);
    return rc;
}
