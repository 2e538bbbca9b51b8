/*
 * store_sqlite.c - the SQLite backend of the store (contract in store.h):
 * schema and migrations, statements, helpers, open/close. Settings, spec,
 * requests and group deletion are in store_sqlite_groups.c; instances,
 * intents, activities and metrics in store_sqlite_rows.c.
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
 * defaults. No foreign keys are declared (the pragma is on for later
 * versions): rows come from independent components in any order, and a
 * refused metric batch for an instance the store has not heard of yet would
 * lose data for nothing.
 *
 * The database and its -wal/-shm files are narrowed to 0600 right after
 * SQLite creates the database (SQLite gives the -wal and -shm files the mode
 * of the database file): they hold the whole fleet's state, nobody else on
 * the host needs to read them.
 *
 * One node: fencing is a no-op and store_watch() is not supported (the only
 * writer is this process).
 *
 * Text read back is copied into the caller's bounded fields (truncated,
 * always terminated) or malloc'd; nothing read from the file is trusted to
 * fit or to parse.
 */
#include "store/store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define BUSY_TIMEOUT_MS 5000

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
    /* v2: many groups (spec, requests for the owner, store_delete_group()) */
    "CREATE TABLE group_specs ("
    "  name TEXT PRIMARY KEY,"
    "  spec TEXT NOT NULL,"
    "  revision INTEGER NOT NULL,"
    "  updated_at_ms INTEGER NOT NULL);"
    "CREATE TABLE requests ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  group_name TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at_ms INTEGER NOT NULL);"
    "CREATE INDEX requests_by_group ON requests (group_name, id);"
    "CREATE INDEX intents_by_group ON launch_intents (group_name);",
    /* v3: every setting outside the sizes, [policy] and [health] (termination_policy,
       suspended_processes, [notify], and keys added later) as one JSON object in the key
       table's form (group.h), so that a new key needs no migration */
    "ALTER TABLE groups ADD COLUMN more TEXT NOT NULL DEFAULT '{}';",
    /* v4: instance lifecycle (scale-in protection, hook wait deadlines: docs/lifecycle.md); the
       group's hook settings live in v3's more */
    "ALTER TABLE instances ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE instances ADD COLUMN hook_deadline_ms INTEGER NOT NULL DEFAULT 0;",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

#define INST_COLS                                                                                  \
    "id, group_name, address, provider, lifecycle, launched_at_ms, launch_token, pid, zone, "      \
    "created_at_ms, updated_at_ms, terminated_at_ms, protected, hook_deadline_ms"

static const char *const stmt_sql[S_COUNT] = {
    [S_GROUP_GET] = "SELECT name, min_size, max_size, desired_capacity, policy, health, revision, "
                    "updated_at_ms, more FROM groups WHERE name = ?1",
    [S_GROUP_REV] = "SELECT revision, min_size, max_size FROM groups WHERE name = ?1",
    [S_GROUP_PUT] = "INSERT INTO groups (name, min_size, max_size, desired_capacity, policy, "
                    "health, revision, updated_at_ms, more) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                    "?8, ?9) ON CONFLICT (name) DO UPDATE SET min_size = ?2, max_size = ?3, "
                    "desired_capacity = ?4, policy = ?5, health = ?6, revision = ?7, "
                    "updated_at_ms = ?8, more = ?9",
    [S_GROUP_DESIRED] = "UPDATE groups SET desired_capacity = ?2, revision = ?3, "
                        "updated_at_ms = ?4 WHERE name = ?1",
    [S_GROUP_NAMES] = "SELECT name FROM groups ORDER BY name",
    [S_INST_PUT] = "INSERT INTO instances (" INST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                   "?9, ?10, ?10, ?11, ?12, ?13) ON CONFLICT (id) DO UPDATE SET group_name = ?2, "
                   "address = ?3, provider = ?4, lifecycle = ?5, launched_at_ms = ?6, "
                   "launch_token = ?7, pid = ?8, zone = ?9, updated_at_ms = ?10, "
                   "terminated_at_ms = ?11, protected = ?12, hook_deadline_ms = ?13",
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
    [S_SPEC_GET] = "SELECT spec, revision FROM group_specs WHERE name = ?1",
    [S_SPEC_REV] = "SELECT revision FROM group_specs WHERE name = ?1",
    [S_SPEC_PUT] = "INSERT INTO group_specs (name, spec, revision, updated_at_ms) VALUES (?1, ?2, "
                   "?3, ?4) ON CONFLICT (name) DO UPDATE SET spec = ?2, revision = ?3, "
                   "updated_at_ms = ?4",
    [S_REQ_ADD] = "INSERT INTO requests (group_name, kind, body, created_at_ms) VALUES (?1, ?2, "
                  "?3, ?4)",
    [S_REQ_LIST] = "SELECT id, group_name, kind, created_at_ms, body FROM requests WHERE "
                   "group_name = ?1 ORDER BY id",
    [S_REQ_DELETE] = "DELETE FROM requests WHERE group_name = ?1 AND id = ?2",
};

/* ---- helpers ------------------------------------------------------------------------------- */

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
int sq_db_err(struct store *st, int rc, const char *what)
{
    int sys = sqlite3_system_errno(SQ(st)->db);
    if (sys && (rc & 0xff) != SQLITE_CONSTRAINT)
        return store_set_err(st, code_of(rc), "%s: %s (%s) in \"%s\"", what,
                             sqlite3_errmsg(SQ(st)->db), strerror(sys), SQ(st)->path);
    return store_set_err(st, code_of(rc), "%s: %s in \"%s\"", what, sqlite3_errmsg(SQ(st)->db),
                         SQ(st)->path);
}

void sq_col_text(sqlite3_stmt *s, int col, char *dst, size_t size)
{
    if (size == 0)
        return;
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(s, col) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

/* The cached statement id, reset and unbound; NULL with st->err set on failure. */
sqlite3_stmt *sq_stmt(struct store *st, enum stmt_id id, int *rc_out)
{
    sqlite3_stmt *s = SQ(st)->stmts[id];
    if (!s) {
        int rc =
            sqlite3_prepare_v3(SQ(st)->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
        if (rc != SQLITE_OK) {
            *rc_out = sq_db_err(st, rc, "cannot prepare statement");
            return NULL;
        }
        SQ(st)->stmts[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

int sq_exec(struct store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(SQ(st)->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_db_err(st, rc, what);
}

int sq_begin(struct store *st)
{
    return sq_exec(st, "BEGIN IMMEDIATE", "cannot begin a transaction");
}

int sq_commit(struct store *st)
{
    return sq_exec(st, "COMMIT", "cannot commit");
}

void sq_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(SQ(st)->db))
        sqlite3_exec(SQ(st)->db, "ROLLBACK", NULL, NULL, NULL);
}

/* A batch of writes is one durable transaction: a launch of 1,000 is one fsync, not 1,000. */
static int sq_batch_end(struct store *st, int ok)
{
    if (ok)
        return sq_commit(st);
    sq_rollback(st);
    return 0;
}

void sq_bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Steps a statement that returns no row; 0 or the mapped error. */
int sq_step_done(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    int out = rc == SQLITE_DONE ? 0 : sq_db_err(st, rc, what);
    sqlite3_reset(s);
    return out;
}

/* Grows *arr (element size esz) to hold at least need elements; 0 or STORE_ENOMEM. */
/*
 * The shared half of every list query: steps s to its end, appending one
 * zeroed element of esz bytes per row and letting fill() read the row into it.
 * On success *arr holds *cnt elements (NULL when none). On failure the error
 * (ENOMEM, fill()'s, or the database's, described by what) is returned and
 * *arr keeps the *cnt elements read so far, for the caller's own free
 * function (elements own memory for some lists). s is reset either way.
 */

int sq_collect_rows(struct store *st, sqlite3_stmt *s, size_t esz, row_fill_fn fill, void **arr,
                    size_t *cnt, const char *what)
{
    size_t cap = 0;
    int rc = 0, r;
    *arr = NULL;
    *cnt = 0;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        if (store_grow(arr, &cap, *cnt + 1, esz)) {
            rc = store_set_err(st, STORE_ENOMEM, "out of memory: %s", what);
            break;
        }
        void *elem = (char *)*arr + *cnt * esz;
        memset(elem, 0, esz);
        (*cnt)++;
        if ((rc = fill(st, s, elem)) != 0)
            break;
    }
    if (!rc && r != SQLITE_DONE)
        rc = sq_db_err(st, r, what);
    sqlite3_reset(s);
    if (!rc && *cnt == 0) {
        free(*arr);
        *arr = NULL;
    }
    return rc;
}

/*
 * Narrows the database and its -wal/-shm files to their owner (0600 when
 * created with the usual umask). By path, with chmod(): opening and closing
 * an fd of the database here would drop every POSIX lock this process holds
 * on it (another handle's: SQLite's own fds are shielded, ours would not be),
 * and a reader elsewhere could then take the WAL for abandoned and delete it.
 * SQLite creates -wal and -shm with the database file's mode, so narrowing
 * the database before the switch to WAL covers them; existing ones (from an
 * older asgd) are narrowed too.
 */
static void restrict_modes(struct store *st)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char path[4096];
        struct stat sb;
        int n = snprintf(path, sizeof(path), "%s%s", SQ(st)->path, suffixes[i]);
        if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
            (sb.st_mode & 077) == 0)
            continue;
        if (chmod(path, sb.st_mode & 0700) != 0)
            log_warn("store \"%s\": cannot restrict it to its owner: %s", path, strerror(errno));
    }
}

/* ---- open / close / migrations -------------------------------------------------------------- */

static int read_version(struct store *st, int *version)
{
    sqlite3_stmt *s = NULL;
    int rc =
        sqlite3_prepare_v2(SQ(st)->db, "SELECT max(version) FROM schema_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sq_db_err(st, rc, "cannot read the schema version");
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        int e = sq_db_err(st, rc, "cannot read the schema version");
        sqlite3_finalize(s);
        return e;
    }
    *version = sqlite3_column_type(s, 0) == SQLITE_NULL ? 0 : sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return 0;
}

static int migrate(struct store *st)
{
    int rc = sq_begin(st);
    if (rc)
        return rc;
    rc = sq_exec(st,
                 "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                 "applied_at_ms INTEGER NOT NULL)",
                 "cannot create the schema version table");
    int version = 0;
    if (!rc)
        rc = read_version(st, &version);
    if (!rc && version > STORE_SCHEMA_VERSION)
        rc = store_set_err(
            st, STORE_EVERSION,
            "database \"%s\" has schema version %d, this asgd knows versions up to %d: "
            "use a newer asgd or another state directory",
            SQ(st)->path, version, STORE_SCHEMA_VERSION);
    if (!rc && version < 0)
        rc = store_set_err(st, STORE_ECORRUPT, "database \"%s\" has an invalid schema version %d",
                           SQ(st)->path, version);
    /* from is the version the database is at: counting from it (not from version + 1) keeps
       a hostile INT_MAX version out of signed overflow; 0 <= from < STORE_SCHEMA_VERSION */
    for (int from = version; !rc && from < STORE_SCHEMA_VERSION; from++) {
        int v = from + 1;
        char what[64];
        snprintf(what, sizeof(what), "cannot migrate the schema to version %d", v);
        rc = sq_exec(st, migrations[from], what);
        if (!rc) {
            char sql[128];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO schema_version (version, applied_at_ms) VALUES (%d, %lld)", v,
                     (long long)clk_wall_ms());
            rc = sq_exec(st, sql, what);
        }
        if (!rc)
            log_info("store \"%s\": schema migrated to version %d", SQ(st)->path, v);
    }
    if (!rc)
        rc = sq_commit(st);
    if (rc) {
        sq_rollback(st);
        return rc;
    }
    st->version = version > STORE_SCHEMA_VERSION ? version : STORE_SCHEMA_VERSION;
    return 0;
}

static int open_db(struct store *st, const char *dir)
{
    struct stat sb;
    if (mkdir(dir, 0700) == -1 && errno != EEXIST)
        return store_set_err(st, STORE_EIO, "cannot create state directory \"%s\": %s", dir,
                             strerror(errno));
    if (stat(dir, &sb) == -1)
        return store_set_err(st, STORE_EIO, "cannot use state directory \"%s\": %s", dir,
                             strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return store_set_err(st, STORE_EIO, "state directory \"%s\" is not a directory", dir);
    /*
     * The state directory holds the fleet's state and its tokens: ours only
     * (a parent-creating caller may have made it 0755). Someone else's
     * directory is left as it is.
     */
    if ((sb.st_mode & 077) != 0 && sb.st_uid == geteuid()) {
        if (chmod(dir, sb.st_mode & 0700) == 0)
            log_info("store: state directory \"%s\" restricted to its owner (was %03o)", dir,
                     (unsigned)(sb.st_mode & 0777));
        else
            log_warn("store: cannot restrict state directory \"%s\" to its owner: %s", dir,
                     strerror(errno));
    }
    int rc =
        sqlite3_open_v2(SQ(st)->path, &SQ(st)->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (!SQ(st)->db)
            return store_set_err(st, STORE_ENOMEM, "cannot open \"%s\": out of memory",
                                 SQ(st)->path);
        return sq_db_err(st, rc, "cannot open the database");
    }
    restrict_modes(st);
    sqlite3_extended_result_codes(SQ(st)->db, 1);
    sqlite3_busy_timeout(SQ(st)->db, BUSY_TIMEOUT_MS);
    /*
     * The first statement reads the file: a non-database fails here. Two
     * handles switching a new file to WAL at once can each hold the lock the
     * other waits for; SQLite then answers BUSY at once instead of calling
     * the busy handler (it would deadlock), so the switch is retried here.
     */
    int64_t give_up = clk_mono_ms() + BUSY_TIMEOUT_MS;
    for (;;) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(SQ(st)->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
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
        return store_set_err(st, STORE_EIO, "cannot switch \"%s\" to WAL mode", SQ(st)->path);
    if (rc != SQLITE_OK)
        return sq_db_err(st, rc, "cannot open the database");
    int e = sq_exec(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", "cannot configure");
    if (e)
        return e;
    return migrate(st);
}

int store_sqlite_open(struct store *st, const char *dir)
{
    struct sq *q = calloc(1, sizeof(*q));
    if (!q)
        return store_set_err(st, STORE_ENOMEM, "store: out of memory");
    st->be = q;
    size_t n = strlen(dir) + sizeof("/asgd.db");
    q->path = malloc(n);
    if (!q->path)
        return store_set_err(st, STORE_ENOMEM, "store: out of memory");
    snprintf(q->path, n, "%s/asgd.db", dir);
    return open_db(st, dir);
}

static void sq_close(struct store *st)
{
    struct sq *q = st->be;
    if (!q)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(q->stmts[i]);
    if (q->db && sqlite3_close(q->db) != SQLITE_OK)
        log_warn("store \"%s\": close failed: %s", q->path ? q->path : "?", sqlite3_errmsg(q->db));
    free(q->path);
    free(q);
    st->be = NULL;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .get_settings = sq_get_settings,
    .put_settings = sq_put_settings,
    .set_desired = sq_set_desired,
    .list_groups = sq_list_groups,
    .delete_group = sq_delete_group,
    .put_spec = sq_put_spec,
    .get_spec = sq_get_spec,
    .put_instance = sq_put_instance,
    .set_instance_lifecycle = sq_set_instance_lifecycle,
    .get_instance = sq_get_instance,
    .delete_instance = sq_delete_instance,
    .list_instances = sq_list_instances,
    .intent_create = sq_intent_create,
    .intent_complete = sq_intent_complete,
    .intent_list_open = sq_intent_list_open,
    .activity_add = sq_activity_add,
    .activity_list = sq_activity_list,
    .metrics_add = sq_metrics_add,
    .metrics_group_since = sq_metrics_group_since,
    .metrics_instance_since = sq_metrics_instance_since,
    .metrics_prune = sq_metrics_prune,
    .request_add = sq_request_add,
    .request_list = sq_request_list,
    .request_delete = sq_request_delete,
    .watch = NULL,     /* one node: the only writer is the caller */
    .set_fence = NULL, /* one node owns every group */
    .batch_begin = sq_begin,
    .batch_end = sq_batch_end,
};
