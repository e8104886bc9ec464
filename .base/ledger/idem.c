/*
 * idem.c — idempotency keys.
 *
 * A keyed command's result (refusals included) is remembered with the key
 * and a fingerprint of the request (FNV-1a over its canonical encoding).  A
 * repeat with the same fingerprint gets the remembered result and changes
 * nothing; a repeat with another request is a conflict, because silently
 * answering a different question would hide a client bug.  Keys are kept
 * LEDGER_IDEM_WINDOW_MS of entry time; expire forgets older ones.
 *
 * The store lives in C, not SQLite: every keyed command costs a lookup and
 * an insert, and as SQLite index rows at random keys those were a third of
 * the apply time.  Entries sit in a FIFO (insertion = time order, so pruning
 * pops from the front) and in a chained hash table.  Snapshots carry them
 * after the SQLite image (snapshot.c); the state hash covers them in FIFO
 * order (hash.c).  Within an entry, additions and prunes are undone on a
 * hard error (idem_entry_undo).
 */
#include <stdlib.h>

#include "ledger/internal.h"

struct idem_item {
    struct idem_item *next; /* hash chain */
    uint64_t h;             /* hash of the key */
    int64_t ts_ms;
    uint64_t fp;
    uint32_t key_len;
    uint32_t result_len;
    uint8_t data[];         /* key, then the encoded result */
};

static uint64_t idem_fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct idem_item *idem_at(const struct idem_store *s, uint64_t pos)
{
    return s->fifo[pos & (s->fifo_cap - 1)];
}

static struct idem_item **idem_bucket(struct idem_store *s, uint64_t h)
{
    return &s->buckets[h & (s->bucket_count - 1)];
}

static void idem_link(struct idem_store *s, struct idem_item *it)
{
    struct idem_item **b = idem_bucket(s, it->h);
    it->next = *b;
    *b = it;
}

static void idem_unlink(struct idem_store *s, struct idem_item *it)
{
    struct idem_item **pp = idem_bucket(s, it->h);
    while (*pp && *pp != it)
        pp = &(*pp)->next;
    assert(*pp == it);
    *pp = it->next;
}

static int idem_grow(struct idem_store *s)
{
    /* Items pruned in this entry but not yet freed keep their places. */
    uint64_t held = s->tail - s->entry_head;
    uint64_t count = s->tail - s->head;
    if (held + 1 > s->fifo_cap) {
        uint64_t cap = s->fifo_cap ? s->fifo_cap * 2 : 4096;
        while (cap < held + 1)
            cap *= 2;
        struct idem_item **f = malloc(cap * sizeof *f);
        if (!f)
            return -1;
        for (uint64_t p = s->entry_head; p < s->tail; p++)
            f[p & (cap - 1)] = idem_at(s, p);
        free(s->fifo);
        s->fifo = f;
        s->fifo_cap = cap;
    }
    if (count + 1 > s->bucket_count) {
        uint64_t n = s->bucket_count ? s->bucket_count * 2 : 4096;
        struct idem_item **b = calloc(n, sizeof *b);
        if (!b)
            return -1;
        free(s->buckets);
        s->buckets = b;
        s->bucket_count = n;
        for (uint64_t p = s->head; p < s->tail; p++)
            idem_link(s, idem_at(s, p));
    }
    return 0;
}

/* Append an item (takes ownership). */
static int idem_push(struct idem_store *s, struct idem_item *it)
{
    if (idem_grow(s) != 0)
        return -1;
    s->fifo[s->tail & (s->fifo_cap - 1)] = it;
    s->tail++;
    idem_link(s, it);
    return 0;
}

static struct idem_item *idem_find(struct idem_store *s, const void *key, uint32_t len)
{
    if (s->bucket_count == 0)
        return NULL;
    uint64_t h = idem_fnv(key, len);
    for (struct idem_item *it = *idem_bucket(s, h); it; it = it->next)
        if (it->h == h && it->key_len == len && memcmp(it->data, key, len) == 0)
            return it;
    return NULL;
}

static struct idem_item *idem_item_new(const void *key, uint32_t key_len, int64_t ts,
                                       uint64_t fp, const void *result, uint32_t result_len)
{
    struct idem_item *it = malloc(sizeof *it + key_len + result_len);
    if (!it)
        return NULL;
    it->next = NULL;
    it->h = idem_fnv(key, key_len);
    it->ts_ms = ts;
    it->fp = fp;
    it->key_len = key_len;
    it->result_len = result_len;
    memcpy(it->data, key, key_len);
    memcpy(it->data + key_len, result, result_len);
    return it;
}

int idem_lookup(struct ledger *l, const struct proto_cmd *c, int *found, uint64_t *fp,
                struct proto_result *res, struct ledger_error *err)
{
    l->scratch.len = 0;
    if (proto_cmd_encode(&l->scratch, c) != 0) {
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory encoding a command");
        return LEDGER_ENOMEM;
    }
    *fp = idem_fnv(l->scratch.data, l->scratch.len);
    *found = 0;
    struct idem_item *it = idem_find(&l->idem, c->key.ptr, c->key.len);
    if (!it)
        return 0;
    if (it->fp != *fp) {
        *found = -1;
        ledger_refuse(res, PROTO_ERR_CONFLICT,
                      "key: \"%.*s\" was already used for a different request",
                      (int)(c->key.len > 64 ? 64 : c->key.len), c->key.ptr);
        return 0;
    }
    struct proto_error perr;
    if (proto_result_decode(it->data + it->key_len, it->result_len, res, &perr) != 0) {
        err->code = LEDGER_ECORRUPT;
        snprintf(err->message, sizeof err->message, "stored result for a key: %s",
                 perr.message);
        return LEDGER_ECORRUPT;
    }
    *found = 1;
    return 0;
}

int idem_store(struct ledger *l, const struct proto_cmd *c, uint64_t fp,
               const struct proto_result *res, struct ledger_error *err)
{
    l->scratch.len = 0;
    struct idem_item *it = NULL;
    if (proto_result_encode(&l->scratch, res) == 0)
        it = idem_item_new(c->key.ptr, c->key.len, l->now_ms, fp, l->scratch.data,
                           (uint32_t)l->scratch.len);
    if (!it || idem_push(&l->idem, it) != 0) {
        free(it);
        err->code = LEDGER_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory storing a key");
        return LEDGER_ENOMEM;
    }
    return 0;
}

int idem_prune(struct ledger *l, int64_t before_ms, struct ledger_error *err)
{
    (void)err;
    struct idem_store *s = &l->idem;
    /* Unlink now, free at the end of the entry (an undo may bring them back). */
    while (s->head < s->tail && idem_at(s, s->head)->ts_ms < before_ms) {
        idem_unlink(s, idem_at(s, s->head));
        s->head++;
    }
    return 0;
}

void idem_entry_begin(struct ledger *l)
{
    l->idem.entry_head = l->idem.head;
    l->idem.entry_tail = l->idem.tail;
}

void idem_entry_end(struct ledger *l)
{
    struct idem_store *s = &l->idem;
    for (uint64_t p = s->entry_head; p < s->head; p++)
        free(idem_at(s, p));
    s->entry_head = s->head;
    s->entry_tail = s->tail;
}

void idem_entry_undo(struct ledger *l)
{
    struct idem_store *s = &l->idem;
    while (s->tail > s->entry_tail) {
        s->tail--;
        struct idem_item *it = idem_at(s, s->tail);
        idem_unlink(s, it);
        free(it);
    }
    while (s->head > s->entry_head) {
        s->head--;
        idem_link(s, idem_at(s, s->head));
    }
}

void idem_reset(struct ledger *l)
{
    struct idem_store *s = &l->idem;
    for (uint64_t p = s->entry_head; p < s->tail; p++)
        free(idem_at(s, p));
    free(s->fifo);
    free(s->buckets);
    memset(s, 0, sizeof *s);
}

uint64_t idem_count(const struct ledger *l)
{
    return l->idem.tail - l->idem.head;
}

void idem_each(const struct ledger *l, idem_visit_cb cb, void *arg)
{
    const struct idem_store *s = &l->idem;
    for (uint64_t p = s->head; p < s->tail; p++) {
        const struct idem_item *it = s->fifo[p & (s->fifo_cap - 1)];
        cb(arg, it->data, it->key_len, it->ts_ms, it->fp, it->data + it->key_len,
           it->result_len);
    }
}

int idem_load(struct ledger *l, const void *key, uint32_t key_len, int64_t ts, uint64_t fp,
              const void *result, uint32_t result_len)
{
    if (key_len == 0 || key_len > PROTO_KEY_MAX)
        return -1;
    struct idem_item *it = idem_item_new(key, key_len, ts, fp, result, result_len);
    if (!it || idem_push(&l->idem, it) != 0) {
        free(it);
        return -1;
    }
    l->idem.entry_head = l->idem.head;
    l->idem.entry_tail = l->idem.tail;
    return 0;
}
