/*
 * aot_weights.c — libFuzzer target: the weights-file loader that
 * loom_aot_emit writes into every generated header (<prefix>_weights_check
 * on a file held in memory, <prefix>_weights_load on a path), here the
 * header and object of fuzz/aot_model.c's tiny model, made at build time.
 *
 * Every input is checked three ways: in a 64-byte aligned buffer, in a
 * block of exactly its size (so a read past the end is caught), and as a
 * file through the loader. Checked: the codes are the header's, the three
 * agree (the unaligned block may only add FZTINY_E_WEIGHTS), failure
 * leaves the pointers NULL, and weights that pass are the file's bytes
 * after its header and run the entry (to the JIT's results, when they
 * are the model's own).
 */
#include <math.h>

#include "fuzz.h"

#include "fztiny.h"
#include "fztiny_expect.h"

static void *memory;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!(memory = aligned_alloc(FZTINY_ALIGN, (FZTINY_MEMORY_BYTES + FZTINY_ALIGN - 1) / FZTINY_ALIGN * FZTINY_ALIGN)))
        fz_die("fuzz: aligned_alloc");
    return 0;
}

/* The weights passed the check: the entry must run on them, and compute
 * what the JIT did when they are the model's own (other weights pass
 * too when the file's checksum was redone for them: the checksum guards
 * against damage, not against edits). */
static void run_entry(const void *weights, const uint8_t *file, size_t size)
{
    FZ_CHECK(memcmp(weights, file + FZTINY_WEIGHTS_HEADER_BYTES, FZTINY_WEIGHTS_BYTES) == 0,
             "the weights are not the file's bytes after its header");
    float y[FZTINY_STEP_Y_COUNT];
    int rc = fztiny_step(memory, weights, fztiny_expect_x, y);
    FZ_CHECK(rc == FZTINY_OK, "fztiny_step: %s", fztiny_strerror(rc));
    if (size != sizeof fztiny_expect_file || memcmp(file, fztiny_expect_file, size) != 0)
        return;
    for (int i = 0; i < FZTINY_STEP_Y_COUNT; i++)
        FZ_CHECK(fabsf(y[i] - fztiny_expect_y[i]) <= 1e-5f, "y[%d] = %g, the JIT's %g", i, (double)y[i],
                 (double)fztiny_expect_y[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* aligned: the weights after the 64-byte header are aligned too */
    unsigned char *aligned = aligned_alloc(FZTINY_ALIGN, (size + FZTINY_ALIGN) / FZTINY_ALIGN * FZTINY_ALIGN);
    unsigned char *exact = malloc(size ? size : 1);
    if (!aligned || !exact)
        fz_die("fuzz: malloc");
    memcpy(aligned, data, size);
    memcpy(exact, data, size);

    const void *w = &w;
    int rc = fztiny_weights_check(aligned, size, &w);
    FZ_CHECK(rc >= FZTINY_OK && rc <= FZTINY_E_CORRUPT && rc != FZTINY_E_MEMORY && rc != FZTINY_E_INDEX &&
                 rc != FZTINY_E_IO && rc != FZTINY_E_WEIGHTS,
             "fztiny_weights_check returned %d (%s)", rc, fztiny_strerror(rc));
    FZ_CHECK(rc == FZTINY_OK ? w == aligned + FZTINY_WEIGHTS_HEADER_BYTES : w == NULL,
             "the weights pointer after code %d", rc);
    if (rc == FZTINY_OK)
        run_entry(w, data, size);

    const void *we = &we;
    int rc_exact = fztiny_weights_check(exact, size, &we);
    FZ_CHECK(rc_exact == rc || (rc == FZTINY_OK && rc_exact == FZTINY_E_WEIGHTS),
             "the same bytes checked %d aligned, %d in a block of their size", rc, rc_exact);
    FZ_CHECK(rc_exact == FZTINY_OK ? we == exact + FZTINY_WEIGHTS_HEADER_BYTES : we == NULL,
             "the weights pointer after code %d", rc_exact);

    void *block = &block;
    const void *wl = &wl;
    int rc_load = fztiny_weights_load(fz_file(data, size), &block, &wl);
    FZ_CHECK(rc_load == rc, "the same bytes checked %d in memory, %d loaded from a file", rc, rc_load);
    if (rc_load == FZTINY_OK) {
        FZ_CHECK(block && wl, "loaded, but no block or no weights");
        run_entry(wl, data, size);
        free(block);
    } else {
        FZ_CHECK(!block && !wl, "a failed load left a block or weights");
    }
    free(exact);
    free(aligned);
    return 0;
}
