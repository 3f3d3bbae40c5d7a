/* store — binding the parameters of one row, in placeholder order. */
#include "store/store_int.h"

#include <string.h>

/* The next free slot, or NULL (and the builder marked) when all are taken. */
static MYSQL_BIND *next_slot(struct store__params *p)
{
    MYSQL_BIND *b;
    if (p->n >= STORE__MAX_PARAMS) {
        p->overflow = true;
        return NULL;
    }
    b = &p->b[p->n];
    memset(b, 0, sizeof *b);
    return b;
}

void store__p_bytes(struct store__params *p, enum enum_field_types t, const void *v, size_t len)
{
    MYSQL_BIND *b = next_slot(p);
    if (!b)
        return;
    p->len[p->n] = (unsigned long)len;
    p->null[p->n] = v == NULL;
    b->buffer_type = t;
    b->buffer = (void *)v;
    b->buffer_length = (unsigned long)len;
    b->length = &p->len[p->n];
    b->is_null = &p->null[p->n];
    p->n++;
}

void store__p_id(struct store__params *p, const struct ids_id *id)
{
    store__p_bytes(p, MYSQL_TYPE_BLOB, id ? id->b : NULL, 16);
}

void store__p_str(struct store__params *p, const char *s)
{
    store__p_bytes(p, MYSQL_TYPE_STRING, s, s ? strlen(s) : 0);
}

void store__p_int(struct store__params *p, long long v)
{
    MYSQL_BIND *b = next_slot(p);
    if (!b)
        return;
    p->ints[p->n] = v;
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = &p->ints[p->n];
    p->n++;
}

int store__p_exec(MYSQL_STMT *st, struct store__params *p, const char *what)
{
    if (!st || p->overflow)
        return STORE_EDB;
    if (mysql_stmt_bind_param(st, p->b) != 0 || mysql_stmt_execute(st) != 0)
        return store__stmt_error(st, what);
    return STORE_OK;
}
