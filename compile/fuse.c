/*
 * fuse.c — from a graph to kernels and calls.
 *
 * Nodes are visited once, in order. Elementwise nodes join an open group
 * of their operands (groups meeting at a node merge); a group closes, and
 * becomes one map kernel at that point of the schedule, when anything
 * outside it needs one of its values as memory (a matmul, a view, a
 * reduction that cannot absorb it). This keeps fusion free of cycles with
 * no reachability search: an open group has no readers yet, so nothing
 * created while it is open depends on it. At close, every member used
 * outside the group is stored (multi-output kernels), the rest stay in
 * registers. Movement ops (reshape, permute, expand, slice) become views:
 * strided addressing of their operand's memory, folded into the loads of
 * whoever reads them. A group whose members span MAX_GROUP_STEPS time
 * steps closes too (a sum over time steps reads a stream per step). A
 * reduction absorbs an open group that feeds only it. Matmul, gather,
 * scatter-add, pad and concat get kernels of their own. A concatenation
 * copies nothing where it can help it: an operand
 * computed by the plan is computed in place in the concatenation's
 * memory (a slab), and operands that already lie side by side in one
 * buffer make the concatenation a view. Linear in nodes and operands.
 */
#include "plan_impl.h"

#include <math.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

static uint32_t find(fz *f, uint32_t gi)
{
    while (f->groups[gi].parent != gi) {
        f->groups[gi].parent = f->groups[f->groups[gi].parent].parent;
        gi = f->groups[gi].parent;
    }
    return gi;
}

static bool contiguous(const loom_shape *s, const int64_t *st)
{
    int64_t want = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        if (s->d[i] != 1 && st[i] != want)
            return false;
        want *= s->d[i];
    }
    return true;
}

static uint32_t push_view(fz *f, uint32_t buf, int64_t off, const int64_t *st, int rank)
{
    if (!LM_GROW(&f->mem, f->views, f->views_cap, f->nviews + 1))
        return UINT32_MAX;
    view *v = &f->views[f->nviews];
    v->buf = buf;
    v->off = off;
    memset(v->st, 0, sizeof v->st);
    memcpy(v->st, st, (size_t)rank * sizeof *st);
    return (uint32_t)f->nviews++;
}

static void set_view(fz *f, ir_id n, uint32_t buf, int64_t off, const int64_t *st)
{
    uint32_t v = push_view(f, buf, off, st, ir_shape(f->g, n)->rank);
    if (v != UINT32_MAX) {
        f->vid[n] = v;
        f->state[n] = S_VIEW;
    }
}

static uint32_t new_buffer(fz *f, pb_kind kind, uint32_t ext, uint64_t bytes, ir_id node)
{
    plan *p = f->p;
    if (!LM_GROW(&f->mem, p->buffers, p->buffers_cap, p->nbuffers + 1) ||
        !LM_GROW(&f->mem, f->born, f->born_cap, p->nbuffers + 1))
        return UINT32_MAX;
    /* an arena buffer is written by the next call made (its producer's) */
    f->born[p->nbuffers] = kind == PB_ARENA ? (uint32_t)p->ncalls : 0;
    p->buffers[p->nbuffers] = (plan_buffer){ .kind = kind, .ext = ext, .bytes = bytes, .node = node };
    return (uint32_t)p->nbuffers++;
}

static uint64_t node_bytes(const ir_graph *g, ir_id n)
{
    return (uint64_t)ir_numel(g, n) * loom_dtype_size(ir_dtype(g, n));
}

static uint32_t materialize_into_new(fz *f, ir_id n);

/* n's memory as its block of the slab it was given (see plan_slabs): the
 * slab's buffer, made when its first block is. UINT32_MAX to fall back
 * on a buffer of its own. */
static uint32_t materialize_in_slab(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    ir_id c = f->slab[n];
    f->slab[n] = 0; /* once: a later re-homing (a contiguous copy) gets its own */
    if (f->state[c] != S_VIEW) {
        uint32_t b = materialize_into_new(f, c);
        if (b == UINT32_MAX)
            return UINT32_MAX;
        /* filled block by block: no single call makes it, so nothing may
         * count on it existing at its first write (GEMM bias folding) */
        if (f->p->buffers[b].kind == PB_ARENA && b < f->born_cap)
            f->born[b] = UINT32_MAX;
    }
    view cv = f->views[f->vid[c]];
    int axis = (int)ir_attrs(g, c)[0];
    loom_shape cs = ir_shapev(g, c), ns = ir_shapev(g, n);
    int64_t off = cv.off + f->slab_at[n] * cv.st[axis];
    bool direct = ns.rank == cs.rank;
    for (int i = 0; i < ns.rank && direct; i++)
        direct = i == axis || ns.d[i] == cs.d[i];
    if (direct) {
        set_view(f, n, cv.buf, off, cv.st);
    } else {
        /* the operand of a reshape that is the block: contiguous */
        int64_t st[LOOM_MAX_RANK];
        op_strides(&ns, st);
        set_view(f, n, cv.buf, off, st);
    }
    return cv.buf;
}

/* A fresh contiguous arena buffer holding n's value (or its block of a
 * slab). */
static uint32_t materialize_into_new(fz *f, ir_id n)
{
    if (f->slab[n] && f->state[n] != S_VIEW) {
        uint32_t b = materialize_in_slab(f, n);
        if (b != UINT32_MAX || ir_failed(f->g))
            return b;
    }
    uint32_t b = new_buffer(f, PB_ARENA, 0, node_bytes(f->g, n), n);
    if (b == UINT32_MAX)
        return b;
    if (ir_node_at(f->g, n)->phase == IR_BWD)
        f->p->buffers[b].role |= PR_BACKWARD;
    int64_t st[LOOM_MAX_RANK];
    loom_shape s = ir_shapev(f->g, n);
    op_strides(&s, st);
    set_view(f, n, b, 0, st);
    return b;
}

/* ------------------------------------------------------------------ */
/* The fusion report                                                  */
/* ------------------------------------------------------------------ */

/* Why the node being placed needs its operands in memory. */
static plan_why consumer_reason(fz *f)
{
    if (f->why != WHY_COUNT)
        return f->why;
    if (!f->consumer)
        return WHY_OTHER;
    switch (ir_op(f->g, f->consumer)) {
    case OP_MATMUL:
        return WHY_MATMUL;
    case OP_SUM:
    case OP_MAX:
        return WHY_REDUCE;
    case OP_RESHAPE:
    case OP_PERMUTE:
    case OP_EXPAND:
    case OP_SLICE:
        return WHY_VIEW;
    case OP_GATHER:
    case OP_SCATTER_ADD:
        return WHY_INDEX;
    case OP_PAD:
        return WHY_PAD;
    case OP_CONCAT:
        return WHY_CONCAT;
    case OP_ASSIGN:
        return WHY_OUTPUT;
    default:
        return WHY_OTHER;
    }
}

/* "op [shape] step t phase" of node n, appended to buf. */
static void describe(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    static const char *const phases[] = { "fwd", "bwd", "update" };
    char sh[64];
    int32_t step = g->nodes[n].step;
    uint8_t ph = g->nodes[n].phase;
    op_catf(buf, size, "%s %s", op_get(ir_op(g, n))->name, loom_shape_str(ir_shapev(g, n), -1, sh, sizeof sh));
    if (step >= 0)
        op_catf(buf, size, " step %d", step);
    op_catf(buf, size, " %s", ph < 3 ? phases[ph] : "?");
}

/* Counts a kernel boundary of kind w storing `values` values, the first
 * of them n (0: none), for the consumer being placed. */
static void note(fz *f, plan_why w, ir_id n, uint64_t values)
{
    plan_why_count *c = &f->p->report.why[w];
    c->values += values;
    if (c->calls++)
        return;
    if (n)
        describe(f->g, n, c->example, sizeof c->example);
    if (f->consumer && f->consumer != n) {
        if (n)
            op_catf(c->example, sizeof c->example, " -> ");
        describe(f->g, f->consumer, c->example, sizeof c->example);
    }
}

/* ------------------------------------------------------------------ */
/* Kernel building                                                    */
/* ------------------------------------------------------------------ */

static void kb_begin(fz *f, kn_kind kind, loom_shape space)
{
    kbuild *kb = &f->kb;
    kb->kind = kind;
    kb->space = space;
    kb->ncode = kb->nviews = kb->nargs = 0;
    if (++f->stamp == 0) { /* wrapped: clear the stamps */
        memset(f->mark, 0, f->n * sizeof *f->mark);
        f->stamp = 1;
    }
}

/* The argument index of (buffer, offset) in the kernel being built. */
static uint32_t kb_arg(fz *f, uint32_t buf, int64_t off_elems, loom_dtype dt)
{
    kbuild *kb = &f->kb;
    uint64_t off = (uint64_t)off_elems * loom_dtype_size(dt);
    for (uint32_t i = 0; i < kb->nargs; i++) /* kernels have few arguments */
        if (kb->args[i].buffer == buf && kb->args[i].offset == off && kb->arg_dtype[i] == dt)
            return i;
    if (!LM_GROW(&f->mem, kb->args, kb->args_cap, kb->nargs + 1) ||
        !LM_GROW(&f->mem, kb->arg_dtype, kb->arg_dtype_cap, kb->nargs + 1))
        return 0;
    kb->args[kb->nargs] = (plan_arg){ .buffer = buf, .offset = off };
    kb->arg_dtype[kb->nargs] = (uint8_t)dt;
    return kb->nargs++;
}

/* Gemm, gather and scatter address their arguments by position: no
 * sharing of equal ones (x * x^T passes x twice). */
static void kb_arg_at(fz *f, uint32_t buf, int64_t off_elems, loom_dtype dt)
{
    kbuild *kb = &f->kb;
    if (!LM_GROW(&f->mem, kb->args, kb->args_cap, kb->nargs + 1) ||
        !LM_GROW(&f->mem, kb->arg_dtype, kb->arg_dtype_cap, kb->nargs + 1))
        return;
    kb->args[kb->nargs] = (plan_arg){ .buffer = buf, .offset = (uint64_t)off_elems * loom_dtype_size(dt) };
    kb->arg_dtype[kb->nargs++] = (uint8_t)dt;
}

static uint32_t kb_strides(fz *f, const int64_t *st)
{
    kbuild *kb = &f->kb;
    int r = kb->space.rank;
    if (!LM_GROW(&f->mem, kb->strides, kb->strides_cap, (size_t)(kb->nviews + 1) * LOOM_MAX_RANK))
        return 0;
    memset(kb->strides + (size_t)kb->nviews * LOOM_MAX_RANK, 0, LOOM_MAX_RANK * sizeof *st);
    memcpy(kb->strides + (size_t)kb->nviews * LOOM_MAX_RANK, st, (size_t)r * sizeof *st);
    return kb->nviews++;
}

static uint32_t kb_emit(fz *f, kn_instr in)
{
    kbuild *kb = &f->kb;
    if (!LM_GROW(&f->mem, kb->code, kb->code_cap, kb->ncode + 1))
        return 0;
    kb->code[kb->ncode] = in;
    return kb->ncode++;
}

static uint32_t kb_load(fz *f, const view *v, loom_dtype dt)
{
    uint32_t arg = kb_arg(f, v->buf, v->off, dt);
    return kb_emit(f, (kn_instr){ .op = KI_LOAD, .dtype = (uint8_t)dt, .arg = arg, .view = kb_strides(f, v->st) });
}

/* Argument arg of the kernel being built stores node n's value (0: a
 * copy or a fill, no node): its origin for the anomaly mode. */
static void kb_origin(fz *f, uint32_t arg, ir_id n)
{
    plan *p = f->p;
    if (!n || arg >= f->kb.nargs || !LM_GROW(&f->mem, p->origins, p->origins_cap, p->norigins + 2))
        return;
    if (p->norigins == 0)
        p->origins[p->norigins++] = (plan_origin){ 0 };
    const ir_node *x = ir_node_at(f->g, n);
    p->origins[p->norigins] = (plan_origin){ .op = x->op, .phase = x->phase, .dtype = x->dtype, .step = x->step,
                                             .scope = x->scope, .shape = ir_shapev(f->g, n) };
    f->kb.args[arg].origin = (uint32_t)p->norigins++;
}

static uint32_t kb_store(fz *f, const view *v, loom_dtype dt, uint32_t value, ir_id node)
{
    uint32_t arg = kb_arg(f, v->buf, v->off, dt);
    kb_origin(f, arg, node);
    return kb_emit(f, (kn_instr){ .op = KI_STORE, .dtype = (uint8_t)dt, .src = { value },
                                  .arg = arg, .view = kb_strides(f, v->st) });
}

/* The instruction giving node s's value inside the kernel being built:
 * already emitted, a constant, or a load of its memory. */
static uint32_t kb_value(fz *f, ir_id s)
{
    if (f->mark[s] == f->stamp)
        return f->instr_of[s];
    uint32_t i;
    if (f->state[s] == S_CONST)
        i = kb_emit(f, (kn_instr){ .op = OP_CONST, .dtype = ir_dtype(f->g, s),
                                   .attr = { ir_attrs(f->g, s)[0] } });
    else if (f->state[s] == S_VIEW)
        i = kb_load(f, &f->views[f->vid[s]], ir_dtype(f->g, s));
    else {
        lm_fail(f->g->err, LOOM_ERR_INTERNAL, "fuse: node %%%u has no value in the kernel", s);
        return 0;
    }
    f->mark[s] = f->stamp;
    f->instr_of[s] = i;
    return i;
}

/* The elementwise instruction for node n (its operands emitted first). */
static uint32_t kb_node(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    kn_instr in = { .op = ir_op(g, n), .dtype = ir_dtype(g, n) };
    const int64_t *a = ir_attrs(g, n);
    for (uint32_t k = 0; k < ir_nattr(g, n) && k < 3; k++)
        in.attr[k] = a[k];
    if (in.op == OP_RANDOM) {
        /* the key is read as memory, not as an element of the space */
        ir_id key = ir_src(g, n, 0);
        const view *kv = &f->views[f->vid[key]];
        in.arg = kb_arg(f, kv->buf, kv->off, LOOM_I32);
    } else {
        for (uint32_t k = 0; k < ir_nsrc(g, n); k++)
            in.src[k] = kb_value(f, ir_src(g, n, k));
    }
    uint32_t i = kb_emit(f, in);
    f->mark[n] = f->stamp;
    f->instr_of[n] = i;
    return i;
}

/* ------------------------------------------------------------------ */
/* Groups                                                             */
/* ------------------------------------------------------------------ */

static uint32_t group_new(fz *f, loom_shape s)
{
    if (!LM_GROW(&f->mem, f->groups, f->groups_cap, f->ngroups + 1))
        return 0;
    uint32_t gi = (uint32_t)f->ngroups++;
    f->groups[gi] = (group){ .shape = s, .parent = gi, .open = true, .step_lo = INT32_MAX, .step_hi = INT32_MIN };
    return gi;
}

static bool in_group(fz *f, ir_id n, uint32_t gi)
{
    return f->grp[n] && find(f, f->grp[n]) == gi;
}

/* Whether member m is used outside its group (or is an output). */
static bool used_outside(fz *f, ir_id m, uint32_t gi)
{
    if (f->root[m])
        return true;
    for (uint32_t u = ir_first_use(f->g, m); u; u = ir_next_use(f->g, u))
        if (!in_group(f, ir_use_owner(f->g, u), gi))
            return true;
    return false;
}

/* Emits the group's members into the kernel being built. */
static void kb_members(fz *f, uint32_t gi)
{
    for (ir_id m = f->groups[gi].first; m; m = f->next[m])
        kb_node(f, m);
}

static void close_group(fz *f, uint32_t gi)
{
    group *G = &f->groups[gi];
    if (!G->open)
        return;
    G->open = false;
    kb_begin(f, KN_MAP, G->shape);
    kb_members(f, gi);
    ir_id first = 0;
    uint64_t stored = 0;
    for (ir_id m = G->first; m && !ir_failed(f->g); m = f->next[m]) {
        if (!used_outside(f, m, gi))
            continue;
        if (materialize_into_new(f, m) == UINT32_MAX)
            return;
        kb_store(f, &f->views[f->vid[m]], ir_dtype(f->g, m), f->instr_of[m], m);
        first = first ? first : m;
        stored++;
    }
    note(f, consumer_reason(f), first, stored);
    for (ir_id m = G->first; m && f->kcall; m = f->next[m])
        f->kcall[m] = (uint32_t)f->p->ncalls + 1;
    fz_finish_kernel(f);
}

/* Adds elementwise node n to the open group of its operands, merging
 * groups that meet here. */
static void join_group(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    loom_shape s = ir_shapev(g, n);
    uint32_t target = 0;
    uint32_t ns = ir_op(g, n) == OP_RANDOM ? 0 : ir_nsrc(g, n);
    for (uint32_t k = 0; k < ns; k++) {
        ir_id o = ir_src(g, n, k);
        if (f->state[o] != S_GROUP)
            continue;
        uint32_t go = find(f, f->grp[o]);
        if (!f->groups[go].open || go == target)
            continue;
        if (!target) {
            target = go;
            continue;
        }
        /* merge go into target: concatenated member lists stay in a
         * valid order, since neither group reads the other */
        group *T = &f->groups[target], *O = &f->groups[go];
        f->next[T->last] = O->first;
        T->last = O->last;
        T->nmembers += O->nmembers;
        T->ext += O->ext;
        T->step_lo = LM_MIN(T->step_lo, O->step_lo);
        T->step_hi = LM_MAX(T->step_hi, O->step_hi);
        O->parent = target;
        O->open = false;
    }
    /* a group spanning many time steps (a gradient summed over them)
     * reads a stream of memory per step: too many at once and the
     * prefetchers lose them; it closes, storing a partial sum, and the
     * sum goes on in a new group. So does a group of max_fuse members.
     * (A group without steps has step_lo > step_hi: n's step alone.) */
    int32_t step = ir_node_at(g, n)->step;
    if (target) {
        const group *T = &f->groups[target];
        plan_why why = WHY_COUNT;
        if (step >= 0 && (int64_t)LM_MAX(step, T->step_hi) - LM_MIN(step, T->step_lo) >= MAX_GROUP_STEPS)
            why = WHY_STEPS;
        else if (T->nmembers >= (uint32_t)f->o.max_fuse)
            why = WHY_MAX_FUSE;
        if (why != WHY_COUNT) {
            f->why = why;
            close_group(f, target);
            f->why = WHY_COUNT;
            target = 0;
        }
    }
    /* operands in a closed group were stored when it closed */
    for (uint32_t k = 0; k < ns; k++) {
        ir_id o = ir_src(g, n, k);
        if (f->state[o] == S_GROUP && !in_group(f, o, target) && view_of(f, o) == NULL)
            return;
    }
    if (!target && !(target = group_new(f, s)))
        return;
    group *G = &f->groups[target];
    if (G->last)
        f->next[G->last] = n;
    else
        G->first = n;
    G->last = n;
    G->nmembers++;
    if (step >= 0) {
        G->step_lo = LM_MIN(G->step_lo, step);
        G->step_hi = LM_MAX(G->step_hi, step);
    }
    f->grp[n] = target;
    f->state[n] = S_GROUP;
    /* uses of members by non-members: n's own, less n's reads of members */
    G->ext += (int64_t)ir_use_count(g, n) + f->root[n];
    for (uint32_t k = 0; k < ns; k++)
        if (in_group(f, ir_src(g, n, k), target) && ir_src(g, n, k) != n)
            G->ext--;
}

/* ------------------------------------------------------------------ */
/* Views                                                              */
/* ------------------------------------------------------------------ */

/* Kernels that copy or fill: the value of a view into a new contiguous
 * buffer, a constant into a buffer. */
static void copy_kernel(fz *f, const view *from, loom_dtype dt, loom_shape s, const view *to)
{
    note(f, WHY_COPY, 0, 1);
    kb_begin(f, KN_MAP, s);
    uint32_t v = kb_load(f, from, dt);
    kb_store(f, to, dt, v, 0);
    fz_finish_kernel(f);
}

static void fill_kernel(fz *f, double value, loom_dtype dt, loom_shape s, const view *to)
{
    note(f, WHY_FILL, 0, 1);
    kb_begin(f, KN_MAP, s);
    uint32_t v = kb_emit(f, (kn_instr){ .op = OP_CONST, .dtype = (uint8_t)dt, .attr = { ir_f2a(value) } });
    kb_store(f, to, dt, v, 0);
    fz_finish_kernel(f);
}

const view *view_of(fz *f, ir_id n)
{
    switch (f->state[n]) {
    case S_VIEW:
        return &f->views[f->vid[n]];
    case S_GROUP: {
        uint32_t gi = find(f, f->grp[n]);
        if (f->groups[gi].open)
            close_group(f, gi);
        if (f->state[n] == S_VIEW)
            return &f->views[f->vid[n]];
        break;
    }
    case S_CONST:
        if (materialize_into_new(f, n) == UINT32_MAX)
            return NULL;
        fill_kernel(f, ir_a2f(ir_attrs(f->g, n)[0]), ir_dtype(f->g, n), ir_shapev(f->g, n),
                    &f->views[f->vid[n]]);
        return ir_failed(f->g) ? NULL : &f->views[f->vid[n]];
    default:
        break;
    }
    if (!ir_failed(f->g))
        lm_fail(f->g->err, LOOM_ERR_INTERNAL, "fuse: node %%%u (%s) has no memory", n,
                op_get(ir_op(f->g, n))->name);
    return NULL;
}

/* n's value as a contiguous buffer (a copy when its view is strided). */
static const view *contiguous_of(fz *f, ir_id n)
{
    const view *v = view_of(f, n);
    if (!v)
        return NULL;
    loom_shape s = ir_shapev(f->g, n);
    if (contiguous(&s, v->st))
        return v;
    view from = *v;
    if (materialize_into_new(f, n) == UINT32_MAX)
        return NULL;
    copy_kernel(f, &from, ir_dtype(f->g, n), s, &f->views[f->vid[n]]);
    return ir_failed(f->g) ? NULL : &f->views[f->vid[n]];
}

/* numpy's rule for reshaping a strided view without a copy: the new
 * strides, or false when the layout does not allow it. */
static bool reshape_strides(const loom_shape *os, const int64_t *ost, const loom_shape *ns, int64_t *nst)
{
    /* drop size-1 dims of the old shape */
    int64_t od[LOOM_MAX_RANK], oss[LOOM_MAX_RANK];
    int orank = 0;
    for (int i = 0; i < os->rank; i++)
        if (os->d[i] != 1) {
            od[orank] = os->d[i];
            oss[orank++] = ost[i];
        }
    if (loom_shape_numel(*ns) == 0) {
        op_strides(ns, nst);
        return true;
    }
    int oi = 0, ni = 0;
    while (ni < ns->rank && oi < orank) {
        if (ns->d[ni] == 1) { /* new unit dims take any stride */
            nst[ni++] = 0;
            continue;
        }
        int64_t np = ns->d[ni], op = od[oi];
        int nj = ni + 1, oj = oi + 1;
        while (np != op) {
            if (np < op) {
                if (nj >= ns->rank)
                    return false;
                np *= ns->d[nj++];
            } else {
                if (oj >= orank)
                    return false;
                op *= od[oj++];
            }
        }
        for (int k = oi; k < oj - 1; k++)
            if (oss[k] != od[k + 1] * oss[k + 1])
                return false;
        nst[nj - 1] = oss[oj - 1];
        for (int k = nj - 1; k > ni; k--)
            nst[k - 1] = nst[k] * ns->d[k];
        ni = nj;
        oi = oj;
    }
    for (; ni < ns->rank; ni++) {
        if (ns->d[ni] != 1)
            return false;
        nst[ni] = 0;
    }
    return oi == orank;
}

static void do_view(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    ir_id s = ir_src(g, n, 0);
    const view *pv = view_of(f, s);
    if (!pv)
        return;
    view v = *pv;
    loom_shape ss = ir_shapev(g, s), ns = ir_shapev(g, n);
    const int64_t *a = ir_attrs(g, n);
    int64_t st[LOOM_MAX_RANK] = { 0 }, off = v.off;
    switch (ir_op(g, n)) {
    case OP_PERMUTE:
        for (int i = 0; i < ns.rank; i++)
            st[i] = v.st[a[i]];
        break;
    case OP_EXPAND:
        for (int i = 0; i < ns.rank; i++)
            st[i] = ss.d[i] == 1 && ns.d[i] != 1 ? 0 : v.st[i];
        break;
    case OP_SLICE: {
        int r = ss.rank;
        for (int i = 0; i < r; i++) {
            off += a[i] * v.st[i];
            st[i] = v.st[i] * a[2 * r + i];
        }
        break;
    }
    default: /* OP_RESHAPE */
        if (!reshape_strides(&ss, v.st, &ns, st)) {
            const view *c = contiguous_of(f, s);
            if (!c)
                return;
            v = *c;
            off = v.off;
            op_strides(&ns, st);
        }
        break;
    }
    set_view(f, n, v.buf, off, st);
}

/* ------------------------------------------------------------------ */
/* Reductions                                                         */
/* ------------------------------------------------------------------ */

static void do_reduce(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    ir_id x = ir_src(g, n, 0);
    loom_shape xs = ir_shapev(g, x);
    uint32_t mask = (uint32_t)ir_attrs(g, n)[0];
    /* absorb x's group when this reduction is its only reader */
    uint32_t gi = f->state[x] == S_GROUP ? find(f, f->grp[x]) : 0;
    bool absorb = gi && f->groups[gi].open && f->groups[gi].ext == 1 && !f->root[x];
    if (!absorb && !view_of(f, x))
        return;
    kb_begin(f, KN_REDUCE, xs);
    uint32_t value;
    if (absorb) {
        f->groups[gi].open = false;
        kb_members(f, gi);
        value = f->instr_of[x];
    } else {
        value = kb_value(f, x);
    }
    if (materialize_into_new(f, n) == UINT32_MAX)
        return;
    /* the output as a view over the input space: 0 on reduced axes */
    loom_shape keep;
    int64_t ost[LOOM_MAX_RANK];
    op_reduce_layout(&xs, mask, ost, &keep, NULL);
    view out = f->views[f->vid[n]];
    memcpy(out.st, ost, sizeof ost);
    kbuild *kb = &f->kb;
    kb->reduce_op = ir_op(g, n);
    kb->reduce_mask = mask;
    kb->reduce_value = value;
    kb_store(f, &out, ir_dtype(g, n), value, n);
    for (ir_id m = absorb ? f->groups[gi].first : 0; m && f->kcall; m = f->next[m])
        f->kcall[m] = (uint32_t)f->p->ncalls + 1;
    if (f->kcall)
        f->kcall[n] = (uint32_t)f->p->ncalls + 1;
    fz_finish_kernel(f);
}

/* ------------------------------------------------------------------ */
/* Matmul                                                             */
/* ------------------------------------------------------------------ */

/* An operand as a GEMM matrix: the batch stride, whether it is stored
 * transposed relative to its logical [rows, cols], and its leading
 * dimension; false when the view does not fit. */
static bool as_matrix(const loom_shape *s, const int64_t *st, int64_t *bstride, bool *flip, int64_t *ld)
{
    int r = s->rank;
    int64_t rows = s->d[r - 2], cols = s->d[r - 1];
    int64_t sr = rows == 1 ? cols : st[r - 2], sc = cols == 1 ? 1 : st[r - 1];
    if (sc == 1 && sr >= cols) {
        *flip = false;
        *ld = sr;
    } else if (sr == 1 && sc >= rows) {
        *flip = true;
        *ld = sc;
    } else {
        return false;
    }
    /* batch dims must collapse into one stride */
    int64_t batch = 1;
    for (int i = 0; i < r - 2; i++)
        batch *= s->d[i];
    *bstride = 0;
    if (batch > 1) {
        int last = -1;
        for (int i = r - 3; i >= 0; i--)
            if (s->d[i] != 1) {
                last = i;
                break;
            }
        int64_t want = st[last];
        if (want <= 0)
            return false;
        for (int i = last; i >= 0; i--) {
            if (s->d[i] == 1)
                continue;
            if (st[i] != want)
                return false;
            want *= s->d[i];
        }
        *bstride = st[last];
        /* matrices must not overlap */
        int64_t span = *flip ? (cols - 1) * *ld + rows : (rows - 1) * *ld + cols;
        if (*bstride < span)
            return false;
    }
    return true;
}

static void do_matmul(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    ir_id a = ir_src(g, n, 0), b = ir_src(g, n, 1);
    const int64_t *at = ir_attrs(g, n);
    bool ta = at[0] != 0, tb = at[1] != 0;
    /* copies: each view_of may grow the view array */
    const view *pa = view_of(f, a);
    if (!pa)
        return;
    view va = *pa;
    const view *pb = view_of(f, b);
    if (!pb)
        return;
    view vb = *pb;
    loom_shape sa = ir_shapev(g, a), sb = ir_shapev(g, b), so = ir_shapev(g, n);
    int64_t bsa, bsb, lda, ldb;
    bool fa, fb;
    if (!as_matrix(&sa, va.st, &bsa, &fa, &lda)) {
        const view *c = contiguous_of(f, a);
        if (!c)
            return;
        va = *c;
        as_matrix(&sa, va.st, &bsa, &fa, &lda);
    }
    if (!as_matrix(&sb, vb.st, &bsb, &fb, &ldb)) {
        const view *c = contiguous_of(f, b);
        if (!c)
            return;
        vb = *c;
        as_matrix(&sb, vb.st, &bsb, &fb, &ldb);
    }
    int r = so.rank;
    int64_t batch = 1;
    for (int i = 0; i < r - 2; i++)
        batch *= so.d[i];
    int64_t m = so.d[r - 2], nn = so.d[r - 1], k = ta ? sa.d[r - 2] : sa.d[r - 1];
    if (materialize_into_new(f, n) == UINT32_MAX)
        return;
    kb_begin(f, KN_GEMM, so);
    kbuild *kb = &f->kb;
    loom_dtype dt = ir_dtype(g, n);
    kb->gemm = (kn_gemm){
        .dtype = dt, .batch = batch, .m = m, .n = nn, .k = k,
        .ta = ta != fa, .tb = tb != fb, .lda = lda, .ldb = ldb, .ldc = nn,
        .stride_a = batch > 1 ? bsa : 0, .stride_b = batch > 1 ? bsb : 0,
        .stride_c = batch > 1 ? m * nn : 0,
    };
    kb_arg_at(f, va.buf, va.off, dt);
    kb_arg_at(f, vb.buf, vb.off, dt);
    const view *vc = &f->views[f->vid[n]];
    kb_arg_at(f, vc->buf, vc->off, dt);
    kb_origin(f, 2, n);
    fz_finish_kernel(f);
    if (!ir_failed(g))
        f->gcall[n] = (uint32_t)(f->p->ncalls - 1);
}

/* ------------------------------------------------------------------ */
/* GEMM epilogues                                                     */
/* ------------------------------------------------------------------ */

/* The GEMM call whose output is r's value, when r can be folded into it
 * (used once, by the node at hand, and not an output). */
static bool gemm_result(fz *f, ir_id r, uint32_t *ci)
{
    if (f->gcall[r] == UINT32_MAX || f->root[r] || ir_use_count(f->g, r) != 1)
        return false;
    *ci = f->gcall[r];
    return true;
}

/* Rebuilds GEMM call ci with spec s and arguments A, B, C and, with a
 * bias, the bias. */
static bool regemm(fz *f, uint32_t ci, const kn_gemm *s, const plan_arg *args)
{
    plan *p = f->p;
    loom_shape space = p->kernels[p->calls[ci].kernel].space;
    kb_begin(f, KN_GEMM, space);
    f->kb.gemm = *s;
    size_t es = loom_dtype_size(s->dtype);
    for (int i = 0; i < (s->bias ? 4 : 3); i++)
        kb_arg_at(f, args[i].buffer, (int64_t)(args[i].offset / es), s->dtype);
    return fz_set_call(f, ci, fz_make_kernel(f));
}

/* Whether view v over shape s is a vector along the last axis repeated
 * over the others: a bias for a GEMM whose output has shape s. */
static bool bias_layout(const loom_shape *s, const view *v)
{
    int r = s->rank;
    if (r < 1 || (v->st[r - 1] != 1 && s->d[r - 1] != 1))
        return false;
    for (int i = 0; i < r - 1; i++)
        if (v->st[i] != 0 && s->d[i] != 1)
            return false;
    return true;
}

/* Folds elementwise node n into the GEMM that computes its operand:
 * mm1 + mm2 (the later GEMM accumulates into the earlier one's output),
 * mm + bias, act(mm) for tanh, sigmoid and relu. n then names the GEMM's
 * output. False when the pattern does not apply. */
static bool gemm_epilogue(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    plan *p = f->p;
    int op = ir_op(g, n);
    if (op != OP_ADD && op != OP_TANH && op != OP_SIGMOID && op != OP_RELU)
        return false;
    uint32_t ca = 0, cb = 0;
    ir_id a = ir_src(g, n, 0);
    if (op == OP_ADD) {
        ir_id b = ir_src(g, n, 1);
        bool ga = gemm_result(f, a, &ca), gb = gemm_result(f, b, &cb);
        if (ga && gb && ca != cb) {
            uint32_t late = LM_MAX(ca, cb), early = LM_MIN(ca, cb);
            const kernel *kl = &p->kernels[p->calls[late].kernel];
            if (kl->gemm.accumulate || kl->gemm.act != 0)
                return false;
            kn_gemm s = kl->gemm;
            s.accumulate = true;
            const plan_arg *al = p->args + p->calls[late].arg, *ae = p->args + p->calls[early].arg;
            plan_arg args[4] = { al[0], al[1], ae[2], s.bias ? al[3] : al[0] };
            ir_id keep = early == ca ? a : b;
            view v = f->views[f->vid[keep]];
            if (!regemm(f, late, &s, args))
                return false;
            set_view(f, n, v.buf, v.off, v.st);
            f->gcall[n] = late;
            return true;
        }
        ir_id r = ga ? a : gb ? b : 0, o = ga ? b : a;
        uint32_t cr = ga ? ca : cb;
        if (!r || f->state[o] != S_VIEW || ir_dtype(g, o) != ir_dtype(g, n))
            return false;
        loom_shape ns = ir_shapev(g, n);
        view bv = f->views[f->vid[o]];
        const kernel *kr = &p->kernels[p->calls[cr].kernel];
        /* the GEMM runs where it was scheduled: its bias must exist by
         * then (a computed bias may come from a later kernel) */
        if (!bias_layout(&ns, &bv) || kr->gemm.bias || kr->gemm.act != 0 ||
            (p->buffers[bv.buf].kind == PB_ARENA && f->born[bv.buf] >= cr))
            return false;
        kn_gemm s = kr->gemm;
        s.bias = true;
        const plan_arg *ar = p->args + p->calls[cr].arg;
        plan_arg args[4] = { ar[0], ar[1], ar[2],
                             { .buffer = bv.buf, .offset = (uint64_t)bv.off * loom_dtype_size(s.dtype) } };
        view v = f->views[f->vid[r]];
        if (!regemm(f, cr, &s, args))
            return false;
        set_view(f, n, v.buf, v.off, v.st);
        f->gcall[n] = cr;
        return true;
    }
    int act = op == OP_TANH ? 2 : op == OP_SIGMOID ? 3 : op == OP_RELU ? 1 : 0; /* jit_act */
    if (!act || !gemm_result(f, a, &ca))
        return false;
    const kernel *kr = &p->kernels[p->calls[ca].kernel];
    if (kr->gemm.act != 0 || kr->gemm.accumulate)
        return false;
    kn_gemm s = kr->gemm;
    s.act = act;
    plan_arg args[4];
    memcpy(args, p->args + p->calls[ca].arg, (s.bias ? 4 : 3) * sizeof *args);
    view v = f->views[f->vid[a]];
    if (!regemm(f, ca, &s, args))
        return false;
    set_view(f, n, v.buf, v.off, v.st);
    f->gcall[n] = ca;
    return true;
}

/* ------------------------------------------------------------------ */
/* Gather, scatter-add, pad, concat                                   */
/* ------------------------------------------------------------------ */

static uint32_t status_buffer(fz *f)
{
    if (f->status == UINT32_MAX)
        f->status = new_buffer(f, PB_ARENA, 0, 16, 0); /* position + 1, index, range */
    return f->status;
}

static void do_index(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    bool gather = ir_op(g, n) == OP_GATHER;
    ir_id x = ir_src(g, n, 0), idx = ir_src(g, n, 1);
    const view *px = contiguous_of(f, x);
    view vx = px ? *px : (view){ 0 };
    const view *pi = px ? contiguous_of(f, idx) : NULL;
    if (!pi)
        return;
    view vi = *pi;
    int axis = (int)ir_attrs(g, n)[0];
    /* gather reads x [outer, rows, inner]; scatter writes n likewise */
    loom_shape big = gather ? ir_shapev(g, x) : ir_shapev(g, n);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= big.d[i];
    for (int i = axis + 1; i < big.rank; i++)
        inner *= big.d[i];
    if (materialize_into_new(f, n) == UINT32_MAX)
        return;
    uint32_t status = status_buffer(f);
    kb_begin(f, gather ? KN_GATHER : KN_SCATTER, ir_shapev(g, n));
    loom_dtype dt = ir_dtype(g, n);
    f->kb.index = (kn_index){ .dtype = dt, .outer = outer, .rows = big.d[axis], .inner = inner,
                              .count = ir_numel(g, idx) };
    kb_arg_at(f, vx.buf, vx.off, dt);
    kb_arg_at(f, vi.buf, vi.off, LOOM_I32);
    const view *vo = &f->views[f->vid[n]];
    kb_arg_at(f, vo->buf, vo->off, dt);
    kb_origin(f, 2, n);
    kb_arg_at(f, status, 0, LOOM_I32);
    fz_finish_kernel(f);
}

static void do_pad(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    ir_id x = ir_src(g, n, 0);
    const view *px = view_of(f, x);
    if (!px)
        return;
    view vx = *px;
    const int64_t *a = ir_attrs(g, n);
    loom_shape xs = ir_shapev(g, x), ns = ir_shapev(g, n);
    int r = xs.rank;
    double value = ir_a2f(a[3 * r]);
    loom_dtype dt = ir_dtype(g, n);
    if (materialize_into_new(f, n) == UINT32_MAX)
        return;
    view out = f->views[f->vid[n]];
    fill_kernel(f, value, dt, ns, &out);
    view into = out;
    for (int i = 0; i < r; i++) {
        into.off += a[i] * out.st[i];
        into.st[i] = out.st[i] * (a[2 * r + i] + 1);
    }
    if (loom_shape_numel(xs) > 0)
        copy_kernel(f, &vx, dt, xs, &into);
}

/* Whether view v of a shape s addresses the very elements of view w. */
static bool same_place(const view *v, const view *w, const loom_shape *s)
{
    if (v->buf != w->buf || v->off != w->off)
        return false;
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] != 1 && v->st[i] != w->st[i])
            return false;
    return true;
}

/* Operands lying side by side along the axis in one buffer: the
 * concatenation is a view of them. */
static bool concat_as_view(fz *f, ir_id n, int axis)
{
    const ir_graph *g = f->g;
    uint32_t ns = ir_nsrc(g, n);
    loom_shape cs = ir_shapev(g, n);
    if (cs.d[axis] < 2 || loom_shape_numel(cs) == 0)
        return false;
    const view *v0 = &f->views[f->vid[ir_src(g, n, 0)]];
    /* the step along the axis: from the first operand longer than one
     * along it, or from the first two operands' offsets */
    int64_t step = 0;
    bool known = false;
    for (uint32_t i = 0; i < ns && !known; i++) {
        ir_id s = ir_src(g, n, i);
        if (ir_shape(g, s)->d[axis] > 1) {
            step = f->views[f->vid[s]].st[axis];
            known = true;
        }
    }
    if (!known)
        step = f->views[f->vid[ir_src(g, n, 1)]].off - v0->off;
    view want = *v0;
    want.st[axis] = step;
    int64_t at = 0;
    for (uint32_t i = 0; i < ns; i++) {
        ir_id s = ir_src(g, n, i);
        loom_shape ss = ir_shapev(g, s);
        view place = want;
        place.off += at * step;
        if (!same_place(&f->views[f->vid[s]], &place, &ss))
            return false;
        at += ss.d[axis];
    }
    set_view(f, n, want.buf, want.off, want.st);
    return true;
}

static void do_concat(fz *f, ir_id n)
{
    const ir_graph *g = f->g;
    int axis = (int)ir_attrs(g, n)[0];
    loom_dtype dt = ir_dtype(g, n);
    /* every operand's memory first, then the output (already there when
     * operands were computed in it) */
    for (uint32_t i = 0; i < ir_nsrc(g, n); i++)
        if (!view_of(f, ir_src(g, n, i)))
            return;
    if (f->state[n] != S_VIEW && concat_as_view(f, n, axis))
        return;
    if (f->state[n] != S_VIEW && materialize_into_new(f, n) == UINT32_MAX)
        return;
    view out = f->views[f->vid[n]];
    int64_t at = 0;
    for (uint32_t i = 0; i < ir_nsrc(g, n); i++) {
        ir_id s = ir_src(g, n, i);
        loom_shape ss = ir_shapev(g, s);
        view into = out;
        into.off += at * out.st[axis];
        if (loom_shape_numel(ss) > 0 && !same_place(&f->views[f->vid[s]], &into, &ss))
            copy_kernel(f, &f->views[f->vid[s]], dt, ss, &into);
        at += ss.d[axis];
    }
}

/* Slabs: before the walk, each concatenation claims the operands it can
 * have computed in place: made by a kernel of this plan (not a view, a
 * constant or external memory), not claimed by an earlier one, not an
 * output. Operands the walk does not materialize after all (a view, a
 * GEMM epilogue's result) are copied as before. A kernel that needs a
 * contiguous output (all but the elementwise ones) gets a block only
 * where the block is contiguous: the axes before the concatenation's are
 * all 1. So does the operand of a reshape that is a block. */
static void plan_slabs(fz *f)
{
    const ir_graph *g = f->g;
    for (ir_id c = 1; c < f->n; c++) {
        if (ir_op(g, c) != OP_CONCAT)
            continue;
        int axis = (int)ir_attrs(g, c)[0];
        loom_shape cs = ir_shapev(g, c);
        bool block_contiguous = true;
        for (int i = 0; i < axis; i++)
            block_contiguous &= cs.d[i] == 1;
        int64_t at = 0;
        for (uint32_t i = 0; i < ir_nsrc(g, c); i++) {
            ir_id s = ir_src(g, c, i), t = s;
            int64_t len = ir_shape(g, s)->d[axis];
            bool through_reshape = ir_op(g, s) == OP_RESHAPE;
            if (through_reshape)
                t = ir_src(g, s, 0);
            int op = ir_op(g, t);
            const op_def *d = op_get(op);
            bool elementwise = d->lower && (d->flags & OPF_ELEMENTWISE || op == OP_IOTA || op == OP_RANDOM);
            bool computed = elementwise || op == OP_MATMUL || op == OP_SUM || op == OP_MAX || op == OP_GATHER ||
                            op == OP_SCATTER_ADD || op == OP_PAD || op == OP_CONCAT;
            if (computed && !f->slab[t] && !f->root[t] && ir_numel(g, t) > 0 &&
                ((elementwise && !through_reshape) || block_contiguous)) {
                f->slab[t] = c;
                f->slab_at[t] = at;
            }
            at += len;
        }
    }
}

/* ------------------------------------------------------------------ */
/* The walk                                                           */
/* ------------------------------------------------------------------ */

/* Outputs are contiguous arena memory the caller can read after the run
 * (a parameter's value as the run saw it, so a copy). */
static bool arena_contiguous(fz *f, ir_id n)
{
    const view *v = &f->views[f->vid[n]];
    loom_shape s = ir_shapev(f->g, n);
    return f->p->buffers[v->buf].kind == PB_ARENA && contiguous(&s, v->st);
}

static const view *output_of(fz *f, ir_id n)
{
    const view *v = view_of(f, n);
    if (!v || arena_contiguous(f, n))
        return v;
    view from = *v;
    if (materialize_into_new(f, n) == UINT32_MAX)
        return NULL;
    copy_kernel(f, &from, ir_dtype(f->g, n), ir_shapev(f->g, n), &f->views[f->vid[n]]);
    return ir_failed(f->g) ? NULL : &f->views[f->vid[n]];
}

/* For compile_opts.dot: node n was placed while the calls from `before`
 * on were made; the last of them computes it, unless it is a group
 * member (those get their group's call when it closes) or has one. */
static void placed(fz *f, ir_id n, size_t before)
{
    if (f->kcall && !f->kcall[n] && f->p->ncalls > before && f->state[n] != S_GROUP)
        f->kcall[n] = (uint32_t)f->p->ncalls;
}

loom_code fz_run(fz *f, const ir_id *roots, uint32_t nroots)
{
    ir_graph *g = f->g;
    for (uint32_t i = 0; i < nroots; i++)
        if (ir_op(g, roots[i]) != OP_ASSIGN)
            f->root[roots[i]] = 1;
    plan_slabs(f);
    f->why = WHY_COUNT;
    size_t before = 0;
    for (ir_id n = 1; n < f->n && !ir_failed(g); n++) {
        int op = ir_op(g, n);
        if (n > 1)
            placed(f, n - 1, before);
        before = f->p->ncalls;
        f->consumer = n;
        const op_def *d = op_get(op);
        switch (op) {
        case OP_INPUT:
        case OP_PARAM: {
            uint32_t b = new_buffer(f, op == OP_INPUT ? PB_INPUT : PB_PARAM, (uint32_t)ir_attrs(g, n)[0],
                                    node_bytes(g, n), n);
            int64_t st[LOOM_MAX_RANK];
            loom_shape s = ir_shapev(g, n);
            op_strides(&s, st);
            if (b != UINT32_MAX)
                set_view(f, n, b, 0, st);
            continue;
        }
        case OP_CONST:
            f->state[n] = S_CONST;
            continue;
        case OP_RESHAPE:
        case OP_PERMUTE:
        case OP_EXPAND:
        case OP_SLICE:
            do_view(f, n);
            continue;
        case OP_SUM:
        case OP_MAX:
            do_reduce(f, n);
            continue;
        case OP_MATMUL:
            do_matmul(f, n);
            continue;
        case OP_GATHER:
        case OP_SCATTER_ADD:
            do_index(f, n);
            continue;
        case OP_PAD:
            do_pad(f, n);
            continue;
        case OP_CONCAT:
            do_concat(f, n);
            continue;
        case OP_ASSIGN: {
            ir_id v = ir_src(g, n, 0);
            /* a member of an open group is stored when its group closes
             * (the assignment is a use from outside it), which need not
             * be now: an optimizer's moment updates and the parameter's
             * then make one kernel (its commit is placed at the end) */
            if (f->state[v] == S_GROUP && f->groups[find(f, f->grp[v])].open)
                continue;
            const view *pv = view_of(f, v);
            if (pv && f->p->buffers[pv->buf].kind == PB_PARAM) {
                /* params commit one after another: copy a param's value
                 * first so that p <- q, q <- p swaps */
                view from = *pv;
                if (materialize_into_new(f, v) != UINT32_MAX)
                    copy_kernel(f, &from, ir_dtype(g, v), ir_shapev(g, v), &f->views[f->vid[v]]);
            } else if (pv) {
                loom_shape vs = ir_shapev(g, v);
                if (!contiguous(&vs, pv->st))
                    contiguous_of(f, v);
            }
            continue;
        }
        default:
            break;
        }
        if (d->lower && (d->flags & OPF_ELEMENTWISE || op == OP_IOTA || op == OP_RANDOM)) {
            if (op == OP_RANDOM && !view_of(f, ir_src(g, n, 0)))
                continue;
            if (gemm_epilogue(f, n))
                continue;
            for (uint32_t k = 0; k < ir_nsrc(g, n); k++)
                if (f->gcall[ir_src(g, n, k)] != UINT32_MAX) {
                    note(f, WHY_EPILOGUE, ir_src(g, n, k), 0);
                    break;
                }
            join_group(f, n);
            continue;
        }
        lm_fail(g->err, LOOM_ERR_UNSUPPORTED, "fuse: no kernel for %s", d->name);
    }
    if (f->n > 1)
        placed(f, (ir_id)(f->n - 1), before);
    /* open groups close at the end, in the order they opened */
    f->why = WHY_OUTPUT;
    f->consumer = 0;
    for (size_t gi = 1; gi < f->ngroups && !ir_failed(g); gi++)
        if (f->groups[gi].open && f->groups[gi].parent == gi)
            close_group(f, (uint32_t)gi);
    /* outputs and commits */
    plan *p = f->p;
    p->roots_cap = (size_t)nroots + 1;
    p->outputs = lm_zalloc(&f->mem, p->roots_cap * sizeof *p->outputs);
    p->commits = lm_zalloc(&f->mem, p->roots_cap * sizeof *p->commits);
    if (!p->outputs || !p->commits)
        return g->err->code;
    for (uint32_t i = 0; i < nroots && !ir_failed(g); i++) {
        ir_id n = roots[i];
        if (ir_op(g, n) == OP_ASSIGN) {
            ir_id v = ir_src(g, n, 0);
            const view *pv = view_of(f, v);
            if (!pv)
                break;
            loom_shape vs = ir_shapev(g, v);
            if (!contiguous(&vs, pv->st) && !(pv = contiguous_of(f, v)))
                break;
            loom_dtype dt = ir_dtype(g, v);
            p->buffers[pv->buf].role |= PR_UPDATE;
            p->commits[p->ncommits++] = (plan_commit){ .buffer = pv->buf,
                                                      .offset = (uint64_t)pv->off * loom_dtype_size(dt),
                                                      .param = (uint32_t)ir_attrs(g, n)[0],
                                                      .bytes = node_bytes(g, v) };
            continue;
        }
        const view *pv = output_of(f, n);
        if (!pv)
            break;
        p->buffers[pv->buf].role |= PR_OUTPUT;
        p->outputs[p->noutputs++] = (plan_output){
            .buffer = pv->buf, .offset = (uint64_t)pv->off * loom_dtype_size(ir_dtype(g, n)) };
    }
    return g->err->code;
}
