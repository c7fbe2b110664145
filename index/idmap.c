/* index/idmap.c: the id -> slot map.
 *
 * Open addressing with linear probing and backward-shift deletion: no tombstones, so probe
 * chains stay short however many ids come and go (an upsert-heavy workload deletes as many
 * as it inserts). An entry is only slot + 1 (0 = empty): the key is the id in that slot's node
 * header, which is written before the slot is mapped and stays until the slot is unmapped
 * (a slot is reused only after vacuum freed it, long after vd_idmap_del). The capacity is a
 * power of two kept above 10/7 of the count (load factor < 0.7). The hash is splitmix64's
 * finalizer: user ids are often sequential, and a plain mask would cluster them.
 *
 * Rejected: separate key and value arrays (8 + 4 bytes per entry: 17-34 bytes per point at
 * that load, 25 B/vector at 1M points, against 6-11 now, an int8 point's codes + links being
 * 245-273 B). Reading the key from the node costs a cache miss per probe, on the writer only:
 * a probe sequence averages 1.5-6 entries, next to an insert's hundreds of distances.
 *
 * Writer only: searches never consult it (they read the id from the node block), so it needs
 * no synchronization. */
#include "index/index_int.h"

static inline size_t id_hash(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

/* The id of the node in the slot an entry v (slot + 1) names. */
static inline uint64_t key_of(const vd_idmap *m, uint32_t v)
{
    return vd_index__node(m->ix, v - 1)->id;
}

int vd_idmap_get(const vd_idmap *m, uint64_t id, uint32_t *slot)
{
    if (!m->cap) return 0;
    size_t mask = m->cap - 1;
    for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
        if (!m->vals[i]) return 0;
        if (key_of(m, m->vals[i]) == id) {
            if (slot) *slot = m->vals[i] - 1;
            return 1;
        }
    }
}

/* Places v, whose id is not in vals yet (a rehash, or a new id). */
static void insert_new(uint32_t *vals, size_t cap, uint64_t id, uint32_t v)
{
    size_t mask = cap - 1;
    size_t i = id_hash(id) & mask;
    while (vals[i]) i = (i + 1) & mask;
    vals[i] = v;
}

vd_status vd_idmap_reserve(vd_idmap *m, size_t n)
{
    if (n * 10 < m->cap * 7) return VD_OK;
    size_t cap = m->cap ? m->cap : 16;
    while (n * 10 >= cap * 7) cap *= 2;
    uint32_t *vals = vd_calloc(cap, sizeof(uint32_t));
    if (!vals) return VD_NOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i]) insert_new(vals, cap, key_of(m, m->vals[i]), m->vals[i]);
    vd_free(m->vals);
    m->vals = vals;
    m->cap = cap;
    return VD_OK;
}

int vd_idmap_add(vd_idmap *m, uint64_t id, uint32_t slot, uint32_t *existing)
{
    size_t mask = m->cap - 1, i = id_hash(id) & mask;
    for (; m->vals[i]; i = (i + 1) & mask)
        if (key_of(m, m->vals[i]) == id) {
            *existing = m->vals[i] - 1;
            return 1;
        }
    m->vals[i] = slot + 1;
    m->n++;
    return 0;
}

void vd_idmap_put(vd_idmap *m, uint64_t id, uint32_t slot)
{
    size_t mask = m->cap - 1, i = id_hash(id) & mask;
    while (m->vals[i] && key_of(m, m->vals[i]) != id) i = (i + 1) & mask;
    if (!m->vals[i]) m->n++;
    m->vals[i] = slot + 1;
}

void vd_idmap_del(vd_idmap *m, uint64_t id)
{
    if (!m->cap) return;
    size_t mask = m->cap - 1, i = id_hash(id) & mask;
    while (m->vals[i] && key_of(m, m->vals[i]) != id) i = (i + 1) & mask;
    if (!m->vals[i]) return;
    m->vals[i] = 0;
    m->n--;
    /* Backward-shift deletion: no tombstones, probe chains stay short. */
    for (size_t j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
        size_t home = id_hash(key_of(m, m->vals[j])) & mask;
        /* Move j into the hole i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->vals[i] = m->vals[j];
            m->vals[j] = 0;
            i = j;
        }
    }
}

void vd_idmap_free(vd_idmap *m)
{
    vd_free(m->vals);
    m->vals = NULL;
    m->cap = m->n = 0;
}
