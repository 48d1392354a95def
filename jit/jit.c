/*
 * jit.c — the kernel cache in front of the engine. A kernel's cache key
 * is XXH3-128 of its canonical form together with the LLVM version, the
 * CPU, its features and the opt level; its symbol name is that key, so a
 * kernel compiled for one plan serves every later plan, time step and run.
 * The kernels a plan lacks are compiled together: in one module, or, on
 * several threads, in one module per thread, each thread with an engine
 * (LLVM context, LLJIT) of its own, its share balanced by an estimate of
 * each kernel's compile time.
 */
#include "codegen.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct centry {
    uint64_t key[2];
    jit_kinfo info;
    uint64_t call; /* the jit_plan call that reserved it: a slot still without code from an
                      earlier call (which failed) is compiled again */
} centry;

enum { MAX_COMPILERS = 8 }; /* threads compiling one plan's kernels */

/* The user's allocator, called under a lock while threads compile. */
typedef struct locked_mem {
    lm_mem inner;
    pthread_mutex_t lock;
} locked_mem;

struct jit {
    lm_mem mem;
    lm_err *err;
    jit_engine *e;
    char *cpu; /* as given to jit_new (NULL: the host), for the helpers' engines */
    int opt_level;
    jit_engine *helper[MAX_COMPILERS - 1]; /* engines of the other compiling threads, made when first needed */
    lm_err helper_err[MAX_COMPILERS - 1];
    locked_mem locked;
    bool warm; /* warm_up has run */
    uint64_t fingerprint[2];
    centry *tab; /* open addressing; key {0, 0} is empty */
    size_t ntab, cap;
    uint64_t calls; /* of jit_plan */
    jit_stats stats;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

jit *jit_new(lm_mem mem, lm_err *err, const char *cpu, int opt_level)
{
    mem.err = err;
    jit *j = lm_zalloc(&mem, sizeof *j);
    if (!j)
        return NULL;
    j->mem = mem;
    j->err = err;
    j->opt_level = opt_level;
    j->locked.inner = mem;
    pthread_mutex_init(&j->locked.lock, NULL);
    j->e = jit_engine_new(mem, err, cpu, opt_level);
    if (!j->e || (cpu && !(j->cpu = lm_strdup(&j->mem, cpu)))) {
        jit_engine_free(j->e);
        pthread_mutex_destroy(&j->locked.lock);
        lm_free(&mem, j, sizeof *j);
        return NULL;
    }
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    const char *parts[] = { jit_llvm_version(), j->e->triple, j->e->cpu, j->e->features };
    for (size_t i = 0; i < LM_ARRAY_LEN(parts); i++)
        XXH3_128bits_update(&st, parts[i], strlen(parts[i]) + 1);
    XXH3_128bits_update(&st, &j->e->opt_level, sizeof j->e->opt_level);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    j->fingerprint[0] = h.low64;
    j->fingerprint[1] = h.high64;
    return j;
}

void jit_free(jit *j)
{
    if (!j)
        return;
    jit_engine_free(j->e);
    for (int i = 0; i < MAX_COMPILERS - 1; i++)
        jit_engine_free(j->helper[i]);
    pthread_mutex_destroy(&j->locked.lock);
    lm_mem m = j->mem;
    if (j->cpu)
        lm_free(&m, j->cpu, strlen(j->cpu) + 1);
    lm_free(&m, j->tab, j->cap * sizeof *j->tab);
    lm_free(&m, j, sizeof *j);
}

const jit_stats *jit_get_stats(const jit *j) { return &j->stats; }
jit_engine *jit_get_engine(jit *j) { return j->e; }

static void cache_key(const jit *j, const kernel *k, uint64_t key[2])
{
    uint64_t words[4] = { k->hash[0], k->hash[1], j->fingerprint[0], j->fingerprint[1] };
    XXH128_hash_t h = XXH3_128bits(words, sizeof words);
    key[0] = h.low64 | 1; /* never the empty key */
    key[1] = h.high64;
}

static centry *cache_find(jit *j, const uint64_t key[2], bool *found)
{
    size_t mask = j->cap - 1, h = (size_t)key[0] & mask;
    for (; j->tab[h].key[0]; h = (h + 1) & mask)
        if (j->tab[h].key[0] == key[0] && j->tab[h].key[1] == key[1]) {
            *found = true;
            return &j->tab[h];
        }
    *found = false;
    return &j->tab[h];
}

static bool cache_grow(jit *j, size_t need)
{
    if (need * 2 <= j->cap)
        return true;
    size_t ncap = j->cap ? j->cap : 256;
    while (need * 2 > ncap)
        ncap *= 2;
    centry *t = lm_zalloc(&j->mem, ncap * sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < j->cap; i++) {
        if (!j->tab[i].key[0])
            continue;
        size_t h = (size_t)j->tab[i].key[0] & (ncap - 1);
        while (t[h].key[0])
            h = (h + 1) & (ncap - 1);
        t[h] = j->tab[i];
    }
    lm_free(&j->mem, j->tab, j->cap * sizeof *j->tab);
    j->tab = t;
    j->cap = ncap;
    return true;
}

static void symbol(const uint64_t key[2], char *buf, size_t size)
{
    snprintf(buf, size, "loom_k%016llx%016llx", (unsigned long long)key[1], (unsigned long long)key[0]);
}

static void *locked_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    locked_mem *l = ud;
    pthread_mutex_lock(&l->lock);
    void *r = l->inner.fn(l->inner.ud, ptr, osize, nsize);
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* A guess at the time kernel k takes LLVM to compile, in tenths of a ms,
 * fitted to this project's kernels compiled one by one: a GEMM 22-80 ms,
 * a map 6-27 ms, growing with its code, a reduction more, a row chain
 * about the sum of its members. */
static double compile_cost(const kernel *k)
{
    if (k->kind == KN_GEMM)
        return 600;
    if (k->kind == KN_MAP || k->kind == KN_REDUCE)
        return (k->kind == KN_MAP ? 100 : 200) + 4.0 * k->ncode;
    if (k->kind != KN_ROWS)
        return 100;
    double c = 0;
    for (uint32_t i = 0; i < k->nsubs; i++)
        c += (k->subs[i].kind == KN_MAP ? 20 : 60) + 7.0 * k->subs[i].ncode;
    return c;
}

/* A kernel a plan lacks, and the compiling thread it goes to. */
typedef struct pending {
    double cost;
    uint32_t kernel; /* index into the plan's kernels */
    int owner;
    uint64_t key[2];
} pending;

static int by_cost_desc(const void *a, const void *b)
{
    double x = ((const pending *)a)->cost, y = ((const pending *)b)->cost;
    return (x < y) - (x > y);
}

static int by_owner(const void *a, const void *b)
{
    int x = ((const pending *)a)->owner, y = ((const pending *)b)->owner;
    return (x > y) - (x < y);
}

/* One compiling thread's share of the kernels a plan lacks: emitted into
 * a module of its engine, compiled, and looked up (into out). */
typedef struct share {
    jit_engine *e;
    const plan *p;
    const pending *items;
    size_t n;
    jit_kinfo *out;
    loom_code code;
    pthread_t thread;
    bool started;
} share;

static void *compile_share(void *arg)
{
    share *s = arg;
    char name[64];
    s->code = LOOM_OK;
    /* GEMMs are vector code already, which LLVM's full pipeline serves
     * best; the loop nests of the other kernels need only the loop
     * vectorizer and what prepares it: two modules */
    LLVMModuleRef m[2] = { NULL, NULL };
    for (size_t x = 0; x < s->n; x++) {
        uint32_t i = s->items[x].kernel;
        int which = s->p->kernels[i].kind != KN_GEMM;
        if (!m[which])
            m[which] = jit_module_new(s->e, which ? "loom_kernels" : "loom_gemms");
        symbol(s->items[x].key, name, sizeof name);
        if (jit_emit_kernel(s->e, m[which], name, &s->p->kernels[i], &s->out[i].work, &s->out[i].scratch) !=
            LOOM_OK) {
            for (int k = 0; k < 2; k++)
                if (m[k])
                    LLVMDisposeModule(m[k]);
            s->code = s->e->err->code;
            return NULL;
        }
    }
    for (int k = 0; k < 2; k++) {
        /* each module is gone after jit_module_add, either way */
        if (m[k] && jit_module_add(s->e, m[k], k ? JIT_PIPE_LOOPS : JIT_PIPE_DEFAULT) != LOOM_OK) {
            if (!k && m[1])
                LLVMDisposeModule(m[1]);
            s->code = s->e->err->code;
            return NULL;
        }
    }
    for (size_t x = 0; x < s->n; x++) {
        symbol(s->items[x].key, name, sizeof name);
        s->out[s->items[x].kernel].fn = (rt_kernel_fn)jit_lookup(s->e, name);
        if (!s->out[s->items[x].kernel].fn) {
            s->code = s->e->err->code;
            return NULL;
        }
    }
    return NULL;
}


/* Compiles an empty kernel on the calling thread: LLVM's lazily made
 * globals (the timers' registry among them) are then made here, before
 * any other thread compiles, rather than by whichever thread comes first
 * (safe in LLVM, but not visible as such to ThreadSanitizer, as LLVM's
 * own code is not instrumented). */
static bool warm_up(jit_engine *e)
{
    LLVMModuleRef m = jit_module_new(e, "loom_warm_up");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(e->ctx);
    jit_kernel_begin(e, m, b, "loom_warm_up");
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    return jit_module_add(e, m, JIT_PIPE_DEFAULT) == LOOM_OK && jit_lookup(e, "loom_warm_up");
}

/* The engines of up to `want` compiling threads (the first is j->e), made
 * when first needed; fewer when one cannot be made; 0 when LLVM fails
 * (recorded). */
static int engines(jit *j, int want)
{
    if (want > 1 && !j->warm) {
        if (!warm_up(j->e))
            return 0;
        j->warm = true;
    }
    int n = 1;
    while (n < want) {
        jit_engine **h = &j->helper[n - 1];
        j->helper_err[n - 1] = (lm_err){ 0 };
        if (!*h && !(*h = jit_engine_new(j->mem, &j->helper_err[n - 1], j->cpu, j->opt_level)))
            break;
        n++;
    }
    return n;
}

/* Compiles pend[0..n) on up to `threads` threads; fills out[] for them. */
static loom_code compile(jit *j, const plan *p, pending *pend, size_t n, int threads, jit_kinfo *out)
{
    int ns = engines(j, threads < MAX_COMPILERS ? threads : MAX_COMPILERS);
    if (!ns)
        return j->err->code;
    if ((size_t)ns > n)
        ns = (int)n;
    share sh[MAX_COMPILERS] = { 0 };
    /* longest first, each to the least loaded thread; then each thread's
     * kernels together */
    qsort(pend, n, sizeof *pend, by_cost_desc);
    double load[MAX_COMPILERS] = { 0 };
    for (size_t x = 0; x < n; x++) {
        int best = 0;
        for (int t = 1; t < ns; t++)
            if (load[t] < load[best])
                best = t;
        load[best] += pend[x].cost;
        pend[x].owner = best;
    }
    qsort(pend, n, sizeof *pend, by_owner);
    for (size_t x = 0, at = 0; x < n; x = at) {
        int t = pend[x].owner;
        while (at < n && pend[at].owner == t)
            at++;
        sh[t] = (share){ .e = t ? j->helper[t - 1] : j->e, .p = p, .items = pend + x, .n = at - x, .out = out };
    }
    /* while threads compile, allocations go through the user's allocator
     * one at a time */
    lm_mem saved[MAX_COMPILERS];
    for (int t = 0; t < ns && ns > 1; t++) {
        saved[t] = sh[t].e->mem;
        sh[t].e->mem.fn = locked_alloc;
        sh[t].e->mem.ud = &j->locked;
    }
    for (int t = 1; t < ns; t++)
        sh[t].started = !pthread_create(&sh[t].thread, NULL, compile_share, &sh[t]);
    compile_share(&sh[0]);
    for (int t = 1; t < ns; t++) {
        if (sh[t].started)
            pthread_join(sh[t].thread, NULL);
        else
            compile_share(&sh[t]); /* no thread to be had: here, after the others */
    }
    for (int t = 0; t < ns && ns > 1; t++)
        sh[t].e->mem = saved[t];
    loom_code c = LOOM_OK;
    for (int t = 0; t < ns; t++) {
        if (sh[t].code != LOOM_OK) {
            if (t && c == LOOM_OK) /* a helper's error, in the caller's record */
                lm_fail(j->err, sh[t].code, "%s", j->helper_err[t - 1].msg);
            c = sh[t].code;
            continue;
        }
        j->stats.modules++;
        for (size_t x = 0; x < sh[t].n; x++) {
            bool found;
            cache_find(j, sh[t].items[x].key, &found)->info = out[sh[t].items[x].kernel];
            j->stats.compiled++;
        }
    }
    return c == LOOM_OK ? LOOM_OK : j->err->code;
}

loom_code jit_plan(jit *j, const plan *p, jit_kinfo *out, int threads)
{
    if (!cache_grow(j, j->ntab + p->nkernels + 1))
        return j->err->code;
    double t0 = now_ms();
    size_t missing = 0;
    /* a plan may hold a kernel twice only if two hashes collide, which
     * the plan already folds; here each miss is compiled once */
    pending *pend = lm_alloc(&j->mem, (p->nkernels + 1) * sizeof *pend);
    if (!pend)
        return j->err->code;
    j->calls++;
    for (size_t i = 0; i < p->nkernels; i++) {
        uint64_t key[2];
        cache_key(j, &p->kernels[i], key);
        bool found;
        centry *ce = cache_find(j, key, &found);
        j->stats.requested++;
        out[i] = (jit_kinfo){ 0 };
        if (found && (ce->info.fn || ce->call == j->calls)) {
            j->stats.hits++; /* compiled, or pending in this call */
            continue;
        }
        /* reserve the slot now so a second copy in this plan finds it */
        ce->key[0] = key[0];
        ce->key[1] = key[1];
        ce->info = (jit_kinfo){ 0 };
        ce->call = j->calls;
        j->ntab += !found;
        pend[missing++] = (pending){ .cost = compile_cost(&p->kernels[i]), .kernel = (uint32_t)i,
                                     .key = { key[0], key[1] } };
    }
    loom_code c = missing ? compile(j, p, pend, missing, threads < 1 ? 1 : threads, out) : LOOM_OK;
    /* kernels found in the cache, this call's among them */
    for (size_t i = 0; i < p->nkernels && c == LOOM_OK; i++)
        if (!out[i].fn) {
            uint64_t key[2];
            bool found;
            cache_key(j, &p->kernels[i], key);
            out[i] = cache_find(j, key, &found)->info;
            if (!out[i].fn)
                c = lm_fail(j->err, LOOM_ERR_INTERNAL, "jit: kernel %zu has no code", i);
        }
    lm_free(&j->mem, pend, (p->nkernels + 1) * sizeof *pend);
    j->stats.compile_ms += now_ms() - t0;
    return c;
}
