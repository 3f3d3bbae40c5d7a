/* store — schema migrations in golang-migrate's layout and bookkeeping.
 *
 * Files NNNN_name.up.sql / NNNN_name.down.sql; table schema_migrations(version,
 * dirty) holding one row.  A migration is marked dirty before it runs and clean
 * after (MariaDB DDL is not transactional): a failure leaves "dirty at N" for an
 * operator to repair, as golang-migrate does.  A named lock keeps two migrators
 * apart.
 */
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct migration {
    long long version;
    char name[200];
    bool has_up, has_down;
};

struct plan {
    struct migration *m;
    size_t n, cap;
};

static int cmp_version(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static struct migration *plan_slot(struct plan *p, long long version, const char *name)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->m[i].version == version)
            return &p->m[i];
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct migration *m = realloc(p->m, cap * sizeof *m);
        if (!m)
            return NULL;
        p->m = m;
        p->cap = cap;
    }
    memset(&p->m[p->n], 0, sizeof p->m[p->n]);
    p->m[p->n].version = version;
    snprintf(p->m[p->n].name, sizeof p->m[p->n].name, "%s", name);
    return &p->m[p->n++];
}

/* "0001_init.up.sql" -> version 1, name "0001_init", up. */
static int parse_name(const char *f, long long *ret_v, char *name, size_t size, bool *ret_up)
{
    char *end;
    size_t len = strlen(f);
    long long v;
    if (f[0] < '0' || f[0] > '9')
        return -1;
    v = strtoll(f, &end, 10);
    if (*end != '_' || v <= 0)
        return -1;
    if (len > 7 && strcmp(f + len - 7, ".up.sql") == 0) {
        *ret_up = true;
        len -= 7;
    } else if (len > 9 && strcmp(f + len - 9, ".down.sql") == 0) {
        *ret_up = false;
        len -= 9;
    } else {
        return -1;
    }
    if (len >= size)
        return -1;
    memcpy(name, f, len);
    name[len] = '\0';
    *ret_v = v;
    return 0;
}

static int plan_load(const char *dir, struct plan *p, FILE *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) {
        fprintf(out, "migrations: cannot open %s: %s\n", dir, strerror(errno));
        return STORE_EINVAL;
    }
    while ((e = readdir(d))) {
        char name[200];
        long long v;
        bool up;
        struct migration *m;
        if (parse_name(e->d_name, &v, name, sizeof name, &up) < 0)
            continue;
        m = plan_slot(p, v, name);
        if (!m) {
            closedir(d);
            return STORE_ENOMEM;
        }
        if (up)
            m->has_up = true;
        else
            m->has_down = true;
    }
    closedir(d);
    if (p->n > 1)
        qsort(p->m, p->n, sizeof *p->m, cmp_version);
    return STORE_OK;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out_close;
    buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[size] = '\0';
out_close:
    fclose(f);
    return buf;
}

/* Runs a multi-statement script, draining every result. */
static int run_script(MYSQL *db, const char *sql, const char *what)
{
    int status;
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0)
        return store__db_error(db, what);
    do {
        MYSQL_RES *res = mysql_store_result(db);
        if (res)
            mysql_free_result(res);
        status = mysql_next_result(db);
        if (status > 0)
            return store__db_error(db, what);
    } while (status == 0);
    return STORE_OK;
}

static int current_version(MYSQL *db, long long *ret_v, bool *ret_dirty)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    int rc = run_script(db,
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL "
                        "PRIMARY KEY, dirty BOOLEAN NOT NULL)",
                        "schema_migrations");
    if (rc != STORE_OK)
        return rc;
    if (mysql_query(db, "SELECT version, dirty FROM schema_migrations LIMIT 1") != 0)
        return store__db_error(db, "read version");
    res = mysql_store_result(db);
    if (!res)
        return store__db_error(db, "read version");
    row = mysql_fetch_row(res);
    *ret_v = row && row[0] ? strtoll(row[0], NULL, 10) : 0;
    *ret_dirty = row && row[1] && strcmp(row[1], "0") != 0;
    mysql_free_result(res);
    return STORE_OK;
}

static int set_version(MYSQL *db, long long v, bool dirty)
{
    char sql[160];
    int rc = store__exec(db, "DELETE FROM schema_migrations");
    if (rc != STORE_OK || v <= 0)
        return rc;
    snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (version, dirty) VALUES (%lld, %d)", v,
             dirty ? 1 : 0);
    return store__exec(db, sql);
}

static int apply(MYSQL *db, const char *dir, const struct migration *m, bool up, long long after,
                 FILE *out)
{
    char path[4096];
    char *sql;
    int rc;
    snprintf(path, sizeof path, "%s/%s.%s.sql", dir, m->name, up ? "up" : "down");
    sql = read_file(path);
    if (!sql) {
        fprintf(out, "migrations: cannot read %s\n", path);
        return STORE_EINVAL;
    }
    rc = set_version(db, m->version, true);
    if (rc == STORE_OK)
        rc = run_script(db, sql, path);
    free(sql);
    if (rc != STORE_OK) {
        fprintf(out, "%s %s: FAILED; schema_migrations is dirty at %lld\n", up ? "up" : "down",
                m->name, m->version);
        return rc;
    }
    rc = set_version(db, after, false);
    if (rc == STORE_OK)
        fprintf(out, "%s %s\n", up ? "applied" : "reverted", m->name);
    return rc;
}

struct session {
    MYSQL *db;
    struct plan plan;
    long long version;
    bool dirty;
};

static int session_open(const struct store_config *cfg, const char *dir, struct session *ss,
                        FILE *out)
{
    int rc;
    memset(ss, 0, sizeof *ss);
    rc = plan_load(dir, &ss->plan, out);
    if (rc != STORE_OK)
        return rc;
    ss->db = store__connect(cfg, true);
    if (!ss->db) {
        fprintf(out, "migrations: cannot connect to %s:%d\n", cfg->host, cfg->port);
        return STORE_EDB;
    }
    if (run_script(ss->db, "DO GET_LOCK('dispatch_migrate', 30)", "lock") != STORE_OK)
        return STORE_EDB;
    return current_version(ss->db, &ss->version, &ss->dirty);
}

static void session_close(struct session *ss)
{
    if (ss->db) {
        run_script(ss->db, "DO RELEASE_LOCK('dispatch_migrate')", "unlock");
        mysql_close(ss->db);
    }
    free(ss->plan.m);
}

static int refuse_dirty(const struct session *ss, FILE *out)
{
    if (!ss->dirty)
        return STORE_OK;
    fprintf(out,
            "migrations: database is dirty at version %lld (a migration failed half-way); "
            "repair it by hand, then set schema_migrations.dirty = 0\n",
            ss->version);
    return STORE_EINVAL;
}

int store_migrate_up(const struct store_config *cfg, const char *dir, int steps, FILE *out)
{
    struct session ss;
    int rc = session_open(cfg, dir, &ss, out);
    int done = 0;
    if (rc == STORE_OK)
        rc = refuse_dirty(&ss, out);
    for (size_t i = 0; rc == STORE_OK && i < ss.plan.n; i++) {
        const struct migration *m = &ss.plan.m[i];
        if (m->version <= ss.version || (steps > 0 && done >= steps))
            continue;
        if (!m->has_up) {
            fprintf(out, "migrations: %s has no .up.sql\n", m->name);
            rc = STORE_EINVAL;
            break;
        }
        rc = apply(ss.db, dir, m, true, m->version, out);
        done++;
    }
    if (rc == STORE_OK && done == 0)
        fprintf(out, "no change: at version %lld\n", ss.version);
    session_close(&ss);
    return rc;
}

int store_migrate_down(const struct store_config *cfg, const char *dir, int steps, FILE *out)
{
    struct session ss;
    int rc = session_open(cfg, dir, &ss, out);
    int done = 0;
    if (rc == STORE_OK)
        rc = refuse_dirty(&ss, out);
    for (size_t i = ss.plan.n; rc == STORE_OK && i-- > 0;) {
        const struct migration *m = &ss.plan.m[i];
        long long prev = i > 0 ? ss.plan.m[i - 1].version : 0;
        if (m->version > ss.version || (steps > 0 && done >= steps))
            continue;
        if (!m->has_down) {
            fprintf(out, "migrations: %s has no .down.sql\n", m->name);
            rc = STORE_EINVAL;
            break;
        }
        rc = apply(ss.db, dir, m, false, prev, out);
        done++;
    }
    if (rc == STORE_OK && done == 0)
        fprintf(out, "no change: at version %lld\n", ss.version);
    session_close(&ss);
    return rc;
}

int store_migrate_status(const struct store_config *cfg, const char *dir, FILE *out)
{
    struct session ss;
    int rc = session_open(cfg, dir, &ss, out);
    if (rc == STORE_OK) {
        fprintf(out, "version %lld%s\n", ss.version, ss.dirty ? " (dirty)" : "");
        for (size_t i = 0; i < ss.plan.n; i++)
            fprintf(out, "%-8s %s\n", ss.plan.m[i].version <= ss.version ? "applied" : "pending",
                    ss.plan.m[i].name);
    }
    session_close(&ss);
    return rc;
}
