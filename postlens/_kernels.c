/* Fused per-chunk sums of a weight update, for postlens.diffs.weights.stats.
 *
 * Why C: the statistics of ΔW = W_post − W_base need one pass over both checkpoints' bytes.
 * Eager torch makes a dozen passes over every chunk (one per operation), which is 4-5× slower
 * than reading the bytes; torch.compile fuses them but costs seconds per process before the
 * first tensor. This kernel reads each entry once, converts bf16 in registers, and is plain C
 * (no torch headers), so it builds in a second and fails soft: without it, postlens uses the
 * eager path (same figures).
 *
 * Layout: a flat tensor of n entries is cut into chunks of `chunk` entries; each chunk's sums
 * are written to one row of `out` (float64). Within a chunk, 16 float32 lanes accumulate blocks
 * of 4096 entries that are folded into float64, so a chunk sum is more accurate than one float32
 * reduction. Non-finite input shows up as a non-finite row (the caller re-does that chunk on
 * its masked path). Chunks are shared among `threads` POSIX threads, the GIL released.
 *
 * pair_sums row:  [Σ Δ², Σ W_base², Σ |Δ|, max |Δ|, #(Δ ≠ 0), #(|Δ| > atol)]
 * cross_sums row: [Δ_p · Δ_o, Σ Δ_p², Σ Δ_o²]   (two children p, o of the same base)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define LANES 16
#define BLOCK 4096
#define MAX_THREADS 64

enum { F32 = 0, BF16 = 1 };

#if defined(__x86_64__) && defined(__GNUC__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

static inline float ld_f32(const void *x, int64_t i) { return ((const float *)x)[i]; }

static inline float ld_bf16(const void *x, int64_t i) {
    /* bfloat16 is the top half of a float32 */
    uint32_t u = ((uint32_t)((const uint16_t *)x)[i]) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One entry's contribution to lane k (the vector body and the ragged tail share it). */
#define PAIR_STEP(LB, LP, k, idx)                                                              \
    do {                                                                                       \
        float x = LB(b, idx), d = LP(p, idx) - x, a = fabsf(d);                                \
        ad[k] += d * d;                                                                        \
        ab[k] += x * x;                                                                        \
        aa[k] += a;                                                                            \
        am[k] = a > am[k] ? a : am[k];                                                         \
        ne[k] += a != 0.0f;                                                                    \
        nt[k] += a > atol;                                                                     \
    } while (0)

#define CROSS_STEP(LB, LP, LO, k, idx)                                                         \
    do {                                                                                       \
        float x = LB(b, idx), dp = LP(p, idx) - x, d_o = LO(o, idx) - x;                       \
        ad[k] += dp * d_o;                                                                     \
        ap[k] += dp * dp;                                                                      \
        ao[k] += d_o * d_o;                                                                    \
    } while (0)

/* One instance per dtype combination: a dtype branch inside the loop would stop it vectorizing.
 * The inner `for k` over independent lanes is what the compiler turns into SIMD. */
#define PAIR_KERNEL(NAME, LB, LP)                                                              \
    MULTIVERSION static void NAME(const void *b, const void *p, int64_t n, float atol,         \
                                  double *out) {                                               \
        double sd = 0, sb = 0, sa = 0, ne_all = 0, nt_all = 0;                                 \
        float mx = 0;                                                                          \
        for (int64_t s = 0; s < n; s += BLOCK) {                                               \
            int64_t e = s + BLOCK < n ? s + BLOCK : n, i = s;                                  \
            float ad[LANES] = {0}, ab[LANES] = {0}, aa[LANES] = {0}, am[LANES] = {0};          \
            int32_t ne[LANES] = {0}, nt[LANES] = {0};                                          \
            for (; i + LANES <= e; i += LANES)                                                 \
                for (int k = 0; k < LANES; k++) PAIR_STEP(LB, LP, k, i + k);                   \
            for (; i < e; i++) PAIR_STEP(LB, LP, 0, i);                                        \
            for (int k = 0; k < LANES; k++) {                                                  \
                sd += ad[k], sb += ab[k], sa += aa[k], ne_all += ne[k], nt_all += nt[k];       \
                mx = am[k] > mx ? am[k] : mx;                                                  \
            }                                                                                  \
        }                                                                                      \
        out[0] = sd, out[1] = sb, out[2] = sa, out[3] = mx, out[4] = ne_all, out[5] = nt_all;  \
    }

#define CROSS_KERNEL(NAME, LB, LP, LO)                                                         \
    MULTIVERSION static void NAME(const void *b, const void *p, const void *o, int64_t n,      \
                                  double *out) {                                               \
        double dot = 0, sp = 0, so = 0;                                                        \
        for (int64_t s = 0; s < n; s += BLOCK) {                                               \
            int64_t e = s + BLOCK < n ? s + BLOCK : n, i = s;                                  \
            float ad[LANES] = {0}, ap[LANES] = {0}, ao[LANES] = {0};                           \
            for (; i + LANES <= e; i += LANES)                                                 \
                for (int k = 0; k < LANES; k++) CROSS_STEP(LB, LP, LO, k, i + k);              \
            for (; i < e; i++) CROSS_STEP(LB, LP, LO, 0, i);                                   \
            for (int k = 0; k < LANES; k++) dot += ad[k], sp += ap[k], so += ao[k];            \
        }                                                                                      \
        out[0] = dot, out[1] = sp, out[2] = so;                                                \
    }

PAIR_KERNEL(pair_ff, ld_f32, ld_f32)
PAIR_KERNEL(pair_fb, ld_f32, ld_bf16)
PAIR_KERNEL(pair_bf, ld_bf16, ld_f32)
PAIR_KERNEL(pair_bb, ld_bf16, ld_bf16)
CROSS_KERNEL(cross_fff, ld_f32, ld_f32, ld_f32)
CROSS_KERNEL(cross_ffb, ld_f32, ld_f32, ld_bf16)
CROSS_KERNEL(cross_fbf, ld_f32, ld_bf16, ld_f32)
CROSS_KERNEL(cross_fbb, ld_f32, ld_bf16, ld_bf16)
CROSS_KERNEL(cross_bff, ld_bf16, ld_f32, ld_f32)
CROSS_KERNEL(cross_bfb, ld_bf16, ld_f32, ld_bf16)
CROSS_KERNEL(cross_bbf, ld_bf16, ld_bf16, ld_f32)
CROSS_KERNEL(cross_bbb, ld_bf16, ld_bf16, ld_bf16)

typedef void (*pair_fn)(const void *, const void *, int64_t, float, double *);
typedef void (*cross_fn)(const void *, const void *, const void *, int64_t, double *);
static const pair_fn PAIR[2][2] = {{pair_ff, pair_fb}, {pair_bf, pair_bb}};
static const cross_fn CROSS[2][2][2] = {
    {{cross_fff, cross_ffb}, {cross_fbf, cross_fbb}},
    {{cross_bff, cross_bfb}, {cross_bbf, cross_bbb}},
};

/* One thread's share: chunks [first, last) of the tensor. */
typedef struct {
    const char *ptr[3];
    int size[3];
    int codes[3];
    int n_ops;
    int64_t n, chunk, first, last;
    float atol;
    double *out;
} Job;

static void *run_job(void *arg) {
    Job *j = (Job *)arg;
    int width = j->n_ops == 2 ? 6 : 3;
    for (int64_t c = j->first; c < j->last; c++) {
        int64_t start = c * j->chunk, m = j->n - start < j->chunk ? j->n - start : j->chunk;
        const void *b = j->ptr[0] + start * j->size[0], *p = j->ptr[1] + start * j->size[1];
        if (j->n_ops == 2) {
            PAIR[j->codes[0]][j->codes[1]](b, p, m, j->atol, j->out + width * c);
        } else {
            const void *o = j->ptr[2] + start * j->size[2];
            CROSS[j->codes[0]][j->codes[1]][j->codes[2]](b, p, o, m, j->out + width * c);
        }
    }
    return NULL;
}

/* Split the chunks among threads; the calling thread takes the first share. */
static void run_threads(Job *proto, int64_t n_chunks, int threads) {
    Job jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    if (threads > n_chunks) threads = (int)n_chunks;
    if (threads < 1) threads = 1;
    for (int t = 0; t < threads; t++) {
        jobs[t] = *proto;
        jobs[t].first = n_chunks * t / threads;
        jobs[t].last = n_chunks * (t + 1) / threads;
    }
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            run_job(&jobs[t]); /* no thread to be had: do its share here */
    }
}

static int parse_codes(Job *j, PyObject *codes) {
    for (int k = 0; k < j->n_ops; k++) {
        long c = PyLong_AsLong(PyTuple_GET_ITEM(codes, k));
        if (c != F32 && c != BF16) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "dtype code must be 0 or 1");
            return -1;
        }
        j->codes[k] = (int)c;
        j->size[k] = c == F32 ? 4 : 2;
    }
    return 0;
}

/* chunk_sums(addresses, codes, n, chunk, atol, out_address, threads) -> None
 *
 * addresses: tuple of 2 (pair sums) or 3 (cross sums) data pointers of contiguous tensors of n
 * entries; codes: their dtypes (0 float32, 1 bfloat16); out_address: a contiguous float64
 * buffer of ceil(n / chunk) rows of 6 (pair) or 3 (cross). The caller guarantees the sizes. */
static PyObject *chunk_sums(PyObject *self, PyObject *args) {
    PyObject *addrs, *codes;
    long long n, chunk, out_addr;
    double atol;
    int threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!LLdLi", &PyTuple_Type, &addrs, &PyTuple_Type, &codes, &n,
                          &chunk, &atol, &out_addr, &threads))
        return NULL;
    Py_ssize_t n_ops = PyTuple_GET_SIZE(addrs);
    if ((n_ops != 2 && n_ops != 3) || PyTuple_GET_SIZE(codes) != n_ops || n < 0 || chunk < 1 ||
        threads > MAX_THREADS) {
        PyErr_SetString(PyExc_ValueError, "chunk_sums: bad arguments");
        return NULL;
    }
    Job job = {0};
    job.n_ops = (int)n_ops;
    job.n = n, job.chunk = chunk, job.atol = (float)atol, job.out = (double *)(intptr_t)out_addr;
    for (Py_ssize_t k = 0; k < n_ops; k++) {
        job.ptr[k] = (const char *)PyLong_AsVoidPtr(PyTuple_GET_ITEM(addrs, k));
        if (PyErr_Occurred()) return NULL;
    }
    if (parse_codes(&job, codes) < 0) return NULL;
    int64_t n_chunks = (n + chunk - 1) / chunk;
    Py_BEGIN_ALLOW_THREADS
    run_threads(&job, n_chunks, threads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"chunk_sums", chunk_sums, METH_VARARGS, "Fused per-chunk sums of weight updates."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "Fused kernels of postlens (see _kernels.c).", -1, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&MODULE); }
