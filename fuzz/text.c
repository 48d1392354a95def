/*
 * text.c — libFuzzer target: the `loom` commands' text corpus
 * (cli/data.c): a file read whole (cli_text_read), its vocabulary
 * (cli_vocab_build / _index / _encode), and the contiguous streams that
 * training and evaluation walk (cli_streams_init / _chunk), the way
 * cli/train.c and cli/eval.c use them.
 *
 * The input: 4 bytes of settings, then the file's bytes.
 *   byte 0, 1  --batch B (1 to 256), --seq-len T (1 to 256)
 *   byte 2     --val-frac (0 to 0.9 in 1/256 steps of 0.9)
 *   byte 3     bit 0: the vocabulary is a checkpoint's (the distinct
 *              bytes of the text's first half, as `loom eval` or a
 *              resumed run bring one) instead of the text's own
 * Checked: every byte of the text encodes with its own vocabulary, and a
 * byte a vocabulary lacks is reported where it first occurs; training
 * streams hold whole chunks with every target counted; evaluation
 * streams hold every prediction pair of the text exactly once.
 */
#include "fuzz.h"

#include "cli.h"

/* Pairs as a multiset: a sum of well-mixed values is order-free. */
static uint64_t pair_hash(int32_t x, int32_t y)
{
    uint64_t z = (uint64_t)(uint32_t)x << 32 | (uint32_t)y;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Walks every chunk of s; returns the targets counted, *hash the
 * multiset of the counted pairs. */
static size_t walk(const cli_streams *s, int V, uint64_t *hash, bool whole)
{
    size_t cells = (size_t)s->T * (size_t)s->B, total = 0;
    int32_t *x = malloc(cells * sizeof *x), *y = malloc(cells * sizeof *y);
    if (!x || !y)
        fz_die("fuzz: malloc");
    *hash = 0;
    for (size_t k = 0; k < s->chunks; k++) {
        size_t counted = cli_streams_chunk(s, k, x, y), seen = 0;
        for (size_t i = 0; i < cells; i++) {
            FZ_CHECK(x[i] >= 0 && x[i] < V && y[i] >= -1 && y[i] < V, "chunk %zu cell %zu: x %d y %d, V %d", k, i,
                     x[i], y[i], V);
            if (y[i] >= 0) {
                seen++;
                *hash += pair_hash(x[i], y[i]);
            }
        }
        FZ_CHECK(seen == counted, "chunk %zu counts %zu targets but holds %zu", k, counted, seen);
        if (whole)
            FZ_CHECK(counted == cells, "training chunk %zu of %zu ignores %zu targets", k, s->chunks, cells - counted);
        total += counted;
    }
    free(x);
    free(y);
    return total;
}

static uint64_t text_pairs(const uint8_t *ids, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i + 1 < n; i++)
        h += pair_hash(ids[i], ids[i + 1]);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int B = 1 + data[0], T = 1 + data[1];
    double val_frac = 0.9 * data[2] / 256.0;
    bool foreign_vocab = data[3] & 1;
    data += 4, size -= 4;

    cli_text t;
    int rc = cli_text_read(&t, "fuzz", fz_file(data, size));
    if (size == 0) {
        FZ_CHECK(rc == CLI_FAIL, "an empty file read as a text");
        return 0;
    }
    FZ_CHECK(rc == CLI_OK && t.n == size && memcmp(t.bytes, data, size) == 0 && t.origin,
             "a %zu-byte file read as %zu bytes (rc %d)", size, t.n, rc);

    cli_vocab v;
    cli_vocab_build(&v, t.bytes, foreign_vocab ? t.n / 2 : t.n);
    FZ_CHECK(v.size >= 0 && v.size <= 256, "vocabulary of %d", v.size);
    for (int i = 1; i < v.size; i++)
        FZ_CHECK(v.byte[i - 1] < v.byte[i], "the vocabulary is not in increasing order");
    for (int i = 0; i < v.size; i++) {
        char b[8];
        const char *s = cli_byte_str(v.byte[i], b);
        FZ_CHECK(s == b && strlen(b) > 0 && strlen(b) < 8, "cli_byte_str");
    }
    /* a checkpoint's vocabulary back from its config: index it again */
    cli_vocab again = v;
    FZ_CHECK(cli_vocab_index(&again) && memcmp(again.id, v.id, sizeof v.id) == 0, "re-indexing a vocabulary");
    if (v.size >= 2) { /* a repeated byte is refused */
        again.byte[1] = again.byte[0];
        FZ_CHECK(!cli_vocab_index(&again), "a vocabulary with a byte twice was accepted");
    }

    uint8_t *orig = malloc(t.n);
    if (!orig)
        fz_die("fuzz: malloc");
    memcpy(orig, t.bytes, t.n);
    size_t bad = cli_vocab_encode(&v, t.bytes, t.n);
    FZ_CHECK(bad <= t.n, "encode returned %zu of %zu", bad, t.n);
    if (!foreign_vocab)
        FZ_CHECK(bad == t.n, "byte %zu of the text is not in the text's own vocabulary", bad);
    for (size_t i = 0; i < bad; i++)
        FZ_CHECK(t.bytes[i] < v.size && v.byte[t.bytes[i]] == orig[i], "byte %zu encoded wrong", i);
    if (bad < t.n) {
        FZ_CHECK(v.id[orig[bad]] < 0, "encode stopped at byte %zu, which is in the vocabulary", bad);
        goto out;
    }

    /* training: the first part in whole chunks (cli/train.c setup_data) */
    size_t n_val = (size_t)((double)t.n * val_frac), n_train = t.n - n_val;
    cli_streams s;
    cli_streams_init(&s, t.bytes, n_train, B, T, true);
    uint64_t h;
    size_t counted = walk(&s, v.size, &h, true);
    FZ_CHECK(counted == s.chunks * (size_t)T * (size_t)B && counted <= (n_train ? n_train - 1 : 0),
             "training streams count %zu targets of %zu bytes (B %d, T %d)", counted, n_train, B, T);

    /* evaluation: every pair of the held-out part once (charlm_evaluate) */
    if (n_val >= 2) {
        int bv = charlm_eval_batch(n_val, T, 32);
        FZ_CHECK(bv >= 1 && bv <= 32, "charlm_eval_batch gave %d", bv);
        cli_streams_init(&s, t.bytes + n_train, n_val, bv, T, false);
        counted = walk(&s, v.size, &h, false);
        FZ_CHECK(counted == n_val - 1 && h == text_pairs(t.bytes + n_train, n_val),
                 "evaluation streams (B %d, T %d) count %zu targets of %zu bytes, or not every pair once", bv, T,
                 counted, n_val);
    }
out:
    free(orig);
    cli_text_free(&t);
    return 0;
}
