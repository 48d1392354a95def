/*
 * checkpoint.c — checkpoints as safetensors files: saving (atomic), loading
 * (everything checked before anything changes) and reading the caller's
 * config back.
 *
 * The file, as https://github.com/huggingface/safetensors lays it out:
 *
 *     u64 N (little-endian) | N bytes of JSON header | data section
 *
 * The header maps each tensor name to {"dtype", "shape", "data_offsets"}
 * (offsets relative to the data section) and holds "__metadata__", a map
 * of strings. loom writes "format": "loom", "format_version", "step",
 * "rng", "config" and "checksum" ("xxh3:" and 16 hex digits of XXH3-64 over
 * the whole data section). The header is padded with spaces so the data
 * starts 8-aligned; tensors are packed without gaps (safetensors' own
 * reader refuses gaps), 8-byte dtypes first, then by name, so every tensor
 * is aligned to its element size and equal contexts give equal files.
 *
 * Any safetensors file loads, PyTorch's included: files without the loom
 * format mark need no checksum, and tensors of dtypes loom does not hold
 * (BF16, I64 ...) are checked for size and may be skipped with
 * LOOM_LOAD_ALLOW_UNEXPECTED.
 *
 * Not here: the optimizer's state (its buffers are ordinary parameters of
 * the context and travel with them), memory-mapping (the file is read in
 * one go into memory from the context's allocator).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fe.h"
#include "json.h"

enum { CK_FORMAT_VERSION = 1 };

/* Like safetensors' own limit: a header is names and numbers, so anything
 * larger is a corrupt length, and it is checked before any allocation. */
#define CK_MAX_HEADER ((uint64_t)100 << 20)

#define CK_META "__metadata__"

/* ------------------------------------------------------------------ */
/* Dtypes                                                             */
/* ------------------------------------------------------------------ */

/* Every safetensors dtype with its element size: sizes let the loader
 * check tensors it will not load as carefully as those it will. */
typedef struct st_dtype {
    const char *name;
    uint8_t size;
    int8_t loom; /* loom_dtype, or -1 */
} st_dtype;

static const st_dtype st_dtypes[] = {
    { "F64", 8, LOOM_F64 },   { "F32", 4, LOOM_F32 },   { "I32", 4, LOOM_I32 },  { "I64", 8, -1 },
    { "U64", 8, -1 },         { "U32", 4, -1 },         { "F16", 2, -1 },        { "BF16", 2, -1 },
    { "I16", 2, -1 },         { "U16", 2, -1 },         { "I8", 1, -1 },         { "U8", 1, -1 },
    { "BOOL", 1, -1 },        { "F8_E4M3", 1, -1 },     { "F8_E5M2", 1, -1 },
};

static const char *const st_names[] = { [LOOM_F32] = "F32", [LOOM_F64] = "F64", [LOOM_I32] = "I32" };
_Static_assert(LM_ARRAY_LEN(st_names) == LOOM_DTYPE_COUNT, "a loom dtype without a safetensors name");

static const st_dtype *st_dtype_find(const char *name)
{
    for (size_t i = 0; i < LM_ARRAY_LEN(st_dtypes); i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return &st_dtypes[i];
    return NULL;
}

/* The file's bytes are little-endian; so must the host's be, to copy them. */
static bool host_little_endian(void)
{
    uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ------------------------------------------------------------------ */
/* Small parsers for metadata values (strict: no signs, no spaces)    */
/* ------------------------------------------------------------------ */

static bool parse_u64(const char *s, int base, uint64_t *out)
{
    uint64_t x = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        int d = *s >= '0' && *s <= '9' ? *s - '0'
                : base == 16 && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                : base == 16 && *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                                        : -1;
        if (d < 0 || x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false;
        x = x * (uint64_t)base + (uint64_t)d;
    }
    *out = x;
    return true;
}

/* ------------------------------------------------------------------ */
/* Reading: a file and its validated header                           */
/* ------------------------------------------------------------------ */

typedef struct ck_tensor {
    const char *name; /* in the header document */
    const st_dtype *dt;
    loom_shape shape;
    uint64_t begin, end; /* in the data section */
    long param;          /* the matching parameter, or -1 */
} ck_tensor;

typedef struct ck_file {
    loom_ctx *ctx;
    const char *fn, *path; /* for messages */
    int fd;
    uint64_t size;     /* of the file */
    char *hdr;         /* hdr_len bytes of JSON */
    uint64_t hdr_len;
    json_doc doc;
    ck_tensor *t;      /* nt tensors */
    size_t nt, t_cap;
    unsigned char *data; /* the data section, data_len bytes (read on demand) */
    uint64_t data_len;

    /* metadata */
    bool loom;           /* "format": "loom" */
    bool has_checksum;
    uint64_t checksum;
    bool has_step;
    int64_t step;
    bool has_rng;
    uint64_t seed, runs;
    lm_rng host;
    const char *config;  /* or NULL */
    size_t config_len;
} ck_file;

static loom_code ck_fail(ck_file *f, loom_code code, const char *fmt, ...) LM_PRINTF(3, 4);
static loom_code ck_fail(ck_file *f, loom_code code, const char *fmt, ...)
{
    char msg[LM_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fe_fail(f->ctx, code, f->fn, "\"%.200s\": %s", f->path, msg);
}

static void ck_close(ck_file *f)
{
    lm_mem *m = &f->ctx->mem;
    if (f->fd >= 0)
        close(f->fd);
    json_free(&f->doc);
    lm_free(m, f->hdr, f->hdr ? (size_t)f->hdr_len : 0);
    lm_free(m, f->t, f->t_cap * sizeof *f->t);
    lm_free(m, f->data, f->data ? (size_t)f->data_len : 0);
    f->fd = -1;
    f->hdr = NULL;
    f->t = NULL;
    f->data = NULL;
}

/* Reads exactly n bytes; a short file is a format error, since its size
 * was checked before: it changed while being read. */
static loom_code read_exact(ck_file *f, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t k = read(f->fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return ck_fail(f, LOOM_ERR_IO, "cannot read: %s", strerror(errno));
        if (k == 0)
            return ck_fail(f, LOOM_ERR_FORMAT, "the file ended early (was it changed while being read?)");
        p += k;
        n -= (size_t)k;
    }
    return LOOM_OK;
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const ck_tensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const ck_tensor *)a)->name, ((const ck_tensor *)b)->name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Refuses an object with a key twice: which one would count is a guess. */
static loom_code check_unique_keys(ck_file *f, const json_val *obj, const char *what)
{
    if (obj->n < 2)
        return LOOM_OK;
    const char **keys = lm_alloc(&f->ctx->mem, obj->n * sizeof *keys);
    if (!keys)
        return f->ctx->err.code;
    for (size_t i = 0; i < obj->n; i++)
        json_member(&f->doc, obj, i, &keys[i]);
    qsort(keys, obj->n, sizeof *keys, cmp_str);
    loom_code c = LOOM_OK;
    for (size_t i = 1; i < obj->n && c == LOOM_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            c = ck_fail(f, LOOM_ERR_FORMAT, "%s has the key \"%.200s\" twice", what, keys[i]);
    lm_free(&f->ctx->mem, keys, obj->n * sizeof *keys);
    return c;
}

/* "rng": {"seed": hex, "runs": decimal, "host": [4 hex words]} as a string. */
static loom_code parse_rng(ck_file *f, const json_val *v)
{
    json_doc d;
    char err[160];
    loom_code c = json_parse(&d, &f->ctx->mem, json_text(&f->doc, v), v->n, err, sizeof err);
    if (c == LOOM_ERR_NOMEM) {
        json_free(&d);
        return c;
    }
    const json_val *r = json_root(&d), *seed = json_get(&d, r, "seed"), *runs = json_get(&d, r, "runs"),
                   *host = json_get(&d, r, "host");
    bool ok = c == LOOM_OK && r->type == JSON_OBJECT && seed && seed->type == JSON_STRING &&
              parse_u64(json_text(&d, seed), 16, &f->seed) && runs && runs->type == JSON_STRING &&
              parse_u64(json_text(&d, runs), 10, &f->runs) && host && host->type == JSON_ARRAY && host->n == 4;
    uint64_t any = 0;
    for (size_t i = 0; ok && i < 4; i++) {
        const json_val *w = json_item(&d, host, i);
        ok = w->type == JSON_STRING && parse_u64(json_text(&d, w), 16, &f->host.s[i]);
        any |= f->host.s[i];
    }
    json_free(&d);
    /* xoshiro's all-zero state is a fixed point: it would draw only zeros */
    if (!ok || !any)
        return ck_fail(f, LOOM_ERR_FORMAT,
                       "metadata \"rng\" is malformed (want {\"seed\": hex, \"runs\": decimal, \"host\": [4 hex "
                       "words, not all zero]} as a string)");
    f->has_rng = true;
    return LOOM_OK;
}

static loom_code read_metadata(ck_file *f, const json_val *meta)
{
    if (meta->type != JSON_OBJECT)
        return ck_fail(f, LOOM_ERR_FORMAT, "\"" CK_META "\" is %s, not an object", json_type_name(meta->type));
    const char *key;
    for (size_t i = 0; i < meta->n; i++) {
        const json_val *v = json_member(&f->doc, meta, i, &key);
        if (v->type != JSON_STRING)
            return ck_fail(f, LOOM_ERR_FORMAT, "metadata \"%.200s\" is %s, not a string", key,
                           json_type_name(v->type));
    }
    loom_code c = check_unique_keys(f, meta, "\"" CK_META "\"");
    if (c != LOOM_OK)
        return c;
    const json_val *format = json_get(&f->doc, meta, "format"), *config = json_get(&f->doc, meta, "config"),
                   *sum = json_get(&f->doc, meta, "checksum");
    f->loom = format && strcmp(json_text(&f->doc, format), "loom") == 0;
    if (config) {
        f->config = json_text(&f->doc, config);
        f->config_len = config->n;
    }
    /* a foreign file's "checksum" may be another hash: only ours is checked */
    const char *s = sum ? json_text(&f->doc, sum) : "";
    if (f->loom && !sum)
        return ck_fail(f, LOOM_ERR_FORMAT, "a loom checkpoint without its \"checksum\" metadata");
    if (f->loom || strncmp(s, "xxh3:", 5) == 0) {
        if (strncmp(s, "xxh3:", 5) != 0 || strlen(s) != 21 || !parse_u64(s + 5, 16, &f->checksum))
            return ck_fail(f, LOOM_ERR_FORMAT, "metadata \"checksum\" is \"%.40s\", not xxh3:<16 hex digits>", s);
        f->has_checksum = true;
    }
    if (!f->loom)
        return LOOM_OK; /* the rest of the metadata is another program's */

    const json_val *version = json_get(&f->doc, meta, "format_version"), *step = json_get(&f->doc, meta, "step"),
                   *rng = json_get(&f->doc, meta, "rng");
    uint64_t ver = 0;
    if (!version || !parse_u64(json_text(&f->doc, version), 10, &ver))
        return ck_fail(f, LOOM_ERR_FORMAT, "a loom checkpoint without a decimal \"format_version\"");
    if (ver != CK_FORMAT_VERSION)
        return ck_fail(f, LOOM_ERR_FORMAT, "format version %llu; this build of loom reads version %d",
                       (unsigned long long)ver, CK_FORMAT_VERSION);
    if (step) {
        uint64_t u;
        if (!parse_u64(json_text(&f->doc, step), 10, &u) || u > INT64_MAX)
            return ck_fail(f, LOOM_ERR_FORMAT, "metadata \"step\" is \"%.40s\", not a step count",
                           json_text(&f->doc, step));
        f->has_step = true;
        f->step = (int64_t)u;
    }
    return rng ? parse_rng(f, rng) : LOOM_OK;
}

/* One tensor entry: {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}. */
static loom_code read_tensor(ck_file *f, const char *name, const json_val *v, ck_tensor *t)
{
    json_doc *d = &f->doc;
    if (v->type != JSON_OBJECT)
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" is %s, not an object", name, json_type_name(v->type));
    const json_val *dtype = json_get(d, v, "dtype"), *shape = json_get(d, v, "shape"),
                   *offs = json_get(d, v, "data_offsets");
    if (!dtype || dtype->type != JSON_STRING)
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" has no \"dtype\" string", name);
    if (!shape || shape->type != JSON_ARRAY)
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" has no \"shape\" array", name);
    if (!offs || offs->type != JSON_ARRAY || offs->n != 2)
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" has no \"data_offsets\" pair", name);
    *t = (ck_tensor){ .name = name, .param = -1, .dt = st_dtype_find(json_text(d, dtype)) };
    if (!t->dt)
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" has the unknown dtype \"%.40s\"", name,
                       json_text(d, dtype));
    if (shape->n > LOOM_MAX_RANK)
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" has rank %u; loom's limit is %d", name, shape->n,
                       LOOM_MAX_RANK);
    uint64_t numel = 1;
    t->shape.rank = (int32_t)shape->n;
    for (uint32_t i = 0; i < shape->n; i++) {
        int64_t dim;
        if (!json_int64(d, json_item(d, shape, i), &dim) || dim < 0)
            return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\": dimension %u of its shape is not an integer >= 0",
                           name, i);
        t->shape.d[i] = dim;
        if (__builtin_mul_overflow(numel, (uint64_t)dim, &numel))
            numel = UINT64_MAX; /* cannot fit any file: the size check below says so */
    }
    int64_t b, e;
    if (!json_int64(d, json_item(d, offs, 0), &b) || !json_int64(d, json_item(d, offs, 1), &e) || b < 0 || e < b)
        return ck_fail(f, LOOM_ERR_FORMAT,
                       "tensor \"%.200s\": \"data_offsets\" is not a pair of integers 0 <= begin <= end", name);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end > f->data_len)
        return ck_fail(f, LOOM_ERR_FORMAT,
                       "tensor \"%.200s\" ends at byte %llu of a %llu-byte data section (truncated file?)", name,
                       (unsigned long long)t->end, (unsigned long long)f->data_len);
    uint64_t want;
    if (__builtin_mul_overflow(numel, (uint64_t)t->dt->size, &want) || want != t->end - t->begin) {
        char sh[160];
        return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" is %s%s but its offsets span %llu bytes", name,
                       t->dt->name, loom_shape_str(t->shape, -1, sh, sizeof sh),
                       (unsigned long long)(t->end - t->begin));
    }
    return LOOM_OK;
}

static loom_code read_header(ck_file *f)
{
    char err[200];
    loom_code c = json_parse(&f->doc, &f->ctx->mem, f->hdr, (size_t)f->hdr_len, err, sizeof err);
    if (c == LOOM_ERR_NOMEM)
        return c;
    if (c != LOOM_OK)
        return ck_fail(f, LOOM_ERR_FORMAT, "the header is not valid JSON (%s)", err);
    const json_val *root = json_root(&f->doc);
    if (root->type != JSON_OBJECT)
        return ck_fail(f, LOOM_ERR_FORMAT, "the header is %s, not a JSON object", json_type_name(root->type));
    f->t_cap = root->n;
    if (root->n && !(f->t = lm_alloc(&f->ctx->mem, root->n * sizeof *f->t)))
        return f->ctx->err.code;
    const char *name;
    bool seen_meta = false;
    for (size_t i = 0; i < root->n; i++) {
        const json_val *v = json_member(&f->doc, root, i, &name);
        bool meta = strcmp(name, CK_META) == 0;
        if (meta && seen_meta)
            return ck_fail(f, LOOM_ERR_FORMAT, "the header has \"" CK_META "\" twice");
        seen_meta |= meta;
        c = meta ? read_metadata(f, v) : read_tensor(f, name, v, &f->t[f->nt++]);
        if (c != LOOM_OK)
            return c;
    }
    if (f->nt > 1) {
        /* no two tensors may share bytes (empty ones have none) */
        qsort(f->t, f->nt, sizeof *f->t, cmp_tensor_offset);
        const ck_tensor *prev = NULL;
        for (size_t i = 0; i < f->nt; i++) {
            const ck_tensor *t = &f->t[i];
            if (t->begin == t->end)
                continue;
            if (prev && t->begin < prev->end)
                return ck_fail(f, LOOM_ERR_FORMAT, "tensors \"%.150s\" and \"%.150s\" overlap in the data section",
                               prev->name, t->name);
            prev = t;
        }
        qsort(f->t, f->nt, sizeof *f->t, cmp_tensor_name);
        for (size_t i = 1; i < f->nt; i++)
            if (strcmp(f->t[i - 1].name, f->t[i].name) == 0)
                return ck_fail(f, LOOM_ERR_FORMAT, "the tensor \"%.200s\" appears twice", f->t[i].name);
    }
    return LOOM_OK;
}

/* Opens path, checks the sizes, reads and validates the header. The data
 * section stays unread (ck_read_data). On failure f is closed. */
static loom_code ck_open(ck_file *f, loom_ctx *ctx, const char *path, const char *fn)
{
    *f = (ck_file){ .ctx = ctx, .fn = fn, .path = path, .fd = -1 };
    loom_code c = LOOM_OK;
    struct stat st;
    unsigned char lenb[8];
    /* O_NONBLOCK: a FIFO must not hang the open (regular files ignore it) */
    if ((f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
        c = ck_fail(f, LOOM_ERR_IO, "cannot open: %s", strerror(errno));
    else if (fstat(f->fd, &st) != 0)
        c = ck_fail(f, LOOM_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        c = ck_fail(f, LOOM_ERR_IO, "cannot read: %s", strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        c = ck_fail(f, LOOM_ERR_IO, "not a regular file");
    else if ((f->size = (uint64_t)st.st_size) < 8)
        c = ck_fail(f, LOOM_ERR_FORMAT, "%llu bytes: too short for a safetensors file (8-byte header length)",
                    (unsigned long long)f->size);
    else if ((c = read_exact(f, lenb, 8)) == LOOM_OK) {
        for (int i = 7; i >= 0; i--)
            f->hdr_len = f->hdr_len << 8 | lenb[i];
        if (f->hdr_len < 2 || f->hdr_len > CK_MAX_HEADER)
            c = ck_fail(f, LOOM_ERR_FORMAT, "a header length of %llu bytes is not sane (not a safetensors file?)",
                        (unsigned long long)f->hdr_len);
        else if (f->hdr_len > f->size - 8)
            c = ck_fail(f, LOOM_ERR_FORMAT,
                        "the header length %llu runs past the end of the %llu-byte file (truncated?)",
                        (unsigned long long)f->hdr_len, (unsigned long long)f->size);
        else if (!(f->hdr = lm_alloc(&ctx->mem, (size_t)f->hdr_len)))
            c = ctx->err.code;
        else if ((c = read_exact(f, f->hdr, (size_t)f->hdr_len)) == LOOM_OK) {
            f->data_len = f->size - 8 - f->hdr_len;
            c = read_header(f);
        }
    }
    if (c != LOOM_OK)
        ck_close(f);
    return c;
}

/* Reads the data section and checks it against the checksum. */
static loom_code ck_read_data(ck_file *f)
{
    if (f->data_len > SIZE_MAX)
        return ck_fail(f, LOOM_ERR_NOMEM, "a %llu-byte data section does not fit in memory",
                       (unsigned long long)f->data_len);
    if (f->data_len && !(f->data = lm_alloc(&f->ctx->mem, (size_t)f->data_len)))
        return f->ctx->err.code;
    loom_code c = read_exact(f, f->data, (size_t)f->data_len);
    if (c != LOOM_OK || !f->has_checksum)
        return c;
    uint64_t h = XXH3_64bits(f->data, (size_t)f->data_len);
    if (h != f->checksum)
        return ck_fail(f, LOOM_ERR_FORMAT,
                       "checksum mismatch: the header says xxh3:%016llx, the data hashes to xxh3:%016llx "
                       "(corrupt file)",
                       (unsigned long long)f->checksum, (unsigned long long)h);
    return LOOM_OK;
}

/* Pairs the file's tensors with the context's parameters per flags and
 * checks dtypes and shapes. Tensors are sorted by name. */
static loom_code ck_match(ck_file *f, unsigned flags)
{
    loom_ctx *ctx = f->ctx;
    size_t missing = 0, unexpected = 0;
    long first_missing = -1;
    for (size_t i = 0; i < ctx->nparams; i++) {
        const fe_param *p = &ctx->params[i];
        ck_tensor key = { .name = p->name };
        ck_tensor *t = f->nt ? bsearch(&key, f->t, f->nt, sizeof *f->t, cmp_tensor_name) : NULL;
        if (!t) {
            if (!missing++)
                first_missing = (long)i;
            continue;
        }
        t->param = (long)i;
        if (t->dt->loom != (int)p->dtype || !loom_shape_equal(t->shape, p->shape)) {
            char fs[160], ps[160];
            return ck_fail(f, LOOM_ERR_FORMAT, "tensor \"%.200s\" is %s%s in the file, but the parameter is %s%s",
                           p->name, t->dt->name, loom_shape_str(t->shape, -1, fs, sizeof fs), st_names[p->dtype],
                           loom_shape_str(p->shape, -1, ps, sizeof ps));
        }
    }
    const ck_tensor *first_unexpected = NULL;
    for (size_t i = 0; i < f->nt; i++)
        if (f->t[i].param < 0 && !unexpected++)
            first_unexpected = &f->t[i];
    if (unexpected && !(flags & LOOM_LOAD_ALLOW_UNEXPECTED))
        return ck_fail(f, LOOM_ERR_FORMAT,
                       "unexpected tensor \"%.200s\" (%zu in all) with no parameter of its name "
                       "(LOOM_LOAD_ALLOW_UNEXPECTED skips them)",
                       first_unexpected->name, unexpected);
    if (missing && !(flags & LOOM_LOAD_ALLOW_MISSING))
        return ck_fail(f, LOOM_ERR_FORMAT,
                       "parameter \"%.200s\" (%zu in all) is missing from the file (LOOM_LOAD_ALLOW_MISSING keeps "
                       "their values)",
                       ctx->params[first_missing].name, missing);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ */
/* Loading                                                            */
/* ------------------------------------------------------------------ */

/* The checks every public entry point shares. */
static loom_code ck_enter(loom_ctx *ctx, const char *path, const char *fn)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code; /* sticky, like the builders */
    if (!path || !path[0])
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "the path is %s", path ? "empty" : "NULL");
    if (!host_little_endian())
        return fe_fail(ctx, LOOM_ERR_UNSUPPORTED, fn, "checkpoints need a little-endian host");
    return LOOM_OK;
}

loom_code loom_checkpoint_load(loom_ctx *ctx, const char *path, loom_optimizer *opt, unsigned flags)
{
    static const char fn[] = "loom_checkpoint_load";
    loom_code c = ck_enter(ctx, path, fn);
    if (c != LOOM_OK)
        return c;
    if (flags & ~(unsigned)(LOOM_LOAD_ALLOW_MISSING | LOOM_LOAD_ALLOW_UNEXPECTED))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "unknown flags 0x%x", flags);
    ck_file f;
    if ((c = ck_open(&f, ctx, path, fn)) != LOOM_OK)
        return c;
    if ((c = ck_match(&f, flags)) == LOOM_OK)
        c = ck_read_data(&f);
    /* Everything is checked. The optimizer goes first: it is the only step
     * that can still fail, and nothing has changed yet if it does. */
    if (c == LOOM_OK && opt && f.has_step && (c = loom_optimizer_set_steps(opt, f.step)) != LOOM_OK)
        ck_fail(&f, c, "cannot restore the optimizer's step %lld (%s)", (long long)f.step, loom_code_name(c));
    if (c == LOOM_OK) {
        for (size_t i = 0; i < f.nt; i++)
            if (f.t[i].param >= 0 && f.t[i].end > f.t[i].begin)
                memcpy(ctx->params[f.t[i].param].data, f.data + f.t[i].begin, (size_t)(f.t[i].end - f.t[i].begin));
        if (f.has_rng) {
            ctx->seed = f.seed;
            ctx->runs = f.runs;
            ctx->host_rng = f.host;
        }
    }
    ck_close(&f);
    return c;
}

loom_code loom_checkpoint_config(loom_ctx *ctx, const char *path, char *buf, size_t size)
{
    static const char fn[] = "loom_checkpoint_config";
    loom_code c = ck_enter(ctx, path, fn);
    if (c != LOOM_OK)
        return c;
    if (!buf || !size)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "no buffer to copy the config into");
    buf[0] = 0;
    /* the header only: the config does not need the data read and hashed */
    ck_file f;
    if ((c = ck_open(&f, ctx, path, fn)) != LOOM_OK)
        return c;
    if (f.config_len >= size)
        c = ck_fail(&f, LOOM_ERR_ARG, "the config is %zu bytes; the buffer holds %zu with its NUL", f.config_len,
                    size);
    else if (f.config)
        memcpy(buf, f.config, f.config_len + 1);
    ck_close(&f);
    return c;
}

/* ------------------------------------------------------------------ */
/* Saving                                                             */
/* ------------------------------------------------------------------ */

/* 8-byte dtypes first, then by name: every tensor is aligned to its
 * element size with no gaps, and the file does not depend on the order the
 * parameters were made in. */
static int cmp_param_layout(const void *a, const void *b)
{
    const fe_param *x = *(const fe_param *const *)a, *y = *(const fe_param *const *)b;
    size_t sx = loom_dtype_size(x->dtype), sy = loom_dtype_size(y->dtype);
    return sx != sy ? (sx > sy ? -1 : 1) : strcmp(x->name, y->name);
}

static loom_code save_fail(loom_ctx *ctx, const char *path, const char *what, int err)
{
    return fe_fail(ctx, LOOM_ERR_IO, "loom_checkpoint_save", "\"%.200s\": %s: %s", path, what, strerror(err));
}

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* The header: metadata, then the tensors in file order. */
static bool build_header(loom_ctx *ctx, json_buf *h, const fe_param *const *order, const loom_optimizer *opt,
                         const char *config, uint64_t checksum)
{
    char rng[256];
    const uint64_t *s = ctx->host_rng.s;
    snprintf(rng, sizeof rng,
             "{\"seed\":\"%016llx\",\"runs\":\"%llu\",\"host\":[\"%016llx\",\"%016llx\",\"%016llx\",\"%016llx\"]}",
             (unsigned long long)ctx->seed, (unsigned long long)ctx->runs, (unsigned long long)s[0],
             (unsigned long long)s[1], (unsigned long long)s[2], (unsigned long long)s[3]);
    int64_t step = opt ? loom_optimizer_steps(opt) : 0;
    json_putf(h, "{\"" CK_META "\":{\"format\":\"loom\",\"format_version\":\"%d\",\"step\":\"%lld\",\"rng\":",
              CK_FORMAT_VERSION, (long long)(step > 0 ? step : 0));
    json_put_string(h, rng, strlen(rng));
    if (config) {
        json_puts(h, ",\"config\":");
        json_put_string(h, config, strlen(config));
    }
    json_putf(h, ",\"checksum\":\"xxh3:%016llx\"}", (unsigned long long)checksum);
    uint64_t off = 0;
    for (size_t i = 0; i < ctx->nparams; i++) {
        const fe_param *p = order[i];
        json_puts(h, ",");
        json_put_string(h, p->name, strlen(p->name));
        json_putf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_names[p->dtype]);
        for (int k = 0; k < p->shape.rank; k++)
            json_putf(h, "%s%lld", k ? "," : "", (long long)p->shape.d[k]);
        json_putf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + p->bytes));
        off += p->bytes;
    }
    json_puts(h, "}");
    while (!h->nomem && h->len % 8)
        json_puts(h, " "); /* 8 + N is then a multiple of 8: aligned data */
    return !h->nomem;
}

/* The directory holding path, into dir (strlen(path) + 2 bytes). */
static void dir_of(const char *path, char *dir)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, slash ? path : ".", n);
    dir[n] = 0;
}

/* Syncs the directory, so the rename itself is durable. Filesystems that
 * cannot sync a directory say EINVAL: nothing to do then. */
static loom_code sync_dir(loom_ctx *ctx, const char *path, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return LOOM_OK; /* unreadable (mode 0300, say): the rename is done, durability best-effort */
    loom_code c = LOOM_OK;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        c = save_fail(ctx, path, "saved, but syncing its directory failed", errno);
    close(fd);
    return c;
}

static _Atomic unsigned tmp_serial;

/* Writes the length, the header h and the tensors to a fresh temporary
 * beside path (a rename across filesystems would not be atomic), syncs it
 * and renames it over path. On failure the temporary is removed and path
 * is as it was. */
static void write_atomically(loom_ctx *ctx, const char *path, char *tmp, size_t tmp_size, const char *dir,
                             const json_buf *h, const fe_param *const *order, size_t n)
{
    /* the serial keeps the threads of one process apart; a stale file of
     * a dead process that had our pid is stepped over */
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, tmp_size, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&tmp_serial, 1));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        save_fail(ctx, path, "cannot create a temporary file beside it", errno);
        return;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
    bool ok = write_all(fd, lenb, 8) && write_all(fd, h->s, h->len);
    for (size_t i = 0; ok && i < n; i++)
        ok = write_all(fd, order[i]->data, order[i]->bytes);
    if (!ok)
        save_fail(ctx, path, "cannot write", errno);
    else if (fsync(fd) != 0)
        ok = false, save_fail(ctx, path, "cannot sync", errno);
    if (close(fd) != 0 && ok)
        ok = false, save_fail(ctx, path, "cannot close", errno);
    if (ok && rename(tmp, path) != 0)
        ok = false, save_fail(ctx, path, "cannot rename the temporary file over it", errno);
    if (ok)
        sync_dir(ctx, path, dir);
    else
        unlink(tmp);
}

loom_code loom_checkpoint_save(loom_ctx *ctx, const char *path, const loom_optimizer *opt, const char *config_json)
{
    static const char fn[] = "loom_checkpoint_save";
    loom_code c = ck_enter(ctx, path, fn);
    if (c != LOOM_OK)
        return c;
    if (config_json && !json_utf8_valid(config_json, strlen(config_json)))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "the config is not valid UTF-8");
    for (size_t i = 0; i < ctx->nparams; i++) {
        const char *name = ctx->params[i].name;
        if (!json_utf8_valid(name, strlen(name)) || strcmp(name, CK_META) == 0)
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "the parameter name \"%.200s\" cannot be a safetensors tensor name",
                           name);
    }

    size_t n = ctx->nparams;
    const fe_param **order = lm_alloc(&ctx->mem, (n ? n : 1) * sizeof *order);
    json_buf h = { .mem = &ctx->mem };
    /* everything that may fail for want of memory comes before the
     * rename: after it, failing would report an error for a done save */
    size_t tmp_size = strlen(path) + 48, dir_size = strlen(path) + 2;
    char *tmp = order ? lm_alloc(&ctx->mem, tmp_size) : NULL;
    char *dir = tmp ? lm_alloc(&ctx->mem, dir_size) : NULL;
    if (!dir)
        goto out;
    dir_of(path, dir);
    for (size_t i = 0; i < n; i++)
        order[i] = &ctx->params[i];
    qsort(order, n, sizeof *order, cmp_param_layout);
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset(&st);
    for (size_t i = 0; i < n; i++)
        XXH3_64bits_update(&st, order[i]->data, order[i]->bytes);
    if (!build_header(ctx, &h, order, opt, config_json, XXH3_64bits_digest(&st)))
        goto out;

    write_atomically(ctx, path, tmp, tmp_size, dir, &h, order, n);
out:
    json_buf_free(&h);
    lm_free(&ctx->mem, dir, dir_size);
    lm_free(&ctx->mem, tmp, tmp_size);
    lm_free(&ctx->mem, order, (n ? n : 1) * sizeof *order);
    return ctx->err.code;
}
