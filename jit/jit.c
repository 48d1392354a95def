/*
 * jit.c — the kernel cache in front of the engine. A kernel's cache key
 * is XXH3-128 of its canonical form together with the LLVM version, the
 * CPU, its features and the opt level; its symbol name is that key, so a
 * kernel compiled for one plan serves every later plan, time step and run.
 * The kernels a plan lacks are compiled together, in one module.
 */
#include "codegen.h"

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

struct jit {
    lm_mem mem;
    lm_err *err;
    jit_engine *e;
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
    j->e = jit_engine_new(mem, err, cpu, opt_level);
    if (!j->e) {
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
    lm_mem m = j->mem;
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

loom_code jit_plan(jit *j, const plan *p, jit_kinfo *out)
{
    if (!cache_grow(j, j->ntab + p->nkernels + 1))
        return j->err->code;
    double t0 = now_ms();
    LLVMModuleRef m = NULL;
    size_t missing = 0;
    /* a plan may hold a kernel twice only if two hashes collide, which
     * the plan already folds; here each miss is emitted once */
    uint32_t *pending = lm_alloc(&j->mem, (p->nkernels + 1) * sizeof *pending);
    if (!pending)
        return j->err->code;
    j->calls++;
    char name[64];
    for (size_t i = 0; i < p->nkernels; i++) {
        uint64_t key[2];
        cache_key(j, &p->kernels[i], key);
        bool found;
        centry *ce = cache_find(j, key, &found);
        j->stats.requested++;
        if (found && (ce->info.fn || ce->call == j->calls)) {
            out[i] = ce->info; /* compiled, or pending in this call */
            j->stats.hits++;
            continue;
        }
        if (!m)
            m = jit_module_new(j->e, "loom_kernels");
        symbol(key, name, sizeof name);
        if (jit_emit_kernel(j->e, m, name, &p->kernels[i], &out[i].work, &out[i].scratch) != LOOM_OK) {
            LLVMDisposeModule(m);
            lm_free(&j->mem, pending, (p->nkernels + 1) * sizeof *pending);
            return j->err->code;
        }
        /* reserve the slot now so a second copy in this plan finds it */
        ce->key[0] = key[0];
        ce->key[1] = key[1];
        ce->info = out[i];
        ce->info.fn = NULL;
        ce->call = j->calls;
        j->ntab += !found;
        pending[missing++] = (uint32_t)i;
    }
    loom_code c = LOOM_OK;
    if (m) {
        c = jit_module_add(j->e, m);
        j->stats.modules++;
        for (size_t x = 0; x < missing && c == LOOM_OK; x++) {
            size_t i = pending[x];
            uint64_t key[2];
            cache_key(j, &p->kernels[i], key);
            symbol(key, name, sizeof name);
            out[i].fn = (rt_kernel_fn)jit_lookup(j->e, name);
            if (!out[i].fn) {
                c = j->err->code;
                break;
            }
            bool found;
            cache_find(j, key, &found)->info = out[i];
            j->stats.compiled++;
        }
    }
    /* kernels found in the cache in this same call may have been pending */
    for (size_t i = 0; i < p->nkernels && c == LOOM_OK; i++)
        if (!out[i].fn) {
            uint64_t key[2];
            bool found;
            cache_key(j, &p->kernels[i], key);
            out[i] = cache_find(j, key, &found)->info;
            if (!out[i].fn)
                c = lm_fail(j->err, LOOM_ERR_INTERNAL, "jit: kernel %zu has no code", i);
        }
    lm_free(&j->mem, pending, (p->nkernels + 1) * sizeof *pending);
    j->stats.compile_ms += now_ms() - t0;
    return c;
}
