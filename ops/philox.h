/*
 * philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11), the counter-based generator behind the random
 * op. A value is a pure function of (key, counter), so any element of any
 * random tensor can be computed independently, in any order, by the
 * reference executor or a vectorized kernel, with the same result.
 */
#ifndef LOOM_PHILOX_H
#define LOOM_PHILOX_H

#include <stdint.h>

typedef struct philox4 {
    uint32_t v[4];
} philox4;

static inline philox4 philox4x32_10(philox4 c, uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c.v[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c.v[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c = (philox4){ { hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0 } };
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* The four words for element i of a random op: counter (i, stream, run lo,
 * run hi), key (seed lo, seed hi). key4 is the op's key operand. */
static inline philox4 philox_element(const int32_t key4[4], uint32_t stream, uint32_t i)
{
    philox4 c = { { i, stream, (uint32_t)key4[2], (uint32_t)key4[3] } };
    return philox4x32_10(c, (uint32_t)key4[0], (uint32_t)key4[1]);
}

#endif /* LOOM_PHILOX_H */
