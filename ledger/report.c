/*
 * report.c — month-end reports over the journal (ledger.h, "reports"):
 * chargeback matrix, spend by metadata, trial balance, raw transfers.
 *
 * One pass over the month's journal rows (the id range found by binary
 * search over time-ordered ids), aggregating in C rather than with SQL GROUP
 * BY: metadata is a msgpack blob SQLite cannot look into, and SQLite's sorter
 * is slower than a hash table on ten million rows.  Each group-by value is
 * interned once in a per-column dictionary, so a group's key is a short tuple
 * of integers (dictionary ids, account indexes) and the per-row work is a
 * few small hash probes.  With millions of groups those probes miss the
 * cache, so rows pass through a short pipeline (rep_pipe_step) that
 * prefetches each row's slots some rows before it uses them.  Group-by
 * values are read straight from the stored msgpack bytes, only the
 * requested keys kept.  Groups are then ordered by the rank of each key
 * column — the value's byte order, the account's *name* order — with an LSD
 * radix sort over the packed ranks, so the output is a function of the
 * month's postings alone: equal on every replica and on every run (the
 * unit test test_report_output_equals_recorded_digests holds the bytes).
 * tests/bench/report_month measures it at 10M postings.
 *
 * Sums are int64 micros with every addition overflow-checked
 * (LEDGER_EOVERFLOW).  Nothing here writes to the database.
 */
#include <stdlib.h>

#include "ledger/internal.h"
#include "proto/mp.h"

#define REP_EMPTY UINT32_MAX
#define REP_FREE UINT64_MAX /* a free hash-table slot */
#define REP_GROUPS_MAX (UINT32_MAX / 4) /* groups of one view */
/* For the prefetch helpers: GCC counts a prefetch as no side effect, so a
 * helper that only prefetches is "pure" to it and a call that it did not
 * inline gets deleted. */
#define REP_PREFETCHER static inline __attribute__((always_inline)) void

static const char *const rep_kind_names[] = {
    [LEDGER_REPORT_CHARGEBACK] = "chargeback",
    [LEDGER_REPORT_SPEND] = "spend",
    [LEDGER_REPORT_TRIAL_BALANCE] = "trial-balance",
    [LEDGER_REPORT_TRANSFERS] = "transfers",
};

int ledger_report_kind_parse(const char *name)
{
    for (int k = LEDGER_REPORT_CHARGEBACK; k <= LEDGER_REPORT_TRANSFERS; k++)
        if (strcmp(name, rep_kind_names[k]) == 0)
            return k;
    return -1;
}

const char *ledger_report_kind_name(int kind)
{
    if (kind < LEDGER_REPORT_CHARGEBACK || kind > LEDGER_REPORT_TRANSFERS)
        return NULL;
    return rep_kind_names[kind];
}

/* A string view into a row's metadata or the key list. */
struct rep_val {
    const char *p;
    uint32_t n;
};

/* The distinct strings of one key column (a metadata key's values, or the
 * cost centers), each stored once: ids in first-seen order, then ranks in
 * byte order for sorting.  Entry layout in the arena: uint16 length, the
 * bytes, a NUL. */
struct rep_dict {
    uint32_t count;
    uint32_t cap;
    uint32_t *off;   /* id -> arena offset */
    uint64_t *slots; /* hash << 32 | id, REP_FREE when free */
    uint32_t slot_count;
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    uint32_t *rank;  /* id -> position in byte order (rep_dict_rank) */
};

/* Sums of one group of postings. */
struct rep_sum {
    uint64_t count;
    int64_t amount_micros;
    int64_t overrun_micros;
};

/* One group: its sums, then its key. */
struct rep_rec {
    struct rep_sum sum;
    uint32_t key[];
};

/* Groups keyed by a fixed-width tuple of uint32 (dictionary ids or account
 * indexes), in first-seen order, with an open-addressing index.  A slot
 * holds the hash with the index, so probing touches a group's record only
 * when the hashes agree, and the record keeps sums and key together: one
 * cache miss per posting when groups are many. */
struct rep_table {
    uint32_t width;
    size_t stride;   /* bytes per record, a multiple of 8 */
    char *recs;      /* count records of struct rep_rec + width keys */
    uint32_t count;
    uint32_t cap;
    uint64_t *slots; /* hash << 32 | index, REP_FREE when free */
    uint32_t slot_count;
};

/* How to order one key column: its rank array and how many ranks exist. */
struct rep_order {
    const uint32_t *rank;
    uint32_t radix;
};

/* Everything one report run needs. */
struct rep {
    struct ledger *l;
    struct ledger_error *err;
    uint64_t first_id; /* the month: ids [first_id, end_id) */
    uint64_t end_id;
    uint32_t *rank;  /* account index -> position in name order */
    uint32_t *order; /* position in name order -> account index */
    struct rep_dict cost_centers;
    uint32_t *cost_center; /* account index -> cost_centers id, REP_EMPTY until loaded */
    ledger_report_cb cb;
    void *arg;
    uint64_t offset; /* rows to skip */
    uint64_t at;     /* rows produced so far, skipped ones included */
    bool is_stopped; /* cb asked to stop */
};

static int rep_fail(struct rep *r, int code, const char *fmt, const char *what)
{
    r->err->code = code;
    snprintf(r->err->message, sizeof r->err->message, fmt, what);
    return code;
}

static int rep_nomem(struct rep *r)
{
    return rep_fail(r, LEDGER_ENOMEM, "report: %s", "out of memory");
}

static int rep_overflow(struct rep *r, const char *what)
{
    return rep_fail(r, LEDGER_EOVERFLOW, "report: the %s does not fit in int64 micros", what);
}

/* Hand one row to the callback unless it is before the offset. */
static void rep_emit(struct rep *r, const struct ledger_report_row *row)
{
    if (r->is_stopped)
        return;
    if (r->at++ < r->offset)
        return;
    if (r->cb(r->arg, row) != 0)
        r->is_stopped = true;
}

/* Reallocate the array at *pp to `want` elements of `size` bytes. */
static int rep_grow(struct rep *r, void *pp, size_t size, size_t want)
{
    void **p = pp;
    void *n = realloc(*p, want * size);
    if (!n)
        return rep_nomem(r);
    *p = n;
    return 0;
}

/* Replace *slots by `count` slots (a power of two) holding the same
 * entries, each filed under its hash (the high 32 bits). */
static int rep_slots_grow(struct rep *r, uint64_t **slots, uint32_t *slot_count, uint32_t count)
{
    uint64_t *s = malloc((size_t)count * sizeof *s);
    if (!s)
        return rep_nomem(r);
    memset(s, 0xff, (size_t)count * sizeof *s);
    for (uint32_t i = 0; i < *slot_count; i++) {
        uint64_t e = (*slots)[i];
        if (e == REP_FREE)
            continue;
        uint32_t k = (uint32_t)(e >> 32) & (count - 1);
        while (s[k] != REP_FREE)
            k = (k + 1) & (count - 1);
        s[k] = e;
    }
    free(*slots);
    *slots = s;
    *slot_count = count;
    return 0;
}

static uint32_t rep_mix(uint64_t h)
{
    h ^= h >> 33; /* splitmix64's finalizer: spreads FNV's weak low bits */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* ---- sorting ---- */

/* Sort n records of `stride` 64-bit words by their low `bits` bits (the
 * key: word 0 lowest, then word 1, ...) with an LSD radix sort on 8-bit
 * digits, stable, using tmp (as large as rec) as the other buffer.  A few
 * sequential passes, where comparing would miss the cache on every step;
 * a digit that is the same in every record costs no pass.  Returns the
 * buffer that holds the result and frees the other. */
static uint64_t *rep_radix_sort(uint64_t *rec, uint64_t *tmp, size_t n, size_t stride,
                                uint32_t bits)
{
    size_t count[256];
    for (uint32_t digit = 0; digit * 8 < bits; digit++) {
        uint32_t at = digit / 8, sh = digit % 8 * 8;
        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++)
            count[(rec[i * stride + at] >> sh) & 0xff]++;
        if (n == 0 || count[(rec[at] >> sh) & 0xff] == n)
            continue;
        size_t sum = 0;
        for (size_t k = 0; k < 256; k++) {
            size_t c = count[k];
            count[k] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            const uint64_t *x = &rec[i * stride];
            uint64_t *y = &tmp[count[(x[at] >> sh) & 0xff]++ * stride];
            for (size_t k = 0; k < stride; k++) /* a few words: no memcpy call */
                y[k] = x[k];
        }
        uint64_t *swap = rec;
        rec = tmp;
        tmp = swap;
    }
    free(tmp);
    return rec;
}

/* ---- dictionaries ---- */

/* Eight bytes a step (a byte-wise hash is a long chain of multiplies per
 * value); only hash tables see it, so it need not be stable anywhere. */
static uint32_t rep_str_hash(const char *p, uint32_t n)
{
    uint64_t h = 1469598103934665603ULL ^ n, w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, p, n);
    return rep_mix((h ^ w) * 0x9e3779b97f4a7c15ULL);
}

static const char *rep_dict_str(const struct rep_dict *d, uint32_t id, uint16_t *len)
{
    const char *p = d->arena + d->off[id];
    memcpy(len, p, sizeof *len);
    return p + sizeof *len;
}

static void rep_dict_free(struct rep_dict *d)
{
    free(d->off);
    free(d->slots);
    free(d->arena);
    free(d->rank);
    memset(d, 0, sizeof *d);
}

static int rep_dict_grow(struct rep *r, struct rep_dict *d)
{
    if (d->cap >= REP_GROUPS_MAX)
        return rep_fail(r, LEDGER_ENOMEM, "report: more than %s distinct values", "2^30");
    uint32_t cap = d->cap ? d->cap * 2 : 64;
    int rc = rep_grow(r, &d->off, sizeof *d->off, cap);
    if (rc == 0)
        rc = rep_slots_grow(r, &d->slots, &d->slot_count, cap * 2);
    if (rc == 0)
        d->cap = cap;
    return rc;
}

/* The id of string v, whose rep_str_hash is h, in d; added when new. */
static int rep_dict_id_hashed(struct rep *r, struct rep_dict *d, struct rep_val v, uint32_t h,
                              uint32_t *id)
{
    if (d->count == d->cap) {
        int rc = rep_dict_grow(r, d);
        if (rc)
            return rc;
    }
    uint32_t mask = d->slot_count - 1;
    uint32_t k = h & mask;
    for (; d->slots[k] != REP_FREE; k = (k + 1) & mask) {
        if ((uint32_t)(d->slots[k] >> 32) != h)
            continue;
        uint32_t i = (uint32_t)d->slots[k];
        uint16_t n;
        const char *p = rep_dict_str(d, i, &n);
        if (n == v.n && memcmp(p, v.p, n) == 0) {
            *id = i;
            return 0;
        }
    }
    size_t need = sizeof(uint16_t) + v.n + 1;
    if (d->arena_len + need > d->arena_cap) {
        size_t cap = d->arena_cap ? d->arena_cap : 4096;
        while (d->arena_len + need > cap)
            cap *= 2;
        if (cap > UINT32_MAX)
            return rep_fail(r, LEDGER_ENOMEM, "report: distinct values exceed %s", "4 GiB");
        int rc = rep_grow(r, &d->arena, 1, cap);
        if (rc)
            return rc;
        d->arena_cap = cap;
    }
    char *p = d->arena + d->arena_len;
    uint16_t n = (uint16_t)v.n;
    memcpy(p, &n, sizeof n);
    memcpy(p + sizeof n, v.p, n);
    p[sizeof n + n] = '\0';
    d->off[d->count] = (uint32_t)d->arena_len;
    d->arena_len += need;
    d->slots[k] = (uint64_t)h << 32 | d->count;
    *id = d->count++;
    return 0;
}

static int rep_dict_id(struct rep *r, struct rep_dict *d, struct rep_val v, uint32_t *id)
{
    return rep_dict_id_hashed(r, d, v, rep_str_hash(v.p, v.n), id);
}

/* Ask the cache for the slot where a string hashed h is looked up. */
REP_PREFETCHER rep_dict_prefetch(const struct rep_dict *d, uint32_t h)
{
    if (d->slot_count > 0)
        __builtin_prefetch(&d->slots[h & (d->slot_count - 1)]);
}

/* A dictionary string to sort: 8 bytes of it (after the prefix every string
 * shares) as a big-endian number, then its id; two words, as
 * rep_radix_sort wants them. */
enum { REP_DK_PREFIX, REP_DK_ID, REP_DK_WORDS };

/* Byte order of two dictionary strings (shorter first on a common prefix);
 * a and b are REP_DK_WORDS-word keys. */
static int rep_dict_cmp(const void *a, const void *b, void *arg)
{
    const uint64_t *x = a, *y = b;
    if (x[REP_DK_PREFIX] != y[REP_DK_PREFIX])
        return x[REP_DK_PREFIX] < y[REP_DK_PREFIX] ? -1 : 1;
    const struct rep_dict *d = arg;
    uint16_t na, nb;
    const char *pa = rep_dict_str(d, (uint32_t)x[REP_DK_ID], &na);
    const char *pb = rep_dict_str(d, (uint32_t)y[REP_DK_ID], &nb);
    int c = memcmp(pa, pb, na < nb ? na : nb);
    return c != 0 ? c : (na > nb) - (na < nb);
}

/* Rank every string of d in byte order (shorter first on a common prefix):
 * radix-sorted by the 8-byte prefix, then each run of equal prefixes (the
 * prefix order never contradicts byte order) sorted by comparing. */
static int rep_dict_rank(struct rep *r, struct rep_dict *d)
{
    size_t n = d->count;
    uint64_t *keys = malloc((n * REP_DK_WORDS + 1) * sizeof *keys);
    uint64_t *tmp = malloc((n * REP_DK_WORDS + 1) * sizeof *tmp);
    free(d->rank);
    d->rank = malloc((n + 1) * sizeof *d->rank);
    if (!keys || !tmp || !d->rank) {
        free(keys);
        free(tmp);
        return rep_nomem(r);
    }
    /* The longest prefix all strings share carries no order: skip it. */
    uint16_t lcp = 0, len;
    const char *first = n ? rep_dict_str(d, 0, &lcp) : "";
    for (uint32_t i = 1; i < n && lcp > 0; i++) {
        const char *p = rep_dict_str(d, i, &len);
        uint16_t k = 0;
        while (k < lcp && k < len && p[k] == first[k])
            k++;
        lcp = k;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *p = rep_dict_str(d, i, &len);
        uint64_t v = 0;
        for (uint32_t k = 0; k < 8; k++) {
            uint8_t byte = (uint32_t)lcp + k < len ? (uint8_t)p[lcp + k] : 0;
            v = v << 8 | byte;
        }
        keys[i * REP_DK_WORDS + REP_DK_PREFIX] = v;
        keys[i * REP_DK_WORDS + REP_DK_ID] = i;
    }
    keys = rep_radix_sort(keys, tmp, n, REP_DK_WORDS, 64);
    for (size_t i = 0, run; i < n; i += run) {
        uint64_t v = keys[i * REP_DK_WORDS + REP_DK_PREFIX];
        for (run = 1; i + run < n && keys[(i + run) * REP_DK_WORDS + REP_DK_PREFIX] == v; run++)
            ;
        if (run > 1)
            qsort_r(&keys[i * REP_DK_WORDS], run, REP_DK_WORDS * sizeof *keys, rep_dict_cmp, d);
    }
    for (uint32_t i = 0; i < n; i++)
        d->rank[keys[i * REP_DK_WORDS + REP_DK_ID]] = i;
    free(keys);
    return 0;
}

/* ---- account names and tags ---- */

static int rep_name_cmp(const void *a, const void *b, void *arg)
{
    const struct acct *accts = arg;
    return strcmp(accts[*(const uint32_t *)a].name, accts[*(const uint32_t *)b].name);
}

static int rep_ranks(struct rep *r)
{
    uint32_t n = r->l->acct_count;
    r->rank = malloc(((size_t)n + 1) * sizeof *r->rank);
    r->order = malloc(((size_t)n + 1) * sizeof *r->order);
    if (!r->rank || !r->order)
        return rep_nomem(r);
    for (uint32_t i = 0; i < n; i++)
        r->order[i] = i;
    qsort_r(r->order, n, sizeof *r->order, rep_name_cmp, r->l->accts);
    for (uint32_t i = 0; i < n; i++)
        r->rank[r->order[i]] = i;
    return 0;
}

/* The account index of a journal column, or -1 when it names no account. */
static int32_t rep_account(const struct rep *r, int64_t id)
{
    if (id < 1 || (uint64_t)id > r->l->acct_count)
        return -1;
    return (int32_t)(id - 1);
}

static int rep_corrupt(struct rep *r, uint64_t id)
{
    char what[32];
    snprintf(what, sizeof what, "%llu", (unsigned long long)id);
    return rep_fail(r, LEDGER_ECORRUPT, "journal row %s names no account", what);
}

/* The string at m's cursor when it is a fixstr or str8 that fits (what
 * every encoder writes for values of at most 255 bytes), moving past it;
 * else false with nothing moved, and the caller asks mp_str_read, which
 * knows every string form.  Per posting this runs once per map entry,
 * twice, so it is inline where mp_str_read goes through the general head
 * parser. */
static inline bool rep_str_fast(struct mp_reader *m, struct rep_val *out)
{
    const uint8_t *p = m->pos;
    size_t left = (size_t)(m->end - p);
    if (left == 0)
        return false;
    uint32_t head = 1, n = p[0] & 0x1f;
    if ((p[0] & 0xe0) != 0xa0) {
        if (p[0] != 0xd9 || left < 2)
            return false;
        head = 2;
        n = p[1];
    }
    if (left - head < n)
        return false;
    *out = (struct rep_val){(const char *)p + head, n};
    m->pos = p + head + n;
    return true;
}

static bool rep_str_next(struct mp_reader *m, struct rep_val *out)
{
    if (rep_str_fast(m, out))
        return true;
    const char *p = NULL;
    uint32_t n = 0;
    if (mp_str_read(m, &p, &n) != MP_OK)
        return false;
    *out = (struct rep_val){p, n};
    return true;
}

/* The values of `keys` in a stored msgpack string map ("" when missing or
 * not a string; the last one when a key repeats). */
static void rep_map_values(const void *blob, int len, const struct rep_val *keys, uint32_t kc,
                           struct rep_val *out)
{
    for (uint32_t j = 0; j < kc; j++)
        out[j] = (struct rep_val){"", 0};
    if (!blob || len <= 0 || kc == 0)
        return;
    struct mp_reader m;
    uint32_t count = 0;
    mp_reader_init(&m, blob, (size_t)len);
    if (mp_map_read(&m, &count) != MP_OK)
        return;
    for (uint32_t i = 0; i < count; i++) {
        struct rep_val k, v;
        if (!rep_str_next(&m, &k))
            return;
        if (!rep_str_next(&m, &v)) {
            if (mp_value_skip(&m, 4) != MP_OK)
                return;
            continue;
        }
        for (uint32_t j = 0; j < kc; j++)
            if (keys[j].n == k.n && memcmp(keys[j].p, k.p, k.n) == 0)
                out[j] = v;
    }
}

/* The cost_center tag of account i as an id in r->cost_centers ("" when
 * none), read from the account row once per report. */
static int rep_cost_center(struct rep *r, uint32_t i, uint32_t *id)
{
    if (!r->cost_center) {
        size_t n = (size_t)r->l->acct_count + 1;
        r->cost_center = malloc(n * sizeof *r->cost_center);
        if (!r->cost_center)
            return rep_nomem(r);
        memset(r->cost_center, 0xff, n * sizeof *r->cost_center);
    }
    if (r->cost_center[i] != REP_EMPTY) {
        *id = r->cost_center[i];
        return 0;
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(r->l->db, "SELECT tags FROM account WHERE id = ?1", -1, &s, NULL) !=
        SQLITE_OK)
        return store_sql_error(r->l, r->err, "report: account tags");
    sqlite3_bind_int64(s, 1, (int64_t)i + 1);
    static const struct rep_val key = {LEDGER_REPORT_COST_CENTER_TAG,
                                       sizeof LEDGER_REPORT_COST_CENTER_TAG - 1};
    struct rep_val v = {"", 0};
    if (sqlite3_step(s) == SQLITE_ROW)
        rep_map_values(sqlite3_column_blob(s, 0), sqlite3_column_bytes(s, 0), &key, 1, &v);
    int rc = rep_dict_id(r, &r->cost_centers, v, id); /* copies v before finalize */
    sqlite3_finalize(s);
    if (rc == 0)
        r->cost_center[i] = *id;
    return rc;
}

/* ---- the group table ---- */

static uint32_t rep_key_hash(const uint32_t *key, uint32_t width)
{
    uint64_t h = 1469598103934665603ULL;
    uint32_t j = 0;
    for (; j + 2 <= width; j += 2) /* two columns a multiply */
        h = (h ^ ((uint64_t)key[j] << 32 | key[j + 1])) * 0x9e3779b97f4a7c15ULL;
    if (j < width)
        h = (h ^ key[j]) * 0x9e3779b97f4a7c15ULL;
    return rep_mix(h);
}

static struct rep_rec *rep_rec(const struct rep_table *t, uint32_t i)
{
    return (struct rep_rec *)(t->recs + (size_t)i * t->stride);
}

static void rep_table_init(struct rep_table *t, uint32_t width)
{
    memset(t, 0, sizeof *t);
    t->width = width;
    t->stride = (sizeof(struct rep_rec) + width * sizeof(uint32_t) + 7) / 8 * 8;
}

static void rep_table_free(struct rep_table *t)
{
    free(t->recs);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static int rep_table_grow(struct rep *r, struct rep_table *t)
{
    if (t->cap >= REP_GROUPS_MAX)
        return rep_fail(r, LEDGER_ENOMEM, "report: more than %s groups", "2^30");
    uint32_t cap = t->cap ? t->cap * 2 : 1024;
    int rc = rep_grow(r, &t->recs, t->stride, cap);
    if (rc == 0)
        rc = rep_slots_grow(r, &t->slots, &t->slot_count, cap * 2);
    if (rc == 0)
        t->cap = cap;
    return rc;
}

/* Add `sum` to the group of `key` (t->width values), whose rep_key_hash
 * is h. */
static int rep_table_add_hashed(struct rep *r, struct rep_table *t, const uint32_t *key,
                                uint32_t h, const struct rep_sum *sum)
{
    if (t->count == t->cap) {
        int rc = rep_table_grow(r, t);
        if (rc)
            return rc;
    }
    uint32_t w = t->width, mask = t->slot_count - 1;
    uint32_t k = h & mask;
    for (; t->slots[k] != REP_FREE; k = (k + 1) & mask) {
        if ((uint32_t)(t->slots[k] >> 32) != h)
            continue;
        struct rep_rec *x = rep_rec(t, (uint32_t)t->slots[k]);
        if (memcmp(x->key, key, w * sizeof *key) != 0)
            continue;
        struct rep_sum *g = &x->sum;
        g->count += sum->count;
        if (__builtin_add_overflow(g->amount_micros, sum->amount_micros, &g->amount_micros))
            return rep_overflow(r, "sum of a group's amounts");
        if (__builtin_add_overflow(g->overrun_micros, sum->overrun_micros, &g->overrun_micros))
            return rep_overflow(r, "sum of a group's overruns");
        return 0;
    }
    struct rep_rec *x = rep_rec(t, t->count);
    x->sum = *sum;
    memcpy(x->key, key, w * sizeof *key);
    t->slots[k] = (uint64_t)h << 32 | t->count++;
    return 0;
}

static int rep_table_add(struct rep *r, struct rep_table *t, const uint32_t *key,
                         const struct rep_sum *sum)
{
    return rep_table_add_hashed(r, t, key, rep_key_hash(key, t->width), sum);
}

/* Ask the cache for the slot of hash h, and for the record it names when
 * the slot is already in the cache (an earlier rep_table_prefetch). */
REP_PREFETCHER rep_table_prefetch(const struct rep_table *t, uint32_t h, bool is_slot_cached)
{
    if (t->slot_count == 0)
        return;
    const uint64_t *slot = &t->slots[h & (t->slot_count - 1)];
    if (!is_slot_cached) {
        __builtin_prefetch(slot);
        return;
    }
    if (*slot != REP_FREE && (uint32_t)*slot < t->count)
        __builtin_prefetch(rep_rec(t, (uint32_t)*slot));
}

/* Bits that hold any rank below `radix`. */
static uint32_t rep_bits(uint32_t radix)
{
    return radix <= 1 ? 0 : 32 - (uint32_t)__builtin_clz(radix - 1);
}

/* Group indexes of t in report order: by the rank of each key column, the
 * first column most significant.  The ranks are packed into one wide
 * integer per group (little-endian 64-bit words, the last column in the
 * lowest bits), stored next to the group's index, and the records are
 * radix-sorted (rep_radix_sort).  The caller frees *out. */
static int rep_table_sorted(struct rep *r, const struct rep_table *t,
                            const struct rep_order *cols, uint32_t **out)
{
    size_t n = t->count, w = t->width;
    uint32_t off[LEDGER_REPORT_GROUP_MAX + 2], total_bits = 0;
    for (size_t c = w; c-- > 0;) {
        off[c] = total_bits;
        total_bits += rep_bits(cols[c].radix);
    }
    size_t words = (total_bits + 63) / 64, stride = words + 1; /* + the index */
    uint64_t *rec = calloc(n * stride + 1, sizeof *rec);
    uint64_t *tmp = malloc((n * stride + 1) * sizeof *tmp);
    uint32_t *order = malloc((n + 1) * sizeof *order);
    if (!rec || !tmp || !order) {
        free(rec);
        free(tmp);
        free(order);
        return rep_nomem(r);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t *x = &rec[i * stride];
        for (size_t c = 0; c < w; c++) {
            uint32_t bits = rep_bits(cols[c].radix);
            if (bits == 0)
                continue;
            uint64_t v = cols[c].rank[rep_rec(t, (uint32_t)i)->key[c]];
            uint32_t at = off[c] / 64, sh = off[c] % 64;
            x[at] |= v << sh;
            if (sh + bits > 64)
                x[at + 1] |= v >> (64 - sh);
        }
        x[words] = i;
    }
    rec = rep_radix_sort(rec, tmp, n, stride, total_bits);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)rec[i * stride + words];
    free(rec);
    *out = order;
    return 0;
}

/* ---- scanning the month ---- */

static int rep_scan_prepare(struct rep *r, const char *sql, sqlite3_stmt **s)
{
    if (sqlite3_prepare_v2(r->l->db, sql, -1, s, NULL) != SQLITE_OK)
        return store_sql_error(r->l, r->err, "report: journal");
    sqlite3_bind_int64(*s, 1, (int64_t)r->first_id);
    sqlite3_bind_int64(*s, 2, (int64_t)r->end_id);
    return 0;
}

static int rep_scan_done(struct rep *r, sqlite3_stmt *s, int step_rc, int rc)
{
    if (rc == 0 && step_rc != SQLITE_DONE)
        rc = store_sql_error(r->l, r->err, "report: journal scan");
    sqlite3_finalize(s);
    return rc;
}

/* Rows between a prefetch and the access it prepares: enough to cover a
 * cache miss with other rows' work, few enough to stay in L1. */
#define REP_AHEAD 8
#define REP_RING (4 * REP_AHEAD) /* rows in flight: four stages */
_Static_assert(REP_RING > 3 * REP_AHEAD, "a row must leave the ring before it is reused");

/* One posting on its way through rep_scan_groups' stages. */
struct rep_pending {
    struct rep_sum sum;
    int64_t id;      /* the journal row, for the corruption message */
    bool is_corrupt; /* debit or credit names no account */
    uint32_t key[LEDGER_REPORT_GROUP_MAX + 2];
    uint32_t key_hash;
    struct rep_val v[LEDGER_REPORT_GROUP_MAX]; /* the group-by values, in buf */
    uint32_t v_hash[LEDGER_REPORT_GROUP_MAX];
    char *buf; /* a copy of the values: SQLite's bytes live until the next step */
    size_t buf_cap;
};

/* The scan's state: the table, the key columns, the ring of rows. */
struct rep_pipe {
    struct rep_table *t;
    const struct rep_val *keys;
    uint32_t kc;
    struct rep_dict *dicts;
    struct rep_pending ring[REP_RING];
};

/* Stage 0, as the row is read: copy the values, hash them, prefetch the
 * dictionary slots. */
static int rep_pipe_read(struct rep *r, struct rep_pipe *pp, sqlite3_stmt *s,
                         struct rep_pending *p)
{
    int32_t d = rep_account(r, sqlite3_column_int64(s, 1));
    int32_t c = rep_account(r, sqlite3_column_int64(s, 2));
    p->is_corrupt = d < 0 || c < 0;
    p->id = p->is_corrupt ? sqlite3_column_int64(s, 0) : 0;
    p->sum = (struct rep_sum){1, sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4)};
    uint32_t kc = pp->kc;
    p->key[kc] = (uint32_t)d;
    p->key[kc + 1] = (uint32_t)c;
    if (kc == 0)
        return 0;
    const void *blob = sqlite3_column_blob(s, 5);
    int len = sqlite3_column_bytes(s, 5);
    struct rep_val v[LEDGER_REPORT_GROUP_MAX];
    rep_map_values(blob, len, pp->keys, kc, v);
    /* The values lie inside the blob, so len bytes hold them all. */
    if (len > 0 && (size_t)len > p->buf_cap) {
        int rc = rep_grow(r, &p->buf, 1, (size_t)len);
        if (rc)
            return rc;
        p->buf_cap = (size_t)len;
    }
    size_t at = 0;
    for (uint32_t j = 0; j < kc; j++) {
        assert(at + v[j].n <= p->buf_cap || v[j].n == 0);
        if (v[j].n > 0)
            memcpy(p->buf + at, v[j].p, v[j].n);
        p->v[j] = (struct rep_val){v[j].n > 0 ? p->buf + at : "", v[j].n};
        at += v[j].n;
        p->v_hash[j] = rep_str_hash(v[j].p, v[j].n);
        rep_dict_prefetch(&pp->dicts[j], p->v_hash[j]);
    }
    return 0;
}

/* Stage 1: the values' dictionary ids (in row order, so ids are first-seen
 * order), the key's hash, and a prefetch of its slot. */
static int rep_pipe_key(struct rep *r, struct rep_pipe *pp, struct rep_pending *p)
{
    for (uint32_t j = 0; j < pp->kc; j++) {
        int rc = rep_dict_id_hashed(r, &pp->dicts[j], p->v[j], p->v_hash[j], &p->key[j]);
        if (rc)
            return rc;
    }
    p->key_hash = rep_key_hash(p->key, pp->t->width);
    rep_table_prefetch(pp->t, p->key_hash, false);
    return 0;
}

/* Stage 3: the sums into the group, in row order. */
static int rep_pipe_add(struct rep *r, struct rep_pipe *pp, struct rep_pending *p)
{
    if (p->is_corrupt)
        return rep_corrupt(r, (uint64_t)p->id);
    return rep_table_add_hashed(r, pp->t, p->key, p->key_hash, &p->sum);
}

/* Run the later stages of the rows behind row n (n rows read so far, or
 * past the end while draining): stage 1 of row n - AHEAD, stage 2 (prefetch
 * the group record) of n - 2 AHEAD, stage 3 of n - 3 AHEAD.  Each stage
 * still sees the rows in order, so the result equals adding them one by
 * one. */
static int rep_pipe_step(struct rep *r, struct rep_pipe *pp, uint64_t n, uint64_t rows)
{
    int rc = 0;
    if (n >= REP_AHEAD && n - REP_AHEAD < rows)
        rc = rep_pipe_key(r, pp, &pp->ring[(n - REP_AHEAD) % REP_RING]);
    if (rc == 0 && n >= 2 * REP_AHEAD && n - 2 * REP_AHEAD < rows)
        rep_table_prefetch(pp->t, pp->ring[(n - 2 * REP_AHEAD) % REP_RING].key_hash, true);
    if (rc == 0 && n >= 3 * REP_AHEAD && n - 3 * REP_AHEAD < rows)
        rc = rep_pipe_add(r, pp, &pp->ring[(n - 3 * REP_AHEAD) % REP_RING]);
    return rc;
}

/* Sum postings of `kind` into t keyed by (ids of the values of keys in
 * dicts..., debit, credit); t->width is kc + 2.  Rows go through a short
 * pipeline so the hash tables' cache misses overlap (rep_pipe_step). */
static int rep_scan_groups(struct rep *r, struct rep_table *t, int kind,
                           const struct rep_val *keys, uint32_t kc, struct rep_dict *dicts)
{
    const char *sql = kc > 0 ? "SELECT id, debit, credit, amount, overrun, metadata FROM journal"
                               " WHERE id >= ?1 AND id < ?2 AND kind = ?3"
                             : "SELECT id, debit, credit, amount, overrun FROM journal"
                               " WHERE id >= ?1 AND id < ?2 AND kind = ?3";
    sqlite3_stmt *s = NULL;
    int rc = rep_scan_prepare(r, sql, &s);
    if (rc)
        return rc;
    sqlite3_bind_int(s, 3, kind);
    struct rep_pipe *pp = calloc(1, sizeof *pp);
    if (!pp) {
        sqlite3_finalize(s);
        return rep_nomem(r);
    }
    *pp = (struct rep_pipe){.t = t, .keys = keys, .kc = kc, .dicts = dicts};
    uint64_t n = 0;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        rc = rep_pipe_read(r, pp, s, &pp->ring[n % REP_RING]);
        n++;
        if (rc == 0)
            rc = rep_pipe_step(r, pp, n, UINT64_MAX);
    }
    for (uint64_t m = n + 1; rc == 0 && step == SQLITE_DONE && m <= n + 3 * REP_AHEAD; m++)
        rc = rep_pipe_step(r, pp, m, n);
    for (uint32_t i = 0; i < REP_RING; i++)
        free(pp->ring[i].buf);
    free(pp);
    return rep_scan_done(r, s, step, rc);
}

/* What the key columns of a table mean. */
struct rep_shape {
    int kind;
    int view;
    uint32_t dict_count;         /* leading key columns that are dictionary ids */
    struct rep_dict *dicts;
    bool has_accounts;           /* then two account columns: debit, credit */
};

/* The groups are visited in sorted order, which is random in memory:
 * prefetch the record a few groups ahead, and the strings of a nearer one
 * (its record was prefetched earlier). */
REP_PREFETCHER rep_emit_prefetch(const struct rep_table *t, const struct rep_shape *sh,
                                 const uint32_t *idx, uint32_t i)
{
    if (i + 2 * REP_AHEAD < t->count)
        __builtin_prefetch(rep_rec(t, idx[i + 2 * REP_AHEAD]));
    if (i + REP_AHEAD >= t->count || sh->kind != LEDGER_REPORT_SPEND)
        return;
    const uint32_t *key = rep_rec(t, idx[i + REP_AHEAD])->key;
    for (uint32_t j = 0; j < sh->dict_count; j++)
        __builtin_prefetch(sh->dicts[j].arena + sh->dicts[j].off[key[j]]);
}

/* Emit a table's groups in order, then its total. */
static int rep_emit_table(struct rep *r, const struct rep_table *t, const struct rep_shape *sh)
{
    struct rep_order cols[LEDGER_REPORT_GROUP_MAX + 2];
    int rc = 0;
    for (uint32_t j = 0; j < sh->dict_count && rc == 0; j++) {
        rc = rep_dict_rank(r, &sh->dicts[j]);
        cols[j] = (struct rep_order){sh->dicts[j].rank, sh->dicts[j].count};
    }
    if (sh->has_accounts) {
        cols[sh->dict_count] = (struct rep_order){r->rank, r->l->acct_count};
        cols[sh->dict_count + 1] = cols[sh->dict_count];
    }
    uint32_t *idx = NULL;
    if (rc == 0)
        rc = rep_table_sorted(r, t, cols, &idx);
    if (rc)
        return rc;
    bool is_cc = sh->kind == LEDGER_REPORT_CHARGEBACK && sh->view == LEDGER_REPORT_VIEW_COST_CENTER;
    struct ledger_report_row row;
    struct ledger_report_row total = {.view = sh->view, .is_total = true, .debit = "",
                                      .credit = "", .debit_cost_center = "",
                                      .credit_cost_center = ""};
    if (sh->kind == LEDGER_REPORT_SPEND) {
        total.group_count = sh->dict_count;
        for (uint32_t j = 0; j < sh->dict_count; j++)
            total.group[j] = "";
    }
    /* The total first, so an overflow refuses the report before any row. */
    for (uint32_t i = 0; i < t->count && rc == 0; i++) {
        const struct rep_sum *g = &rep_rec(t, i)->sum;
        int64_t overrun = sh->kind == LEDGER_REPORT_SPEND ? g->overrun_micros : 0;
        total.posting_count += g->count;
        if (__builtin_add_overflow(total.amount_micros, g->amount_micros, &total.amount_micros))
            rc = rep_overflow(r, "total amount");
        else if (__builtin_add_overflow(total.overrun_micros, overrun, &total.overrun_micros))
            rc = rep_overflow(r, "total overrun");
    }
    /* Zeroed once: each row sets the same fields, the rest stay 0. */
    memset(&row, 0, sizeof row);
    for (uint32_t i = 0; i < t->count && rc == 0; i++) {
        rep_emit_prefetch(t, sh, idx, i);
        const struct rep_rec *x = rep_rec(t, idx[i]);
        const uint32_t *key = x->key;
        const struct rep_sum *g = &x->sum;
        uint16_t n;
        row.view = sh->view;
        row.debit = sh->has_accounts ? r->l->accts[key[sh->dict_count]].name : "";
        row.credit = sh->has_accounts ? r->l->accts[key[sh->dict_count + 1]].name : "";
        row.debit_cost_center = "";
        row.credit_cost_center = "";
        if (is_cc) {
            row.debit_cost_center = rep_dict_str(&sh->dicts[0], key[0], &n);
            row.credit_cost_center = rep_dict_str(&sh->dicts[1], key[1], &n);
        } else if (sh->kind == LEDGER_REPORT_CHARGEBACK) {
            uint32_t dc = 0, cc = 0;
            rc = rep_cost_center(r, key[0], &dc);
            if (rc == 0)
                rc = rep_cost_center(r, key[1], &cc);
            if (rc)
                break;
            row.debit_cost_center = rep_dict_str(&r->cost_centers, dc, &n);
            row.credit_cost_center = rep_dict_str(&r->cost_centers, cc, &n);
        } else {
            row.group_count = sh->dict_count;
            for (uint32_t j = 0; j < sh->dict_count; j++)
                row.group[j] = rep_dict_str(&sh->dicts[j], key[j], &n);
        }
        row.posting_count = g->count;
        row.amount_micros = g->amount_micros;
        row.overrun_micros = sh->kind == LEDGER_REPORT_SPEND ? g->overrun_micros : 0;
        rep_emit(r, &row);
    }
    free(idx);
    if (rc == 0)
        rep_emit(r, &total);
    return rc;
}

static int rep_chargeback(struct rep *r)
{
    struct rep_table acc, cc;
    rep_table_init(&acc, 2);
    rep_table_init(&cc, 2);
    struct rep_dict cc_dicts[2] = {{0}, {0}};
    int rc = rep_scan_groups(r, &acc, PROTO_KIND_CHARGEBACK, NULL, 0, NULL);
    struct rep_shape by_account = {LEDGER_REPORT_CHARGEBACK, LEDGER_REPORT_VIEW_ACCOUNT, 0, NULL,
                                   true};
    if (rc == 0)
        rc = rep_emit_table(r, &acc, &by_account);
    /* The cost_center view folds the account pairs, not the postings. */
    for (uint32_t i = 0; rc == 0 && i < acc.count; i++) {
        const uint32_t *key = rep_rec(&acc, i)->key;
        uint32_t dc = 0, cr = 0, ck[2];
        uint16_t dn = 0, cn = 0;
        rc = rep_cost_center(r, key[0], &dc);
        if (rc == 0)
            rc = rep_cost_center(r, key[1], &cr);
        if (rc)
            break;
        const char *dp = rep_dict_str(&r->cost_centers, dc, &dn);
        const char *cp = rep_dict_str(&r->cost_centers, cr, &cn);
        /* Own dictionaries per side, so each column ranks on its own. */
        rc = rep_dict_id(r, &cc_dicts[0], (struct rep_val){dp, dn}, &ck[0]);
        if (rc == 0)
            rc = rep_dict_id(r, &cc_dicts[1], (struct rep_val){cp, cn}, &ck[1]);
        struct rep_sum sum = rep_rec(&acc, i)->sum;
        sum.overrun_micros = 0;
        if (rc == 0)
            rc = rep_table_add(r, &cc, ck, &sum);
    }
    struct rep_shape by_cc = {LEDGER_REPORT_CHARGEBACK, LEDGER_REPORT_VIEW_COST_CENTER, 2,
                              cc_dicts, false};
    if (rc == 0)
        rc = rep_emit_table(r, &cc, &by_cc);
    rep_table_free(&acc);
    rep_table_free(&cc);
    rep_dict_free(&cc_dicts[0]);
    rep_dict_free(&cc_dicts[1]);
    return rc;
}

static int rep_spend(struct rep *r, const struct rep_val *keys, uint32_t kc)
{
    struct rep_table t;
    rep_table_init(&t, kc + 2);
    struct rep_dict dicts[LEDGER_REPORT_GROUP_MAX];
    memset(dicts, 0, sizeof dicts);
    int rc = rep_scan_groups(r, &t, PROTO_KIND_SPEND, keys, kc, dicts);
    struct rep_shape shape = {LEDGER_REPORT_SPEND, LEDGER_REPORT_VIEW_ACCOUNT, kc, dicts, true};
    if (rc == 0)
        rc = rep_emit_table(r, &t, &shape);
    rep_table_free(&t);
    for (uint32_t j = 0; j < kc; j++)
        rep_dict_free(&dicts[j]);
    return rc;
}

struct rep_balance {
    int64_t debit_micros;
    int64_t credit_micros;
    uint64_t count;
};

static int rep_trial_balance(struct rep *r)
{
    uint32_t n = r->l->acct_count;
    struct rep_balance *b = calloc((size_t)n + 1, sizeof *b);
    if (!b)
        return rep_nomem(r);
    sqlite3_stmt *s = NULL;
    int rc = rep_scan_prepare(r, "SELECT id, debit, credit, amount FROM journal"
                                 " WHERE id >= ?1 AND id < ?2", &s);
    if (rc) {
        free(b);
        return rc;
    }
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        int32_t d = rep_account(r, sqlite3_column_int64(s, 1));
        int32_t c = rep_account(r, sqlite3_column_int64(s, 2));
        int64_t amount = sqlite3_column_int64(s, 3);
        if (d < 0 || c < 0)
            rc = rep_corrupt(r, (uint64_t)sqlite3_column_int64(s, 0));
        else if (__builtin_add_overflow(b[d].debit_micros, amount, &b[d].debit_micros) ||
                 __builtin_add_overflow(b[c].credit_micros, amount, &b[c].credit_micros))
            rc = rep_overflow(r, "sum of an account's postings");
        else {
            b[d].count++;
            b[c].count++;
        }
    }
    rc = rep_scan_done(r, s, step, rc);
    struct ledger_report_row total = {.is_total = true, .debit = "", .credit = "",
                                      .debit_cost_center = "", .credit_cost_center = ""};
    /* The total first, so an overflow refuses the report before any row. */
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        int64_t net;
        /* Both sums are of amounts >= 0, so a net cannot overflow; checked
         * all the same. */
        if (__builtin_sub_overflow(b[i].credit_micros, b[i].debit_micros, &net) ||
            __builtin_add_overflow(total.debit_micros, b[i].debit_micros, &total.debit_micros) ||
            __builtin_add_overflow(total.credit_micros, b[i].credit_micros, &total.credit_micros))
            rc = rep_overflow(r, "trial balance total");
        total.posting_count += b[i].count;
    }
    for (uint32_t k = 0; rc == 0 && k < n; k++) {
        uint32_t i = r->order[k];
        if (b[i].count == 0)
            continue;
        struct ledger_report_row row = {.debit = r->l->accts[i].name, .credit = "",
                                        .debit_cost_center = "", .credit_cost_center = "",
                                        .posting_count = b[i].count,
                                        .debit_micros = b[i].debit_micros,
                                        .credit_micros = b[i].credit_micros,
                                        .net_micros = b[i].credit_micros - b[i].debit_micros};
        rep_emit(r, &row);
    }
    free(b);
    if (rc)
        return rc;
    /* Every posting debits and credits the same amount. */
    assert(total.debit_micros == total.credit_micros);
    total.net_micros = total.credit_micros - total.debit_micros;
    assert(total.net_micros == 0);
    rep_emit(r, &total);
    return 0;
}

/* Sum the month's amounts and overruns (the transfers total when the rows
 * themselves were skipped by an offset). */
static int rep_transfers_sum(struct rep *r, struct ledger_report_row *total)
{
    sqlite3_stmt *s = NULL;
    int rc = rep_scan_prepare(r, "SELECT amount, overrun FROM journal"
                                 " WHERE id >= ?1 AND id < ?2", &s);
    if (rc)
        return rc;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if (__builtin_add_overflow(total->amount_micros, sqlite3_column_int64(s, 0),
                                   &total->amount_micros) ||
            __builtin_add_overflow(total->overrun_micros, sqlite3_column_int64(s, 1),
                                   &total->overrun_micros))
            rc = rep_overflow(r, "total amount");
        total->posting_count++;
    }
    return rep_scan_done(r, s, step, rc);
}

static int rep_transfers(struct rep *r)
{
    uint64_t n = r->end_id - r->first_id;
    uint64_t skip = r->offset < n ? r->offset : n;
    r->at = skip; /* ids are dense: seek instead of reading the skipped rows */
    sqlite3_stmt *s = NULL;
    int rc = rep_scan_prepare(r, "SELECT id, ts, kind, debit, credit, amount, reservation,"
                                 " overrun, metadata FROM journal"
                                 " WHERE id >= ?1 AND id < ?2 ORDER BY id", &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, (int64_t)(r->first_id + skip));
    struct ledger_report_row total = {.is_total = true, .debit = "", .credit = "",
                                      .debit_cost_center = "", .credit_cost_center = ""};
    struct ledger_report_row row;
    int step = SQLITE_DONE;
    memset(&row, 0, sizeof row); /* once: each row sets the same fields */
    while (rc == 0 && !r->is_stopped && (step = sqlite3_step(s)) == SQLITE_ROW) {
        row.id = (uint64_t)sqlite3_column_int64(s, 0);
        int32_t d = rep_account(r, sqlite3_column_int64(s, 3));
        int32_t c = rep_account(r, sqlite3_column_int64(s, 4));
        if (d < 0 || c < 0) {
            rc = rep_corrupt(r, row.id);
            break;
        }
        row.ts_ms = sqlite3_column_int64(s, 1);
        row.kind = sqlite3_column_int(s, 2);
        row.debit = r->l->accts[d].name;
        row.credit = r->l->accts[c].name;
        row.debit_cost_center = "";
        row.credit_cost_center = "";
        row.posting_count = 1;
        row.amount_micros = sqlite3_column_int64(s, 5);
        row.reservation_id = (uint64_t)sqlite3_column_int64(s, 6);
        row.overrun_micros = sqlite3_column_int64(s, 7);
        row.metadata = sqlite3_column_blob(s, 8);
        row.metadata_len = (uint32_t)sqlite3_column_bytes(s, 8);
        total.posting_count++;
        if (__builtin_add_overflow(total.amount_micros, row.amount_micros, &total.amount_micros) ||
            __builtin_add_overflow(total.overrun_micros, row.overrun_micros,
                                   &total.overrun_micros))
            rc = rep_overflow(r, "total amount");
        else
            rep_emit(r, &row);
    }
    if (r->is_stopped)
        step = SQLITE_DONE;
    rc = rep_scan_done(r, s, step, rc);
    if (rc || r->is_stopped)
        return rc;
    if (skip > 0) { /* the skipped rows count in the total too */
        total = (struct ledger_report_row){.is_total = true, .debit = "", .credit = "",
                                           .debit_cost_center = "", .credit_cost_center = ""};
        rc = rep_transfers_sum(r, &total);
        if (rc)
            return rc;
    }
    rep_emit(r, &total);
    return 0;
}

/* ---- entry points ---- */

static int rep_check_keys(struct rep *r, int kind, const char *const *group_by, uint32_t count,
                          struct rep_val *keys)
{
    if (count > 0 && kind != LEDGER_REPORT_SPEND)
        return rep_fail(r, LEDGER_EINVAL, "group_by: only the spend report groups by metadata%s",
                        "");
    if (count > LEDGER_REPORT_GROUP_MAX)
        return rep_fail(r, LEDGER_EINVAL, "group_by: more than %s keys", "8");
    for (uint32_t j = 0; j < count; j++) {
        size_t n = group_by[j] ? strlen(group_by[j]) : 0;
        if (n == 0 || n > PROTO_MAP_KEY_MAX)
            return rep_fail(r, LEDGER_EINVAL, "group_by: key \"%s\" is empty or longer than 64 "
                            "bytes", group_by[j] ? group_by[j] : "");
        for (uint32_t i = 0; i < j; i++)
            if (strcmp(group_by[i], group_by[j]) == 0)
                return rep_fail(r, LEDGER_EINVAL, "group_by: key \"%s\" is given twice",
                                group_by[j]);
        keys[j] = (struct rep_val){group_by[j], (uint32_t)n};
    }
    return 0;
}

int ledger_report_from(struct ledger *l, int kind, int year, int month,
                       const char *const *group_by, uint32_t group_count, uint64_t offset,
                       ledger_report_cb cb, void *arg, struct ledger_error *err)
{
    struct rep r = {.l = l, .err = err, .cb = cb, .arg = arg, .offset = offset};
    if (!ledger_report_kind_name(kind)) {
        char what[16];
        snprintf(what, sizeof what, "%d", kind);
        return rep_fail(&r, LEDGER_EINVAL, "report kind %s is not known", what);
    }
    if (month < 1 || month > 12 || year < 1970 || year > 9999) {
        char what[32];
        snprintf(what, sizeof what, "%04d-%02d", year, month);
        return rep_fail(&r, LEDGER_EINVAL, "month %s is not valid", what);
    }
    struct rep_val keys[LEDGER_REPORT_GROUP_MAX];
    int rc = rep_check_keys(&r, kind, group_by, group_count, keys);
    if (rc)
        return rc;
    int32_t idx = year * 12 + (month - 1);
    rc = journal_first_at(l, period_month_start_ms(idx), &r.first_id, err);
    if (rc == 0)
        rc = journal_first_at(l, period_month_start_ms(idx + 1), &r.end_id, err);
    if (rc == 0)
        rc = rep_ranks(&r);
    if (rc == 0) {
        assert(r.first_id <= r.end_id);
        switch (kind) {
        case LEDGER_REPORT_CHARGEBACK: rc = rep_chargeback(&r); break;
        case LEDGER_REPORT_SPEND: rc = rep_spend(&r, keys, group_count); break;
        case LEDGER_REPORT_TRIAL_BALANCE: rc = rep_trial_balance(&r); break;
        default: rc = rep_transfers(&r); break;
        }
    }
    free(r.cost_center);
    rep_dict_free(&r.cost_centers);
    free(r.rank);
    free(r.order);
    return rc;
}

int ledger_report(struct ledger *l, int kind, int year, int month, const char *const *group_by,
                  uint32_t group_count, ledger_report_cb cb, void *arg, struct ledger_error *err)
{
    return ledger_report_from(l, kind, year, month, group_by, group_count, 0, cb, arg, err);
}
