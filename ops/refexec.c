/*
 * refexec.c — the reference executor: runs a graph op by op with each
 * op's plain-C kernel. It is the oracle for every compiled result, so it
 * is written to be obviously right rather than fast: every node gets its
 * own buffer, freed when its last consumer has run.
 */
#include "ops_impl.h"

typedef struct run_state {
    ir_graph *g;
    lm_mem mem;
    size_t n;        /* nodes considered: ids < n */
    uint8_t *need;   /* [n] on a path to a root */
    uint32_t *uses;  /* [n] consumers still to run (+1 per root reference) */
    void **buf;      /* [n] values */
    uint8_t *owned;  /* [n] buf[i] was allocated here */
    void **in;       /* operand pointers for one node */
    size_t in_cap;
} run_state;

static void release(run_state *st, ir_id n)
{
    if (st->owned[n])
        lm_free_aligned(&st->mem, st->buf[n]);
    st->buf[n] = NULL;
    st->owned[n] = 0;
}

static void state_free(run_state *st)
{
    if (st->buf)
        for (size_t i = 0; i < st->n; i++)
            if (st->owned && st->owned[i])
                lm_free_aligned(&st->mem, st->buf[i]);
    lm_free(&st->mem, st->need, st->n);
    lm_free(&st->mem, st->uses, st->n * sizeof *st->uses);
    lm_free(&st->mem, st->buf, st->n * sizeof *st->buf);
    lm_free(&st->mem, st->owned, st->n);
    lm_free(&st->mem, st->in, st->in_cap * sizeof *st->in);
}

static void *external_value(ir_graph *g, const op_env *env, ir_id n)
{
    uint32_t k = (uint32_t)ir_attrs(g, n)[0];
    if (ir_op(g, n) == OP_INPUT) {
        if (k >= env->ninputs || !env->inputs[k]) {
            const char *name = env->input_names && k < env->ninputs ? env->input_names[k] : NULL;
            lm_fail(g->err, LOOM_ERR_STATE, "run: input %s%s%s#%u (node %%%u) was not fed", name ? "\"" : "",
                    name ? name : "", name ? "\" " : "", k, n);
            return NULL;
        }
        return env->inputs[k];
    }
    if (k >= env->nparams || !env->params[k]) {
        lm_fail(g->err, LOOM_ERR_STATE, "parameter p%u (node %%%u) has no storage", k, n);
        return NULL;
    }
    return env->params[k];
}

static loom_code run_node(run_state *st, const op_env *env, ir_id n)
{
    ir_graph *g = st->g;
    const op_def *d = op_def_of(g, n);
    if (d->flags & OPF_EXTERNAL) {
        st->buf[n] = external_value(g, env, n);
        if (!st->buf[n])
            return g->err->code;
        return env->check ? env->check(env->check_ud, g, n, st->buf[n]) : LOOM_OK;
    }
    size_t bytes = (size_t)ir_numel(g, n) * loom_dtype_size(ir_dtype(g, n));
    void *out = lm_alloc_aligned(&st->mem, bytes);
    if (!out)
        return g->err->code;
    st->buf[n] = out;
    st->owned[n] = 1;
    uint32_t ns = ir_nsrc(g, n);
    if (!LM_GROW(&st->mem, st->in, st->in_cap, ns))
        return g->err->code;
    for (uint32_t i = 0; i < ns; i++)
        st->in[i] = st->buf[ir_src(g, n, i)];
    op_exec e = { .g = g, .n = n, .out = out, .in = (const void *const *)st->in, .env = env, .err = g->err };
    if (!d->ref)
        return lm_fail(g->err, LOOM_ERR_INTERNAL, "%s has no reference kernel", d->name);
    loom_code c = d->ref(&e);
    if (c != LOOM_OK && !lm_failed(g->err))
        lm_fail(g->err, c, "%s: reference kernel failed (node %%%u)", d->name, n);
    if (c == LOOM_OK && env->check)
        c = env->check(env->check_ud, g, n, out);
    return c;
}

loom_code op_ref_run(ir_graph *g, const op_env *env, const ir_id *roots, uint32_t nroots, void **values)
{
    if (ir_failed(g))
        return g->err->code;
    ir_id top = 0;
    for (uint32_t i = 0; i < nroots; i++) {
        values[i] = NULL;
        if (!ir_valid(g, roots[i]))
            return lm_fail(g->err, LOOM_ERR_HANDLE, "run: root %u is not a node of the graph", i);
        top = LM_MAX(top, roots[i]);
    }
    run_state st = { .g = g, .mem = g->mem, .n = (size_t)top + 1 };
    st.need = lm_zalloc(&st.mem, st.n);
    st.uses = lm_zalloc(&st.mem, st.n * sizeof *st.uses);
    st.buf = lm_zalloc(&st.mem, st.n * sizeof *st.buf);
    st.owned = lm_zalloc(&st.mem, st.n);
    if (!st.need || !st.uses || !st.buf || !st.owned) {
        state_free(&st);
        return g->err->code;
    }
    /* roots pin their value; the reverse sweep marks what they need */
    for (uint32_t i = 0; i < nroots; i++) {
        st.need[roots[i]] = 1;
        st.uses[roots[i]]++;
    }
    for (ir_id n = top; n >= 1; n--) {
        if (!st.need[n])
            continue;
        for (uint32_t i = 0; i < ir_nsrc(g, n); i++) {
            ir_id s = ir_src(g, n, i);
            st.need[s] = 1;
            st.uses[s]++;
        }
    }
    loom_code c = LOOM_OK;
    for (ir_id n = 1; n <= top && c == LOOM_OK; n++) {
        if (!st.need[n])
            continue;
        c = run_node(&st, env, n);
        for (uint32_t i = 0; i < ir_nsrc(g, n) && c == LOOM_OK; i++) {
            ir_id s = ir_src(g, n, i);
            if (--st.uses[s] == 0)
                release(&st, s);
        }
    }
    if (c != LOOM_OK) {
        state_free(&st);
        return c;
    }
    /* Roots hand over their buffers (copies where a value is external or
     * given twice) before assignments commit, so that a parameter read as
     * an output shows its value from before the run, like every read. */
    for (uint32_t i = 0; i < nroots && c == LOOM_OK; i++) {
        ir_id n = roots[i];
        if (ir_op(g, n) == OP_ASSIGN)
            continue;
        if (st.owned[n]) {
            values[i] = st.buf[n];
            st.owned[n] = 0; /* the caller owns it now */
            continue;
        }
        size_t bytes = (size_t)ir_numel(g, n) * loom_dtype_size(ir_dtype(g, n));
        const void *src = st.buf[n];
        for (uint32_t j = 0; j < i && !src; j++)
            if (roots[j] == n)
                src = values[j];
        if (!src) {
            c = lm_fail(g->err, LOOM_ERR_INTERNAL, "run: root %%%u has no value", n);
            break;
        }
        values[i] = lm_alloc_aligned(&st.mem, bytes);
        if (!values[i]) {
            c = g->err->code;
            break;
        }
        memcpy(values[i], src, bytes);
    }
    for (uint32_t i = 0; i < nroots && c == LOOM_OK; i++) {
        ir_id n = roots[i];
        if (ir_op(g, n) != OP_ASSIGN)
            continue;
        uint32_t pid = (uint32_t)ir_attrs(g, n)[0];
        if (pid >= env->nparams || !env->params[pid]) {
            c = lm_fail(g->err, LOOM_ERR_STATE, "assign to parameter p%u with no storage", pid);
            break;
        }
        memcpy(env->params[pid], st.buf[n], (size_t)ir_numel(g, n) * loom_dtype_size(ir_dtype(g, n)));
    }
    if (c != LOOM_OK)
        for (uint32_t i = 0; i < nroots; i++) {
            lm_free_aligned(&st.mem, values[i]);
            values[i] = NULL;
        }
    state_free(&st);
    return c;
}
