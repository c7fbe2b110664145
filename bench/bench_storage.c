/* bench/bench_storage.c: build/bench-storage - what storage costs: reopen time against
 * rebuild time, durable write throughput by batch size, disk bytes per point.
 *
 *   bench-storage build DIR N DIM [EFC]  build an N x DIM synthetic index in memory (all
 *                                   cores, M 16, ef_construction EFC, default 200), then
 *                                   import it into DIR (one transaction): the rebuild cost
 *   bench-storage open DIR          vd_store_open (loads every graph), then the first search
 *   bench-storage parts DIR         where open time goes: LMDB reads, index load, validation
 *   bench-storage write DIR         durable upsert throughput for batches of 1, 100, 10000
 *   bench-storage delete DIR [N]    durable replace and delete throughput on N clustered
 *                                   128-d points (default 40000): 300 replaced, one upsert
 *                                   per write; then half of them deleted in random order,
 *                                   300 one per write, then in batches of 256 (the daemon's
 *                                   group commits) and one of 10000. Beside each, the same
 *                                   writes to a bare index built alike: the graph's share,
 *                                   its repairs (issue 13)
 *   bench-storage all DIR N DIM     build (unless DIR already holds the collection), open,
 *                                   parts, write into DIR-write, delete into DIR-delete (what
 *                                   `make bench` runs)
 * Each measurement prints one human line and one JSON line. `open` right after `build` reads
 * from the page cache; run it again after `echo 3 > /proc/sys/vm/drop_caches` for a cold
 * start. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lmdb.h>

#include "bench/bench_common.h"
#include "storage/vd_storage.h"

static double now_s(void) { return (double)vd_now_ns() / 1e9; }

/* CPU seconds of this process: on a shared, oversubscribed machine wall time overstates. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void fill(float *v, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = (float)((double)(x >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
}

static void die(const char *what, const vd_err *e)
{
    fprintf(stderr, "bench-storage: %s: %s\n", what, e ? e->msg : "out of memory");
    exit(1);
}

static void progress(void *ctx, size_t done, size_t total)
{
    fprintf(stderr, "\r%s %zu / %zu   ", (const char *)ctx, done, total);
}

static uint64_t file_bytes(const char *dir)
{
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* A "Key:   123 kB" line of /proc/self/status, in kB (0 if absent). */
static double status_kb(const char *key)
{
    char line[256];
    double kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) kb = atof(line + strlen(key));
    if (f) fclose(f);
    return kb;
}

static int mode_build(const char *dir, size_t n, uint32_t dim, uint32_t efc)
{
    vd_err e = {0};
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1};
    if (vd_store_open(dir, &opt, &st, &e) != VD_OK) die("open", &e);
    float *vecs = malloc(n * dim * sizeof *vecs);
    uint64_t *ids = malloc(n * sizeof *ids);
    fill(vecs, n * dim, 42);
    for (size_t i = 0; i < n; i++) ids[i] = i;
    vd_index_params ip = {.dim = dim, .metric = VD_METRIC_L2, .m = 16, .ef_construction = efc,
                          .seed = 1, .capacity_hint = (uint32_t)n};
    vd_index *ix = NULL;
    if (vd_index_open(&ip, &ix, &e) != VD_OK) die("index", &e);
    double t0 = now_s();
    if (vd_index_add_batch(ix, ids, vecs, n, 0, progress, "build", &e) != VD_OK) die("build", &e);
    double t1 = now_s();
    vd_collection_params p = {.name = "bench", .dim = dim, .metric = VD_METRIC_L2, .m = 16,
                              .ef_construction = efc};
    if (vd_store_import(st, &p, ix, n, ids, NULL, NULL, 1, progress, "import", &e) != VD_OK)
        die("import", &e);
    double t2 = now_s();
    vd_store_close(st);
    uint64_t fb = file_bytes(dir);
    printf("\nbuild %zu x %u (M 16, ef_construction %u): index %.1f s, import (one txn, synced) "
           "%.1f s, data.mdb %.1f MiB, %.0f bytes/point\n",
           n, dim, efc, t1 - t0, t2 - t1, fb / 1048576.0, (double)fb / n);
    printf("{\"measure\":\"build\",\"n\":%zu,\"dim\":%u,\"build_s\":%.2f,\"import_s\":%.2f,"
           "\"file_bytes\":%" PRIu64 ",\"bytes_per_point\":%.1f}\n", n, dim, t1 - t0, t2 - t1,
           fb, (double)fb / n);
    free(vecs);
    free(ids);
    return 0;
}

static int mode_open(const char *dir)
{
    vd_err e = {0};
    vd_store *st = NULL;
    vd_store_options opt = {0};
    double t0 = now_s(), c0 = cpu_s();
    if (vd_store_open(dir, &opt, &st, &e) != VD_OK) die("open", &e);
    double t1 = now_s();
    vd_collection *c = NULL;
    if (vd_store_acquire(st, "bench", &c, &e) != VD_OK) die("acquire", &e);
    uint32_t dim = vd_collection_params_of(c)->dim;
    float *q = malloc(dim * sizeof *q);
    fill(q, dim, 7);
    vd_hit hits[10];
    uint32_t nh = 0;
    if (vd_index_search(vd_collection_index(c), q, 10, 0, hits, &nh, &e) != VD_OK)
        die("search", &e);
    double t2 = now_s(), c2 = cpu_s();
    vd_collection_info info;
    vd_collection_info_get(c, &info);
    /* Resident memory after the load against the DESIGN.md model (raw vectors + links,
     * 2M level-0 links of 4 bytes each): anonymous (the index) and file-backed (LMDB pages
     * still mapped from the load, reclaimable). */
    double anon_mb = status_kb("RssAnon:") / 1024.0, file_mb = status_kb("RssFile:") / 1024.0;
    double model_mb = (double)info.count * (dim * 4.0 + 2 * 16 * 4.0) / 1048576.0;
    printf("memory after open: RssAnon %.0f MiB, RssFile %.0f MiB, index %.0f MiB; raw vectors "
           "+ links %.0f MiB; anon / model %.2f\n", anon_mb, file_mb,
           info.bytes_memory / 1048576.0, model_mb, anon_mb / model_mb);
    printf("{\"measure\":\"memory\",\"rss_anon_mb\":%.1f,\"rss_file_mb\":%.1f,"
           "\"index_mb\":%.1f,\"model_mb\":%.1f}\n", anon_mb, file_mb,
           info.bytes_memory / 1048576.0, model_mb);
    printf("open %s: %" PRIu64 " points x %u: open+load %.2f s, first search %.4f s, total "
           "%.2f s wall, %.2f s CPU (%u hits)\n", dir, info.count, dim, t1 - t0, t2 - t1,
           t2 - t0, c2 - c0, nh);
    printf("{\"measure\":\"open\",\"n\":%" PRIu64 ",\"dim\":%u,\"open_s\":%.3f,"
           "\"first_search_s\":%.4f,\"total_s\":%.3f,\"cpu_s\":%.3f}\n", info.count, dim,
           t1 - t0, t2 - t1, t2 - t0, c2 - c0);
    free(q);
    vd_collection_release(c);
    double t3 = now_s();
    vd_store_close(st);
    fprintf(stderr, "close %.2f s\n", now_s() - t3);
    return 0;
}

static int mode_write(const char *dir)
{
    vd_err e = {0};
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1};
    if (vd_store_open(dir, &opt, &st, &e) != VD_OK) die("open", &e);
    const uint32_t dim = 128;
    static const size_t sizes[] = {1, 100, 10000};
    static const size_t batches[] = {300, 60, 3};
    uint64_t next_id = 0;
    for (size_t si = 0; si < 3; si++) {
        char name[32];
        snprintf(name, sizeof name, "w%zu", sizes[si]);
        vd_op cr = {.kind = VD_OP_CREATE};
        strcpy(cr.params.name, name);
        cr.params.dim = dim;
        if (vd_store_write(st, &cr, 1, &e) != VD_OK || (cr.status && cr.status != VD_EXISTS))
            die("create", cr.status ? &cr.err : &e);
        size_t bs = sizes[si], nb = batches[si];
        float *vecs = malloc(bs * dim * sizeof *vecs);
        uint64_t *ids = malloc(bs * sizeof *ids);
        uint8_t pbuf[64];
        double t0 = now_s(), t_commit = 0;
        for (size_t b = 0; b < nb; b++) {
            for (size_t i = 0; i < bs; i++) ids[i] = next_id++;
            fill(vecs, bs * dim, next_id);
            int pl = snprintf((char *)pbuf, sizeof pbuf, "{\"text\":\"chunk %zu\"}", b);
            const uint8_t **pls = malloc(bs * sizeof *pls);
            uint32_t *lens = malloc(bs * sizeof *lens);
            for (size_t i = 0; i < bs; i++) {
                pls[i] = pbuf;
                lens[i] = (uint32_t)pl;
            }
            vd_op op = {.kind = VD_OP_UPSERT, .collection = name, .ids = ids, .n = bs,
                        .vectors = vecs, .payloads = pls, .payload_lens = lens};
            double tb = now_s();
            if (vd_store_write(st, &op, 1, &e) != VD_OK || op.status != VD_OK)
                die("upsert", op.status ? &op.err : &e);
            t_commit += now_s() - tb;
            free(pls);
            free(lens);
        }
        double dt = now_s() - t0;
        double pps = (double)(bs * nb) / dt;
        /* The same inserts into a bare in-memory index: the share of the graph work. */
        vd_index_params ip = {.dim = dim, .metric = VD_METRIC_L2, .m = 16,
                              .ef_construction = 200, .deferred_publish = 1};
        vd_index *ix = NULL;
        if (vd_index_open(&ip, &ix, &e) != VD_OK) die("index", &e);
        uint64_t id0 = next_id - bs * nb;
        double ti = now_s();
        for (size_t b = 0; b < nb; b++) {
            for (size_t i = 0; i < bs; i++) ids[i] = id0 + b * bs + i;
            fill(vecs, bs * dim, id0 + (b + 1) * bs);
            if (vd_index_add_batch(ix, ids, vecs, bs, 0, NULL, NULL, &e) != VD_OK) die("add", &e);
            vd_index_publish(ix);
        }
        double di = now_s() - ti;
        vd_index_close(ix);
        printf("durable upsert, batches of %5zu x %u: %zu batches in %.2f s = %.0f points/s "
               "(%.1f ms per batch; the same inserts in a bare index: %.2f s)\n", bs, dim, nb,
               dt, pps, 1000.0 * t_commit / nb, di);
        printf("{\"measure\":\"write\",\"batch\":%zu,\"dim\":%u,\"batches\":%zu,\"seconds\":%.3f,"
               "\"points_per_s\":%.1f,\"index_only_s\":%.3f}\n", bs, dim, nb, dt, pps, di);
        free(vecs);
        free(ids);
    }
    vd_store_close(st);
    return 0;
}

/* Deletes of ids[0..n) from the collection, `bs` per durable write; seconds. */
static double store_deletes(vd_store *st, const char *name, const uint64_t *ids, size_t n,
                            size_t bs)
{
    vd_err e = {0};
    double t0 = now_s();
    for (size_t i = 0; i < n; i += bs) {
        vd_op op = {.kind = VD_OP_DELETE, .collection = name, .ids = ids + i,
                    .n = n - i < bs ? n - i : bs};
        if (vd_store_write(st, &op, 1, &e) != VD_OK || op.status != VD_OK || op.n_done != op.n)
            die("delete", op.status ? &op.err : &e);
    }
    return now_s() - t0;
}

/* The same deletes from a bare index, one publish per `bs` (what a write group does). */
static double index_deletes(vd_index *ix, const uint64_t *ids, size_t n, size_t bs)
{
    vd_err e = {0};
    double t0 = now_s();
    for (size_t i = 0; i < n; i += bs) {
        for (size_t j = i; j < n && j < i + bs; j++)
            if (vd_index_remove(ix, ids[j], &e) != VD_OK) die("remove", &e);
        vd_index_publish(ix);
    }
    return now_s() - t0;
}

static int mode_delete(const char *dir, size_t n)
{
    enum { DIM = 128, LOAD_BATCH = 10000 };
    vd_err e = {0};
    vd_bench_fmat base = {0}, queries = {0};
    if (n < 20600) n = 20600; /* room for the three phases below */
    if (vd_bench_synthetic_clustered(n, DIM, 1, 100, &base, &queries, &e) != VD_OK)
        die("data", &e);
    uint64_t *ids = malloc(n * sizeof *ids), *order = malloc(n * sizeof *order);
    if (!ids || !order) die("ids", NULL);
    for (size_t i = 0; i < n; i++) ids[i] = order[i] = i;
    uint64_t rng = 7;
    for (size_t i = n; i > 1; i--) { /* the deletion order: a random permutation */
        size_t j = (size_t)(vd_bench_splitmix64(&rng) % i);
        uint64_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    vd_store *st = NULL;
    vd_store_options opt = {.create = 1};
    if (vd_store_open(dir, &opt, &st, &e) != VD_OK) die("open", &e);
    vd_op cr = {.kind = VD_OP_CREATE};
    strcpy(cr.params.name, "del");
    cr.params.dim = DIM;
    cr.params.metric = VD_METRIC_L2;
    if (vd_store_write(st, &cr, 1, &e) != VD_OK || cr.status)
        die("create", cr.status ? &cr.err : &e);
    vd_index_params ip = {.dim = DIM, .metric = VD_METRIC_L2, .m = 16, .ef_construction = 200,
                          .deferred_publish = 1};
    vd_index *ix = NULL;
    if (vd_index_open(&ip, &ix, &e) != VD_OK) die("index", &e);
    double t0 = now_s();
    for (size_t i = 0; i < n; i += LOAD_BATCH) {
        size_t bs = n - i < LOAD_BATCH ? n - i : LOAD_BATCH;
        vd_op op = {.kind = VD_OP_UPSERT, .collection = "del", .ids = ids + i, .n = bs,
                    .vectors = base.data + i * DIM};
        if (vd_store_write(st, &op, 1, &e) != VD_OK || op.status != VD_OK)
            die("upsert", op.status ? &op.err : &e);
        if (vd_index_add_batch(ix, ids + i, base.data + i * DIM, bs, 1, NULL, NULL, &e) != VD_OK)
            die("add", &e);
        vd_index_publish(ix);
    }
    fprintf(stderr, "loaded %zu clustered %u-d points (store and bare index) in %.1f s\n", n,
            (unsigned)DIM, now_s() - t0);
    /* Upserts of existing ids (a document re-embedded), one per write: each replaces a point,
     * which the index counts as a removal. */
    enum { N_REPLACE = 300 };
    double tr = now_s(), ti;
    for (size_t i = 0; i < N_REPLACE; i++) {
        uint64_t id = order[n - 1 - i]; /* among the points the deletes below leave */
        vd_op op = {.kind = VD_OP_UPSERT, .collection = "del", .ids = &id, .n = 1,
                    .vectors = base.data + (size_t)order[i] * DIM};
        if (vd_store_write(st, &op, 1, &e) != VD_OK || op.status != VD_OK)
            die("upsert", op.status ? &op.err : &e);
    }
    tr = now_s() - tr;
    ti = now_s();
    for (size_t i = 0; i < N_REPLACE; i++) {
        uint64_t id = order[n - 1 - i];
        if (vd_index_add(ix, id, base.data + (size_t)order[i] * DIM, &e) != VD_OK) die("add", &e);
        vd_index_publish(ix);
    }
    ti = now_s() - ti;
    printf("durable replacing upsert, batches of 1: %d in %.2f s = %.0f points/s, %.1f us each "
           "(the same upserts to a bare index: %.1f us each, %.0f %%)\n", N_REPLACE, tr,
           N_REPLACE / tr, 1e6 * tr / N_REPLACE, 1e6 * ti / N_REPLACE, 100.0 * ti / tr);
    printf("{\"measure\":\"replace\",\"batch\":1,\"upserts\":%d,\"points\":%zu,"
           "\"seconds\":%.3f,\"points_per_s\":%.1f,\"index_only_s\":%.3f}\n", N_REPLACE, n,
           tr, N_REPLACE / tr, ti);
    static const size_t bss[] = {1, 256, 10000};
    size_t counts[] = {300, 0, 10000}, at = 0;
    counts[1] = n / 2 - counts[0] - counts[2];
    for (size_t p = 0; p < 3; p++) {
        double ds = store_deletes(st, "del", order + at, counts[p], bss[p]);
        double di = index_deletes(ix, order + at, counts[p], bss[p]);
        at += counts[p];
        printf("durable delete, batches of %5zu: %5zu deletes in %.2f s = %.0f points/s, %.1f us "
               "each (the same deletes from a bare index: %.1f us each, %.0f %%)\n", bss[p],
               counts[p], ds, counts[p] / ds, 1e6 * ds / counts[p], 1e6 * di / counts[p],
               100.0 * di / ds);
        printf("{\"measure\":\"delete\",\"batch\":%zu,\"deletes\":%zu,\"points\":%zu,"
               "\"seconds\":%.3f,\"points_per_s\":%.1f,\"index_only_s\":%.3f}\n", bss[p],
               counts[p], n, ds, counts[p] / ds, di);
        fflush(stdout);
    }
    vd_index_close(ix);
    vd_store_close(st);
    vd_bench_fmat_free(&base);
    vd_bench_fmat_free(&queries);
    free(ids);
    free(order);
    return 0;
}

/* Where open time goes: LMDB cursor reads alone, then the same reads feeding
 * vd_index_load_slot, then vd_index_load_finish (collection "bench"). */
static int mode_parts(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dv, dl, dc;
    MDB_cursor *cv, *cl;
    MDB_val kv, vv, kl, vl;
    vd_err e = {0};
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_set_mapsize(env, (size_t)1 << 36) || mdb_env_open(env, dir, MDB_RDONLY, 0644) ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) || mdb_dbi_open(txn, "vectors", 0, &dv) ||
        mdb_dbi_open(txn, "links", 0, &dl) || mdb_dbi_open(txn, "catalog", 0, &dc)) {
        fprintf(stderr, "bench-storage: cannot open %s\n", dir);
        return 1;
    }
    MDB_val kn = {5, "bench"}, vn;
    if (mdb_get(txn, dc, &kn, &vn) || vn.mv_size < 40) return 1;
    const uint8_t *r = vn.mv_data;
    uint32_t dim = vd_get_u32le(r + 8);
    vd_index_header h = {vd_get_u32le(r + 28), vd_get_u32le(r + 32), vd_get_u32le(r + 36)};
    for (int pass = 0; pass < 2; pass++) {
        vd_index *ix = NULL;
        vd_index_params ip = {.dim = dim, .metric = (vd_metric)vd_get_u32le(r + 12),
                              .m = vd_get_u32le(r + 16),
                              .ef_construction = vd_get_u32le(r + 20),
                              .capacity_hint = h.n_slots, .deferred_publish = 1};
        if (pass && vd_index_open(&ip, &ix, &e) != VD_OK) die("index", &e);
        double t0 = now_s(), c0 = cpu_s();
        size_t n = 0;
        mdb_cursor_open(txn, dv, &cv);
        mdb_cursor_open(txn, dl, &cl);
        float *al = malloc(dim * sizeof *al);
        while (!mdb_cursor_get(cv, &kv, &vv, MDB_NEXT) && !mdb_cursor_get(cl, &kl, &vl, MDB_NEXT)) {
            n++;
            if (!pass) continue;
            memcpy(al, (uint8_t *)vv.mv_data + 8, dim * sizeof *al);
            if (vd_index_load_slot(ix, vd_get_u32be((uint8_t *)kv.mv_data + 4),
                                   vd_get_u64le(vv.mv_data), al, vl.mv_data, vl.mv_size,
                                   &e) != VD_OK)
                die("load_slot", &e);
        }
        mdb_cursor_close(cv);
        mdb_cursor_close(cl);
        double t1 = now_s(), c1 = cpu_s();
        if (pass && vd_index_load_finish(ix, &h, &e) != VD_OK) die("load_finish", &e);
        double t2 = now_s(), c2 = cpu_s();
        if (!pass)
            printf("parts: LMDB cursor reads of %zu vector+links records: %.2f s wall, %.2f s "
                   "CPU\n", n, t1 - t0, c1 - c0);
        else
            printf("parts: reads + vd_index_load_slot: %.2f s wall, %.2f s CPU; "
                   "vd_index_load_finish: %.2f s wall, %.2f s CPU\n", t1 - t0, c1 - c0,
                   t2 - t1, c2 - c1);
        free(al);
        vd_index_close(ix);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "parts")) return mode_parts(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "build"))
        return mode_build(argv[2], (size_t)strtoull(argv[3], NULL, 10),
                          (uint32_t)strtoul(argv[4], NULL, 10),
                          argc >= 6 ? (uint32_t)strtoul(argv[5], NULL, 10) : 200);
    if (argc >= 3 && !strcmp(argv[1], "open")) return mode_open(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "write")) return mode_write(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "delete"))
        return mode_delete(argv[2], argc >= 4 ? (size_t)strtoull(argv[3], NULL, 10) : 40000);
    if (argc >= 5 && !strcmp(argv[1], "all")) {
        char wdir[4096], rm[4200];
        snprintf(wdir, sizeof wdir, "%s-write", argv[2]);
        snprintf(rm, sizeof rm, "rm -rf '%s'", wdir); /* writes start from an empty store */
        if (system(rm) != 0) return 1;
        struct stat sb;
        if (stat(argv[2], &sb) != 0) {
            /* Built in a child, so that open's memory figures are a fresh process's (LMDB and
             * malloc keep the import transaction's page buffers until exit). */
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                int rc = mode_build(argv[2], (size_t)strtoull(argv[3], NULL, 10),
                                    (uint32_t)strtoul(argv[4], NULL, 10), 200);
                fflush(stdout);
                _exit(rc);
            }
            int status = 1;
            if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) return 1;
        }
        char ddir[4110];
        snprintf(ddir, sizeof ddir, "%s-delete", argv[2]);
        snprintf(rm, sizeof rm, "rm -rf '%s'", ddir);
        if (system(rm) != 0) return 1;
        return mode_open(argv[2]) || mode_parts(argv[2]) || mode_write(wdir) ||
               mode_delete(ddir, 40000);
    }
    int help = argc >= 2 && !strcmp(argv[1], "--help");
    fprintf(help ? stdout : stderr,
            "usage: bench-storage build DIR N DIM [EFC] | open DIR | parts DIR | write DIR | "
            "delete DIR [N] | all DIR N DIM\n(see the top of bench/bench_storage.c)\n");
    return help ? 0 : 2;
}
