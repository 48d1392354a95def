/*
 * seeds.c — writes the checkpoint target's seed corpus (committed under
 * fuzz/corpus/checkpoint; rerun after a format change):
 *
 *     build-fuzz/fuzz/fuzz_seeds fuzz/corpus/checkpoint
 *
 * The files: checkpoints of tiny.h's model as loom_checkpoint_save writes
 * them (with the optimizer's step and the config, without a config, the
 * weights alone), the same cut short and damaged in the ways the reader
 * names (header, data, length, checksum, a tensor's offsets), a
 * safetensors file as PyTorch writes one (no loom metadata, a BF16
 * tensor), and JSON texts: the config alone and a document with every
 * kind of value.
 */
#include <errno.h>

#include "fuzz.h"

#include "tiny.h"

static const char *dir;

static void put(const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        fz_die(path);
}

static unsigned char *get(const char *name, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fz_die(path);
    static unsigned char buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unsigned char *copy = malloc(*n);
    if (!copy)
        fz_die("malloc");
    memcpy(copy, buf, *n);
    return copy;
}

static void save(loom_ctx *ctx, const char *name, loom_optimizer *opt, const char *config)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (loom_checkpoint_save(ctx, path, opt, config) != LOOM_OK) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", path, loom_errmsg(ctx));
        exit(1);
    }
}

/* A safetensors file from a header text and data bytes. */
static void put_safetensors(const char *name, const char *header, const void *data, size_t n)
{
    size_t h = strlen(header), total = 8 + h + n;
    unsigned char *b = malloc(total);
    if (!b)
        fz_die("malloc");
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memcpy(b + 8 + h, data, n);
    put(name, b, total);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    charlm m;
    charlm_tape tp;
    loom_optimizer *opt;
    if (fz_tiny_new(&m, &tp, &opt) != CLI_OK)
        return 1;
    charlm_config cfg = fz_tiny_config();
    char config[8192];
    if (!charlm_config_write(&cfg, config, sizeof config))
        return 1;
    loom_optimizer_set_steps(opt, 3);
    save(m.ctx, "valid.safetensors", opt, config);
    save(m.ctx, "valid-noconfig.safetensors", NULL, NULL);
    put("config.json", config, strlen(config));

    /* the weights alone, as a model without training state saves them */
    charlm w;
    if (charlm_new(&w, &cfg, 2, 1, "fuzz") != CLI_OK)
        return 1;
    save(w.ctx, "weights-only.safetensors", NULL, config);
    charlm_free(&w);

    size_t n;
    unsigned char *f = get("valid.safetensors", &n);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--)
        h = h << 8 | f[i];
    put("cut-header.safetensors", f, 8 + h / 2);
    put("cut-data.safetensors", f, n - 12);
    put("cut-length.safetensors", f, 5);
    unsigned char *g = malloc(n);
    if (!g)
        fz_die("malloc");
    memcpy(g, f, n);
    g[n - 3] ^= 0x40; /* a weight's bit: the checksum no longer matches */
    put("bad-checksum.safetensors", g, n);
    memcpy(g, f, n);
    g[6] = 0x10; /* a header length past any sane size */
    put("bad-length.safetensors", g, n);
    memcpy(g, f, n);
    char *offs = memmem(g + 8, h, "\"data_offsets\":[0,", 18);
    if (offs)
        offs[16] = '4'; /* a tensor's offsets overlap another's and its size no longer fits its shape */
    put("bad-offsets.safetensors", g, n);
    free(g);
    free(f);

    /* as PyTorch's safetensors writes: no loom metadata, dtypes loom does
     * not hold, a parameter of the model among them */
    float bias[5] = { 0.5f, -1, 2, 0.25f, 0 };
    unsigned char raw[5 * 4 + 2 * 3];
    memcpy(raw, bias, sizeof bias);
    memset(raw + sizeof bias, 0x3f, 6);
    put_safetensors("torch.safetensors",
                    "{\"__metadata__\":{\"format\":\"pt\"},\"head.bias\":{\"dtype\":\"F32\",\"shape\":[5],"
                    "\"data_offsets\":[0,20]},\"extra\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[20,26]}}",
                    raw, sizeof raw);

    static const char doc[] = "{\"a\": [1, -0, 2.5e-3, 1E+400, true, false, null], \"s\": \"tab\\t\\u00e9\\ud83d\\ude00\","
                              " \"o\": {\"\": {}, \"e\": []}}\n";
    put("values.json", doc, sizeof doc - 1);
    loom_optimizer_free(opt);
    charlm_free(&m);
    return 0;
}
