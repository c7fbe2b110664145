/* engine/cursor.c: scroll cursors - the opaque token a scroll page hands back so that the next
 * page starts after the last point of this one.
 *
 * A cursor is a position, not a server-side object: the last id of the page (keyset
 * pagination). Nothing is held between pages - no snapshot, no iterator, no memory per
 * scroll - so a client may stop scrolling at any time, resume after a restart, or scroll
 * from many threads, and writes in between cannot make a later page repeat or skip a point
 * present throughout: the order is the ids' own and each page resumes strictly after a
 * position. Rejected: an offset (points deleted before it shift the rest: skips and
 * repeats); a server-side LMDB read transaction per scroll (pins old pages for as long as
 * the client dawdles, and dies with the connection).
 *
 * Layout, little-endian:
 *   u8 version (1) | u8 id type (0 int, 1 str) | u32 collection id | position | u64 check
 * position: int ids the u64 id; string ids its 1..512 bytes. check: FNV-1a 64 over every
 * byte before it, from a fixed basis. The collection id is the data directory's (never
 * reused), so a cursor of a dropped and recreated collection is refused as stale. The check
 * catches damaged and hand-made tokens; a well-formed one can only name a position in the id
 * order, which the client could have reached by scrolling anyway. Pure: any thread. */
#include "engine/engine_int.h"

#define CURSOR_VERSION 1
#define CURSOR_HEAD 6 /* version, id type, collection id */
#define CURSOR_CHECK 8

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ 0x7665637464637572ull; /* basis ^ "vectdcur" */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

size_t vd_engine__cursor_encode(uint8_t out[VD_ENGINE__CURSOR_MAX], uint32_t cid, vd_id_type t,
                                uint64_t id, const uint8_t *str, size_t len)
{
    size_t n = CURSOR_HEAD;
    out[0] = CURSOR_VERSION;
    out[1] = (uint8_t)t;
    vd_put_u32le(out + 2, cid);
    if (t == VD_ID_STR) {
        if (len > VD_STR_ID_MAX) len = VD_STR_ID_MAX;
        memcpy(out + n, str, len);
        n += len;
    } else {
        vd_put_u64le(out + n, id);
        n += 8;
    }
    vd_put_u64le(out + n, fnv1a(out, n));
    return n + CURSOR_CHECK;
}

vd_status vd_engine__cursor_decode(const uint8_t *p, size_t n, uint32_t cid, vd_id_type t,
                                   vd_scroll_from *from, vd_err *err)
{
    static const char forged[] = "scroll: invalid cursor (damaged, or not one this server "
                                 "gave); start again without a cursor";
    memset(from, 0, sizeof *from);
    if (n < CURSOR_HEAD + 1 + CURSOR_CHECK || n > VD_ENGINE__CURSOR_MAX || p[0] != CURSOR_VERSION)
        return vd_err_set(err, VD_INVALID, "%s", forged);
    size_t body = n - CURSOR_CHECK;
    if (vd_get_u64le(p + body) != fnv1a(p, body)) return vd_err_set(err, VD_INVALID, "%s", forged);
    size_t pos = body - CURSOR_HEAD;
    if (p[1] > VD_ID_STR || (p[1] == VD_ID_INT && pos != 8) ||
        (p[1] == VD_ID_STR && vd_str_id_check(p + CURSOR_HEAD, pos, NULL) != VD_OK))
        return vd_err_set(err, VD_INVALID, "%s", forged);
    if (vd_get_u32le(p + 2) != cid || p[1] != (uint8_t)t)
        return vd_err_set(err, VD_INVALID, "scroll: the cursor belongs to another collection, or "
                          "to one dropped since; start again without a cursor");
    if (t == VD_ID_STR) {
        from->str = p + CURSOR_HEAD;
        from->str_len = pos;
    } else {
        from->id = vd_get_u64le(p + CURSOR_HEAD);
    }
    return VD_OK;
}
