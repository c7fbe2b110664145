/* storage/records.h: the record codec, the one place that knows how storage's bytes are laid
 * out: the table of LMDB databases, every key, the catalog, points, vector and links records,
 * the meta values, and the length rule of each. Pure functions over bytes (no LMDB, no I/O),
 * so tests/fuzz/fuzz_storage_records.c feeds them hostile bytes directly. Nothing here is
 * public; see storage/records.c for the design note.
 *
 * On-disk layout, format 1 (all integers little-endian except keys):
 *   meta     "magic" -> VD_STORE_MAGIC with its NUL | "format" -> u32 | "next_collection" -> u32
 *   catalog  name bytes             -> catalog record (VD_CATALOG_REC_BYTES, below)
 *   points   cid u32 BE | id u64 BE -> slot u32 | payload JSON bytes as given (none: empty)
 *   vectors  cid u32 BE | slot u32 BE -> id u64 | float32[dim] (host order = LE)
 *   links    cid u32 BE | slot u32 BE -> the index's links record, verbatim
 *   sids     cid u32 BE | string id bytes -> key u64       (collections of string ids only;
 *            ids of VD_SID_SPLIT bytes or more: cid | their first VD_SID_SPLIT bytes ->
 *            a bucket of (rest, key) entries; cid u32 BE alone -> the sequence record:
 *            next key u64 | id bytes u64)
 *   skeys    cid u32 BE | key u64 BE -> string id bytes
 * Big-endian keys sort by collection, then numerically: a collection is one key range of each
 * database, and its vectors and links read in slot order with two parallel cursors. A
 * collection of string ids keys its points, vectors and index by an internal u64 key (dense,
 * assigned in order, never reused); sids and skeys map the user's ids to keys and back, and
 * sids' order is the bytewise order of the ids (scroll walks it).
 *
 * Decoders: each takes the bytes and their length, checks the length rule of its kind first
 * and refuses anything else with VD_CORRUPT (VD_VERSION for a version newer than this build
 * reads), naming the kind and the sizes. On success a decoded view borrows the bytes. */
#ifndef VD_STORAGE_RECORDS_H
#define VD_STORAGE_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/vd_storage.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "stored float32 vectors are written in host order, which must be little-endian"
#endif

/* ---- The databases ---------------------------------------------------------------------
 * Columns: id, LMDB name, key bytes of a table keyed by collection (cid u32 BE first), or 0
 * for a table that is not. Everything keyed by collection is deleted with the collection
 * (vd_storage__collection_del) and checked for orphans (vd_store_check) through this table.
 * A new table is one line here plus its key encoder and record pair below. */
#define VD_KEY_CID_BYTES 4
#define VD_KEY_POINT_BYTES 12
#define VD_KEY_SLOT_BYTES 8
#define VD_KEY_VARIABLE ((size_t)-1) /* cid u32 BE, then any number of bytes */
/* LMDB's keys hold at most 511 bytes (MDB_MAXKEYSIZE as Debian builds it; checked at open),
 * so ids from VD_SID_SPLIT bytes on share a bucket record under their first VD_SID_SPLIT
 * bytes (see the string id records below). Part of the format: never derived at run time. */
#define VD_KEY_MAX 511
#define VD_SID_SPLIT (VD_KEY_MAX - VD_KEY_CID_BYTES)
#define VD_KEY_SID_MAX VD_KEY_MAX
#define VD_KEY_PDEF_BYTES 8
#define VD_KEY_PVAL_BYTES 12
#define VD_STORAGE_DB_MAP(X)                                                                   \
    X(META, "meta", 0)                                                                         \
    X(CATALOG, "catalog", 0)                                                                   \
    X(POINTS, "points", VD_KEY_POINT_BYTES)                                                    \
    X(VECTORS, "vectors", VD_KEY_SLOT_BYTES)                                                   \
    X(LINKS, "links", VD_KEY_SLOT_BYTES)                                                       \
    X(SIDS, "sids", VD_KEY_VARIABLE)                                                           \
    X(SKEYS, "skeys", VD_KEY_POINT_BYTES)                                                      \
    X(PINDEXES, "pindexes", VD_KEY_PDEF_BYTES)                                                 \
    X(PVALUES, "pvalues", VD_KEY_PVAL_BYTES)
/* Every table up to LINKS exists in every data directory ever written (missing: damage); a
 * later one may be absent from a directory an older vectord wrote: it reads as empty, and a
 * read-write open creates it (db.c). */
#define VD_DB_LAST_ORIGINAL VD_DB_LINKS

typedef enum vd_db {
#define X(id, name, key_bytes) VD_DB_##id,
    VD_STORAGE_DB_MAP(X)
#undef X
    VD_DB_COUNT
} vd_db;

typedef struct vd_db_info {
    const char *name;
    size_t cid_key_bytes; /* 0: not keyed by collection; VD_KEY_VARIABLE: cid, then any bytes */
} vd_db_info;
const vd_db_info *vd_storage__db_info(vd_db db); /* static storage */
int vd_storage__cmp_u64(const void *a, const void *b); /* qsort/bsearch order of uint64_t */

/* ---- Keys ------------------------------------------------------------------------------- */
void vd_storage__key_cid(uint8_t k[VD_KEY_CID_BYTES], uint32_t cid); /* a collection's range */
void vd_storage__key_point(uint8_t k[VD_KEY_POINT_BYTES], uint32_t cid, uint64_t id);
void vd_storage__key_slot(uint8_t k[VD_KEY_SLOT_BYTES], uint32_t cid, uint32_t slot);
/* 1 (and the id or slot) if k[0..n) is a points / vectors-or-links key of collection cid. */
int vd_storage__key_point_decode(const void *k, size_t n, uint32_t cid, uint64_t *id);
int vd_storage__key_slot_decode(const void *k, size_t n, uint32_t cid, uint32_t *slot);
/* 1 (and the collection id) if k[0..n) has the key length of collection-keyed table db. */
int vd_storage__key_cid_decode(vd_db db, const void *k, size_t n, uint32_t *cid);
/* sids keys: cid | id[0..min(len, VD_SID_SPLIT)) - the id itself, or for a long id its
 * bucket's prefix; returns the key's length. The sequence record's key is the cid alone
 * (vd_storage__key_cid). */
size_t vd_storage__key_sid(uint8_t k[VD_KEY_SID_MAX], uint32_t cid, const uint8_t *id,
                           size_t len);
/* 1 (and the id or bucket prefix, borrowing k) if k[0..n) is an id key of collection cid:
 * 1..VD_SID_SPLIT bytes after the cid (the sequence key has none); *bucket = 1 when the
 * record is a bucket (exactly VD_SID_SPLIT bytes). The id's own rule is the record's. */
int vd_storage__key_sid_decode(const void *k, size_t n, uint32_t cid, const uint8_t **id,
                               size_t *len, int *bucket);

/* Payload index keys: cid | field number (u32 BE) for a definition; cid | field number | slot
 * (u32 BE) for a slot's values, so one index's values are one key range in slot order. */
void vd_storage__key_pdef(uint8_t k[VD_KEY_PDEF_BYTES], uint32_t cid, uint32_t no);
void vd_storage__key_pval(uint8_t k[VD_KEY_PVAL_BYTES], uint32_t cid, uint32_t no,
                          uint32_t slot);
int vd_storage__key_pdef_decode(const void *k, size_t n, uint32_t cid, uint32_t *no);
int vd_storage__key_pval_decode(const void *k, size_t n, uint32_t cid, uint32_t no,
                                uint32_t *slot);

/* ---- Meta values ------------------------------------------------------------------------ */
#define VD_STORE_MAGIC "vectord-data"
#define VD_META_MAGIC "magic"
#define VD_META_FORMAT "format"
#define VD_META_NEXT_CID "next_collection"
#define VD_META_U32_BYTES 4

void vd_storage__meta_u32_encode(uint8_t out[VD_META_U32_BYTES], uint32_t v);
/* VD_CORRUPT unless the bytes are exactly VD_STORE_MAGIC (with its NUL). */
vd_status vd_storage__magic_decode(const void *p, size_t n, vd_err *err);
/* The storage format: VD_CORRUPT unless 4 bytes holding 1 or more, VD_VERSION above
 * VD_STORAGE_FORMAT_VERSION (*ver is set then too). */
vd_status vd_storage__format_decode(const void *p, size_t n, uint32_t *ver, vd_err *err);
/* The next collection id: VD_CORRUPT unless 4 bytes holding 1 or more. UINT32_MAX decodes
 * (it means the ids are exhausted; creating a collection then is VD_FULL). */
vd_status vd_storage__next_cid_decode(const void *p, size_t n, uint32_t *cid, vd_err *err);

/* ---- Catalog record --------------------------------------------------------------------- */
#define VD_CATALOG_REC_VERSION 2
#define VD_CATALOG_REC_BYTES 80    /* version 2; version 1 records have 72 */
#define VD_CATALOG_REC_V1_BYTES 72

typedef struct vd_catalog_rec {
    uint32_t cid;
    vd_collection_params params; /* name from the key */
    vd_index_header hdr;
    uint64_t created_unix_s;
    uint64_t count;         /* points records */
    uint64_t payload_bytes; /* sum of stored payload lengths */
    uint64_t seed;          /* index level-generator seed */
} vd_catalog_rec;

void vd_storage__catalog_encode(const vd_catalog_rec *r, uint8_t out[VD_CATALOG_REC_BYTES]);
/* Key name[0..name_len) and record p[0..n): the name must pass vd_name_check, the record be
 * version 2 of exactly VD_CATALOG_REC_BYTES or version 1 of VD_CATALOG_REC_V1_BYTES (read as
 * id type int, no quantization; newer: VD_VERSION), its parameters pass
 * vd_storage__params_check with nothing left to default, and count <= n_slots. */
vd_status vd_storage__catalog_decode(const void *name, size_t name_len, const void *p, size_t n,
                                     vd_catalog_rec *r, vd_err *err);

/* ---- Points record ---------------------------------------------------------------------- */
#define VD_POINT_REC_MIN 4
#define VD_SLOT_UNRESOLVED UINT32_MAX /* inside a write group only, never committed */

typedef struct vd_point_rec {
    uint32_t slot;
    const uint8_t *payload; /* NULL when the point has none */
    size_t payload_len;
} vd_point_rec;

size_t vd_storage__point_size(size_t payload_len);
/* Writes vd_storage__point_size(len) bytes at out. */
void vd_storage__point_encode(uint8_t *out, uint32_t slot, const uint8_t *payload, size_t len);
vd_status vd_storage__point_decode(const void *p, size_t n, vd_point_rec *r, vd_err *err);

/* ---- Vector record ---------------------------------------------------------------------- */
typedef struct vd_vector_rec {
    uint64_t id;
    const uint8_t *vec; /* dim float32; LMDB aligns values to 2 bytes only: see _floats */
} vd_vector_rec;

size_t vd_storage__vector_size(uint32_t dim);
void vd_storage__vector_encode(uint8_t *out, uint64_t id, const float *vec, uint32_t dim);
/* Exactly vd_storage__vector_size(dim) bytes. */
vd_status vd_storage__vector_decode(const void *p, size_t n, uint32_t dim, vd_vector_rec *r,
                                    vd_err *err);
/* The record's floats as a 4-aligned pointer: in place when they are aligned, else copied
 * into caller-owned `scratch` of dim floats. */
const float *vd_storage__vector_floats(const vd_vector_rec *r, uint32_t dim, float *scratch);

/* ---- String ids: sids, skeys and the sequence record ------------------------------------
 * sids value: the key, u64 LE, exactly 8 bytes. skeys value: the id's bytes, which must pass
 * vd_str_id_check (1..VD_STR_ID_MAX bytes of UTF-8). The sequence record (sids, key = cid
 * alone): next_key u64 LE | id_bytes u64 LE, exactly 16 bytes; absent means {0, 0}. Keys
 * are taken from next_key and never reused, so a key read by a search names one id forever
 * (engine/read.c relies on it). */
#define VD_SID_REC_BYTES 8
#define VD_SIDSEQ_REC_BYTES 16

typedef struct vd_sidseq {
    uint64_t next_key; /* the key the next new id gets */
    uint64_t id_bytes; /* sum of the lengths of the live ids */
} vd_sidseq;

void vd_storage__sid_encode(uint8_t out[VD_SID_REC_BYTES], uint64_t key);
vd_status vd_storage__sid_decode(const void *p, size_t n, uint64_t *key, vd_err *err);
/* A bucket (the sids value of a VD_SID_SPLIT-byte key): the ids that start with the key's
 * bytes, as entries u8 rest_len (0..VD_SID_REST_MAX) | rest bytes | key u64 LE, in strictly
 * ascending bytewise order of the rests, at least one. decode checks exactly that. */
#define VD_SID_REST_MAX (VD_STR_ID_MAX - VD_SID_SPLIT)
#define VD_SID_ENTRY_MAX (1 + VD_SID_REST_MAX + 8)
vd_status vd_storage__sid_bucket_decode(const void *p, size_t n, vd_err *err);
/* Entry at *off of a decoded bucket (advancing *off); 0 past the last. */
int vd_storage__sid_bucket_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **rest,
                                size_t *rest_len, uint64_t *key);
/* The key of `rest` in a decoded bucket; 0 if absent. */
int vd_storage__sid_bucket_find(const uint8_t *p, size_t n, const uint8_t *rest,
                                size_t rest_len, uint64_t *key);
/* Bucket p[0..n) (n 0: none yet) with `rest` set to `key`, or removed when key is
 * VD_ID_NONE, into out (room for n + VD_SID_ENTRY_MAX); returns the new length (0: empty). */
size_t vd_storage__sid_bucket_edit(const uint8_t *p, size_t n, const uint8_t *rest,
                                   size_t rest_len, uint64_t key, uint8_t *out);
vd_status vd_storage__skey_decode(const void *p, size_t n, vd_err *err);
void vd_storage__sidseq_encode(uint8_t out[VD_SIDSEQ_REC_BYTES], const vd_sidseq *q);
vd_status vd_storage__sidseq_decode(const void *p, size_t n, vd_sidseq *q, vd_err *err);

/* ---- Links record -----------------------------------------------------------------------
 * The value is the index's links record verbatim: the index owns that format
 * (VD_INDEX_LINKS_FORMAT), serializes it (vd_index_slot_links) and decodes it, hostile input
 * included (vd_index_load_slot). Storage adds no framing, so it knows none of its offsets. */
typedef struct vd_buf { /* a growable byte buffer, for records built before a put */
    uint8_t *p;
    size_t cap;
} vd_buf;
uint8_t *vd_storage__buf_reserve(vd_buf *b, size_t n); /* >= n bytes, or NULL (NOMEM) */
void vd_storage__buf_free(vd_buf *b);

/* ---- Payload index definition (pindexes) -------------------------------------------------
 * u8 version | u8 kind | u8 ready | u8 0 | u64 resume (building: the next point id to scan) |
 * u64 scanned (points scanned so far) | u64 end (the scan stops below it: one past the
 * largest id stored when the index was created; the writes made since index themselves) |
 * u32 path_len | path bytes. */
#define VD_PDEF_REC_VERSION 1
#define VD_PDEF_REC_MIN 32
typedef struct vd_pdef_rec {
    vd_pindex_kind kind;
    int ready;
    uint64_t resume, scanned, end;
    const char *path; /* borrowed, path_len bytes */
    size_t path_len;
} vd_pdef_rec;
size_t vd_storage__pdef_size(size_t path_len);
void vd_storage__pdef_encode(uint8_t *out, const vd_pdef_rec *r);
/* Exactly VD_PDEF_REC_MIN + path_len bytes; a known kind; a path vd_storage__path_check
 * accepts; a newer version is VD_VERSION. */
vd_status vd_storage__pdef_decode(const void *p, size_t n, vd_pdef_rec *r, vd_err *err);

/* ---- A slot's values in one payload index (pvalues) ---------------------------------------
 * u8 version | u8 kind | u8 flags | u8 0 | u32 n | n values, ascending and distinct:
 *   keyword: u32 len | bytes (ordered by bytes, then length);  integer, float: u64 key;
 *   bool: u8 0 or 1.
 * Keys of numbers are order-preserving: an integer v is (u64)v ^ 2^63, a double's bits are
 * flipped so that unsigned order is numeric order (vd_storage__key_of_*). flags: PRESENT -
 * the path finds something in the payload; FALLBACK - it finds a value of the index's type
 * the index cannot key (an integer index: a fraction or a number beyond int64; a float
 * index: an integer beyond 2^53), which filters then check in the payload. A record exists
 * exactly when PRESENT is set. */
#define VD_PVAL_REC_VERSION 1
#define VD_PVAL_REC_MIN 8
#define VD_PVAL_PRESENT 1u
#define VD_PVAL_FALLBACK 2u
typedef struct vd_pval_item { /* one value: a key, or a string */
    uint64_t key;
    const char *s;
    size_t len;
} vd_pval_item;
typedef struct vd_pvals { /* a decoded record, borrowing its bytes */
    vd_pindex_kind kind;
    unsigned flags;
    uint32_t n;
    const uint8_t *vals; /* the n values as encoded */
    size_t vals_len;
} vd_pvals;
/* Encodes items[0..n) (sorted and distinct: vd_storage__pvals_sort makes them so) into b;
 * the length into *len. VD_NOMEM. */
vd_status vd_storage__pvals_encode(vd_buf *b, vd_pindex_kind kind, unsigned flags,
                                   vd_pval_item *items, size_t n, size_t *len, vd_err *err);
/* The kind's order of values: keys numerically; strings by bytes, then length. */
int vd_storage__item_cmp(vd_pindex_kind kind, const vd_pval_item *a, const vd_pval_item *b);
/* Sorts items by the kind's order and drops duplicates; returns the new count. */
size_t vd_storage__pvals_sort(vd_pindex_kind kind, vd_pval_item *items, size_t n);
/* Checks every length, the kind (must be `kind`), PRESENT set, the order and distinctness. */
vd_status vd_storage__pvals_decode(const void *p, size_t n, vd_pindex_kind kind, vd_pvals *r,
                                   vd_err *err);
/* The i-th value walk: *it starts at 0; fills *item and returns 1, or 0 after the last. Only
 * for a record vd_storage__pvals_decode accepted. */
int vd_storage__pvals_next(const vd_pvals *r, size_t *it, vd_pval_item *item);

/* Order-preserving keys of numbers. */
static inline uint64_t vd_storage__key_of_int(int64_t v) { return (uint64_t)v ^ (1ull << 63); }
static inline int64_t vd_storage__int_of_key(uint64_t k) { return (int64_t)(k ^ (1ull << 63)); }
uint64_t vd_storage__key_of_double(double d); /* d finite; -0.0 keys as 0.0 */
double vd_storage__double_of_key(uint64_t k);

/* ---- Links record -----------------------------------------------------------------------
 * The value is the index's links record verbatim: the index owns that format
 * (VD_INDEX_LINKS_FORMAT), serializes it (vd_index_slot_links) and decodes it, hostile input
 * included (vd_index_load_slot). Storage adds no framing, so it knows none of its offsets. */

/* The links record of filled slot `slot` into b (grown as needed); its length into *len.
 * Valid until the next use of b. VD_NOMEM, or the index's status. */
vd_status vd_storage__links_encode(const vd_index *ix, uint32_t slot, vd_buf *b, size_t *len,
                                   vd_err *err);

/* Loads one slot of an index being loaded (vd_index_load_slot) from its vector record
 * v[0..vn) and links record l[0..ln), decoding the vector record for the index's dim.
 * `scratch` holds dim floats. VD_CORRUPT (VD_VERSION for a newer links format, VD_NOMEM)
 * with the problem in the message; the caller names the collection and the slot. */
vd_status vd_storage__slot_load(vd_index *ix, uint32_t slot, const void *v, size_t vn,
                                const void *l, size_t ln, float *scratch, vd_err *err);

/* ---- Collection parameters (names.c) ----------------------------------------------------- */
/* The one check of collection parameters in storage: the name rule (vd_name_check), then the
 * index's table (vd_index_params_check, vd_param_resolve for ef_search); fills defaults in
 * place. Used on create, on import and by vd_storage__catalog_decode. */
vd_status vd_storage__params_check(vd_collection_params *p, vd_err *err);
/* jsonmerge.c: object upd[0..un) merged into object base[0..bn) by top-level key (base's
 * members that upd does not name, then upd's), both valid (vd_json_check_object), into out
 * (room for bn + un + 1 bytes); *out_len gets its length. VD_NOMEM only. */
vd_status vd_storage__json_merge(const uint8_t *base, size_t bn, const uint8_t *upd, size_t un,
                                 uint8_t *out, size_t *out_len, vd_err *err);
/* The length of the UTF-8 sequence at s[0..left) (1 for ASCII), or 0 with *why set
 * ("invalid UTF-8 continuation byte"...): the one UTF-8 rule, for string ids and JSON. */
int vd_storage__utf8_seq(const uint8_t *s, size_t left, const char **why);

#endif
