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
 * pops from the front) and in an open-addressing hash table (linear probing,
 * backward-shift deletion) whose slots carry the key hash, so the common
 * case — a new key — costs one cache line instead of a walk over items.  Snapshots carry them
 * after the SQLite image (snapshot.c); the state hash covers them in FIFO
 * order (hash.c).  Within an entry, additions and prunes are undone on a
 * hard error (idem_entry_undo).
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "ledger/internal.h"

struct idem_item {
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

/* Where a key lives in the table.  Only this process sees it (snapshots and
 * the state hash go by the FIFO), so it is a fast word-at-a-time mix rather
 * than the fingerprint's FNV-1a. */
static uint64_t idem_key_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static struct idem_item *idem_at(const struct idem_store *s, uint64_t pos)
{
    return s->fifo[pos & (s->fifo_cap - 1)];
}

static uint64_t idem_home(const struct idem_store *s, uint64_t h)
{
    return h & (s->slot_count - 1);
}

static void idem_link(struct idem_store *s, struct idem_item *it)
{
    uint64_t mask = s->slot_count - 1;
    uint64_t i = idem_home(s, it->h);
    while (s->slots[i].it)
        i = (i + 1) & mask;
    s->slots[i] = (struct idem_slot){it->h, it};
}

static void idem_unlink(struct idem_store *s, struct idem_item *it)
{
    uint64_t mask = s->slot_count - 1;
    uint64_t i = idem_home(s, it->h);
    while (s->slots[i].it != it) {
        assert(s->slots[i].it != NULL);
        i = (i + 1) & mask;
    }
    /* Backward shift: pull later members of the run into the hole when
     * their home is not between the hole and them. */
    for (uint64_t j = (i + 1) & mask; s->slots[j].it; j = (j + 1) & mask) {
        uint64_t k = idem_home(s, s->slots[j].h);
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].it = NULL;
}

/* The slot table: zeroed pages from mmap, on huge pages where the kernel
 * allows (THP "madvise" mode), because lookups land on random slots of a
 * table far larger than the TLB reaches with 4 KiB pages. */
#define IDEM_HUGE_PAGE (2u << 20)

static size_t idem_table_bytes(uint64_t n)
{
    return (size_t)n * sizeof(struct idem_slot); /* a power of two, >= 128 KiB */
}

static struct idem_slot *idem_table_new(uint64_t n)
{
    size_t bytes = idem_table_bytes(n);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= 2 * IDEM_HUGE_PAGE) /* small tables stay on small pages */
        madvise(p, bytes, MADV_HUGEPAGE); /* a hint: 4 KiB pages work too */
#endif
    return p;
}

static void idem_table_free(struct idem_slot *t, uint64_t n)
{
    if (t)
        munmap(t, idem_table_bytes(n));
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
    if ((count + 1) * 2 > s->slot_count) {
        uint64_t n = s->slot_count ? s->slot_count * 2 : 8192;
        struct idem_slot *t = idem_table_new(n);
        if (!t)
            return -1;
        /* From the old slots (they carry the hashes): no item is touched. */
        struct idem_slot *old = s->slots;
        uint64_t old_count = s->slot_count;
        s->slots = t;
        s->slot_count = n;
        for (uint64_t i = 0; i < old_count; i++) {
            if (!old[i].it)
                continue;
            uint64_t j = idem_home(s, old[i].h);
            while (t[j].it)
                j = (j + 1) & (n - 1);
            t[j] = old[i];
        }
        idem_table_free(old, old_count);
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
    if (s->slot_count == 0)
        return NULL;
    uint64_t h = idem_key_hash(key, len);
    uint64_t mask = s->slot_count - 1;
    for (uint64_t i = idem_home(s, h); s->slots[i].it; i = (i + 1) & mask) {
        struct idem_item *it = s->slots[i].it;
        if (s->slots[i].h == h && it->key_len == len && memcmp(it->data, key, len) == 0)
            return it;
    }
    return NULL;
}

void idem_prefetch(const struct ledger *l, const struct proto_cmd *cmds, uint32_t count)
{
    const struct idem_store *s = &l->idem;
    if (s->slot_count == 0)
        return;
    for (uint32_t i = 0; i < count; i++)
        if (cmds[i].key.len > 0)
            __builtin_prefetch(&s->slots[idem_home(s, idem_key_hash(cmds[i].key.ptr,
                                                                      cmds[i].key.len))]);
}

static struct idem_item *idem_item_new(const void *key, uint32_t key_len, int64_t ts,
                                       uint64_t fp, const void *result, uint32_t result_len)
{
    struct idem_item *it = malloc(sizeof *it + key_len + result_len);
    if (!it)
        return NULL;
    it->h = idem_key_hash(key, key_len);
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
    if (c->encoded.len > 0) {
        /* Decoded from an entry: the bytes are already the canonical form. */
        *fp = idem_fnv(c->encoded.ptr, c->encoded.len);
    } else {
        l->scratch.len = 0;
        if (proto_cmd_encode(&l->scratch, c) != 0) {
            err->code = LEDGER_ENOMEM;
            snprintf(err->message, sizeof err->message, "out of memory encoding a command");
            return LEDGER_ENOMEM;
        }
        *fp = idem_fnv(l->scratch.data, l->scratch.len);
    }
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
    idem_table_free(s->slots, s->slot_count);
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
