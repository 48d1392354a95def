/*
 * aot.h — ahead-of-time objects: the kernels of one or more compiled
 * plans and one entry function per plan, written as a position
 * independent object file for a chosen CPU. The kernels come from the
 * same emitter the JIT uses (jit_emit_kernel), so an object runs the same
 * code as loom_run; the entry function does what runtime/exec.c does,
 * single-threaded: binds every buffer of the plan to the caller's memory,
 * an argument or the weights, calls each kernel over its whole work range
 * in plan order, reports index errors, copies the outputs and applies the
 * commits. Nothing in the object calls into loom or LLVM: only libc's
 * memcpy/memmove/memset may appear as undefined symbols.
 *
 * This header is LLVM-free: the frontend (frontend/aot.c) resolves the
 * plan's buffers to places (aot_loc) and writes the header and weights
 * files; this layer makes the code.
 */
#ifndef LOOM_JIT_AOT_H
#define LOOM_JIT_AOT_H

#include "plan.h"

/* The object's ABI, which the generated C header repeats. */
enum {
    AOT_FORMAT_VERSION = 1,
    AOT_ALIGN = 64,          /* memory and weights pointers */
    AOT_WEIGHTS_HEADER = 64, /* bytes before the weights in a weights file */
};

/* Entry return codes (the generated header names them <PREFIX>_OK ...);
 * the codes after AOT_E_INDEX come from the header's file checks. */
enum {
    AOT_OK = 0,
    AOT_E_MEMORY,    /* memory is NULL or not AOT_ALIGN-aligned */
    AOT_E_WEIGHTS,   /* no weights (none embedded, NULL given) or misaligned */
    AOT_E_INDEX,     /* a gather/scatter index out of range (status words in memory) */
    AOT_E_IO,        /* a weights file cannot be opened or read */
    AOT_E_TRUNCATED, /* shorter than its header says */
    AOT_E_FORMAT,    /* not a loom weights file, or bytes after the weights */
    AOT_E_VERSION,   /* another format version */
    AOT_E_MISMATCH,  /* the weights of another model (graph hash or size) */
    AOT_E_CORRUPT,   /* checksum mismatch */
    AOT_E_COUNT
};

/* Where a plan buffer lives at run time. */
typedef enum aot_where {
    AOT_MEMORY,  /* the caller's memory at `at` */
    AOT_ARG,     /* the pointer argument number `at` (0 = first input) */
    AOT_WEIGHTS, /* the weights at byte offset `at` */
} aot_where;

typedef struct aot_loc {
    aot_where where;
    uint64_t at;
} aot_loc;

/* One entry function:
 *   int symbol(void *memory, [const] void *weights, in_0 .. in_{ninputs-1},
 *              out_0 .. out_{p->noutputs-1});
 * memory holds the plan's arena at 0, the kernels' scratch at
 * scratch_at, then the kernels' argument pointers (set by aot_emit). */
typedef struct aot_entry {
    const char *symbol;
    const plan *p;
    const aot_loc *buffers;      /* [p->nbuffers] */
    uint32_t ninputs;
    const uint64_t *output_bytes; /* [p->noutputs] */
    const uint64_t *commit_at;    /* [p->ncommits] weights offsets the commits write */
    /* out */
    uint64_t scratch_at, scratch_bytes, memory_bytes;
    bool has_status;              /* gathers or scatters: status words at p->status_offset */
    uint32_t kernels;             /* distinct kernels it calls */
} aot_entry;

typedef struct aot_object {
    const char *prefix;          /* C identifier: symbols are <prefix>_... */
    const char *cpu;             /* NULL or "host", or an LLVM CPU name */
    int opt_level;               /* 0..3 */
    const void *weights;         /* embedded when not NULL */
    uint64_t weights_bytes;
    uint64_t graph_hash;
    aot_entry *entries;
    uint32_t nentries;
    /* out */
    char cpu_name[64];           /* the CPU the code is for ("znver5", "x86-64-v3") */
    uint32_t kernels;            /* distinct kernels in the object */
} aot_object;

/* Compiles o into an object file image: *image (lm_alloc'ed from mem,
 * *bytes long) on success. Errors (a CPU LLVM does not know, a failure of
 * LLVM) are recorded in err. */
loom_code aot_emit(lm_mem mem, lm_err *err, aot_object *o, void **image, size_t *bytes);

/* Whether cpu is a CPU name aot_emit accepts for this host's target. */
bool aot_cpu_known(const char *cpu);

#endif /* LOOM_JIT_AOT_H */
