/* client/python/ext/ext_int.h: what the files of the vectord._engine extension share.
 *
 *   module.c  the module, the Engine type (open, close, the call guard), the one runner every
 *             operation goes through (GIL released, the writer lock, errors), the Array type
 *             numpy wraps without a copy, and the test rendezvous
 *   ops.c     the operations, one table row each: arguments -> a vd_request, result -> Python
 *   pool.c    the thread pool the engine's searches run on (no Python)
 *
 * The extension is a thin layer: vectord/embedded.py validates and converts arguments with
 * the Client's own code (vectord/_codec.py) before calling here, so these files check only
 * what C needs to stay safe (buffer sizes, integer ranges), and everything else is the
 * engine's, exactly as for the daemon. */
#ifndef VD_EXT_INT_H
#define VD_EXT_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>

#include "client/python/ext/pool.h"
#include "engine/vd_engine.h"

/* An open data directory. Any number of Python threads may call it at once: reads run
 * concurrently, writes one at a time (write_mu), close waits for the calls in progress. */
typedef struct vd_py_engine {
    PyObject ob_base; /* PyObject_HEAD */
    vd_store *store;
    vd_engine *engine;
    vd_pool *pool;
    pthread_mutex_t write_mu; /* the engine's writer rule: one writing thread at a time */
    pthread_mutex_t use_mu;   /* guards n_active and closed */
    pthread_cond_t use_cv;
    long n_active; /* calls inside the engine now */
    int closed, initialized;
    pid_t opener; /* a child after fork() has the object but not the threads or the lock */
    uint64_t opened_ns;
    atomic_uint_fast64_t requests_total, errors_total, writes_committed, ops_committed;
} vd_py_engine;

/* What an operation holds from its arguments until the call ends: the request, the buffers
 * it borrows (released with the GIL held), payload entries. */
#define VD_EXT_MAX_BUFS 3
typedef struct vd_ext_args {
    vd_request req;
    Py_buffer bufs[VD_EXT_MAX_BUFS];
    int n_bufs;
    vd_bytes *payloads;      /* vd_malloc'ed entries pointing into payload_list's bytes */
    const uint8_t **pl_ptrs; /* the same as pointers and lengths (the build's form) */
    uint32_t *pl_lens;
    PyObject *payload_list; /* a reference, so the bytes stay alive without the GIL */
    uint32_t batch;         /* upsert: points per write */
    vd_build_req build;     /* build */
    vd_str_ids str_ids;     /* build's string ids (build.str_ids points here) */
    vd_build_result built;
    void *filter_mem;    /* the request's filter tree (vd_proto_filter_decode), or NULL */
    const char *context; /* set by an exec that failed inside one part of the call */
    char context_buf[64];
} vd_ext_args;

/* One operation (ops.c). parse runs with the GIL and returns 0 with a Python error set;
 * exec runs without it (NULL: vd_engine_execute on a.req); result runs with it. */
typedef struct vd_ext_op {
    const char *name;
    vd_request_kind kind; /* set in the request before parse */
    int write;            /* holds write_mu during exec */
    int (*parse)(PyObject *args, vd_ext_args *a);
    vd_status (*exec)(vd_py_engine *self, vd_ext_args *a, vd_result *res, vd_err *err);
    PyObject *(*result)(vd_py_engine *self, vd_ext_args *a, vd_result *res);
} vd_ext_op;

/* The table, and the Engine methods it generates (ops.c). */
extern const vd_ext_op vd_ext_ops[];
extern PyMethodDef vd_ext_op_methods[];

/* Runs operation `op` (module.c): parse, the guard, the GIL released around exec, counters,
 * the error or the result. */
PyObject *vd_ext_run(vd_py_engine *self, const vd_ext_op *op, PyObject *args);

/* ---- helpers for ops.c (module.c) ---- */
/* Borrows a contiguous buffer of whole `item`-byte elements into a->bufs; returns it, or NULL
 * with InvalidArgument set ("vectors: 10 bytes is not a whole number of 4-byte values"). */
Py_buffer *vd_ext_buffer(vd_ext_args *a, PyObject *obj, size_t item, const char *what);
/* A UTF-8 name without NUL bytes, borrowed from the str `obj` (alive with the args). */
const char *vd_ext_name(PyObject *obj, const char *what);
/* `list` (a list of bytes, or None) as n vd_bytes entries in a->payloads. */
int vd_ext_payloads(vd_ext_args *a, PyObject *list, size_t n);
/* A new Array owning `data` (n_bytes of it), which it vd_free()s with its last reference; on
 * failure `data` is freed and NULL returned. NULL data with n_bytes == 0 is fine. */
PyObject *vd_ext_array(void *data, size_t n_bytes);
/* Raises the vectord.Error subclass of status s (its wire code) with err's message. */
PyObject *vd_ext_raise(vd_status s, const char *msg, const char *context);

#endif
