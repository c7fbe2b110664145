/* storage/pindex.c: the in-memory postings of one payload index (vd_pidx): for each value,
 * the slots whose payload holds it, as CRoaring bitmaps (Debian's libroaring). Pure: no
 * LMDB; the stored form is the per-slot values record (records.h), from which these are
 * loaded and against which they are checked.
 *
 * Layout per kind:
 *  - keyword: an open-addressing hash table (linear probing, backward-shift deletion) from
 *    the string's bytes to its bitmap; ranges over strings walk every entry (rare).
 *  - bool: two bitmaps.
 *  - integer, float: order-preserving u64 keys (records.h) in buckets that partition the key
 *    space, each holding its (key, slot) pairs sorted plus a bitmap of their slots. A range
 *    ORs the bitmaps of the buckets it covers whole and adds the matching pairs of the (at
 *    most two) buckets it cuts, so a range costs the size of its answer plus two buckets,
 *    whatever the number of distinct values (GloVe's "rank" has one per point). Buckets
 *    split at a key boundary above BUCKET_MAX pairs; loading cuts sorted pairs into buckets
 *    of BUCKET_TARGET. Rejected: one bitmap per distinct number (a range over 100k distinct
 *    values would OR 100k bitmaps); a sorted array of all pairs (each insert moves megabytes).
 *  - every kind: `present` (the path finds something) and `fallback` (a value of the kind's
 *    type the index cannot key: see records.h) bitmaps, and the number of points with a key.
 *
 * Threads: a vd_pidx is mutated by the storage writer only, and read by filter compilation
 * under the collection's filter lock (storage_int.h): readers never run while it changes.
 * CRoaring allocates with malloc (0.2.66 has no allocator hook), so allocation-failure
 * injection does not reach inside it; our own tables go through vd_malloc. */
#include <roaring/roaring.h>
#include <stdlib.h>

#include "storage/storage_int.h"

#define BUCKET_TARGET 4096u
#define BUCKET_MAX (2 * BUCKET_TARGET)

typedef struct kentry { /* keyword dictionary entry */
    uint64_t hash;
    size_t len;
    char *s;
    roaring_bitmap_t *bm;
} kentry;

typedef struct nbucket {
    uint64_t lo; /* smallest key it holds; bucket 0 starts at 0 */
    uint32_t n, cap;
    uint64_t *keys;
    uint32_t *slots;
    roaring_bitmap_t *bm;
} nbucket;

typedef struct kpair {
    uint64_t key;
    uint32_t slot;
} kpair;

struct vd_pidx {
    vd_pindex_kind kind;
    roaring_bitmap_t *present, *fallback;
    uint64_t n_points; /* slots with at least one key */
    /* keyword */
    kentry *tab; /* cap_tab entries, power of two; s == NULL: empty */
    size_t n_tab, cap_tab;
    /* bool */
    roaring_bitmap_t *bools[2];
    /* integer, float */
    nbucket *b;
    size_t n_b, cap_b;
    kpair *staged; /* loading: pairs before vd_pidx_load_finish */
    size_t n_staged, cap_staged;
};

static int is_numeric(vd_pindex_kind k) { return k == VD_PINDEX_INTEGER || k == VD_PINDEX_FLOAT; }

vd_pidx *vd_pidx_new(vd_pindex_kind kind)
{
    vd_pidx *x = vd_calloc(1, sizeof *x);
    if (!x) return NULL;
    x->kind = kind;
    x->present = roaring_bitmap_create();
    x->fallback = roaring_bitmap_create();
    int ok = x->present && x->fallback;
    if (kind == VD_PINDEX_BOOL) {
        x->bools[0] = roaring_bitmap_create();
        x->bools[1] = roaring_bitmap_create();
        ok = ok && x->bools[0] && x->bools[1];
    }
    if (is_numeric(kind)) {
        x->b = vd_calloc(1, sizeof *x->b);
        x->cap_b = x->n_b = 1;
        ok = ok && x->b && (x->b[0].bm = roaring_bitmap_create());
    }
    if (!ok) {
        vd_pidx_free(x);
        return NULL;
    }
    return x;
}

static void bucket_free(nbucket *b)
{
    vd_free(b->keys);
    vd_free(b->slots);
    if (b->bm) roaring_bitmap_free(b->bm);
}

void vd_pidx_free(vd_pidx *x)
{
    if (!x) return;
    if (x->present) roaring_bitmap_free(x->present);
    if (x->fallback) roaring_bitmap_free(x->fallback);
    for (size_t i = 0; i < x->cap_tab; i++)
        if (x->tab[i].s) {
            vd_free(x->tab[i].s);
            roaring_bitmap_free(x->tab[i].bm);
        }
    vd_free(x->tab);
    for (int i = 0; i < 2; i++)
        if (x->bools[i]) roaring_bitmap_free(x->bools[i]);
    for (size_t i = 0; i < x->n_b; i++) bucket_free(&x->b[i]);
    vd_free(x->b);
    vd_free(x->staged);
    vd_free(x);
}

vd_pindex_kind vd_pidx_kind(const vd_pidx *x) { return x->kind; }

/* ---- keyword dictionary ------------------------------------------------------------------ */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static kentry *kfind(const vd_pidx *x, const char *s, size_t n, uint64_t h)
{
    if (!x->cap_tab) return NULL;
    for (size_t i = h & (x->cap_tab - 1);; i = (i + 1) & (x->cap_tab - 1)) {
        kentry *e = &x->tab[i];
        if (!e->s) return NULL;
        if (e->hash == h && e->len == n && !memcmp(e->s, s, n)) return e;
    }
}

static int kgrow(vd_pidx *x)
{
    size_t cap = x->cap_tab ? x->cap_tab * 2 : 16;
    kentry *t = vd_calloc(cap, sizeof *t);
    if (!t) return 0;
    for (size_t i = 0; i < x->cap_tab; i++) {
        kentry *e = &x->tab[i];
        if (!e->s) continue;
        size_t j = e->hash & (cap - 1);
        while (t[j].s) j = (j + 1) & (cap - 1);
        t[j] = *e;
    }
    vd_free(x->tab);
    x->tab = t;
    x->cap_tab = cap;
    return 1;
}

static kentry *kget(vd_pidx *x, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n);
    kentry *e = kfind(x, s, n, h);
    if (e) return e;
    if ((x->n_tab + 1) * 4 > x->cap_tab * 3 && !kgrow(x)) return NULL;
    size_t i = h & (x->cap_tab - 1);
    while (x->tab[i].s) i = (i + 1) & (x->cap_tab - 1);
    char *copy = vd_malloc(n ? n : 1);
    roaring_bitmap_t *bm = copy ? roaring_bitmap_create() : NULL;
    if (!bm) {
        vd_free(copy);
        return NULL;
    }
    if (n) memcpy(copy, s, n);
    x->tab[i] = (kentry){h, n, copy, bm};
    x->n_tab++;
    return &x->tab[i];
}

/* Removes entry e, shifting later entries of its probe run back (no tombstones). */
static void kdel(vd_pidx *x, kentry *e)
{
    size_t mask = x->cap_tab - 1, i = (size_t)(e - x->tab);
    vd_free(e->s);
    roaring_bitmap_free(e->bm);
    for (size_t j = (i + 1) & mask; x->tab[j].s; j = (j + 1) & mask) {
        size_t home = x->tab[j].hash & mask;
        /* j's entry may move to i when i lies on its probe path (home .. j, cyclically). */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            x->tab[i] = x->tab[j];
            i = j;
        }
    }
    x->tab[i] = (kentry){0};
    x->n_tab--;
}

/* ---- numeric buckets --------------------------------------------------------------------- */
/* The bucket holding key: the last one whose lo <= key. */
static size_t bucket_of(const vd_pidx *x, uint64_t key)
{
    size_t lo = 0, hi = x->n_b;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (x->b[mid].lo <= key) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* First index in b of a pair >= (key, slot). */
static uint32_t pair_lower(const nbucket *b, uint64_t key, uint32_t slot)
{
    uint32_t lo = 0, hi = b->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (b->keys[mid] < key || (b->keys[mid] == key && b->slots[mid] < slot)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int bucket_reserve(nbucket *b, uint32_t n)
{
    if (n <= b->cap) return 1;
    uint32_t cap = b->cap ? b->cap : 64;
    while (cap < n) cap *= 2;
    uint64_t *k = vd_realloc(b->keys, (size_t)cap * sizeof *k);
    if (!k) return 0;
    b->keys = k;
    uint32_t *s = vd_realloc(b->slots, (size_t)cap * sizeof *s);
    if (!s) return 0;
    b->slots = s;
    b->cap = cap;
    return 1;
}

/* A bucket of pairs keys[0..n), slots[0..n) (copied), its bitmap built. */
static int bucket_fill(nbucket *b, uint64_t lo, const uint64_t *keys, const uint32_t *slots,
                       uint32_t n)
{
    memset(b, 0, sizeof *b);
    b->lo = lo;
    if (!bucket_reserve(b, n) || !(b->bm = roaring_bitmap_create())) return 0;
    if (n) {
        memcpy(b->keys, keys, (size_t)n * sizeof *keys);
        memcpy(b->slots, slots, (size_t)n * sizeof *slots);
        roaring_bitmap_add_many(b->bm, n, slots);
    }
    b->n = n;
    return 1;
}

static int buckets_reserve(vd_pidx *x, size_t n)
{
    if (n <= x->cap_b) return 1;
    size_t cap = x->cap_b ? x->cap_b * 2 : 4;
    while (cap < n) cap *= 2;
    nbucket *a = vd_realloc(x->b, cap * sizeof *a);
    if (!a) return 0;
    x->b = a;
    x->cap_b = cap;
    return 1;
}

/* Splits bucket i at a key boundary near its middle (a bucket of one key stays whole). */
static int bucket_split(vd_pidx *x, size_t i)
{
    nbucket *b = &x->b[i];
    uint32_t mid = b->n / 2;
    while (mid < b->n && b->keys[mid] == b->keys[mid - 1]) mid++;
    if (mid == b->n) {
        mid = b->n / 2;
        while (mid > 0 && b->keys[mid] == b->keys[mid - 1]) mid--;
        if (mid == 0) return 1;
    }
    if (!buckets_reserve(x, x->n_b + 1)) return 0;
    b = &x->b[i];
    nbucket nb;
    if (!bucket_fill(&nb, b->keys[mid], b->keys + mid, b->slots + mid, b->n - mid)) {
        bucket_free(&nb);
        return 0;
    }
    b->n = mid;
    roaring_bitmap_clear(b->bm);
    roaring_bitmap_add_many(b->bm, b->n, b->slots);
    memmove(&x->b[i + 2], &x->b[i + 1], (x->n_b - i - 1) * sizeof *x->b);
    x->b[i + 1] = nb;
    x->n_b++;
    return 1;
}

static int num_add(vd_pidx *x, uint64_t key, uint32_t slot)
{
    size_t bi = bucket_of(x, key);
    nbucket *b = &x->b[bi];
    uint32_t pos = pair_lower(b, key, slot);
    if (pos < b->n && b->keys[pos] == key && b->slots[pos] == slot) return 1;
    if (!bucket_reserve(b, b->n + 1)) return 0;
    memmove(b->keys + pos + 1, b->keys + pos, (size_t)(b->n - pos) * sizeof *b->keys);
    memmove(b->slots + pos + 1, b->slots + pos, (size_t)(b->n - pos) * sizeof *b->slots);
    b->keys[pos] = key;
    b->slots[pos] = slot;
    b->n++;
    roaring_bitmap_add(b->bm, slot);
    return b->n <= BUCKET_MAX || bucket_split(x, bi);
}

static void num_remove(vd_pidx *x, uint64_t key, uint32_t slot)
{
    size_t bi = bucket_of(x, key);
    nbucket *b = &x->b[bi];
    uint32_t pos = pair_lower(b, key, slot);
    if (pos >= b->n || b->keys[pos] != key || b->slots[pos] != slot) return;
    memmove(b->keys + pos, b->keys + pos + 1, (size_t)(b->n - pos - 1) * sizeof *b->keys);
    memmove(b->slots + pos, b->slots + pos + 1, (size_t)(b->n - pos - 1) * sizeof *b->slots);
    b->n--;
    /* The slot may hold another key in this bucket (an array of numbers). */
    int other = 0;
    for (uint32_t i = 0; i < b->n && !other; i++) other = b->slots[i] == slot;
    if (!other) roaring_bitmap_remove(b->bm, slot);
    if (b->n == 0 && x->n_b > 1) { /* drop it: its neighbour below takes its key range */
        uint64_t lo = b->lo;
        bucket_free(b);
        memmove(&x->b[bi], &x->b[bi + 1], (x->n_b - bi - 1) * sizeof *x->b);
        x->n_b--;
        if (bi == 0) x->b[0].lo = lo;
    }
}

/* ---- adding and removing a slot's values --------------------------------------------------- */
static vd_status nomem(vd_err *err)
{
    return vd_err_set(err, VD_NOMEM, "out of memory in a payload index");
}

/* What every kind keeps of a slot's record besides its values. */
static void note_slot(vd_pidx *x, uint32_t slot, const vd_pvals *r)
{
    if (r->flags & VD_PVAL_PRESENT) roaring_bitmap_add(x->present, slot);
    if (r->flags & VD_PVAL_FALLBACK) roaring_bitmap_add(x->fallback, slot);
    if (r->n) x->n_points++;
}

vd_status vd_pidx_add(vd_pidx *x, uint32_t slot, const vd_pvals *r, vd_err *err)
{
    size_t it = 0;
    vd_pval_item v;
    note_slot(x, slot, r);
    while (vd_storage__pvals_next(r, &it, &v)) {
        if (x->kind == VD_PINDEX_KEYWORD) {
            kentry *e = kget(x, v.s, v.len);
            if (!e) return nomem(err);
            roaring_bitmap_add(e->bm, slot);
        } else if (x->kind == VD_PINDEX_BOOL) {
            roaring_bitmap_add(x->bools[v.key != 0], slot);
        } else if (!num_add(x, v.key, slot)) {
            return nomem(err);
        }
    }
    return VD_OK;
}

void vd_pidx_remove(vd_pidx *x, uint32_t slot, const vd_pvals *r)
{
    size_t it = 0;
    vd_pval_item v;
    roaring_bitmap_remove(x->present, slot);
    roaring_bitmap_remove(x->fallback, slot);
    if (r->n && x->n_points) x->n_points--;
    while (vd_storage__pvals_next(r, &it, &v)) {
        if (x->kind == VD_PINDEX_KEYWORD) {
            kentry *e = kfind(x, v.s, v.len, hash_bytes(v.s, v.len));
            if (!e) continue;
            roaring_bitmap_remove(e->bm, slot);
            if (roaring_bitmap_is_empty(e->bm)) kdel(x, e);
        } else if (x->kind == VD_PINDEX_BOOL) {
            roaring_bitmap_remove(x->bools[v.key != 0], slot);
        } else {
            num_remove(x, v.key, slot);
        }
    }
}

/* ---- loading ------------------------------------------------------------------------------- */
vd_status vd_pidx_load_add(vd_pidx *x, uint32_t slot, const vd_pvals *r, vd_err *err)
{
    if (!is_numeric(x->kind)) return vd_pidx_add(x, slot, r, err);
    size_t it = 0;
    vd_pval_item v;
    note_slot(x, slot, r);
    while (vd_storage__pvals_next(r, &it, &v)) {
        if (x->n_staged == x->cap_staged) {
            size_t cap = x->cap_staged ? x->cap_staged * 2 : 4096;
            kpair *a = vd_realloc(x->staged, cap * sizeof *a);
            if (!a) return nomem(err);
            x->staged = a;
            x->cap_staged = cap;
        }
        x->staged[x->n_staged++] = (kpair){v.key, slot};
    }
    return VD_OK;
}

static int cmp_kpair(const void *a, const void *b)
{
    const kpair *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

vd_status vd_pidx_load_finish(vd_pidx *x, vd_err *err)
{
    if (!is_numeric(x->kind) || !x->n_staged) goto done;
    qsort(x->staged, x->n_staged, sizeof *x->staged, cmp_kpair);
    vd_status s = buckets_reserve(x, x->n_staged / BUCKET_TARGET + 1) ? VD_OK : nomem(err);
    for (size_t i = 0; i < x->n_b; i++) bucket_free(&x->b[i]);
    x->n_b = 0;
    for (size_t at = 0; s == VD_OK && at < x->n_staged;) {
        /* Up to BUCKET_TARGET pairs, then on to the end of the last key's run; a long run (a
         * frequent value) gets a bucket of its own, so that equality on it is one bitmap. */
        size_t end = at + BUCKET_TARGET < x->n_staged ? at + BUCKET_TARGET : x->n_staged;
        for (size_t r = at + 1; r < end; r++)
            if (x->staged[r].key != x->staged[r - 1].key) {
                size_t run = r, e2 = r;
                while (e2 < x->n_staged && x->staged[e2].key == x->staged[run].key) e2++;
                if (e2 - run >= BUCKET_TARGET / 4) { /* the next key is frequent: stop before */
                    end = run;
                    break;
                }
            }
        while (end < x->n_staged && x->staged[end].key == x->staged[end - 1].key) end++;
        if (!buckets_reserve(x, x->n_b + 1)) {
            s = nomem(err);
            break;
        }
        nbucket *b = &x->b[x->n_b];
        uint64_t lo = x->n_b ? x->staged[at].key : 0;
        memset(b, 0, sizeof *b);
        b->lo = lo;
        if (!bucket_reserve(b, (uint32_t)(end - at)) || !(b->bm = roaring_bitmap_create())) {
            bucket_free(b);
            s = nomem(err);
            break;
        }
        for (size_t i = at; i < end; i++) {
            b->keys[i - at] = x->staged[i].key;
            b->slots[i - at] = x->staged[i].slot;
        }
        b->n = (uint32_t)(end - at);
        roaring_bitmap_add_many(b->bm, b->n, b->slots);
        x->n_b++;
        at = end;
    }
    if (s != VD_OK) return s;
done:
    if (is_numeric(x->kind) && x->n_b == 0) { /* nothing staged: one empty bucket */
        if (!buckets_reserve(x, 1) || !bucket_fill(&x->b[0], 0, NULL, NULL, 0)) return nomem(err);
        x->n_b = 1;
    }
    vd_free(x->staged);
    x->staged = NULL;
    x->n_staged = x->cap_staged = 0;
    for (size_t i = 0; i < x->cap_tab; i++)
        if (x->tab[i].s) roaring_bitmap_run_optimize(x->tab[i].bm);
    roaring_bitmap_run_optimize(x->present);
    return VD_OK;
}

/* ---- queries ----------------------------------------------------------------------------- */
const roaring_bitmap_t *vd_pidx_present(const vd_pidx *x) { return x->present; }
const roaring_bitmap_t *vd_pidx_fallback(const vd_pidx *x) { return x->fallback; }
uint64_t vd_pidx_points(const vd_pidx *x) { return x->n_points; }

vd_status vd_pidx_eq(const vd_pidx *x, const vd_pval_item *v, roaring_bitmap_t *out,
                     vd_err *err)
{
    const roaring_bitmap_t *bm = NULL;
    if (x->kind == VD_PINDEX_KEYWORD) {
        kentry *e = kfind(x, v->s, v->len, hash_bytes(v->s, v->len));
        bm = e ? e->bm : NULL;
    } else if (x->kind == VD_PINDEX_BOOL) {
        bm = x->bools[v->key != 0];
    } else {
        return vd_pidx_range(x, v->key, v->key, out, err);
    }
    if (bm) roaring_bitmap_or_inplace(out, bm);
    return VD_OK;
}

vd_status vd_pidx_range(const vd_pidx *x, uint64_t lo, uint64_t hi, roaring_bitmap_t *out,
                        vd_err *err)
{
    if (!is_numeric(x->kind) || lo > hi) return VD_OK;
    size_t i0 = bucket_of(x, lo), i1 = bucket_of(x, hi), n_full = 0;
    const roaring_bitmap_t **full = vd_malloc((i1 - i0 + 1) * sizeof *full);
    uint32_t *part = NULL;
    size_t n_part = 0, cap_part = 0;
    if (!full) return nomem(err);
    for (size_t i = i0; i <= i1; i++) {
        const nbucket *b = &x->b[i];
        uint64_t top = i + 1 < x->n_b ? x->b[i + 1].lo - 1 : UINT64_MAX;
        /* Whole when its key range, or just the keys it holds, lie inside lo..hi. */
        if ((b->lo >= lo && top <= hi) || (b->n && b->keys[0] >= lo && b->keys[b->n - 1] <= hi)) {
            if (b->n) full[n_full++] = b->bm;
            continue;
        }
        for (uint32_t j = pair_lower(b, lo, 0); j < b->n && b->keys[j] <= hi; j++) {
            if (n_part == cap_part) {
                cap_part = cap_part ? cap_part * 2 : 256;
                uint32_t *a = vd_realloc(part, cap_part * sizeof *a);
                if (!a) {
                    vd_free(part);
                    vd_free(full);
                    return nomem(err);
                }
                part = a;
            }
            part[n_part++] = b->slots[j];
        }
    }
    if (n_full) {
        roaring_bitmap_t *u = roaring_bitmap_or_many(n_full, full);
        roaring_bitmap_or_inplace(out, u);
        roaring_bitmap_free(u);
    }
    if (n_part) roaring_bitmap_add_many(out, n_part, part);
    vd_free(part);
    vd_free(full);
    return VD_OK;
}

/* Every keyword value v with lo <= v <= hi (a NULL bound is open; *_incl: inclusive). */
vd_status vd_pidx_string_range(const vd_pidx *x, const vd_pval_item *lo, int lo_incl,
                               const vd_pval_item *hi, int hi_incl, roaring_bitmap_t *out)
{
    if (x->kind != VD_PINDEX_KEYWORD) return VD_OK;
    for (size_t i = 0; i < x->cap_tab; i++) {
        const kentry *e = &x->tab[i];
        if (!e->s) continue;
        vd_pval_item v = {.s = e->s, .len = e->len};
        int c;
        if (lo && ((c = vd_storage__item_cmp(VD_PINDEX_KEYWORD, &v, lo)) < 0 || (!lo_incl && !c)))
            continue;
        if (hi && ((c = vd_storage__item_cmp(VD_PINDEX_KEYWORD, &v, hi)) > 0 || (!hi_incl && !c)))
            continue;
        roaring_bitmap_or_inplace(out, e->bm);
    }
    return VD_OK;
}

size_t vd_pidx_bytes(const vd_pidx *x)
{
    size_t n = sizeof *x + roaring_bitmap_size_in_bytes(x->present) +
               roaring_bitmap_size_in_bytes(x->fallback);
    n += x->cap_tab * sizeof *x->tab;
    for (size_t i = 0; i < x->cap_tab; i++)
        if (x->tab[i].s) n += x->tab[i].len + roaring_bitmap_size_in_bytes(x->tab[i].bm);
    for (int i = 0; i < 2; i++)
        if (x->bools[i]) n += roaring_bitmap_size_in_bytes(x->bools[i]);
    n += x->cap_b * sizeof *x->b;
    for (size_t i = 0; i < x->n_b; i++)
        n += (size_t)x->b[i].cap * 12 + roaring_bitmap_size_in_bytes(x->b[i].bm);
    return n;
}

/* ---- checking ------------------------------------------------------------------------------ */
/* 1 if both hold the same postings (numeric buckets may be cut differently) and each bucket's
 * bitmap is exactly the slots of its pairs. */
static int buckets_consistent(const vd_pidx *x)
{
    roaring_bitmap_t *t = roaring_bitmap_create();
    int ok = t != NULL;
    for (size_t i = 0; ok && i < x->n_b; i++) {
        const nbucket *b = &x->b[i];
        roaring_bitmap_clear(t);
        roaring_bitmap_add_many(t, b->n, b->slots);
        ok = roaring_bitmap_equals(t, b->bm) && (i == 0 ? b->lo == 0 : b->lo > x->b[i - 1].lo);
        for (uint32_t j = 0; ok && j < b->n; j++)
            ok = b->keys[j] >= b->lo && (i + 1 == x->n_b || b->keys[j] < x->b[i + 1].lo) &&
                 (j == 0 || b->keys[j] > b->keys[j - 1] ||
                  (b->keys[j] == b->keys[j - 1] && b->slots[j] > b->slots[j - 1]));
    }
    if (t) roaring_bitmap_free(t);
    return ok;
}

int vd_pidx_same(const vd_pidx *a, const vd_pidx *b)
{
    if (a->kind != b->kind || a->n_points != b->n_points ||
        !roaring_bitmap_equals(a->present, b->present) ||
        !roaring_bitmap_equals(a->fallback, b->fallback))
        return 0;
    if (a->kind == VD_PINDEX_BOOL)
        return roaring_bitmap_equals(a->bools[0], b->bools[0]) &&
               roaring_bitmap_equals(a->bools[1], b->bools[1]);
    if (a->kind == VD_PINDEX_KEYWORD) {
        if (a->n_tab != b->n_tab) return 0;
        for (size_t i = 0; i < a->cap_tab; i++) {
            const kentry *e = &a->tab[i];
            if (!e->s) continue;
            const kentry *f = kfind(b, e->s, e->len, e->hash);
            if (!f || !roaring_bitmap_equals(e->bm, f->bm)) return 0;
        }
        return 1;
    }
    if (!buckets_consistent(a) || !buckets_consistent(b)) return 0;
    size_t i = 0, j = 0;
    uint32_t pi = 0, pj = 0;
    for (;;) { /* walk both pair sequences in order */
        while (i < a->n_b && pi == a->b[i].n) i++, pi = 0;
        while (j < b->n_b && pj == b->b[j].n) j++, pj = 0;
        if (i == a->n_b || j == b->n_b) return i == a->n_b && j == b->n_b;
        if (a->b[i].keys[pi] != b->b[j].keys[pj] || a->b[i].slots[pi] != b->b[j].slots[pj])
            return 0;
        pi++, pj++;
    }
}

/* ---- a collection's set of indexes --------------------------------------------------------- */
vd_pset *vd_pset_new(void)
{
    vd_pset *p = vd_calloc(1, sizeof *p);
    if (p && !(p->live = roaring_bitmap_create())) {
        vd_free(p);
        return NULL;
    }
    return p;
}

void vd_pdef_free(vd_pdef *d)
{
    if (!d) return;
    vd_pidx_free(d->idx);
    vd_free(d);
}

void vd_pset_free(vd_pset *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) vd_pdef_free(p->defs[i]);
    if (p->live) roaring_bitmap_free(p->live);
    vd_free(p);
}

vd_pdef *vd_pset_find(const vd_pset *p, const char *path, size_t len)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (p->defs[i]->path_len == len && !memcmp(p->defs[i]->path, path, len))
            return p->defs[i];
    return NULL;
}
