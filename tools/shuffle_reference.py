#!/usr/bin/python3
"""Reference for zotune's per-epoch data shuffle (src/data/shuffle.cpp).

    python3 tools/shuffle_reference.py

Prints epoch_permutation(seed, epoch, n) for the cases tests/unit/test_data_loader.cpp
pins. Written from the specs alone: Philox4x32-10 (Salmon et al. 2011, checked
against Random123's known-answer vectors below), splitmix64 (Steele et al.),
and a downward Fisher-Yates whose draw j in [0, i] is the high 64 bits of
(64 random bits) * (i + 1).
"""

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
SHUFFLE_DOMAIN = int.from_bytes(b"datashuf", "big")


def philox4x32_10(counter, key):
    c, k = list(counter), list(key)
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & MASK32, (p0 >> 32) ^ c[3] ^ k[1], p0 & MASK32]
        k = [(k[0] + 0x9E3779B9) & MASK32, (k[1] + 0xBB67AE85) & MASK32]
    return c


# Random123 kat_vectors: philox4x32 R=10.
assert philox4x32_10([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
assert philox4x32_10([MASK32] * 4, [MASK32] * 2) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def epoch_permutation(seed, epoch, n):
    key = splitmix64(seed ^ SHUFFLE_DOMAIN)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        r = philox4x32_10([i & MASK32, i >> 32, epoch & MASK32, epoch >> 32], [key & MASK32, key >> 32])
        j = ((((r[0] << 32) | r[1]) * (i + 1)) >> 64)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


if __name__ == "__main__":
    for seed, epoch, n in [(42, 3, 8), (0, 0, 8), (2024, 1, 23)]:
        print(f"epoch_permutation(seed={seed}, epoch={epoch}, n={n}) = {epoch_permutation(seed, epoch, n)}")
