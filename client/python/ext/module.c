/* client/python/ext/module.c: the vectord._engine extension - the daemon's engine inside the
 * Python process, on the same data directory format (vectord.open, vectord/embedded.py).
 *
 * One runner for every operation (vd_ext_run): the operation's row of the table (ops.c)
 * turns the Python arguments into a vd_request that borrows their buffers (numpy arrays are
 * read in place through the buffer protocol), the GIL is released, the engine runs it -
 * reads concurrently from any number of Python threads, writes one at a time under
 * write_mu, as the engine's writer rule asks - the GIL is taken back and the result becomes
 * Python values. Result arrays are not copied: the engine allocated them, an Array object
 * takes them over and numpy wraps it (np.frombuffer), and the Array vd_free()s them when the
 * last view goes.
 *
 * Errors are the Client's: the status's wire code (proto/wire.c, the daemon's table) picks
 * the vectord.Error subclass through vectord._errors.error_from_status, and the message is
 * the engine's, word for word what the daemon would send.
 *
 * Closing waits for the calls inside the engine (n_active) and refuses new ones; a call
 * never holds the GIL while it waits for write_mu or for close, so no lock order involves
 * the GIL. Searches fan out on the handle's thread pool (pool.c) through the engine's
 * parallel-for (vd_engine_set_parallel); the store's index workers (upsert, build) are the
 * index's own threads, n_threads wide.
 *
 * Rejected: Cython or pybind11 (not in reach without PyPI, and a generator for ~10 thin
 * functions); numpy's C API (PyArray_SimpleNewFromData ties the build to numpy's ABI; the
 * buffer protocol and np.frombuffer give the same zero-copy arrays); one Python method per
 * operation written by hand (the table keeps the next operation one row and two functions). */
#include "client/python/ext/ext_int.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "proto/vd_proto.h"

/* ---- errors ------------------------------------------------------------------------------ */

PyObject *vd_ext_raise(vd_status s, const char *msg, const char *context)
{
    static PyObject *factory; /* vectord._errors.error_from_status, looked up once */
    if (!factory) {
        PyObject *mod = PyImport_ImportModule("vectord._errors");
        if (!mod) return NULL;
        factory = PyObject_GetAttrString(mod, "error_from_status");
        Py_DECREF(mod);
        if (!factory) return NULL;
    }
    PyObject *exc = PyObject_CallFunction(factory, "iss", (int)vd_proto_code_of(s), msg,
                                          context ? context : "");
    if (!exc) return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *invalid(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vd_ext_raise(VD_INVALID, msg, NULL);
}

/* ---- the test rendezvous -----------------------------------------------------------------
 * _test_rendezvous(n, timeout_ms) makes the next n calls (open included) wait for each other
 * at the point where they run without the GIL. If the GIL were held there, the second call
 * could never arrive and the first would fail with a timeout: the tests' structural proof
 * that calls run inside the engine at the same time. Unarmed, it costs one atomic load. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int armed;
    int want, arrived;
    unsigned long gen;
    long timeout_ms;
} rv = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static vd_status rendezvous(vd_err *err)
{
    if (!atomic_load(&rv.armed)) return VD_OK;
    vd_status s = VD_OK;
    pthread_mutex_lock(&rv.mu);
    if (rv.want) {
        unsigned long gen = rv.gen;
        int arrived = ++rv.arrived, want = rv.want;
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += rv.timeout_ms / 1000;
        deadline.tv_nsec += rv.timeout_ms % 1000 * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (arrived < want && rv.gen == gen && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&rv.cv, &rv.mu, &deadline);
        if (arrived < want && rv.gen == gen)
            s = vd_err_set(err, VD_INTERNAL,
                           "test rendezvous: %d of %d calls arrived within %ld ms", rv.arrived,
                           want, rv.timeout_ms);
        if (rv.gen == gen) { /* the last to arrive, or a timeout: end this round */
            rv.want = rv.arrived = 0;
            rv.gen++;
            atomic_store(&rv.armed, 0);
            pthread_cond_broadcast(&rv.cv);
        }
    }
    pthread_mutex_unlock(&rv.mu);
    return s;
}

static PyObject *test_rendezvous(PyObject *mod, PyObject *args)
{
    int n;
    long timeout_ms;
    if (!PyArg_ParseTuple(args, "il", &n, &timeout_ms)) return NULL;
    pthread_mutex_lock(&rv.mu);
    rv.want = n > 0 ? n : 0;
    rv.arrived = 0;
    rv.timeout_ms = timeout_ms;
    atomic_store(&rv.armed, rv.want > 0);
    pthread_mutex_unlock(&rv.mu);
    Py_RETURN_NONE;
}

/* ---- arguments ---------------------------------------------------------------------------- */

Py_buffer *vd_ext_buffer(vd_ext_args *a, PyObject *obj, size_t item, const char *what)
{
    if (a->n_bufs == VD_EXT_MAX_BUFS) {
        PyErr_SetString(PyExc_SystemError, "vectord._engine: too many buffers for one call");
        return NULL;
    }
    Py_buffer *b = &a->bufs[a->n_bufs];
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS) != 0) return NULL;
    a->n_bufs++;
    if ((size_t)b->len % item != 0) {
        invalid("%s: %zd bytes is not a whole number of %zu-byte values", what, b->len, item);
        return NULL;
    }
    return b;
}

const char *vd_ext_name(PyObject *obj, const char *what)
{
    Py_ssize_t len;
    const char *s = PyUnicode_Check(obj) ? PyUnicode_AsUTF8AndSize(obj, &len) : NULL;
    if (!s) {
        if (!PyErr_Occurred()) invalid("%s must be a str", what);
        return NULL;
    }
    if ((size_t)len != strlen(s)) {
        invalid("%s holds a NUL character", what);
        return NULL;
    }
    return s;
}

int vd_ext_payloads(vd_ext_args *a, PyObject *list, size_t n)
{
    if (list == Py_None) return 1;
    if (!PyList_Check(list) || (size_t)PyList_GET_SIZE(list) != n) {
        invalid("payloads: expected a list of %zu encoded payloads", n);
        return 0;
    }
    if (!(a->payloads = vd_calloc(n ? n : 1, sizeof *a->payloads))) {
        PyErr_NoMemory();
        return 0;
    }
    Py_INCREF(list);
    a->payload_list = list;
    for (size_t i = 0; i < n; i++) {
        PyObject *p = PyList_GET_ITEM(list, i);
        if (!PyBytes_Check(p)) {
            invalid("payloads: entry %zu is not bytes", i);
            return 0;
        }
        a->payloads[i] =
            (vd_bytes){(size_t)PyBytes_GET_SIZE(p), (const uint8_t *)PyBytes_AS_STRING(p)};
    }
    return 1;
}

static void args_release(vd_ext_args *a)
{
    for (int i = 0; i < a->n_bufs; i++)
        PyBuffer_Release(&a->bufs[i]);
    vd_free(a->payloads);
    vd_free(a->pl_ptrs);
    vd_free(a->pl_lens);
    Py_XDECREF(a->payload_list);
    vd_proto_filter_free(a->filter_mem);
}

/* ---- Array: engine-allocated memory handed to numpy without a copy ------------------------- */

typedef struct vd_py_array {
    PyObject ob_base; /* PyObject_HEAD */
    void *data;       /* vd_malloc'ed by the engine; vd_free()d with the last reference */
    Py_ssize_t n_bytes;
} vd_py_array;

static int array_getbuffer(PyObject *o, Py_buffer *view, int flags)
{
    static char empty;
    vd_py_array *a = (vd_py_array *)o;
    return PyBuffer_FillInfo(view, o, a->data ? a->data : &empty, a->n_bytes, 0, flags);
}

static void array_dealloc(PyObject *o)
{
    vd_free(((vd_py_array *)o)->data);
    Py_TYPE(o)->tp_free(o);
}

static PyBufferProcs array_as_buffer = {array_getbuffer, NULL};

static PyTypeObject array_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vectord._engine.Array",
    .tp_basicsize = sizeof(vd_py_array),
    .tp_dealloc = array_dealloc,
    .tp_as_buffer = &array_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Memory the engine filled, exported through the buffer protocol (np.frombuffer).",
};

PyObject *vd_ext_array(void *data, size_t n_bytes)
{
    vd_py_array *a = PyObject_New(vd_py_array, &array_type);
    if (!a) {
        vd_free(data);
        return NULL;
    }
    a->data = data;
    a->n_bytes = (Py_ssize_t)n_bytes;
    return (PyObject *)a;
}

/* ---- Engine -------------------------------------------------------------------------------- */

/* 0 with the error raised when the handle is closed or another process's (after fork()). */
static int enter(vd_py_engine *self)
{
    if (self->initialized && self->opener != getpid()) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "this vectord.open handle belongs to process %ld; after fork() open the "
                 "directory again in the child (once the parent has closed it)",
                 (long)self->opener);
        vd_ext_raise(VD_PRECONDITION, msg, NULL);
        return 0;
    }
    pthread_mutex_lock(&self->use_mu);
    int ok = self->initialized && !self->closed;
    if (ok) self->n_active++;
    pthread_mutex_unlock(&self->use_mu);
    if (!ok) vd_ext_raise(VD_PRECONDITION, "this vectord.open handle is closed", NULL);
    return ok;
}

static void leave(vd_py_engine *self)
{
    pthread_mutex_lock(&self->use_mu);
    if (--self->n_active == 0) pthread_cond_broadcast(&self->use_cv);
    pthread_mutex_unlock(&self->use_mu);
}

PyObject *vd_ext_run(vd_py_engine *self, const vd_ext_op *op, PyObject *args)
{
    vd_ext_args a;
    vd_result res;
    vd_err err = {0};
    memset(&a, 0, sizeof a);
    memset(&res, 0, sizeof res);
    PyObject *out = NULL;
    a.req.kind = op->kind;
    if (!op->parse(args, &a)) goto done;
    if (!enter(self)) goto done;
    PyThreadState *gil = PyEval_SaveThread(); /* the GIL is released for the engine's work */
    vd_status s = rendezvous(&err);
    if (s == VD_OK) {
        if (op->write) pthread_mutex_lock(&self->write_mu);
        s = op->exec ? op->exec(self, &a, &res, &err)
                     : vd_engine_execute(self->engine, &a.req, &res, &err);
        if (op->write) pthread_mutex_unlock(&self->write_mu);
    }
    PyEval_RestoreThread(gil);
    leave(self);
    atomic_fetch_add(&self->requests_total, 1);
    if (s != VD_OK) {
        atomic_fetch_add(&self->errors_total, 1);
        vd_ext_raise(s, err.msg, a.context);
        goto done;
    }
    if (op->write) {
        atomic_fetch_add(&self->writes_committed, 1);
        atomic_fetch_add(&self->ops_committed, 1);
    }
    out = op->result(self, &a, &res);
done:
    vd_result_free(&res);
    args_release(&a);
    return out;
}

/* The parts of an open engine, in reverse order of opening; the GIL may be released. */
static void engine_teardown(vd_py_engine *self)
{
    vd_engine_free(self->engine);
    vd_store_close(self->store); /* flushes what publishing changed */
    vd_pool_free(self->pool);
    self->engine = NULL;
    self->store = NULL;
    self->pool = NULL;
}

static int engine_init(vd_py_engine *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"path", "threads", NULL};
    const char *path;
    unsigned int threads;
    if (self->initialized) {
        vd_ext_raise(VD_PRECONDITION, "this vectord.open handle is open already", NULL);
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sI", names, &path, &threads)) return -1;
    if (threads < 1) {
        invalid("threads must be at least 1, got %u", threads);
        return -1;
    }
    vd_err err = {0};
    vd_store_options opt = {.create = 1, .n_threads = threads};
    vd_engine_limits lim = {0}; /* in process: no frames, so no batch or response limit */
    PyThreadState *gil = PyEval_SaveThread(); /* opening loads every collection: seconds */
    vd_status s = rendezvous(&err);
    if (s == VD_OK) s = vd_store_open(path, &opt, &self->store, &err);
    if (s == VD_OK) s = vd_engine_new(self->store, &lim, &self->engine, &err);
    if (s == VD_OK) s = vd_pool_new(threads, &self->pool, &err);
    if (s == VD_OK) {
        vd_engine_set_parallel(self->engine, vd_pool_run, self->pool, vd_pool_width(self->pool));
        /* A payload index build a crash interrupted resumes here, to its end, as the daemon's
         * writer resumes it at start: a handle has no writer thread to run it later. A
         * failing step is logged and leaves the index building, as in the daemon. */
        vd_err e2;
        for (int more = 1; more;)
            if (vd_engine_background(self->engine, &more, &e2) != VD_OK) {
                vd_log(VD_LOG_ERROR, "vectord.open: %s", e2.msg);
                break;
            }
    } else {
        engine_teardown(self);
    }
    PyEval_RestoreThread(gil);
    if (s != VD_OK) {
        vd_ext_raise(s, err.msg, NULL);
        return -1;
    }
    self->opened_ns = vd_now_ns();
    self->opener = getpid();
    pthread_mutex_lock(&self->use_mu);
    self->initialized = 1;
    pthread_mutex_unlock(&self->use_mu);
    return 0;
}

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    vd_py_engine *self = (vd_py_engine *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    pthread_mutex_init(&self->write_mu, NULL);
    pthread_mutex_init(&self->use_mu, NULL);
    pthread_cond_init(&self->use_cv, NULL);
    return (PyObject *)self;
}

/* Refuses new calls, waits (without the GIL) for those inside, then closes. Idempotent. */
static PyObject *engine_close(vd_py_engine *self, PyObject *unused)
{
    if (self->initialized && self->opener != getpid()) Py_RETURN_NONE; /* the parent's */
    pthread_mutex_lock(&self->use_mu);
    int was_open = self->initialized && !self->closed;
    self->closed = 1;
    pthread_mutex_unlock(&self->use_mu);
    if (!was_open) Py_RETURN_NONE;
    PyThreadState *gil = PyEval_SaveThread(); /* the calls inside may need the GIL to end */
    pthread_mutex_lock(&self->use_mu);
    while (self->n_active > 0)
        pthread_cond_wait(&self->use_cv, &self->use_mu);
    pthread_mutex_unlock(&self->use_mu);
    engine_teardown(self);
    PyEval_RestoreThread(gil);
    Py_RETURN_NONE;
}

static void engine_dealloc(vd_py_engine *self)
{
    /* no call can be running: we hold the last reference. In a child after fork() the pool's
     * threads and the environment are the parent's: nothing of them is ours to release. */
    if (!self->initialized || self->opener == getpid()) {
        PyObject *r = engine_close(self, NULL);
        Py_XDECREF(r);
    }
    pthread_cond_destroy(&self->use_cv);
    pthread_mutex_destroy(&self->use_mu);
    pthread_mutex_destroy(&self->write_mu);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Counters and figures of the handle itself, for stats(). */
static PyObject *engine_counters(vd_py_engine *self, PyObject *unused)
{
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:I}", "uptime_s",
                         (unsigned long long)((vd_now_ns() - self->opened_ns) / 1000000000u),
                         "requests_total", (unsigned long long)atomic_load(&self->requests_total),
                         "errors_total", (unsigned long long)atomic_load(&self->errors_total),
                         "writes_committed",
                         (unsigned long long)atomic_load(&self->writes_committed), "ops_committed",
                         (unsigned long long)atomic_load(&self->ops_committed), "reader_threads",
                         self->pool ? (unsigned)vd_pool_width(self->pool) : 0u);
}

/* The engine's limits (defaults filled in), for Embedded.limits. */
static PyObject *engine_limits(vd_py_engine *self, PyObject *unused)
{
    if (!self->engine)
        return vd_ext_raise(VD_PRECONDITION, "this vectord.open handle is closed", NULL);
    const vd_engine_limits *l = vd_engine_limits_of(self->engine);
    return Py_BuildValue("{s:I,s:I,s:I}", "max_batch", l->max_batch, "max_k", l->max_k, "max_dim",
                         l->max_dim);
}

static PyObject *engine_closed(vd_py_engine *self, void *unused)
{
    pthread_mutex_lock(&self->use_mu);
    int closed = self->closed || !self->initialized;
    pthread_mutex_unlock(&self->use_mu);
    return PyBool_FromLong(closed);
}

static PyGetSetDef engine_getset[] = {
    {"closed", (getter)engine_closed, NULL, "True once close() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject engine_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vectord._engine.Engine",
    .tp_basicsize = sizeof(vd_py_engine),
    .tp_new = engine_new,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_getset = engine_getset,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Engine(path, threads): a data directory opened in this process "
              "(see vectord.open).",
};

static PyMethodDef engine_own_methods[] = {
    {"close", (PyCFunction)engine_close, METH_NOARGS,
     "Wait for the calls in progress, flush and close; idempotent."},
    {"counters", (PyCFunction)engine_counters, METH_NOARGS, "The handle's own counters."},
    {"limits", (PyCFunction)engine_limits, METH_NOARGS, "The engine's limits."},
    {NULL, NULL, 0, NULL},
};

/* ---- the module ---------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"_test_rendezvous", test_rendezvous, METH_VARARGS,
     "_test_rendezvous(n, timeout_ms): the next n calls wait for each other without the GIL "
     "(tests only)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vectord._engine",
    .m_doc = "The vectord engine in process (the daemon's engine/, storage/ and index/): see "
             "vectord.open.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* Engine's methods: its own, then the table's (ops.c). */
static PyMethodDef *all_methods(void)
{
    static PyMethodDef all[64];
    size_t n = 0;
    for (PyMethodDef *m = engine_own_methods; m->ml_name; m++)
        all[n++] = *m;
    for (PyMethodDef *m = vd_ext_op_methods; m->ml_name && n + 1 < VD_ARRAY_LEN(all); m++)
        all[n++] = *m;
    all[n] = (PyMethodDef){NULL, NULL, 0, NULL};
    return all;
}

PyMODINIT_FUNC PyInit__engine(void)
{
    engine_type.tp_methods = all_methods();
    if (PyType_Ready(&engine_type) < 0 || PyType_Ready(&array_type) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    Py_INCREF(&engine_type);
    Py_INCREF(&array_type);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&engine_type) < 0 ||
        PyModule_AddObject(m, "Array", (PyObject *)&array_type) < 0 ||
        PyModule_AddStringConstant(m, "simd", vd_dist_simd_name()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
