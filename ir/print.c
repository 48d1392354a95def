/*
 * print.c — the IR as text (one line per node) and as Graphviz DOT.
 */
#include "ir.h"

static const char *phase_name(int phase)
{
    return phase == IR_BWD ? " bwd" : phase == IR_UPD ? " upd" : "";
}

void ir_print_node(const ir_graph *g, ir_id n, FILE *out, ir_label_fn label, void *ud)
{
    const ir_node *x = ir_node_at(g, n);
    fprintf(out, "%%%u = %s", n, ir_op_name(g, x->op));
    for (uint32_t i = 0; i < x->nsrc; i++)
        fprintf(out, "%s%%%u", i ? ", " : " ", ir_src(g, n, i));
    char buf[256];
    buf[0] = 0;
    if (g->ops && g->ops->format)
        g->ops->format(g, n, buf, sizeof buf);
    if (buf[0])
        fprintf(out, " [%s]", buf);
    const char *name = label ? label(ud, g, n) : NULL;
    if (name)
        fprintf(out, " \"%s\"", name);
    char sh[160];
    fprintf(out, " : %s", loom_shape_str(*ir_shape(g, n), x->dtype, sh, sizeof sh));
    if (x->step >= 0)
        fprintf(out, " @t%d", x->step);
    fprintf(out, "%s\n", phase_name(x->phase));
}

void ir_print(const ir_graph *g, FILE *out, ir_label_fn label, void *ud)
{
    for (ir_id n = 1; n < g->nnodes; n++)
        ir_print_node(g, n, out, label, ud);
}

/* DOT labels are quoted strings; escape what would end them. */
static void dot_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void dot_node(const ir_graph *g, ir_id n, FILE *out, ir_label_fn label, void *ud)
{
    const ir_node *x = ir_node_at(g, n);
    char sh[160], attrs[256];
    attrs[0] = 0;
    if (g->ops && g->ops->format)
        g->ops->format(g, n, attrs, sizeof attrs);
    const char *name = label ? label(ud, g, n) : NULL;
    fprintf(out, "  n%u [label=\"%%%u %s", n, n, ir_op_name(g, x->op));
    if (name) {
        fputs(" ", out);
        dot_escaped(out, name);
    }
    if (attrs[0]) {
        fputs("\\n", out);
        dot_escaped(out, attrs);
    }
    fprintf(out, "\\n%s\"%s];\n", loom_shape_str(*ir_shape(g, n), x->dtype, sh, sizeof sh),
            x->phase == IR_BWD ? " style=filled fillcolor=\"#eeeeff\""
            : x->phase == IR_UPD ? " style=filled fillcolor=\"#eeffee\""
                                 : "");
}

void ir_write_dot(const ir_graph *g, FILE *out, ir_label_fn label, void *ud)
{
    fprintf(out, "digraph loom {\n  rankdir=TB;\n  node [shape=box fontname=\"monospace\" fontsize=10];\n");
    /* Nodes outside steps first, then one cluster per step. Steps are
     * visited in order of first appearance with a linked list through the
     * nodes, so the whole write stays linear. */
    int32_t max_step = -1;
    for (ir_id n = 1; n < g->nnodes; n++) {
        if (g->nodes[n].step < 0)
            dot_node(g, n, out, label, ud);
        else if (g->nodes[n].step > max_step)
            max_step = g->nodes[n].step;
    }
    if (max_step >= 0) {
        lm_mem m = g->mem;
        m.err = NULL; /* printing never fails the graph: fall back to flat */
        size_t nsteps = (size_t)max_step + 1;
        ir_id *head = lm_zalloc(&m, nsteps * sizeof *head);
        ir_id *tail = lm_zalloc(&m, nsteps * sizeof *tail);
        ir_id *next = lm_zalloc(&m, g->nnodes * sizeof *next);
        bool clustered = head && tail && next;
        for (ir_id n = 1; clustered && n < g->nnodes; n++) {
            int32_t t = g->nodes[n].step;
            if (t < 0)
                continue;
            if (tail[t])
                next[tail[t]] = n;
            else
                head[t] = n;
            tail[t] = n;
        }
        for (int32_t t = 0; clustered && t <= max_step; t++) {
            if (!head[t])
                continue;
            fprintf(out, "  subgraph cluster_t%d {\n  label=\"t=%d\";\n", t, t);
            for (ir_id n = head[t]; n; n = next[n])
                dot_node(g, n, out, label, ud);
            fprintf(out, "  }\n");
        }
        for (ir_id n = 1; !clustered && n < g->nnodes; n++)
            if (g->nodes[n].step >= 0)
                dot_node(g, n, out, label, ud);
        lm_free(&m, next, g->nnodes * sizeof *next);
        lm_free(&m, tail, nsteps * sizeof *tail);
        lm_free(&m, head, nsteps * sizeof *head);
    }
    for (ir_id n = 1; n < g->nnodes; n++)
        for (uint32_t i = 0; i < g->nodes[n].nsrc; i++)
            fprintf(out, "  n%u -> n%u;\n", ir_src(g, n, i), n);
    fprintf(out, "}\n");
}
