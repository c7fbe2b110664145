/* tests/fuzz/fuzz_index_load.c: arbitrary bytes as stored graph records (links records, slot
 * numbers, the graph header) through vd_index_load_slot / vd_index_load_finish, the way
 * storage/ hands them over when it opens a data directory.
 *
 * Input: metric byte; record count; per record a slot byte, a length byte and that many
 * bytes of links record (ids and vectors are derived from the slot, so the graph bytes are
 * what varies); then entry slot, max level and n_slots bytes. A load that succeeds must give
 * an index that validates, searches, and takes an add, a remove and a publish. Nothing may
 * crash, leak, hang or read out of bounds. Built without -march=native, so this also runs
 * the portable (non-AVX-512) kernel tails. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index/vd_index.h"

#define DIM 4

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static int take(reader *r, uint8_t *out)
{
    if (!r->n) return 0;
    *out = *r->p++;
    r->n--;
    return 1;
}

static void vec_of(uint32_t slot, float *v)
{
    for (int i = 0; i < DIM; i++) v[i] = (float)((slot * 7 + (uint32_t)i * 3) % 11) - 4.5f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    uint8_t metric, n_rec;
    if (!take(&r, &metric) || !take(&r, &n_rec)) return 0;
    vd_index_params p = {.dim = DIM, .metric = (vd_metric)(metric % 3), .m = 4,
                         .ef_construction = 16};
    vd_index *ix = NULL;
    if (vd_index_open(&p, &ix, NULL) != VD_OK) return 0;
    vd_status st = VD_OK;
    for (unsigned i = 0; i < n_rec % 24u && st == VD_OK; i++) {
        uint8_t slot, len;
        if (!take(&r, &slot) || !take(&r, &len)) break;
        if (len > r.n) len = (uint8_t)r.n;
        /* A private copy of exactly len bytes: ASan sees any read past the record. */
        uint8_t *rec = malloc(len ? len : 1);
        memcpy(rec, r.p, len);
        r.p += len;
        r.n -= len;
        float v[DIM];
        vec_of(slot, v);
        st = vd_index_load_slot(ix, slot % 32u, 1000u + slot % 32u, v, rec, len, NULL);
        free(rec);
    }
    uint8_t entry = 255, level = 0, n_slots = 0;
    take(&r, &entry);
    take(&r, &level);
    take(&r, &n_slots);
    if (st == VD_OK) {
        vd_index_header h = {entry == 255 ? UINT32_MAX : entry % 32u, level % 34u, n_slots};
        st = vd_index_load_finish(ix, &h, NULL);
    }
    if (st == VD_OK) {
        if (vd_index_validate(ix, NULL) != VD_OK) {
            /* Only reachability may fail after a successful load (it is logged, not fatal). */
            vd_err e;
            vd_index_validate(ix, &e);
            if (!strstr(e.msg, "not reachable")) abort();
        }
        float q[DIM] = {1, 2, 3, 4};
        vd_hit hits[8];
        uint32_t n = 0;
        if (vd_index_search(ix, q, 8, 16, hits, &n, NULL) != VD_OK) abort();
        if (vd_index_search_exact(ix, q, 8, hits, &n, NULL) != VD_OK) abort();
        if (vd_index_add(ix, 7, q, NULL) != VD_OK) abort();
        if (n) vd_index_remove(ix, hits[0].id, NULL);
        vd_index_remove(ix, 7, NULL);
    }
    vd_index_close(ix);
    return 0;
}
