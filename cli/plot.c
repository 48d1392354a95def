/*
 * plot.c — `loom plot RUNDIR`: the training and validation loss curves of
 * a run, from its log.csv, as a hand-written SVG (RUNDIR/loss.svg): axes
 * with 1-2-5 ticks and labels, one polyline per curve (the validation
 * points marked), a legend. `loom train` writes the same plot when it
 * stops.
 *
 * Not here: the log's writing (train.c).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char CMD[] = "plot";

typedef struct series {
    double *x, *y;
    size_t n, cap;
} series;

static bool series_add(series *s, double x, double y)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (!nx)
            return false;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (!ny)
            return false;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return true;
}

static void series_free(series *s)
{
    free(s->x);
    free(s->y);
}

/* A field of a CSV line: a number, or NAN when empty or not one. */
static double field(const char **p)
{
    const char *s = *p;
    char *end;
    double v = strtod(s, &end);
    bool ok = end != s && (*end == ',' || *end == '\n' || *end == '\r' || !*end);
    while (**p && **p != ',' && **p != '\n')
        (*p)++;
    if (**p == ',')
        (*p)++;
    return ok && isfinite(v) ? v : NAN;
}

/* Tick spacing of 1, 2 or 5 times a power of ten, about n ticks over
 * span. */
static double nice_step(double span, int n)
{
    double raw = span / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '&')
            fputs("&amp;", f);
        else if (c >= 0x20 || c == '\t')
            fputc(c, f);
    }
}

enum { W = 800, HGT = 500, ML = 70, MR = 20, MT = 40, MB = 60 };

static void polyline(FILE *f, const series *s, double x0, double x1, double y0, double y1, const char *color,
                     bool marks)
{
    double pw = W - ML - MR, ph = HGT - MT - MB;
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (MT + ph - ((v) - y0) / (y1 - y0) * ph)
    if (s->n > 1) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
        for (size_t i = 0; i < s->n; i++)
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", PX(s->x[i]), PY(s->y[i]));
        fprintf(f, "\"/>\n");
    }
    if (marks || s->n == 1)
        for (size_t i = 0; i < s->n; i++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", PX(s->x[i]), PY(s->y[i]), color);
#undef PX
#undef PY
}

static bool write_svg(FILE *f, const char *title, const series *tr, const series *va)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    const series *all[2] = { tr, va };
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < all[k]->n; i++) {
            x0 = fmin(x0, all[k]->x[i]), x1 = fmax(x1, all[k]->x[i]);
            y0 = fmin(y0, all[k]->y[i]), y1 = fmax(y1, all[k]->y[i]);
        }
    if (x0 > 0 && x0 < 0.25 * (x1 - x0))
        x0 = 0; /* a run from its start: the axis from step 0 */
    if (x1 <= x0)
        x0 -= 1, x1 += 1;
    if (y1 <= y0)
        y0 -= 0.5, y1 += 0.5;
    double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    if (y0 < 0 && y0 + pad >= 0)
        y0 = 0;
    double pw = W - ML - MR, ph = HGT - MT - MB;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            W, HGT, W, HGT, W, HGT);
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">", W / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    /* grid and ticks */
    double sx = nice_step(x1 - x0, 8), sy = nice_step(y1 - y0, 6);
    for (double v = ceil(x0 / sx) * sx; v <= x1 + 1e-9 * sx; v += sx) {
        double px = ML + (v - x0) / (x1 - x0) * pw;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", px, MT, px, MT + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.10g</text>\n", px, MT + ph + 16, v);
    }
    for (double v = ceil(y0 / sy) * sy; v <= y1 + 1e-9 * sy; v += sy) {
        double py = MT + ph - (v - y0) / (y1 - y0) * ph;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", ML, py, ML + pw, py);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", ML - 6, py + 4, fabs(v) < 1e-12 ? 0 : v);
    }
    /* axes and their labels */
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ML, MT + ph, ML + pw, MT + ph);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\" stroke=\"black\"/>\n", ML, MT, ML, MT + ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">step</text>\n", ML + pw / 2, HGT - 16);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">loss (nats/char)</text>\n",
            MT + ph / 2);
    polyline(f, tr, x0, x1, y0, y1, "#1f77b4", false);
    polyline(f, va, x0, x1, y0, y1, "#ff7f0e", true);
    /* legend, top right */
    double lx = ML + pw - 150, ly = MT + 10;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"140\" height=\"%d\" fill=\"white\" stroke=\"#999\"/>\n", lx, ly,
            va->n ? 46 : 26);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
               "<text x=\"%.1f\" y=\"%.1f\">train loss</text>\n",
            lx + 8, ly + 14, lx + 32, ly + 14, lx + 40, ly + 18);
    if (va->n)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\">val loss</text>\n",
                lx + 8, ly + 34, lx + 32, ly + 34, lx + 40, ly + 38);
    fprintf(f, "</svg>\n");
    return !ferror(f);
}

int cli_plot_run(const char *dir, const char *cmd, bool quiet)
{
    char path[PATH_MAX + 16], out[PATH_MAX + 16], tmp[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    snprintf(out, sizeof out, "%s/loss.svg", dir);
    snprintf(tmp, sizeof tmp, "%s/loss.svg.tmp", dir);
    FILE *in = fopen(path, "r");
    if (!in) {
        cli_error(cmd, "cannot read \"%s\": %s (is \"%s\" a run directory of loom train?)", path, strerror(errno), dir);
        return CLI_FAIL;
    }
    series tr = { 0 }, va = { 0 };
    char line[512];
    bool ok = true;
    size_t rows = 0;
    while (ok && fgets(line, sizeof line, in)) {
        const char *p = line;
        double step = field(&p), loss = field(&p), val = field(&p);
        if (isnan(step))
            continue; /* the header, or a damaged line */
        rows++;
        if (isfinite(loss))
            ok = series_add(&tr, step, loss);
        if (ok && isfinite(val))
            ok = series_add(&va, step, val);
    }
    fclose(in);
    int rc = CLI_OK;
    if (!ok) {
        cli_error(cmd, "out of memory");
        rc = CLI_FAIL;
    } else if (rows == 0) {
        cli_error(cmd, "\"%s\" has no rows yet: nothing to plot", path);
        rc = CLI_FAIL;
    } else {
        FILE *f = fopen(tmp, "w");
        char title[PATH_MAX + 32];
        snprintf(title, sizeof title, "loom train: %s", dir);
        bool written = f && write_svg(f, title, &tr, &va);
        if (f && fclose(f) != 0)
            written = false;
        if (!written || rename(tmp, out) != 0) {
            cli_error(cmd, "cannot write \"%s\": %s", out, strerror(errno));
            unlink(tmp);
            rc = CLI_FAIL;
        } else if (!quiet) {
            printf("%s: %zu training and %zu validation points\n", out, tr.n, va.n);
        }
    }
    series_free(&tr);
    series_free(&va);
    return rc;
}

int cli_plot(int argc, char **argv)
{
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom plot RUNDIR",
        .summary = "Writes RUNDIR/loss.svg, the training and validation loss curves of RUNDIR/log.csv.",
        .opts = NULL,
        .nopts = 0,
        .min_pos = 1,
        .max_pos = 1,
        .pos_name = "RUNDIR (a run directory of loom train)",
    };
    const char *pos[1];
    int npos;
    int prc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (prc != CLI_OK)
        return prc < 0 ? CLI_OK : prc;
    return cli_plot_run(pos[0], CMD, false);
}
