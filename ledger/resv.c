/*
 * resv.c — the reservation store, held in C.
 *
 * Every reserve+commit used to cost three SQLite statements on the
 * reservation table (insert, load, close) plus the due index; they were the
 * largest part of the apply time.  Reservations now live here: a FIFO in id
 * (= creation time) order, a chained hash table by id and a binary heap of
 * the open ones by (deadline, id), which is the order expire releases them
 * in.  Pruning pops the FIFO front: closed ones go, still-open ones move to
 * `pinned` (kept in id order, all below the FIFO), so a reservation held for
 * months never stops the FIFO from moving.
 *
 * Snapshots carry them after the idempotency keys (snapshot.c); the state
 * hash covers them in id order exactly as it covered the old table's rows
 * (hash.c); ledger_verify sums their holds (verify.c).  Within an entry every
 * change is logged, so a hard error puts the store back (resv_entry_undo);
 * pruned reservations are freed only when the entry ends.
 */
#include <stdlib.h>

#include "ledger/internal.h"

enum { RESV_UNDO_CREATED, RESV_UNDO_CHANGED, RESV_UNDO_PRUNED };

static struct resv *resv_at(const struct resv_store *s, uint64_t pos)
{
    return s->fifo[pos & (s->fifo_cap - 1)];
}

static struct resv **resv_bucket(const struct resv_store *s, uint64_t id)
{
    return &s->buckets[id & (s->bucket_count - 1)]; /* ids are sequential */
}

static void resv_link(struct resv_store *s, struct resv *r)
{
    struct resv **b = resv_bucket(s, r->id);
    r->next = *b;
    *b = r;
    s->count++;
}

static void resv_unlink(struct resv_store *s, struct resv *r)
{
    struct resv **pp = resv_bucket(s, r->id);
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    assert(*pp == r);
    *pp = r->next;
    s->count--;
}

struct resv *resv_find(const struct ledger *l, uint64_t id)
{
    const struct resv_store *s = &l->resv;
    if (s->bucket_count == 0)
        return NULL;
    for (struct resv *r = *resv_bucket(s, id); r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

/* ---- the due heap: open reservations by (deadline, id) ---- */

static bool resv_before(const struct resv *a, const struct resv *b)
{
    return a->deadline_ms < b->deadline_ms || (a->deadline_ms == b->deadline_ms && a->id < b->id);
}

static void heap_set(struct resv_store *s, uint32_t i, struct resv *r)
{
    s->heap[i] = r;
    r->heap_pos = i;
}

static void heap_up(struct resv_store *s, uint32_t i)
{
    struct resv *r = s->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!resv_before(r, s->heap[p]))
            break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, r);
}

static void heap_down(struct resv_store *s, uint32_t i)
{
    struct resv *r = s->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= s->heap_count)
            break;
        if (c + 1 < s->heap_count && resv_before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!resv_before(s->heap[c], r))
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, r);
}

static int heap_reserve(struct resv_store *s)
{
    if (s->heap_count < s->heap_cap)
        return 0;
    uint32_t cap = s->heap_cap ? s->heap_cap * 2 : 1024;
    struct resv **h = realloc(s->heap, (size_t)cap * sizeof *h);
    if (!h)
        return -1;
    s->heap = h;
    s->heap_cap = cap;
    return 0;
}

/* Room was made by heap_reserve (or the item was in the heap before). */
static void heap_insert(struct resv_store *s, struct resv *r)
{
    assert(s->heap_count < s->heap_cap && r->heap_pos == RESV_NOT_DUE);
    s->heap[s->heap_count] = r;
    heap_up(s, s->heap_count++);
}

static void heap_remove(struct resv_store *s, struct resv *r)
{
    uint32_t i = r->heap_pos;
    assert(i < s->heap_count && s->heap[i] == r);
    r->heap_pos = RESV_NOT_DUE;
    struct resv *last = s->heap[--s->heap_count];
    if (last == r)
        return;
    heap_set(s, i, last);
    heap_up(s, i);
    heap_down(s, last->heap_pos);
}

struct resv *resv_due_first(const struct ledger *l)
{
    const struct resv_store *s = &l->resv;
    if (s->heap_count == 0 || s->heap[0]->deadline_ms > l->now_ms)
        return NULL;
    return s->heap[0];
}

/* ---- growth and the undo log ---- */

static int resv_grow(struct resv_store *s)
{
    /* Items popped in this entry keep their places until it ends. */
    uint64_t held = s->tail - s->entry_head;
    if (held + 1 > s->fifo_cap) {
        uint64_t cap = s->fifo_cap ? s->fifo_cap * 2 : 4096;
        while (cap < held + 1)
            cap *= 2;
        struct resv **f = malloc(cap * sizeof *f);
        if (!f)
            return -1;
        for (uint64_t p = s->entry_head; p < s->tail; p++)
            f[p & (cap - 1)] = resv_at(s, p);
        free(s->fifo);
        s->fifo = f;
        s->fifo_cap = cap;
    }
    if (s->count + 1 > s->bucket_count) {
        uint64_t n = s->bucket_count ? s->bucket_count * 2 : 4096;
        struct resv **b = calloc(n, sizeof *b);
        if (!b)
            return -1;
        struct resv_store old = *s;
        free(s->buckets);
        s->buckets = b;
        s->bucket_count = n;
        s->count = 0;
        for (uint32_t k = 0; k < old.pinned_count; k++)
            resv_link(s, old.pinned[k]);
        for (uint64_t p = old.head; p < old.tail; p++)
            resv_link(s, resv_at(&old, p));
        /* Pruned in this entry (unlinked, freed at its end) stay out. */
        assert(s->count == old.count);
    }
    return heap_reserve(s);
}

static int resv_log(struct resv_store *s, struct resv *r, int kind)
{
    if (s->undo_count == s->undo_cap) {
        uint32_t cap = s->undo_cap ? s->undo_cap * 2 : 256;
        struct resv_undo *u = realloc(s->undo, (size_t)cap * sizeof *u);
        if (!u)
            return -1;
        s->undo = u;
        s->undo_cap = cap;
    }
    s->undo[s->undo_count++] = (struct resv_undo){
        .r = r, .kind = (uint8_t)kind, .status = r->status, .closed_ms = r->closed_ms,
        .actual_micros = r->actual_micros, .overrun_micros = r->overrun_micros,
        .transfer_id = r->transfer_id};
    return 0;
}

static struct resv *resv_new(const struct resv *fields, const void *meta, size_t meta_len)
{
    struct resv *r = malloc(sizeof *r + meta_len);
    if (!r)
        return NULL;
    *r = *fields;
    r->next = NULL;
    r->heap_pos = RESV_NOT_DUE;
    r->meta_len = (uint32_t)meta_len;
    if (meta_len)
        memcpy(r->meta, meta, meta_len);
    return r;
}

/* Append r (ids increasing) to the FIFO, index it, and queue it if open. */
static void resv_push(struct resv_store *s, struct resv *r)
{
    s->fifo[s->tail & (s->fifo_cap - 1)] = r;
    s->tail++;
    resv_link(s, r);
    if (r->status == LEDGER_RES_OPEN)
        heap_insert(s, r);
}

struct resv *resv_create(struct ledger *l, int32_t account, int32_t payee, int64_t amount,
                         int64_t deadline_ms, int on_expire, const void *meta, size_t meta_len)
{
    struct resv_store *s = &l->resv;
    struct resv fields = {.id = l->next_reservation_id, .account = account, .payee = payee,
                          .amount_micros = amount, .deadline_ms = deadline_ms,
                          .created_ms = l->now_ms, .on_expire = (uint8_t)on_expire,
                          .status = LEDGER_RES_OPEN};
    struct resv *r = NULL;
    if (resv_grow(s) != 0 || !(r = resv_new(&fields, meta, meta_len)) ||
        resv_log(s, r, RESV_UNDO_CREATED) != 0) {
        free(r);
        return NULL;
    }
    resv_push(s, r);
    l->next_reservation_id++;
    return r;
}

int resv_close(struct ledger *l, struct resv *r, int status, int64_t actual,
               uint64_t transfer_id, int64_t overrun)
{
    struct resv_store *s = &l->resv;
    if (resv_log(s, r, RESV_UNDO_CHANGED) != 0)
        return -1;
    if (r->heap_pos != RESV_NOT_DUE)
        heap_remove(s, r);
    r->status = (uint8_t)status;
    r->actual_micros = actual;
    r->transfer_id = transfer_id;
    r->overrun_micros = overrun;
    r->closed_ms = l->now_ms;
    return 0;
}

/* ---- pruning ---- */

static int resv_pinned_add(struct resv_store *s, struct resv *r)
{
    if (s->pinned_count == s->pinned_cap) {
        uint32_t cap = s->pinned_cap ? s->pinned_cap * 2 : 64;
        struct resv **p = realloc(s->pinned, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        s->pinned = p;
        s->pinned_cap = cap;
    }
    s->pinned[s->pinned_count++] = r;
    return 0;
}

/* Remember pinned as it was when the entry began (once per entry). */
static int resv_pinned_save(struct resv_store *s)
{
    if (s->is_pinned_saved)
        return 0;
    if (s->pinned_count > s->pinned_saved_cap) {
        struct resv **p = realloc(s->pinned_saved, (size_t)s->pinned_count * sizeof *p);
        if (!p)
            return -1;
        s->pinned_saved = p;
        s->pinned_saved_cap = s->pinned_count;
    }
    if (s->pinned_count)
        memcpy(s->pinned_saved, s->pinned, (size_t)s->pinned_count * sizeof *s->pinned);
    s->pinned_saved_count = s->pinned_count;
    s->is_pinned_saved = true;
    return 0;
}

static int resv_drop(struct resv_store *s, struct resv *r)
{
    if (resv_log(s, r, RESV_UNDO_PRUNED) != 0)
        return -1;
    resv_unlink(s, r);
    return 0;
}

int resv_prune(struct ledger *l, int64_t before_ms)
{
    struct resv_store *s = &l->resv;
    if (resv_pinned_save(s) != 0)
        return -1;
    /* Pinned ones were created before an earlier cut-off, so before this one.
     * On failure the entry is undone, which restores pinned whole. */
    uint32_t kept = 0;
    for (uint32_t k = 0; k < s->pinned_count; k++) {
        struct resv *r = s->pinned[k];
        if (r->status == LEDGER_RES_OPEN)
            s->pinned[kept++] = r;
        else if (resv_drop(s, r) != 0)
            return -1;
    }
    s->pinned_count = kept;
    /* Ids grow with creation time: the FIFO front is the oldest. */
    while (s->head < s->tail && resv_at(s, s->head)->created_ms < before_ms) {
        struct resv *r = resv_at(s, s->head);
        int rc = r->status == LEDGER_RES_OPEN ? resv_pinned_add(s, r) : resv_drop(s, r);
        if (rc != 0)
            return -1;
        s->head++;
    }
    return 0;
}

/* ---- entries ---- */

void resv_entry_begin(struct ledger *l)
{
    struct resv_store *s = &l->resv;
    s->entry_head = s->head;
    s->undo_count = 0;
    s->is_pinned_saved = false;
}

void resv_entry_end(struct ledger *l)
{
    struct resv_store *s = &l->resv;
    for (uint32_t k = 0; k < s->undo_count; k++)
        if (s->undo[k].kind == RESV_UNDO_PRUNED)
            free(s->undo[k].r);
    s->undo_count = 0;
    s->entry_head = s->head;
    s->is_pinned_saved = false;
}

void resv_entry_undo(struct ledger *l)
{
    struct resv_store *s = &l->resv;
    while (s->undo_count > 0) {
        const struct resv_undo *u = &s->undo[--s->undo_count];
        struct resv *r = u->r;
        switch (u->kind) {
        case RESV_UNDO_CREATED:
            if (r->heap_pos != RESV_NOT_DUE)
                heap_remove(s, r);
            resv_unlink(s, r);
            assert(s->tail > s->head && resv_at(s, s->tail - 1) == r);
            s->tail--;
            free(r);
            break;
        case RESV_UNDO_CHANGED:
            r->status = u->status;
            r->closed_ms = u->closed_ms;
            r->actual_micros = u->actual_micros;
            r->overrun_micros = u->overrun_micros;
            r->transfer_id = u->transfer_id;
            if (r->status == LEDGER_RES_OPEN && r->heap_pos == RESV_NOT_DUE)
                heap_insert(s, r); /* it was in the heap before: there is room */
            break;
        default:
            resv_link(s, r);
            break;
        }
    }
    s->head = s->entry_head;
    if (s->is_pinned_saved) {
        /* pinned only grows within an entry, so the array has room. */
        assert(s->pinned_saved_count <= s->pinned_cap);
        if (s->pinned_saved_count)
            memcpy(s->pinned, s->pinned_saved,
                   (size_t)s->pinned_saved_count * sizeof *s->pinned);
        s->pinned_count = s->pinned_saved_count;
        s->is_pinned_saved = false;
    }
}

void resv_reset(struct ledger *l)
{
    struct resv_store *s = &l->resv;
    resv_entry_end(l);
    for (uint32_t k = 0; k < s->pinned_count; k++)
        free(s->pinned[k]);
    for (uint64_t p = s->head; p < s->tail; p++)
        free(resv_at(s, p));
    free(s->fifo);
    free(s->pinned);
    free(s->pinned_saved);
    free(s->buckets);
    free(s->heap);
    free(s->undo);
    memset(s, 0, sizeof *s);
}

uint64_t resv_count(const struct ledger *l)
{
    return l->resv.count;
}

void resv_each(const struct ledger *l, resv_visit_cb cb, void *arg)
{
    const struct resv_store *s = &l->resv;
    for (uint32_t k = 0; k < s->pinned_count; k++)
        cb(arg, s->pinned[k]);
    for (uint64_t p = s->head; p < s->tail; p++)
        cb(arg, resv_at(s, p));
}

static uint64_t resv_last_id(const struct resv_store *s)
{
    if (s->tail > s->head)
        return resv_at(s, s->tail - 1)->id;
    return s->pinned_count ? s->pinned[s->pinned_count - 1]->id : 0;
}

static int64_t resv_last_created(const struct resv_store *s)
{
    if (s->tail > s->head)
        return resv_at(s, s->tail - 1)->created_ms;
    return s->pinned_count ? s->pinned[s->pinned_count - 1]->created_ms : INT64_MIN;
}

int resv_load(struct ledger *l, const struct resv *f, const void *meta, size_t meta_len)
{
    struct resv_store *s = &l->resv;
    bool is_closed = f->status != LEDGER_RES_OPEN;
    if (f->id == 0 || f->id <= resv_last_id(s) || f->id >= l->next_reservation_id ||
        f->created_ms < resv_last_created(s) || f->account < 0 ||
        (uint32_t)f->account >= l->acct_count || f->payee < 0 ||
        (uint32_t)f->payee >= l->acct_count || f->status > LEDGER_RES_CHARGED ||
        (f->on_expire != PROTO_ON_EXPIRE_RELEASE && f->on_expire != PROTO_ON_EXPIRE_CHARGE) ||
        !ledger_amount_valid(f->amount_micros, false) ||
        (is_closed && f->closed_ms < f->created_ms) || meta_len > UINT32_MAX)
        return -1;
    struct resv *r = NULL;
    if (resv_grow(s) != 0 || !(r = resv_new(f, meta, meta_len))) {
        free(r);
        return -1;
    }
    resv_push(s, r);
    s->entry_head = s->head;
    return 0;
}
