/*
 * store.c - asgd's durable state over SQLite (contract in store.h).
 *
 * Workload: a handful of writes per controller tick at most (an activity, a
 * lifecycle change, one metric batch every history period), reads when the
 * controller starts, when settings change and when the dashboard asks. So
 * every write is its own durable transaction (WAL, synchronous=FULL: a launch
 * intent must be on disk before the cloud is called), statements are
 * prepared once per handle and reused, and nothing here is optimised beyond
 * using an index for each query.
 *
 * Schema changes are ordered migrations (migrations[] below, one SQL script
 * per version, applied inside one IMMEDIATE transaction with the version
 * bump, so two processes opening the same new database cannot both apply
 * them). Group policy and health settings are JSON text so that a new policy
 * parameter does not need a migration; missing keys take the policy's
 * defaults. No foreign keys are declared in v1 (the pragma is on for later
 * versions): rows come from independent components in any order, and a
 * refused metric batch for an instance the store has not heard of yet would
 * lose data for nothing.
 *
 * Text read back is copied into the caller's bounded fields (truncated,
 * always terminated) or malloc'd; nothing read from the file is trusted to
 * fit or to parse.
 */
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define BUSY_TIMEOUT_MS 5000
#define ACTIVITY_LIMIT  10000
#define METRIC_ROWS_MAX 1000000

/* ---- schema --------------------------------------------------------------------------------- */

static const char *const migrations[] = {
    /* v1 */
    "CREATE TABLE groups ("
    "  name TEXT PRIMARY KEY,"
    "  min_size INTEGER NOT NULL,"
    "  max_size INTEGER NOT NULL,"
    "  desired_capacity INTEGER NOT NULL,"
    "  policy TEXT NOT NULL," /* JSON */
    "  health TEXT NOT NULL," /* JSON */
    "  revision INTEGER NOT NULL,"
    "  updated_at_ms INTEGER NOT NULL);"
    "CREATE TABLE instances ("
    "  id TEXT PRIMARY KEY,"
    "  group_name TEXT NOT NULL,"
    "  address TEXT NOT NULL DEFAULT '',"
    "  provider TEXT NOT NULL DEFAULT '',"
    "  lifecycle TEXT NOT NULL DEFAULT '',"
    "  launched_at_ms INTEGER NOT NULL DEFAULT 0,"
    "  launch_token TEXT NOT NULL DEFAULT '',"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  zone TEXT NOT NULL DEFAULT '',"
    "  created_at_ms INTEGER NOT NULL,"
    "  updated_at_ms INTEGER NOT NULL,"
    "  terminated_at_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX instances_by_group ON instances (group_name, launched_at_ms);"
    "CREATE TABLE launch_intents ("
    "  token TEXT PRIMARY KEY,"
    "  group_name TEXT NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  created_at_ms INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('open', 'done', 'failed')),"
    "  instance_ids TEXT NOT NULL DEFAULT '[]',"
    "  updated_at_ms INTEGER NOT NULL);"
    "CREATE INDEX intents_by_state ON launch_intents (state, group_name, created_at_ms);"
    "CREATE TABLE activities ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  group_name TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  cause TEXT NOT NULL DEFAULT '',"
    "  from_count INTEGER NOT NULL DEFAULT 0,"
    "  to_count INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT NOT NULL DEFAULT '',"
    "  detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX activities_by_group ON activities (group_name, id);"
    "CREATE TABLE metrics_group ("
    "  group_name TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  avg_load REAL NOT NULL,"
    "  in_service INTEGER NOT NULL,"
    "  desired INTEGER NOT NULL);"
    "CREATE INDEX metrics_group_by_group ON metrics_group (group_name, at_ms);"
    "CREATE INDEX metrics_group_by_time ON metrics_group (at_ms);"
    "CREATE TABLE metrics_instance ("
    "  group_name TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  instance_id TEXT NOT NULL,"
    "  load REAL NOT NULL);"
    "CREATE INDEX metrics_instance_by_group ON metrics_instance (group_name, at_ms);"
    "CREATE INDEX metrics_instance_by_id ON metrics_instance (group_name, instance_id, at_ms);"
    "CREATE INDEX metrics_instance_by_time ON metrics_instance (at_ms);",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- prepared statements -------------------------------------------------------------------- */

enum stmt_id {
    S_GROUP_GET,
    S_GROUP_REV,
    S_GROUP_PUT,
    S_GROUP_DESIRED,
    S_GROUP_NAMES,
    S_INST_PUT,
    S_INST_LIFECYCLE,
    S_INST_GET,
    S_INST_DELETE,
    S_INST_LIST,
    S_INTENT_CREATE,
    S_INTENT_COMPLETE,
    S_INTENT_OPEN,
    S_ACT_ADD,
    S_ACT_LIST,
    S_MG_ADD,
    S_MI_ADD,
    S_MG_SINCE,
    S_MI_SINCE,
    S_MG_PRUNE,
    S_MI_PRUNE,
    S_COUNT
};

#define INST_COLS                                                                                  \
    "id, group_name, address, provider, lifecycle, launched_at_ms, launch_token, pid, zone, "      \
    "created_at_ms, updated_at_ms, terminated_at_ms"

static const char *const stmt_sql[S_COUNT] = {
    [S_GROUP_GET] = "SELECT name, min_size, max_size, desired_capacity, policy, health, revision, "
                    "updated_at_ms FROM groups WHERE name = ?1",
    [S_GROUP_REV] = "SELECT revision, min_size, max_size FROM groups WHERE name = ?1",
    [S_GROUP_PUT] = "INSERT INTO groups (name, min_size, max_size, desired_capacity, policy, "
                    "health, revision, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                    "ON CONFLICT (name) DO UPDATE SET min_size = ?2, max_size = ?3, "
                    "desired_capacity = ?4, policy = ?5, health = ?6, revision = ?7, "
                    "updated_at_ms = ?8",
    [S_GROUP_DESIRED] = "UPDATE groups SET desired_capacity = ?2, revision = ?3, "
                        "updated_at_ms = ?4 WHERE name = ?1",
    [S_GROUP_NAMES] = "SELECT name FROM groups ORDER BY name",
    [S_INST_PUT] = "INSERT INTO instances (" INST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                   "?9, ?10, ?10, ?11) ON CONFLICT (id) DO UPDATE SET group_name = ?2, "
                   "address = ?3, provider = ?4, lifecycle = ?5, launched_at_ms = ?6, "
                   "launch_token = ?7, pid = ?8, zone = ?9, updated_at_ms = ?10, "
                   "terminated_at_ms = ?11",
    [S_INST_LIFECYCLE] = "UPDATE instances SET lifecycle = ?2, terminated_at_ms = CASE WHEN ?3 "
                         "!= 0 THEN ?3 ELSE terminated_at_ms END, updated_at_ms = ?4 WHERE id = ?1",
    [S_INST_GET] = "SELECT " INST_COLS " FROM instances WHERE id = ?1",
    [S_INST_DELETE] = "DELETE FROM instances WHERE id = ?1",
    [S_INST_LIST] = "SELECT " INST_COLS " FROM instances WHERE (?1 IS NULL OR group_name = ?1) "
                    "AND (?2 OR terminated_at_ms = 0) ORDER BY launched_at_ms, id",
    [S_INTENT_CREATE] = "INSERT INTO launch_intents (token, group_name, count, created_at_ms, "
                        "state, instance_ids, updated_at_ms) VALUES (?1, ?2, ?3, ?4, 'open', "
                        "'[]', ?5)",
    [S_INTENT_COMPLETE] = "UPDATE launch_intents SET state = ?2, instance_ids = ?3, "
                          "updated_at_ms = ?4 WHERE token = ?1",
    [S_INTENT_OPEN] = "SELECT token, group_name, count, created_at_ms, instance_ids FROM "
                      "launch_intents WHERE state = 'open' AND (?1 IS NULL OR group_name = ?1) "
                      "ORDER BY created_at_ms, token",
    [S_ACT_ADD] = "INSERT INTO activities (group_name, at_ms, kind, cause, from_count, to_count, "
                  "status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_ACT_LIST] = "SELECT id, group_name, at_ms, kind, cause, from_count, to_count, status, "
                   "detail FROM activities WHERE (?1 IS NULL OR group_name = ?1) AND (?2 <= 0 "
                   "OR id < ?2) ORDER BY id DESC LIMIT ?3",
    [S_MG_ADD] = "INSERT INTO metrics_group (group_name, at_ms, avg_load, in_service, desired) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_MI_ADD] = "INSERT INTO metrics_instance (group_name, at_ms, instance_id, load) VALUES "
                 "(?1, ?2, ?3, ?4)",
    [S_MG_SINCE] = "SELECT group_name, at_ms, avg_load, in_service, desired FROM (SELECT * FROM "
                   "metrics_group WHERE group_name = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC "
                   "LIMIT ?3) ORDER BY at_ms",
    [S_MI_SINCE] = "SELECT group_name, at_ms, instance_id, load FROM (SELECT * FROM "
                   "metrics_instance WHERE group_name = ?1 AND at_ms >= ?2 AND (?3 IS NULL OR "
                   "instance_id = ?3) ORDER BY at_ms DESC, instance_id DESC LIMIT ?4) ORDER BY "
                   "at_ms, instance_id",
    [S_MG_PRUNE] = "DELETE FROM metrics_group WHERE at_ms < ?1",
    [S_MI_PRUNE] = "DELETE FROM metrics_instance WHERE at_ms < ?1",
};

struct store {
    sqlite3 *db;
    char *path;
    int version;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[S_COUNT];
    char err[512];
};

/* ---- errors --------------------------------------------------------------------------------- */

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK:
        return "success";
    case STORE_ENOENT:
        return "not found";
    case STORE_EEXIST:
        return "already exists";
    case STORE_EINVAL:
        return "invalid argument";
    case STORE_ECONFLICT:
        return "changed concurrently (revision mismatch)";
    case STORE_EVERSION:
        return "database schema is newer than this asgd";
    case STORE_ECORRUPT:
        return "database is corrupt or not a database";
    case STORE_EIO:
        return "cannot read or write the database";
    case STORE_ENOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

static int set_err(struct store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(struct store *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof(st->err), fmt, ap);
    va_end(ap);
    return code;
}

static int code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return STORE_ECORRUPT;
    case SQLITE_NOMEM:
        return STORE_ENOMEM;
    case SQLITE_CONSTRAINT:
        return STORE_EEXIST;
    default:
        return STORE_EIO;
    }
}

/* Records an SQLite failure of `what` on st and returns its STORE_E* code. */
static int db_err(struct store *st, int rc, const char *what)
{
    int sys = sqlite3_system_errno(st->db);
    if (sys && (rc & 0xff) != SQLITE_CONSTRAINT)
        return set_err(st, code_of(rc), "%s: %s (%s) in \"%s\"", what, sqlite3_errmsg(st->db),
                       strerror(sys), st->path);
    return set_err(st, code_of(rc), "%s: %s in \"%s\"", what, sqlite3_errmsg(st->db), st->path);
}

const char *store_errmsg(struct store *st)
{
    if (!st)
        return "no store";
    return st->err[0] ? st->err : "no error";
}

/* ---- small helpers -------------------------------------------------------------------------- */

static void lock(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    st->err[0] = '\0';
}

static void unlock(struct store *st)
{
    pthread_mutex_unlock(&st->mu);
}

/* 1 if s is a non-NULL string shorter than size (and non-empty when required). */
static int str_ok(const char *s, size_t size, int nonempty)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, size);
    return n < size && (!nonempty || n > 0);
}

/* Copies text column col into dst[size]: truncated, always terminated. */
static void col_text(sqlite3_stmt *s, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(s, col) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

/* The cached statement id, reset and unbound; NULL with st->err set on failure. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id, int *rc_out)
{
    sqlite3_stmt *s = st->stmts[id];
    if (!s) {
        int rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
        if (rc != SQLITE_OK) {
            *rc_out = db_err(st, rc, "cannot prepare statement");
            return NULL;
        }
        st->stmts[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static int exec(struct store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : db_err(st, rc, what);
}

static int begin(struct store *st)
{
    return exec(st, "BEGIN IMMEDIATE", "cannot begin a transaction");
}

static int commit(struct store *st)
{
    return exec(st, "COMMIT", "cannot commit");
}

static void rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Steps a statement that returns no row; 0 or the mapped error. */
static int step_done(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    int out = rc == SQLITE_DONE ? 0 : db_err(st, rc, what);
    sqlite3_reset(s);
    return out;
}

/* Grows *arr (element size esz) to hold at least need elements; 0 or STORE_ENOMEM. */
static int grow(void **arr, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * esz);
    if (!p)
        return STORE_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/*
 * The shared half of every list query: steps s to its end, appending one
 * zeroed element of esz bytes per row and letting fill() read the row into it.
 * On success *arr holds *cnt elements (NULL when none). On failure the error
 * (ENOMEM, fill()'s, or the database's, described by what) is returned and
 * *arr keeps the *cnt elements read so far, for the caller's own free
 * function (elements own memory for some lists). s is reset either way.
 */
typedef int (*row_fill_fn)(struct store *st, sqlite3_stmt *s, void *elem);

static int collect_rows(struct store *st, sqlite3_stmt *s, size_t esz, row_fill_fn fill, void **arr,
                        size_t *cnt, const char *what)
{
    size_t cap = 0;
    int rc = 0, r;
    *arr = NULL;
    *cnt = 0;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        if (grow(arr, &cap, *cnt + 1, esz)) {
            rc = set_err(st, STORE_ENOMEM, "out of memory: %s", what);
            break;
        }
        void *elem = (char *)*arr + *cnt * esz;
        memset(elem, 0, esz);
        (*cnt)++;
        if ((rc = fill(st, s, elem)) != 0)
            break;
    }
    if (!rc && r != SQLITE_DONE)
        rc = db_err(st, r, what);
    sqlite3_reset(s);
    if (!rc && *cnt == 0) {
        free(*arr);
        *arr = NULL;
    }
    return rc;
}

/* ---- open / close / migrations -------------------------------------------------------------- */

static int read_version(struct store *st, int *version)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "SELECT max(version) FROM schema_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_err(st, rc, "cannot read the schema version");
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        int e = db_err(st, rc, "cannot read the schema version");
        sqlite3_finalize(s);
        return e;
    }
    *version = sqlite3_column_type(s, 0) == SQLITE_NULL ? 0 : sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return 0;
}

static int migrate(struct store *st)
{
    int rc = begin(st);
    if (rc)
        return rc;
    rc = exec(st,
              "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
              "applied_at_ms INTEGER NOT NULL)",
              "cannot create the schema version table");
    int version = 0;
    if (!rc)
        rc = read_version(st, &version);
    if (!rc && version > STORE_SCHEMA_VERSION)
        rc = set_err(st, STORE_EVERSION,
                     "database \"%s\" has schema version %d, this asgd knows versions up to %d: "
                     "use a newer asgd or another state directory",
                     st->path, version, STORE_SCHEMA_VERSION);
    if (!rc && version < 0)
        rc = set_err(st, STORE_ECORRUPT, "database \"%s\" has an invalid schema version %d",
                     st->path, version);
    for (int v = version + 1; !rc && v <= STORE_SCHEMA_VERSION; v++) {
        char what[64];
        snprintf(what, sizeof(what), "cannot migrate the schema to version %d", v);
        /* v >= 1: version >= 0 was checked above */
        /* cppcheck-suppress negativeIndex */
        rc = exec(st, migrations[v - 1], what);
        if (!rc) {
            char sql[128];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO schema_version (version, applied_at_ms) VALUES (%d, %lld)", v,
                     (long long)clk_wall_ms());
            rc = exec(st, sql, what);
        }
        if (!rc)
            log_info("store \"%s\": schema migrated to version %d", st->path, v);
    }
    if (!rc)
        rc = commit(st);
    if (rc) {
        rollback(st);
        return rc;
    }
    st->version = version > STORE_SCHEMA_VERSION ? version : STORE_SCHEMA_VERSION;
    return 0;
}

static int open_db(struct store *st, const char *dir)
{
    struct stat sb;
    if (mkdir(dir, 0700) == -1 && errno != EEXIST)
        return set_err(st, STORE_EIO, "cannot create state directory \"%s\": %s", dir,
                       strerror(errno));
    if (stat(dir, &sb) == -1)
        return set_err(st, STORE_EIO, "cannot use state directory \"%s\": %s", dir,
                       strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return set_err(st, STORE_EIO, "state directory \"%s\" is not a directory", dir);
    int rc = sqlite3_open_v2(
        st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (!st->db)
            return set_err(st, STORE_ENOMEM, "cannot open \"%s\": out of memory", st->path);
        return db_err(st, rc, "cannot open the database");
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    /*
     * The first statement reads the file: a non-database fails here. Two
     * handles switching a new file to WAL at once can each hold the lock the
     * other waits for; SQLite then answers BUSY at once instead of calling
     * the busy handler (it would deadlock), so the switch is retried here.
     */
    int64_t give_up = clk_mono_ms() + BUSY_TIMEOUT_MS;
    for (;;) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(s);
            if (rc == SQLITE_ROW) {
                const unsigned char *mode = sqlite3_column_text(s, 0);
                rc = mode && strcmp((const char *)mode, "wal") == 0 ? SQLITE_OK : -1;
            }
        }
        sqlite3_finalize(s);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        if (clk_mono_ms() >= give_up)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == -1)
        return set_err(st, STORE_EIO, "cannot switch \"%s\" to WAL mode", st->path);
    if (rc != SQLITE_OK)
        return db_err(st, rc, "cannot open the database");
    int e = exec(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", "cannot configure");
    if (e)
        return e;
    return migrate(st);
}

int store_open(const char *dir, struct store **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!dir || !*dir || !out) {
        if (err && errlen)
            snprintf(err, errlen, "store: no state directory given");
        return STORE_EINVAL;
    }
    struct store *st = calloc(1, sizeof(*st));
    if (!st) {
        if (err && errlen)
            snprintf(err, errlen, "store: out of memory");
        return STORE_ENOMEM;
    }
    int rc = pthread_mutex_init(&st->mu, NULL);
    if (rc) {
        free(st);
        if (err && errlen)
            snprintf(err, errlen, "store: cannot create a mutex: %s", strerror(rc));
        return STORE_ENOMEM;
    }
    size_t n = strlen(dir) + sizeof("/asgd.db");
    st->path = malloc(n);
    if (!st->path) {
        rc = set_err(st, STORE_ENOMEM, "store: out of memory");
        goto out;
    }
    snprintf(st->path, n, "%s/asgd.db", dir);
    rc = open_db(st, dir);
out:
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", st->err);
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmts[i]);
    if (st->db && sqlite3_close(st->db) != SQLITE_OK)
        log_warn("store \"%s\": close failed: %s", st->path ? st->path : "?",
                 sqlite3_errmsg(st->db));
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st);
}

int store_schema_version(struct store *st)
{
    return st ? st->version : 0;
}

/* ---- group settings ------------------------------------------------------------------------- */

static json_t *policy_to_json(const struct policy_settings *p)
{
    return json_pack("{s:s, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:I, s:I}", "type",
                     p->type == POLICY_TARGET ? "target" : "threshold", "up_threshold",
                     p->up_threshold, "down_threshold", p->down_threshold, "up_factor",
                     p->up_factor, "down_factor", p->down_factor, "cooldown_ms",
                     (json_int_t)p->cooldown_ms, "target", p->target, "tolerance", p->tolerance,
                     "scale_down_window_ms", (json_int_t)p->scale_down_window_ms,
                     "evaluation_period_ms", (json_int_t)p->evaluation_period_ms);
}

static json_t *health_to_json(const struct group_health *h)
{
    return json_pack("{s:s, s:I, s:I, s:i, s:i, s:I}", "type", h->type, "interval_ms",
                     (json_int_t)h->interval_ms, "timeout_ms", (json_int_t)h->timeout_ms,
                     "healthy_threshold", h->healthy_threshold, "unhealthy_threshold",
                     h->unhealthy_threshold, "grace_period_ms", (json_int_t)h->grace_period_ms);
}

/* Number member key of obj into *d when present and numeric. */
static void get_num(const json_t *obj, const char *key, double *d)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_number(v))
        *d = json_number_value(v);
}

static void get_i64(const json_t *obj, const char *key, int64_t *i)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        *i = (int64_t)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) >= -9e18 && json_real_value(v) <= 9e18)
        *i = (int64_t)json_real_value(v);
}

static void get_int(const json_t *obj, const char *key, int *i)
{
    int64_t v = *i;
    get_i64(obj, key, &v);
    if (v >= -2147483647 && v <= 2147483647)
        *i = (int)v;
}

static int policy_from_json(const char *text, struct policy_settings *p)
{
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    int t = type && strcmp(type, "target") == 0 ? POLICY_TARGET : POLICY_THRESHOLD;
    if (type && t == POLICY_THRESHOLD && strcmp(type, "threshold") != 0) {
        json_decref(o);
        return -1;
    }
    policy_settings_default(p, t);
    get_num(o, "up_threshold", &p->up_threshold);
    get_num(o, "down_threshold", &p->down_threshold);
    get_num(o, "up_factor", &p->up_factor);
    get_num(o, "down_factor", &p->down_factor);
    get_i64(o, "cooldown_ms", &p->cooldown_ms);
    get_num(o, "target", &p->target);
    get_num(o, "tolerance", &p->tolerance);
    get_i64(o, "scale_down_window_ms", &p->scale_down_window_ms);
    get_i64(o, "evaluation_period_ms", &p->evaluation_period_ms);
    json_decref(o);
    return 0;
}

static int health_from_json(const char *text, struct group_health *h)
{
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    snprintf(h->type, sizeof(h->type), "%s", type ? type : "agent");
    get_i64(o, "interval_ms", &h->interval_ms);
    get_i64(o, "timeout_ms", &h->timeout_ms);
    get_int(o, "healthy_threshold", &h->healthy_threshold);
    get_int(o, "unhealthy_threshold", &h->unhealthy_threshold);
    get_i64(o, "grace_period_ms", &h->grace_period_ms);
    json_decref(o);
    return 0;
}

static int get_settings_locked(struct store *st, const char *name, struct group_settings *out)
{
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_GROUP_GET, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_DONE) {
        rc = set_err(st, STORE_ENOENT, "group \"%s\" has no settings in \"%s\"", name, st->path);
        goto out;
    }
    if (r != SQLITE_ROW) {
        rc = db_err(st, r, "cannot read group settings");
        goto out;
    }
    struct group_settings g;
    memset(&g, 0, sizeof(g)); /* callers memcmp the policy: padding must be zero */
    col_text(s, 0, g.name, sizeof(g.name));
    g.min_size = sqlite3_column_int(s, 1);
    g.max_size = sqlite3_column_int(s, 2);
    g.desired_capacity = sqlite3_column_int(s, 3);
    if (policy_from_json((const char *)sqlite3_column_text(s, 4), &g.policy) != 0 ||
        health_from_json((const char *)sqlite3_column_text(s, 5), &g.health) != 0) {
        rc = set_err(st, STORE_ECORRUPT,
                     "group \"%s\": stored policy or health settings are not valid JSON in \"%s\"",
                     name, st->path);
        goto out;
    }
    g.revision = sqlite3_column_int64(s, 6);
    g.updated_at_ms = sqlite3_column_int64(s, 7);
    *out = g;
out:
    sqlite3_reset(s);
    return rc;
}

int store_get_settings(struct store *st, const char *name, struct group_settings *out)
{
    if (!st || !out || !str_ok(name, STORE_NAME_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = get_settings_locked(st, name, out);
    unlock(st);
    return rc;
}

/* Reads revision/min/max of name under the caller's transaction; STORE_ENOENT if absent. */
static int group_rev(struct store *st, const char *name, int64_t *rev, int *min, int *max)
{
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_GROUP_REV, &rc);
    if (!s)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        *rev = sqlite3_column_int64(s, 0);
        *min = sqlite3_column_int(s, 1);
        *max = sqlite3_column_int(s, 2);
    } else if (r == SQLITE_DONE) {
        rc = STORE_ENOENT;
    } else {
        rc = db_err(st, r, "cannot read group settings");
    }
    sqlite3_reset(s);
    return rc;
}

static int settings_valid(struct store *st, const struct group_settings *g)
{
    if (!str_ok(g->name, sizeof(g->name), 1))
        return set_err(st, STORE_EINVAL, "group name is empty or too long");
    if (g->min_size < 0 || g->min_size > g->max_size || g->desired_capacity < g->min_size ||
        g->desired_capacity > g->max_size)
        return set_err(st, STORE_EINVAL,
                       "group \"%s\": need 0 <= min (%d) <= desired (%d) <= max (%d)", g->name,
                       g->min_size, g->desired_capacity, g->max_size);
    const struct policy_settings *p = &g->policy;
    if (!isfinite(p->up_threshold) || !isfinite(p->down_threshold) || !isfinite(p->up_factor) ||
        !isfinite(p->down_factor) || !isfinite(p->target) || !isfinite(p->tolerance))
        return set_err(st, STORE_EINVAL, "group \"%s\": a policy number is not finite", g->name);
    if (g->policy.type != POLICY_THRESHOLD && g->policy.type != POLICY_TARGET)
        return set_err(st, STORE_EINVAL, "group \"%s\": unknown policy type %d", g->name,
                       g->policy.type);
    if (!str_ok(g->health.type, sizeof(g->health.type), 0))
        return set_err(st, STORE_EINVAL, "group \"%s\": health type too long", g->name);
    const struct group_health *h = &g->health;
    if (h->interval_ms < 0 || h->timeout_ms < 0 || h->grace_period_ms < 0 ||
        h->healthy_threshold < 0 || h->unhealthy_threshold < 0)
        return set_err(st, STORE_EINVAL, "group \"%s\": negative health setting", g->name);
    return 0;
}

int store_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                       int64_t *new_revision)
{
    if (!st || !g)
        return STORE_EINVAL;
    lock(st);
    char *policy = NULL, *health = NULL;
    int rc = settings_valid(st, g);
    if (rc)
        goto out;
    json_t *pj = policy_to_json(&g->policy), *hj = health_to_json(&g->health);
    policy = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    health = hj ? json_dumps(hj, JSON_COMPACT) : NULL;
    json_decref(pj);
    json_decref(hj);
    if (!policy || !health) {
        rc = set_err(st, STORE_ENOMEM, "cannot encode settings of group \"%s\"", g->name);
        goto out;
    }
    rc = begin(st);
    if (rc)
        goto out;
    int64_t rev = 0;
    int mn, mx;
    rc = group_rev(st, g->name, &rev, &mn, &mx);
    if (rc == STORE_ENOENT) {
        rev = 0;
        rc = 0;
    }
    if (rc)
        goto out;
    if (expect_revision >= 0 && expect_revision != rev) {
        rc = set_err(st, STORE_ECONFLICT,
                     "settings of group \"%s\" are at revision %lld, not %lld: reload and retry",
                     g->name, (long long)rev, (long long)expect_revision);
        goto out;
    }
    sqlite3_stmt *s = stmt(st, S_GROUP_PUT, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, g->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, g->min_size);
    sqlite3_bind_int(s, 3, g->max_size);
    sqlite3_bind_int(s, 4, g->desired_capacity);
    sqlite3_bind_text(s, 5, policy, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, health, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, rev + 1);
    sqlite3_bind_int64(s, 8, clk_wall_ms());
    rc = step_done(st, s, "cannot write group settings");
    if (!rc)
        rc = commit(st);
    if (!rc && new_revision)
        *new_revision = rev + 1;
out:
    if (rc)
        rollback(st);
    free(policy);
    free(health);
    unlock(st);
    return rc;
}

int store_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision)
{
    if (!st || !str_ok(name, STORE_NAME_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = begin(st);
    if (rc)
        goto out;
    int64_t rev;
    int mn, mx;
    rc = group_rev(st, name, &rev, &mn, &mx);
    if (rc == STORE_ENOENT)
        set_err(st, rc, "group \"%s\" has no settings in \"%s\"", name, st->path);
    if (rc)
        goto out;
    if (desired < mn || desired > mx) {
        rc = set_err(st, STORE_EINVAL, "group \"%s\": desired %d is outside [%d, %d]", name,
                     desired, mn, mx);
        goto out;
    }
    sqlite3_stmt *s = stmt(st, S_GROUP_DESIRED, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, desired);
    sqlite3_bind_int64(s, 3, rev + 1);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = step_done(st, s, "cannot write desired capacity");
    if (!rc)
        rc = commit(st);
    if (!rc && new_revision)
        *new_revision = rev + 1;
out:
    if (rc)
        rollback(st);
    unlock(st);
    return rc;
}

void store_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int fill_group_name(struct store *st, sqlite3_stmt *s, void *elem)
{
    char name[STORE_NAME_MAX];
    col_text(s, 0, name, sizeof(name));
    if ((*(char **)elem = strdup(name)) == NULL)
        return set_err(st, STORE_ENOMEM, "out of memory listing groups");
    return 0;
}

int store_list_groups(struct store *st, char ***names, size_t *n)
{
    if (!st || !names || !n)
        return STORE_EINVAL;
    lock(st);
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_GROUP_NAMES, &rc);
    if (s)
        rc = collect_rows(st, s, sizeof(char *), fill_group_name, &arr, &cnt, "cannot list groups");
    if (rc) {
        store_names_free(arr, cnt);
    } else {
        *names = arr;
        *n = cnt;
    }
    unlock(st);
    return rc;
}

/* ---- instances ------------------------------------------------------------------------------ */

static int instance_valid(struct store *st, const struct store_instance *in)
{
    if (!str_ok(in->id, sizeof(in->id), 1) || !str_ok(in->group, sizeof(in->group), 1))
        return set_err(st, STORE_EINVAL, "instance id and group must be non-empty and fit");
    if (!str_ok(in->address, sizeof(in->address), 0) ||
        !str_ok(in->provider, sizeof(in->provider), 0) ||
        !str_ok(in->lifecycle, sizeof(in->lifecycle), 0) ||
        !str_ok(in->launch_token, sizeof(in->launch_token), 0) ||
        !str_ok(in->zone, sizeof(in->zone), 0))
        return set_err(st, STORE_EINVAL, "instance \"%s\": a text field is not terminated", in->id);
    return 0;
}

int store_put_instance(struct store *st, const struct store_instance *in)
{
    if (!st || !in)
        return STORE_EINVAL;
    lock(st);
    int rc = instance_valid(st, in);
    if (rc)
        goto out;
    sqlite3_stmt *s = stmt(st, S_INST_PUT, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, in->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, in->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, in->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, in->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, in->lifecycle, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, in->launched_at_ms);
    sqlite3_bind_text(s, 7, in->launch_token, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 8, in->pid);
    sqlite3_bind_text(s, 9, in->zone, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, clk_wall_ms());
    sqlite3_bind_int64(s, 11, in->terminated_at_ms);
    rc = step_done(st, s, "cannot write instance");
out:
    unlock(st);
    return rc;
}

int store_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                                 int64_t terminated_at_ms)
{
    if (!st || !str_ok(id, STORE_ID_MAX, 1) || !str_ok(lifecycle, STORE_SHORT_MAX, 0))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_INST_LIFECYCLE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, lifecycle, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, terminated_at_ms);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = step_done(st, s, "cannot update instance");
    if (!rc && sqlite3_changes(st->db) == 0)
        rc = set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
out:
    unlock(st);
    return rc;
}

static void row_instance(sqlite3_stmt *s, struct store_instance *o)
{
    memset(o, 0, sizeof(*o));
    col_text(s, 0, o->id, sizeof(o->id));
    col_text(s, 1, o->group, sizeof(o->group));
    col_text(s, 2, o->address, sizeof(o->address));
    col_text(s, 3, o->provider, sizeof(o->provider));
    col_text(s, 4, o->lifecycle, sizeof(o->lifecycle));
    o->launched_at_ms = sqlite3_column_int64(s, 5);
    col_text(s, 6, o->launch_token, sizeof(o->launch_token));
    o->pid = sqlite3_column_int(s, 7);
    col_text(s, 8, o->zone, sizeof(o->zone));
    o->created_at_ms = sqlite3_column_int64(s, 9);
    o->updated_at_ms = sqlite3_column_int64(s, 10);
    o->terminated_at_ms = sqlite3_column_int64(s, 11);
}

int store_get_instance(struct store *st, const char *id, struct store_instance *out)
{
    if (!st || !out || !str_ok(id, STORE_ID_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_INST_GET, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        row_instance(s, out);
    else if (r == SQLITE_DONE)
        rc = set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
    else
        rc = db_err(st, r, "cannot read instance");
    sqlite3_reset(s);
out:
    unlock(st);
    return rc;
}

int store_delete_instance(struct store *st, const char *id)
{
    if (!st || !str_ok(id, STORE_ID_MAX, 1))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_INST_DELETE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    rc = step_done(st, s, "cannot delete instance");
    if (!rc && sqlite3_changes(st->db) == 0)
        rc = set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
out:
    unlock(st);
    return rc;
}

void store_instances_free(struct store_instance *list)
{
    free(list);
}

static int fill_instance(struct store *st, sqlite3_stmt *s, void *elem)
{
    (void)st;
    row_instance(s, elem);
    return 0;
}

int store_list_instances(struct store *st, const char *group, int include_terminated,
                         struct store_instance **out, size_t *n)
{
    if (!st || !out || !n || (group && !str_ok(group, STORE_NAME_MAX, 0)))
        return STORE_EINVAL;
    lock(st);
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_INST_LIST, &rc);
    if (s) {
        bind_text_or_null(s, 1, group);
        sqlite3_bind_int(s, 2, include_terminated ? 1 : 0);
        rc = collect_rows(st, s, sizeof(struct store_instance), fill_instance, &arr, &cnt,
                          "cannot list instances");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    unlock(st);
    return rc;
}

/* ---- launch intents ------------------------------------------------------------------------- */

int store_intent_create(struct store *st, const char *token, const char *group, int count,
                        int64_t created_at_ms)
{
    if (!st || !str_ok(token, STORE_ID_MAX, 1) || !str_ok(group, STORE_NAME_MAX, 1) || count < 0)
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_INTENT_CREATE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, group, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, count);
    sqlite3_bind_int64(s, 4, created_at_ms);
    sqlite3_bind_int64(s, 5, clk_wall_ms());
    rc = step_done(st, s, "cannot record launch intent");
    if (rc == STORE_EEXIST)
        set_err(st, rc, "launch intent \"%s\" already recorded", token);
out:
    unlock(st);
    return rc;
}

int store_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                          size_t n)
{
    if (!st || !str_ok(token, STORE_ID_MAX, 1) ||
        (state != STORE_INTENT_DONE && state != STORE_INTENT_FAILED) || (n && !ids))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    char *text = NULL;
    json_t *arr = json_array();
    if (!arr) {
        rc = set_err(st, STORE_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!str_ok(ids[i], STORE_ID_MAX, 1)) {
            rc = set_err(st, STORE_EINVAL,
                         "launch intent \"%s\": instance id %zu is empty or "
                         "too long",
                         token, i);
            goto out;
        }
        if (json_array_append_new(arr, json_string(ids[i])) != 0) {
            rc = set_err(st, STORE_EINVAL, "launch intent \"%s\": instance id %zu is not UTF-8",
                         token, i);
            goto out;
        }
    }
    text = json_dumps(arr, JSON_COMPACT);
    if (!text) {
        rc = set_err(st, STORE_ENOMEM, "out of memory");
        goto out;
    }
    sqlite3_stmt *s = stmt(st, S_INTENT_COMPLETE, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, state == STORE_INTENT_DONE ? "done" : "failed", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, clk_wall_ms());
    rc = step_done(st, s, "cannot complete launch intent");
    if (!rc && sqlite3_changes(st->db) == 0)
        rc = set_err(st, STORE_ENOENT, "no launch intent \"%s\"", token);
out:
    json_decref(arr);
    free(text);
    unlock(st);
    return rc;
}

void store_intents_free(struct store_intent *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < list[i].n_ids; k++)
            free(list[i].ids[k]);
        free(list[i].ids);
    }
    free(list);
}

/* Parses a JSON array of id strings into it->ids; bad entries are skipped with a warning. */
static int intent_ids(struct store *st, struct store_intent *it, const char *text)
{
    json_error_t je;
    json_t *a = text ? json_loads(text, 0, &je) : NULL;
    if (!json_is_array(a)) {
        log_warn("store \"%s\": launch intent \"%s\" has unreadable instance ids, ignoring them",
                 st->path, it->token);
        json_decref(a);
        return 0;
    }
    size_t n = json_array_size(a);
    if (n) {
        it->ids = calloc(n, sizeof(*it->ids));
        if (!it->ids) {
            json_decref(a);
            return STORE_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(a, i));
        if (!id || !str_ok(id, STORE_ID_MAX, 1)) {
            log_warn("store \"%s\": launch intent \"%s\": skipping invalid instance id %zu",
                     st->path, it->token, i);
            continue;
        }
        if (!(it->ids[it->n_ids] = strdup(id))) {
            json_decref(a);
            return STORE_ENOMEM;
        }
        it->n_ids++;
    }
    json_decref(a);
    return 0;
}

static int fill_intent(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_intent *it = elem;
    col_text(s, 0, it->token, sizeof(it->token));
    col_text(s, 1, it->group, sizeof(it->group));
    it->count = sqlite3_column_int(s, 2);
    it->created_at_ms = sqlite3_column_int64(s, 3);
    it->state = STORE_INTENT_OPEN;
    if (intent_ids(st, it, (const char *)sqlite3_column_text(s, 4)) != 0)
        return set_err(st, STORE_ENOMEM, "out of memory listing launch intents");
    return 0;
}

int store_intent_list_open(struct store *st, const char *group, struct store_intent **out,
                           size_t *n)
{
    if (!st || !out || !n || (group && !str_ok(group, STORE_NAME_MAX, 0)))
        return STORE_EINVAL;
    lock(st);
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_INTENT_OPEN, &rc);
    if (s) {
        bind_text_or_null(s, 1, group);
        rc = collect_rows(st, s, sizeof(struct store_intent), fill_intent, &arr, &cnt,
                          "cannot list launch intents");
    }
    if (rc) {
        store_intents_free(arr, cnt);
    } else {
        *out = arr;
        *n = cnt;
    }
    unlock(st);
    return rc;
}

/* ---- activities ----------------------------------------------------------------------------- */

int store_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out)
{
    if (!st || !a)
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    if (!str_ok(a->group, sizeof(a->group), 1) || !str_ok(a->kind, sizeof(a->kind), 1) ||
        !str_ok(a->cause, sizeof(a->cause), 0) || !str_ok(a->status, sizeof(a->status), 0) ||
        !str_ok(a->detail, sizeof(a->detail), 0)) {
        rc = set_err(st, STORE_EINVAL,
                     "activity: group and kind must be non-empty, every text "
                     "field terminated");
        goto out;
    }
    sqlite3_stmt *s = stmt(st, S_ACT_ADD, &rc);
    if (!s)
        goto out;
    sqlite3_bind_text(s, 1, a->group, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->at_ms);
    sqlite3_bind_text(s, 3, a->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, a->cause, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, a->from_count);
    sqlite3_bind_int(s, 6, a->to_count);
    sqlite3_bind_text(s, 7, a->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, a->detail, -1, SQLITE_STATIC);
    rc = step_done(st, s, "cannot record activity");
    if (!rc && id_out)
        *id_out = sqlite3_last_insert_rowid(st->db);
out:
    unlock(st);
    return rc;
}

void store_activities_free(struct store_activity *list)
{
    free(list);
}

static int fill_activity(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_activity *a = elem;
    (void)st;
    a->id = sqlite3_column_int64(s, 0);
    col_text(s, 1, a->group, sizeof(a->group));
    a->at_ms = sqlite3_column_int64(s, 2);
    col_text(s, 3, a->kind, sizeof(a->kind));
    col_text(s, 4, a->cause, sizeof(a->cause));
    a->from_count = sqlite3_column_int(s, 5);
    a->to_count = sqlite3_column_int(s, 6);
    col_text(s, 7, a->status, sizeof(a->status));
    col_text(s, 8, a->detail, sizeof(a->detail));
    return 0;
}

int store_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                        struct store_activity **out, size_t *n)
{
    if (!st || !out || !n || limit < 1 || limit > ACTIVITY_LIMIT ||
        (group && !str_ok(group, STORE_NAME_MAX, 0)))
        return STORE_EINVAL;
    lock(st);
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_ACT_LIST, &rc);
    if (s) {
        bind_text_or_null(s, 1, group);
        sqlite3_bind_int64(s, 2, before_id);
        sqlite3_bind_int(s, 3, limit);
        rc = collect_rows(st, s, sizeof(struct store_activity), fill_activity, &arr, &cnt,
                          "cannot list activities");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    unlock(st);
    return rc;
}

/* ---- metric history ------------------------------------------------------------------------- */

int store_metrics_add(struct store *st, const struct store_metric_group *g, size_t ng,
                      const struct store_metric_instance *inst, size_t ni)
{
    if (!st || (ng && !g) || (ni && !inst))
        return STORE_EINVAL;
    lock(st);
    int rc = 0;
    for (size_t i = 0; i < ng; i++)
        if (!str_ok(g[i].group, sizeof(g[i].group), 1))
            rc = set_err(st, STORE_EINVAL, "metric row %zu: group empty or not terminated", i);
    for (size_t i = 0; !rc && i < ni; i++)
        if (!str_ok(inst[i].group, sizeof(inst[i].group), 1) ||
            !str_ok(inst[i].instance_id, sizeof(inst[i].instance_id), 1))
            rc = set_err(st, STORE_EINVAL,
                         "instance metric row %zu: group or id empty or not terminated", i);
    if (rc || (ng == 0 && ni == 0))
        goto out;
    rc = begin(st);
    if (rc)
        goto out;
    sqlite3_stmt *s = stmt(st, S_MG_ADD, &rc);
    for (size_t i = 0; s && !rc && i < ng; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, g[i].group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, g[i].at_ms);
        sqlite3_bind_double(s, 3, isfinite(g[i].avg_load) ? g[i].avg_load : -1);
        sqlite3_bind_int(s, 4, g[i].in_service);
        sqlite3_bind_int(s, 5, g[i].desired);
        rc = step_done(st, s, "cannot add group metrics");
    }
    if (!s)
        goto out;
    s = rc ? NULL : stmt(st, S_MI_ADD, &rc);
    for (size_t i = 0; s && !rc && i < ni; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, inst[i].group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, inst[i].at_ms);
        sqlite3_bind_text(s, 3, inst[i].instance_id, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 4, isfinite(inst[i].load) ? inst[i].load : -1);
        rc = step_done(st, s, "cannot add instance metrics");
    }
    if (!rc)
        rc = commit(st);
out:
    if (rc)
        rollback(st);
    unlock(st);
    return rc;
}

static int fill_metric_group(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_metric_group *m = elem;
    (void)st;
    col_text(s, 0, m->group, sizeof(m->group));
    m->at_ms = sqlite3_column_int64(s, 1);
    m->avg_load = sqlite3_column_double(s, 2);
    m->in_service = sqlite3_column_int(s, 3);
    m->desired = sqlite3_column_int(s, 4);
    return 0;
}

int store_metrics_group_since(struct store *st, const char *group, int64_t since_ms,
                              size_t max_rows, struct store_metric_group **out, size_t *n)
{
    if (!st || !out || !n || !str_ok(group, STORE_NAME_MAX, 1) || max_rows < 1 ||
        max_rows > METRIC_ROWS_MAX)
        return STORE_EINVAL;
    lock(st);
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_MG_SINCE, &rc);
    if (s) {
        sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, since_ms);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)max_rows);
        rc = collect_rows(st, s, sizeof(struct store_metric_group), fill_metric_group, &arr, &cnt,
                          "cannot read group metrics");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    unlock(st);
    return rc;
}

static int fill_metric_instance(struct store *st, sqlite3_stmt *s, void *elem)
{
    struct store_metric_instance *m = elem;
    (void)st;
    col_text(s, 0, m->group, sizeof(m->group));
    m->at_ms = sqlite3_column_int64(s, 1);
    col_text(s, 2, m->instance_id, sizeof(m->instance_id));
    m->load = sqlite3_column_double(s, 3);
    return 0;
}

int store_metrics_instance_since(struct store *st, const char *group, const char *instance_id,
                                 int64_t since_ms, size_t max_rows,
                                 struct store_metric_instance **out, size_t *n)
{
    if (!st || !out || !n || !str_ok(group, STORE_NAME_MAX, 1) ||
        (instance_id && !str_ok(instance_id, STORE_ID_MAX, 1)) || max_rows < 1 ||
        max_rows > METRIC_ROWS_MAX)
        return STORE_EINVAL;
    lock(st);
    void *arr = NULL;
    size_t cnt = 0;
    int rc = 0;
    sqlite3_stmt *s = stmt(st, S_MI_SINCE, &rc);
    if (s) {
        sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, since_ms);
        bind_text_or_null(s, 3, instance_id);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)max_rows);
        rc = collect_rows(st, s, sizeof(struct store_metric_instance), fill_metric_instance, &arr,
                          &cnt, "cannot read instance metrics");
    }
    if (rc) {
        free(arr);
    } else {
        *out = arr;
        *n = cnt;
    }
    unlock(st);
    return rc;
}

int store_metrics_prune(struct store *st, int64_t older_than_ms, int64_t *deleted)
{
    if (!st)
        return STORE_EINVAL;
    lock(st);
    int64_t total = 0;
    int rc = begin(st);
    if (rc)
        goto out;
    enum stmt_id ids[2] = {S_MG_PRUNE, S_MI_PRUNE};
    for (int i = 0; !rc && i < 2; i++) {
        sqlite3_stmt *s = stmt(st, ids[i], &rc);
        if (!s)
            break;
        sqlite3_bind_int64(s, 1, older_than_ms);
        rc = step_done(st, s, "cannot prune metrics");
        if (!rc)
            total += sqlite3_changes(st->db);
    }
    if (!rc)
        rc = commit(st);
    if (!rc && deleted)
        *deleted = total;
out:
    if (rc)
        rollback(st);
    unlock(st);
    return rc;
}
